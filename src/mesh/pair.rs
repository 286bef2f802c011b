//! The statistics of one (sender, receiver) pair of the mesh that the
//! sending worker writes: how many messages it accepted for the pair, how
//! many sends found the pair full, how many waited in its overflow.
//!
//! They belong to the mesh (the overflow is a mesh concept, not the ring's),
//! and each is written from exactly one method of `Outbound`
//! (`store_sent`, `count_full`, `count_overflowed`) on the sending worker's
//! thread, so relaxed single-writer stores suffice. The registry
//! (`crate::shared`) holds them so that statistics and the shutdown
//! detector can read them; the receiving side's count is the ring's head.

use crate::lockfree::sync::Counter;

/// Single-writer counters of one pair, written by the sending worker.
///
/// Allocated on the receiving worker's thread beside the ring they describe,
/// and padded to their own cache line pair by the registry.
#[derive(Debug, Default)]
pub(crate) struct PairCounters {
    /// Messages accepted for this pair: written into the ring or waiting
    /// in its overflow. Stored before the messages are published, so the
    /// receiver's count never passes it.
    pub(crate) sent: Counter,
    /// Sends that found the pair full.
    pub(crate) full: Counter,
    /// Messages that went through the pair's overflow (also those queued
    /// behind earlier overflow).
    pub(crate) overflowed: Counter,
    /// Answers to the receiver's asks that the sender published (counted
    /// before each is queued: shutdown's quiescence check).
    pub(crate) answers: Counter,
}
