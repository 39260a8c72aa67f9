# shellcheck shell=bash
# Both services started for a measurement, as scripts/bench and the probes in
# scripts/probes/ start them: release builds, scripts/run's settings, a fresh database
# and topics of their own on the broker already provisioned. Needs scripts/lib/postgres.sh
# and scripts/lib/kafka.sh sourced, and provision_postgres and provision_kafka done.

# Set by prepare_services and start_services (used by the scripts that source this file).
# shellcheck disable=SC2034
services_run=""
services_database=""
services_pids=()

# prepare_services NAME: creates the database NAME_<now> (dropped by stop_services)
# and exports DATABASE_URL, the settings both services read and topics of their own:
# what start_services starts them with, for a probe that starts a service its own way.
prepare_services() {
  local name=$1
  services_run=$(date +%s)
  services_database="${name}_$services_run"
  ensure_database "$services_database"
  export DATABASE_URL
  DATABASE_URL=$(pg_url_with_database "$PG_SERVER_URL" "$services_database")
  export LOG_LEVEL=${LOG_LEVEL:-warn} LOG_FORMAT=text DATABASE_MAX_CONNECTIONS=${DATABASE_MAX_CONNECTIONS:-16}
  export KAFKA_TOPIC_ORDER_EVENTS="$name$services_run.oms.order-events" \
    KAFKA_TOPIC_ORDER_OUTCOMES="$name$services_run.inventory.order-outcomes" \
    KAFKA_TOPIC_STOCK_ALERTS="$name$services_run.inventory.stock-alerts"
}

# start_services NAME OMS_PORT INVENTORY_PORT [OMS_INSTANCES]: prepare_services NAME,
# then starts the binaries of SERVICES_BIN_DIR (default ./target/release): one
# inventory, and OMS_INSTANCES OMS (default 1; the second on OMS_PORT + 12, and on),
# logging to /tmp/NAME-oms.log (/tmp/NAME-oms-2.log, ...) and /tmp/NAME-inventory.log.
# Returns once all answer ready and their consumers had time to join their groups;
# fails, showing the ends of their logs, when one is not ready within 10 s.
start_services() {
  local name=$1 oms_port=$2 inventory_port=$3 instances=${4:-1} bin=${SERVICES_BIN_DIR:-./target/release}
  prepare_services "$name"
  OMS_PORT=$oms_port "$bin/oms" >"/tmp/$name-oms.log" 2>&1 &
  services_pids+=($!)
  INVENTORY_PORT=$inventory_port "$bin/inventory" >"/tmp/$name-inventory.log" 2>&1 &
  services_pids+=($!)
  local ports=("$oms_port" "$inventory_port") logs=("/tmp/$name-oms.log" "/tmp/$name-inventory.log") instance port
  # More OMS instances share the first one's consumer group, the relay's leadership
  # and the payment deadline's work.
  for instance in $(seq 2 "$instances"); do
    port=$((oms_port + 10 + instance))
    OMS_PORT=$port "$bin/oms" >"/tmp/$name-oms-$instance.log" 2>&1 &
    services_pids+=($!)
    ports+=("$port")
    logs+=("/tmp/$name-oms-$instance.log")
  done
  local ready
  for _ in $(seq 1 100); do
    ready=0
    for port in "${ports[@]}"; do
      curl -fsS "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && ready=$((ready + 1))
    done
    ((ready == ${#ports[@]})) && break
    sleep 0.1
  done
  if ((ready < ${#ports[@]})); then
    echo "only $ready of ${#ports[@]} services answer ready after 10 s; their logs:" >&2
    tail -n 5 "${logs[@]}" >&2
    return 1
  fi
  sleep 4 # let the consumers join their groups
}

# use_probe_binaries: the binaries the probes measure: those of PROBE_BIN_DIR when set
# (another build, for A/B runs), else this tree's release build, built now. Exports
# SERVICES_BIN_DIR, which start_services and the probes read.
use_probe_binaries() {
  export SERVICES_BIN_DIR=${PROBE_BIN_DIR:-}
  if [[ -z $SERVICES_BIN_DIR ]]; then
    cargo build --release --locked --bin oms --bin inventory --bin loadgen >&2
    SERVICES_BIN_DIR=./target/release
  fi
}

# stop_services: stops what start_services started and drops its database.
stop_services() {
  if ((${#services_pids[@]})); then
    kill -TERM "${services_pids[@]}" 2>/dev/null || true
    wait "${services_pids[@]}" 2>/dev/null || true
    services_pids=()
  fi
  if [[ -n $services_database ]]; then
    psql "$PG_SERVER_URL" -qc "DROP DATABASE IF EXISTS \"$services_database\" WITH (FORCE)" >/dev/null 2>&1 || true
    services_database=""
  fi
}

# stop_all_started: stops the services, then the broker and PostgreSQL that
# provision_kafka and provision_postgres started (what a script's exit trap undoes).
stop_all_started() {
  stop_services
  stop_started_kafka
  stop_started_postgres
}

# proc_ticks STAT-FILE...: for each /proc stat file still readable (a process's or a
# thread's), "<name> <user> <system> <children's user> <children's system>", times in
# clock ticks, spaces in the name made underscores.
proc_ticks() {
  local stat line name rest
  for stat in "$@"; do
    { read -r line <"$stat"; } 2>/dev/null || continue
    name=${line#*\(} rest=${line##*\) }
    name=${name%%\)*}
    # shellcheck disable=SC2086
    set -- $rest
    echo "${name// /_} ${12} ${13} ${14} ${15}"
  done
}

# cpu_seconds: the CPU seconds (user + system) of the processes called oms, inventory,
# the broker and postgres, each name summed, a line each; with what their children
# that ended left them (the postmaster's: the sessions of clients that disconnected).
cpu_seconds() {
  proc_ticks /proc/[0-9]*/stat | awk -v ticks="$(getconf CLK_TCK)" '$1 ~ /^(oms|inventory|crabka-broker|tansu|postgres)$/ {cpu[$1] += ($2 + $3 + $4 + $5) / ticks} END {for (n in cpu) print n, cpu[n]}' | sort
}

# resident_mb: the resident memory in MB of the processes called oms, inventory and
# the broker (the largest of each name), a line each.
resident_mb() {
  local status
  for status in /proc/[0-9]*/status; do
    awk '/^Name:/ {name = $2} /^VmRSS:/ {print name, int($2 / 1024)}' "$status" 2>/dev/null || true
  done | awk '$1 ~ /^(oms|inventory|crabka-broker|tansu)$/ {if ($2 > mb[$1]) mb[$1] = $2} END {for (n in mb) printf "%s %d\n", n, mb[n]}' | sort
}

# context_switches: the context switches (voluntary and not) of every thread of the
# processes called oms, inventory, the broker and postgres, each name summed.
context_switches() {
  local process name
  for process in /proc/[0-9]*; do
    name=$(awk '/^Name:/ {print $2; exit}' "$process/status" 2>/dev/null) || continue
    [[ $name =~ ^(oms|inventory|crabka-broker|tansu|postgres)$ ]] || continue
    cat "$process"/task/*/status 2>/dev/null | awk -v name="$name" '/ctxt_switches:/ {n += $2} END {print name, n}'
  done | awk '{n[$1] += $2} END {for (p in n) print p, n[p]}' | sort
}
