# shellcheck shell=bash
# The API fuzz run: both services, started from their debug builds on free ports,
# each on a fresh database of its own (test_<32 hex>, so scripts/test's clean-up drops
# them too) and on topics and consumer groups of their own on the broker in
# KAFKA_BROKERS, are fuzzed by schemathesis from their /openapi.json with every check
# on: no 5xx, every answer (status, headers, body) as documented, every request the
# document allows accepted and every request it does not allow refused. Any failure
# fails the run. Sourced by scripts/test and scripts/api-fuzz, after
# scripts/lib/postgres.sh (provision_postgres) and scripts/lib/kafka.sh
# (provision_kafka).
#
#   API_FUZZ_MAX_EXAMPLES  test cases per operation and phase (default 200)
#   API_FUZZ_SEED          schemathesis' random seed (default: a new one each run,
#                          printed, so that a failure can be replayed)
#   API_FUZZ_LOGS          where the services' logs go (default: a temporary directory,
#                          kept when the run fails)

source "$(dirname "${BASH_SOURCE[0]}")/schemathesis.sh"

API_FUZZ_PIDS=()
API_FUZZ_DATABASES=()

# A TCP port nobody listens on now.
api_fuzz_free_port() {
  "$(dirname "$SCHEMATHESIS")/python" -c \
    'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Starts service $1 (oms or inventory; its variable prefix is $2) on port $3 with
# database $4, logging to $5.
api_fuzz_start() {
  local binary=$1 prefix=$2 port=$3 database=$4 log=$5
  env "DATABASE_URL=$(pg_url_with_database "$PG_SERVER_URL" "$database")" \
    "${prefix}_HOST=127.0.0.1" "${prefix}_PORT=$port" \
    "${prefix}_CONSUMER_GROUP=$API_FUZZ_RUN.${binary}" \
    LOG_LEVEL="${LOG_LEVEL:-warn}" LOG_FORMAT=text DATABASE_MAX_CONNECTIONS=4 SHUTDOWN_GRACE_MS=5000 \
    "./target/debug/$binary" >"$log" 2>&1 &
  API_FUZZ_PIDS+=($!)
}

# Waits up to 60 s for http://127.0.0.1:$1/health/ready while process $2 runs.
api_fuzz_await_ready() {
  local port=$1 pid=$2 log=$3
  for _ in $(seq 1 300); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "api fuzz: the service behind port $port exited at start-up; its log ($log):" >&2
      tail -n 40 "$log" >&2
      return 1
    fi
    if curl -fsS "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "api fuzz: the service behind port $port was not ready within 60 s; its log ($log):" >&2
  tail -n 40 "$log" >&2
  return 1
}

# How many requests the service on port $1 has answered (its http_requests_total).
api_fuzz_requests() {
  curl -fsS "http://127.0.0.1:$1/metrics" 2>/dev/null |
    awk '/^http_requests_total[{ ]/ { total += $NF } END { printf "%d", total }'
}

api_fuzz_stop() {
  if ((${#API_FUZZ_PIDS[@]})); then
    kill -TERM "${API_FUZZ_PIDS[@]}" 2>/dev/null || true
    wait "${API_FUZZ_PIDS[@]}" 2>/dev/null || true
  fi
  API_FUZZ_PIDS=()
  local database
  for database in "${API_FUZZ_DATABASES[@]}"; do
    psql "$PG_SERVER_URL" -qc "DROP DATABASE IF EXISTS \"$database\" WITH (FORCE)" >/dev/null 2>&1 || true
  done
  API_FUZZ_DATABASES=()
}

# Runs schemathesis against the document at $1 (the service at $2); its summary ends
# up in the output.
api_fuzz_schemathesis() {
  local document=$1 name=$2 seed=()
  [[ -n ${API_FUZZ_SEED:-} ]] && seed=(--seed "$API_FUZZ_SEED")
  echo "api fuzz: $name ($document)" >&2
  # In a directory of its own, writing no bytecode: nothing is left in the checkout.
  # One worker: schemathesis' workers are threads, and CPython 3.11 can fail parsing
  # source in several threads at once ("AST constructor recursion depth mismatch").
  (cd "$API_FUZZ_WORK" &&
    PYTHONPATH=$SCHEMATHESIS_DIR PYTHONDONTWRITEBYTECODE=1 SCHEMATHESIS_HOOKS=fuzz_hooks \
    "$SCHEMATHESIS" run "$document" \
    --checks all \
    --max-examples "${API_FUZZ_MAX_EXAMPLES:-200}" \
    --workers 1 \
    --generation-database none \
    --request-timeout 15 \
    --no-color \
    "${seed[@]}")
}

run_api_fuzz() {
  local failed=0 started
  started=$(date +%s)
  install_schemathesis || return 1
  echo "api fuzz: building both services (debug)..." >&2
  cargo build --locked --bin oms --bin inventory >&2 || return 1
  API_FUZZ_RUN=apifuzz$(date +%s)$$
  API_FUZZ_WORK=$(mktemp -d /tmp/order-processing-api-fuzz.XXXXXX)
  local logs=${API_FUZZ_LOGS:-$API_FUZZ_WORK}
  mkdir -p "$logs"
  local oms_db inventory_db oms_port inventory_port
  oms_db=test_$(tr -d - </proc/sys/kernel/random/uuid)
  inventory_db=test_$(tr -d - </proc/sys/kernel/random/uuid)
  API_FUZZ_DATABASES=("$oms_db" "$inventory_db")
  psql "$PG_SERVER_URL" -qc "CREATE DATABASE \"$oms_db\"" >/dev/null &&
    psql "$PG_SERVER_URL" -qc "CREATE DATABASE \"$inventory_db\"" >/dev/null || {
    api_fuzz_stop
    return 1
  }
  oms_port=$(api_fuzz_free_port)
  inventory_port=$(api_fuzz_free_port)
  # Both on topics of this run, so that orders placed by the fuzzer reach this
  # run's saga and nothing else.
  export KAFKA_TOPIC_ORDER_EVENTS=$API_FUZZ_RUN.oms.order-events \
    KAFKA_TOPIC_ORDER_OUTCOMES=$API_FUZZ_RUN.inventory.order-outcomes \
    KAFKA_TOPIC_STOCK_ALERTS=$API_FUZZ_RUN.inventory.stock-alerts
  api_fuzz_start oms OMS "$oms_port" "$oms_db" "$logs/oms.log"
  api_fuzz_start inventory INVENTORY "$inventory_port" "$inventory_db" "$logs/inventory.log"
  if api_fuzz_await_ready "$oms_port" "${API_FUZZ_PIDS[0]}" "$logs/oms.log" &&
    api_fuzz_await_ready "$inventory_port" "${API_FUZZ_PIDS[1]}" "$logs/inventory.log"; then
    api_fuzz_schemathesis "http://127.0.0.1:$oms_port/openapi.json" OMS || failed=1
    api_fuzz_schemathesis "http://127.0.0.1:$inventory_port/openapi.json" inventory || failed=1
    echo "api fuzz: requests answered: OMS $(api_fuzz_requests "$oms_port"), inventory $(api_fuzz_requests "$inventory_port")" >&2
  else
    failed=1
  fi
  api_fuzz_stop
  unset KAFKA_TOPIC_ORDER_EVENTS KAFKA_TOPIC_ORDER_OUTCOMES KAFKA_TOPIC_STOCK_ALERTS
  if ((failed)); then
    echo "api fuzz: FAILED after $(($(date +%s) - started)) s; the services' logs are in $logs" >&2
    return 1
  fi
  [[ -z ${API_FUZZ_LOGS:-} ]] && rm -rf "$API_FUZZ_WORK"
  echo "api fuzz: passed in $(($(date +%s) - started)) s" >&2
}
