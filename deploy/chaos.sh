#!/usr/bin/env bash
# The chaos script against this compose deployment (docs/chaos.md): builds relay-chaos, then
# drives load through the three nodes' published APIs while it kills, pauses and cuts off nodes
# and receivers, adds and removes a node, and prints the verdict and the failover times.
# The deployment must be up (deploy/up.sh) with images built from this checkout
# (deploy/build-image.sh); root is needed (iptables on the host's forwarding path, the receivers'
# volumes). Exit code: 0 pass, 1 violation, 2 harness failure.
#   deploy/chaos.sh                         # 10 minutes of faults, random seed (printed)
#   deploy/chaos.sh --duration 120 --seed 7 # any relay-chaos option (relay-chaos compose --help)
set -euo pipefail
deploy_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_dir="$(dirname "$deploy_dir")"
(cd "$repo_dir" && cargo build --locked --release -q -p relay-chaos)
exec "${CARGO_TARGET_DIR:-$repo_dir/target}/release/relay-chaos" compose --deploy-dir "$deploy_dir" "$@"
