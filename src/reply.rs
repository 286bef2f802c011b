//! Request/response into a pool: [`Reply`], the answering half that travels
//! inside a message, and the calls of [`PoolSender`] that build a message
//! around a fresh `Reply`, send it and wait for the answer — blocking
//! ([`call`](PoolSender::call)) or awaited ([`call_async`](PoolSender::call_async)).
//!
//! The channel is the `oneshot` crate's: sending never blocks (one atomic
//! swap, then an unpark or a waker), and its receiver both blocks a thread
//! and is a `Future` that needs no runtime, so a call works from a plain
//! thread and from tokio, `futures` or smol alike.
//!
//! A call never hangs on a lost answer: a `Reply` dropped unanswered — the
//! handler forgot it, panicked while holding it, its worker failed and
//! dropped the message, the message was still queued when the pool was
//! dropped — closes the channel, and the caller gets [`CallError::NoReply`].
//! A `Reply` that the handler *keeps* (in its state, say) keeps the caller
//! waiting, as it should: it may still be answered.
//!
//! Workers do not call each other this way (a worker must not block, and
//! cannot await): a blocking [`call`](PoolSender::call) made on a worker
//! thread of the same pool panics at once. A worker asks a peer with
//! `Context::ask` (or an ordinary message over the mesh, answered to
//! [`Context::source`](crate::Context) with another): the answer comes
//! back as one of its own messages.
//!
//! [`PoolConfig::call_spin`](crate::PoolConfig::call_spin) applies to the
//! blocking `call` only. An awaited call never spins and never keeps its
//! task runnable: it returns `Pending` and yields its executor thread
//! until the handler's answer wakes it, whatever the setting.

use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::{CallError, PoolSender, WorkerId};

/// The answering half of a call: `Send`, movable into any message and any
/// worker. [`send`](Reply::send) consumes it, so a call is answered at most
/// once; dropping it unanswered ends the call with [`CallError::NoReply`].
///
/// ```
/// use shardpool::prelude::*;
///
/// enum Msg { Add(u64), Total(Reply<u64>) }
///
/// #[derive(Default)]
/// struct Sum(u64);
/// impl Worker for Sum {
///     type Msg = Msg;
///     fn handle(&mut self, msg: Msg, _ctx: &mut Context<'_, Msg>) {
///         match msg {
///             Msg::Add(n) => self.0 += n,
///             Msg::Total(reply) => reply.send(self.0),
///         }
///     }
/// }
///
/// let pool = Pool::start(PoolConfig::default().workers(1).affinity(Affinity::None), |_| Sum::default())?;
/// let tx = pool.sender();
/// let w = WorkerId::from(0);
/// for n in 1..=10 {
///     tx.send_to(w, Msg::Add(n))?;
/// }
/// assert_eq!(tx.call(w, Msg::Total)?, 55);
/// # pool.shutdown()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Answering twice does not compile:
///
/// ```compile_fail
/// fn twice(reply: shardpool::Reply<u32>) {
///     reply.send(1);
///     reply.send(2); // `reply` was moved by the first `send`
/// }
/// ```
pub struct Reply<R> {
    tx: oneshot::Sender<R>,
}

impl<R> Reply<R> {
    /// A `Reply` and the [`Answer`] that receives what it sends, for
    /// requests built by hand — one per worker in
    /// [`broadcast_with`](PoolSender::broadcast_with), say. The `call`s
    /// make their own.
    pub fn channel() -> (Reply<R>, Answer<R>) {
        let (tx, rx) = oneshot::channel();
        (Reply { tx }, Answer { rx })
    }
}

impl<R: Send> Reply<R> {
    /// Answers the call. Never blocks; if the caller is gone (its future
    /// was dropped) the value is dropped.
    pub fn send(self, value: R) {
        let _ = self.tx.send(value);
    }

    /// Whether the caller stopped waiting (its future was dropped), so an
    /// answer would be thrown away: a handler may skip expensive work.
    pub fn is_canceled(&self) -> bool {
        self.tx.is_closed()
    }
}

impl<R> std::fmt::Debug for Reply<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply").finish_non_exhaustive()
    }
}

/// The receiving half of a [`Reply::channel`]: blocks with
/// [`recv`](Answer::recv), or is awaited (it is a `Future` that needs no
/// runtime). Either ends with [`CallError::NoReply`] if the `Reply` was
/// dropped unanswered.
pub struct Answer<R> {
    rx: oneshot::Receiver<R>,
}

impl<R> Answer<R> {
    /// Blocks until the answer arrives, or the `Reply` is dropped.
    pub fn recv(self) -> Result<R, CallError<()>> {
        self.rx.recv().map_err(|_| CallError::NoReply)
    }

    /// The answer if it has arrived; `Ok(None)` while it may still come.
    pub fn try_recv(&self) -> Result<Option<R>, CallError<()>> {
        match self.rx.try_recv() {
            Ok(value) => Ok(Some(value)),
            Err(oneshot::TryRecvError::Empty) => Ok(None),
            Err(oneshot::TryRecvError::Disconnected) => Err(CallError::NoReply),
        }
    }

    /// [`try_recv`](Answer::try_recv) up to `checks` times, a spin-loop
    /// hint between two: the waiting a call with `PoolConfig::call_spin`
    /// does without sleeping.
    fn check(&self, checks: u32) -> Result<Option<R>, CallError<()>> {
        for check in 1..=checks {
            if let Some(value) = self.try_recv()? {
                return Ok(Some(value));
            }
            if check < checks {
                std::hint::spin_loop();
            }
        }
        Ok(None)
    }
}

/// Checks the answer for up to `window` without sleeping
/// (`PoolConfig::call_spin` for a blocking call): `Ok(None)` if it has not
/// come by then.
fn spin_for<R>(answer: &Answer<R>, window: Duration) -> Result<Option<R>, CallError<()>> {
    let start = Instant::now();
    loop {
        // The clock is read once per 64 checks (a check is one load).
        if let Some(value) = answer.check(64)? {
            return Ok(Some(value));
        }
        if start.elapsed() >= window {
            return Ok(None);
        }
    }
}

impl<R> Future for Answer<R> {
    type Output = Result<R, CallError<()>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.map_err(|_| CallError::NoReply))
    }
}

impl<R> std::fmt::Debug for Answer<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer").finish_non_exhaustive()
    }
}

impl<M: Send + 'static> PoolSender<M> {
    /// Request/response: builds the message around a fresh [`Reply`] with
    /// `make`, sends it as [`send_to`](PoolSender::send_to) does (waiting
    /// while the inbox is full), and blocks until the handler answers.
    ///
    /// Errors: [`CallError::Send`] with the message if it could not be sent
    /// (the pool is stopping or stopped, the worker failed, no such worker);
    /// [`CallError::NoReply`] if the `Reply` was dropped unanswered.
    ///
    /// With [`PoolConfig::call_spin`](crate::PoolConfig::call_spin) set,
    /// checks for the answer that long before it sleeps.
    ///
    /// Blocks the calling thread: from async code use
    /// [`call_async`](PoolSender::call_async), and from a worker use
    /// `Context::ask` (see the [module docs](crate::Reply)).
    ///
    /// # Panics
    /// At once, before `make` runs, when called on a worker thread of this
    /// same pool: that worker would wait on its own pool — on itself, if the
    /// call is to it or to a peer that needs it to answer — and a worker
    /// blocked in `call` cannot handle anything, the answer included. The
    /// message names `Context::ask`; the worker's panic policy applies, as
    /// for any panic in `handle`.
    pub fn call<R: Send + 'static>(
        &self,
        worker: WorkerId,
        make: impl FnOnce(Reply<R>) -> M,
    ) -> Result<R, CallError<M>> {
        self.refuse_to_call_from_a_worker();
        let (reply, answer) = Reply::channel();
        self.send_to(worker, make(reply))?;
        let window = self.call_spin();
        if !window.is_zero() {
            if let Some(value) = spin_for(&answer, window).map_err(|_| CallError::NoReply)? {
                return Ok(value);
            }
        }
        answer.recv().map_err(|_| CallError::NoReply)
    }

    /// [`call`](PoolSender::call) the worker that owns `key`.
    ///
    /// # Panics
    /// As [`call`](PoolSender::call), on a worker thread of this same pool.
    pub fn call_keyed<K: Hash + ?Sized, R: Send + 'static>(
        &self,
        key: &K,
        make: impl FnOnce(Reply<R>) -> M,
    ) -> Result<R, CallError<M>> {
        self.call(self.worker_for(key), make)
    }

    /// [`call`](PoolSender::call), awaited instead of blocking: the send
    /// waits as [`send_to_async`](PoolSender::send_to_async) does, then the
    /// answer is awaited (woken by the handler's `send`; no thread blocked,
    /// no polling). `make` runs at once; the message is sent at the first
    /// poll. Dropping the future drops the message if it was not sent yet,
    /// and otherwise makes the handler's answer go nowhere
    /// ([`Reply::is_canceled`] turns true).
    /// [`PoolConfig::call_spin`](crate::PoolConfig::call_spin) does not
    /// apply: a poll that finds no answer returns `Pending` at once and the
    /// task is woken by the answer, so the executor's thread runs its other
    /// tasks or sleeps meanwhile. It does not block, so unlike
    /// [`call`](PoolSender::call) it may be used on any thread.
    ///
    /// ```
    /// use shardpool::prelude::*;
    /// # struct Echo;
    /// # impl Worker for Echo {
    /// #     type Msg = (u32, Reply<u32>);
    /// #     fn handle(&mut self, (n, reply): (u32, Reply<u32>), _: &mut Context<'_, Self::Msg>) {
    /// #         reply.send(n * 2);
    /// #     }
    /// # }
    /// let pool = Pool::start(PoolConfig::default().workers(2).affinity(Affinity::None), |_| Echo)?;
    /// let tx = pool.sender();
    /// let answer = tx.call_keyed_async(&"key", |reply| (21, reply));
    /// // ... `.await` it in async code; here a minimal executor drives it:
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     use std::future::Future;
    /// #     struct T(std::thread::Thread);
    /// #     impl std::task::Wake for T { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
    /// #     let waker = std::sync::Arc::new(T(std::thread::current())).into();
    /// #     let mut cx = std::task::Context::from_waker(&waker);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop {
    /// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
    /// #         std::thread::park();
    /// #     }
    /// # }
    /// assert_eq!(block_on(answer)?, 42);
    /// # pool.shutdown()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call_async<R: Send + 'static>(
        &self,
        worker: WorkerId,
        make: impl FnOnce(Reply<R>) -> M,
    ) -> impl Future<Output = Result<R, CallError<M>>> + Send + 'static {
        let (reply, answer) = Reply::channel();
        let send = self.send_to_async(worker, make(reply));
        async move {
            send.await?;
            answer.await.map_err(|_| CallError::NoReply)
        }
    }

    /// [`call_async`](PoolSender::call_async) to the worker that owns
    /// `key`; the future does not borrow `key`.
    pub fn call_keyed_async<K: Hash + ?Sized, R: Send + 'static>(
        &self,
        key: &K,
        make: impl FnOnce(Reply<R>) -> M,
    ) -> impl Future<Output = Result<R, CallError<M>>> + Send + 'static {
        self.call_async(self.worker_for(key), make)
    }
}
