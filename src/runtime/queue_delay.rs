//! How long messages wait in a worker's queues, measured by sampling one
//! message at a time by its index — no timestamp in any message, no clock
//! read per message.
//!
//! Every [`EVERY`] loop iterations, when no sample is in flight, the worker
//! looks at one of its queues (the inbox and the rings from each peer, in
//! turn). If messages wait there, it notes a marker: the queue's `sent`
//! count now and the time. The message at index `sent - 1` is the newest
//! one that had arrived by then; once the queue's `received` count reaches
//! `sent`, that message has been taken, and `now - then` is how long it
//! waited (measured from the marker, so it is a lower bound: the message
//! may have arrived a little before). The check is one comparison of a
//! counter the worker writes itself, once per iteration, while a sample is
//! in flight; a clock read only when a marker is placed or resolved.
//!
//! The result goes into a log2 histogram in the worker's counters
//! (`shared::DelayHistogram`, single writer, relaxed stores), from which a
//! snapshot reads p50, p99 and the maximum. Resolution: one loop iteration
//! (the marker is resolved after the batch that took the message, so the
//! handling of that batch is included) and a factor of two for the
//! percentiles (the bucket's upper edge is reported); the maximum is
//! exact to the iteration.

use std::time::Instant;

use crate::shared::Shared;

/// Iterations between two attempts to place a marker.
const EVERY: u32 = 16;

/// A message being timed: it has been taken once the queue's received
/// count reaches `target`.
struct Marker {
    queue: usize,
    target: u64,
    at: Instant,
}

/// One worker's queue-delay sampler.
pub(super) struct DelaySampler {
    countdown: u32,
    /// The next queue to try: 0 is the inbox, `1 + src` the ring from `src`.
    next: usize,
    marker: Option<Marker>,
}

impl DelaySampler {
    pub(super) fn new() -> Self {
        DelaySampler {
            countdown: EVERY,
            next: 0,
            marker: None,
        }
    }

    /// Called once per loop iteration, after the drain.
    #[inline]
    pub(super) fn after_iteration<M>(&mut self, shared: &Shared<M>, me: usize) {
        match &self.marker {
            Some(m) => {
                if received(shared, me, m.queue) >= m.target {
                    let waited = m.at.elapsed();
                    self.marker = None;
                    let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
                    shared.workers[me].counters.delay.record(nanos);
                }
            }
            None => {
                self.countdown -= 1;
                if self.countdown == 0 {
                    self.countdown = EVERY;
                    self.place(shared, me);
                }
            }
        }
    }

    /// Tries the next queue in turn: a marker if messages wait in it.
    #[cold]
    fn place<M>(&mut self, shared: &Shared<M>, me: usize) {
        let queues = 1 + shared.workers.len();
        let queue = self.next;
        self.next = (self.next + 1) % queues;
        let w = &shared.workers[me];
        let (sent, received) = if queue == 0 {
            (w.inbox.sent(), w.inbox.received())
        } else {
            let pair = &w.inbound[queue - 1];
            (pair.counters.sent.get(), pair.ring.received())
        };
        if sent > received {
            self.marker = Some(Marker {
                queue,
                target: sent,
                at: Instant::now(),
            });
        }
    }
}

fn received<M>(shared: &Shared<M>, me: usize, queue: usize) -> u64 {
    let w = &shared.workers[me];
    if queue == 0 {
        w.inbox.received()
    } else {
        w.inbound[queue - 1].ring.received()
    }
}
