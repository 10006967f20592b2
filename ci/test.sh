#!/usr/bin/env bash
# The test command: install prerequisites, then run every test — unit tests,
# one test per scenario cell (with snapshots), the safety and CLI tests.
# Run as root; privileged tests are ignored otherwise (VPNLAB_REQUIRE_PRIVILEGED=1
# makes that a failure).
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/setup.sh

# vpnlab's UML kernel, built once and cached (about 8 minutes on 2 cores),
# so the VM phase runs under UML where KVM does not work.
if [ "${VPNLAB_BUILD_UML:-}" = 1 ]; then
  cargo build --quiet
  target/debug/vpnlab uml-kernel >/dev/null
fi

# Snapshots are compared, never written, by this script.
export INSTA_UPDATE=no

if cargo nextest --version >/dev/null 2>&1; then
  # Host tests first, then the cells that share one VM boot (`vm::`), so the
  # emulated VM does not compete with host cells for the CPUs.
  cargo nextest run --workspace --profile ci --no-tests=warn -E 'not (binary(scenarios) & test(/^vm::/))' "$@"
  # The VM batch runs under --kernel auto: KVM, else UML, else TCG
  # (VPNLAB_VM_ACCEL=kvm|uml|tcg decides instead).
  cargo nextest run --workspace --profile ci-vm --no-tests=warn -E 'binary(scenarios) & test(/^vm::/)' "$@"
else
  cargo test --workspace "$@"
fi
