//! The bounded multi-producer single-consumer inbox through which threads
//! outside the pool reach a worker.
//!
//! Split by side, like the ring: [`inbox`] returns an [`InboxSender`]
//! (shared by any number of threads, `Clone`) and an [`InboxReceiver`]
//! (owned by the one consumer, so popping is a safe `&mut self` method and
//! the single-consumer rule is enforced by the type, not by callers).
//!
//! An array of slots, each with a sequence stamp. Producers claim an index
//! with one compare-and-swap on `tail`, write the message and publish the
//! slot with a release store of its stamp. The single consumer needs no
//! read-modify-write at all: it checks a slot's stamp (acquire), moves the
//! value out, and publishes its `head` once per batch.
//!
//! Free space comes from that head, not from per-slot "free" stamps as in
//! Vyukov's queue: the consumer never writes a slot, so a producer coming
//! round one lap later does not miss on a line the consumer dirtied.
//! Producers read a shared cached copy of the head, refreshed only when it
//! says full, so a send does not touch the line the consumer rewrites after
//! every batch.
//!
//! A claim is a locked instruction, which waits for the sender's earlier
//! stores; so after claiming, a sender prefetches for writing the line a
//! little ahead ([`crate::lockfree::prefetch`]), and the worker does not poll a
//! drained inbox for a moment after a batch (`PoolConfig::inbox_coalesce`,
//! in the runtime). What each of these buys is measured in PERFORMANCE.md.
//!
//! Closing sets the low bit of `tail`, so every later claim fails and the
//! final tail is known exactly: a drain waits until `head` reaches it,
//! including claims that were mid-write when the inbox closed.
//!
//! Because of that bit, the claim index (`tail >> 1`) has one bit less than
//! `head`: it wraps at 2^(usize::BITS − 1) — after 2³¹ messages on a 32-bit
//! target — while `head` wraps at 2^usize::BITS. Every comparison between
//! the two is therefore taken modulo the narrower width ([`distance`]);
//! slot positions (`& mask`) and stamps (`2i + 1`) already agree across
//! both widths. The consumer's fast path is unchanged; tests start the
//! indices just below the wrap (`inbox_starting_at`).
//!
//! A blocking [`InboxSender::push_blocking`] spins, then parks on a condition
//! variable; an async push ([`InboxSender::poll_push`]) registers its task's
//! waker. Both wait in the inbox's [`WaitList`]. The consumer, after
//! publishing its head, checks the list's count behind a light barrier (one
//! load on its fast path) and wakes senders only when there are some. The
//! sender pays the heavy barrier when it registers
//! ([`crate::lockfree::barrier`]); a blocked thread also re-checks on its own
//! every [`LOST_WAKEUP_BOUND`](crate::lockfree::barrier::LOST_WAKEUP_BOUND) in
//! case a wake-up was lost (a safety net, not the wake-up path). The wait
//! list, its order and its fairness are described in
//! [`crate::lockfree::inbox_wait`].

use std::mem::MaybeUninit;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::task::{Poll, Waker};

use crossbeam_utils::{Backoff, CachePadded};

use crate::lockfree::barrier;
use crate::lockfree::inbox_wait::{Ticket, WaitList};
use crate::lockfree::prefetch::prefetch_write;
use crate::lockfree::sync::{Arc, AtomicU64, AtomicUsize, UnsafeCell};

/// Why a push did not happen; carries the message back.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PushError<T> {
    Full(T),
    Closed(T),
}

struct Slot<T> {
    /// `2i + 1` once the message of index `i` is written (0 initially). Only
    /// producers write it; an older lap's stamp never equals a newer index's.
    stamp: AtomicUsize,
    value: UnsafeCell<MaybeUninit<T>>,
}

/// The slots and indices shared by an [`InboxSender`] and an
/// [`InboxReceiver`]. See the module documentation.
struct Inbox<T> {
    /// Next index the consumer reads; written by the consumer only,
    /// published once per batch (statistics and drain accounting).
    head: CachePadded<AtomicUsize>,
    /// `next index to claim << 1 | closed`.
    tail: CachePadded<AtomicUsize>,
    /// The producers' shared copy of `head`, refreshed only when it says the
    /// inbox is full, so a send does not read the line the consumer rewrites
    /// after every batch. It may lag (that only understates free space);
    /// release/acquire keeps the hand-over from the consumer transitive.
    head_cache: CachePadded<AtomicUsize>,
    /// Sends that found the inbox full (shared by the senders; touched only
    /// on that slow path).
    full: CachePadded<AtomicU64>,
    /// Senders (threads and tasks) waiting for space.
    wait: WaitList,
    mask: usize,
    buf: Box<[Slot<T>]>,
}

// SAFETY: values move from producer threads to the consumer thread; every
// slot is handed over by its stamp (release/acquire), so `T: Send` suffices.
unsafe impl<T: Send> Send for Inbox<T> {}
// SAFETY: as above. Slot values are only read by the one
// `InboxReceiver`, which is not `Clone` and pops through `&mut self`.
unsafe impl<T: Send> Sync for Inbox<T> {}

impl<T> std::fmt::Debug for Inbox<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("capacity", &(self.mask + 1))
            .field("tail", &self.tail.load(Relaxed))
            .field("head", &self.head.load(Relaxed))
            .finish_non_exhaustive()
    }
}

/// The sending side of an inbox: any number of threads, through clones or a
/// shared reference.
#[derive(Debug)]
pub(crate) struct InboxSender<T> {
    inbox: Arc<Inbox<T>>,
}

impl<T> Clone for InboxSender<T> {
    fn clone(&self) -> Self {
        InboxSender {
            inbox: self.inbox.clone(),
        }
    }
}

/// The receiving side of an inbox: one owner, which alone moves messages
/// out. Keeps its own copy of `head` (the published one is for statistics
/// and for the senders' free-space checks).
///
/// Aligned to 128 bytes (a line pair, as `CachePadded`), like the ring's
/// `Consumer`: `head` is written after every batch and must not share a
/// line with anything a sender reads.
#[repr(align(128))]
#[derive(Debug)]
pub(crate) struct InboxReceiver<T> {
    inbox: Arc<Inbox<T>>,
    /// Next index to read; the published `head` lags it only inside
    /// `pop_batch`.
    head: usize,
}

/// Creates an inbox with room for `capacity` messages, rounded up to a power
/// of two (at least 1).
pub(crate) fn inbox<T>(capacity: usize) -> (InboxSender<T>, InboxReceiver<T>) {
    inbox_starting_at(capacity, 0)
}

/// An inbox whose indices start at `start` instead of 0, so tests can run
/// it across the points where the claim index and the head wrap.
pub(crate) fn inbox_starting_at<T>(
    capacity: usize,
    start: usize,
) -> (InboxSender<T>, InboxReceiver<T>) {
    let inbox = Arc::new(Inbox::new(capacity, start));
    (
        InboxSender {
            inbox: inbox.clone(),
        },
        InboxReceiver { inbox, head: start },
    )
}

const CLOSED: usize = 1;

/// What one attempt of a blocking push achieved.
enum Attempt<R> {
    /// Finished (sent, or refused for good).
    Done(R),
    /// Sent part of a batch; try again at once.
    Progress,
    /// Found the inbox full; wait for space.
    Full,
}

/// The stamp of a slot that holds the message of index `i`. Depends only
/// on `i` modulo 2^(usize::BITS − 1), so a claim index and a head that
/// have wrapped at different widths agree on it.
#[inline]
fn written_stamp(i: usize) -> usize {
    i.wrapping_mul(2).wrapping_add(1)
}

/// How many indices lie from `head` up to the claim index of `tail`
/// (`tail`'s closed bit clear), modulo 2^(usize::BITS − 1): the claim index
/// has one bit less than the head, so a plain `(tail >> 1) - head` goes
/// wrong once either has wrapped.
#[inline]
fn distance(tail: usize, head: usize) -> usize {
    tail.wrapping_sub(head.wrapping_mul(2)) >> 1
}

impl<T> Inbox<T> {
    fn new(capacity: usize, start: usize) -> Self {
        let capacity = capacity.max(1).next_power_of_two();
        Inbox {
            head: CachePadded::new(AtomicUsize::new(start)),
            tail: CachePadded::new(AtomicUsize::new(start.wrapping_mul(2))),
            head_cache: CachePadded::new(AtomicUsize::new(start)),
            full: CachePadded::new(AtomicU64::new(0)),
            wait: WaitList::new(),
            mask: capacity - 1,
            buf: (0..capacity)
                .map(|_| Slot {
                    stamp: AtomicUsize::new(0),
                    value: UnsafeCell::new(MaybeUninit::uninit()),
                })
                .collect(),
        }
    }

    /// How many slots past its claim a sender prefetches for writing: about
    /// two cache lines (measured best of 1, 2 and 8 lines, PERFORMANCE.md).
    const PREFETCH_AHEAD: usize = {
        let slots = 128 / std::mem::size_of::<Slot<T>>();
        if slots == 0 {
            1
        } else {
            slots
        }
    };

    /// The number of slots.
    fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Claims up to `want` (at least 1) consecutive indices with one
    /// compare-and-swap on `tail`. Returns the first index and how many were
    /// claimed (0 when the inbox is full), or `Err` when it is closed.
    ///
    /// Free space comes from the consumer's published head (it moved every
    /// message below `head` out before publishing it), read through the
    /// producers' cached copy while that shows enough room.
    #[inline]
    fn claim(&self, want: usize) -> Result<(usize, usize), ()> {
        let backoff = Backoff::new();
        let mut tail = self.tail.load(Relaxed);
        loop {
            if tail & CLOSED != 0 {
                return Err(());
            }
            let index = tail >> 1;
            let free_after = |head: usize| self.capacity().saturating_sub(distance(tail, head));
            let mut free = free_after(self.head_cache.load(Acquire));
            if free < want {
                free = free_after(self.refresh_head());
            }
            let k = want.min(free);
            if k == 0 {
                let current = self.tail.load(Relaxed);
                if current == tail {
                    return Ok((index, 0));
                }
                tail = current;
                continue;
            }
            match self
                .tail
                .compare_exchange_weak(tail, tail.wrapping_add(2 * k), SeqCst, Relaxed)
            {
                Ok(_) => {
                    // Fetch the line a little past our claim for writing
                    // now (see `crate::lockfree::prefetch`), unless it may still hold
                    // messages the consumer has not read.
                    let ahead = Self::PREFETCH_AHEAD;
                    if free >= k + ahead {
                        prefetch_write(&self.buf[index.wrapping_add(k + ahead - 1) & self.mask]);
                    }
                    return Ok((index, k));
                }
                Err(current) => {
                    tail = current;
                    backoff.spin();
                }
            }
        }
    }

    /// Writes `value` into the slot of index `i` and publishes it.
    ///
    /// # Safety
    /// `i` must have been claimed by this caller with [`claim`](Self::claim)
    /// and not written yet.
    #[inline]
    unsafe fn fill(&self, i: usize, value: T) {
        let slot = &self.buf[i & self.mask];
        // SAFETY: the claim gave the caller index `i` alone, and it is below
        // head + capacity, so the consumer is done with the slot's previous
        // lap and reads it again only after the stamp below.
        slot.value
            .with_mut(|p| unsafe { p.write(MaybeUninit::new(value)) });
        slot.stamp.store(written_stamp(i), Release);
    }

    /// Reads the consumer's head and updates the producers' cached copy.
    #[cold]
    fn refresh_head(&self) -> usize {
        let head = self.head.load(Acquire);
        self.head_cache.store(head, Release);
        head
    }

    /// Claims a slot and writes `value`, or hands it back. Never blocks.
    #[inline]
    fn try_push(&self, value: T) -> Result<(), PushError<T>> {
        match self.claim(1) {
            Ok((index, 1)) => {
                // SAFETY: index `index` was just claimed by us.
                unsafe { self.fill(index, value) };
                Ok(())
            }
            Ok(_) => Err(PushError::Full(value)),
            Err(()) => Err(PushError::Closed(value)),
        }
    }

    /// Claims up to `batch.len()` slots with one compare-and-swap and moves
    /// that many messages from the front of `batch` into them, in order.
    /// Returns how many it moved (0 when full), or `Closed`.
    fn try_push_batch(&self, batch: &mut Vec<T>) -> Result<usize, PushError<()>> {
        if batch.is_empty() {
            return Ok(0);
        }
        let (index, k) = self
            .claim(batch.len())
            .map_err(|()| PushError::Closed(()))?;
        for (j, value) in batch.drain(..k).enumerate() {
            // SAFETY: indices index..index+k were just claimed by us.
            unsafe { self.fill(index.wrapping_add(j), value) };
        }
        Ok(k)
    }

    /// Runs `attempt` until it is done, waiting for space whenever it finds
    /// the inbox full: spins briefly, then parks until the consumer frees a
    /// slot. Counts one `full` per call that had to wait.
    ///
    /// The consumer's wake-up is what ends a park; the park's timeout,
    /// [`barrier::LOST_WAKEUP_BOUND`], only bounds how late a sender can be
    /// if a wake-up is ever lost (as one can be while the process switches
    /// away from membarrier, see [`crate::barrier`]): the sender then
    /// re-checks for space on its own.
    fn until_done<R>(&self, mut attempt: impl FnMut() -> Attempt<R>) -> R {
        let mut counted = false;
        let backoff = Backoff::new();
        loop {
            match attempt() {
                Attempt::Done(result) => return result,
                Attempt::Progress => {
                    backoff.reset();
                    continue;
                }
                Attempt::Full => {}
            }
            if !counted {
                counted = true;
                self.count_full();
            }
            // (Under loom the spinning is skipped: the model checks the park
            // path, and a spin loop would only multiply its branches.)
            if !cfg!(loom) && !backoff.is_completed() {
                backoff.snooze();
                continue;
            }
            // Park: register, heavy barrier, re-check, sleep (see
            // `WaitList::park_thread` for the handshake).
            let step = self
                .wait
                .park_thread(&mut attempt, |step| matches!(step, Attempt::Full));
            if let Attempt::Done(result) = step {
                return result;
            }
        }
    }

    /// Moves every message of `batch` into the inbox in order, claiming as
    /// many slots at once as are free and calling `on_claim` after each
    /// claim (the caller wakes the consumer there); waits like
    /// [`push_blocking`](Self::push_blocking) while the inbox is full. On
    /// `Closed`, the messages not sent are still in `batch`.
    fn push_batch_blocking(
        &self,
        batch: &mut Vec<T>,
        mut on_claim: impl FnMut(),
    ) -> Result<(), PushError<()>> {
        self.until_done(|| match self.try_push_batch(batch) {
            Err(e) => Attempt::Done(Err(e)),
            Ok(0) if batch.is_empty() => Attempt::Done(Ok(())),
            Ok(0) => Attempt::Full,
            Ok(_) => {
                on_claim();
                if batch.is_empty() {
                    Attempt::Done(Ok(()))
                } else {
                    Attempt::Progress
                }
            }
        })
    }

    /// Pushes `value`, waiting for space while the inbox is full: spins
    /// briefly, then parks until the consumer frees a slot. Counts one `full`
    /// when it had to wait.
    fn push_blocking(&self, value: T) -> Result<(), PushError<T>> {
        let mut value = Some(value);
        self.until_done(|| {
            let v = value.take().expect("put back on every Full");
            match self.try_push(v) {
                Err(PushError::Full(v)) => {
                    value = Some(v);
                    Attempt::Full
                }
                done => Attempt::Done(done),
            }
        })
    }

    /// Counts a send that found the inbox full.
    fn count_full(&self) {
        self.full.fetch_add(1, Relaxed);
    }

    /// One poll of an async push of `value` (which is `Some` on entry; it
    /// is put back on `Pending`). Tries the same claim as
    /// [`try_push`](Self::try_push); when the inbox is full, registers the
    /// task in the wait list (or refreshes its waker), pays the heavy
    /// barrier and tries again before returning `Pending` — the same
    /// handshake a blocked thread does before it parks, so the consumer's
    /// wake-up after its next batch cannot be missed. Counts one `full`
    /// per push that had to wait. Leaves the wait list once done.
    fn poll_push(
        &self,
        value: &mut Option<T>,
        ticket: &mut Ticket,
        waker: &Waker,
    ) -> Poll<Result<(), PushError<T>>> {
        let v = value.take().expect("polled after completion");
        let v = match self.try_push(v) {
            Err(PushError::Full(v)) => v,
            done => {
                self.wait.leave(ticket, done.is_ok());
                return Poll::Ready(done);
            }
        };
        if !ticket.is_waiting() {
            self.count_full();
        }
        self.wait.register(ticket, waker);
        barrier::heavy();
        match self.try_push(v) {
            Err(PushError::Full(v)) => {
                *value = Some(v);
                Poll::Pending
            }
            done => {
                self.wait.leave(ticket, done.is_ok());
                Poll::Ready(done)
            }
        }
    }

    /// Refuses every later push; wakes waiting senders (they get `Closed`).
    /// Returns the final tail, counted like `received()`: once `received()`
    /// equals it, the inbox is drained for good.
    fn close(&self) -> u64 {
        // Head first: it only grows towards the final tail, so the
        // distance read after the close is never negative.
        let head = self.head.load(Acquire);
        let tail = self.tail.fetch_or(CLOSED, SeqCst);
        self.wait.wake_all();
        head.wrapping_add(distance(tail & !CLOSED, head)) as u64
    }

    /// Whether [`close`](Self::close) was called.
    fn is_closed(&self) -> bool {
        self.tail.load(Acquire) & CLOSED != 0
    }

    /// Messages claimed by senders so far (a statistic), counted like
    /// `received()` (the same width, so the two wrap together).
    fn sent(&self) -> u64 {
        let head = self.head.load(Acquire);
        let tail = self.tail.load(Acquire) & !CLOSED;
        head.wrapping_add(distance(tail, head)) as u64
    }

    /// Whether the consumer has taken everything up to `final_tail` (from
    /// [`close`](Self::close)). Compares in the head's width, so it holds
    /// across the head's wrap.
    fn drained(&self, final_tail: u64) -> bool {
        self.head.load(Acquire) == final_tail as usize
    }

    /// Messages taken by the consumer so far (a statistic).
    fn received(&self) -> u64 {
        self.head.load(Acquire) as u64
    }

    /// Sends that found the inbox full.
    fn full_count(&self) -> u64 {
        self.full.load(Relaxed)
    }
}

impl<T> InboxSender<T> {
    /// The number of slots.
    pub(crate) fn capacity(&self) -> usize {
        self.inbox.capacity()
    }

    /// Claims a slot and writes `value`, or hands it back. Never blocks.
    #[inline]
    pub(crate) fn try_push(&self, value: T) -> Result<(), PushError<T>> {
        self.inbox.try_push(value)
    }

    /// Claims up to `batch.len()` slots with one compare-and-swap and moves
    /// that many messages from the front of `batch` into them, in order.
    /// Returns how many it moved (0 when full), or `Closed`.
    #[inline]
    pub(crate) fn try_push_batch(&self, batch: &mut Vec<T>) -> Result<usize, PushError<()>> {
        self.inbox.try_push_batch(batch)
    }

    /// Pushes `value`, waiting for space while the inbox is full: spins
    /// briefly, then parks until the receiver frees a slot. Counts one
    /// `full` when it had to wait.
    pub(crate) fn push_blocking(&self, value: T) -> Result<(), PushError<T>> {
        self.inbox.push_blocking(value)
    }

    /// Moves every message of `batch` into the inbox in order, claiming as
    /// many slots at once as are free and calling `on_claim` after each
    /// claim (the caller wakes the receiver there); waits like
    /// [`push_blocking`](Self::push_blocking) while the inbox is full. On
    /// `Closed`, the messages not sent are still in `batch`.
    pub(crate) fn push_batch_blocking(
        &self,
        batch: &mut Vec<T>,
        on_claim: impl FnMut(),
    ) -> Result<(), PushError<()>> {
        self.inbox.push_batch_blocking(batch, on_claim)
    }

    /// One poll of an async push: moves `*value` into the inbox if there is
    /// room, else registers `waker` under `ticket` and returns `Pending`
    /// (with `*value` put back); the receiver wakes the task when it frees
    /// a slot. On `Pending` the caller must keep `ticket` and poll again,
    /// or call [`cancel_wait`](Self::cancel_wait) if it gives up. Counts
    /// one `full` per push that had to wait. See
    /// [`crate::lockfree::inbox_wait`] for order and fairness.
    #[inline]
    pub(crate) fn poll_push(
        &self,
        value: &mut Option<T>,
        ticket: &mut Ticket,
        waker: &Waker,
    ) -> Poll<Result<(), PushError<T>>> {
        self.inbox.poll_push(value, ticket, waker)
    }

    /// Takes a task that gave up (its future was dropped, or the caller
    /// refused the send for another reason) out of the wait list, handing
    /// on a wake-up it may have received. A no-op for a ticket not waiting.
    pub(crate) fn cancel_wait(&self, ticket: &mut Ticket) {
        self.inbox.wait.leave(ticket, false);
    }

    /// Threads and tasks waiting for space now (for tests).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn inbox_wait_count(&self) -> usize {
        self.inbox.wait.count()
    }

    /// Counts a send that found the inbox full (the `try_` sends' caller
    /// does this; the blocking pushes count themselves).
    pub(crate) fn count_full(&self) {
        self.inbox.count_full();
    }

    /// Refuses every later push; wakes parked senders (they get `Closed`).
    /// Returns the final tail, counted like `received()`: once
    /// [`drained`](Self::drained) says so, the inbox is drained for good.
    pub(crate) fn close(&self) -> u64 {
        self.inbox.close()
    }

    /// Whether [`close`](Self::close) was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.inbox.is_closed()
    }

    /// Whether the receiver has taken everything up to `final_tail`, the
    /// value [`close`](Self::close) returned.
    pub(crate) fn drained(&self, final_tail: u64) -> bool {
        self.inbox.drained(final_tail)
    }

    /// Messages claimed by senders so far (a statistic).
    pub(crate) fn sent(&self) -> u64 {
        self.inbox.sent()
    }

    /// Messages taken by the receiver so far (a statistic).
    pub(crate) fn received(&self) -> u64 {
        self.inbox.received()
    }

    /// Sends that found the inbox full.
    pub(crate) fn full_count(&self) -> u64 {
        self.inbox.full_count()
    }
}

impl<T> InboxReceiver<T> {
    /// Takes up to `max` messages in FIFO order and passes each to `f`;
    /// publishes the head once and wakes parked senders if any. If `f`
    /// panics, the messages taken so far stay taken.
    #[inline]
    pub(crate) fn pop_batch(&mut self, max: usize, mut f: impl FnMut(T)) -> usize {
        /// Publishes the head when the batch ends, also when `f` panics.
        struct Commit<'a, T> {
            inbox: &'a Inbox<T>,
            head: &'a mut usize,
            taken: usize,
        }
        impl<T> Drop for Commit<'_, T> {
            fn drop(&mut self) {
                if self.taken == 0 {
                    return;
                }
                self.inbox.head.store(*self.head, Release);
                // Pairs with the waiter registration and heavy barrier in
                // `push_blocking` and `poll_push`: see the module
                // documentation.
                barrier::light();
                if self.inbox.wait.any() {
                    self.inbox.wait.wake(self.taken);
                }
            }
        }
        let inbox = &*self.inbox;
        let mut commit = Commit {
            inbox,
            head: &mut self.head,
            taken: 0,
        };
        while commit.taken < max {
            let index = *commit.head;
            let slot = &inbox.buf[index & inbox.mask];
            if slot.stamp.load(Acquire) != written_stamp(index) {
                break; // empty, or the claim at `index` is still writing
            }
            // SAFETY: the stamp says the producer finished writing index
            // `index` (acquire); `&mut self` on the only receiver means no
            // one else reads it, so we move the value out once, then free
            // the slot for the next lap by advancing the head.
            let value = slot.value.with(|p| unsafe { (*p).assume_init_read() });
            *commit.head = index.wrapping_add(1);
            commit.taken += 1;
            f(value);
        }
        commit.taken
    }

    /// Whether the next message is ready.
    #[inline]
    pub(crate) fn has_pending(&mut self) -> bool {
        let inbox = &*self.inbox;
        inbox.buf[self.head & inbox.mask].stamp.load(Acquire) == written_stamp(self.head)
    }
}

impl<T> Drop for Inbox<T> {
    fn drop(&mut self) {
        // Drop every written, untaken message. Claims are always completed
        // (a claimer writes right after its CAS), and `&mut self` means no
        // producer is mid-write.
        // The receiver publishes its head at the end of every batch, so the
        // published head is where the untaken messages start.
        let mut index = crate::lockfree::sync::load_mut(&mut self.head);
        loop {
            let slot = &mut self.buf[index & self.mask];
            if crate::lockfree::sync::load_mut(&mut slot.stamp) != written_stamp(index) {
                break;
            }
            // SAFETY: the stamp says the slot holds an untaken message; we
            // have exclusive access.
            slot.value.with_mut(|p| unsafe { (*p).assume_init_drop() });
            index = index.wrapping_add(1);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn pop_all(rx: &mut InboxReceiver<u64>) -> Vec<u64> {
        let mut v = vec![];
        rx.pop_batch(usize::MAX, |m| v.push(m));
        v
    }

    /// Consumes `producers * per_producer` messages tagged `producer << 32 |
    /// seq`, checking that each producer's arrive in order.
    fn drain_checking_fifo(rx: &mut InboxReceiver<u64>, producers: usize, per_producer: u64) {
        let mut next = vec![0u64; producers];
        let mut total = 0;
        while total < producers as u64 * per_producer {
            total += rx.pop_batch(8, |m| {
                let (p, i) = ((m >> 32) as usize, m & 0xffff_ffff);
                assert_eq!(next[p], i, "FIFO per producer");
                next[p] += 1;
            }) as u64;
        }
        assert_eq!(next, vec![per_producer; producers]);
    }

    #[test]
    fn fifo_full_and_capacity() {
        let (q, mut rx) = inbox(3);
        assert_eq!(q.capacity(), 4);
        for i in 0..4 {
            q.try_push(i).unwrap();
        }
        assert_eq!(q.try_push(9), Err(PushError::Full(9)));
        assert_eq!(pop_all(&mut rx), [0, 1, 2, 3]);
        assert_eq!(q.sent(), 4);
        assert_eq!(q.received(), 4);
        q.try_push(4).unwrap();
        assert_eq!(pop_all(&mut rx), [4]);
    }

    #[test]
    fn close_refuses_and_reports_final_tail() {
        let (q, mut rx) = inbox(4);
        q.try_push(1).unwrap();
        q.try_push(2).unwrap();
        assert_eq!(q.close(), 2);
        assert!(q.is_closed());
        assert_eq!(q.try_push(3), Err(PushError::Closed(3)));
        assert_eq!(q.push_blocking(3), Err(PushError::Closed(3)));
        assert_eq!(pop_all(&mut rx), [1, 2], "messages sent before close stay");
    }

    #[test]
    fn blocked_sender_is_woken_by_consumer() {
        let (q, mut rx) = inbox(1);
        q.try_push(0).unwrap();
        let q2 = q.clone();
        let t = std::thread::spawn(move || q2.push_blocking(1));
        // Wait until the sender is parked (or at least has counted `full`).
        while q.full_count() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(pop_all(&mut rx), [0]);
        t.join().unwrap().unwrap();
        assert_eq!(pop_all(&mut rx), [1]);
        assert_eq!(q.full_count(), 1);
    }

    /// Issue 13: a sender parked on a full inbox waited without a timeout,
    /// so a lost wake-up (as during a switch away from membarrier) parked
    /// it forever. Here the consumer frees the slot without seeing the
    /// waiter (as a handshake that missed it would), so only the sender's
    /// own timed re-check can let it finish.
    #[test]
    fn blocked_sender_recovers_from_a_lost_wakeup() {
        let (q, mut rx) = inbox(1);
        q.try_push(0).unwrap();
        let q2 = q.clone();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let result = q2.push_blocking(1);
            done_tx.send(()).unwrap();
            result
        });
        // The sender registers under the lock and holds it until it waits:
        // once it counts as a waiter and the lock is free, it is parked.
        while q.inbox.wait.count() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Hide the waiter from the consumer, free the slot (no wake-up),
        // then restore the count before the sender can take itself off.
        q.inbox.wait.hidden(|| assert_eq!(pop_all(&mut rx), [0]));
        assert!(
            done_rx.recv_timeout(Duration::from_secs(60)).is_ok(),
            "a sender whose wake-up was lost is still parked after 60 s"
        );
        t.join().unwrap().unwrap();
        assert_eq!(pop_all(&mut rx), [1]);
    }

    #[test]
    fn blocked_sender_is_released_by_close() {
        let (q, _rx) = inbox(1);
        q.try_push(0).unwrap();
        let q2 = q.clone();
        let t = std::thread::spawn(move || q2.push_blocking(7));
        while q.full_count() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        q.close();
        assert_eq!(t.join().unwrap(), Err(PushError::Closed(7)));
    }

    #[test]
    fn many_producers_exact_accounting() {
        const P: u64 = 4;
        const N: u64 = if cfg!(miri) { 300 } else { 50_000 };
        let (q, mut rx) = inbox(16);
        let handles: Vec<_> = (0..P)
            .map(|p| {
                let q = q.clone();
                std::thread::spawn(move || {
                    for i in 0..N {
                        q.push_blocking(p << 32 | i).unwrap();
                    }
                })
            })
            .collect();
        drain_checking_fifo(&mut rx, P as usize, N);
        for h in handles {
            h.join().unwrap();
        }
    }

    #[test]
    fn batch_push_claims_what_fits_in_order() {
        let (q, mut rx) = inbox(8);
        q.try_push(100).unwrap();
        let mut batch: Vec<u64> = (0..10).collect();
        assert_eq!(
            q.try_push_batch(&mut batch).unwrap(),
            7,
            "7 slots were free"
        );
        assert_eq!(batch, [7, 8, 9], "the rest stays, in order");
        assert_eq!(q.try_push_batch(&mut batch).unwrap(), 0);
        assert_eq!(pop_all(&mut rx), [100, 0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(q.try_push_batch(&mut batch).unwrap(), 3);
        assert!(batch.is_empty());
        assert_eq!(pop_all(&mut rx), [7, 8, 9]);
        q.close();
        let mut more = vec![1u64];
        assert_eq!(q.try_push_batch(&mut more), Err(PushError::Closed(())));
        assert_eq!(more, [1]);
    }

    #[test]
    fn blocking_batches_from_many_producers_keep_per_producer_order() {
        const P: u64 = 3;
        const N: u64 = if cfg!(miri) { 300 } else { 30_000 };
        let (q, mut rx) = inbox(16);
        let handles: Vec<_> = (0..P)
            .map(|p| {
                let q = q.clone();
                std::thread::spawn(move || {
                    let mut i = 0;
                    while i < N {
                        let mut batch: Vec<u64> =
                            (i..(i + 37).min(N)).map(|v| p << 32 | v).collect();
                        i = (i + 37).min(N);
                        q.push_batch_blocking(&mut batch, || {}).unwrap();
                        assert!(batch.is_empty());
                    }
                })
            })
            .collect();
        drain_checking_fifo(&mut rx, P as usize, N);
        for h in handles {
            h.join().unwrap();
        }
    }

    /// Where the indices wrap: the claim index (`tail >> 1`) at
    /// 2^(usize::BITS − 1), the head at 2^usize::BITS. On a 32-bit target
    /// the first comes after 2³¹ messages; these starts put both a few
    /// messages away on any target.
    const INDEX_WRAP: usize = usize::MAX >> 1;
    const STARTS: [usize; 4] = [
        INDEX_WRAP - 5,     // the claim index wraps, the head does not
        INDEX_WRAP + 1 - 2, // just past it, from below
        usize::MAX - 5,     // both wrap (the head to 0, the index too)
        usize::MAX / 2 + 3, // the head is past the index's wrap
    ];

    /// Issue 13, defect 7: the claim index has one bit less than the head,
    /// and `index - head` went wrong once the index wrapped: an empty inbox
    /// then reported `Full` for good (`send_to` blocked forever). Failed
    /// before the fix at every start: the first push was refused as full.
    #[test]
    fn push_and_pop_across_the_index_wrap() {
        for start in STARTS {
            let (q, mut rx) = inbox_starting_at::<u64>(4, start);
            let mut next = 0u64;
            let mut expect = 0u64;
            for round in 0..6 {
                // Fill to capacity, check Full, drain: each round crosses
                // slots of a new lap.
                for _ in 0..4 {
                    q.try_push(next).unwrap_or_else(|e| {
                        panic!("start {start:#x} round {round}: push {next} refused: {e:?}")
                    });
                    next += 1;
                }
                assert_eq!(q.try_push(99), Err(PushError::Full(99)), "start {start:#x}");
                let got = pop_all(&mut rx);
                assert_eq!(got, (expect..next).collect::<Vec<_>>(), "start {start:#x}");
                expect = next;
                assert_eq!(q.sent(), q.received(), "start {start:#x}: stats agree");
                assert_eq!(
                    q.received(),
                    start.wrapping_add(next as usize) as u64,
                    "start {start:#x}"
                );
            }
            // Batches claim runs that straddle the wrap, too.
            let mut batch: Vec<u64> = (0..3).collect();
            assert_eq!(q.try_push_batch(&mut batch).unwrap(), 3);
            assert_eq!(pop_all(&mut rx), [0, 1, 2]);
        }
    }

    /// The shutdown balance across the wrap: `close` returns the final tail
    /// in the head's numbering and `drained` becomes true exactly when the
    /// last message is taken; a blocked sender is released by the consumer.
    #[test]
    fn close_and_drain_across_the_index_wrap() {
        for start in STARTS {
            let (q, mut rx) = inbox_starting_at::<u64>(2, start);
            q.try_push(1).unwrap();
            rx.pop_batch(1, drop);
            q.try_push(2).unwrap();
            q.try_push(3).unwrap();
            let q2 = q.clone();
            let t = std::thread::spawn(move || q2.push_blocking(4));
            while q.full_count() == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(pop_all(&mut rx), [2, 3]);
            t.join().unwrap().unwrap();
            let fin = q.close();
            assert_eq!(fin, start.wrapping_add(4) as u64, "start {start:#x}");
            assert!(!q.drained(fin), "one message is still queued");
            assert_eq!(pop_all(&mut rx), [4]);
            assert!(q.drained(fin), "start {start:#x}");
        }
    }

    /// Dropping an inbox across the wrap drops exactly the untaken messages.
    #[test]
    fn drop_releases_untaken_messages_across_the_wrap() {
        let item = Arc::new(());
        let (q, mut rx) = inbox_starting_at(4, INDEX_WRAP - 1);
        for _ in 0..4 {
            q.try_push(item.clone()).unwrap();
        }
        rx.pop_batch(1, drop);
        assert_eq!(Arc::strong_count(&item), 4);
        drop((q, rx));
        assert_eq!(Arc::strong_count(&item), 1);
    }

    #[test]
    fn drop_releases_untaken_messages() {
        let item = Arc::new(());
        let (q, mut rx) = inbox(4);
        for _ in 0..3 {
            q.try_push(item.clone()).unwrap();
        }
        rx.pop_batch(1, drop);
        assert_eq!(Arc::strong_count(&item), 3);
        drop((q, rx));
        assert_eq!(Arc::strong_count(&item), 1);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::lockfree::sync::{thread, Arc};

    /// Two producers push one message each while the consumer pops
    /// concurrently: each message arrives exactly once.
    #[test]
    fn mpsc_exactly_once() {
        loom::model(|| {
            let (q, mut rx) = inbox(2);
            let producers: Vec<_> = (0..2u32)
                .map(|p| {
                    let q = q.clone();
                    thread::spawn(move || q.try_push(p).is_ok())
                })
                .collect();
            let mut got = vec![];
            rx.pop_batch(2, |m| got.push(m));
            for p in producers {
                assert!(p.join().unwrap(), "two messages fit two slots");
            }
            rx.pop_batch(2, |m| got.push(m));
            got.sort();
            assert_eq!(got, [0, 1]);
        });
    }

    /// A push into a full 1-slot inbox is refused with the message, and a
    /// push racing the consumer's pop either lands or is refused, never lost.
    #[test]
    fn full_hands_back_and_slot_is_reused() {
        loom::model(|| {
            let (q, mut rx) = inbox(1);
            q.try_push(0u32).unwrap();
            assert_eq!(q.try_push(9), Err(PushError::Full(9)));
            let q2 = q.clone();
            let t = thread::spawn(move || q2.try_push(1).is_ok());
            let mut got = vec![];
            rx.pop_batch(1, |m| got.push(m));
            let pushed = t.join().unwrap();
            rx.pop_batch(1, |m| got.push(m));
            assert_eq!(got, if pushed { vec![0, 1] } else { vec![0] });
        });
    }

    /// A sender blocked on a full inbox is woken when the consumer frees the
    /// slot: if the wake-up could be lost, the sender would wait forever and
    /// loom would report a deadlock at the join.
    #[test]
    fn blocked_sender_wakes() {
        loom::model(|| {
            let (q, mut rx) = inbox(1);
            q.try_push(0u32).unwrap();
            let q2 = q.clone();
            let t = thread::spawn(move || q2.push_blocking(1).unwrap());
            let mut got = vec![];
            rx.pop_batch(1, |m| got.push(m));
            t.join().unwrap();
            rx.pop_batch(1, |m| got.push(m));
            assert_eq!(got, [0, 1]);
        });
    }

    /// Two producers and the consumer across the claim index's wrap (the
    /// index one bit narrower than the head): each message arrives once and
    /// the free-space arithmetic never reports a drained inbox full.
    #[test]
    fn mpsc_across_the_index_wrap() {
        loom::model(|| {
            let (q, mut rx) = inbox_starting_at(2, (usize::MAX >> 1) - 1);
            q.try_push(7u32).unwrap();
            let producers: Vec<_> = (0..2u32)
                .map(|p| {
                    let q = q.clone();
                    thread::spawn(move || q.try_push(p).is_ok())
                })
                .collect();
            let mut got = vec![];
            rx.pop_batch(2, |m| got.push(m));
            let pushed = producers
                .into_iter()
                .map(|p| p.join().unwrap())
                .filter(|&ok| ok)
                .count();
            rx.pop_batch(3, |m| got.push(m));
            assert_eq!(got.len(), 1 + pushed);
            assert!(pushed >= 1, "one slot was free throughout");
            let fin = q.close();
            assert!(q.drained(fin));
        });
    }

    /// Close races a push: the push either lands before the final tail (and
    /// is drained) or is refused; nothing is lost or duplicated.
    #[test]
    fn close_races_push() {
        loom::model(|| {
            let (q, mut rx) = inbox(2);
            let q2 = q.clone();
            let t = thread::spawn(move || q2.try_push(5u32).is_ok());
            let final_tail = q.close();
            let pushed = t.join().unwrap();
            assert_eq!(final_tail == 1, pushed);
            let mut got = vec![];
            rx.pop_batch(2, |m| got.push(m));
            assert_eq!(got.len() as u64, final_tail);
        });
    }
}
