//! The consuming side of a [`Ring`](super::Ring).

use std::sync::atomic::Ordering::{Acquire, Release};

use super::Ring;
use crate::prefetch::prefetch_read;
use crate::sync::Arc;

/// The most cache lines one batch prefetches.
const PREFETCH_LINES: usize = 16;

/// Reads from a ring. Owned by exactly one thread at a time.
pub(crate) struct Consumer<T> {
    ring: Arc<Ring<T>>,
    /// Next index to read.
    head: usize,
    /// Last seen published `tail`: `head..tail_cache` are ready.
    tail_cache: usize,
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

    /// Takes up to `max` published messages in FIFO order and passes each to
    /// `f`. Reloads the producer's `tail` (one acquire load) only when the
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
        self.prefetch(n);
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

    /// Asks for the lines of the next `n` slots at once, so their transfers
    /// from the producer's core overlap (at most [`PREFETCH_LINES`]).
    #[inline]
    fn prefetch(&self, n: usize) {
        let size = std::mem::size_of::<T>();
        if size == 0 {
            return;
        }
        // Steps of at most 64 bytes touch every line of the range; the last
        // slot covers a line the steps end short of (unaligned start).
        let per_line = (64 / size).max(1);
        let mut i = self.head;
        for _ in 0..n.div_ceil(per_line).min(PREFETCH_LINES) {
            prefetch_read(self.ring.slot(i));
            i = i.wrapping_add(per_line);
        }
        if n <= PREFETCH_LINES * per_line {
            prefetch_read(self.ring.slot(self.head.wrapping_add(n - 1)));
        }
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
