//! Everything about a worker sleeping and being woken, in one place.
//!
//! A worker's [`Signal`] has a `state` (running, watching, parked) and a
//! `bell`. A producer that has just published a message calls
//! [`Signal::notify`]: a SeqCst fence and one plain load of `state` — while
//! the worker is running that is all it costs. Only a non-running worker is
//! rung (bell set) and, if parked, unparked.
//!
//! The worker going idle does the mirror image (a Dekker handshake):
//!
//! ```text
//!  worker                              producer
//!  bell = false                        publish (release store)
//!  state = WATCHING; fence(SeqCst)     fence(SeqCst)
//!  re-check every queue ──┐            if state != RUNNING {
//!  spin/yield on `bell`   │                bell = true; fence(SeqCst)
//!  state = PARKED; fence  │                if state == PARKED { unpark }
//!  if !bell { park }      │            }
//! ```
//!
//! Either the worker's re-check sees the message or the producer sees the
//! worker not running and rings; either the parking worker sees the bell or
//! the producer sees PARKED and unparks (an unpark before the park makes the
//! park return at once). While watching, the worker polls only its own bell —
//! one cache line — so idle cost does not grow with the number of peers.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};

use crate::sync::{fence, thread, AtomicBool, AtomicU32};

const RUNNING: u32 = 0;
const WATCHING: u32 = 1;
const PARKED: u32 = 2;

/// The sleep/wake state of one worker.
#[derive(Debug)]
pub(crate) struct Signal {
    state: AtomicU32,
    bell: AtomicBool,
    thread: thread::Thread,
}

impl Signal {
    /// A signal for the worker running on `thread`.
    pub(crate) fn new(thread: thread::Thread) -> Self {
        Signal {
            state: AtomicU32::new(RUNNING),
            bell: AtomicBool::new(false),
            thread,
        }
    }

    /// Producer side, after publishing: wakes the worker if it is not
    /// running. The fast path is one fence and one load.
    #[inline]
    pub(crate) fn notify(&self) {
        fence(SeqCst);
        self.notify_after_fence();
    }

    /// [`notify`](Self::notify) for a caller that has already issued a
    /// SeqCst fence after publishing (to notify several workers with one
    /// fence).
    #[inline]
    pub(crate) fn notify_after_fence(&self) {
        if self.state.load(Relaxed) != RUNNING {
            self.ring();
        }
    }

    /// Rings the bell and unparks the worker if it is parked. Also used for
    /// control changes (freeze, stop), where it is called unconditionally.
    #[cold]
    pub(crate) fn ring(&self) {
        self.bell.store(true, Release);
        fence(SeqCst);
        if self.state.load(Relaxed) == PARKED {
            self.thread.unpark();
        }
    }

    /// Worker side: announces that it is about to go idle. The caller must
    /// re-check all its queues after this returns, and call
    /// [`wake`](Self::wake) if it finds anything.
    #[inline]
    pub(crate) fn begin_watch(&self) {
        self.bell.store(false, Relaxed);
        self.state.store(WATCHING, Relaxed);
        fence(SeqCst);
    }

    /// Worker side: whether the bell has rung since [`begin_watch`](Self::begin_watch).
    #[inline]
    pub(crate) fn rung(&self) -> bool {
        self.bell.load(Acquire)
    }

    /// Worker side: parks unless the bell rang; returns after a wake-up, a
    /// timeout or a spurious wake. Returns whether it really parked.
    pub(crate) fn park(&self, timeout: Option<std::time::Duration>) -> bool {
        self.state.store(PARKED, Relaxed);
        fence(SeqCst);
        if self.bell.load(Relaxed) {
            self.state.store(WATCHING, Relaxed);
            return false;
        }
        park_current(timeout);
        self.state.store(WATCHING, Relaxed);
        true
    }

    /// Worker side: back to running.
    #[inline]
    pub(crate) fn wake(&self) {
        self.state.store(RUNNING, Relaxed);
    }
}

#[cfg(not(loom))]
fn park_current(timeout: Option<std::time::Duration>) {
    match timeout {
        Some(t) => std::thread::park_timeout(t),
        None => std::thread::park(),
    }
}

#[cfg(loom)]
fn park_current(_timeout: Option<std::time::Duration>) {
    // loom has no timed park; the model checks the untimed handshake, which
    // is the one that must never lose a wake-up.
    loom::thread::park();
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::sync::{Arc, AtomicBool, Condvar, Mutex};

    /// A worker thread goes idle with the full protocol (watch, re-check,
    /// park without a timeout) while the main thread publishes a flag and
    /// notifies. loom explores every interleaving: if a wake-up could be
    /// lost, the worker would park forever and loom would report a deadlock.
    #[test]
    fn no_lost_wakeup() {
        loom::model(|| {
            let data = Arc::new(AtomicBool::new(false));
            let slot = Arc::new((Mutex::new(None::<Arc<Signal>>), Condvar::new()));
            let (d, sl) = (data.clone(), slot.clone());
            let worker = thread::spawn(move || {
                let signal = Arc::new(Signal::new(thread::current()));
                *sl.0.lock().unwrap() = Some(signal.clone());
                sl.1.notify_one();
                loop {
                    if d.load(Acquire) {
                        break;
                    }
                    signal.begin_watch();
                    if d.load(Acquire) {
                        signal.wake();
                        break;
                    }
                    if !signal.rung() {
                        signal.park(None);
                    }
                    signal.wake();
                }
            });
            let signal = {
                let mut guard = slot.0.lock().unwrap();
                loop {
                    if let Some(s) = guard.clone() {
                        break s;
                    }
                    guard = slot.1.wait(guard).unwrap();
                }
            };
            data.store(true, Release);
            signal.notify();
            worker.join().unwrap();
        });
    }
}
