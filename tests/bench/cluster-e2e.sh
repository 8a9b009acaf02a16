#!/usr/bin/env bash
# End-to-end figures of a local 3-node cluster: relay-load submits alerts over gRPC to all three
# nodes, the leader delivers them to siem-sink over TCP; prints the load generator's summary
# (accepted/s, latency percentiles), what the sink received and the nodes' RSS and CPU time.
#
#   bash tests/bench/cluster-e2e.sh [--seconds 60] [--rate 0|N/s] [--size 1024] [--batch 500]
#                                    [--concurrency 8] [--relay-bin PATH]
#
# Release binaries are built first. Everything runs on 127.0.0.1 ports chosen at random, under a
# temporary folder that is removed at the end (KEEP=1 keeps it, with the nodes' logs); every
# process started here is stopped by PID.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=60 rate=0 size=1024 batch=500 concurrency=8 relay_bin=
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --relay-bin) relay_bin=$2; shift 2 ;;   # another siem-relay build, for an A/B comparison
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
cd "$root"
cargo build --release -q -p siem-relay -p loadkit
bin=$root/target/release
relay_bin=${relay_bin:-$bin/siem-relay}
work=$(mktemp -d /tmp/siem-relay-e2e.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  if [ -n "${KEEP:-}" ]; then echo "kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sink_port=$(port)
"$bin/siem-sink" --tcp "127.0.0.1:$sink_port" --every-ms 1000 > "$work/sink.jsonl" &
pids+=($!)
echo "0123456789abcdef-e2e-bench-secret" > "$work/secret"
declare -A raft api
for id in 1 2 3; do raft[$id]=$(port); api[$id]=$(port); done
members="{ id = 1, raft = \"127.0.0.1:${raft[1]}\" }, { id = 2, raft = \"127.0.0.1:${raft[2]}\" }, { id = 3, raft = \"127.0.0.1:${raft[3]}\" }"
node_pids=()
for id in 1 2 3; do
  cat > "$work/n$id.toml" <<TOML
node_id = $id
data_dir = "n$id"
[listen]
raft = "127.0.0.1:${raft[$id]}"
ingest = "127.0.0.1:${api[$id]}"
[cluster]
initial_members = [$members]
secret_file = "secret"
[siem]
host = "127.0.0.1"
port = $sink_port
host_id = "bench"
TOML
  RUST_LOG=${RUST_LOG:-warn} "$relay_bin" serve --config "$work/n$id.toml" 2> "$work/n$id.log" &
  pids+=($!); node_pids+=($!)
done
endpoint="127.0.0.1:${api[1]},127.0.0.1:${api[2]},127.0.0.1:${api[3]}"
rss_line() { for p in "${node_pids[@]}"; do printf '%s ' "$(( $(awk '/VmRSS/{print $2}' "/proc/$p/status") / 1024 )) MiB"; done; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
echo "== relay-load: $seconds s, rate $rate, $size B alerts, batch $batch, concurrency $concurrency"
"$bin/relay-load" --endpoint "$endpoint" --rate "$rate" --seconds 3 --count 1 --batch 1 > /dev/null 2>&1 || true
sleep 5
echo "node RSS at rest (after start and one alert): $(rss_line)"
declare -A cpu0
for p in "${node_pids[@]}"; do cpu0[$p]=$(cpu_ticks "$p"); done
vmstat 5 2 | tail -1 | awk '{print "vmstat before: us " $13 " sy " $14 " id " $15 " st " $17}'
(vmstat 10 $(( seconds / 10 + 1 )) | awk 'NR>3 {print "vmstat during: us " $13 " sy " $14 " id " $15 " st " $17}' > "$work/vmstat.txt") &
pids+=($!)
t_start=$(date +%s.%N)
"$bin/relay-load" --endpoint "$endpoint" --rate "$rate" --seconds "$seconds" --size "$size" \
  --batch "$batch" --concurrency "$concurrency" --json > "$work/load.json"
cat "$work/load.json"
submitted=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("accepted", d.get("totals",{}).get("accepted",0)))' "$work/load.json" 2>/dev/null || echo "?")
echo "== waiting for the sink to receive everything accepted ($submitted + warm-up)"
for _ in $(seq 600); do
  got=$(tail -1 "$work/sink.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["stats"]["messages"])')
  [ "$submitted" != "?" ] && [ "$got" -ge "$submitted" ] && break
  sleep 0.5
done
t_done=$(date +%s.%N)
tail -1 "$work/sink.jsonl"
cat "$work/vmstat.txt"
python3 -c "import sys; n=int(sys.argv[1]); t=float(sys.argv[3])-float(sys.argv[2]); print(f'received by the sink: {n} alerts in {t:.1f} s = {n/t:.0f} alerts/s')" "$got" "$t_start" "$t_done"
hz=$(getconf CLK_TCK)
python3 -c 'import json,sys; l=json.load(open(sys.argv[1]))["latency_ms"]; print("submit-to-commit latency ms: " + " ".join(f"{k} {v:.1f}" for k, v in l.items()))' "$work/load.json" 2>/dev/null || true
id=0
for p in "${node_pids[@]}"; do
  id=$((id + 1))
  rss=$(awk '/VmRSS/{print $2}' "/proc/$p/status")
  cpu=$(( $(cpu_ticks "$p") - ${cpu0[$p]} ))
  # Append-entries calls that missed openraft's deadline (the heartbeat interval) and were sent
  # again, and log group commits (fsync) slower than 50 ms, from the node's warnings.
  timeouts=$(grep -c 'error replication to target=.*Timeout expired' "$work/n$id.log" || true)
  slow=$(grep -c 'slow raft log commit' "$work/n$id.log" || true)
  echo "node $id pid $p: RSS $((rss / 1024)) MiB, CPU $(python3 -c "print(round($cpu/$hz,1))") s during the run, $(python3 -c "print(round($cpu/$hz/max($got,1)*1e5,2))") CPU-s per 100k alerts, append timeouts $timeouts, slow fsyncs $slow"
done
