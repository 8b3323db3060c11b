#!/usr/bin/env bash
# Runs every test: the C unit tests (cmocka, through ctest) and the HTTP-level tests
# (pytest, starting real `ogd serve` processes on free ports).
# Usage: scripts/test.sh BUILD_DIR     (OGD_SANITIZED=1 when BUILD_DIR is an ASan build)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}

if [ "${OGD_SANITIZED:-}" = "1" ]; then
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:exitcode=86"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
fi

echo "== unit tests ($BUILD)"
(cd "$BUILD" && ctest --output-on-failure -j 2)

echo "== HTTP tests ($BUILD)"
export OGD_BIN="$PWD/$BUILD/ogd"
/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/http
