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

// ---------------------------------------------------------------------------
// Issue 13: no panic ends a worker thread, no misuse hangs the pool.
// Each scenario runs under a watchdog, so a regression fails instead of
// hanging.

/// Defect 1: under `Restart`, a panic in `on_stop` went to the restart
/// path — a fresh worker, its `on_start` run on a stopped pool, and
/// `shutdown` returned `Ok` with it. Failed before the fix: `Ok`, and two
/// builds.
#[test]
fn a_panic_in_on_stop_under_restart_is_reported_not_restarted() {
    watchdog(60, || {
        common::quiet_panics_containing("[expected]");
        struct BadStop;
        impl Worker for BadStop {
            type Msg = ();
            fn handle(&mut self, _: (), _: &mut Context<'_, ()>) {}
            fn on_stop(&mut self, _: &mut Context<'_, ()>) {
                panic!("[expected] cannot stop cleanly");
            }
        }
        let builds = Arc::new(AtomicU64::new(0));
        let b = builds.clone();
        let config = unpinned(1).on_panic(PanicPolicy::Restart {
            max_restarts: 10,
            within: Duration::from_secs(60),
        });
        let pool = Pool::start(config, move |_| {
            b.fetch_add(1, SeqCst);
            BadStop
        })
        .unwrap();
        match pool.shutdown() {
            Err(Error::WorkerPanicked { worker, message }) => {
                assert_eq!(worker, WorkerId::from(0));
                assert!(message.contains("cannot stop cleanly"), "{message}");
            }
            other => panic!("expected WorkerPanicked, got {:?}", other.map(|v| v.len())),
        }
        assert_eq!(builds.load(SeqCst), 1, "on_stop panics are never restarted");
    });
}

/// A message whose `Drop` panics once armed (disarmed when handled or
/// handed back).
struct Bomb {
    armed: bool,
    /// Make `handle` panic on this one.
    poison: bool,
    drops: Arc<AtomicU64>,
}
impl Drop for Bomb {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
        if self.armed {
            panic!("[expected] a message's Drop panicked");
        }
    }
}
struct BombSink;
impl Worker for BombSink {
    type Msg = Bomb;
    fn handle(&mut self, mut m: Bomb, _: &mut Context<'_, Bomb>) {
        m.armed = false;
        if m.poison {
            panic!("[expected] poisoned");
        }
    }
}

/// Defect 2: a failed worker dropped what it received outside any
/// `catch_unwind`; the first panicking `Drop` ended its thread, the rest of
/// its queues were never drained and `shutdown` waited forever. Failed
/// before the fix: the watchdog fired.
#[test]
fn a_failed_worker_survives_messages_whose_drop_panics() {
    watchdog(60, || {
        common::quiet_panics_containing("[expected]");
        let drops = Arc::new(AtomicU64::new(0));
        let bomb = |armed, poison| Bomb {
            armed,
            poison,
            drops: drops.clone(),
        };
        let pool = Pool::start(unpinned(2).batch_size(1), |_| BombSink).unwrap();
        let tx = pool.sender();
        // One claim: the poison and three armed bombs are all queued before
        // worker 0 fails, so the failed worker has to drop the bombs.
        let mut batch = vec![bomb(false, true), bomb(true, false), bomb(true, false)];
        batch.push(bomb(true, false));
        assert_eq!(tx.try_send_batch(WorkerId::from(0), &mut batch), Ok(4));
        while pool.stats().workers[0].dropped < 3 {
            std::thread::sleep(Duration::from_millis(1));
        }
        // The other worker is untouched, and the failed one still answers
        // the shutdown protocol.
        tx.send_to(WorkerId::from(1), bomb(true, false)).unwrap();
        let err = pool.shutdown().map(|v| v.len()).unwrap_err();
        assert!(matches!(err, Error::WorkerPanicked { worker, .. } if worker == WorkerId::from(0)));
        assert_eq!(drops.load(SeqCst), 5, "every message dropped exactly once");
    });
}

/// Defect 5: `fail → start_worker → fail` recursed once per restart, so an
/// `on_start` that always panics under a large `max_restarts` overflowed
/// the worker thread's stack and aborted the process. Restarts now run in a
/// loop, and back off (`PanicPolicy::Restart`), so so many restarts would
/// take days: this checks the loop ends where the budget does, as a failed
/// first start (`Pool::start` returns the error).
#[test]
fn restarts_loop_instead_of_recursing() {
    watchdog(300, || {
        common::quiet_panics_containing("[expected]");
        struct NeverStarts;
        impl Worker for NeverStarts {
            type Msg = ();
            fn handle(&mut self, _: (), _: &mut Context<'_, ()>) {}
            fn on_start(&mut self, _: &mut Context<'_, ()>) {
                panic!("[expected] on_start always fails");
            }
        }
        let builds = Arc::new(AtomicU64::new(0));
        let b = builds.clone();
        const RESTARTS: u32 = 6;
        let config = unpinned(1).on_panic(PanicPolicy::Restart {
            max_restarts: RESTARTS,
            within: Duration::from_secs(3600),
        });
        let start = Pool::start(config, move |_| {
            b.fetch_add(1, SeqCst);
            NeverStarts
        });
        match start.map(|pool| pool.workers()) {
            Err(Error::WorkerPanicked { message, .. }) => {
                assert!(message.contains("on_start always fails"), "{message}");
                assert!(message.contains("budget"), "{message}")
            }
            other => panic!("expected WorkerPanicked, got {other:?}"),
        }
        assert_eq!(builds.load(SeqCst), u64::from(RESTARTS) + 1);
    });
}

/// A worker that may own its own pool, or a sender into it.
enum Selfish {
    Work,
    OwnPool(Box<Pool<Owner>>),
    ShutdownOwnPool(Box<Pool<Owner>>),
    FloodOwnInbox(PoolSender<Selfish>),
}
struct Owner {
    handled: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    shutdown: Arc<std::sync::Mutex<Option<Error>>>,
}
impl Drop for Owner {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, SeqCst);
    }
}
impl Worker for Owner {
    type Msg = Selfish;
    fn handle(&mut self, m: Selfish, ctx: &mut Context<'_, Selfish>) {
        match m {
            Selfish::Work => {}
            Selfish::OwnPool(pool) => drop(pool),
            Selfish::ShutdownOwnPool(pool) => {
                let e = pool.shutdown().map(|v| v.len()).unwrap_err();
                *self.shutdown.lock().unwrap() = Some(e);
            }
            Selfish::FloodOwnInbox(tx) => {
                // More than the inbox holds, to this worker itself: the
                // inbox can only drain once this handler returns.
                for _ in 0..64 {
                    tx.send_to(ctx.id(), Selfish::Work).unwrap();
                }
            }
        }
        self.handled.fetch_add(1, SeqCst);
    }
}

struct OwnerProbe {
    handled: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    shutdown: Arc<std::sync::Mutex<Option<Error>>>,
}
fn start_owners(config: PoolConfig) -> (Pool<Owner>, OwnerProbe) {
    let probe = OwnerProbe {
        handled: Arc::default(),
        dropped: Arc::default(),
        shutdown: Arc::default(),
    };
    let (h, d, s) = (
        probe.handled.clone(),
        probe.dropped.clone(),
        probe.shutdown.clone(),
    );
    let pool = Pool::start(config, move |_| Owner {
        handled: h.clone(),
        dropped: d.clone(),
        shutdown: s.clone(),
    })
    .unwrap();
    (pool, probe)
}

/// Waits (bounded by the test's watchdog) until `done()`.
fn wait_for(done: impl Fn() -> bool) {
    while !done() {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Defect 6: dropping the `Pool` inside one of its own handlers waited for
/// that very worker to acknowledge the freeze. Now the pool is drained and
/// stopped on another thread. Failed before the fix: the watchdog fired.
#[test]
fn dropping_the_pool_inside_its_own_handler_stops_it_without_hanging() {
    watchdog(60, || {
        let (pool, probe) = start_owners(unpinned(2));
        let tx = pool.sender();
        for _ in 0..100 {
            tx.send_to(WorkerId::from(1), Selfish::Work).unwrap();
        }
        tx.send_to(WorkerId::from(0), Selfish::OwnPool(Box::new(pool)))
            .unwrap();
        // Both workers are dropped once the background stop has drained
        // and joined them; nothing sent before was lost.
        wait_for(|| probe.dropped.load(SeqCst) == 2);
        assert_eq!(probe.handled.load(SeqCst), 101);
        assert!(tx.is_closed());
        assert!(tx.send_to(WorkerId::from(1), Selfish::Work).is_err());
    });
}

/// Defect 6, the `shutdown` variant: it cannot return the worker it runs
/// on, so it returns `Error::ShutdownFromWorker` at once and the pool stops
/// on another thread. Failed before the fix: the watchdog fired.
#[test]
fn shutdown_inside_its_own_handler_is_an_error_not_a_hang() {
    watchdog(60, || {
        let (pool, probe) = start_owners(unpinned(2));
        let tx = pool.sender();
        tx.send_to(WorkerId::from(1), Selfish::ShutdownOwnPool(Box::new(pool)))
            .unwrap();
        wait_for(|| probe.dropped.load(SeqCst) == 2);
        let e = probe.shutdown.lock().unwrap().take();
        assert_eq!(
            e,
            Some(Error::ShutdownFromWorker {
                worker: WorkerId::from(1)
            })
        );
        assert!(e.unwrap().to_string().contains("its own worker 1"));
    });
}

/// Defect 6, blocking sends: a handler that blocks in `PoolSender::send_to`
/// on its own (full) inbox waited for itself forever. Now the send panics
/// with a message naming the misuse, and the panic policy applies. Failed
/// before the fix: the watchdog fired.
#[test]
fn a_blocking_send_from_a_handler_into_its_own_full_inbox_panics() {
    watchdog(60, || {
        let (pool, _probe) = start_owners(unpinned(1).inbox_capacity(4));
        let tx = pool.sender();
        tx.send_to(WorkerId::from(0), Selfish::FloodOwnInbox(tx.clone()))
            .unwrap();
        // (Shutting down first would close the inbox under the handler.)
        wait_for(|| pool.stats().workers[0].failed);
        match pool.shutdown().map(|v| v.len()) {
            Err(Error::WorkerPanicked { worker, message }) => {
                assert_eq!(worker, WorkerId::from(0));
                assert!(message.contains("must not block"), "{message}");
            }
            other => panic!("expected WorkerPanicked, got {other:?}"),
        }
    });
}

/// `shutdown` under `PanicPolicy::Stop` returns only the error; the healthy
/// workers' state goes with it. `shutdown_all` hands back both.
#[test]
fn shutdown_all_returns_the_survivors_with_the_failures() {
    watchdog(60, || {
        common::quiet_panics_containing("[expected]");
        struct Tally(Vec<u64>);
        impl Worker for Tally {
            type Msg = u64;
            fn handle(&mut self, m: u64, _: &mut Context<'_, u64>) {
                assert!(m != 0, "[expected] zero");
                self.0.push(m);
            }
        }
        let pool = Pool::start(unpinned(3), |_| Tally(vec![])).unwrap();
        let tx = pool.sender();
        tx.send_to(WorkerId::from(1), 0).unwrap();
        for m in 1..=10 {
            tx.send_to(WorkerId::from(m as usize % 3), m).unwrap_or(());
        }
        let report = pool.shutdown_all();
        assert_eq!(report.workers.len(), 3);
        assert!(!report.is_clean());
        match &report.workers[1] {
            Err(Error::WorkerPanicked { worker, message }) => {
                assert_eq!(*worker, WorkerId::from(1));
                assert!(message.contains("zero"), "{message}");
            }
            _ => panic!("worker 1 failed"),
        }
        assert_eq!(report.workers[0].as_ref().unwrap().0, [3, 6, 9]);
        assert_eq!(report.workers[2].as_ref().unwrap().0, [2, 5, 8]);
        assert_eq!(report.failures().count(), 1);
        assert_eq!(report.survivors().count(), 2);
        let first = report.into_result().map(|v| v.len()).unwrap_err();
        assert!(
            matches!(first, Error::WorkerPanicked { worker, .. } if worker == WorkerId::from(1))
        );
    });
}
