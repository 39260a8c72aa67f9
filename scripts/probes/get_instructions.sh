#!/usr/bin/env bash
# The OMS's own instructions per GET of one order, counted by callgrind: a figure that
# does not move with the machine's load or speed (a GET's rate here moves ±15% from one
# 15 s round to the next), for telling whether a change made a GET cheaper. The OMS is
# started as scripts/bench starts it (release build, scripts/run's settings, a fresh
# database, the broker running on 9092 or started) under valgrind with its counting
# off; 200 orders are placed, GETs warm it up for 5 s, then counting is on for SECONDS
# of `wrk -t1 -c4` GETs of those orders (scripts/lib/get-order.lua). Prints the GETs,
# the instructions per GET and the functions that cost most, with and without what
# they call. Kernel time (the sockets) is not counted: see the GET sections of
# docs/benchmarks.md for the whole cost. Other settings pass through the environment.
#
#   scripts/probes/get_instructions.sh [SECONDS]                          # default 15
#   MIMALLOC_PURGE_DELAY=1000 scripts/probes/get_instructions.sh          # a setting, same build
#   PROBE_BIN_DIR=/elsewhere/target/release scripts/probes/get_instructions.sh   # another build
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/postgres.sh
source scripts/lib/kafka.sh
source scripts/lib/services.sh

seconds=${1:-15}
port=18095
oms_pid="" output=""
cleanup() {
  trap - EXIT
  if [[ -n $oms_pid ]]; then
    kill -TERM "$oms_pid" 2>/dev/null || true
    wait "$oms_pid" 2>/dev/null || true
  fi
  [[ -n $output ]] && rm -f "$output" "$output.ids"
  stop_all_started
}
trap cleanup EXIT

command -v valgrind >/dev/null || apt-get install -y valgrind >/dev/null
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
provision_postgres
provision_kafka
use_probe_binaries
prepare_services instructions
output=$(mktemp /tmp/get-instructions.XXXXXX)
OMS_PORT=$port valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$output" \
  "$SERVICES_BIN_DIR/oms" >/tmp/get-instructions-oms.log 2>&1 &
oms_pid=$!
oms=http://127.0.0.1:$port
for _ in $(seq 1 300); do
  curl -fsS "$oms/health/ready" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "$oms/health/ready" >/dev/null || {
  echo "the OMS under valgrind is not ready after 60 s:" >&2
  tail -n 5 /tmp/get-instructions-oms.log >&2
  exit 1
}

for i in $(seq 1 200); do
  curl -fsS -X POST "$oms/oms/orders" -H 'Content-Type: application/json' \
    -d "{\"userId\":\"u-$i\",\"orderItems\":[{\"productId\":\"p-$((i % 10))\",\"quantity\":1},{\"productId\":\"q-$((i % 7))\",\"quantity\":2}]}"
  echo
done | python3 -c 'import json, sys; [print(json.loads(line)["data"]["orderId"]) for line in sys.stdin if line.strip()]' >"$output.ids"
gets() { WRK_ORDER_IDS="$output.ids" wrk -t1 -c4 -d"$1s" -s scripts/lib/get-order.lua "$oms"; }
gets 5 >/dev/null
callgrind_control -i on "$oms_pid" >/dev/null
counted=$(gets "$seconds")
callgrind_control -i off "$oms_pid" >/dev/null
kill -TERM "$oms_pid"
wait "$oms_pid" 2>/dev/null || true
oms_pid=""

requests=$(awk '/requests in/ {print $1}' <<<"$counted")
if grep -q "Non-2xx" <<<"$counted"; then
  echo "some GETs failed:" >&2
  echo "$counted" >&2
  exit 1
fi
total=$(callgrind_annotate "$output" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "GET /oms/orders/{id}: $requests GETs counted, $total instructions, $((total / requests)) per GET (the OMS's user space)"
# The top of callgrind_annotate's table whose function matches PATTERN: instructions
# per GET, share, function.
top() {
  local pattern=$1
  shift
  callgrind_annotate "$@" "$output" 2>/dev/null | awk -v n="$requests" -v pattern="$pattern" '
    /file:function/ {table = 1; next}
    table && shown < 15 && /^ *[0-9,]+ \(/ && $0 ~ pattern {shown++
      count = $1; gsub(",", "", count)
      match($0, /\( *[0-9.]+%\)/); share = substr($0, RSTART, RLENGTH); gsub(" ", "", share)
      name = substr($0, RSTART + RLENGTH); sub(/^ +/, "", name); sub(/ \[.*$/, "", name); sub(/^\?\?\?:/, "", name)
      printf "  %7.0f %-9s %s\n", count / n, share, substr(name, 1, 110)}'
}
echo "most instructions per GET in the function itself:"
top .
echo "most instructions per GET in our crates' functions, with what they call:"
top '(projections|http_server|command_api|eventstore|domain)::' --inclusive=yes
