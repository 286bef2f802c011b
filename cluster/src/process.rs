//! One process of the cluster: a shardpool pool, this process's leases, one
//! pull consumer per partition it holds, and the ack task.
//!
//! ```text
//!  JetStream ──pull (partition p)──▶ consumer task ──send_keyed──▶ worker w ──▶ handled
//!      ▲                                                             │ (tick: log, then)
//!      └──────────────── ack (or nak if fenced) ◀── ack task ◀───────┘ Vec<Done>
//! ```
//!
//! The process ends when `stop` resolves, or when the whole stream is done:
//! the publisher's end marker is in the stream and no partition has an
//! event pending or unacked (a global condition, so every process sees it).
//! Then it stops its consumers, lets the pool drain, sends the last acks and
//! hands its leases back.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::PullConsumer, stream::Stream, AckKind};
use futures_util::StreamExt;
use shardpool::{Affinity, Pool, PoolConfig, PoolSender, SendError};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::event;
use crate::layout::{Layout, Timing};
use crate::lease::{Change, InFlight, LeaseConfig, LeaseTable, Leases};
use crate::record::{self, LeaseChange, LeaseRecord};
use crate::worker::{Done, Event, EventWorker, WorkerReport};
use crate::Error;

/// How one process runs.
#[derive(Debug, Clone)]
pub struct ProcessConfig {
    /// The server, `host:port`.
    pub nats: String,
    /// The stream.
    pub layout: Layout,
    /// Lease TTL, ack wait, flow control.
    pub timing: Timing,
    /// This process's index, `0..processes`.
    pub process: u32,
    /// How many processes share the stream.
    pub processes: u32,
    /// Pool workers (default: one per physical core).
    pub workers: Option<usize>,
    /// Pin workers to cores (`Affinity::PhysicalCores`) or not
    /// (`Affinity::None`, kinder when several processes share few cores).
    pub pin: bool,
    /// Where to write the handled-event and lease logs ([`record`]).
    pub log_dir: Option<PathBuf>,
    /// Messages per pull request.
    pub pull_batch: usize,
}

/// What one process did.
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

/// Runs one process until the stream is done or `stop` resolves. Needs a
/// multi-threaded tokio runtime.
pub async fn run(
    config: ProcessConfig,
    stop: impl Future<Output = ()>,
) -> Result<ProcessReport, Error> {
    let started = Instant::now();
    let client = async_nats::connect(&config.nats).await?;
    let js = jetstream::new(client.clone());
    let layout = config.layout.clone();
    let (events, kv) = layout.setup(&js, &config.timing).await?;
    let mut leases = Leases::new(
        kv,
        LeaseConfig {
            process: config.process,
            processes: config.processes,
            partitions: layout.partitions,
            ttl: config.timing.lease_ttl,
        },
    );
    let table = leases.table();
    let in_flight = Arc::new(InFlight::new(layout.partitions));
    let mut lease_log = match &config.log_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            let path = record::lease_log(dir, config.process);
            Some(OpenOptions::new().create(true).append(true).open(path)?)
        }
        None => None,
    };

    let (ack_tx, ack_rx) = mpsc::unbounded_channel::<Vec<Done>>();
    let acker = tokio::spawn(ack_task(client.clone(), ack_rx, Arc::clone(&in_flight)));
    let pool = start_pool(&config, Arc::clone(&table), ack_tx)?;
    let sender = pool.sender();

    let mut consumers: HashMap<u32, (oneshot::Sender<()>, JoinHandle<u64>)> = HashMap::new();
    let mut partitions_held = Vec::new();
    let mut malformed = 0;
    let mut rounds = tokio::time::interval(leases.refresh_interval());
    rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Checked in its own task: a slow JetStream API reply must not delay a
    // lease refresh.
    let mut stream_done = tokio::spawn(wait_until_done(events.clone(), layout.clone(), None));
    tokio::pin!(stop);
    let mut finished = false;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = rounds.tick() => {
                for change in leases.round(&in_flight).await {
                    log_change(&mut lease_log, change);
                    match change {
                        Change::Acquired { partition, epoch, .. } => {
                            if !partitions_held.contains(&partition) {
                                partitions_held.push(partition);
                            }
                            let (stop_tx, stop_rx) = oneshot::channel();
                            let task = tokio::spawn(consume(
                                events.clone(), layout.clone(), partition, epoch,
                                sender.clone(), Arc::clone(&in_flight), config.pull_batch, stop_rx,
                            ));
                            consumers.insert(partition, (stop_tx, task));
                        }
                        Change::Lost { partition, .. } | Change::Releasing { partition, .. } => {
                            if let Some((stop_tx, task)) = consumers.remove(&partition) {
                                let _ = stop_tx.send(());
                                malformed += task.await.unwrap_or(0);
                            }
                        }
                        Change::Released { .. } => {}
                    }
                }
            }
            _ = &mut stream_done => {
                finished = true;
                break;
            }
        }
    }

    stream_done.abort();
    // Stop fetching, let the pool drain, send the last acks, hand back.
    for (_, (stop_tx, task)) in consumers.drain() {
        let _ = stop_tx.send(());
        malformed += task.await.unwrap_or(0);
    }
    drop(sender);
    let workers = tokio::task::spawn_blocking(move || pool.shutdown()).await??;
    let reports: Vec<WorkerReport> = workers.iter().map(EventWorker::report).collect();
    // The workers hold the ack channel's senders: drop them so the ack
    // task sees the channel close once it has sent the last acks.
    drop(workers);
    acker.await?;
    client.flush().await?;
    for change in leases.release_all(finished).await {
        log_change(&mut lease_log, change);
    }
    client.flush().await?;
    partitions_held.sort_unstable();
    Ok(ProcessReport {
        process: config.process,
        workers: reports,
        partitions: partitions_held,
        malformed,
        elapsed: started.elapsed(),
    })
}

fn start_pool(
    config: &ProcessConfig,
    table: Arc<LeaseTable>,
    acks: mpsc::UnboundedSender<Vec<Done>>,
) -> Result<Pool<EventWorker>, Error> {
    let mut pool_config = PoolConfig::default()
        .affinity(if config.pin {
            Affinity::PhysicalCores
        } else {
            Affinity::None
        })
        .name(format!("p{}", config.process));
    if let Some(workers) = config.workers {
        pool_config = pool_config.workers(workers);
    }
    let log_dir = config.log_dir.clone();
    let process = config.process;
    let pool = Pool::start(pool_config, move |id| {
        EventWorker::new(
            id,
            process,
            Arc::clone(&table),
            acks.clone(),
            log_dir.clone(),
        )
    })?;
    Ok(pool)
}

fn log_change(log: &mut Option<std::fs::File>, change: Change) {
    let (change, partition, epoch, at_ns) = match change {
        Change::Acquired {
            partition,
            epoch,
            at_ns,
        } => (LeaseChange::Acquired, partition, epoch, at_ns),
        Change::Lost {
            partition,
            epoch,
            at_ns,
        } => (LeaseChange::Lost, partition, epoch, at_ns),
        Change::Releasing { .. } => return,
        Change::Released {
            partition,
            epoch,
            at_ns,
        } => (LeaseChange::Released, partition, epoch, at_ns),
    };
    if let Some(file) = log {
        let record = LeaseRecord {
            change,
            partition,
            epoch,
            at_ns,
        };
        if let Err(e) = file.write_all(record.line().as_bytes()) {
            eprintln!("lease log: {e}");
        }
    }
}

/// Returns once the publisher's end marker is in the stream and no
/// partition's consumer (or, with `consumer`, that one consumer) has
/// anything pending or unacked. Polls every 0.5 s.
pub async fn wait_until_done(events: Stream, layout: Layout, consumer: Option<String>) {
    let consumers: Vec<String> = match consumer {
        Some(name) => vec![name],
        None => (0..layout.partitions).map(|p| layout.durable(p)).collect(),
    };
    let mut checks = tokio::time::interval(Duration::from_millis(500));
    'check: loop {
        checks.tick().await;
        if events
            .get_last_raw_message_by_subject(&layout.end_subject())
            .await
            .is_err()
        {
            continue;
        }
        for name in &consumers {
            match events.consumer_info(name).await {
                Ok(info) if info.num_pending == 0 && info.num_ack_pending == 0 => {}
                _ => continue 'check,
            }
        }
        return;
    }
}

/// Acks (or naks) what the workers are done with, and keeps the in-flight
/// count. Ends when every worker and the process have dropped their sender.
async fn ack_task(
    client: async_nats::Client,
    mut batches: mpsc::UnboundedReceiver<Vec<Done>>,
    in_flight: Arc<InFlight>,
) {
    while let Some(batch) = batches.recv().await {
        for done in batch {
            // What `jetstream::Message::ack_with` sends, without keeping a
            // whole `Message` (or `Acker`) per event in the pool's queues.
            if let Err(e) = client.publish(done.reply, done.kind.into()).await {
                // Not acked: JetStream redelivers it after the ack wait.
                eprintln!("ack: {e}");
            }
            in_flight.done(done.partition);
        }
    }
}

/// Consumes partition `partition` under lease `epoch` until told to stop;
/// returns how many malformed events it terminated.
#[allow(clippy::too_many_arguments)]
async fn consume(
    events: Stream,
    layout: Layout,
    partition: u32,
    epoch: u64,
    sender: PoolSender<Event>,
    in_flight: Arc<InFlight>,
    pull_batch: usize,
    mut stop: oneshot::Receiver<()>,
) -> u64 {
    let mut malformed = 0;
    'restart: loop {
        let messages = async {
            let consumer: PullConsumer = events.get_consumer(&layout.durable(partition)).await?;
            let messages = consumer
                .stream()
                .max_messages_per_batch(pull_batch)
                .messages()
                .await?;
            Ok::<_, Error>(messages)
        };
        let mut messages = tokio::select! {
            _ = &mut stop => return malformed,
            messages = messages => match messages {
                Ok(messages) => messages,
                Err(e) => {
                    eprintln!("partition {partition}: cannot consume ({e}); retrying");
                    tokio::select! {
                        _ = &mut stop => return malformed,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue 'restart,
                    }
                }
            },
        };
        loop {
            let next = tokio::select! {
                _ = &mut stop => return malformed,
                next = messages.next() => next,
            };
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(e)) => {
                    eprintln!("partition {partition}: {e}");
                    continue;
                }
                None => continue 'restart,
            };
            let (seq, delivered) = match message.info() {
                Ok(info) => (info.stream_sequence, info.delivered),
                Err(e) => {
                    eprintln!("partition {partition}: message without JetStream info: {e}");
                    continue;
                }
            };
            let Some((key, value)) = event::decode(&message.payload) else {
                // Bad input is reported and terminated, not redelivered forever.
                malformed += 1;
                eprintln!("partition {partition}: malformed event at sequence {seq}");
                let _ = message.ack_with(AckKind::Term).await;
                continue;
            };
            let Some(reply) = message.reply.clone() else {
                continue; // a JetStream message always has its ack subject
            };
            in_flight.add(partition);
            let event = Event {
                seq,
                partition,
                epoch,
                delivered,
                key: key.to_string(),
                value,
                reply,
            };
            if send_keyed(&sender, event).await.is_err() {
                // The pool has stopped; the event was not acked and will be
                // redelivered.
                in_flight.done(partition);
                return malformed;
            }
        }
    }
}

/// Hands `event` to the worker that owns its key, waiting while that
/// worker's inbox is full.
async fn send_keyed(sender: &PoolSender<Event>, event: Event) -> Result<(), SendError<Event>> {
    let worker = sender.worker_for(&event.key);
    // Waits without blocking the executor thread: the worker wakes this
    // future when its inbox frees space.
    sender.send_to_async(worker, event).await
}
