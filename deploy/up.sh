#!/usr/bin/env bash
# Brings the compose deployment up (deploy/compose.yaml with deploy/.env) and waits until the
# three nodes are healthy and agree on a leader; prints how long that took.
# Exit 0: up; 1: not up within UP_TIMEOUT_S seconds (default 60); 2: no deploy/.env.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ ! -f .env ]]; then
    echo "error: deploy/.env is missing: copy deploy/.env.example to deploy/.env and fill in" \
        "SIEM_RELAY_CLUSTER_SECRET and SIEM_RELAY_ADMIN_TOKEN" >&2
    exit 2
fi
timeout_s="${UP_TIMEOUT_S:-60}"
nodes=(relay-1 relay-2 relay-3)

# The leader node $1's API names, or nothing.
leader_seen_by() {
    docker exec "$1" /usr/local/bin/siem-relay --json --timeout 2s status 2>/dev/null |
        grep -oE '"leader_id": [0-9]+' | grep -oE '[0-9]+$' || true
}

# True when every node is healthy and all name the same leader (printed).
cluster_ready() {
    local leaders=() id
    for node in "${nodes[@]}"; do
        id="$(container_of "$node")"
        [[ -n "$id" ]] || return 1
        [[ "$(docker inspect -f '{{.State.Health.Status}}' "$id")" == healthy ]] || return 1
        leaders+=("$(leader_seen_by "$id")")
    done
    [[ -n "${leaders[0]}" && "${leaders[0]}" == "${leaders[1]}" && "${leaders[0]}" == "${leaders[2]}" ]] || return 1
    echo "${leaders[0]}"
}

started_ms="$(now_ms)"
compose up -d
deadline_ms=$((started_ms + timeout_s * 1000))
until leader="$(cluster_ready)"; do
    if (($(now_ms) > deadline_ms)); then
        echo "error: the cluster is not up after ${timeout_s} s; see \`docker-compose -f deploy/compose.yaml logs\`" >&2
        compose ps >&2
        exit 1
    fi
    sleep 0.5
done
echo "up: 3 nodes healthy, leader node $leader, $(($(now_ms) - started_ms)) ms after \`up\` started"
echo "API: 127.0.0.1:7001-7003, metrics: 127.0.0.1:9101-9103 (see deploy/check.sh)"
