//! The example job: counts events and sums values per key, and logs every
//! handled event through the fenced sink.
//!
//! A user of the library writes the same two pieces for their own job: a
//! [`Job`] ([`CountingJob`]: decodes the `"key value"` payload) and a
//! [`JobWorker`] ([`CountingWorker`]: the totals of the keys it owns, its
//! outputs written per partition and lease epoch through a
//! [`FencedFileSink`]). [`run`] puts them behind
//! [`process::run_job`].
//!
//! Idempotence: an event can be handled twice (at-least-once delivery); its
//! stream sequence is unique in the stream, so a sink that stores results
//! keyed by it drops the second copy. The integration test does exactly
//! that over the logs.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use crate::event;
use crate::job::{Delivery, Event, Job, JobWorker, Refusals};
use crate::process::{self, ProcessConfig};
use crate::record::Handled;
use crate::sink::{FencedFileSink, SinkError};
use crate::worker::RunnerStats;
use crate::Error;

/// Decodes `"key value"` payloads ([`event::decode`]); the key picks the
/// worker.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingJob;

/// One counted event: its key and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    /// The key.
    pub key: String,
    /// The value.
    pub value: u64,
}

impl Job for CountingJob {
    type Key = String;
    type Msg = Count;

    fn decode(&self, delivery: &Delivery<'_>) -> Result<(String, Count), String> {
        let (key, value) =
            event::decode(delivery.payload).ok_or_else(|| "not \"key value\"".to_string())?;
        Ok((
            key.to_string(),
            Count {
                key: key.to_string(),
                value,
            },
        ))
    }
}

/// A worker of the counting job.
pub struct CountingWorker {
    process: u32,
    id: usize,
    totals: HashMap<String, (u64, u64)>,
    sum: u64,
    log: Option<FencedFileSink>,
    /// The batch's log lines by (partition, epoch).
    lines: BTreeMap<(u32, u64), String>,
}

impl CountingWorker {
    /// Worker `id` of process `process`; with `log_dir`, every handled
    /// event is written there as a [`Handled`] line through a
    /// [`FencedFileSink`] (with `fsync`, on disk before it is acked).
    pub fn new(process: u32, id: usize, log_dir: Option<PathBuf>, fsync: bool) -> CountingWorker {
        CountingWorker {
            process,
            id,
            totals: HashMap::new(),
            sum: 0,
            log: log_dir.map(|dir| FencedFileSink::new(dir).sync(fsync)),
            lines: BTreeMap::new(),
        }
    }

    /// `(events, sum)` handled for each key this worker owns.
    pub fn totals(&self) -> &HashMap<String, (u64, u64)> {
        &self.totals
    }
}

impl JobWorker for CountingWorker {
    type Msg = Count;

    fn handle(&mut self, event: Event<Count>) {
        let Count { key, value } = event.msg;
        // A replayed event rebuilds state; its output was written when it
        // was handled live.
        if self.log.is_some() && !event.replay {
            Handled::write(
                self.lines
                    .entry((event.partition, event.epoch))
                    .or_default(),
                event.seq,
                event.partition,
                event.epoch,
                &key,
                value,
                self.process,
                self.id,
                event.checked_at_ns,
            );
        }
        self.sum += value;
        let total = self.totals.entry(key).or_default();
        total.0 += 1;
        total.1 += value;
    }

    fn flush(&mut self, refused: &mut Refusals) {
        let Some(log) = &mut self.log else { return };
        // In epoch order, so that a partition lost and claimed again within
        // one batch writes its older epoch first.
        for ((partition, epoch), lines) in std::mem::take(&mut self.lines) {
            match log.write(partition, epoch, lines.as_bytes()) {
                Ok(()) => {}
                Err(SinkError::Stale { .. }) => refused.refuse(partition, epoch),
                Err(e) => {
                    eprintln!(
                        "worker {}: log write for partition {partition} failed ({e}); nakking",
                        self.id
                    );
                    refused.refuse(partition, epoch);
                }
            }
        }
    }
}

/// What one counting worker did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Events handled (a redelivered event counts again).
    pub handled: u64,
    /// Of those, events JetStream had delivered before.
    pub redelivered: u64,
    /// Events not handled because their lease had moved on or passed its
    /// deadline (nakked).
    pub fenced: u64,
    /// Events handled whose output the sink refused (nakked).
    pub refused: u64,
    /// Distinct keys seen.
    pub keys: usize,
    /// Sum of the values handled.
    pub sum: u64,
}

/// What one process of the counting job did.
#[derive(Debug, Clone)]
pub struct ProcessReport {
    /// This process's index.
    pub process: u32,
    /// Each worker's counts, in worker order.
    pub workers: Vec<WorkerReport>,
    /// Every partition this process held at some point, in order.
    pub partitions: Vec<u32>,
    /// Events whose payload was malformed (terminated, not redelivered).
    pub malformed: u64,
    /// From connecting to the end.
    pub elapsed: Duration,
}

impl ProcessReport {
    /// Events handled by all workers.
    pub fn handled(&self) -> u64 {
        self.workers.iter().map(|w| w.handled).sum()
    }
}

impl std::fmt::Display for ProcessReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        writeln!(
            f,
            "process {}: handled {} events in {:.1} s ({:.0}/s); partitions held: {:?}; malformed {}",
            self.process,
            self.handled(),
            secs,
            self.handled() as f64 / secs.max(1e-9),
            self.partitions,
            self.malformed,
        )?;
        for (id, w) in self.workers.iter().enumerate() {
            writeln!(
                f,
                "  worker {id}: {} events ({} redelivered, {} fenced, {} refused by the sink), {} keys, sum {}",
                w.handled, w.redelivered, w.fenced, w.refused, w.keys, w.sum
            )?;
        }
        Ok(())
    }
}

/// Runs one process of the counting job until the stream is done or
/// `stop` resolves; with `fsync`, each log write is on disk before its
/// events are acked. Needs a multi-threaded tokio runtime.
pub async fn run(
    config: ProcessConfig,
    fsync: bool,
    stop: impl Future<Output = ()>,
) -> Result<ProcessReport, Error> {
    let (process, log_dir) = (config.process, config.log_dir.clone());
    let report = process::run_job(
        config,
        CountingJob,
        move |id| CountingWorker::new(process, id.into(), log_dir.clone(), fsync),
        stop,
    )
    .await?;
    let workers = report
        .workers
        .iter()
        .map(|(w, stats): &(CountingWorker, RunnerStats)| WorkerReport {
            handled: stats.handled,
            redelivered: stats.redelivered,
            fenced: stats.fenced,
            refused: stats.refused,
            keys: w.totals.len(),
            sum: w.sum,
        })
        .collect();
    Ok(ProcessReport {
        process: report.process,
        workers,
        partitions: report.partitions,
        malformed: report.malformed,
        elapsed: report.elapsed,
    })
}
