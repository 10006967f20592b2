#!/usr/bin/env bash
# vpnlab benchmark: prints figures and ratios against a baseline measured in
# the same run. Nothing here is asserted; compare the printed numbers with the
# targets in the README.
#
#   1. the masquerade/auto cell end to end: vpnlab vs ci/baseline-cell.sh (a
#      hand-written ip/nft/charon/swanctl script doing the same work), runs
#      alternated A B A B ..., medians and the median of the pairwise ratios;
#   2. vpnlab's own phase timings for that cell (topology bring-up etc.);
#   3. the block-4500 cell: time until the failure is decided;
#   4. the whole seed matrix with --jobs 2, wall time;
#   5. vpnlab's peak memory (its own process, daemons excluded);
#   6. the cost of packet capture: the same cell with and without
#      --no-capture, alternated, median of the pairwise ratios;
#   7. the field suite (topologies/field/) on the host, --jobs 2, wall time,
#      against the same cells one at a time (--jobs 1), 3 runs each,
#      alternated (its VM cells are reported SKIPPED here and cost nothing);
#   8. IPv6: the NAT66 cell (topologies/ipv6/nat66.toml, masquerade) against
#      the IPv4 masquerade/auto cell, alternated, median of the pairwise
#      ratios;
#   9. root-cause classification: its own phase (diagnose_ms) in failed
#      cells, beside those cells' medians, measured in the same runs.
#
# Usage: sudo ci/bench.sh [RUNS]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/setup.sh
RUNS=${1:-10}
cargo build --release --quiet
VPNLAB=target/release/vpnlab
CELL=seed/nat=masquerade,nat_t=auto
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

now_ns() { date +%s%N; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# Warm-up (page cache, first charon start).
$VPNLAB run topologies/seed.toml --cell "$CELL" >/dev/null 2>&1
BASELINE_UDP=1 bash ci/baseline-cell.sh masquerade auto >/dev/null 2>&1

: >"$TMP/a"; : >"$TMP/b"; : >"$TMP/ratio"; : >"$TMP/phases"
for i in $(seq "$RUNS"); do
  t0=$(now_ns)
  $VPNLAB run topologies/seed.toml --cell "$CELL" --report "$TMP/r.json" >/dev/null 2>&1
  t1=$(now_ns)
  bash ci/baseline-cell.sh masquerade auto >/dev/null 2>&1
  t2=$(now_ns)
  a=$(( (t1 - t0) / 1000 )); b=$(( (t2 - t1) / 1000 ))
  echo "$a" >>"$TMP/a"; echo "$b" >>"$TMP/b"
  awk -v a="$a" -v b="$b" 'BEGIN {printf "%.3f\n", a/b}' >>"$TMP/ratio"
  grep -o '"[a-z]*_ms": [0-9.]*' "$TMP/r.json" | tr -d '"' >>"$TMP/phases"
  peak=$(grep -o '"peak_rss_kib": [0-9]*' "$TMP/r.json" | grep -o '[0-9]*$')
  echo "$peak" >>"$TMP/peak"
done

ms() { awk '{printf "%.1f ms", $1/1000}'; }
# alternate NAME RUNS CMD_A CMD_B: run A and B alternately RUNS times; wall
# times (µs) go to $TMP/NAME_a and NAME_b, pairwise ratios A/B to NAME_ratio.
alternate() {
  local name=$1 runs=$2 a=$3 b=$4 t0 t1 t2
  : >"$TMP/${name}_a"; : >"$TMP/${name}_b"; : >"$TMP/${name}_ratio"
  for _ in $(seq "$runs"); do
    t0=$(now_ns); $a >/dev/null 2>&1; t1=$(now_ns)
    $b >/dev/null 2>&1; t2=$(now_ns)
    echo $(( (t1 - t0) / 1000 )) >>"$TMP/${name}_a"
    echo $(( (t2 - t1) / 1000 )) >>"$TMP/${name}_b"
    awk -v a="$(( t1 - t0 ))" -v b="$(( t2 - t1 ))" 'BEGIN {printf "%.3f\n", a/b}' >>"$TMP/${name}_ratio"
  done
}
echo "== masquerade/auto cell, end to end ($RUNS runs each, alternated)"
echo "vpnlab   median $(median <"$TMP/a" | ms)  (min $(sort -g "$TMP/a" | head -1 | ms), max $(sort -g "$TMP/a" | tail -1 | ms))"
echo "baseline median $(median <"$TMP/b" | ms)  (min $(sort -g "$TMP/b" | head -1 | ms), max $(sort -g "$TMP/b" | tail -1 | ms))"
echo "ratio vpnlab/baseline: median $(median <"$TMP/ratio")  (target <= 0.45)"
echo
echo "== vpnlab phases of that cell (medians)"
for p in topology_ms daemons_ms ike_ms checks_ms capture_ms teardown_ms elapsed_ms; do
  printf "%-12s %s ms\n" "$p" "$(grep "^$p:" "$TMP/phases" | awk '{print $2}' | median)"
done
echo "(target: topology <= 20 ms; elapsed_ms is set-up to result: the teardown"
echo " comes after it and overlaps the next cell of a batch)"
echo
echo "== block-4500 cell: failure decided in"
: >"$TMP/fail"
for i in $(seq 3); do
  $VPNLAB run topologies/seed.toml --cell seed/nat=block-4500,nat_t=auto --report "$TMP/f.json" >/dev/null 2>&1 || true
  grep -o '"ike_ms": [0-9.]*' "$TMP/f.json" | awk '{print $2}' >>"$TMP/fail"
  grep -o '"elapsed_ms": [0-9]*' "$TMP/f.json" | awk '{print $2}' >>"$TMP/fail_total"
done
echo "IKE given up after: median $(median <"$TMP/fail") ms; whole cell incl. checks: median $(median <"$TMP/fail_total") ms (target <= 3000)"
echo
echo "== whole seed matrix, --jobs 2"
: >"$TMP/matrix"
for i in $(seq 3); do
  t0=$(now_ns); $VPNLAB run topologies/seed.toml --jobs 2 >/dev/null 2>&1; t1=$(now_ns)
  echo $(( (t1 - t0) / 1000 )) >>"$TMP/matrix"
done
echo "wall: median $(median <"$TMP/matrix" | ms) (target <= 2500 ms)"
echo
echo "== vpnlab peak memory (the process running the cells)"
echo "median $(median <"$TMP/peak") KiB (target <= 30720 KiB)"
echo
echo "== capture cost on the masquerade/auto cell ($RUNS runs each, alternated)"
alternate cap "$RUNS" "$VPNLAB run topologies/seed.toml --cell $CELL" \
  "$VPNLAB run topologies/seed.toml --cell $CELL --no-capture"
echo "with capture    median $(median <"$TMP/cap_a" | ms)"
echo "without capture median $(median <"$TMP/cap_b" | ms)"
echo "ratio with/without: median $(median <"$TMP/cap_ratio") (target <= 1.10)"
echo
echo "== field suite on the host (topologies/field/), 3 runs each, alternated"
alternate field 3 "$VPNLAB run topologies/field --jobs 2" "$VPNLAB run topologies/field --jobs 1"
echo "--jobs 2 wall: median $(median <"$TMP/field_a" | ms) (target <= 60000 ms)"
echo "--jobs 1 wall: median $(median <"$TMP/field_b" | ms)"
echo "ratio jobs2/jobs1: median $(median <"$TMP/field_ratio")"
echo
echo "== IPv6: NAT66 cell vs the IPv4 masquerade cell ($RUNS runs each, alternated)"
alternate six "$RUNS" "$VPNLAB run topologies/ipv6/nat66.toml --cell nat66/nat=masquerade" \
  "$VPNLAB run topologies/seed.toml --cell $CELL"
echo "NAT66 (IPv6)      median $(median <"$TMP/six_a" | ms)"
echo "masquerade (IPv4) median $(median <"$TMP/six_b" | ms)"
echo "ratio IPv6/IPv4: median $(median <"$TMP/six_ratio") (target <= 1.2)"
echo
echo "== root-cause classification in failed cells ($RUNS runs each: diagnosis/misconfigured psk, diagnosis/blocked block-4500)"
: >"$TMP/diag"; : >"$TMP/diag_cell"
for i in $(seq "$RUNS"); do
  for spec in "topologies/diagnosis/misconfigured.toml misconfigured/misconfigured=psk" \
              "topologies/diagnosis/blocked.toml blocked/nat=block-4500"; do
    set -- $spec
    $VPNLAB run "$1" --cell "$2" --report "$TMP/d.json" >/dev/null 2>&1 || true
    grep -o '"diagnose_ms": [0-9.]*' "$TMP/d.json" | awk '{print $2}' >>"$TMP/diag"
    grep -o '"elapsed_ms": [0-9]*' "$TMP/d.json" | awk '{print $2}' >>"$TMP/diag_cell"
  done
done
echo "classification: median $(median <"$TMP/diag") ms, max $(sort -g "$TMP/diag" | tail -1) ms (target <= 5 ms)"
echo "those cells:    median $(median <"$TMP/diag_cell") ms"
echo
echo "== HTML page of a run's report ($RUNS runs each, alternated; baseline: vpnlab diff of the report with itself, i.e. reading it twice)"
# BENCH_REPORT: a JSON report of the whole suite (ci/run-scenarios.sh
# --report FILE); without one, the seed and field cells are run for it.
REPORT=${BENCH_REPORT:-$TMP/suite.json}
[ -n "${BENCH_REPORT:-}" ] || $VPNLAB run topologies/seed.toml topologies/field --jobs 2 --report "$REPORT" >/dev/null 2>&1 || true
alternate html "$RUNS" "$VPNLAB html $REPORT --out $TMP/page.html" "$VPNLAB diff $REPORT $REPORT"
echo "cells: $(grep -c '"elapsed_ms"' "$REPORT"), report $(( $(stat -c %s "$REPORT") / 1024 )) KiB, page $(( $(stat -c %s "$TMP/page.html") / 1024 )) KiB (target <= 5120 KiB for the whole suite)"
echo "write the page: median $(median <"$TMP/html_a" | ms) (target <= 1000 ms for the whole suite)"
echo "read it twice:  median $(median <"$TMP/html_b" | ms)"
echo "ratio page/read: median $(median <"$TMP/html_ratio")"
