#!/usr/bin/env bash
# vpnlab's main job: install prerequisites, build, and run the bundled
# scenarios (topologies/). Extra arguments go to `vpnlab run`, e.g.
#   sudo ci/run-scenarios.sh --jobs 2 --report outcomes.json
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/setup.sh
cargo build --release --quiet
# The UML kernel for cells that need kernel ESP or PPP (built once, cached).
if [ "${VPNLAB_BUILD_UML:-}" = 1 ]; then
  target/release/vpnlab uml-kernel >/dev/null
fi
# Cells this kernel cannot run (kernel ESP or PPP missing) run in a guest
# kernel (KVM, else UML, else TCG: see `vpnlab run --help`); the rest here.
exec target/release/vpnlab run --kernel-when-needed auto topologies "$@"
