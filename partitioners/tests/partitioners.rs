//! Range, determinism, balance and movement tests for every partitioner.
//!
//! Balance runs over 10^6 keys under `cargo test --release` and over fewer in
//! debug builds (the bound scales with the key count); movement always uses
//! 10^6 keys, because its 1.1 × ideal bound needs them to be meaningful.

use proptest::prelude::*;
use shardpool_partitioners::{
    derive_hash, key_hash, key_hash_fingerprint, Custom, HashPartitioner, JumpAnchor, JumpHash,
    MembershipError, Partitioner, RoundRobin,
};
use std::sync::Arc;

const SHARD_COUNTS: [usize; 6] = [2, 3, 7, 16, 100, 1000];
const MOVEMENT_KEYS: u64 = 1_000_000;

/// Keys for the balance checks: 10^6 in release, fewer in debug.
fn balance_keys() -> u64 {
    if cfg!(debug_assertions) {
        200_000
    } else {
        1_000_000
    }
}

fn u64_hashes(count: u64) -> Vec<u64> {
    (0..count).map(|k| key_hash(&k)).collect()
}

fn all_partitioners() -> Vec<Arc<dyn Partitioner>> {
    let mut anchor = JumpAnchor::new(64);
    anchor.remove(5).unwrap();
    anchor.remove(40).unwrap();
    vec![
        Arc::new(HashPartitioner),
        Arc::new(JumpHash),
        Arc::new(JumpAnchor::new(64)),
        Arc::new(anchor),
        Arc::new(RoundRobin),
        Arc::new(Custom::new(|h: u64, n: usize| (h % n as u64) as usize)),
    ]
}

// ---------------------------------------------------------------- range

/// proptest runs with only its `alloc` feature here (its default features
/// would be unified into every example build of the workspace: see
/// Cargo.toml), so it has no failure file and no entropy of its own. The
/// seed comes from `PROPTEST_RNG_SEED` or the clock and is printed, so each
/// run explores new cases and a failing one can be replayed; a regression
/// is kept as a plain test.
fn proptest_config(cases: u32) -> ProptestConfig {
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
    eprintln!("proptest seed: PROPTEST_RNG_SEED={seed}");
    ProptestConfig {
        cases,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(proptest_config(256))]

    #[test]
    fn shard_is_in_range(h in any::<u64>(), shards in prop_oneof![1usize..=4096, 1usize..=(u32::MAX as usize)]) {
        for p in all_partitioners() {
            let s = p.shard(h, shards);
            prop_assert!(s < shards, "{} returned {} for {} shards", p.name(), s, shards);
        }
    }

    #[test]
    fn str_and_string_hash_alike(s in proptest::collection::vec(any::<char>(), 0..64).prop_map(String::from_iter)) {
        prop_assert_eq!(key_hash(s.as_str()), key_hash(&s));
        prop_assert_eq!(key_hash(&s.as_str()), key_hash(&s));
    }

    #[test]
    fn hash_partitioner_is_multiply_shift(h in any::<u64>(), shards in 1usize..=1_000_000) {
        let s = HashPartitioner.shard(h, shards);
        // s = floor(h * n / 2^64): s * 2^64 <= h * n < (s + 1) * 2^64
        let prod = h as u128 * shards as u128;
        prop_assert!((s as u128) << 64 <= prod && prod < ((s as u128 + 1) << 64));
    }

    #[test]
    fn jump_is_consistent_when_growing(h in any::<u64>(), n in 1usize..=2000) {
        let a = JumpHash.shard(h, n);
        let b = JumpHash.shard(h, n + 1);
        prop_assert!(b == a || b == n, "key moved from {a} to {b} going {n} -> {}", n + 1);
    }
}

// ---------------------------------------------------------------- determinism

/// ahash 0.8.12 has three x86_64 variants selected at compile time (see the
/// crate docs); each has its own fixed table. Other architectures only check
/// that the hash is stable within the process.
/// (u64 key, hash) pairs, (str key, hash) pairs, fingerprint.
#[cfg(target_arch = "x86_64")]
type Expected = ([(u64, u64); 5], [(&'static str, u64); 5], u64);

#[cfg(target_arch = "x86_64")]
fn expected_key_hashes() -> Expected {
    if cfg!(all(target_feature = "aes", target_feature = "ssse3")) {
        (
            [
                (0, 0xa450_d38c_bd02_879f),
                (1, 0x9046_6447_4fca_0be5),
                (42, 0x4365_c6ae_f555_dd8b),
                (0xdead_beef, 0x69ae_ccb0_ae94_61a0),
                (u64::MAX, 0x348b_a687_a02b_cd20),
            ],
            [
                ("", 0x076b_5756_ab7e_9e20),
                ("a", 0x45f9_7b92_6184_2a6f),
                ("hello", 0x72fd_7944_cb91_6d0a),
                ("user:12345", 0x4ec8_c01c_7cb8_953d),
                (
                    "a somewhat longer key, over 32 bytes long",
                    0xe207_442e_e8e5_0b59,
                ),
            ],
            FINGERPRINT_AES_SSSE3,
        )
    } else if cfg!(target_feature = "aes") {
        (
            [
                (0, 0x7fa8_ed13_e203_43a1),
                (1, 0x2558_e95a_2922_d431),
                (42, 0x4a27_0150_027d_25f1),
                (0xdead_beef, 0x59df_c807_ea56_2dbd),
                (u64::MAX, 0x27c2_fb08_ebf0_bde4),
            ],
            [
                ("", 0xa42c_759b_e992_10f6),
                ("a", 0xbf18_b7e4_8ab6_6916),
                ("hello", 0xf462_d08f_dfeb_7aae),
                ("user:12345", 0x6e31_e872_8c9c_16b9),
                (
                    "a somewhat longer key, over 32 bytes long",
                    0x4fbd_5c95_15fa_86a4,
                ),
            ],
            FINGERPRINT_AES,
        )
    } else {
        (
            [
                (0, 0x316c_40f7_f6b8_c2f5),
                (1, 0x529d_a7d3_8b28_b11a),
                (42, 0x0007_bd06_8bd3_3c93),
                (0xdead_beef, 0x9248_40fd_d25b_4e26),
                (u64::MAX, 0xc3f6_f89a_eda1_b27a),
            ],
            [
                ("", 0xa049_5373_7117_0256),
                ("a", 0x79a9_87b5_5864_89b1),
                ("hello", 0x9a30_c09d_e17b_f2cb),
                ("user:12345", 0xeadb_5015_b5d0_b6ba),
                (
                    "a somewhat longer key, over 32 bytes long",
                    0x5b7a_10cb_7caa_96ef,
                ),
            ],
            FINGERPRINT_FALLBACK,
        )
    }
}

const FINGERPRINT_FALLBACK: u64 = 17_284_971_899_133_435_875;
const FINGERPRINT_AES_SSSE3: u64 = 5_902_491_593_109_854_753;
const FINGERPRINT_AES: u64 = 16_682_206_835_447_745_309;

#[cfg(target_arch = "x86_64")]
#[test]
fn key_hash_is_pinned() {
    let (ints, strs, fingerprint) = expected_key_hashes();
    for (k, h) in ints {
        assert_eq!(key_hash(&k), h, "key_hash(&{k}u64) changed");
    }
    for (k, h) in strs {
        assert_eq!(key_hash(k), h, "key_hash({k:?}) changed");
        assert_eq!(
            key_hash(&String::from(k)),
            h,
            "key_hash(&String::from({k:?})) changed"
        );
    }
    assert_eq!(
        key_hash_fingerprint(),
        fingerprint,
        "key_hash_fingerprint changed"
    );
}

#[test]
fn key_hash_is_stable_within_process() {
    assert_eq!(key_hash("a"), key_hash(&String::from("a")));
    assert_eq!(key_hash(&7u64), key_hash(&7u64));
    assert_eq!(key_hash_fingerprint(), key_hash_fingerprint());
    assert_ne!(key_hash(&1u64), key_hash(&2u64));
}

#[test]
fn derive_hash_is_pinned() {
    assert_eq!(derive_hash(0, 0), DERIVE_0_0);
    assert_eq!(derive_hash(0x0123_4567_89ab_cdef, 1), DERIVE_X_1);
    assert_ne!(derive_hash(5, 1), derive_hash(5, 2));
}

const DERIVE_0_0: u64 = 0xe220_a839_7b1d_cdaf;
const DERIVE_X_1: u64 = 0xa33b_a70b_2933_3ab3;

/// Values from a Python transcription of the paper's C++ code.
#[test]
fn jump_matches_reference_implementation() {
    let cases: [(u64, usize, usize); 8] = [
        (0x0, 1, 0),
        (0x0, 10, 0),
        (0x1, 10, 6),
        (0x2a, 1000, 571),
        (0xdead_beef, 16, 5),
        (0xffff_ffff_ffff_ffff, 1024, 313),
        (0x316c_40f7_f6b8_c2f5, 7, 3),
        (0xab54_a98c_eb1f_0ad2, 100_000, 46485),
    ];
    for (h, n, want) in cases {
        assert_eq!(JumpHash.shard(h, n), want, "jump({h:#x}, {n})");
        assert_eq!(JumpHash::bucket(h, n), want);
        assert_eq!(JumpAnchor::new(n).shard_of(h), want);
    }
}

#[test]
fn hash_partitioner_fixed_values() {
    assert_eq!(HashPartitioner.shard(0, 7), 0);
    assert_eq!(HashPartitioner.shard(u64::MAX, 1000), 999);
    assert_eq!(HashPartitioner.shard(1 << 63, 2), 1);
    assert_eq!(HashPartitioner.shard(1 << 63, 3), 1);
    assert_eq!(HashPartitioner.shard((1 << 63) - 1, 2), 0);
}

#[test]
fn jump_anchor_fixed_values() {
    let mut m = JumpAnchor::new(10);
    m.remove(3).unwrap();
    m.remove(7).unwrap();
    m.remove(0).unwrap();
    // Fixed hashes, so this is independent of the ahash variant.
    let fixed: Vec<usize> = (0..12u64).map(|k| m.shard_of(derive_hash(k, 99))).collect();
    assert_eq!(fixed, ANCHOR_FIXED);
}

const ANCHOR_FIXED: [usize; 12] = [8, 8, 4, 9, 6, 8, 1, 2, 1, 4, 6, 6];

// ---------------------------------------------------------------- balance

/// Returns (max/mean, chi-square) of the load of `hashes` over `n` shards.
fn load_stats(hashes: &[u64], n: usize, p: &dyn Partitioner) -> (f64, f64) {
    let mut counts = vec![0u64; n];
    for &h in hashes {
        counts[p.shard(h, n)] += 1;
    }
    let mean = hashes.len() as f64 / n as f64;
    let max = *counts.iter().max().unwrap() as f64;
    let chi2 = counts
        .iter()
        .map(|&c| (c as f64 - mean).powi(2) / mean)
        .sum();
    (max / mean, chi2)
}

/// Six-sigma bounds: max/mean within 6 binomial standard deviations, and
/// chi-square below its (Wilson–Hilferty) 6-sigma quantile for n − 1 dof.
fn assert_balanced(what: &str, hashes: &[u64], n: usize, p: &dyn Partitioner) {
    let keys = hashes.len() as f64;
    let (max_over_mean, chi2) = load_stats(hashes, n, p);
    let max_bound = 1.0 + 6.0 * ((n as f64 - 1.0) / keys).sqrt();
    let dof = n as f64 - 1.0;
    let z = 6.0;
    let chi2_bound = dof * (1.0 - 2.0 / (9.0 * dof) + z * (2.0 / (9.0 * dof)).sqrt()).powi(3);
    println!(
        "{what:>24} n={n:>4} keys={keys:>8}: max/mean={max_over_mean:.4} (bound {max_bound:.4}) chi2={chi2:.1} (bound {chi2_bound:.1})"
    );
    assert!(
        max_over_mean <= max_bound,
        "{what} n={n}: max/mean {max_over_mean} > {max_bound}"
    );
    assert!(
        chi2 <= chi2_bound,
        "{what} n={n}: chi2 {chi2} > {chi2_bound}"
    );
}

#[test]
fn balance_u64_keys() {
    let hashes = u64_hashes(balance_keys());
    for n in SHARD_COUNTS {
        assert_balanced("hash", &hashes, n, &HashPartitioner);
        assert_balanced("jump", &hashes, n, &JumpHash);
        // With removals: n + 10 buckets, 10 arbitrary ones removed.
        let mut m = JumpAnchor::new(n + 10);
        for k in 0..10 {
            m.remove(k * (n + 10) / 10).unwrap();
        }
        let working: Vec<usize> = m.working().collect();
        assert_eq!(working.len(), n);
        let mut counts = vec![0u64; n + 10];
        for &h in &hashes {
            counts[m.shard_of(h)] += 1;
        }
        let dense: Vec<u64> = working.iter().map(|&s| counts[s]).collect();
        assert_eq!(dense.iter().sum::<u64>(), hashes.len() as u64);
        // Map the working shards onto 0..n to reuse the same bounds.
        let remap = Custom::new(move |h: u64, _n: usize| {
            let s = m.shard_of(h);
            working.iter().position(|&w| w == s).unwrap()
        });
        if n <= 100 {
            assert_balanced("jump-anchor (10 removed)", &hashes, n, &remap);
        }
    }
}

#[test]
fn balance_anchor_with_removals_large_n() {
    // n = 1000 working out of 1010, checked without the O(n) remap above.
    let hashes = u64_hashes(balance_keys());
    let mut m = JumpAnchor::new(1010);
    for k in 0..10 {
        m.remove(k * 101).unwrap();
    }
    let mut counts = vec![0u64; 1010];
    for &h in &hashes {
        counts[m.shard_of(h)] += 1;
    }
    let mean = hashes.len() as f64 / 1000.0;
    let max = *counts.iter().max().unwrap() as f64;
    let bound = 1.0 + 6.0 * (999.0 / hashes.len() as f64).sqrt();
    for k in 0..10 {
        assert_eq!(counts[k * 101], 0);
    }
    println!(
        "jump-anchor (10 removed) n=1000: max/mean={:.4} (bound {bound:.4})",
        max / mean
    );
    assert!(max / mean <= bound);
}

#[test]
fn balance_string_keys() {
    let count = balance_keys() / 2;
    let hashes: Vec<u64> = (0..count).map(|i| key_hash(&format!("user:{i}"))).collect();
    for n in SHARD_COUNTS {
        assert_balanced("hash (str)", &hashes, n, &HashPartitioner);
        assert_balanced("jump (str)", &hashes, n, &JumpHash);
    }
}

#[test]
fn round_robin_is_exactly_even() {
    for n in SHARD_COUNTS {
        let mut counts = vec![0u64; n];
        for _ in 0..(10 * n) {
            counts[RoundRobin.shard(0, n)] += 1;
        }
        assert!(counts.iter().all(|&c| c == 10), "n={n}: {counts:?}");
    }
}

#[test]
fn round_robin_spreads_many_threads() {
    let n = 7;
    let per_thread = 3 * n;
    let counts: Vec<Vec<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(move || {
                    let mut c = vec![0u64; n];
                    for _ in 0..per_thread {
                        c[RoundRobin.shard(12345, n)] += 1;
                    }
                    c
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for c in counts {
        assert!(c.iter().all(|&x| x == 3), "{c:?}");
    }
}

/// Two-level routing with `derive_hash` at the node level gives all
/// node × core pairs; reusing the same hash at both levels does not.
#[test]
fn two_level_routing_is_independent_with_derive_hash() {
    let hashes = u64_hashes(100_000);
    let (nodes, cores) = (2, 2);
    let mut joint = [[0u64; 2]; 2];
    let mut naive = [[0u64; 2]; 2];
    for &h in &hashes {
        joint[JumpHash.shard(derive_hash(h, 1), nodes)][JumpHash.shard(h, cores)] += 1;
        naive[JumpHash.shard(h, nodes)][JumpHash.shard(h, cores)] += 1;
    }
    for row in joint {
        for c in row {
            assert!((c as f64 - 25_000.0).abs() < 1_000.0, "{joint:?}");
        }
    }
    assert_eq!(
        naive[0][1] + naive[1][0],
        0,
        "same hash at both levels is degenerate"
    );
}

// ---------------------------------------------------------------- movement

fn moved(hashes: &[u64], before: impl Fn(u64) -> usize, after: impl Fn(u64) -> usize) -> u64 {
    hashes.iter().filter(|&&h| before(h) != after(h)).count() as u64
}

#[test]
fn jump_moves_at_most_1_1_ideal_when_growing() {
    let hashes = u64_hashes(MOVEMENT_KEYS);
    for n in SHARD_COUNTS {
        let ideal = MOVEMENT_KEYS as f64 / (n + 1) as f64;
        let m = moved(
            &hashes,
            |h| JumpHash.shard(h, n),
            |h| JumpHash.shard(h, n + 1),
        );
        println!(
            "jump {n}->{}: moved {m} (ideal {ideal:.0}, {:.3}x)",
            n + 1,
            m as f64 / ideal
        );
        assert!(
            m as f64 <= 1.1 * ideal,
            "jump {n}->{}: moved {m}, ideal {ideal}",
            n + 1
        );
    }
}

#[test]
fn anchor_moves_at_most_1_1_ideal_when_growing() {
    let hashes = u64_hashes(MOVEMENT_KEYS);
    for n in SHARD_COUNTS {
        // Growing with nothing removed (appends shard n).
        let before = JumpAnchor::new(n);
        let mut after = before.clone();
        assert_eq!(after.add(), n);
        let ideal = MOVEMENT_KEYS as f64 / (n + 1) as f64;
        let m = moved(&hashes, |h| before.shard_of(h), |h| after.shard_of(h));
        println!(
            "anchor {n}->{}: moved {m} (ideal {ideal:.0}, {:.3}x)",
            n + 1,
            m as f64 / ideal
        );
        assert!(m as f64 <= 1.1 * ideal);

        // Growing by restoring an arbitrary removed shard: n working out of
        // n + 3 buckets, the middle one added back.
        let mut before = JumpAnchor::new(n + 3);
        before.remove(0).unwrap();
        before.remove(n + 2).unwrap();
        before.remove(n / 2 + 1).unwrap();
        assert_eq!(before.working_count(), n);
        let mut after = before.clone();
        assert_eq!(after.add(), n / 2 + 1);
        let mut moved_count = 0u64;
        for &h in &hashes {
            let (a, b) = (before.shard_of(h), after.shard_of(h));
            if a != b {
                assert_eq!(b, n / 2 + 1, "a key moved between surviving shards");
                moved_count += 1;
            }
        }
        println!(
            "anchor restore {n}->{}: moved {moved_count} (ideal {ideal:.0}, {:.3}x)",
            n + 1,
            moved_count as f64 / ideal
        );
        assert!(moved_count as f64 <= 1.1 * ideal);
    }
}

#[test]
fn anchor_removal_moves_only_keys_of_removed_shard() {
    let hashes = u64_hashes(MOVEMENT_KEYS / 4);
    for n in SHARD_COUNTS {
        let mut before = JumpAnchor::new(n + 1);
        before.remove(n / 3).unwrap(); // an arbitrary shard, not the last
        let k = (2 * n) / 3 + 1;
        let mut after = before.clone();
        after.remove(k).unwrap();
        let mut moved_count = 0u64;
        for &h in &hashes {
            let (a, b) = (before.shard_of(h), after.shard_of(h));
            assert_ne!(b, k);
            if a != b {
                assert_eq!(a, k, "a key not on {k} moved");
                moved_count += 1;
            }
        }
        // Keys on k moved: about 1/n of them.
        let ideal = hashes.len() as f64 / n as f64;
        println!("anchor remove {k} of {n}: moved {moved_count} (ideal {ideal:.0})");
        assert!((moved_count as f64 - ideal).abs() <= 6.0 * ideal.sqrt() + 1.0);
    }
}

#[derive(Debug, Clone)]
enum Op {
    Remove(usize),
    Add,
}

proptest! {
    #![proptest_config(proptest_config(64))]

    /// Random membership histories: every lookup lands on a working shard,
    /// a removal moves only the removed shard's keys, an add moves keys only
    /// onto the added shard, and undoing everything restores the mapping.
    #[test]
    fn anchor_minimal_disruption(
        n in 1usize..40,
        ops in proptest::collection::vec(prop_oneof![(0usize..64).prop_map(Op::Remove), Just(Op::Add)], 0..24),
        seed in any::<u64>(),
    ) {
        let hashes: Vec<u64> = (0..500u64).map(|i| derive_hash(i, seed)).collect();
        let mut m = JumpAnchor::new(n);
        let start: Vec<usize> = hashes.iter().map(|&h| m.shard_of(h)).collect();
        let mut history = Vec::new();
        for op in ops {
            let before: Vec<usize> = hashes.iter().map(|&h| m.shard_of(h)).collect();
            match op {
                Op::Remove(i) => {
                    let k = i % m.bucket_count();
                    match m.remove(k) {
                        Ok(()) => {
                            history.push(k);
                            for (&h, &b) in hashes.iter().zip(&before) {
                                let a = m.shard_of(h);
                                prop_assert!(m.is_working(a));
                                prop_assert!(a == b || b == k, "key moved {b} -> {a} removing {k}");
                            }
                        }
                        Err(MembershipError::NotWorking(_)) => prop_assert!(!m.is_working(k)),
                        Err(MembershipError::LastShard) => prop_assert_eq!(m.working_count(), 1),
                        Err(e) => prop_assert!(false, "unexpected error {e}"),
                    }
                }
                Op::Add => {
                    let expect = m.next_to_add();
                    let added = m.add();
                    prop_assert_eq!(added, expect);
                    history.push(usize::MAX);
                    for (&h, &b) in hashes.iter().zip(&before) {
                        let a = m.shard_of(h);
                        prop_assert!(m.is_working(a));
                        prop_assert!(a == b || a == added, "key moved {b} -> {a} adding {added}");
                    }
                }
            }
            prop_assert_eq!(m.working().count(), m.working_count());
            prop_assert!(m.working_count() >= 1);
        }
        // Undo: re-add everything removed, drop everything added (from the end).
        while m.working_count() < m.bucket_count() {
            m.add();
        }
        while m.bucket_count() > n {
            let last = m.bucket_count() - 1;
            m.remove(last).unwrap();
        }
        while m.bucket_count() < n {
            m.add();
        }
        let end: Vec<usize> = hashes.iter().map(|&h| m.shard_of(h)).collect();
        prop_assert_eq!(start, end);
    }
}

#[test]
fn anchor_membership_errors() {
    let mut m = JumpAnchor::new(2);
    assert_eq!(m.remove(2), Err(MembershipError::NotWorking(2)));
    m.remove(0).unwrap();
    assert_eq!(m.remove(0), Err(MembershipError::NotWorking(0)));
    assert_eq!(m.remove(1), Err(MembershipError::LastShard));
    assert_eq!(m.working().collect::<Vec<_>>(), vec![1]);
    assert!((0..100u64).all(|h| m.shard_of(h) == 1));
    assert_eq!(m.add(), 0);
    assert_eq!(m.add(), 2);
    assert_eq!(m.bucket_count(), 3);
    assert!(!MembershipError::LastShard.to_string().is_empty());
}

#[test]
fn anchor_partitioner_honours_removals_only_at_its_size() {
    let mut m = JumpAnchor::new(8);
    m.remove(3).unwrap();
    for h in (0..10_000u64).map(|k| key_hash(&k)) {
        assert_ne!(m.shard(h, 8), 3);
        assert_eq!(m.shard(h, 8), m.shard_of(h));
        assert_eq!(m.shard(h, 5), JumpHash.shard(h, 5));
    }
}

#[test]
fn names_and_object_safety() {
    let names: Vec<&str> = all_partitioners().iter().map(|p| p.name()).collect();
    assert_eq!(
        names,
        [
            "hash",
            "jump",
            "jump-anchor",
            "jump-anchor",
            "round-robin",
            "custom"
        ]
    );
}

#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "not < 4")]
fn custom_out_of_range_is_caught_in_debug() {
    Custom::new(|_, n| n).shard(0, 4);
}
