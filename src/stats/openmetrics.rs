//! OpenMetrics export, through the `prometheus-client` crate.
//!
//! A service already has a [`Registry`] holding its own metrics, served
//! from one `/metrics` endpoint. The pool's metrics join that registry as a
//! [`MetricsCollector`] rather than arriving as a second text document to
//! splice in. A collector is asked for its metrics at each scrape, so it
//! takes a fresh [`PoolStats`] snapshot then and keeps nothing in between:
//! the pool's hot path keeps its own single-writer counters and does not
//! update any metric object. [`PoolStats::to_openmetrics`] is the same
//! collector, alone in a fresh registry, for one-off text.
//!
//! By default there is one series per worker per metric, with the inbox
//! and ring counters summed per worker. Series per channel (`from`, `to`)
//! are opt-in ([`MetricsCollector::per_channel`]): there are `N + N²`
//! channels, 65 792 series per metric for 256 workers, which is why ScyllaDB
//! switched Seastar's per-queue metrics off.
//!
//! The names and labels are a contract with users' dashboards and alerts:
//! all start with `shardpool_`, counters are exported as `<name>_total`
//! (the encoder adds the suffix), gauges and the info family as named.
//! Every value is a count, so no family has a unit. Label values are
//! worker indexes (`worker="3"`, `from="3"`, `to="1"`); `from="ext"` marks
//! an inbox.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::{ChannelStats, Endpoint, PoolStats, WorkerStats};
use crate::shared::Shared;
use crate::WorkerId;

/// A `prometheus-client` [`Collector`] of a pool's statistics: register it
/// into your own [`Registry`], next to your own metrics, and every scrape
/// exports a fresh snapshot of the pool.
///
/// Made by [`Pool::metrics_collector`](crate::Pool::metrics_collector) or
/// [`PoolSender::metrics_collector`](crate::PoolSender::metrics_collector)
/// (or [`from_fn`](Self::from_fn)). It holds a reference to the pool's
/// counters, not a sender: it is cheap to clone, `Send + Sync`, never keeps
/// the pool from shutting down (it does keep the pool's queues allocated
/// until its last clone is dropped), and after shutdown reports the final
/// counters. `prometheus-client` is re-exported as
/// [`shardpool::prometheus_client`](crate::prometheus_client), so the
/// registry's version always matches.
///
/// Exported, one series per worker (`worker="0"`, …):
///
/// | metric | type | what |
/// |---|---|---|
/// | `shardpool_workers` | gauge | workers in the pool |
/// | `shardpool_worker_info{worker,cpu,numa_node}` | info | placement (`cpu`/`numa_node` omitted when unknown) |
/// | `shardpool_worker_{handled,ticks,parks,dropped,restarts,timers_dropped,stalls}_total` | counter | [`WorkerStats`] |
/// | `shardpool_worker_failed` | gauge | 1 once the worker panicked |
/// | `shardpool_worker_overflow_queued` | gauge | its sends waiting in overflow now |
/// | `shardpool_worker_queue_delay_{p50,p99,max}_seconds` | gauge | [`QueueDelay`](crate::QueueDelay) |
/// | `shardpool_worker_longest_stall_seconds` | gauge | [`WorkerStats::longest_stall`] |
/// | `shardpool_inbox_{sent,received,full}_total` | counter | the worker's inbox |
/// | `shardpool_inbox_{depth,capacity}` | gauge | the worker's inbox |
/// | `shardpool_mesh_{sent,full,overflowed}_total` | counter | summed over the rings *from* the worker |
/// | `shardpool_mesh_received_total` | counter | summed over the rings *to* the worker |
/// | `shardpool_mesh_depth` | gauge | messages waiting for the worker in its rings |
///
/// With [`per_channel`](Self::per_channel), also one series per channel
/// (`from="ext"` or `from="3"`, `to="1"`): `shardpool_channel_{sent,
/// received,full,overflowed}_total` and `shardpool_channel_{depth,capacity}`
/// — `N + N²` series per metric, hence off by default.
///
/// A registry with a prefix (`Registry::with_prefix("app")`) prefixes these
/// names too (`app_shardpool_workers`).
///
/// ```
/// use shardpool::prelude::*;
/// use shardpool::prometheus_client::{encoding::text::encode, metrics::counter::Counter};
/// use shardpool::prometheus_client::registry::Registry;
/// # #[derive(Default)] struct W;
/// # impl Worker for W { type Msg = u32; fn handle(&mut self, _: u32, _: &mut Context<'_, u32>) {} }
///
/// let pool = Pool::start(PoolConfig::default().workers(2).affinity(Affinity::None), |_| W)?;
/// let mut registry = Registry::default();
/// let requests = Counter::<u64>::default();
/// registry.register("app_requests", "Requests served", requests.clone());
/// registry.register_collector(Box::new(pool.metrics_collector()));
///
/// // What the /metrics handler does at each scrape:
/// let mut body = String::new();
/// encode(&mut body, &registry)?;
/// assert!(body.contains("app_requests_total 0\n"));
/// assert!(body.contains("shardpool_worker_handled_total{worker=\"1\"} "));
/// assert!(!body.contains("shardpool_channel_"));
/// # pool.shutdown()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct MetricsCollector {
    snapshot: Arc<dyn Fn() -> PoolStats + Send + Sync>,
    per_channel: bool,
}

impl MetricsCollector {
    /// A collector that calls `snapshot` at each scrape and exports what it
    /// returns: for snapshots that do not come straight from one pool (a
    /// filtered or merged one, or a fixed one in a test).
    pub fn from_fn(snapshot: impl Fn() -> PoolStats + Send + Sync + 'static) -> Self {
        MetricsCollector {
            snapshot: Arc::new(snapshot),
            per_channel: false,
        }
    }

    /// A collector reading the counters of the pool that owns `shared`.
    pub(crate) fn of<M: Send + 'static>(shared: &Arc<Shared<M>>) -> Self {
        let shared = Arc::clone(shared);
        Self::from_fn(move || PoolStats::collect(&shared))
    }

    /// Also export one series per channel (`N + N²` series per metric, off
    /// by default).
    pub fn per_channel(mut self, per_channel: bool) -> Self {
        self.per_channel = per_channel;
        self
    }

    /// A fresh snapshot in the OpenMetrics text format, ending with
    /// `# EOF`: this collector alone in a fresh [`Registry`], encoded.
    pub fn to_openmetrics(&self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self.clone()));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("encoding into a String cannot fail");
        out
    }
}

impl fmt::Debug for MetricsCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsCollector")
            .field("per_channel", &self.per_channel)
            .finish_non_exhaustive()
    }
}

impl Collector for MetricsCollector {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> fmt::Result {
        encode(&(self.snapshot)(), self.per_channel, encoder)
    }
}

impl PoolStats {
    /// The snapshot in the [OpenMetrics] text format (which Prometheus
    /// scrapes when served as `application/openmetrics-text; version=1.0.0`),
    /// ending with `# EOF`; with `per_channel`, also the `N + N²` series per
    /// channel. The families and labels are those of [`MetricsCollector`]:
    /// this is a collector over this snapshot, alone in a fresh registry. To
    /// serve a live pool next to other metrics, register
    /// [`Pool::metrics_collector`](crate::Pool::metrics_collector) instead.
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
        let stats = self.clone();
        MetricsCollector::from_fn(move || stats.clone())
            .per_channel(per_channel)
            .to_openmetrics()
    }
}

/// The `from` label of a channel: `"ext"` for an inbox, else the index.
struct FromLabel(Endpoint);

impl EncodeLabelValue for FromLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
        match self.0 {
            Endpoint::External => EncodeLabelValue::encode(&"ext", encoder),
            Endpoint::Worker(id) => EncodeLabelValue::encode(&id.index(), encoder),
        }
    }
}

/// `worker="<index>"`.
fn worker_label(id: WorkerId) -> [(&'static str, usize); 1] {
    [("worker", id.index())]
}

/// `from="…",to="…"`.
fn channel_labels(c: &ChannelStats) -> impl EncodeLabelSet {
    ([("from", FromLabel(c.from))], [("to", c.to.index())])
}

/// One family: its descriptor, then one sample per `(labels, metric)`.
fn family<S: EncodeLabelSet, M: EncodeMetric>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (S, M)>,
) -> fmt::Result {
    let mut family = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, metric) in samples {
        debug_assert_eq!(metric.metric_type(), kind);
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counters<S: EncodeLabelSet>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (S, u64)>,
) -> fmt::Result {
    let samples = samples.into_iter().map(|(l, v)| (l, ConstCounter::new(v)));
    family(enc, name, help, MetricType::Counter, samples)
}

fn gauges<S: EncodeLabelSet>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (S, u64)>,
) -> fmt::Result {
    let samples = samples.into_iter().map(|(l, v)| (l, ConstGauge::new(v)));
    family(enc, name, help, MetricType::Gauge, samples)
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

/// Per worker, in `stats.workers` order.
fn totals(stats: &PoolStats) -> Vec<WorkerTotals> {
    let mut totals = vec![WorkerTotals::default(); stats.workers.len()];
    let pos: std::collections::HashMap<WorkerId, usize> = stats
        .workers
        .iter()
        .enumerate()
        .map(|(i, w)| (w.id, i))
        .collect();
    for c in &stats.channels {
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

/// Every family of `stats`, in a fixed order.
fn encode(stats: &PoolStats, per_channel: bool, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
    let enc = &mut enc;
    let workers = &stats.workers;
    let no_labels: [(&str, usize); 0] = [];
    gauges(
        enc,
        "shardpool_workers",
        "Workers in the pool.",
        [(no_labels, workers.len() as u64)],
    )?;

    let mut info = enc.encode_descriptor(
        "shardpool_worker",
        "Where each worker runs.",
        None,
        MetricType::Info,
    )?;
    for w in workers {
        let placement = [("cpu", w.cpu), ("numa_node", w.numa_node)];
        let known: Vec<(&str, usize)> = placement
            .iter()
            .filter_map(|&(k, v)| v.map(|v| (k, v)))
            .collect();
        info.encode_info(&(worker_label(w.id), known))?;
    }

    type WorkerField = fn(&WorkerStats) -> u64;
    let worker_counters: [(&str, &str, WorkerField); 7] = [
        (
            "shardpool_worker_handled",
            "Messages passed to handle and returned from it.",
            |w| w.handled,
        ),
        ("shardpool_worker_ticks", "Calls to tick.", |w| w.ticks),
        (
            "shardpool_worker_parks",
            "Times the worker parked its thread while idle.",
            |w| w.parks,
        ),
        (
            "shardpool_worker_dropped",
            "Messages dropped because the worker had failed.",
            |w| w.dropped,
        ),
        (
            "shardpool_worker_restarts",
            "Times the worker was rebuilt after a panic.",
            |w| w.restarts,
        ),
        (
            "shardpool_worker_timers_dropped",
            "send_after messages dropped unhandled (pending at stop or failure).",
            |w| w.timers_dropped,
        ),
        (
            "shardpool_worker_stalls",
            "Times the worker stayed inside one callback longer than the stall threshold.",
            |w| w.stalls,
        ),
    ];
    for (name, help, get) in worker_counters {
        counters(
            enc,
            name,
            help,
            workers.iter().map(|w| (worker_label(w.id), get(w))),
        )?;
    }
    gauges(
        enc,
        "shardpool_worker_failed",
        "1 once the worker has panicked.",
        workers
            .iter()
            .map(|w| (worker_label(w.id), u64::from(w.failed))),
    )?;
    for (name, help, get) in [
        (
            "shardpool_worker_queue_delay_p50_seconds",
            "Median time sampled messages waited in the worker's queues (log2 buckets).",
            (|w: &WorkerStats| w.queue_delay.p50) as fn(&WorkerStats) -> std::time::Duration,
        ),
        (
            "shardpool_worker_queue_delay_p99_seconds",
            "99th percentile time sampled messages waited in the worker's queues.",
            |w| w.queue_delay.p99,
        ),
        (
            "shardpool_worker_queue_delay_max_seconds",
            "Longest time a sampled message waited in the worker's queues.",
            |w| w.queue_delay.max,
        ),
        (
            "shardpool_worker_longest_stall_seconds",
            "Longest time the worker stayed inside one callback (stalls only).",
            |w| w.longest_stall,
        ),
    ] {
        let samples = workers
            .iter()
            .map(|w| (worker_label(w.id), ConstGauge::new(get(w).as_secs_f64())));
        family(enc, name, help, MetricType::Gauge, samples)?;
    }
    gauges(
        enc,
        "shardpool_worker_overflow_queued",
        "Messages the worker sent that wait in its overflows now.",
        workers
            .iter()
            .map(|w| (worker_label(w.id), w.overflow_queued)),
    )?;

    let totals = totals(stats);
    type TotalField = fn(&WorkerTotals) -> u64;
    let aggregates: [(&str, MetricType, &str, TotalField); 10] = [
        (
            "shardpool_inbox_sent",
            MetricType::Counter,
            "Messages accepted into the worker's inbox.",
            |t| t.inbox_sent,
        ),
        (
            "shardpool_inbox_received",
            MetricType::Counter,
            "Messages the worker took from its inbox.",
            |t| t.inbox_received,
        ),
        (
            "shardpool_inbox_full",
            MetricType::Counter,
            "Sends that found the worker's inbox full.",
            |t| t.inbox_full,
        ),
        (
            "shardpool_inbox_depth",
            MetricType::Gauge,
            "Messages waiting in the worker's inbox.",
            |t| t.inbox_depth,
        ),
        (
            "shardpool_inbox_capacity",
            MetricType::Gauge,
            "Slots in the worker's inbox.",
            |t| t.inbox_capacity,
        ),
        (
            "shardpool_mesh_sent",
            MetricType::Counter,
            "Messages the worker sent to workers (itself included).",
            |t| t.mesh_sent,
        ),
        (
            "shardpool_mesh_full",
            MetricType::Counter,
            "The worker's sends that found a ring full.",
            |t| t.mesh_full,
        ),
        (
            "shardpool_mesh_overflowed",
            MetricType::Counter,
            "The worker's sends that waited in an overflow.",
            |t| t.mesh_overflowed,
        ),
        (
            "shardpool_mesh_received",
            MetricType::Counter,
            "Messages the worker took from its inbound rings.",
            |t| t.mesh_received,
        ),
        (
            "shardpool_mesh_depth",
            MetricType::Gauge,
            "Messages waiting for the worker in its inbound rings and their overflows.",
            |t| t.mesh_depth,
        ),
    ];
    for (name, kind, help, get) in aggregates {
        let samples = workers
            .iter()
            .zip(&totals)
            .map(|(w, t)| (worker_label(w.id), get(t)));
        match kind {
            MetricType::Counter => counters(enc, name, help, samples)?,
            _ => gauges(enc, name, help, samples)?,
        }
    }

    if per_channel {
        type ChannelField = fn(&ChannelStats) -> u64;
        let channel: [(&str, MetricType, &str, ChannelField); 6] = [
            (
                "shardpool_channel_sent",
                MetricType::Counter,
                "Messages accepted for the channel (overflow included).",
                |c| c.sent,
            ),
            (
                "shardpool_channel_received",
                MetricType::Counter,
                "Messages the receiver took from the channel.",
                |c| c.received,
            ),
            (
                "shardpool_channel_full",
                MetricType::Counter,
                "Sends that found the channel full.",
                |c| c.full,
            ),
            (
                "shardpool_channel_overflowed",
                MetricType::Counter,
                "Messages that waited in the channel's overflow.",
                |c| c.overflowed,
            ),
            (
                "shardpool_channel_depth",
                MetricType::Gauge,
                "Messages sent on the channel and not yet received.",
                |c| c.depth as u64,
            ),
            (
                "shardpool_channel_capacity",
                MetricType::Gauge,
                "Slots in the channel's queue.",
                |c| c.capacity as u64,
            ),
        ];
        for (name, kind, help, get) in channel {
            let samples = stats.channels.iter().map(|c| (channel_labels(c), get(c)));
            match kind {
                MetricType::Counter => counters(enc, name, help, samples)?,
                _ => gauges(enc, name, help, samples)?,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use prometheus_client::encoding::text::encode as encode_registry;
    use prometheus_client::metrics::counter::Counter;

    use super::super::snapshot::fixture::two_workers;
    use super::*;
    use crate::{Affinity, Context, Pool, PoolConfig, Worker};

    /// One sample line: `name{labels} value`.
    #[derive(Debug)]
    struct Sample {
        name: String,
        labels: String,
        value: u64,
        /// The value as written (the `_seconds` gauges are fractional).
        float: f64,
    }

    /// Checks the structure OpenMetrics requires of `text` and returns its
    /// samples: `# EOF` once and last; each family's `# HELP` then `# TYPE`
    /// once, before its samples, which are contiguous and named for its
    /// type (`<family>_total` for a counter, `<family>_info` for an info);
    /// no series twice; label values quoted; values non-negative integers.
    fn check(text: &str) -> Vec<Sample> {
        assert!(text.ends_with("\n# EOF\n"), "no final # EOF:\n{text}");
        assert_eq!(text.matches("# EOF").count(), 1);
        let lines: Vec<&str> = text.lines().collect();
        let mut families: HashMap<String, String> = HashMap::new();
        let mut current: Option<(String, String)> = None;
        let mut series = HashSet::new();
        let mut samples = Vec::new();
        for (i, line) in lines[..lines.len() - 1].iter().enumerate() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(
                    lines[i - 1].starts_with(&format!("# HELP {name} ")),
                    "no HELP before {line}"
                );
                assert!(["counter", "gauge", "info"].contains(&kind), "{line}");
                assert!(
                    families.insert(name.into(), kind.into()).is_none(),
                    "{name} declared twice"
                );
                current = Some((name.into(), kind.into()));
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            assert!(!line.starts_with('#'), "unexpected {line}");
            let (family, kind) = current.as_ref().expect("sample before any TYPE");
            let (name_labels, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match name_labels.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}').expect(line)),
                None => (name_labels, ""),
            };
            let expected = match kind.as_str() {
                "counter" => format!("{family}_total"),
                "info" => format!("{family}_info"),
                _ => family.clone(),
            };
            assert_eq!(name, expected, "sample outside its family: {line}");
            for pair in labels.split(',').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').expect(line);
                assert!(!k.is_empty() && v.len() >= 2, "{line}");
                assert!(v.starts_with('"') && v.ends_with('"'), "{line}");
            }
            assert!(series.insert(name_labels.to_string()), "{line} twice");
            samples.push(Sample {
                name: name.into(),
                labels: labels.into(),
                value: if name.ends_with("_seconds") {
                    0
                } else {
                    value.parse().unwrap_or_else(|_| panic!("value: {line}"))
                },
                float: value.parse().unwrap_or_else(|_| panic!("value: {line}")),
            });
        }
        samples
    }

    // The checker must be able to fail.
    #[test]
    #[should_panic(expected = "declared twice")]
    fn check_rejects_a_family_declared_twice() {
        let family = "# HELP a A.\n# TYPE a gauge\na 1\n";
        check(&format!("{family}{family}# EOF\n"));
    }

    #[test]
    #[should_panic(expected = "sample outside its family")]
    fn check_rejects_a_counter_without_total() {
        check("# HELP a A.\n# TYPE a counter\na 1\n# EOF\n");
    }

    #[test]
    #[should_panic(expected = "no final # EOF")]
    fn check_rejects_a_missing_eof() {
        check("# HELP a A.\n# TYPE a gauge\na 1\n");
    }

    fn value(samples: &[Sample], name: &str, labels: &str) -> u64 {
        samples
            .iter()
            .find(|s| s.name == name && s.labels == labels)
            .unwrap_or_else(|| panic!("no {name}{{{labels}}}"))
            .value
    }

    fn scrape(collector: MetricsCollector) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(collector));
        let mut text = String::new();
        encode_registry(&mut text, &registry).unwrap();
        text
    }

    fn fixed(stats: PoolStats) -> MetricsCollector {
        MetricsCollector::from_fn(move || stats.clone())
    }

    #[test]
    fn per_worker_values_match_the_snapshot() {
        let s = check(&scrape(fixed(two_workers(1))));
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
        let w1 = "worker=\"1\"";
        assert_eq!(value(&s, "shardpool_worker_handled_total", w1), 101);
        assert_eq!(value(&s, "shardpool_worker_ticks_total", w1), 10);
        assert_eq!(value(&s, "shardpool_worker_parks_total", w1), 1);
        assert_eq!(value(&s, "shardpool_worker_dropped_total", w1), 0);
        assert_eq!(value(&s, "shardpool_worker_restarts_total", w1), 1);
        assert_eq!(value(&s, "shardpool_worker_failed", w1), 1);
        assert_eq!(value(&s, "shardpool_worker_failed", "worker=\"0\""), 0);
        assert_eq!(value(&s, "shardpool_inbox_sent_total", "worker=\"0\""), 40);
        assert_eq!(value(&s, "shardpool_inbox_received_total", w1), 29);
        assert_eq!(value(&s, "shardpool_inbox_full_total", w1), 3);
        assert_eq!(value(&s, "shardpool_inbox_depth", w1), 1);
        assert_eq!(value(&s, "shardpool_inbox_capacity", w1), 8);
        // Rings from w1: (1,0) sent 60, (1,1) sent 80.
        assert_eq!(value(&s, "shardpool_mesh_sent_total", w1), 140);
        assert_eq!(value(&s, "shardpool_mesh_full_total", w1), 6 + 8);
        assert_eq!(value(&s, "shardpool_mesh_overflowed_total", w1), 3 + 4);
        // Rings to w0: (0,0) received 19, (1,0) received 59.
        let w0 = "worker=\"0\"";
        assert_eq!(value(&s, "shardpool_mesh_received_total", w0), 78);
        assert_eq!(value(&s, "shardpool_mesh_depth", w0), 2);
        assert_eq!(value(&s, "shardpool_worker_timers_dropped_total", w1), 1);
        assert_eq!(value(&s, "shardpool_worker_overflow_queued", w1), 1);
        let p99 = s
            .iter()
            .find(|s| s.name == "shardpool_worker_queue_delay_p99_seconds" && s.labels == w1)
            .expect("p99 of w1");
        assert!((p99.float - 10e-6).abs() < 1e-12, "{}", p99.float);
        // 1 + 2 (info) + 2 × (7 counters + 2 gauges + 4 durations + 10
        // aggregates) per-worker series, nothing else.
        assert_eq!(s.len(), 1 + 2 + 2 * 23);
        assert!(s.iter().all(|s| !s.name.starts_with("shardpool_channel_")));
    }

    #[test]
    fn stalls_are_exported_per_worker() {
        let text = scrape(fixed(two_workers(3)));
        assert!(text.contains("# TYPE shardpool_worker_stalls counter\n"));
        assert!(text.contains("# TYPE shardpool_worker_longest_stall_seconds gauge\n"));
        let s = check(&text);
        assert_eq!(
            value(&s, "shardpool_worker_stalls_total", "worker=\"0\""),
            0
        );
        assert_eq!(
            value(&s, "shardpool_worker_stalls_total", "worker=\"1\""),
            3
        );
        let longest = |labels: &str| {
            s.iter()
                .find(|s| s.name == "shardpool_worker_longest_stall_seconds" && s.labels == labels)
                .expect("longest_stall series")
                .float
        };
        assert_eq!(longest("worker=\"0\""), 0.0);
        assert!((longest("worker=\"1\"") - 0.15).abs() < 1e-9);
    }

    #[test]
    fn per_channel_series_only_when_asked() {
        let off = check(&scrape(fixed(two_workers(2)).per_channel(false)));
        assert!(off
            .iter()
            .all(|s| !s.name.starts_with("shardpool_channel_")));
        let on = check(&scrape(fixed(two_workers(2)).per_channel(true)));
        let channel: Vec<_> = on
            .iter()
            .filter(|s| s.name.starts_with("shardpool_channel_"))
            .collect();
        // 6 families × (2 inboxes + 2² rings); the per-worker ones as before.
        assert_eq!(channel.len(), 6 * (2 + 4));
        assert_eq!(on.len(), off.len() + channel.len());
        let sent: Vec<_> = channel
            .iter()
            .filter(|s| s.name == "shardpool_channel_sent_total")
            .map(|s| s.labels.as_str())
            .collect();
        assert_eq!(
            sent,
            [
                "from=\"ext\",to=\"0\"",
                "from=\"ext\",to=\"1\"",
                "from=\"0\",to=\"0\"",
                "from=\"0\",to=\"1\"",
                "from=\"1\",to=\"0\"",
                "from=\"1\",to=\"1\"",
            ]
        );
        let ext_to_1 = "from=\"ext\",to=\"1\"";
        assert_eq!(value(&on, "shardpool_channel_sent_total", ext_to_1), 60);
        let (r10, r01, r11) = (
            "from=\"1\",to=\"0\"",
            "from=\"0\",to=\"1\"",
            "from=\"1\",to=\"1\"",
        );
        assert_eq!(value(&on, "shardpool_channel_received_total", r10), 118);
        assert_eq!(value(&on, "shardpool_channel_full_total", r10), 12);
        assert_eq!(value(&on, "shardpool_channel_depth", r01), 2);
        assert_eq!(value(&on, "shardpool_channel_capacity", r11), 8);
        let ext_to_0 = "from=\"ext\",to=\"0\"";
        assert_eq!(
            value(&on, "shardpool_channel_overflowed_total", ext_to_0),
            0
        );
        assert_eq!(value(&on, "shardpool_channel_overflowed_total", r11), 8);
    }

    #[test]
    fn sits_next_to_the_users_own_metrics() {
        let mut registry = Registry::default();
        let requests = Counter::<u64>::default();
        registry.register("app_requests", "Requests served", requests.clone());
        registry.register_collector(Box::new(fixed(two_workers(1))));
        let app = registry.sub_registry_with_prefix("app");
        app.register_collector(Box::new(fixed(two_workers(3))));
        requests.inc_by(5);
        let mut text = String::new();
        encode_registry(&mut text, &registry).unwrap();
        let s = check(&text);
        assert_eq!(value(&s, "app_requests_total", ""), 5);
        let w0 = "worker=\"0\"";
        assert_eq!(value(&s, "shardpool_worker_handled_total", w0), 100);
        // The registry's prefix applies to the collector's names too.
        assert_eq!(value(&s, "app_shardpool_worker_handled_total", w0), 300);
    }

    #[test]
    fn each_scrape_takes_a_fresh_snapshot() {
        let scrapes = Arc::new(AtomicU64::new(0));
        let collector = MetricsCollector::from_fn({
            let scrapes = Arc::clone(&scrapes);
            move || two_workers(scrapes.fetch_add(1, Ordering::Relaxed) + 1)
        });
        let mut registry = Registry::default();
        registry.register_collector(Box::new(collector.clone()));
        for scale in 1..=3 {
            let mut text = String::new();
            encode_registry(&mut text, &registry).unwrap();
            let s = check(&text);
            let handled = value(&s, "shardpool_worker_handled_total", "worker=\"0\"");
            assert_eq!(handled, 100 * scale);
        }
        assert_eq!(scrapes.load(Ordering::Relaxed), 3);
        assert!(format!("{collector:?}").contains("per_channel: false"));
    }

    #[test]
    fn to_openmetrics_is_the_collector_alone() {
        let stats = two_workers(2);
        for per_channel in [false, true] {
            let text = stats.to_openmetrics(per_channel);
            assert_eq!(text, scrape(fixed(stats.clone()).per_channel(per_channel)));
            assert_eq!(
                text,
                fixed(stats.clone())
                    .per_channel(per_channel)
                    .to_openmetrics()
            );
            check(&text);
        }
        // An empty snapshot is still a valid exposition.
        let empty = PoolStats {
            workers: vec![],
            channels: vec![],
        };
        let s = check(&empty.to_openmetrics(true));
        assert_eq!(s.len(), 1);
        assert_eq!(value(&s, "shardpool_workers", ""), 0);
    }

    struct Echo;

    impl Worker for Echo {
        type Msg = u32;
        fn handle(&mut self, hops: u32, ctx: &mut Context<'_, u32>) {
            if hops > 0 {
                let next = crate::WorkerId::from((ctx.id().index() + 1) % ctx.workers());
                ctx.send_to(next, hops - 1).unwrap();
            }
        }
    }

    #[test]
    fn collectors_of_a_live_pool_and_its_sender() {
        let config = PoolConfig::default().workers(2).affinity(Affinity::None);
        let pool = Pool::start(config, |_| Echo).unwrap();
        let tx = pool.sender();
        let from_pool = pool.metrics_collector();
        let from_sender = tx.metrics_collector().per_channel(true);
        fn assert_shareable<T: Send + Sync + Clone + 'static>(_: &T) {}
        assert_shareable(&from_sender);
        let handled = |c: &MetricsCollector| -> u64 {
            check(&c.to_openmetrics())
                .iter()
                .filter(|s| s.name == "shardpool_worker_handled_total")
                .map(|s| s.value)
                .sum()
        };
        assert_eq!(handled(&from_pool), 0);
        for i in 0..10 {
            tx.send_to(crate::WorkerId::from(i % 2), 1).unwrap();
        }
        // 10 messages, each forwarded once: 20 handled.
        let deadline = Instant::now() + Duration::from_secs(30);
        while handled(&from_pool) < 20 {
            assert!(Instant::now() < deadline, "pool stalled");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(handled(&from_sender), 20);
        let s = check(&from_sender.to_openmetrics());
        assert_eq!(
            value(&s, "shardpool_channel_sent_total", "from=\"0\",to=\"1\""),
            5
        );
        drop(tx);
        pool.shutdown().unwrap();
        // Outlives the pool: the final counters.
        assert_eq!(handled(&from_pool), 20);
        assert_eq!(handled(&from_sender), 20);
    }
}
