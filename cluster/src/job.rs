//! The layer as a library: a user's own job behind the partitioned stream.
//!
//! The user supplies two things and the library does the rest (leases,
//! one pull consumer per held partition, routing each event to the worker
//! that owns its key, fencing at the point of use, acks after handling,
//! naks of fenced or refused events):
//!
//! - a [`Job`]: decodes a message's bytes into the worker's message and
//!   the key that picks the worker, and hears when this process acquires a
//!   partition (with the consumer's [`Position`], so it can rebuild state
//!   by replay) and when it releases or loses one;
//! - a factory of [`JobWorker`]s, one per pool worker: the per-key state.
//!
//! A job whose workers keep state can have it rebuilt when a partition
//! moves: [`Job::replay_from`] names where to start, and the library hands
//! the workers that partition's already-handled messages, flagged
//! [`Event::replay`], before its live ones.
//!
//! ```no_run
//! use shardpool_cluster::job::{Delivery, Event, Job, JobWorker};
//! use shardpool_cluster::process::{run_job, ProcessConfig};
//! use std::collections::HashMap;
//!
//! struct Sums;
//! impl Job for Sums {
//!     type Key = Vec<u8>;
//!     type Msg = u64;
//!     fn decode(&self, d: &Delivery<'_>) -> Result<(Vec<u8>, u64), String> {
//!         let (amount, key) = d.payload.split_at_checked(8).ok_or("short payload")?;
//!         Ok((key.to_vec(), u64::from_le_bytes(amount.try_into().unwrap())))
//!     }
//! }
//!
//! #[derive(Default)]
//! struct SumWorker(HashMap<u32, u64>);
//! impl JobWorker for SumWorker {
//!     type Msg = u64;
//!     fn handle(&mut self, event: Event<u64>) {
//!         *self.0.entry(event.partition).or_default() += event.msg;
//!     }
//!     fn release(&mut self, partition: u32) {
//!         self.0.remove(&partition);
//!     }
//! }
//!
//! # async fn run(config: ProcessConfig) -> Result<(), shardpool_cluster::Error> {
//! let report = run_job(config, Sums, |_id| SumWorker::default(), std::future::pending()).await?;
//! # Ok(()) }
//! ```
//!
//! Delivery is at least once: an event can be handled again after a
//! failure (its [`Event::seq`], the stream sequence, is unique and lets a
//! sink drop the second copy). Outputs should carry [`Event::epoch`] as a
//! fencing token and go to a sink that refuses older epochs
//! ([`sink`](crate::sink)); a refused write is reported in
//! [`JobWorker::flush`] and its events are nakked.

use std::hash::Hash;

/// A message as it arrives, before decoding.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// Its stream sequence (unique in the stream).
    pub seq: u64,
    /// Its partition.
    pub partition: u32,
    /// How many times JetStream has delivered it (1 = first time).
    pub delivered: i64,
    /// Its payload: any bytes.
    pub payload: &'a [u8],
}

/// Where a partition's durable consumer stands when this process acquires
/// the partition: everything up to `ack_floor` was handled and acked (by
/// whoever held it), messages after it up to `last_delivered` were
/// delivered and may be redelivered. Stream sequences; 0 if none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// The stream sequence up to which every message is acked.
    pub ack_floor: u64,
    /// The stream sequence of the last message delivered.
    pub last_delivered: u64,
}

/// One decoded event, handed to the worker that owns its key while the
/// lease it was fetched under is valid.
#[derive(Debug)]
pub struct Event<M> {
    /// Stream sequence: unique in the stream, the key for idempotence.
    pub seq: u64,
    /// The partition it came from.
    pub partition: u32,
    /// The lease epoch it was fetched and handled under: the fencing token
    /// for what handling it writes.
    pub epoch: u64,
    /// How many times JetStream has delivered it (1 = first time).
    pub delivered: i64,
    /// Replayed on acquiring its partition ([`Job::replay_from`]): already
    /// handled by an earlier holder, given to rebuild state; not acked,
    /// and the worker should not emit outputs for it.
    pub replay: bool,
    /// When its lease was found valid, right before it was handed to the
    /// worker (system clock, [`record::now_ns`](crate::record::now_ns)).
    pub checked_at_ns: u64,
    /// The job's message.
    pub msg: M,
}

/// What a stream job decodes and what it hears about partitions. Shared by
/// all consumer tasks of a process (hence `Sync`).
pub trait Job: Send + Sync + 'static {
    /// What picks the worker: events with equal keys go to one worker
    /// ([`PoolSender::worker_for`](shardpool::PoolSender::worker_for)).
    type Key: Hash;
    /// The workers' message.
    type Msg: Send + 'static;

    /// Decodes a message into its key and the workers' message. An error
    /// is reported and the message terminated (not redelivered forever).
    fn decode(&self, delivery: &Delivery<'_>) -> Result<(Self::Key, Self::Msg), String>;

    /// This process acquired `partition` under lease `epoch`; called before
    /// its consumer starts. `position` is `None` if the consumer's state
    /// could not be read.
    fn on_acquire(&self, partition: u32, epoch: u64, position: Option<Position>) {
        let _ = (partition, epoch, position);
    }

    /// The first stream sequence to replay when this process acquires
    /// `partition` at `position`, or `None` (the default) for no replay.
    /// The library then reads the partition's messages from there up to
    /// `position.last_delivered` (an ordered consumer: nothing is acked)
    /// and hands them to the workers, flagged [`Event::replay`], before
    /// the partition's live events. Messages above the ack floor may come
    /// again live: de-duplicate by [`Event::seq`].
    fn replay_from(&self, partition: u32, position: Position) -> Option<u64> {
        let _ = (partition, position);
        None
    }

    /// This process released or lost `partition` (lease `epoch`); its
    /// workers get [`JobWorker::release`] too.
    fn on_release(&self, partition: u32, epoch: u64) {
        let _ = (partition, epoch);
    }
}

/// Writes the sink refused: their events are nakked, not acked.
#[derive(Debug, Default)]
pub struct Refusals {
    refused: Vec<(u32, u64)>,
}

impl Refusals {
    /// The outputs of `partition` under `epoch` in this batch were refused
    /// (a newer epoch has written) or could not be written.
    pub fn refuse(&mut self, partition: u32, epoch: u64) {
        self.refused.push((partition, epoch));
    }

    pub(crate) fn contains(&self, partition: u32, epoch: u64) -> bool {
        self.refused.contains(&(partition, epoch))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.refused.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.refused.clear();
    }
}

/// One pool worker's part of a job: the state of the keys it owns.
pub trait JobWorker: Send + 'static {
    /// The message it handles ([`Job::Msg`]).
    type Msg: Send + 'static;

    /// Handles one event. Called only while the event's lease is this
    /// process's and inside its deadline; the library acks it after the
    /// batch's [`JobWorker::flush`] unless that refused its output.
    fn handle(&mut self, event: Event<Self::Msg>);

    /// After each batch (and at the end): write the batch's outputs, and
    /// [`Refusals::refuse`] the (partition, epoch) pairs whose writes were
    /// refused or failed.
    fn flush(&mut self, refused: &mut Refusals) {
        let _ = refused;
    }

    /// This process no longer holds `partition`: drop its keys' state.
    fn release(&mut self, partition: u32) {
        let _ = partition;
    }
}
