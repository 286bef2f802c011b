//! Keyed aggregation: an external thread sends `(key, 1)` messages routed
//! by key to 2 workers that count per key in a `HashMap`. The key stream,
//! the routing and the per-key counter are defined here and shared with the
//! peers ([`crate::peers::handrolled`], [`crate::peers::tokio_tasks`]), so
//! every contender does the same work.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardpool::partitioners::{key_hash, HashPartitioner, Partitioner};
use shardpool::prelude::*;

use crate::harness::{cpus, pool_config, Finish};

/// Distinct keys in the keyed workloads.
pub const KEYS: u64 = 4096;
/// Marks the end of a producer's stream (never a real key).
pub const END: u64 = u64::MAX;

/// One step of the xorshift64 generator the key streams use.
#[inline]
pub fn xorshift(s: &mut u64) -> u64 {
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

/// The keys every keyed workload sends, in order: the same stream for
/// shardpool and its peers.
pub fn keys(n: u64) -> impl Iterator<Item = u64> {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    (0..n).map(move |_| xorshift(&mut rng) % KEYS)
}

/// One shard's per-key counts, and the completion counter it reports to
/// when the end marker arrives: the consumer side of every keyed workload
/// (shardpool's worker, the hand-rolled threads, the tokio tasks).
pub struct Tally {
    map: HashMap<u64, u64>,
    fin: Arc<Finish>,
}

impl Tally {
    /// An empty tally that reports to `fin`.
    pub fn new(fin: Arc<Finish>) -> Self {
        Tally {
            map: HashMap::with_capacity(KEYS as usize),
            fin,
        }
    }

    /// Counts one keyed message; on the end marker reports done and
    /// returns `false`.
    #[inline]
    pub fn take(&mut self, (k, v): (u64, u64)) -> bool {
        if k == END {
            self.fin.one_done();
            return false;
        }
        *self.map.entry(k).or_default() += v;
        true
    }

    /// The sum of all counts.
    pub fn total(&self) -> u64 {
        self.map.values().sum()
    }
}

/// Times the keyed stream sent through `send(worker, msg)`: the `n` keyed
/// messages, each to the worker `send_keyed` would pick, then the end
/// marker to each of the 2 workers, until both have counted everything.
/// The peers' producer side.
pub fn time_keyed_stream(
    n: u64,
    fin: &Finish,
    mut send: impl FnMut(usize, (u64, u64)),
) -> Duration {
    let t0 = Instant::now();
    for k in keys(n) {
        send(route(k, 2), (k, 1));
    }
    for w in 0..2 {
        send(w, (END, 0));
    }
    fin.wait();
    t0.elapsed()
}

struct KeyedWorker(Tally);

impl Worker for KeyedWorker {
    type Msg = (u64, u64);
    #[inline]
    fn handle(&mut self, msg: (u64, u64), _ctx: &mut Context<'_, (u64, u64)>) {
        self.0.take(msg);
    }
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
    fin.wait();
    let dt = t0.elapsed();
    let w = pool.shutdown().expect("shutdown");
    let total: u64 = w.iter().map(|w| w.0.total()).sum();
    assert_eq!(total, n);
    dt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_is_what_send_keyed_picks() {
        let pool = Pool::start(
            PoolConfig::default().workers(2).affinity(Affinity::None),
            |_| KeyedWorker(Tally::new(Finish::new(1))),
        )
        .unwrap();
        let tx = pool.sender();
        for k in keys(1_000) {
            assert_eq!(tx.worker_for(&k).index(), route(k, 2), "key {k}");
        }
        pool.shutdown().unwrap();
    }

    #[test]
    fn every_variant_counts_everything() {
        if !crate::harness::tests::can_run() {
            return;
        }
        keyed_shardpool(5_000);
        keyed_shardpool_batched(5_000, 64);
        keyed_shardpool_batched_cfg(5_000, 7, |c| {
            c.idle(IdleStrategy::Backoff {
                spins: 0,
                yields: 0,
            })
        });
    }
}
