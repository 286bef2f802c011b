//! # shardpool
//!
//! Shared-nothing, thread-per-core workers. A [`Pool`] pins one [`Worker`]
//! per core; every ordered pair of workers has its own bounded SPSC ring
//! (the *mesh*), and every worker has a bounded MPSC inbox for threads
//! outside the pool. Each worker runs one loop: drain a batch from each
//! inbound queue, `handle` each message, publish what it sent, `tick`, and
//! sleep when there is nothing to do. The picture, and one section per
//! mechanism, are in `docs/architecture.md` in the repository.
//!
//! A user's job is three steps: implement [`Worker`], configure a
//! [`PoolConfig`] (affinity, queue capacity), and read per-channel
//! [`PoolStats`].
//!
//! ```
//! use shardpool::prelude::*;
//! use std::collections::HashMap;
//!
//! #[derive(Default)]
//! struct WordCount { counts: HashMap<String, u64> }
//!
//! impl Worker for WordCount {
//!     type Msg = String;
//!     fn handle(&mut self, word: String, _ctx: &mut Context<'_, String>) {
//!         *self.counts.entry(word).or_default() += 1;
//!     }
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let config = PoolConfig::default()
//!         .affinity(Affinity::PhysicalCores)
//!         .queue_capacity(4096);
//!     let pool = Pool::start(config, |_id: WorkerId| WordCount::default())?;
//!     let tx = pool.sender();
//!     for w in "a b a c".split_whitespace() {
//!         tx.send_keyed(&w, w.to_string())?;        // same key -> same worker
//!     }
//!     println!("{}", pool.stats());                 // per-channel table
//!     let workers: Vec<WordCount> = pool.shutdown()?; // drains, joins, id order
//!     assert_eq!(workers.iter().map(|w| w.counts.values().sum::<u64>()).sum::<u64>(), 4);
//!     Ok(())
//! }
//! ```
//!
//! ## Guarantees
//! - Every message accepted by a send is handled exactly once (unless its
//!   worker panicked), in FIFO order per (sender, receiver) pair.
//! - A worker never blocks on a peer: a full ring spills into a per-pair
//!   overflow that the loop flushes first.
//! - [`Pool::shutdown`] drains every queue until the pool is quiescent,
//!   even while workers keep sending to each other.
//! - Every failed send hands the message back in a [`SendError`].
//! - A panic stays in its worker: it is caught, the worker is marked
//!   failed, and `shutdown` reports [`Error::WorkerPanicked`].

#![deny(missing_docs)]
#![warn(rust_2018_idioms)]
// Under `--cfg loom` only the lock-free building blocks are compiled, for
// their model tests (`RUSTFLAGS="--cfg loom" cargo test --lib -- loom`).
#![cfg_attr(loom, allow(dead_code, unused_imports))]

mod lockfree;

#[cfg(not(loom))]
mod ask;
#[cfg(not(loom))]
mod config;
#[cfg(not(loom))]
mod error;
#[cfg(not(loom))]
mod id;
#[cfg(not(loom))]
pub mod io;
#[cfg(not(loom))]
mod mesh;
#[cfg(not(loom))]
pub mod placement;
#[cfg(not(loom))]
mod pool;
#[cfg(not(loom))]
mod reply;
#[cfg(not(loom))]
mod report;
#[cfg(not(loom))]
mod runtime;
#[cfg(not(loom))]
mod send_future;
#[cfg(not(loom))]
mod sender;
#[cfg(not(loom))]
mod shared;
#[cfg(not(loom))]
mod spawn;
#[cfg(not(loom))]
mod stats;
#[cfg(not(loom))]
mod worker;

/// Key-to-worker partitioners (the `shardpool-partitioners` crate).
pub use shardpool_partitioners as partitioners;

/// The `prometheus-client` crate that [`MetricsCollector`] implements
/// `Collector` for: register the collector into a `Registry` of this same
/// version.
#[cfg(not(loom))]
pub use prometheus_client;

#[cfg(not(loom))]
pub use ask::{AskError, Asked};
#[cfg(not(loom))]
pub use config::{
    Affinity, IdleStrategy, NumaFill, PanicPolicy, PoolConfig, DEFAULT_BATCH_SIZE,
    DEFAULT_CAPACITY, DEFAULT_INBOX_COALESCE, DEFAULT_IO_POLL_INTERVAL, DEFAULT_TICK_INTERVAL,
    MAX_CAPACITY, MAX_INBOX_COALESCE,
};
#[cfg(not(loom))]
pub use error::{CallError, Error, SendError};
#[cfg(not(loom))]
pub use id::WorkerId;
#[cfg(not(loom))]
pub use pool::Pool;
#[cfg(not(loom))]
pub use reply::{Answer, Reply};
#[cfg(not(loom))]
pub use report::ShutdownReport;
#[cfg(not(loom))]
pub use sender::{PoolSender, SendBatch};
#[cfg(not(loom))]
pub use stats::{ChannelStats, Endpoint, MetricsCollector, PoolStats, QueueDelay, WorkerStats};
#[cfg(not(loom))]
pub use worker::{Context, Worker};

/// Everything a typical user needs: `use shardpool::prelude::*;`.
#[cfg(not(loom))]
pub mod prelude {
    pub use crate::{
        Affinity, AskError, Asked, CallError, ChannelStats, Context, Endpoint, Error, IdleStrategy,
        NumaFill, PanicPolicy, Pool, PoolConfig, PoolSender, PoolStats, Reply, SendError,
        ShutdownReport, Worker, WorkerId, WorkerStats,
    };
}
