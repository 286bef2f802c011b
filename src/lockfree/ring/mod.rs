//! The bounded single-producer single-consumer ring that connects one worker
//! to another.
//!
//! One [`Ring`] per ordered pair of workers: an array of bare message slots
//! and two indices, each on its own cache line and each written by one side
//! only (Lamport's queue, as in rtrb). Both sides batch:
//! - The producer ([`Producer`]) writes messages into slots without making
//!   them visible ([`Producer::try_stage`]); [`Producer::publish`] then
//!   stores `tail` once (release) for everything staged.
//! - The consumer ([`Consumer`]) keeps a cached copy of `tail`, reloads it
//!   only when the cached view runs short of a batch, takes what is there,
//!   and publishes its `head` once per batch ([`Consumer::pop_batch`]).
//!
//! The producer keeps a cached copy of `head` and touches that line only
//! when its cached view says the ring is full. So the consumer never reads a
//! slot the producer may still be writing, and slots are dense: eight `u64`
//! messages per line move from one core to the other per transfer (no
//! per-slot stamp halves that density, as a FastForward-style ring would).
//! Indices are free-running
//! `usize` counters (slot = index & mask); `head` doubles as the pair's
//! `received` statistic. The sender-side statistics of a pair (`sent`,
//! `full`, `overflowed`) are the mesh's business and live there
//! (`crate::mesh::pair`), not here.

mod consumer;
mod producer;

pub(crate) use consumer::Consumer;
pub(crate) use producer::Producer;

use std::mem::MaybeUninit;
use std::sync::atomic::Ordering::Acquire;

use crossbeam_utils::CachePadded;

use crate::lockfree::sync::{load_mut, Arc, AtomicUsize, UnsafeCell};

/// The slots and the two published indices, shared by a [`Producer`] and a
/// [`Consumer`].
pub(crate) struct Ring<T> {
    /// Next index the consumer reads. Written by the consumer only, once
    /// per batch; read by the producer when its cached copy says full.
    head: CachePadded<AtomicUsize>,
    /// One past the last published index. Written by the producer only,
    /// once per publish; read by the consumer when its cached copy runs
    /// short.
    tail: CachePadded<AtomicUsize>,
    mask: usize,
    buf: Box<[UnsafeCell<MaybeUninit<T>>]>,
}

// SAFETY: the ring moves `T`s from the producer's thread to the consumer's;
// each slot is accessed by one side at a time, handed over by the
// release/acquire pairs on `tail` (to the consumer) and on `head` (back to
// the producer). `T: Send` is all that needs.
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: as above; shared access never hands out `&T` to both sides.
unsafe impl<T: Send> Sync for Ring<T> {}

/// Creates a ring with room for `capacity` messages, rounded up to a power of
/// two (at least 1).
pub(crate) fn ring<T>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let capacity = capacity.max(1).next_power_of_two();
    let buf = (0..capacity)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect();
    let ring = Arc::new(Ring {
        head: CachePadded::new(AtomicUsize::new(0)),
        tail: CachePadded::new(AtomicUsize::new(0)),
        mask: capacity - 1,
        buf,
    });
    (Producer::new(ring.clone()), Consumer::new(ring))
}

impl<T> Ring<T> {
    /// The number of slots.
    pub(crate) fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Messages the consumer has taken so far (a statistic).
    pub(crate) fn received(&self) -> u64 {
        self.head.load(Acquire) as u64
    }

    /// The slot of free-running index `i`.
    #[inline]
    fn slot(&self, i: usize) -> &UnsafeCell<MaybeUninit<T>> {
        // `mask` keeps the index in bounds (the bounds check stays; walking
        // the run as slices instead measured no faster).
        &self.buf[i & self.mask]
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // Both sides are gone (they hold the `Arc`), and the producer
        // published everything it staged when it was dropped, so the
        // undelivered messages are exactly `head..tail`.
        let head = load_mut(&mut self.head);
        let tail = load_mut(&mut self.tail);
        let mask = self.mask;
        let mut i = head;
        while i != tail {
            // SAFETY: index `i` was published and, being at or past `head`,
            // not taken; we have exclusive access (`&mut`).
            self.buf[i & mask].with_mut(|p| unsafe { (*p).assume_init_drop() });
            i = i.wrapping_add(1);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize as StdAtomicUsize;
    use std::sync::Arc as StdArc;

    #[test]
    fn capacity_rounds_up() {
        let (p, _c) = ring::<u8>(3);
        assert_eq!(p.capacity(), 4);
        let (p, _c) = ring::<u8>(0);
        assert_eq!(p.capacity(), 1);
    }

    #[test]
    fn push_pop_fifo_and_full() {
        let (mut p, mut c) = ring(4);
        for i in 0..4 {
            p.push(i).unwrap();
        }
        assert_eq!(p.push(99), Err(99), "a full ring hands the value back");
        let mut got = vec![];
        assert_eq!(c.pop_batch(3, |v| got.push(v)), 3);
        assert_eq!(got, [0, 1, 2]);
        p.push(4).unwrap();
        p.push(5).unwrap();
        assert_eq!(c.pop_batch(10, |v| got.push(v)), 3);
        assert_eq!(got, [0, 1, 2, 3, 4, 5]);
        assert_eq!(c.pop(), None);
    }

    #[test]
    fn staged_messages_are_invisible_until_published() {
        let (mut p, mut c) = ring(8);
        p.try_stage(1).unwrap();
        p.try_stage(2).unwrap();
        assert_eq!(p.staged(), 2);
        assert!(!c.has_pending());
        assert!(p.publish());
        assert!(!p.publish(), "nothing new to publish");
        assert!(c.has_pending());
        assert_eq!(c.pop(), Some(1));
        assert_eq!(c.pop(), Some(2));
    }

    #[test]
    fn staged_values_can_be_changed_until_published() {
        let (mut p, mut c) = ring(4);
        p.push(1).unwrap();
        p.try_stage(2).unwrap();
        p.try_stage(3).unwrap();
        assert_eq!(
            p.for_each_staged(|v| *v *= 10),
            2,
            "the published one is not touched"
        );
        p.publish();
        assert_eq!(p.for_each_staged(|_| unreachable!()), 0);
        let mut got = vec![];
        assert_eq!(c.pop_batch(8, |v| got.push(v)), 3);
        p.try_stage(4).unwrap();
        p.for_each_staged(|v| *v += 1);
        p.publish();
        c.pop_batch(8, |v| got.push(v));
        assert_eq!(got, [1, 20, 30, 5]);
    }

    #[test]
    fn indices_wrap_many_times() {
        const N: u32 = if cfg!(miri) { 300 } else { 10_000 };
        let (mut p, mut c) = ring(2);
        for i in 0..N {
            p.push(i).unwrap();
            assert_eq!(c.pop(), Some(i));
        }
        assert_eq!(c.ring().received(), u64::from(N));
    }

    #[derive(Debug)]
    struct Tracked(StdArc<StdAtomicUsize>);
    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[test]
    fn undelivered_and_staged_messages_are_dropped_once() {
        let drops = StdArc::new(StdAtomicUsize::new(0));
        {
            let (mut p, mut c) = ring(8);
            for _ in 0..5 {
                p.push(Tracked(drops.clone())).unwrap();
            }
            p.try_stage(Tracked(drops.clone())).unwrap(); // staged, unpublished
            drop(c.pop()); // one delivered and dropped by us
            assert_eq!(drops.load(std::sync::atomic::Ordering::Relaxed), 1);
        }
        assert_eq!(drops.load(std::sync::atomic::Ordering::Relaxed), 6);
    }

    #[test]
    fn panicking_callback_commits_what_it_took() {
        let drops = StdArc::new(StdAtomicUsize::new(0));
        let (mut p, mut c) = ring(8);
        for _ in 0..4 {
            p.push(Tracked(drops.clone())).unwrap();
        }
        let mut seen = 0;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            c.pop_batch(4, |_v| {
                seen += 1;
                if seen == 2 {
                    panic!("in the middle of a batch");
                }
            })
        }));
        assert!(r.is_err());
        // Two were taken (and dropped); the other two are still queued.
        assert_eq!(drops.load(std::sync::atomic::Ordering::Relaxed), 2);
        assert_eq!(c.ring().received(), 2);
        assert_eq!(c.pop_batch(8, drop), 2);
        assert_eq!(drops.load(std::sync::atomic::Ordering::Relaxed), 4);
    }

    #[test]
    fn two_threads_exact_fifo() {
        const N: u64 = if cfg!(miri) { 2_000 } else { 200_000 };
        let (mut p, mut c) = ring(64);
        let t = std::thread::spawn(move || {
            let mut i = 0;
            while i < N {
                match p.try_stage(i) {
                    Ok(()) => i += 1,
                    Err(_) => {
                        p.publish();
                        std::hint::spin_loop();
                    }
                }
                if i % 7 == 0 {
                    p.publish();
                }
            }
            p.publish();
        });
        let mut next = 0;
        while next < N {
            c.pop_batch(16, |v| {
                assert_eq!(v, next);
                next += 1;
            });
        }
        t.join().unwrap();
        assert_eq!(c.pop(), None);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::thread;

    /// The producer stages two values, publishes, then tries a third into
    /// the 2-slot ring while the consumer pops concurrently. Every value
    /// arrives once, in order; a refused value is handed back; what is left
    /// is dropped with the ring (loom checks the `Arc`s are all freed).
    #[test]
    fn spsc_fifo_full_and_drop() {
        loom::model(|| {
            let (mut p, mut c) = ring::<Arc<u32>>(2);
            let t = thread::spawn(move || {
                p.try_stage(Arc::new(0)).unwrap();
                p.try_stage(Arc::new(1)).unwrap();
                p.publish();
                let third = match p.try_stage(Arc::new(2)) {
                    Ok(()) => true,
                    Err(back) => {
                        assert_eq!(*back, 2, "a refused value comes back");
                        false
                    }
                };
                p.publish();
                third
            });
            let mut next = 0;
            c.pop_batch(1, |v| {
                assert_eq!(*v, next);
                next += 1;
            });
            let third = t.join().unwrap();
            c.pop_batch(1, |v| {
                assert_eq!(*v, next);
                next += 1;
            });
            // Whatever is still queued is dropped with the ring here.
            let _ = third;
            assert!(next <= 2);
        });
    }

    /// Staged values become visible only with `publish`, all at once, and
    /// the acquire load of `tail` makes the values written before it
    /// visible.
    #[test]
    fn publish_makes_writes_visible() {
        loom::model(|| {
            let (mut p, mut c) = ring::<u32>(4);
            let t = thread::spawn(move || {
                for i in 0..3 {
                    p.try_stage(i).unwrap();
                }
                p.publish();
            });
            let mut seen = vec![];
            c.pop_batch(4, |v| seen.push(v));
            // One publish: the consumer sees nothing or all three.
            assert!(seen.is_empty() || seen == [0, 1, 2], "{seen:?}");
            t.join().unwrap();
            c.pop_batch(4, |v| seen.push(v));
            assert_eq!(seen, [0, 1, 2]);
        });
    }

    /// `stage_from` writes a run that wraps around the end of the buffer
    /// into slots the consumer is releasing concurrently: it moves only
    /// what the acquired head proves free, leaves the rest in the source in
    /// order, and every value arrives once, in order.
    #[test]
    fn stage_from_wraps_into_released_slots() {
        loom::model(|| {
            let (mut p, mut c) = ring::<Arc<u32>>(2);
            p.try_stage(Arc::new(0)).unwrap();
            p.publish();
            let t = thread::spawn(move || {
                let mut src: Vec<Arc<u32>> = (1..4).map(Arc::new).collect();
                let n = p.stage_from(&mut src);
                p.publish();
                // One slot was free for sure; the other only if the
                // consumer had released value 0 already.
                assert!(n == 1 || n == 2, "{n}");
                let rest: Vec<u32> = src.iter().map(|v| **v).collect();
                assert_eq!(rest, (1 + n as u32..4).collect::<Vec<_>>());
                n
            });
            let mut seen = vec![];
            c.pop_batch(2, |v| seen.push(*v));
            let n = t.join().unwrap();
            c.pop_batch(2, |v| seen.push(*v));
            assert_eq!(seen, (0..1 + n as u32).collect::<Vec<_>>());
        });
    }
}
