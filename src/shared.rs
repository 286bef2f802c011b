//! The per-pool registry: what the pool, its senders, its workers and the
//! statistics know of each worker — its bell, its inbox's sending side, the
//! rings it consumes, its counters, its placement — plus the control word
//! and the partitioner.
//!
//! Everything above it (mesh, runtime, stats, sender, pool) reads it;
//! it depends on none of them, only on the lock-free core and on leaf
//! types (config, placement's `Slot`, the mesh's pair counters). That is what
//! lets an `Outbound` be tested against a hand-built registry without a
//! `Pool`. The dependency picture is in `docs/architecture.md`.

use std::sync::atomic::Ordering::SeqCst;

use crossbeam_utils::CachePadded;

use crate::config::SharedPartitioner;
use crate::lockfree::inbox::InboxSender;
use crate::lockfree::ring::Ring;
use crate::lockfree::shutdown::{control, Channels};
use crate::lockfree::signal::Signal;
use crate::lockfree::sync::{Arc, AtomicBool, AtomicU64, Counter, Mutex};
use crate::mesh::pair::PairCounters;
use crate::placement::Slot;
use crate::WorkerId;

/// Statistics a worker writes about itself (single writer each).
#[derive(Debug, Default)]
pub(crate) struct WorkerCounters {
    pub(crate) handled: Counter,
    pub(crate) ticks: Counter,
    pub(crate) parks: Counter,
    pub(crate) dropped: Counter,
    pub(crate) restarts: Counter,
    /// `send_after` timers dropped: pending when the pool stopped or when
    /// the worker failed.
    pub(crate) timers_dropped: Counter,
    /// Messages waiting in the worker's overflows now (a gauge, stored
    /// once per iteration).
    pub(crate) overflow_queued: Counter,
    /// How long sampled messages waited in the worker's queues
    /// (`runtime/queue_delay.rs`).
    pub(crate) delay: DelayHistogram,
    /// The last FREEZE epoch this worker acknowledged.
    pub(crate) ack: Counter,
}

/// Buckets of the queue-delay histogram (up to 2^47 ns, about 39 hours).
pub(crate) const DELAY_BUCKETS: usize = 48;

/// A log2 histogram of delays in nanoseconds, written by one thread:
/// bucket `k` counts `[2^k, 2^(k+1))` ns (0 and 1 ns in bucket 0, the last
/// bucket everything above), plus the exact maximum.
#[derive(Debug)]
pub(crate) struct DelayHistogram {
    pub(crate) buckets: [Counter; DELAY_BUCKETS],
    pub(crate) max: Counter,
}

impl Default for DelayHistogram {
    fn default() -> Self {
        DelayHistogram {
            buckets: std::array::from_fn(|_| Counter::default()),
            max: Counter::default(),
        }
    }
}

impl DelayHistogram {
    /// Adds one sample. Only the owning thread.
    pub(crate) fn record(&self, nanos: u64) {
        self.buckets[delay_bucket(nanos)].add(1);
        if nanos > self.max.get() {
            self.max.set(nanos);
        }
    }
}

/// The bucket of a delay of `nanos` in a [`DelayHistogram`].
pub(crate) fn delay_bucket(nanos: u64) -> usize {
    let k = (63 - nanos.max(1).leading_zeros()) as usize;
    k.min(DELAY_BUCKETS - 1)
}

/// The channel `src → me` of the mesh as the registry sees it: the ring
/// (its head is the pair's `received`, its capacity the pair's) and the
/// sender's counters for the pair.
pub(crate) struct InboundPair<M> {
    pub(crate) ring: Arc<Ring<M>>,
    pub(crate) counters: Arc<CachePadded<PairCounters>>,
}

impl<M> Clone for InboundPair<M> {
    fn clone(&self) -> Self {
        InboundPair {
            ring: self.ring.clone(),
            counters: self.counters.clone(),
        }
    }
}

/// What the pool, the senders and the other workers know of one worker.
pub(crate) struct WorkerShared<M> {
    pub(crate) signal: CachePadded<Signal>,
    pub(crate) failed: AtomicBool,
    pub(crate) inbox: InboxSender<M>,
    /// `src → me` for every `src`, for statistics and quiescence.
    pub(crate) inbound: Box<[InboundPair<M>]>,
    pub(crate) counters: CachePadded<WorkerCounters>,
    pub(crate) panic: Mutex<Option<String>>,
    pub(crate) slot: Slot,
    /// Answers to this worker's asks published so far (any thread may
    /// publish one), and taken by it so far (only this worker writes it):
    /// equal when none is in flight.
    pub(crate) answers_published: CachePadded<AtomicU64>,
    pub(crate) answers_taken: Counter,
}

impl<M> WorkerShared<M> {
    /// A worker's entry before it runs: not failed, counters at zero.
    pub(crate) fn new(
        signal: Signal,
        inbox: InboxSender<M>,
        inbound: Box<[InboundPair<M>]>,
        slot: Slot,
    ) -> Self {
        WorkerShared {
            signal: CachePadded::new(signal),
            failed: AtomicBool::new(false),
            inbox,
            inbound,
            counters: CachePadded::new(WorkerCounters::default()),
            panic: Mutex::new(None),
            slot,
            answers_published: CachePadded::new(AtomicU64::new(0)),
            answers_taken: Counter::default(),
        }
    }
}

/// State shared by the pool, its senders and its workers.
pub(crate) struct Shared<M> {
    pub(crate) workers: Box<[WorkerShared<M>]>,
    pub(crate) control: CachePadded<AtomicU64>,
    /// How many workers have failed so far (each adds one, once).
    pub(crate) failures: CachePadded<AtomicU64>,
    partitioner: SharedPartitioner,
    /// `PoolConfig::call_spin`, for the calls of the pool's senders.
    pub(crate) call_spin: std::time::Duration,
}

impl<M> Shared<M> {
    /// A registry over `workers`, in the RUN phase with no failures.
    pub(crate) fn new(workers: Box<[WorkerShared<M>]>, partitioner: SharedPartitioner) -> Self {
        Shared {
            workers,
            control: CachePadded::new(AtomicU64::new(control::word(0, control::RUN))),
            failures: CachePadded::new(AtomicU64::new(0)),
            partitioner,
            call_spin: std::time::Duration::ZERO,
        }
    }

    /// The worker that owns a key of hash `hash` under the pool's
    /// partitioner.
    #[inline]
    pub(crate) fn worker_for(&self, hash: u64) -> WorkerId {
        let n = self.workers.len();
        let shard = self.partitioner.shard(hash, n);
        debug_assert!(shard < n, "partitioner returned shard {shard} of {n}");
        WorkerId::from(shard)
    }
}

impl<M> Channels for Shared<M> {
    fn balanced(&self, finals: &[u64]) -> bool {
        // Equality, in the width each counter wraps at: the ring's head
        // and the inbox's head are `usize`s (2^32 on a 32-bit target), the
        // pair's `sent` a `u64`. The received side is read first and never
        // passes the sent side, so equality is "nothing in flight".
        self.workers.iter().zip(finals).all(|(w, &fin)| {
            w.answers_taken.get_acquire() == w.answers_published.load(SeqCst)
                && w.inbox.drained(fin)
                && w.inbound.iter().all(|pair| {
                    pair.ring.received() as usize == pair.counters.sent.get_acquire() as usize
                })
        })
    }

    fn workers(&self) -> usize {
        self.workers.len()
    }

    fn acked(&self, worker: usize) -> u64 {
        self.workers[worker].counters.ack.get_acquire()
    }

    fn control(&self) -> u64 {
        self.control.load(SeqCst)
    }

    fn set_control(&self, word: u64) {
        self.control.store(word, SeqCst);
        for w in self.workers.iter() {
            w.signal.wake_now();
        }
    }
}

#[cfg(not(loom))]
impl<M: Send + 'static> crate::mesh::asks::WakeAsker for Shared<M> {
    fn counting_answer(&self, asker: usize) {
        self.workers[asker].answers_published.fetch_add(1, SeqCst);
    }

    fn answer_published(&self, asker: usize) {
        self.workers[asker].signal.notify();
    }

    fn answer_taken(&self, asker: usize) {
        self.workers[asker].answers_taken.add(1);
    }

    fn pool_id(&self) -> usize {
        self as *const Self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_buckets_are_powers_of_two() {
        assert_eq!(delay_bucket(0), 0);
        assert_eq!(delay_bucket(1), 0);
        assert_eq!(delay_bucket(2), 1);
        assert_eq!(delay_bucket(3), 1);
        assert_eq!(delay_bucket(1024), 10);
        assert_eq!(delay_bucket(u64::MAX), DELAY_BUCKETS - 1);
        let h = DelayHistogram::default();
        h.record(5);
        h.record(3);
        assert_eq!(h.max.get(), 5);
        assert_eq!(h.buckets[1].get() + h.buckets[2].get(), 2);
    }
}
