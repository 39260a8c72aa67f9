#!/usr/bin/env bash
# What the system costs doing nothing: both services started as scripts/bench starts
# them (release builds, scripts/run's settings, a fresh database, the broker running on
# 9092 or started), no orders. After 10 s of settling, over SECONDS: the CPU seconds a
# second of each process (from /proc), each service's threads by name with their share,
# and the transactions a second the services' database committed (each statement the
# services send outside a transaction is one).
#
#   scripts/probes/idle_cost.sh [SECONDS]                                # default 30
#   PROBE_BIN_DIR=/elsewhere/target/release scripts/probes/idle_cost.sh  # another build
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib/postgres.sh
source scripts/lib/kafka.sh
source scripts/lib/services.sh

seconds=${1:-30}
trap stop_all_started EXIT

# thread_ticks PID: "<thread name> <user + system ticks>" for each thread of PID.
thread_ticks() {
  proc_ticks /proc/"$1"/task/*/stat | awk '{print $1, $2 + $3}'
}

# threads_report SERVICE BEFORE AFTER: the CPU seconds a second of SERVICE's threads
# by name, from thread_ticks before and after.
threads_report() {
  echo "$1's threads by name, CPU seconds a second (threads of a name summed):"
  # Threads are matched by position: a name may repeat (tokio's workers).
  paste <(echo "$2") <(echo "$3") |
    awk -v s="$seconds" -v t="$(getconf CLK_TCK)" '$1 == $3 {cpu[$1] += ($4 - $2) / t / s; n[$1]++}
      END {for (name in cpu) printf "  %-18s x%-3d %.4f\n", name, n[name], cpu[name]}' | sort -k3 -rn
}

# committed: the transactions the services' database has committed so far.
committed() {
  psql "$PG_SERVER_URL" -Atc "SELECT xact_commit FROM pg_stat_database WHERE datname = '$services_database'"
}

provision_postgres
provision_kafka
use_probe_binaries
start_services idle 18097 18098
sleep 10
oms_pid=${services_pids[0]} inventory_pid=${services_pids[1]}
before_cpu=$(cpu_seconds)
before_oms=$(thread_ticks "$oms_pid")
before_inventory=$(thread_ticks "$inventory_pid")
before_commits=$(committed)
sleep "$seconds"
after_cpu=$(cpu_seconds)
after_oms=$(thread_ticks "$oms_pid")
after_inventory=$(thread_ticks "$inventory_pid")
after_commits=$(committed)

echo "idle for $seconds s, CPU seconds a second (PostgreSQL: every session of the server):"
join <(echo "$before_cpu") <(echo "$after_cpu") |
  awk -v s="$seconds" '{printf "  %-14s %.4f\n", $1, ($3 - $2) / s}'
threads_report oms "$before_oms" "$after_oms"
threads_report inventory "$before_inventory" "$after_inventory"
echo "the services' database: $(((after_commits - before_commits) / seconds)) transactions a second"
