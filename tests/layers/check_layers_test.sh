#!/usr/bin/env bash
# The layer check passes on the tree and fails on a file that includes above its layer.
set -euo pipefail
checker=$1
root=$2
"$checker" "$root"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/gateway/base/net" "$scratch/storage" "$scratch/gateway/daemon"
printf '#include "gateway/base/log.h"\n' >"$scratch/gateway/base/net/ok.cc"
printf '#include "gateway/daemon/gateway.h"\n' >"$scratch/storage/above.cc"
if "$checker" "$scratch" 2>"$scratch/out"; then
  echo "check-layers accepted storage/ including the daemon" >&2
  exit 1
fi
grep -q 'storage/above.cc:1: includes gateway/daemon/gateway.h' "$scratch/out"
printf '#include "bus/bridge/mqtt_bridge.h"\n' >"$scratch/gateway/daemon/session.cc"
rm "$scratch/storage/above.cc"
if "$checker" "$scratch" 2>/dev/null; then
  echo "check-layers accepted the daemon library including the Paho bridge" >&2
  exit 1
fi
rm "$scratch/gateway/daemon/session.cc"
# The daemon may read the code-push payloads; bus/fleet itself stays off the MQTT client.
printf '#include "bus/fleet/descriptors.h"\n' >"$scratch/gateway/daemon/catalog.cc"
mkdir -p "$scratch/bus/fleet"
printf '#include "bus/topics/topic_scheme.h"\n#include "gateway/base/names.h"\n' \
  >"$scratch/bus/fleet/ok.cc"
"$checker" "$scratch"
printf '#include "bus/mqtt/broker_link.h"\n' >"$scratch/bus/fleet/link.cc"
if "$checker" "$scratch" 2>/dev/null; then
  echo "check-layers accepted bus/fleet including the broker link" >&2
  exit 1
fi
rm -r "$scratch/bus" "$scratch/gateway/daemon/catalog.cc"
mkdir -p "$scratch/tools/testbed"
printf '#include "gateway/base/log.h"\n' >"$scratch/tools/testbed/broker.cc"
if "$checker" "$scratch" 2>/dev/null; then
  echo "check-layers accepted the test bed including impgate code" >&2
  exit 1
fi
echo "check-layers: ok"
