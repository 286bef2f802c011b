//! Stall detection: a worker stuck inside a callback is reported once per
//! stall, while it is stuck, naming the callback, with a backtrace that
//! shows the stuck function; an idle worker never is; `Duration::MAX`
//! runs no watchdog at all.
//!
//! Reports are observed through `PoolConfig::on_stall` (the package has
//! no tracing subscriber). Thresholds are far below the stalls and the
//! asserts count only reports that name the stuck function, so a worker
//! the OS deschedules on a loaded machine (which looks stalled too) does
//! not make them fail.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::watchdog;
use shardpool::io::{Event, Interest, TcpListener, Token};
use shardpool::prelude::*;
use shardpool::{Callback, StallReport};

const STALL: Duration = Duration::from_millis(600);
const THRESHOLD: Duration = Duration::from_millis(50);
const WAIT: Duration = Duration::from_secs(20);
const LISTENER: Token = Token(0);

#[inline(never)]
fn shardpool_stall_test_sleeps_in_handle(d: Duration) {
    std::thread::sleep(d);
    // Keeps the sleep from being a tail call: this frame stays on the stack.
    std::hint::black_box(());
}

/// Allocates, frees and locks for `d`: the stall signal lands inside
/// `malloc`, `free` or the lock most of the time.
#[inline(never)]
fn shardpool_stall_test_allocates_in_handle(d: Duration) {
    let lock = Mutex::new(0u64);
    let start = Instant::now();
    let mut n = 0usize;
    while start.elapsed() < d {
        for _ in 0..64 {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let v: Vec<u8> = Vec::with_capacity(16 + (n >> 52));
            *lock.lock().unwrap() += v.capacity() as u64;
            std::hint::black_box(v);
        }
    }
    std::hint::black_box(lock.into_inner().unwrap());
}

#[inline(never)]
fn shardpool_stall_test_sleeps_in_tick(d: Duration) {
    std::thread::sleep(d);
    std::hint::black_box(());
}

#[inline(never)]
fn shardpool_stall_test_sleeps_in_on_io(d: Duration) {
    std::thread::sleep(d);
    std::hint::black_box(());
}

/// Whether the report's stack shows `f`: one of its raw frames is an
/// address inside `f` (always; `f`'s code is taken to be at most 4 KiB),
/// and with the `backtrace` feature its text names `f`.
fn shows(report: &StallReport, f: fn(Duration), name: &str) -> bool {
    let start = f as usize;
    let inside = report
        .frames
        .iter()
        .any(|&ip| ip > start && ip < start + 0x1000);
    if cfg!(feature = "backtrace") {
        inside && report.backtrace.contains(name)
    } else {
        inside
    }
}

enum Msg {
    /// Sleep in `handle`, then answer.
    Sleep(Duration, mpsc::Sender<()>),
    /// Allocate and lock in `handle` for that long, then answer.
    Allocate(Duration, mpsc::Sender<()>),
    /// Listen on a fresh loopback port, answer its address.
    Listen(mpsc::Sender<SocketAddr>),
}

/// Who to tell when a planned `on_io` sleep is over.
type Done = Arc<Mutex<Option<mpsc::Sender<()>>>>;

/// How a test worker stalls.
#[derive(Default, Clone)]
struct Plan {
    /// Its first tick sleeps this long.
    tick: Option<Duration>,
    /// Its first `on_io` sleeps this long, then answers.
    on_io: Option<(Duration, Done)>,
}

struct Sleeper {
    plan: Plan,
    /// True while a planned sleep runs (read by the hook).
    stuck: Arc<AtomicBool>,
    listener: Option<TcpListener>,
}

impl Worker for Sleeper {
    type Msg = Msg;

    fn handle(&mut self, msg: Msg, ctx: &mut Context<'_, Msg>) {
        match msg {
            Msg::Sleep(d, done) => {
                self.stuck.store(true, Ordering::SeqCst);
                shardpool_stall_test_sleeps_in_handle(d);
                self.stuck.store(false, Ordering::SeqCst);
                let _ = done.send(());
            }
            Msg::Allocate(d, done) => {
                shardpool_stall_test_allocates_in_handle(d);
                let _ = done.send(());
            }
            Msg::Listen(reply) => {
                let mut l = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
                ctx.io()
                    .register(&mut l, LISTENER, Interest::READABLE)
                    .unwrap();
                let _ = reply.send(l.local_addr().unwrap());
                self.listener = Some(l);
            }
        }
    }

    fn tick(&mut self, _ctx: &mut Context<'_, Msg>) {
        if let Some(d) = self.plan.tick.take() {
            self.stuck.store(true, Ordering::SeqCst);
            shardpool_stall_test_sleeps_in_tick(d);
            self.stuck.store(false, Ordering::SeqCst);
        }
    }

    fn on_io(&mut self, _event: &Event, _ctx: &mut Context<'_, Msg>) {
        while let Some(Ok(_)) = self.listener.as_ref().map(|l| l.accept()) {}
        if let Some((d, done)) = self.plan.on_io.take() {
            self.stuck.store(true, Ordering::SeqCst);
            shardpool_stall_test_sleeps_in_on_io(d);
            self.stuck.store(false, Ordering::SeqCst);
            if let Some(done) = done.lock().unwrap().take() {
                let _ = done.send(());
            }
        }
    }
}

/// A report, and whether the worker was still inside its planned sleep
/// when the hook ran.
type Seen = Arc<Mutex<Vec<(StallReport, bool)>>>;

/// A pool of two unpinned workers, both following `plan`, whose stall
/// reports land in the returned list.
fn start(name: &str, threshold: Duration, config: PoolConfig, plan: Plan) -> (Pool<Sleeper>, Seen) {
    let seen: Seen = Arc::default();
    let stuck = Arc::new(AtomicBool::new(false));
    let (s, st) = (seen.clone(), stuck.clone());
    let config = config
        .workers(2)
        .affinity(Affinity::None)
        .name(name)
        .stall_threshold(threshold)
        .on_stall(move |r| {
            s.lock()
                .unwrap()
                .push((r.clone(), st.load(Ordering::SeqCst)))
        });
    let pool = Pool::start(config, move |_| Sleeper {
        plan: plan.clone(),
        stuck: stuck.clone(),
        listener: None,
    })
    .unwrap();
    (pool, seen)
}

/// Whether a thread of this process is named `name`.
fn thread_named(name: &str) -> bool {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return false;
    };
    tasks
        .flatten()
        .any(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim_end() == name))
}

/// Waits until `cond` holds (or fails the test after `WAIT`).
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_sleeping_handler_is_reported_once_while_it_sleeps_with_its_backtrace() {
    watchdog(60, || {
        let (pool, seen) = start("stallh", THRESHOLD, PoolConfig::default(), Plan::default());
        if cfg!(target_os = "linux") {
            // Named by itself once it runs.
            wait_until("the watchdog thread", || thread_named("stallh-stall"));
        }
        let (tx, rx) = mpsc::channel();
        let w0 = WorkerId::from(0);
        pool.sender().send_to(w0, Msg::Sleep(STALL, tx)).unwrap();
        rx.recv_timeout(WAIT).expect("the handler returned");
        // The stall's final length reaches the stats once the watchdog
        // sees the worker back (within a sampling period).
        wait_until("longest_stall of the finished stall", || {
            pool.stats().worker(w0).unwrap().longest_stall >= Duration::from_millis(500)
        });
        let stats = pool.stats();
        let w = stats.worker(w0).unwrap();
        let reports = seen.lock().unwrap().clone();
        let of_sleep: Vec<_> = reports
            .iter()
            .filter(|(r, _)| {
                shows(
                    r,
                    shardpool_stall_test_sleeps_in_handle,
                    "shardpool_stall_test_sleeps_in_handle",
                )
            })
            .collect();
        assert_eq!(
            of_sleep.len(),
            1,
            "one report for the one stall: {reports:#?}"
        );
        let (report, still_stuck) = of_sleep[0];
        // The stack shows the sleeping function, so it was taken during the
        // sleep. The hook runs after symbolizing, which with the
        // `backtrace` feature parses the test binary's debug info first
        // (longer than the sleep): only without it is the hook itself
        // sure to run during the stall.
        if !cfg!(feature = "backtrace") {
            assert!(still_stuck, "reported after the stall ended");
        }
        assert_eq!(report.worker, w0);
        assert_eq!(report.callback, Callback::Handle);
        assert!(
            report.elapsed > THRESHOLD && report.elapsed < STALL,
            "{report:?}"
        );
        assert_eq!(report.threshold, THRESHOLD);
        assert!(w.stalls >= 1, "{stats}");
        assert!(w.longest_stall >= Duration::from_millis(500), "{stats}");
        assert!(w.longest_stall < Duration::from_secs(10), "{stats}");
        // Visible in the table and in OpenMetrics.
        assert!(stats.to_string().contains("longest"));
        assert!(stats
            .to_openmetrics(false)
            .contains("shardpool_worker_stalls_total{worker=\"0\"} "));
        pool.shutdown().unwrap();
        if cfg!(target_os = "linux") {
            assert!(!thread_named("stallh-stall"), "watchdog not joined");
        }
    });
}

#[test]
fn a_stall_inside_malloc_and_a_lock_is_walked_without_deadlock() {
    watchdog(60, || {
        let (pool, seen) = start("stallm", THRESHOLD, PoolConfig::default(), Plan::default());
        let w0 = WorkerId::from(0);
        let (tx, rx) = mpsc::channel();
        let busy = Msg::Allocate(Duration::from_millis(400), tx);
        pool.sender().send_to(w0, busy).unwrap();
        // The interrupted allocator and lock still work: the handler ends,
        // and the worker goes on handling.
        rx.recv_timeout(WAIT)
            .expect("the allocating handler returned");
        let (tx, rx) = mpsc::channel();
        pool.sender()
            .send_to(w0, Msg::Sleep(Duration::ZERO, tx))
            .unwrap();
        rx.recv_timeout(WAIT)
            .expect("the worker handles after its stall");
        let of_busy = |reports: &[(StallReport, bool)]| {
            reports
                .iter()
                .filter(|(r, _)| {
                    shows(
                        r,
                        shardpool_stall_test_allocates_in_handle,
                        "shardpool_stall_test_allocates_in_handle",
                    )
                })
                .cloned()
                .collect::<Vec<_>>()
        };
        // The hook runs after symbolizing, which may outlast the stall.
        wait_until("the report", || !of_busy(&seen.lock().unwrap()).is_empty());
        // The watchdog has seen the worker back (its longest_stall is final).
        wait_until("the end of the stall", || {
            pool.stats().worker(w0).unwrap().longest_stall >= Duration::from_millis(300)
        });
        let reports = seen.lock().unwrap().clone();
        let of_busy = of_busy(&reports);
        assert_eq!(of_busy.len(), 1, "{reports:#?}");
        assert_eq!(of_busy[0].0.callback, Callback::Handle);
        pool.shutdown().unwrap();
    });
}

#[test]
fn an_idle_parked_worker_is_never_reported() {
    watchdog(60, || {
        // Parks at once and never ticks: nothing runs for the whole second.
        let config = PoolConfig::default()
            .idle(IdleStrategy::Backoff {
                spins: 0,
                yields: 0,
            })
            .tick_interval(Duration::from_secs(3600));
        let (pool, seen) = start("stalli", Duration::from_millis(20), config, Plan::default());
        // From the moment both have parked (a worker descheduled while
        // starting, on a loaded machine, may be reported before that).
        wait_until("both workers parked", || {
            pool.stats().workers.iter().all(|w| w.parks >= 1)
        });
        let before = pool.stats();
        let reported = seen.lock().unwrap().len();
        std::thread::sleep(Duration::from_secs(1));
        let stats = pool.stats();
        for (w, b) in stats.workers.iter().zip(&before.workers) {
            assert_eq!(w.stalls, b.stalls, "{stats}");
            assert_eq!(w.longest_stall, b.longest_stall, "{stats}");
        }
        assert_eq!(seen.lock().unwrap().len(), reported);
        pool.shutdown().unwrap();
    });
}

#[test]
fn duration_max_runs_no_watchdog_and_reports_nothing() {
    watchdog(60, || {
        let (pool, seen) = start(
            "stallo",
            Duration::MAX,
            PoolConfig::default(),
            Plan::default(),
        );
        if cfg!(target_os = "linux") {
            // The pool's worker threads are there (named by themselves,
            // before they report ready), the watchdog is not.
            assert!(thread_named("stallo-0"));
            assert!(!thread_named("stallo-stall"));
        }
        let (tx, rx) = mpsc::channel();
        let sleep = Msg::Sleep(Duration::from_millis(300), tx);
        pool.sender().send_to(WorkerId::from(0), sleep).unwrap();
        rx.recv_timeout(WAIT).expect("the handler returned");
        let stats = pool.stats();
        assert!(stats.workers.iter().all(|w| w.stalls == 0), "{stats}");
        assert!(seen.lock().unwrap().is_empty());
        pool.shutdown().unwrap();
    });
}

#[test]
fn a_stalled_tick_names_tick() {
    watchdog(60, || {
        let plan = Plan {
            tick: Some(STALL),
            ..Plan::default()
        };
        let config = PoolConfig::default().tick_interval(Duration::from_millis(5));
        let (pool, seen) = start("stallt", THRESHOLD, config, plan);
        wait_until("the tick's stall report", || {
            seen.lock().unwrap().iter().any(|(r, _)| {
                shows(
                    r,
                    shardpool_stall_test_sleeps_in_tick,
                    "shardpool_stall_test_sleeps_in_tick",
                )
            })
        });
        let reports = seen.lock().unwrap().clone();
        for (r, _) in &reports {
            if shows(r, shardpool_stall_test_sleeps_in_tick, "") {
                assert_eq!(r.callback, Callback::Tick, "{r:?}");
                assert_eq!(r.callback.to_string(), "tick");
            }
        }
        pool.shutdown().unwrap();
    });
}

#[test]
fn a_stalled_on_io_names_on_io() {
    watchdog(60, || {
        let (done_tx, done_rx) = mpsc::channel();
        let plan = Plan {
            on_io: Some((STALL, Arc::new(Mutex::new(Some(done_tx))))),
            ..Plan::default()
        };
        let (pool, seen) = start("stallio", THRESHOLD, PoolConfig::default(), plan);
        let (tx, rx) = mpsc::channel();
        pool.sender()
            .send_to(WorkerId::from(1), Msg::Listen(tx))
            .unwrap();
        let addr = rx.recv_timeout(WAIT).expect("listening");
        let _client = std::net::TcpStream::connect(addr).unwrap();
        done_rx.recv_timeout(WAIT).expect("on_io returned");
        wait_until("a report naming on_io", || {
            seen.lock().unwrap().iter().any(|(r, _)| {
                shows(
                    r,
                    shardpool_stall_test_sleeps_in_on_io,
                    "shardpool_stall_test_sleeps_in_on_io",
                )
            })
        });
        for (r, stuck) in seen.lock().unwrap().iter() {
            if shows(r, shardpool_stall_test_sleeps_in_on_io, "") {
                assert_eq!(r.callback, Callback::OnIo, "{r:?}");
                assert_eq!(r.worker, WorkerId::from(1));
                assert!(*stuck || cfg!(feature = "backtrace"));
            }
        }
        pool.shutdown().unwrap();
    });
}

#[test]
fn a_zero_threshold_is_refused_naming_the_field() {
    let config = PoolConfig::default()
        .workers(1)
        .affinity(Affinity::None)
        .stall_threshold(Duration::ZERO);
    match Pool::start(config, |_| Sleeper {
        plan: Plan::default(),
        stuck: Arc::default(),
        listener: None,
    }) {
        Err(Error::InvalidConfig { field, .. }) => assert_eq!(field, "stall_threshold"),
        other => panic!("expected InvalidConfig, got {:?}", other.map(|_| ())),
    }
}
