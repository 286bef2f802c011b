//! The pool's watchdog thread: samples every worker's state word a few
//! times per threshold, and reports a worker whose word stayed on the same
//! callback for longer than the threshold — once per stall, while it
//! lasts, with the backtrace the worker's own thread takes
//! ([`super::capture`]).
//!
//! Like Seastar's stall detector it compares a progress count instead of
//! reading a clock on the worker: the worker only stores its word; all
//! timing is the watchdog's. Unlike Seastar and Glommio there is no timer
//! per worker to re-arm on every task run: one thread samples them all.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{capture, Callback, StallConfig, StallHook, StallReport, StallSlot};
use crate::WorkerId;

/// How long the watchdog waits for a stalled thread's backtrace.
const BACKTRACE_WAIT: Duration = Duration::from_millis(100);

/// A running watchdog; dropping it stops and joins its thread.
pub(crate) struct Watchdog {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts the watchdog of the pool named `name` over its workers'
    /// `slots`, or nothing when detection is off. A watchdog that cannot
    /// be spawned is logged and the pool runs without one.
    pub(crate) fn start(
        name: &str,
        config: &StallConfig,
        slots: Vec<Arc<StallSlot>>,
    ) -> Option<Watchdog> {
        if !config.enabled() {
            return None;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = Sampler {
            pool: name.to_owned(),
            threshold: config.threshold,
            hook: config.hook.clone(),
            slots,
            stop: stop.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("{name}-stall"))
            .spawn(move || sampler.run());
        match spawned {
            Ok(thread) => Some(Watchdog {
                stop,
                thread: Some(thread),
            }),
            Err(e) => {
                tracing::error!(error = %e, "could not spawn the stall watchdog: stalls go unreported");
                None
            }
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// What the watchdog knows of one worker.
struct Seen {
    /// The state word last sampled.
    word: u64,
    /// When the watchdog first saw that word.
    since: Instant,
    /// This stall has been reported.
    reported: bool,
}

struct Sampler {
    pool: String,
    threshold: Duration,
    hook: Option<StallHook>,
    slots: Vec<Arc<StallSlot>>,
    stop: Arc<AtomicBool>,
}

impl Sampler {
    fn run(self) {
        // While some worker is inside a callback, every quarter of the
        // threshold; while all are between callbacks (an idle pool), every
        // half, which halves an idle pool's wake-ups. A stall starting
        // just after a sample is first seen at most half a threshold late
        // and reported at most a quarter after passing the threshold: within
        // 1.75 thresholds of its start. At least 1 ms; at most 1 s, so
        // `longest_stall` of a long stall stays fresh.
        let clamp = |d: Duration| d.clamp(Duration::from_millis(1), Duration::from_secs(1));
        let (busy_period, idle_period) = (clamp(self.threshold / 4), clamp(self.threshold / 2));
        let mut period = busy_period;
        let start = Instant::now();
        let mut seen: Vec<Seen> = self
            .slots
            .iter()
            .map(|s| Seen {
                word: s.word.load(Relaxed),
                since: start,
                reported: false,
            })
            .collect();
        while !self.stop.load(Ordering::Acquire) {
            std::thread::park_timeout(period);
            let now = Instant::now();
            let mut busy = false;
            for (i, (slot, seen)) in self.slots.iter().zip(&mut seen).enumerate() {
                busy |= self.sample(i, slot, seen, now);
            }
            period = if busy { busy_period } else { idle_period };
        }
    }

    /// Samples worker `i`. Returns whether it is inside a callback.
    fn sample(&self, i: usize, slot: &StallSlot, seen: &mut Seen, now: Instant) -> bool {
        let word = slot.word.load(Relaxed);
        if word != seen.word {
            if seen.reported {
                // The stall ended: its final length, to a sampling period.
                let lasted = now.saturating_duration_since(seen.since);
                raise(slot, lasted);
                tracing::info!(
                    pool = %self.pool,
                    worker = i,
                    "worker {i} is back from its stall after {lasted:.1?}"
                );
            }
            *seen = Seen {
                word,
                since: now,
                reported: false,
            };
            return Callback::of_word(word).is_some();
        }
        let Some(callback) = Callback::of_word(word) else {
            return false; // Between callbacks, idle or parked: never a stall.
        };
        let elapsed = now.saturating_duration_since(seen.since);
        if seen.reported {
            raise(slot, elapsed);
        } else if elapsed > self.threshold {
            seen.reported = true;
            slot.stalls.add(1);
            raise(slot, elapsed);
            self.report(i, slot, callback, elapsed);
        }
        true
    }

    /// Takes the stalled worker's backtrace, logs it and calls the hook.
    fn report(&self, i: usize, slot: &StallSlot, callback: Callback, elapsed: Duration) {
        let before = slot.word.load(Relaxed);
        let taken = capture::take(slot, BACKTRACE_WAIT);
        let returned = slot.word.load(Relaxed) != before;
        let (frames, backtrace) = match taken {
            Ok(frames) => {
                let mut text = capture::symbolize(&frames);
                if returned {
                    text.push_str(
                        "(the worker left the callback while its stack was taken: the stack \
                         may show what it did next)\n",
                    );
                }
                (frames, text)
            }
            Err(why) => (Vec::new(), format!("(no backtrace: {why})\n")),
        };
        let worker = WorkerId::from(i);
        tracing::warn!(
            pool = %self.pool,
            worker = i,
            callback = callback.as_str(),
            elapsed_ms = elapsed.as_millis() as u64,
            "worker {worker} stalled: inside {callback} for {elapsed:.1?} so far \
             (stall_threshold {:?}); its stack:\n{backtrace}",
            self.threshold
        );
        if let Some(hook) = &self.hook {
            let report = StallReport {
                worker,
                callback,
                elapsed,
                threshold: self.threshold,
                backtrace,
                frames,
            };
            if catch_unwind(AssertUnwindSafe(|| hook(&report))).is_err() {
                tracing::error!(pool = %self.pool, "the on_stall hook panicked");
            }
        }
    }
}

/// Raises the worker's `longest_stall` to `d` (the watchdog is its only
/// writer).
fn raise(slot: &StallSlot, d: Duration) {
    let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    if nanos > slot.longest_nanos.get() {
        slot.longest_nanos.set(nanos);
    }
}
