//! Asking a peer: the [`Context::ask`] round trip between two pinned
//! workers against the same exchange written by hand with two messages,
//! and what a pending ask costs in memory.
//!
//! Both sides run the same worker, the same message type (so every
//! message moves the same number of bytes) and the same pool
//! configuration; only the correlation differs:
//!
//! - **ask**: worker 0 calls `ctx.ask(1, |a| Q(key, a), move |r| A(r, key),
//!   deadline)`; worker 1 answers with `asked.send(2 * key)`; the `then`
//!   closure (capturing `key`) turns the answer into worker 0's message.
//! - **hand-written**: worker 0 picks an id, records `id → key` in a small
//!   table (a `HashMap` with a cheap multiplicative hash: a strong baseline,
//!   not SipHash) and sends `HQ { id, key }`; worker 1 replies to the
//!   sender with `HA { id, value }`; worker 0 takes `id` out of its table.
//!
//! In both, worker 0 checks the value against the key and counts it.
//! [`rtt_ask`] and [`rtt_hand`] do one exchange at a time, each timed with
//! `Instant` from the send to the handling of the answer (the way
//! [`crate::workloads::latency`] times a ping/pong); [`pipelined_ask`] and
//! [`pipelined_hand`] keep a window of exchanges in flight and time the
//! whole run (throughput). [`pending_memory`] makes many pending asks in
//! one callback and reports the bytes the asker's thread allocated for
//! them, beside the same for the hand-written table.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shardpool::prelude::*;

use crate::harness::{cpus, pool_config, Latch};

/// Every message of both variants: one type, so both move the same bytes.
pub enum AskMsg {
    /// From outside: start.
    Go,
    /// ask: the question about `key`.
    Q(u64, Asked<u64>),
    /// ask: the outcome `then` built, with the key it captured.
    A(Result<u64, AskError>, u64),
    /// hand-written: the question `id` about `key`.
    HQ {
        /// The asker's correlation id.
        id: u64,
        /// What is asked about.
        key: u64,
    },
    /// hand-written: the answer to question `id`.
    HA {
        /// The id the question carried.
        id: u64,
        /// The answer.
        value: u64,
    },
}

/// How worker 0 correlates its questions.
#[derive(Clone, Copy, Debug)]
pub enum Correlation {
    /// `ctx.ask` with this deadline (`Duration::MAX`: none).
    Ask(Duration),
    /// Two messages and a table, by hand.
    Hand,
}

/// A cheap hasher for sequential ids (Fibonacci hashing): what a careful
/// hand-written table would use instead of the default SipHash.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The hand-written correlation table: question id → the asker's context.
pub type Table = HashMap<u64, u64, BuildHasherDefault<IdHasher>>;

/// The answer to `key`.
#[inline]
fn answer_for(key: u64) -> u64 {
    key.wrapping_mul(2)
}

/// Worker 0's question about `key` to `peer` with `ctx.ask`: the answer
/// comes back as `A(outcome, key)`, the `then` capturing the key. Whether
/// it went out.
#[inline]
fn ask_about(ctx: &mut Context<'_, AskMsg>, peer: WorkerId, key: u64, deadline: Duration) -> bool {
    ctx.ask(
        peer,
        |asked| AskMsg::Q(key, asked),
        move |r| AskMsg::A(r, key),
        deadline,
    )
    .is_ok()
}

struct Exchanger {
    id: usize,
    how: Correlation,
    /// Exchanges to complete.
    target: u64,
    /// Exchanges in flight at most (1: one at a time, timed each).
    window: u64,
    sent: u64,
    done: u64,
    sum: u64,
    next_id: u64,
    table: Table,
    sent_at: Instant,
    samples: Vec<u32>,
    latch: Arc<Latch>,
}

impl Exchanger {
    /// Worker 0 asks worker 1 about the next key.
    #[inline]
    fn ask_next(&mut self, ctx: &mut Context<'_, AskMsg>) {
        let key = self.sent;
        self.sent += 1;
        let peer = WorkerId::from(1);
        if self.window == 1 {
            self.sent_at = Instant::now();
        }
        let sent = match self.how {
            Correlation::Ask(deadline) => ask_about(ctx, peer, key, deadline),
            Correlation::Hand => {
                let id = self.next_id;
                self.next_id = self.next_id.wrapping_add(1);
                self.table.insert(id, key);
                ctx.send_to(peer, AskMsg::HQ { id, key }).is_ok()
            }
        };
        assert!(sent, "the question went out");
    }

    /// Worker 0 counts the answer to `key` and asks the next one.
    #[inline]
    fn answered(&mut self, key: u64, value: u64, ctx: &mut Context<'_, AskMsg>) {
        if self.window == 1 {
            self.samples
                .push(self.sent_at.elapsed().as_nanos().min(u32::MAX as u128) as u32);
        }
        assert_eq!(value, answer_for(key), "the answer to its own question");
        self.sum = self.sum.wrapping_add(value);
        self.done += 1;
        if self.done == self.target {
            self.latch.set();
        } else if self.sent < self.target {
            self.ask_next(ctx);
        }
    }
}

impl Worker for Exchanger {
    type Msg = AskMsg;
    #[inline]
    fn handle(&mut self, msg: AskMsg, ctx: &mut Context<'_, AskMsg>) {
        match msg {
            AskMsg::Go => {
                for _ in 0..self.window.min(self.target) {
                    self.ask_next(ctx);
                }
            }
            // Worker 1: answer.
            AskMsg::Q(key, asked) => asked.send(answer_for(key)),
            AskMsg::HQ { id, key } => {
                let value = answer_for(key);
                if let Some(Endpoint::Worker(asker)) = ctx.source() {
                    let _ = ctx.send_to(asker, AskMsg::HA { id, value });
                }
            }
            // Worker 0: the answer.
            AskMsg::A(r, key) => {
                let value = r.expect("no deadline passes and no question is dropped");
                self.answered(key, value, ctx);
            }
            AskMsg::HA { id, value } => {
                let key = self
                    .table
                    .remove(&id)
                    .expect("an answer to a question asked");
                self.answered(key, value, ctx);
            }
        }
    }
}

/// Runs `target` exchanges worker 0 ⇄ worker 1 (pinned on the two
/// benchmark CPUs), at most `window` in flight; returns the time from the
/// start message to the last answer, and the per-exchange samples (only
/// when `window` is 1). Pool start and shutdown are outside the clock.
fn run(how: Correlation, target: u64, window: u64) -> (Duration, Vec<u32>) {
    assert!(target > 0 && window > 0);
    let (c0, c1) = cpus();
    let latch = Latch::new();
    let l2 = latch.clone();
    let pool = Pool::start(pool_config(vec![c0, c1]), move |id| Exchanger {
        id: id.index(),
        how,
        target,
        window,
        sent: 0,
        done: 0,
        sum: 0,
        next_id: 0,
        table: Table::with_capacity_and_hasher(2 * window as usize, Default::default()),
        sent_at: Instant::now(),
        samples: Vec::with_capacity(if id.index() == 0 && window == 1 {
            target as usize
        } else {
            0
        }),
        latch: l2.clone(),
    })
    .expect("pool start");
    let t0 = Instant::now();
    pool.sender()
        .send_to(WorkerId::from(0), AskMsg::Go)
        .unwrap();
    latch.wait();
    let dt = t0.elapsed();
    let mut w = pool.shutdown().expect("shutdown");
    let asker = &mut w[0];
    debug_assert_eq!(asker.id, 0);
    assert_eq!(asker.done, target, "every exchange counted once");
    assert!(asker.table.is_empty(), "every hand-written entry taken out");
    let expected: u64 = (0..target).map(answer_for).fold(0, u64::wrapping_add);
    assert_eq!(asker.sum, expected, "every answer counted once");
    (dt, std::mem::take(&mut asker.samples))
}

/// `rtts` asks worker 0 → worker 1, one at a time, `deadline` each
/// (`Duration::MAX`: none); nanoseconds per round trip.
pub fn rtt_ask(rtts: usize, deadline: Duration) -> Vec<u32> {
    run(Correlation::Ask(deadline), rtts as u64, 1).1
}

/// The same `rtts` exchanges written by hand (two messages and a table),
/// one at a time; nanoseconds per round trip.
pub fn rtt_hand(rtts: usize) -> Vec<u32> {
    run(Correlation::Hand, rtts as u64, 1).1
}

/// `n` asks worker 0 → worker 1 with `window` in flight (no deadline); the
/// time they took.
pub fn pipelined_ask(n: u64, window: u64) -> Duration {
    run(Correlation::Ask(Duration::MAX), n, window).0
}

/// The same `n` exchanges by hand with `window` in flight; the time they
/// took.
pub fn pipelined_hand(n: u64, window: u64) -> Duration {
    run(Correlation::Hand, n, window).0
}

/// What [`pending_memory`] measured, in bytes requested from the
/// allocator by the asker's thread while it made the pending questions.
#[derive(Debug, Clone, Copy)]
pub struct PendingBytes {
    /// How many questions were pending.
    pub n: u64,
    /// The questions sent as plain messages, nothing recorded: the
    /// messages' own storage (ring and overflow), the baseline.
    pub plain: i64,
    /// `ctx.ask` without a deadline.
    pub ask: i64,
    /// `ctx.ask` with a deadline.
    pub ask_deadline: i64,
    /// The hand-written table (`id → key`).
    pub hand: i64,
}

impl PendingBytes {
    /// Bytes per pending question over the plain messages: (ask, ask with
    /// a deadline, hand-written).
    pub fn per_pending(&self) -> (f64, f64, f64) {
        let per = |b: i64| (b - self.plain) as f64 / self.n as f64;
        (per(self.ask), per(self.ask_deadline), per(self.hand))
    }
}

/// What worker 0 of [`pending_memory`] does in its one callback.
#[derive(Clone, Copy)]
enum Pend {
    Plain,
    Ask(Duration),
    Hand,
}

struct Pender {
    how: Pend,
    n: u64,
    bytes: fn() -> i64,
    out: Arc<Mutex<Option<i64>>>,
    table: Table,
    /// Worker 1 keeps every question unanswered until shutdown.
    held: Vec<AskMsg>,
}

impl Worker for Pender {
    type Msg = AskMsg;
    fn handle(&mut self, msg: AskMsg, ctx: &mut Context<'_, AskMsg>) {
        if !matches!(msg, AskMsg::Go) {
            self.held.push(msg);
            return;
        }
        let peer = WorkerId::from(1);
        let before = (self.bytes)();
        for key in 0..self.n {
            let sent = match self.how {
                Pend::Plain => ctx.send_to(peer, AskMsg::HQ { id: key, key }).is_ok(),
                Pend::Ask(deadline) => ask_about(ctx, peer, key, deadline),
                Pend::Hand => {
                    self.table.insert(key, key);
                    ctx.send_to(peer, AskMsg::HQ { id: key, key }).is_ok()
                }
            };
            assert!(sent);
        }
        *self.out.lock().unwrap() = Some((self.bytes)() - before);
    }
}

/// Makes `n` pending questions worker 0 → worker 1 in one callback of
/// worker 0, once per variant (a fresh pool each), and reports the bytes
/// worker 0's thread requested meanwhile. `bytes()` must return the bytes
/// the *calling thread* has allocated and not freed so far (a counting
/// global allocator's per-thread count: see the `ask_memory` binary).
/// Worker 1 holds every question until shutdown, so every ask stays
/// pending. The table and the slab grow by doubling, so what is reported
/// includes their spare capacity, as a real worker would pay.
pub fn pending_memory(n: u64, bytes: fn() -> i64) -> PendingBytes {
    let measure = |how: Pend| {
        let out = Arc::new(Mutex::new(None));
        let o2 = out.clone();
        let config = PoolConfig::default().workers(2).affinity(Affinity::None);
        let pool = Pool::start(config, move |_| Pender {
            how,
            n,
            bytes,
            out: o2.clone(),
            table: Table::default(),
            held: Vec::new(),
        })
        .expect("pool start");
        pool.sender()
            .send_to(WorkerId::from(0), AskMsg::Go)
            .unwrap();
        let got = loop {
            if let Some(b) = *out.lock().unwrap() {
                break b;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        pool.shutdown().expect("shutdown");
        got
    };
    PendingBytes {
        n,
        plain: measure(Pend::Plain),
        ask: measure(Pend::Ask(Duration::MAX)),
        ask_deadline: measure(Pend::Ask(Duration::from_secs(3600))),
        hand: measure(Pend::Hand),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_exchange_is_counted_once() {
        if !crate::harness::tests::can_run() {
            return;
        }
        assert_eq!(rtt_ask(200, Duration::MAX).len(), 200);
        assert_eq!(rtt_ask(200, Duration::from_secs(5)).len(), 200);
        assert_eq!(rtt_hand(200).len(), 200);
        // `run` checks the count and the sum of the answers.
        pipelined_ask(2_000, 64);
        pipelined_hand(2_000, 64);
    }

    #[test]
    fn the_hand_written_table_hashes_ids_apart() {
        use std::hash::BuildHasher;
        let b = BuildHasherDefault::<IdHasher>::default();
        assert_ne!(b.hash_one(1u64), b.hash_one(2u64));
    }
}
