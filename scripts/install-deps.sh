#!/usr/bin/env bash
# Installs the Debian 12 packages ogd builds, runs and tests with; only what is missing.
# Idempotent: a second run with everything present does nothing and prints nothing.
#   scripts/install-deps.sh              what `make run` needs (build + embedded back ends)
#   scripts/install-deps.sh --services   also the servers `make test` starts: PostgreSQL 15
#                                        and Ceph (mon, osd, RADOS Gateway), OpenLDAP slapd
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config clang-format
  libuv1-dev node-llhttp libjansson-dev libyaml-dev libsqlite3-dev sqlite3
  libspng-dev zlib1g-dev libdeflate-dev libssl-dev libcurl4-openssl-dev libpq-dev
  libhdf5-dev libsodium-dev libldap-dev libcairo2-dev fonts-dejavu-core
  libxml2-dev tzdata
  libcmocka-dev python3-pytest python3-requests python3-numpy python3-h5py python3-pil python3-jwt python3-cryptography
  wrk curl clang-14 libclang-rt-14-dev unzip p7zip-full
)
if [ "${1:-}" = "--services" ]; then
  PACKAGES+=(postgresql-15 ceph-mon ceph-osd radosgw ceph-common python3-rados bc slapd ldap-utils openssl)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists once if they are absent or older than a day.
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -1)" ]; then
  $SUDO apt-get update -qq
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
