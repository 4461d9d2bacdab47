#!/usr/bin/env bash
# A Garage S3 server on loopback for the S3 tests (docs/s3.md).
#
#   scripts/garage.sh [start]   installs Garage if missing, starts one node on 127.0.0.1
#                               (free ports, data under a new temporary folder), creates a
#                               bucket and a key, and prints `export ...` lines:
#                               eval "$(scripts/garage.sh)"
#   scripts/garage.sh --nodes 3 three nodes (replication factor 3, a zone each); the
#                               S3 endpoint is node 1's.
#   scripts/garage.sh stop [DIR] stops the server(s) started with DIR (default:
#                               $PAGEVAULT_GARAGE_DIR) and removes the folder.
#   scripts/garage.sh kill-node I / start-node I: stops / restarts node I of
#                               $PAGEVAULT_GARAGE_DIR, its data kept (cluster tests).
#
# Everything listens on 127.0.0.1 only. Progress goes to stderr; stdout is only the
# export lines, so `eval` takes them.
set -euo pipefail

say() { echo "garage.sh: $*" >&2; }

stop() {
    local dir="${1:-${PAGEVAULT_GARAGE_DIR:-}}"
    if [[ -z "$dir" || ! -d "$dir" ]]; then
        say "no server folder given (pass it, or set PAGEVAULT_GARAGE_DIR)"
        return 1
    fi
    local pid
    for f in "$dir"/garage*.pid; do
        [[ -f "$f" ]] || continue
        pid="$(cat "$f")"
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
    rm -rf "$dir"
    say "stopped and removed $dir"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
        || echo $((20000 + RANDOM % 30000))
}

install() {
    if command -v garage >/dev/null 2>&1; then return; fi
    if [[ -x "$HOME/.cargo/bin/garage" ]]; then
        export PATH="$HOME/.cargo/bin:$PATH"
        return
    fi
    say "installing Garage (cargo install garage; about 15 minutes on 2 cores, once)"
    cargo install garage --locked --no-default-features --features bundled-libs,lmdb,sqlite >&2
    export PATH="$HOME/.cargo/bin:$PATH"
}

# Writes node I's config (RPC and S3 API on free loopback ports) into DIR/nodeI/.
node_config() {
    local dir="$1" i="$2" rf="$3" secret="$4"
    local rpc_port s3_port
    rpc_port="$(free_port)"
    s3_port="$(free_port)"
    while [[ "$s3_port" == "$rpc_port" ]]; do s3_port="$(free_port)"; done
    mkdir -p "$dir/node$i"
    cat >"$dir/node$i/garage.toml" <<CONF
metadata_dir = "$dir/node$i/meta"
data_dir = "$dir/node$i/data"
db_engine = "sqlite"
# pagevault compresses its streams already: a second zstd pass costs CPU for nothing.
compression_level = "none"
replication_factor = $rf
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$secret"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3_port"
root_domain = ".s3.garage.localhost"
CONF
    chmod 600 "$dir/node$i/garage.toml"
    echo "$s3_port" >"$dir/node$i/s3_port"
}

# Starts node I (again, after a kill: its data is kept); its pid in DIR/garageI.pid.
start_node() {
    local dir="$1" i="$2"
    # setsid: the server outlives this script, in a process group of its own.
    setsid garage -c "$dir/node$i/garage.toml" server >>"$dir/node$i/garage.log" 2>&1 </dev/null &
    echo $! >"$dir/garage$i.pid"
}

# Node I's full id (id@address), once it answers.
node_id() {
    local dir="$1" i="$2" id=""
    for _ in $(seq 100); do
        if id="$(garage -c "$dir/node$i/garage.toml" node id -q 2>/dev/null)"; then
            echo "$id"
            return 0
        fi
        if ! kill -0 "$(cat "$dir/garage$i.pid")" 2>/dev/null; then
            say "node $i exited; its log:"
            cat "$dir/node$i/garage.log" >&2
            return 1
        fi
        sleep 0.1
    done
    say "node $i did not answer within 10 s (log: $dir/node$i/garage.log)"
    return 1
}

# Retries a garage admin command for up to 10 s (the cluster settles after a start).
retry() {
    for _ in $(seq 50); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    "$@" >&2
}

start() {
    local nodes="$1"
    install
    local dir secret
    dir="$(mktemp -d "${TMPDIR:-/tmp}/pagevault-garage.XXXXXX")"
    secret="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    local i ids=()
    for i in $(seq "$nodes"); do
        node_config "$dir" "$i" "$nodes" "$secret"
        start_node "$dir" "$i"
    done
    for i in $(seq "$nodes"); do
        local id
        if ! id="$(node_id "$dir" "$i")"; then
            stop "$dir"
            return 1
        fi
        ids+=("$id")
        echo "$id" >"$dir/node$i/id"
    done
    local g=(garage -c "$dir/node1/garage.toml")
    for i in $(seq 2 "$nodes"); do
        retry "${g[@]}" node connect "${ids[$((i - 1))]}" || { stop "$dir"; return 1; }
    done
    for i in $(seq "$nodes"); do
        # A zone per node: with replication factor 3 each node holds a copy.
        retry "${g[@]}" layout assign -z "dc$i" -c 1G "${ids[$((i - 1))]%%@*}" \
            || { stop "$dir"; return 1; }
    done
    retry "${g[@]}" layout apply --version 1 || { stop "$dir"; return 1; }
    local bucket="pagevault-test"
    retry "${g[@]}" bucket create "$bucket" || { stop "$dir"; return 1; }
    local key_out key_id secret_key
    key_out="$("${g[@]}" key create pagevault-test-key)"
    key_id="$(awk -F': *' '/^Key ID:/ {print $2}' <<<"$key_out" | tr -d ' ')"
    secret_key="$(awk -F': *' '/^Secret key:/ {print $2}' <<<"$key_out" | tr -d ' ')"
    if [[ -z "$key_id" || -z "$secret_key" ]]; then
        say "could not read the key from: $key_out"
        stop "$dir"
        return 1
    fi
    "${g[@]}" bucket allow --read --write --owner "$bucket" --key "$key_id" >/dev/null
    local s3_port
    s3_port="$(cat "$dir/node1/s3_port")"
    # Wait until the S3 API accepts connections.
    for _ in $(seq 50); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$s3_port") 2>/dev/null; then break; fi
        sleep 0.1
    done
    say "Garage $(garage --version 2>/dev/null | awk '{print $2}'): $nodes node(s), S3 API of node 1 on 127.0.0.1:$s3_port (pid $(cat "$dir/garage1.pid"), data in $dir)"
    cat <<VARS
export AWS_ENDPOINT_URL=http://127.0.0.1:$s3_port
export AWS_REGION=garage
export AWS_ACCESS_KEY_ID=$key_id
export AWS_SECRET_ACCESS_KEY=$secret_key
export PAGEVAULT_S3_BUCKET=$bucket
export PAGEVAULT_GARAGE_DIR=$dir
export PAGEVAULT_GARAGE_NODES=$nodes
export PAGEVAULT_GARAGE_PID=$(cat "$dir/garage1.pid")
VARS
}

nodes=1
args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --nodes) nodes="${2:-}"; shift 2 ;;
        --nodes=*) nodes="${1#--nodes=}"; shift ;;
        *) args+=("$1"); shift ;;
    esac
done
if [[ "$nodes" != 1 && "$nodes" != 3 ]]; then
    say "--nodes is 1 or 3"
    exit 64
fi
case "${args[0]:-start}" in
    start) start "$nodes" ;;
    stop) stop "${args[1]:-}" ;;
    kill-node)
        dir="${args[2]:-${PAGEVAULT_GARAGE_DIR:-}}"
        pid="$(cat "$dir/garage${args[1]}.pid")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        ;;
    start-node)
        dir="${args[2]:-${PAGEVAULT_GARAGE_DIR:-}}"
        start_node "$dir" "${args[1]}"
        node_id "$dir" "${args[1]}" >/dev/null
        # Reconnect at once rather than at the peers' next periodic try.
        for f in "$dir"/node*/id; do
            [[ "$f" == "$dir/node${args[1]}/id" ]] && continue
            retry garage -c "$dir/node${args[1]}/garage.toml" node connect "$(cat "$f")" || true
        done
        ;;
    *)
        say "usage: scripts/garage.sh [--nodes 1|3] [start | stop [DIR] | kill-node I | start-node I]"
        exit 64
        ;;
esac
