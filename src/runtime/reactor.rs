//! A worker's own reactor: its `mio::Poll`, the events it polled, and when
//! to poll next.
//!
//! Created lazily, on the worker's thread, the first time the worker asks
//! for [`Context::io`](crate::Context::io): a worker that never does pays
//! nothing (no epoll, no eventfd, no system call, today's futex park).
//! Creating it installs a [`mio::Waker`] (an eventfd on Linux) in the
//! worker's [`Signal`](crate::lockfree::signal::Signal), registered under
//! [`WAKER_TOKEN`](crate::io::WAKER_TOKEN); from then on the worker sleeps in the OS poll instead
//! of the futex, and a producer that finds it asleep there writes the
//! eventfd instead of unparking the thread (decided on the producer's slow
//! path only).
//!
//! When the loop polls readiness:
//! - while busy with messages, without blocking, at most once every
//!   `PoolConfig::io_poll_interval` (one clock read per iteration, one
//!   `epoll_wait` per interval): readiness waits up to that interval, plus
//!   the batch being handled, before its `on_io` runs;
//! - once without blocking each time the queues run dry, and then again
//!   every interval while the worker spins or yields;
//! - blocking, with the timeout of the next tick, as the worker's one sleep.

use std::cell::OnceCell;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Registry, Waker};

use crate::io::WAKER_TOKEN;

use crate::lockfree::sync::Arc;
use crate::shared::Shared;

/// Events taken per `epoll_wait`.
const EVENTS: usize = 1024;

/// One worker's reactor (see the module doc).
pub(crate) struct Reactor<M> {
    shared: Arc<Shared<M>>,
    me: usize,
    poll: OnceCell<Poll>,
    events: Option<Events>,
    /// Events in `events` not yet handed to `on_io`.
    ready: bool,
    interval: Duration,
    /// When a busy worker polls next.
    next_poll: Option<Instant>,
}

impl<M> Reactor<M> {
    pub(crate) fn new(shared: Arc<Shared<M>>, me: usize, interval: Duration) -> Self {
        Reactor {
            shared,
            me,
            poll: OnceCell::new(),
            events: None,
            ready: false,
            interval,
            next_poll: None,
        }
    }

    /// The worker's registry, creating the reactor on first use.
    ///
    /// # Panics
    /// When the OS refuses an epoll instance or an eventfd (out of file
    /// descriptors): the panic is the worker's, caught like any other.
    pub(crate) fn registry(&self) -> &Registry {
        self.poll
            .get_or_init(|| {
                let poll = Poll::new()
                    .unwrap_or_else(|e| panic!("shardpool: cannot create the worker's poll: {e}"));
                let waker = Waker::new(poll.registry(), WAKER_TOKEN).unwrap_or_else(|e| {
                    panic!("shardpool: cannot create the worker's I/O waker: {e}")
                });
                self.shared.workers[self.me]
                    .signal
                    .set_io_waker(Box::new(move || {
                        // Fails only if the eventfd is gone (the worker
                        // exited): nobody is left to wake.
                        let _ = waker.wake();
                    }));
                tracing::debug!(worker = self.me, "reactor created");
                poll
            })
            .registry()
    }

    /// Whether the worker has a reactor (asked for its registry once).
    #[inline]
    pub(crate) fn is_active(&self) -> bool {
        self.poll.get().is_some()
    }

    /// Whether polled events wait for [`Reactor::events`].
    #[inline]
    pub(crate) fn has_ready(&self) -> bool {
        self.ready
    }

    /// Polls without blocking if the busy interval has passed since the
    /// last poll (or `force`). Returns whether events are ready.
    pub(crate) fn poll_if_due(&mut self, now: Instant, force: bool) -> bool {
        if !self.is_active() {
            return false;
        }
        if !force && self.next_poll.is_some_and(|next| now < next) {
            return self.ready;
        }
        self.poll_for(Some(Duration::ZERO));
        // An interval too long for the clock: poll only when the queues run
        // dry (a plain `+` would panic outside any catch_unwind).
        const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
        self.next_poll = now
            .checked_add(self.interval)
            .or_else(|| now.checked_add(NEVER));
        self.ready
    }

    /// The worker's sleep: blocks in the OS poll until readiness, the
    /// waker, or `timeout`.
    pub(crate) fn sleep(&mut self, timeout: Option<Duration>) {
        self.poll_for(timeout);
        self.next_poll = None;
    }

    fn poll_for(&mut self, timeout: Option<Duration>) {
        let Some(poll) = self.poll.get_mut() else {
            return;
        };
        let events = self
            .events
            .get_or_insert_with(|| Events::with_capacity(EVENTS));
        if self.ready {
            // Not dispatched yet: keep them (a second poll would clear them).
            return;
        }
        match poll.poll(events, timeout) {
            Ok(()) => {
                self.ready = events.iter().any(|e| e.token() != WAKER_TOKEN);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::error!(worker = self.me, error = %e, "poll failed");
                // Do not spin on a broken poll: behave like a short sleep.
                std::thread::sleep(
                    timeout
                        .unwrap_or(Duration::from_millis(1))
                        .min(Duration::from_millis(1)),
                );
            }
        }
    }

    /// The polled events for `on_io` (the waker's filtered out). Call
    /// [`Reactor::dispatched`] after.
    pub(crate) fn events(&self) -> impl Iterator<Item = &mio::event::Event> {
        self.events
            .iter()
            .filter(|_| self.ready)
            .flat_map(|events| events.iter())
            .filter(|e| e.token() != WAKER_TOKEN)
    }

    /// The events were handed out: the next poll may overwrite them.
    pub(crate) fn dispatched(&mut self) {
        self.ready = false;
    }
}
