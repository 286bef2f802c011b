//! The loop each worker thread runs.
//!
//! ```text
//! loop {
//!     control word changed?  -> freeze (ack, wait) / stop
//!     move overflow into rings (oldest first)
//!     drain <= batch_size from the inbox, then from each inbound ring -> handle
//!     publish staged sends (one light barrier), tick, publish again
//!     nothing arrived? -> idle: hot-poll the queues, spin, yield, then park
//!                         until a message, a control change or the next tick
//! }
//! ```
//!
//! Panics in `on_start`, `handle` and `tick` are caught here. The failed
//! worker keeps its thread: it goes on draining its queues, dropping and
//! counting what arrives, so no sender ever waits on it and shutdown still
//! sees every message accounted for.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::{Acquire, Release};
use std::time::{Duration, Instant};

use crate::config::{IdleStrategy, PanicPolicy, PoolConfig};
use crate::lockfree::inbox::InboxReceiver;
use crate::lockfree::ring::Consumer;
use crate::lockfree::shutdown::control;
use crate::lockfree::sync::Arc;
use crate::mesh::Outbound;
use crate::shared::Shared;
use crate::{Context, Worker, WorkerId};

/// What a worker thread hands back when it ends.
pub(crate) struct WorkerExit<W> {
    /// The worker, unless it failed or never started.
    pub(crate) worker: Option<W>,
    /// The first panic message, if the worker panicked.
    pub(crate) panic: Option<String>,
}

impl<W> WorkerExit<W> {
    /// A thread that gave up before its worker ran.
    pub(crate) fn not_started() -> Self {
        WorkerExit {
            worker: None,
            panic: None,
        }
    }
}

/// The queues a worker consumes: its inbox and `ring[src][me]` for every
/// `src`, allocated on the worker's own thread.
pub(crate) struct Inbound<M> {
    pub(crate) inbox: InboxReceiver<M>,
    pub(crate) rings: Vec<Consumer<M>>,
}

/// Builds a worker (the pool's factory, shared by all worker threads).
pub(crate) type Factory<W> = Arc<dyn Fn(WorkerId) -> W + Send + Sync>;

/// Settings the loop reads on every iteration.
#[derive(Clone, Copy)]
pub(crate) struct LoopConfig {
    pub(crate) batch: usize,
    pub(crate) idle: IdleStrategy,
    pub(crate) tick_interval: Duration,
    pub(crate) on_panic: PanicPolicy,
    /// `PoolConfig::inbox_coalesce`, in spins (see [`spins_for`]).
    pub(crate) inbox_coalesce: u32,
}

impl From<&PoolConfig> for LoopConfig {
    fn from(config: &PoolConfig) -> Self {
        LoopConfig {
            batch: config.batch_size,
            idle: config.idle,
            tick_interval: config.tick_interval,
            on_panic: config.on_panic,
            inbox_coalesce: spins_for(config.inbox_coalesce),
        }
    }
}

/// Local copies of the single-writer statistics, published once per
/// iteration.
#[derive(Default)]
struct Local {
    handled: u64,
    ticks: u64,
    parks: u64,
}

pub(crate) struct Runtime<W: Worker> {
    me: usize,
    worker: W,
    out: Outbound<W::Msg>,
    inbox: InboxReceiver<W::Msg>,
    rx: Box<[Consumer<W::Msg>]>,
    shared: Arc<Shared<W::Msg>>,
    factory: Factory<W>,
    cfg: LoopConfig,
    panic: Option<String>,
    /// When the recent restarts happened (for the restart budget).
    restarts: VecDeque<Instant>,
    control_seen: u64,
    local: Local,
    /// When the worker last started being idle, and when its next idle tick
    /// is due.
    tick_due: Option<Instant>,
    /// The last park ended by its timeout: the next idle period goes
    /// straight to parking instead of spinning.
    skip_spin: bool,
    /// Spins to wait before polling the inbox again, after a batch that
    /// emptied it (`PoolConfig::inbox_coalesce`): a worker that re-reads
    /// the slot a sender is writing takes that cache line away, and the
    /// sender's next claim (a locked instruction) stalls until it is back.
    inbox_rest: u32,
}

/// Up to this many inbound rings, a spinning worker polls its queues
/// directly instead of only its bell.
const POLL_LIMIT: usize = 8;

/// Polls of the queues an idle worker makes before it announces that it is
/// watching (and producers start paying to wake it).
const HOT_POLLS: u32 = 64;

/// How many `spin_loop` hints take about `window` on this CPU (a pause
/// costs ~10 ns on some x86 cores and ~40 ns on others). Measured once per
/// process; the fastest of a few short runs, so a preemption during the
/// measurement errs towards a shorter window.
pub(crate) fn spins_for(window: Duration) -> u32 {
    static PAUSE_PS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    if window.is_zero() {
        return 0;
    }
    let pause_ps = *PAUSE_PS.get_or_init(|| {
        const SPINS: u32 = 1000;
        (0..3)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..SPINS {
                    std::hint::spin_loop();
                }
                (t.elapsed().as_nanos() as u64 * 1000 / SPINS as u64).max(1)
            })
            .min()
            .unwrap_or(1000)
    });
    let spins = window.as_nanos() as u64 * 1000 / pause_ps;
    spins.clamp(1, u32::MAX as u64) as u32
}

/// Whether a message waits in the inbox or any inbound ring, or the control
/// word changed. Takes the fields it needs, so callers can hold other
/// borrows of the runtime.
#[inline]
fn pending<M>(
    inbox: &mut InboxReceiver<M>,
    rx: &mut [Consumer<M>],
    shared: &Shared<M>,
    control_seen: u64,
) -> bool {
    inbox.has_pending() || rings_pending(rx, shared, control_seen)
}

/// [`pending`] without the inbox: a message in one of `rx`, or a new
/// control word.
#[inline]
fn rings_pending<M>(rx: &mut [Consumer<M>], shared: &Shared<M>, control_seen: u64) -> bool {
    rx.iter_mut().any(|c| c.has_pending()) || shared.control.load(Acquire) != control_seen
}

/// The message of a caught panic.
pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        String::from("(a panic payload that is not a string)")
    }
}

impl<W: Worker> Runtime<W> {
    pub(crate) fn new(
        me: usize,
        worker: W,
        out: Outbound<W::Msg>,
        inbound: Inbound<W::Msg>,
        shared: Arc<Shared<W::Msg>>,
        factory: Factory<W>,
        cfg: LoopConfig,
    ) -> Self {
        Runtime {
            me,
            worker,
            out,
            inbox: inbound.inbox,
            rx: inbound.rings.into_boxed_slice(),
            shared,
            factory,
            cfg,
            panic: None,
            restarts: VecDeque::new(),
            control_seen: 0,
            local: Local::default(),
            tick_due: None,
            skip_spin: false,
            inbox_rest: 0,
        }
    }

    /// Runs the worker until the pool stops it.
    pub(crate) fn run(mut self) -> WorkerExit<W> {
        let id = WorkerId::from(self.me);
        self.start_worker();
        loop {
            let c = self.shared.control.load(Acquire);
            if c != self.control_seen && self.on_control(c) {
                break;
            }
            let work = self.iteration();
            if work > 0 {
                self.tick_due = None;
                self.skip_spin = false;
            } else if self.out.has_overflow() {
                // A peer's ring is full; it will drain it. Give it the CPU,
                // and keep the tick coming while waiting.
                self.tick_when_due();
                std::thread::yield_now();
            } else {
                self.idle();
            }
        }
        // Stopped: the pool is quiescent. Sends from on_stop are refused.
        self.out.close();
        if self.panic.is_none() {
            let stopped = catch_unwind(AssertUnwindSafe(|| {
                let mut ctx = Context { out: &mut self.out };
                self.worker.on_stop(&mut ctx);
            }));
            if let Err(payload) = stopped {
                self.fail(payload);
            }
        }
        self.publish_counters();
        tracing::debug!(worker = %id, "worker stopped");
        let worker = if self.panic.is_none() {
            Some(self.worker)
        } else {
            None
        };
        WorkerExit {
            worker,
            panic: self.panic,
        }
    }

    /// Runs `on_start` (after the first start or a restart).
    fn start_worker(&mut self) {
        let started = catch_unwind(AssertUnwindSafe(|| {
            let mut ctx = Context { out: &mut self.out };
            self.worker.on_start(&mut ctx);
        }));
        self.out.flush();
        if let Err(payload) = started {
            self.fail(payload);
        }
    }

    /// Handles a caught panic: restarts the worker if the policy and its
    /// budget allow, else marks it failed — from then on it drops what it
    /// receives.
    fn fail(&mut self, payload: Box<dyn std::any::Any + Send>) {
        let mut message = panic_message(payload);
        tracing::error!(worker = self.me, panic = %message, "worker panicked");
        if let PanicPolicy::Restart {
            max_restarts,
            within,
        } = self.cfg.on_panic
        {
            let now = Instant::now();
            while self
                .restarts
                .front()
                .is_some_and(|t| now.duration_since(*t) >= within)
            {
                self.restarts.pop_front();
            }
            if self.restarts.len() < max_restarts as usize {
                self.restarts.push_back(now);
                let factory = self.factory.clone();
                let id = WorkerId::from(self.me);
                match catch_unwind(AssertUnwindSafe(|| factory(id))) {
                    Ok(fresh) => {
                        let old = std::mem::replace(&mut self.worker, fresh);
                        // A Drop that panics must not take the thread down.
                        let _ = catch_unwind(AssertUnwindSafe(move || drop(old)));
                        self.shared.workers[self.me].counters.restarts.add(1);
                        tracing::warn!(worker = self.me, "worker restarted");
                        self.start_worker();
                        return;
                    }
                    Err(p) => {
                        message = format!("{message} (restart failed: {})", panic_message(p));
                    }
                }
            } else {
                message = format!(
                    "{message} (restart budget of {max_restarts} within {within:?} used up)"
                );
            }
        }
        let slot = &self.shared.workers[self.me];
        *slot.panic.lock().unwrap_or_else(|e| e.into_inner()) = Some(message.clone());
        slot.failed.store(true, Release);
        self.shared.failures.fetch_add(1, Release);
        if self.panic.is_none() {
            self.panic = Some(message);
        }
    }

    /// One pass over every inbound queue. Returns how many messages it took.
    fn iteration(&mut self) -> usize {
        self.out.refresh_peers();
        self.out.flush_overflow();
        let work = if self.panic.is_none() {
            let batch = self.cfg.batch;
            let (worker, out, inbox, rx) = (
                &mut self.worker,
                &mut self.out,
                &mut self.inbox,
                &mut self.rx,
            );
            let handled = &mut self.local.handled;
            let inbox_rest = &mut self.inbox_rest;
            let coalesce = self.cfg.inbox_coalesce;
            let result = catch_unwind(AssertUnwindSafe(|| {
                let mut ctx = Context { out };
                let mut handle = |msg| {
                    worker.handle(msg, &mut ctx);
                    *handled += 1;
                };
                let mut n = 0;
                if *inbox_rest == 0 {
                    n = inbox.pop_batch(batch, &mut handle);
                    // Two or more at once: a stream, worth coalescing. A
                    // lone message (request/response) never waits.
                    if n >= 2 && n < batch {
                        *inbox_rest = coalesce;
                    }
                } else {
                    // Bounded: busy rings cannot keep the inbox waiting
                    // for more than a few iterations.
                    *inbox_rest /= 2;
                }
                for c in rx.iter_mut() {
                    n += c.pop_batch(batch, &mut handle);
                }
                n
            }));
            match result {
                Ok(n) => n,
                Err(payload) => {
                    self.fail(payload);
                    1
                }
            }
        } else {
            self.drain_and_drop()
        };
        self.out.flush();
        if work > 0 {
            self.tick();
        }
        self.publish_counters();
        work
    }

    /// A failed worker's iteration: take everything, drop it, count it.
    fn drain_and_drop(&mut self) -> usize {
        let batch = self.cfg.batch;
        let mut n = self.inbox.pop_batch(batch, drop);
        for c in self.rx.iter_mut() {
            n += c.pop_batch(batch, drop);
        }
        self.shared.workers[self.me].counters.dropped.add(n as u64);
        n
    }

    fn tick(&mut self) {
        if self.panic.is_some() {
            return;
        }
        self.local.ticks += 1;
        let ticked = catch_unwind(AssertUnwindSafe(|| {
            let mut ctx = Context { out: &mut self.out };
            self.worker.tick(&mut ctx);
        }));
        if let Err(payload) = ticked {
            self.fail(payload);
        }
        self.out.flush();
    }

    fn publish_counters(&self) {
        let c = &self.shared.workers[self.me].counters;
        c.handled.set(self.local.handled);
        c.ticks.set(self.local.ticks);
        c.parks.set(self.local.parks);
    }

    /// Nothing arrived in the last iteration.
    fn idle(&mut self) {
        if self.inbox_rest > 0 {
            // Let messages land in the inbox; meanwhile watch the control
            // word, and the rings unless there are so many that scanning
            // them costs more than the short wait (they are polled again
            // right after it).
            let rings: &mut [Consumer<W::Msg>] = if self.rx.len() < POLL_LIMIT {
                &mut self.rx
            } else {
                &mut []
            };
            for _ in 0..std::mem::take(&mut self.inbox_rest) {
                if rings_pending(rings, &self.shared, self.control_seen) {
                    return;
                }
                std::hint::spin_loop();
            }
            return;
        }
        // Hot poll first: still marked running, so producers pay nothing to
        // wake us, and no clock read or fence on the way to the next message.
        if self.rx.len() < POLL_LIMIT && !self.skip_spin {
            for _ in 0..HOT_POLLS {
                if pending(
                    &mut self.inbox,
                    &mut self.rx,
                    &self.shared,
                    self.control_seen,
                ) {
                    return;
                }
                std::hint::spin_loop();
            }
        }
        let Some(due) = self.tick_when_due() else {
            return;
        };
        match self.cfg.idle {
            IdleStrategy::BusyPoll => std::hint::spin_loop(),
            IdleStrategy::Backoff { spins, yields } => self.sleep(spins, yields, due),
        }
    }

    /// Runs `tick` if a tick interval has passed since the last work or
    /// tick and returns `None`; else returns when the next tick is due.
    fn tick_when_due(&mut self) -> Option<Instant> {
        let now = Instant::now();
        let due = *self.tick_due.get_or_insert(now + self.cfg.tick_interval);
        if now < due {
            return Some(due);
        }
        self.tick();
        self.publish_counters();
        self.tick_due = Some(now + self.cfg.tick_interval);
        None
    }

    /// Spin, yield, then park until a message, a control change or `due`.
    ///
    /// While spinning, a worker with few inbound queues polls them directly
    /// and stays marked running, so producers pay nothing to wake it; with
    /// more than [`POLL_LIMIT`] it watches only its bell (one line) and
    /// re-checks its queues every 64 spins, so idle cost does not grow with
    /// the number of peers. Parking is the only step that pays the heavy
    /// barrier.
    ///
    /// Spinning and yielding stop when the tick is due. An idle period
    /// that reached its tick without a message counts like a park that
    /// timed out: the next one parks directly.
    fn sleep(&mut self, spins: u32, yields: u32, due: Instant) {
        let signal = &self.shared.workers[self.me].signal;
        let poll = self.rx.len() < POLL_LIMIT;
        if !self.skip_spin {
            if !poll {
                signal.begin_watch();
            }
            for i in 0..spins {
                let rescan = poll || i % 64 == 0;
                if (rescan
                    && pending(
                        &mut self.inbox,
                        &mut self.rx,
                        &self.shared,
                        self.control_seen,
                    ))
                    || (!poll && signal.rung())
                {
                    signal.wake();
                    return;
                }
                if i % 64 == 63 && Instant::now() >= due {
                    signal.wake();
                    self.skip_spin = true;
                    return;
                }
                std::hint::spin_loop();
            }
            for _ in 0..yields {
                if pending(
                    &mut self.inbox,
                    &mut self.rx,
                    &self.shared,
                    self.control_seen,
                ) {
                    signal.wake();
                    return;
                }
                std::thread::yield_now();
                // On a busy CPU one yield can last a whole time slice of
                // another thread: without this check 256 of them would
                // delay the tick by a second and the worker would never
                // reach its park.
                if Instant::now() >= due {
                    signal.wake();
                    self.skip_spin = true;
                    return;
                }
            }
        }
        self.skip_spin = false;
        let now = Instant::now();
        if now >= due {
            signal.wake();
            return;
        }
        signal.prepare_park();
        if pending(
            &mut self.inbox,
            &mut self.rx,
            &self.shared,
            self.control_seen,
        ) {
            signal.wake();
            return;
        }
        self.local.parks += 1;
        self.shared.workers[self.me]
            .counters
            .parks
            .set(self.local.parks);
        tracing::trace!(worker = self.me, "park");
        signal.park(Some(due - now));
        signal.wake();
        tracing::trace!(worker = self.me, "unpark");
        // Woken by the timer: the next idle period goes straight to parking.
        self.skip_spin = Instant::now() >= due;
    }

    /// Reacts to a new control word. Returns whether to stop.
    fn on_control(&mut self, c: u64) -> bool {
        self.control_seen = c;
        match control::phase(c) {
            control::STOP => true,
            control::FREEZE => {
                // At the loop top everything staged is published. Ack the
                // freeze and wait for the pool's verdict.
                self.publish_counters();
                let slot = &self.shared.workers[self.me];
                slot.counters.ack.set_release(control::epoch(c));
                let shared = self.shared.clone();
                let signal = &shared.workers[self.me].signal;
                loop {
                    signal.prepare_park();
                    let next = shared.control.load(Acquire);
                    if next != c {
                        signal.wake();
                        return self.on_control(next);
                    }
                    signal.park(Some(Duration::from_millis(10)));
                    signal.wake();
                }
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spins_for_a_window() {
        assert_eq!(spins_for(Duration::ZERO), 0);
        // Any positive window spins at least once, and a longer window
        // never spins less (the calibration is measured once per process).
        let short = spins_for(Duration::from_nanos(1));
        let long = spins_for(Duration::from_micros(100));
        assert!(short >= 1);
        assert!(long >= short);
    }
}
