//! A worker's pending `send_after` messages: a min-heap keyed by
//! `(deadline, sequence)`, owned by the worker's thread.
//!
//! One heap per worker, no thread and no OS timer per message: the loop
//! takes the due ones after each drain ([`Timers::pop_due`]) and an idle
//! worker parks no later than the earliest deadline ([`Timers::next_due`]).
//! The sequence number makes messages with the same deadline come out in
//! the order they were scheduled, so FIFO holds for equal deadlines.
//! Adding and taking are `O(log n)`; the loop pays one `is_empty` check per
//! iteration while no timer is pending.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Instant;

/// One scheduled message.
struct Entry<M> {
    due: Instant,
    seq: u64,
    msg: M,
}

impl<M> PartialEq for Entry<M> {
    fn eq(&self, other: &Self) -> bool {
        self.due == other.due && self.seq == other.seq
    }
}

impl<M> Eq for Entry<M> {}

impl<M> PartialOrd for Entry<M> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<M> Ord for Entry<M> {
    /// Reversed, so that `BinaryHeap` (a max-heap) yields the earliest
    /// deadline, and among equal deadlines the first scheduled.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

/// The pending timers of one worker.
pub(crate) struct Timers<M> {
    heap: BinaryHeap<Entry<M>>,
    next_seq: u64,
}

impl<M> Default for Timers<M> {
    fn default() -> Self {
        Timers {
            heap: BinaryHeap::new(),
            next_seq: 0,
        }
    }
}

impl<M> Timers<M> {
    /// Schedules `msg` for `due`.
    pub(crate) fn push(&mut self, due: Instant, msg: M) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Entry { due, seq, msg });
    }

    /// How many timers are pending.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no timer is pending.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The earliest deadline, if any timer is pending.
    #[inline]
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|e| e.due)
    }

    /// The earliest timer, if it is due at `now`.
    #[inline]
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<M> {
        if self.heap.peek()?.due <= now {
            self.heap.pop().map(|e| e.msg)
        } else {
            None
        }
    }

    /// Drops every pending timer. Returns how many there were.
    pub(crate) fn clear(&mut self) -> usize {
        let n = self.heap.len();
        self.heap.drain().for_each(super::drop_contained);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn earliest_first_and_fifo_among_equal_deadlines() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut timers = Timers::default();
        timers.push(t0 + ms(30), "c");
        timers.push(t0 + ms(10), "a1");
        timers.push(t0 + ms(20), "b");
        timers.push(t0 + ms(10), "a2");
        timers.push(t0 + ms(10), "a3");
        assert_eq!(timers.len(), 5);
        assert_eq!(timers.next_due(), Some(t0 + ms(10)));
        assert_eq!(timers.pop_due(t0), None, "nothing due yet");
        let now = t0 + ms(20);
        let mut due = Vec::new();
        while let Some(m) = timers.pop_due(now) {
            due.push(m);
        }
        assert_eq!(due, ["a1", "a2", "a3", "b"]);
        assert_eq!(timers.next_due(), Some(t0 + ms(30)));
        assert_eq!(timers.clear(), 1);
        assert!(timers.is_empty());
        assert_eq!(timers.next_due(), None);
    }
}
