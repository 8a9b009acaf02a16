# shellcheck shell=bash
# Shared by up.sh, check.sh and down.sh (sourced, not run): the compose command, the project
# name, and the CLI used from the host.

deploy_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$deploy_dir" || exit 2

# KEY's value in deploy/.env (empty when the file or the key is missing).
env_value() {
    if [[ -f .env ]]; then
        sed -n "s/^$1=//p" .env | tail -n 1
    fi
}

# Compose reads deploy/.env itself; the project name is also needed here for docker commands.
export COMPOSE_PROJECT_NAME="${COMPOSE_PROJECT_NAME:-$(env_value COMPOSE_PROJECT_NAME)}"
export COMPOSE_PROJECT_NAME="${COMPOSE_PROJECT_NAME:-siem-relay}"
image_tag="${SIEM_RELAY_IMAGE_TAG:-$(env_value SIEM_RELAY_IMAGE_TAG)}"
image_tag="${image_tag:-local}"

# Debian's docker-compose (v1) when installed, else the v2 plugin.
compose() {
    if command -v docker-compose >/dev/null; then
        docker-compose -f "$deploy_dir/compose.yaml" "$@"
    else
        docker compose -f "$deploy_dir/compose.yaml" "$@"
    fi
}

# The container ID of a compose service (empty when it has none).
container_of() {
    docker ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" \
        --filter "label=com.docker.compose.service=$1"
}

# The siem-relay CLI on the host: $SIEM_RELAY_BIN if set, else the image's binary with the
# host's network (so it reaches the ports published on 127.0.0.1). SIEM_RELAY_TOKEN is passed
# through the environment, never on a command line.
cli() {
    if [[ -n "${SIEM_RELAY_BIN:-}" ]]; then
        "$SIEM_RELAY_BIN" "$@"
    else
        docker run --rm --network host -e SIEM_RELAY_TOKEN "siem-relay:$image_tag" "$@"
    fi
}

# Milliseconds since the epoch.
now_ms() {
    echo $(($(date +%s%N) / 1000000))
}
