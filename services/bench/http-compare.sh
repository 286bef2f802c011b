#!/usr/bin/env bash
# http-compare.sh — wrk against the shardpool HTTP hit counter
# (services/examples/http_counter.rs) and its axum peer
# (services/examples/http_counter_axum.rs): same route, same responses.
#
# Each server listens on its own 127.0.0.1 port. For each round and each
# connection count the two are measured one after the other (A B A B …,
# interleaved, so drift on a shared machine hits both alike), with the same
# command:
#   wrk -t THREADS -c CONNS -d DURATION --latency -s KEYS.lua http://127.0.0.1:PORT
# where KEYS.lua asks for /hit/k<random in 1..KEYSPACE> (keys spread over
# every worker, so (n-1)/n of the shardpool server's requests hop to the
# key's owner). The report gives, per server and connection count, the
# median over the rounds of requests/s and of the p50 and p99 latency, and
# the ratio shardpool / axum of the median requests/s.
#
# Pinning: with --server-cpus and --client-cpus, each server runs under
# `taskset -c SERVER_CPUS` with one worker (shardpool) or runtime thread
# (axum) per CPU of the list, and wrk under `taskset -c CLIENT_CPUS`. By
# default, on a machine with 4 or more CPUs the servers get the first half
# and wrk the second; with fewer there is nothing to split and nothing is
# pinned (the servers use every CPU and share them with wrk).
#
# Usage: services/bench/http-compare.sh [options]
#   -r R                 rounds (default 5)
#   -d D                 wrk duration per run (default 10s)
#   -c "8 64"            connection counts (default "8 64")
#   -t T                 wrk threads (default 2; never more than the connections)
#   -k K                 key space (default 10000)
#   --server-cpus LIST   pin both servers with taskset -c LIST
#   --client-cpus LIST   pin wrk with taskset -c LIST
#   --workers N          shardpool workers and axum runtime threads (default:
#                        the number of server CPUs, or one per CPU)
#   --port-base P        ports P (shardpool) and P+1 (axum); default 18080
#   --shardpool-args A   more arguments for http_counter, e.g. "--no-pin"
#                        (its workers are pinned to CPUs by default)
#   --no-build           do not (re)build the two examples
#   --keep-raw FILE      keep the raw per-run rows in FILE
#
# Needs: wrk (installed with apt-get if missing), taskset (util-linux) when
# pinning, curl for the check that both servers answer alike, cargo.
# Every server the script started is stopped on exit (trap EXIT).
set -euo pipefail

rounds=5 duration=10s conns="8 64" threads=2 keyspace=10000
server_cpus="" client_cpus="" workers="" port_base=18080 build=1 keep_raw="" sp_args=""

die() { echo "http-compare: $*" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        -r) rounds=${2:?}; shift 2 ;;
        -d) duration=${2:?}; shift 2 ;;
        -c) conns=${2:?}; shift 2 ;;
        -t) threads=${2:?}; shift 2 ;;
        -k) keyspace=${2:?}; shift 2 ;;
        --server-cpus) server_cpus=${2:?}; shift 2 ;;
        --client-cpus) client_cpus=${2:?}; shift 2 ;;
        --workers) workers=${2:?}; shift 2 ;;
        --port-base) port_base=${2:?}; shift 2 ;;
        --shardpool-args) sp_args=${2:?}; shift 2 ;;
        --no-build) build=0; shift ;;
        --keep-raw) keep_raw=${2:?}; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

if ! command -v wrk >/dev/null; then
    echo "http-compare: installing wrk" >&2
    sudo_cmd=""
    [[ $(id -u) -ne 0 ]] && sudo_cmd=sudo
    $sudo_cmd apt-get install -y wrk >/dev/null 2>&1 \
        || { $sudo_cmd apt-get update >/dev/null && $sudo_cmd apt-get install -y wrk >/dev/null; } \
        || die "cannot install wrk (apt-get install wrk)"
fi
command -v curl >/dev/null || die "needs curl"

# Pinning: split the CPUs in two halves unless told.
cpus=$(nproc)
if [[ -z $server_cpus && -z $client_cpus && $cpus -ge 4 ]]; then
    half=$((cpus / 2))
    server_cpus="0-$((half - 1))"
    client_cpus="$half-$((cpus - 1))"
fi
count_cpus() { # "0-2,5" -> 4
    local n=0 part
    IFS=, read -ra parts <<<"$1"
    for part in "${parts[@]}"; do
        if [[ $part == *-* ]]; then n=$((n + ${part#*-} - ${part%-*} + 1)); else n=$((n + 1)); fi
    done
    echo "$n"
}
if [[ -z $workers ]]; then
    if [[ -n $server_cpus ]]; then workers=$(count_cpus "$server_cpus"); else workers=$cpus; fi
fi
[[ $workers -ge 2 ]] || echo "http-compare: warning: one worker, so no request hops to another" >&2
server_pin=() client_pin=()
if [[ -n $server_cpus || -n $client_cpus ]]; then
    command -v taskset >/dev/null || die "pinning needs taskset (util-linux)"
fi
[[ -n $server_cpus ]] && server_pin=(taskset -c "$server_cpus")
[[ -n $client_cpus ]] && client_pin=(taskset -c "$client_cpus")

target=${CARGO_TARGET_DIR:-$root/target}
if [[ $build -eq 1 ]]; then
    cargo build --release -p shardpool-services --example http_counter --example http_counter_axum
fi
bin_sp=$target/release/examples/http_counter
bin_ax=$target/release/examples/http_counter_axum
[[ -x $bin_sp && -x $bin_ax ]] || die "missing $bin_sp or $bin_ax (build them or drop --no-build)"

port_sp=$port_base port_ax=$((port_base + 1))
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
work=$(mktemp -d)
trap cleanup EXIT

# The shardpool server pins its own workers within the CPUs taskset allows.
# shellcheck disable=SC2086 # $sp_args: several arguments
"${server_pin[@]}" "$bin_sp" --port "$port_sp" --workers "$workers" $sp_args >"$work/sp.log" 2>&1 &
pids+=($!)
"${server_pin[@]}" "$bin_ax" --port "$port_ax" --threads "$workers" >"$work/ax.log" 2>&1 &
pids+=($!)

wait_up() { # port
    for _ in $(seq 100); do
        curl -fsS "http://127.0.0.1:$1/hit/__up" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "no server on port $1 (see its log: $(cat "$work"/*.log))"
}
wait_up "$port_sp"
wait_up "$port_ax"
# Both answer alike (the date header aside).
check() { curl -fsSi "http://127.0.0.1:$1/hit/__check" | grep -vi '^date:' | tr -d '\r'; }
if [[ "$(check "$port_sp")" != "$(check "$port_ax")" ]]; then
    die "the servers answer differently: $(check "$port_sp") / $(check "$port_ax")"
fi

cat >"$work/keys.lua" <<EOF
-- /hit/k<1..$keyspace>, uniformly at random; a seed per wrk thread.
local counter = 0
function setup(thread)
    counter = counter + 1
    thread:set("seed", counter)
end
function init(args)
    math.randomseed(seed * 7919 + os.time())
end
function request()
    return wrk.format("GET", "/hit/k" .. math.random(1, $keyspace))
end
EOF

# wrk's latency lines are "50%  1.23ms" etc.; returns milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000;
        printf "%.3f", n }'
}
run() { # name port conns -> "rps p50 p99"
    local t=$threads
    [[ $t -gt $3 ]] && t=$3
    local out
    out=$("${client_pin[@]}" wrk -t "$t" -c "$3" -d "$duration" --latency -s "$work/keys.lua" \
        "http://127.0.0.1:$2") || die "wrk failed against $1: $out"
    if grep -q 'Non-2xx or 3xx responses' <<<"$out" || grep -q 'Socket errors' <<<"$out"; then
        echo "http-compare: warning: errors against $1: $(grep -E 'Non-2xx|Socket errors' <<<"$out")" >&2
    fi
    local rps p50 p99
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    echo "$rps $p50 $p99"
}

raw=$work/raw.txt
echo "# round conns server rps p50_ms p99_ms" >"$raw"
echo "http-compare: $rounds rounds of $duration, connections: $conns, wrk threads: $threads," \
    "keys: $keyspace, workers/threads: $workers, server CPUs: ${server_cpus:-all}${sp_args:+, http_counter $sp_args}," \
    "wrk CPUs: ${client_cpus:-all}" >&2
for round in $(seq "$rounds"); do
    for c in $conns; do
        for server in shardpool axum; do
            port=$port_sp
            [[ $server == axum ]] && port=$port_ax
            row=$(run "$server" "$port" "$c")
            echo "$round $c $server $row" >>"$raw"
            echo "  round $round, $c connections, $server: $row" >&2
        done
    done
done
[[ -n $keep_raw ]] && cp "$raw" "$keep_raw"

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
printf '\n%-6s %-10s %12s %9s %9s\n' conns server "req/s" "p50 ms" "p99 ms"
for c in $conns; do
    declare -A med=()
    for server in shardpool axum; do
        rows=$(awk -v c="$c" -v s="$server" '$2 == c && $3 == s' "$raw")
        rps=$(awk '{print $4}' <<<"$rows" | median)
        p50=$(awk '{print $5}' <<<"$rows" | median)
        p99=$(awk '{print $6}' <<<"$rows" | median)
        med[$server]=$rps
        printf '%-6s %-10s %12.0f %9s %9s\n' "$c" "$server" "$rps" "$p50" "$p99"
    done
    awk -v a="${med[shardpool]}" -v b="${med[axum]}" -v c="$c" \
        'BEGIN { printf "%-6s %-10s %11.2fx\n", c, "ratio", (b > 0 ? a / b : 0) }'
    unset med
done
