#!/usr/bin/env bash
# bench/fedid.sh: the FedID (LDAP) login figure (issue: auth and control plane).
# Starts the test directory (scripts/start-slapd.sh; it stays up, like the other test
# servers, until scripts/stop-slapd.sh), then bench/fedid.py: FedID logins through ogd
# (StartTLS + bind per login) beside local argon2id logins, 1 and 8 clients.
#   BENCH_FEDID_LOGINS=200 bench/fedid.sh [BUILD]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
bash scripts/install-deps.sh --services >/dev/null
eval "$(bash scripts/start-slapd.sh 2>/dev/null)"
/usr/bin/python3 bench/fedid.py --ogd "$PWD/$BUILD/ogd" --logins "${BENCH_FEDID_LOGINS:-200}"
