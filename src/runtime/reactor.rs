//! A worker's own reactor: its `mio::Poll`, the events it polled, and when
//! to poll next.
//!
//! Created lazily, on the worker's thread, the first time the worker asks
//! for [`Context::io`](crate::Context::io) (or calls `io_again`): a worker
//! that never does pays nothing (no epoll, no eventfd, no system call,
//! today's futex park). One that does holds five descriptors: its epoll,
//! its eventfd, and the private epoll and socket pair of `io_again`.
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
//!
//! [`Context::io_again`](crate::Context::io_again) queues a token here; the
//! loop hands it to `on_io` after the polled events (and polls without
//! blocking on every iteration while one is queued, so that the other
//! sources are not kept waiting for the busy interval). mio's `Event` has
//! no public constructor, so the event handed over is a real one: a
//! private poll watches one end of a socket pair that always holds an
//! unread byte (readable and writable); re-registering it under the token
//! and polling yields an event with that token, which is cloned into a
//! small cache. Steady state (the same connections asking again): no
//! system call and no allocation per request.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::net::UnixStream;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::io::{Registry, WAKER_TOKEN};

use crate::lockfree::sync::Arc;
use crate::shared::Shared;

/// Events taken per `epoll_wait`.
const EVENTS: usize = 1024;
/// Synthesized events kept for reuse (cleared when full: tokens of closed
/// connections do not pile up).
const AGAIN_CACHE: usize = 4096;

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
    /// Tokens queued by `Context::io_again` (pushed through `&self`:
    /// callbacks hold the reactor shared).
    again: RefCell<Vec<Token>>,
    /// The events being handed out for the tokens taken from `again`.
    again_events: Vec<Event>,
    /// Builds the events of `again_events` (created with the poll, so that
    /// `io_again` needs no descriptor later, when the process may have run
    /// out of them).
    synth: OnceCell<Synth>,
}

/// Makes readable-and-writable events with a chosen token (see the module
/// doc).
struct Synth {
    poll: Poll,
    events: Events,
    /// Registered with `poll`; holds one unread byte, so it is readable and
    /// writable.
    watched: UnixStream,
    /// The end that wrote the byte (kept open: closing it would add
    /// read-closed to the events).
    _peer: UnixStream,
    /// The event made for each token, cloned for each request.
    cache: HashMap<Token, Event>,
}

impl Synth {
    fn new() -> std::io::Result<Synth> {
        let poll = Poll::new()?;
        let (mut watched, mut peer) = UnixStream::pair()?;
        loop {
            match peer.write(&[1]) {
                Ok(1) => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Ok(_) => return Err(std::io::ErrorKind::WriteZero.into()),
                Err(e) => return Err(e),
            }
        }
        poll.registry().register(
            &mut watched,
            Token(0),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        Ok(Synth {
            poll,
            events: Events::with_capacity(4),
            watched,
            _peer: peer,
            cache: HashMap::new(),
        })
    }

    /// A readable and writable event for `token`.
    fn event(&mut self, token: Token) -> std::io::Result<Event> {
        if let Some(event) = self.cache.get(&token) {
            return Ok(event.clone());
        }
        // Re-registering re-arms the edge: the next poll reports the
        // socket's current readiness under the new token.
        self.poll.registry().reregister(
            &mut self.watched,
            token,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        for timeout in [Duration::ZERO, Duration::from_millis(100)] {
            match self.poll.poll(&mut self.events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            let found = self
                .events
                .iter()
                .find(|e| e.token() == token && e.is_readable() && e.is_writable());
            if let Some(event) = found {
                let event = event.clone();
                if self.cache.len() >= AGAIN_CACHE {
                    self.cache.clear();
                }
                self.cache.insert(token, event.clone());
                return Ok(event);
            }
        }
        Err(std::io::Error::other(
            "the socket pair reported no readiness",
        ))
    }
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
            again: RefCell::new(Vec::new()),
            again_events: Vec::new(),
            synth: OnceCell::new(),
        }
    }

    /// The worker's registry, creating the reactor on first use.
    ///
    /// # Panics
    /// When the OS refuses an epoll instance or an eventfd (out of file
    /// descriptors): the panic is the worker's, caught like any other.
    pub(crate) fn registry(&self) -> &Registry {
        Registry::from_mio(self.mio_registry())
    }

    fn mio_registry(&self) -> &mio::Registry {
        self.poll
            .get_or_init(|| {
                let poll = Poll::new()
                    .unwrap_or_else(|e| panic!("shardpool: cannot create the worker's poll: {e}"));
                let waker = Waker::new(poll.registry(), WAKER_TOKEN).unwrap_or_else(|e| {
                    panic!("shardpool: cannot create the worker's I/O waker: {e}")
                });
                let synth = Synth::new().unwrap_or_else(|e| {
                    panic!("shardpool: cannot create the worker's io_again poll: {e}")
                });
                let _ = self.synth.set(synth);
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

    /// Queues `token` for `on_io` in the next loop iteration (creating the
    /// reactor: the loop hands these out only with one).
    pub(crate) fn io_again(&self, token: Token) {
        let _ = self.registry();
        self.again.borrow_mut().push(token);
    }

    /// Whether tokens wait for [`Reactor::take_again`].
    #[inline]
    pub(crate) fn has_again(&self) -> bool {
        !self.again.borrow().is_empty()
    }

    /// Builds the events for the queued tokens (each once), empties the
    /// queue, and returns how many there are: hand them out with
    /// [`Reactor::again_events`]. Tokens queued while they are handed out
    /// wait for the next call.
    ///
    /// # Panics
    /// When the private poll fails (it should not: its socket pair is
    /// always ready): the worker's panic, caught like any other.
    pub(crate) fn take_again(&mut self) -> usize {
        let mut tokens = std::mem::take(self.again.get_mut());
        tokens.sort_unstable();
        tokens.dedup();
        self.again_events.clear();
        let _ = self.registry();
        let synth = self.synth.get_mut().expect("created with the poll");
        for &token in &tokens {
            match synth.event(token) {
                Ok(event) => self.again_events.push(event),
                Err(e) => panic!("shardpool: io_again: {e}"),
            }
        }
        // Give the (emptied) buffer back, unless callbacks queued more
        // meanwhile (they cannot have: `&mut self`).
        tokens.clear();
        let again = self.again.get_mut();
        if again.is_empty() {
            *again = tokens;
        }
        self.again_events.len()
    }

    /// The events built by [`Reactor::take_again`].
    pub(crate) fn again_events(&self) -> &[Event] {
        &self.again_events
    }
}
