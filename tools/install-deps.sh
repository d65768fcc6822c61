#!/usr/bin/env bash
# Installs the Debian 12 packages impgate needs to build, test and run, when they are missing.
# Safe to run again: it installs nothing that is already there.
set -euo pipefail

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
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

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
