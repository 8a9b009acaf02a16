#!/usr/bin/env bash
# End-to-end figures of a local 3-node cluster: relay-load sends alerts to all three nodes (over
# gRPC, or as CEF over syslog to their syslog listeners), the leader delivers them to siem-sink
# over TCP; prints the load generator's summary, the rate at which the sink received every alert,
# the leader's ingest-to-confirmed latency (its Prometheus histogram),
# vmstat and the nodes' RSS and CPU time.
#
#   bash tests/bench/cluster-e2e.sh [--seconds 60] [--rate 0|N/s] [--size 1024] [--batch 500]
#                                    [--concurrency 8] [--relay-bin PATH]
#                                    [--ingest grpc|syslog] [--peer rsyslog]
#                                    [--rsyslog-queue checkpoint|disk|sync]
#
# --ingest syslog: relay-load writes CEF over syslog (TCP, octet-counted) to the three nodes'
# [syslog] listeners. --peer rsyslog (with --ingest syslog): after the cluster's run, the cluster
# is stopped and the same relay-load load goes to one rsyslogd (started here: foreground, own
# config, work folder and pid file) that relays it imtcp -> omfwd TCP through a disk action queue
# to a fresh siem-sink; both received/s and the ratio siem-relay/rsyslog are printed.
# --rsyslog-queue (the action queue; see docs/node.md "Benchmark" for what each keeps):
#   checkpoint (default): queue.type="Disk" queue.checkpointInterval="1"
#   disk:                 queue.type="Disk" (rsyslog's defaults otherwise)
#   sync:                 queue.type="Disk" queue.checkpointInterval="1" queue.syncQueueFiles="on"
#
# Release binaries are built first. Everything runs on 127.0.0.1 ports chosen at random, under a
# temporary folder that is removed at the end (KEEP=1 keeps it, with the nodes' logs); every
# process started here is stopped by PID.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=lib.sh
. "$root/tests/bench/lib.sh"
seconds=60 rate=0 size=1024 batch=500 concurrency=8 relay_bin= ingest=grpc peer= rsyslog_queue=checkpoint
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --relay-bin) relay_bin=$2; shift 2 ;;   # another siem-relay build, for an A/B comparison
    --ingest) ingest=$2; shift 2 ;;
    --peer) peer=$2; shift 2 ;;
    --rsyslog-queue) rsyslog_queue=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
case "$ingest" in grpc|syslog) ;; *) echo "--ingest: grpc or syslog" >&2; exit 2 ;; esac
case "$peer" in ""|rsyslog) ;; *) echo "--peer: only rsyslog" >&2; exit 2 ;; esac
case "$rsyslog_queue" in
  disk) queue_settings='queue.type="Disk"' ;;
  checkpoint) queue_settings='queue.type="Disk" queue.checkpointInterval="1"' ;;
  sync) queue_settings='queue.type="Disk" queue.checkpointInterval="1" queue.syncQueueFiles="on"' ;;
  *) echo "--rsyslog-queue: checkpoint, disk or sync" >&2; exit 2 ;;
esac
if [ "$peer" = rsyslog ] && [ "$ingest" != syslog ]; then
  echo "--peer rsyslog needs --ingest syslog (the same syslog load to both)" >&2; exit 2
fi
if [ "$ingest" = syslog ] && [ "$batch" -gt 4096 ]; then batch=4096; fi
cd "$root"
cargo build --release -q -p siem-relay -p loadkit
bin=$root/target/release
relay_bin=${relay_bin:-$bin/siem-relay}
work=$(mktemp -d /tmp/siem-relay-e2e.XXXXXX)
pids=()
cleanup() {
  stop_pids "${pids[@]}"
  if [ -n "${KEEP:-}" ]; then echo "kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

sink_unique() { tail -1 "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["stats"]["unique"])' 2>/dev/null || echo 0; }

# start_sink NAME: a siem-sink on a free port; sets sink_port and sink_out.
start_sink() {
  sink_port=$(port)
  sink_out=$work/$1.jsonl
  "$bin/siem-sink" --tcp "127.0.0.1:$sink_port" --every-ms 200 > "$sink_out" &
  sink_pid=$!
  pids+=($!)
}

# run_load LABEL ENDPOINT [ARGS...]: the measured relay-load run; waits until the sink has every
# alert sent (syslog) or accepted (gRPC); sets received_per_s.
run_load() {
  local label=$1 endpoint=$2; shift 2
  vmstat 5 2 | tail -1 | awk '{print "vmstat before: us " $13 " sy " $14 " id " $15 " st " $17}'
  (vmstat 10 $(( seconds / 10 + 1 )) | awk 'NR>3 {print "vmstat during: us " $13 " sy " $14 " id " $15 " st " $17}' > "$work/vmstat-$label.txt") &
  local vm=$!
  local t_start t_done n got
  t_start=$(date +%s.%N)
  # In a subshell whose `times` then gives relay-load's CPU time (its only child).
  ( "$bin/relay-load" --endpoint "$endpoint" --rate "$rate" --seconds "$seconds" --size "$size" \
    --batch "$batch" --concurrency "$concurrency" --json "$@" > "$work/load-$label.json" || true
    times > "$work/times-$label.txt" )
  cat "$work/load-$label.json"
  if [ "$ingest" = syslog ]; then n=$(json_field "$work/load-$label.json" sent)
  else n=$(json_field "$work/load-$label.json" accepted); fi
  echo "== waiting for the sink to receive all $n alerts"
  got=0
  for _ in $(seq 1500); do
    got=$(sink_unique "$sink_out")
    [ "$got" -ge "$n" ] && break
    sleep 0.2
  done
  t_done=$(date +%s.%N)
  tail -1 "$sink_out"
  wait "$vm" 2>/dev/null || true
  cat "$work/vmstat-$label.txt"
  received_count=$got
  received_per_s=$(python3 -c "import sys; n=int(sys.argv[1]); t=float(sys.argv[3])-float(sys.argv[2]); print(round(n/t))" "$got" "$t_start" "$t_done")
  python3 -c "import sys; t=float(sys.argv[3])-float(sys.argv[2]); print(f'received by the sink ({sys.argv[4]}): {sys.argv[1]} unique alerts in {t:.1f} s = {sys.argv[5]} alerts/s')" "$got" "$t_start" "$t_done" "$label" "$received_per_s"
  if [ "$got" -lt "$n" ]; then echo "!! the sink has $got of $n alerts after 300 s"; fi
  # The harness shares the CPUs with what it measures: say how much it took.
  local hz load_cpu sink_cpu
  hz=$(getconf CLK_TCK)
  load_cpu=$(tail -1 "$work/times-$label.txt" | python3 -c '
import re, sys
print(round(sum(int(m) * 60 + float(s) for m, s in re.findall(r"(\d+)m([\d.]+)s", sys.stdin.read())), 1))')
  sink_cpu=$(python3 -c "print(round($(cpu_ticks "$sink_pid") / $hz, 1))")
  echo "harness CPU ($label): relay-load $load_cpu s, siem-sink $sink_cpu s (since it started)"
}

# ---- the siem-relay cluster
start_sink relay
if [ "$ingest" = syslog ]; then
  write_node_configs "$work" "$sink_port" '[syslog]
tcp = "127.0.0.1:{syslog}"'
else
  write_node_configs "$work" "$sink_port"
fi
node_pids=()
for id in 1 2 3; do
  RUST_LOG=${RUST_LOG:-warn} "$relay_bin" serve --config "$work/n$id.toml" 2> "$work/n$id.log" &
  pids+=($!); node_pids+=($!)
done
endpoint="127.0.0.1:${api[1]},127.0.0.1:${api[2]},127.0.0.1:${api[3]}"
syslog_endpoint="127.0.0.1:${syslog[1]},127.0.0.1:${syslog[2]},127.0.0.1:${syslog[3]}"
rss_line() { for p in "${node_pids[@]}"; do printf '%s ' "$(( $(awk '/VmRSS/{print $2}' "/proc/$p/status") / 1024 )) MiB"; done; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
echo "== relay-load ($ingest): $seconds s, rate $rate, $size B alerts, batch $batch, concurrency $concurrency"
# warm-up: one alert over gRPC (number 1, so with --ingest syslog the sink counts one duplicate)
"$bin/relay-load" --endpoint "$endpoint" --rate "$rate" --seconds 3 --count 1 --batch 1 > /dev/null 2>&1 || true
sleep 5
echo "node RSS at rest (after start and one alert): $(rss_line)"
declare -A cpu0
for p in "${node_pids[@]}"; do cpu0[$p]=$(cpu_ticks "$p"); done
if [ "$ingest" = syslog ]; then
  run_load siem-relay "$syslog_endpoint" --ingest syslog
else
  run_load siem-relay "$endpoint"
fi
relay_per_s=$received_per_s relay_received=$received_count
# The leader is the node whose histogram counted records (warm-up alert included).
for id in 1 2 3; do
  curl -s "http://127.0.0.1:${prom[$id]}/metrics" | python3 -c '
import sys
name = "relay_ingest_to_confirmed_seconds"
buckets, count = [], 0.0
for line in sys.stdin:
    if line.startswith(name + "_bucket{le=\""):
        le = line.split("\"")[1]
        buckets.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
    elif line.startswith(name + "_count "):
        count = float(line.split()[-1])
if count > 0:
    buckets.sort()
    def q(p):
        for le, n in buckets:
            if n >= p * count:
                return "<= %g ms" % (le * 1000)
    print("node %s: ingest-to-confirmed (histogram, %d records): p50 %s, p90 %s, p99 %s" % (sys.argv[1], count, q(0.5), q(0.9), q(0.99)))
' "$id"
done
hz=$(getconf CLK_TCK)
python3 -c 'import json,sys; l=json.load(open(sys.argv[1]))["latency_ms"]; print("submit-to-commit latency ms: " + " ".join(f"{k} {v:.1f}" for k, v in l.items()))' "$work/load-siem-relay.json" 2>/dev/null || true
id=0
for p in "${node_pids[@]}"; do
  id=$((id + 1))
  rss=$(awk '/VmRSS/{print $2}' "/proc/$p/status")
  cpu=$(( $(cpu_ticks "$p") - ${cpu0[$p]} ))
  # Append-entries calls that missed openraft's deadline (the heartbeat interval) and were sent
  # again, and log group commits (fsync) slower than 50 ms, from the node's warnings.
  timeouts=$(grep -c 'error replication to target=.*Timeout expired' "$work/n$id.log" || true)
  slow=$(grep -c 'slow raft log commit' "$work/n$id.log" || true)
  echo "node $id pid $p: RSS $((rss / 1024)) MiB, CPU $(python3 -c "print(round($cpu/$hz,1))") s during the run, $(python3 -c "print(round($cpu/$hz/max($relay_received,1)*1e5,2))") CPU-s per 100k alerts, append timeouts $timeouts, slow fsyncs $slow"
done
[ -n "$peer" ] || exit 0

# ---- the same load through rsyslog, with the cluster stopped (and its data removed: disk space)
stop_pids "${node_pids[@]}"
rm -rf "$work/n1" "$work/n2" "$work/n3"
start_sink rsyslog
rs_port=$(port)
mkdir -p "$work/rsyslog"
cat > "$work/rsyslog/rsyslog.conf" <<CONF
global(workDirectory="$work/rsyslog" maxMessageSize="64k")
module(load="imtcp" maxSessions="200")
input(type="imtcp" address="127.0.0.1" port="$rs_port" ruleset="fwd")
template(name="raw" type="string" string="%rawmsg%")
ruleset(name="fwd") {
  action(type="omfwd" target="127.0.0.1" port="$sink_port" protocol="tcp"
         TCP_Framing="octet-counted" template="raw"
         $queue_settings queue.filename="fwd" queue.size="10000000" queue.maxDiskSpace="1g"
         action.resumeRetryCount="-1" action.resumeInterval="1")
}
CONF
rsyslogd -n -f "$work/rsyslog/rsyslog.conf" -i "$work/rsyslog/rsyslog.pid" \
  > "$work/rsyslog/stdout" 2> "$work/rsyslog/stderr" &
rs_pid=$!; pids+=($rs_pid)
for _ in $(seq 100); do
  python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),0.2)' "$rs_port" 2>/dev/null && break
  sleep 0.1
done
echo "== rsyslogd $(rsyslogd -v | head -1 | awk '{print $2}') (pid $rs_pid): imtcp -> omfwd TCP, action queue: $queue_settings"
cpu_rs0=$(cpu_ticks "$rs_pid")
run_load rsyslog "127.0.0.1:$rs_port" --ingest syslog
echo "rsyslogd: RSS $(( $(awk '/VmRSS/{print $2}' "/proc/$rs_pid/status") / 1024 )) MiB, CPU $(python3 -c "print(round(($(cpu_ticks "$rs_pid") - $cpu_rs0)/$hz,1))") s during the run"
python3 -c "import sys; a=int(sys.argv[1]); b=int(sys.argv[2]); print(f'== received/s at the sink: siem-relay (3 nodes, syslog listener) {a}, rsyslog ({sys.argv[3]}) {b}; ratio siem-relay/rsyslog {a/b:.2f}')" "$relay_per_s" "$received_per_s" "$queue_settings"
