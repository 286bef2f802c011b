//! Starting the workers: one thread per worker that pins itself, allocates
//! the queues it consumes, builds its worker, and — once every worker has
//! reported — receives its wiring (the registry and the producers of the
//! rings it sends into) and runs its loop.
//!
//! Pin first, then allocate: the inbox, the rings a worker consumes (with
//! their pair counters) and the worker's own state are first touched on the
//! worker's own thread, so they land on its NUMA node. The producers of those
//! rings are then handed to the *other* workers, which is why starting takes
//! two steps: each thread reports a [`Setup`] (the halves it does not keep),
//! the pool assembles the registry from all of them, and sends each thread
//! its [`Wiring`]. A [`WorkerBuilder`] is the per-thread half of that
//! handshake, finished on the worker thread (timely's `AllocateBuilder` is
//! the model). Then each worker runs its `on_start` and reports once it has
//! returned (or the worker failed for good trying): [`first_starts`] is
//! where `Pool::start` waits for those reports. The sequence diagram is in
//! `docs/architecture.md` ("Starting a pool").

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread::JoinHandle;

use crossbeam_utils::CachePadded;

use crate::config::PoolConfig;
use crate::lockfree::inbox::{self, InboxSender};
use crate::lockfree::ring::{self, Producer};
use crate::lockfree::signal::Signal;
use crate::lockfree::sync::Arc;
use crate::mesh::pair::PairCounters;
use crate::mesh::Outbound;
use crate::placement::{self, Slot};
use crate::runtime::{
    panic_message, Factory, Inbound, LoopConfig, Runtime, StartReport, WorkerExit,
};
use crate::shared::{InboundPair, Shared, WorkerShared};
use crate::{Error, Worker, WorkerId};

/// What a worker thread reports once it has pinned itself, allocated the
/// queues it consumes and built its worker: the parts other threads use.
struct Setup<M> {
    inbox: InboxSender<M>,
    /// Producers for `ring[src][me]`, indexed by `src`, each taken once by
    /// worker `src`'s wiring.
    producers: Vec<Option<Producer<M>>>,
    /// `src → me` for every `src`, for the registry.
    inbound: Vec<InboundPair<M>>,
}

/// A worker thread's report: its id and its setup, or why it failed.
type Report<M> = (usize, Result<Setup<M>, StartFailure>);

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
    /// The counters of the pairs `me → dst`, indexed by `dst`.
    pairs: Vec<Arc<CachePadded<PairCounters>>>,
}

/// One worker thread's start: everything it needs, sent to the thread, and
/// finished there.
struct WorkerBuilder<W: Worker> {
    me: usize,
    workers: usize,
    slot: Slot,
    inbox_capacity: usize,
    ring_capacity: usize,
    overflow_limit: Option<usize>,
    loop_config: LoopConfig,
    factory: Factory<W>,
    start_report: StartReport,
}

/// A worker built on its thread, waiting for its wiring.
struct Built<W: Worker> {
    worker: W,
    inbound: Inbound<W::Msg>,
}

impl<W: Worker> WorkerBuilder<W> {
    /// The whole life of a worker thread: build, report, wait for the
    /// wiring, run. Returns early (with no worker) when it could not start
    /// or the pool gave up starting.
    fn run(
        self,
        report: mpsc::Sender<Report<W::Msg>>,
        wiring: mpsc::Receiver<Wiring<W::Msg>>,
    ) -> WorkerExit<W> {
        // One span per worker thread: every event it logs carries the
        // worker's id and placement.
        let span = tracing::info_span!(
            "worker",
            id = self.me,
            cpu = ?self.slot.cpu,
            node = ?self.slot.numa_node
        );
        let _entered = span.enter();
        let me = self.me;
        let (built, setup) = match self.build() {
            Ok(b) => b,
            Err(f) => {
                let _ = report.send((me, Err(f)));
                return WorkerExit::not_started();
            }
        };
        if report.send((me, Ok(setup))).is_err() {
            return WorkerExit::not_started();
        }
        drop(report);
        let Ok(wiring) = wiring.recv() else {
            // The pool gave up starting: another worker failed.
            return WorkerExit::not_started();
        };
        tracing::debug!(
            worker = me,
            cpu = ?self.slot.cpu,
            node = ?self.slot.numa_node,
            "worker started"
        );
        self.finish(built, wiring).run()
    }

    /// Pins this thread, allocates the queues the worker consumes, and runs
    /// the factory — in that order, so all of it is first touched on the
    /// worker's node.
    fn build(&self) -> Result<(Built<W>, Setup<W::Msg>), StartFailure> {
        if let Some(cpu) = self.slot.cpu {
            if !placement::pin_current_thread(cpu) {
                return Err(StartFailure::Pin(cpu));
            }
        }
        let (inbox_tx, inbox_rx) = inbox::inbox(self.inbox_capacity);
        let mut producers = Vec::with_capacity(self.workers);
        let mut consumers = Vec::with_capacity(self.workers);
        let mut inbound = Vec::with_capacity(self.workers);
        for _src in 0..self.workers {
            let (p, c) = ring::ring(self.ring_capacity);
            inbound.push(InboundPair {
                ring: c.shared_ring(),
                counters: Arc::new(CachePadded::new(PairCounters::default())),
            });
            producers.push(Some(p));
            consumers.push(c);
        }
        let factory = &self.factory;
        let worker = catch_unwind(AssertUnwindSafe(|| factory(WorkerId::from(self.me))))
            .map_err(|payload| StartFailure::Panicked(panic_message(payload)))?;
        let built = Built {
            worker,
            inbound: Inbound {
                inbox: inbox_rx,
                rings: consumers,
            },
        };
        let setup = Setup {
            inbox: inbox_tx,
            producers,
            inbound,
        };
        Ok((built, setup))
    }

    /// Connects the built worker to its peers: its loop, ready to run.
    fn finish(self, built: Built<W>, wiring: Wiring<W::Msg>) -> Runtime<W> {
        let out = Outbound::new(
            self.me,
            wiring.producers,
            wiring.pairs,
            wiring.shared.clone(),
            self.overflow_limit,
        );
        Runtime::new(
            self.me,
            built.worker,
            out,
            built.inbound,
            wiring.shared,
            self.factory,
            self.loop_config,
        )
        .reports_start_to(self.start_report)
    }
}

/// The running workers: the registry they share and their threads, in id
/// order.
pub(crate) struct Started<W: Worker> {
    pub(crate) shared: Arc<Shared<W::Msg>>,
    pub(crate) threads: Vec<JoinHandle<WorkerExit<W>>>,
    /// Each worker's report of its first start, for [`first_starts`].
    pub(crate) first_starts: mpsc::Receiver<(usize, Option<String>)>,
}

/// Starts one thread per slot and wires the workers together. On any
/// failure (a thread that cannot be spawned or pinned, a factory that
/// panics) the threads started so far are told to give up and joined, and
/// the error names the lowest failing worker.
pub(crate) fn start<W, F>(
    config: &PoolConfig,
    slots: &[Slot],
    factory: F,
) -> Result<Started<W>, Error>
where
    W: Worker,
    F: Fn(WorkerId) -> W + Send + Sync + 'static,
{
    let n = slots.len();
    let factory: Factory<W> = Arc::new(factory);
    let loop_config = LoopConfig::from(config);
    let (setup_tx, setup_rx) = mpsc::channel::<Report<W::Msg>>();
    let (start_tx, start_rx) = mpsc::channel();
    let mut wiring_txs = Vec::with_capacity(n);
    let mut threads = Vec::with_capacity(n);
    for (me, &slot) in slots.iter().enumerate() {
        let (wiring_tx, wiring_rx) = mpsc::channel::<Wiring<W::Msg>>();
        wiring_txs.push(wiring_tx);
        let builder = WorkerBuilder {
            me,
            workers: n,
            slot,
            inbox_capacity: config.get_inbox_capacity(),
            ring_capacity: config.get_ring_capacity(),
            overflow_limit: config.overflow_limit,
            loop_config,
            factory: factory.clone(),
            start_report: start_tx.clone(),
        };
        let report = setup_tx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("{}-{me}", config.name))
            .spawn(move || builder.run(report, wiring_rx));
        match spawned {
            Ok(handle) => threads.push(handle),
            Err(e) => {
                drop(wiring_txs);
                drop(setup_tx);
                join_all(threads);
                return Err(Error::Spawn {
                    worker: WorkerId::from(me),
                    reason: e.to_string(),
                });
            }
        }
    }
    drop(setup_tx);
    drop(start_tx);

    let setups = match collect(&setup_rx, n) {
        Ok(setups) => setups,
        Err((me, f)) => {
            drop(wiring_txs);
            join_all(threads);
            let worker = WorkerId::from(me);
            return Err(match f {
                StartFailure::Pin(cpu) => Error::invalid(
                    "affinity",
                    format!("could not pin worker {worker} to CPU {cpu}"),
                ),
                StartFailure::Panicked(message) => Error::WorkerPanicked { worker, message },
            });
        }
    };
    let shared = Arc::new(registry(&setups, &threads, slots, config));
    wire(setups, &shared, wiring_txs);
    Ok(Started {
        shared,
        threads,
        first_starts: start_rx,
    })
}

/// Waits until each of the `n` workers has ended its first start: its
/// `on_start` returned, or it failed for good trying (its `on_start`
/// panicked and was not restarted, or its restarts ran out). Returns the
/// lowest worker that failed, with its panic message.
pub(crate) fn first_starts(
    reports: &mpsc::Receiver<(usize, Option<String>)>,
    n: usize,
) -> Result<(), Error> {
    let mut reported = vec![false; n];
    let mut failure: Option<(usize, String)> = None;
    for _ in 0..n {
        let Ok((me, panic)) = reports.recv() else {
            break;
        };
        reported[me] = true;
        if let Some(message) = panic {
            if failure.as_ref().is_none_or(|(w, _)| me < *w) {
                failure = Some((me, message));
            }
        }
    }
    if failure.is_none() {
        if let Some(me) = reported.iter().position(|r| !r) {
            failure = Some((me, String::from("worker thread ended during start")));
        }
    }
    match failure {
        None => Ok(()),
        Some((me, message)) => Err(Error::WorkerPanicked {
            worker: WorkerId::from(me),
            message,
        }),
    }
}

/// Waits for every worker's report. Returns the setups in id order, or the
/// lowest failing worker and why.
fn collect<M>(
    rx: &mpsc::Receiver<Report<M>>,
    n: usize,
) -> Result<Vec<Setup<M>>, (usize, StartFailure)> {
    let mut setups: Vec<Option<Setup<M>>> = (0..n).map(|_| None).collect();
    let mut failure: Option<(usize, StartFailure)> = None;
    for _ in 0..n {
        let Ok((me, result)) = rx.recv() else {
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
    if let Some(failure) = failure {
        return Err(failure);
    }
    if let Some(missing) = setups.iter().position(Option::is_none) {
        return Err((
            missing,
            StartFailure::Panicked(String::from("worker thread ended during start")),
        ));
    }
    Ok(setups.into_iter().map(Option::unwrap).collect())
}

/// The registry, from every worker's report.
fn registry<W: Worker>(
    setups: &[Setup<W::Msg>],
    threads: &[JoinHandle<WorkerExit<W>>],
    slots: &[Slot],
    config: &PoolConfig,
) -> Shared<W::Msg> {
    let workers = setups
        .iter()
        .zip(threads)
        .zip(slots)
        .map(|((s, t), slot)| {
            WorkerShared::new(
                Signal::new(t.thread().clone()),
                s.inbox.clone(),
                s.inbound.clone().into_boxed_slice(),
                *slot,
            )
        })
        .collect();
    let mut shared = Shared::new(workers, config.partitioner.clone());
    shared.call_spin = config.call_spin;
    shared
}

/// Sends each worker its wiring: the registry, and the producers and pair
/// counters of the rings it sends into (reported by their consumers).
fn wire<M>(
    mut setups: Vec<Setup<M>>,
    shared: &Arc<Shared<M>>,
    wiring_txs: Vec<mpsc::Sender<Wiring<M>>>,
) {
    for (me, wiring_tx) in wiring_txs.into_iter().enumerate() {
        let producers = setups
            .iter_mut()
            .map(|s| {
                s.producers[me]
                    .take()
                    .expect("each producer is handed out once")
            })
            .collect();
        let pairs = setups
            .iter()
            .map(|s| s.inbound[me].counters.clone())
            .collect();
        let _ = wiring_tx.send(Wiring {
            shared: shared.clone(),
            producers,
            pairs,
        });
    }
}

/// Joins threads that are giving up their start.
fn join_all<T>(threads: Vec<JoinHandle<T>>) {
    for t in threads {
        let _ = t.join();
    }
}
