#!/usr/bin/env bash
# Leader kill under load: how long the SIEM waits for delivery to resume after the leader is
# SIGKILLed, and whether every acknowledged alert still arrives.
#
#   bash tests/bench/leader-kill.sh [--runs 5] [--rate 2000/s] [--before 4] [--after 6]
#                                   [--size 1024] [--batch 100] [--concurrency 8]
#                                   [--relay-bin PATH]
#
# Each run starts a fresh 3-node cluster (release build, 127.0.0.1, random ports) delivering to a
# fresh siem-sink over TCP. relay-load submits alerts over gRPC to all three nodes at --rate for
# --before + --after seconds and writes the ID of every acknowledged alert to a file. After
# --before seconds the script asks the nodes' Status API for the leader and SIGKILLs it, noting
# the time (ns). The sink reports when each TCP connection opened and read its first alert; the
# new leader opens a new connection, so
#   resume = (first alert read on the first connection opened after the kill) - (kill time).
# lost = acknowledged IDs the sink never received (waited for up to 60 s after the load ends).
# Prints each run and, at the end, p50 and max of resume and the total lost; exit status 1 if
# any acknowledged alert was lost. KEEP=1 keeps the work folders (logs, sink events).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=lib.sh
. "$root/tests/bench/lib.sh"
runs=5 rate=2000/s before=4 after=6 size=1024 batch=100 concurrency=8 relay_bin=
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --before) before=$2; shift 2 ;;
    --after) after=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --relay-bin) relay_bin=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
cd "$root"
cargo build --release -q -p siem-relay -p loadkit
bin=$root/target/release
relay_bin=${relay_bin:-$bin/siem-relay}
top=$(mktemp -d /tmp/siem-relay-leader-kill.XXXXXX)
pids=()
cleanup() {
  stop_pids "${pids[@]}"
  if [ -n "${KEEP:-}" ]; then echo "kept: $top"; else rm -rf "$top"; fi
}
trap cleanup EXIT

# leader ENDPOINT [NOT]: the leader's node ID once every answering node names the same one (and
# it is not NOT, the node just killed).
leader() {
  local out l
  for _ in $(seq 150); do
    out=$("$bin/relay-load" --status --endpoint "$1" --call-timeout-ms 1000 2>/dev/null || true)
    l=$(printf '%s\n' "$out" | python3 -c '
import json, sys
seen = {json.loads(l).get("leader_id") for l in sys.stdin if "node_id" in l}
print(seen.pop() if len(seen) == 1 and None not in seen and str(next(iter(seen))) != sys.argv[1] else "")' "${2:-}")
    if [ -n "$l" ]; then echo "$l"; return 0; fi
    sleep 0.1
  done
  return 1
}

uptime | sed 's/^/load: /'
vmstat 1 3 | tail -1 | awk '{print "vmstat before: us " $13 " sy " $14 " id " $15 " st " $17}'
results=$top/results.jsonl
for run in $(seq "$runs"); do
  work=$top/run$run
  mkdir -p "$work"
  sink_port=$(port)
  "$bin/siem-sink" --tcp "127.0.0.1:$sink_port" --connections --record "$work/received.txt" \
    --every-ms 500 > "$work/sink.jsonl" &
  sink_pid=$!; pids+=($sink_pid)
  declare -A node_pid
  write_node_configs "$work" "$sink_port"
  for id in 1 2 3; do
    RUST_LOG=warn "$relay_bin" serve --config "$work/n$id.toml" 2> "$work/n$id.log" &
    node_pid[$id]=$!; pids+=($!)
  done
  endpoint="127.0.0.1:${api[1]},127.0.0.1:${api[2]},127.0.0.1:${api[3]}"
  first=$(leader "$endpoint") || { echo "run $run: no leader"; exit 1; }
  seconds=$(python3 -c "print($before + $after)")
  "$bin/relay-load" --endpoint "$endpoint" --rate "$rate" --seconds "$seconds" --size "$size" \
    --batch "$batch" --concurrency "$concurrency" --acked "$work/acked.txt" --json \
    > "$work/load.json" 2> "$work/load.log" &
  load_pid=$!; pids+=($load_pid)
  sleep "$before"
  victim=$(leader "$endpoint") || { echo "run $run: no leader under load"; exit 1; }
  kill_ns=$(date +%s%N)
  kill -KILL "${node_pid[$victim]}"
  wait "${node_pid[$victim]}" 2>/dev/null || true
  others=()
  for id in 1 2 3; do [ "$id" = "$victim" ] || others+=("127.0.0.1:${api[$id]}"); done
  new=$(leader "$(IFS=,; echo "${others[*]}")" "$victim" || echo "?")
  wait "$load_pid" || true
  # every acknowledged ID at the sink, or 60 s
  python3 - "$work/acked.txt" "$work/received.txt" <<'PY' || true
import sys, time
def numbers(path):
    try:
        return {int(l.strip().rsplit("-", 1)[-1]) for l in open(path) if l.strip()}
    except FileNotFoundError:
        return set()
acked = numbers(sys.argv[1])
deadline = time.time() + 60
while time.time() < deadline and not acked <= numbers(sys.argv[2]):
    time.sleep(0.2)
PY
  python3 - "$run" "$first" "$victim" "$new" "$kill_ns" "$work" >> "$results" <<'PY'
import json, sys
run, first, victim, new, kill_ns, work = sys.argv[1:]
kill_ns = int(kill_ns)
def numbers(path):
    return [int(l.strip().rsplit("-", 1)[-1]) for l in open(path) if l.strip()]
acked = set(numbers(f"{work}/acked.txt"))
received = numbers(f"{work}/received.txt")
got = set(received)
opened, first_alert = {}, {}
for line in open(f"{work}/sink.jsonl"):
    e = json.loads(line).get("connection")
    if not e:
        continue
    if e["event"] == "opened":
        opened[e["conn"]] = (e["at_ns"], e["peer"])
    elif e["event"] == "first_alert":
        first_alert[e["conn"]] = (e["at_ns"], e["event_id"])
after = sorted((at, c) for c, (at, _) in opened.items() if at > kill_ns)
resume_ms, conn_text = None, "no connection after the kill"
for _, c in after:
    if c in first_alert:
        at, eid = first_alert[c]
        resume_ms = (at - kill_ns) / 1e6
        conn_text = f"first alert {eid} on connection {c} from {opened[c][1]}"
        break
load = json.load(open(f"{work}/load.json"))
print(json.dumps({
    "run": int(run), "leader": int(first), "killed": int(victim), "new_leader": new,
    "resume_ms": resume_ms, "where": conn_text, "acked": len(acked),
    "received_unique": len(got), "received_duplicates": len(received) - len(got),
    "lost": len(acked - got), "load_errors": load.get("error_alerts"),
    "accepted_per_second": round(load.get("accepted_per_second", 0)),
}))
PY
  python3 - "$results" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
resume = "none" if r["resume_ms"] is None else f"{r['resume_ms']:.0f} ms"
print(f"run {r['run']}: leader n{r['killed']} SIGKILLed, new leader n{r['new_leader']}; "
      f"delivery resumed after {resume} ({r['where']}); acknowledged {r['acked']}, "
      f"received {r['received_unique']} unique (+{r['received_duplicates']} duplicates), "
      f"lost {r['lost']}; load {r['accepted_per_second']}/s accepted, "
      f"{r['load_errors']} alerts in errors")
PY
  cur=()
  for id in 1 2 3; do cur+=("${node_pid[$id]}"); done
  stop_pids "${cur[@]}" "$sink_pid"
  [ -n "${KEEP:-}" ] || rm -rf "$work"
done
vmstat 1 3 | tail -1 | awk '{print "vmstat after: us " $13 " sy " $14 " id " $15 " st " $17}'
python3 - "$results" <<'PY'
import json, statistics, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
times = sorted(r["resume_ms"] for r in rs if r["resume_ms"] is not None)
lost = sum(r["lost"] for r in rs)
missing = sum(1 for r in rs if r["resume_ms"] is None)
if times:
    print(f"== {len(rs)} runs: delivery resumed after the leader kill p50 {statistics.median(times):.0f} ms, "
          f"max {max(times):.0f} ms (target <= 2000 ms: {'met' if max(times) <= 2000 and not missing else 'not met'}); "
          f"lost {lost} acknowledged alerts (target 0)" + (f"; {missing} runs without resumed delivery" if missing else ""))
else:
    print(f"== {len(rs)} runs: delivery never resumed; lost {lost}")
sys.exit(1 if lost or missing else 0)
PY
