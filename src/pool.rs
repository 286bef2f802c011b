//! [`Pool`]: starting the workers, and stopping them.
//!
//! Starting is placement ([`crate::placement`]) then the per-thread
//! handshake of [`crate::spawn`]; stopping is the quiescence protocol of
//! [`crate::lockfree::shutdown`] run over the registry ([`crate::shared`]),
//! then joining. Sending from outside is [`PoolSender`]'s job
//! ([`crate::sender`]).

use std::thread::JoinHandle;

use crate::lockfree::sync::Arc;
use crate::placement::{self, Topology};
use crate::report::ShutdownReport;
use crate::runtime::{panic_message, WorkerExit};
use crate::sender::PoolSender;
use crate::shared::Shared;
use crate::stats::{MetricsCollector, PoolStats};
use crate::{Error, PoolConfig, Worker, WorkerId};

/// A running pool of pinned workers. See the [crate documentation](crate).
///
/// Dropping a pool without [`shutdown`](Pool::shutdown) also drains it,
/// stops and joins its threads, discarding the workers. Dropped from
/// inside one of its own workers, it does the same on a separate thread
/// (it cannot wait for the worker it runs on) and returns at once.
pub struct Pool<W: Worker> {
    shared: Arc<Shared<W::Msg>>,
    threads: Vec<JoinHandle<WorkerExit<W>>>,
}

impl<W: Worker> Pool<W> {
    /// Validates `config`, places the workers, and starts one thread per
    /// worker. Each thread pins itself, allocates the queues it consumes,
    /// then runs `factory(id)` — so worker state is first touched on the
    /// worker's own NUMA node — then `on_start`, and its loop.
    ///
    /// Returns once every worker's [`on_start`](Worker::on_start) has
    /// returned, so what `on_start` sets up (a listener, say) is ready
    /// when `start` returns. Under [`PanicPolicy::Restart`](crate::PanicPolicy::Restart)
    /// an `on_start` that panics is retried, with the policy's backoff, and
    /// `start` waits for the retries (with a budget that never runs out and
    /// an `on_start` that always panics, it waits for good).
    ///
    /// Returns [`Error::InvalidConfig`] for a bad configuration, and
    /// [`Error::WorkerPanicked`] for the lowest worker whose factory
    /// panicked or that failed during its first start (its `on_start`
    /// panicked and the policy did not restart it, or its restarts ran
    /// out); the other workers are then stopped and joined.
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
        tracing::info!(
            asymmetric_barriers = crate::lockfree::barrier::is_asymmetric(),
            "shardpool starting {}",
            placement::Placement::new(&slots)
        );
        let started = crate::spawn::start(&config, &slots, factory)?;
        let pool = Pool {
            shared: started.shared,
            threads: started.threads,
        };
        if let Err(e) = crate::spawn::first_starts(&started.first_starts, pool.workers()) {
            tracing::error!(error = %e, "a worker failed to start: stopping the pool");
            // Drains, stops and joins the others (see `Drop`).
            drop(pool);
            return Err(e);
        }
        Ok(pool)
    }

    /// A handle for sending to the workers from any thread.
    pub fn sender(&self) -> PoolSender<W::Msg> {
        PoolSender::new(self.shared.clone())
    }

    /// The number of workers.
    pub fn workers(&self) -> usize {
        self.shared.workers.len()
    }

    /// A snapshot of every channel's and every worker's counters.
    pub fn stats(&self) -> PoolStats {
        PoolStats::collect(&self.shared)
    }

    /// A `prometheus-client` collector that exports a fresh snapshot of
    /// this pool's statistics at each scrape (see [`MetricsCollector`]).
    pub fn metrics_collector(&self) -> MetricsCollector {
        MetricsCollector::of(&self.shared)
    }

    /// Refuses new external sends, drains every inbox, ring and overflow
    /// until the pool is quiescent (workers may keep sending to each other
    /// meanwhile), calls `on_stop`, joins the threads and returns the
    /// workers in id order. Nothing sent before `shutdown` is lost.
    ///
    /// If a worker panicked, returns [`Error::WorkerPanicked`] for the lowest
    /// such id (the rest of the pool is still drained and joined, and its
    /// workers dropped: [`shutdown_all`](Pool::shutdown_all) keeps them).
    ///
    /// Called from inside one of this pool's own workers (a worker that
    /// owns its pool), it cannot wait for that worker: the pool is stopped
    /// on a separate thread and this returns
    /// [`Error::ShutdownFromWorker`] at once.
    pub fn shutdown(mut self) -> Result<Vec<W>, Error> {
        self.stop().into_result()
    }

    /// As [`shutdown`](Pool::shutdown), but hands back every worker's
    /// outcome: the healthy workers' state together with the failures
    /// (see [`ShutdownReport`]).
    pub fn shutdown_all(mut self) -> ShutdownReport<W> {
        self.stop()
    }

    fn stop(&mut self) -> ShutdownReport<W> {
        let threads = std::mem::take(&mut self.threads);
        if threads.is_empty() {
            return ShutdownReport {
                workers: Vec::new(),
            };
        }
        let Some(me) = crate::runtime::worker_of(Arc::as_ptr(&self.shared).cast()) else {
            return stop_and_join(&self.shared, threads);
        };
        // Called from worker `me` of this very pool: waiting here would
        // wait for `me` to acknowledge the freeze, which it can only do
        // after this call returns. Stop on another thread instead; `me`
        // takes part in the drain as soon as its callback returns.
        let worker = WorkerId::from(me);
        let n = threads.len();
        tracing::warn!(
            worker = %worker,
            "pool stopped from inside its own worker: stopping it on a separate thread"
        );
        let shared = self.shared.clone();
        let spawned = std::thread::Builder::new()
            .name(String::from("shardpool-stop"))
            .spawn(move || drop(stop_and_join(&shared, threads)));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not spawn the thread that stops the pool");
        }
        ShutdownReport {
            workers: (0..n)
                .map(|_| Err(Error::ShutdownFromWorker { worker }))
                .collect(),
        }
    }
}

/// Closes the inboxes, drives the pool to quiescence, stops and joins
/// every worker thread: each worker's outcome, in id order.
fn stop_and_join<W: Worker>(
    shared: &Shared<W::Msg>,
    threads: Vec<JoinHandle<WorkerExit<W>>>,
) -> ShutdownReport<W> {
    let finals: Vec<u64> = shared.workers.iter().map(|w| w.inbox.close()).collect();
    crate::lockfree::shutdown::quiesce(shared, &finals, |w| threads[w].is_finished());
    let workers = threads
        .into_iter()
        .enumerate()
        .map(|(me, t)| {
            let exit = t.join().unwrap_or_else(|payload| WorkerExit {
                worker: None,
                panic: Some(panic_message(payload)),
            });
            match (exit.worker, exit.panic) {
                (Some(w), None) => Ok(w),
                (_, panic) => Err(Error::WorkerPanicked {
                    worker: WorkerId::from(me),
                    message: panic.unwrap_or_else(|| String::from("worker ended early")),
                }),
            }
        })
        .collect();
    ShutdownReport { workers }
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
