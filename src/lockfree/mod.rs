//! The lock-free core: the queues, the park/wake handshake and the
//! quiescence protocol, written against [`sync`] so that the same code runs
//! on `std` and, under `--cfg loom`, inside loom's model checker. Nothing in
//! here knows about pools, workers or statistics; everything above builds on
//! it. Under `--cfg loom` this module is the only one compiled.
//!
//! - [`ring`]: the SPSC ring between two workers, split into a `Producer`
//!   and a `Consumer` (one file per side).
//! - [`inbox`]: the bounded MPSC inbox for threads outside the pool, and
//!   [`inbox_wait`]: its senders waiting for space (threads and tasks).
//! - [`signal`]: one worker's park/wake handshake (its "bell").
//! - [`barrier`]: the light/heavy barrier pair that handshake and the inbox
//!   waiters use.
//! - [`shutdown`]: the FREEZE/STOP detector that proves the pool quiescent.
//! - [`prefetch`]: cache-line prefetch hints.
//! - [`sync`]: `std` or loom primitives, and the single-writer `Counter`.
//!
//! Each protocol has its loom model beside it (`loom_tests` modules); run
//! them with `RUSTFLAGS="--cfg loom" cargo test --release --lib -- loom`.
//! The diagrams are in `docs/architecture.md`.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![deny(missing_debug_implementations)]

pub(crate) mod barrier;
pub(crate) mod inbox;
pub(crate) mod inbox_wait;
#[cfg(all(test, not(loom)))]
mod model_tests;
pub(crate) mod prefetch;
pub(crate) mod ring;
pub(crate) mod shutdown;
pub(crate) mod signal;
pub(crate) mod sync;
