//! The synchronization primitives the lock-free code is written against:
//! `std`'s in normal builds, `loom`'s under `--cfg loom` so the same code is
//! model-checked.

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Condvar, Mutex};
#[cfg(loom)]
pub(crate) use loom::thread;

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Condvar, Mutex};
#[cfg(not(loom))]
pub(crate) use std::thread;

/// `std`'s `UnsafeCell` behind loom's closure-based API, so that the same
/// code compiles both ways.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    #[inline]
    pub(crate) fn new(value: T) -> Self {
        UnsafeCell(std::cell::UnsafeCell::new(value))
    }

    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    #[inline]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// Reads an atomic that the caller owns exclusively (`&mut`), without an
/// atomic operation in normal builds.
#[inline]
pub(crate) fn load_mut(a: &mut AtomicUsize) -> usize {
    #[cfg(not(loom))]
    {
        *a.get_mut()
    }
    #[cfg(loom)]
    {
        a.with_mut(|v| *v)
    }
}

/// A single-writer statistics counter: only its owning thread adds to it
/// (a plain load and store, no read-modify-write); any thread may read it.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning thread may call this.
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// Sets the value. Only the owning thread may call this.
    #[inline]
    pub(crate) fn set(&self, n: u64) {
        self.0.store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Reads the value (relaxed: may be a little stale).
    #[inline]
    pub(crate) fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Reads the value with acquire ordering.
    #[inline]
    pub(crate) fn get_acquire(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Sets the value with release ordering. Only the owning thread.
    #[inline]
    pub(crate) fn set_release(&self, n: u64) {
        self.0.store(n, std::sync::atomic::Ordering::Release);
    }
}
