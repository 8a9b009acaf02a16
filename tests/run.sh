#!/usr/bin/env bash
# The project's test command. On a fresh machine it installs what the tests need (Debian and
# PyPI packages), then runs every Rust test in the workspace and the script checks in
# tests/checks/ (each prints what it verified). Exit code 0 only if everything passed.
#
#   bash tests/run.sh            # everything
#   bash tests/run.sh --no-deps  # skip the package installation step
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if [ "${1:-}" != "--no-deps" ]; then
  bash tests/setup/install-deps.sh
fi

echo "== cargo build (workspace, all targets)"
cargo build --workspace --all-targets --locked

echo "== cargo test (workspace)"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  # nextest does not run doctests
  cargo test --workspace --locked --doc
else
  cargo test --workspace --locked --no-fail-fast
fi

shopt -s nullglob
for check in tests/checks/*.sh; do
  echo "== $check"
  bash "$check"
done
echo "== all tests passed"
