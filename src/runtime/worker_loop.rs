//! The loop each worker thread runs: react to the control word, move
//! overflow into the rings, drain a batch from every inbound queue into
//! `handle`, publish what was sent, `tick`, and hand over to [`Idle`] when
//! nothing arrived. Drawn in `docs/architecture.md` ("The worker loop").
//!
//! Panics in `on_start`, `handle`, `tick` and `on_stop` are caught here,
//! each around its callback; and the whole body (start, loop, stop) runs
//! inside one more `catch_unwind` ([`Runtime::run`]), so a panic that
//! escapes those (a message's `Drop`, a bug of ours) still marks the worker
//! failed instead of ending the thread.
//!
//! A worker that fails for good lets go of its state at once, on its own
//! thread ([`Runtime::drop_instance_state`]): the instance is dropped (its
//! sockets close, the `Reply`s it held resolve) and its pending timers
//! with it. It keeps its thread until the pool stops: it goes on draining
//! its queues, dropping each message inside its own `catch_unwind` and
//! counting it, so no sender ever waits on it and shutdown still sees
//! every message accounted for. A restart drops the old instance the same
//! way before the new one is built. Restarts run in a loop
//! ([`Runtime::start_worker`]), never recursively, and back off
//! ([`Backoff`]) while watching for shutdown, so an `on_start` that always
//! panics neither grows the stack nor spins the thread nor holds the pool.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::{Acquire, Release};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::config::{IdleStrategy, PanicPolicy, PoolConfig};
use crate::lockfree::inbox::InboxReceiver;
use crate::lockfree::ring::Consumer;
use crate::lockfree::shutdown::control;
use crate::lockfree::sync::Arc;
use crate::mesh::{drop_contained, Outbound};
use crate::shared::Shared;
use crate::{Context, Endpoint, Worker, WorkerId};

use super::idle::{spins_for, Idle, Wake};
use super::inbound::Inbound;
use super::queue_delay::DelaySampler;
use super::reactor::Reactor;
use super::restart::{panic_message, Backoff, RestartBudget};
use super::stall::{Callback, Probe};

/// How often a worker waiting to restart checks whether the pool stops.
const RESTART_WATCH: Duration = Duration::from_millis(10);

/// Where a worker reports the end of its first start: its index, and its
/// panic message if it failed for good during it (`Pool::start` waits for
/// every worker's report).
pub(crate) type StartReport = mpsc::Sender<(usize, Option<String>)>;

/// Hands up to `batch` due timers to `handle` (the caller has set the
/// source). Returns how many.
fn deliver_timers<W: Worker>(
    worker: &mut W,
    ctx: &mut Context<'_, W::Msg>,
    batch: usize,
    handled: &mut u64,
) -> usize {
    let now = Instant::now();
    let mut n = 0;
    while n < batch {
        let Some(msg) = ctx.out.timers.pop_due(now) else {
            break;
        };
        worker.handle(msg, ctx);
        *handled += 1;
        n += 1;
    }
    n
}

/// Hands up to `batch` ready ask outcomes (answers, `NoReply`s, passed
/// deadlines) to `handle`, each with the asked worker as its source.
/// Returns how many outcomes it took (a part of an `ask_all` that is not
/// the last builds no message but counts).
fn deliver_answers<W: Worker>(
    worker: &mut W,
    ctx: &mut Context<'_, W::Msg>,
    rx: &[Consumer<W::Msg>],
    batch: usize,
    handled: &mut u64,
) -> usize {
    let mut now = None;
    let mut n = 0;
    while n < batch {
        let Some((peer, msg)) = ctx.out.asks.next_ready(&mut now, |w| rx[w].taken()) else {
            break;
        };
        n += 1;
        if let Some(msg) = msg {
            ctx.out.source = Some(Endpoint::Worker(peer));
            worker.handle(msg, ctx);
            *handled += 1;
        }
    }
    n
}

/// Which ready events a round of `on_io` hands out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum IoRound {
    /// Those the last poll of the worker's reactor returned.
    Polled,
    /// Those `Context::io_again` queued.
    Again,
}

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
    /// `PoolConfig::overflow_pause`: the inbox is left alone while more
    /// than this many of the worker's own sends wait in its overflows.
    pub(crate) overflow_pause: usize,
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
            overflow_pause: config.get_overflow_pause(),
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
    /// The running instance; `None` once the worker failed for good (its
    /// state was dropped then), and while a restart waits.
    worker: Option<W>,
    out: Outbound<W::Msg>,
    inbox: InboxReceiver<W::Msg>,
    rx: Box<[Consumer<W::Msg>]>,
    shared: Arc<Shared<W::Msg>>,
    factory: Factory<W>,
    cfg: LoopConfig,
    panic: Option<String>,
    restarts: RestartBudget,
    backoff: Backoff,
    /// Taken when the first start has ended (see [`StartReport`]).
    start_report: Option<StartReport>,
    control_seen: u64,
    local: Local,
    idle: Idle,
    delay: DelaySampler,
    reactor: Reactor<W::Msg>,
    /// The queues ran dry and readiness was polled since: the next dry
    /// iteration leaves polling to the idle path.
    io_dry_polled: bool,
    /// Stores which callback the worker is in, for the stall watchdog.
    probe: Probe,
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
            worker: Some(worker),
            out,
            inbox: inbound.inbox,
            rx: inbound.rings.into_boxed_slice(),
            factory,
            cfg,
            panic: None,
            restarts: RestartBudget::new(),
            backoff: Backoff::default(),
            start_report: None,
            control_seen: 0,
            local: Local::default(),
            idle: Idle::new(cfg.idle, cfg.tick_interval, cfg.inbox_coalesce),
            delay: DelaySampler::new(),
            reactor: Reactor::new(shared.clone(), me, cfg.io_poll_interval),
            io_dry_polled: false,
            probe: Probe::new(shared.workers[me].stall.clone()),
            shared,
        }
    }

    /// Reports the end of the first start (`on_start` returned, or the
    /// worker failed for good trying) to `report`.
    pub(crate) fn reports_start_to(mut self, report: StartReport) -> Self {
        self.start_report = Some(report);
        self
    }

    /// Runs the worker until the pool stops it, then `on_stop`. Never ends
    /// before the pool's STOP, whatever panics: a panic that escapes the
    /// callback-level catches fails the worker (no restart: its state may
    /// be half-updated anywhere) and the loop goes on as a failed worker's.
    pub(crate) fn run(mut self) -> WorkerExit<W> {
        let id = WorkerId::from(self.me);
        let _current = super::current::enter(Arc::as_ptr(&self.shared).cast(), self.me);
        let _stall_watched = self.probe.register_thread();
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| self.start_worker())) {
            let message = panic_message(payload);
            self.fail_for_good(format!("{message} (outside a callback)"));
        }
        if let Some(report) = self.start_report.take() {
            let _ = report.send((self.me, self.panic.clone()));
        }
        let mut escaped = catch_unwind(AssertUnwindSafe(|| self.serve())).err();
        while let Some(payload) = escaped {
            let message = panic_message(payload);
            self.fail_for_good(format!("{message} (outside a callback)"));
            escaped = catch_unwind(AssertUnwindSafe(|| self.serve())).err();
        }
        // Stopped: the pool is quiescent. Sends from on_stop are refused.
        self.out.close();
        self.drop_timers();
        self.drop_pending_asks();
        // `Some` unless the worker failed.
        if let Some(worker) = self.worker.as_mut() {
            self.probe.enter(Callback::OnStop);
            let stopped = catch_unwind(AssertUnwindSafe(|| {
                let mut ctx = Context {
                    out: &mut self.out,
                    io: &self.reactor,
                };
                worker.on_stop(&mut ctx);
            }));
            self.probe.leave();
            if let Err(payload) = stopped {
                // Never restarted: the pool has stopped, and the state the
                // panic interrupted is what the caller asked for.
                self.fail_for_good(panic_message(payload));
            }
        }
        // Answers given (or `Asked`s dropped) in on_stop; then answers to
        // this worker's own asks are refused from now on.
        self.out.publish_answers();
        self.out.asks.answer_box().close();
        self.publish_counters();
        tracing::debug!(worker = %id, "worker stopped");
        // A failed worker was dropped when it failed: only a healthy one is
        // handed back.
        WorkerExit {
            worker: self.worker.take(),
            panic: self.panic.take(),
        }
    }

    /// The loop, until the pool's STOP.
    fn serve(&mut self) {
        loop {
            let c = self.shared.control.load(Acquire);
            if c != self.control_seen && self.on_control(c) {
                return;
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
                let timer = match (self.out.timers.next_due(), self.out.asks.next_deadline()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let wake = self.idle.wait(
                    inbox,
                    rx,
                    &mut self.out.asks,
                    &self.shared,
                    self.me,
                    self.control_seen,
                    timer,
                    &mut self.reactor,
                );
                if wake == Wake::Tick {
                    self.idle_tick();
                }
                self.dispatch_io();
            }
        }
    }

    /// Runs `on_start` (after the first start or a restart). A panic in it
    /// restarts the worker again while the budget allows: a loop, not a
    /// recursion, so a large `max_restarts` cannot overflow the stack.
    /// While the pool stops, a panic in it fails the worker instead: a
    /// worker that cannot start must not hold the shutdown.
    fn start_worker(&mut self) {
        loop {
            let Some(worker) = self.worker.as_mut() else {
                return;
            };
            self.probe.enter(Callback::OnStart);
            let started = catch_unwind(AssertUnwindSafe(|| {
                let mut ctx = Context {
                    out: &mut self.out,
                    io: &self.reactor,
                };
                worker.on_start(&mut ctx);
            }));
            self.probe.leave();
            self.out.flush();
            match started {
                Ok(()) => {
                    self.backoff.started(Instant::now());
                    return;
                }
                Err(payload) if self.stopping() => {
                    let message = panic_message(payload);
                    self.fail_for_good(format!("{message} (not restarted: the pool is stopping)"));
                    return;
                }
                Err(payload) => {
                    if !self.replace_after(payload) {
                        return;
                    }
                }
            }
        }
    }

    /// Whether the pool has begun to stop (its inboxes are closed first,
    /// then the control word moves).
    fn stopping(&self) -> bool {
        self.shared.workers[self.me].inbox.is_closed()
            || self.shared.control.load(Acquire) != self.control_seen
    }

    /// Waits `delay` before a restart, in slices of [`RESTART_WATCH`], and
    /// stops waiting as soon as the pool begins to stop.
    fn wait_before_restart(&self, delay: Duration) {
        if delay.is_zero() {
            return;
        }
        tracing::info!(worker = self.me, ?delay, "waiting before the next restart");
        let until = Instant::now() + delay;
        while !self.stopping() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(RESTART_WATCH));
        }
    }

    /// A callback (`handle`, `tick`) panicked: restart the worker if the
    /// policy allows (and run its `on_start`), else fail it.
    fn recover(&mut self, payload: Box<dyn std::any::Any + Send>) {
        if self.replace_after(payload) {
            self.start_worker();
        }
    }

    /// Handles a caught panic: builds a fresh worker if the policy and its
    /// budget allow and returns `true` (the caller runs its `on_start`);
    /// else marks the worker failed — from then on it drops what it
    /// receives — and returns `false`.
    fn replace_after(&mut self, payload: Box<dyn std::any::Any + Send>) -> bool {
        let mut message = panic_message(payload);
        tracing::error!(worker = self.me, panic = %message, "worker panicked");
        if let PanicPolicy::Restart {
            max_restarts,
            within,
        } = self.cfg.on_panic
        {
            if self.restarts.take(Instant::now(), max_restarts, within) {
                // The old instance goes at once, with what belongs to it;
                // the fresh one comes after the backoff.
                self.drop_instance_state();
                let delay = self.backoff.next_delay(Instant::now());
                self.wait_before_restart(delay);
                let factory = self.factory.clone();
                let id = WorkerId::from(self.me);
                match catch_unwind(AssertUnwindSafe(|| factory(id))) {
                    Ok(fresh) => {
                        self.worker = Some(fresh);
                        self.shared.workers[self.me].counters.restarts.add(1);
                        tracing::warn!(worker = self.me, "worker restarted");
                        return true;
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
        self.fail_for_good(message);
        false
    }

    /// Marks the worker failed (once; the first message is kept): sends to
    /// it are refused, its state is dropped now
    /// ([`drop_instance_state`](Self::drop_instance_state)), and the loop
    /// drops what it receives from then on.
    fn fail_for_good(&mut self, message: String) {
        if self.panic.is_none() {
            tracing::error!(worker = self.me, panic = %message, "worker failed");
            let slot = &self.shared.workers[self.me];
            *slot.panic.lock().unwrap_or_else(|e| e.into_inner()) = Some(message.clone());
            slot.failed.store(true, Release);
            self.shared.failures.fetch_add(1, Release);
            self.panic = Some(message);
        }
        self.drop_instance_state();
    }

    /// Drops everything that belongs to the running instance, on this
    /// thread, now: the worker itself (the sockets and listeners it owns
    /// close, the `Reply`s and `Asked`s it holds resolve to `NoReply`), its
    /// pending timers (counted in `timers_dropped`) and its pending asks
    /// (their `then` never runs). Called when the worker fails
    /// for good and when it is restarted; idempotent. A `Drop` that panics
    /// is caught: it must not take the thread down.
    fn drop_instance_state(&mut self) {
        if let Some(old) = self.worker.take() {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(old))) {
                let message = panic_message(payload);
                tracing::warn!(worker = self.me, panic = %message, "the worker's Drop panicked");
            }
        }
        self.drop_timers();
        self.drop_pending_asks();
    }

    /// Drops the asks this worker's instance made, their `then` unrun
    /// (a restart, a failure, the stop); answers that come later are
    /// dropped.
    fn drop_pending_asks(&mut self) {
        self.out.asks.clear();
    }

    /// One pass over every inbound queue. Returns how many messages it took.
    fn iteration(&mut self) -> usize {
        self.out.refresh_peers();
        self.out.flush_overflow();
        let work = if let Some(worker) = self.worker.as_mut() {
            let batch = self.cfg.batch;
            let (out, inbox, rx, io) =
                (&mut self.out, &mut self.inbox, &mut self.rx, &self.reactor);
            let handled = &mut self.local.handled;
            let idle = &mut self.idle;
            let (me, pause) = (self.me, self.cfg.overflow_pause);
            let probe = &mut self.probe;
            let result = catch_unwind(AssertUnwindSafe(|| {
                probe.enter(Callback::Handle);
                let mut ctx = Context { out, io };
                // `source` is set once per queue, before its batch.
                macro_rules! handle {
                    () => {
                        |msg| {
                            worker.handle(msg, &mut ctx);
                            *handled += 1;
                        }
                    };
                }
                let mut n = 0;
                // Bounded memory: while the worker's own sends wait in
                // overflow beyond `overflow_pause`, its inbox fills and
                // outside senders feel it. Rings are always drained.
                if ctx.out.overflow_queued() <= pause && !idle.inbox_resting() {
                    ctx.out.source = Some(Endpoint::External);
                    n = inbox.pop_batch(batch, handle!());
                    idle.inbox_taken(n, batch);
                }
                for (src, c) in rx.iter_mut().enumerate() {
                    ctx.out.source = Some(Endpoint::Worker(WorkerId::from(src)));
                    n += c.pop_batch(batch, handle!());
                }
                if !ctx.out.timers.is_empty() {
                    ctx.out.source = Some(Endpoint::Worker(WorkerId::from(me)));
                    probe.enter(Callback::Timer);
                    n += deliver_timers(worker, &mut ctx, batch, handled);
                }
                if !ctx.out.asks.is_idle() {
                    n += deliver_answers(worker, &mut ctx, rx, batch, handled);
                }
                n
            }));
            self.probe.leave();
            self.out.source = None;
            match result {
                Ok(n) => n,
                Err(payload) => {
                    self.recover(payload);
                    1
                }
            }
        } else {
            self.drain_and_drop()
        };
        self.out.flush();
        self.delay.after_iteration(&self.shared, self.me);
        if work > 0 {
            self.tick();
        }
        self.publish_counters();
        work
    }

    /// Polls readiness without blocking when the busy interval has passed,
    /// once when the queues have just run dry, or whenever tokens queued by
    /// `Context::io_again` wait (so that a connection served in slices
    /// does not hold back the others' readiness), and hands what is ready
    /// to `on_io`, then the queued tokens. Returns how many events it
    /// handed out: more than zero while tokens were queued, so the worker
    /// does not sleep on them.
    fn poll_io(&mut self, work: usize) -> usize {
        let again = self.reactor.has_again();
        let dry = work == 0 && !self.io_dry_polled;
        self.io_dry_polled = work == 0;
        let mut n = 0;
        if self.reactor.poll_if_due(Instant::now(), dry || again) {
            n = self.dispatch_io();
        }
        if again {
            n += self.dispatch_again();
        }
        n
    }

    /// Hands the polled events to `on_io` (a failed worker drops them).
    /// `source` is `None` there. Returns how many there were (at least one
    /// when any were polled).
    fn dispatch_io(&mut self) -> usize {
        if !self.reactor.has_ready() {
            return 0;
        }
        self.on_io_round(IoRound::Polled).max(1)
    }

    /// Hands the tokens queued by `Context::io_again` to `on_io` (a failed
    /// worker drops them); those queued meanwhile wait for the next
    /// iteration. Returns how many (at least one).
    fn dispatch_again(&mut self) -> usize {
        let result = catch_unwind(AssertUnwindSafe(|| self.reactor.take_again()));
        let n = match result {
            Ok(n) => n,
            Err(payload) => {
                self.recover(payload);
                return 1;
            }
        };
        self.on_io_round(IoRound::Again);
        n.max(1)
    }

    /// One round of `on_io` over the events `round` names, inside its
    /// stall phase and its own `catch_unwind`, then the sends it made are
    /// published. Polled events are marked dispatched whether or not a
    /// worker took them. Returns how many events `on_io` was handed.
    fn on_io_round(&mut self, round: IoRound) -> usize {
        let mut n = 0;
        let Some(worker) = self.worker.as_mut() else {
            if round == IoRound::Polled {
                self.reactor.dispatched();
            }
            return n;
        };
        let (out, io) = (&mut self.out, &self.reactor);
        let count = &mut n;
        self.probe.enter(Callback::OnIo);
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut ctx = Context { out, io };
            let mut hand = |event: &crate::io::Event| {
                worker.on_io(event, &mut ctx);
                *count += 1;
            };
            match round {
                IoRound::Polled => io.events().for_each(&mut hand),
                IoRound::Again => io.again_events().iter().for_each(&mut hand),
            }
        }));
        self.probe.leave();
        if round == IoRound::Polled {
            self.reactor.dispatched();
        }
        if let Err(payload) = result {
            self.recover(payload);
        }
        self.out.flush();
        n
    }

    /// Drops the timers still pending (at stop, and with the instance that
    /// set them) and counts them.
    fn drop_timers(&mut self) {
        let n = self.out.timers.clear();
        if n > 0 {
            let c = &self.shared.workers[self.me].counters;
            c.timers_dropped.add(n as u64);
        }
    }

    /// A failed worker's iteration: take everything, drop it, count it.
    /// Each drop runs inside its own `catch_unwind`: a message whose `Drop`
    /// panics is still counted, and the rest are still drained.
    fn drain_and_drop(&mut self) -> usize {
        let batch = self.cfg.batch;
        let mut n = self.inbox.pop_batch(batch, drop_contained);
        for c in self.rx.iter_mut() {
            n += c.pop_batch(batch, drop_contained);
        }
        self.shared.workers[self.me].counters.dropped.add(n as u64);
        // Answers to the asks it made before failing: taken, so that
        // shutdown sees none in flight, and dropped.
        n + self.out.asks.drop_arrived()
    }

    fn tick(&mut self) {
        let Some(worker) = self.worker.as_mut() else {
            return;
        };
        self.local.ticks += 1;
        self.probe.enter(Callback::Tick);
        let ticked = catch_unwind(AssertUnwindSafe(|| {
            let mut ctx = Context {
                out: &mut self.out,
                io: &self.reactor,
            };
            worker.tick(&mut ctx);
        }));
        self.probe.leave();
        if let Err(payload) = ticked {
            self.recover(payload);
        }
        self.out.flush();
    }

    fn publish_counters(&self) {
        let c = &self.shared.workers[self.me].counters;
        c.handled.set(self.local.handled);
        c.ticks.set(self.local.ticks);
        c.parks.set(self.idle.parks());
        c.overflow_queued.set(self.out.overflow_queued() as u64);
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
