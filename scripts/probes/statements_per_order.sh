#!/usr/bin/env bash
# The statements one order costs PostgreSQL, by kind, its whole pipeline included
# (placement, relay, saga, outcome): both services started as scripts/bench starts
# them (release builds, scripts/run's settings, a fresh database, the broker running
# on 9092 or started), the server set to log every statement while ORDERS orders are
# placed at RATE per second and resolved (loadgen), then the server's log counted for
# the services' database: each kind of statement per order, most frequent first, and
# the total. The setting is the server's (`ALTER SYSTEM`) for the length of the run,
# and reset on exit.
#
#   scripts/probes/statements_per_order.sh [ORDERS [RATE [CONCURRENCY]]]   # default 2500 250 64
#   PROBE_BIN_DIR=/elsewhere/target/release scripts/probes/statements_per_order.sh   # another build
#   PG_LOG=/path/to/server.log scripts/probes/statements_per_order.sh   # where the server logs, if not
#                                                                       # pg_lsclusters' 5432 cluster's
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/postgres.sh
source scripts/lib/kafka.sh
source scripts/lib/services.sh

orders=${1:-2500} rate=${2:-250} concurrency=${3:-64}
logging=""
cleanup() {
  trap - EXIT
  if [[ -n $logging ]]; then
    psql "$PG_SERVER_URL" -qc "ALTER SYSTEM RESET log_statement" -c "SELECT pg_reload_conf()" >/dev/null || true
  fi
  stop_all_started
}
trap cleanup EXIT

provision_postgres
provision_kafka
log=${PG_LOG:-}
if [[ -z $log && -n $STARTED_PG_DIR ]]; then log=$STARTED_PG_DIR/log; fi
if [[ -z $log ]]; then log=$(pg_lsclusters -h 2>/dev/null | awk '$3 == 5432 {print $7; exit}'); fi
if [[ ! -r $log ]]; then
  echo "cannot read the server's log '$log': set PG_LOG" >&2
  exit 1
fi
use_probe_binaries
start_services statements 18090 18091

start=$(($(stat -c %s "$log") + 1))
logging=yes
psql "$PG_SERVER_URL" -qc "ALTER SYSTEM SET log_statement = 'all'" -c "SELECT pg_reload_conf()" >/dev/null
"$SERVICES_BIN_DIR/loadgen" --oms http://127.0.0.1:18090 --inventory http://127.0.0.1:18091 \
  --orders "$orders" --rate "$rate" --concurrency "$concurrency" --products 10 | grep -E "^(POST|final statuses)" || true
sleep 2 # the last relay batches and checkpoint saves
psql "$PG_SERVER_URL" -qc "ALTER SYSTEM RESET log_statement" -c "SELECT pg_reload_conf()" >/dev/null
logging=""

# A statement's first line: "... user@database LOG:  statement: SQL" (simple protocol) or
# "... LOG:  execute sqlx_s_N: SQL" (prepared); its kind is its first 70 characters
# with the whitespace squeezed. Seeding the products is counted too (10 commands).
echo "statements per order ($orders orders; kinds above 0.05 per order):"
tail -c "+$start" "$log" |
  awk -v db="@$services_database " -v n="$orders" '
    index($0, db) && match($0, /LOG: +(statement|execute [^:]+): /) {
      sql = substr($0, RSTART + RLENGTH); gsub(/[ \t]+/, " ", sql)
      kinds[substr(sql, 1, 70)]++; total++
    }
    END {
      for (k in kinds) if (kinds[k] / n >= 0.05) printf "%7.2f  %s\n", kinds[k] / n, k
      printf "%7.2f  (all %d statements)\n", total / n, total
    }' | sort -rn
