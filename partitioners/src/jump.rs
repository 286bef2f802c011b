//! Jump consistent hash (Lamping & Veach, "A Fast, Minimal Memory, Consistent
//! Hash Algorithm", 2014).

use crate::Partitioner;

/// Jump consistent hash: no memory, `O(ln n)` time, perfectly balanced in
/// expectation, and consistent when shards are added or removed *at the end*
/// (going from `n` to `n + 1` shards moves exactly the keys that now land on
/// shard `n`, an expected `1/(n + 1)` of them, and no others).
///
/// This is the algorithm of the paper, bit for bit: its 64-bit linear
/// congruential generator seeded with the key hash and its `f64` arithmetic,
/// so for `shards < 2³¹` it returns the same bucket as the paper's C++ code
/// and ports of it (e.g. Guava's `Hashing.consistentHash`) given the same
/// 64-bit input.
///
/// Shards can only be removed from the end. To remove an arbitrary shard
/// use [`JumpAnchor`](crate::JumpAnchor), which is identical to `JumpHash`
/// as long as nothing has been removed.
#[derive(Debug, Clone, Copy, Default)]
pub struct JumpHash;

impl JumpHash {
    /// The bucket in `0..buckets` of a key whose hash is `key_hash`.
    ///
    /// Returns 0 when `buckets` is 0 or 1.
    #[inline]
    pub fn bucket(key_hash: u64, buckets: usize) -> usize {
        jump(key_hash, buckets)
    }
}

impl Partitioner for JumpHash {
    #[inline]
    fn shard(&self, key_hash: u64, shards: usize) -> usize {
        jump(key_hash, shards)
    }

    fn name(&self) -> &'static str {
        "jump"
    }
}

/// The paper's loop:
///
/// ```text
/// b = -1; j = 0;
/// while (j < n) { b = j; key = key * 2862933555777941757 + 1;
///                 j = (b + 1) * (double(1 << 31) / double((key >> 33) + 1)); }
/// return b;
/// ```
///
/// with two exact rewrites: the first iteration (always taken for `n ≥ 1`)
/// starts the loop with `b = 0`, and the exit test `trunc(x) < n` is done as
/// `x >= n` on the `f64` product `x` (equivalent for `x ≥ 0` and integer
/// `n < 2⁵³`), so the branch does not wait for the float → int conversion.
#[inline]
pub(crate) fn jump(mut key: u64, buckets: usize) -> usize {
    let n = buckets as f64;
    let mut b: i64 = 0;
    loop {
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        let j = (b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64);
        if j >= n {
            return b as usize;
        }
        b = j as i64;
    }
}
