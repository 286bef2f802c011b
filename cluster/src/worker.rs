//! The library's pool worker: wraps the user's [`JobWorker`], checks each
//! event's lease at the point of use, and hands the acks back in batches.
//!
//! An [`Envelope`] carries an event with its JetStream ack subject (or a
//! partition's release). The runner handles a batch of events, then (in
//! `tick`, which the pool runs after every batch) lets the job worker
//! write the batch's outputs ([`JobWorker::flush`]) and sends the batch's
//! acks to the process's ack task as one `Vec`: one channel operation per
//! batch rather than per event, and an output is always written before its
//! event is acked. An event whose lease is not valid at the moment it is
//! handled, or whose output the sink refused, is nakked: JetStream
//! redelivers it to the partition's owner.

use std::sync::Arc;

use async_nats::jetstream::AckKind;
use async_nats::Subject;
use shardpool::{Context, Worker};
use tokio::sync::mpsc::UnboundedSender;

use crate::job::{Event, JobWorker, Refusals};
use crate::lease::LeaseTable;

/// What travels through the pool's queues.
pub enum Envelope<M> {
    /// An event and the subject its ack (or nak) is published to (none
    /// for a replayed event: it is not acked).
    Event {
        /// The event.
        event: Event<M>,
        /// Its ack subject.
        reply: Option<Subject>,
    },
    /// This process released or lost the partition: the worker drops its
    /// state ([`JobWorker::release`]).
    Release {
        /// The partition.
        partition: u32,
    },
}

/// What to tell JetStream about one event, once its worker is done with it.
pub struct Done {
    /// The event's ack subject.
    pub reply: Subject,
    /// Its partition (for the in-flight count).
    pub partition: u32,
    /// The lease epoch it was fetched under.
    pub epoch: u64,
    /// `Ack` when handled, `Nak` when fenced or refused.
    pub kind: AckKind,
}

/// What the library saw one worker do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunnerStats {
    /// Events handled (a redelivered event counts again).
    pub handled: u64,
    /// Of those, events JetStream had delivered before.
    pub redelivered: u64,
    /// Events not handled because their lease had moved on or passed its
    /// deadline (nakked).
    pub fenced: u64,
    /// Events handled whose output the sink refused or could not take
    /// (nakked).
    pub refused: u64,
    /// Replayed events handed to the worker (not counted in `handled`).
    pub replayed: u64,
}

/// The pool worker of one process: the user's worker plus fencing and acks.
pub struct Runner<W: JobWorker> {
    worker: W,
    stats: RunnerStats,
    leases: Arc<LeaseTable>,
    done: Vec<Done>,
    refused: Refusals,
    acks: UnboundedSender<Vec<Done>>,
}

impl<W: JobWorker> Runner<W> {
    /// Wraps `worker`; acks go to `acks`.
    pub fn new(worker: W, leases: Arc<LeaseTable>, acks: UnboundedSender<Vec<Done>>) -> Self {
        Runner {
            worker,
            stats: RunnerStats::default(),
            leases,
            done: Vec::new(),
            refused: Refusals::default(),
            acks,
        }
    }

    /// The user's worker and what the library counted.
    pub fn into_parts(self) -> (W, RunnerStats) {
        (self.worker, self.stats)
    }

    /// Lets the worker write the batch, then hands its acks to the ack task.
    fn flush(&mut self) {
        if self.done.is_empty() {
            return;
        }
        self.worker.flush(&mut self.refused);
        if !self.refused.is_empty() {
            for done in &mut self.done {
                if matches!(done.kind, AckKind::Ack)
                    && self.refused.contains(done.partition, done.epoch)
                {
                    // Not written, so not acked: JetStream redelivers it.
                    done.kind = AckKind::Nak(None);
                    self.stats.refused += 1;
                }
            }
            self.refused.clear();
        }
        // The ack task is gone only after the pool has stopped.
        let _ = self.acks.send(std::mem::take(&mut self.done));
    }
}

impl<W: JobWorker> Worker for Runner<W> {
    type Msg = Envelope<W::Msg>;

    fn handle(&mut self, envelope: Envelope<W::Msg>, _ctx: &mut Context<'_, Self::Msg>) {
        let (mut event, reply) = match envelope {
            Envelope::Event { event, reply } => (event, reply),
            Envelope::Release { partition } => {
                self.worker.release(partition);
                return;
            }
        };
        let (partition, epoch) = (event.partition, event.epoch);
        // Read before the check, so that this time is inside the lease.
        event.checked_at_ns = crate::record::now_ns();
        // Fencing at the point of use: the lease must be this process's and
        // inside its deadline at this moment, whatever the lease round last
        // saw (a process stopped past the deadline handles nothing of what
        // it had queued).
        let Some(reply) = reply else {
            // A replayed event: state only, nothing to ack.
            if self.leases.is_current(partition, epoch) {
                self.stats.replayed += 1;
                self.worker.handle(event);
            }
            return;
        };
        if !self.leases.is_current(partition, epoch) {
            self.stats.fenced += 1;
            self.done.push(Done {
                reply,
                partition,
                epoch,
                kind: AckKind::Nak(None),
            });
            return;
        }
        self.stats.handled += 1;
        if event.delivered > 1 {
            self.stats.redelivered += 1;
        }
        self.worker.handle(event);
        self.done.push(Done {
            reply,
            partition,
            epoch,
            kind: AckKind::Ack,
        });
    }

    fn tick(&mut self, _ctx: &mut Context<'_, Self::Msg>) {
        self.flush();
    }

    fn on_stop(&mut self, _ctx: &mut Context<'_, Self::Msg>) {
        self.flush();
    }
}
