//! The consuming side of a [`Ring`](super::Ring).

use std::sync::atomic::Ordering::{Acquire, Release};

use super::Ring;
use crate::lockfree::prefetch::prefetch_read;
use crate::lockfree::sync::Arc;

/// The most cache lines the consumer keeps requested ahead of `head`.
const PREFETCH_LINES: usize = 64;

/// Reads from a ring. Owned by exactly one thread at a time.
///
/// Aligned to 128 bytes (a line pair, as `CachePadded`), so that nothing
/// another thread writes shares a line with the indices it updates on
/// every batch.
#[repr(align(128))]
pub(crate) struct Consumer<T> {
    ring: Arc<Ring<T>>,
    /// Next index to read.
    head: usize,
    /// Last seen published `tail`: `head..tail_cache` are ready.
    tail_cache: usize,
    /// The slots before this index (from `head` on) have had their lines
    /// requested already.
    prefetched: usize,
}

/// Stores the consumer's head when a batch ends, also when the callback
/// panics, so slots already taken are released exactly once.
struct Commit<'a, T> {
    ring: &'a Ring<T>,
    head: &'a mut usize,
}

impl<T> Drop for Commit<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.ring.head.store(*self.head, Release);
    }
}

impl<T> Consumer<T> {
    pub(super) fn new(ring: Arc<Ring<T>>) -> Self {
        Consumer {
            ring,
            head: 0,
            tail_cache: 0,
            prefetched: 0,
        }
    }

    /// The shared ring (for statistics).
    #[cfg(test)]
    pub(crate) fn ring(&self) -> &Ring<T> {
        &self.ring
    }

    /// Another handle on the shared ring (for statistics and quiescence).
    pub(crate) fn shared_ring(&self) -> Arc<Ring<T>> {
        self.ring.clone()
    }

    /// Messages taken from the ring so far (wrapping like the ring's
    /// indices): what an ask's answer waits for.
    #[inline]
    pub(crate) fn taken(&self) -> u64 {
        self.head as u64
    }

    /// Takes up to `max` (any value, `usize::MAX` included) published
    /// messages in FIFO order and passes each to `f`. Reloads the producer's `tail` (one acquire load) only when the
    /// cached view holds fewer than `max`, and stores the head once (release)
    /// when the batch ends.
    #[inline]
    pub(crate) fn pop_batch(&mut self, max: usize, mut f: impl FnMut(T)) -> usize {
        let mut ready = self.tail_cache.wrapping_sub(self.head);
        if ready < max {
            self.tail_cache = self.ring.tail.load(Acquire);
            ready = self.tail_cache.wrapping_sub(self.head);
        }
        let n = ready.min(max);
        if n == 0 {
            return 0;
        }
        let end = self.head.wrapping_add(n);
        // Saturating: any `max` is a valid batch size (issue 13: `2 * max`
        // overflowed above `usize::MAX / 2`).
        self.prefetch(ready.min(max.saturating_mul(2)));
        let commit = Commit {
            ring: &self.ring,
            head: &mut self.head,
        };
        while *commit.head != end {
            let i = *commit.head;
            // SAFETY: `i` is below the published tail (acquired), so the
            // slot holds an initialized value that nobody else reads;
            // advancing `head` before calling `f` means the value is moved
            // out exactly once even if `f` panics.
            let value = commit
                .ring
                .slot(i)
                .with(|p| unsafe { (*p).assume_init_read() });
            *commit.head = i.wrapping_add(1);
            f(value);
        }
        drop(commit);
        n
    }

    /// Asks for the lines of the next `ahead` slots (published ones: an
    /// unpublished line is the producer's to write) that were not asked for
    /// yet, up to [`PREFETCH_LINES`], so their transfers from the
    /// producer's core overlap each other and the handling of the current
    /// batch. `pop_batch` keeps two batches requested: this one and the
    /// next (measured best against one, three or four, PERFORMANCE.md).
    #[inline]
    fn prefetch(&mut self, ahead: usize) {
        let size = std::mem::size_of::<T>();
        if size == 0 {
            return;
        }
        let per_line = (64 / size).max(1);
        let to = ahead.min(PREFETCH_LINES * per_line);
        let done = self.prefetched.wrapping_sub(self.head);
        let from = if done <= to { done } else { 0 };
        if from >= to {
            return;
        }
        // Steps of at most 64 bytes touch every line of the range; the last
        // slot covers a line the steps end short of (unaligned start).
        for off in (from..to).step_by(per_line) {
            prefetch_read(self.ring.slot(self.head.wrapping_add(off)));
        }
        prefetch_read(self.ring.slot(self.head.wrapping_add(to - 1)));
        self.prefetched = self.head.wrapping_add(to);
    }

    /// Takes the next message if `ready` accepts it (the ask answer lanes:
    /// an answer waits until its answerer's earlier messages are taken,
    /// and the ones behind it, from the same answerer, wait with it).
    #[inline]
    pub(crate) fn pop_if(&mut self, ready: impl FnOnce(&T) -> bool) -> Option<T> {
        if self.tail_cache == self.head {
            self.tail_cache = self.ring.tail.load(Acquire);
            if self.tail_cache == self.head {
                return None;
            }
        }
        let slot = self.ring.slot(self.head);
        // SAFETY: `head` is below the published tail (acquired), so the
        // slot holds an initialized value that only this consumer reads.
        if !slot.with(|p| ready(unsafe { (*p).assume_init_ref() })) {
            return None;
        }
        // SAFETY: as above; `head` moves past the slot right after, so the
        // value is moved out exactly once.
        let value = slot.with(|p| unsafe { (*p).assume_init_read() });
        self.head = self.head.wrapping_add(1);
        self.ring.head.store(self.head, Release);
        Some(value)
    }

    /// Takes one message.
    #[cfg(test)]
    pub(crate) fn pop(&mut self) -> Option<T> {
        let mut out = None;
        self.pop_batch(1, |v| out = Some(v));
        out
    }

    /// Whether a message is published and not yet taken (one acquire load
    /// of `tail` when the cached view is empty).
    #[inline]
    pub(crate) fn has_pending(&mut self) -> bool {
        if self.tail_cache != self.head {
            return true;
        }
        prefetch_read(self.ring.slot(self.head));
        self.tail_cache = self.ring.tail.load(Acquire);
        self.tail_cache != self.head
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::super::ring;

    /// Issue 13: `pop_batch` with a `max` above `usize::MAX / 2` overflowed
    /// computing the prefetch window (a panic in debug builds).
    #[test]
    fn any_batch_size_pops_what_is_there() {
        for max in [usize::MAX / 2 + 1, usize::MAX - 1, usize::MAX] {
            let (mut p, mut c) = ring::<u64>(8);
            for i in 0..5 {
                p.push(i).unwrap();
            }
            let mut got = vec![];
            assert_eq!(c.pop_batch(max, |v| got.push(v)), 5);
            assert_eq!(got, [0, 1, 2, 3, 4]);
            assert_eq!(c.pop_batch(max, |v| got.push(v)), 0);
        }
    }

    #[test]
    fn pop_if_takes_only_what_is_ready_in_order() {
        let (mut p, mut c) = ring::<u64>(4);
        assert_eq!(c.pop_if(|_| true), None, "empty");
        p.try_stage(1).unwrap();
        assert_eq!(c.pop_if(|_| true), None, "staged is not published");
        p.try_stage(2).unwrap();
        p.publish();
        assert_eq!(c.pop_if(|&v| v > 1), None, "the head is not ready");
        assert_eq!(c.pop_if(|&v| v == 1), Some(1));
        assert_eq!(c.pop_if(|_| true), Some(2));
        assert_eq!(c.taken(), 2);
        assert_eq!(c.ring().received(), 2);
        for i in 3..7 {
            p.push(i).unwrap();
        }
        assert_eq!(p.push(9), Err(9), "full: four published, none taken");
        assert_eq!(c.pop_if(|_| true), Some(3));
        p.push(9).unwrap();
    }
}
