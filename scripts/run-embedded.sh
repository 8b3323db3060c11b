#!/usr/bin/env bash
# `make run`: the embedded default. Creates ./var (SQLite database + local object
# directory), loads demo data when it is empty, and serves on 127.0.0.1:8000.
set -euo pipefail
cd "$(dirname "$0")/.."
OGD=${1:-build/ogd}
mkdir -p var
"$OGD" demo --records "${OGD_DEMO_RECORDS:-200}"
cat <<'MSG'

  ogd is starting on http://127.0.0.1:8000  (embedded: ./var/ogd.sqlite3 + ./var/objects)

  Log in as the demo user (password "demo", every permission); the JWT signing key pair
  is generated on first start as ./var/jwt_rsa{,.pub}:
    TOKEN=$(curl -s -H 'Content-Type: application/json' \
            -d '{"username":"demo","password":"demo"}' http://127.0.0.1:8000/login | tr -d '"')
  Then try:
    curl -s -H "Authorization: Bearer $TOKEN" 'http://127.0.0.1:8000/records/count?conditions=%7B%7D'
    curl -s -H "Authorization: Bearer $TOKEN" 'http://127.0.0.1:8000/records?limit=2&projection=metadata.timestamp&projection=channels.PM-201-FE-EM'
    curl -s -H "Authorization: Bearer $TOKEN" 'http://127.0.0.1:8000/channels'
  More users: echo PASSWORD | build/ogd user add NAME [--route '/users GET']...
  Stop with Ctrl-C.

MSG
exec "$OGD" serve
