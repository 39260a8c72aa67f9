# shellcheck shell=bash
# Installs schemathesis (pinned, with every dependency pinned by
# scripts/lib/schemathesis/constraints.txt) into a virtualenv in the project's cache
# directory, once. Sourced by scripts/lib/api-fuzz.sh.
#
# Needs Python 3.11 or newer with its venv module (Debian: apt-get install
# python3-venv) and PyPI. The virtualenv is named after the version, the constraints'
# hash and the Python it was made with, so a change to any of them installs anew;
# an install that was interrupted is redone.
# Sets SCHEMATHESIS to the executable.

# shellcheck source=scripts/lib/venv.sh
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"

SCHEMATHESIS_VERSION=4.32.5
SCHEMATHESIS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/schemathesis" && pwd)
SCHEMATHESIS_CONSTRAINTS=$SCHEMATHESIS_DIR/constraints.txt
SCHEMATHESIS_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/order-processing
SCHEMATHESIS=""

# The first Python 3.11+ on the PATH.
schemathesis_python() {
  local candidate
  for candidate in python3 python3.14 python3.13 python3.12 python3.11; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import ensurepip, sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  echo "schemathesis $SCHEMATHESIS_VERSION needs Python 3.11 or newer with its venv module (apt-get install python3 python3-venv)" >&2
  return 1
}

install_schemathesis() {
  local python version venv
  python=$(schemathesis_python) || return 1
  version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  venv=$SCHEMATHESIS_CACHE/schemathesis-$SCHEMATHESIS_VERSION-py$version-$(sha256sum <"$SCHEMATHESIS_CONSTRAINTS" | cut -c1-10)
  install_venv "$venv" "$python" --constraint "$SCHEMATHESIS_CONSTRAINTS" "schemathesis==$SCHEMATHESIS_VERSION" || {
    echo "could not install schemathesis $SCHEMATHESIS_VERSION into $venv" >&2
    return 1
  }
  SCHEMATHESIS=$venv/bin/schemathesis
  if [[ $("$SCHEMATHESIS" --version 2>/dev/null) != "schemathesis, version $SCHEMATHESIS_VERSION" ]]; then
    echo "$SCHEMATHESIS is not schemathesis $SCHEMATHESIS_VERSION; remove $venv and try again" >&2
    return 1
  fi
}
