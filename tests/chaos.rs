//! Chaos (issue 13): random panics in the factory, `on_start`, `handle`,
//! `tick`, `on_stop` and in message `Drop`s, under both panic policies,
//! with worker-to-worker traffic, external producers and a random
//! shutdown point (`shutdown`, `shutdown_all` or a plain drop).
//!
//! Every run must end — no hang (each run has a watchdog), no abort — and
//! every message must be accounted for exactly once: refused at its send
//! (handed back), passed to `handle`, or dropped by a failed worker and
//! counted in `WorkerStats::dropped`.
//!
//! `cargo test --test chaos` runs a CI-sized batch; set
//! `SHARDPOOL_CHAOS_SCALE=100` for 100× as many runs (and
//! `SHARDPOOL_CHAOS_SEED` to start from another seed).

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use common::watchdog;
use shardpool::prelude::*;

/// Runs per CI batch, multiplied by `SHARDPOOL_CHAOS_SCALE`.
const RUNS: u64 = 50;

/// A small deterministic generator (SplitMix64): each run, worker instance
/// and producer draws from its own seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True with probability `per_mille / 1000`.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// How every message of a run ended, counted by the messages themselves.
#[derive(Default)]
struct Ledger {
    created: AtomicU64,
    destroyed: AtomicU64,
    /// Passed to `handle` (which then returned or panicked).
    handled: AtomicU64,
    /// Handed back by a failed send.
    refused: AtomicU64,
    /// Destroyed without either: must be the pool's `dropped`.
    dropped_unseen: AtomicU64,
    panics: AtomicU64,
}

/// Per-site panic odds of one run, per mille.
#[derive(Clone, Copy, Debug)]
struct Odds {
    factory: u64,
    on_start: u64,
    handle: u64,
    tick: u64,
    on_stop: u64,
    /// Of a message being armed (its `Drop` panics if the pool drops it).
    armed: u64,
}

struct Msg {
    hops: u8,
    armed: bool,
    fate: Fate,
    ledger: Arc<Ledger>,
}
#[derive(PartialEq)]
enum Fate {
    Open,
    Handled,
    Refused,
}
impl Msg {
    fn new(ledger: &Arc<Ledger>, hops: u8, armed: bool) -> Msg {
        ledger.created.fetch_add(1, SeqCst);
        Msg {
            hops,
            armed,
            fate: Fate::Open,
            ledger: ledger.clone(),
        }
    }
}
impl Drop for Msg {
    fn drop(&mut self) {
        self.ledger.destroyed.fetch_add(1, SeqCst);
        if self.fate == Fate::Open {
            self.ledger.dropped_unseen.fetch_add(1, SeqCst);
            if self.armed {
                self.ledger.panics.fetch_add(1, SeqCst);
                panic!("[chaos] a message's Drop");
            }
        }
    }
}

/// A send result, accounted: a refused message is marked and dropped.
fn account(r: Result<(), SendError<Msg>>) {
    if let Err(e) = r {
        let mut m = e.into_inner();
        m.ledger.refused.fetch_add(1, SeqCst);
        m.fate = Fate::Refused;
    }
}

struct Chaos {
    rng: Rng,
    odds: Odds,
    ledger: Arc<Ledger>,
    /// Sends `tick` may still make (keeps the pool able to go quiet).
    tick_sends: u32,
}

impl Chaos {
    fn maybe_panic(&mut self, per_mille: u64, site: &str) {
        if self.rng.chance(per_mille) {
            self.ledger.panics.fetch_add(1, SeqCst);
            panic!("[chaos] {site}");
        }
    }
    fn send_random(&mut self, ctx: &mut Context<'_, Msg>, hops: u8) {
        let peer = WorkerId::from(self.rng.below(ctx.workers() as u64) as usize);
        let armed = self.rng.chance(self.odds.armed);
        let m = Msg::new(&self.ledger, hops, armed);
        account(ctx.send_to(peer, m));
    }
}

impl Worker for Chaos {
    type Msg = Msg;
    fn on_start(&mut self, ctx: &mut Context<'_, Msg>) {
        self.send_random(ctx, 1);
        self.maybe_panic(self.odds.on_start, "on_start");
    }
    fn handle(&mut self, mut m: Msg, ctx: &mut Context<'_, Msg>) {
        m.fate = Fate::Handled;
        m.ledger.handled.fetch_add(1, SeqCst);
        if m.hops > 0 {
            let fan = 1 + self.rng.below(2);
            for _ in 0..fan {
                self.send_random(ctx, m.hops - 1);
            }
        }
        self.maybe_panic(self.odds.handle, "handle");
    }
    fn tick(&mut self, ctx: &mut Context<'_, Msg>) {
        if self.tick_sends > 0 && self.rng.chance(300) {
            self.tick_sends -= 1;
            self.send_random(ctx, 1);
        }
        self.maybe_panic(self.odds.tick, "tick");
    }
    fn on_stop(&mut self, ctx: &mut Context<'_, Msg>) {
        // Refused (the pool is quiescent), and accounted as such.
        self.send_random(ctx, 0);
        self.maybe_panic(self.odds.on_stop, "on_stop");
    }
}

/// Sums a per-worker counter out of the OpenMetrics text.
fn metric_sum(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

/// What one run went through, summed over the batch (to show the batch
/// reaches the paths it is meant to).
#[derive(Default, Debug, Clone, Copy)]
struct Seen {
    runs: u64,
    start_failed: u64,
    failed_shutdowns: u64,
    panics: u64,
    pool_dropped: u64,
    messages: u64,
}

/// One run; panics with its seed and counts if anything is off.
fn run(seed: u64) -> Seen {
    let mut rng = Rng(seed);
    let workers = 1 + rng.below(4) as usize;
    let restart = rng.chance(500);
    let odds = Odds {
        factory: rng.below(60),
        on_start: rng.below(150),
        handle: rng.below(40),
        tick: rng.below(30),
        on_stop: rng.below(300),
        armed: rng.below(400),
    };
    let policy = if restart {
        PanicPolicy::Restart {
            max_restarts: rng.below(8) as u32,
            within: Duration::from_secs(60),
        }
    } else {
        PanicPolicy::Stop
    };
    let capacity = 1usize << rng.below(5);
    let config = PoolConfig::default()
        .workers(workers)
        .affinity(Affinity::None)
        .queue_capacity(capacity)
        .batch_size(1 + rng.below(8) as usize)
        .tick_interval(Duration::from_millis(1))
        .on_panic(policy);
    let ledger = Arc::new(Ledger::default());
    let builds = Arc::new(AtomicU64::new(0));
    let factory = {
        let (ledger, builds) = (ledger.clone(), builds.clone());
        move |id: WorkerId| {
            let n = builds.fetch_add(1, SeqCst);
            let mut rng =
                Rng(seed ^ (n + 1).wrapping_mul(0x2545_f491_4f6c_dd1d) ^ id.index() as u64);
            if rng.chance(odds.factory) {
                ledger.panics.fetch_add(1, SeqCst);
                panic!("[chaos] factory");
            }
            Chaos {
                rng,
                odds,
                ledger: ledger.clone(),
                tick_sends: 20,
            }
        }
    };
    let pool = match Pool::start(config, factory) {
        Ok(pool) => pool,
        // A factory, or a first `on_start` that was not restarted.
        Err(Error::WorkerPanicked { message, .. }) => {
            assert!(message.contains("[chaos]"), "{message}");
            return Seen {
                runs: 1,
                start_failed: 1,
                ..Seen::default()
            };
        }
        Err(e) => panic!("seed {seed}: unexpected start error {e}"),
    };
    let metrics = pool.metrics_collector();
    let tx = pool.sender();
    let stop = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..1 + rng.below(2))
        .map(|p| {
            let (tx, ledger, stop) = (tx.clone(), ledger.clone(), stop.clone());
            let mut prng = Rng(seed.wrapping_add(p + 1).wrapping_mul(0x9e37_79b9));
            std::thread::spawn(move || {
                for _ in 0..2000 {
                    if stop.load(SeqCst) {
                        break;
                    }
                    let m = Msg::new(&ledger, prng.below(3) as u8, prng.chance(odds.armed));
                    let to = WorkerId::from(prng.below(workers as u64) as usize);
                    if prng.chance(500) {
                        account(tx.send_to(to, m));
                    } else {
                        account(tx.try_send_to(to, m));
                    }
                }
            })
        })
        .collect();
    // A random shutdown point: at once, or after a while, while the
    // producers may still be sending.
    match rng.below(3) {
        0 => {}
        1 => std::thread::yield_now(),
        _ => std::thread::sleep(Duration::from_micros(rng.below(3000))),
    }
    let how = rng.below(3);
    let outcome: Vec<Result<(), Error>> = match how {
        0 => match pool.shutdown() {
            Ok(ws) => ws.iter().map(|_| Ok(())).collect(),
            Err(e) => vec![Err(e)],
        },
        1 => pool
            .shutdown_all()
            .workers
            .into_iter()
            .map(|r| r.map(drop))
            .collect(),
        _ => {
            drop(pool);
            vec![]
        }
    };
    stop.store(true, SeqCst);
    for p in producers {
        p.join().expect("producer thread");
    }
    for r in &outcome {
        if let Err(e) = r {
            assert!(
                matches!(e, Error::WorkerPanicked { message, .. } if message.contains("[chaos]")),
                "seed {seed}: {e}"
            );
        }
    }
    // Every message accounted for exactly once.
    let text = metrics.to_openmetrics();
    let dropped = metric_sum(&text, "shardpool_worker_dropped_total");
    let l = &*ledger;
    let (created, destroyed) = (l.created.load(SeqCst), l.destroyed.load(SeqCst));
    let (handled, refused, unseen) = (
        l.handled.load(SeqCst),
        l.refused.load(SeqCst),
        l.dropped_unseen.load(SeqCst),
    );
    let detail = format!(
        "seed {seed}: workers {workers}, policy {policy:?}, odds {odds:?}, shutdown #{how}: \
         created {created}, destroyed {destroyed}, handled {handled}, refused {refused}, \
         dropped unseen {unseen}, pool dropped {dropped}"
    );
    assert_eq!(created, destroyed, "a message leaked: {detail}");
    assert_eq!(created, handled + refused + unseen, "{detail}");
    assert_eq!(unseen, dropped, "dropped but not counted: {detail}");
    Seen {
        runs: 1,
        start_failed: 0,
        failed_shutdowns: outcome.iter().any(Result::is_err) as u64,
        panics: l.panics.load(SeqCst),
        pool_dropped: dropped,
        messages: created,
    }
}

fn scale() -> u64 {
    std::env::var("SHARDPOOL_CHAOS_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

#[test]
fn chaos_every_run_ends_and_accounts_for_every_message() {
    common::quiet_panics_containing("[chaos]");
    let first: u64 = std::env::var("SHARDPOOL_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut total = Seen::default();
    for seed in first..first + RUNS * scale() {
        let s = watchdog(60, move || run(seed));
        total.runs += s.runs;
        total.start_failed += s.start_failed;
        total.failed_shutdowns += s.failed_shutdowns;
        total.panics += s.panics;
        total.pool_dropped += s.pool_dropped;
        total.messages += s.messages;
    }
    eprintln!("chaos: {total:?}");
    assert!(
        total.panics > 0 && total.pool_dropped > 0,
        "the batch exercised nothing: {total:?}"
    );
}
