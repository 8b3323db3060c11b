#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang-14, ASan + UBSan, in build-fuzz) and
# runs each on its corpus for FUZZ_SECONDS, one after the other, then prints a summary
# (executions, exec/s, coverage, result) and exits non-zero if any target found a crash,
# a leak, UB, a timeout or an out-of-memory.
#   scripts/fuzz.sh [TARGET...]        TARGET: multipart, filter, ... (default: all)
#   scripts/fuzz.sh --ci [TARGET...]   the CI run: 30 s per target
# Environment:
#   FUZZ_SECONDS  seconds per target (default 60; --ci: 30)
#   FUZZ_RUNS     stop each target after this many executions instead (the long campaign:
#                 FUZZ_RUNS=10000000)
#   FUZZ_BUILD    build directory (default build-fuzz)
#   FUZZ_JOBS     build parallelism (default 2)
#   FUZZ_ARGS     extra libFuzzer flags for every target
# Each target reads the committed seeds (tests/fuzz/corpus/TARGET, never written) and
# keeps what it discovers in FUZZ_BUILD/corpus/TARGET, so later runs start from there.
# Findings go to FUZZ_BUILD/artifacts/TARGET/ (crash-*, leak-*, timeout-*, oom-*), the
# full output to FUZZ_BUILD/logs/TARGET.log. Reproduce one with
#   FUZZ_BUILD/fuzz_TARGET FUZZ_BUILD/artifacts/TARGET/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${FUZZ_SECONDS:-60}
if [ "${1:-}" = "--ci" ]; then
  SECONDS_EACH=30
  shift
fi
BUILD=${FUZZ_BUILD:-build-fuzz}
JOBS=${FUZZ_JOBS:-2}

bash scripts/install-deps.sh

if [ $# -gt 0 ]; then
  TARGETS=("$@")
else
  TARGETS=()
  for f in tests/fuzz/fuzz_*.c; do
    t=$(basename "$f" .c)
    TARGETS+=("${t#fuzz_}")
  done
fi
for t in "${TARGETS[@]}"; do
  [ -f "tests/fuzz/fuzz_$t.c" ] || { echo "fuzz.sh: no target $t (tests/fuzz/fuzz_$t.c)" >&2; exit 2; }
done

echo "== building the fuzz targets ($BUILD, clang-14)"
CC=clang-14 cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOGD_FUZZ=ON >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target fuzz >/dev/null

# Leaks in third-party libraries only (see the file); UBSan findings abort (the code is
# built with -fno-sanitize-recover=undefined) and print a stack.
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=0}"

if [ -n "${FUZZ_RUNS:-}" ]; then
  LIMIT=(-runs="$FUZZ_RUNS")
  echo "== fuzzing ${#TARGETS[@]} targets, $FUZZ_RUNS executions each"
else
  LIMIT=(-max_total_time="$SECONDS_EACH")
  echo "== fuzzing ${#TARGETS[@]} targets, $SECONDS_EACH s each"
fi

mkdir -p "$BUILD/logs"
failed=()
summary=()
for t in "${TARGETS[@]}"; do
  work="$BUILD/corpus/$t"
  art="$BUILD/artifacts/$t"
  log="$BUILD/logs/$t.log"
  mkdir -p "$work" "$art"
  dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
  set +e
  # shellcheck disable=SC2086
  nice -n 19 "$BUILD/fuzz_$t" "${LIMIT[@]}" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$art/" "${dict[@]}" ${FUZZ_ARGS:-} "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+[[:space:]]+(DONE|INITED|NEW|REDUCE|pulse)' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\) .*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\) .*/\1/p' <<<"$last")
  result=ok
  if [ $rc -ne 0 ]; then
    newest=$(find "$art" -type f -printf '%T@ %f\n' | sort -n | tail -1 | cut -d' ' -f2-)
    result="FAILED (exit $rc): $newest"
    failed+=("$t")
    grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|check failed' "$log" \
      | sed "s/^/  $t: /" || true
  fi
  summary+=("$(printf '%-10s %12s %8s %6s %7s  %s' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" \
    "${ft:-?}" "$result")")
  echo "   $t: ${execs:-?} executions, ${rate:-?} exec/s, cov ${cov:-?} ft ${ft:-?}: $result"
done

echo "== summary"
printf '%-10s %12s %8s %6s %7s  %s\n' target executions exec/s cov ft result
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: findings in: ${failed[*]} (inputs under $BUILD/artifacts, logs under $BUILD/logs)" >&2
  exit 1
fi
