//! The value of an ask's answer with its type erased, on its way from the
//! answering thread to the asker.
//!
//! A value of up to four words is held inline; a larger one is boxed. The
//! inline case is the point of this module: a boxed answer is allocated on
//! the answering thread and freed on the asker's, and under a stream of
//! answers that pattern sends the allocator to the answerer's arena lock
//! from both threads (profiled: futex waits in `malloc`/`free` were the
//! largest cost of pipelined asks). Most answers (counts, ids, flags,
//! `Option<u64>`, a `String`, a `Vec`, a `Bytes`, a `Box` or an `Arc`) fit
//! in four words.
//!
//! A `Value` is five words: the four-word buffer and a pointer to a static
//! table for its type (its `TypeId`, its drop, whether it is boxed), so
//! that an answer with its id, tag and the asker's box reference fills
//! exactly one cache line of an answer lane.

use std::any::TypeId;
use std::mem::{align_of, size_of, ManuallyDrop, MaybeUninit};

/// The inline buffer: four words, word-aligned.
type Inline = [usize; 4];

/// What a `Value` knows of the type it holds.
struct Table {
    /// The `R` that `Value::new` was given.
    type_id: fn() -> TypeId,
    /// Whether `bytes` holds a `Box<R>` rather than an `R`.
    boxed: bool,
    /// Drops what `bytes` holds (the `R`, or the `Box<R>`), in place.
    drop: unsafe fn(*mut Inline),
}

/// The table of `R` held inline ([`Of::INLINE`]) or boxed
/// ([`Of::BOXED`]): constants, so `&Of::<R>::INLINE` is a `'static`.
struct Of<R>(std::marker::PhantomData<R>);

impl<R: 'static> Of<R> {
    const INLINE: Table = Table {
        type_id: TypeId::of::<R>,
        boxed: false,
        drop: drop_in::<R>,
    };
    const BOXED: Table = Table {
        type_id: TypeId::of::<R>,
        boxed: true,
        drop: drop_in::<Box<R>>,
    };
}

/// A value of some `R: Send + 'static`, type-erased.
pub(crate) struct Value {
    bytes: MaybeUninit<Inline>,
    table: &'static Table,
}

// SAFETY: a `Value` is built only by `Value::new`, from an `R: Send`, and
// holds that `R` (inline, or as a `Box<R>`) and nothing else: moving it to
// another thread moves an `R`.
unsafe impl Send for Value {}

/// Drops the `T` written at `p`.
///
/// # Safety
/// `p` points to an initialized `T`, suitably aligned, not dropped before.
unsafe fn drop_in<T>(p: *mut Inline) {
    // SAFETY: the caller's contract.
    unsafe { std::ptr::drop_in_place(p.cast::<T>()) }
}

impl Value {
    /// Whether an `R` is held inline (else a `Box<R>` is, which always
    /// fits).
    const fn fits<R>() -> bool {
        size_of::<R>() <= size_of::<Inline>() && align_of::<R>() <= align_of::<Inline>()
    }

    /// Wraps `value`.
    pub(crate) fn new<R: Send + 'static>(value: R) -> Self {
        let mut bytes = MaybeUninit::<Inline>::uninit();
        let table = if Self::fits::<R>() {
            // SAFETY: an `R` fits the buffer's size and alignment (checked
            // by `fits`), and the buffer is ours and uninitialized.
            unsafe { bytes.as_mut_ptr().cast::<R>().write(value) };
            &Of::<R>::INLINE
        } else {
            // SAFETY: a `Box` is one word, word-aligned; the buffer is ours
            // and uninitialized.
            unsafe { bytes.as_mut_ptr().cast::<Box<R>>().write(Box::new(value)) };
            &Of::<R>::BOXED
        };
        Value { bytes, table }
    }

    /// The value, if it is an `R` (else it is dropped and `None` returned).
    pub(crate) fn take<R: 'static>(self) -> Option<R> {
        if (self.table.type_id)() != TypeId::of::<R>() {
            return None;
        }
        let this = ManuallyDrop::new(self);
        let p = this.bytes.as_ptr();
        if this.table.boxed {
            // SAFETY: the table says `new` wrote a `Box<R>` here; it is
            // read once and, `this` being forgotten, never dropped in place.
            Some(*unsafe { p.cast::<Box<R>>().read() })
        } else {
            // SAFETY: the table says `new` wrote an `R` here (inline, so it
            // fits); read once, never dropped in place, as above.
            Some(unsafe { p.cast::<R>().read() })
        }
    }
}

impl Drop for Value {
    fn drop(&mut self) {
        // SAFETY: a `Value` holds what `new` wrote, with the matching
        // table; `take` forgets the `Value` it moves the value out of, so
        // this runs at most once.
        unsafe { (self.table.drop)(self.bytes.as_mut_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;

    #[test]
    fn small_values_inline_and_large_ones_boxed_round_trip() {
        assert!(Value::fits::<u64>() && Value::fits::<Option<u64>>());
        assert!(Value::fits::<Box<u8>>() && Value::fits::<(u32, u8)>());
        assert!(Value::fits::<String>() && Value::fits::<[u64; 4]>());
        assert!(!Value::fits::<[u64; 5]>() && !Value::fits::<(String, u64, u64)>());
        assert_eq!(Value::new(7u64).take::<u64>(), Some(7));
        assert_eq!(Value::new(()).take::<()>(), Some(()));
        assert_eq!(Value::new(Some(3u16)).take::<Option<u16>>(), Some(Some(3)));
        assert_eq!(
            Value::new(String::from("inline"))
                .take::<String>()
                .as_deref(),
            Some("inline")
        );
        assert_eq!(
            Value::new((String::from("boxed"), 1u64, 2u64)).take::<(String, u64, u64)>(),
            Some((String::from("boxed"), 1, 2))
        );
        assert_eq!(*Value::new(Box::new(5u8)).take::<Box<u8>>().unwrap(), 5);
    }

    #[test]
    fn a_wrong_type_is_refused_and_the_value_dropped_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        struct Counted(Arc<AtomicUsize>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, SeqCst);
            }
        }
        // Inline (one word) and boxed (padded past four words).
        assert!(Value::new(Counted(drops.clone())).take::<u64>().is_none());
        assert_eq!(drops.load(SeqCst), 1);
        drop(Value::new(Counted(drops.clone())));
        assert_eq!(drops.load(SeqCst), 2, "dropped when the Value is");
        let taken = Value::new(Counted(drops.clone())).take::<Counted>();
        assert_eq!(drops.load(SeqCst), 2, "not dropped when taken");
        drop(taken);
        assert_eq!(drops.load(SeqCst), 3);
        drop(Value::new((Counted(drops.clone()), [0u64; 4])));
        assert_eq!(drops.load(SeqCst), 4);
    }

    #[test]
    fn five_words_and_an_outcome_no_larger() {
        assert_eq!(size_of::<Value>(), 5 * size_of::<usize>());
        assert_eq!(
            size_of::<Result<Value, crate::AskError>>(),
            size_of::<Value>()
        );
    }

    #[test]
    fn moves_to_another_thread() {
        let v = Value::new(Arc::new(41u32));
        let back = std::thread::spawn(move || v.take::<Arc<u32>>().map(|a| *a + 1))
            .join()
            .unwrap();
        assert_eq!(back, Some(42));
    }
}
