//! Deterministic key → shard partitioners for `shardpool`.
//!
//! A keyed send computes [`key_hash`] of the key once and asks a
//! [`Partitioner`] which of `shards` workers owns it. Routing runs once per
//! message, so every partitioner here is allocation-free and lock-free on the
//! hot path.
//!
//! | partitioner | idea | consistent when `n` changes? |
//! |---|---|---|
//! | [`HashPartitioner`] | multiply-shift range reduction (Lemire) | no (≈ half the keys move) |
//! | [`JumpHash`] | Lamping & Veach jump consistent hash | yes, shards are added/removed at the end |
//! | [`JumpAnchor`] | jump hash + AnchorHash-style replacement | yes, and *any* shard can be removed |
//! | [`RoundRobin`] | ignores the key, per-thread cursor | — |
//! | [`Custom`] | your closure | up to you |
//!
//! To place a key where Kafka, Redis Cluster, Cassandra/ScyllaDB or NATS
//! would, use the engines' own functions in [`compat`].
//!
//! Range partitioning is deliberately not provided: a [`Partitioner`] only
//! sees the key's *hash*, and a hash does not preserve key order, so a range
//! partitioner cannot be expressed through this trait.
//!
//! # Determinism
//!
//! [`key_hash`] is ahash 0.8.12 with fixed, compiled-in seeds, and every
//! partitioner except [`RoundRobin`] is a pure function of
//! `(key_hash, shards)` (plus, for [`JumpAnchor`], its membership history).
//! So the same key maps to the same shard in every process and on every
//! machine **whose build produces the same [`key_hash`]**. Two builds produce
//! the same [`key_hash`] for a key when all of the following hold
//! (from the ahash 0.8.12 sources; the three `x86_64` variants below and
//! the stable/nightly equality were also confirmed by building with each
//! configuration, see `PARTITIONERS.md`):
//!
//! 1. **Same ahash version.** The output of ahash is not stable across its
//!    releases; this crate pins `ahash = "=0.8.12"`. The [`key_hash`] value
//!    may change only in a new *major* version of this crate.
//! 2. **Same compile-time algorithm choice.** ahash selects its algorithm
//!    with `cfg`, at compile time, not by runtime CPU detection:
//!    - on `x86`/`x86_64` it uses the AES-NI hasher iff the crate is compiled
//!      with `target_feature = "aes"` (for instance under
//!      `-C target-cpu=native` on any CPU with AES-NI, or
//!      `-C target-feature=+aes`), and inside the AES hasher a byte shuffle
//!      uses `pshufb` iff `target_feature = "ssse3"` is also enabled and a
//!      byte swap otherwise. So there are three different x86 hash
//!      functions: *fallback* (the default `x86_64-unknown-linux-gnu`
//!      target, and `x86-64-v2/v3/v4`, which do not include AES),
//!      *aes+ssse3* (e.g. `target-cpu=native`) and *aes without ssse3*.
//!    - on `aarch64`/`arm` the AES hasher is used only if some crate in the
//!      build enables ahash's `nightly-arm-aes` feature (Cargo unifies
//!      features, so a dependency can switch it on); otherwise the fallback.
//!    - the fallback's "folded multiply" is a 64×64→128-bit multiply on
//!      `x86_64`, `aarch64`, `mips64`, `powerpc64` and `s390x` and a
//!      different formula on every other architecture (32-bit ones,
//!      `wasm32`, and also `riscv64`, because ahash's build script compares
//!      the arch against `"riscv64gc"`).
//!    - the fallback reads input bytes in native endianness, so big- and
//!      little-endian machines disagree.
//!    - under Miri the AES path is never used.
//! 3. **Same key type.** The hash is over the key's [`Hash`] encoding; use
//!    the same Rust type on every node (`str` and `String` agree).
//!
//! The compiler channel does *not* matter: ahash specialises its own
//! `hash_one` when built by a nightly compiler (checked: `hash_one(&0u64)`
//! differs between rustc 1.95 stable and 1.97 nightly), so [`key_hash`]
//! deliberately goes through `BuildHasher::build_hasher` + [`Hash::hash`] +
//! `finish`, which gives the same values on stable and nightly.
//!
//! The partitioners add no further condition: they use integer arithmetic
//! and, in [`JumpHash`], `f64` multiplication and division, which Rust
//! evaluates exactly as IEEE 754 specifies on every target with SSE2 or a
//! hardware FPU (the x87-only `i586` targets are the known exception).
//!
//! In short: machines agree when they run the same major version of this
//! crate, have the same endianness and fallback-multiply class, and were all
//! compiled either without `target_feature = "aes"` or all with it (and then
//! all with, or all without, `ssse3`). A cluster layer should exchange
//! [`key_hash_fingerprint`] when nodes join and refuse a mismatch instead of
//! silently misrouting.
//!
//! # Two-level routing
//!
//! A cluster routes key → node with one partitioner over the node count and
//! then, on the node, key → core with the pool's partitioner over the core
//! count. Both levels must not consume the *same* hash bits, or they are
//! correlated (with 2 nodes and 2 cores and [`JumpHash`] at both levels,
//! each node would use only one core). Derive an independent hash for the
//! node level with [`derive_hash`]:
//!
//! ```
//! use shardpool_partitioners::{derive_hash, key_hash, HashPartitioner, JumpAnchor, Partitioner};
//!
//! // Cluster level: 4 nodes; node 2 has failed and is removed.
//! let mut nodes = JumpAnchor::new(4);
//! nodes.remove(2).unwrap();
//! // Node level: the pool routes with HashPartitioner over 8 cores.
//! let cores = HashPartitioner;
//!
//! let h = key_hash("user:12345");
//! let node = nodes.shard_of(derive_hash(h, 1));
//! let core = cores.shard(h, 8);
//! assert!(node < 4 && node != 2 && core < 8);
//!
//! // The same key gets the same route every time, in every process
//! // built the same way (see "Determinism").
//! assert_eq!(nodes.shard_of(derive_hash(key_hash("user:12345"), 1)), node);
//! assert_eq!(cores.shard(key_hash(&String::from("user:12345")), 8), core);
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::hash::{BuildHasher, Hash, Hasher};

mod anchor;
pub mod compat;
mod custom;
mod jump;
mod round_robin;

pub use anchor::{JumpAnchor, MembershipError};
pub use custom::Custom;
pub use jump::JumpHash;
pub use round_robin::RoundRobin;

/// Fixed ahash seeds (hex digits of π): the same key hashes to the same value
/// in every process. Changing them is a breaking change.
const SEEDS: [u64; 4] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
];

const STATE: ahash::RandomState =
    ahash::RandomState::with_seeds(SEEDS[0], SEEDS[1], SEEDS[2], SEEDS[3]);

/// Hashes a key with ahash 0.8.12 under fixed seeds.
///
/// This is the hash every keyed send passes to [`Partitioner::shard`]. It is
/// stable across processes and machines built the same way; the exact
/// conditions are in the [crate documentation](crate#determinism). The value
/// for a given key may change only with a new major version of this crate.
///
/// `key_hash("a") == key_hash(&String::from("a"))`: borrowed and owned forms
/// of a key hash alike whenever their [`Hash`] impls agree, as `str`/`String`
/// and `[T]`/`Vec<T>` do.
#[inline]
#[allow(clippy::manual_hash_one)] // deliberate, see the comment inside
pub fn key_hash<K: Hash + ?Sized>(key: &K) -> u64 {
    // Not `STATE.hash_one(key)`: on nightly compilers ahash specialises
    // `hash_one` for integers and returns different values.
    let mut hasher = STATE.build_hasher();
    key.hash(&mut hasher);
    hasher.finish()
}

/// A fingerprint of the [`key_hash`] function as compiled into this binary.
///
/// Two builds route identically iff their fingerprints are equal (with
/// overwhelming probability): it hashes probe keys of several types and
/// lengths, so it changes when the ahash version, its compile-time algorithm
/// choice (AES or fallback), the endianness or the seeds differ. A cluster
/// layer should compare fingerprints when a node joins.
pub fn key_hash_fingerprint() -> u64 {
    let probes = [
        key_hash(&0u64),
        key_hash(&u64::MAX),
        key_hash(&0x0123_4567_89ab_cdef_u64),
        key_hash(""),
        key_hash("a"),
        key_hash("0123456789abcdef"),
        key_hash("the quick brown fox jumps over the lazy dog"),
    ];
    probes.iter().fold(0, |acc, &h| derive_hash(acc ^ h, 0))
}

/// Derives a new, statistically independent hash from `key_hash` for routing
/// level `level` (any number; use a different one per level).
///
/// Use it when the same key is routed at two levels (key → node, then
/// key → core) so that the levels do not consume the same hash bits. It is a
/// bijection of `key_hash` for a fixed `level` (the SplitMix64 finalizer of
/// `key_hash ^ f(level)`), fixed forever like [`key_hash`].
#[inline]
pub const fn derive_hash(key_hash: u64, level: u64) -> u64 {
    let mut z = key_hash ^ level.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Maps a key hash to a shard in `0..shards`.
///
/// The pool stores an `Arc<dyn Partitioner>` and calls
/// `shard(key_hash(&key), n_workers)` for every keyed send, always with the
/// same `n_workers`. Implementations must be cheap, must not block, and must
/// return a value `< shards`.
pub trait Partitioner: Send + Sync + 'static {
    /// The shard of a key whose [`key_hash`] is `key_hash`, in `0..shards`
    /// (`shards >= 1`).
    fn shard(&self, key_hash: u64, shards: usize) -> usize;

    /// A short name for logs and metrics.
    fn name(&self) -> &'static str {
        "custom"
    }
}

/// Hash partitioning: multiply-shift range reduction of the key hash
/// (Lemire, "A fast alternative to the modulo reduction").
///
/// `shard = (key_hash × shards) >> 64`, computed in 128 bits: no division,
/// and it uses the *high* bits of the hash. Every shard gets `⌊2⁶⁴/n⌋` or
/// `⌈2⁶⁴/n⌉` hash values, so it is as balanced as the hash. It is not
/// consistent: changing `shards` from `n` to `n + 1` moves about half of the
/// keys. Use [`JumpHash`] or [`JumpAnchor`] when the shard count changes
/// while keys have state.
#[derive(Debug, Clone, Copy, Default)]
pub struct HashPartitioner;

impl Partitioner for HashPartitioner {
    #[inline]
    fn shard(&self, key_hash: u64, shards: usize) -> usize {
        ((key_hash as u128 * shards as u128) >> 64) as usize
    }

    fn name(&self) -> &'static str {
        "hash"
    }
}
