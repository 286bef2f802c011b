#!/usr/bin/env bash
# run.sh - the hostile-client suite against the kv example (release build)
# and, when redis-server is installed, against redis-server for comparison.
# What each row checks: services/hostile/README.md. Every server runs on
# 127.0.0.1 on a free port and is killed when its row ends or this script
# exits (hostile.py kills them, and the kernel does if it is killed:
# PR_SET_PDEATHSIG). The whole run is bounded by HOSTILE_TIMEOUT seconds
# (default 600; a run takes a minute or two).
#
# Usage: services/hostile/run.sh [--no-build] [--no-redis] [hostile.py options]
#   --no-build   use the kv example already built (target/release/examples/kv,
#                or under $CARGO_TARGET_DIR)
#   --no-redis   skip the redis-server column even if redis-server is installed
#   e.g. --rows glob,expiry   only these rows (see hostile.py --help)
# Exit status: 0 every kv row passed, 1 a kv row failed, 2 setup error.
# Needs: python3 (standard library only), cargo; redis-server optional.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=1 redis=1
args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --no-build) build=0 ;;
        --no-redis) redis=0 ;;
        -h|--help) sed -n '2,16p' "$0"; exec python3 "$here/hostile.py" --help ;;
        *) args+=("$1") ;;
    esac
    shift
done

target=${CARGO_TARGET_DIR:-$repo/target}
[[ $target == /* ]] || target=$repo/$target
if [[ $build == 1 ]]; then
    (cd "$repo" && cargo build --release -q -p shardpool-services --example kv)
fi
kv=$target/release/examples/kv
[[ -x $kv ]] || { echo "hostile: $kv not built (drop --no-build)" >&2; exit 2; }

redis_args=()
if [[ $redis == 1 ]] && command -v redis-server >/dev/null 2>&1; then
    redis_args=(--redis "$(command -v redis-server)")
    echo "comparing with $(redis-server --version | cut -d' ' -f1-3)"
else
    echo "redis-server: not compared (not installed or --no-redis)"
fi
echo "kv example: $kv"

exec timeout --signal=TERM --kill-after=15 "${HOSTILE_TIMEOUT:-600}" \
    python3 "$here/hostile.py" --kv "$kv" "${redis_args[@]}" "${args[@]}"
