#!/usr/bin/env bash
# The broker paused under load, on scripts/run's settings: both services started as
# scripts/bench starts them (release builds, a fresh database, the broker running on
# 9092 or started), ORDERS orders placed at RATE per second (loadgen), and the broker
# SIGSTOPped PAUSE_AT seconds into the load for PAUSE_SECS seconds. Every second it
# prints what each service's /health/ready answers (status and reason; curl waits up
# to 3 s, longer than the readiness check's own broker timeout) and their resident
# memory; then loadgen's summary (every order must resolve) and the memory after.
#
#   scripts/probes/broker_pause.sh [ORDERS [RATE [PAUSE_AT [PAUSE_SECS]]]]   # default 25000 250 30 30
#   PROBE_BIN_DIR=/elsewhere/target/release scripts/probes/broker_pause.sh   # another build
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/postgres.sh
source scripts/lib/kafka.sh
source scripts/lib/services.sh

orders=${1:-25000} rate=${2:-250} pause_at=${3:-30} pause_secs=${4:-30}
broker=""
cleanup() {
  trap - EXIT
  if [[ -n $broker ]]; then kill -CONT "$broker" 2>/dev/null || true; fi
  stop_all_started
}
trap cleanup EXIT

provision_postgres
provision_kafka
port=${KAFKA_BROKERS%%,*}
port=${port##*:}
broker=$(ss -Hltnp "sport = :$port" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
if [[ -z $broker ]]; then
  echo "no process of this machine listens on the broker's port $port: cannot pause it" >&2
  exit 1
fi
use_probe_binaries
start_services pause 18190 18191

ready() {
  local answer
  if ! answer=$(curl -sS -m 3 -w ' %{http_code}' "http://127.0.0.1:$1/health/ready" 2>/dev/null); then
    echo "no answer within 3 s"
    return
  fi
  # The status, then the reason when not ready ("error"), else the state ("status").
  echo "${answer##* } $(grep -o -m1 -E '"error":"[^"]*"|"status":"[^"]*"' <<<"${answer% *}" | head -1 | cut -d'"' -f4)"
}

"$SERVICES_BIN_DIR/loadgen" --oms http://127.0.0.1:18190 --inventory http://127.0.0.1:18191 \
  --orders "$orders" --rate "$rate" --concurrency 64 --products 10 --timeout-secs 300 >/tmp/pause-loadgen.log 2>&1 &
load=$!
start=$(date +%s)
paused=""
printf '%4s  %-50s %-50s %s\n' t "OMS ready" "inventory ready" "resident MB"
while kill -0 "$load" 2>/dev/null; do
  t=$(($(date +%s) - start))
  if [[ -z $paused ]] && ((t >= pause_at)); then
    kill -STOP "$broker"
    paused=yes
    echo "---- broker $broker paused at t=$t s"
  elif [[ $paused == yes ]] && ((t >= pause_at + pause_secs)); then
    kill -CONT "$broker"
    paused=over
    echo "---- broker continued at t=$t s"
  fi
  printf '%4s  %-50s %-50s %s\n' "$t" "$(ready 18190)" "$(ready 18191)" "$(resident_mb | tr '\n' ' ')"
  sleep 1
done
wait "$load" || echo "loadgen failed" >&2
cat /tmp/pause-loadgen.log
echo "resident MB after: $(resident_mb | tr '\n' ' ')"
