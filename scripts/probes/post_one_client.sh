#!/usr/bin/env bash
# A POST at one client against the HTTP floor and the database's own insert: both
# services started as scripts/bench starts them (release builds, scripts/run's
# settings, a fresh database, the broker running on 9092 or started), 10 products
# seeded, then twice: `wrk -t1 -c1` on GET /health/live for 10 s (the HTTP floor) and
# on POST /oms/orders, a new order with its own Idempotency-Key each time, for 15 s
# back to back (scripts/lib/post-order.lua); then pgbench's one-row insert at one
# client, and the OMS's CPU seconds over the whole probe.
#
#   scripts/probes/post_one_client.sh
#   PROBE_BIN_DIR=/elsewhere/target/release scripts/probes/post_one_client.sh   # another build, for A/B runs
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/postgres.sh
source scripts/lib/kafka.sh
source scripts/lib/pgbench.sh

pids=()
database=""
cleanup() {
  trap - EXIT
  if ((${#pids[@]})); then kill -TERM "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true; fi
  for name in "$database" "${reference:-}"; do
    if [[ -n $name ]]; then psql "$PG_SERVER_URL" -qc "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null 2>&1 || true; fi
  done
  stop_started_kafka
  stop_started_postgres
}
trap cleanup EXIT

command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
provision_postgres
provision_kafka
bin=${PROBE_BIN_DIR:-}
if [[ -z $bin ]]; then
  cargo build --release --locked --bin oms --bin inventory >&2
  bin=./target/release
fi

run=$(date +%s)
database="probe_post_$run"
ensure_database "$database"
export DATABASE_URL
DATABASE_URL=$(pg_url_with_database "$PG_SERVER_URL" "$database")
export LOG_LEVEL=${LOG_LEVEL:-warn} LOG_FORMAT=text DATABASE_MAX_CONNECTIONS=${DATABASE_MAX_CONNECTIONS:-16}
export KAFKA_TOPIC_ORDER_EVENTS="probe$run.oms.order-events" KAFKA_TOPIC_ORDER_OUTCOMES="probe$run.inventory.order-outcomes" \
  KAFKA_TOPIC_STOCK_ALERTS="probe$run.inventory.stock-alerts"
oms=http://127.0.0.1:18080 inventory=http://127.0.0.1:18081
OMS_PORT=18080 "$bin/oms" >/tmp/probe-oms.log 2>&1 &
pids+=($!)
INVENTORY_PORT=18081 "$bin/inventory" >/tmp/probe-inventory.log 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS "$oms/health/ready" >/dev/null 2>&1 && curl -fsS "$inventory/health/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
sleep 4 # let both consumers join their groups
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
  echo "  POST /oms/orders, 1 connection, 15 s: $(wrk -t1 -c1 -d15s --latency -s scripts/lib/post-order.lua "$oms" | latency)"
  sleep 5
done

reference="probe_post_ref_$run"
ensure_database "$reference"
read -r tps p50 p99 < <(pgbench_insert_latency "$(pgbench_binary)" "$(pg_url_with_database "$PG_SERVER_URL" "$reference")")
echo "same-run reference: one-row insert, 1 client: $tps tps, p50 $p50 ms, p99 $p99 ms"
awk -v ticks="$(getconf CLK_TCK)" '{printf "OMS CPU over the probe: %.1f s\n", ($14 + $15) / ticks}' "/proc/${pids[0]}/stat"
