//! A partitioner from a closure.

use crate::Partitioner;
use std::fmt;

/// A partitioner that calls a closure `f(key_hash, shards) -> shard`.
///
/// The closure **must return a value `< shards`**. It is not clamped or
/// reduced: `Custom` `debug_assert!`s it (as does the pool), and in release
/// builds an out-of-range value is passed through, so the pool will reject
/// or panic on it. Reduce with multiply-shift, e.g.
/// `((h as u128 * shards as u128) >> 64) as usize`, rather than `h % shards`
/// if you need speed.
///
/// ```
/// use shardpool_partitioners::{Custom, Partitioner};
///
/// // Keys with an even hash go to shard 0, the rest round the others.
/// let p = Custom::new(|h: u64, shards: usize| {
///     if h % 2 == 0 || shards == 1 { 0 } else { 1 + (h as usize) % (shards - 1) }
/// });
/// assert_eq!(p.shard(4, 8), 0);
/// assert!(p.shard(7, 8) < 8);
/// ```
#[derive(Clone, Copy)]
pub struct Custom<F> {
    f: F,
}

impl<F> Custom<F>
where
    F: Fn(u64, usize) -> usize + Send + Sync + 'static,
{
    /// Wraps `f(key_hash, shards)`, which must return a value `< shards`.
    pub fn new(f: F) -> Self {
        Custom { f }
    }
}

impl<F> fmt::Debug for Custom<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Custom").finish_non_exhaustive()
    }
}

impl<F> Partitioner for Custom<F>
where
    F: Fn(u64, usize) -> usize + Send + Sync + 'static,
{
    #[inline]
    fn shard(&self, key_hash: u64, shards: usize) -> usize {
        let s = (self.f)(key_hash, shards);
        debug_assert!(
            s < shards,
            "Custom partitioner returned shard {s}, not < {shards}"
        );
        s
    }
}
