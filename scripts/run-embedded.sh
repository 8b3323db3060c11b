#!/usr/bin/env bash
# `make run`: the embedded default. Creates ./var (SQLite database + local object
# directory), loads demo data when it is empty, and serves on 127.0.0.1:8000.
set -euo pipefail
cd "$(dirname "$0")/.."
OGD=${1:-build/ogd}
mkdir -p var
"$OGD" demo --records "${OGD_DEMO_RECORDS:-200}"
cat <<MSG

  ogd is starting on http://127.0.0.1:8000  (embedded: ./var/ogd.sqlite3 + ./var/objects)

  Try:
    curl -s 'http://127.0.0.1:8000/records/count?conditions=%7B%7D'
    curl -s 'http://127.0.0.1:8000/records?limit=2&projection=metadata.timestamp&projection=channels.PM-201-FE-EM'
    curl -s 'http://127.0.0.1:8000/channels'

  Demo login: user "demo", password "demo" (every permission; checked once the auth
  work lands: until then no route asks for a token).
  Stop with Ctrl-C.

MSG
exec "$OGD" serve
