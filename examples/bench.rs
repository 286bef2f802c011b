//! Headline benchmarks of shardpool against its peers, interleaved.
//!
//! ```text
//! cargo run --release --example bench                 # headline table (~15 s)
//! cargo run --release --example bench -- --reps 9     # more repetitions
//! cargo run --release --example bench -- --sweep      # mesh batch/capacity, inbox
//!                                                     # coalescing, idle strategy
//! ```
//!
//! Every comparison runs shardpool and its peer alternately (A B A B ...,
//! `--reps` times each) in one process and reports medians and the median of
//! the paired ratios (shardpool / peer), because on a small VM the absolute
//! numbers drift 2-4x from minute to minute while adjacent runs stay
//! comparable. The cross-CPU round-trip floor is measured at the start and
//! the end of the run so the reader knows which regime the machine was in.
//!
//! Setup (pool start, thread spawn and pinning) and teardown (shutdown,
//! join, result checks) are outside every timed region: threads wait on a
//! "go" (a flag, or a message for pool workers), the clock starts right
//! before "go" and stops when the consumer has counted the last message and
//! woken the timing thread.
//!
//! This file is also included as a module by the criterion benches in
//! `benches/`, which reuse its workloads.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use crossbeam_utils::{Backoff, CachePadded};
use shardpool::partitioners::{key_hash, HashPartitioner, Partitioner};
use shardpool::prelude::*;

// ---------------------------------------------------------------------------
// Plumbing
// ---------------------------------------------------------------------------

/// The two CPUs every two-sided workload uses: (producer side, consumer side).
pub fn cpus() -> (usize, usize) {
    let allowed = shardpool::placement::allowed_cpus();
    assert!(
        allowed.len() >= 2,
        "the benchmarks need two CPUs, this process may use {allowed:?}"
    );
    (allowed[0], allowed[1])
}

pub fn pin(cpu: usize) {
    let _ = shardpool::placement::pin_current_thread(cpu);
}

/// Completion signal: the consumer sets it, the timing thread parks on it.
pub struct Latch {
    done: AtomicBool,
    waiter: Thread,
}

impl Latch {
    /// A latch whose waiter is the calling thread.
    pub fn new() -> Arc<Latch> {
        Arc::new(Latch {
            done: AtomicBool::new(false),
            waiter: thread::current(),
        })
    }
    pub fn set(&self) {
        self.done.store(true, Release);
        self.waiter.unpark();
    }
    pub fn wait(&self) {
        while !self.done.load(Acquire) {
            thread::park();
        }
    }
}

/// Start gate for plain threads: they announce themselves, then spin
/// (yielding, so the timing thread can run) until opened.
#[derive(Default)]
pub struct Gate {
    ready: AtomicUsize,
    go: AtomicBool,
}

impl Gate {
    pub fn arrive_and_wait(&self) {
        self.ready.fetch_add(1, Release);
        while !self.go.load(Acquire) {
            thread::yield_now();
        }
    }
    pub fn wait_ready(&self, n: usize) {
        while self.ready.load(Acquire) < n {
            thread::yield_now();
        }
    }
    pub fn open(&self) {
        self.go.store(true, Release);
    }
}

fn sum_to(n: u64) -> u64 {
    n * (n.saturating_sub(1)) / 2
}

/// Runs `producers` (each pinned to its CPU) and `consumer` (pinned), starts
/// the clock when all are ready, stops it when the consumer returns. Returns
/// the time and the consumer's result.
type Job = Box<dyn FnOnce() + Send>;
type ConsumerJob = Box<dyn FnOnce() -> u64 + Send>;

pub fn run_threads(
    producers: Vec<(usize, Job)>,
    consumer: (usize, ConsumerJob),
) -> (Duration, u64) {
    let gate = Arc::new(Gate::default());
    let latch = Latch::new();
    let n = producers.len() + 1;
    let mut handles: Vec<JoinHandle<u64>> = Vec::new();
    for (cpu, job) in producers {
        let gate = gate.clone();
        handles.push(thread::spawn(move || {
            pin(cpu);
            gate.arrive_and_wait();
            job();
            0
        }));
    }
    let (ccpu, cjob) = consumer;
    let (g, l) = (gate.clone(), latch.clone());
    let ch = thread::spawn(move || {
        pin(ccpu);
        g.arrive_and_wait();
        let r = cjob();
        l.set();
        r
    });
    gate.wait_ready(n);
    let t0 = Instant::now();
    gate.open();
    latch.wait();
    let dt = t0.elapsed();
    for h in handles {
        h.join().unwrap();
    }
    (dt, ch.join().unwrap())
}

/// A Worker-side completion counter shared by several workers.
pub struct Finish {
    finished: AtomicUsize,
    of: usize,
    latch: Arc<Latch>,
}

impl Finish {
    pub fn new(of: usize) -> Arc<Finish> {
        Arc::new(Finish {
            finished: AtomicUsize::new(0),
            of,
            latch: Latch::new(),
        })
    }
    pub fn one_done(&self) {
        if self.finished.fetch_add(1, Relaxed) + 1 == self.of {
            self.latch.set();
        }
    }
}

fn pool_config(cpus: Vec<usize>) -> PoolConfig {
    PoolConfig::default().affinity(Affinity::Cpus(cpus))
}

// ---------------------------------------------------------------------------
// 1. Mesh: worker 0 -> worker 1 over the pool's SPSC ring, vs SPSC/MPMC peers
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
pub struct MeshCfg {
    pub capacity: usize,
    pub batch: usize,
    /// Messages worker 0 sends per loop iteration (at most).
    pub burst: u64,
    /// Worker 0 sends each burst with one `ctx.send_batch` (the chunk
    /// path) instead of `ctx.send_to` per message.
    pub batched: bool,
}

impl Default for MeshCfg {
    fn default() -> Self {
        MeshCfg {
            capacity: 1024,
            batch: shardpool::DEFAULT_BATCH_SIZE,
            burst: 256,
            batched: false,
        }
    }
}

/// A consumer worker's count and sum of the `u64`s it received, and the
/// latch it sets (once, from `tick`) when it has counted its target.
#[derive(Default)]
struct Sink {
    count: u64,
    sum: u64,
    fired: bool,
}

impl Sink {
    #[inline]
    fn take(&mut self, v: u64) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(v);
    }

    #[inline]
    fn fire_at(&mut self, target: u64, latch: &Latch) {
        if !self.fired && self.count >= target {
            self.fired = true;
            latch.set();
        }
    }
}

struct MeshShared {
    target: u64,
    burst: u64,
    batched: bool,
    latch: Arc<Latch>,
}

struct MeshWorker {
    id: usize,
    sh: Arc<MeshShared>,
    /// Messages generated so far (worker 0).
    sent: u64,
    /// Generated and not yet accepted by the ring (batched mode).
    out: Vec<u64>,
    /// What worker 1 received.
    sink: Sink,
}

impl Worker for MeshWorker {
    type Msg = u64;

    #[inline]
    fn handle(&mut self, msg: u64, ctx: &mut Context<'_, u64>) {
        if self.id == 1 {
            self.sink.take(msg);
            return;
        }
        self.produce(ctx);
    }

    #[inline]
    fn tick(&mut self, _ctx: &mut Context<'_, u64>) {
        if self.id == 1 {
            self.sink.fire_at(self.sh.target, &self.sh.latch);
        }
    }
}

impl MeshWorker {
    /// Worker 0, on a "go" from the inbox or its own "continue": sends up
    /// to a burst, stopping when the ring is full (the pool runs with
    /// `overflow_limit(0)`, so a full ring refuses the message: the same
    /// back-pressure a spinning SPSC producer has). Out of line, so that
    /// worker 1's `handle` (count and sum) is small enough to inline into
    /// the pool's receive loop, as a consumer's loop body is in the peers.
    #[inline(never)]
    fn produce(&mut self, ctx: &mut Context<'_, u64>) {
        let sh = &*self.sh;
        let end = (self.sent + sh.burst).min(sh.target);
        if sh.batched {
            // The chunk path: generate a burst into a buffer, hand it over
            // in one call; a full ring leaves the rest in the buffer.
            if self.out.is_empty() {
                self.out.extend(self.sent..end);
                self.sent = end;
            }
            match ctx.send_batch(WorkerId::from(1), &mut self.out) {
                Ok(()) | Err(SendError::Full(())) => {}
                Err(e) => panic!("mesh send: {e}"),
            }
            if self.sent < sh.target || !self.out.is_empty() {
                ctx.send_to(WorkerId::from(0), 0).expect("continue");
            }
            return;
        }
        while self.sent < end {
            match ctx.send_to(WorkerId::from(1), self.sent) {
                Ok(()) => self.sent += 1,
                Err(SendError::Full(_)) => break,
                Err(e) => panic!("mesh send: {e}"),
            }
        }
        if self.sent < sh.target {
            ctx.send_to(WorkerId::from(0), 0).expect("continue");
        }
    }
}

/// `n` u64 messages worker 0 → worker 1 (`ctx.send_to`), timed from the
/// "go" message until worker 1 has handled the last one.
pub fn mesh_shardpool(n: u64, cfg: MeshCfg) -> Duration {
    let (c0, c1) = cpus();
    let sh = Arc::new(MeshShared {
        target: n,
        burst: cfg.burst.max(1),
        batched: cfg.batched,
        latch: Latch::new(),
    });
    let s2 = sh.clone();
    let pool = Pool::start(
        pool_config(vec![c0, c1])
            .ring_capacity(cfg.capacity)
            .batch_size(cfg.batch)
            .overflow_limit(0),
        move |id| MeshWorker {
            id: id.index(),
            sh: s2.clone(),
            sent: 0,
            out: Vec::with_capacity(cfg.burst.max(1) as usize),
            sink: Sink::default(),
        },
    )
    .expect("pool start");
    let tx = pool.sender();
    let t0 = Instant::now();
    tx.send_to(WorkerId::from(0), 0).unwrap();
    sh.latch.wait();
    let dt = t0.elapsed();
    let workers = pool.shutdown().expect("shutdown");
    assert_eq!(workers[1].sink.count, n);
    assert_eq!(workers[1].sink.sum, sum_to(n));
    dt
}

/// Times `n` `u64`s from CPU 0 to CPU 1 through a peer queue given as a
/// `push` that hands the value back when full and a `pop`; each side spins
/// while it cannot proceed. The consumer sums what it takes.
fn spsc_peer(
    n: u64,
    mut push: impl FnMut(u64) -> Result<(), u64> + Send + 'static,
    mut pop: impl FnMut() -> Option<u64> + Send + 'static,
) -> Duration {
    let (c0, c1) = cpus();
    let prod: Job = Box::new(move || {
        for i in 0..n {
            let mut v = i;
            while let Err(back) = push(v) {
                v = back;
                std::hint::spin_loop();
            }
        }
    });
    let cons: ConsumerJob = Box::new(move || {
        let mut sum = 0u64;
        let mut count = 0;
        while count < n {
            match pop() {
                Some(v) => {
                    sum = sum.wrapping_add(v);
                    count += 1;
                }
                None => std::hint::spin_loop(),
            }
        }
        sum
    });
    let (dt, sum) = run_threads(vec![(c0, prod)], (c1, cons));
    assert_eq!(sum, sum_to(n));
    dt
}

pub fn mesh_rtrb(n: u64, capacity: usize) -> Duration {
    let (mut p, mut c) = rtrb::RingBuffer::<u64>::new(capacity);
    spsc_peer(
        n,
        move |v| p.push(v).map_err(|rtrb::PushError::Full(back)| back),
        move || c.pop().ok(),
    )
}

pub fn mesh_rtrb_chunks(n: u64, capacity: usize) -> Duration {
    let (c0, c1) = cpus();
    let (mut p, mut c) = rtrb::RingBuffer::<u64>::new(capacity);
    let prod: Job = Box::new(move || {
        let mut i = 0u64;
        while i < n {
            let want = (p.slots() as u64).min(n - i) as usize;
            if want == 0 {
                std::hint::spin_loop();
                continue;
            }
            let chunk = p.write_chunk_uninit(want).unwrap();
            let start = i;
            let written = chunk.fill_from_iter(start..start + want as u64);
            i += written as u64;
        }
    });
    let cons: ConsumerJob = Box::new(move || {
        let mut sum = 0u64;
        let mut count = 0u64;
        while count < n {
            let avail = c.slots();
            if avail == 0 {
                std::hint::spin_loop();
                continue;
            }
            let chunk = c.read_chunk(avail).unwrap();
            for v in chunk.into_iter() {
                sum = sum.wrapping_add(v);
            }
            count += avail as u64;
        }
        sum
    });
    let (dt, sum) = run_threads(vec![(c0, prod)], (c1, cons));
    assert_eq!(sum, sum_to(n));
    dt
}

/// rtrb with its chunk API or with push/pop.
pub fn mesh_rtrb_api(n: u64, capacity: usize, chunks: bool) -> Duration {
    if chunks {
        mesh_rtrb_chunks(n, capacity)
    } else {
        mesh_rtrb(n, capacity)
    }
}

pub fn mesh_arrayqueue(n: u64, capacity: usize) -> Duration {
    let q = Arc::new(crossbeam_queue::ArrayQueue::<u64>::new(capacity));
    let qp = q.clone();
    spsc_peer(n, move |v| qp.push(v), move || q.pop())
}

pub fn mesh_crossbeam_channel(n: u64, capacity: usize) -> Duration {
    let (c0, c1) = cpus();
    let (tx, rx) = crossbeam_channel::bounded::<u64>(capacity);
    let prod: Job = Box::new(move || {
        for i in 0..n {
            tx.send(i).unwrap();
        }
    });
    let cons: ConsumerJob = Box::new(move || {
        let mut sum = 0u64;
        for _ in 0..n {
            sum = sum.wrapping_add(rx.recv().unwrap());
        }
        sum
    });
    let (dt, sum) = run_threads(vec![(c0, prod)], (c1, cons));
    assert_eq!(sum, sum_to(n));
    dt
}

// ---------------------------------------------------------------------------
// 2. Inbox: P external producers -> 1 worker
// ---------------------------------------------------------------------------

struct CountShared {
    target: u64,
    latch: Arc<Latch>,
}

struct CountWorker {
    sh: Arc<CountShared>,
    sink: Sink,
}

impl Worker for CountWorker {
    type Msg = u64;
    #[inline]
    fn handle(&mut self, msg: u64, _ctx: &mut Context<'_, u64>) {
        self.sink.take(msg);
    }
    #[inline]
    fn tick(&mut self, _ctx: &mut Context<'_, u64>) {
        self.sink.fire_at(self.sh.target, &self.sh.latch);
    }
}

/// The values producer `p` of `producers` sends: an interleaved share of
/// `0..n`, so the consumer's sum is `sum_to(n)` whatever the split.
fn share(p: usize, producers: usize, n: u64) -> impl Iterator<Item = u64> {
    (p as u64..n).step_by(producers)
}

/// `producers` threads (all pinned to the first CPU) → one worker (pinned to
/// the second) through `PoolSender::send_to` (blocking when the inbox is full).
pub fn inbox_shardpool(n: u64, producers: usize, capacity: usize) -> Duration {
    inbox_shardpool_idle(n, producers, capacity, IdleStrategy::default())
}

/// [`inbox_shardpool`] with the worker's idle strategy chosen (`BusyPoll`
/// keeps the worker "running", so senders never have to ring it).
pub fn inbox_shardpool_idle(
    n: u64,
    producers: usize,
    capacity: usize,
    idle: IdleStrategy,
) -> Duration {
    inbox_shardpool_cfg(n, producers, capacity, |c| c.idle(idle))
}

/// [`inbox_shardpool`] with any change to the pool's configuration (the
/// sweep varies `inbox_coalesce`).
pub fn inbox_shardpool_cfg(
    n: u64,
    producers: usize,
    capacity: usize,
    tweak: impl FnOnce(PoolConfig) -> PoolConfig,
) -> Duration {
    let (c0, c1) = cpus();
    let sh = Arc::new(CountShared {
        target: n,
        latch: Latch::new(),
    });
    let s2 = sh.clone();
    let pool = Pool::start(
        tweak(pool_config(vec![c1]).inbox_capacity(capacity)),
        move |_| CountWorker {
            sh: s2.clone(),
            sink: Sink::default(),
        },
    )
    .expect("pool start");
    let gate = Arc::new(Gate::default());
    let handles: Vec<_> = (0..producers)
        .map(|p| {
            let tx = pool.sender();
            let gate = gate.clone();
            thread::spawn(move || {
                pin(c0);
                gate.arrive_and_wait();
                for v in share(p, producers, n) {
                    tx.send_to(WorkerId::from(0), v).unwrap();
                }
            })
        })
        .collect();
    gate.wait_ready(producers);
    let t0 = Instant::now();
    gate.open();
    sh.latch.wait();
    let dt = t0.elapsed();
    for h in handles {
        h.join().unwrap();
    }
    let w = pool.shutdown().expect("shutdown");
    assert_eq!((w[0].sink.count, w[0].sink.sum), (n, sum_to(n)));
    dt
}

/// One external producer → 1 worker with [`PoolSender::send_batch`] of
/// `batch` messages at a time (one claim and one wake check per batch).
pub fn inbox_shardpool_batched(n: u64, batch: usize, capacity: usize) -> Duration {
    let (c0, c1) = cpus();
    let sh = Arc::new(CountShared {
        target: n,
        latch: Latch::new(),
    });
    let s2 = sh.clone();
    let pool = Pool::start(pool_config(vec![c1]).inbox_capacity(capacity), move |_| {
        CountWorker {
            sh: s2.clone(),
            sink: Sink::default(),
        }
    })
    .expect("pool start");
    let gate = Arc::new(Gate::default());
    let tx = pool.sender();
    let g2 = gate.clone();
    let producer = thread::spawn(move || {
        pin(c0);
        g2.arrive_and_wait();
        let mut buf = Vec::with_capacity(batch);
        let mut v = 0;
        while v < n {
            let end = (v + batch as u64).min(n);
            buf.extend(v..end);
            v = end;
            tx.send_batch(WorkerId::from(0), &mut buf).unwrap();
        }
    });
    gate.wait_ready(1);
    let t0 = Instant::now();
    gate.open();
    sh.latch.wait();
    let dt = t0.elapsed();
    producer.join().unwrap();
    let w = pool.shutdown().expect("shutdown");
    assert_eq!((w[0].sink.count, w[0].sink.sum), (n, sum_to(n)));
    dt
}

pub fn inbox_arrayqueue(n: u64, producers: usize, capacity: usize) -> Duration {
    let (c0, c1) = cpus();
    let q = Arc::new(crossbeam_queue::ArrayQueue::<u64>::new(capacity));
    let prods = (0..producers)
        .map(|p| {
            let q = q.clone();
            let job: Job = Box::new(move || {
                for v in share(p, producers, n) {
                    let backoff = Backoff::new();
                    let mut v = v;
                    while let Err(back) = q.push(v) {
                        v = back;
                        backoff.snooze();
                    }
                }
            });
            (c0, job)
        })
        .collect();
    let cons: ConsumerJob = Box::new(move || {
        let (mut sum, mut count) = (0u64, 0u64);
        while count < n {
            match q.pop() {
                Some(v) => {
                    sum = sum.wrapping_add(v);
                    count += 1;
                }
                None => std::hint::spin_loop(),
            }
        }
        sum
    });
    let (dt, sum) = run_threads(prods, (c1, cons));
    assert_eq!(sum, sum_to(n));
    dt
}

/// `producers` threads (CPU 0) → 1 consumer (CPU 1) through a bounded
/// channel, given as its two ends and how to send and receive on them.
fn inbox_channel<S, R>(
    n: u64,
    producers: usize,
    (tx, rx): (S, R),
    send: fn(&S, u64),
    recv: fn(&R) -> u64,
) -> Duration
where
    S: Clone + Send + 'static,
    R: Send + 'static,
{
    let (c0, c1) = cpus();
    let prods = (0..producers)
        .map(|p| {
            let tx = tx.clone();
            let job: Job = Box::new(move || {
                for v in share(p, producers, n) {
                    send(&tx, v);
                }
            });
            (c0, job)
        })
        .collect();
    drop(tx);
    let cons: ConsumerJob = Box::new(move || {
        let mut sum = 0u64;
        for _ in 0..n {
            sum = sum.wrapping_add(recv(&rx));
        }
        sum
    });
    let (dt, sum) = run_threads(prods, (c1, cons));
    assert_eq!(sum, sum_to(n));
    dt
}

pub fn inbox_crossbeam_channel(n: u64, producers: usize, capacity: usize) -> Duration {
    inbox_channel(
        n,
        producers,
        crossbeam_channel::bounded::<u64>(capacity),
        |tx, v| tx.send(v).unwrap(),
        |rx| rx.recv().unwrap(),
    )
}

pub fn inbox_flume(n: u64, producers: usize, capacity: usize) -> Duration {
    inbox_channel(
        n,
        producers,
        flume::bounded::<u64>(capacity),
        |tx, v| tx.send(v).unwrap(),
        |rx| rx.recv().unwrap(),
    )
}

// ---------------------------------------------------------------------------
// 3. Keyed aggregation: (key, value) routed by key to per-key HashMap counters
// ---------------------------------------------------------------------------

/// Distinct keys in the keyed workloads.
pub const KEYS: u64 = 4096;
/// Marks the end of a producer's stream (never a real key).
const END: u64 = u64::MAX;

#[inline]
fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// The worker a key goes to: exactly what `send_keyed` computes.
#[inline]
pub fn route(key: u64, shards: usize) -> usize {
    HashPartitioner.shard(key_hash(&key), shards)
}

/// One shard's per-key counts, and the completion counter it reports to
/// when the end marker arrives: the consumer side of every keyed workload
/// (shardpool's worker, the hand-rolled threads, the tokio tasks).
struct Tally {
    map: HashMap<u64, u64>,
    fin: Arc<Finish>,
}

impl Tally {
    fn new(fin: Arc<Finish>) -> Self {
        Tally {
            map: HashMap::with_capacity(KEYS as usize),
            fin,
        }
    }

    /// Counts one keyed message; on the end marker reports done and
    /// returns `false`.
    #[inline]
    fn take(&mut self, (k, v): (u64, u64)) -> bool {
        if k == END {
            self.fin.one_done();
            return false;
        }
        *self.map.entry(k).or_default() += v;
        true
    }

    fn total(&self) -> u64 {
        self.map.values().sum()
    }
}

struct KeyedWorker(Tally);

impl Worker for KeyedWorker {
    type Msg = (u64, u64);
    #[inline]
    fn handle(&mut self, msg: (u64, u64), _ctx: &mut Context<'_, (u64, u64)>) {
        self.0.take(msg);
    }
}

/// The keys every keyed workload sends, in order: the same stream for
/// shardpool and its peers.
fn keys(n: u64) -> impl Iterator<Item = u64> {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    (0..n).map(move |_| xorshift(&mut rng) % KEYS)
}

/// Times the keyed stream sent through `send(worker, msg)`: the `n` keyed
/// messages, each to the worker `send_keyed` would pick, then the end
/// marker to each of the 2 workers, until both have counted everything.
fn time_keyed_stream(n: u64, fin: &Finish, mut send: impl FnMut(usize, (u64, u64))) -> Duration {
    let t0 = Instant::now();
    for k in keys(n) {
        send(route(k, 2), (k, 1));
    }
    for w in 0..2 {
        send(w, (END, 0));
    }
    fin.latch.wait();
    t0.elapsed()
}

/// Two workers; the timing thread (unpinned) sends `n` keyed messages with
/// `send_keyed`, then an end marker to each worker.
pub fn keyed_shardpool(n: u64) -> Duration {
    keyed_shardpool_cfg(n, |c| c)
}

/// [`keyed_shardpool`] with any change to the pool's configuration.
pub fn keyed_shardpool_cfg(n: u64, tweak: impl FnOnce(PoolConfig) -> PoolConfig) -> Duration {
    keyed_pool(n, tweak, |tx| {
        for k in keys(n) {
            tx.send_keyed(&k, (k, 1)).unwrap();
        }
    })
}

/// [`keyed_shardpool`] with the producer buffering per worker in a
/// [`shardpool::SendBatch`] of `per_worker` messages (one inbox claim and one
/// wake check per batch instead of per message).
pub fn keyed_shardpool_batched(n: u64, per_worker: usize) -> Duration {
    keyed_shardpool_batched_cfg(n, per_worker, |c| c)
}

/// [`keyed_shardpool_batched`] with any change to the pool's configuration
/// (the sweep varies the idle strategy).
pub fn keyed_shardpool_batched_cfg(
    n: u64,
    per_worker: usize,
    tweak: impl FnOnce(PoolConfig) -> PoolConfig,
) -> Duration {
    keyed_pool(n, tweak, |tx| {
        let mut batch = shardpool::SendBatch::new(tx.clone(), per_worker);
        for k in keys(n) {
            batch.send_keyed(&k, (k, 1)).unwrap();
        }
        batch.flush().unwrap();
    })
}

/// A 2-worker counting pool: times `send` (which sends the `n` keyed
/// messages) plus the end markers, until both workers have counted all.
fn keyed_pool(
    n: u64,
    tweak: impl FnOnce(PoolConfig) -> PoolConfig,
    send: impl FnOnce(&PoolSender<(u64, u64)>),
) -> Duration {
    let (c0, c1) = cpus();
    let fin = Finish::new(2);
    let f2 = fin.clone();
    let pool = Pool::start(tweak(pool_config(vec![c0, c1])), move |_| {
        KeyedWorker(Tally::new(f2.clone()))
    })
    .expect("pool start");
    let tx = pool.sender();
    let t0 = Instant::now();
    send(&tx);
    tx.broadcast((END, 0)).unwrap();
    fin.latch.wait();
    let dt = t0.elapsed();
    let w = pool.shutdown().expect("shutdown");
    let total: u64 = w.iter().map(|w| w.0.total()).sum();
    assert_eq!(total, n);
    dt
}

/// The hand-rolled pool: one pinned thread per worker, each with a
/// crossbeam-channel bounded inbox, routed by the same hash.
pub fn keyed_handrolled(n: u64) -> Duration {
    let (c0, c1) = cpus();
    let fin = Finish::new(2);
    let mut txs = Vec::new();
    let mut handles = Vec::new();
    for cpu in [c0, c1] {
        let (tx, rx) = crossbeam_channel::bounded::<(u64, u64)>(1024);
        txs.push(tx);
        let mut tally = Tally::new(fin.clone());
        handles.push(thread::spawn(move || {
            pin(cpu);
            while let Ok(msg) = rx.recv() {
                if !tally.take(msg) {
                    break;
                }
            }
            tally.total()
        }));
    }
    let dt = time_keyed_stream(n, &fin, |w, msg| txs[w].send(msg).unwrap());
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, n);
    dt
}

/// tokio multi-thread runtime (2 workers, pinned), one task per shard, each
/// owning a bounded `tokio::sync::mpsc` receiver; the producer uses
/// `blocking_send`.
pub fn keyed_tokio(n: u64) -> Duration {
    let (c0, c1) = cpus();
    let started = Arc::new(AtomicUsize::new(0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_start(move || {
            let i = started.fetch_add(1, Relaxed);
            pin(if i % 2 == 0 { c0 } else { c1 });
        })
        .build()
        .expect("tokio runtime");
    let fin = Finish::new(2);
    let mut txs = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..2 {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(u64, u64)>(1024);
        txs.push(tx);
        let mut tally = Tally::new(fin.clone());
        handles.push(rt.spawn(async move {
            while let Some(msg) = rx.recv().await {
                if !tally.take(msg) {
                    break;
                }
            }
            tally.total()
        }));
    }
    let dt = time_keyed_stream(n, &fin, |w, msg| txs[w].blocking_send(msg).unwrap());
    let total: u64 = rt.block_on(async {
        let mut t = 0;
        for h in handles {
            t += h.await.unwrap();
        }
        t
    });
    assert_eq!(total, n);
    drop(rt);
    dt
}

// --- Shuffle: the workers generate keyed traffic to each other --------------

#[derive(Clone, Debug)]
pub enum Shuf {
    Go,
    Cont,
    Data(u64, u64),
    End,
}

/// Keyed messages a shuffle worker generates per loop iteration.
pub const SHUFFLE_BURST: u64 = 64;

struct ShufWorker {
    id: usize,
    per_worker: u64,
    remaining: u64,
    rng: u64,
    ends: usize,
    map: HashMap<u64, u64>,
    fin: Arc<Finish>,
}

impl Worker for ShufWorker {
    type Msg = Shuf;
    #[inline]
    fn handle(&mut self, msg: Shuf, ctx: &mut Context<'_, Shuf>) {
        match msg {
            Shuf::Data(k, v) => *self.map.entry(k).or_default() += v,
            Shuf::Go | Shuf::Cont => {
                if matches!(msg, Shuf::Go) {
                    self.remaining = self.per_worker;
                }
                let k = SHUFFLE_BURST.min(self.remaining);
                for _ in 0..k {
                    let key = xorshift(&mut self.rng) % KEYS;
                    let _ = ctx.send_keyed(&key, Shuf::Data(key, 1));
                }
                self.remaining -= k;
                if self.remaining > 0 {
                    let _ = ctx.send_to(WorkerId::from(self.id), Shuf::Cont);
                } else {
                    let _ = ctx.broadcast(Shuf::End);
                }
            }
            Shuf::End => {
                self.ends += 1;
                if self.ends == ctx.workers() {
                    self.fin.one_done();
                }
            }
        }
    }
}

/// Each of the 2 workers generates `per_worker` keyed messages and sends
/// each with `ctx.send_keyed` (half of them to itself, half to the peer).
pub fn shuffle_shardpool(per_worker: u64) -> Duration {
    let (c0, c1) = cpus();
    let fin = Finish::new(2);
    let f2 = fin.clone();
    let pool = Pool::start(pool_config(vec![c0, c1]), move |id| ShufWorker {
        id: id.index(),
        per_worker,
        remaining: 0,
        rng: 0x2545_f491_4f6c_dd1d ^ (id.index() as u64 + 1).wrapping_mul(0x9e37_79b9),
        ends: 0,
        map: HashMap::with_capacity(KEYS as usize),
        fin: f2.clone(),
    })
    .expect("pool start");
    let tx = pool.sender();
    let t0 = Instant::now();
    tx.broadcast(Shuf::Go).unwrap();
    fin.latch.wait();
    let dt = t0.elapsed();
    let w = pool.shutdown().expect("shutdown");
    let total: u64 = w.iter().flat_map(|w| w.map.values()).sum();
    assert_eq!(total, 2 * per_worker);
    dt
}

struct HandShuf {
    me: usize,
    rx: crossbeam_channel::Receiver<Shuf>,
    txs: Vec<crossbeam_channel::Sender<Shuf>>,
    map: HashMap<u64, u64>,
    ends: usize,
    batch: usize,
}

impl HandShuf {
    #[inline]
    fn handle(&mut self, m: Shuf) {
        match m {
            Shuf::Data(k, v) => *self.map.entry(k).or_default() += v,
            Shuf::End => self.ends += 1,
            _ => {}
        }
    }
    fn drain(&mut self) -> usize {
        let mut n = 0;
        while n < self.batch {
            match self.rx.try_recv() {
                Ok(m) => {
                    self.handle(m);
                    n += 1;
                }
                Err(_) => break,
            }
        }
        n
    }
    /// Never blocks on a full peer (that could deadlock two workers sending
    /// to each other): drains its own inbox while waiting.
    fn send(&mut self, dst: usize, mut m: Shuf) {
        loop {
            match self.txs[dst].try_send(m) {
                Ok(()) => return,
                Err(crossbeam_channel::TrySendError::Full(back)) => {
                    m = back;
                    if self.drain() == 0 {
                        std::hint::spin_loop();
                    }
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
}

/// The hand-rolled pool doing the shuffle through its channels.
pub fn shuffle_handrolled(per_worker: u64) -> Duration {
    let (c0, c1) = cpus();
    let fin = Finish::new(2);
    let gate = Arc::new(Gate::default());
    let chans: Vec<_> = (0..2)
        .map(|_| crossbeam_channel::bounded::<Shuf>(1024))
        .collect();
    let txs: Vec<_> = chans.iter().map(|c| c.0.clone()).collect();
    let mut handles = Vec::new();
    for (me, cpu) in [c0, c1].into_iter().enumerate() {
        let mut w = HandShuf {
            me,
            rx: chans[me].1.clone(),
            txs: txs.clone(),
            map: HashMap::with_capacity(KEYS as usize),
            ends: 0,
            batch: shardpool::DEFAULT_BATCH_SIZE,
        };
        let (fin, gate) = (fin.clone(), gate.clone());
        handles.push(thread::spawn(move || {
            pin(cpu);
            gate.arrive_and_wait();
            let mut rng = 0x2545_f491_4f6c_dd1d ^ (w.me as u64 + 1).wrapping_mul(0x9e37_79b9);
            let mut remaining = per_worker;
            while remaining > 0 {
                w.drain();
                let k = SHUFFLE_BURST.min(remaining);
                for _ in 0..k {
                    let key = xorshift(&mut rng) % KEYS;
                    w.send(route(key, 2), Shuf::Data(key, 1));
                }
                remaining -= k;
            }
            for d in 0..2 {
                w.send(d, Shuf::End);
            }
            while w.ends < 2 {
                let m = w.rx.recv().unwrap();
                w.handle(m);
            }
            fin.one_done();
            w.map.values().sum::<u64>()
        }));
    }
    drop(chans);
    gate.wait_ready(2);
    let t0 = Instant::now();
    gate.open();
    fin.latch.wait();
    let dt = t0.elapsed();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, 2 * per_worker);
    dt
}

// ---------------------------------------------------------------------------
// 4. Latency: request/response between two pinned workers vs the floor
// ---------------------------------------------------------------------------

const PING_GO: u64 = u64::MAX;

struct PingWorker {
    id: usize,
    target: usize,
    sent_at: Instant,
    seq: u64,
    samples: Vec<u32>,
    latch: Arc<Latch>,
}

impl Worker for PingWorker {
    type Msg = u64;
    #[inline]
    fn handle(&mut self, msg: u64, ctx: &mut Context<'_, u64>) {
        if self.id == 1 {
            let _ = ctx.send_to(WorkerId::from(0), msg); // pong
            return;
        }
        if msg != PING_GO {
            let now = Instant::now();
            self.samples.push((now - self.sent_at).as_nanos() as u32);
            if self.samples.len() == self.target {
                self.latch.set();
                return;
            }
        }
        self.seq += 1;
        self.sent_at = Instant::now();
        let _ = ctx.send_to(WorkerId::from(1), self.seq); // ping
    }
}

/// `rtts` ping/pong round trips worker 0 ⇄ worker 1; nanoseconds per RTT.
pub fn rtt_shardpool(rtts: usize, idle: IdleStrategy) -> Vec<u32> {
    let (c0, c1) = cpus();
    let latch = Latch::new();
    let l2 = latch.clone();
    let pool = Pool::start(pool_config(vec![c0, c1]).idle(idle), move |id| PingWorker {
        id: id.index(),
        target: rtts,
        sent_at: Instant::now(),
        seq: 0,
        samples: Vec::with_capacity(if id.index() == 0 { rtts } else { 0 }),
        latch: l2.clone(),
    })
    .expect("pool start");
    pool.sender().send_to(WorkerId::from(0), PING_GO).unwrap();
    latch.wait();
    let mut w = pool.shutdown().expect("shutdown");
    std::mem::take(&mut w[0].samples)
}

/// Times `rtts` request/response round trips between the two benchmark
/// CPUs: `serve(i)` answers the i-th request on CPU 1; `ask(i)` sends it
/// and waits for the answer on CPU 0, timed with `Instant` per round trip.
fn timed_round_trips(
    rtts: usize,
    mut serve: impl FnMut(u64) + Send + 'static,
    mut ask: impl FnMut(u64) + Send + 'static,
) -> Vec<u32> {
    let (c0, c1) = cpus();
    let ponger: Job = Box::new(move || (0..rtts as u64).for_each(&mut serve));
    let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = samples.clone();
    let pinger: ConsumerJob = Box::new(move || {
        let mut v = Vec::with_capacity(rtts);
        for i in 0..rtts as u64 {
            let t = Instant::now();
            ask(i);
            v.push(t.elapsed().as_nanos() as u32);
        }
        *s2.lock().unwrap() = v;
        0
    });
    run_threads(vec![(c1, ponger)], (c0, pinger));
    let v = std::mem::take(&mut *samples.lock().unwrap());
    v
}

/// The same request/response over two rtrb rings (a bare Lamport queue
/// each way, both threads spinning): what the ring structure alone costs
/// over the floor, without any runtime around it.
pub fn rtt_rtrb(rtts: usize) -> Vec<u32> {
    let (mut ping_tx, mut ping_rx) = rtrb::RingBuffer::<u64>::new(1024);
    let (mut pong_tx, mut pong_rx) = rtrb::RingBuffer::<u64>::new(1024);
    timed_round_trips(
        rtts,
        move |_| {
            let v = loop {
                match ping_rx.pop() {
                    Ok(v) => break v,
                    Err(_) => std::hint::spin_loop(),
                }
            };
            pong_tx.push(v).expect("pong ring has room");
        },
        move |i| {
            ping_tx.push(i).expect("ping ring has room");
            while pong_rx.pop().is_err() {
                std::hint::spin_loop();
            }
        },
    )
}

/// The floor: one cache-padded atomic bounced between the same two CPUs,
/// timed per round trip the same way.
pub fn rtt_floor(rtts: usize) -> Vec<u32> {
    let flag = Arc::new(CachePadded::new(AtomicU64::new(0)));
    let f1 = flag.clone();
    timed_round_trips(
        rtts,
        move |i| {
            while f1.load(Acquire) != 2 * i + 1 {
                std::hint::spin_loop();
            }
            f1.store(2 * i + 2, Release);
        },
        move |i| {
            flag.store(2 * i + 1, Release);
            while flag.load(Acquire) != 2 * i + 2 {
                std::hint::spin_loop();
            }
        },
    )
}

// ---------------------------------------------------------------------------
// 5. Idle: CPU of an idle pool, wake-up latency of a parked worker
// ---------------------------------------------------------------------------

fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we pass; RUSAGE_SELF
    // is always valid.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

struct Nop;
impl Worker for Nop {
    type Msg = u64;
    fn handle(&mut self, _: u64, _: &mut Context<'_, u64>) {}
}

/// Process CPU time over `window` while a 2-worker pool (default config)
/// sits idle, as a fraction of one core.
pub fn idle_cpu(window: Duration) -> f64 {
    let (c0, c1) = cpus();
    let pool = Pool::start(pool_config(vec![c0, c1]), |_| Nop).expect("pool start");
    thread::sleep(Duration::from_millis(200));
    let (u0, t0) = (cpu_time(), Instant::now());
    thread::sleep(window);
    let (u1, dt) = (cpu_time(), t0.elapsed());
    drop(pool);
    (u1 - u0).as_secs_f64() / dt.as_secs_f64()
}

struct WakeWorker {
    samples: Vec<u32>,
}
impl Worker for WakeWorker {
    type Msg = Instant;
    fn handle(&mut self, sent: Instant, _: &mut Context<'_, Instant>) {
        self.samples.push(sent.elapsed().as_nanos() as u32);
    }
}

/// Wake-up latency (send → `handle` runs) of a worker idle for 11-17 ms,
/// interleaved sample by sample with a thread blocked in a
/// crossbeam-channel `recv` (the OS wake-up floor). Returns
/// (shardpool ns, channel ns).
pub fn wakeup(samples: usize) -> (Vec<u32>, Vec<u32>) {
    let (c0, c1) = cpus();
    let pool = Pool::start(pool_config(vec![c1]), |_| WakeWorker {
        samples: Vec::new(),
    })
    .expect("pool start");
    let tx = pool.sender();
    let (ctx, crx) = crossbeam_channel::bounded::<Instant>(16);
    let peer = thread::spawn(move || {
        pin(c1);
        let mut v = Vec::new();
        while let Ok(sent) = crx.recv() {
            v.push(sent.elapsed().as_nanos() as u32);
        }
        v
    });
    // The sender sits on the other CPU, so the wake-up crosses CPUs.
    thread::spawn(move || {
        pin(c0);
        for i in 0..samples {
            thread::sleep(Duration::from_millis(11 + (i % 7) as u64));
            tx.send_to(WorkerId::from(0), Instant::now()).unwrap();
            thread::sleep(Duration::from_millis(11 + ((i + 3) % 7) as u64));
            ctx.send(Instant::now()).unwrap();
        }
    })
    .join()
    .unwrap();
    let mut w = pool.shutdown().expect("shutdown");
    let chan = peer.join().unwrap();
    (std::mem::take(&mut w[0].samples), chan)
}

// ---------------------------------------------------------------------------
// Statistics and the report
// ---------------------------------------------------------------------------

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// The `q` quantile (0..=1) of nanosecond samples.
pub fn percentile(v: &mut [u32], q: f64) -> f64 {
    v.sort_unstable();
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i] as f64
}

fn mps(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64() / 1e6
}

struct Row {
    workload: String,
    ours: String,
    peer: String,
    peer_value: String,
    ratio: f64,
    /// (target, whether the ratio counts as higher-is-better)
    target: Option<(f64, bool)>,
}

impl Row {
    fn met(&self) -> &'static str {
        match self.target {
            None => "",
            Some((t, true)) if self.ratio >= t => "met",
            Some((_, true)) => "MISSED",
            Some((t, false)) if self.ratio <= t => "met",
            Some((_, false)) => "MISSED",
        }
    }
    fn target_text(&self) -> String {
        match self.target {
            None => String::new(),
            Some((t, true)) => format!(">= {t}x"),
            Some((t, false)) => format!("<= {t}x"),
        }
    }
}

/// Runs `a` and `b` alternately `reps` times (after one untimed warm-up
/// each); returns (a values, b values, paired ratios a/b).
fn interleave(
    reps: usize,
    mut a: impl FnMut() -> f64,
    mut b: impl FnMut() -> f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    a();
    b();
    let (mut va, mut vb, mut r) = (vec![], vec![], vec![]);
    for i in 0..reps {
        // Alternate which goes first, so neither always runs "second".
        let (x, y) = if i % 2 == 0 {
            let x = a();
            (x, b())
        } else {
            let y = b();
            (a(), y)
        };
        va.push(x);
        vb.push(y);
        r.push(x / y);
    }
    (va, vb, r)
}

fn throughput_row(
    rows: &mut Vec<Row>,
    reps: usize,
    (workload, peer): (&str, &str),
    n: u64,
    target: Option<f64>,
    mut ours: impl FnMut() -> Duration,
    mut theirs: impl FnMut() -> Duration,
) {
    let (a, b, r) = interleave(reps, || mps(n, ours()), || mps(n, theirs()));
    let row = Row {
        workload: workload.to_string(),
        ours: format!("{:.1} M/s", median(&a)),
        peer: peer.to_string(),
        peer_value: format!("{:.1} M/s", median(&b)),
        ratio: median(&r),
        target: target.map(|t| (t, true)),
    };
    eprintln!(
        "  {workload} vs {peer}: shardpool {a:.1?} | peer {b:.1?} | ratios {r:.2?} -> {:.2}x",
        row.ratio
    );
    rows.push(row);
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "| {:<34} | {:>12} | {:<26} | {:>12} | {:>7} | {:>8} | {:<6} |",
        "workload", "shardpool", "peer", "peer value", "ratio", "target", ""
    );
    println!(
        "|{:-<36}|{:->14}|{:-<28}|{:->14}|{:->9}|{:->10}|{:-<8}|",
        "", "", "", "", "", "", ""
    );
    for r in rows {
        println!(
            "| {:<34} | {:>12} | {:<26} | {:>12} | {:>6.2}x | {:>8} | {:<6} |",
            r.workload,
            r.ours,
            r.peer,
            r.peer_value,
            r.ratio,
            r.target_text(),
            r.met()
        );
    }
}

fn floor_p50() -> f64 {
    let mut v = rtt_floor(20_000);
    percentile(&mut v, 0.5)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn headline(reps: usize) {
    let floor_start = floor_p50();
    println!(
        "shardpool headline benchmarks: {reps} interleaved reps each, loadavg {}, \
         cross-CPU RTT floor p50 at start {floor_start:.0} ns",
        loadavg()
    );
    let mut rows = Vec::new();

    eprintln!("mesh (worker -> worker, u64, capacity 1024)");
    let n = 2_000_000;
    let cfg = MeshCfg::default();
    let batched = MeshCfg {
        batched: true,
        ..cfg
    };
    // send_to against push/pop, the chunk path against rtrb's chunk API
    // (the targets), and send_to against chunks for the record.
    for (workload, cfg, chunks, target) in [
        ("mesh w0->w1 (ctx.send_to)", cfg, false, Some(1.0)),
        ("mesh w0->w1 (ctx.send_batch)", batched, true, Some(0.9)),
        ("mesh w0->w1 (ctx.send_to)", cfg, true, None),
    ] {
        let peer = if chunks {
            "rtrb chunks"
        } else {
            "rtrb push/pop"
        };
        throughput_row(
            &mut rows,
            reps,
            (workload, peer),
            n,
            target,
            || mesh_shardpool(n, cfg),
            || mesh_rtrb_api(n, 1024, chunks),
        );
    }

    eprintln!("inbox (external producers -> 1 worker, capacity 1024)");
    let n = 1_000_000;
    for p in [1, 2] {
        throughput_row(
            &mut rows,
            reps,
            (
                &format!("inbox {p} producer(s) (send_to)"),
                "crossbeam ArrayQueue",
            ),
            n,
            Some(1.5),
            || inbox_shardpool(n, p, 1024),
            || inbox_arrayqueue(n, p, 1024),
        );
    }

    // Diagnostic: the same with a worker that never advertises idleness.
    throughput_row(
        &mut rows,
        reps,
        ("inbox 1 producer, BusyPoll worker", "crossbeam ArrayQueue"),
        n,
        None,
        || inbox_shardpool_idle(n, 1, 1024, IdleStrategy::BusyPoll),
        || inbox_arrayqueue(n, 1, 1024),
    );

    throughput_row(
        &mut rows,
        reps,
        (
            "inbox 1 producer (send_batch of 64)",
            "crossbeam ArrayQueue",
        ),
        n,
        Some(1.5),
        || inbox_shardpool_batched(n, 64, 1024),
        || inbox_arrayqueue(n, 1, 1024),
    );
    eprintln!("keyed aggregation (external producer -> 2 workers)");
    let n = 1_000_000;
    throughput_row(
        &mut rows,
        reps,
        ("keyed (send_keyed, HashMap)", "hand-rolled (crossbeam-ch)"),
        n,
        Some(3.0),
        || keyed_shardpool(n),
        || keyed_handrolled(n),
    );
    throughput_row(
        &mut rows,
        reps,
        ("keyed (send_keyed, HashMap)", "tokio mpsc per task"),
        n,
        Some(5.0),
        || keyed_shardpool(n),
        || keyed_tokio(n),
    );
    throughput_row(
        &mut rows,
        reps,
        (
            "keyed (SendBatch of 64, HashMap)",
            "hand-rolled (crossbeam-ch)",
        ),
        n,
        Some(3.0),
        || keyed_shardpool_batched(n, 64),
        || keyed_handrolled(n),
    );
    throughput_row(
        &mut rows,
        reps,
        ("keyed (SendBatch of 64, HashMap)", "tokio mpsc per task"),
        n,
        Some(5.0),
        || keyed_shardpool_batched(n, 64),
        || keyed_tokio(n),
    );
    let per = 500_000;
    throughput_row(
        &mut rows,
        reps,
        ("shuffle (ctx.send_keyed)", "hand-rolled (crossbeam-ch)"),
        2 * per,
        None,
        || shuffle_shardpool(per),
        || shuffle_handrolled(per),
    );

    eprintln!("latency (round trip w0 <-> w1)");
    let rtts = 50_000;
    let (mut all_sp, mut all_busy, mut all_fl) = (Vec::new(), Vec::new(), Vec::new());
    let (mut r_sp, mut r_busy) = (Vec::new(), Vec::new());
    let (mut all_rtrb, mut r_rtrb, mut r_vs_rtrb) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        let mut fl = rtt_floor(rtts);
        let mut sp = rtt_shardpool(rtts, IdleStrategy::default());
        let mut busy = rtt_shardpool(rtts, IdleStrategy::BusyPoll);
        let mut rb = rtt_rtrb(rtts);
        let f50 = percentile(&mut fl, 0.5);
        let sp50 = percentile(&mut sp, 0.5);
        let rb50 = percentile(&mut rb, 0.5);
        r_sp.push(sp50 / f50);
        r_busy.push(percentile(&mut busy, 0.5) / f50);
        r_rtrb.push(rb50 / f50);
        r_vs_rtrb.push(sp50 / rb50);
        all_fl.extend(fl);
        all_sp.extend(sp);
        all_busy.extend(busy);
        all_rtrb.extend(rb);
    }
    let pct = |v: &mut Vec<u32>| {
        format!(
            "{:.0}/{:.0}/{:.0}",
            percentile(v, 0.5),
            percentile(v, 0.99),
            percentile(v, 0.999)
        )
    };
    let fl_text = pct(&mut all_fl);
    for (name, v, r) in [
        ("RTT p50/p99/p99.9 ns (Backoff)", &mut all_sp, &r_sp),
        ("RTT p50/p99/p99.9 ns (BusyPoll)", &mut all_busy, &r_busy),
    ] {
        eprintln!("  {name}: per-rep p50 ratios {r:.2?}");
        rows.push(Row {
            workload: name.to_string(),
            ours: pct(v),
            peer: "atomic ping-pong (floor)".to_string(),
            peer_value: fl_text.clone(),
            ratio: median(r),
            target: Some((1.5, false)),
        });
    }
    // Context for the floor target: a bare Lamport ring each way (rtrb,
    // no runtime) against the same floor, and shardpool against it.
    eprintln!(
        "  rtrb ping-pong p50 / floor per rep {r_rtrb:.2?}; shardpool / rtrb {r_vs_rtrb:.2?}"
    );
    let rtrb_text = pct(&mut all_rtrb);
    rows.push(Row {
        workload: "(context) rtrb ping-pong RTT ns".to_string(),
        ours: rtrb_text.clone(),
        peer: "atomic ping-pong (floor)".to_string(),
        peer_value: fl_text.clone(),
        ratio: median(&r_rtrb),
        target: None,
    });
    rows.push(Row {
        workload: "RTT p50/p99/p99.9 ns (Backoff)".to_string(),
        ours: pct(&mut all_sp),
        peer: "rtrb ping-pong (no runtime)".to_string(),
        peer_value: rtrb_text,
        ratio: median(&r_vs_rtrb),
        target: None,
    });

    eprintln!("idle");
    let idle = idle_cpu(Duration::from_secs(1));
    rows.push(Row {
        workload: "idle 2-worker pool, CPU over 1 s".to_string(),
        ours: format!("{:.3}%", idle * 100.0),
        peer: "(target: 1% of one core)".to_string(),
        peer_value: "1%".to_string(),
        ratio: idle / 0.01,
        target: Some((1.0, false)),
    });
    let (mut sp, mut ch) = wakeup(200);
    let (s50, c50) = (percentile(&mut sp, 0.5), percentile(&mut ch, 0.5));
    rows.push(Row {
        workload: "parked wake-up p50/p99 (idle>10ms)".to_string(),
        ours: format!("{:.1}/{:.1} us", s50 / 1e3, percentile(&mut sp, 0.99) / 1e3),
        peer: "thread in crossbeam recv".to_string(),
        peer_value: format!("{:.1}/{:.1} us", c50 / 1e3, percentile(&mut ch, 0.99) / 1e3),
        ratio: s50 / c50,
        target: None,
    });

    print_table(&rows);
    println!();
    println!(
        "parked wake-up p50 {:.1} us (target < 20 us: {}); ratio = shardpool / peer \
         (median of paired per-rep ratios; for RTT and wake-up, lower is better)",
        s50 / 1e3,
        if s50 < 20_000.0 { "met" } else { "MISSED" }
    );
    println!(
        "cross-CPU RTT floor p50: start {floor_start:.0} ns, end {:.0} ns; loadavg at end {}",
        floor_p50(),
        loadavg()
    );
}

/// One mesh row of the sweep: `cfg` against rtrb at the same capacity
/// (its chunk API when `cfg` sends with `send_batch`, else push/pop).
fn mesh_sweep_row(rows: &mut Vec<Row>, reps: usize, n: u64, label: &str, cfg: MeshCfg) {
    let capacity = cfg.capacity;
    let api = if cfg.batched { "chunks" } else { "push/pop" };
    throughput_row(
        rows,
        reps,
        (label, &format!("rtrb {api} cap {capacity}")),
        n,
        None,
        || mesh_shardpool(n, cfg),
        || mesh_rtrb_api(n, capacity, cfg.batched),
    );
}

fn sweep(reps: usize) {
    println!(
        "sweep: mesh (worker->worker u64, 2M messages), inbox coalescing window, \
         idle strategy; {reps} interleaved reps, loadavg {}, RTT floor p50 {:.0} ns",
        loadavg(),
        floor_p50()
    );
    let n = 2_000_000;
    let mut rows = Vec::new();
    let default = MeshCfg::default();
    for batch in [1, 16, 64, 256] {
        let label = format!("mesh cap 1024 batch {batch}");
        mesh_sweep_row(&mut rows, reps, n, &label, MeshCfg { batch, ..default });
    }
    // The chunk path (`ctx.send_batch` per burst of 256) against rtrb's
    // chunk API: the batch size sets how far ahead the consumer prefetches.
    for batch in [32, 64, 128, 256] {
        let label = format!("mesh send_batch cap 1024 batch {batch}");
        let cfg = MeshCfg {
            batch,
            batched: true,
            ..default
        };
        mesh_sweep_row(&mut rows, reps, n, &label, cfg);
    }
    for capacity in [64, 1024, 16384] {
        let label = format!("mesh cap {capacity} batch 64");
        mesh_sweep_row(
            &mut rows,
            reps,
            n,
            &label,
            MeshCfg {
                capacity,
                ..default
            },
        );
    }
    for burst in [16, 64, 1024] {
        let label = format!("mesh cap 1024 batch 64 burst {burst}");
        mesh_sweep_row(&mut rows, reps, n, &label, MeshCfg { burst, ..default });
    }
    // The inbox's coalescing window (`PoolConfig::inbox_coalesce`), one
    // external producer, against ArrayQueue.
    let n_inbox = 1_000_000;
    for ns in [0u64, 300, 500, 1000, 2000] {
        let window = Duration::from_nanos(ns);
        throughput_row(
            &mut rows,
            reps,
            (
                &format!("inbox 1 producer, inbox_coalesce {ns} ns"),
                "crossbeam ArrayQueue",
            ),
            n_inbox,
            None,
            || inbox_shardpool_cfg(n_inbox, 1, 1024, |c| c.inbox_coalesce(window)),
            || inbox_arrayqueue(n_inbox, 1, 1024),
        );
    }
    // The idle strategy when an external producer shares a CPU with a
    // worker: keyed aggregation, per message and with SendBatch, against
    // the hand-rolled pool.
    let n_keyed = 1_000_000;
    let strategies = [
        (512, 8),
        (64, 16),
        (64, 64),
        (64, 256),
        (0, 256),
        (64, 1024),
        (0, 0),
    ];
    for batched in [false, true] {
        for (spins, yields) in strategies {
            let idle = IdleStrategy::Backoff { spins, yields };
            let how = if batched { "SendBatch" } else { "send_keyed" };
            throughput_row(
                &mut rows,
                reps,
                (
                    &format!("keyed {how}, Backoff {spins}/{yields}"),
                    "hand-rolled (crossbeam-ch)",
                ),
                n_keyed,
                None,
                || {
                    if batched {
                        keyed_shardpool_batched_cfg(n_keyed, 64, |c| c.idle(idle))
                    } else {
                        keyed_shardpool_cfg(n_keyed, |c| c.idle(idle))
                    }
                },
                || keyed_handrolled(n_keyed),
            );
        }
    }
    print_table(&rows);
    println!(
        "RTT floor p50 at end {:.0} ns, loadavg {}",
        floor_p50(),
        loadavg()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut reps = 5;
    let mut mode = "headline";
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--reps" => {
                i += 1;
                reps = args.get(i).and_then(|s| s.parse().ok()).expect("--reps N");
            }
            "--sweep" => mode = "sweep",
            "--bench" => {} // passed by `cargo bench`; ignore
            other => {
                eprintln!("usage: bench [--reps N] [--sweep]   (unknown argument {other})");
                std::process::exit(2);
            }
        }
        i += 1;
    }
    match mode {
        "sweep" => sweep(reps),
        _ => headline(reps),
    }
}
