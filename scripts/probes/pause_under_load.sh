#!/usr/bin/env bash
# The broker or the database paused, or the database refusing writes, under load, on
# scripts/run's settings: both services started as scripts/bench starts them (release
# builds, a fresh database, the broker running on 9092 or started), ORDERS orders
# placed at RATE per second (loadgen), and PAUSE_AT seconds into the load for
# PAUSE_SECS seconds: the broker's process SIGSTOPped (broker), every process of the
# PostgreSQL server SIGSTOPped (database: its postmaster and sessions, as a hung host
# would), or the server made read-only (read-only: default_transaction_read_only,
# reloaded, as a primary demoted to a standby answers). Both database faults hit every
# database of that server, so run them where nothing else uses it. Every second it prints what
# each service's /health/ready answers (status and reason; curl waits up to 3 s,
# longer than the readiness check's own timeouts) and their resident memory; then
# loadgen's summary (every order must resolve) and the memory after.
#
#   scripts/probes/pause_under_load.sh broker|database|read-only [ORDERS [RATE [PAUSE_AT [PAUSE_SECS]]]]   # default 25000 250 30 30
#   PROBE_BIN_DIR=/elsewhere/target/release scripts/probes/pause_under_load.sh database   # another build
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/postgres.sh
source scripts/lib/kafka.sh
source scripts/lib/services.sh

what=${1:-}
if [[ $what != broker && $what != database && $what != read-only ]]; then
  echo "usage: $0 broker|database|read-only [ORDERS [RATE [PAUSE_AT [PAUSE_SECS]]]]" >&2
  exit 2
fi
orders=${2:-25000} rate=${3:-250} pause_at=${4:-30} pause_secs=${5:-30}
paused_pids=() read_only=""
cleanup() {
  trap - EXIT
  if ((${#paused_pids[@]})); then kill -CONT "${paused_pids[@]}" 2>/dev/null || true; fi
  [[ -n $read_only ]] && refuse_writes RESET
  stop_all_started
}
trap cleanup EXIT

provision_postgres
provision_kafka
# The process listening on PORT of this machine.
listener() {
  ss -Hltnp "sport = :$1" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2
}
# What to pause, listed when the pause begins: the broker, or the database server's
# postmaster with every process it started by then.
to_pause() {
  local port pid
  if [[ $what == broker ]]; then
    port=${KAFKA_BROKERS%%,*}
  else
    port=${PG_SERVER_URL#*://}
    port=${port#*@}
    port=${port%%[/?]*}
    [[ $port == *:* ]] || port=5432
  fi
  pid=$(listener "${port##*:}")
  if [[ -z $pid ]]; then
    echo "no process of this machine listens on the $what's port ${port##*:}: cannot pause it" >&2
    return 1
  fi
  echo "$pid"
  [[ $what == database ]] && pgrep -P "$pid"
  return 0
}
# The whole server refuses writes from each session's next transaction (ON), or takes
# them again (RESET).
refuse_writes() {
  local change="ALTER SYSTEM SET default_transaction_read_only = on"
  [[ $1 == RESET ]] && change="ALTER SYSTEM RESET default_transaction_read_only"
  psql "$PG_SERVER_URL" -qAt -c "SET default_transaction_read_only = off" -c "$change" -c "SELECT pg_reload_conf()" >/dev/null
}
[[ $what == read-only ]] || to_pause >/dev/null
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
    if [[ $what == read-only ]]; then
      read_only=yes
      refuse_writes ON
      echo "---- the database refuses writes from t=$t s"
    else
      mapfile -t paused_pids < <(to_pause)
      kill -STOP "${paused_pids[@]}"
      echo "---- $what paused at t=$t s (processes ${paused_pids[*]})"
    fi
    paused=yes
  elif [[ $paused == yes ]] && ((t >= pause_at + pause_secs)); then
    if [[ $what == read-only ]]; then
      refuse_writes RESET
      read_only=""
      echo "---- the database takes writes again at t=$t s"
    else
      kill -CONT "${paused_pids[@]}"
      paused_pids=()
      echo "---- $what continued at t=$t s"
    fi
    paused=over
  fi
  printf '%4s  %-50s %-50s %s\n' "$t" "$(ready 18190)" "$(ready 18191)" "$(resident_mb | tr '\n' ' ')"
  sleep 1
done
wait "$load" || echo "loadgen failed" >&2
cat /tmp/pause-loadgen.log
echo "resident MB after: $(resident_mb | tr '\n' ' ')"
