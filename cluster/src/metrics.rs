//! Per-partition lag and lease state as Prometheus metrics, registered in
//! the same `prometheus-client` registry as the pool's
//! ([`shardpool::prometheus_client`]).
//!
//! | metric | what |
//! |---|---|
//! | `shardpool_jetstream_pending{partition}` | messages in the stream not yet delivered to the partition's consumer |
//! | `shardpool_jetstream_unacked{partition}` | delivered and not yet acked (to anyone) |
//! | `shardpool_jetstream_in_flight{partition}` | in this process's pool queues: sent to a worker, not yet acked or nakked |
//! | `shardpool_jetstream_lease_epoch{partition}` | the epoch of this process's lease on it, 0 if not held |
//! | `shardpool_jetstream_lease_valid{partition}` | 1 while that lease is inside its deadline |
//!
//! `pending` and `unacked` come from the consumer's info, read every
//! second by each process for all partitions; the others are this
//! process's own view.

use shardpool::prometheus_client::metrics::family::Family;
use shardpool::prometheus_client::metrics::gauge::Gauge;
use shardpool::prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// The gauges; clone it into a [`ProcessConfig`](crate::process::ProcessConfig).
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pending: Family<Labels, Gauge>,
    unacked: Family<Labels, Gauge>,
    in_flight: Family<Labels, Gauge>,
    lease_epoch: Family<Labels, Gauge>,
    lease_valid: Family<Labels, Gauge>,
}

fn labels(partition: u32) -> Labels {
    vec![("partition".to_string(), partition.to_string())]
}

fn gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Metrics {
    /// New gauges, registered in `registry` (with the
    /// `shardpool_jetstream_` prefix).
    pub fn register(registry: &mut Registry) -> Metrics {
        let metrics = Metrics::default();
        let registry = registry.sub_registry_with_prefix("shardpool_jetstream");
        registry.register(
            "pending",
            "Messages not yet delivered to the partition's consumer",
            metrics.pending.clone(),
        );
        registry.register(
            "unacked",
            "Messages of the partition delivered and not yet acked",
            metrics.unacked.clone(),
        );
        registry.register(
            "in_flight",
            "Messages of the partition in this process's pool, not yet acked or nakked",
            metrics.in_flight.clone(),
        );
        registry.register(
            "lease_epoch",
            "Epoch of this process's lease on the partition (0: not held)",
            metrics.lease_epoch.clone(),
        );
        registry.register(
            "lease_valid",
            "1 while this process's lease on the partition is inside its deadline",
            metrics.lease_valid.clone(),
        );
        metrics
    }

    /// Sets the consumer's lag of `partition`.
    pub fn set_lag(&self, partition: u32, pending: u64, unacked: u64) {
        let l = labels(partition);
        self.pending.get_or_create(&l).set(gauge(pending));
        self.unacked.get_or_create(&l).set(gauge(unacked));
    }

    /// Sets this process's view of `partition`.
    pub fn set_local(&self, partition: u32, in_flight: u64, epoch: u64, valid: bool) {
        let l = labels(partition);
        self.in_flight.get_or_create(&l).set(gauge(in_flight));
        self.lease_epoch.get_or_create(&l).set(gauge(epoch));
        self.lease_valid.get_or_create(&l).set(i64::from(valid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardpool::prometheus_client::encoding::text::encode;

    #[test]
    fn gauges_are_labelled_by_partition() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        metrics.set_lag(3, 10, 2);
        metrics.set_local(3, 1, 42, true);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        for line in [
            "shardpool_jetstream_pending{partition=\"3\"} 10",
            "shardpool_jetstream_unacked{partition=\"3\"} 2",
            "shardpool_jetstream_in_flight{partition=\"3\"} 1",
            "shardpool_jetstream_lease_epoch{partition=\"3\"} 42",
            "shardpool_jetstream_lease_valid{partition=\"3\"} 1",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
    }
}
