//! The loop each worker thread runs: react to the control word, move
//! overflow into the rings, drain a batch from every inbound queue into
//! `handle`, publish what was sent, `tick`, and hand over to [`Idle`] when
//! nothing arrived. Drawn in `docs/architecture.md` ("The worker loop").
//!
//! Panics in `on_start`, `handle` and `tick` are caught here. The failed
//! worker keeps its thread: it goes on draining its queues, dropping and
//! counting what arrives, so no sender ever waits on it and shutdown still
//! sees every message accounted for.

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

use super::idle::{spins_for, Idle, Wake};
use super::inbound::Inbound;
use super::reactor::Reactor;
use super::restart::{panic_message, RestartBudget};

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
    /// `PoolConfig::io_poll_interval`.
    pub(crate) io_poll_interval: Duration,
}

impl From<&PoolConfig> for LoopConfig {
    fn from(config: &PoolConfig) -> Self {
        LoopConfig {
            batch: config.batch_size,
            idle: config.idle,
            tick_interval: config.tick_interval,
            on_panic: config.on_panic,
            inbox_coalesce: spins_for(config.inbox_coalesce),
            io_poll_interval: config.io_poll_interval,
        }
    }
}

/// Local copies of the single-writer statistics, published once per
/// iteration.
#[derive(Default)]
struct Local {
    handled: u64,
    ticks: u64,
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
    restarts: RestartBudget,
    control_seen: u64,
    local: Local,
    idle: Idle,
    reactor: Reactor<W::Msg>,
    /// The queues ran dry and readiness was polled since: the next dry
    /// iteration leaves polling to the idle path.
    io_dry_polled: bool,
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
            factory,
            cfg,
            panic: None,
            restarts: RestartBudget::new(),
            control_seen: 0,
            local: Local::default(),
            idle: Idle::new(cfg.idle, cfg.tick_interval, cfg.inbox_coalesce),
            reactor: Reactor::new(shared.clone(), me, cfg.io_poll_interval),
            io_dry_polled: false,
            shared,
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
            let mut work = self.iteration();
            if self.reactor.is_active() {
                work += self.poll_io(work);
            }
            if work > 0 {
                self.idle.worked();
            } else if self.out.has_overflow() {
                // A peer's ring is full; it will drain it. Give it the CPU,
                // and keep the tick coming while waiting.
                if self.idle.tick_schedule().is_none() {
                    self.idle_tick();
                }
                std::thread::yield_now();
            } else {
                let (inbox, rx) = (&mut self.inbox, &mut self.rx);
                let wake = self.idle.wait(
                    inbox,
                    rx,
                    &self.shared,
                    self.me,
                    self.control_seen,
                    &mut self.reactor,
                );
                if wake == Wake::Tick {
                    self.idle_tick();
                }
                self.dispatch_io();
            }
        }
        // Stopped: the pool is quiescent. Sends from on_stop are refused.
        self.out.close();
        if self.panic.is_none() {
            let stopped = catch_unwind(AssertUnwindSafe(|| {
                let mut ctx = Context {
                    out: &mut self.out,
                    io: &self.reactor,
                };
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
            let mut ctx = Context {
                out: &mut self.out,
                io: &self.reactor,
            };
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
            if self.restarts.take(Instant::now(), max_restarts, within) {
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
            let (worker, out, inbox, rx, io) = (
                &mut self.worker,
                &mut self.out,
                &mut self.inbox,
                &mut self.rx,
                &self.reactor,
            );
            let handled = &mut self.local.handled;
            let idle = &mut self.idle;
            let result = catch_unwind(AssertUnwindSafe(|| {
                let mut ctx = Context { out, io };
                let mut handle = |msg| {
                    worker.handle(msg, &mut ctx);
                    *handled += 1;
                };
                let mut n = 0;
                if !idle.inbox_resting() {
                    n = inbox.pop_batch(batch, &mut handle);
                    idle.inbox_taken(n, batch);
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

    /// Polls readiness without blocking when the busy interval has passed,
    /// or once when the queues have just run dry, and hands what is ready
    /// to `on_io`. Returns how many events it handed out.
    fn poll_io(&mut self, work: usize) -> usize {
        let dry = work == 0 && !self.io_dry_polled;
        self.io_dry_polled = work == 0;
        if self.reactor.poll_if_due(Instant::now(), dry) {
            self.dispatch_io()
        } else {
            0
        }
    }

    /// Hands the polled events to `on_io` (a failed worker drops them).
    /// Returns how many there were.
    fn dispatch_io(&mut self) -> usize {
        if !self.reactor.has_ready() {
            return 0;
        }
        let mut n = 0;
        if self.panic.is_none() {
            let (worker, out, io) = (&mut self.worker, &mut self.out, &self.reactor);
            let count = &mut n;
            let result = catch_unwind(AssertUnwindSafe(|| {
                let mut ctx = Context { out, io };
                for event in io.events() {
                    worker.on_io(event, &mut ctx);
                    *count += 1;
                }
            }));
            if let Err(payload) = result {
                self.fail(payload);
            }
            self.out.flush();
        }
        self.reactor.dispatched();
        n.max(1)
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
            let mut ctx = Context {
                out: &mut self.out,
                io: &self.reactor,
            };
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
        c.parks.set(self.idle.parks());
    }

    /// The tick an idle (or overflow-waiting) worker owes: run it and
    /// publish the counters.
    fn idle_tick(&mut self) {
        self.tick();
        self.publish_counters();
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
