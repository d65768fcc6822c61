#!/usr/bin/env bash
# Configures and builds impgate. Usage: tools/build.sh [release|asan] (default release).
#   release -> build/          (RelWithDebInfo, warnings are errors)
#   asan    -> build-asan/     (address + undefined-behaviour sanitizers)
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-release}"
case "$kind" in
  release) dir=build; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  asan) dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=Debug -DIMPGATE_SANITIZE=ON) ;;
  *) echo "usage: tools/build.sh [release|asan]" >&2; exit 2 ;;
esac
launcher=()
command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
if [ ! -f "$dir/CMakeCache.txt" ]; then
  cmake -S . -B "$dir" "${generator[@]}" "${launcher[@]}" -DIMPGATE_WERROR=ON "${flags[@]}" >/dev/null
fi
cmake --build "$dir" -j "$(nproc)"
