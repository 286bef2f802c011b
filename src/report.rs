//! [`ShutdownReport`]: every worker's outcome of a shutdown, the healthy
//! workers' state next to the failures.

use crate::Error;

/// What [`Pool::shutdown_all`](crate::Pool::shutdown_all) hands back: one
/// entry per worker, in id order — the worker itself if it ran to the end,
/// or why it did not ([`Error::WorkerPanicked`] for a worker that failed).
///
/// [`Pool::shutdown`](crate::Pool::shutdown) returns only the first error
/// when any worker failed, and the healthy workers' state with it is
/// dropped; `shutdown_all` keeps it.
///
/// ```
/// use shardpool::prelude::*;
///
/// #[derive(Default)]
/// struct Sum(u64);
/// impl Worker for Sum {
///     type Msg = u64;
///     fn handle(&mut self, m: u64, _ctx: &mut Context<'_, u64>) {
///         assert!(m != 13, "unlucky");
///         self.0 += m;
///     }
/// }
///
/// let config = PoolConfig::default().workers(2).affinity(Affinity::None);
/// let pool = Pool::start(config, |_| Sum::default())?;
/// let tx = pool.sender();
/// tx.send_to(WorkerId::from(0), 13)?; // worker 0 fails
/// tx.send_to(WorkerId::from(1), 5)?;
/// let report = pool.shutdown_all();
/// assert!(!report.is_clean());
/// assert!(matches!(report.workers[0], Err(Error::WorkerPanicked { .. })));
/// assert_eq!(report.workers[1].as_ref().map(|w| w.0).ok(), Some(5));
/// assert_eq!(report.survivors().count(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct ShutdownReport<W> {
    /// Each worker's outcome, indexed by worker id.
    pub workers: Vec<Result<W, Error>>,
}

impl<W> ShutdownReport<W> {
    /// Whether every worker ran to the end.
    pub fn is_clean(&self) -> bool {
        self.workers.iter().all(Result::is_ok)
    }

    /// The errors, in worker id order.
    pub fn failures(&self) -> impl Iterator<Item = &Error> {
        self.workers.iter().filter_map(|r| r.as_ref().err())
    }

    /// The workers that ran to the end, in id order (ids of failed workers
    /// are skipped).
    pub fn survivors(&self) -> impl Iterator<Item = &W> {
        self.workers.iter().filter_map(|r| r.as_ref().ok())
    }

    /// What [`Pool::shutdown`](crate::Pool::shutdown) returns: every worker
    /// in id order, or the first (lowest id) error.
    pub fn into_result(self) -> Result<Vec<W>, Error> {
        self.workers.into_iter().collect()
    }
}
