//! shardpool's side of every workload. Each file is one workload; its
//! peers' side is in [`crate::peers`], under the same name.
//!
//! | module | workload |
//! |---|---|
//! | [`mesh`] | worker 0 → worker 1 over the pool's SPSC ring |
//! | [`inbox`] | external producers → 1 worker through its MPSC inbox |
//! | [`keyed`] | an external producer → 2 workers, routed by key, counted per key |
//! | [`shuffle`] | 2 workers sending keyed messages to each other |
//! | [`latency`] | request/response round trips between 2 workers |
//! | [`idle`] | CPU of an idle pool, wake-up latency of a parked worker |
//! | [`ask`] | `ctx.ask` round trips between 2 workers against two hand-written messages; memory per pending ask |
//! | [`async_callers`] | tokio tasks sending to a worker, and calling it for an answer |

pub mod ask;
pub mod async_callers;
pub mod idle;
pub mod inbox;
pub mod keyed;
pub mod latency;
pub mod mesh;
pub mod shuffle;

use crate::harness::Latch;

/// A consumer worker's count and sum of the `u64`s it received, and the
/// latch it sets (once, from `tick`) when it has counted its target.
#[derive(Default)]
struct Sink {
    count: u64,
    sum: u64,
    fired: bool,
}

impl Sink {
    #[inline]
    fn take(&mut self, v: u64) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(v);
    }

    #[inline]
    fn fire_at(&mut self, target: u64, latch: &Latch) {
        if !self.fired && self.count >= target {
            self.fired = true;
            latch.set();
        }
    }
}
