#!/usr/bin/env bash
# Every catalogue type, encoded by the cef crate, read back by two third-party CEF parsers
# (pycef and liblognorm). Installed by tests/setup/install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo run -q --locked -p cef --example catalogue_samples | python3 tests/checks/third_party_cef.py
