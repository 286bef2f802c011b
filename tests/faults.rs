//! Fault handling: panic policies, overflow caps, slow and vanishing peers.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use common::watchdog;
use shardpool::prelude::*;

fn unpinned(workers: usize) -> PoolConfig {
    PoolConfig::default()
        .workers(workers)
        .affinity(Affinity::None)
}

/// Panics on every multiple of 10; counts the rest. `generation` tells
/// restarted instances apart.
struct Flaky {
    generation: u64,
    handled: Vec<u64>,
}

fn flaky_factory(builds: Arc<AtomicU64>) -> impl Fn(WorkerId) -> Flaky + Send + Sync + 'static {
    move |_| Flaky {
        generation: builds.fetch_add(1, SeqCst),
        handled: vec![],
    }
}

impl Worker for Flaky {
    type Msg = u64;
    fn handle(&mut self, m: u64, _ctx: &mut Context<'_, u64>) {
        if m % 10 == 0 {
            panic!("flaky on {m}");
        }
        self.handled.push(m);
    }
}

#[test]
fn restart_keeps_the_queue_and_counts_restarts() {
    watchdog(60, || {
        let builds = Arc::new(AtomicU64::new(0));
        let config = unpinned(1).batch_size(4).on_panic(PanicPolicy::Restart {
            max_restarts: 100,
            within: Duration::from_secs(60),
        });
        let pool = Pool::start(config, flaky_factory(builds.clone())).unwrap();
        let tx = pool.sender();
        for m in 1..=35 {
            tx.send_to(WorkerId::from(0), m).unwrap();
        }
        let ws = pool
            .shutdown()
            .expect("restarted workers do not fail shutdown");
        // Three panics (10, 20, 30): three restarts, and the messages queued
        // behind each panic were handled by the next instance.
        assert_eq!(builds.load(SeqCst), 4);
        assert_eq!(ws[0].generation, 3);
        assert_eq!(ws[0].handled, (31..=35).collect::<Vec<_>>());
    });
}

#[test]
fn restart_stats_and_budget_exhaustion_fall_back_to_stop() {
    watchdog(60, || {
        let builds = Arc::new(AtomicU64::new(0));
        let config = unpinned(1).on_panic(PanicPolicy::Restart {
            max_restarts: 2,
            within: Duration::from_secs(3600),
        });
        let pool = Pool::start(config, flaky_factory(builds.clone())).unwrap();
        let tx = pool.sender();
        // One claim: all four are queued before the worker sees any, so 31
        // is accepted even if the worker fails before this thread runs on.
        let mut batch = vec![10, 20, 30, 31];
        assert_eq!(tx.try_send_batch(WorkerId::from(0), &mut batch), Ok(4));
        // `failed` is published when the budget runs out; the queued 31 is
        // dropped and counted on the worker's next iteration, so wait for
        // the count rather than the flag.
        while pool.stats().workers[0].dropped < 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let s = pool.stats();
        assert!(s.workers[0].failed);
        assert_eq!(s.workers[0].restarts, 2);
        assert_eq!(
            s.workers[0].dropped, 1,
            "31 arrived after the worker stopped"
        );
        assert!(tx.send_to(WorkerId::from(0), 1).unwrap_err().is_closed());
        match pool.shutdown() {
            Err(Error::WorkerPanicked { worker, message }) => {
                assert_eq!(worker, WorkerId::from(0));
                assert!(message.contains("flaky on 30"), "{message}");
                assert!(message.contains("budget"), "{message}");
            }
            other => panic!("expected WorkerPanicked, got {:?}", other.map(|v| v.len())),
        }
        assert_eq!(builds.load(SeqCst), 3, "two restarts, then stop");
    });
}

#[test]
fn a_factory_that_panics_on_restart_stops_the_worker() {
    watchdog(60, || {
        let builds = Arc::new(AtomicU64::new(0));
        let b2 = builds.clone();
        let config = unpinned(1).on_panic(PanicPolicy::Restart {
            max_restarts: 5,
            within: Duration::from_secs(60),
        });
        let pool = Pool::start(config, move |_| {
            if b2.fetch_add(1, SeqCst) > 0 {
                panic!("no second instance");
            }
            Flaky {
                generation: 0,
                handled: vec![],
            }
        })
        .unwrap();
        pool.sender().send_to(WorkerId::from(0), 10).unwrap();
        match pool.shutdown() {
            Err(Error::WorkerPanicked { message, .. }) => {
                assert!(message.contains("no second instance"), "{message}");
            }
            other => panic!("expected WorkerPanicked, got {:?}", other.map(|v| v.len())),
        }
    });
}

#[test]
fn a_panic_in_on_stop_is_reported() {
    watchdog(60, || {
        struct BadStop;
        impl Worker for BadStop {
            type Msg = ();
            fn handle(&mut self, _: (), _: &mut Context<'_, ()>) {}
            fn on_stop(&mut self, _: &mut Context<'_, ()>) {
                panic!("cannot stop cleanly");
            }
        }
        let pool = Pool::start(unpinned(2), |_| BadStop).unwrap();
        match pool.shutdown() {
            Err(Error::WorkerPanicked { worker, message }) => {
                assert_eq!(worker, WorkerId::from(0));
                assert!(message.contains("cannot stop cleanly"));
            }
            other => panic!("expected WorkerPanicked, got {:?}", other.map(|v| v.len())),
        }
    });
}

/// Worker 0 floods worker 1, which is held up; with an overflow cap the
/// sends beyond ring + cap come back as Full, and nothing is lost.
struct Flood {
    hold: Arc<AtomicBool>,
    /// Send the flood as one `send_batch` instead of `send_to` each.
    batched: bool,
    refused: Vec<u64>,
    got: Vec<u64>,
}
impl Worker for Flood {
    type Msg = u64;
    fn handle(&mut self, m: u64, ctx: &mut Context<'_, u64>) {
        if usize::from(ctx.id()) == 0 && self.batched {
            let mut batch: Vec<u64> = (0..m).collect();
            match ctx.send_batch(WorkerId::from(1), &mut batch) {
                Ok(()) => assert!(batch.is_empty()),
                // What was not accepted is still in the batch.
                Err(SendError::Full(())) => self.refused = batch,
                Err(e) => panic!("unexpected {e:?}"),
            }
        } else if usize::from(ctx.id()) == 0 {
            for i in 0..m {
                match ctx.send_to(WorkerId::from(1), i) {
                    Ok(()) => {}
                    Err(SendError::Full(back)) => self.refused.push(back),
                    Err(e) => panic!("unexpected {e:?}"),
                }
            }
        } else {
            while self.hold.load(SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            self.got.push(m);
        }
    }
}

/// Starts a flood: worker 0 sends `0..n` to worker 1, which is held up in
/// `handle` until the returned flag is cleared. Returns once worker 0 has
/// sent everything (its one inbox message is handled).
fn start_flood(config: PoolConfig, batched: bool, n: u64) -> (Pool<Flood>, Arc<AtomicBool>) {
    let hold = Arc::new(AtomicBool::new(true));
    let h2 = hold.clone();
    let pool = Pool::start(config, move |_| Flood {
        hold: h2.clone(),
        batched,
        refused: vec![],
        got: vec![],
    })
    .unwrap();
    pool.sender().send_to(WorkerId::from(0), n).unwrap();
    while pool.stats().workers[0].handled < 1 {
        std::thread::sleep(Duration::from_millis(1));
    }
    (pool, hold)
}

/// The `w0 → w1` channel's stats now.
fn w0_to_w1(pool: &Pool<Flood>) -> ChannelStats {
    pool.stats()
        .channel(Endpoint::Worker(WorkerId::from(0)), WorkerId::from(1))
        .cloned()
        .unwrap()
}

/// Runs one flood through a ring of `ring` slots with an overflow cap of
/// `limit`. Returns both workers and the `w0 → w1` channel's stats as they
/// were while worker 1 was still held.
fn flood(ring: usize, limit: usize, batched: bool, n: u64) -> (Vec<Flood>, ChannelStats) {
    let config = unpinned(2).ring_capacity(ring).overflow_limit(limit);
    let (pool, hold) = start_flood(config, batched, n);
    let channel = w0_to_w1(&pool);
    hold.store(false, SeqCst);
    (pool.shutdown().unwrap(), channel)
}

/// A worker whose sends wait in its overflow for a held-up peer has nothing
/// to receive, but it is not stuck: its `tick` keeps coming.
#[test]
fn a_worker_waiting_on_a_full_ring_keeps_ticking() {
    watchdog(60, || {
        let config = unpinned(2)
            .ring_capacity(4)
            .tick_interval(Duration::from_millis(1));
        let (pool, hold) = start_flood(config, false, 100);
        let ticks = pool.stats().workers[0].ticks;
        while pool.stats().workers[0].ticks < ticks + 5 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let ring = w0_to_w1(&pool);
        assert!(
            ring.overflowed > 0,
            "the sends waited in the overflow: {ring:?}"
        );
        hold.store(false, SeqCst);
        let ws = pool.shutdown().unwrap();
        assert_eq!(ws[1].got, (0..100).collect::<Vec<_>>());
    });
}

#[test]
fn overflow_limit_refuses_with_full_and_loses_nothing() {
    watchdog(60, || {
        let (ws, ring) = flood(4, 3, false, 100);
        let (refused, got) = (&ws[0].refused, &ws[1].got);
        // Worker 1 holds at most one message in `handle` while blocked, so at
        // most ring (4) + overflow (3) + 1 were accepted.
        assert!(got.len() <= 8, "accepted {}", got.len());
        assert_eq!(
            got.len() + refused.len(),
            100,
            "each message accepted or handed back"
        );
        assert_eq!(ring.sent as usize, got.len());
        assert_eq!(ring.full as usize, refused.len() + 1, "{ring:?}");
        // Accepted messages arrive in order.
        assert!(got.windows(2).all(|w| w[0] < w[1]));
    });
}

#[test]
fn overflow_limit_zero_means_no_overflow() {
    watchdog(60, || {
        let (ws, _) = flood(2, 0, false, 10);
        assert!(ws[1].got.len() <= 3);
        assert_eq!(ws[1].got.len() + ws[0].refused.len(), 10);
        assert_eq!(
            ws[0].refused,
            (ws[1].got.len() as u64..10).collect::<Vec<_>>(),
            "refusals are the tail, in order"
        );
    });
}

/// `send_batch` into a capped pair: the ring and the overflow take what
/// they can, in order; the rest is left in the batch, in order; nothing is
/// lost or duplicated.
#[test]
fn send_batch_with_an_overflow_limit_leaves_the_tail_in_the_batch() {
    for limit in [0, 3] {
        watchdog(60, move || {
            let (ws, ring) = flood(4, limit, true, 100);
            let (refused, got) = (&ws[0].refused, &ws[1].got);
            let accepted = got.len();
            // Ring (4) + overflow (limit) + at most one being handled.
            assert!(accepted <= 4 + limit + 1, "accepted {accepted}");
            assert!(accepted >= 4, "a free ring of 4 takes at least 4");
            assert_eq!(got, &(0..accepted as u64).collect::<Vec<_>>());
            assert_eq!(refused, &(accepted as u64..100).collect::<Vec<_>>());
            assert_eq!(ring.sent as usize, accepted);
            // One for the call that was refused, and with an overflow one
            // for the message that found the ring full and went there.
            assert_eq!(ring.full, 1 + u64::from(limit > 0), "{ring:?}");
        });
    }
}

/// A worker stuck in a long handler: the others keep running, and senders
/// to it see Full (try_send) while blocking sends wait.
#[test]
fn a_slow_worker_does_not_stall_the_others() {
    watchdog(60, || {
        struct Slow {
            hold: Arc<AtomicBool>,
            got: u64,
        }
        impl Worker for Slow {
            type Msg = u64;
            fn handle(&mut self, _: u64, ctx: &mut Context<'_, u64>) {
                if usize::from(ctx.id()) == 0 {
                    while self.hold.load(SeqCst) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                self.got += 1;
            }
        }
        let hold = Arc::new(AtomicBool::new(true));
        let h2 = hold.clone();
        let pool = Pool::start(unpinned(2).inbox_capacity(2), move |_| Slow {
            hold: h2.clone(),
            got: 0,
        })
        .unwrap();
        let tx = pool.sender();
        let (w0, w1) = (WorkerId::from(0), WorkerId::from(1));
        let mut full = false;
        for i in 0..10 {
            if let Err(e) = tx.try_send_to(w0, i) {
                assert!(e.is_full());
                full = true;
                break;
            }
        }
        assert!(full, "the stuck worker's 2-slot inbox fills");
        for i in 0..1000 {
            tx.send_to(w1, i).unwrap();
        }
        while pool.stats().workers[1].handled < 1000 {
            std::thread::sleep(Duration::from_millis(1));
        }
        hold.store(false, SeqCst);
        let ws = pool.shutdown().unwrap();
        assert_eq!(ws[1].got, 1000);
    });
}

/// Senders that are dropped (their threads end) mid-stream lose nothing
/// they were told was sent.
#[test]
fn senders_dropped_mid_stream() {
    watchdog(60, || {
        #[derive(Default)]
        struct Count(u64);
        impl Worker for Count {
            type Msg = u64;
            fn handle(&mut self, _: u64, _: &mut Context<'_, u64>) {
                self.0 += 1;
            }
        }
        let pool = Pool::start(unpinned(2).inbox_capacity(2), |_| Count::default()).unwrap();
        let accepted = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (tx, accepted) = (pool.sender(), accepted.clone());
                std::thread::spawn(move || {
                    for i in 0..(500 * (t + 1)) {
                        if tx.try_send_keyed(&i, i).is_ok() {
                            accepted.fetch_add(1, SeqCst);
                        }
                    }
                    // tx dropped here, mid-stream for the others.
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let ws = pool.shutdown().unwrap();
        assert_eq!(ws.iter().map(|w| w.0).sum::<u64>(), accepted.load(SeqCst));
    });
}
