"""GET one path on one kept connection, paced: prints "p50 X p99 Y" in ms.

For scripts/probes/post_one_client.sh, which compares what waking an idle process
costs with what a POST costs paced alike (wrk cannot pace).

    python3 scripts/lib/paced_get.py PORT PATH RATE SECONDS
"""

import http.client
import sys
import time


def main() -> None:
    port, path, rate, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    connection = http.client.HTTPConnection("127.0.0.1", port)
    latencies = []
    next_start = time.perf_counter()
    for _ in range(int(rate * seconds)):
        time.sleep(max(0.0, next_start - time.perf_counter()))
        started = time.perf_counter()
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            sys.exit(f"GET {path} answered {response.status}")
        latencies.append((time.perf_counter() - started) * 1000)
        next_start = started + 1 / rate
    latencies.sort()
    print(f"p50 {latencies[len(latencies) // 2]:.3f} ms p99 {latencies[int(len(latencies) * 0.99)]:.3f} ms")


if __name__ == "__main__":
    main()
