#!/usr/bin/env bash
# vpnlab's main job: install prerequisites, build, and run the bundled
# scenarios (topologies/). Extra arguments go to `vpnlab run`, e.g.
#   sudo ci/run-scenarios.sh --jobs 2 --report outcomes.json
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/setup.sh
cargo build --release --quiet
# Cells this kernel cannot run (kernel ESP or PPP missing) run in one VM
# boot of the installed distribution kernel; the rest run here.
exec target/release/vpnlab run --kernel-when-needed auto topologies "$@"
