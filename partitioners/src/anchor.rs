//! Consistent hashing that survives the removal of an *arbitrary* shard
//! ([`JumpAnchor`]).

use crate::jump::jump;
use crate::Partitioner;
use std::fmt;

/// Why a [`JumpAnchor`] membership change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MembershipError {
    /// The shard is not currently working (out of range or already removed).
    NotWorking(usize),
    /// The shard is the only working one; at least one must remain.
    LastShard,
}

impl fmt::Display for MembershipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MembershipError::NotWorking(s) => write!(f, "shard {s} is not a working shard"),
            MembershipError::LastShard => f.write_str("cannot remove the last working shard"),
        }
    }
}

impl std::error::Error for MembershipError {}

/// Consistent hashing with arbitrary removal: jump hash + AnchorHash
/// replacement.
///
/// # Algorithm
///
/// [`JumpAnchor`] is [`JumpHash`](crate::JumpHash) for the initial placement
/// plus the replacement mechanism of AnchorHash (Mendelson, Vargaftik,
/// Barabash, Lorenz, Keslassy, Orda, "AnchorHash: A Scalable Consistent
/// Hash", IEEE/ACM ToN 2021) for removed shards. This is the construction
/// popularised by MementoHash (Coluzzi, Brocco, Antonucci, Leidi, 2023);
/// the bookkeeping here is AnchorHash's `A`/`K`/`W`/`L` arrays.
///
/// Shard ids live in `0..n` (the *bucket array*). A lookup starts at
/// `b = jump(h, n)`. While `b` is removed, with `A[b]` the number of working
/// shards right after `b` was removed, it draws `c` uniformly in `0..A[b]`
/// from a rehash of `(h, b)`, follows `c ← K[c]` while `c` was removed
/// before `b` (`K[c]` is the shard that took `c`'s place), and continues
/// with `b = c`. This gives:
///
/// * **balance** — a key is uniform over the working shards;
/// * **minimal disruption** — removing shard `k` moves only the keys that
///   were on `k`; [`add`](JumpAnchor::add) moves only keys onto the added
///   shard (it restores the most recently removed shard, LIFO, or appends
///   shard `n` when none is removed);
/// * **no cost until used** — while no shard is removed it *is* jump hash:
///   no table, no memory access. Removing the last shard (`n − 1`) with no
///   other removal simply shrinks `n`, as jump hash does. Removals cost
///   16 bytes per bucket-array slot, allocated on the first one, and an
///   expected `O(1 + ln(n / working))` extra rehashes per lookup.
///
/// # Why this scheme
///
/// The requirements were: arbitrary removal with minimal movement,
/// per-message lookup cost, balance, and a `Partitioner` over `0..n` that is
/// lock-free and allocation-free. Measured alternatives
/// (`cargo run --release -p shardpool-partitioners --example measure`, and
/// the `alternatives` group of the `partitioners` bench; details in
/// `PARTITIONERS.md`):
///
/// * *Ring with 160 virtual nodes per shard*: a binary search over `160·n`
///   points, 7 / 10 / 32 ns per lookup at n = 2 / 16 / 1024 against
///   2.7 / 7.3 / 19 ns here, and uneven arcs: max/mean load 1.16 at
///   n = 16 and 1.23–1.26 at n ≥ 100, against 1.007 and 1.02–1.11 here (the
///   binomial noise of 10⁶ keys). Growing moves the new shard's arcs, a
///   random share (0.86–1.10 × ideal measured).
/// * *Rendezvous (HRW)*: perfect balance and minimal disruption, but `n`
///   hashes per lookup: 14 ns at n = 16 and 830 ns at n = 1024.
/// * *Maglev* (not implemented; from its paper's own analysis): `O(1)`
///   lookups but a table of ~100·n entries rebuilt per membership change,
///   and a removal also moves some keys between *surviving* shards, which
///   violates "removing `k` moves only keys that were on `k`".
/// * *Plain AnchorHash*: same guarantees, but needs a fixed capacity `a`
///   chosen up front and pays `ln(a / n)` rehashes when `n ≪ a`; putting
///   jump hash in front removes the capacity and makes the common
///   no-removal case exactly jump hash.
///
/// # Use
///
/// Shards are identified by ids in `0..bucket_count()`; map them to your
/// nodes with a table of your own. Membership changes take `&mut self`;
/// lookups take `&self`, never lock and never allocate, so a cluster layer
/// can publish a new `Arc<JumpAnchor>` per membership epoch.
///
/// ```
/// use shardpool_partitioners::{key_hash, JumpAnchor};
///
/// let mut m = JumpAnchor::new(5);
/// let before: Vec<usize> = (0..1000u64).map(|k| m.shard_of(key_hash(&k))).collect();
/// m.remove(1).unwrap();
/// for k in 0..1000u64 {
///     let now = m.shard_of(key_hash(&k));
///     assert_ne!(now, 1);
///     // Only keys that were on shard 1 moved.
///     if before[k as usize] != 1 {
///         assert_eq!(now, before[k as usize]);
///     }
/// }
/// assert_eq!(m.add(), 1); // restores the most recently removed shard
/// let after: Vec<usize> = (0..1000u64).map(|k| m.shard_of(key_hash(&k))).collect();
/// assert_eq!(before, after);
/// ```
#[derive(Debug, Clone)]
pub struct JumpAnchor {
    /// Size of the bucket array: shard ids are in `0..n`.
    n: u32,
    /// `A`: 0 for a working bucket, else the working count right after it was
    /// removed (always ≥ 1). Empty until the first non-tail removal.
    removed_at: Vec<u32>,
    /// `K`: for a removed bucket, the bucket that took its position.
    replacement: Vec<u32>,
    /// `W`: the bucket at each position; positions `0..working` are working.
    bucket_at: Vec<u32>,
    /// `L`: the position of each bucket.
    position: Vec<u32>,
    /// `R`: removed buckets, most recent last.
    removed: Vec<u32>,
}

impl Default for JumpAnchor {
    /// A membership of one shard.
    fn default() -> Self {
        Self::new(1)
    }
}

impl JumpAnchor {
    /// A membership of `shards` working shards `0..shards`. Allocates
    /// nothing; until a shard is removed, lookups are exactly
    /// [`JumpHash`](crate::JumpHash).
    ///
    /// # Panics
    ///
    /// If `shards` is 0 or greater than `u32::MAX`.
    pub fn new(shards: usize) -> Self {
        assert!(shards >= 1, "JumpAnchor needs at least one shard");
        let n = u32::try_from(shards).expect("JumpAnchor supports at most u32::MAX shards");
        JumpAnchor {
            n,
            removed_at: Vec::new(),
            replacement: Vec::new(),
            bucket_at: Vec::new(),
            position: Vec::new(),
            removed: Vec::new(),
        }
    }

    /// The size of the bucket array: every shard id, working or removed, is
    /// `< bucket_count()`.
    pub fn bucket_count(&self) -> usize {
        self.n as usize
    }

    /// The number of working shards (always ≥ 1).
    pub fn working_count(&self) -> usize {
        (self.n as usize) - self.removed.len()
    }

    /// Whether `shard` is a working shard.
    pub fn is_working(&self, shard: usize) -> bool {
        shard < self.n as usize && (self.removed.is_empty() || self.removed_at[shard] == 0)
    }

    /// The working shards, in no particular order.
    pub fn working(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.n as usize).filter(move |&s| self.is_working(s))
    }

    /// The shard id the next [`add`](Self::add) will return: the most
    /// recently removed shard, or `bucket_count()` if none is removed.
    pub fn next_to_add(&self) -> usize {
        match self.removed.last() {
            Some(&b) => b as usize,
            None => self.n as usize,
        }
    }

    /// The working shard owning a key whose [`key_hash`](crate::key_hash) is
    /// `key_hash`. Lock-free and allocation-free.
    #[inline]
    pub fn shard_of(&self, key_hash: u64) -> usize {
        let mut b = jump(key_hash, self.n as usize);
        if self.removed.is_empty() {
            return b;
        }
        loop {
            let a = self.removed_at[b];
            if a == 0 {
                return b;
            }
            // A position in 0..a, i.e. among the working set right after b
            // was removed; resolve it to the bucket that held it then.
            let mut c = reduce(rehash(key_hash, b as u32), a);
            while self.removed_at[c] >= a {
                c = self.replacement[c] as usize;
            }
            b = c;
        }
    }

    /// Removes working shard `shard`. Only the keys that were on `shard` move,
    /// each to a uniformly chosen working shard.
    ///
    /// # Errors
    ///
    /// [`MembershipError::NotWorking`] if `shard` is not working,
    /// [`MembershipError::LastShard`] if it is the only working shard.
    pub fn remove(&mut self, shard: usize) -> Result<(), MembershipError> {
        if !self.is_working(shard) {
            return Err(MembershipError::NotWorking(shard));
        }
        if self.working_count() == 1 {
            return Err(MembershipError::LastShard);
        }
        if self.removed.is_empty() && shard == self.n as usize - 1 {
            // Tail removal with nothing else removed: jump hash handles it.
            self.n -= 1;
            self.truncate_tables();
            return Ok(());
        }
        self.materialize();
        let b = shard;
        let working_after = (self.working_count() - 1) as u32;
        let last = self.bucket_at[working_after as usize];
        self.removed.push(b as u32);
        self.removed_at[b] = working_after;
        self.replacement[b] = last;
        let pos_b = self.position[b];
        self.bucket_at[pos_b as usize] = last;
        self.position[last as usize] = pos_b;
        Ok(())
    }

    /// Adds a shard and returns its id: the most recently removed shard is
    /// restored (exactly undoing its removal), or, when none is removed, the
    /// bucket array grows by one and shard `bucket_count() - 1` is appended.
    /// Only keys that move *onto* the returned shard move.
    ///
    /// # Panics
    ///
    /// If the bucket array already has `u32::MAX` shards.
    pub fn add(&mut self) -> usize {
        if let Some(b) = self.removed.pop() {
            let working = self.working_count() - 1; // before this add
            let b = b as usize;
            let moved = self.bucket_at[working];
            self.removed_at[b] = 0;
            self.position[moved as usize] = working as u32;
            self.bucket_at[self.position[b] as usize] = b as u32;
            self.replacement[b] = b as u32;
            return b;
        }
        self.n = self
            .n
            .checked_add(1)
            .expect("JumpAnchor supports at most u32::MAX shards");
        if !self.removed_at.is_empty() {
            let b = self.n - 1;
            self.removed_at.push(0);
            self.replacement.push(b);
            self.bucket_at.push(b);
            self.position.push(b);
        }
        self.n as usize - 1
    }

    /// Allocates the identity tables for the current bucket array.
    fn materialize(&mut self) {
        if self.removed_at.len() == self.n as usize {
            return;
        }
        debug_assert!(self.removed.is_empty());
        let n = self.n as usize;
        self.removed_at = vec![0; n];
        self.replacement = (0..self.n).collect();
        self.bucket_at = (0..self.n).collect();
        self.position = (0..self.n).collect();
    }

    /// Shrinks materialised identity tables after a tail removal.
    fn truncate_tables(&mut self) {
        if !self.removed_at.is_empty() {
            let n = self.n as usize;
            self.removed_at.truncate(n);
            self.replacement.truncate(n);
            self.bucket_at.truncate(n);
            self.position.truncate(n);
        }
    }
}

impl Partitioner for JumpAnchor {
    /// [`shard_of`](JumpAnchor::shard_of) when `shards == bucket_count()`
    /// (so removed shards are avoided), otherwise the membership of `shards`
    /// working shards `0..shards`, which is jump hash. Either way the result
    /// is `< shards`.
    #[inline]
    fn shard(&self, key_hash: u64, shards: usize) -> usize {
        if shards == self.n as usize {
            self.shard_of(key_hash)
        } else {
            jump(key_hash, shards)
        }
    }

    fn name(&self) -> &'static str {
        "jump-anchor"
    }
}

/// The per-(key, removed bucket) rehash: SplitMix64's finalizer, keyed with
/// a constant different from [`derive_hash`](crate::derive_hash)'s.
#[inline]
fn rehash(key_hash: u64, bucket: u32) -> u64 {
    let mut z = key_hash ^ (u64::from(bucket) + 1).wrapping_mul(0xd6e8_feb8_6659_fd93);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Multiply-shift reduction of `h` into `0..n`.
#[inline]
fn reduce(h: u64, n: u32) -> usize {
    ((u128::from(h) * u128::from(n)) >> 64) as usize
}
