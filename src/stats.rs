//! Statistics: a snapshot of every channel's and every worker's counters.
//!
//! Each counter has one writer (a ring's `sent`/`full`/`overflowed` its
//! producer, `received` its consumer; a worker its own `handled`, `ticks`,
//! `parks`), written with relaxed stores and read only when a snapshot is
//! taken, so keeping them costs the hot path no shared read-modify-write. A
//! snapshot may be a few messages stale; it never goes backwards.
//!
//! A snapshot can be
//! - printed as a table (`Display`);
//! - exported in the OpenMetrics / Prometheus text format
//!   ([`PoolStats::to_openmetrics`]): per-worker series always, the `N + N²`
//!   per-channel series only when asked, since they grow with the square of
//!   the worker count;
//! - turned into rates: [`PoolStats::delta`] subtracts an earlier snapshot,
//!   and the `*_per_sec` helpers divide a delta's counters by the time
//!   between the two snapshots;
//! - serialized with serde (feature `serde`).

use std::fmt;
use std::fmt::Write as _;
use std::time::Duration;

use crate::shared::Shared;
use crate::WorkerId;

/// One end of a channel.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
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
}

/// A snapshot of a pool's statistics: one [`WorkerStats`] per worker, one
/// [`ChannelStats`] per inbox and per ring (`workers + workers²` channels,
/// inboxes first, then rings ordered by `(from, to)`).
///
/// `Display` prints a table.
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
    /// `cpu`, `numa_node` and `failed` are `self`'s.
    pub fn delta(&self, prev: &WorkerStats) -> WorkerStats {
        WorkerStats {
            handled: self.handled.saturating_sub(prev.handled),
            ticks: self.ticks.saturating_sub(prev.ticks),
            parks: self.parks.saturating_sub(prev.parks),
            dropped: self.dropped.saturating_sub(prev.dropped),
            restarts: self.restarts.saturating_sub(prev.restarts),
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

/// Per-worker sums over the channels, for the aggregate metrics.
#[derive(Default, Clone, Copy)]
struct WorkerTotals {
    inbox_sent: u64,
    inbox_received: u64,
    inbox_full: u64,
    inbox_depth: u64,
    inbox_capacity: u64,
    /// Over the rings `self → *`.
    mesh_sent: u64,
    mesh_full: u64,
    mesh_overflowed: u64,
    /// Over the rings `* → self`.
    mesh_received: u64,
    mesh_depth: u64,
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
        let mut index: Option<std::collections::HashMap<(Endpoint, WorkerId), usize>> = None;
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

    /// Messages accepted on all channels, inboxes and rings.
    pub fn sent(&self) -> u64 {
        self.channels.iter().map(|c| c.sent).sum()
    }

    /// Messages waiting on all channels now (overflow included).
    pub fn depth(&self) -> usize {
        self.channels.iter().map(|c| c.depth).sum()
    }

    /// The worker `id`.
    pub fn worker(&self, id: WorkerId) -> Option<&WorkerStats> {
        match self.workers.get(id.index()) {
            Some(w) if w.id == id => Some(w),
            _ => self.workers.iter().find(|w| w.id == id),
        }
    }

    /// Worker `id`'s inbox (the channel from [`Endpoint::External`]).
    pub fn inbox(&self, id: WorkerId) -> Option<&ChannelStats> {
        self.channel(Endpoint::External, id)
    }

    /// Per worker, in `self.workers` order.
    fn totals(&self) -> Vec<WorkerTotals> {
        let mut totals = vec![WorkerTotals::default(); self.workers.len()];
        let pos: std::collections::HashMap<WorkerId, usize> = self
            .workers
            .iter()
            .enumerate()
            .map(|(i, w)| (w.id, i))
            .collect();
        for c in &self.channels {
            if let Some(&to) = pos.get(&c.to) {
                let t = &mut totals[to];
                match c.from {
                    Endpoint::External => {
                        t.inbox_sent += c.sent;
                        t.inbox_received += c.received;
                        t.inbox_full += c.full;
                        t.inbox_depth += c.depth as u64;
                        t.inbox_capacity += c.capacity as u64;
                    }
                    Endpoint::Worker(_) => {
                        t.mesh_received += c.received;
                        t.mesh_depth += c.depth as u64;
                    }
                }
            }
            if let Endpoint::Worker(from) = c.from {
                if let Some(&from) = pos.get(&from) {
                    let t = &mut totals[from];
                    t.mesh_sent += c.sent;
                    t.mesh_full += c.full;
                    t.mesh_overflowed += c.overflowed;
                }
            }
        }
        totals
    }

    /// The snapshot in the [OpenMetrics] text format (which Prometheus
    /// scrapes when served as `application/openmetrics-text; version=1.0.0`),
    /// ending with `# EOF`.
    ///
    /// Always exported, one series per worker (`worker="0"`, …):
    ///
    /// | metric | type | what |
    /// |---|---|---|
    /// | `shardpool_workers` | gauge | workers in the pool |
    /// | `shardpool_worker_info{worker,cpu,numa_node}` | info | placement (`cpu`/`numa_node` omitted when unknown) |
    /// | `shardpool_worker_{handled,ticks,parks,dropped,restarts}_total` | counter | [`WorkerStats`] |
    /// | `shardpool_worker_failed` | gauge | 1 once the worker panicked |
    /// | `shardpool_inbox_{sent,received,full}_total` | counter | the worker's inbox |
    /// | `shardpool_inbox_{depth,capacity}` | gauge | the worker's inbox |
    /// | `shardpool_mesh_{sent,full,overflowed}_total` | counter | summed over the rings *from* the worker |
    /// | `shardpool_mesh_received_total` | counter | summed over the rings *to* the worker |
    /// | `shardpool_mesh_depth` | gauge | messages waiting for the worker in its rings |
    ///
    /// With `per_channel`, also one series per channel
    /// (`from="ext"` or `from="3"`, `to="1"`): `shardpool_channel_{sent,
    /// received,full,overflowed}_total` and `shardpool_channel_{depth,capacity}`.
    /// That is `N + N²` series per metric — 65 792 for 256 workers — which is
    /// why it is opt-in (ScyllaDB turned Seastar's per-queue metrics off for
    /// that reason).
    ///
    /// ```
    /// # use shardpool::prelude::*;
    /// # #[derive(Default)] struct W;
    /// # impl Worker for W { type Msg = u32; fn handle(&mut self, _: u32, _: &mut Context<'_, u32>) {} }
    /// # let pool = Pool::start(PoolConfig::default().workers(2).affinity(Affinity::None), |_| W)?;
    /// let text = pool.stats().to_openmetrics(false);
    /// assert!(text.contains("shardpool_worker_handled_total{worker=\"1\"} "));
    /// assert!(text.ends_with("# EOF\n"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// [OpenMetrics]: https://github.com/OpenObservability/OpenMetrics/blob/main/specification/OpenMetrics.md
    pub fn to_openmetrics(&self, per_channel: bool) -> String {
        let mut out = String::with_capacity(
            2048 + self.workers.len() * 1024
                + if per_channel {
                    self.channels.len() * 400
                } else {
                    0
                },
        );
        let totals = self.totals();
        let w = |out: &mut String| -> fmt::Result {
            family(out, "shardpool_workers", "gauge", "Workers in the pool.")?;
            writeln!(out, "shardpool_workers {}", self.workers.len())?;

            family(out, "shardpool_worker", "info", "Where each worker runs.")?;
            for ws in &self.workers {
                write!(out, "shardpool_worker_info{{worker=\"{}\"", ws.id)?;
                if let Some(cpu) = ws.cpu {
                    write!(out, ",cpu=\"{cpu}\"")?;
                }
                if let Some(node) = ws.numa_node {
                    write!(out, ",numa_node=\"{node}\"")?;
                }
                writeln!(out, "}} 1")?;
            }

            type WorkerField = fn(&WorkerStats) -> u64;
            let worker_counters: [(&str, &str, WorkerField); 5] = [
                (
                    "handled",
                    "Messages passed to handle and returned from it.",
                    |w| w.handled,
                ),
                ("ticks", "Calls to tick.", |w| w.ticks),
                (
                    "parks",
                    "Times the worker parked its thread while idle.",
                    |w| w.parks,
                ),
                (
                    "dropped",
                    "Messages dropped because the worker had failed.",
                    |w| w.dropped,
                ),
                (
                    "restarts",
                    "Times the worker was rebuilt after a panic.",
                    |w| w.restarts,
                ),
            ];
            for (name, help, get) in worker_counters {
                let name = format!("shardpool_worker_{name}");
                family(out, &name, "counter", help)?;
                for ws in &self.workers {
                    writeln!(out, "{name}_total{{worker=\"{}\"}} {}", ws.id, get(ws))?;
                }
            }
            family(
                out,
                "shardpool_worker_failed",
                "gauge",
                "1 once the worker has panicked.",
            )?;
            for ws in &self.workers {
                writeln!(
                    out,
                    "shardpool_worker_failed{{worker=\"{}\"}} {}",
                    ws.id,
                    u8::from(ws.failed)
                )?;
            }

            type TotalField = fn(&WorkerTotals) -> u64;
            let aggregates: [(&str, &str, &str, TotalField); 10] = [
                (
                    "shardpool_inbox_sent",
                    "counter",
                    "Messages accepted into the worker's inbox.",
                    |t| t.inbox_sent,
                ),
                (
                    "shardpool_inbox_received",
                    "counter",
                    "Messages the worker took from its inbox.",
                    |t| t.inbox_received,
                ),
                (
                    "shardpool_inbox_full",
                    "counter",
                    "Sends that found the worker's inbox full.",
                    |t| t.inbox_full,
                ),
                (
                    "shardpool_inbox_depth",
                    "gauge",
                    "Messages waiting in the worker's inbox.",
                    |t| t.inbox_depth,
                ),
                (
                    "shardpool_inbox_capacity",
                    "gauge",
                    "Slots in the worker's inbox.",
                    |t| t.inbox_capacity,
                ),
                (
                    "shardpool_mesh_sent",
                    "counter",
                    "Messages the worker sent to workers (itself included).",
                    |t| t.mesh_sent,
                ),
                (
                    "shardpool_mesh_full",
                    "counter",
                    "The worker's sends that found a ring full.",
                    |t| t.mesh_full,
                ),
                (
                    "shardpool_mesh_overflowed",
                    "counter",
                    "The worker's sends that waited in an overflow.",
                    |t| t.mesh_overflowed,
                ),
                (
                    "shardpool_mesh_received",
                    "counter",
                    "Messages the worker took from its inbound rings.",
                    |t| t.mesh_received,
                ),
                (
                    "shardpool_mesh_depth",
                    "gauge",
                    "Messages waiting for the worker in its inbound rings and their overflows.",
                    |t| t.mesh_depth,
                ),
            ];
            for (name, kind, help, get) in aggregates {
                family(out, name, kind, help)?;
                let suffix = if kind == "counter" { "_total" } else { "" };
                for (ws, t) in self.workers.iter().zip(&totals) {
                    writeln!(out, "{name}{suffix}{{worker=\"{}\"}} {}", ws.id, get(t))?;
                }
            }

            if per_channel {
                type ChannelField = fn(&ChannelStats) -> u64;
                let channel: [(&str, &str, &str, ChannelField); 6] = [
                    (
                        "sent",
                        "counter",
                        "Messages accepted for the channel (overflow included).",
                        |c| c.sent,
                    ),
                    (
                        "received",
                        "counter",
                        "Messages the receiver took from the channel.",
                        |c| c.received,
                    ),
                    (
                        "full",
                        "counter",
                        "Sends that found the channel full.",
                        |c| c.full,
                    ),
                    (
                        "overflowed",
                        "counter",
                        "Messages that waited in the channel's overflow.",
                        |c| c.overflowed,
                    ),
                    (
                        "depth",
                        "gauge",
                        "Messages sent on the channel and not yet received.",
                        |c| c.depth as u64,
                    ),
                    ("capacity", "gauge", "Slots in the channel's queue.", |c| {
                        c.capacity as u64
                    }),
                ];
                for (name, kind, help, get) in channel {
                    let name = format!("shardpool_channel_{name}");
                    family(out, &name, kind, help)?;
                    let suffix = if kind == "counter" { "_total" } else { "" };
                    for c in &self.channels {
                        let from = match c.from {
                            Endpoint::External => String::from("ext"),
                            Endpoint::Worker(id) => id.to_string(),
                        };
                        writeln!(
                            out,
                            "{name}{suffix}{{from=\"{from}\",to=\"{}\"}} {}",
                            c.to,
                            get(c)
                        )?;
                    }
                }
            }
            out.write_str("# EOF\n")
        };
        w(&mut out).expect("writing to a String cannot fail");
        out
    }
}

/// A metric family's metadata lines.
fn family(out: &mut String, name: &str, kind: &str, help: &str) -> fmt::Result {
    writeln!(out, "# HELP {name} {help}")?;
    writeln!(out, "# TYPE {name} {kind}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(i: usize) -> WorkerId {
        WorkerId::from(i)
    }

    /// A two-worker snapshot: inboxes first, then rings by (from, to).
    fn snapshot(scale: u64) -> PoolStats {
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

    #[test]
    fn delta_subtracts_counters_and_keeps_gauges() {
        let (prev, now) = (snapshot(1), snapshot(3));
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
        let prev = snapshot(1);
        let mut shuffled = prev.clone();
        shuffled.channels.reverse();
        shuffled.workers.reverse();
        let now = snapshot(2);
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
        let d = snapshot(3).delta(&snapshot(1));
        let half = Duration::from_millis(500);
        assert_eq!(d.workers[0].handled_per_sec(half), 400.0);
        assert_eq!(d.handled_per_sec(half), 800.0);
        let inbox = d.inbox(w(0)).unwrap();
        assert_eq!(inbox.sent_per_sec(half), 160.0);
        assert_eq!(inbox.received_per_sec(Duration::ZERO), 0.0);
        assert_eq!(d.sent(), d.channels.iter().map(|c| c.sent).sum::<u64>());
        assert_eq!(d.worker(w(1)).unwrap().id, w(1));
        assert!(d.worker(w(2)).is_none());
    }

    /// Parses `name{labels} value` sample lines into (name, labels, value).
    fn samples(text: &str) -> Vec<(String, String, u64)> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').unwrap();
                let (name, labels) = match series.split_once('{') {
                    Some((n, rest)) => (n, rest.trim_end_matches('}')),
                    None => (series, ""),
                };
                (name.to_string(), labels.to_string(), value.parse().unwrap())
            })
            .collect()
    }

    fn value(s: &[(String, String, u64)], name: &str, labels: &str) -> u64 {
        s.iter()
            .find(|(n, l, _)| n == name && l == labels)
            .unwrap_or_else(|| panic!("no {name}{{{labels}}}"))
            .2
    }

    #[test]
    fn openmetrics_per_worker() {
        let stats = snapshot(1);
        let text = stats.to_openmetrics(false);
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(text.matches("# EOF").count(), 1);
        assert!(!text.contains("shardpool_channel_"));
        let s = samples(&text);
        assert_eq!(value(&s, "shardpool_workers", ""), 2);
        assert_eq!(
            value(
                &s,
                "shardpool_worker_info",
                "worker=\"0\",cpu=\"4\",numa_node=\"0\""
            ),
            1
        );
        assert_eq!(value(&s, "shardpool_worker_info", "worker=\"1\""), 1);
        assert_eq!(
            value(&s, "shardpool_worker_handled_total", "worker=\"1\""),
            101
        );
        assert_eq!(value(&s, "shardpool_worker_failed", "worker=\"1\""), 1);
        assert_eq!(
            value(&s, "shardpool_worker_restarts_total", "worker=\"1\""),
            1
        );
        assert_eq!(value(&s, "shardpool_worker_failed", "worker=\"0\""), 0);
        assert_eq!(value(&s, "shardpool_inbox_sent_total", "worker=\"0\""), 40);
        assert_eq!(value(&s, "shardpool_inbox_depth", "worker=\"1\""), 1);
        // Rings from w1: (1,0) sent 60, (1,1) sent 80.
        assert_eq!(value(&s, "shardpool_mesh_sent_total", "worker=\"1\""), 140);
        assert_eq!(
            value(&s, "shardpool_mesh_overflowed_total", "worker=\"1\""),
            3 + 4
        );
        // Rings to w0: (0,0) received 19, (1,0) received 59.
        assert_eq!(
            value(&s, "shardpool_mesh_received_total", "worker=\"0\""),
            78
        );
        assert_eq!(value(&s, "shardpool_mesh_depth", "worker=\"0\""), 2);
        // Every family declared once, HELP then TYPE, before its samples;
        // counters' samples end in _total.
        let mut declared = std::collections::HashMap::new();
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(lines[i - 1].starts_with(&format!("# HELP {name} ")));
                assert!(declared
                    .insert(name.to_string(), kind.to_string())
                    .is_none());
            }
        }
        for (name, _, _) in &s {
            let family = declared
                .keys()
                .filter(|f| name.starts_with(f.as_str()))
                .max_by_key(|f| f.len())
                .unwrap_or_else(|| panic!("{name} has no family"));
            match declared[family].as_str() {
                "counter" => assert_eq!(name, &format!("{family}_total")),
                "info" => assert_eq!(name, &format!("{family}_info")),
                _ => assert_eq!(name, family),
            }
        }
    }

    #[test]
    fn openmetrics_per_channel() {
        let stats = snapshot(2);
        let text = stats.to_openmetrics(true);
        assert!(text.ends_with("# EOF\n"));
        let s = samples(&text);
        let sent: Vec<_> = s
            .iter()
            .filter(|(n, _, _)| n == "shardpool_channel_sent_total")
            .collect();
        assert_eq!(sent.len(), 2 + 4);
        assert_eq!(
            value(&s, "shardpool_channel_sent_total", "from=\"ext\",to=\"1\""),
            60
        );
        assert_eq!(
            value(
                &s,
                "shardpool_channel_received_total",
                "from=\"1\",to=\"0\""
            ),
            118
        );
        assert_eq!(
            value(&s, "shardpool_channel_depth", "from=\"0\",to=\"1\""),
            2
        );
        assert_eq!(
            value(&s, "shardpool_channel_capacity", "from=\"1\",to=\"1\""),
            8
        );
        assert_eq!(
            value(
                &s,
                "shardpool_channel_overflowed_total",
                "from=\"ext\",to=\"0\""
            ),
            0
        );
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
