#!/usr/bin/env bash
# A Garage S3 server on loopback for the S3 tests (docs/s3.md).
#
#   scripts/garage.sh [start]   installs Garage if missing, starts one node on 127.0.0.1
#                               (free ports, data under a new temporary folder), creates a
#                               bucket and a key, and prints `export ...` lines:
#                               eval "$(scripts/garage.sh)"
#   scripts/garage.sh stop [DIR] stops the server started with DIR (default:
#                               $PAGEVAULT_GARAGE_DIR) and removes its folder.
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

start() {
    install
    local dir
    dir="$(mktemp -d "${TMPDIR:-/tmp}/pagevault-garage.XXXXXX")"
    local rpc_port s3_port
    rpc_port="$(free_port)"
    s3_port="$(free_port)"
    while [[ "$s3_port" == "$rpc_port" ]]; do s3_port="$(free_port)"; done
    local conf="$dir/garage.toml"
    cat >"$conf" <<EOF
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3_port"
root_domain = ".s3.garage.localhost"
EOF
    chmod 600 "$conf"
    local g=(garage -c "$conf")
    # setsid: the server outlives this script, in a process group of its own.
    setsid garage -c "$conf" server >"$dir/garage.log" 2>&1 </dev/null &
    echo $! >"$dir/garage.pid"
    local node=""
    for _ in $(seq 100); do
        if node="$("${g[@]}" node id -q 2>/dev/null)"; then break; fi
        if ! kill -0 "$(cat "$dir/garage.pid")" 2>/dev/null; then
            say "the server exited; its log:"; cat "$dir/garage.log" >&2; rm -rf "$dir"; return 1
        fi
        sleep 0.1
    done
    if [[ -z "$node" ]]; then
        say "the server did not answer within 10 s; its log is in $dir/garage.log"
        stop "$dir"; return 1
    fi
    node="${node%%@*}"
    "${g[@]}" layout assign -z dc1 -c 1G "$node" >/dev/null
    "${g[@]}" layout apply --version 1 >/dev/null
    local bucket="pagevault-test"
    local created=""
    for _ in $(seq 50); do
        if "${g[@]}" bucket create "$bucket" >/dev/null 2>&1; then created=1; break; fi
        sleep 0.2
    done
    if [[ -z "$created" ]]; then
        say "could not create the bucket (log: $dir/garage.log)"; stop "$dir"; return 1
    fi
    local key_out key_id secret
    key_out="$("${g[@]}" key create pagevault-test-key)"
    key_id="$(awk -F': *' '/^Key ID:/ {print $2}' <<<"$key_out" | tr -d ' ')"
    secret="$(awk -F': *' '/^Secret key:/ {print $2}' <<<"$key_out" | tr -d ' ')"
    if [[ -z "$key_id" || -z "$secret" ]]; then
        say "could not read the key from: $key_out"; stop "$dir"; return 1
    fi
    "${g[@]}" bucket allow --read --write --owner "$bucket" --key "$key_id" >/dev/null
    # Wait until the S3 API answers (any HTTP answer will do).
    for _ in $(seq 50); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$s3_port") 2>/dev/null; then break; fi
        sleep 0.1
    done
    say "Garage $(garage --version 2>/dev/null | awk '{print $2}') up on 127.0.0.1:$s3_port (pid $(cat "$dir/garage.pid"), data in $dir)"
    cat <<EOF
export AWS_ENDPOINT_URL=http://127.0.0.1:$s3_port
export AWS_REGION=garage
export AWS_ACCESS_KEY_ID=$key_id
export AWS_SECRET_ACCESS_KEY=$secret
export PAGEVAULT_S3_BUCKET=$bucket
export PAGEVAULT_GARAGE_DIR=$dir
export PAGEVAULT_GARAGE_PID=$(cat "$dir/garage.pid")
EOF
}

case "${1:-start}" in
    start) start ;;
    stop) stop "${2:-}" ;;
    *) say "usage: scripts/garage.sh [start | stop [DIR]]"; exit 64 ;;
esac
