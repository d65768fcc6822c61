#!/usr/bin/env bash
# Configures and builds impgate. Usage: tools/build.sh [release|asan|tsan] (default release).
#   release -> build/          (RelWithDebInfo, warnings are errors)
#   asan    -> build-asan/     (address + undefined-behaviour sanitizers)
#   tsan    -> build-tsan/     (thread sanitizer; only the targets of the tests that involve
#                               threads, listed in tools/tsan-tests.txt, to keep CI short)
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-release}"
targets=()
case "$kind" in
  release) dir=build; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  asan) dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=Debug -DIMPGATE_SANITIZE=ON) ;;
  tsan)
    dir=build-tsan; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DIMPGATE_TSAN=ON)
    # The test binaries (each test is named after its binary) plus what the integration tests
    # run: the impgate and impdev binaries.
    mapfile -t targets < <(grep -v '^#' tools/tsan-tests.txt | grep .)
    targets+=(impgate impdev check_layers)
    ;;
  *) echo "usage: tools/build.sh [release|asan|tsan]" >&2; exit 2 ;;
esac
launcher=()
command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
if [ ! -f "$dir/CMakeCache.txt" ]; then
  cmake -S . -B "$dir" "${generator[@]}" "${launcher[@]}" -DIMPGATE_WERROR=ON "${flags[@]}" >/dev/null
fi
if [ ${#targets[@]} -gt 0 ]; then
  cmake --build "$dir" -j "$(nproc)" --target "${targets[@]}"
else
  cmake --build "$dir" -j "$(nproc)"
fi
