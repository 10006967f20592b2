#!/usr/bin/env bash
# vpnlab's main job: install prerequisites, build, and run the bundled
# scenarios (topologies/). Extra arguments go to `vpnlab run`, e.g.
#   sudo ci/run-scenarios.sh --jobs 2 --report outcomes.json
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/setup.sh
cargo build --release --quiet
exec target/release/vpnlab run topologies "$@"
