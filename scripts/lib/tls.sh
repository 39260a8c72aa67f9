# shellcheck shell=bash
# Throwaway TLS material for a development broker with TLS (issue 18). Sourced.
#
# ensure_dev_tls generates, once, with the openssl CLI, into DEV_TLS_DIR
# (${XDG_CACHE_HOME:-$HOME/.cache}/order-processing/dev-tls):
#   ca.crt, ca.key                  a CA that exists only here;
#   broker.crt, broker.key          the broker's certificate for 127.0.0.1, localhost
#                                   and DEV_TLS_EXTRA_HOSTS, signed by that CA;
#   client.crt, client.key          a client certificate signed by the CA, its key
#                                   encrypted (AES-256) with the password in
#   client.key.password             (no trailing newline);
#   expired.crt, expired.key        a broker certificate like broker.crt that expired
#                                   in 2020 (for the "expired certificate" test).
# Keys are P-256, readable by their owner only. The files are reused while all are
# there, none of the live certificates expires within a day and the broker's names
# every host asked for; otherwise all are made anew (a new CA invalidates every
# certificate signed by the old one).
# Exports DEV_TLS_DIR and DEV_TLS_* naming each file (see dev_tls_export).

DEV_TLS_DIR=${DEV_TLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/order-processing/dev-tls}
# Validity of the live certificates; more than 1, as a day before expiry they are renewed.
DEV_TLS_DAYS=${DEV_TLS_DAYS:-365}
# More names for the broker's certificate, space-separated IP addresses or host names,
# e.g. "127.0.0.7" for a private broker there (clients check the name they dial).
DEV_TLS_EXTRA_HOSTS=${DEV_TLS_EXTRA_HOSTS:-}
DEV_TLS_FILES="ca.crt ca.key broker.crt broker.key client.crt client.key client.key.password expired.crt expired.key"

dev_tls_export() {
  export DEV_TLS_DIR
  export DEV_TLS_CA=$DEV_TLS_DIR/ca.crt
  export DEV_TLS_BROKER_CERT=$DEV_TLS_DIR/broker.crt
  export DEV_TLS_BROKER_KEY=$DEV_TLS_DIR/broker.key
  export DEV_TLS_CLIENT_CERT=$DEV_TLS_DIR/client.crt
  export DEV_TLS_CLIENT_KEY=$DEV_TLS_DIR/client.key
  export DEV_TLS_CLIENT_KEY_PASSWORD_FILE=$DEV_TLS_DIR/client.key.password
  export DEV_TLS_EXPIRED_CERT=$DEV_TLS_DIR/expired.crt
  export DEV_TLS_EXPIRED_KEY=$DEV_TLS_DIR/expired.key
}

# 127.0.0.1, localhost and DEV_TLS_EXTRA_HOSTS, one a line.
dev_tls_hosts() {
  local extra
  read -r -a extra <<<"$DEV_TLS_EXTRA_HOSTS"
  printf '%s\n' 127.0.0.1 localhost "${extra[@]}"
}

# The subjectAltName of the broker's certificates.
dev_tls_subject_alt_name() {
  local host names=()
  while read -r host; do
    if [[ $host =~ ^[0-9.]+$ || $host == *:* ]]; then names+=("IP:$host"); else names+=("DNS:$host"); fi
  done < <(dev_tls_hosts)
  (IFS=,; echo "${names[*]}")
}

# Whether the files in $1 are complete, the live certificates valid for another day,
# signed by the CA there, and the broker's for every host.
dev_tls_usable() {
  local dir=$1 file cert host check
  for file in $DEV_TLS_FILES; do
    [[ -s $dir/$file ]] || return 1
  done
  for cert in ca broker client; do
    openssl x509 -in "$dir/$cert.crt" -noout -checkend 86400 >/dev/null 2>&1 || return 1
  done
  while read -r host; do
    check=-checkhost
    [[ $host =~ ^[0-9.]+$ || $host == *:* ]] && check=-checkip
    openssl x509 -in "$dir/broker.crt" -noout "$check" "$host" 2>/dev/null | grep -q "does match" || return 1
  done < <(dev_tls_hosts)
  openssl verify -CAfile "$dir/ca.crt" "$dir/broker.crt" "$dir/client.crt" >/dev/null 2>&1
}

# A new P-256 key at $1, optionally encrypted with the password in file $2.
dev_tls_key() {
  local encryption=()
  [[ -n ${2:-} ]] && encryption=(-aes256 -pass "file:$2")
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "${encryption[@]}" -out "$1" 2>/dev/null
}

# A certificate request for key $1 (password file $3, if encrypted) to $2.
dev_tls_request() {
  local key=$1 out=$2 cn=$3 password=${4:-}
  local pass=()
  [[ -n $password ]] && pass=(-passin "file:$password")
  openssl req -new -key "$key" "${pass[@]}" -subj "/O=order-processing development/CN=$cn" -out "$out" 2>/dev/null
}

# Everything, into the empty directory $1.
dev_tls_generate() {
  local dir=$1 server_ext client_ext
  server_ext="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$(dev_tls_subject_alt_name)"
  client_ext="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
  (
    umask 077
    cd "$dir" || exit 1
    dev_tls_key ca.key || exit 1
    openssl req -x509 -new -key ca.key -days "$DEV_TLS_DAYS" -sha256 \
      -subj "/O=order-processing development/CN=order-processing throwaway CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -out ca.crt 2>/dev/null || exit 1

    dev_tls_key broker.key || exit 1
    dev_tls_request broker.key broker.csr localhost || exit 1
    openssl x509 -req -in broker.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days "$DEV_TLS_DAYS" -sha256 \
      -extfile <(echo "$server_ext") -out broker.crt 2>/dev/null || exit 1

    openssl rand -hex 16 | tr -d '\n' >client.key.password || exit 1
    dev_tls_key client.key client.key.password || exit 1
    dev_tls_request client.key client.csr order-processing-client client.key.password || exit 1
    openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days "$DEV_TLS_DAYS" -sha256 \
      -extfile <(echo "$client_ext") -out client.crt 2>/dev/null || exit 1

    # `openssl x509` cannot date a certificate in the past (3.0 refuses -days -1),
    # `openssl ca` can, given a minimal configuration and database.
    dev_tls_key expired.key || exit 1
    dev_tls_request expired.key expired.csr localhost || exit 1
    mkdir ca-db && : >ca-db/index.txt || exit 1
    printf '%s\n' '[ca]' 'default_ca = dev' '[dev]' 'database = ca-db/index.txt' 'new_certs_dir = ca-db' \
      'rand_serial = yes' 'default_md = sha256' 'policy = any' 'unique_subject = no' \
      '[any]' 'organizationName = optional' 'commonName = supplied' >ca-db/ca.cnf
    openssl ca -batch -config ca-db/ca.cnf -cert ca.crt -keyfile ca.key -notext \
      -startdate 20200101000000Z -enddate 20200102000000Z \
      -extfile <(echo "$server_ext") -in expired.csr -out expired.crt >/dev/null 2>&1 || exit 1

    rm -rf ca-db ./*.csr ca.srl
    chmod 644 ./*.crt
  )
}

# Makes the files unless usable ones are there, then exports their names.
ensure_dev_tls() {
  dev_tls_export
  if dev_tls_usable "$DEV_TLS_DIR"; then return 0; fi
  command -v openssl >/dev/null || { echo "openssl is needed for the development TLS files (apt-get install openssl)" >&2; return 1; }
  local parent new
  parent=$(dirname "$DEV_TLS_DIR")
  mkdir -p "$parent" || return 1
  # Made beside the target and moved into place whole, so a process that fails or
  # runs at the same time never leaves a CA that does not match its certificates.
  new=$(mktemp -d "$parent/dev-tls.new.XXXXXX") || return 1
  if ! dev_tls_generate "$new" || ! dev_tls_usable "$new"; then
    echo "could not generate the development TLS files with openssl into $DEV_TLS_DIR" >&2
    rm -rf "$new"
    return 1
  fi
  rm -rf "$DEV_TLS_DIR"
  mv -T "$new" "$DEV_TLS_DIR" || return 1
  echo "generated a throwaway CA, broker and client certificates into $DEV_TLS_DIR" >&2
}
