#!/usr/bin/env bash
# Stops the test server of scripts/start-slapd.sh and deletes its directory (LDAPBASE,
# default /tmp/ogd-slapd). The slapd named by its pid file gets SIGTERM, then SIGKILL if
# it is still alive after 5 s.
set -u

LDAPBASE=${LDAPBASE:-/tmp/ogd-slapd}
if [ ! -d "$LDAPBASE" ]; then
  echo "stop-slapd: nothing to stop in $LDAPBASE"
  exit 0
fi
if [ -f "$LDAPBASE/slapd.pid" ]; then
  pid=$(cat "$LDAPBASE/slapd.pid")
  if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q slapd; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
fi
rm -rf "$LDAPBASE"
echo "stop-slapd: stopped"
