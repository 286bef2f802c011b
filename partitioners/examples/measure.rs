//! Measures balance and movement of every partitioner over 10^6 keys and
//! prints the tables used in `PARTITIONERS.md`:
//!
//! `CARGO_TARGET_DIR=/work/target-part cargo run --release -p shardpool-partitioners --example measure`
//!
//! Keys are `0..10^6` as `u64`, hashed with `key_hash`. "max/mean" is the
//! most loaded shard's key count over the mean. "moved n→n+1" is the share of
//! keys whose shard changes when the shard count grows by one, as a multiple
//! of the ideal `1/(n+1)`.

use shardpool_partitioners::{key_hash, HashPartitioner, JumpAnchor, JumpHash, Partitioner};

#[path = "../benches/support/alternatives.rs"]
mod alternatives;

const KEYS: u64 = 1_000_000;
const SHARDS: [usize; 7] = [2, 3, 7, 16, 100, 1000, 1024];

fn max_over_mean(hashes: &[u64], n: usize, f: impl Fn(u64) -> usize) -> f64 {
    let mut counts = vec![0u64; n];
    for &h in hashes {
        counts[f(h)] += 1;
    }
    let working = counts.iter().filter(|&&c| c > 0).count().max(1);
    *counts.iter().max().unwrap() as f64 / (hashes.len() as f64 / working as f64)
}

fn moved_ratio(
    hashes: &[u64],
    n: usize,
    a: impl Fn(u64) -> usize,
    b: impl Fn(u64) -> usize,
) -> f64 {
    let moved = hashes.iter().filter(|&&h| a(h) != b(h)).count() as f64;
    moved / (hashes.len() as f64 / (n + 1) as f64)
}

fn main() {
    let hashes: Vec<u64> = (0..KEYS).map(|k| key_hash(&k)).collect();
    println!("max/mean over {KEYS} u64 keys");
    println!(
        "| n | hash | jump | jump-anchor | jump-anchor, 1/8 removed | ring 160 vn | rendezvous |"
    );
    println!("|---|---|---|---|---|---|---|");
    for n in SHARDS {
        let anchor = JumpAnchor::new(n);
        // n working out of n + ceil(n/8) buckets.
        let extra = n.div_ceil(8);
        let mut removed = JumpAnchor::new(n + extra);
        for i in 0..extra {
            removed.remove(i * 8 % removed.bucket_count()).unwrap();
        }
        let ring = alternatives::Ring::new(n, 160);
        let hrw = alternatives::Rendezvous::new(n);
        println!(
            "| {n} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} |",
            max_over_mean(&hashes, n, |h| HashPartitioner.shard(h, n)),
            max_over_mean(&hashes, n, |h| JumpHash.shard(h, n)),
            max_over_mean(&hashes, n, |h| anchor.shard_of(h)),
            max_over_mean(&hashes, n + extra, |h| removed.shard_of(h)),
            max_over_mean(&hashes, n, |h| ring.shard_of(h)),
            max_over_mean(&hashes, n, |h| hrw.shard_of(h)),
        );
    }

    println!("\nkeys moved going n -> n+1, as a multiple of the ideal 1/(n+1)");
    println!("| n | hash | jump | jump-anchor (append) | jump-anchor (restore arbitrary) | ring 160 vn | rendezvous |");
    println!("|---|---|---|---|---|---|---|");
    for n in SHARDS {
        let a0 = JumpAnchor::new(n);
        let mut a1 = a0.clone();
        a1.add();
        // Restore an arbitrary shard: n working out of n + 2, then add back
        // the middle one.
        let mut r0 = JumpAnchor::new(n + 2);
        r0.remove(n + 1).unwrap();
        r0.remove(n / 2).unwrap();
        let mut r1 = r0.clone();
        assert_eq!(r1.add(), n / 2);
        let ring0 = alternatives::Ring::new(n + 1, 160).without(n / 2);
        let ring1 = alternatives::Ring::new(n + 1, 160);
        let mut hrw0 = alternatives::Rendezvous::new(n + 1);
        hrw0.remove(n / 2);
        let hrw1 = alternatives::Rendezvous::new(n + 1);
        println!(
            "| {n} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            moved_ratio(
                &hashes,
                n,
                |h| HashPartitioner.shard(h, n),
                |h| HashPartitioner.shard(h, n + 1)
            ),
            moved_ratio(
                &hashes,
                n,
                |h| JumpHash.shard(h, n),
                |h| JumpHash.shard(h, n + 1)
            ),
            moved_ratio(&hashes, n, |h| a0.shard_of(h), |h| a1.shard_of(h)),
            moved_ratio(&hashes, n, |h| r0.shard_of(h), |h| r1.shard_of(h)),
            moved_ratio(&hashes, n, |h| ring0.shard_of(h), |h| ring1.shard_of(h)),
            moved_ratio(&hashes, n, |h| hrw0.shard_of(h), |h| hrw1.shard_of(h)),
        );
    }

    println!("\nremoving an arbitrary shard k (jump-anchor): keys moved off other shards / keys on k moved");
    for n in SHARDS {
        let before = JumpAnchor::new(n);
        let mut after = before.clone();
        let k = n / 3;
        after.remove(k).unwrap();
        let (mut wrong, mut moved, mut on_k) = (0u64, 0u64, 0u64);
        for &h in &hashes {
            let (a, b) = (before.shard_of(h), after.shard_of(h));
            on_k += u64::from(a == k);
            if a != b {
                moved += 1;
                wrong += u64::from(a != k);
            }
        }
        println!(
            "n={n} k={k}: moved {moved} of {on_k} keys on k; moved from other shards: {wrong}"
        );
    }
}
