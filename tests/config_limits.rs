//! Every duration and size in `PoolConfig` is either refused by
//! `Pool::start` with `Error::InvalidConfig` naming the field, or works
//! (issue 13). Each test that could hang runs the pool under a watchdog.

mod common;

use std::time::Duration;

use common::watchdog;
use shardpool::prelude::*;

fn unpinned(workers: usize) -> PoolConfig {
    PoolConfig::default()
        .workers(workers)
        .affinity(Affinity::None)
}

/// Forwards each message `hops` times to the next worker over the mesh
/// (so the rings' consumers run, not only the inboxes'), then counts it.
/// Counts the ticks that came with nothing handled since the previous one:
/// those are idle ticks.
#[derive(Default)]
struct Relay {
    delivered: u64,
    handled_since_tick: u64,
    idle_ticks: u64,
    ticks: u64,
}

impl Worker for Relay {
    type Msg = (u32, u64);
    fn handle(&mut self, (hops, seq): (u32, u64), ctx: &mut Context<'_, (u32, u64)>) {
        self.handled_since_tick += 1;
        if hops == 0 {
            self.delivered += 1;
        } else {
            let next = WorkerId::from((usize::from(ctx.id()) + 1) % ctx.workers());
            ctx.send_to(next, (hops - 1, seq))
                .expect("mesh sends never fail");
        }
    }
    fn tick(&mut self, _ctx: &mut Context<'_, (u32, u64)>) {
        self.ticks += 1;
        if self.handled_since_tick == 0 {
            self.idle_ticks += 1;
        }
        self.handled_since_tick = 0;
    }
}

/// Sends `n` messages that each cross `hops` rings, waits `idle` with
/// nothing to do, shuts down, and checks that every message arrived.
fn relay_through(config: PoolConfig, n: u64, hops: u32, idle: Duration) -> Vec<Relay> {
    let workers = 2;
    let pool = Pool::start(config.workers(workers), |_| Relay::default()).unwrap();
    let tx = pool.sender();
    for seq in 0..n {
        tx.send_to(WorkerId::from(seq as usize % workers), (hops, seq))
            .unwrap();
    }
    std::thread::sleep(idle);
    let ws = pool.shutdown().expect("no worker failed");
    assert_eq!(ws.iter().map(|w| w.delivered).sum::<u64>(), n);
    ws
}

/// Issue 13, defect 4: a `batch_size` above `usize::MAX / 2` overflowed
/// `2 * max` in the ring consumer: in debug builds a panic inside the
/// worker's catch, then again outside it while the failed worker drained
/// its rings, then the hang (before the fix this test panicked or hit its
/// watchdog). Any batch size from 1 up now works.
#[test]
fn huge_batch_sizes_work() {
    watchdog(60, || {
        for batch in [usize::MAX / 2 + 1, usize::MAX - 1, usize::MAX] {
            relay_through(
                unpinned(2).batch_size(batch).ring_capacity(16),
                5000,
                4,
                Duration::ZERO,
            );
        }
        relay_through(unpinned(2).batch_size(1), 500, 2, Duration::ZERO);
    });
}
