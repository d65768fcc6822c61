#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: unit, integration (real mosquitto,
# real impgate, real TLS on loopback) and the fuzz corpus replays, first in the normal build,
# then in the address+undefined sanitizer build, then the tests that involve threads
# (tools/tsan-tests.txt) in the thread sanitizer build. Tests labelled `perf` (benchmark
# regression guards, which measure speed) run in the normal build only. Exits non-zero on any
# failure.
#   tools/test.sh          everything
#   tools/test.sh quick    the normal build only
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
tools/check-format.sh

run_suite() {
  local dir=$1
  shift
  echo "== tests in $dir" >&2
  (cd "$dir" && "${runner[@]}" ctest --output-on-failure --timeout 600 -j 2 "$@")
}
runner=()

tools/build.sh release
run_suite build
if [ "${1:-}" != "quick" ]; then
  tools/build.sh asan
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_suite build-asan -LE perf

  tools/build.sh tsan
  tsan_tests="^($(grep -v '^#' tools/tsan-tests.txt | grep . | paste -sd '|'))\$"
  # ThreadSanitizer needs its fixed memory layout; with the kernel's full address space
  # randomisation some versions abort ("unexpected memory mapping"). setarch -R turns the
  # randomisation off for ctest and everything it starts (impgate included).
  if setarch "$(uname -m)" -R true 2>/dev/null; then runner=(setarch "$(uname -m)" -R); fi
  TSAN_OPTIONS="suppressions=$PWD/tools/tsan.supp:halt_on_error=1:second_deadlock_stack=1" \
    run_suite build-tsan -R "$tsan_tests"
fi
echo "all tests passed" >&2
