//! One process of the cluster running a user's [`Job`]: a shardpool pool of
//! [`Runner`]s around the user's [`JobWorker`]s, this process's leases, one
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
use shardpool::{Affinity, Pool, PoolConfig, PoolSender, WorkerId};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::job::{Delivery, Event, Job, JobWorker, Position};
use crate::layout::{Layout, Timing};
use crate::lease::{Change, InFlight, LeaseConfig, LeaseTable, Leases};
use crate::metrics::Metrics;
use crate::record::{self, LeaseChange, LeaseRecord};
use crate::worker::{Done, Envelope, Runner, RunnerStats};
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
    /// Per-partition lag and lease gauges to keep up to date (every
    /// second), if any ([`Metrics::register`]).
    pub metrics: Option<Metrics>,
}

/// What one process did.
#[derive(Debug)]
pub struct JobReport<W> {
    /// This process's index.
    pub process: u32,
    /// Each worker, with what the library counted of it, in worker order.
    pub workers: Vec<(W, RunnerStats)>,
    /// Every partition this process held at some point, in order.
    pub partitions: Vec<u32>,
    /// Events the job could not decode (terminated, not redelivered).
    pub malformed: u64,
    /// From connecting to the end.
    pub elapsed: Duration,
}

/// Runs one process of `job` until the stream is done or `stop` resolves;
/// `make_worker` builds each pool worker's [`JobWorker`]. Needs a
/// multi-threaded tokio runtime.
pub async fn run_job<J, W, F>(
    config: ProcessConfig,
    job: J,
    make_worker: F,
    stop: impl Future<Output = ()>,
) -> Result<JobReport<W>, Error>
where
    J: Job,
    W: JobWorker<Msg = J::Msg>,
    F: Fn(WorkerId) -> W + Send + Sync + 'static,
{
    let job = Arc::new(job);
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
    let pool = start_pool(&config, Arc::clone(&table), ack_tx, make_worker)?;
    let sender = pool.sender();

    let mut consumers: HashMap<u32, (oneshot::Sender<()>, JoinHandle<u64>)> = HashMap::new();
    let mut partitions_held = Vec::new();
    let mut malformed = 0;
    let mut rounds = tokio::time::interval(leases.refresh_interval());
    rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Checked in its own task: a slow JetStream API reply must not delay a
    // lease refresh.
    let mut stream_done = tokio::spawn(wait_until_done(events.clone(), layout.clone(), None));
    let metrics_task = config.metrics.clone().map(|metrics| {
        tokio::spawn(keep_metrics(
            metrics,
            events.clone(),
            layout.clone(),
            Arc::clone(&table),
            Arc::clone(&in_flight),
        ))
    });
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
                            let position = position(&events, &layout, partition).await;
                            job.on_acquire(partition, epoch, position);
                            let replay = position.and_then(|at| {
                                let from = job.replay_from(partition, at)?;
                                (from <= at.last_delivered).then_some((from, at.last_delivered))
                            });
                            let (stop_tx, stop_rx) = oneshot::channel();
                            let task = tokio::spawn(consume(
                                events.clone(), layout.clone(), Arc::clone(&job), partition, epoch,
                                replay, sender.clone(), Arc::clone(&in_flight), config.pull_batch,
                                stop_rx,
                            ));
                            consumers.insert(partition, (stop_tx, task));
                        }
                        Change::Lost { partition, epoch, .. } | Change::Releasing { partition, epoch } => {
                            if let Some((stop_tx, task)) = consumers.remove(&partition) {
                                let _ = stop_tx.send(());
                                malformed += task.await.unwrap_or(0);
                            }
                            job.on_release(partition, epoch);
                            release_in_workers(&sender, partition).await;
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
    if let Some(task) = metrics_task {
        task.abort();
    }
    // Stop fetching, let the pool drain, send the last acks, hand back.
    for (_, (stop_tx, task)) in consumers.drain() {
        let _ = stop_tx.send(());
        malformed += task.await.unwrap_or(0);
    }
    drop(sender);
    let runners = tokio::task::spawn_blocking(move || pool.shutdown()).await??;
    // The runners hold the ack channel's senders: take the workers out and
    // drop the rest so the ack task sees the channel close once it has
    // sent the last acks.
    let workers: Vec<(W, RunnerStats)> = runners.into_iter().map(Runner::into_parts).collect();
    acker.await?;
    client.flush().await?;
    for change in leases.release_all(finished).await {
        log_change(&mut lease_log, change);
        if let Change::Released {
            partition, epoch, ..
        } = change
        {
            job.on_release(partition, epoch);
        }
    }
    client.flush().await?;
    partitions_held.sort_unstable();
    Ok(JobReport {
        process: config.process,
        workers,
        partitions: partitions_held,
        malformed,
        elapsed: started.elapsed(),
    })
}

fn start_pool<W: JobWorker>(
    config: &ProcessConfig,
    table: Arc<LeaseTable>,
    acks: mpsc::UnboundedSender<Vec<Done>>,
    make_worker: impl Fn(WorkerId) -> W + Send + Sync + 'static,
) -> Result<Pool<Runner<W>>, Error> {
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
    let pool = Pool::start(pool_config, move |id| {
        Runner::new(make_worker(id), Arc::clone(&table), acks.clone())
    })?;
    Ok(pool)
}

/// Updates `metrics` every second until aborted.
async fn keep_metrics(
    metrics: Metrics,
    events: Stream,
    layout: Layout,
    table: Arc<LeaseTable>,
    in_flight: Arc<InFlight>,
) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        for p in 0..layout.partitions {
            let epoch = table.epoch(p);
            metrics.set_local(p, in_flight.get(p), epoch, table.is_current(p, epoch));
            if let Ok(info) = events.consumer_info(layout.durable(p)).await {
                metrics.set_lag(p, info.num_pending, info.num_ack_pending as u64);
            }
        }
    }
}

/// Where `partition`'s durable consumer stands, or `None` (reported) if its
/// info cannot be read.
async fn position(events: &Stream, layout: &Layout, partition: u32) -> Option<Position> {
    match events.consumer_info(layout.durable(partition)).await {
        Ok(info) => Some(Position {
            ack_floor: info.ack_floor.stream_sequence,
            last_delivered: info.delivered.stream_sequence,
        }),
        Err(e) => {
            eprintln!("partition {partition}: consumer info: {e}");
            None
        }
    }
}

/// Tells every worker that `partition` is no longer this process's.
async fn release_in_workers<M: Send + 'static>(sender: &PoolSender<Envelope<M>>, partition: u32) {
    for worker in 0..sender.workers() {
        // Fails only once the pool has stopped: nothing left to drop then.
        let _ = sender
            .send_to_async(WorkerId::from(worker), Envelope::Release { partition })
            .await;
    }
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
async fn consume<J: Job>(
    events: Stream,
    layout: Layout,
    job: Arc<J>,
    partition: u32,
    epoch: u64,
    replay: Option<(u64, u64)>,
    sender: PoolSender<Envelope<J::Msg>>,
    in_flight: Arc<InFlight>,
    pull_batch: usize,
    mut stop: oneshot::Receiver<()>,
) -> u64 {
    let mut malformed = 0;
    if let Some((from, to)) = replay {
        // Live events are consumed only once the state is rebuilt: a
        // replay that fails (the server restarting, a timeout) is resumed
        // where it stopped, never skipped, or the job would go on with
        // part of its state.
        let mut next = from;
        loop {
            let replayed = tokio::select! {
                _ = &mut stop => return malformed,
                replayed = replay_range(&events, &layout, &*job, partition, epoch, &mut next, to, &sender) => replayed,
            };
            match replayed {
                Ok(_) => break,
                Err(e) => {
                    eprintln!("partition {partition}: replay {from}..={to} failed at {next} ({e}); resuming");
                    tokio::select! {
                        _ = &mut stop => return malformed,
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    }
                }
            }
        }
    }
    'restart: loop {
        let messages = async {
            let consumer: PullConsumer = events.get_consumer(&layout.durable(partition)).await?;
            let messages = consumer
                .stream()
                .max_messages_per_batch(pull_batch)
                // Short pull requests with heartbeats: a pull request the
                // server forgot (a restart) is noticed within seconds.
                .expires(Duration::from_secs(5))
                .heartbeat(Duration::from_secs(1))
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
                    // Missed heartbeats, a lost connection: pull afresh.
                    eprintln!("partition {partition}: {e}; pulling afresh");
                    continue 'restart;
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
            let delivery = Delivery {
                seq,
                partition,
                delivered,
                payload: &message.payload,
            };
            let (worker, msg) = match route(&*job, &sender, &delivery) {
                Ok(decoded) => decoded,
                Err(e) => {
                    // Bad input is reported and terminated, not redelivered forever.
                    malformed += 1;
                    eprintln!("partition {partition}: malformed event at sequence {seq}: {e}");
                    let _ = message.ack_with(AckKind::Term).await;
                    continue;
                }
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
                replay: false,
                checked_at_ns: 0,
                msg,
            };
            // Hands the event to the worker that owns its key, waiting
            // (without blocking the executor thread) while that worker's
            // inbox is full.
            if sender
                .send_to_async(
                    worker,
                    Envelope::Event {
                        event,
                        reply: Some(reply),
                    },
                )
                .await
                .is_err()
            {
                // The pool has stopped; the event was not acked and will be
                // redelivered.
                in_flight.done(partition);
                return malformed;
            }
        }
    }
}

/// Decodes a delivery and picks the worker its key belongs to. The key
/// only picks the worker: it is not kept (nor held across an await).
fn route<J: Job>(
    job: &J,
    sender: &PoolSender<Envelope<J::Msg>>,
    delivery: &Delivery<'_>,
) -> Result<(WorkerId, J::Msg), String> {
    job.decode(delivery)
        .map(|(key, msg)| (sender.worker_for(&key), msg))
}

/// Hands the workers `partition`'s messages `*next..=to` (stream
/// sequences) as replayed events, read with an ordered consumer (nothing
/// is acked). `*next` follows the messages handed over, so a replay that
/// fails part way is resumed where it stopped.
#[allow(clippy::too_many_arguments)]
async fn replay_range<J: Job>(
    events: &Stream,
    layout: &Layout,
    job: &J,
    partition: u32,
    epoch: u64,
    next: &mut u64,
    to: u64,
    sender: &PoolSender<Envelope<J::Msg>>,
) -> Result<(), Error> {
    if *next > to {
        return Ok(());
    }
    let consumer = events
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: layout.partition_subject(partition),
            deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                start_sequence: (*next).max(1),
            },
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    while let Some(message) = messages.next().await {
        let message = message?;
        let info = message.info()?;
        let (seq, delivered) = (info.stream_sequence, info.delivered);
        if seq > to {
            break;
        }
        // Whatever happens to this one, a resumed replay starts after it.
        *next = seq + 1;
        let delivery = Delivery {
            seq,
            partition,
            delivered,
            payload: &message.payload,
        };
        // A message that does not decode was terminated when it was live.
        let Ok((worker, msg)) = route(job, sender, &delivery) else {
            if seq == to {
                break;
            }
            continue;
        };
        let event = Event {
            seq,
            partition,
            epoch,
            delivered,
            replay: true,
            checked_at_ns: 0,
            msg,
        };
        let envelope = Envelope::Event { event, reply: None };
        if sender.send_to_async(worker, envelope).await.is_err() {
            return Ok(()); // the pool has stopped
        }
        if seq == to {
            break;
        }
    }
    Ok(())
}
