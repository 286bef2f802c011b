//! Key-agnostic round-robin with a per-thread cursor.

use crate::Partitioner;
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Numbers threads in the order they first use [`RoundRobin`]; read once per
/// thread, never on the hot path.
static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);

/// "Not started" marker; any value `>= shards` makes the next call reduce.
const UNSTARTED: usize = usize::MAX;

thread_local! {
    /// The next shard this thread sends to (or [`UNSTARTED`]).
    static CURSOR: Cell<usize> = const { Cell::new(UNSTARTED) };
}

/// Round-robin: ignores the key and cycles through the shards.
///
/// There is no shared atomic on the hot path: each thread keeps its own
/// cursor in a thread-local `Cell`, so concurrent senders never contend.
/// The `i`-th thread to use any `RoundRobin` starts at shard `i mod shards`,
/// so many senders that each send a few messages still spread evenly
/// instead of all hitting shard 0. From then on each thread visits
/// `0..shards` in order: after `k · shards` calls from one thread every shard
/// has received exactly `k` of them.
///
/// The cursor is per thread, not per `RoundRobin` value: two pools used from
/// the same thread share it (each still sees an even spread when it uses a
/// different shard count, because the cursor is re-reduced modulo the new
/// count). Not deterministic across runs by design — use it only for
/// messages whose key does not matter.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobin;

impl Partitioner for RoundRobin {
    #[inline]
    fn shard(&self, _key_hash: u64, shards: usize) -> usize {
        CURSOR.with(|cursor| {
            let mut s = cursor.get();
            if s >= shards {
                s = start_or_reduce(s, shards);
            }
            let next = s + 1;
            cursor.set(if next == shards { 0 } else { next });
            s
        })
    }

    fn name(&self) -> &'static str {
        "round-robin"
    }
}

/// Cold path: the thread's first call (take a thread number as the starting
/// offset) or a call with a smaller shard count than the cursor.
#[cold]
fn start_or_reduce(cursor: usize, shards: usize) -> usize {
    let c = if cursor == UNSTARTED {
        NEXT_THREAD.fetch_add(1, Ordering::Relaxed) & (usize::MAX >> 1)
    } else {
        cursor
    };
    c % shards.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_offsets_are_thread_numbers() {
        assert_eq!(start_or_reduce(5, 3), 2);
        assert_eq!(start_or_reduce(2, 3), 2);
        // Threads 0..n start on distinct shards.
        let starts: Vec<usize> = (0..7).map(|t| start_or_reduce(t, 7)).collect();
        assert_eq!(starts, (0..7).collect::<Vec<_>>());
    }
}
