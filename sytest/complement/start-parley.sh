#!/usr/bin/env bash
# Starts one Parley homeserver for Complement, in the foreground.
#
#   start-parley.sh SERVER_NAME IP DATA_DIR
#
# SERVER_NAME  the server name (hs1, hs2, ...), resolvable to IP by the caller
#              (for example in a private /etc/hosts; see parley_deployment.go)
# IP           a loopback address (127.0.0.x) to listen on: client-server API
#              over HTTP on IP:8008, federation (and client) over HTTPS on IP:8448
# DATA_DIR     config, TLS certificate, signing key, database and media go here;
#              an existing DATA_DIR is reused (a restart keeps the server's data)
#
# Environment:
#   COMPLEMENT_CA_CERT, COMPLEMENT_CA_KEY  PEM CA certificate and key: the TLS
#              certificate is signed with them, and the CA is trusted for
#              outbound federation (federation.trusted_ca_file)
#   PARLEY_BINARY        the parley executable (default: parley on PATH)
#   PARLEY_DATABASE_URL  use this database instead of DATA_DIR/parley.db
#   PARLEY_LOG_LEVEL     debug (default), info, warn or error
set -euo pipefail

if [ $# -ne 3 ]; then
  echo "usage: start-parley.sh SERVER_NAME IP DATA_DIR" >&2
  exit 2
fi
name="$1" ip="$2" dir="$3"
case "$ip" in
  127.*) ;;
  *) echo "start-parley.sh: IP must be a loopback address (127.0.0.x), not $ip" >&2; exit 2 ;;
esac
: "${COMPLEMENT_CA_CERT:?COMPLEMENT_CA_CERT must name the CA certificate}"
: "${COMPLEMENT_CA_KEY:?COMPLEMENT_CA_KEY must name the CA key}"
bin="${PARLEY_BINARY:-parley}"

mkdir -p "$dir/media"
dir="$(cd "$dir" && pwd)"

# TLS certificate for SERVER_NAME (and IP), signed by Complement's CA.
if [ ! -s "$dir/tls.crt" ] || [ ! -s "$dir/tls.key" ]; then
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$dir/tls.key" -subj "/CN=$name" -out "$dir/tls.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s,IP:%s\nextendedKeyUsage=serverAuth\n' "$name" "$ip" >"$dir/tls.ext"
  openssl x509 -req -in "$dir/tls.csr" -CA "$COMPLEMENT_CA_CERT" -CAkey "$COMPLEMENT_CA_KEY" \
    -set_serial "0x$(openssl rand -hex 12)" -days 2 -extfile "$dir/tls.ext" \
    -out "$dir/tls.crt" 2>/dev/null
  rm -f "$dir/tls.csr" "$dir/tls.ext"
fi

db_url="${PARLEY_DATABASE_URL:-sqlite://$dir/parley.db}"
ca="$(cd "$(dirname "$COMPLEMENT_CA_CERT")" && pwd)/$(basename "$COMPLEMENT_CA_CERT")"

cat >"$dir/parley.yaml" <<EOF
# Written by sytest/complement/start-parley.sh for Complement.
server_name: "$name"
signing_key_path: "$dir/signing.key"
database:
  url: "$db_url"
  max_open_conns: 8
listen:
  http: "$ip:8008"
  https: "$ip:8448"
  tls_cert: "$dir/tls.crt"
  tls_key: "$dir/tls.key"
registration:
  enabled: true
  # Complement's client signs shared-secret registrations with "complement".
  shared_secret: "complement"
  allow_guests: true
rate_limits:
  enabled: false
# Synapse, which Complement targets, does not check device-key signatures.
e2ee:
  verify_device_key_signatures: false
federation:
  enabled: true
  trusted_ca_file: "$ca"
  # hs1, hs2 and Complement's own servers all listen on 127.0.0.x.
  allow_private_ips: true
media:
  path: "$dir/media"
  # Complement serves the pages to preview from its own process on 127.0.0.1.
  url_preview:
    enabled: true
    ip_range_allowlist: ["127.0.0.0/8"]
# As Complement's Synapse image: notices come from @_server (admin_test.go).
server_notices:
  system_localpart: "_server"
  room_name: "Server Alert"
log:
  level: "${PARLEY_LOG_LEVEL:-debug}"
EOF

# The config file is the whole truth: environment overrides would beat it.
unset PARLEY_DATABASE_URL PARLEY_SERVER_NAME PARLEY_REGISTRATION_SHARED_SECRET
exec "$bin" serve --config "$dir/parley.yaml"
