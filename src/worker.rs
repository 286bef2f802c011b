//! The user's side of the contract: the [`Worker`] trait and the
//! [`Context`] it is handed.

use std::fmt;
use std::hash::Hash;

use crate::mesh::Outbound;
use crate::runtime::Reactor;
use crate::{io, SendError, WorkerId};

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
    fn handle(&mut self, msg: Self::Msg, ctx: &mut Context<'_, Self::Msg>);

    /// Once per loop iteration after a batch, and at least every
    /// `PoolConfig::tick_interval` while idle, also while the worker's own
    /// sends wait in an overflow for a full ring.
    fn tick(&mut self, _ctx: &mut Context<'_, Self::Msg>) {}

    /// On the worker's own pinned thread, before the first message.
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
    /// next tick. A worker that never calls this pays nothing for I/O. Do
    /// not use [`io::WAKER_TOKEN`] as a token.
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
}

impl<M> fmt::Debug for Context<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("id", &self.out.id())
            .field("workers", &self.out.workers())
            .finish_non_exhaustive()
    }
}
