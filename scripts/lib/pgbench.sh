# shellcheck shell=bash
# pgbench as the benchmarks use it: the reference write a POST is compared with, and
# the latency of one script at one client. Sourced by scripts/bench and the probes
# in scripts/probes/.

# The reference write of issue 15: a one-row insert into a table made for it (used by
# the scripts that source this file).
# shellcheck disable=SC2034
PGBENCH_INSERT_TABLE="CREATE TABLE IF NOT EXISTS one_row_inserts (id bigserial PRIMARY KEY, payload jsonb NOT NULL)"
PGBENCH_INSERT="INSERT INTO one_row_inserts (payload) VALUES ('{\"orderId\": \"x\"}');"

# pgbench_latency PGBENCH URL SCRIPT [PGBENCH-ARGUMENTS...]: runs SCRIPT at one client
# for 10 s and prints "TPS P50_MS P99_MS", the percentiles from pgbench's
# per-transaction log (microseconds in its third field).
pgbench_latency() {
  local pgbench=$1 url=$2 script=$3 log tps
  shift 3
  log=$(mktemp -d)
  tps=$(cd "$log" && "$pgbench" -n -f "$script" -c 1 -T 10 -l "$@" "$url" 2>/dev/null | awk '/^tps/ {printf "%.0f", $3}')
  cat "$log"/pgbench_log.* | awk '{print $3}' | sort -n |
    awk -v tps="$tps" '{v[NR] = $1} END {printf "%d %.3f %.3f\n", tps, v[int(NR * 0.5) + 1] / 1000, v[int(NR * 0.99) + 1] / 1000}'
  rm -rf "$log"
}

# pgbench_binary: prints the pgbench on PATH, else the newest PostgreSQL's (nothing
# when there is none).
pgbench_binary() {
  command -v pgbench || find /usr/lib/postgresql -path '*/bin/pgbench' 2>/dev/null | sort -V | tail -n 1
}

# pgbench_insert_latency PGBENCH URL [PGBENCH-ARGUMENTS...]: the reference write (its
# table made if missing) at one client for 10 s on database URL, back to back unless
# the arguments say otherwise (-R 100: paced at 100/s); prints "TPS P50_MS P99_MS".
pgbench_insert_latency() {
  local pgbench=$1 url=$2 script
  shift 2
  PGOPTIONS="-c client_min_messages=warning" psql "$url" -qc "$PGBENCH_INSERT_TABLE"
  script=$(mktemp)
  echo "$PGBENCH_INSERT" >"$script"
  pgbench_latency "$pgbench" "$url" "$script" "$@"
  rm -f "$script"
}
