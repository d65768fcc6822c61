#!/usr/bin/env bash
# End-to-end check of impctl: run the real binary in a temporary home and inspect what it
# leaves behind with sqlite-independent tools (the JSON output, openssl, the file system).
#
# Usage: impctl_test.sh PATH_TO_IMPCTL
set -euo pipefail

IMPCTL=${1:?usage: impctl_test.sh PATH_TO_IMPCTL}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/impctl-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
HOME_DIR="$WORK/home"
unset IMPGATE_HOME

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

# run EXPECTED_RC DESCRIPTION -- ARGS...: runs impctl, keeps stdout/stderr in $out/$err.
run() {
  local expected=$1 what=$2
  shift 3
  local rc=0
  "$IMPCTL" "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
  out=$(cat "$WORK/out")
  err=$(cat "$WORK/err")
  if [[ "$expected" == nonzero && $rc -ne 0 ]] || [[ "$expected" == "$rc" ]]; then
    pass "$what (exit $rc)"
  else
    fail "$what: exit $rc, expected $expected; stderr: $err"
  fi
}

expect_in() {  # expect_in HAYSTACK NEEDLE DESCRIPTION
  if [[ "$1" == *"$2"* ]]; then pass "$3"; else fail "$3: '$2' not in: $1"; fi
}

# count_devices, device_field ID FIELD: read the `device list --json` output in $WORK/out.
if command -v jq >/dev/null; then
  count_devices() { jq 'length' "$WORK/out"; }
  device_field() { jq -r --arg id "$1" ".[] | select(.id == \$id) | .$2" "$WORK/out"; }
elif command -v python3 >/dev/null; then
  count_devices() { python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$WORK/out"; }
  device_field() {
    python3 -c 'import json,sys
v=[d for d in json.load(open(sys.argv[1])) if d["id"]==sys.argv[2]][0][sys.argv[3]]
print(json.dumps(v) if not isinstance(v,str) else v)' "$WORK/out" "$1" "$2"
  }
else
  echo "SKIP: needs jq or python3 to parse JSON" >&2
  exit 77
fi

mode_of() { stat -c '%a' "$1"; }

# --- before a CA exists
run nonzero "enroll without a CA fails" -- --home "$HOME_DIR" device enroll imp-0001
expect_in "$err" "impctl ca init" "the error says how to create the CA"
[[ ! -e "$HOME_DIR/devices" ]] && pass "nothing was issued" || fail "device files appeared"
run nonzero "list without a home fails" -- --home "$HOME_DIR" device list
expect_in "$err" "impctl ca init" "the list error says how to create the home"

# --- ca init
run 0 "ca init" -- --home "$HOME_DIR" ca init --server-name gw.example.com --server-name 192.0.2.7
for f in ca/ca.crt ca/ca.key ca/code-signing.key ca/code-signing.pub gateway/gateway.crt \
  gateway/gateway.key impgate.db; do
  [[ -f "$HOME_DIR/$f" ]] && pass "$f exists" || fail "$f missing"
done
[[ $(mode_of "$HOME_DIR/ca/ca.key") == 600 ]] && pass "ca.key is 0600" || fail "ca.key mode $(mode_of "$HOME_DIR/ca/ca.key")"
[[ $(mode_of "$HOME_DIR/ca/code-signing.key") == 600 ]] && pass "code-signing.key is 0600" ||
  fail "code-signing.key mode $(mode_of "$HOME_DIR/ca/code-signing.key")"
# The signing key is Ed25519 and the .pub is its public half (openssl's own parser).
if openssl pkey -in "$HOME_DIR/ca/code-signing.key" -noout -text 2>/dev/null | grep -q "ED25519"; then
  pass "code-signing.key is an Ed25519 key"
else
  fail "code-signing.key is not Ed25519"
fi
[[ "$(openssl pkey -in "$HOME_DIR/ca/code-signing.key" -pubout)" == "$(cat "$HOME_DIR/ca/code-signing.pub")" ]] &&
  pass "code-signing.pub is the public half of code-signing.key" || fail "code-signing.pub does not match the key"
signing_pub=$(cat "$HOME_DIR/ca/code-signing.pub")
[[ $(mode_of "$HOME_DIR/gateway/gateway.key") == 600 ]] && pass "gateway.key is 0600" || fail "gateway.key mode"
[[ $(mode_of "$HOME_DIR") == 700 ]] && pass "home is 0700" || fail "home mode $(mode_of "$HOME_DIR")"
run nonzero "a second ca init without --force fails" -- --home "$HOME_DIR" ca init
expect_in "$err" "--force" "the error mentions --force"
[[ "$(cat "$HOME_DIR/ca/code-signing.pub")" == "$signing_pub" ]] && pass "the signing key is kept" ||
  fail "a refused ca init replaced the signing key"

if openssl verify -CAfile "$HOME_DIR/ca/ca.crt" -purpose sslserver "$HOME_DIR/gateway/gateway.crt" >/dev/null; then
  pass "gateway.crt verifies against ca.crt as a TLS server"
else
  fail "gateway.crt does not verify"
fi
openssl verify -CAfile "$HOME_DIR/ca/ca.crt" -purpose sslserver -verify_hostname gw.example.com \
  "$HOME_DIR/gateway/gateway.crt" >/dev/null && pass "gateway.crt names gw.example.com" ||
  fail "gateway.crt lacks the --server-name SAN"

run 0 "list on an empty fleet" -- --home "$HOME_DIR" device list --json
[[ $(count_devices) == 0 ]] && pass "empty JSON array" || fail "expected [], got $out"

# --- enroll
run 0 "enroll imp-0001" -- --home "$HOME_DIR" device enroll imp-0001
expect_in "$out" "$HOME_DIR/devices/imp-0001/device.key" "enroll prints the key path"
# --home after the subcommand, and the group option
run 0 "enroll imp-0002 in group kitchen" -- device enroll imp-0002 --group kitchen --home "$HOME_DIR"
[[ $(mode_of "$HOME_DIR/devices/imp-0001/device.key") == 600 ]] && pass "device.key is 0600" || fail "device.key mode"

for id in imp-0001 imp-0002; do
  if openssl verify -CAfile "$HOME_DIR/ca/ca.crt" -purpose sslclient \
    "$HOME_DIR/devices/$id/device.crt" >/dev/null; then
    pass "$id device.crt verifies against ca.crt as a TLS client"
  else
    fail "$id device.crt does not verify"
  fi
  [[ "$(cat "$HOME_DIR/devices/$id/code-signing.pub")" == "$signing_pub" ]] &&
    pass "$id has the fleet's code-verify key" || fail "$id lacks devices/$id/code-signing.pub"
done
for pair in imp-0001:default imp-0002:kitchen; do
  id=${pair%%:*} group=${pair#*:}
  subject=$(openssl x509 -noout -subject -nameopt RFC2253 -in "$HOME_DIR/devices/$id/device.crt")
  [[ "$subject" == "subject=CN=$id,OU=$group" ]] && pass "$id certificate subject is OU=$group, CN=$id" ||
    fail "subject: $subject"
done

run 0 "list --json" -- --home "$HOME_DIR" device list --json
[[ $(count_devices) == 2 ]] && pass "two devices listed" || fail "expected 2 devices: $out"
[[ $(device_field imp-0001 group) == default ]] && pass "imp-0001 is in group default" || fail "imp-0001 group"
[[ $(device_field imp-0002 group) == kitchen ]] && pass "imp-0002 is in group kitchen" || fail "imp-0002 group"
[[ $(device_field imp-0002 revoked) == false ]] && pass "imp-0002 is not revoked" || fail "imp-0002 revoked"
serial=$(openssl x509 -noout -serial -in "$HOME_DIR/devices/imp-0001/device.crt")
[[ "$serial" == "serial=$(device_field imp-0001 serial)" ]] && pass "listed serial matches the certificate" ||
  fail "serial mismatch: $serial vs $(device_field imp-0001 serial)"
for field in enrolled_at not_after; do
  [[ $(device_field imp-0001 $field) =~ ^[0-9]{13}$ ]] && pass "$field is unix milliseconds" || fail "$field: $(device_field imp-0001 $field)"
done

IMPGATE_HOME="$HOME_DIR" run 0 "list via \$IMPGATE_HOME" -- device list
expect_in "$out" "imp-0002" "the table lists imp-0002"
expect_in "$out" "kitchen" "the table shows the group"

# --- refusals
before=$(cat "$HOME_DIR/devices/imp-0001/device.crt")
run nonzero "enrolling imp-0001 again fails" -- --home "$HOME_DIR" device enroll imp-0001
expect_in "$err" "already enrolled" "the error says the device is enrolled"
[[ "$(cat "$HOME_DIR/devices/imp-0001/device.crt")" == "$before" ]] && pass "the old certificate is untouched" ||
  fail "duplicate enroll replaced the certificate"

run nonzero "bad id a/b fails" -- --home "$HOME_DIR" device enroll a/b
expect_in "$err" "invalid device id" "the error names the bad id"
[[ ! -e "$HOME_DIR/devices/a" ]] && pass "no directory for a/b" || fail "a/b created a directory"
run nonzero "bad group fails" -- --home "$HOME_DIR" device enroll imp-0003 --group "a/b"
[[ ! -e "$HOME_DIR/devices/imp-0003" ]] && pass "nothing issued for a bad group" || fail "imp-0003 was issued"

run 0 "--reissue replaces the credentials" -- --home "$HOME_DIR" device enroll imp-0001 --reissue
[[ "$(cat "$HOME_DIR/devices/imp-0001/device.crt")" != "$before" ]] && pass "a new certificate was written" ||
  fail "--reissue kept the old certificate"
run 0 "list after reissue" -- --home "$HOME_DIR" device list --json
[[ $(count_devices) == 2 ]] && pass "still two devices" || fail "reissue changed the count: $out"

# --- --count enrolls a numbered fleet, each with the code-verify key and its group
run 0 "enroll --count 3" -- --home "$HOME_DIR" device enroll sim- --count 3 --group lab
for id in sim-00001 sim-00002 sim-00003; do
  [[ "$(cat "$HOME_DIR/devices/$id/code-signing.pub" 2>/dev/null)" == "$signing_pub" ]] &&
    pass "$id has the code-verify key" || fail "$id lacks the code-verify key"
  subject=$(openssl x509 -noout -subject -nameopt RFC2253 -in "$HOME_DIR/devices/$id/device.crt")
  [[ "$subject" == "subject=CN=$id,OU=lab" ]] && pass "$id is in OU lab" || fail "subject: $subject"
done

# --- a home made before code push: a CA but no signing key
OLD_HOME="$WORK/old-home"
run 0 "ca init on a fresh home" -- --home "$OLD_HOME" ca init
rm "$OLD_HOME/ca/code-signing.key" "$OLD_HOME/ca/code-signing.pub"
old_ca=$(cat "$OLD_HOME/ca/ca.crt")
run 0 "ca init on a home with a CA but no signing key" -- --home "$OLD_HOME" ca init
expect_in "$out" "code-signing key" "it says it created the signing key"
[[ -f "$OLD_HOME/ca/code-signing.key" && -f "$OLD_HOME/ca/code-signing.pub" ]] &&
  pass "the signing key pair was created" || fail "no signing key pair"
[[ $(mode_of "$OLD_HOME/ca/code-signing.key") == 600 ]] && pass "its key is 0600" || fail "its key mode"
[[ "$(cat "$OLD_HOME/ca/ca.crt")" == "$old_ca" ]] && pass "the CA was kept" || fail "the CA was replaced"
old_pub=$(cat "$OLD_HOME/ca/code-signing.pub")
run nonzero "then ca init without --force fails" -- --home "$OLD_HOME" ca init
run 0 "ca init --force" -- --home "$OLD_HOME" ca init --force
[[ "$(cat "$OLD_HOME/ca/ca.crt")" != "$old_ca" ]] && pass "--force replaced the CA" || fail "--force kept the CA"
[[ "$(cat "$OLD_HOME/ca/code-signing.pub")" != "$old_pub" ]] && pass "--force replaced the signing key" ||
  fail "--force kept the signing key"

# --- unusable homes
echo "not a directory" >"$WORK/file-home"
run nonzero "enroll with a home that is a file fails" -- --home "$WORK/file-home" device enroll imp-9
run nonzero "list with a home that is a file fails" -- --home "$WORK/file-home" device list
run nonzero "ca init with a home that is a file fails" -- --home "$WORK/file-home" ca init
expect_in "$err" "not a directory" "the error says why"

# --- usage errors
run 2 "missing subcommand is a usage error" -- --home "$HOME_DIR" device
run 2 "missing id is a usage error" -- --home "$HOME_DIR" device enroll

if ((failures > 0)); then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "all impctl checks passed"
