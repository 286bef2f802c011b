//! The report: interleaved runs of shardpool and a peer, medians, paired
//! ratios, percentiles and the table the `headline` binary prints.

use std::time::Duration;

use crate::peers::round_trip::rtt_floor;

/// The median of `v` (NaN when empty).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// The `q` quantile (0..=1) of nanosecond samples (NaN when empty).
pub fn percentile(v: &mut [u32], q: f64) -> f64 {
    v.sort_unstable();
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i] as f64
}

/// Millions of messages per second.
fn mps(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64() / 1e6
}

/// One line of the table: a workload, shardpool's value, the peer's, the
/// median paired ratio and the target it is held to.
pub struct Row {
    /// What was measured.
    pub workload: String,
    /// shardpool's value, formatted.
    pub ours: String,
    /// The peer's name.
    pub peer: String,
    /// The peer's value, formatted.
    pub peer_value: String,
    /// shardpool / peer (median of the paired per-rep ratios).
    pub ratio: f64,
    /// (target, whether the ratio counts as higher-is-better)
    pub target: Option<(f64, bool)>,
}

impl Row {
    fn met(&self) -> &'static str {
        match self.target {
            None => "",
            Some((t, true)) if self.ratio >= t => "met",
            Some((_, true)) => "MISSED",
            Some((t, false)) if self.ratio <= t => "met",
            Some((_, false)) => "MISSED",
        }
    }

    fn target_text(&self) -> String {
        match self.target {
            None => String::new(),
            Some((t, true)) => format!(">= {t}x"),
            Some((t, false)) => format!("<= {t}x"),
        }
    }
}

/// Runs `a` and `b` alternately `reps` times (after one untimed warm-up
/// each); returns (a values, b values, paired ratios a/b).
pub fn interleave(
    reps: usize,
    mut a: impl FnMut() -> f64,
    mut b: impl FnMut() -> f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    a();
    b();
    let (mut va, mut vb, mut r) = (vec![], vec![], vec![]);
    for i in 0..reps {
        // Alternate which goes first, so neither always runs "second".
        let (x, y) = if i % 2 == 0 {
            let x = a();
            (x, b())
        } else {
            let y = b();
            (a(), y)
        };
        va.push(x);
        vb.push(y);
        r.push(x / y);
    }
    (va, vb, r)
}

/// Interleaves `ours` and `theirs` (each moving `n` messages) `reps` times
/// and adds their throughput row, held to `target` (higher is better).
pub fn throughput_row(
    rows: &mut Vec<Row>,
    reps: usize,
    (workload, peer): (&str, &str),
    n: u64,
    target: Option<f64>,
    mut ours: impl FnMut() -> Duration,
    mut theirs: impl FnMut() -> Duration,
) {
    let (a, b, r) = interleave(reps, || mps(n, ours()), || mps(n, theirs()));
    let row = Row {
        workload: workload.to_string(),
        ours: format!("{:.1} M/s", median(&a)),
        peer: peer.to_string(),
        peer_value: format!("{:.1} M/s", median(&b)),
        ratio: median(&r),
        target: target.map(|t| (t, true)),
    };
    eprintln!(
        "  {workload} vs {peer}: shardpool {a:.1?} | peer {b:.1?} | ratios {r:.2?} -> {:.2}x",
        row.ratio
    );
    rows.push(row);
}

/// `p50/p99/p99.9` of `v` (sorted in place), in its unit, for a table cell.
pub fn p50_p99_p999(v: &mut [u32]) -> String {
    format!(
        "{:.0}/{:.0}/{:.0}",
        percentile(v, 0.5),
        percentile(v, 0.99),
        percentile(v, 0.999)
    )
}

/// Prints the rows as a markdown table on stdout.
pub fn print_table(rows: &[Row]) {
    println!();
    println!(
        "| {:<34} | {:>12} | {:<26} | {:>12} | {:>7} | {:>8} | {:<6} |",
        "workload", "shardpool", "peer", "peer value", "ratio", "target", ""
    );
    println!(
        "|{:-<36}|{:->14}|{:-<28}|{:->14}|{:->9}|{:->10}|{:-<8}|",
        "", "", "", "", "", "", ""
    );
    for r in rows {
        println!(
            "| {:<34} | {:>12} | {:<26} | {:>12} | {:>6.2}x | {:>8} | {:<6} |",
            r.workload,
            r.ours,
            r.peer,
            r.peer_value,
            r.ratio,
            r.target_text(),
            r.met()
        );
    }
}

/// The cross-CPU round-trip floor's p50 now, in ns: which regime the
/// machine is in.
pub fn floor_p50() -> f64 {
    let mut v = rtt_floor(20_000);
    percentile(&mut v, 0.5)
}

/// The 1, 5 and 15 minute load averages (empty where unavailable).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_percentile() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        let mut v: Vec<u32> = (1..=101).rev().collect();
        assert_eq!(percentile(&mut v, 0.5), 51.0);
        assert_eq!(percentile(&mut v, 0.99), 100.0);
        assert!(percentile(&mut [], 0.5).is_nan());
    }

    #[test]
    fn interleave_pairs_each_rep() {
        let (mut a, mut b) = (0.0, 0.0);
        let (va, vb, r) = interleave(
            3,
            || {
                a += 2.0;
                a
            },
            || {
                b += 1.0;
                b
            },
        );
        // One warm-up each, then 3 timed reps.
        assert_eq!(va, [4.0, 6.0, 8.0]);
        assert_eq!(vb, [2.0, 3.0, 4.0]);
        assert_eq!(r, [2.0, 2.0, 2.0]);
    }

    #[test]
    fn targets_are_met_or_missed() {
        let row = |ratio, target| Row {
            workload: String::new(),
            ours: String::new(),
            peer: String::new(),
            peer_value: String::new(),
            ratio,
            target,
        };
        assert_eq!(row(1.0, Some((1.0, true))).met(), "met");
        assert_eq!(row(0.9, Some((1.0, true))).met(), "MISSED");
        assert_eq!(row(1.6, Some((1.5, false))).met(), "MISSED");
        assert_eq!(row(1.4, Some((1.5, false))).target_text(), "<= 1.5x");
        assert_eq!(row(1.4, None).met(), "");
    }
}
