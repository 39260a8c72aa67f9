#!/usr/bin/env python3
# Consumer-group probe (scripts/lib/crabka/README.md, "classic groups that get past a
# dead member"): a member consuming a 4-partition topic is SIGKILLed (no LeaveGroup)
# and a replacement joins 1.5 s later under a new member id, as a crashed service
# restarted by its supervisor does. Each round prints how long the replacement took to
# own every partition and read a message produced after the kill; a round that does not
# get there within 60 s is a failure (the exit code counts them). The dead member is
# the group's smallest member id about half the time, so several rounds are run.
# Needs confluent-kafka (pip) and a broker already listening.
# Usage: python3 scripts/probes/group_dead_member.py BOOTSTRAP [ROUNDS]
import os, signal, subprocess, sys, time, uuid
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap = sys.argv[1]
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 6
conf = {"bootstrap.servers": bootstrap}
# The services' own group settings (messaging's defaults): a 6 s session.
member_conf = {**conf, "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
               "auto.offset.reset": "earliest", "enable.auto.commit": True}

if len(sys.argv) > 3 and sys.argv[3] == "--member":
    # The member that is killed: consumes until SIGKILL, printing once it owns partitions.
    c = Consumer({**member_conf, "group.id": sys.argv[4]})
    c.subscribe([sys.argv[5]])
    told = False
    while True:
        c.poll(0.2)
        if not told and c.assignment():
            print("assigned", flush=True); told = True

failures = 0
producer = Producer(conf)
admin = AdminClient(conf)
for n in range(rounds):
    topic, group = f"probe-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(topic, 4, 1)])[topic].result()
    for i in range(40):
        producer.produce(topic, b"before", partition=i % 4)
    producer.flush(10)
    first = subprocess.Popen([sys.executable, __file__, bootstrap, "1", "--member", group, topic],
                             stdout=subprocess.PIPE, text=True)
    first.stdout.readline()  # "assigned"
    time.sleep(2)  # a few heartbeats in Stable
    os.kill(first.pid, signal.SIGKILL); first.wait()
    killed = time.monotonic()
    time.sleep(1.5)
    for p in range(4):
        producer.produce(topic, b"after", partition=p)
    producer.flush(10)
    c = Consumer({**member_conf, "group.id": group})
    c.subscribe([topic])
    owned_at = read_at = None
    while time.monotonic() - killed < 60 and read_at is None:
        m = c.poll(0.2)
        if owned_at is None and len(c.assignment()) == 4:
            owned_at = time.monotonic() - killed
        if m is not None and not m.error() and m.value() == b"after" and owned_at is not None:
            read_at = time.monotonic() - killed
    c.close()
    if read_at is None:
        failures += 1
        owned = "owned every partition" if owned_at is not None else "did not own every partition"
        print(f"round {n}: FAILED: 60 s after the kill the replacement {owned} and read nothing new", flush=True)
    else:
        print(f"round {n}: replacement owned all 4 partitions {owned_at:.1f} s after the kill, read a new message at {read_at:.1f} s", flush=True)
print(f"{rounds - failures} of {rounds} rounds recovered")
sys.exit(failures)
