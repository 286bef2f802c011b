//! Soak: many messages through inboxes and the mesh with random keyed hops,
//! tiny rings, more workers than cores and shutdown at random points while
//! producers are still sending. At the end: exact accounting (every accepted
//! message handled exactly `hops + 1` times in all) and FIFO per
//! (sender, receiver) pair throughout.
//!
//! `cargo test` runs a small soak; the full one (10⁸ messages by default,
//! or `SHARDPOOL_SOAK_MESSAGES`) is ignored by default:
//! `cargo test --release --test soak -- --ignored`.

mod common;

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;

use common::watchdog;
use shardpool::prelude::*;

/// xorshift64*: a tiny deterministic PRNG (no dependency needed).
#[derive(Clone)]
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug, Clone, Copy)]
struct Msg {
    id: u64,
    hops: u32,
    /// Sender: a worker id, or `EXTERNAL + producer`.
    from: u32,
    /// Sequence number per (from, to).
    seq: u64,
}

const EXTERNAL: u32 = 1 << 16;

struct Soaker {
    expect_worker: Vec<u64>,
    expect_external: Vec<u64>,
    next_to: Vec<u64>,
    handled: u64,
}

impl Worker for Soaker {
    type Msg = Msg;
    fn handle(&mut self, mut m: Msg, ctx: &mut Context<'_, Msg>) {
        self.handled += 1;
        let expect = if m.from >= EXTERNAL {
            &mut self.expect_external[(m.from - EXTERNAL) as usize]
        } else {
            &mut self.expect_worker[m.from as usize]
        };
        assert_eq!(m.seq, *expect, "FIFO from {} to {}", m.from, ctx.id());
        *expect += 1;
        if m.hops > 0 {
            m.hops -= 1;
            let key = m.id.wrapping_mul(31).wrapping_add(m.hops as u64);
            let dst = ctx.worker_for(&key);
            m.from = usize::from(ctx.id()) as u32;
            m.seq = self.next_to[usize::from(dst)];
            self.next_to[usize::from(dst)] += 1;
            ctx.send_to(dst, m)
                .expect("mesh sends never fail in a running pool");
        }
    }
}

/// One round: returns the number of messages accepted from producers.
fn round(seed: u64, messages: u64) -> u64 {
    let mut rng = Rng(seed | 1);
    let workers = 2 + rng.below(5) as usize; // 2..=6: more than the cores here
    let producers = 1 + rng.below(3) as usize;
    let config = PoolConfig::default()
        .workers(workers)
        .affinity(Affinity::None)
        .ring_capacity(1 << rng.below(4))
        .inbox_capacity(1 << rng.below(4))
        .batch_size(1 + rng.below(16) as usize);
    let pool = Pool::start(config, move |_| Soaker {
        expect_worker: vec![0; workers],
        expect_external: vec![0; producers],
        next_to: vec![0; workers],
        handled: 0,
    })
    .unwrap();
    let expected_handles = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let per_producer = messages / producers as u64;
    let threads: Vec<_> = (0..producers)
        .map(|p| {
            let tx = pool.sender();
            let (expected_handles, accepted) = (expected_handles.clone(), accepted.clone());
            let mut rng = Rng(rng.next() | 1);
            std::thread::spawn(move || {
                let mut next_to = vec![0u64; tx.workers()];
                for i in 0..per_producer {
                    let id = (p as u64) << 40 | i;
                    let hops = rng.below(8) as u32;
                    let dst = tx.worker_for(&rng.next());
                    let m = Msg {
                        id,
                        hops,
                        from: EXTERNAL + p as u32,
                        seq: next_to[usize::from(dst)],
                    };
                    match tx.send_to(dst, m) {
                        Ok(()) => {
                            next_to[usize::from(dst)] += 1;
                            accepted.fetch_add(1, SeqCst);
                            expected_handles.fetch_add(hops as u64 + 1, SeqCst);
                        }
                        Err(e) => {
                            assert!(e.is_closed(), "{e}");
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    // Shut down at a random point: sometimes at once, sometimes after the
    // producers have finished.
    if rng.below(3) == 0 {
        for t in threads {
            t.join().unwrap();
        }
        let ws = pool.shutdown().unwrap();
        check(&ws, &expected_handles);
    } else {
        std::thread::sleep(std::time::Duration::from_micros(rng.below(3000)));
        let ws = pool.shutdown().unwrap();
        for t in threads {
            t.join().unwrap();
        }
        check(&ws, &expected_handles);
    }
    accepted.load(SeqCst)
}

fn check(ws: &[Soaker], expected_handles: &AtomicU64) {
    let handled: u64 = ws.iter().map(|w| w.handled).sum();
    assert_eq!(
        handled,
        expected_handles.load(SeqCst),
        "exactly-once accounting"
    );
}

fn soak(total: u64, per_round: u64) {
    let mut seed = 0x5eed_u64;
    let mut done = 0;
    while done < total {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        round(seed, per_round.min(total - done));
        done += per_round;
    }
}

#[test]
fn soak_small() {
    watchdog(300, || soak(200_000, 20_000));
}

#[test]
#[ignore = "long: run with --release -- --ignored (SHARDPOOL_SOAK_MESSAGES to size it)"]
fn soak_full() {
    let total = std::env::var("SHARDPOOL_SOAK_MESSAGES")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(100_000_000u64);
    watchdog(3600, move || soak(total, 2_000_000));
}
