#!/usr/bin/env python3
"""Fails when a source file includes a project header from a layer above its own.

The layers, lowest first (docs/architecture.md, "Layers"):
  base      gateway/base (logs, names, results, home), then its protocol, pki, net, metrics
            and code
  bus, storage, device SDK   each on the base only
  daemon    gateway/daemon: the only place that wires the bus and storage together
  tools     on everything above; tools/testbed on nothing of impgate; tests may include anything

Usage: check-layers.py [ROOT]   (default: the repository this script is in)
Prints one line per offending include and exits 1 when there is any.
"""
import pathlib
import re
import sys

BASE = "gateway/base/"  # the files directly in it, not its subfolders
BASE_ALL = "gateway/base/**"  # the whole base layer

# Folder (most specific first) -> the header folders its files may include. A folder may always
# include its own headers. "gateway/base/" alone means the files directly in gateway/base.
RULES = [
    ("gateway/base/protocol/", [BASE]),
    ("gateway/base/pki/", [BASE]),
    ("gateway/base/net/", [BASE, "gateway/base/pki/"]),
    ("gateway/base/metrics/", [BASE]),
    ("gateway/base/code/", [BASE, "gateway/base/pki/"]),
    ("gateway/base/", []),
    ("gateway/device/", [BASE_ALL]),
    ("bus/topics/", [BASE]),
    ("bus/device_bus/", [BASE]),
    ("bus/mqtt/", [BASE_ALL]),
    ("bus/bridge/", [BASE_ALL, "bus/topics/", "bus/device_bus/", "bus/mqtt/"]),
    ("bus/fleet/", [BASE_ALL, "bus/topics/"]),
    ("bus/agent/", [BASE_ALL, "bus/topics/"]),
    ("bus/examples/", [BASE_ALL, "bus/topics/", "bus/agent/"]),
    ("storage/", [BASE_ALL]),
    # main.cc is where the daemon meets the concrete bus (and storage); the rest of the daemon
    # sees the bus only through its interface.
    ("gateway/daemon/main.cc", [BASE_ALL, "bus/", "storage/", "gateway/daemon/"]),
    # The daemon reads the code-push payloads (descriptors, deployments) itself.
    ("gateway/daemon/", [BASE_ALL, "bus/device_bus/", "bus/topics/", "bus/fleet/", "storage/"]),
    # The test bed (processes, broker, temp dirs, ports) uses nothing of impgate, so tests and
    # every tool can link it.
    ("tools/testbed/", []),
    ("tools/", [BASE_ALL, "gateway/device/", "gateway/daemon/", "bus/", "storage/"]),
]

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def rule_for(path):
    for prefix, allowed in RULES:
        if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
            own = prefix if prefix.endswith("/") else prefix.rsplit("/", 1)[0] + "/"
            return own, allowed
    return None, None


def in_folder(header, folder):
    if folder == BASE:
        return header.startswith(BASE) and "/" not in header[len(BASE):]
    if folder == BASE_ALL:
        return header.startswith("gateway/base/")
    return header.startswith(folder)


def allowed_include(header, own, allowed):
    return in_folder(header, own) or any(in_folder(header, folder) for folder in allowed)


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parent.parent)
    problems = []
    for path in sorted(root.rglob("*")):
        if path.suffix not in (".h", ".cc") or not path.is_file():
            continue
        rel = path.relative_to(root).as_posix()
        if rel.startswith(("build", "tests/")):
            continue
        own, allowed = rule_for(rel)
        if own is None:
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            header = m.group(1)
            if "/" not in header:
                continue  # a header beside the file, or a system one in quotes
            if not allowed_include(header, own, allowed):
                problems.append(f"{rel}:{number}: includes {header}, above the layer of {own}")
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"check-layers: {len(problems)} include(s) above their layer "
              "(docs/architecture.md, Layers)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
