//! Inbox: `producers` external threads (pinned to the first CPU) → one
//! worker (pinned to the second) through its MPSC inbox. Peers:
//! [`crate::peers::spsc::inbox_arrayqueue`] and [`crate::peers::channel`].

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use shardpool::prelude::*;

use super::Sink;
use crate::harness::{cpus, pin, pool_config, sum_to, Gate, Latch};

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
/// `0..n`, so the consumer's sum is `sum_to(n)` whatever the split. The
/// peers split the same way.
pub fn share(p: usize, producers: usize, n: u64) -> impl Iterator<Item = u64> {
    (p as u64..n).step_by(producers)
}

/// A one-worker counting pool configured by `config`, with the
/// latch the worker sets once it has counted `n` messages.
fn counting_pool(n: u64, config: PoolConfig) -> (Pool<CountWorker>, Arc<CountShared>) {
    let sh = Arc::new(CountShared {
        target: n,
        latch: Latch::new(),
    });
    let s2 = sh.clone();
    let pool = Pool::start(config, move |_| CountWorker {
        sh: s2.clone(),
        sink: Sink::default(),
    })
    .expect("pool start");
    (pool, sh)
}

/// Shuts the counting pool down and checks it counted `0..n` exactly once.
fn check_counted(pool: Pool<CountWorker>, n: u64) {
    let w = pool.shutdown().expect("shutdown");
    assert_eq!((w[0].sink.count, w[0].sink.sum), (n, sum_to(n)));
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
    let (pool, sh) = counting_pool(n, tweak(pool_config(vec![c1]).inbox_capacity(capacity)));
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
    check_counted(pool, n);
    dt
}

/// One external producer → 1 worker with [`PoolSender::send_batch`] of
/// `batch` messages at a time (one claim and one wake check per batch).
pub fn inbox_shardpool_batched(n: u64, batch: usize, capacity: usize) -> Duration {
    let (c0, c1) = cpus();
    let (pool, sh) = counting_pool(n, pool_config(vec![c1]).inbox_capacity(capacity));
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
    check_counted(pool, n);
    dt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_counts_everything() {
        if !crate::harness::tests::can_run() {
            return;
        }
        // Capacity 16: the producers find the inbox full and wait.
        inbox_shardpool(5_000, 2, 16);
        inbox_shardpool_idle(5_000, 1, 16, IdleStrategy::BusyPoll);
        inbox_shardpool_cfg(5_000, 1, 16, |c| {
            c.inbox_coalesce(Duration::from_nanos(500))
        });
        inbox_shardpool_batched(5_000, 64, 16);
    }

    #[test]
    fn shares_cover_the_range_once() {
        let mut all: Vec<u64> = (0..3).flat_map(|p| share(p, 3, 10)).collect();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }
}
