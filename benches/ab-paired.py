#!/usr/bin/env python3
"""Compare two builds of the headline binary run in turn, paired by round.

`ab-regime.py` keeps only runs whose floor stayed in the VM's fast or
slow regime; when the floor sits between the two (as it can for an hour),
it keeps nothing. This runs build A then build B, round after round, and
for each row asked for reports the median over the rounds of B / A, and
of B / A with each run's value divided by that run's floor (the cross-CPU
atomic ping-pong printed at the start and end of the run), which takes
out most of the regime's effect on latency rows.

    benches/ab-paired.py --only latency --rounds 10 \\
        --row "RTT p50/p99/p99.9 ns (Backoff)" /tmp/headline-a /tmp/headline-b

A row is the start of the table's workload cell; the first row that
matches is used. Run it with nothing else on the machine.
"""

import argparse
import re
import statistics
import subprocess

FLOOR = re.compile(r"floor p50: start (\d+) ns, end (\d+) ns")


def number(cell):
    """The first number of a value cell ("45.1 M/s", "260/381/1032")."""
    return float(re.split(r"[ /%]", cell.strip())[0])


def run(build, only, reps, rows):
    p = subprocess.run(
        [build, "--only", only, "--reps", str(reps)],
        capture_output=True,
        text=True,
        check=True,
    )
    out = p.stdout + p.stderr
    values = {}
    for line in out.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        for row in rows:
            if row not in values and cells[0].startswith(row):
                try:
                    values[row] = number(cells[1])
                except ValueError:
                    pass
    m = FLOOR.search(out)
    floor = (int(m.group(1)) + int(m.group(2))) / 2 if m else None
    return values, floor


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", required=True, help="headline sections")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--row", action="append", required=True, help="workload cell prefix")
    ap.add_argument("a", help="headline binary A (the base)")
    ap.add_argument("b", help="headline binary B")
    args = ap.parse_args()

    pairs = []
    for r in range(args.rounds):
        a = run(args.a, args.only, args.reps, args.row)
        b = run(args.b, args.only, args.reps, args.row)
        pairs.append((a, b))
        print(f"round {r + 1}: floor A {a[1]} ns, B {b[1]} ns", flush=True)

    print()
    print(f"{'row':44} {'A median':>10} {'B median':>10} {'B/A':>6} {'range':>13} {'B/A per floor':>14}")
    for row in args.row:
        both = [(a, b) for a, b in pairs if row in a[0] and row in b[0]]
        if not both:
            print(f"{row:44} (no value)")
            continue
        ratios = [b[0][row] / a[0][row] for a, b in both]
        per_floor = [
            (b[0][row] / b[1]) / (a[0][row] / a[1]) for a, b in both if a[1] and b[1]
        ]
        a_med = statistics.median(a[0][row] for a, _ in both)
        b_med = statistics.median(b[0][row] for _, b in both)
        pf = f"{statistics.median(per_floor):.3f}" if per_floor else "-"
        rng = f"{min(ratios):.2f}-{max(ratios):.2f}"
        print(f"{row:44} {a_med:10.3f} {b_med:10.3f} {statistics.median(ratios):6.3f} {rng:>13} {pf:>14}")
    print(f"\n{len(pairs)} rounds; for a latency row B/A below 1 means B is faster,")
    print("for a throughput row above 1 means B is faster.")


if __name__ == "__main__":
    main()
