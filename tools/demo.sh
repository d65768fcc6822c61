#!/usr/bin/env bash
# The whole system on this machine, until Ctrl-C: a local mosquitto on loopback (unless
# --broker is given), a development fleet CA, the impgate gateway, a demo device and the example
# echo agent, with messages flowing both ways. Ctrl-C stops everything it started.
#
#   tools/demo.sh                       install what is missing, build, run
#   tools/demo.sh --broker tcp://h:1883 use an existing broker instead of a local mosquitto
#
# State lives in $IMPGATE_HOME (default ./.impgate): the CA, credentials and the database.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

broker=""
while [ $# -gt 0 ]; do
  case "$1" in
    --broker) broker="$2"; shift 2 ;;
    *) echo "usage: tools/demo.sh [--broker URI]" >&2; exit 2 ;;
  esac
done

tools/install-deps.sh
echo "demo: building (the first build takes a few minutes)" >&2
tools/build.sh release >/dev/null
bin="$root/build"
export IMPGATE_HOME="${IMPGATE_HOME:-$root/.impgate}"
impctl="$bin/tools/impctl/impctl"

[ -f "$IMPGATE_HOME/ca/ca.crt" ] || "$impctl" ca init
[ -f "$IMPGATE_HOME/devices/demo-imp/device.crt" ] || "$impctl" device enroll demo-imp --group demo

pids=()
run_dir=$(mktemp -d /tmp/impgate-demo.XXXXXX)
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "demo: stopping" >&2
  # Reverse order: device, agent, gateway, broker. Only the processes started here.
  for (( i=${#pids[@]}-1; i>=0; i-- )); do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
  rm -rf "$run_dir"
  echo "demo: stopped" >&2
  exit 0
}
trap cleanup INT TERM EXIT

# A process's output, each line tagged with where it came from.
start() {
  local tag=$1; shift
  "$@" > >(sed -u "s/^/[$tag] /") 2>&1 &
  pids+=($!)
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $((20000 + RANDOM % 20000))
}

if [ -z "$broker" ]; then
  port=1883
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then port=$(free_port); fi
  cat > "$run_dir/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
persistence false
set_tcp_nodelay true
max_queued_messages 10000
CONF
  [ "$(id -u)" -eq 0 ] && echo "user root" >> "$run_dir/mosquitto.conf"
  mosquitto_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
  start broker "$mosquitto_bin" -c "$run_dir/mosquitto.conf"
  broker="tcp://127.0.0.1:$port"
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
fi

gw_port=31314
if (exec 3<>/dev/tcp/127.0.0.1/$gw_port) 2>/dev/null; then gw_port=$(free_port); fi
metrics_port=$(free_port)
start gateway "$bin/gateway/impgate" --broker "$broker" --listen "127.0.0.1:$gw_port" \
  --metrics "127.0.0.1:$metrics_port" --node demo-node
# Wait for the listener without connecting to it (a probe would show up as a failed handshake).
for _ in $(seq 100); do
  ss -Hltn "sport = :$gw_port" 2>/dev/null | grep -q . && break
  sleep 0.1
done

start agent "$bin/bus/examples/impagent-echo" --broker "$broker"
start device "$bin/tools/impdev/impdev" --gateway "127.0.0.1:$gw_port" --id demo-imp demo --every 2

echo "demo: broker $broker, gateway 127.0.0.1:$gw_port, metrics http://127.0.0.1:$metrics_port/metrics" >&2
echo "demo: watch the bus with: mosquitto_sub -L '${broker/tcp/mqtt}/imp/#' -v    (Ctrl-C stops the demo)" >&2
wait -n "${pids[@]}" || true
echo "demo: a component exited; stopping the rest" >&2
