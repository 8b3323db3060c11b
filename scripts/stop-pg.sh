#!/usr/bin/env bash
# Stops the test server of scripts/start-pg.sh and deletes its directory (PGBASE, default
# /tmp/ogd-pg). The server is stopped with pg_ctl's immediate mode; if its postmaster is
# still alive afterwards it gets SIGKILL. KEEP_DATA=1 stops it cleanly and keeps the files.
set -u

PGBASE=${PGBASE:-/tmp/ogd-pg}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
datadir=$PGBASE/data

if [ ! -d "$PGBASE" ]; then
  echo "stop-pg: nothing to stop in $PGBASE"
  exit 0
fi
mode=immediate
[ "${KEEP_DATA:-0}" = 1 ] && mode=fast
if [ -f "$datadir/postmaster.pid" ]; then
  pid=$(head -n 1 "$datadir/postmaster.pid")
  if [ "$(id -un)" = postgres ]; then
    "$PGBIN/pg_ctl" -D "$datadir" -m "$mode" -w -t 30 stop >/dev/null 2>&1 || true
  else
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$datadir" -m "$mode" -w -t 30 stop >/dev/null 2>&1 || true
  fi
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
     tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q postgres; then
    kill -KILL "$pid"
  fi
fi
[ "${KEEP_DATA:-0}" = 1 ] || rm -rf "$PGBASE"
echo "stop-pg: stopped"
