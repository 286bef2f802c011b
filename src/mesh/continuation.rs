//! The continuation of one pending ask (its `then`), with its type erased
//! and, when it is small, without an allocation.
//!
//! Every ask stores one continuation until its outcome is known. A
//! `Box<dyn FnOnce>` costs a `malloc` at the ask and a `free` at the
//! answer: measured with callgrind on the pipelined ask bench, that pair
//! was the largest single item of an ask's own work. Most continuations
//! capture a key or a connection id, a word or two, so a closure of up to
//! three words is held inline in the table's slot, and a larger one is
//! boxed.

use std::marker::PhantomData;
use std::mem::{align_of, size_of, ManuallyDrop, MaybeUninit};

use super::asks::Outcome;

/// The inline buffer: three words, word-aligned.
type Inline = [usize; 3];

/// A `FnOnce(Outcome) -> Option<M>`, type-erased, called at most once.
pub(crate) struct Continuation<M> {
    bytes: MaybeUninit<Inline>,
    /// Moves the closure out of `bytes` and calls it.
    call: unsafe fn(*mut Inline, Outcome) -> Option<M>,
    /// Drops the closure in `bytes` in place.
    drop: unsafe fn(*mut Inline),
    /// Neither `Send` nor `Sync`, as the closure need not be: it stays on
    /// the asker's thread.
    _local: PhantomData<*const ()>,
}

/// Calls the `F` that `Continuation::new` wrote at `p` (inline or as a
/// `Box<F>`, per [`fits`]).
///
/// # Safety
/// `p` holds the initialized value `new` wrote for this `F`, not moved out
/// or dropped before; it is moved out here, so the caller must not use or
/// drop it again.
unsafe fn call<F: FnOnce(Outcome) -> Option<M>, M>(p: *mut Inline, outcome: Outcome) -> Option<M> {
    if fits::<F>() {
        // SAFETY: the caller's contract; an `F` was written inline.
        let f = unsafe { p.cast::<F>().read() };
        f(outcome)
    } else {
        // SAFETY: the caller's contract; a `Box<F>` was written inline.
        let f = unsafe { p.cast::<Box<F>>().read() };
        f(outcome)
    }
}

/// Drops the `F` (or `Box<F>`) that `Continuation::new` wrote at `p`.
///
/// # Safety
/// As for [`call`].
unsafe fn drop_in<F>(p: *mut Inline) {
    if fits::<F>() {
        // SAFETY: the caller's contract.
        unsafe { std::ptr::drop_in_place(p.cast::<F>()) }
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::ptr::drop_in_place(p.cast::<Box<F>>()) }
    }
}

/// Whether an `F` is held inline (else a `Box<F>` is, which always fits).
const fn fits<F>() -> bool {
    size_of::<F>() <= size_of::<Inline>() && align_of::<F>() <= align_of::<Inline>()
}

impl<M> Continuation<M> {
    /// Wraps `f`.
    pub(crate) fn new<F: FnOnce(Outcome) -> Option<M> + 'static>(f: F) -> Self {
        let mut bytes = MaybeUninit::<Inline>::uninit();
        if fits::<F>() {
            // SAFETY: an `F` fits the buffer's size and alignment (checked
            // by `fits`), and the buffer is ours and uninitialized.
            unsafe { bytes.as_mut_ptr().cast::<F>().write(f) };
        } else {
            // SAFETY: a `Box` is one word, word-aligned; the buffer is ours
            // and uninitialized.
            unsafe { bytes.as_mut_ptr().cast::<Box<F>>().write(Box::new(f)) };
        }
        Continuation {
            bytes,
            call: call::<F, M>,
            drop: drop_in::<F>,
            _local: PhantomData,
        }
    }

    /// Runs the continuation with `outcome`.
    #[inline]
    pub(crate) fn run(self, outcome: Outcome) -> Option<M> {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `bytes` holds what `new` wrote for the `F` that `call`
        // was instantiated with; `this` is never dropped (ManuallyDrop), so
        // the closure is moved out exactly once, here.
        unsafe { (this.call)(this.bytes.as_mut_ptr(), outcome) }
    }
}

impl<M> Drop for Continuation<M> {
    fn drop(&mut self) {
        // SAFETY: an unrun continuation holds the closure `new` wrote, with
        // the matching `drop`; `run` forgets the continuation it consumes,
        // so this runs at most once and never after `run`.
        unsafe { (self.drop)(self.bytes.as_mut_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AskError;
    use std::rc::Rc;

    fn answer(o: Outcome) -> u64 {
        match o {
            Ok(v) => v.take::<u64>().unwrap(),
            Err(AskError::Timeout) => 1000,
            Err(_) => 2000,
        }
    }

    #[test]
    fn small_closures_inline_and_large_ones_boxed_run_once() {
        let k = 5u64;
        assert!(fits::<fn()>() && fits::<(u64, u64, u64)>());
        assert!(!fits::<[u64; 4]>());
        let small = Continuation::new(move |o| Some(answer(o) + k));
        assert_eq!(small.run(Ok(super::super::asks::Value::new(2u64))), Some(7));
        let big = [1u64, 2, 3, 4];
        let large = Continuation::new(move |o| Some(answer(o) + big.iter().sum::<u64>()));
        assert_eq!(large.run(Err(AskError::Timeout)), Some(1010));
        let s = String::from("captured");
        let with_heap = Continuation::<String>::new(move |_| Some(s));
        assert_eq!(
            with_heap.run(Err(AskError::NoReply)).as_deref(),
            Some("captured")
        );
    }

    #[test]
    fn captures_are_dropped_once_whether_run_or_not() {
        let token = Rc::new(());
        let t = token.clone();
        let unrun = Continuation::<u8>::new(move |_| {
            let _keep = &t;
            None
        });
        assert_eq!(Rc::strong_count(&token), 2);
        drop(unrun);
        assert_eq!(Rc::strong_count(&token), 1, "dropped unrun");
        let (t, pad) = (token.clone(), [7u64; 4]);
        let boxed = Continuation::<u64>::new(move |_| {
            let _keep = &t;
            Some(pad[0])
        });
        assert_eq!(Rc::strong_count(&token), 2);
        assert_eq!(boxed.run(Err(AskError::NoReply)), Some(7));
        assert_eq!(Rc::strong_count(&token), 1, "dropped when run");
        let t = token.clone();
        let boxed_unrun = Continuation::<u64>::new(move |_| {
            let _keep = (&t, [0u8; 64]);
            None
        });
        drop(boxed_unrun);
        assert_eq!(Rc::strong_count(&token), 1);
    }
}
