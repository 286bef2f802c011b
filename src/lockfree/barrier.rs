//! Asymmetric memory barriers: a nearly free [`light`] fence for the hot
//! side of a Dekker handshake, and an expensive [`heavy`] one for the side
//! that is about to sleep anyway.
//!
//! Each sleep/wake handshake in shardpool pairs a *hot* side, which runs per
//! message or per batch, with a *cold* side, which runs only before a thread
//! parks:
//!
//! - a producer publishes, then checks whether the worker is parked (hot);
//!   the worker announces it will park, then re-checks its queues (cold);
//! - the inbox's consumer frees slots, then checks for blocked senders
//!   (hot); a sender registers as blocked, then re-checks for space (cold).
//!
//! Both sides need a StoreLoad barrier, or each may miss the other's store
//! and both go to sleep. With Linux's `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`
//! the cold side can issue a barrier *on behalf of* every running thread of
//! the process. The hot side then needs only a compiler fence, to keep its
//! store before its load in program order. Seastar sleeps the same way;
//! Linux documents the pairing in membarrier(2). Any thread that is not
//! running when the heavy barrier is issued passed a full barrier in its
//! context switch.
//!
//! Without membarrier (other systems, old kernels, seccomp filters), and
//! under loom (which models the symmetric protocol), both sides fall back
//! to `fence(SeqCst)`. That is correct, and costs the hot side about 20–30
//! cycles per call.
//!
//! Both sides read one process-wide mode. If membarrier worked at start-up
//! and a later call fails (a seccomp filter installed afterwards, any
//! error), the failing [`heavy`] switches the mode to symmetric for good
//! (logged once as a warning) and issues `fence(SeqCst)` itself; every
//! [`light`] that reads the new mode issues `fence(SeqCst)` too. What the
//! switch cannot cover is a hot side already past its mode check (or
//! reading the old mode a moment longer): it did only a compiler fence,
//! and the failed membarrier did not fence it, so that one handshake may
//! miss a wake-up. Such a sleeper is caught by its timeout: after the
//! switch every park is bounded by [`LOST_WAKEUP_BOUND`]
//! ([`bound_park`]), and the inbox's blocked senders always re-check at
//! that interval. So during the switch a wake-up can be late by at most
//! that bound, never lost; after it the symmetric handshake loses none.
//! The loom model at the end of this file checks exactly this split.

#[cfg(not(loom))]
use std::sync::atomic::{compiler_fence, AtomicU8, Ordering::Relaxed};
#[cfg(not(loom))]
use std::sync::atomic::{fence, Ordering::SeqCst};

#[cfg(loom)]
use crate::lockfree::sync::fence;
#[cfg(loom)]
use std::sync::atomic::Ordering::SeqCst;

use std::time::Duration;

#[cfg(not(loom))]
const UNKNOWN: u8 = 0;
#[cfg(not(loom))]
const ASYMMETRIC: u8 = 1;
#[cfg(not(loom))]
const SYMMETRIC: u8 = 2;
/// Symmetric since a membarrier failed after start-up: as [`SYMMETRIC`],
/// and parks are bounded by [`LOST_WAKEUP_BOUND`] (see the module doc).
#[cfg(not(loom))]
const DEGRADED: u8 = 3;

/// The longest a wake-up lost in the switch away from membarrier can be
/// late: the timeout of every park after the switch, and of every wait of
/// a sender blocked on a full inbox.
pub(crate) const LOST_WAKEUP_BOUND: Duration = Duration::from_millis(50);

#[cfg(not(loom))]
static MODE: AtomicU8 = AtomicU8::new(UNKNOWN);

#[cfg(all(not(loom), target_os = "linux"))]
mod sys {
    const QUERY: libc::c_long = 0;
    const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    const REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

    fn membarrier(cmd: libc::c_long) -> libc::c_long {
        // SAFETY: membarrier takes two integer arguments and touches no
        // memory of ours; an unsupported command returns -1 (EINVAL/ENOSYS).
        unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_long) }
    }

    /// Registers the process for expedited private membarriers; whether
    /// that worked.
    pub(super) fn register() -> bool {
        let supported = membarrier(QUERY);
        supported >= 0
            && supported & PRIVATE_EXPEDITED != 0
            && membarrier(REGISTER_PRIVATE_EXPEDITED) == 0
    }

    /// A full barrier on every running thread of this process.
    pub(super) fn heavy() -> bool {
        membarrier(PRIVATE_EXPEDITED) == 0
    }
}

#[cfg(all(not(loom), not(target_os = "linux")))]
mod sys {
    pub(super) fn register() -> bool {
        false
    }
    pub(super) fn heavy() -> bool {
        false
    }
}

/// Decides once per process whether the asymmetric barriers are available.
/// Called when a pool starts, before any thread relies on [`light`].
#[cfg(not(loom))]
pub(crate) fn init() {
    if MODE.load(Relaxed) == UNKNOWN {
        let mode = if sys::register() {
            ASYMMETRIC
        } else {
            SYMMETRIC
        };
        // Racing initialisers store the same value.
        MODE.store(mode, SeqCst);
    }
}

#[cfg(loom)]
pub(crate) fn init() {}

/// Whether [`light`] is a compiler fence (membarrier available).
#[cfg(not(loom))]
pub(crate) fn is_asymmetric() -> bool {
    MODE.load(Relaxed) == ASYMMETRIC
}

/// The timeout for a park that ends a sleep/wake handshake: `timeout`
/// itself, but at most [`LOST_WAKEUP_BOUND`] once a membarrier has failed
/// (a handshake made during that switch may have lost its wake-up).
#[cfg(not(loom))]
pub(crate) fn bound_park(timeout: Option<Duration>) -> Option<Duration> {
    if MODE.load(Relaxed) == DEGRADED {
        Some(timeout.map_or(LOST_WAKEUP_BOUND, |t| t.min(LOST_WAKEUP_BOUND)))
    } else {
        timeout
    }
}

#[cfg(loom)]
pub(crate) fn bound_park(timeout: Option<Duration>) -> Option<Duration> {
    timeout
}

/// Switches from membarrier to symmetric fences for good, after a
/// membarrier call failed. Only the first caller logs.
#[cfg(not(loom))]
#[cold]
fn degrade() {
    if MODE
        .compare_exchange(ASYMMETRIC, DEGRADED, SeqCst, Relaxed)
        .is_ok()
    {
        tracing::warn!(
            "membarrier failed after start-up (a seccomp filter?): switching both sides \
             of every sleep/wake handshake to fence(SeqCst) for good; parks now re-check \
             every {:?}",
            LOST_WAKEUP_BOUND
        );
    }
}

/// The expedited membarrier, or its failure forced by a unit test.
#[cfg(not(loom))]
fn membarrier() -> bool {
    #[cfg(test)]
    if tests::FAIL_MEMBARRIER.load(Relaxed) {
        return false;
    }
    sys::heavy()
}

/// The hot side's barrier: between a store that publishes and the load that
/// checks whether the other side sleeps.
#[inline]
pub(crate) fn light() {
    #[cfg(not(loom))]
    {
        if MODE.load(Relaxed) == ASYMMETRIC {
            compiler_fence(SeqCst);
        } else {
            fence(SeqCst);
        }
    }
    #[cfg(loom)]
    fence(SeqCst);
}

/// The cold side's barrier: between announcing it will sleep and re-checking
/// for work. Costs a system call (microseconds) when asymmetric. If that
/// call fails, switches the process to symmetric fences for good (see the
/// module documentation) and fences itself.
#[cold]
pub(crate) fn heavy() {
    #[cfg(not(loom))]
    {
        if MODE.load(Relaxed) == ASYMMETRIC {
            if membarrier() {
                return;
            }
            degrade();
        }
        fence(SeqCst);
    }
    #[cfg(loom)]
    fence(SeqCst);
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    /// Makes every later membarrier call fail, as a seccomp filter would.
    pub(super) static FAIL_MEMBARRIER: AtomicBool = AtomicBool::new(false);

    #[test]
    fn init_decides_a_mode_and_heavy_never_fails() {
        init();
        let mode = MODE.load(Relaxed);
        // DEGRADED if the test below already ran in this process.
        assert!(mode == ASYMMETRIC || mode == SYMMETRIC || mode == DEGRADED);
        heavy();
        light();
        #[cfg(target_os = "linux")]
        {
            // On Linux >= 4.14 without a seccomp filter, expect membarrier.
            eprintln!("asymmetric barriers: {}", is_asymmetric());
        }
    }

    /// Issue 13: when membarrier started failing after start-up, `heavy`
    /// fell back to a fence on its own side while `light` stayed a compiler
    /// fence, so the handshake protected neither side. Now the failing
    /// `heavy` switches the mode both read, for good, and parks get a
    /// bounded timeout. (Switches the whole test process to fences, which
    /// are correct for every other test.)
    #[test]
    fn a_failing_membarrier_switches_both_sides_for_good() {
        init();
        FAIL_MEMBARRIER.store(true, Relaxed);
        // Without membarrier here, pretend it registered at start-up: with
        // every call failing from now on, that is the case under test.
        let _ = MODE.compare_exchange(SYMMETRIC, ASYMMETRIC, SeqCst, Relaxed);
        heavy();
        let mode = MODE.load(Relaxed);
        assert_eq!(
            mode, DEGRADED,
            "heavy() must switch the mode when membarrier fails"
        );
        assert!(!is_asymmetric(), "light() must now be fence(SeqCst)");
        // For good: membarrier working again does not switch back.
        FAIL_MEMBARRIER.store(false, Relaxed);
        heavy();
        init();
        assert_eq!(MODE.load(Relaxed), DEGRADED);
        // Every park is now bounded, also an untimed one.
        assert_eq!(bound_park(None), Some(LOST_WAKEUP_BOUND));
        assert_eq!(
            bound_park(Some(Duration::from_secs(3600))),
            Some(LOST_WAKEUP_BOUND)
        );
        let short = Duration::from_millis(1);
        assert_eq!(bound_park(Some(short)), Some(short));
        light();
    }
}

/// The switch away from membarrier, modelled: the hot side publishes,
/// reads the mode and fences only if it is no longer asymmetric, then
/// checks the sleeper's flag; the cold side announces it sleeps, finds
/// membarrier failing (switches the mode, fences), and re-checks. A hot
/// side that read the new mode never misses the sleeper while the sleeper
/// misses its message; one that read the old mode can (loom finds that
/// execution), which is why parks after the switch have a timeout.
#[cfg(all(test, loom))]
mod loom_tests {
    use crate::lockfree::sync::{thread, Arc};
    use loom::sync::atomic::{fence, AtomicBool, AtomicU8};
    use std::sync::atomic::Ordering::{Relaxed, SeqCst};

    const ASYMMETRIC: u8 = 1;
    const DEGRADED: u8 = 3;

    #[test]
    fn switch_covers_every_light_that_sees_it() {
        static OLD_MODE_MISSED: std::sync::atomic::AtomicBool =
            std::sync::atomic::AtomicBool::new(false);
        loom::model(|| {
            let mode = Arc::new(AtomicU8::new(ASYMMETRIC));
            let message = Arc::new(AtomicBool::new(false));
            let sleeping = Arc::new(AtomicBool::new(false));
            let (m, msg, sl) = (mode.clone(), message.clone(), sleeping.clone());
            let hot = thread::spawn(move || {
                msg.store(true, Relaxed);
                let seen = m.load(Relaxed);
                if seen != ASYMMETRIC {
                    fence(SeqCst);
                } // else: a compiler fence only
                (seen, sl.load(Relaxed))
            });
            sleeping.store(true, Relaxed);
            // membarrier failed: switch, then fence this side.
            mode.store(DEGRADED, SeqCst);
            fence(SeqCst);
            let found = message.load(Relaxed);
            let (seen, woke) = hot.join().unwrap();
            if !found && !woke {
                assert_eq!(seen, ASYMMETRIC, "a light() that saw the switch missed");
                OLD_MODE_MISSED.store(true, Relaxed);
            }
        });
        assert!(
            OLD_MODE_MISSED.load(Relaxed),
            "the model should find the old-mode miss the timeout exists for"
        );
    }
}
