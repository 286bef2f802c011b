//! The producing side of a [`Ring`](super::Ring).

use std::mem::MaybeUninit;
use std::sync::atomic::Ordering::{Acquire, Release};

use super::Ring;
use crate::lockfree::sync::Arc;

/// Writes into a ring. Owned by exactly one thread at a time.
///
/// Aligned to 128 bytes (a line pair, as `CachePadded`): a worker's
/// producers are written on every send and must not share a line, or an
/// adjacent-line prefetch pair, with another worker's (the pool assembles
/// them on one thread, where small allocations end up side by side).
#[repr(align(128))]
pub(crate) struct Producer<T> {
    ring: Arc<Ring<T>>,
    /// Next index to write (published or only staged).
    tail: usize,
    /// The tail the consumer can see.
    published: usize,
    /// Last seen consumer head: `tail - head_cache` never understates the
    /// number of occupied slots.
    head_cache: usize,
}

impl<T> Producer<T> {
    pub(super) fn new(ring: Arc<Ring<T>>) -> Self {
        Producer {
            ring,
            tail: 0,
            published: 0,
            head_cache: 0,
        }
    }

    /// The ring's capacity.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Writes `value` into the next slot without publishing it; hands it back
    /// when the ring is full. Refreshes the cached head only when the cached
    /// view says full.
    #[inline]
    pub(crate) fn try_stage(&mut self, value: T) -> Result<(), T> {
        if self.tail.wrapping_sub(self.head_cache) == self.ring.capacity() {
            self.head_cache = self.ring.head.load(Acquire);
            if self.tail.wrapping_sub(self.head_cache) == self.ring.capacity() {
                return Err(value);
            }
        }
        // SAFETY: the slot at `tail` is free: the consumer released it (its
        // head, loaded with acquire, is past `tail - capacity`), and the
        // consumer does not read it until `publish` moves `tail` past it.
        self.ring
            .slot(self.tail)
            .with_mut(|p| unsafe { p.write(MaybeUninit::new(value)) });
        self.tail = self.tail.wrapping_add(1);
        Ok(())
    }

    /// Free slots as of the last refresh of the cached head (which
    /// `try_stage` and `stage_from` do when they run short): never more
    /// than there are.
    #[inline]
    pub(crate) fn free(&self) -> usize {
        self.ring.capacity() - self.tail.wrapping_sub(self.head_cache)
    }

    /// Moves messages from the front of `src` into the free slots, in
    /// order, without publishing them; the rest stay in `src` (its capacity
    /// is kept). Returns how many moved. Refreshes the cached head only when
    /// the cached view has less room than `src` needs.
    #[inline]
    pub(crate) fn stage_from(&mut self, src: &mut Vec<T>) -> usize {
        if self.free() < src.len() {
            self.head_cache = self.ring.head.load(Acquire);
        }
        let n = self.free().min(src.len());
        let capacity = self.ring.capacity();
        // The free run may wrap: fill it as two slices of slots, so the
        // copy loop has no per-message masking or bounds check.
        let start = self.tail & self.ring.mask;
        let first = n.min(capacity - start);
        let mut msgs = src.drain(..n);
        for run in [start..start + first, 0..n - first] {
            for (slot, value) in self.ring.buf[run].iter().zip(&mut msgs) {
                // SAFETY: as in `try_stage`: the `n` slots from `tail` on
                // are free (released by the consumer, per the head loaded
                // with acquire) and unpublished, so only this thread
                // touches them.
                slot.with_mut(|p| unsafe { p.write(MaybeUninit::new(value)) });
            }
        }
        drop(msgs);
        self.tail = self.tail.wrapping_add(n);
        n
    }

    /// Messages ever written into the ring (published or staged).
    #[inline]
    pub(crate) fn written(&self) -> u64 {
        self.tail as u64
    }

    /// Calls `f` on every staged, unpublished value, oldest first (the ask
    /// answer lanes tag their answers just before publishing them).
    /// Returns how many there were.
    #[inline]
    pub(crate) fn for_each_staged(&mut self, mut f: impl FnMut(&mut T)) -> usize {
        let mut i = self.published;
        while i != self.tail {
            // SAFETY: slots from `published` to `tail` were written by
            // `try_stage` and are not published yet, so they hold
            // initialized values that only this producer touches.
            self.ring
                .slot(i)
                .with_mut(|p| f(unsafe { (*p).assume_init_mut() }));
            i = i.wrapping_add(1);
        }
        self.tail.wrapping_sub(self.published)
    }

    /// Makes every staged message visible to the consumer with one release
    /// store of `tail`. Returns whether there was anything to publish.
    #[inline]
    pub(crate) fn publish(&mut self) -> bool {
        if self.tail == self.published {
            return false;
        }
        self.ring.tail.store(self.tail, Release);
        self.published = self.tail;
        true
    }

    /// Stages and publishes one message.
    #[cfg(test)]
    pub(crate) fn push(&mut self, value: T) -> Result<(), T> {
        self.try_stage(value)?;
        self.publish();
        Ok(())
    }

    /// Messages staged and not yet published.
    #[cfg(test)]
    pub(crate) fn staged(&self) -> usize {
        self.tail.wrapping_sub(self.published)
    }
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        // Publish what is staged so the ring drops it (the consumer may be
        // gone already; the ring drops head..tail when the last side goes).
        self.publish();
    }
}
