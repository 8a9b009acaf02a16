#!/usr/bin/env bash
# Builds the two images of the compose deployment from statically linked binaries:
#   siem-relay:local       the node (deploy/Dockerfile)
#   siem-relay-sink:local  the test SIEM receiver, loadkit's siem-sink (deploy/Dockerfile.sink)
# The release build takes minutes (10-17 on 2 busy cores); the images take seconds.
# Usage: deploy/build-image.sh [--skip-build]   (--skip-build: use the binaries already built)
set -euo pipefail

deploy_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_dir="$(dirname "$deploy_dir")"
target="x86_64-unknown-linux-gnu"
staging="$deploy_dir/.staging"
tag="${SIEM_RELAY_IMAGE_TAG:-local}"

if [[ "${1:-}" != "--skip-build" ]]; then
    # Static glibc (static-pie). getrandom must use the syscall: a FROM scratch image has no
    # /dev/urandom. --target keeps RUSTFLAGS away from build scripts (docs/deploy.md).
    (cd "$repo_dir" && RUSTFLAGS='-C target-feature=+crt-static --cfg getrandom_backend="linux_getrandom"' \
        cargo build --locked --release --target "$target" \
        -p siem-relay -p loadkit --bin siem-relay --bin siem-sink)
fi

bin_dir="${CARGO_TARGET_DIR:-$repo_dir/target}/$target/release"
rm -rf "$staging"
mkdir -p "$staging/empty"
for bin in siem-relay siem-sink; do
    if [[ "$(file -L "$bin_dir/$bin")" != *static* ]]; then
        echo "error: $bin_dir/$bin is missing or not statically linked" >&2
        exit 1
    fi
    # Debug symbols are not needed in the image (about 3x smaller).
    strip -o "$staging/$bin" "$bin_dir/$bin"
done

docker build -q -f "$deploy_dir/Dockerfile" -t "siem-relay:$tag" "$staging"
docker build -q -f "$deploy_dir/Dockerfile.sink" -t "siem-relay-sink:$tag" "$staging"
rm -rf "$staging"
docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep -E "^siem-relay(-sink)?:$tag "
