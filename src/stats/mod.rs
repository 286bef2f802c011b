//! Statistics: what a pool's workers and channels did, read on demand.
//!
//! - `snapshot`: [`PoolStats`], [`WorkerStats`], [`ChannelStats`],
//!   [`Endpoint`], and how a snapshot is read from the pool's counters
//!   (`Serialize` with the `serde` feature);
//! - `table`: `Display` for [`PoolStats`], a plain-text table;
//! - `rates`: [`PoolStats::delta`] and the `*_per_sec` helpers, what
//!   happened between two snapshots;
//! - `openmetrics`: [`MetricsCollector`] for a `prometheus-client`
//!   registry, and [`PoolStats::to_openmetrics`].

mod openmetrics;
mod rates;
mod snapshot;
mod table;

pub use openmetrics::MetricsCollector;
pub use snapshot::{ChannelStats, Endpoint, PoolStats, QueueDelay, WorkerStats};
