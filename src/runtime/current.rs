//! Which pool's worker, if any, the current thread is.
//!
//! A worker thread records its pool (the address of the pool's registry)
//! and its index when its loop starts. Calls that would wait for the
//! pool's own workers check it, so that a call from inside a handler does
//! something defined instead of waiting for itself:
//!
//! - dropping (or shutting down) the `Pool` from one of its own workers
//!   stops the pool on a separate thread instead of waiting for the
//!   calling worker to acknowledge the freeze (`crate::pool`);
//! - a blocking `PoolSender` send from one of its own workers that finds
//!   the inbox full panics with a message naming the misuse instead of
//!   parking the worker, which may be the only thread that can free the
//!   space (`crate::sender`).
//!
//! Only these slow paths read it; the loop never does.

use std::cell::Cell;

thread_local! {
    /// `(registry address, worker index)` of the worker running on this
    /// thread.
    static CURRENT: Cell<Option<(usize, usize)>> = const { Cell::new(None) };
}

/// Marks the current thread as worker `me` of the pool whose registry is
/// at `pool`, until the returned guard is dropped.
pub(crate) fn enter(pool: *const (), me: usize) -> Entered {
    CURRENT.with(|c| c.set(Some((pool as usize, me))));
    Entered(())
}

/// Clears the mark of [`enter`] when dropped (also when unwinding).
pub(crate) struct Entered(());

impl Drop for Entered {
    fn drop(&mut self) {
        // `try_with`: the guard may be dropped while thread-locals are
        // being torn down.
        let _ = CURRENT.try_with(|c| c.set(None));
    }
}

/// The index of the worker of the pool at `pool` running on this thread,
/// if this thread is one of that pool's workers.
pub(crate) fn worker_of(pool: *const ()) -> Option<usize> {
    CURRENT
        .try_with(|c| c.get())
        .ok()
        .flatten()
        .and_then(|(p, me)| (p == pool as usize).then_some(me))
}

/// Whether the current thread runs a worker of any pool (where an ask's
/// answer is staged until the worker publishes its sends).
#[inline]
pub(crate) fn on_worker_thread() -> bool {
    CURRENT.try_with(|c| c.get().is_some()).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_only_this_thread_and_this_pool() {
        let a = 0x1000 as *const ();
        let b = 0x2000 as *const ();
        assert_eq!(worker_of(a), None);
        {
            let _g = enter(a, 3);
            assert_eq!(worker_of(a), Some(3));
            assert_eq!(worker_of(b), None);
            let addr = a as usize;
            std::thread::spawn(move || assert_eq!(worker_of(addr as *const ()), None))
                .join()
                .unwrap();
        }
        assert_eq!(worker_of(a), None, "cleared when the guard drops");
    }
}
