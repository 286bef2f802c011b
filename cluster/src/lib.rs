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
//! **As a library**: give [`process::run_job`] a [`job::Job`] (decode a
//! message's bytes into the workers' message and the key that picks the
//! worker; hooks when this process acquires a partition, with the
//! consumer's ack floor and last delivered sequence, and when it releases
//! one) and a factory of [`job::JobWorker`]s (the per-key state). Leases,
//! consumers, routing, fencing and acks are the library's; publish with
//! [`publish::publish_keyed`] / [`publish::publish_all`] (a key and a
//! payload, both bytes). The counting job of the example is
//! [`counting`]; `tests/user_job.rs` is a job written against the public
//! API only.
//!
//! | module | job |
//! |---|---|
//! | [`job`] | the user's side: the [`job::Job`] and [`job::JobWorker`] traits, [`job::Event`], [`job::Position`] |
//! | [`process`] | one process: pool, leases, a pull consumer per owned partition, the ack task ([`process::run_job`]) |
//! | [`worker`] | the library's pool worker: checks the lease at the point of use, calls the job's worker, acks after its flush |
//! | [`lease`] | claiming, refreshing and handing over partition leases; deadlines on the monotonic clock |
//! | [`sink`] | the fenced output store: refuses a write from an older lease epoch than the newest it saw |
//! | [`metrics`] | per-partition lag (pending, unacked, in flight) and lease state as Prometheus gauges |
//! | [`layout`] | the names (stream, subjects, consumers, bucket) and their idempotent setup |
//! | [`publish`] | publishing keyed messages to their partitions, with pipelined acks |
//! | [`counting`] | the example job: counts per key, logs what it handled through the fenced sink |
//! | [`windowed`] | the windowed example job: per-key counts per tumbling window of event time, rebuilt by replay when a partition moves |
//! | [`event`] | the counting job's wire form (`key value`) |
//! | [`record`] | the handled-event and lease logs' line formats (written by processes, read by the test) |
//! | [`plain`] | the baseline: one plain async-nats consumer doing the same counting |
//! | [`mapping`] | checks the server's `partition(n, …)` mapping against `nats_partition` |
//! | [`server`] | starts and stops a loopback `nats-server` with JetStream for examples and tests |
//! | [`cli`] | the `jetstream` example's command line |
#![deny(missing_docs)]
#![warn(rust_2018_idioms)]

pub mod cli;
pub mod counting;
pub mod event;
pub mod job;
pub mod layout;
pub mod lease;
pub mod mapping;
pub mod metrics;
pub mod plain;
pub mod process;
pub mod publish;
pub mod record;
pub mod server;
pub mod sink;
pub mod windowed;
pub mod worker;

/// The error type of this crate's async functions: any NATS or I/O error,
/// with its message.
pub type Error = Box<dyn std::error::Error + Send + Sync + 'static>;
