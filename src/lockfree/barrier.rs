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

#[cfg(not(loom))]
use std::sync::atomic::{compiler_fence, AtomicU8, Ordering::Relaxed};
#[cfg(not(loom))]
use std::sync::atomic::{fence, Ordering::SeqCst};

#[cfg(loom)]
use crate::lockfree::sync::fence;
#[cfg(loom)]
use std::sync::atomic::Ordering::SeqCst;

#[cfg(not(loom))]
const UNKNOWN: u8 = 0;
#[cfg(not(loom))]
const ASYMMETRIC: u8 = 1;
#[cfg(not(loom))]
const SYMMETRIC: u8 = 2;

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
/// for work. Costs a system call (microseconds) when asymmetric.
#[cold]
pub(crate) fn heavy() {
    #[cfg(not(loom))]
    {
        if MODE.load(Relaxed) != ASYMMETRIC || !sys::heavy() {
            fence(SeqCst);
        }
    }
    #[cfg(loom)]
    fence(SeqCst);
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn init_decides_a_mode_and_heavy_never_fails() {
        init();
        let mode = MODE.load(Relaxed);
        assert!(mode == ASYMMETRIC || mode == SYMMETRIC);
        heavy();
        light();
        #[cfg(target_os = "linux")]
        {
            // On Linux >= 4.14 without a seccomp filter, expect membarrier.
            eprintln!("asymmetric barriers: {}", is_asymmetric());
        }
    }
}
