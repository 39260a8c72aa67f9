# shellcheck shell=bash
# Provisions a Kafka-protocol broker for scripts/run and scripts/test. Sourced.
#
#   1. $KAFKA_BROKERS, when it is set and its first broker accepts connections;
#   2. else the development broker, crabka-broker (pinned, patched, built once into a
#      cache directory), started on 127.0.0.1:9092 with its log kept on disk in the
#      cache directory (CRABKA_DATA; scripts/test gives each run a throwaway one) and
#      stopped by stop_started_kafka (call it from an EXIT trap);
#      docs/development-broker.md says why it was chosen and what it does not do yet.
#      KAFKA_DEV_BROKER=tansu starts tansu, the previous choice, in memory instead.
#      KAFKA_DEV_ADDRESS moves either off 127.0.0.1:9092 (crabka's controller takes
#      port 9093 of the same host).
#      KAFKA_DEV_SECURITY=sasl_ssl starts crabka-broker with one TLS listener that
#      requires SASL/SCRAM-SHA-512 (throwaway CA and certificates from
#      scripts/lib/tls.sh, a user and password generated with its data directory),
#      and exports the services' settings for it; tansu cannot terminate TLS nor
#      check a SCRAM password (docs/kafka-security-notes.md).
# Exports KAFKA_BROKERS (and, for a secure development broker, KAFKA_SECURITY_PROTOCOL,
# KAFKA_SASL_* and KAFKA_SSL_CA_LOCATION).

# shellcheck source=scripts/lib/tls.sh
source "$(dirname "${BASH_SOURCE[0]}")/tls.sh"

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
KAFKA_DEV_ADDRESS=${KAFKA_DEV_ADDRESS:-127.0.0.1:9092}
# crabka-broker 0.3.0, the only 0.3.x that builds with rustc 1.95. It is yanked, so it
# is fetched as a .crate (checksum as its index lists it) and built with its own
# Cargo.lock rather than with `cargo install`, with our patch applied (see
# scripts/lib/crabka/README.md); as for tansu, the install directory is named after
# the patch's hash, so a changed patch installs anew.
CRABKA_VERSION=0.3.0
CRABKA_CRATE_SHA256=554e4628d62fa805fc5f410c901c749b5ac253fabdaf474b94cee974c5342602
CRABKA_PATCH=$(cd "$(dirname "${BASH_SOURCE[0]}")/crabka" && pwd)/crabka-broker.patch
CRABKA_ROOT=${CRABKA_ROOT:-$TANSU_CACHE/crabka-broker-$CRABKA_VERSION-$(sha256sum <"$CRABKA_PATCH" | cut -c1-10)}
KAFKA_DEV_SECURITY=${KAFKA_DEV_SECURITY:-plaintext}
# A secure broker keeps its own log directory: its users are seeded at its first start.
if [[ $KAFKA_DEV_SECURITY == plaintext ]]; then
  CRABKA_DATA=${CRABKA_DATA:-$TANSU_CACHE/crabka-data}
else
  CRABKA_DATA=${CRABKA_DATA:-$TANSU_CACHE/crabka-data-$KAFKA_DEV_SECURITY}
fi
STARTED_KAFKA_PID=""
STARTED_KAFKA_SIGNAL=TERM

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
  local address=$KAFKA_DEV_ADDRESS
  install_tansu
  "$TANSU_ROOT/bin/tansu" broker \
    --listener-url "tcp://$address" --advertised-listener-url "tcp://$address" \
    --storage-engine memory://tansu/ >"${TANSU_LOG:-/tmp/order-processing-tansu.log}" 2>&1 &
  STARTED_KAFKA_PID=$!
  await_started_kafka tansu "$address" "${TANSU_LOG:-/tmp/order-processing-tansu.log}"
}

install_crabka() {
  if [[ -x $CRABKA_ROOT/bin/crabka-broker ]]; then return 0; fi
  echo "building the development broker crabka-broker $CRABKA_VERSION with our patch into $CRABKA_ROOT (once; 5-15 minutes)..." >&2
  local sources=$TANSU_CACHE/crabka-sources archive
  archive=$(mktemp)
  curl -sSfL --retry 3 -o "$archive" "https://static.crates.io/crates/crabka-broker/$CRABKA_VERSION/download" || { rm -f "$archive"; return 1; }
  if ! echo "$CRABKA_CRATE_SHA256  $archive" | sha256sum --check --status; then
    echo "the downloaded crabka-broker $CRABKA_VERSION does not have its pinned checksum" >&2
    rm -f "$archive"
    return 1
  fi
  rm -rf "$sources"
  mkdir -p "$sources"
  tar -xzf "$archive" -C "$sources" --strip-components=1
  rm -f "$archive"
  patch --quiet --directory "$sources" --strip 1 <"$CRABKA_PATCH" || return 1
  # The target directory is kept, so a changed patch rebuilds in minutes.
  cargo build --release --locked --manifest-path "$sources/Cargo.toml" \
    --target-dir "$TANSU_CACHE/crabka-target" >&2 || return 1
  install -D "$TANSU_CACHE/crabka-target/release/crabka-broker" "$CRABKA_ROOT/bin/crabka-broker"
}

# crabka-broker refuses a log directory without meta.properties.json, which
# `crabka format` (another crate's CLI) writes. The broker reads only its
# directory_id, so it is written here once, by hand, with a cluster id of ours.
start_crabka() {
  local address=$KAFKA_DEV_ADDRESS log=${CRABKA_LOG:-/tmp/order-processing-crabka.log}
  local meta=$CRABKA_DATA/meta.properties.json cluster_id secure=() users=() listen=(--listen-addr "$address")
  install_crabka || return 1
  mkdir -p "$CRABKA_DATA"
  if [[ $KAFKA_DEV_SECURITY == sasl_ssl ]]; then
    # The user the services log in as, made with the directory and seeded into it at
    # the broker's first start (--add-scram, ignored once it holds metadata).
    if [[ ! -s $CRABKA_DATA/sasl-user ]]; then
      (umask 077 && printf 'order-processing:%s' "$(openssl rand -hex 16)" >"$CRABKA_DATA/sasl-user") || return 1
    fi
    users=(CRABKA_ADD_SCRAM="$(cat "$CRABKA_DATA/sasl-user")")
  fi
  if [[ ! -s $meta ]]; then
    printf '{"cluster_id": "%s", "directory_id": "%s", "version": 1}\n' \
      "$(cat /proc/sys/kernel/random/uuid)" "$(cat /proc/sys/kernel/random/uuid)" >"$meta"
  fi
  cluster_id=$(sed -n 's/.*"cluster_id": "\([0-9a-f-]*\)".*/\1/p' "$meta")
  if [[ $KAFKA_DEV_SECURITY == sasl_ssl ]]; then
    crabka_sasl_ssl_config "$address" >"$CRABKA_DATA/listeners.toml" || return 1
    # The file names the listener; --listen-addr cannot be given beside it.
    secure=(--config-file "$CRABKA_DATA/listeners.toml")
    listen=()
  fi
  # Its KRaft controller listens on port 9093 of the same host; its metrics endpoint
  # (0.0.0.0:9404) is off; at INFO it logs every request. A partition keeps at most CRABKA_RETENTION_BYTES (default 64 MiB,
  # as tansu's TANSU_RETENTION_BYTES) unless its topic sets retention.bytes; whole
  # 16 MiB segments are deleted, the newest always kept (our patch runs the pass).
  # A consumer group forming from empty waits 250 ms for more members before its
  # first assignment (Kafka's group.initial.rebalance.delay.ms, 3 s by default, which
  # a service that starts and is stopped within seconds would spend idle).
  env "${users[@]}" RUST_LOG="${CRABKA_RUST_LOG:-warn}" "$CRABKA_ROOT/bin/crabka-broker" "${listen[@]}" \
    --controller-listen-addr "${address%:*}:9093" \
    --log-dir "$CRABKA_DATA" --cluster-id "$cluster_id" --metrics-listen-addr none \
    --log-retention-bytes "${CRABKA_RETENTION_BYTES:-67108864}" \
    --log-segment-bytes "${CRABKA_SEGMENT_BYTES:-16777216}" \
    --group-initial-rebalance-delay-ms "${CRABKA_GROUP_INITIAL_REBALANCE_DELAY_MS:-250}" "${secure[@]}" >>"$log" 2>&1 &
  STARTED_KAFKA_PID=$!
  # It shuts down cleanly on SIGINT only; SIGTERM kills it outright.
  STARTED_KAFKA_SIGNAL=INT
  await_started_kafka crabka-broker "$address" "$log"
}

# crabka-broker's configuration file for one listener on $1 that takes TLS (the
# development CA's broker certificate) and then SASL/SCRAM-SHA-512. Only one: with a
# plaintext listener beside it, Metadata advertises the inter-broker listener's
# address to every client.
crabka_sasl_ssl_config() {
  local address=$1
  DEV_TLS_EXTRA_HOSTS="${DEV_TLS_EXTRA_HOSTS:-} ${address%:*}" ensure_dev_tls || return 1
  cat <<TOML
broker_id = 1
log_dir = "$CRABKA_DATA"
inter_broker_listener_name = "secure"

[[listeners]]
name = "secure"
bind_addr = "$address"
advertised = "$address"
protocol = "SaslSsl"
tls_config = { cert_path = "$DEV_TLS_BROKER_CERT", key_path = "$DEV_TLS_BROKER_KEY", client_auth = "Disabled" }
sasl_config = { enabled_mechanisms = ["SCRAM-SHA-512"] }
TOML
}

# The services' settings for the secure development broker: TLS with the
# development CA, SASL/SCRAM-SHA-512 as the user its data directory was made with.
export_dev_security_settings() {
  local user
  user=$(cat "$CRABKA_DATA/sasl-user" 2>/dev/null) || {
    echo "no SASL user in $CRABKA_DATA (sasl-user): the broker on $KAFKA_DEV_ADDRESS was not started by these scripts" >&2
    return 1
  }
  dev_tls_export
  export KAFKA_SECURITY_PROTOCOL=sasl_ssl KAFKA_SASL_MECHANISM=SCRAM-SHA-512
  export KAFKA_SASL_USERNAME=${user%%:*} KAFKA_SASL_PASSWORD=${user#*:}
  export KAFKA_SSL_CA_LOCATION=$DEV_TLS_CA
}

# Waits up to 10 s for the broker just started ($STARTED_KAFKA_PID) to listen.
await_started_kafka() {
  local name=$1 address=$2 log=$3
  for _ in $(seq 1 100); do
    if ! kill -0 "$STARTED_KAFKA_PID" 2>/dev/null; then
      echo "the development broker exited at start-up; see $log" >&2
      STARTED_KAFKA_PID=""
      return 1
    fi
    if tcp_open "$address"; then
      echo "started the development broker ($name) on $address" >&2
      return 0
    fi
    sleep 0.1
  done
  echo "the development broker did not open $address within 10 s; see $log" >&2
  stop_started_kafka
  return 1
}

stop_started_kafka() {
  [[ -n $STARTED_KAFKA_PID ]] || return 0
  kill -"$STARTED_KAFKA_SIGNAL" "$STARTED_KAFKA_PID" 2>/dev/null || true
  # Wait for it to exit so that the next start finds the port free.
  wait "$STARTED_KAFKA_PID" 2>/dev/null || true
  STARTED_KAFKA_PID=""
}

provision_kafka() {
  if [[ -n ${KAFKA_BROKERS:-} ]] && tcp_open "${KAFKA_BROKERS%%,*}"; then
    echo "using the Kafka brokers of KAFKA_BROKERS ($KAFKA_BROKERS)" >&2
    return 0
  fi
  if [[ $KAFKA_DEV_SECURITY != plaintext ]]; then
    if [[ $KAFKA_DEV_SECURITY != sasl_ssl || ${KAFKA_DEV_BROKER:-crabka} != crabka ]]; then
      echo "KAFKA_DEV_SECURITY is plaintext (the default) or sasl_ssl, which only crabka serves; not $KAFKA_DEV_SECURITY with ${KAFKA_DEV_BROKER:-crabka}" >&2
      return 1
    fi
    tcp_open "$KAFKA_DEV_ADDRESS" || start_crabka || return 1
    export_dev_security_settings || return 1
  elif tcp_open "$KAFKA_DEV_ADDRESS"; then
    echo "using the broker already listening on $KAFKA_DEV_ADDRESS" >&2
  elif [[ ${KAFKA_DEV_BROKER:-crabka} == crabka ]]; then
    start_crabka || return 1
  elif [[ $KAFKA_DEV_BROKER == tansu ]]; then
    start_tansu || return 1
    # tansu holds every fetch for the consumer's whole fetch.wait.max.ms, data or not
    # (Apache Kafka and crabka answer as soon as data arrives): a short wait keeps
    # each Kafka hop at a few milliseconds, for some idle polling.
    export KAFKA_CONSUMER_FETCH_WAIT_MAX_MS=${KAFKA_CONSUMER_FETCH_WAIT_MAX_MS:-5}
  else
    echo "KAFKA_DEV_BROKER is crabka (the default) or tansu, not $KAFKA_DEV_BROKER" >&2
    return 1
  fi
  export KAFKA_BROKERS=$KAFKA_DEV_ADDRESS
}
