//! Everything about a worker sleeping and being woken, in one place.
//!
//! A worker's [`Signal`] has a `state` (running, watching, parked) and a
//! `bell`. A producer that has just published a message calls
//! [`Signal::notify`]: a [light barrier](crate::lockfree::barrier::light) (a compiler
//! fence where membarrier is available) and one plain load of `state`. While
//! the worker is running, that is all a send costs; the line holding `state`
//! stays in the producer's cache because a spinning worker does not write
//! it. A watching worker gets its bell rung; a parked one is unparked.
//!
//! Going to sleep is a Dekker handshake in which the worker pays for both
//! sides ([heavy barrier](crate::lockfree::barrier::heavy)): it sets
//! PARKED, issues the heavy barrier, re-checks every queue, and only then
//! parks; the producer publishes, issues the light barrier and loads the
//! state (drawn in `docs/architecture.md`, "Idle and wake").
//!
//! Either the worker's re-check sees the message, or the producer sees
//! PARKED and unparks. An unpark that comes before the park makes the park
//! return at once, so no wake-up is lost. While spinning before that, a
//! worker with few peers polls its queues directly and stays RUNNING. A
//! worker with many peers announces WATCHING and polls only its bell, one
//! cache line, plus a full re-check every 64 spins, which catches a bell
//! missed in the light-barrier race.
//!
//! A worker that owns I/O sources sleeps in the OS poll instead of the
//! futex (one sleep for messages and readiness). It announces POLLING
//! instead of PARKED, with the same barrier and re-check; a producer that
//! reads POLLING calls the worker's [I/O waker](Signal::set_io_waker)
//! (mio's eventfd) instead of unparking the thread. That choice is made on
//! the slow path only: the send fast path is still one plain load that
//! finds RUNNING.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::OnceLock;

use crate::lockfree::barrier;
use crate::lockfree::sync::{fence, thread, AtomicBool, AtomicU32};

const RUNNING: u32 = 0;
const WATCHING: u32 = 1;
const PARKED: u32 = 2;
/// Asleep in the OS poll: woken through the I/O waker.
const POLLING: u32 = 3;

/// Wakes a worker asleep in its OS poll (in the pool: mio's `Waker`, an
/// eventfd on Linux).
pub(crate) type IoWaker = Box<dyn Fn() + Send + Sync>;

/// The sleep/wake state of one worker.
pub(crate) struct Signal {
    state: AtomicU32,
    bell: AtomicBool,
    thread: thread::Thread,
    /// Set once, by the worker, when it first registers I/O; read only by
    /// a producer that found the worker POLLING.
    io_waker: OnceLock<IoWaker>,
}

impl std::fmt::Debug for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signal")
            .field("state", &self.state)
            .field("bell", &self.bell)
            .field("io", &self.io_waker.get().is_some())
            .finish_non_exhaustive()
    }
}

impl Signal {
    /// A signal for the worker running on `thread`.
    pub(crate) fn new(thread: thread::Thread) -> Self {
        Signal {
            state: AtomicU32::new(RUNNING),
            bell: AtomicBool::new(false),
            thread,
            io_waker: OnceLock::new(),
        }
    }

    /// Worker side, once: from now on the worker may sleep in its OS poll
    /// ([`prepare_poll`](Self::prepare_poll)), and `waker` wakes it there.
    /// A second call is ignored (the first waker stays).
    pub(crate) fn set_io_waker(&self, waker: IoWaker) {
        let _ = self.io_waker.set(waker);
    }

    /// Producer side, after publishing: wakes the worker if it is not
    /// running. The fast path is a light barrier and one load.
    #[inline]
    pub(crate) fn notify(&self) {
        barrier::light();
        self.notify_after_barrier();
    }

    /// [`notify`](Self::notify) for a caller that has already issued
    /// [`barrier::light`] after publishing (to notify several workers with
    /// one barrier).
    #[inline]
    pub(crate) fn notify_after_barrier(&self) {
        let state = self.state.load(Relaxed);
        if state != RUNNING {
            self.ring(state);
        }
    }

    #[cold]
    fn ring(&self, state: u32) {
        if !self.bell.load(Relaxed) {
            self.bell.store(true, Release);
        }
        if state == PARKED {
            self.thread.unpark();
        } else if state == POLLING {
            // POLLING was stored with Release after the waker was set: this
            // fence makes the relaxed load that read it an acquire, so the
            // waker is visible here.
            fence(Acquire);
            self.wake_io();
        }
    }

    fn wake_io(&self) {
        if let Some(waker) = self.io_waker.get() {
            waker();
        }
    }

    /// Wakes the worker unconditionally (control changes: freeze, stop).
    /// The caller published the change before calling.
    pub(crate) fn wake_now(&self) {
        self.bell.store(true, Release);
        self.thread.unpark();
        self.wake_io();
    }

    /// Worker side: announces that it watches its bell instead of its
    /// queues. The caller re-checks its queues afterwards, and again every
    /// so often while watching.
    #[inline]
    pub(crate) fn begin_watch(&self) {
        self.bell.store(false, Relaxed);
        self.state.store(WATCHING, Relaxed);
        barrier::light();
    }

    /// Worker side: whether the bell has rung since [`begin_watch`](Self::begin_watch).
    #[inline]
    pub(crate) fn rung(&self) -> bool {
        self.bell.load(Acquire)
    }

    /// Worker side: announces that it is about to park. The caller must
    /// re-check every queue after this returns, and then either
    /// [`park`](Self::park) or [`wake`](Self::wake).
    pub(crate) fn prepare_park(&self) {
        self.bell.store(false, Relaxed);
        self.state.store(PARKED, Relaxed);
        barrier::heavy();
    }

    /// Worker side, for a worker with an [I/O waker](Self::set_io_waker):
    /// announces that it is about to sleep in its OS poll. As with
    /// [`prepare_park`](Self::prepare_park), the caller must re-check every
    /// queue after this returns, then sleep only if
    /// [`may_sleep`](Self::may_sleep), and [`wake`](Self::wake) after.
    pub(crate) fn prepare_poll(&self) {
        debug_assert!(self.io_waker.get().is_some(), "poll sleep without a waker");
        self.bell.store(false, Relaxed);
        // Release: a producer that reads POLLING sees the waker (see `ring`).
        self.state.store(POLLING, Release);
        barrier::heavy();
    }

    /// Worker side, after [`prepare_poll`](Self::prepare_poll) and a
    /// re-check that found nothing: whether no producer rang meanwhile (if
    /// one did, its waker call is already on its way; sleeping would only
    /// cost a spurious wake-up).
    pub(crate) fn may_sleep(&self) -> bool {
        !self.bell.load(Acquire)
    }

    /// Worker side: parks until unparked, the timeout, or a spurious wake-up
    /// (after [`prepare_park`](Self::prepare_park) and a re-check that found
    /// nothing). Once membarrier has failed, the timeout is at most
    /// [`barrier::LOST_WAKEUP_BOUND`] (see [`barrier::bound_park`]).
    pub(crate) fn park(&self, timeout: Option<std::time::Duration>) {
        if !self.bell.load(Acquire) {
            park_current(barrier::bound_park(timeout));
        }
    }

    /// Worker side: back to running. Writes only when the state changes:
    /// every producer reads this line on every send, and a store would take
    /// it out of their caches each time a hot-polling worker finds work.
    #[inline]
    pub(crate) fn wake(&self) {
        if self.state.load(Relaxed) != RUNNING {
            self.state.store(RUNNING, Relaxed);
        }
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
    use crate::lockfree::sync::{Arc, AtomicBool, Condvar, Mutex};

    /// A worker thread goes to sleep with the full protocol (announce
    /// PARKED, barrier, re-check, park without a timeout) while the main
    /// thread publishes a flag and notifies. loom explores every
    /// interleaving: if a wake-up could be lost, the worker would park
    /// forever and loom would report a deadlock.
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
                    signal.prepare_park();
                    if d.load(Acquire) {
                        signal.wake();
                        break;
                    }
                    signal.park(None);
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

    /// The same handshake for a worker that sleeps in its OS poll: it
    /// installs an I/O waker (here a model of mio's eventfd waker: a flag
    /// plus an unpark, and a "poll" that parks unless the flag is set),
    /// announces POLLING, re-checks and sleeps. A producer that reads
    /// POLLING must call the waker; if it could be missed, the worker would
    /// sleep forever and loom would report a deadlock.
    #[test]
    fn no_lost_wakeup_in_poll() {
        loom::model(|| {
            let data = Arc::new(AtomicBool::new(false));
            let slot = Arc::new((Mutex::new(None::<Arc<Signal>>), Condvar::new()));
            let (d, sl) = (data.clone(), slot.clone());
            let worker = thread::spawn(move || {
                let signal = Arc::new(Signal::new(thread::current()));
                let eventfd = Arc::new(AtomicBool::new(false));
                let (fd, me) = (eventfd.clone(), thread::current());
                signal.set_io_waker(Box::new(move || {
                    fd.store(true, Release);
                    me.unpark();
                }));
                *sl.0.lock().unwrap() = Some(signal.clone());
                sl.1.notify_one();
                loop {
                    if d.load(Acquire) {
                        break;
                    }
                    signal.prepare_poll();
                    if d.load(Acquire) {
                        signal.wake();
                        break;
                    }
                    if signal.may_sleep() && !eventfd.swap(false, Acquire) {
                        // epoll_wait without a timeout: returns once the
                        // eventfd was written (or spuriously).
                        thread::park();
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
