//! The pool worker: owns the totals of its keys, logs what it handled, and
//! hands the acks back in batches.
//!
//! An [`Event`] carries its JetStream ack handle. The worker handles a
//! batch of events, then (in `tick`, which the pool runs after every batch)
//! writes the batch's log lines, one write per partition and lease epoch,
//! through the [`FencedFileSink`] and sends the batch's acks to the
//! process's ack task as one `Vec`: one channel operation per batch rather
//! than per event, and a log line is always written before its event is
//! acked. A write the sink refuses (a newer epoch of the partition has
//! written: this process's lease was superseded between handling and
//! writing) turns that write's acks into naks.
//!
//! Idempotence: an event can be handled twice (at-least-once delivery); its
//! stream sequence [`Event::seq`] is unique in the stream, so a sink that
//! stores results keyed by it drops the second copy. The integration test
//! does exactly that over the logs of all processes.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use async_nats::jetstream::AckKind;
use async_nats::Subject;
use shardpool::{Context, Worker, WorkerId};
use tokio::sync::mpsc::UnboundedSender;

use crate::lease::LeaseTable;
use crate::record::{self, Handled};
use crate::sink::{FencedFileSink, SinkError};

/// One event on its way to the worker that owns its key.
pub struct Event {
    /// Stream sequence: unique in the stream, the key for idempotence.
    pub seq: u64,
    /// The partition it came from.
    pub partition: u32,
    /// The lease epoch it was fetched under.
    pub epoch: u64,
    /// How many times JetStream has delivered it (1 = first time).
    pub delivered: i64,
    /// The event's key.
    pub key: String,
    /// The event's value.
    pub value: u64,
    /// The subject its ack (or nak) is published to.
    pub reply: Subject,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("seq", &self.seq)
            .field("partition", &self.partition)
            .field("epoch", &self.epoch)
            .field("delivered", &self.delivered)
            .field("key", &self.key)
            .field("value", &self.value)
            .finish_non_exhaustive()
    }
}

/// What to tell JetStream about one event, once its worker is done with it.
pub struct Done {
    /// The event's ack subject.
    pub reply: Subject,
    /// Its partition (for the in-flight count).
    pub partition: u32,
    /// The lease epoch it was fetched under.
    pub epoch: u64,
    /// `Ack` when handled, `Nak` when fenced (the lease moved on).
    pub kind: AckKind,
}

/// What one worker did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Events handled (a redelivered event counts again).
    pub handled: u64,
    /// Of those, events JetStream had delivered before.
    pub redelivered: u64,
    /// Events not handled because their lease had moved on or passed its
    /// deadline (nakked).
    pub fenced: u64,
    /// Events handled whose output the sink refused (a newer epoch of their
    /// partition had written; nakked).
    pub refused: u64,
    /// Distinct keys seen.
    pub keys: usize,
    /// Sum of the values handled.
    pub sum: u64,
}

/// A worker of one process's pool.
pub struct EventWorker {
    id: usize,
    process: u32,
    totals: HashMap<String, (u64, u64)>,
    report: WorkerReport,
    leases: Arc<LeaseTable>,
    done: Vec<Done>,
    acks: UnboundedSender<Vec<Done>>,
    log: Option<FencedFileSink>,
    /// The batch's log lines by (partition, epoch).
    lines: BTreeMap<(u32, u64), String>,
}

impl EventWorker {
    /// Worker `id` of process `process`; acks go to `acks`; with
    /// `log_dir`, every handled event is written there as a [`Handled`]
    /// line through a [`FencedFileSink`].
    pub fn new(
        id: WorkerId,
        process: u32,
        leases: Arc<LeaseTable>,
        acks: UnboundedSender<Vec<Done>>,
        log_dir: Option<PathBuf>,
    ) -> EventWorker {
        EventWorker {
            id: id.into(),
            process,
            totals: HashMap::new(),
            report: WorkerReport::default(),
            leases,
            done: Vec::new(),
            acks,
            log: log_dir.map(FencedFileSink::new),
            lines: BTreeMap::new(),
        }
    }

    /// What this worker did so far.
    pub fn report(&self) -> WorkerReport {
        WorkerReport {
            keys: self.totals.len(),
            ..self.report.clone()
        }
    }

    /// `(events, sum)` handled for each key this worker owns.
    pub fn totals(&self) -> &HashMap<String, (u64, u64)> {
        &self.totals
    }

    /// Writes the batch's log lines, then hands its acks to the ack task.
    fn flush(&mut self) {
        if self.done.is_empty() {
            return;
        }
        if let Some(log) = &mut self.log {
            // In epoch order, so that a partition lost and claimed again
            // within one batch writes its older epoch first.
            for ((partition, epoch), lines) in std::mem::take(&mut self.lines) {
                let Err(e) = log.write(partition, epoch, lines.as_bytes()) else {
                    continue;
                };
                // Not written, so not acked: JetStream redelivers them.
                let mut nakked = 0;
                for done in &mut self.done {
                    if done.partition == partition
                        && done.epoch == epoch
                        && matches!(done.kind, AckKind::Ack)
                    {
                        done.kind = AckKind::Nak(None);
                        nakked += 1;
                    }
                }
                if let SinkError::Stale { .. } = e {
                    self.report.refused += nakked;
                } else {
                    eprintln!(
                        "worker {}: log write for partition {partition} failed ({e}); \
                         nakking {nakked} events",
                        self.id
                    );
                }
            }
        }
        // The ack task is gone only after the pool has stopped.
        let _ = self.acks.send(std::mem::take(&mut self.done));
    }
}

impl Worker for EventWorker {
    type Msg = Event;

    fn handle(&mut self, event: Event, _ctx: &mut Context<'_, Event>) {
        let Event {
            seq,
            partition,
            epoch,
            delivered,
            key,
            value,
            reply,
        } = event;
        // The handling time is read before the lease check, so that a
        // logged event's time is always inside its lease.
        let at = if self.log.is_some() {
            record::now_ns()
        } else {
            0
        };
        // Fencing at the point of use: the lease must be this process's and
        // inside its deadline at this moment, whatever the lease round last
        // saw (a process stopped past the deadline handles nothing of what
        // it had queued).
        if !self.leases.is_current(partition, epoch) {
            self.report.fenced += 1;
            self.done.push(Done {
                reply,
                partition,
                epoch,
                kind: AckKind::Nak(None),
            });
            return;
        }
        self.report.handled += 1;
        self.report.sum += value;
        if delivered > 1 {
            self.report.redelivered += 1;
        }
        if self.log.is_some() {
            Handled::write(
                self.lines.entry((partition, epoch)).or_default(),
                seq,
                partition,
                epoch,
                &key,
                value,
                self.process,
                self.id,
                at,
            );
        }
        let total = self.totals.entry(key).or_default();
        total.0 += 1;
        total.1 += value;
        self.done.push(Done {
            reply,
            partition,
            epoch,
            kind: AckKind::Ack,
        });
    }

    fn tick(&mut self, _ctx: &mut Context<'_, Event>) {
        self.flush();
    }

    fn on_stop(&mut self, _ctx: &mut Context<'_, Event>) {
        self.flush();
    }
}
