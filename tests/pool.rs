//! The pool's behaviour at its edges: full and blocking sends, shutdown,
//! invalid configuration, panics, dropping, ticks and placement.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::watchdog;
use shardpool::prelude::*;
use shardpool::{SendBatch, MAX_INBOX_COALESCE};

fn unpinned(workers: usize) -> PoolConfig {
    PoolConfig::default()
        .workers(workers)
        .affinity(Affinity::None)
}

/// Collects what it handles.
#[derive(Default)]
struct Collect(Vec<u64>);
impl Worker for Collect {
    type Msg = u64;
    fn handle(&mut self, m: u64, _ctx: &mut Context<'_, u64>) {
        self.0.push(m);
    }
}

/// Blocks in `handle` until the gate opens, so its inbox fills up.
struct Gated {
    gate: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    seen: Vec<u64>,
}
impl Worker for Gated {
    type Msg = u64;
    fn handle(&mut self, m: u64, _ctx: &mut Context<'_, u64>) {
        let (lock, cv) = &*self.gate;
        let mut open = lock.lock().unwrap();
        while !*open {
            open = cv.wait(open).unwrap();
        }
        self.seen.push(m);
    }
}

fn gate() -> Arc<(std::sync::Mutex<bool>, std::sync::Condvar)> {
    Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()))
}

fn open(g: &(std::sync::Mutex<bool>, std::sync::Condvar)) {
    *g.0.lock().unwrap() = true;
    g.1.notify_all();
}

#[test]
fn try_send_on_full_inbox_hands_the_same_message_back() {
    watchdog(60, || {
        let g = gate();
        let g2 = g.clone();
        let pool = Pool::start(unpinned(1).inbox_capacity(2), move |_| Gated {
            gate: g2.clone(),
            seen: vec![],
        })
        .unwrap();
        let tx = pool.sender();
        let w0 = WorkerId::from(0);
        // The worker takes the first message and blocks on it; then two
        // more fill the 2-slot inbox, and the next must come back.
        let mut sent = 0u64;
        let rejected = loop {
            match tx.try_send_to(w0, sent) {
                Ok(()) => sent += 1,
                Err(e) => break e,
            }
            assert!(sent < 10, "an inbox of 2 behind a blocked worker must fill");
        };
        assert!(rejected.is_full(), "{rejected:?}");
        assert_eq!(rejected.into_inner(), sent, "the same message comes back");
        assert!(pool.stats().channel(Endpoint::External, w0).unwrap().full >= 1);
        open(&g);
        let ws = pool.shutdown().unwrap();
        assert_eq!(ws[0].seen, (0..sent).collect::<Vec<_>>());
    });
}

#[test]
fn blocking_send_waits_then_delivers() {
    watchdog(60, || {
        let g = gate();
        let g2 = g.clone();
        let pool = Pool::start(unpinned(1).inbox_capacity(1), move |_| Gated {
            gate: g2.clone(),
            seen: vec![],
        })
        .unwrap();
        let tx = pool.sender();
        let done = Arc::new(AtomicBool::new(false));
        let (tx2, done2) = (tx.clone(), done.clone());
        let sender = std::thread::spawn(move || {
            for i in 0..20 {
                tx2.send_to(WorkerId::from(0), i).unwrap();
            }
            done2.store(true, SeqCst);
        });
        // The sender must be stuck behind the gated worker: wait until the
        // inbox has reported a full send, then check it has not finished.
        while pool
            .stats()
            .channel(Endpoint::External, WorkerId::from(0))
            .unwrap()
            .full
            == 0
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            !done.load(SeqCst),
            "20 sends cannot fit a 1-slot inbox behind a blocked worker"
        );
        open(&g);
        sender.join().unwrap();
        let ws = pool.shutdown().unwrap();
        assert_eq!(ws[0].seen, (0..20).collect::<Vec<_>>());
    });
}

#[test]
fn sends_after_shutdown_return_closed_with_the_message() {
    watchdog(60, || {
        let pool = Pool::start(unpinned(2), |_| Collect::default()).unwrap();
        let tx = pool.sender();
        tx.send_to(WorkerId::from(1), 1).unwrap();
        let ws = pool.shutdown().unwrap();
        assert_eq!(ws[1].0, [1]);
        for r in [
            tx.send_to(WorkerId::from(0), 7),
            tx.try_send_to(WorkerId::from(0), 7),
            tx.send_keyed(&"k", 7),
            tx.try_send_keyed(&"k", 7),
            tx.broadcast(7),
        ] {
            let e = r.unwrap_err();
            assert!(e.is_closed(), "{e:?}");
            assert_eq!(e.into_inner(), 7);
        }
        assert!(tx.is_closed());
    });
}

#[test]
fn out_of_range_worker_is_no_such_worker() {
    let pool = Pool::start(unpinned(2), |_| Collect::default()).unwrap();
    let e = pool.sender().send_to(WorkerId::from(2), 5).unwrap_err();
    assert!(matches!(e, SendError::NoSuchWorker(5)), "{e:?}");
    let e = pool
        .sender()
        .try_send_to(WorkerId::from(99), 6)
        .unwrap_err();
    assert!(matches!(e, SendError::NoSuchWorker(6)), "{e:?}");
    pool.shutdown().unwrap();
}

fn invalid_field(config: PoolConfig) -> &'static str {
    match Pool::start(config, |_| Collect::default()) {
        Err(Error::InvalidConfig { field, reason }) => {
            assert!(!reason.is_empty());
            field
        }
        Err(e) => panic!("expected InvalidConfig, got {e}"),
        Ok(_) => panic!("expected InvalidConfig, the pool started"),
    }
}

#[test]
fn invalid_configs_are_refused_with_their_field() {
    assert_eq!(invalid_field(PoolConfig::default().workers(0)), "workers");
    assert_eq!(
        invalid_field(unpinned(1).queue_capacity(0)),
        "inbox_capacity"
    );
    assert_eq!(
        invalid_field(unpinned(1).inbox_capacity(0)),
        "inbox_capacity"
    );
    assert_eq!(invalid_field(unpinned(1).ring_capacity(0)), "ring_capacity");
    assert_eq!(invalid_field(unpinned(1).batch_size(0)), "batch_size");
    assert_eq!(
        invalid_field(unpinned(1).tick_interval(Duration::ZERO)),
        "tick_interval"
    );
    assert_eq!(
        invalid_field(PoolConfig::default().affinity(Affinity::Cpus(vec![100_000]))),
        "affinity"
    );
    assert_eq!(
        invalid_field(PoolConfig::default().affinity(Affinity::Cpus(vec![0, 0]))),
        "affinity"
    );
    assert_eq!(
        invalid_field(
            PoolConfig::default()
                .affinity(Affinity::Cpus(vec![0]))
                .workers(2)
        ),
        "workers"
    );
    // More pinned workers than the CPUs this process may use.
    let allowed = shardpool::placement::allowed_cpus().len();
    assert_eq!(
        invalid_field(PoolConfig::default().workers(allowed + 1)),
        "workers"
    );
    let e = Pool::start(unpinned(1).batch_size(0), |_| Collect::default()).unwrap_err();
    assert!(e.to_string().contains("batch_size"), "{e}");
}

#[test]
fn capacities_are_rounded_up_and_reported() {
    let pool = Pool::start(unpinned(2).inbox_capacity(3).ring_capacity(5), |_| {
        Collect::default()
    })
    .unwrap();
    let stats = pool.stats();
    for c in &stats.channels {
        let expected = if c.from == Endpoint::External { 4 } else { 8 };
        assert_eq!(c.capacity, expected, "{c:?}");
    }
    assert_eq!(stats.channels.len(), 2 + 4);
    pool.shutdown().unwrap();
}

/// Panics on the message 13.
#[derive(Default)]
struct Fragile {
    seen: u64,
}
impl Worker for Fragile {
    type Msg = u64;
    fn handle(&mut self, m: u64, _ctx: &mut Context<'_, u64>) {
        if m == 13 {
            panic!("unlucky {m}");
        }
        self.seen += 1;
    }
}

#[test]
fn a_panicking_worker_is_reported_and_the_rest_keep_running() {
    watchdog(60, || {
        let pool = Pool::start(unpinned(2), |_| Fragile::default()).unwrap();
        let tx = pool.sender();
        let (w0, w1) = (WorkerId::from(0), WorkerId::from(1));
        tx.send_to(w1, 13).unwrap();
        // Wait until worker 1 is marked failed.
        while !pool.stats().workers[1].failed {
            std::thread::sleep(Duration::from_millis(1));
        }
        let e = tx.send_to(w1, 1).unwrap_err();
        assert!(e.is_closed());
        assert_eq!(e.into_inner(), 1);
        // Worker 0 keeps working.
        for i in 0..100 {
            tx.send_to(w0, i + 100).unwrap();
        }
        while pool.stats().workers[0].handled < 100 {
            std::thread::sleep(Duration::from_millis(1));
        }
        match pool.shutdown() {
            Err(Error::WorkerPanicked { worker, message }) => {
                assert_eq!(worker, w1);
                assert!(message.contains("unlucky 13"), "{message}");
            }
            other => panic!("expected WorkerPanicked, got {:?}", other.map(|v| v.len())),
        }
    });
}

/// Worker 0 panics; worker 1 keeps sending to it from its own handler, and
/// those sends come back Closed rather than hanging.
struct PeerOfFailed {
    closed: Arc<AtomicU64>,
}
impl Worker for PeerOfFailed {
    type Msg = u64;
    fn handle(&mut self, m: u64, ctx: &mut Context<'_, u64>) {
        if usize::from(ctx.id()) == 0 {
            panic!("worker 0 fails on {m}");
        }
        for i in 0..10 {
            if let Err(e) = ctx.send_to(WorkerId::from(0), i) {
                assert!(e.is_closed());
                self.closed.fetch_add(1, SeqCst);
            }
        }
    }
}

#[test]
fn messages_to_a_failed_worker_are_dropped_and_counted_never_hang() {
    watchdog(60, || {
        let closed = Arc::new(AtomicU64::new(0));
        let c2 = closed.clone();
        let pool = Pool::start(unpinned(2).ring_capacity(2), move |_| PeerOfFailed {
            closed: c2.clone(),
        })
        .unwrap();
        let tx = pool.sender();
        tx.send_to(WorkerId::from(0), 0).unwrap();
        for i in 0..50 {
            tx.send_to(WorkerId::from(1), i).unwrap();
        }
        // Worker 1's 500 sends each either reached the failed worker (which
        // drops and counts it) or were refused with Closed: nothing vanishes.
        // (Whichever message worker 0 panicked on is neither; if that was one
        // of worker 1's, message 0 was dropped in its place.)
        while pool.stats().workers[0].dropped + closed.load(SeqCst) != 500 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let err = pool.shutdown().err().expect("a worker panicked");
        assert!(matches!(err, Error::WorkerPanicked { worker, .. } if worker == WorkerId::from(0)));
    });
}

#[test]
fn stats_count_messages_dropped_by_a_failed_worker() {
    watchdog(60, || {
        let g = gate();
        let g2 = g.clone();
        struct PanicAfterGate(Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>);
        impl Worker for PanicAfterGate {
            type Msg = u64;
            fn handle(&mut self, _m: u64, _ctx: &mut Context<'_, u64>) {
                let (lock, cv) = &*self.0;
                let mut open = lock.lock().unwrap();
                while !*open {
                    open = cv.wait(open).unwrap();
                }
                panic!("failing with messages still queued");
            }
        }
        let pool = Pool::start(unpinned(1).batch_size(1), move |_| {
            PanicAfterGate(g2.clone())
        })
        .unwrap();
        let tx = pool.sender();
        for i in 0..5 {
            tx.send_to(WorkerId::from(0), i).unwrap();
        }
        open(&g);
        while pool.stats().workers[0].dropped < 4 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let s = pool.stats();
        assert!(s.workers[0].failed);
        assert_eq!(s.workers[0].dropped, 4, "the 4 queued behind the panic");
        assert!(pool.shutdown().is_err());
    });
}

#[test]
fn panics_in_factory_and_on_start_are_reported() {
    watchdog(60, || {
        let e = Pool::start(unpinned(2), |id| {
            if usize::from(id) == 1 {
                panic!("factory refuses {id}");
            }
            Collect::default()
        })
        .unwrap_err();
        match e {
            Error::WorkerPanicked { worker, message } => {
                assert_eq!(worker, WorkerId::from(1));
                assert!(message.contains("factory refuses 1"));
            }
            other => panic!("{other}"),
        }

        struct BadStart;
        impl Worker for BadStart {
            type Msg = ();
            fn handle(&mut self, _: (), _: &mut Context<'_, ()>) {}
            fn on_start(&mut self, _: &mut Context<'_, ()>) {
                panic!("cannot start");
            }
        }
        // A failed first start fails `start` itself (the pool is stopped).
        let e = Pool::start(unpinned(1), |_| BadStart).expect_err("a worker panicked");
        assert!(e.to_string().contains("cannot start"), "{e}");
    });
}

#[test]
fn a_panic_in_tick_is_caught() {
    watchdog(60, || {
        struct BadTick;
        impl Worker for BadTick {
            type Msg = ();
            fn handle(&mut self, _: (), _: &mut Context<'_, ()>) {}
            fn tick(&mut self, _: &mut Context<'_, ()>) {
                panic!("tick broke");
            }
        }
        let pool = Pool::start(unpinned(1).tick_interval(Duration::from_millis(1)), |_| {
            BadTick
        })
        .unwrap();
        while !pool.stats().workers[0].failed {
            std::thread::sleep(Duration::from_millis(1));
        }
        let e = pool.shutdown().err().expect("a worker panicked");
        assert!(e.to_string().contains("tick broke"), "{e}");
    });
}

/// Counts live threads through a guard owned by the worker.
struct Lifetime {
    live: Arc<AtomicUsize>,
}
impl Drop for Lifetime {
    fn drop(&mut self) {
        self.live.fetch_sub(1, SeqCst);
    }
}
impl Worker for Lifetime {
    type Msg = u64;
    fn handle(&mut self, _: u64, _: &mut Context<'_, u64>) {}
}

#[test]
fn dropping_a_pool_stops_and_joins_its_threads() {
    watchdog(60, || {
        let live = Arc::new(AtomicUsize::new(0));
        let l2 = live.clone();
        let pool = Pool::start(unpinned(3), move |_| {
            l2.fetch_add(1, SeqCst);
            Lifetime { live: l2.clone() }
        })
        .unwrap();
        let tx = pool.sender();
        for i in 0..100 {
            tx.send_keyed(&i, i).unwrap();
        }
        assert_eq!(live.load(SeqCst), 3);
        drop(pool);
        // The workers were dropped on their threads, which were joined.
        assert_eq!(live.load(SeqCst), 0);
        assert!(tx.send_to(WorkerId::from(0), 1).unwrap_err().is_closed());
    });
}

#[test]
fn dropping_a_pool_while_other_threads_send() {
    watchdog(60, || {
        let pool = Pool::start(unpinned(2).inbox_capacity(4), |_| Collect::default()).unwrap();
        let start = Arc::new(Barrier::new(3));
        let senders: Vec<_> = (0..2)
            .map(|_| {
                let (tx, start) = (pool.sender(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    let mut ok = 0u64;
                    for i in 0.. {
                        match tx.send_keyed(&i, i) {
                            Ok(()) => ok += 1,
                            Err(e) => {
                                assert!(e.is_closed());
                                return ok;
                            }
                        }
                    }
                    ok
                })
            })
            .collect();
        start.wait();
        std::thread::sleep(Duration::from_millis(20));
        drop(pool);
        for s in senders {
            s.join().unwrap();
        }
    });
}

/// Records on_start / tick / on_stop and what sends from on_stop return.
#[derive(Default)]
struct Lifecycle {
    started_on: Option<std::thread::ThreadId>,
    ticks: u64,
    stop_send: Option<Result<(), SendError<u64>>>,
}
impl Worker for Lifecycle {
    type Msg = u64;
    fn handle(&mut self, _: u64, _: &mut Context<'_, u64>) {}
    fn on_start(&mut self, _: &mut Context<'_, u64>) {
        self.started_on = Some(std::thread::current().id());
    }
    fn tick(&mut self, _: &mut Context<'_, u64>) {
        self.ticks += 1;
    }
    fn on_stop(&mut self, ctx: &mut Context<'_, u64>) {
        let me = ctx.id();
        self.stop_send = Some(ctx.send_to(me, 1));
    }
}

#[test]
fn lifecycle_ticks_while_idle_and_on_stop_sends_are_closed() {
    watchdog(60, || {
        let pool = Pool::start(unpinned(2).tick_interval(Duration::from_millis(1)), |_| {
            Lifecycle::default()
        })
        .unwrap();
        // Idle workers must keep ticking.
        while pool.stats().workers.iter().any(|w| w.ticks < 5) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let ws = pool.shutdown().unwrap();
        for w in &ws {
            assert!(w.started_on.is_some());
            assert_ne!(w.started_on, Some(std::thread::current().id()));
            assert!(w.ticks >= 5);
            match &w.stop_send {
                Some(Err(SendError::Closed(1))) => {}
                other => panic!("send from on_stop must be Closed(msg), got {other:?}"),
            }
        }
    });
}

/// Keeps sending to itself from `tick` a bounded number of times: shutdown
/// must still drain everything those ticks sent.
struct TickSender {
    left: u64,
    got: u64,
}
impl Worker for TickSender {
    type Msg = u64;
    fn handle(&mut self, _: u64, _: &mut Context<'_, u64>) {
        self.got += 1;
    }
    fn tick(&mut self, ctx: &mut Context<'_, u64>) {
        if self.left > 0 {
            self.left -= 1;
            let peer = WorkerId::from((usize::from(ctx.id()) + 1) % ctx.workers());
            ctx.send_to(peer, self.left).unwrap();
        }
    }
}

#[test]
fn shutdown_drains_what_ticks_send() {
    watchdog(60, || {
        let pool = Pool::start(unpinned(2).ring_capacity(2), |_| TickSender {
            left: 300,
            got: 0,
        })
        .unwrap();
        let ws = pool.shutdown().unwrap();
        let got: u64 = ws.iter().map(|w| w.got).sum();
        let left: u64 = ws.iter().map(|w| w.left).sum();
        assert_eq!(got, 600 - left, "every message a tick sent was handled");
    });
}

#[test]
fn keyed_routing_is_consistent_and_broadcast_reaches_everyone() {
    watchdog(60, || {
        let pool = Pool::start(unpinned(3), |_| Collect::default()).unwrap();
        let tx = pool.sender();
        for k in 0..300u64 {
            tx.send_keyed(&k, k).unwrap();
        }
        tx.broadcast(1_000).unwrap();
        let ws = pool.shutdown().unwrap();
        for (i, w) in ws.iter().enumerate() {
            assert_eq!(
                w.0.last(),
                Some(&1_000),
                "broadcast reached worker {i} last"
            );
            for &k in &w.0[..w.0.len() - 1] {
                assert_eq!(tx.worker_for(&k), WorkerId::from(i));
            }
        }
        assert_eq!(ws.iter().map(|w| w.0.len()).sum::<usize>(), 303);
    });
}

/// Worker-side routing helpers: send_keyed, broadcast, errors.
struct Router {
    got: Vec<u64>,
}
impl Worker for Router {
    type Msg = u64;
    fn handle(&mut self, m: u64, ctx: &mut Context<'_, u64>) {
        self.got.push(m);
        if m == 0 {
            ctx.broadcast(1).unwrap();
            for k in 10..20u64 {
                ctx.send_keyed(&k, k).unwrap();
            }
            let e = ctx.send_to(WorkerId::from(ctx.workers()), 9).unwrap_err();
            assert!(matches!(e, SendError::NoSuchWorker(9)));
        }
    }
}

#[test]
fn context_routing() {
    watchdog(60, || {
        let pool = Pool::start(unpinned(2), |_| Router { got: vec![] }).unwrap();
        let tx = pool.sender();
        tx.send_to(WorkerId::from(0), 0).unwrap();
        let ws = pool.shutdown().unwrap();
        for (i, w) in ws.iter().enumerate() {
            assert!(w.got.contains(&1), "broadcast reached {i}");
            for &k in w.got.iter().filter(|&&k| k >= 10) {
                assert_eq!(tx.worker_for(&k), WorkerId::from(i));
            }
        }
        let keyed: usize = ws
            .iter()
            .map(|w| w.got.iter().filter(|&&k| k >= 10).count())
            .sum();
        assert_eq!(keyed, 10);
    });
}

#[test]
fn workers_run_on_the_cpu_they_report() {
    watchdog(60, || {
        struct WhereAmI(Vec<Option<usize>>);
        impl Worker for WhereAmI {
            type Msg = ();
            fn handle(&mut self, _: (), _: &mut Context<'_, ()>) {
                self.0.push(shardpool::placement::current_cpu());
            }
        }
        let pool = Pool::start(PoolConfig::default(), |_| WhereAmI(vec![])).unwrap();
        let stats = pool.stats();
        let tx = pool.sender();
        for _ in 0..10 {
            tx.broadcast(()).unwrap();
        }
        let ws = pool.shutdown().unwrap();
        for (w, s) in ws.iter().zip(&stats.workers) {
            let cpu = s.cpu.expect("PhysicalCores pins every worker");
            assert!(w.0.iter().all(|&c| c == Some(cpu)), "{:?} vs {cpu}", w.0);
        }
    });
}

#[test]
fn idle_workers_park() {
    watchdog(60, || {
        let pool = Pool::start(unpinned(2).tick_interval(Duration::from_millis(1)), |_| {
            Collect::default()
        })
        .unwrap();
        while pool.stats().workers.iter().any(|w| w.parks < 3) {
            std::thread::sleep(Duration::from_millis(1));
        }
        // And wake up for a message.
        pool.sender().send_to(WorkerId::from(1), 5).unwrap();
        let ws = pool.shutdown().unwrap();
        assert_eq!(ws[1].0, [5]);
    });
}

/// Idle workers park even when every CPU is busy with other threads. There
/// each `yield_now` hands the CPU away for a whole time slice, so a worker
/// that counted its yields without watching the clock would yield past
/// every tick and never reach its park.
#[test]
fn idle_workers_park_while_other_threads_keep_the_cpus_busy() {
    watchdog(60, || {
        let stop = Arc::new(AtomicBool::new(false));
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let busy: Vec<_> = (0..2 * cpus)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(SeqCst) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        let pool = Pool::start(unpinned(2).tick_interval(Duration::from_millis(1)), |_| {
            Collect::default()
        })
        .unwrap();
        while pool.stats().workers.iter().any(|w| w.parks < 3) {
            std::thread::sleep(Duration::from_millis(1));
        }
        stop.store(true, SeqCst);
        for b in busy {
            b.join().unwrap();
        }
        let s = pool.stats();
        assert!(s.workers.iter().all(|w| w.ticks > 0), "{s:?}");
        pool.shutdown().unwrap();
    });
}

/// `PoolSender` is `Clone + Send + Sync` for any `Send` message (also one
/// that is not `Sync`), and the stats and config types are `Clone + Debug`.
#[test]
fn auto_traits_hold() {
    fn send_sync_clone<T: Send + Sync + Clone>() {}
    fn clone_debug<T: Clone + std::fmt::Debug>() {}
    send_sync_clone::<PoolSender<String>>();
    send_sync_clone::<PoolSender<std::cell::Cell<u64>>>();
    clone_debug::<PoolConfig>();
    clone_debug::<PoolStats>();
    clone_debug::<ChannelStats>();
    clone_debug::<WorkerStats>();
    fn error<T: std::error::Error + Send + Sync + 'static>() {}
    error::<Error>();
    error::<SendError<String>>();
}

/// Records (producer, seq) and checks FIFO per producer.
#[derive(Default)]
struct Ordered {
    next: std::collections::HashMap<u64, u64>,
    count: u64,
}
impl Worker for Ordered {
    type Msg = (u64, u64);
    fn handle(&mut self, (p, seq): (u64, u64), _: &mut Context<'_, (u64, u64)>) {
        let next = self.next.entry(p).or_default();
        assert_eq!(seq, *next, "FIFO from producer {p}");
        *next += 1;
        self.count += 1;
    }
}

#[test]
fn batched_sends_keep_order_and_lose_nothing() {
    watchdog(60, || {
        let pool = Pool::start(unpinned(3).inbox_capacity(8), |_| Ordered::default()).unwrap();
        let threads: Vec<_> = (0..3u64)
            .map(|p| {
                let tx = pool.sender();
                std::thread::spawn(move || {
                    if p == 0 {
                        // Raw batches, bigger than the inbox.
                        let mut seq = 0;
                        for _ in 0..200 {
                            let mut batch: Vec<(u64, u64)> =
                                (seq..seq + 20).map(|s| (p, s)).collect();
                            seq += 20;
                            tx.send_batch(WorkerId::from(1), &mut batch).unwrap();
                            assert!(batch.is_empty());
                        }
                    } else {
                        // Keyed, buffered per worker: per-worker sequences.
                        let mut batch = SendBatch::new(tx.clone(), 16);
                        let mut seq = [0u64; 3];
                        for k in 0..5000u64 {
                            let w = usize::from(tx.worker_for(&k));
                            batch.send_keyed(&k, (p * 10 + w as u64, seq[w])).unwrap();
                            seq[w] += 1;
                        }
                        batch.flush().unwrap();
                        assert_eq!(batch.buffered(), 0);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let ws = pool.shutdown().unwrap();
        assert_eq!(ws.iter().map(|w| w.count).sum::<u64>(), 4000 + 2 * 5000);
    });
}

#[test]
fn batch_errors_keep_the_messages() {
    watchdog(60, || {
        let pool = Pool::start(unpinned(1), |_| Collect::default()).unwrap();
        let tx = pool.sender();
        let mut batch = vec![1, 2, 3];
        let e = tx.send_batch(WorkerId::from(5), &mut batch).unwrap_err();
        assert!(matches!(e, SendError::NoSuchWorker(())));
        assert_eq!(batch, [1, 2, 3]);
        let mut buffered = SendBatch::new(tx.clone(), 100);
        buffered.send_to(WorkerId::from(0), 7).unwrap();
        assert!(matches!(
            buffered.send_to(WorkerId::from(9), 8),
            Err(SendError::NoSuchWorker(8))
        ));
        drop(buffered); // flushes the 7
        pool.shutdown().map(|ws| assert_eq!(ws[0].0, [7])).unwrap();
        let e = tx.send_batch(WorkerId::from(0), &mut batch).unwrap_err();
        assert!(e.is_closed());
        assert_eq!(batch, [1, 2, 3], "nothing sent after shutdown, all kept");
        assert!(tx
            .try_send_batch(WorkerId::from(0), &mut batch)
            .unwrap_err()
            .is_closed());
    });
}

/// Forwards what it handles to the test thread.
struct Forward(std::sync::mpsc::Sender<u64>);
impl Worker for Forward {
    type Msg = u64;
    fn handle(&mut self, m: u64, _ctx: &mut Context<'_, u64>) {
        let _ = self.0.send(m);
    }
}

#[test]
fn inbox_coalescing_never_strands_a_message() {
    // After a batch the worker leaves its inbox alone for the coalescing
    // window; a message sent then must still arrive with no later traffic
    // to pull it through, in order, whatever the window.
    // 9 workers: more rings than a resting worker scans (it then watches
    // only the control word while it rests).
    let cases = [Duration::ZERO, Duration::from_micros(1), MAX_INBOX_COALESCE]
        .into_iter()
        .map(|w| (2, w))
        .chain([(9, MAX_INBOX_COALESCE)]);
    for (workers, window) in cases {
        watchdog(60, move || {
            let (tx, rx) = std::sync::mpsc::channel();
            let tx = std::sync::Mutex::new(tx);
            let pool = Pool::start(unpinned(workers).inbox_coalesce(window), move |_| {
                Forward(tx.lock().unwrap().clone())
            })
            .unwrap();
            let sender = pool.sender();
            let to = WorkerId::from(1);
            let mut next = 0u64;
            let mut expect = 0u64;
            for round in 0..200u64 {
                let mut burst: Vec<u64> = (next..next + 2 + round % 7).collect();
                next += burst.len() as u64;
                sender.send_batch(to, &mut burst).unwrap();
                // The lone message lands while the worker may be resting.
                sender.send_to(to, next).unwrap();
                next += 1;
                while expect < next {
                    let m = rx
                        .recv_timeout(Duration::from_secs(20))
                        .unwrap_or_else(|e| panic!("{window:?}: message {expect} stranded: {e}"));
                    assert_eq!(m, expect, "{window:?}: out of order");
                    expect += 1;
                }
            }
            pool.shutdown().unwrap();
            let rest: Vec<u64> = rx.try_iter().collect();
            assert!(rest.is_empty(), "{window:?}: late messages {rest:?}");
        });
    }
}

/// Worker 0 streams 0..N to worker 1 through a tiny ring, mixing
/// `send_batch` runs of every length with single `send_to`s: everything
/// arrives once, in order, through the ring and its overflow, and each
/// accepted batch comes back empty with its capacity.
struct Mixed {
    got: Vec<u64>,
}
impl Worker for Mixed {
    type Msg = u64;
    fn handle(&mut self, n: u64, ctx: &mut Context<'_, u64>) {
        if ctx.id().index() == 1 {
            self.got.push(n);
            return;
        }
        let to = WorkerId::from(1);
        let mut batch = Vec::with_capacity(64);
        let (mut next, mut len) = (0, 0);
        while next < n {
            len = (len + 7) % 40;
            batch.extend(next..(next + len).min(n));
            next += batch.len() as u64;
            let cap = batch.capacity();
            ctx.send_batch(to, &mut batch).unwrap();
            assert!(batch.is_empty() && batch.capacity() == cap);
            if next < n {
                ctx.send_to(to, next).unwrap();
                next += 1;
            }
        }
        // Refused outright: the batch is left as it was.
        let mut bad = vec![1, 2, 3];
        assert!(matches!(
            ctx.send_batch(WorkerId::from(7), &mut bad),
            Err(SendError::NoSuchWorker(()))
        ));
        assert_eq!(bad, [1, 2, 3]);
    }
}

#[test]
fn send_batch_keeps_pair_fifo_through_ring_and_overflow() {
    watchdog(60, || {
        const N: u64 = 20_000;
        let pool = Pool::start(unpinned(2).ring_capacity(8), |_| Mixed { got: vec![] }).unwrap();
        pool.sender().send_to(WorkerId::from(0), N).unwrap();
        let stats_before_stop = loop {
            let s = pool.stats();
            if s.workers[1].handled == N {
                break s;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let ws = pool.shutdown().unwrap();
        assert_eq!(ws[1].got, (0..N).collect::<Vec<_>>());
        let ring = stats_before_stop
            .channel(Endpoint::Worker(WorkerId::from(0)), WorkerId::from(1))
            .cloned()
            .unwrap();
        assert_eq!(ring.sent, N);
        assert_eq!(ring.received, N);
        assert!(ring.overflowed > 0, "the overflow path was used: {ring:?}");
    });
}

/// Sends from `on_stop` are refused as `Closed`, and the batch is kept.
#[test]
fn send_batch_from_on_stop_is_closed_and_keeps_the_batch() {
    struct Late(Option<Vec<u64>>);
    impl Worker for Late {
        type Msg = u64;
        fn handle(&mut self, _: u64, _: &mut Context<'_, u64>) {}
        fn on_stop(&mut self, ctx: &mut Context<'_, u64>) {
            let mut batch = vec![4, 5, 6];
            let r = ctx.send_batch(WorkerId::from(0), &mut batch);
            assert!(matches!(r, Err(SendError::Closed(()))));
            self.0 = Some(batch);
        }
    }
    watchdog(60, || {
        let pool = Pool::start(unpinned(2), |_| Late(None)).unwrap();
        for w in pool.shutdown().unwrap() {
            assert_eq!(w.0, Some(vec![4, 5, 6]));
        }
    });
}
