#!/usr/bin/env bash
# A POST at one client against the HTTP floor and the database's own insert: both
# services started as scripts/bench starts them (release builds, scripts/run's
# settings, a fresh database, the broker running on 9092 or started), 10 products
# seeded, then twice: `wrk -t1 -c1` on GET /health/live for 10 s (the HTTP floor) and
# on POST /oms/orders, a new order with its own Idempotency-Key each time, for 15 s
# back to back (scripts/lib/post-order.lua), with the CPU time and context switches
# each POST cost every process of the system meanwhile; then POSTs paced at 100/s and
# 10/s (loadgen) and GET /health/live paced alike, pgbench's one-row insert at one
# client back to back and paced alike, and the OMS's CPU seconds over the whole probe.
#
#   scripts/probes/post_one_client.sh
#   PROBE_BIN_DIR=/elsewhere/target/release scripts/probes/post_one_client.sh   # another build, for A/B runs
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/postgres.sh
source scripts/lib/kafka.sh
source scripts/lib/pgbench.sh
source scripts/lib/services.sh

cleanup() {
  trap - EXIT
  if [[ -n ${reference:-} ]]; then psql "$PG_SERVER_URL" -qc "DROP DATABASE IF EXISTS \"$reference\" WITH (FORCE)" >/dev/null 2>&1 || true; fi
  stop_all_started
}
trap cleanup EXIT

command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
provision_postgres
provision_kafka
use_probe_binaries
oms=http://127.0.0.1:18080 inventory=http://127.0.0.1:18081
start_services probe 18080 18081
for i in $(seq 0 9); do
  curl -fsS -X POST "$inventory/inventory/products" -H 'Content-Type: application/json' \
    -d "{\"productId\":\"probe-$i\",\"name\":\"Probe $i\",\"quantity\":10000000,\"lowStockThreshold\":10}" >/dev/null
done

# Prints "p50 X p99 Y N/s" (and non-2xx answers, if any) from wrk's --latency report.
latency() {
  awk '/^ +50%/ {printf "p50 %s ", $2} /^ +99%/ {printf "p99 %s ", $2} /Requests\/sec/ {printf "%s/s", $2} /Non-2xx/ {printf " (%s)", $0} END {print ""}'
}
for round in 1 2; do
  echo "round $round:"
  echo "  GET /health/live, 1 connection, 10 s: $(wrk -t1 -c1 -d10s --latency "$oms/health/live" | latency)"
  cpu_before=$(cpu_seconds) switches_before=$(context_switches)
  posted=$(wrk -t1 -c1 -d15s --latency -s scripts/lib/post-order.lua "$oms")
  cpu_after=$(cpu_seconds) switches_after=$(context_switches)
  echo "  POST /oms/orders, 1 connection, 15 s: $(latency <<<"$posted")"
  # What each POST cost the machine, its pipeline included (relay, saga, outcome).
  requests=$(awk '/requests in/ {print $1}' <<<"$posted")
  join <(join <(echo "$cpu_before") <(echo "$cpu_after")) <(join <(echo "$switches_before") <(echo "$switches_after")) |
    awk -v n="$requests" '{printf "    per POST, %-13s CPU %5.0f us, context switches %5.1f\n", $1, ($3 - $2) * 1e6 / n, ($5 - $4) / n}'
  sleep 5
done

# Paced: at 100/s an order's pipeline (10-20 ms end to end) still overlaps the next
# POST; at 10/s it is over before the next one, as for a client placing now and then,
# but every process has gone idle meanwhile, and waking one takes time of its own:
# GET /health/live (the OMS alone) paced alike shows how much.
loadgen=$SERVICES_BIN_DIR/loadgen
[[ -x $loadgen ]] || loadgen=./target/release/loadgen
for rate in 100 10; do
  "$loadgen" --oms "$oms" --inventory "$inventory" --orders $((rate * 20)) --rate "$rate" --concurrency 1 --products 10 |
    awk -v rate="$rate" '/^POST:/ {print "paced, POST /oms/orders at " rate "/s, 1 client, 20 s: p50 " $5 " ms p99 " $8 " ms"}'
  echo "paced, GET /health/live at $rate/s, 1 client, 15 s: $(python3 scripts/lib/paced_get.py "${oms##*:}" /health/live "$rate" 15)"
done

reference="probe_ref_$services_run"
ensure_database "$reference"
reference_url=$(pg_url_with_database "$PG_SERVER_URL" "$reference")
pgbench=$(pgbench_binary)
read -r tps p50 p99 < <(pgbench_insert_latency "$pgbench" "$reference_url")
echo "same-run reference: one-row insert, 1 client: $tps tps, p50 $p50 ms, p99 $p99 ms"
for rate in 100 10; do
  read -r tps p50 p99 < <(pgbench_insert_latency "$pgbench" "$reference_url" -R "$rate")
  echo "same-run reference, paced at $rate/s: one-row insert, 1 client: p50 $p50 ms, p99 $p99 ms"
done
cpu_seconds | awk '$1 == "oms" {printf "OMS CPU over the probe: %.1f s\n", $2}'
