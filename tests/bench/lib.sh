# Shared by the benchmark scripts in this folder (sourced, not run).

# port: a free TCP port on 127.0.0.1.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# json_field FILE KEY: one top-level field of a JSON file.
json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$@"; }

# stop_pids PID...: SIGTERM, up to 5 s to exit, then SIGKILL; reaps each.
stop_pids() {
  local p
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "$@"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
}

# write_node_configs DIR SINK_PORT [EXTRA_TOML]: the secret and n1.toml..n3.toml of a 3-node
# cluster on loopback in DIR, delivering to a TCP SIEM on SINK_PORT. Picks free ports into the
# global arrays raft, api, syslog and prom (by node ID). EXTRA_TOML is appended to each file,
# with {syslog} replaced by the node's syslog port.
write_node_configs() {
  local dir=$1 sink_port=$2 extra=${3:-} id members
  declare -gA raft api syslog prom
  echo "0123456789abcdef-e2e-bench-secret" > "$dir/secret"
  for id in 1 2 3; do raft[$id]=$(port); api[$id]=$(port); syslog[$id]=$(port); prom[$id]=$(port); done
  members="{ id = 1, raft = \"127.0.0.1:${raft[1]}\" }, { id = 2, raft = \"127.0.0.1:${raft[2]}\" }, { id = 3, raft = \"127.0.0.1:${raft[3]}\" }"
  for id in 1 2 3; do
    cat > "$dir/n$id.toml" <<TOML
node_id = $id
data_dir = "n$id"
[listen]
raft = "127.0.0.1:${raft[$id]}"
ingest = "127.0.0.1:${api[$id]}"
metrics = "127.0.0.1:${prom[$id]}"
[cluster]
initial_members = [$members]
secret_file = "secret"
[siem]
host = "127.0.0.1"
port = $sink_port
host_id = "bench"
TOML
    [ -z "$extra" ] || printf '%s\n' "${extra//\{syslog\}/${syslog[$id]}}" >> "$dir/n$id.toml"
  done
}
