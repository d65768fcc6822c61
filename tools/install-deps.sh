#!/usr/bin/env bash
# Installs the Debian 12 packages impgate needs to build, test and run, when they are missing,
# and the npm package of the aedes test broker (tools/testbed/aedes) at the versions its
# package-lock.json pins. Safe to run again: it installs nothing that is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build pkg-config git
  libssl-dev openssl
  libpaho-mqtt-dev libpaho-mqttpp-dev
  mosquitto mosquitto-clients
  libsqlite3-dev sqlite3
  catch2 libcli11-dev nlohmann-json3-dev
  clang-format curl jq python3 iproute2
  gnuplot-nox
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js runs the aedes test broker. A node or npm installed otherwise (NodeSource, nvm) is used
# as it is: Debian's packages are installed only when the command is missing.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
  fi
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The package starts a system-wide mosquitto on port 1883; impgate starts its own brokers.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mosquitto 2>/dev/null; then
    $SUDO systemctl stop mosquitto || true
  fi
fi

# The aedes test broker's npm package, into tools/testbed/aedes/node_modules (git-ignored), as
# the current user. `npm ci` installs exactly what package-lock.json pins; the copy of the lock
# file it leaves in node_modules says that this lock file is installed, so a second run needs
# neither npm nor the registry.
aedes=tools/testbed/aedes
if ! cmp -s "$aedes/package-lock.json" "$aedes/node_modules/.impgate-installed-lock"; then
  echo "install-deps: npm ci in $aedes" >&2
  (cd "$aedes" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$aedes/package-lock.json" "$aedes/node_modules/.impgate-installed-lock"
fi
