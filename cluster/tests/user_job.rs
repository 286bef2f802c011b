//! A user's own job on the library, through its public API only: binary
//! payloads (an 8-byte amount, then a key that need not be UTF-8), per-key
//! sums in the workers, outputs collected per stream sequence (so a second
//! delivery is dropped), hooks on acquiring and releasing partitions. Two
//! processes (in one test process) share a 4-partition stream.
//!
//! Needs `nats-server`; skipped without it unless
//! `SHARDPOOL_REQUIRE_SERVERS=1`.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use shardpool::prometheus_client::{encoding::text::encode, registry::Registry};
use shardpool_cluster::job::{Delivery, Event, Job, JobWorker, Position, Refusals};
use shardpool_cluster::layout::{Layout, Timing};
use shardpool_cluster::metrics::Metrics;
use shardpool_cluster::process::{run_job, ProcessConfig};
use shardpool_cluster::publish;
use shardpool_cluster::server::NatsServer;

use common::{runtime, server_or_skip};

const PARTITIONS: u32 = 4;
const EVENTS: u64 = 4_000;
const KEYS: u8 = 50;

fn key(i: u64) -> Vec<u8> {
    // Not UTF-8: the layer takes keys and payloads as bytes.
    vec![0xff, b'u', (i % u64::from(KEYS)) as u8]
}

fn amount(i: u64) -> u64 {
    i % 11 + 1
}

fn payload(i: u64) -> Bytes {
    let mut bytes = amount(i).to_le_bytes().to_vec();
    bytes.extend_from_slice(&key(i));
    Bytes::from(bytes)
}

/// What the hooks saw: (process, partition, epoch, position) acquired, and
/// (process, partition, epoch) released.
#[derive(Default)]
struct Hooks {
    acquired: Vec<(u32, u32, u64, Option<Position>)>,
    released: Vec<(u32, u32, u64)>,
}

struct Amounts {
    process: u32,
    hooks: Arc<Mutex<Hooks>>,
    /// Replay each acquired partition from its first message.
    replay: bool,
}

impl Job for Amounts {
    type Key = Vec<u8>;
    type Msg = (Vec<u8>, u64);

    fn decode(&self, delivery: &Delivery<'_>) -> Result<(Vec<u8>, (Vec<u8>, u64)), String> {
        let (amount, key) = delivery
            .payload
            .split_at_checked(8)
            .ok_or_else(|| format!("{} bytes: too short", delivery.payload.len()))?;
        let amount = u64::from_le_bytes(amount.try_into().expect("8 bytes"));
        Ok((key.to_vec(), (key.to_vec(), amount)))
    }

    fn on_acquire(&self, partition: u32, epoch: u64, position: Option<Position>) {
        let mut hooks = self.hooks.lock().unwrap();
        hooks
            .acquired
            .push((self.process, partition, epoch, position));
    }

    fn replay_from(&self, _partition: u32, _position: Position) -> Option<u64> {
        self.replay.then_some(1)
    }

    fn on_release(&self, partition: u32, epoch: u64) {
        let mut hooks = self.hooks.lock().unwrap();
        hooks.released.push((self.process, partition, epoch));
    }
}

/// The output store: stream sequence → (key, amount), first write wins.
type Outputs = Arc<Mutex<HashMap<u64, (Vec<u8>, u64)>>>;

struct SumWorker {
    sums: HashMap<Vec<u8>, u64>,
    batch: Vec<(u64, Vec<u8>, u64)>,
    outputs: Outputs,
}

impl JobWorker for SumWorker {
    type Msg = (Vec<u8>, u64);

    fn handle(&mut self, event: Event<(Vec<u8>, u64)>) {
        let (key, amount) = event.msg;
        *self.sums.entry(key.clone()).or_default() += amount;
        if !event.replay {
            self.batch.push((event.seq, key, amount));
        }
    }

    fn flush(&mut self, _refused: &mut Refusals) {
        let mut outputs = self.outputs.lock().unwrap();
        for (seq, key, amount) in self.batch.drain(..) {
            outputs.entry(seq).or_insert((key, amount));
        }
    }

    fn release(&mut self, _partition: u32) {
        // A real job drops the partition's keys here; the sums are only
        // this test's cross-check, kept.
    }
}

#[test]
fn a_user_job_runs_on_the_public_api() {
    let Some(server) = server_or_skip("a_user_job_runs_on_the_public_api", PARTITIONS) else {
        return;
    };
    let runtime = runtime();
    let layout = Layout::new("amounts", PARTITIONS).unwrap();
    let timing = Timing::default();
    let hooks = Arc::new(Mutex::new(Hooks::default()));
    let outputs: Outputs = Arc::default();
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);

    let (seqs, reports) = runtime.block_on(async {
        let client = async_nats::connect(server.addr()).await.unwrap();
        let js = async_nats::jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(30))
            .build(client);
        layout.setup(&js, &timing).await.unwrap();
        let mut seqs = Vec::new();
        let messages = (0..EVENTS).map(|i| (key(i), payload(i)));
        let stored = publish::publish_all(&js, &layout, messages, 256, |s| seqs.push(s))
            .await
            .unwrap();
        assert_eq!(stored, EVENTS);
        // One malformed message: terminated and counted, not redelivered.
        publish::publish_keyed(&js, &layout, b"bad", Bytes::from_static(b"short"))
            .await
            .unwrap()
            .await
            .unwrap();
        publish::publish_end(&js, &layout, EVENTS).await.unwrap();

        let processes = (0..2u32).map(|process| {
            let config = ProcessConfig {
                nats: server.addr(),
                layout: layout.clone(),
                timing: timing.clone(),
                process,
                processes: 2,
                workers: Some(2),
                pin: false,
                log_dir: None,
                pull_batch: 64,
                // Process 0 exports its gauges.
                metrics: (process == 0).then(|| metrics.clone()),
            };
            let job = Amounts {
                process,
                hooks: Arc::clone(&hooks),
                replay: false,
            };
            let outputs = Arc::clone(&outputs);
            let make_worker = move |_id| SumWorker {
                sums: HashMap::new(),
                batch: Vec::new(),
                outputs: Arc::clone(&outputs),
            };
            tokio::spawn(run_job(config, job, make_worker, std::future::pending()))
        });
        let runs = futures_util::future::join_all(processes);
        let reports = tokio::time::timeout(Duration::from_secs(120), runs)
            .await
            .expect("watchdog: the processes did not finish in 120 s");
        (seqs, reports)
    });

    // Every message handled once after de-duplication, with its own key and
    // amount, and the per-key sums exact.
    let outputs = outputs.lock().unwrap();
    assert_eq!(outputs.len() as u64, EVENTS, "handled, de-duplicated");
    let mut expected: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    let mut got: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    for (i, seq) in seqs.iter().enumerate() {
        let i = i as u64;
        *expected.entry(key(i)).or_default() += amount(i);
        let (k, a) = &outputs[seq];
        assert_eq!((k, *a), (&key(i), amount(i)), "sequence {seq}");
        *got.entry(k.clone()).or_default() += a;
    }
    assert_eq!(got, expected);

    // The workers' own state: every key's sum at least the input's (a
    // lease lost on a loaded host can make an event handled twice).
    let mut malformed = 0;
    let mut sums: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    for report in reports {
        let report = report.unwrap().unwrap();
        malformed += report.malformed;
        for (worker, _stats) in &report.workers {
            for (k, s) in &worker.sums {
                *sums.entry(k.clone()).or_default() += s;
            }
        }
    }
    assert_eq!(malformed, 1, "the short payload");
    for (k, total) in &expected {
        assert!(sums.get(k).is_some_and(|s| s >= total), "key {k:?}");
    }

    // Every partition acquired with its consumer's position, and every
    // acquired lease released at the end.
    let hooks = hooks.lock().unwrap();
    for p in 0..PARTITIONS {
        assert!(
            hooks
                .acquired
                .iter()
                .any(|&(_, partition, _, position)| partition == p && position.is_some()),
            "partition {p} never acquired with a position"
        );
    }
    let mut acquired: Vec<(u32, u32, u64)> = hooks
        .acquired
        .iter()
        .map(|&(a, b, c, _)| (a, b, c))
        .collect();
    let mut released = hooks.released.clone();
    acquired.sort_unstable();
    released.sort_unstable();
    assert_eq!(acquired, released, "every acquired lease released");

    // Process 0's gauges, in the registry the pool's metrics use too.
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    for p in 0..PARTITIONS {
        for name in [
            "pending",
            "unacked",
            "in_flight",
            "lease_epoch",
            "lease_valid",
        ] {
            let series = format!("shardpool_jetstream_{name}{{partition=\"{p}\"}}");
            assert!(text.contains(&series), "{series} not in\n{text}");
        }
    }
}

/// One process over `layout` until the stream is done; returns its report's
/// workers' sums (replayed and live) and how many events it replayed.
fn run_one(
    runtime: &tokio::runtime::Runtime,
    server: &NatsServer,
    layout: &Layout,
    replay: bool,
    outputs: &Outputs,
) -> (BTreeMap<Vec<u8>, u64>, u64) {
    let config = ProcessConfig {
        nats: server.addr(),
        layout: layout.clone(),
        timing: Timing::default(),
        process: 0,
        processes: 1,
        workers: Some(2),
        pin: false,
        log_dir: None,
        pull_batch: 64,
        metrics: None,
    };
    let job = Amounts {
        process: 0,
        hooks: Arc::default(),
        replay,
    };
    let outputs = Arc::clone(outputs);
    let make_worker = move |_id| SumWorker {
        sums: HashMap::new(),
        batch: Vec::new(),
        outputs: Arc::clone(&outputs),
    };
    let report = runtime
        .block_on(async {
            tokio::time::timeout(
                Duration::from_secs(120),
                run_job(config, job, make_worker, std::future::pending()),
            )
            .await
        })
        .expect("watchdog: the process did not finish in 120 s")
        .unwrap();
    let mut sums: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    let mut replayed = 0;
    for (worker, stats) in &report.workers {
        replayed += stats.replayed;
        for (k, s) in &worker.sums {
            *sums.entry(k.clone()).or_default() += s;
        }
    }
    (sums, replayed)
}

/// A process that acquires partitions somebody else handled rebuilds its
/// workers' state by replay: the first run handles the first half of the
/// stream; a second process (fresh state) handles the second half live
/// after replaying the first, and its sums are the whole stream's, while
/// it emits outputs only for what it handled live.
#[test]
fn replay_on_acquire_rebuilds_state() {
    let Some(server) = server_or_skip("replay_on_acquire_rebuilds_state", PARTITIONS) else {
        return;
    };
    let runtime = runtime();
    let layout = Layout::new("replayed", PARTITIONS).unwrap();
    let half = EVENTS / 2;
    let publish = |range: std::ops::Range<u64>| {
        runtime.block_on(async {
            let client = async_nats::connect(server.addr()).await.unwrap();
            let js = async_nats::jetstream::ContextBuilder::new()
                .timeout(Duration::from_secs(30))
                .build(client);
            layout.setup(&js, &Timing::default()).await.unwrap();
            let messages = range.map(|i| (key(i), payload(i)));
            publish::publish_all(&js, &layout, messages, 256, |_| {})
                .await
                .unwrap();
            publish::publish_end(&js, &layout, EVENTS).await.unwrap();
        })
    };

    publish(0..half);
    let first: Outputs = Arc::default();
    let (_, replayed) = run_one(&runtime, &server, &layout, false, &first);
    assert_eq!(replayed, 0);
    assert_eq!(first.lock().unwrap().len() as u64, half);

    publish(half..EVENTS);
    let second: Outputs = Arc::default();
    let (sums, replayed) = run_one(&runtime, &server, &layout, true, &second);
    assert_eq!(replayed, half, "the first half, replayed");
    assert_eq!(
        second.lock().unwrap().len() as u64,
        EVENTS - half,
        "outputs only for the live second half"
    );
    let mut expected: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    for i in 0..EVENTS {
        *expected.entry(key(i)).or_default() += amount(i);
    }
    assert_eq!(sums, expected, "state rebuilt: the whole stream's sums");
}
