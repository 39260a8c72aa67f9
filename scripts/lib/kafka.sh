# shellcheck shell=bash
# Provisions a Kafka-protocol broker for scripts/run and scripts/test. Sourced.
#
#   1. $KAFKA_BROKERS, when it is set and its first broker accepts connections;
#   2. else the development broker, tansu (pinned, installed once into a cache
#      directory with `cargo install`), started on 127.0.0.1:9092 with in-memory
#      storage and stopped by stop_started_kafka (call it from an EXIT trap).
# Exports KAFKA_BROKERS.

TANSU_VERSION=0.6.0
TANSU_ROOT=${TANSU_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/order-processing/tansu-$TANSU_VERSION}
STARTED_KAFKA_PID=""

tcp_open() {
  local host=${1%:*} port=${1##*:}
  (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

install_tansu() {
  if [[ -x $TANSU_ROOT/bin/tansu ]]; then return 0; fi
  echo "installing the development broker tansu $TANSU_VERSION into $TANSU_ROOT (once; 8-20 minutes)..." >&2
  cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore --root "$TANSU_ROOT" >&2
}

start_tansu() {
  local address=127.0.0.1:9092
  install_tansu
  "$TANSU_ROOT/bin/tansu" broker \
    --listener-url "tcp://$address" --advertised-listener-url "tcp://$address" \
    --storage-engine memory://tansu/ >"${TANSU_LOG:-/tmp/order-processing-tansu.log}" 2>&1 &
  STARTED_KAFKA_PID=$!
  for _ in $(seq 1 100); do
    if ! kill -0 "$STARTED_KAFKA_PID" 2>/dev/null; then
      echo "the development broker exited at start-up; see ${TANSU_LOG:-/tmp/order-processing-tansu.log}" >&2
      STARTED_KAFKA_PID=""
      return 1
    fi
    if tcp_open "$address"; then
      echo "started the development broker (tansu) on $address" >&2
      return 0
    fi
    sleep 0.1
  done
  echo "the development broker did not open $address within 10 s; see ${TANSU_LOG:-/tmp/order-processing-tansu.log}" >&2
  stop_started_kafka
  return 1
}

stop_started_kafka() {
  [[ -n $STARTED_KAFKA_PID ]] || return 0
  kill -TERM "$STARTED_KAFKA_PID" 2>/dev/null || true
  # Wait for it to exit so that the next start finds the port free.
  wait "$STARTED_KAFKA_PID" 2>/dev/null || true
  STARTED_KAFKA_PID=""
}

provision_kafka() {
  if [[ -n ${KAFKA_BROKERS:-} ]] && tcp_open "${KAFKA_BROKERS%%,*}"; then
    echo "using the Kafka brokers of KAFKA_BROKERS ($KAFKA_BROKERS)" >&2
    return 0
  fi
  if tcp_open 127.0.0.1:9092; then
    echo "using the broker already listening on 127.0.0.1:9092" >&2
  else
    start_tansu
  fi
  export KAFKA_BROKERS=127.0.0.1:9092
  # tansu's in-memory storage mishandles consumers resuming inside a record batch;
  # one message per batch avoids it. Development broker only: production keeps
  # librdkafka's defaults.
  export KAFKA_PRODUCER_BATCH_NUM_MESSAGES=${KAFKA_PRODUCER_BATCH_NUM_MESSAGES:-1}
  # tansu holds every fetch for the consumer's whole fetch.wait.max.ms, data or not
  # (Apache Kafka answers as soon as data arrives): a short wait keeps each Kafka hop
  # at a few milliseconds, for some idle polling.
  export KAFKA_CONSUMER_FETCH_WAIT_MAX_MS=${KAFKA_CONSUMER_FETCH_WAIT_MAX_MS:-5}
}
