#!/usr/bin/env bash
# siem-relay beside rsyslog, end to end, with the same load and the same kind of SIEM sink:
#   siem-relay       a local 3-node cluster, CEF over syslog TCP into all three nodes' [syslog]
#                    listeners (header = "keep": the message reaches the SIEM byte for byte)
#   rsyslog-memory   one rsyslogd, imtcp -> omfwd TCP through an in-memory action queue
#                    (queue.type="LinkedList")
#   rsyslog-disk     the same through a disk action queue kept over a crash of rsyslogd
#                    (queue.type="Disk" queue.checkpointInterval="1", cluster-e2e.sh's checkpoint)
# For each run (--runs, default 3) and each system, in sequence:
#   load phase  relay-load sends --rate alerts/s for --seconds (CEF over syslog TCP, octet-counted,
#               --size bytes of payload, --concurrency connections); siem-sink is the SIEM. Prints
#               alerts/s received by the sink, latency send -> sink (p50/p90/p99/max), CPU-seconds
#               per 100k alerts (the relay's three nodes summed; rsyslogd) and peak RSS per process.
#               What has not arrived --drain seconds after the load ended is given up (counted as
#               not arrived, and as slower than every arrival in the latency percentiles).
#   kill phase  at --kill-rate for --kill-seconds, the sink is SIGKILLed after --kill-at seconds and
#               started again on the same port --down seconds later; prints what was lost (sent by
#               relay-load minus unique eventIds the sink recorded, both incarnations) and the
#               duplicates.
# Then the spread (min / median / max) over the runs, a CSV time series per system and run (one
# row per second: received, p50 and p99 latency) and a PNG plot of them, under --out (default
# target/bench-e2e/<UTC time>); --write-docs also copies the plot to docs/benchmarks-e2e.png.
# How each figure is measured: docs/benchmarks.md.
#
#   bash tests/bench/e2e.sh [--runs 3] [--seconds 30] [--rate 10000/s] [--size 1024] [--batch 100]
#                           [--concurrency 8] [--kill-rate 2000/s] [--kill-seconds 20]
#                           [--kill-at 8] [--down 2] [--drain 30]
#                           [--systems siem-relay,rsyslog-memory,rsyslog-disk]
#                           [--phases load,kill] [--out DIR] [--write-docs] [--relay-bin PATH]
#
# Release binaries are built first. Everything runs on 127.0.0.1, ports chosen at random; the
# nodes' data and rsyslog's queue live under a temporary folder on disk, the sink's message log
# (for latency) under /dev/shm so that writing it does not compete with the fsyncs measured;
# both are removed at the end (KEEP=1 keeps the work folder, with the nodes' and rsyslog's logs).
# Every process started here is stopped by PID, also on failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=lib.sh
. "$root/tests/bench/lib.sh"
command_line="bash tests/bench/e2e.sh"
[ $# -eq 0 ] || command_line="$command_line$(printf ' %q' "$@")"
runs=3 seconds=30 rate=10000/s size=1024 batch=100 concurrency=8
kill_rate=2000/s kill_seconds=20 kill_at=8 down=2 drain=30
systems=siem-relay,rsyslog-memory,rsyslog-disk phases=load,kill out= write_docs= relay_bin=
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --kill-rate) kill_rate=$2; shift 2 ;;
    --kill-seconds) kill_seconds=$2; shift 2 ;;
    --kill-at) kill_at=$2; shift 2 ;;
    --down) down=$2; shift 2 ;;
    --drain) drain=$2; shift 2 ;;
    --systems) systems=$2; shift 2 ;;
    --phases) phases=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --write-docs) write_docs=1; shift ;;
    --relay-bin) relay_bin=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
for s in ${systems//,/ }; do
  case "$s" in siem-relay|rsyslog-memory|rsyslog-disk) ;; *) echo "--systems: siem-relay, rsyslog-memory, rsyslog-disk" >&2; exit 2 ;; esac
done
for p in ${phases//,/ }; do
  case "$p" in load|kill) ;; *) echo "--phases: load, kill" >&2; exit 2 ;; esac
done
if [ "$kill_at" -ge "$kill_seconds" ]; then echo "--kill-at must be below --kill-seconds" >&2; exit 2; fi
cd "$root"
report() { python3 "$root/tests/bench/e2e_report.py" "$@"; }
if ! python3 -c 'import matplotlib' 2>/dev/null; then
  echo "== installing matplotlib 3.9.2 (for the plot)"
  python3 -m pip install --quiet "matplotlib==3.9.2"
fi
command -v rsyslogd > /dev/null || { echo "rsyslogd is needed (apt-get install rsyslog)" >&2; exit 2; }
cargo build --release -q -p siem-relay -p loadkit
bin=$root/target/release
relay_bin=${relay_bin:-$bin/siem-relay}
commit=$(git rev-parse --short HEAD)
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then commit="$commit+changes"; fi
out=${out:-$root/target/bench-e2e/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
results=$out/results.jsonl
: > "$results"
work=$(mktemp -d /tmp/siem-relay-bench.XXXXXX)
if [ -d /dev/shm ]; then shm=$(mktemp -d /dev/shm/siem-relay-bench.XXXXXX); else shm=$(mktemp -d "$work/shm.XXXXXX"); fi
hz=$(getconf CLK_TCK)

# ---- processes: every PID started here is in `live` until it is stopped (and reaped)
live=()
track() { live+=("$1"); }
untrack() {
  local keep=() p q
  for p in "${live[@]}"; do
    for q in "$@"; do [ "$p" = "$q" ] && continue 2; done
    keep+=("$p")
  done
  live=("${keep[@]}")
}
# stop PID...: stop_pids (lib.sh), and no longer track them.
stop() {
  stop_pids "$@"
  untrack "$@"
}
cleanup() {
  [ ${#live[@]} -eq 0 ] || stop "${live[@]}"
  rm -rf "$shm"
  if [ -n "${KEEP:-}" ]; then echo "kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# await SECONDS WHAT CMD...: polls CMD until it succeeds; fails after SECONDS.
await() {
  local limit=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + limit ))
  until "$@"; do
    if [ "$(date +%s)" -ge "$deadline" ]; then echo "!! no $what after $limit s" >&2; return 1; fi
    sleep 0.05
  done
}
# in_bg CMD...: runs CMD as a tracked child and waits for it, so that a signal to this script
# stops it at once (bash runs traps only between foreground commands); returns its status.
in_bg() {
  local p rc=0
  "$@" &
  p=$!; track "$p"
  wait "$p" || rc=$?
  untrack "$p"
  return "$rc"
}
accepting() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; }
cpu_ticks() { local t=0 p; for p in "$@"; do t=$(( t + $(awk '{print $14+$15}' "/proc/$p/stat") )); done; echo "$t"; }
peak_rss_mib() { echo $(( $(awk '/VmHWM/{print $2}' "/proc/$1/status") / 1024 )); }
vmstat_sample() { vmstat -n 2 2 > "$1.vmstat"; report vmstat "$1.vmstat"; }

# start_sink PORT RECORD MESSAGES|- OUT: a siem-sink on 127.0.0.1:PORT (0: any); sets sink_pid
# and sink_port.
start_sink() {
  local args=(--tcp "127.0.0.1:$1" --every-ms 500 --record "$2")
  [ "$3" = - ] || args+=(--messages "$3")
  "$bin/siem-sink" "${args[@]}" > "$4" 2> "$4.err" &
  sink_pid=$!; track "$sink_pid"
  await 10 "siem-sink listening line" grep -q '"listening"' "$4"
  sink_port=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["listening"]["tcp"].rsplit(":",1)[1])' "$4")
}
# sink_unique OUT: unique eventIds in the sink's last stats line (empty if that line is partial).
sink_unique() { tail -1 "$1" | grep -o '"unique":[0-9]*' | cut -d: -f2; }

# leader API_ENDPOINT: the leader's node ID once all three nodes name the same one.
leader_of() {
  "$bin/relay-load" --status --endpoint "$1" --call-timeout-ms 1000 2> /dev/null | python3 -c '
import json, sys
seen = [json.loads(l).get("leader_id") for l in sys.stdin if "node_id" in l]
ok = len(seen) == 3 and len(set(seen)) == 1 and seen[0] not in (None, 0)
print(seen[0] if ok else "")'
}
has_leader() { leader=$(leader_of "$1"); [ -n "$leader" ]; }

# start_system SYSTEM SINK_PORT DIR: sets sys_pids, sys_names, endpoint, leader.
start_system() {
  local system=$1 sink_port=$2 dir=$3
  sys_pids=() sys_names=() leader=
  mkdir -p "$dir"
  if [ "$system" = siem-relay ]; then
    local id api_endpoint
    write_node_configs "$dir" "$sink_port" '[syslog]
tcp = "127.0.0.1:{syslog}"
header = "keep"'
    for id in 1 2 3; do
      RUST_LOG=${RUST_LOG:-warn} "$relay_bin" serve --config "$dir/n$id.toml" 2> "$dir/n$id.log" &
      track $!; sys_pids+=($!); sys_names+=("n$id")
    done
    api_endpoint="127.0.0.1:${api[1]},127.0.0.1:${api[2]},127.0.0.1:${api[3]}"
    endpoint="127.0.0.1:${syslog[1]},127.0.0.1:${syslog[2]},127.0.0.1:${syslog[3]}"
    await 30 "leader named by all three nodes" has_leader "$api_endpoint"
    for id in 1 2 3; do await 10 "syslog listener of node $id" accepting "${syslog[$id]}"; done
  else
    local queue rs_port
    if [ "$system" = rsyslog-memory ]; then
      queue='queue.type="LinkedList" queue.size="10000000"'
    else
      queue='queue.type="Disk" queue.checkpointInterval="1" queue.filename="fwd" queue.size="10000000" queue.maxDiskSpace="1g"'
    fi
    rs_port=$(port)
    cat > "$dir/rsyslog.conf" <<CONF
global(workDirectory="$dir" maxMessageSize="64k")
module(load="imtcp" maxSessions="200")
input(type="imtcp" address="127.0.0.1" port="$rs_port" ruleset="fwd")
template(name="raw" type="string" string="%rawmsg%")
ruleset(name="fwd") {
  action(type="omfwd" target="127.0.0.1" port="$sink_port" protocol="tcp"
         TCP_Framing="octet-counted" template="raw" $queue
         action.resumeRetryCount="-1" action.resumeInterval="1")
}
CONF
    rsyslogd -n -f "$dir/rsyslog.conf" -i "$dir/rsyslog.pid" > "$dir/rsyslog.out" 2> "$dir/rsyslog.err" &
    track $!; sys_pids+=($!); sys_names+=(rsyslogd)
    endpoint="127.0.0.1:$rs_port"
    await 10 "rsyslogd listening" accepting "$rs_port"
  fi
}

# warm_up RECORD: one alert (eventId 1) through the system; waits until the sink has it, so the
# whole path (election, settings, the connection to the sink) is up before anything is measured.
warm_up() {
  "$bin/relay-load" --ingest syslog --endpoint "$endpoint" --rate 0 --count 1 --first-id 1 \
    --batch 1 --concurrency 1 > /dev/null 2>&1 || true
  await 60 "warm-up alert at the sink" grep -qx 1 "$1"
}

# wait_received TARGET STALL MAX CMD...: waits until CMD prints at least TARGET, giving up when
# its number has not grown for STALL seconds or after MAX seconds; sets drain_wait_s, drained.
wait_received() {
  local target=$1 stall=$(( $2 * 1000 )) max=$(( $3 * 1000 )); shift 3
  local t_start now got last=-1 t_last
  t_start=$(date +%s%3N); t_last=$t_start; drained=0
  while :; do
    got=$("$@") || got=
    now=$(date +%s%3N)
    if [ -n "$got" ] && [ "$got" -ge "$target" ]; then drained=1; break; fi
    if [ -n "$got" ] && [ "$got" != "$last" ]; then last=$got; t_last=$now; fi
    if [ $(( now - t_last )) -gt "$stall" ] || [ $(( now - t_start )) -gt "$max" ]; then break; fi
    sleep 0.5
  done
  drain_wait_s=$(( (now - t_start) / 1000 ))
}
count_unique() { report count "$1" 2 "$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["unique"])'; }

# append_timeouts DIR: append-entries calls that missed openraft's deadline (the heartbeat
# interval) and were sent again, from the nodes' warnings; null for rsyslog.
append_timeouts() {
  if [ -f "$1/n1.log" ]; then cat "$1"/n[123].log | grep -c 'error replication to target=.*Timeout expired' || true
  else echo null; fi
}
rss_json() {
  local i=0 parts=()
  for p in "${sys_pids[@]}"; do parts+=("\"${sys_names[$i]}\": $(peak_rss_mib "$p")"); i=$((i + 1)); done
  local IFS=,; echo "{${parts[*]}}"
}

load_json() {
  printf '{"rate": "%s", "seconds": %s, "size": %s, "batch": %s, "connections": %s, "transport": "syslog tcp octet-counted"}' "$@"
}

# phase_load SYSTEM RUN
phase_load() {
  local system=$1 run=$2 dir=$work/$1-load-$2
  local rec=$shm/rec-$1-$2 msgs=$shm/msgs-$1-$2 vm_before vm_pid t0 cpu0 cpu1 sent rc=0 rss
  mkdir -p "$dir"
  echo "== run $run/$runs, load phase: $system (rate $rate, $seconds s, $size B)"
  start_sink 0 "$rec" "$msgs" "$dir/sink.jsonl"
  start_system "$system" "$sink_port" "$dir"
  warm_up "$rec"
  vm_before=$(vmstat_sample "$dir/before")
  cpu0=$(cpu_ticks "${sys_pids[@]}")
  vmstat -n 1 > "$dir/during.vmstat" &
  vm_pid=$!; track "$vm_pid"
  t0=$(date +%s%N)
  in_bg "$bin/relay-load" --ingest syslog --endpoint "$endpoint" --rate "$rate" --seconds "$seconds" \
    --size "$size" --batch "$batch" --concurrency "$concurrency" --first-id 2 --json \
    > "$dir/load.json" 2> "$dir/load.err" || rc=$?
  stop "$vm_pid"
  sent=$(json_field "$dir/load.json" sent)
  # the sink's tally also holds the warm-up alert
  wait_received $(( sent + 1 )) "$drain" "$drain" sink_unique "$dir/sink.jsonl"
  cpu1=$(cpu_ticks "${sys_pids[@]}")
  rss=$(rss_json)
  stop "${sys_pids[@]}"
  stop "$sink_pid"
  report count "$rec" 2 $(( sent + 1 )) > "$dir/count.json"
  report latency "$msgs" "$t0" "$out/series-$system-run$run.csv" \
    "$(json_field "$dir/count.json" missing)" > "$dir/latency.json"
  rm -f "$msgs" "$rec"
  rm -rf "$dir"/n[123] "$dir"/fwd*
  local unique last cpu_s
  unique=$(json_field "$dir/count.json" unique)
  last=$(json_field "$dir/latency.json" last_arrival_s)
  cpu_s=$(python3 -c "print(round(($cpu1 - $cpu0) / $hz, 2))")
  report add "$results" system="$system" phase=load run="$run" commit="$commit" command="$command_line" \
    load="$(load_json "$rate" "$seconds" "$size" "$batch" "$concurrency")" \
    vmstat_before="$vm_before" vmstat_during="$(report vmstat "$dir/during.vmstat")" \
    loadavg="\"$(cut -d' ' -f1-3 /proc/loadavg)\"" leader="\"$leader\"" \
    sent="$sent" sent_per_s="$(python3 -c "print(round($(json_field "$dir/load.json" sent_per_second)))")" \
    relay_load_exit="$rc" cpu_s="$cpu_s" append_timeouts="$(append_timeouts "$dir")" \
    cpu_s_per_100k="$(python3 -c "print(round($cpu_s / max($unique, 1) * 1e5, 2))")" \
    received_per_s="$(python3 -c "print(round($unique / $last) if '$last' != 'None' and $last > 0 else 0)")" \
    peak_rss_mib="$rss" not_drained="$([ "$drained" = 1 ] && echo false || echo true)" drain_wait_s="$drain_wait_s" \
    --json "$dir/count.json" --json "$dir/latency.json"
}

# phase_kill SYSTEM RUN
phase_kill() {
  local system=$1 run=$2 dir=$work/$1-kill-$2
  local rec=$dir/received.txt vm_before vm_pid load_pid port_was sent rc=0 kill_ns
  mkdir -p "$dir"
  echo "== run $run/$runs, SIEM killed: $system ($kill_rate x $kill_seconds s; sink SIGKILLed at $kill_at s, back after $down s)"
  start_sink 0 "$rec" - "$dir/sink1.jsonl"
  port_was=$sink_port
  start_system "$system" "$sink_port" "$dir"
  warm_up "$rec"
  vm_before=$(vmstat_sample "$dir/before")
  vmstat -n 1 > "$dir/during.vmstat" &
  vm_pid=$!; track "$vm_pid"
  "$bin/relay-load" --ingest syslog --endpoint "$endpoint" --rate "$kill_rate" --seconds "$kill_seconds" \
    --size "$size" --batch "$batch" --concurrency "$concurrency" --first-id 2 --json \
    > "$dir/load.json" 2> "$dir/load.err" &
  load_pid=$!; track "$load_pid"
  in_bg sleep "$kill_at"   # the schedule of the experiment
  kill -KILL "$sink_pid"; wait "$sink_pid" 2> /dev/null || true; untrack "$sink_pid"
  kill_ns=$(date +%s%N)
  in_bg sleep "$down"      # the SIEM address stays dead this long
  start_sink "$port_was" "$rec" - "$dir/sink2.jsonl"
  wait "$load_pid" || rc=$?
  untrack "$load_pid"
  stop "$vm_pid"
  sent=$(json_field "$dir/load.json" sent)
  wait_received "$sent" 10 90 count_unique "$rec" $(( sent + 1 ))
  stop "${sys_pids[@]}"
  stop "$sink_pid"
  report count "$rec" 2 $(( sent + 1 )) > "$dir/count.json"
  rm -rf "$dir"/n[123] "$dir"/fwd*
  report add "$results" system="$system" phase=kill run="$run" commit="$commit" command="$command_line" \
    load="$(load_json "$kill_rate" "$kill_seconds" "$size" "$batch" "$concurrency")" \
    vmstat_before="$vm_before" vmstat_during="$(report vmstat "$dir/during.vmstat")" \
    loadavg="\"$(cut -d' ' -f1-3 /proc/loadavg)\"" leader="\"$leader\"" \
    sent="$sent" relay_load_exit="$rc" kill_at_s="$kill_at" down_s="$down" kill_ns="$kill_ns" \
    not_drained="$([ "$drained" = 1 ] && echo false || echo true)" drain_wait_s="$drain_wait_s" \
    --json "$dir/count.json"
}

echo "== siem-relay beside rsyslog $(rsyslogd -v | head -1 | awk '{print $2}'): commit $commit; results in $out"
echo "   $(uptime)"
for run in $(seq "$runs"); do
  if [[ ",$phases," == *,load,* ]]; then
    for s in ${systems//,/ }; do phase_load "$s" "$run"; done
  fi
  if [[ ",$phases," == *,kill,* ]]; then
    for s in ${systems//,/ }; do phase_kill "$s" "$run"; done
  fi
done
report summary "$results" | tee "$out/summary.txt"
if [[ ",$phases," == *,load,* ]]; then
  report plot "$out" "$out/benchmarks-e2e.png"
  if [ -n "$write_docs" ]; then cp "$out/benchmarks-e2e.png" "$root/docs/benchmarks-e2e.png"; echo "wrote docs/benchmarks-e2e.png"; fi
fi
echo "results: $out (results.jsonl, summary.txt, series-*.csv, benchmarks-e2e.png)"
