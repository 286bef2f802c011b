//! The consuming side of a [`Ring`](super::Ring).

use std::sync::atomic::Ordering::{Acquire, Release};

use super::Ring;
use crate::sync::Arc;

/// Reads from a ring. Owned by exactly one thread at a time.
pub(crate) struct Consumer<T> {
    ring: Arc<Ring<T>>,
    /// Next index to read.
    head: usize,
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
        Consumer { ring, head: 0 }
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
    /// `f`: one acquire load of each slot's stamp, on the line that holds
    /// the message, and one release store of the head when the batch ends.
    #[inline]
    pub(crate) fn pop_batch(&mut self, max: usize, mut f: impl FnMut(T)) -> usize {
        if max == 0 || !self.has_pending() {
            return 0;
        }
        let start = self.head;
        let commit = Commit {
            ring: &self.ring,
            head: &mut self.head,
        };
        while commit.head.wrapping_sub(start) < max {
            let i = *commit.head;
            let slot = commit.ring.slot(i);
            if slot.seq.load(Acquire) != i.wrapping_add(1) {
                break;
            }
            // SAFETY: the stamp (acquired) says index `i` is published, so
            // the slot holds an initialized value that nobody else reads;
            // advancing `head` before calling `f` means the value is moved
            // out exactly once even if `f` panics.
            let value = slot.value.with(|p| unsafe { (*p).assume_init_read() });
            *commit.head = i.wrapping_add(1);
            f(value);
        }
        let n = commit.head.wrapping_sub(start);
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

    /// Whether the next message is published (one acquire load of its
    /// slot's stamp).
    #[inline]
    pub(crate) fn has_pending(&self) -> bool {
        self.ring.slot(self.head).seq.load(Acquire) == self.head.wrapping_add(1)
    }
}
