# shellcheck shell=bash
# Provisions PostgreSQL for scripts/run and scripts/test. Sourced, not run.
#
# Order of preference:
#   1. $DATABASE_URL, when it is set and answers;
#   2. the server on 127.0.0.1:5432 (user postgres, trust auth);
#   3. a throwaway cluster made from the installed PostgreSQL binaries, stopped by
#      stop_started_postgres (call it from an EXIT trap).
# Sets PG_SERVER_URL to a URL of the server's `postgres` database.

STARTED_PG_DIR=""
STARTED_PG_BIN=""

pg_answers() {
  psql "$1" -Atqc 'SELECT 1' >/dev/null 2>&1
}

# The same server, database "$2", keeping any query string (sslmode, ...).
pg_url_with_database() {
  local url=$1 db=$2 base query=""
  base=${url%%\?*}
  [[ $url == *\?* ]] && query="?${url#*\?}"
  local authority=${base#*://}
  if [[ $authority == */* ]]; then base="${base%/*}"; fi
  echo "${base}/${db}${query}"
}

start_throwaway_postgres() {
  local initdb port=54329
  initdb=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)
  if [[ -z $initdb ]]; then
    echo "no PostgreSQL reachable and no PostgreSQL binaries installed (apt-get install postgresql)" >&2
    return 1
  fi
  STARTED_PG_BIN=$(dirname "$initdb")
  STARTED_PG_DIR=$(mktemp -d /tmp/order-processing-pg.XXXXXX)
  local as=()
  if [[ $(id -u) == 0 ]]; then
    # initdb refuses to run as root.
    chown postgres "$STARTED_PG_DIR"
    as=(runuser -u postgres --)
  fi
  "${as[@]}" "$STARTED_PG_BIN/initdb" -D "$STARTED_PG_DIR/data" -U postgres --auth=trust >/dev/null
  "${as[@]}" "$STARTED_PG_BIN/pg_ctl" -D "$STARTED_PG_DIR/data" -l "$STARTED_PG_DIR/log" -w \
    -o "-p $port -k $STARTED_PG_DIR -c listen_addresses=127.0.0.1 -c fsync=on" start >/dev/null
  PG_SERVER_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
  echo "started a throwaway PostgreSQL on 127.0.0.1:$port ($STARTED_PG_DIR)" >&2
}

stop_started_postgres() {
  [[ -n $STARTED_PG_DIR ]] || return 0
  local as=()
  [[ $(id -u) == 0 ]] && as=(runuser -u postgres --)
  "${as[@]}" "$STARTED_PG_BIN/pg_ctl" -D "$STARTED_PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$STARTED_PG_DIR"
  STARTED_PG_DIR=""
}

provision_postgres() {
  if [[ -n ${DATABASE_URL:-} ]] && pg_answers "$DATABASE_URL"; then
    PG_SERVER_URL=$(pg_url_with_database "$DATABASE_URL" postgres)
    echo "using PostgreSQL from DATABASE_URL" >&2
  elif pg_answers "postgres://postgres@127.0.0.1:5432/postgres"; then
    # Loopback: no TLS (the server may offer it; encrypting to ourselves costs CPU).
    PG_SERVER_URL="postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
    echo "using PostgreSQL on 127.0.0.1:5432" >&2
  else
    start_throwaway_postgres
  fi
}

# Creates database "$1" on the provisioned server unless it exists.
ensure_database() {
  local db=$1
  if [[ -z $(psql "$PG_SERVER_URL" -Atqc "SELECT 1 FROM pg_database WHERE datname = '$db'") ]]; then
    psql "$PG_SERVER_URL" -qc "CREATE DATABASE \"$db\"" >/dev/null
  fi
}
