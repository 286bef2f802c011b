//! The user's side of the contract: the [`Worker`] trait and the
//! [`Context`] it is handed.

use std::fmt;
use std::hash::Hash;
use std::time::Duration;

use crate::mesh::Outbound;
use crate::runtime::Reactor;
use crate::{io, Endpoint, SendError, WorkerId};

/// A shard of the application: its state lives here, on one pinned thread,
/// and messages for it arrive in [`handle`](Worker::handle).
///
/// ```
/// use shardpool::prelude::*;
///
/// /// Sums the numbers it receives.
/// #[derive(Default)]
/// struct Sum(u64);
///
/// impl Worker for Sum {
///     type Msg = u64;
///     fn handle(&mut self, n: u64, _ctx: &mut Context<'_, u64>) {
///         self.0 += n;
///     }
/// }
/// ```
pub trait Worker: Send + 'static {
    /// The message type every worker of the pool receives.
    type Msg: Send + 'static;

    /// One message. FIFO per (sender, receiver) pair.
    ///
    /// The loop calls `handle` once per message, so its per-message path
    /// is the hot path. When the common case is small and a rare one is
    /// large (a burst of sends, a rebuild), put the rare one in a method
    /// marked `#[inline(never)]`: `handle` then stays small enough to be
    /// inlined into the loop. The shuffle benchmark measured 8–11 % more
    /// messages per second that way (PERFORMANCE.md).
    fn handle(&mut self, msg: Self::Msg, ctx: &mut Context<'_, Self::Msg>);

    /// Once per loop iteration after a batch, and at least every
    /// `PoolConfig::tick_interval` while idle, also while the worker's own
    /// sends wait in an overflow for a full ring.
    fn tick(&mut self, _ctx: &mut Context<'_, Self::Msg>) {}

    /// On the worker's own pinned thread, before the first message.
    /// [`Pool::start`](crate::Pool::start) returns once every worker's
    /// `on_start` has returned, so what it sets up (a listener, say) is
    /// ready then; if it panics and the worker is not restarted, `start`
    /// fails with [`Error::WorkerPanicked`](crate::Error::WorkerPanicked).
    fn on_start(&mut self, _ctx: &mut Context<'_, Self::Msg>) {}

    /// After the drain at shutdown, before the worker is handed back. Sends
    /// from here return `Err(SendError::Closed(msg))`.
    fn on_stop(&mut self, _ctx: &mut Context<'_, Self::Msg>) {}

    /// A source this worker registered with [`Context::io`] became ready.
    ///
    /// Runs on the worker's thread, between batches of messages: while the
    /// worker is busy, readiness is polled (without blocking) at most every
    /// [`PoolConfig::io_poll_interval`](crate::PoolConfig::io_poll_interval)
    /// and whenever its queues run dry; an idle worker sleeps in the OS
    /// poll and runs this as soon as the source is ready. Readiness is
    /// edge-triggered (mio's): read or write until `WouldBlock`. A panic
    /// here is caught like one in `handle`.
    fn on_io(&mut self, _event: &io::Event, _ctx: &mut Context<'_, Self::Msg>) {}
}

/// What a worker can do from inside its callbacks: learn who it is and send
/// to its peers (itself included) without ever blocking.
pub struct Context<'a, M> {
    pub(crate) out: &'a mut Outbound<M>,
    pub(crate) io: &'a Reactor<M>,
}

impl<M: Send + 'static> Context<'_, M> {
    /// This worker's id.
    #[inline]
    pub fn id(&self) -> WorkerId {
        self.out.id()
    }

    /// The number of workers in the pool.
    #[inline]
    pub fn workers(&self) -> usize {
        self.out.workers()
    }

    /// In `handle`: who sent the message being handled —
    /// `Some(Endpoint::External)` for one from the inbox (any
    /// `PoolSender`), `Some(Endpoint::Worker(id))` for one from worker
    /// `id`'s ring (this worker included) and for this worker's own
    /// [`send_after`](Self::send_after) timers. `None` in `tick`,
    /// `on_start` and `on_stop`.
    ///
    /// Free: the loop knows which queue it is draining and sets this once
    /// per batch, not per message.
    ///
    /// ```
    /// use shardpool::prelude::*;
    ///
    /// /// Answers every message from outside with a ping to worker 1, and
    /// /// counts what worker 1 hears from worker 0.
    /// #[derive(Default)]
    /// struct Echo {
    ///     from_peer: u64,
    /// }
    ///
    /// impl Worker for Echo {
    ///     type Msg = ();
    ///     fn handle(&mut self, _: (), ctx: &mut Context<'_, ()>) {
    ///         match ctx.source() {
    ///             Some(Endpoint::External) => ctx.send_to(WorkerId::from(1), ()).unwrap(),
    ///             Some(Endpoint::Worker(w)) if w == WorkerId::from(0) => self.from_peer += 1,
    ///             other => unreachable!("{other:?}"),
    ///         }
    ///     }
    /// }
    ///
    /// let pool = Pool::start(
    ///     PoolConfig::default().workers(2).affinity(Affinity::None),
    ///     |_| Echo::default(),
    /// )?;
    /// pool.sender().send_to(WorkerId::from(0), ())?;
    /// let workers = pool.shutdown()?;
    /// assert_eq!(workers[1].from_peer, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn source(&self) -> Option<Endpoint> {
        self.out.source
    }

    /// Sends `msg` to `peer` over this worker's ring to it. Never blocks:
    /// when the ring is full the message waits in the pair's overflow and the
    /// loop flushes it, in order. Sending to yourself is allowed.
    ///
    /// Errors: `NoSuchWorker` for an id out of range; `Closed` when `peer`
    /// has failed (from this worker's next loop iteration after the failure
    /// on; a message accepted before that is dropped and counted by the
    /// failed peer), or when called from `on_stop`; `Full` only when
    /// [`PoolConfig::overflow_limit`](crate::PoolConfig::overflow_limit) is
    /// set and the pair's overflow is at the limit. The message is handed
    /// back.
    #[inline(always)]
    pub fn send_to(&mut self, peer: WorkerId, msg: M) -> Result<(), SendError<M>> {
        self.out.send_to(peer.index(), msg)
    }

    /// Sends every message of `batch` to `peer`, in order, as
    /// [`send_to`](Self::send_to) would one by one, but writes as many as
    /// the ring has room for as one run (no per-message checks), the way a
    /// chunk API does. Never blocks; what the ring cannot take waits in the
    /// pair's overflow, in order.
    ///
    /// On success `batch` is empty (its capacity is kept for reuse). On
    /// error the message that failed and every one after it are still in
    /// `batch`, in order, and the error says why (the same cases as
    /// `send_to`: `NoSuchWorker`, `Closed`, `Full` with an
    /// [`overflow_limit`](crate::PoolConfig::overflow_limit)).
    ///
    /// ```
    /// use shardpool::prelude::*;
    ///
    /// /// Worker 0 fans each number out to worker 1 as a run of ten.
    /// #[derive(Default)]
    /// struct Fan {
    ///     out: Vec<u64>,
    ///     sum: u64,
    /// }
    ///
    /// impl Worker for Fan {
    ///     type Msg = u64;
    ///     fn handle(&mut self, n: u64, ctx: &mut Context<'_, u64>) {
    ///         if ctx.id().index() == 0 {
    ///             self.out.extend((0..10).map(|i| n * 10 + i));
    ///             ctx.send_batch(WorkerId::from(1), &mut self.out).unwrap();
    ///             assert!(self.out.is_empty());
    ///         } else {
    ///             self.sum += n;
    ///         }
    ///     }
    /// }
    ///
    /// let pool = Pool::start(
    ///     PoolConfig::default().workers(2).affinity(Affinity::None),
    ///     |_| Fan::default(),
    /// )?;
    /// pool.sender().send_to(WorkerId::from(0), 1)?;
    /// let workers = pool.shutdown()?;
    /// assert_eq!(workers[1].sum, (10..20).sum::<u64>());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn send_batch(&mut self, peer: WorkerId, batch: &mut Vec<M>) -> Result<(), SendError<()>> {
        self.out.send_batch(peer.index(), batch)
    }

    /// Sends `msg` to the worker that owns `key` under the pool's
    /// partitioner (the same worker `PoolSender::worker_for` names).
    #[inline]
    pub fn send_keyed<K: Hash + ?Sized>(&mut self, key: &K, msg: M) -> Result<(), SendError<M>> {
        let peer = self.worker_for(key);
        self.send_to(peer, msg)
    }

    /// The worker that owns `key`.
    #[inline]
    pub fn worker_for<K: Hash + ?Sized>(&self, key: &K) -> WorkerId {
        self.out.worker_for(key)
    }

    /// This worker's own registry: sources registered here (from any
    /// callback) deliver their readiness to this worker's
    /// [`on_io`](Worker::on_io).
    ///
    /// The first call creates the worker's reactor (an epoll instance and
    /// an eventfd that wakes it); from then on the worker sleeps in the OS
    /// poll instead of parking, woken by readiness, by a message or by its
    /// next tick. A worker that never calls this pays nothing for I/O.
    /// [`io::WAKER_TOKEN`] is refused (`ErrorKind::InvalidInput`): the
    /// runtime's waker uses it.
    ///
    /// # Panics
    /// When the OS refuses the epoll instance or the eventfd (out of file
    /// descriptors); caught like any panic of the worker.
    ///
    /// ```
    /// use shardpool::io::{Interest, TcpListener, Token};
    /// use shardpool::prelude::*;
    ///
    /// /// Accepts connections on its own listener and counts them.
    /// #[derive(Default)]
    /// struct Acceptor {
    ///     listener: Option<TcpListener>,
    ///     accepted: usize,
    /// }
    ///
    /// impl Worker for Acceptor {
    ///     type Msg = ();
    ///     fn handle(&mut self, _: (), _ctx: &mut Context<'_, ()>) {}
    ///     fn on_start(&mut self, ctx: &mut Context<'_, ()>) {
    ///         let mut listener = shardpool::io::reuseport_listener("127.0.0.1:0".parse().unwrap()).unwrap();
    ///         ctx.io().register(&mut listener, Token(0), Interest::READABLE).unwrap();
    ///         self.listener = Some(listener);
    ///     }
    ///     fn on_io(&mut self, _event: &shardpool::io::Event, _ctx: &mut Context<'_, ()>) {
    ///         while let Some(Ok(_)) = self.listener.as_ref().map(|l| l.accept()) {
    ///             self.accepted += 1;
    ///         }
    ///     }
    /// }
    ///
    /// let pool = Pool::start(
    ///     PoolConfig::default().workers(1).affinity(Affinity::None),
    ///     |_| Acceptor::default(),
    /// )?;
    /// pool.shutdown()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn io(&self) -> &io::Registry {
        self.io.registry()
    }

    /// Calls [`on_io`](Worker::on_io) again for `token` (with an event that
    /// is readable and writable, and neither closed nor in error) in this
    /// worker's next loop iteration, after its other ready events and its
    /// queues, without waiting for new readiness.
    ///
    /// Readiness is edge-triggered: a source read only part of the way to
    /// `WouldBlock` gets no new event for what it still holds. With this, a
    /// worker can serve each connection a budget per event (say 64 KiB)
    /// and come back for the rest, so one client sending at full speed
    /// does not keep the worker's other connections waiting.
    ///
    /// The worker does not sleep while a token is queued, and polls its
    /// other sources (without blocking) on every iteration meanwhile.
    /// Asking twice for one token before it is delivered delivers it once.
    /// The event may be spurious (the source closed meanwhile, or its token
    /// reused): handle it as any readiness, until `WouldBlock`.
    /// Tokens queued when the worker panics may reach its restarted
    /// successor. No allocation and no system call per request in steady
    /// state; the first request for a token costs two system calls.
    ///
    /// # Panics
    /// As [`io`](Self::io), whose reactor this creates if the worker has
    /// none yet (its descriptors are all taken then, none later).
    ///
    /// ```
    /// use shardpool::io::Token;
    /// use shardpool::prelude::*;
    /// use std::sync::mpsc;
    ///
    /// /// Asks for its token 3 times in a row, with no source registered.
    /// struct Pacer {
    ///     calls: usize,
    ///     done: mpsc::Sender<usize>,
    /// }
    ///
    /// impl Worker for Pacer {
    ///     type Msg = ();
    ///     fn handle(&mut self, _: (), ctx: &mut Context<'_, ()>) {
    ///         ctx.io_again(Token(7));
    ///     }
    ///     fn on_io(&mut self, event: &shardpool::io::Event, ctx: &mut Context<'_, ()>) {
    ///         assert_eq!(event.token(), Token(7));
    ///         assert!(event.is_readable() && event.is_writable());
    ///         self.calls += 1;
    ///         if self.calls < 3 {
    ///             ctx.io_again(Token(7));
    ///         } else {
    ///             self.done.send(self.calls).unwrap();
    ///         }
    ///     }
    /// }
    ///
    /// let (tx, rx) = mpsc::channel();
    /// let pool = Pool::start(
    ///     PoolConfig::default().workers(1).affinity(Affinity::None),
    ///     move |_| Pacer { calls: 0, done: tx.clone() },
    /// )?;
    /// pool.sender().send_to(WorkerId::from(0), ())?;
    /// assert_eq!(rx.recv_timeout(std::time::Duration::from_secs(60))?, 3);
    /// pool.shutdown()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn io_again(&mut self, token: io::Token) {
        self.io.io_again(token);
    }

    /// Sends a clone of `msg` to every worker, itself included, in id order.
    /// Stops at the first failure and hands that worker's copy back.
    pub fn broadcast(&mut self, msg: M) -> Result<(), SendError<M>>
    where
        M: Clone,
    {
        let n = self.workers();
        for peer in 0..n - 1 {
            self.out.send_to(peer, msg.clone())?;
        }
        self.out.send_to(n - 1, msg)
    }

    /// Sends `f(peer)` to every worker, itself included, in id order: a
    /// message built per worker, for message types that are not `Clone`
    /// (for example because they carry a reply handle). Stops at the first
    /// failure and hands that worker's message back; `f` is not called for
    /// the workers after it.
    ///
    /// ```
    /// use shardpool::prelude::*;
    ///
    /// #[derive(Default)]
    /// struct Node {
    ///     heard: Vec<usize>,
    /// }
    ///
    /// impl Worker for Node {
    ///     type Msg = usize;
    ///     fn handle(&mut self, n: usize, ctx: &mut Context<'_, usize>) {
    ///         if ctx.source() == Some(Endpoint::External) {
    ///             // Each worker gets its own index.
    ///             ctx.broadcast_with(|peer| peer.index()).unwrap();
    ///         } else {
    ///             self.heard.push(n);
    ///         }
    ///     }
    /// }
    ///
    /// let pool = Pool::start(
    ///     PoolConfig::default().workers(2).affinity(Affinity::None),
    ///     |_| Node::default(),
    /// )?;
    /// pool.sender().send_to(WorkerId::from(0), 0)?;
    /// let workers = pool.shutdown()?;
    /// assert_eq!(workers[0].heard, [0]);
    /// assert_eq!(workers[1].heard, [1]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn broadcast_with(&mut self, mut f: impl FnMut(WorkerId) -> M) -> Result<(), SendError<M>> {
        for peer in 0..self.workers() {
            self.out.send_to(peer, f(WorkerId::from(peer)))?;
        }
        Ok(())
    }

    /// Delivers `msg` to this worker's own `handle` no sooner than `delay`
    /// from now, with [`source`](Self::source) `Some(Endpoint::Worker(me))`.
    /// Timers with the same deadline arrive in the order they were set.
    ///
    /// Each worker keeps its timers in one heap (no thread or OS timer per
    /// message); the loop hands over the due ones after each drain, and a
    /// parked worker wakes for its earliest one. Timers still pending when
    /// the pool has drained at shutdown are dropped and counted in
    /// [`WorkerStats::timers_dropped`](crate::WorkerStats::timers_dropped),
    /// not waited for: shutdown never waits on a timer. So do the timers of
    /// a worker that fails (panics under `PanicPolicy::Stop`); a restarted
    /// worker keeps them.
    ///
    /// Errors hand the message back: `Closed` from `on_stop`;
    /// `DelayTooLong` when `now + delay` cannot be represented
    /// (`Duration::MAX`, for instance).
    ///
    /// ```
    /// use shardpool::prelude::*;
    /// use std::time::Duration;
    ///
    /// /// Retries each job once, 1 ms later.
    /// #[derive(Default)]
    /// struct Retry {
    ///     retried: Vec<u32>,
    /// }
    ///
    /// impl Worker for Retry {
    ///     type Msg = u32;
    ///     fn handle(&mut self, job: u32, ctx: &mut Context<'_, u32>) {
    ///         if ctx.source() == Some(Endpoint::External) {
    ///             ctx.send_after(Duration::from_millis(1), job).unwrap();
    ///         } else {
    ///             assert_eq!(ctx.source(), Some(Endpoint::Worker(ctx.id())));
    ///             self.retried.push(job);
    ///         }
    ///     }
    /// }
    ///
    /// let pool = Pool::start(
    ///     PoolConfig::default().workers(1).affinity(Affinity::None),
    ///     |_| Retry::default(),
    /// )?;
    /// let tx = pool.sender();
    /// tx.send_to(WorkerId::from(0), 7)?;
    /// while pool.stats().handled() < 2 {
    ///     std::thread::sleep(Duration::from_millis(1));
    /// }
    /// assert_eq!(pool.shutdown()?[0].retried, [7]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_after(&mut self, delay: Duration, msg: M) -> Result<(), SendError<M>> {
        self.out.send_after(delay, msg)
    }
}

impl<M> fmt::Debug for Context<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("id", &self.out.id())
            .field("workers", &self.out.workers())
            .finish_non_exhaustive()
    }
}
