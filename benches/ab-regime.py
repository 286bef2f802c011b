#!/usr/bin/env python3
"""Compare builds of the headline binary, interleaved, split by regime.

The two vCPUs of the benchmark VM switch between a fast regime (a
cache-line round trip, "the floor", of ~90-150 ns) and a slow one
(~400-800 ns) within minutes, and most ratios differ between the two.
This runs each build's `headline --only SECTIONS --reps REPS` in turn,
round after round (A B A B ...), reads the floor the run printed at its
start and end, and keeps a run only when both were in one regime: fast
(<= 200 ns) or slow (>= 350 ns). For each table row asked for it prints,
per build and regime, the median over the kept runs of the row's ratio
and of both sides' values.

    cargo build --release -p shardpool-benches --bin headline
    cp target/release/headline /tmp/headline-a   # one build
    # ... change, rebuild ...
    cp target/release/headline /tmp/headline-b   # the other
    benches/ab-regime.py --only shuffle --rounds 30 \\
        --row "shuffle (ctx.send_keyed)@rtrb mesh" /tmp/headline-a /tmp/headline-b

A row is `WORKLOAD@PEER`: the start of the table's workload cell and of
its peer cell (the peer part may be left out when the workload is unique).
Run it with nothing else on the machine.
"""

import argparse
import re
import statistics
import subprocess

FLOOR = re.compile(r"floor p50: start (\d+) ns, end (\d+) ns")


def number(cell):
    """The first number of a value cell ("45.1 M/s", "260/381/1032")."""
    return float(re.split(r"[ /%]", cell.strip())[0])


def regime(start, end):
    if max(start, end) <= 200:
        return "fast"
    if min(start, end) >= 350:
        return "slow"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", required=True, help="headline sections")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--row", action="append", required=True, help="WORKLOAD@PEER")
    ap.add_argument("builds", nargs="+", help="headline binaries")
    args = ap.parse_args()

    rows = [tuple((r.split("@", 1) + [""])[:2]) for r in args.row]
    # (build, regime, row) -> [(ratio, ours, peer)]
    kept = {}
    for _ in range(args.rounds):
        for build in args.builds:
            cmd = [build, "--only", args.only, "--reps", str(args.reps)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            floor = FLOOR.search(out)
            if not floor:
                continue
            which = regime(int(floor.group(1)), int(floor.group(2)))
            if which is None:
                continue
            for line in out.splitlines():
                cells = [c.strip() for c in line.split("|")]
                if len(cells) < 7:
                    continue
                for workload, peer in rows:
                    if cells[1].startswith(workload) and cells[3].startswith(peer):
                        value = (number(cells[5].rstrip("x")), number(cells[2]), number(cells[4]))
                        kept.setdefault((build, which, (workload, peer)), []).append(value)
    for which in ("fast", "slow"):
        for row in rows:
            print(f"{which}: {row[0]} vs {row[1] or 'its peer'}")
            for build in args.builds:
                got = kept.get((build, which, row), [])
                if not got:
                    print(f"    {build}: no run kept")
                    continue
                med = [statistics.median(v[i] for v in got) for i in range(3)]
                lo = min(v[0] for v in got)
                hi = max(v[0] for v in got)
                print(
                    f"    {build}: ratio {med[0]:.3f} ({lo:.2f}-{hi:.2f}), "
                    f"ours {med[1]:g}, peer {med[2]:g}, runs {len(got)}"
                )


if __name__ == "__main__":
    main()
