# shellcheck shell=bash
# Installs confluent-kafka (pinned; a wheel with librdkafka inside, no other
# dependency) into a virtualenv in the project's cache directory, once, for the tests
# that create ACLs on their broker: rust-rdkafka has no CreateAcls, confluent-kafka's
# AdminClient has (system-tests/src/secure_broker.rs). Sourced by scripts/test.
#
# Needs Python 3 with its venv module (Debian: apt-get install python3-venv) and PyPI.
# The virtualenv is named after the version and the Python it was made with; an
# install that was interrupted is redone. Sets KAFKA_ADMIN_PYTHON to its python.

# shellcheck source=scripts/lib/venv.sh
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"

KAFKA_ADMIN_CONFLUENT_KAFKA_VERSION=2.16.2
KAFKA_ADMIN_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/order-processing
KAFKA_ADMIN_PYTHON=""

install_kafka_admin_python() {
  local python version venv
  python=$(command -v python3) || {
    echo "confluent-kafka needs python3 with its venv module (apt-get install python3 python3-venv)" >&2
    return 1
  }
  version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  venv=$KAFKA_ADMIN_CACHE/confluent-kafka-$KAFKA_ADMIN_CONFLUENT_KAFKA_VERSION-py$version
  install_venv "$venv" "$python" "confluent-kafka==$KAFKA_ADMIN_CONFLUENT_KAFKA_VERSION" || {
    echo "could not install confluent-kafka $KAFKA_ADMIN_CONFLUENT_KAFKA_VERSION into $venv" >&2
    return 1
  }
  KAFKA_ADMIN_PYTHON=$venv/bin/python
  if ! "$KAFKA_ADMIN_PYTHON" -c 'import confluent_kafka.admin' 2>/dev/null; then
    echo "$KAFKA_ADMIN_PYTHON cannot import confluent_kafka; remove $venv and try again" >&2
    return 1
  fi
}
