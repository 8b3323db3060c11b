#!/usr/bin/env bash
# Starts a disposable PostgreSQL 15 server for ogd's tests of the PostgreSQL store back
# end, and prints the environment that points the tests at it:
#   eval "$(scripts/start-pg.sh)"      # then ctest / pytest see OGD_TEST_PG_URL
# The cluster lives under PGBASE (default /tmp/ogd-pg), owned by the postgres system user,
# listens on 127.0.0.1:PGPORT (default 54329) and on a unix socket in PGBASE/sock, trusts
# local connections and runs without fsync (test data only). Running it again while the
# server is up just prints the environment. scripts/stop-pg.sh removes it all.
set -euo pipefail

PGBASE=${PGBASE:-/tmp/ogd-pg}
PGPORT=${PGPORT:-54329}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
DBNAME=${OGD_TEST_PG_DB:-ogd_test}
datadir=$PGBASE/data
sockdir=$PGBASE/sock

show_env() {
  echo "export OGD_TEST_PG_URL=postgresql://postgres@127.0.0.1:$PGPORT/$DBNAME"
  echo "export PGHOST=127.0.0.1 PGPORT=$PGPORT PGUSER=postgres"
}

run_as_postgres() {
  if [ "$(id -un)" = postgres ]; then "$@"; else runuser -u postgres -- "$@"; fi
}

if [ ! -x "$PGBIN/initdb" ]; then
  echo "start-pg: no $PGBIN/initdb; install the postgresql-15 package" >&2
  exit 1
fi
if ! id postgres >/dev/null 2>&1; then
  echo "start-pg: the postgres system user is missing (package postgresql-common)" >&2
  exit 1
fi

if [ -f "$datadir/postmaster.pid" ] && "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT"; then
  echo "start-pg: server already running in $datadir" >&2
  show_env
  exit 0
fi

# Leftovers of a crashed run: clear them out first.
PGBASE=$PGBASE PGBIN=$PGBIN "$(dirname "$0")/stop-pg.sh" >/dev/null 2>&1 || true

mkdir -p "$datadir" "$sockdir"
chown -R postgres:postgres "$PGBASE"
chmod 700 "$datadir"
run_as_postgres "$PGBIN/initdb" -D "$datadir" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
  --no-sync >"$PGBASE/initdb.log" 2>&1
cat >>"$datadir/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$sockdir'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
run_as_postgres "$PGBIN/pg_ctl" -D "$datadir" -l "$PGBASE/server.log" -w -t 60 start >/dev/null
run_as_postgres "$PGBIN/createdb" -h "$sockdir" -p "$PGPORT" -U postgres "$DBNAME"
show_env
