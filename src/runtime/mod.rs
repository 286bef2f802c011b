//! The loop each worker thread runs, and what it owns.
//!
//! - [`worker_loop`]: [`Runtime`], one worker's loop — control word,
//!   overflow, drain a batch from every inbound queue, `handle`, publish,
//!   `tick` — and the catching of panics around every callback.
//! - [`inbound`]: [`Inbound`], the queues the worker consumes (its inbox's
//!   receiving side and the rings from every peer) and the "anything
//!   pending?" check the idle path polls.
//! - [`idle`]: `Idle`, the state machine for a worker with nothing to do:
//!   hot-poll, spin, yield, park, bounded by the next tick.
//! - [`current`]: which pool's worker the current thread is, for the calls
//!   that must not wait for their own worker (dropping the pool, a
//!   blocking send from a handler).
//! - [`queue_delay`]: `DelaySampler`, how long messages wait in the
//!   worker's queues, sampled by index (no timestamp per message).
//! - [`reactor`]: `Reactor`, a worker's own `mio::Poll`, created when the
//!   worker first asks for [`Context::io`](crate::Context::io): when to
//!   poll readiness while busy, and the OS poll as the worker's one sleep.
//! - [`restart`]: `RestartBudget`, how many restarts a
//!   [`PanicPolicy::Restart`](crate::PanicPolicy::Restart) still allows,
//!   and `Backoff`, how long a worker waits before its next restart.
//!
//! The loop and the idle/park handshake are drawn once, in
//! `docs/architecture.md` ("The worker loop", "Parking and waking").

mod current;
mod idle;
mod inbound;
mod queue_delay;
mod reactor;
mod restart;
mod worker_loop;

pub(crate) use current::{on_worker_thread, worker_of};
pub(crate) use inbound::Inbound;
pub(crate) use reactor::Reactor;
pub(crate) use restart::panic_message;
pub(crate) use worker_loop::{Factory, LoopConfig, Runtime, StartReport, WorkerExit};
