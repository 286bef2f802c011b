//! OpenMetrics export of a snapshot, as hand-written text.
//!
//! Per-worker series always; the `N + N²` per-channel series only when
//! asked, since they grow with the square of the worker count.

use std::fmt;
use std::fmt::Write as _;

use super::{ChannelStats, Endpoint, PoolStats, WorkerStats};
use crate::WorkerId;

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
    use super::super::snapshot::fixture::two_workers as snapshot;

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
}
