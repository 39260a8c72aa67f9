#!/usr/bin/env python3
# Development-broker retention probe (scripts/lib/tansu/tansu-storage.patch): starts a
# private broker (path: first argument) on 127.0.0.1:19500 with TANSU_RETENTION_BYTES
# = 1 MiB, produces 5 x 20,000 messages of 1 kB into one partition, and checks that the
# log start follows, that a reader from offset 0 is reset to it and reads the rest in
# order without a gap, and that the broker's memory stays flat. Needs confluent-kafka
# (pip). Usage: python3 scripts/probes/broker_retention.py "$TANSU_ROOT/bin/tansu"
import os, subprocess, sys, time
from confluent_kafka import Producer, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
T = sys.argv[1]; port = 19500
env = dict(os.environ, TANSU_RETENTION_BYTES=str(1 << 20))
b = subprocess.Popen([T, "broker", "--listener-url", f"tcp://127.0.0.1:{port}", "--advertised-listener-url", f"tcp://127.0.0.1:{port}", "--storage-engine", "memory://tansu/"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(1)
conf = {"bootstrap.servers": f"127.0.0.1:{port}"}
admin = AdminClient(conf); admin.create_topics([NewTopic("r", 1, 1)])["r"].result(); del admin
p = Producer({**conf, "linger.ms": 5, "enable.idempotence": True})
payload = b"x" * 1000
def rss():
    return int(open(f"/proc/{b.pid}/status").read().split("VmRSS:")[1].split()[0]) // 1024
for round in range(5):
    for i in range(20000):
        p.produce("r", payload, key=str(i))
        if i % 1000 == 0: p.poll(0)
    p.flush(30)
    c = Consumer({**conf, "group.id": "probe"})
    low, high = c.get_watermark_offsets(TopicPartition("r", 0), timeout=5)
    c.close()
    print(f"round {round}: produced {(round+1)*20000}, low {low}, high {high}, retained {high-low}, broker RSS {rss()} MB", flush=True)
c = Consumer({**conf, "group.id": "reader", "auto.offset.reset": "earliest", "enable.auto.commit": False})
c.assign([TopicPartition("r", 0, 0)])  # below the log start: must reset to earliest
expected = None; n = 0; t0 = time.time()
while time.time() - t0 < 60:
    m = c.poll(1)
    if m is None:
        if expected is not None and expected >= high: break
        continue
    if m.error(): print("error", m.error()); continue
    if expected is None:
        print("first offset read", m.offset(), "(log start", low, ")")
        expected = m.offset()
    assert m.offset() == expected, (m.offset(), expected)
    expected += 1; n += 1
print(f"read {n} messages from {high-n} to {high}, in order, no gap; RSS {rss()} MB")
assert expected == high and high - n == low, (expected, high, n, low)
b.kill()
print("OK")
