//! Statistics: a snapshot of every channel's and every worker's counters.
//!
//! Each counter has one writer (a ring's `sent`/`full`/`overflowed` its
//! producer, `received` its consumer; a worker its own `handled`, `ticks`,
//! `parks`), written with relaxed stores and read only when a snapshot is
//! taken, so keeping them costs the hot path no shared read-modify-write. A
//! snapshot may be a few messages stale; it never goes backwards.

use std::fmt;

use crate::pool::Shared;
use crate::WorkerId;

/// One end of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// Threads outside the pool, through a [`PoolSender`](crate::PoolSender).
    External,
    /// A worker of the pool.
    Worker(WorkerId),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::External => f.write_str("ext"),
            Endpoint::Worker(id) => write!(f, "w{id}"),
        }
    }
}

/// The counters of one channel: a worker's inbox (`from: External`) or the
/// ring from one worker to another.
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
    /// Messages that arrived after the worker failed and were dropped.
    pub dropped: u64,
    /// Whether the worker panicked and stopped handling messages.
    pub failed: bool,
}

/// A snapshot of a pool's statistics: one [`WorkerStats`] per worker, one
/// [`ChannelStats`] per inbox and per ring (`workers + workers²` channels,
/// inboxes first, then rings ordered by `(from, to)`).
///
/// `Display` prints a table.
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
                    failed: w.failed.load(std::sync::atomic::Ordering::Relaxed),
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
                let ring = &w.inbound[src];
                let received = ring.received();
                let sent = ring.tx.sent.get().max(received);
                channels.push(ChannelStats {
                    from: Endpoint::Worker(WorkerId::from(src)),
                    to: WorkerId::from(dst),
                    capacity: ring.capacity(),
                    sent,
                    received,
                    full: ring.tx.full.get(),
                    overflowed: ring.tx.overflowed.get(),
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

    /// Messages handled by all workers.
    pub fn handled(&self) -> u64 {
        self.workers.iter().map(|w| w.handled).sum()
    }
}

fn opt(v: Option<usize>) -> String {
    v.map_or_else(|| String::from("-"), |v| v.to_string())
}

impl fmt::Display for PoolStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:>6} {:>5} {:>5} {:>12} {:>8} {:>8} {:>8}  status",
            "worker", "cpu", "node", "handled", "ticks", "parks", "dropped"
        )?;
        for w in &self.workers {
            writeln!(
                f,
                "{:>6} {:>5} {:>5} {:>12} {:>8} {:>8} {:>8}  {}",
                format!("w{}", w.id),
                opt(w.cpu),
                opt(w.numa_node),
                w.handled,
                w.ticks,
                w.parks,
                w.dropped,
                if w.failed { "FAILED" } else { "ok" }
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:>6} {:>4} {:>8} {:>12} {:>12} {:>8} {:>10} {:>10}",
            "from", "to", "capacity", "sent", "received", "depth", "full", "overflowed"
        )?;
        let mut quiet = 0;
        for c in &self.channels {
            if c.sent == 0 && c.from != Endpoint::External && self.channels.len() > 32 {
                quiet += 1;
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
        if quiet > 0 {
            writeln!(f, "({quiet} rings that never carried a message not shown)")?;
        }
        Ok(())
    }
}
