# shellcheck shell=bash
# Provisions a Kafka-protocol broker for scripts/run and scripts/test. Sourced.
#
#   1. $KAFKA_BROKERS, when it is set and its first broker accepts connections;
#   2. else the development broker, tansu (pinned, installed once into a cache
#      directory with `cargo install`), started on 127.0.0.1:9092 with in-memory
#      storage and stopped by stop_started_kafka (call it from an EXIT trap).
# Exports KAFKA_BROKERS.

TANSU_VERSION=0.6.0
TANSU_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/order-processing
# Our fixes to tansu, one patch per crate (see scripts/lib/tansu/README.md). The
# install directory is named after their hash, so a changed patch installs anew.
TANSU_PATCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/tansu" && pwd)
TANSU_PATCHED_CRATES="tansu-broker tansu-service tansu-storage"
# sha256 of each .crate file as crates.io serves it (the same as its index lists).
declare -A TANSU_CRATE_SHA256=(
  [tansu]=4fdd85473ec265140488cf8d55e82b844f5c051c8916fabdd4a71156ac053f6d
  [tansu-broker]=93c1e91b40c2a706dfdbe9a795c08c70918c874ad23f6e0e87564cc0a180e720
  [tansu-service]=7cbbca7aeaeee1d4133e2dda04e66f0bd8bedb3f0f1632d64c3040d8d3d85d09
  [tansu-storage]=720d2ed8e6010c70f7f06e5af5a7274ebbf6e42fdcd9e46de542b10dc4d2f35d
)
TANSU_ROOT=${TANSU_ROOT:-$TANSU_CACHE/tansu-$TANSU_VERSION-$(cat "$TANSU_PATCH_DIR"/*.patch | sha256sum | cut -c1-10)}
STARTED_KAFKA_PID=""

tcp_open() {
  local host=${1%:*} port=${1##*:}
  (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

# Unpacks one pinned crate of tansu's into $2, checking its checksum.
unpack_tansu_crate() {
  local crate=$1 into=$2 archive
  archive=$(mktemp)
  curl -sSfL --retry 3 -o "$archive" "https://static.crates.io/crates/$crate/$TANSU_VERSION/download" || return 1
  if ! echo "${TANSU_CRATE_SHA256[$crate]}  $archive" | sha256sum --check --status; then
    echo "the downloaded $crate $TANSU_VERSION does not have its pinned checksum" >&2
    rm -f "$archive"
    return 1
  fi
  mkdir -p "$into"
  tar -xzf "$archive" -C "$into" --strip-components=1
  rm -f "$archive"
}

# Builds tansu from its published sources with our patches applied to the crates
# they fix, keeping the published Cargo.lock for everything else. The target
# directory is kept, so a changed patch rebuilds in minutes, not from scratch.
install_tansu() {
  if [[ -x $TANSU_ROOT/bin/tansu ]]; then return 0; fi
  echo "building the development broker tansu $TANSU_VERSION with our patches into $TANSU_ROOT (once; 5-25 minutes)..." >&2
  local sources=$TANSU_CACHE/tansu-sources crate
  rm -rf "$sources"
  for crate in tansu $TANSU_PATCHED_CRATES; do
    unpack_tansu_crate "$crate" "$sources/$crate" || return 1
  done
  printf '\n[patch.crates-io]\n' >>"$sources/tansu/Cargo.toml"
  for crate in $TANSU_PATCHED_CRATES; do
    patch --quiet --directory "$sources/$crate" --strip 1 <"$TANSU_PATCH_DIR/$crate.patch" || return 1
    echo "$crate = { path = \"../$crate\" }" >>"$sources/tansu/Cargo.toml"
  done
  cargo build --release --features dynostore --manifest-path "$sources/tansu/Cargo.toml" \
    --target-dir "$TANSU_CACHE/tansu-target" >&2 || return 1
  install -D "$TANSU_CACHE/tansu-target/release/tansu" "$TANSU_ROOT/bin/tansu"
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
  # tansu holds every fetch for the consumer's whole fetch.wait.max.ms, data or not
  # (Apache Kafka answers as soon as data arrives): a short wait keeps each Kafka hop
  # at a few milliseconds, for some idle polling.
  export KAFKA_CONSUMER_FETCH_WAIT_MAX_MS=${KAFKA_CONSUMER_FETCH_WAIT_MAX_MS:-5}
}
