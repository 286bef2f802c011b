//! Rates: what happened between two snapshots.
//!
//! The pool keeps only ever-growing counters — no clocks, no windows, no
//! moving averages on the hot path. Anything with a time axis is computed
//! here, on the reader's side: [`PoolStats::delta`] subtracts an earlier
//! snapshot, and the `*_per_sec` helpers divide a delta's counters by the
//! time between the two snapshots, which only the reader knows.
//!
//! Counters subtract with `saturating_sub`, so a delta against a snapshot of
//! another pool (or a newer one) reads as zero rather than wrapping. Gauges
//! (`depth`, `capacity`) and states (`failed`, placement) are not rates: a
//! delta keeps the newer snapshot's values.

use std::collections::HashMap;
use std::time::Duration;

use super::{ChannelStats, Endpoint, PoolStats, WorkerStats};
use crate::WorkerId;

/// `count / elapsed` in events per second (0 when `elapsed` is zero).
fn per_sec(count: u64, elapsed: Duration) -> f64 {
    if elapsed.is_zero() {
        0.0
    } else {
        count as f64 / elapsed.as_secs_f64()
    }
}

impl WorkerStats {
    /// The counters accumulated since `prev` (an earlier snapshot of the
    /// same worker): each counter is `self - prev`, saturating at 0; `id`,
    /// `cpu`, `numa_node`, `failed`, the gauge `overflow_queued` and the
    /// maxima (`queue_delay`, `longest_stall`) are `self`'s.
    pub fn delta(&self, prev: &WorkerStats) -> WorkerStats {
        WorkerStats {
            handled: self.handled.saturating_sub(prev.handled),
            ticks: self.ticks.saturating_sub(prev.ticks),
            parks: self.parks.saturating_sub(prev.parks),
            dropped: self.dropped.saturating_sub(prev.dropped),
            restarts: self.restarts.saturating_sub(prev.restarts),
            timers_dropped: self.timers_dropped.saturating_sub(prev.timers_dropped),
            stalls: self.stalls.saturating_sub(prev.stalls),
            ..self.clone()
        }
    }

    /// `handled / elapsed`: on a [`delta`](Self::delta), the rate over the
    /// interval; on a snapshot, the average since the pool started if
    /// `elapsed` is its uptime.
    pub fn handled_per_sec(&self, elapsed: Duration) -> f64 {
        per_sec(self.handled, elapsed)
    }
}

impl ChannelStats {
    /// The counters accumulated since `prev` (an earlier snapshot of the
    /// same channel): `sent`, `received`, `full` and `overflowed` are
    /// `self - prev`, saturating at 0; `depth` and `capacity` are `self`'s
    /// (they are gauges, not counters).
    pub fn delta(&self, prev: &ChannelStats) -> ChannelStats {
        ChannelStats {
            sent: self.sent.saturating_sub(prev.sent),
            received: self.received.saturating_sub(prev.received),
            full: self.full.saturating_sub(prev.full),
            overflowed: self.overflowed.saturating_sub(prev.overflowed),
            ..self.clone()
        }
    }

    /// `sent / elapsed` (see [`WorkerStats::handled_per_sec`]).
    pub fn sent_per_sec(&self, elapsed: Duration) -> f64 {
        per_sec(self.sent, elapsed)
    }

    /// `received / elapsed` (see [`WorkerStats::handled_per_sec`]).
    pub fn received_per_sec(&self, elapsed: Duration) -> f64 {
        per_sec(self.received, elapsed)
    }
}

impl PoolStats {
    /// The counters accumulated since `prev`, an earlier snapshot of the
    /// same pool: every worker and channel of `self` minus its match in
    /// `prev` (by id, and by `(from, to)`), see [`WorkerStats::delta`] and
    /// [`ChannelStats::delta`]. Counters subtract with `saturating_sub`;
    /// gauges (`depth`, `capacity`) and `failed` are kept from `self`. A
    /// worker or channel missing from `prev` is kept as it is.
    ///
    /// ```
    /// # use shardpool::prelude::*;
    /// # use std::time::{Duration, Instant};
    /// # #[derive(Default)] struct W;
    /// # impl Worker for W { type Msg = u32; fn handle(&mut self, _: u32, _: &mut Context<'_, u32>) {} }
    /// # let pool = Pool::start(PoolConfig::default().workers(1).affinity(Affinity::None), |_| W)?;
    /// let (before, t0) = (pool.stats(), Instant::now());
    /// pool.sender().send_to(WorkerId::from(0), 7)?;
    /// std::thread::sleep(Duration::from_millis(20));
    /// let window = pool.stats().delta(&before);
    /// let rate = window.handled_per_sec(t0.elapsed()); // messages/s over the window
    /// assert!(window.handled() <= 1 && rate >= 0.0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn delta(&self, prev: &PoolStats) -> PoolStats {
        let workers = self
            .workers
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let old = match prev.workers.get(i) {
                    Some(p) if p.id == w.id => Some(p),
                    _ => prev.workers.iter().find(|p| p.id == w.id),
                };
                old.map_or_else(|| w.clone(), |p| w.delta(p))
            })
            .collect();
        let mut index: Option<HashMap<(Endpoint, WorkerId), usize>> = None;
        let channels = self
            .channels
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let old = match prev.channels.get(i) {
                    // The common case: the same pool, the same order.
                    Some(p) if p.from == c.from && p.to == c.to => Some(p),
                    _ => {
                        let index = index.get_or_insert_with(|| {
                            prev.channels
                                .iter()
                                .enumerate()
                                .map(|(j, p)| ((p.from, p.to), j))
                                .collect()
                        });
                        index.get(&(c.from, c.to)).map(|&j| &prev.channels[j])
                    }
                };
                old.map_or_else(|| c.clone(), |p| c.delta(p))
            })
            .collect();
        PoolStats { workers, channels }
    }

    /// [`handled`](Self::handled)` / elapsed`: on a [`delta`](Self::delta),
    /// the pool's message rate over the interval.
    pub fn handled_per_sec(&self, elapsed: Duration) -> f64 {
        per_sec(self.handled(), elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::super::snapshot::fixture::{two_workers, w};
    use super::*;

    #[test]
    fn delta_subtracts_counters_and_keeps_gauges() {
        let (prev, now) = (two_workers(1), two_workers(3));
        let d = now.delta(&prev);
        assert_eq!(d.workers[0].handled, 200);
        assert_eq!(d.workers[1].ticks, 20);
        assert_eq!(d.workers[1].parks, 2);
        assert_eq!(d.workers[1].restarts, 2);
        assert!(d.workers[1].failed);
        assert_eq!(d.workers[0].cpu, Some(4));
        let ring = d.channel(Endpoint::Worker(w(1)), w(0)).unwrap();
        assert_eq!(ring.sent, 60 * 3 - 60);
        assert_eq!(ring.received, (60 * 3 - 3) - (60 - 1));
        assert_eq!(ring.depth, 3, "depth is a gauge: self's value");
        assert_eq!(ring.capacity, 8);
        assert_eq!(d.inbox(w(1)).unwrap().depth, 1);
        // Going backwards (a different pool, a reset) saturates at zero.
        let back = prev.delta(&now);
        assert!(back.workers.iter().all(|w| w.handled == 0));
        assert!(back.channels.iter().all(|c| c.sent == 0 && c.full == 0));
        // Delta against itself: all counters 0, gauges untouched.
        let zero = now.delta(&now);
        assert_eq!(zero.handled(), 0);
        assert_eq!(zero.depth(), now.depth());
    }

    #[test]
    fn delta_matches_by_key_not_position() {
        let prev = two_workers(1);
        let mut shuffled = prev.clone();
        shuffled.channels.reverse();
        shuffled.workers.reverse();
        let now = two_workers(2);
        assert_eq!(now.delta(&shuffled), now.delta(&prev));
        // Missing from prev: kept whole.
        let empty = PoolStats {
            workers: vec![],
            channels: vec![],
        };
        assert_eq!(now.delta(&empty), now);
    }

    #[test]
    fn rates() {
        let d = two_workers(3).delta(&two_workers(1));
        let half = Duration::from_millis(500);
        assert_eq!(d.workers[0].handled_per_sec(half), 400.0);
        assert_eq!(d.handled_per_sec(half), 800.0);
        let inbox = d.inbox(w(0)).unwrap();
        assert_eq!(inbox.sent_per_sec(half), 160.0);
        assert_eq!(inbox.received_per_sec(half), 160.0);
        assert_eq!(inbox.received_per_sec(Duration::ZERO), 0.0);
        assert_eq!(d.handled_per_sec(Duration::ZERO), 0.0);
    }
}
