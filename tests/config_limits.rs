//! Every duration and size in `PoolConfig` is either refused by
//! `Pool::start` with `Error::InvalidConfig` naming the field, or works
//! (issue 13). Each test that could hang runs the pool under a watchdog.

mod common;

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use common::watchdog;
use shardpool::prelude::*;
use shardpool::MAX_CAPACITY;

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

/// Issue 13, defect 3: `tick_interval(Duration::MAX)` passed validation,
/// then `Instant + Duration` overflowed on the first idle pass and killed
/// the worker thread without marking it failed: sends were accepted and
/// never handled, and shutdown hung (before the fix this test hit its
/// watchdog). Now it means "no idle ticks".
#[test]
fn tick_interval_max_means_no_idle_ticks() {
    watchdog(60, || {
        let config = unpinned(2).tick_interval(Duration::MAX);
        let ws = relay_through(config, 1000, 3, Duration::from_millis(200));
        for w in &ws {
            assert!(w.ticks > 0, "tick still runs after each batch");
            assert_eq!(w.idle_ticks, 0, "no tick while idle");
        }
    });
}

/// The other long intervals, up to the largest: all mean "no idle ticks"
/// or a tick far away, and none kills a worker.
#[test]
fn very_long_tick_intervals_work() {
    watchdog(60, || {
        for interval in [
            Duration::from_secs(u64::MAX),
            Duration::from_secs(i64::MAX as u64),
            Duration::from_secs(1 << 40),
            Duration::from_secs(100 * 365 * 24 * 3600),
        ] {
            let ws = relay_through(unpinned(2).tick_interval(interval), 200, 2, Duration::ZERO);
            assert!(ws.iter().all(|w| w.idle_ticks == 0), "{interval:?}");
        }
    });
}

/// The shortest interval: an idle worker ticks (nearly) all the time, and
/// still handles everything and stops.
#[test]
fn one_nanosecond_tick_interval_works() {
    watchdog(60, || {
        let config = unpinned(1).tick_interval(Duration::from_nanos(1));
        let pool = Pool::start(config, |_| Relay::default()).unwrap();
        // Nothing is sent: every tick is an idle one.
        while pool.stats().workers[0].ticks < 10 {
            std::thread::sleep(Duration::from_millis(1));
        }
        pool.shutdown().unwrap();
        relay_through(
            unpinned(2).tick_interval(Duration::from_nanos(1)),
            500,
            2,
            Duration::from_millis(10),
        );
    });
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

/// The idle strategy's counts: zero parks at once; the largest spin and
/// yield counts end at the next tick, so the worker still handles
/// messages, parks and stops.
#[test]
fn extreme_idle_strategies_work() {
    watchdog(60, || {
        for (spins, yields) in [(0, 0), (u32::MAX, 0), (0, u32::MAX), (u32::MAX, u32::MAX)] {
            let config = unpinned(2)
                .idle(IdleStrategy::Backoff { spins, yields })
                .tick_interval(Duration::from_millis(5));
            relay_through(config, 500, 2, Duration::from_millis(20));
        }
        relay_through(
            unpinned(2).idle(IdleStrategy::BusyPoll),
            500,
            2,
            Duration::from_millis(20),
        );
    });
}

/// `overflow_limit(usize::MAX)` is the same as no limit: a fan-out far
/// larger than the rings waits in the overflow and arrives.
#[test]
fn largest_overflow_limit_works() {
    watchdog(60, || {
        relay_through(
            unpinned(2).overflow_limit(usize::MAX).ring_capacity(2),
            3000,
            3,
            Duration::ZERO,
        );
    });
}

/// Panics on every message.
struct AlwaysPanics;

impl Worker for AlwaysPanics {
    type Msg = u32;
    fn handle(&mut self, m: u32, _ctx: &mut Context<'_, u32>) {
        panic!("message {m}");
    }
}

/// A restart window of `Duration::MAX` never refills: after
/// `max_restarts` restarts the next panic stops the worker.
#[test]
fn restart_window_of_duration_max_never_refills() {
    watchdog(60, || {
        let builds = Arc::new(AtomicU64::new(0));
        let counter = builds.clone();
        let config = unpinned(1).on_panic(PanicPolicy::Restart {
            max_restarts: 2,
            within: Duration::MAX,
        });
        let pool = Pool::start(config, move |_| {
            counter.fetch_add(1, SeqCst);
            AlwaysPanics
        })
        .unwrap();
        let tx = pool.sender();
        let mut batch = vec![1, 2, 3];
        assert_eq!(tx.try_send_batch(WorkerId::from(0), &mut batch), Ok(3));
        match pool.shutdown() {
            Err(Error::WorkerPanicked { message, .. }) => {
                assert!(message.contains("message 3"), "{message}");
                assert!(message.contains("budget"), "{message}");
            }
            other => panic!("expected WorkerPanicked, got {:?}", other.map(|_| ())),
        }
        assert_eq!(builds.load(SeqCst), 3, "the first build and two restarts");
    });
}

/// Runs `Pool::start` on a configuration that must be refused and
/// returns the field it names (never a panic: a panic fails the test).
fn refused_field(config: PoolConfig) -> &'static str {
    match Pool::start(config, |_| AlwaysPanics) {
        Err(Error::InvalidConfig { field, reason }) => {
            assert!(!reason.is_empty());
            field
        }
        Err(other) => panic!("expected InvalidConfig, got {other}"),
        Ok(pool) => {
            drop(pool);
            panic!("expected InvalidConfig, the pool started")
        }
    }
}

/// The values that cannot work are refused with the field and a reason.
/// (The thread name with a NUL byte made `Pool::start` panic before.)
#[test]
fn values_that_cannot_work_are_refused() {
    watchdog(60, || {
        let c = || unpinned(1);
        for (config, field) in [
            (c().workers(0), "workers"),
            (
                PoolConfig::default()
                    .affinity(Affinity::None)
                    .workers(usize::MAX),
                "workers",
            ),
            (c().inbox_capacity(0), "inbox_capacity"),
            (c().inbox_capacity(MAX_CAPACITY + 1), "inbox_capacity"),
            (c().inbox_capacity(usize::MAX), "inbox_capacity"),
            (c().ring_capacity(0), "ring_capacity"),
            (c().ring_capacity(MAX_CAPACITY + 1), "ring_capacity"),
            (c().ring_capacity(usize::MAX), "ring_capacity"),
            (c().batch_size(0), "batch_size"),
            (c().tick_interval(Duration::ZERO), "tick_interval"),
            (c().inbox_coalesce(Duration::MAX), "inbox_coalesce"),
            (
                c().on_panic(PanicPolicy::Restart {
                    max_restarts: u32::MAX,
                    within: Duration::ZERO,
                }),
                "on_panic",
            ),
            (c().name("bad\0name"), "name"),
        ] {
            assert_eq!(refused_field(config), field);
        }
    });
}
