#!/usr/bin/env bash
# Installs SyTest's Perl dependencies from Debian packages (no CPAN here).
# Crypt::Ed25519 and Net::Async::HTTP::Server are not packaged by Debian:
# sytest/lib/ carries small compatible modules of our own for those two.
# Also installs openssl (TLS certificates) and postgresql-client (psql, for
# creating per-server databases when running against PostgreSQL).
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  echo "install-deps.sh: run as root (apt-get)" >&2
  exit 1
fi
PKGS=(
  perl
  libclass-method-modifiers-perl
  libdata-dump-perl
  libdbi-perl
  libdbd-pg-perl
  libdigest-hmac-perl
  libemail-address-xs-perl
  libemail-mime-perl
  libfile-slurper-perl
  libfuture-perl
  libio-async-perl
  libio-async-ssl-perl
  libio-socket-ip-perl
  libio-socket-ssl-perl
  libjson-perl
  libjson-pp-perl
  libjson-xs-perl
  liblist-utilsby-perl
  libmodule-pluggable-perl
  libnet-async-http-perl
  libnet-ssleay-perl
  libstruct-dumb-perl
  liburi-perl
  libhttp-message-perl
  libyaml-libyaml-perl
  libcryptx-perl
  openssl
  python3
  postgresql-client
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps.sh: all packages present"
  exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
