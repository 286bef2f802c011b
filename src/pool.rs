//! [`Pool`] and [`PoolSender`]: starting the workers, reaching them from
//! outside, and stopping them.

use std::hash::Hash;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::mpsc;
use std::thread::JoinHandle;

use crossbeam_utils::CachePadded;

use crate::config::SharedPartitioner;
use crate::lockfree::inbox::{Inbox, PushError};
use crate::lockfree::ring::{self, Producer, Ring};
pub(crate) use crate::lockfree::shutdown::control;
use crate::lockfree::signal::Signal;
use crate::lockfree::sync::{Arc, AtomicBool, AtomicU64, Counter, Mutex};
use crate::mesh::Outbound;
use crate::partitioners::key_hash;
use crate::placement::{self, Slot, Topology};
use crate::runtime::{panic_message, Factory, Inbound, LoopConfig, Runtime, WorkerExit};
use crate::stats::PoolStats;
use crate::{Error, PoolConfig, SendError, Worker, WorkerId};

/// Statistics a worker writes about itself (single writer each).
#[derive(Default)]
pub(crate) struct WorkerCounters {
    pub(crate) handled: Counter,
    pub(crate) ticks: Counter,
    pub(crate) parks: Counter,
    pub(crate) dropped: Counter,
    pub(crate) restarts: Counter,
    /// The last FREEZE epoch this worker acknowledged.
    pub(crate) ack: Counter,
}

/// What the pool, the senders and the other workers know of one worker.
pub(crate) struct WorkerShared<M> {
    pub(crate) signal: CachePadded<Signal>,
    pub(crate) failed: AtomicBool,
    pub(crate) inbox: Arc<Inbox<M>>,
    /// `ring[src][me]` for every `src`, for statistics and quiescence.
    pub(crate) inbound: Box<[Arc<Ring<M>>]>,
    pub(crate) counters: CachePadded<WorkerCounters>,
    pub(crate) panic: Mutex<Option<String>>,
    pub(crate) slot: Slot,
}

/// State shared by the pool, its senders and its workers.
pub(crate) struct Shared<M> {
    pub(crate) workers: Box<[WorkerShared<M>]>,
    pub(crate) control: CachePadded<AtomicU64>,
    /// How many workers have failed so far (each adds one, once).
    pub(crate) failures: CachePadded<AtomicU64>,
    partitioner: SharedPartitioner,
}

impl<M> Shared<M> {
    #[inline]
    pub(crate) fn worker_for(&self, hash: u64) -> WorkerId {
        let n = self.workers.len();
        let shard = self.partitioner.0.shard(hash, n);
        debug_assert!(shard < n, "partitioner returned shard {shard} of {n}");
        WorkerId::from(shard)
    }
}

impl<M> crate::lockfree::shutdown::Channels for Shared<M> {
    fn balanced(&self, finals: &[u64]) -> bool {
        self.workers.iter().zip(finals).all(|(w, &fin)| {
            w.inbox.received() >= fin
                && w.inbound
                    .iter()
                    .all(|ring| ring.received() >= ring.tx.sent.get_acquire())
        })
    }

    fn workers(&self) -> usize {
        self.workers.len()
    }

    fn acked(&self, worker: usize) -> u64 {
        self.workers[worker].counters.ack.get_acquire()
    }

    fn control(&self) -> u64 {
        self.control.load(SeqCst)
    }

    fn set_control(&self, word: u64) {
        self.control.store(word, SeqCst);
        for w in self.workers.iter() {
            w.signal.wake_now();
        }
    }
}

/// A worker thread's report once it has pinned itself, allocated the queues
/// it consumes and built its worker.
struct Setup<M> {
    inbox: Arc<Inbox<M>>,
    /// Producers for `ring[src][me]`, indexed by `src`.
    producers: Vec<Option<Producer<M>>>,
    rings: Vec<Arc<Ring<M>>>,
}

/// Why a worker could not start.
enum StartFailure {
    Pin(usize),
    Panicked(String),
}

/// What a worker thread receives once every worker has reported.
struct Wiring<M> {
    shared: Arc<Shared<M>>,
    /// Producers for `ring[me][dst]`, indexed by `dst`.
    producers: Vec<Producer<M>>,
}

/// A running pool of pinned workers. See the [crate documentation](crate).
///
/// Dropping a pool without [`shutdown`](Pool::shutdown) also drains it,
/// stops and joins its threads, discarding the workers.
pub struct Pool<W: Worker> {
    shared: Arc<Shared<W::Msg>>,
    threads: Vec<JoinHandle<WorkerExit<W>>>,
}

impl<W: Worker> Pool<W> {
    /// Validates `config`, places the workers, and starts one thread per
    /// worker. Each thread pins itself, allocates the queues it consumes,
    /// then runs `factory(id)` — so worker state is first touched on the
    /// worker's own NUMA node — and its loop.
    ///
    /// Returns [`Error::InvalidConfig`] for a bad configuration and
    /// [`Error::WorkerPanicked`] if a factory panicked (the other workers are
    /// then stopped).
    pub fn start<F>(config: PoolConfig, factory: F) -> Result<Pool<W>, Error>
    where
        F: Fn(WorkerId) -> W + Send + Sync + 'static,
    {
        config.validate()?;
        crate::lockfree::barrier::init();
        let topology = Topology::discover();
        let allowed = placement::allowed_cpus();
        let slots = placement::plan(
            &topology,
            &allowed,
            &config.affinity,
            config.numa_fill,
            config.workers,
        )?;
        let n = slots.len();
        tracing::info!(
            asymmetric_barriers = crate::lockfree::barrier::is_asymmetric(),
            "shardpool starting {}",
            placement::Placement::new(&slots)
        );
        let factory = Arc::new(factory);
        let inbox_capacity = config.get_inbox_capacity();
        let ring_capacity = config.get_ring_capacity();
        let loop_config = LoopConfig {
            batch: config.batch_size,
            idle: config.idle,
            tick_interval: config.tick_interval,
            on_panic: config.on_panic,
            inbox_coalesce: crate::runtime::spins_for(config.inbox_coalesce),
        };
        let overflow_limit = config.overflow_limit;

        let (setup_tx, setup_rx) = mpsc::channel::<(usize, Result<Setup<W::Msg>, StartFailure>)>();
        let mut wiring_txs = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        for (me, slot) in slots.iter().copied().enumerate() {
            let (wiring_tx, wiring_rx) = mpsc::channel::<Wiring<W::Msg>>();
            wiring_txs.push(wiring_tx);
            let report = setup_tx.clone();
            let factory = factory.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{}-{me}", config.name))
                .spawn(move || {
                    // One span per worker thread: every event it logs
                    // carries the worker's id and placement.
                    let span = tracing::info_span!(
                        "worker",
                        id = me,
                        cpu = ?slot.cpu,
                        node = ?slot.numa_node
                    );
                    let _entered = span.enter();
                    if let Some(cpu) = slot.cpu {
                        if !placement::pin_current_thread(cpu) {
                            let _ = report.send((me, Err(StartFailure::Pin(cpu))));
                            return WorkerExit {
                                worker: None,
                                panic: None,
                            };
                        }
                    }
                    // Pinned: allocate what this worker consumes here, so it
                    // is first touched on this worker's node.
                    let inbox = Arc::new(Inbox::new(inbox_capacity));
                    let mut producers = Vec::with_capacity(n);
                    let mut consumers = Vec::with_capacity(n);
                    let mut rings = Vec::with_capacity(n);
                    for _src in 0..n {
                        let (p, c) = ring::ring(ring_capacity);
                        rings.push(c.shared_ring());
                        producers.push(Some(p));
                        consumers.push(c);
                    }
                    let built = catch_unwind(AssertUnwindSafe(|| factory(WorkerId::from(me))));
                    let worker = match built {
                        Ok(w) => w,
                        Err(payload) => {
                            let message = panic_message(payload);
                            let _ = report.send((me, Err(StartFailure::Panicked(message))));
                            return WorkerExit {
                                worker: None,
                                panic: None,
                            };
                        }
                    };
                    let setup = Setup {
                        inbox: inbox.clone(),
                        producers,
                        rings,
                    };
                    if report.send((me, Ok(setup))).is_err() {
                        return WorkerExit {
                            worker: None,
                            panic: None,
                        };
                    }
                    drop(report);
                    let Ok(wiring) = wiring_rx.recv() else {
                        // The pool gave up starting: another worker failed.
                        return WorkerExit {
                            worker: None,
                            panic: None,
                        };
                    };
                    tracing::debug!(
                        worker = me,
                        cpu = ?slot.cpu,
                        node = ?slot.numa_node,
                        "worker started"
                    );
                    let out =
                        Outbound::new(me, wiring.producers, wiring.shared.clone(), overflow_limit);
                    let factory: Factory<W> = factory;
                    let inbound = Inbound {
                        inbox,
                        rings: consumers,
                    };
                    Runtime::new(
                        me,
                        worker,
                        out,
                        inbound,
                        wiring.shared,
                        factory,
                        loop_config,
                    )
                    .run()
                });
            match spawned {
                Ok(handle) => threads.push(handle),
                Err(e) => {
                    drop(wiring_txs);
                    drop(setup_tx);
                    for t in threads {
                        let _ = t.join();
                    }
                    return Err(Error::Spawn {
                        worker: WorkerId::from(me),
                        reason: e.to_string(),
                    });
                }
            }
        }
        drop(setup_tx);

        let mut setups: Vec<Option<Setup<W::Msg>>> = (0..n).map(|_| None).collect();
        let mut failure: Option<(usize, StartFailure)> = None;
        for _ in 0..n {
            let Ok((me, result)) = setup_rx.recv() else {
                break;
            };
            match result {
                Ok(setup) => setups[me] = Some(setup),
                Err(f) => {
                    if failure.as_ref().is_none_or(|(w, _)| me < *w) {
                        failure = Some((me, f));
                    }
                }
            }
        }
        if failure.is_none() && setups.iter().any(Option::is_none) {
            failure = Some((
                setups.iter().position(Option::is_none).unwrap_or(0),
                StartFailure::Panicked(String::from("worker thread ended during start")),
            ));
        }
        if let Some((me, f)) = failure {
            drop(wiring_txs);
            for t in threads {
                let _ = t.join();
            }
            let worker = WorkerId::from(me);
            return Err(match f {
                StartFailure::Pin(cpu) => Error::invalid(
                    "affinity",
                    format!("could not pin worker {worker} to CPU {cpu}"),
                ),
                StartFailure::Panicked(message) => Error::WorkerPanicked { worker, message },
            });
        }

        let mut setups: Vec<Setup<W::Msg>> = setups.into_iter().map(Option::unwrap).collect();
        let workers = setups
            .iter()
            .zip(&threads)
            .zip(&slots)
            .map(|((s, t), slot)| WorkerShared {
                signal: CachePadded::new(Signal::new(t.thread().clone())),
                failed: AtomicBool::new(false),
                inbox: s.inbox.clone(),
                inbound: s.rings.clone().into_boxed_slice(),
                counters: CachePadded::new(WorkerCounters::default()),
                panic: Mutex::new(None),
                slot: *slot,
            })
            .collect();
        let shared = Arc::new(Shared {
            workers,
            control: CachePadded::new(AtomicU64::new(control::word(0, control::RUN))),
            failures: CachePadded::new(AtomicU64::new(0)),
            partitioner: config.partitioner.clone(),
        });
        for (me, wiring_tx) in wiring_txs.into_iter().enumerate() {
            let producers = setups
                .iter_mut()
                .map(|s| {
                    s.producers[me]
                        .take()
                        .expect("each producer is handed out once")
                })
                .collect();
            let _ = wiring_tx.send(Wiring {
                shared: shared.clone(),
                producers,
            });
        }
        Ok(Pool { shared, threads })
    }

    /// A handle for sending to the workers from any thread.
    pub fn sender(&self) -> PoolSender<W::Msg> {
        PoolSender {
            shared: self.shared.clone(),
        }
    }

    /// The number of workers.
    pub fn workers(&self) -> usize {
        self.shared.workers.len()
    }

    /// A snapshot of every channel's and every worker's counters.
    pub fn stats(&self) -> PoolStats {
        PoolStats::collect(&self.shared)
    }

    /// Refuses new external sends, drains every inbox, ring and overflow
    /// until the pool is quiescent (workers may keep sending to each other
    /// meanwhile), calls `on_stop`, joins the threads and returns the
    /// workers in id order. Nothing sent before `shutdown` is lost.
    ///
    /// If a worker panicked, returns [`Error::WorkerPanicked`] for the lowest
    /// such id (the rest of the pool is still drained and joined).
    pub fn shutdown(mut self) -> Result<Vec<W>, Error> {
        self.stop()
    }

    fn stop(&mut self) -> Result<Vec<W>, Error> {
        let threads = std::mem::take(&mut self.threads);
        if threads.is_empty() {
            return Ok(Vec::new());
        }
        let finals: Vec<u64> = self
            .shared
            .workers
            .iter()
            .map(|w| w.inbox.close())
            .collect();
        crate::lockfree::shutdown::quiesce(&*self.shared, &finals, |w| threads[w].is_finished());
        let mut workers = Vec::with_capacity(threads.len());
        let mut first_panic = None;
        for (me, t) in threads.into_iter().enumerate() {
            let exit = t.join().unwrap_or_else(|payload| WorkerExit {
                worker: None,
                panic: Some(panic_message(payload)),
            });
            match (exit.worker, exit.panic) {
                (Some(w), None) => workers.push(w),
                (_, panic) => {
                    if first_panic.is_none() {
                        first_panic = Some(Error::WorkerPanicked {
                            worker: WorkerId::from(me),
                            message: panic.unwrap_or_else(|| String::from("worker ended early")),
                        });
                    }
                }
            }
        }
        match first_panic {
            Some(e) => Err(e),
            None => Ok(workers),
        }
    }
}

impl<W: Worker> Drop for Pool<W> {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

impl<W: Worker> std::fmt::Debug for Pool<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("workers", &self.workers())
            .finish_non_exhaustive()
    }
}

/// Sends messages into a pool from threads outside it. Cheap to clone;
/// `Send + Sync`. Every error hands the message back.
pub struct PoolSender<M> {
    shared: Arc<Shared<M>>,
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
    pub fn send_to(&self, worker: WorkerId, msg: M) -> Result<(), SendError<M>> {
        let (w, msg) = self.target(worker, msg)?;
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
    pub fn send_batch(&self, worker: WorkerId, batch: &mut Vec<M>) -> Result<(), SendError<()>> {
        let (w, ()) = self.target(worker, ()).map_err(|e| e.map(|_| ()))?;
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

    /// Whether the pool has begun shutting down (sends now return `Closed`).
    pub fn is_closed(&self) -> bool {
        self.shared
            .workers
            .first()
            .is_none_or(|w| w.inbox.is_closed())
            || self.shared.control.load(SeqCst) != control::word(0, control::RUN)
    }
}
