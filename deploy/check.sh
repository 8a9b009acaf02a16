#!/usr/bin/env bash
# Checks a running compose deployment from the host, through the published ports: the status of
# node 1 (a leader is known) and of all three, then one test alert through node 2 (forwarded to
# the leader) until the cluster's cursor passes it and a SIEM receiver has counted it.
# Exit 0: all passed; 1: a check failed.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIEM_RELAY_TOKEN="${SIEM_RELAY_TOKEN:-$(env_value SIEM_RELAY_ADMIN_TOKEN)}"
export SIEM_RELAY_TOKEN
all_nodes=127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003

fail() {
    echo "check failed: $*" >&2
    exit 1
}

# The messages receiver $1 has counted, from its last stats line (printed every 5 s).
received_by() {
    local id
    id="$(container_of "$1")"
    [[ -n "$id" ]] || fail "no container for $1"
    docker logs --tail 1 "$id" 2>/dev/null | grep -oE '"messages":[0-9]+' | grep -oE '[0-9]+$' ||
        echo 0
}

# The messages both receivers have counted.
received_total() {
    echo $(($(received_by siem-1) + $(received_by siem-2)))
}

echo "== siem-relay status (node 1, 127.0.0.1:7001)"
cli --endpoint 127.0.0.1:7001 status
status_json="$(cli --endpoint 127.0.0.1:7001 --json status)"
grep -qE '"leader_id": [0-9]+' <<<"$status_json" || fail "no leader known"

echo "== siem-relay status --all"
cli --endpoint "$all_nodes" status --all

echo "== siem-relay test-alert (through node 2)"
before="$(received_total)"
sent="$(cli --endpoint 127.0.0.1:7002 --json test-alert)"
echo "$sent"
seq="$(echo "$sent" | grep -oE '"seq": [0-9]+' | grep -oE '[0-9]+$')"
[[ -n "$seq" ]] || fail "test-alert answered no outbox seq"

started_ms="$(now_ms)"
deadline_ms=$((started_ms + 15000))
# The cluster's cursor: every record up to it is confirmed delivered.
delivered_up_to() {
    cli --endpoint 127.0.0.1:7001 --json status | grep -oE '"delivered_up_to": [0-9]+' |
        grep -oE '[0-9]+$' || echo 0
}

until (($(delivered_up_to) >= seq)); do
    (($(now_ms) < deadline_ms)) || fail "outbox seq $seq not delivered after 15 s"
    sleep 0.2
done
echo "delivered: the cluster's cursor passed outbox seq $seq after $(($(now_ms) - started_ms)) ms"

# The cursor passes a record only once the receiver's kernel acknowledged its bytes; the
# receivers' own count shows it arrived (with the activity-log record of the test-alert call).
deadline_ms=$(($(now_ms) + 10000))
until (($(received_total) > before)); do
    (($(now_ms) < deadline_ms)) || fail "the receivers counted no new message within 10 s"
    sleep 0.5
done
echo "received: siem-1 counted $(received_by siem-1) messages, siem-2 $(received_by siem-2)" \
    "($before before the test alert)"
echo "== the receivers' last stats lines (docker-compose logs)"
compose logs --no-color --tail 1 siem-1 siem-2
echo "check passed"
