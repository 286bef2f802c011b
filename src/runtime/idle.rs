//! What a worker does when an iteration found nothing: the idle state
//! machine. In order: let a resting inbox fill (rings still watched); hot
//! poll the queues while still marked running; tick if due (the caller
//! runs it); then spin, yield and park until a message, a control change
//! or the tick. Each step is cheaper to wake from than the next.
//!
//! The park side of the handshake (announce, barrier, re-check, park) is
//! [`Signal`](crate::lockfree::signal::Signal)'s; this file decides *when*
//! to take each step. A worker with many peers spins on its bell rather
//! than on every ring, so idle cost does not grow with the number of peers.
//! The diagram of the handshake is in `docs/architecture.md`.

use std::time::{Duration, Instant};

use crate::config::IdleStrategy;
use crate::lockfree::barrier;
use crate::lockfree::inbox::InboxReceiver;
use crate::lockfree::ring::Consumer;
use crate::shared::Shared;

use super::inbound::{pending, rings_pending};
use super::reactor::Reactor;
use crate::mesh::asks::AnswerBox;

/// Up to this many inbound rings, a spinning worker polls its queues
/// directly instead of only its bell.
const POLL_LIMIT: usize = 8;

/// Polls of the queues an idle worker makes before it announces that it is
/// watching (and producers start paying to wake it).
const HOT_POLLS: u32 = 64;

/// How an idle period ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Wake {
    /// Something may have arrived (or the wait ran out): iterate again.
    Ready,
    /// The tick is due: the caller runs it.
    Tick,
}

/// The idle state of one worker.
#[derive(Debug)]
pub(super) struct Idle {
    strategy: IdleStrategy,
    tick_interval: Duration,
    /// `PoolConfig::inbox_coalesce`, in spins (see [`spins_for`]).
    coalesce: u32,
    /// When the next idle tick is due, once the worker started being idle.
    tick_due: Option<Instant>,
    /// The last park ended by its timeout: the next idle period goes
    /// straight to parking instead of spinning.
    skip_spin: bool,
    /// Spins to wait before polling the inbox again, after a batch that
    /// emptied it (`PoolConfig::inbox_coalesce`): a worker that re-reads
    /// the slot a sender is writing takes that cache line away, and the
    /// sender's next claim (a locked instruction) stalls until it is back.
    inbox_rest: u32,
    /// Times this worker parked (its `parks` statistic).
    parks: u64,
}

impl Idle {
    pub(super) fn new(strategy: IdleStrategy, tick_interval: Duration, coalesce: u32) -> Self {
        Idle {
            strategy,
            tick_interval,
            coalesce,
            tick_due: None,
            skip_spin: false,
            inbox_rest: 0,
            parks: 0,
        }
    }

    /// Times the worker parked so far.
    pub(super) fn parks(&self) -> u64 {
        self.parks
    }

    /// An iteration found work: the next idle period starts afresh.
    #[inline]
    pub(super) fn worked(&mut self) {
        self.tick_due = None;
        self.skip_spin = false;
    }

    /// Whether to skip the inbox this iteration (it is resting after a
    /// batch; each skip halves the rest, so busy rings cannot keep the inbox
    /// waiting for more than a few iterations).
    #[inline]
    pub(super) fn inbox_resting(&mut self) -> bool {
        if self.inbox_rest == 0 {
            return false;
        }
        self.inbox_rest /= 2;
        true
    }

    /// After taking `n` messages from the inbox with a batch limit of
    /// `batch`: two or more at once is a stream, worth letting the sender
    /// fill the next line before polling again. A lone message
    /// (request/response) never waits.
    #[inline]
    pub(super) fn inbox_taken(&mut self, n: usize, batch: usize) {
        if n >= 2 && n < batch {
            self.inbox_rest = self.coalesce;
        }
    }

    /// `None` when a tick interval has passed since the last work or tick
    /// (the next one is then scheduled and the caller ticks); else when the
    /// next tick is due.
    pub(super) fn tick_schedule(&mut self) -> Option<Instant> {
        let now = Instant::now();
        let interval = self.tick_interval;
        let due = *self.tick_due.get_or_insert_with(|| after(now, interval));
        if now < due {
            return Some(due);
        }
        self.tick_due = Some(after(now, interval));
        None
    }

    /// Nothing arrived in the last iteration: wait for something to do,
    /// at most until the tick or `timer` (the earliest `send_after`
    /// deadline) is due.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn wait<M>(
        &mut self,
        inbox: &mut InboxReceiver<M>,
        rx: &mut [Consumer<M>],
        answers: &AnswerBox,
        shared: &Shared<M>,
        me: usize,
        control_seen: u64,
        timer: Option<Instant>,
        reactor: &mut Reactor<M>,
    ) -> Wake {
        if self.inbox_rest > 0 {
            // Let messages land in the inbox; meanwhile watch the control
            // word, and the rings unless there are so many that scanning
            // them costs more than the short wait (they are polled again
            // right after it).
            let rings: &mut [Consumer<M>] = if rx.len() < POLL_LIMIT { rx } else { &mut [] };
            for _ in 0..std::mem::take(&mut self.inbox_rest) {
                if rings_pending(rings, answers, shared, control_seen) {
                    return Wake::Ready;
                }
                std::hint::spin_loop();
            }
            return Wake::Ready;
        }
        // Hot poll first: still marked running, so producers pay nothing to
        // wake us, and no clock read or fence on the way to the next message.
        if rx.len() < POLL_LIMIT && !self.skip_spin {
            for _ in 0..HOT_POLLS {
                if pending(inbox, rx, answers, shared, control_seen) {
                    return Wake::Ready;
                }
                std::hint::spin_loop();
            }
        }
        let Some(mut due) = self.tick_schedule() else {
            return Wake::Tick;
        };
        if let Some(timer) = timer {
            if timer <= Instant::now() {
                return Wake::Ready;
            }
            due = due.min(timer);
        }
        match self.strategy {
            IdleStrategy::BusyPoll => std::hint::spin_loop(),
            IdleStrategy::Backoff { spins, yields } => self.sleep(
                inbox,
                rx,
                answers,
                shared,
                me,
                control_seen,
                (spins, yields),
                due,
                reactor,
            ),
        }
        Wake::Ready
    }

    /// Spin, yield, then park until a message, a control change or `due`.
    ///
    /// While spinning, a worker with few inbound queues polls them directly
    /// and stays marked running, so producers pay nothing to wake it; with
    /// more than [`POLL_LIMIT`] it watches only its bell (one line) and
    /// re-checks its queues every 64 spins. Parking is the only step that
    /// pays the heavy barrier.
    ///
    /// Spinning and yielding stop when the tick is due. An idle period
    /// that reached its tick without a message counts like a park that
    /// timed out: the next one parks directly.
    ///
    /// A worker with a reactor also polls its readiness (without blocking)
    /// every `io_poll_interval` while spinning and after every yield, and
    /// sleeps in the OS poll instead of parking (see [`Reactor`]).
    #[allow(clippy::too_many_arguments)]
    fn sleep<M>(
        &mut self,
        inbox: &mut InboxReceiver<M>,
        rx: &mut [Consumer<M>],
        answers: &AnswerBox,
        shared: &Shared<M>,
        me: usize,
        control_seen: u64,
        (spins, yields): (u32, u32),
        due: Instant,
        reactor: &mut Reactor<M>,
    ) {
        let signal = &shared.workers[me].signal;
        let poll = rx.len() < POLL_LIMIT;
        if !self.skip_spin {
            if !poll {
                signal.begin_watch();
            }
            for i in 0..spins {
                let rescan = poll || i % 64 == 0;
                if (rescan && pending(inbox, rx, answers, shared, control_seen))
                    || (!poll && signal.rung())
                {
                    signal.wake();
                    return;
                }
                if i % 64 == 63 {
                    let now = Instant::now();
                    if now >= due {
                        signal.wake();
                        self.skip_spin = true;
                        return;
                    }
                    if reactor.poll_if_due(now, false) {
                        signal.wake();
                        return;
                    }
                }
                std::hint::spin_loop();
            }
            for _ in 0..yields {
                if pending(inbox, rx, answers, shared, control_seen) {
                    signal.wake();
                    return;
                }
                std::thread::yield_now();
                // On a busy CPU one yield can last a whole time slice of
                // another thread: without this check a few hundred of them
                // would delay the tick by a second and the worker would
                // never reach its park.
                let now = Instant::now();
                if now >= due {
                    signal.wake();
                    self.skip_spin = true;
                    return;
                }
                // Every yield: a request that arrives now would otherwise
                // wait for the busy interval (100 us by default), longer
                // than the OS poll this worker sleeps in next would take
                // to wake it. A poll costs one system call, as the yield.
                if reactor.poll_if_due(now, true) {
                    signal.wake();
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
        let io = reactor.is_active();
        if io {
            signal.prepare_poll();
        } else {
            signal.prepare_park();
        }
        if pending(inbox, rx, answers, shared, control_seen) {
            signal.wake();
            return;
        }
        self.parks += 1;
        shared.workers[me].counters.parks.set(self.parks);
        tracing::trace!(worker = me, io, "park");
        if io {
            // One sleep for messages and readiness: a producer that finds
            // this worker POLLING writes its eventfd.
            if signal.may_sleep() {
                reactor.sleep(barrier::bound_park(Some(due - now)));
            }
        } else {
            signal.park(Some(due - now));
        }
        signal.wake();
        tracing::trace!(worker = me, "unpark");
        // Woken by the timer: the next idle period goes straight to parking.
        self.skip_spin = Instant::now() >= due;
    }
}

/// How many `spin_loop` hints take about `window` on this CPU (a pause
/// costs a different time on different cores). Measured once per process;
/// the fastest of a few short runs, so a preemption during the measurement
/// errs towards a shorter window.
pub(super) fn spins_for(window: Duration) -> u32 {
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

/// `now + interval`, or, for an interval too long for an [`Instant`]
/// (`Duration::MAX`: no idle ticks), a moment 100 years ahead, which never
/// comes while the process runs. A plain `+` panicked here, outside any
/// `catch_unwind`, and killed the worker thread.
fn after(now: Instant, interval: Duration) -> Instant {
    const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(interval)
        .or_else(|| now.checked_add(NEVER))
        .unwrap_or(now)
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

    #[test]
    fn tick_is_due_one_interval_after_idling_starts() {
        let mut idle = Idle::new(IdleStrategy::BusyPoll, Duration::from_secs(3600), 0);
        let due = idle.tick_schedule().expect("not due at once");
        assert_eq!(idle.tick_schedule(), Some(due), "the deadline holds");
        idle.worked();
        assert!(idle.tick_schedule().expect("rescheduled") >= due);
        let mut now = Idle::new(IdleStrategy::BusyPoll, Duration::ZERO, 0);
        assert_eq!(now.tick_schedule(), None, "a zero interval is always due");
    }

    #[test]
    fn inbox_rest_only_after_a_partial_stream_and_halves() {
        let mut idle = Idle::new(IdleStrategy::BusyPoll, Duration::from_secs(1), 8);
        idle.inbox_taken(1, 16);
        assert!(!idle.inbox_resting(), "a lone message never waits");
        idle.inbox_taken(16, 16);
        assert!(!idle.inbox_resting(), "a full batch: more is waiting");
        idle.inbox_taken(5, 16);
        assert!(idle.inbox_resting()); // 8 -> 4
        assert!(idle.inbox_resting()); // 4 -> 2
        assert!(idle.inbox_resting()); // 2 -> 1
        assert!(idle.inbox_resting()); // 1 -> 0
        assert!(!idle.inbox_resting());
    }
}
