#!/usr/bin/env bash
# The root-cause classifier's confusion table: runs the given scenario
# files (default: every bundled one) RUNS times with --kernel-when-needed
# auto, then counts, for every cell that failed or states a cause, the
# expected cause (`expect.cause`, `-` for none) against the classified one
# (`-` for none), over all runs. A cell whose classification changed
# between runs is listed as unstable.
#
# Usage: sudo ci/confusion.sh [RUNS] [PATH...]   (default 3, topologies/)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
shift || true
PATHS=("$@")
[ ${#PATHS[@]} -gt 0 ] || PATHS=(topologies)
cargo build --release --quiet
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for i in $(seq "$RUNS"); do
  target/release/vpnlab run "${PATHS[@]}" --kernel-when-needed auto --jobs 2 \
    --report "$TMP/run$i.json" >/dev/null 2>&1 || true
  echo "run $i done" >&2
done
python3 - "$TMP"/run*.json <<'EOF'
import json, sys, collections
pairs = collections.Counter()
seen = collections.defaultdict(set)
diag_ms = []
for f in sys.argv[1:]:
    for c in json.load(open(f))["cells"]:
        o = c["outcome"]
        diag_ms.append(c.get("phases", {}).get("diagnose_ms", 0.0))
        if o["verdict"] in ("unsupported", "skipped", "error"):
            continue
        want = o["expected"].get("cause") or "-"
        got = (o.get("cause") or {}).get("id") or "-"
        if want == "-" and got == "-":
            continue
        pairs[(want, got)] += 1
        seen[o["cell"]].add(got)
print("| expected cause | classified | cells x runs |")
print("|---|---|---|")
for (w, g), n in sorted(pairs.items()):
    mark = "" if w == g or w == "-" else " (wrong)"
    print(f"| {w} | {g}{mark} | {n} |")
unstable = sorted(c for c, s in seen.items() if len(s) > 1)
print(f"\nruns: {len(sys.argv) - 1}; unstable cells: {', '.join(unstable) or 'none'}")
diag_ms.sort()
if diag_ms:
    print(f"classification (diagnose_ms) over {len(diag_ms)} cells: median {diag_ms[len(diag_ms)//2]:.3f} ms, max {diag_ms[-1]:.3f} ms")
EOF
