//! Sending into a pool from threads outside it: [`PoolSender`], the handle
//! every external thread holds, and [`SendBatch`], keyed sends buffered per
//! worker and handed over in batches.
//!
//! A `PoolSender` is a thin facade over the registry ([`crate::shared`]):
//! it picks the worker's inbox sender, pushes, and rings the worker's bell.
//! The inbox itself (claims, blocking, waking parked senders) is
//! [`crate::lockfree::inbox`]; the async sends' future is
//! [`crate::send_future`], and the request/response calls are in
//! [`crate::reply`].
//!
//! A thread outside the pool that sends many small keyed messages pays, per
//! message, one atomic claim on the target inbox and one wake check. A
//! `SendBatch` keeps one buffer per worker, routes each message with the
//! pool's partitioner into its owner's buffer, and sends a buffer with
//! [`PoolSender::send_batch`] when it is full — one claim and one wake
//! check per batch. Order per (sender, worker) is kept. Messages wait in the
//! buffer until it fills or [`flush`](SendBatch::flush) is called, so flush
//! before you wait for their effect.

use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};

use crate::lockfree::inbox::PushError;
use crate::lockfree::shutdown::control;
use crate::lockfree::sync::Arc;
use crate::partitioners::key_hash;
use crate::send_future::SendToAsync;
use crate::shared::{Shared, WorkerShared};
use crate::stats::{MetricsCollector, PoolStats};
use crate::{SendError, WorkerId};

/// Sends messages into a pool from threads outside it. Cheap to clone;
/// `Send + Sync`. Every error hands the message back.
pub struct PoolSender<M> {
    shared: Arc<Shared<M>>,
}

impl<M> PoolSender<M> {
    pub(crate) fn new(shared: Arc<Shared<M>>) -> Self {
        PoolSender { shared }
    }

    /// `PoolConfig::call_spin`.
    pub(crate) fn call_spin(&self) -> std::time::Duration {
        self.shared.call_spin
    }
}

impl<M> Clone for PoolSender<M> {
    fn clone(&self) -> Self {
        PoolSender {
            shared: self.shared.clone(),
        }
    }
}

impl<M> std::fmt::Debug for PoolSender<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolSender")
            .field("workers", &self.shared.workers.len())
            .finish()
    }
}

impl<M: Send + 'static> PoolSender<M> {
    /// The number of workers.
    pub fn workers(&self) -> usize {
        self.shared.workers.len()
    }

    /// A `prometheus-client` collector that exports a fresh snapshot of
    /// the pool's statistics at each scrape (see [`MetricsCollector`]).
    pub fn metrics_collector(&self) -> MetricsCollector {
        MetricsCollector::of(&self.shared)
    }

    /// A blocking send found `worker`'s inbox full. If this thread is one
    /// of this pool's own workers, waiting could hang for good (the inbox
    /// may be its own, or its owner may be waiting on this worker's), so
    /// panic with a message that names the misuse; the worker's panic
    /// policy then applies, as for any panic in `handle`.
    #[cold]
    fn refuse_to_block_a_worker(&self, worker: WorkerId) {
        if let Some(me) = crate::runtime::worker_of(Arc::as_ptr(&self.shared).cast()) {
            panic!(
                "PoolSender::send_to (or send_batch) from inside worker {me} of the same pool \
                 found worker {worker}'s inbox full: a worker must not block on its own pool \
                 (it could wait for itself); use Context::send_to, or try_send_to"
            );
        }
    }

    /// A blocking call is about to wait for its answer. If this thread is
    /// one of this pool's own workers, it would wait on its own pool (on
    /// itself, if the answer needs it), so panic with a message that names
    /// the way to ask from a worker.
    #[inline]
    pub(crate) fn refuse_to_call_from_a_worker(&self) {
        if let Some(me) = crate::runtime::worker_of(Arc::as_ptr(&self.shared).cast()) {
            call_from_a_worker(me);
        }
    }

    /// A snapshot of every channel's and every worker's counters, the same
    /// as [`Pool::stats`](crate::Pool::stats) — for any holder of a sender
    /// (a service's metrics endpoint, say).
    pub fn stats(&self) -> PoolStats {
        PoolStats::collect(&self.shared)
    }

    fn target<T>(&self, worker: WorkerId, msg: T) -> Result<(&WorkerShared<M>, T), SendError<T>> {
        let Some(w) = self.shared.workers.get(worker.index()) else {
            return Err(SendError::NoSuchWorker(msg));
        };
        if w.failed.load(Relaxed) {
            return Err(SendError::Closed(msg));
        }
        Ok((w, msg))
    }

    /// Sends `msg` to `worker`'s inbox, waiting while it is full (spinning
    /// briefly, then parked until the worker frees a slot). Errors only when
    /// the pool is shutting down or stopped, the worker failed (`Closed`), or
    /// the id is out of range (`NoSuchWorker`).
    ///
    /// # Panics
    /// When called from inside one of this pool's own workers and the inbox
    /// is full: a worker must not wait on its own pool (the inbox may be
    /// its own, and only it can drain it). Use [`Context::send_to`](crate::Context::send_to),
    /// which never blocks, or [`try_send_to`](Self::try_send_to).
    pub fn send_to(&self, worker: WorkerId, msg: M) -> Result<(), SendError<M>> {
        let (w, msg) = self.target(worker, msg)?;
        let msg = match w.inbox.try_push(msg) {
            Ok(()) => {
                w.signal.notify();
                return Ok(());
            }
            Err(PushError::Closed(m)) => return Err(SendError::Closed(m)),
            Err(PushError::Full(m)) => m,
        };
        self.refuse_to_block_a_worker(worker);
        match w.inbox.push_blocking(msg) {
            Ok(()) => {
                w.signal.notify();
                Ok(())
            }
            Err(PushError::Closed(m) | PushError::Full(m)) => Err(SendError::Closed(m)),
        }
    }

    /// Sends `msg` to `worker`'s inbox if there is room now; `Full(msg)`
    /// otherwise. Never blocks.
    pub fn try_send_to(&self, worker: WorkerId, msg: M) -> Result<(), SendError<M>> {
        let (w, msg) = self.target(worker, msg)?;
        match w.inbox.try_push(msg) {
            Ok(()) => {
                w.signal.notify();
                Ok(())
            }
            Err(PushError::Full(m)) => {
                w.inbox.count_full();
                Err(SendError::Full(m))
            }
            Err(PushError::Closed(m)) => Err(SendError::Closed(m)),
        }
    }

    /// Resolves once `msg` is in `worker`'s inbox. While the inbox is full
    /// it waits without blocking the thread, and without timers or polling:
    /// the task's waker waits in the inbox's wait list, beside the threads
    /// blocked in [`send_to`](Self::send_to), and the worker wakes it after
    /// the batch that frees a slot. Works on any executor (tokio,
    /// `futures`, smol, ...). Errors hand the message back as `send_to`'s
    /// do (`Closed`, `NoSuchWorker`).
    ///
    /// The future is lazy: nothing is sent before the first poll, and that
    /// poll costs what [`try_send_to`](Self::try_send_to) does when there is
    /// room. **Cancellation:** dropping the future before it resolves drops
    /// the message unsent (and gives its place in line to the next waiting
    /// sender). **Fairness:** waiting senders are woken in the order they
    /// started waiting, one per freed slot; a woken sender then competes
    /// for the slot with senders arriving just then (which do not queue
    /// behind it), and if it loses it waits again at the front of the line.
    /// A send that had to wait counts once in the inbox's `full`.
    ///
    /// ```
    /// use shardpool::prelude::*;
    /// # #[derive(Default)] struct Sum(u64);
    /// # impl Worker for Sum {
    /// #     type Msg = u64;
    /// #     fn handle(&mut self, n: u64, _: &mut Context<'_, u64>) { self.0 += n; }
    /// # }
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
    /// let pool = Pool::start(
    ///     PoolConfig::default().workers(1).queue_capacity(4).affinity(Affinity::None),
    ///     |_| Sum::default(),
    /// )?;
    /// let tx = pool.sender();
    /// block_on(async {
    ///     for n in 1..=100 {
    ///         tx.send_to_async(WorkerId::from(0), n).await?; // waits when the 4 slots are taken
    ///     }
    ///     Ok::<(), SendError<u64>>(())
    /// })?;
    /// assert_eq!(pool.shutdown()?[0].0, 5050);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_to_async(
        &self,
        worker: WorkerId,
        msg: M,
    ) -> impl Future<Output = Result<(), SendError<M>>> + Send + 'static {
        SendToAsync::new(self.shared.clone(), worker, msg)
    }

    /// [`send_to_async`](Self::send_to_async) to the worker that owns
    /// `key`. The key is hashed at once: the future does not borrow it.
    pub fn send_keyed_async<K: Hash + ?Sized>(
        &self,
        key: &K,
        msg: M,
    ) -> impl Future<Output = Result<(), SendError<M>>> + Send + 'static {
        self.send_to_async(self.worker_for(key), msg)
    }

    /// Sends every message of `batch` to `worker`'s inbox, in order,
    /// claiming as many free slots as there are with one atomic operation and
    /// waking the worker once per claim; waits while the inbox is full (as
    /// [`send_to`](Self::send_to) does). Much cheaper per message than
    /// `send_to` in a loop.
    ///
    /// On success `batch` is empty (its capacity is kept for reuse). On
    /// error the messages not sent are still in `batch`, in order; the
    /// error says why (`Closed`, `NoSuchWorker`).
    ///
    /// ```
    /// use shardpool::prelude::*;
    /// # #[derive(Default)] struct Sum(u64);
    /// # impl Worker for Sum {
    /// #     type Msg = u64;
    /// #     fn handle(&mut self, n: u64, _: &mut Context<'_, u64>) { self.0 += n; }
    /// # }
    /// let pool = Pool::start(PoolConfig::default().workers(1).affinity(Affinity::None), |_| Sum::default())?;
    /// let mut batch: Vec<u64> = (1..=100).collect();
    /// pool.sender().send_batch(WorkerId::from(0), &mut batch)?;
    /// assert!(batch.is_empty());
    /// assert_eq!(pool.shutdown()?[0].0, 5050);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Panics
    /// As [`send_to`](Self::send_to), when called from inside one of this
    /// pool's own workers and the inbox is full.
    pub fn send_batch(&self, worker: WorkerId, batch: &mut Vec<M>) -> Result<(), SendError<()>> {
        let (w, ()) = self.target(worker, ()).map_err(|e| e.map(|_| ()))?;
        match w.inbox.try_push_batch(batch) {
            Err(_) => return Err(SendError::Closed(())),
            Ok(n) if n > 0 => w.signal.notify(),
            Ok(_) => {}
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.refuse_to_block_a_worker(worker);
        w.inbox
            .push_batch_blocking(batch, || w.signal.notify())
            .map_err(|_| SendError::Closed(()))
    }

    /// Moves as many messages from the front of `batch` into `worker`'s inbox
    /// as fit now (one atomic claim), in order; returns how many. Never
    /// blocks; `Ok(0)` means the inbox was full (counted in `full`).
    pub fn try_send_batch(
        &self,
        worker: WorkerId,
        batch: &mut Vec<M>,
    ) -> Result<usize, SendError<()>> {
        let (w, ()) = self.target(worker, ()).map_err(|e| e.map(|_| ()))?;
        match w.inbox.try_push_batch(batch) {
            Ok(0) if !batch.is_empty() => {
                w.inbox.count_full();
                Ok(0)
            }
            Ok(n) => {
                if n > 0 {
                    w.signal.notify();
                }
                Ok(n)
            }
            Err(_) => Err(SendError::Closed(())),
        }
    }

    /// The worker that owns `key` under the pool's partitioner.
    #[inline]
    pub fn worker_for<K: Hash + ?Sized>(&self, key: &K) -> WorkerId {
        self.shared.worker_for(key_hash(key))
    }

    /// [`send_to`](Self::send_to) the worker that owns `key`.
    pub fn send_keyed<K: Hash + ?Sized>(&self, key: &K, msg: M) -> Result<(), SendError<M>> {
        self.send_to(self.worker_for(key), msg)
    }

    /// [`try_send_to`](Self::try_send_to) the worker that owns `key`.
    pub fn try_send_keyed<K: Hash + ?Sized>(&self, key: &K, msg: M) -> Result<(), SendError<M>> {
        self.try_send_to(self.worker_for(key), msg)
    }

    /// Sends a clone of `msg` to every worker in id order (blocking while an
    /// inbox is full). Stops at the first failure and hands that worker's
    /// copy back; the workers before it got theirs.
    pub fn broadcast(&self, msg: M) -> Result<(), SendError<M>>
    where
        M: Clone,
    {
        let n = self.workers();
        for w in 0..n - 1 {
            self.send_to(WorkerId::from(w), msg.clone())?;
        }
        self.send_to(WorkerId::from(n - 1), msg)
    }

    /// Sends `f(id)` to every worker in id order (blocking while an inbox is
    /// full): a message built per worker, for message types that are not
    /// `Clone` (one carrying a [`Reply`](crate::Reply), say). Stops at the
    /// first failure and hands that worker's message back; the workers
    /// before it got theirs, and `f` is not called for the ones after it.
    ///
    /// ```
    /// use shardpool::prelude::*;
    /// use shardpool::Reply;
    ///
    /// struct Count(u64);
    /// impl Worker for Count {
    ///     type Msg = Reply<u64>; // "tell me your count"
    ///     fn handle(&mut self, reply: Reply<u64>, _: &mut Context<'_, Reply<u64>>) {
    ///         reply.send(self.0)
    ///     }
    /// }
    ///
    /// let pool = Pool::start(PoolConfig::default().workers(3).affinity(Affinity::None), |id| {
    ///     Count(10 * id.index() as u64)
    /// })?;
    /// let mut answers = Vec::new();
    /// pool.sender().broadcast_with(|_id| {
    ///     let (reply, answer) = Reply::channel();
    ///     answers.push(answer);
    ///     reply
    /// })?;
    /// let counts: Vec<u64> = answers.into_iter().map(|a| a.recv()).collect::<Result<_, _>>()?;
    /// assert_eq!(counts, [0, 10, 20]);
    /// # pool.shutdown()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn broadcast_with(&self, mut f: impl FnMut(WorkerId) -> M) -> Result<(), SendError<M>> {
        for w in 0..self.workers() {
            let id = WorkerId::from(w);
            self.send_to(id, f(id))?;
        }
        Ok(())
    }

    /// Whether the pool has begun shutting down (sends now return `Closed`).
    pub fn is_closed(&self) -> bool {
        self.shared
            .workers
            .first()
            .is_none_or(|w| w.inbox.is_closed())
            || self.shared.control.load(SeqCst) != control::word(0, control::RUN)
    }
}

/// The panic of [`PoolSender::refuse_to_call_from_a_worker`].
#[cold]
#[inline(never)]
fn call_from_a_worker(me: usize) -> ! {
    panic!(
        "PoolSender::call (or call_keyed) from inside worker {me} of the same pool: a worker \
         must not block waiting on its own pool (it could wait for itself); ask with \
         Context::ask, whose answer comes back as a message"
    );
}

/// Per-worker buffers of outgoing messages from one external thread.
///
/// ```
/// use shardpool::prelude::*;
/// use shardpool::SendBatch;
/// # #[derive(Default)] struct Count(u64);
/// # impl Worker for Count {
/// #     type Msg = u64;
/// #     fn handle(&mut self, _: u64, _: &mut Context<'_, u64>) { self.0 += 1; }
/// # }
/// let pool = Pool::start(PoolConfig::default().workers(2).affinity(Affinity::None), |_| Count::default())?;
/// let mut batch = SendBatch::new(pool.sender(), 64);
/// for key in 0..1000u64 {
///     batch.send_keyed(&key, key)?;
/// }
/// batch.flush()?;                       // send what is still buffered
/// let workers = pool.shutdown()?;
/// assert_eq!(workers.iter().map(|w| w.0).sum::<u64>(), 1000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Dropping a `SendBatch` flushes it (errors are ignored then: call
/// [`flush`](SendBatch::flush) to see them).
pub struct SendBatch<M: Send + 'static> {
    tx: PoolSender<M>,
    buffers: Box<[Vec<M>]>,
    limit: usize,
}

impl<M: Send + 'static> SendBatch<M> {
    /// Buffers of `per_worker` messages (at least 1) for each worker of
    /// `tx`'s pool.
    pub fn new(tx: PoolSender<M>, per_worker: usize) -> Self {
        let limit = per_worker.max(1);
        let buffers = (0..tx.workers())
            .map(|_| Vec::with_capacity(limit))
            .collect();
        SendBatch { tx, buffers, limit }
    }

    /// Buffers `msg` for `worker`; sends that worker's buffer when it is
    /// full (blocking while the inbox is full). On error the unsent messages
    /// stay buffered; `NoSuchWorker` hands `msg` back.
    pub fn send_to(&mut self, worker: WorkerId, msg: M) -> Result<(), SendError<M>> {
        let Some(buffer) = self.buffers.get_mut(worker.index()) else {
            return Err(SendError::NoSuchWorker(msg));
        };
        buffer.push(msg);
        if buffer.len() >= self.limit {
            if let Err(e) = self.tx.send_batch(worker, buffer) {
                // Hand back the newest message; older ones stay buffered.
                let msg = buffer.pop().expect("just pushed");
                return Err(e.map(|()| msg));
            }
        }
        Ok(())
    }

    /// Buffers `msg` for the worker that owns `key`.
    pub fn send_keyed<K: Hash + ?Sized>(&mut self, key: &K, msg: M) -> Result<(), SendError<M>> {
        let worker = self.tx.worker_for(key);
        self.send_to(worker, msg)
    }

    /// Sends every buffered message. On error the unsent ones stay buffered.
    pub fn flush(&mut self) -> Result<(), SendError<()>> {
        for (w, buffer) in self.buffers.iter_mut().enumerate() {
            if !buffer.is_empty() {
                self.tx.send_batch(WorkerId::from(w), buffer)?;
            }
        }
        Ok(())
    }

    /// Messages buffered and not yet sent.
    pub fn buffered(&self) -> usize {
        self.buffers.iter().map(Vec::len).sum()
    }
}

impl<M: Send + 'static> Drop for SendBatch<M> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl<M: Send + 'static> std::fmt::Debug for SendBatch<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendBatch")
            .field("workers", &self.buffers.len())
            .field("per_worker", &self.limit)
            .field("buffered", &self.buffered())
            .finish()
    }
}
