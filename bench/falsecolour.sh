#!/usr/bin/env bash
# bench/falsecolour.sh: the false-colour figure (issue: imaging). Needs python3-matplotlib
# and python3-pil for the reference side (installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
if ! /usr/bin/python3 -c "import matplotlib, PIL" 2>/dev/null; then
  apt-get install -y --no-install-recommends python3-matplotlib python3-pil >/dev/null
fi
"$BUILD/bench_falsecolour" --runs "${BENCH_FALSECOLOUR_RUNS:-5}"
