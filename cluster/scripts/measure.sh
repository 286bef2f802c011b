#!/usr/bin/env bash
# events/s through the JetStream example for 1, 2 and 3 processes, next to
# one plain async-nats consumer doing the same counting.
#
#   cluster/scripts/measure.sh [EVENTS] [RUNS]      (defaults: 200000, 3)
#
# Each run: a fresh nats-server (JetStream, file store in a temp dir,
# 127.0.0.1 only), the stream pre-filled with EVENTS keyed events over 1000
# keys, then the consumers started together; the time is from their start
# until the last one has exited (the stream done: every event handled and
# acked). Processes run unpinned with 2 workers each. The server, the
# consumers (and on a 2-vCPU machine everything) share the same CPUs.
#
# The plain baseline consumes the whole stream without a subject filter:
# with the wildcard filter it had before, nats-server 2.9.10 served a
# pre-filled stream ever slower (20 000 events in 14.5 s instead of 0.5 s;
# see cluster/src/plain.rs). The end of a run is detected by polling the
# consumers every 0.5 s, so each time is up to 0.5 s long.
set -euo pipefail
cd "$(dirname "$0")/../.."
EVENTS=${1:-200000}
RUNS=${2:-3}
cargo build -q --release -p shardpool-cluster --bin shardpool-jetstream
BIN=target/release/shardpool-jetstream
PORT=${NATS_PORT:-14333}

server_pid=""
tmp=""
stop_server() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    server_pid=""
    if [ -n "$tmp" ]; then rm -rf "$tmp"; fi
    tmp=""
}
trap stop_server EXIT

start_server() {
    tmp=$(mktemp -d)
    nats-server -js -a 127.0.0.1 -p "$PORT" -sd "$tmp" >"$tmp/log" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do
        grep -q "Server is ready" "$tmp/log" 2>/dev/null && return
        sleep 0.1
    done
    echo "nats-server did not start" >&2; cat "$tmp/log" >&2; exit 1
}

# run LABEL COMMAND... : one measured run per call; prints events/s.
measure() {
    local label=$1; shift
    start_server
    "$BIN" --nats "127.0.0.1:$PORT" --publish "$EVENTS" >/dev/null
    local start end pids=()
    start=$(date +%s.%N)
    "$@"
    end=$(date +%s.%N)
    stop_server
    awk -v n="$EVENTS" -v s="$start" -v e="$end" -v l="$label" \
        'BEGIN { printf "%-22s %8.0f events/s  (%.2f s)\n", l, n / (e - s), e - s }'
}

processes() {
    local n=$1 pids=()
    for i in $(seq 0 $((n - 1))); do
        "$BIN" --nats "127.0.0.1:$PORT" --process "$i" --of "$n" --workers 2 --no-pin >/dev/null &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
}

plain() { "$BIN" --nats "127.0.0.1:$PORT" --plain >/dev/null; }

echo "$EVENTS events, 16 partitions, $(nproc) CPUs, nats-server $(nats-server --version | awk '{print $2}')"
for run in $(seq "$RUNS"); do
    echo "run $run"
    measure "plain async-nats" plain
    for n in 1 2 3; do measure "shardpool x$n process" processes "$n"; done
done
