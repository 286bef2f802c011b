//! shardpool behind a partitioned NATS JetStream stream: several processes
//! share one durable, replicated log; within each process every key goes to
//! the one worker that owns it.
//!
//! Two levels of routing, each owned by the piece that is good at it:
//!
//! | level | picks | function | state |
//! |---|---|---|---|
//! | key → partition (which process) | the JetStream subject `{stream}.p.{partition}` | [`compat::nats_partition`](shardpool::partitioners::compat::nats_partition), the server's own `partition(n, …)` mapping | partition leases in a JetStream key-value bucket |
//! | key → worker (which core) | the pool's partitioner (ahash, fixed keys) | [`PoolSender::send_keyed`](shardpool::PoolSender::send_keyed) | the worker's own `HashMap` |
//!
//! The two hashes are different functions (FNV-1a 32 for the partition,
//! ahash for the worker), so a process that owns one partition still
//! spreads its keys over all its workers (`docs/scaling.md`).
//!
//! Membership and durability belong to JetStream, not to us: a process owns
//! a partition while it holds that partition's lease, a key created only if
//! absent and refreshed while the process lives, in a bucket whose `max_age`
//! is the lease TTL. A process that dies stops refreshing; its leases expire
//! and the survivors claim its partitions. A message is acked only after
//! its worker handled it, so a message in flight in a dead process is
//! redelivered after the consumer's ack wait: handled at least once, never
//! lost, and the stream sequence lets the handler drop the second copy.
//!
//! | module | job |
//! |---|---|
//! | [`layout`] | the names (stream, subjects, consumers, bucket) and their idempotent setup |
//! | [`event`] | an event's wire form (`key value`) |
//! | [`publish`] | publishing keyed events to their partitions, with pipelined acks |
//! | [`lease`] | claiming, refreshing and handing over partition leases |
//! | [`worker`] | the pool worker: checks the lease, counts per key, logs what it handled, acks after handling |
//! | [`process`] | one process: pool, leases, a pull consumer per owned partition, the ack task |
//! | [`record`] | the handled-event log's line format (written by workers, read by the test) |
//! | [`sink`] | the fenced output store: refuses a write from an older lease epoch than the newest it saw |
//! | [`plain`] | the baseline: one plain async-nats consumer doing the same counting |
//! | [`mapping`] | checks the server's `partition(n, …)` mapping against `nats_partition` |
//! | [`server`] | starts and stops a loopback `nats-server` with JetStream for examples and tests |
//! | [`cli`] | the `jetstream` example's command line |
#![deny(missing_docs)]
#![warn(rust_2018_idioms)]

pub mod cli;
pub mod event;
pub mod layout;
pub mod lease;
pub mod mapping;
pub mod plain;
pub mod process;
pub mod publish;
pub mod record;
pub mod server;
pub mod sink;
pub mod worker;

/// The error type of this crate's async functions: any NATS or I/O error,
/// with its message.
pub type Error = Box<dyn std::error::Error + Send + Sync + 'static>;
