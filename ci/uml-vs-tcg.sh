#!/usr/bin/env bash
# The bundled cells that need a guest kernel (kernel ESP or PPP), run the
# same way twice in one go: under qemu's software emulation (TCG) and under
# UML, both with --jobs 2 (one TCG VM with two cells at a time; two UML
# instances). Prints each run's wall time, boot time and verdicts, the ratio,
# and the cells whose outcome differs (`vpnlab diff`). Run as root, on an
# otherwise idle machine:
#   sudo ci/uml-vs-tcg.sh            # every such cell
#   sudo ci/uml-vs-tcg.sh topologies/kernel-esp.toml
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/setup.sh
cargo build --release --quiet
V=target/release/vpnlab
kernel=$($V uml-kernel)
paths=("$@")
[ "${#paths[@]}" -gt 0 ] || paths=(topologies)
mapfile -t cells < <($V list --needs-kernel "${paths[@]}")
sel=()
for c in "${cells[@]}"; do sel+=(--cell "$c"); done
out=${OUT:-target/uml-vs-tcg}
mkdir -p "$out"
echo "uml-vs-tcg: ${#cells[@]} cells"

run() { # name (the way: tcg or uml)
  local name=$1
  local start end
  start=$(date +%s.%N)
  VPNLAB_VM_ACCEL=$name "$V" run --kernel auto --jobs 2 "${paths[@]}" "${sel[@]}" --report "$out/$name.json" \
    >"$out/$name.txt" 2>"$out/$name.log" || true
  end=$(date +%s.%N)
  python3 - "$out/$name.json" "$name" "$start" "$end" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); name = sys.argv[2]
wall = float(sys.argv[4]) - float(sys.argv[3])
vm = r.get("vm") or {}
v = {}
for c in r["cells"]:
    v[c["outcome"]["verdict"]] = v.get(c["outcome"]["verdict"], 0) + 1
print(f"{name}: wall {wall:.1f} s, boot {vm.get('boot_ms', 0)/1000:.1f} s, "
      f"{vm.get('instances', 1)} guest(s) under {vm.get('accel')}, verdicts {v}")
open(sys.argv[1] + ".wall", "w").write(f"{wall:.1f}\n")
PY
}

run tcg
run uml
tcg=$(cat "$out/tcg.json.wall"); uml=$(cat "$out/uml.json.wall")
python3 -c "print(f'UML/TCG wall ratio: {$uml/$tcg:.3f} ({$uml} s against {$tcg} s)')"
build=$(cat "$(dirname "$kernel")/build-seconds" 2>/dev/null || true)
[ -n "$build" ] && echo "UML kernel build: ${build} s (when it was built)"
echo "cells whose outcome differs (vpnlab diff tcg uml):"
$V diff "$out/tcg.json" "$out/uml.json" || true
