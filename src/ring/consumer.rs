//! The consuming side of a [`Ring`](super::Ring).

use std::sync::atomic::Ordering::{Acquire, Release};

use super::Ring;
use crate::sync::Arc;

/// Reads from a ring. Owned by exactly one thread at a time.
pub(crate) struct Consumer<T> {
    ring: Arc<Ring<T>>,
    /// Next index to read.
    head: usize,
    /// Last seen producer tail: `tail_cache - head` messages are known ready.
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

    /// Takes up to `max` messages in FIFO order and passes each to `f`.
    /// Touches the producer's cache line (one acquire load) only when the
    /// cached tail cannot fill the batch, and stores the head once at the
    /// end.
    #[inline]
    pub(crate) fn pop_batch(&mut self, max: usize, mut f: impl FnMut(T)) -> usize {
        let mut ready = self.tail_cache.wrapping_sub(self.head);
        if ready < max {
            self.tail_cache = self.ring.tail.load(Acquire);
            ready = self.tail_cache.wrapping_sub(self.head);
            if ready == 0 {
                return 0;
            }
        }
        let n = ready.min(max);
        let commit = Commit {
            ring: &self.ring,
            head: &mut self.head,
        };
        for _ in 0..n {
            // SAFETY: index `head` is below the producer's published tail
            // (acquired above), so the slot holds an initialized value that
            // nobody else reads; advancing `head` before calling `f` means
            // the value is moved out exactly once even if `f` panics.
            let value = commit
                .ring
                .slot(*commit.head)
                .with(|p| unsafe { (*p).assume_init_read() });
            *commit.head = commit.head.wrapping_add(1);
            f(value);
        }
        drop(commit);
        n
    }

    /// Takes one message.
    #[cfg(test)]
    pub(crate) fn pop(&mut self) -> Option<T> {
        let mut out = None;
        self.pop_batch(1, |v| out = Some(v));
        out
    }

    /// Whether a message is ready (refreshes the cached tail).
    #[inline]
    pub(crate) fn has_pending(&mut self) -> bool {
        if self.tail_cache != self.head {
            return true;
        }
        self.tail_cache = self.ring.tail.load(Acquire);
        self.tail_cache != self.head
    }
}
