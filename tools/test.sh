#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: unit, integration (real mosquitto,
# real impgate, real TLS on loopback) and the fuzz corpus replays, first in the normal build,
# then in the address+undefined sanitizer build. Exits non-zero on any failure.
#   tools/test.sh          everything
#   tools/test.sh quick    the normal build only
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
tools/check-format.sh

run_suite() {
  local dir=$1
  echo "== tests in $dir" >&2
  (cd "$dir" && ctest --output-on-failure --timeout 600 -j 2)
}

tools/build.sh release
run_suite build
if [ "${1:-}" != "quick" ]; then
  tools/build.sh asan
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_suite build-asan
fi
echo "all tests passed" >&2
