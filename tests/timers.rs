//! `Context::send_after`: per-worker timers delivered to the worker's own
//! `handle`, in deadline order, waking a parked worker, never waited for at
//! shutdown. Lower bounds on time only (no upper-bound timing asserts).

mod common;

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::watchdog;
use shardpool::prelude::*;

fn one_worker() -> PoolConfig {
    PoolConfig::default().workers(1).affinity(Affinity::None)
}

/// `shardpool_worker_timers_dropped_total` per worker, from a collector
/// that outlives the pool (it reports the final counters).
fn timers_dropped(text: &str, worker: usize) -> u64 {
    let prefix = format!("shardpool_worker_timers_dropped_total{{worker=\"{worker}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// Schedules `(delay, tag)` pairs from `on_start` and records what arrives.
struct Scheduled {
    plan: Vec<(Duration, u32)>,
    started: Option<Instant>,
    /// (tag, time since on_start, source)
    got: Vec<(u32, Duration, Option<Endpoint>)>,
}

impl Worker for Scheduled {
    type Msg = u32;
    fn on_start(&mut self, ctx: &mut Context<'_, u32>) {
        self.started = Some(Instant::now());
        for &(delay, tag) in &self.plan {
            ctx.send_after(delay, tag).unwrap();
        }
    }
    fn handle(&mut self, tag: u32, ctx: &mut Context<'_, u32>) {
        let at = self.started.unwrap().elapsed();
        self.got.push((tag, at, ctx.source()));
    }
}

fn wait_handled<W: Worker>(pool: &Pool<W>, n: u64) {
    while pool.stats().handled() < n {
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn timers_arrive_in_deadline_order_no_sooner_than_their_delay() {
    watchdog(60, || {
        let ms = Duration::from_millis;
        // Later deadlines scheduled first; equal delays in a row keep
        // their order (FIFO among equal deadlines).
        let mut plan = vec![(ms(60), 6), (ms(30), 3), (ms(0), 0)];
        plan.extend((10..20).map(|t| (ms(10), t)));
        let expect: Vec<u32> = [0].into_iter().chain(10..20).chain([3, 6]).collect();
        let n = plan.len() as u64;
        let p = plan.clone();
        let pool = Pool::start(one_worker(), move |_| Scheduled {
            plan: p.clone(),
            started: None,
            got: vec![],
        })
        .unwrap();
        wait_handled(&pool, n);
        let w = pool.shutdown().unwrap().pop().unwrap();
        let tags: Vec<u32> = w.got.iter().map(|g| g.0).collect();
        assert_eq!(tags, expect);
        let me = Some(Endpoint::Worker(WorkerId::from(0)));
        for (tag, at, source) in &w.got {
            let delay = plan.iter().find(|p| p.1 == *tag).unwrap().0;
            assert!(
                *at >= delay,
                "timer {tag} came after {at:?}, before {delay:?}"
            );
            assert_eq!(*source, me, "a timer comes from the worker itself");
        }
    });
}

#[test]
fn a_parked_worker_wakes_for_its_timer() {
    watchdog(60, || {
        // No idle ticks and no spinning: the worker parks at once, and
        // only its timer can wake it.
        let config = one_worker()
            .tick_interval(Duration::MAX)
            .idle(IdleStrategy::Backoff {
                spins: 0,
                yields: 0,
            });
        let pool = Pool::start(config, |_| Scheduled {
            plan: vec![(Duration::from_millis(300), 1)],
            started: None,
            got: vec![],
        })
        .unwrap();
        wait_handled(&pool, 1);
        let stats = pool.stats();
        assert!(stats.workers[0].parks >= 1, "it parked: {stats}");
        let w = pool.shutdown().unwrap().pop().unwrap();
        assert_eq!(w.got.len(), 1);
        assert!(w.got[0].1 >= Duration::from_millis(300));
    });
}

#[test]
fn shutdown_drops_and_counts_pending_timers_without_waiting() {
    watchdog(60, || {
        let hour = Duration::from_secs(3600);
        let config = PoolConfig::default().workers(2).affinity(Affinity::None);
        let pool = Pool::start(config, move |id| Scheduled {
            // Worker 1 also has one due at once, which is handled.
            plan: (0..1000)
                .map(|t| (hour, t))
                .chain((id.index() == 1).then_some((Duration::ZERO, 9999)))
                .collect(),
            started: None,
            got: vec![],
        })
        .unwrap();
        let metrics = pool.sender().metrics_collector();
        wait_handled(&pool, 1);
        let started = Instant::now();
        let workers = pool.shutdown().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(50),
            "shutdown waited on an hour-long timer"
        );
        assert!(workers[0].got.is_empty());
        assert_eq!(workers[1].got.len(), 1);
        let text = metrics.to_openmetrics();
        assert_eq!(timers_dropped(&text, 0), 1000);
        assert_eq!(timers_dropped(&text, 1), 1000);
    });
}

/// Tries the error cases: an unrepresentable delay, and `on_stop`.
#[derive(Default)]
struct Refused {
    too_long: Option<String>,
    on_stop: Option<String>,
}

impl Worker for Refused {
    type Msg = String;
    fn handle(&mut self, msg: String, ctx: &mut Context<'_, String>) {
        match ctx.send_after(Duration::MAX, msg) {
            Err(SendError::DelayTooLong(m)) => self.too_long = Some(m),
            other => panic!("expected DelayTooLong, got {other:?}"),
        }
    }
    fn on_stop(&mut self, ctx: &mut Context<'_, String>) {
        match ctx.send_after(Duration::from_millis(1), "late".into()) {
            Err(SendError::Closed(m)) => self.on_stop = Some(m),
            other => panic!("expected Closed, got {other:?}"),
        }
    }
}

#[test]
fn a_delay_too_long_and_a_send_from_on_stop_hand_the_message_back() {
    watchdog(60, || {
        let pool = Pool::start(one_worker(), |_| Refused::default()).unwrap();
        pool.sender()
            .send_to(WorkerId::from(0), "forever".into())
            .unwrap();
        let w = pool
            .shutdown()
            .expect("no panic: the worker got an error")
            .pop()
            .unwrap();
        assert_eq!(w.too_long.as_deref(), Some("forever"));
        assert_eq!(w.on_stop.as_deref(), Some("late"));
        let e = SendError::DelayTooLong(());
        assert!(e.to_string().contains("delay"), "{e}");
    });
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Counts the timers it gets, each exactly once.
struct Many {
    n: u32,
    seen: Vec<bool>,
    threads_after_scheduling: Arc<AtomicU64>,
}

impl Worker for Many {
    type Msg = u32;
    fn on_start(&mut self, ctx: &mut Context<'_, u32>) {
        for i in 0..self.n {
            // Deadlines spread over 0..50 ms.
            let delay = Duration::from_micros(u64::from(i % 50) * 1000);
            ctx.send_after(delay, i).unwrap();
        }
        self.threads_after_scheduling
            .store(threads() as u64, SeqCst);
    }
    fn handle(&mut self, i: u32, _ctx: &mut Context<'_, u32>) {
        assert!(!self.seen[i as usize], "timer {i} delivered twice");
        self.seen[i as usize] = true;
    }
}

#[test]
fn a_hundred_thousand_timers_without_a_thread_each() {
    watchdog(120, || {
        const N: u32 = 100_000;
        let before = threads();
        let after = Arc::new(AtomicU64::new(0));
        let a = after.clone();
        let pool = Pool::start(one_worker(), move |_| Many {
            n: N,
            seen: vec![false; N as usize],
            threads_after_scheduling: a.clone(),
        })
        .unwrap();
        wait_handled(&pool, u64::from(N));
        let w = pool.shutdown().unwrap().pop().unwrap();
        assert!(w.seen.iter().all(|&s| s), "every timer handled");
        // Other tests run threads in this process too; a thread per timer
        // would add 100,000.
        let after = after.load(SeqCst) as usize;
        assert!(
            after < before + 100,
            "threads went from {before} to {after} with {N} timers pending"
        );
    });
}
