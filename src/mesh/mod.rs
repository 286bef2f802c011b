//! The sending half of one worker's place in the mesh: its producers into
//! the N rings `ring[me][dst]`, the per-peer overflow in front of each, and
//! the batching of publications.
//!
//! `send_to` stages a message in the ring (no shared store); the loop
//! publishes every ring it staged into once per iteration ([`Outbound::flush`])
//! with a single light barrier before checking which peers need waking. A
//! full ring never blocks: the message goes to that pair's overflow, and
//! everything after it for that pair follows it there until the loop has
//! moved the overflow into the ring ([`Outbound::flush_overflow`]), so FIFO
//! per pair holds. The overflow is the only allocation on the send path and
//! happens only when a ring is full.
//!
//! The pair's statistics ([`pair::PairCounters`]) are written here and only
//! here, one method per counter: `sent` by `Outbound::store_sent` (before
//! every publish, and when the overflow grows), `full` by
//! `Outbound::count_full`, `overflowed` by `Outbound::count_overflowed`.
//!
//! The `Outbound` needs only its producers, its pair counters and the
//! registry ([`crate::shared`]), so the unit tests in `tests.rs` build one
//! by hand, without a pool. The diagram of the send path is in
//! `docs/architecture.md` ("The mesh").

mod answer_value;
pub(crate) mod asks;
mod continuation;
pub(crate) mod pair;
#[cfg(test)]
mod tests;
pub(crate) mod timers;

use std::collections::VecDeque;
use std::hash::Hash;
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use crate::lockfree::barrier;
use crate::lockfree::ring::Producer;
use crate::lockfree::sync::Arc;
use crate::partitioners::key_hash;
use crate::shared::Shared;
use crate::{Endpoint, SendError, WorkerId};

use asks::Asks;
use pair::PairCounters;
use timers::Timers;

/// Drops `value`, containing a panic of its `Drop`: what a worker drops
/// for others (queued messages, answers, continuations) must not end its
/// thread or leave the rest undropped.
pub(crate) fn drop_contained<T>(value: T) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(value)));
}

/// One worker's outbound side of the mesh.
pub(crate) struct Outbound<M> {
    id: usize,
    tx: Box<[Producer<M>]>,
    /// Per peer: the pair's statistics (see [`pair`]).
    pairs: Box<[Arc<CachePadded<PairCounters>>]>,
    overflow: Box<[VecDeque<M>]>,
    /// Peers whose overflow is not empty.
    overflow_pending: usize,
    /// Messages in all of this worker's overflows together: what the loop
    /// compares with `PoolConfig::overflow_pause` before taking from the
    /// inbox.
    overflow_queued: usize,
    /// This worker's pending `send_after` messages.
    pub(crate) timers: Timers<M>,
    /// This worker's pending `Context::ask`s.
    pub(crate) asks: Asks<M>,
    /// Who sent the message being handled (`Context::source`). The loop
    /// sets it once per batch and clears it after the drain, so it is
    /// `None` in every other callback.
    pub(crate) source: Option<Endpoint>,
    /// Peers with staged, unpublished messages.
    dirty: Box<[bool]>,
    dirty_list: Vec<usize>,
    /// Sends refused (`on_stop`, or after this worker stopped).
    closed: bool,
    /// Per peer: whether a send to it must take the slow path (this side
    /// closed, the peer seen failed, or its overflow not empty). One local
    /// flag, so the common send reads nothing shared but its ring.
    unusual: Box<[bool]>,
    /// Per peer: whether it was seen failed at the last refresh.
    failed_seen: Box<[bool]>,
    /// The pool's failure count at the last refresh.
    failures_seen: u64,
    /// Most messages one pair's overflow may hold (`None`: unbounded).
    overflow_limit: usize,
    shared: Arc<Shared<M>>,
}

impl<M> Outbound<M> {
    pub(crate) fn id(&self) -> WorkerId {
        WorkerId::from(self.id)
    }

    pub(crate) fn workers(&self) -> usize {
        self.tx.len()
    }
}

impl<M: Send + 'static> Outbound<M> {
    /// The outbound side of worker `id`: `tx[dst]` produces into the ring
    /// `id → dst`, and `pairs[dst]` are that pair's counters.
    pub(crate) fn new(
        id: usize,
        tx: Vec<Producer<M>>,
        pairs: Vec<Arc<CachePadded<PairCounters>>>,
        shared: Arc<Shared<M>>,
        overflow_limit: Option<usize>,
    ) -> Self {
        let n = tx.len();
        debug_assert_eq!(pairs.len(), n);
        Outbound {
            id,
            tx: tx.into_boxed_slice(),
            pairs: pairs.into_boxed_slice(),
            overflow: (0..n).map(|_| VecDeque::new()).collect(),
            overflow_pending: 0,
            overflow_queued: 0,
            timers: Timers::default(),
            asks: Asks::new(shared.clone(), id, n),
            source: None,
            dirty: vec![false; n].into_boxed_slice(),
            dirty_list: Vec::with_capacity(n),
            closed: false,
            unusual: vec![false; n].into_boxed_slice(),
            failed_seen: vec![false; n].into_boxed_slice(),
            failures_seen: 0,
            overflow_limit: overflow_limit.unwrap_or(usize::MAX),
            shared,
        }
    }

    pub(crate) fn worker_for<K: Hash + ?Sized>(&self, key: &K) -> WorkerId {
        self.shared.worker_for(key_hash(key))
    }

    /// Whether some peer's overflow still holds messages.
    pub(crate) fn has_overflow(&self) -> bool {
        self.overflow_pending > 0
    }

    /// Messages waiting in this worker's overflows, all peers together.
    #[inline]
    pub(crate) fn overflow_queued(&self) -> usize {
        self.overflow_queued
    }

    /// Schedules `msg` for this worker's own `handle`, `delay` from now.
    /// Refused with `Closed` after [`close`](Self::close) (`on_stop`), and
    /// with `DelayTooLong` when `now + delay` does not fit in an
    /// [`Instant`].
    pub(crate) fn send_after(&mut self, delay: Duration, msg: M) -> Result<(), SendError<M>> {
        if self.closed {
            return Err(SendError::Closed(msg));
        }
        match Instant::now().checked_add(delay) {
            Some(due) => {
                self.timers.push(due, msg);
                Ok(())
            }
            None => Err(SendError::DelayTooLong(msg)),
        }
    }

    /// Stages `msg` for `peer`. The common case (a peer with nothing unusual
    /// about it, room in its ring) reads one local flag and the ring, and is
    /// small enough to inline into the caller's `handle`; everything else is
    /// in [`send_unusual`](Self::send_unusual).
    #[inline(always)]
    pub(crate) fn send_to(&mut self, peer: usize, msg: M) -> Result<(), SendError<M>> {
        if self.unusual.get(peer) != Some(&false) {
            return self.send_unusual(peer, msg);
        }
        match self.tx[peer].try_stage(msg) {
            Ok(()) => {
                // `sent` is brought up to date when the ring is published.
                self.mark_dirty(peer);
                Ok(())
            }
            Err(msg) => self.send_unusual(peer, msg),
        }
    }

    /// Stages every message of `batch` for `peer`, in order: as many as
    /// fit go straight into the ring as one run, the rest as `send_to`
    /// would take them (into the overflow, in order). On an error the
    /// first message not accepted and every one after it are left in
    /// `batch`, in order.
    #[inline]
    pub(crate) fn send_batch(
        &mut self,
        peer: usize,
        batch: &mut Vec<M>,
    ) -> Result<(), SendError<()>> {
        if self.unusual.get(peer) == Some(&false) {
            if self.tx[peer].stage_from(batch) > 0 {
                self.mark_dirty(peer);
            }
            if batch.is_empty() {
                return Ok(());
            }
        }
        self.send_batch_unusual(peer, batch)
    }

    /// The part of `send_batch` the ring had no room for (or all of it,
    /// when the peer is unusual). Takes exactly as many as the pair can
    /// accept, so nothing is moved out of `batch` only to be handed back.
    #[cold]
    #[inline(never)]
    fn send_batch_unusual(&mut self, peer: usize, batch: &mut Vec<M>) -> Result<(), SendError<()>> {
        self.check_open(peer)?;
        let n = self.room(peer).min(batch.len());
        for msg in batch.drain(..n) {
            self.enqueue(peer, msg);
        }
        if batch.is_empty() {
            Ok(())
        } else {
            self.refuse_full(peer);
            Err(SendError::Full(()))
        }
    }

    /// Whether sends are refused (`on_stop`, or after this worker stopped).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Refuses every later send (`on_stop`, or after this worker stopped).
    pub(crate) fn close(&mut self) {
        self.closed = true;
        self.unusual.fill(true);
    }

    /// Picks up peers that failed since the last call (one load of the
    /// pool's failure count when none did). Called once per loop iteration;
    /// a send racing a peer's failure is accepted and then dropped and
    /// counted by the failed peer, as one made a moment earlier would be.
    #[inline]
    pub(crate) fn refresh_peers(&mut self) {
        let failures = self.shared.failures.load(Acquire);
        if failures != self.failures_seen {
            self.failures_seen = failures;
            for peer in 0..self.tx.len() {
                self.failed_seen[peer] = self.shared.workers[peer].failed.load(Relaxed);
                self.update_unusual(peer);
            }
        }
    }

    fn update_unusual(&mut self, peer: usize) {
        self.unusual[peer] =
            self.closed || self.failed_seen[peer] || !self.overflow[peer].is_empty();
    }

    /// Every case of `send_to` but the common one: refused sends, a full
    /// ring, a non-empty overflow.
    #[cold]
    #[inline(never)]
    fn send_unusual(&mut self, peer: usize, msg: M) -> Result<(), SendError<M>> {
        if let Err(e) = self.check_open(peer) {
            return Err(e.map(|()| msg));
        }
        if self.room(peer) == 0 {
            self.refuse_full(peer);
            return Err(SendError::Full(msg));
        }
        self.enqueue(peer, msg);
        Ok(())
    }

    /// Whether sends to `peer` are refused outright: this side closed, no
    /// such worker, or the peer seen failed.
    fn check_open(&self, peer: usize) -> Result<(), SendError<()>> {
        if self.closed {
            return Err(SendError::Closed(()));
        }
        if peer >= self.tx.len() {
            return Err(SendError::NoSuchWorker(()));
        }
        if self.shared.workers[peer].failed.load(Relaxed) {
            return Err(SendError::Closed(()));
        }
        Ok(())
    }

    /// How many messages the pair to `peer` accepts now: room in the ring
    /// (while nothing waits in the overflow; as last seen, since every
    /// caller comes from a staging attempt that refreshed it) plus room in
    /// the overflow.
    fn room(&self, peer: usize) -> usize {
        let queued = self.overflow[peer].len();
        if queued > 0 {
            return self.overflow_limit.saturating_sub(queued);
        }
        self.tx[peer].free().saturating_add(self.overflow_limit)
    }

    /// Counts a refused send, and publishes what is staged for the peer so
    /// that it can drain the ring.
    fn refuse_full(&mut self, peer: usize) {
        if self.overflow[peer].is_empty() {
            self.ring_full(peer);
        } else {
            self.count_full(peer);
        }
    }

    /// The ring to `peer` had no room: counts it in `full` and publishes
    /// what is staged, so that the peer can drain it.
    fn ring_full(&mut self, peer: usize) {
        self.count_full(peer);
        self.store_sent(peer);
        if self.tx[peer].publish() {
            self.shared.workers[peer].signal.notify();
        }
    }

    /// Counts a send that found the pair to `peer` full. The only write of
    /// the pair's `full`.
    #[inline]
    fn count_full(&self, peer: usize) {
        self.pairs[peer].full.add(1);
    }

    /// Counts a message that entered `peer`'s overflow. The only write of
    /// the pair's `overflowed`.
    #[inline]
    fn count_overflowed(&self, peer: usize) {
        self.pairs[peer].overflowed.add(1);
    }

    /// Stores the pair's `sent`: everything accepted for it, i.e. the
    /// messages written into its ring plus those in its overflow. The only
    /// write of the pair's `sent`; called before every publish (so the
    /// receiver's count never passes it) and whenever the overflow grows.
    #[inline]
    fn store_sent(&self, peer: usize) {
        let queued = self.overflow[peer].len() as u64;
        self.pairs[peer].sent.set(self.tx[peer].written() + queued);
    }

    /// Accepts `msg` for `peer` behind everything accepted before it: into
    /// the ring while the overflow is empty and the ring has room, else at
    /// the back of the overflow. Never refuses; callers check
    /// [`room`](Self::room) first.
    fn enqueue(&mut self, peer: usize, msg: M) {
        if self.overflow[peer].is_empty() {
            match self.tx[peer].try_stage(msg) {
                Ok(()) => self.mark_dirty(peer),
                Err(msg) => {
                    // Full: queue it, then publish what is staged so the
                    // peer can drain it (`sent` counts the queued one).
                    self.overflow[peer].push_back(msg);
                    self.count_overflowed(peer);
                    self.overflow_pending += 1;
                    self.overflow_queued += 1;
                    self.unusual[peer] = true;
                    self.ring_full(peer);
                }
            }
        } else {
            self.overflow[peer].push_back(msg);
            self.count_overflowed(peer);
            self.overflow_queued += 1;
            self.store_sent(peer);
        }
    }

    /// Notes that `peer`'s ring has staged messages to publish at `flush`.
    #[inline]
    fn mark_dirty(&mut self, peer: usize) {
        if !self.dirty[peer] {
            self.dirty[peer] = true;
            self.dirty_list.push(peer);
        }
    }

    /// Moves overflowed messages into their rings, oldest first, as far as
    /// they fit. Runs at the top of every loop iteration: the check for
    /// nothing to move is inlined there (it was a call of 17 instructions
    /// per iteration).
    #[inline]
    pub(crate) fn flush_overflow(&mut self) {
        if self.overflow_pending != 0 {
            self.move_overflow();
        }
    }

    #[inline(never)]
    fn move_overflow(&mut self) {
        for peer in 0..self.tx.len() {
            let overflow = &mut self.overflow[peer];
            if overflow.is_empty() {
                continue;
            }
            let tx = &mut self.tx[peer];
            let mut moved = 0;
            while let Some(msg) = overflow.pop_front() {
                if let Err(msg) = tx.try_stage(msg) {
                    overflow.push_front(msg);
                    break;
                }
                moved += 1;
            }
            self.overflow_queued -= moved;
            if overflow.is_empty() {
                self.overflow_pending -= 1;
                self.update_unusual(peer);
            }
            if moved > 0 {
                self.mark_dirty(peer);
            }
        }
    }

    /// Publishes every ring with staged messages and every answer lane
    /// with staged answers, then wakes the peers that are not running (one
    /// light barrier for all of them).
    #[inline]
    pub(crate) fn flush(&mut self) {
        self.asks.report_taken();
        let answers = asks::any_staged();
        if answers || !self.dirty_list.is_empty() {
            self.publish(answers);
        }
    }

    /// Publishes the ask answers given on this thread since the last
    /// flush (the stop's last publication, after `on_stop`).
    pub(crate) fn publish_answers(&mut self) {
        self.asks.report_taken();
        self.publish(true);
    }

    /// [`flush`](Self::flush) with something to publish. The answers come
    /// after the rings they must not overtake: each is tagged with how
    /// many messages this worker has accepted for its asker so far.
    #[inline(never)]
    fn publish(&mut self, answers: bool) {
        for &peer in &self.dirty_list {
            // Counted here, once per iteration, not per message; stored
            // before the messages become visible, so `received` does not
            // pass it.
            self.store_sent(peer);
            self.tx[peer].publish();
        }
        if answers {
            let pool = Arc::as_ptr(&self.shared) as usize;
            let (tx, overflow, pairs) = (&self.tx, &self.overflow, &self.pairs);
            let (dirty, dirty_list) = (&mut self.dirty, &mut self.dirty_list);
            asks::publish_staged(
                pool,
                self.id,
                |asker| tx[asker].written() + overflow[asker].len() as u64,
                |asker, n| {
                    pairs[asker].answers.add(n);
                    if !dirty[asker] {
                        dirty[asker] = true;
                        dirty_list.push(asker);
                    }
                },
            );
        }
        barrier::light();
        for &peer in &self.dirty_list {
            self.dirty[peer] = false;
            self.shared.workers[peer].signal.notify_after_barrier();
        }
        self.dirty_list.clear();
    }
}
