# shellcheck shell=bash
# Python tools the scripts need, each in a virtualenv of the project's cache
# directory. Sourced by scripts/lib/schemathesis.sh and scripts/lib/kafka-admin.sh.

# install_venv VENV PYTHON PIP-ARGUMENTS...: makes the virtualenv VENV with PYTHON
# and pip-installs into it, once. One installer at a time (two runs may start
# together); the marker is written last, so a virtualenv without it is an interrupted
# install, made again.
install_venv() {
  local venv=$1 python=$2
  shift 2
  mkdir -p "$(dirname "$venv")"
  (
    flock 9
    if [[ -e $venv/.installed ]]; then exit 0; fi
    echo "installing $* into $venv (once)..." >&2
    rm -rf "$venv"
    "$python" -m venv "$venv" &&
      "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "$@" >&2 &&
      touch "$venv/.installed"
  ) 9>"$venv.lock"
}
