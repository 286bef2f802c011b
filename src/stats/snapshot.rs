//! The snapshot types and how a snapshot is taken.
//!
//! Keeping statistics must cost the hot path no shared read-modify-write
//! and no extra cache-line traffic, so every counter is either owned by one
//! thread or already there for another reason:
//! - a ring's `sent`, `full` and `overflowed` are written by its producer
//!   and its `received` by its consumer; a worker's `handled`, `ticks`,
//!   `parks`, `dropped` and `restarts` by the worker itself — relaxed
//!   stores, never read on the hot path;
//! - an inbox's `sent` and `received` are its tail and head indices, which
//!   the queue keeps anyway; its `full` is shared by the senders but bumped
//!   only on the full path, which is slow already.
//!
//! Only `PoolStats::collect` reads them, when a snapshot is asked for.
//!
//! The price is that a snapshot is not atomic across counters: it may be a
//! few messages stale. It never goes backwards (every counter only grows),
//! and `depth` is never negative: the receiving side is read before the
//! sending side, and `sent` is clamped to at least `received`.

use std::time::Duration;

pub use crate::id::Endpoint;
use crate::shared::{DelayHistogram, Shared, DELAY_BUCKETS};
use crate::WorkerId;

/// The counters of one channel: a worker's inbox (`from: External`) or the
/// ring from one worker to another.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelStats {
    /// The sending side.
    pub from: Endpoint,
    /// The receiving worker.
    pub to: WorkerId,
    /// Slots in the queue (a power of two).
    pub capacity: usize,
    /// Messages accepted for this channel (ring: overflow included).
    pub sent: u64,
    /// Messages the receiver has taken.
    pub received: u64,
    /// Sends that found the queue full.
    pub full: u64,
    /// Worker-to-worker messages that waited in the overflow (also those
    /// queued behind earlier overflow). Always 0 for an inbox.
    pub overflowed: u64,
    /// Messages sent and not yet received, overflow included.
    pub depth: usize,
}

/// The counters of one worker.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerStats {
    /// The worker.
    pub id: WorkerId,
    /// The CPU it is pinned to (`None` when unpinned).
    pub cpu: Option<usize>,
    /// The NUMA node of that CPU, if known.
    pub numa_node: Option<usize>,
    /// Messages passed to `handle` and returned from it.
    pub handled: u64,
    /// Calls to `tick`.
    pub ticks: u64,
    /// Times the worker parked its thread while idle.
    pub parks: u64,
    /// Messages dropped because the worker had failed: those still queued
    /// when it failed and those that arrived after. The worker drops and
    /// counts them from its next loop iteration on, so a snapshot can show
    /// `failed` a moment before `dropped` counts what was queued.
    pub dropped: u64,
    /// Times the worker was rebuilt after a panic
    /// ([`PanicPolicy::Restart`](crate::PanicPolicy::Restart)).
    pub restarts: u64,
    /// Whether the worker panicked and stopped handling messages.
    pub failed: bool,
    /// [`Context::send_after`](crate::Context::send_after) messages dropped
    /// unhandled: still pending when the pool stopped (shutdown never
    /// waits on a timer) or when the worker failed.
    pub timers_dropped: u64,
    /// Messages this worker has sent that wait in its overflows now (all
    /// peers together; a gauge, as of the worker's last loop iteration).
    /// While it is above
    /// [`PoolConfig::overflow_pause`](crate::PoolConfig::overflow_pause)
    /// the worker leaves its inbox alone.
    pub overflow_queued: u64,
    /// How long messages waited in this worker's queues (inbox and rings,
    /// overflow included) before it took them, since the pool started.
    pub queue_delay: QueueDelay,
    /// Stalls reported: times the worker stayed inside one callback longer
    /// than [`PoolConfig::stall_threshold`](crate::PoolConfig::stall_threshold)
    /// (each counted once, when reported).
    pub stalls: u64,
    /// The longest stall so far (zero if none): it grows while a reported
    /// stall lasts and holds its final length, to a sampling period (a
    /// quarter of the threshold), once the worker is back.
    pub longest_stall: Duration,
}

/// How long messages waited in a worker's queues: percentiles of sampled
/// messages since the pool started.
///
/// The worker times one message at a time, chosen by its index in a queue
/// (every few loop iterations, the newest message waiting in one of its
/// queues), so no message carries a timestamp and the hot path reads no
/// clock; the delay is measured from when the sample was chosen to the
/// end of the loop iteration that took the message (a lower bound on the
/// message's wait, to one iteration). Percentiles come from a log2
/// histogram and are the upper edge of their bucket (at most twice the
/// true value, never more than `max`); `max` is exact. All zero while no
/// sample was taken (for example while the queues were always empty).
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDelay {
    /// Messages timed.
    pub samples: u64,
    /// Median wait of the timed messages.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Longest wait seen.
    pub max: Duration,
}

impl QueueDelay {
    fn read(h: &DelayHistogram) -> QueueDelay {
        let counts: [u64; DELAY_BUCKETS] = std::array::from_fn(|k| h.buckets[k].get());
        let max = h.max.get();
        let samples: u64 = counts.iter().sum();
        let quantile = |q: f64| {
            let rank = ((samples as f64 * q).ceil() as u64).max(1);
            let mut seen = 0;
            for (k, &c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    let edge = 1u64.checked_shl(k as u32 + 1).unwrap_or(u64::MAX);
                    return Duration::from_nanos(edge.min(max));
                }
            }
            Duration::from_nanos(max)
        };
        if samples == 0 {
            return QueueDelay::default();
        }
        QueueDelay {
            samples,
            p50: quantile(0.5),
            p99: quantile(0.99),
            max: Duration::from_nanos(max),
        }
    }
}

/// A snapshot of a pool's statistics: one [`WorkerStats`] per worker, one
/// [`ChannelStats`] per inbox and per ring (`workers + workers²` channels,
/// inboxes first, then rings ordered by `(from, to)`).
///
/// `Display` prints a table; [`delta`](Self::delta) and the `*_per_sec`
/// helpers give rates; [`to_openmetrics`](Self::to_openmetrics) gives
/// OpenMetrics text (a live pool is better scraped through
/// [`MetricsCollector`](crate::MetricsCollector)).
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    /// Per worker, in id order.
    pub workers: Vec<WorkerStats>,
    /// Per channel.
    pub channels: Vec<ChannelStats>,
}

impl PoolStats {
    pub(crate) fn collect<M>(shared: &Shared<M>) -> PoolStats {
        let n = shared.workers.len();
        let workers = shared
            .workers
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let c = &w.counters;
                WorkerStats {
                    id: WorkerId::from(i),
                    cpu: w.slot.cpu,
                    numa_node: w.slot.numa_node,
                    handled: c.handled.get(),
                    ticks: c.ticks.get(),
                    parks: c.parks.get(),
                    dropped: c.dropped.get(),
                    restarts: c.restarts.get(),
                    failed: w.failed.load(std::sync::atomic::Ordering::Relaxed),
                    timers_dropped: c.timers_dropped.get(),
                    overflow_queued: c.overflow_queued.get(),
                    queue_delay: QueueDelay::read(&c.delay),
                    stalls: w.stall.stalls.get(),
                    longest_stall: Duration::from_nanos(w.stall.longest_nanos.get()),
                }
            })
            .collect();
        let mut channels = Vec::with_capacity(n + n * n);
        for (i, w) in shared.workers.iter().enumerate() {
            // Read the receiving side first so depth is never negative.
            let received = w.inbox.received();
            let sent = w.inbox.sent().max(received);
            channels.push(ChannelStats {
                from: Endpoint::External,
                to: WorkerId::from(i),
                capacity: w.inbox.capacity(),
                sent,
                received,
                full: w.inbox.full_count(),
                overflowed: 0,
                depth: (sent - received) as usize,
            });
        }
        for src in 0..n {
            for (dst, w) in shared.workers.iter().enumerate() {
                let (ring, pair) = (&w.inbound[src].ring, &w.inbound[src].counters);
                let received = ring.received();
                let sent = pair.sent.get().max(received);
                channels.push(ChannelStats {
                    from: Endpoint::Worker(WorkerId::from(src)),
                    to: WorkerId::from(dst),
                    capacity: ring.capacity(),
                    sent,
                    received,
                    full: pair.full.get(),
                    overflowed: pair.overflowed.get(),
                    depth: (sent - received) as usize,
                });
            }
        }
        PoolStats { workers, channels }
    }

    /// The channel from `from` to `to`.
    pub fn channel(&self, from: Endpoint, to: WorkerId) -> Option<&ChannelStats> {
        self.channels.iter().find(|c| c.from == from && c.to == to)
    }

    /// Worker `id`'s inbox (the channel from [`Endpoint::External`]).
    pub fn inbox(&self, id: WorkerId) -> Option<&ChannelStats> {
        self.channel(Endpoint::External, id)
    }

    /// The worker `id`.
    pub fn worker(&self, id: WorkerId) -> Option<&WorkerStats> {
        match self.workers.get(id.index()) {
            Some(w) if w.id == id => Some(w),
            _ => self.workers.iter().find(|w| w.id == id),
        }
    }

    /// Messages handled by all workers.
    pub fn handled(&self) -> u64 {
        self.workers.iter().map(|w| w.handled).sum()
    }

    /// Messages accepted on all channels, inboxes and rings.
    pub fn sent(&self) -> u64 {
        self.channels.iter().map(|c| c.sent).sum()
    }

    /// Messages waiting on all channels now (overflow included).
    pub fn depth(&self) -> usize {
        self.channels.iter().map(|c| c.depth).sum()
    }
}

/// Snapshots for the tests of the sibling modules.
#[cfg(test)]
pub(super) mod fixture {
    use super::*;

    pub(crate) fn w(i: usize) -> WorkerId {
        WorkerId::from(i)
    }

    /// A two-worker snapshot, inboxes first, then rings by `(from, to)`;
    /// every counter grows with `scale`. Worker 0 is pinned to CPU 4 on
    /// node 0, worker 1 is unpinned, failed and restarted `scale` times.
    /// Inbox 0 sent `40·scale`, all received; inbox 1 sent `30·scale`, one
    /// waiting. Ring `(from, to)` sent `(1 + 2·from + to)·20·scale`,
    /// `scale` waiting; `full` is a tenth of `sent`, `overflowed` a
    /// twentieth on rings.
    pub(crate) fn two_workers(scale: u64) -> PoolStats {
        let worker = |i: usize| WorkerStats {
            id: w(i),
            cpu: if i == 0 { Some(4) } else { None },
            numa_node: if i == 0 { Some(0) } else { None },
            handled: 100 * scale + i as u64,
            ticks: 10 * scale,
            parks: scale,
            dropped: 0,
            restarts: i as u64 * scale,
            failed: i == 1,
            timers_dropped: scale,
            overflow_queued: i as u64,
            queue_delay: QueueDelay {
                samples: scale,
                p50: Duration::from_micros(scale),
                p99: Duration::from_micros(10 * scale),
                max: Duration::from_micros(20 * scale),
            },
            stalls: i as u64 * scale,
            longest_stall: Duration::from_millis(150 * i as u64),
        };
        let chan = |from: Endpoint, to: usize, sent: u64, received: u64| ChannelStats {
            from,
            to: w(to),
            capacity: 8,
            sent,
            received,
            full: sent / 10,
            overflowed: if from == Endpoint::External {
                0
            } else {
                sent / 20
            },
            depth: (sent - received) as usize,
        };
        let mut channels = vec![
            chan(Endpoint::External, 0, 40 * scale, 40 * scale),
            chan(Endpoint::External, 1, 30 * scale, 30 * scale - 1),
        ];
        for from in 0..2 {
            for to in 0..2 {
                let sent = (1 + from as u64 * 2 + to as u64) * 20 * scale;
                channels.push(chan(Endpoint::Worker(w(from)), to, sent, sent - scale));
            }
        }
        PoolStats {
            workers: vec![worker(0), worker(1)],
            channels,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::{two_workers, w};
    use super::*;

    #[test]
    fn lookups_find_by_key() {
        let s = two_workers(1);
        assert_eq!(s.worker(w(1)).unwrap().id, w(1));
        assert!(s.worker(w(2)).is_none());
        // Found by id even when not at its index.
        let mut reversed = s.clone();
        reversed.workers.reverse();
        assert_eq!(reversed.worker(w(0)).unwrap().cpu, Some(4));
        assert_eq!(s.inbox(w(1)).unwrap().sent, 30);
        assert_eq!(s.channel(Endpoint::Worker(w(1)), w(0)).unwrap().sent, 60);
        assert!(s.channel(Endpoint::Worker(w(2)), w(0)).is_none());
    }

    #[test]
    fn sums_over_workers_and_channels() {
        let s = two_workers(1);
        assert_eq!(s.handled(), 100 + 101);
        assert_eq!(s.sent(), 40 + 30 + 20 + 40 + 60 + 80);
        assert_eq!(s.depth(), 1 + 4);
    }

    #[test]
    fn endpoint_display() {
        assert_eq!(Endpoint::External.to_string(), "ext");
        assert_eq!(Endpoint::Worker(w(3)).to_string(), "w3");
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serializable() {
        fn assert_serialize<T: serde::Serialize>() {}
        assert_serialize::<PoolStats>();
        assert_serialize::<WorkerStats>();
        assert_serialize::<ChannelStats>();
        assert_serialize::<Endpoint>();
        assert_serialize::<WorkerId>();
    }
}
