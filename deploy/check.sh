#!/usr/bin/env bash
# Checks a running compose deployment from the host, through the published ports: the status of
# node 1 (a leader is known) and of all three, then one test alert through node 2 (forwarded to
# the leader) until the cluster's cursor passes it and a SIEM receiver has recorded it.
# Exit 0: all passed; 1: a check failed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIEM_RELAY_TOKEN="${SIEM_RELAY_TOKEN:-$(env_value SIEM_RELAY_ADMIN_TOKEN)}"
export SIEM_RELAY_TOKEN
all_nodes=127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003

fail() {
    echo "check failed: $*" >&2
    exit 1
}

# The eventId numbers a receiver has recorded (its --record file), one a line.
recorded_ids() {
    local id
    id="$(container_of "$1")"
    [[ -n "$id" ]] || fail "no container for $1"
    docker cp "$id:/var/lib/siem-sink/ids" - 2>/dev/null | tar -xO 2>/dev/null || true
}

# How many eventIds both receivers have recorded.
recorded_count() {
    { recorded_ids siem-1; recorded_ids siem-2; } | wc -l
}

echo "== siem-relay status (node 1, 127.0.0.1:7001)"
cli --endpoint 127.0.0.1:7001 status
cli --endpoint 127.0.0.1:7001 --json status | grep -qE '"leader_id": [0-9]+' || fail "no leader known"

echo "== siem-relay status --all"
cli --endpoint "$all_nodes" status --all

echo "== siem-relay test-alert (through node 2)"
before="$(recorded_count)"
sent="$(cli --endpoint 127.0.0.1:7002 --json test-alert)"
echo "$sent"
seq="$(echo "$sent" | grep -oE '"seq": [0-9]+' | grep -oE '[0-9]+$')"
alert_id="$(echo "$sent" | grep -oE '"alert_id": "[^"]+"' | cut -d'"' -f4)"
number="${alert_id##*-}"
[[ -n "$seq" && -n "$number" ]] || fail "test-alert answered no seq or alert id"

started_ms="$(now_ms)"
deadline_ms=$((started_ms + 15000))
until cli --endpoint 127.0.0.1:7001 --json status | grep -oE '"delivered_up_to": [0-9]+' |
    grep -oE '[0-9]+$' | { read -r up && ((up >= seq)); }; do
    (($(now_ms) < deadline_ms)) || fail "outbox seq $seq not delivered after 15 s"
    sleep 0.2
done
echo "delivered: the cluster's cursor passed outbox seq $seq after $(($(now_ms) - started_ms)) ms"

for receiver in siem-1 siem-2; do
    if recorded_ids "$receiver" | grep -qx "$number"; then
        echo "received by $receiver: eventId $alert_id (recorded as $number);" \
            "$(recorded_ids "$receiver" | wc -l) eventIds recorded there"
        got=1
    fi
done
[[ -n "${got:-}" ]] || fail "no receiver recorded eventId number $number"
echo "receivers: $before eventIds recorded before the test alert, $(recorded_count) after"
echo "== the receivers' last stats lines (docker-compose logs)"
compose logs --no-color --tail 1 siem-1 siem-2
echo "check passed"
