#!/usr/bin/env bash
# kv-compare.sh — redis-benchmark against redis-server, the tokio peer
# (services/examples/kv_tokio.rs) and the shardpool kv server
# (services/examples/kv.rs); and "tokio+pool", the tokio front end with the
# store owned by a shardpool it calls with send_to_async (kv_tokio --pool).
#
# Every server listens on its own 127.0.0.1 port. For each round and each
# pipeline depth the servers are measured one after another (A B C A B C …,
# interleaved, so drift on a shared machine hits every server alike), with
# the same command:
#   redis-benchmark -h 127.0.0.1 -p PORT -t TESTS -n N -c CLIENTS -P DEPTH -r KEYSPACE --csv
# The report gives, per server, depth and test, the median over the rounds
# of requests/s, p50 and p99 latency (ms), the ratio to redis-server, and
# what the server itself spent: its CPU time during the run as a share of
# one core (a server well under 100 % was waiting for the client, so its
# req/s is the client's limit) and per request (utime + stime of the whole
# process from /proc/PID/stat, 10 ms ticks). Each test runs as its own
# redis-benchmark invocation so its CPU time is its own.
# Every server the script started is stopped on exit (trap EXIT).
#
# Usage: services/bench/kv-compare.sh [options]
#   -n N                 requests per run (default 100000)
#   -r R                 rounds (default 5)
#   -c C                 benchmark clients (default 50)
#   -P "16 1"            pipeline depths (default "16 1")
#   -t set,get,incr      tests (default set,get,incr)
#   -k K                 keyspace, redis-benchmark -r (default 100000)
#   --client-cpus LIST   pin redis-benchmark with taskset -c LIST
#   --server-cpus LIST   pin every server with taskset -c LIST
#   --threads N          tokio peer runtime threads (default: its own)
#   --port-base P        ports P (redis), P+1 (tokio), P+2 (shardpool), P+3 (tokio+pool);
#                        default 16379
#   --shardpool-cmd CMD  start the shardpool kv server with CMD ({port} is
#                        replaced by its port); default: the built kv example,
#                        target/release/examples/kv --port {port}
#   --workers N          shardpool kv workers (default: one per physical core)
#   --no-shardpool       skip the shardpool kv server
#   --no-tokio-pool      skip "tokio+pool": the tokio front end calling a
#                        shardpool that owns the store (kv_tokio --pool 0,
#                        port P+3) instead of locking a Mutex<Store> shard
#   --no-build           do not (re)build the tokio peer and the kv example
#   --keep-raw FILE      keep the raw per-run CSV rows in FILE
#
# Needs: redis-server and redis-benchmark (Debian: redis-server, redis-tools),
# taskset (util-linux) when pinning, cargo to build the peer.
set -euo pipefail

requests=100000 rounds=5 clients=50 depths="16 1" tests="set,get,incr" keyspace=100000
client_cpus="" server_cpus="" threads="" port_base=16379 shardpool_cmd="" build=1 keep_raw=""
workers="" shardpool=1 tokio_pool=1

die() { echo "kv-compare: $*" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        -n) requests=${2:?}; shift 2 ;;
        -r) rounds=${2:?}; shift 2 ;;
        -c) clients=${2:?}; shift 2 ;;
        -P) depths=${2:?}; shift 2 ;;
        -t) tests=${2:?}; shift 2 ;;
        -k) keyspace=${2:?}; shift 2 ;;
        --client-cpus) client_cpus=${2:?}; shift 2 ;;
        --server-cpus) server_cpus=${2:?}; shift 2 ;;
        --threads) threads=${2:?}; shift 2 ;;
        --port-base) port_base=${2:?}; shift 2 ;;
        --shardpool-cmd) shardpool_cmd=${2:?}; shift 2 ;;
        --workers) workers=${2:?}; shift 2 ;;
        --no-shardpool) shardpool=0; shift ;;
        --no-tokio-pool) tokio_pool=0; shift ;;
        --no-build) build=0; shift ;;
        --keep-raw) keep_raw=${2:?}; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
for n in "$requests" "$rounds" "$clients" "$keyspace" "$port_base"; do
    [[ $n =~ ^[0-9]+$ && $n -gt 0 ]] || die "not a positive number: $n"
done
command -v redis-server >/dev/null || die "redis-server not found (apt-get install redis-server)"
command -v redis-benchmark >/dev/null || die "redis-benchmark not found (apt-get install redis-tools)"
if [[ -n $client_cpus || -n $server_cpus ]]; then
    command -v taskset >/dev/null || die "taskset not found (util-linux)"
fi

repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d -t kv-compare.XXXXXX)
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n $keep_raw && -f $work/raw.csv ]]; then cp "$work/raw.csv" "$keep_raw"; fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pin_server() { if [[ -n $server_cpus ]]; then echo "taskset -c $server_cpus"; fi; }
pin_client() { if [[ -n $client_cpus ]]; then echo "taskset -c $client_cpus"; fi; }

# start NAME PORT CMD... : runs CMD in the background, waits until PORT answers PING.
names=() ports=() server_pids=()
start() {
    local name=$1 port=$2; shift 2
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port is already in use (try --port-base)"
    fi
    # shellcheck disable=SC2046
    $(pin_server) "$@" >"$work/$name.log" 2>&1 &
    pids+=($!)
    local i
    for i in $(seq 1 200); do
        if [[ $(redis-cli -h 127.0.0.1 -p "$port" PING 2>/dev/null) == PONG ]]; then
            names+=("$name") ports+=("$port") server_pids+=("$!")
            echo "started $name on 127.0.0.1:$port (pid $!)"
            return 0
        fi
        kill -0 "$!" 2>/dev/null || { cat "$work/$name.log" >&2; die "$name exited at start"; }
        sleep 0.1
    done
    cat "$work/$name.log" >&2
    die "$name did not answer PING on port $port"
}

start redis-server "$port_base" \
    redis-server --port "$port_base" --bind 127.0.0.1 --save '' --appendonly no --daemonize no

if [[ $build == 1 ]]; then
    (cd "$repo" && cargo build --release -q -p shardpool-services --example kv_tokio --example kv)
fi
tokio_bin="$repo/target/release/examples/kv_tokio"
[[ -x $tokio_bin ]] || die "$tokio_bin not built (drop --no-build)"
tokio_args=(--port $((port_base + 1)))
[[ -n $threads ]] && tokio_args+=(--threads "$threads")
start tokio "$((port_base + 1))" "$tokio_bin" "${tokio_args[@]}"

if [[ $shardpool == 1 ]]; then
    if [[ -z $shardpool_cmd ]]; then
        kv_bin="$repo/target/release/examples/kv"
        [[ -x $kv_bin ]] || die "$kv_bin not built (drop --no-build)"
        shardpool_cmd="$kv_bin --port {port}"
        [[ -n $workers ]] && shardpool_cmd+=" --workers $workers"
    fi
    # shellcheck disable=SC2086
    start shardpool "$((port_base + 2))" ${shardpool_cmd//\{port\}/$((port_base + 2))}
else
    echo "shardpool kv server: skipped (--no-shardpool)"
fi

if [[ $tokio_pool == 1 ]]; then
    pool_args=(--port $((port_base + 3)) --pool 0)
    [[ -n $threads ]] && pool_args+=(--threads "$threads")
    start tokio+pool "$((port_base + 3))" "$tokio_bin" "${pool_args[@]}"
fi

# The process's CPU time so far, in clock ticks (utime + stime, all threads).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
ticks_per_s=$(getconf CLK_TCK)

# One CSV row per run: server,depth,round,test,rps,p50,p99,cpu_s,wall_s
echo "server,depth,round,test,rps,p50,p99,cpu_s,wall_s" >"$work/raw.csv"
for round in $(seq 1 "$rounds"); do
    for depth in $depths; do
        for test in ${tests//,/ }; do
            for i in "${!names[@]}"; do
                name=${names[$i]} port=${ports[$i]} pid=${server_pids[$i]}
                echo "round $round/$rounds  -P $depth  $test  $name" >&2
                c0=$(cpu_ticks "$pid") t0=$(date +%s.%N)
                # redis-benchmark 7 --csv: "test","rps","avg","min","p50","p95","p99","max" (ms)
                # shellcheck disable=SC2046
                $(pin_client) redis-benchmark -h 127.0.0.1 -p "$port" -t "$test" -n "$requests" \
                    -c "$clients" -P "$depth" -r "$keyspace" --csv >"$work/run.csv" 2>"$work/bench.err" \
                    || { cat "$work/bench.err" >&2; die "redis-benchmark failed on $name"; }
                t1=$(date +%s.%N) c1=$(cpu_ticks "$pid")
                cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$ticks_per_s" 'BEGIN { printf "%.3f", (b - a) / hz }')
                wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
                tr -d '"' <"$work/run.csv" | awk -F, -v s="$name" -v d="$depth" -v r="$round" -v c="$cpu" -v w="$wall" \
                    'NR > 1 && NF >= 7 { printf "%s,%s,%s,%s,%s,%s,%s,%s,%s\n", s, d, r, $1, $2, $5, $7, c, w }' \
                    >>"$work/raw.csv"
            done
        done
    done
done

# Medians per (server, depth, test), then the table with ratios to redis-server.
awk -F, '
    function median(list,   n, a, i, j, t) {
        n = split(list, a, " ")
        for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > t + 0; j--) a[j + 1] = a[j]; a[j + 1] = t }
        return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    NR == 1 { next }
    {
        k = $1 SUBSEP $2 SUBSEP $4
        if (!(k in rps)) { order[++count] = k }
        rps[k] = rps[k] " " $5; p50[k] = p50[k] " " $6; p99[k] = p99[k] " " $7; runs[k]++
        busy[k] = busy[k] " " ($9 > 0 ? 100 * $8 / $9 : 0)
        us[k] = us[k] " " (1e6 * $8 / n)
    }
    END {
        printf "%-12s %5s %-6s %12s %9s %9s %6s %9s %9s %9s\n", "server", "-P", "test", "req/s", "p50 ms", "p99 ms", "runs", "vs redis", "srv CPU", "us/req"
        for (i = 1; i <= count; i++) {
            k = order[i]; split(k, f, SUBSEP)
            m[k] = median(rps[k])
        }
        for (i = 1; i <= count; i++) {
            k = order[i]; split(k, f, SUBSEP)
            base = ("redis-server" SUBSEP f[2] SUBSEP f[3])
            ratio = (base in m && m[base] > 0) ? sprintf("%.2fx", m[k] / m[base]) : "-"
            printf "%-12s %5s %-6s %12.0f %9.3f %9.3f %6d %9s %8.0f%% %9.2f\n", f[1], f[2], f[3], m[k], median(p50[k]), median(p99[k]), runs[k], ratio, median(busy[k]), median(us[k])
        }
    }' n="$requests" "$work/raw.csv" | { read -r header; echo "$header"; sort -s -k2,2nr -k3,3; }

echo
echo "srv CPU: the server's CPU time during the run / the run's wall time (100 % = one core busy);"
echo "us/req: the server's CPU time / the run's requests. Both include what a server spends waiting:"
echo "a shardpool worker spins and yields before it sleeps, redis-server and tokio sleep in epoll_wait."
echo "command: redis-benchmark -h 127.0.0.1 -p PORT -t $tests -n $requests -c $clients -P {${depths// /,}} -r $keyspace --csv${client_cpus:+ (taskset -c $client_cpus)}; $rounds rounds, servers interleaved${server_cpus:+, servers on CPUs $server_cpus}"
