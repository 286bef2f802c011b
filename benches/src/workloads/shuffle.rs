//! Shuffle: each of 2 workers generates keyed messages and sends each to
//! the worker that owns its key (`ctx.send_keyed`: half to itself, half to
//! the peer), which counts it per key. The peer is the hand-rolled pool in
//! [`crate::peers::handrolled`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardpool::prelude::*;

use super::keyed::{route, xorshift, KEYS};
use crate::harness::{cpus, pool_config, Finish};

/// The shuffle's messages.
#[derive(Clone, Debug)]
pub enum Shuf {
    /// Start generating (from outside).
    Go,
    /// Generate the next burst (a worker to itself).
    Cont,
    /// One keyed message: (key, count).
    Data(u64, u64),
    /// A worker has sent all its data.
    End,
}

/// Keyed messages a shuffle worker generates per loop iteration.
pub const SHUFFLE_BURST: u64 = 64;

/// The seed of worker `me`'s key generator (the same for the peer).
pub fn shuffle_seed(me: usize) -> u64 {
    0x2545_f491_4f6c_dd1d ^ (me as u64 + 1).wrapping_mul(0x9e37_79b9)
}

/// A shuffle peer that runs as a plain thread loop (the rtrb mesh, the
/// hand-rolled pool): what [`generate_bursts`] needs of it.
pub trait BurstPeer {
    /// Handles what has arrived, up to a batch per queue; returns how many.
    fn drain(&mut self) -> usize;
    /// Sends `m` to worker `dst`, draining its own queues while `dst` is
    /// full (never blocks: two workers sending to each other could
    /// deadlock).
    fn send(&mut self, dst: usize, m: Shuf);
}

/// Worker `me`'s share of the shuffle, for a [`BurstPeer`]: before each
/// burst of [`SHUFFLE_BURST`] keys `drain`, then `send` each keyed message
/// to the worker that owns its key; at the end `End` to every worker.
pub fn generate_bursts(peer: &mut impl BurstPeer, me: usize, per_worker: u64, workers: usize) {
    let mut rng = shuffle_seed(me);
    let mut remaining = per_worker;
    while remaining > 0 {
        peer.drain();
        let k = SHUFFLE_BURST.min(remaining);
        for _ in 0..k {
            let key = xorshift(&mut rng) % KEYS;
            peer.send(route(key, workers), Shuf::Data(key, 1));
        }
        remaining -= k;
    }
    for d in 0..workers {
        peer.send(d, Shuf::End);
    }
}

struct ShufWorker {
    id: usize,
    per_worker: u64,
    remaining: u64,
    rng: u64,
    ends: usize,
    map: HashMap<u64, u64>,
    fin: Arc<Finish>,
}

impl ShufWorker {
    /// Sends the next burst, then a `Cont` to itself (or `End` to all when
    /// done). Out of line, as the rtrb mesh's `generate_bursts` is: the
    /// per-message path of `handle` stays small enough to be inlined into
    /// the loop, as the mesh peer's `handle` is into its `drain`. With the
    /// burst inside `handle`, `handle` was a call per message (the numbers
    /// are in PERFORMANCE.md).
    #[inline(never)]
    fn burst(&mut self, first: bool, ctx: &mut Context<'_, Shuf>) {
        if first {
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
}

impl Worker for ShufWorker {
    type Msg = Shuf;
    #[inline]
    fn handle(&mut self, msg: Shuf, ctx: &mut Context<'_, Shuf>) {
        match msg {
            Shuf::Data(k, v) => *self.map.entry(k).or_default() += v,
            Shuf::Go => self.burst(true, ctx),
            Shuf::Cont => self.burst(false, ctx),
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
        rng: shuffle_seed(id.index()),
        ends: 0,
        map: HashMap::with_capacity(KEYS as usize),
        fin: f2.clone(),
    })
    .expect("pool start");
    let tx = pool.sender();
    let t0 = Instant::now();
    tx.broadcast(Shuf::Go).unwrap();
    fin.wait();
    let dt = t0.elapsed();
    let w = pool.shutdown().expect("shutdown");
    let total: u64 = w.iter().flat_map(|w| w.map.values()).sum();
    assert_eq!(total, 2 * per_worker);
    dt
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_everything() {
        if !crate::harness::tests::can_run() {
            return;
        }
        super::shuffle_shardpool(3_000);
    }
}
