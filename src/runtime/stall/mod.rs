//! Stall detection: a worker that stays inside one callback longer than
//! [`PoolConfig::stall_threshold`] is reported once, with its backtrace
//! taken while it is still stuck.
//!
//! The worker pays a relaxed store of a *state word* when it enters and
//! when it leaves a callback phase (`on_start`, a pass of `handle` over its
//! queues, its due timers, `tick`, a round of `on_io`, `on_stop`): a few
//! stores per loop iteration, none per message, no clock. The word is the
//! phase in its low bits and a count of entries above them, so two entries
//! of the same phase differ. One watchdog thread per pool
//! ([`watchdog`]) samples every worker's word a few times per threshold:
//! the same busy word seen for longer than the threshold is a stall. The
//! backtrace comes from the stalled thread itself ([`capture`]): the
//! watchdog signals it, and the signal handler walks its stack into a
//! buffer allocated before the worker ran. Drawn in `docs/architecture.md`
//! ("Stall detection").

mod capture;
mod watchdog;

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;

use crate::lockfree::sync::Counter;
use crate::WorkerId;

pub(crate) use watchdog::Watchdog;

/// Default [`PoolConfig::stall_threshold`](crate::PoolConfig::stall_threshold):
/// 100 ms.
///
/// Long enough that on a shared machine (a VM, a CI runner) the kernel
/// taking the CPU away from a worker is rarely mistaken for a stall, short
/// enough that a callback which blocks — a lock, a synchronous call, a
/// quadratic loop over a large input — is reported while it happens.
/// Latency-bound services set it near their latency target.
pub const DEFAULT_STALL_THRESHOLD: Duration = Duration::from_millis(100);

/// The callback a stalled worker was inside, in a [`StallReport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Callback {
    /// [`Worker::on_start`](crate::Worker::on_start).
    OnStart,
    /// [`Worker::handle`](crate::Worker::handle), for messages from the
    /// worker's queues. The phase is one pass over the queues (at most
    /// `batch_size` messages from each), so a run of quick messages that
    /// together keep the worker away longer than the threshold is reported
    /// too: its other queues and its sockets waited that long.
    Handle,
    /// [`Worker::handle`](crate::Worker::handle), for the worker's due
    /// [`send_after`](crate::Context::send_after) timers.
    Timer,
    /// [`Worker::tick`](crate::Worker::tick).
    Tick,
    /// [`Worker::on_io`](crate::Worker::on_io): one round over the ready
    /// events.
    OnIo,
    /// [`Worker::on_stop`](crate::Worker::on_stop).
    OnStop,
}

/// Phase codes in the low bits of the state word (0: outside callbacks).
const PHASE_BITS: u32 = 3;
const PHASE_MASK: u64 = (1 << PHASE_BITS) - 1;

impl Callback {
    /// The callback's name: `"on_start"`, `"handle"`, `"timer"`, `"tick"`,
    /// `"on_io"` or `"on_stop"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Callback::OnStart => "on_start",
            Callback::Handle => "handle",
            Callback::Timer => "timer",
            Callback::Tick => "tick",
            Callback::OnIo => "on_io",
            Callback::OnStop => "on_stop",
        }
    }

    fn code(self) -> u64 {
        match self {
            Callback::OnStart => 1,
            Callback::Handle => 2,
            Callback::Timer => 3,
            Callback::Tick => 4,
            Callback::OnIo => 5,
            Callback::OnStop => 6,
        }
    }

    /// The callback a state word is inside, if any.
    fn of_word(word: u64) -> Option<Callback> {
        Some(match word & PHASE_MASK {
            1 => Callback::OnStart,
            2 => Callback::Handle,
            3 => Callback::Timer,
            4 => Callback::Tick,
            5 => Callback::OnIo,
            6 => Callback::OnStop,
            _ => return None,
        })
    }
}

impl fmt::Display for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stall, as handed to the [`PoolConfig::on_stall`] hook (and logged
/// as a `tracing` warning): reported once per stall, while the worker is
/// still inside the callback.
///
/// [`PoolConfig::on_stall`]: crate::PoolConfig::on_stall
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StallReport {
    /// The stalled worker.
    pub worker: WorkerId,
    /// The callback it is inside.
    pub callback: Callback,
    /// How long it has been inside it so far (a lower bound: the watchdog
    /// first sees a callback up to half the threshold after it began).
    pub elapsed: Duration,
    /// The configured threshold.
    pub threshold: Duration,
    /// The stalled thread's stack, innermost frame first, taken while it
    /// was stalled: function names with the `backtrace` cargo feature,
    /// else `file+offset` per frame (for `addr2line`). A one-line reason
    /// instead when no backtrace could be taken (not Linux on x86_64 or
    /// aarch64, the signal already in use, the thread not answering).
    pub backtrace: String,
    /// The raw instruction addresses of the stack, innermost first (empty
    /// when no backtrace could be taken), for symbolizing elsewhere.
    pub frames: Vec<usize>,
}

/// A user's stall hook ([`PoolConfig::on_stall`](crate::PoolConfig::on_stall)).
pub(crate) type StallHook = Arc<dyn Fn(&StallReport) + Send + Sync>;

/// The stall settings of a [`PoolConfig`](crate::PoolConfig).
#[derive(Clone)]
pub(crate) struct StallConfig {
    pub(crate) threshold: Duration,
    pub(crate) hook: Option<StallHook>,
}

impl Default for StallConfig {
    fn default() -> Self {
        StallConfig {
            threshold: DEFAULT_STALL_THRESHOLD,
            hook: None,
        }
    }
}

impl fmt::Debug for StallConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StallConfig")
            .field("threshold", &self.threshold)
            .field("hook", &self.hook.as_ref().map(|_| "Fn(&StallReport)"))
            .finish()
    }
}

impl StallConfig {
    /// Detection is on (a watchdog thread runs).
    pub(crate) fn enabled(&self) -> bool {
        self.threshold != Duration::MAX
    }

    /// Refuses a zero threshold.
    pub(crate) fn validate(&self) -> Result<(), crate::Error> {
        if self.threshold.is_zero() {
            return Err(crate::Error::invalid(
                "stall_threshold",
                "must be longer than zero (Duration::MAX turns stall detection off)",
            ));
        }
        Ok(())
    }
}

/// One worker's stall state, in the registry: the state word the worker
/// writes, the statistics the watchdog writes, and the buffer its
/// backtrace is taken into.
#[derive(Debug, Default)]
pub(crate) struct StallSlot {
    /// Written by the worker only: `entries << PHASE_BITS | phase`.
    word: CachePadded<AtomicU64>,
    /// Stalls reported (written by the watchdog only).
    pub(crate) stalls: Counter,
    /// The longest stall so far, in nanoseconds (written by the watchdog
    /// only; grows while a reported stall lasts).
    pub(crate) longest_nanos: Counter,
    capture: capture::Capture,
}

/// The worker's side: enters and leaves callback phases.
pub(crate) struct Probe {
    slot: Arc<StallSlot>,
    entries: u64,
}

impl Probe {
    pub(crate) fn new(slot: Arc<StallSlot>) -> Self {
        Probe { slot, entries: 0 }
    }

    /// The worker enters `callback`'s phase.
    #[inline]
    pub(crate) fn enter(&mut self, callback: Callback) {
        self.entries = self.entries.wrapping_add(1);
        let word = (self.entries << PHASE_BITS) | callback.code();
        self.slot.word.store(word, Relaxed);
    }

    /// The worker is back in its loop.
    #[inline]
    pub(crate) fn leave(&mut self) {
        self.slot.word.store(self.entries << PHASE_BITS, Relaxed);
    }

    /// Makes this thread's backtrace available to the watchdog until the
    /// guard is dropped (on the worker's thread, before it ends).
    pub(crate) fn register_thread(&self) -> capture::Registration {
        capture::Registration::new(self.slot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_names_the_phase_and_changes_at_each_entry() {
        let slot = Arc::new(StallSlot::default());
        let mut probe = Probe::new(slot.clone());
        let word = || slot.word.load(Relaxed);
        assert_eq!(Callback::of_word(word()), None);
        let mut seen = vec![word()];
        for cb in [
            Callback::OnStart,
            Callback::Handle,
            Callback::Handle,
            Callback::Timer,
            Callback::Tick,
            Callback::OnIo,
            Callback::OnStop,
        ] {
            probe.enter(cb);
            assert_eq!(Callback::of_word(word()), Some(cb));
            seen.push(word());
            probe.leave();
            assert_eq!(Callback::of_word(word()), None);
            seen.push(word());
        }
        // Every entry and every exit is a new word: a worker that keeps
        // entering `handle` is never mistaken for one stuck in it.
        let mut unique = seen.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), seen.len());
    }

    #[test]
    fn zero_is_refused_and_max_turns_detection_off() {
        let mut c = StallConfig::default();
        assert!(c.validate().is_ok() && c.enabled());
        assert!(c.threshold <= Duration::from_millis(100));
        c.threshold = Duration::ZERO;
        match c.validate() {
            Err(crate::Error::InvalidConfig { field, .. }) => assert_eq!(field, "stall_threshold"),
            other => panic!("{other:?}"),
        }
        c.threshold = Duration::MAX;
        assert!(c.validate().is_ok() && !c.enabled());
    }
}
