//! `Display` for [`PoolStats`]: the snapshot as a plain-text table, for
//! logs and terminals.
//!
//! One row per worker (placement, counters, status), then one row per
//! channel. A pool has `N + N²` channels, so beyond 32 channels the rings
//! that never carried a message are left out and counted in one line: on a
//! large pool most pairs never talk, and a table of tens of thousands of
//! zero rows hides the few that matter. Inboxes are always shown.

use std::fmt;

use super::{Endpoint, PoolStats};

/// Channels beyond which idle rings are left out of the table.
const SHOW_IDLE_RINGS_UP_TO: usize = 32;

fn opt(v: Option<usize>) -> String {
    v.map_or_else(|| String::from("-"), |v| v.to_string())
}

impl fmt::Display for PoolStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:>6} {:>5} {:>5} {:>12} {:>8} {:>8} {:>8} {:>10} {:>6} {:>9}  status",
            "worker",
            "cpu",
            "node",
            "handled",
            "ticks",
            "parks",
            "dropped",
            "wait p99",
            "stalls",
            "longest"
        )?;
        for w in &self.workers {
            writeln!(
                f,
                "{:>6} {:>5} {:>5} {:>12} {:>8} {:>8} {:>8} {:>10} {:>6} {:>9}  {}",
                format!("w{}", w.id),
                opt(w.cpu),
                opt(w.numa_node),
                w.handled,
                w.ticks,
                w.parks,
                w.dropped,
                if w.queue_delay.samples == 0 {
                    String::from("-")
                } else {
                    format!("{:.1?}", w.queue_delay.p99)
                },
                w.stalls,
                if w.longest_stall.is_zero() {
                    String::from("-")
                } else {
                    format!("{:.1?}", w.longest_stall)
                },
                match (w.failed, w.restarts) {
                    (true, _) => String::from("FAILED"),
                    (false, 0) => String::from("ok"),
                    (false, 1) => String::from("ok (restarted once)"),
                    (false, n) => format!("ok (restarted {n} times)"),
                }
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:>6} {:>4} {:>8} {:>12} {:>12} {:>8} {:>10} {:>10}",
            "from", "to", "capacity", "sent", "received", "depth", "full", "overflowed"
        )?;
        let hide_idle_rings = self.channels.len() > SHOW_IDLE_RINGS_UP_TO;
        let mut hidden = 0;
        for c in &self.channels {
            if hide_idle_rings && c.sent == 0 && c.from != Endpoint::External {
                hidden += 1;
                continue;
            }
            writeln!(
                f,
                "{:>6} {:>4} {:>8} {:>12} {:>12} {:>8} {:>10} {:>10}",
                c.from.to_string(),
                format!("w{}", c.to),
                c.capacity,
                c.sent,
                c.received,
                c.depth,
                c.full,
                c.overflowed
            )?;
        }
        if hidden > 0 {
            writeln!(f, "({hidden} rings that never carried a message not shown)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::snapshot::fixture::{two_workers, w};
    use super::super::{ChannelStats, WorkerStats};
    use super::*;
    use std::time::Duration;

    /// The whitespace-separated cells of each line.
    fn rows(text: &str) -> Vec<Vec<String>> {
        text.lines()
            .map(|l| l.split_whitespace().map(String::from).collect())
            .collect()
    }

    #[test]
    fn one_row_per_worker_and_per_channel() {
        let mut stats = two_workers(1);
        stats.workers[0].restarts = 2;
        let text = stats.to_string();
        let rows = rows(&text);
        assert_eq!(rows[0][0], "worker");
        assert_eq!(
            rows[1],
            [
                "w0",
                "4",
                "0",
                "100",
                "10",
                "1",
                "0",
                "10.0µs",
                "0",
                "-",
                "ok",
                "(restarted",
                "2",
                "times)"
            ]
        );
        assert_eq!(
            rows[2],
            ["w1", "-", "-", "101", "10", "1", "0", "10.0µs", "1", "150.0ms", "FAILED"]
        );
        assert!(rows[3].is_empty());
        assert_eq!(rows[4][0], "from");
        // 2 inboxes + 4 rings, in snapshot order; nothing hidden.
        assert_eq!(rows.len(), 5 + 6);
        assert_eq!(rows[5], ["ext", "w0", "8", "40", "40", "0", "4", "0"]);
        assert_eq!(rows[10], ["w1", "w1", "8", "80", "79", "1", "8", "4"]);
        assert!(!text.contains("not shown"));
    }

    #[test]
    fn restarted_once_reads_as_once() {
        let mut stats = two_workers(1);
        stats.workers[1].failed = false;
        assert!(stats.to_string().contains("ok (restarted once)"));
    }

    #[test]
    fn idle_rings_hidden_on_a_large_pool() {
        // 6 workers: 6 inboxes + 36 rings > 32 channels.
        let n = 6;
        let chan = |from: Endpoint, to: usize, sent: u64| ChannelStats {
            from,
            to: w(to),
            capacity: 8,
            sent,
            received: sent,
            full: 0,
            overflowed: 0,
            depth: 0,
        };
        let mut channels: Vec<ChannelStats> =
            (0..n).map(|i| chan(Endpoint::External, i, 0)).collect();
        for from in 0..n {
            for to in 0..n {
                let sent = if (from, to) == (2, 5) { 7 } else { 0 };
                channels.push(chan(Endpoint::Worker(w(from)), to, sent));
            }
        }
        let workers = (0..n)
            .map(|i| WorkerStats {
                id: w(i),
                cpu: None,
                numa_node: None,
                handled: 0,
                ticks: 0,
                parks: 0,
                dropped: 0,
                restarts: 0,
                failed: false,
                timers_dropped: 0,
                overflow_queued: 0,
                queue_delay: Default::default(),
                stalls: 0,
                longest_stall: Duration::ZERO,
            })
            .collect();
        let text = PoolStats { workers, channels }.to_string();
        let rows = rows(&text);
        let channel_rows: Vec<_> = rows.iter().skip(n + 3).collect();
        // Every inbox (even idle), the one ring that carried traffic, and
        // the count of the 35 hidden ones.
        assert_eq!(channel_rows.len(), n + 1 + 1, "{text}");
        assert!(channel_rows[..n].iter().all(|r| r[0] == "ext"));
        assert_eq!(channel_rows[n][..4], ["w2", "w5", "8", "7"]);
        assert!(text.ends_with("(35 rings that never carried a message not shown)\n"));
    }
}
