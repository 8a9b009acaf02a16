#!/usr/bin/env bash
# The short chaos run of CI: relay-chaos in local mode (three siem-relay processes, two siem-sink
# receivers behind a dnsmasq name, all on loopback) for 120 s of faults from a random seed,
# every fault kind (the iptables ones need root, which CI has). Prints the verdict; on a failure
# the artifacts (history, receivers' messages, node logs, the seed) stay in the folder it names.
# Uses the debug binaries built by tests/run.sh. The full 10-minute run: docs/chaos.md.
#
#   bash tests/checks/chaos.sh [--duration SECS] [--seed N]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="${CARGO_TARGET_DIR:-$root/target}/debug"
for b in relay-chaos siem-relay siem-sink; do
  if [ ! -x "$bin/$b" ]; then
    echo "chaos: $bin/$b is missing: run 'cargo build --workspace' first" >&2
    exit 2
  fi
done
artifacts=$(mktemp -d /tmp/relay-chaos-ci.XXXXXX)
set +e
"$bin/relay-chaos" local --duration 120 --artifacts "$artifacts" --bin-dir "$bin" "$@"
code=$?
set -e
if [ "$code" -eq 0 ]; then
  rm -rf "$artifacts"
  echo "chaos: passed"
else
  echo "chaos: FAILED with exit code $code; artifacts kept in $artifacts" >&2
fi
exit "$code"
