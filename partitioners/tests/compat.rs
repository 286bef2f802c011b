//! Properties of the engine-compatible key functions over random keys.
//!
//! The engines' own test vectors are unit tests beside each function
//! (`src/compat/*.rs`); these check the rules that hold for every key.

use proptest::prelude::*;
use shardpool_partitioners::compat::{
    cassandra_token, kafka_partition, nats_partition, redis_slot, scylla_shard,
};

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

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// Bytes with no `{` or `}`.
fn braceless(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        any::<u8>().prop_filter("no braces", |b| *b != b'{' && *b != b'}'),
        0..max,
    )
}

proptest! {
    #![proptest_config(proptest_config(512))]

    #[test]
    fn kafka_partition_is_in_range(key in bytes(100), n in 1u32..) {
        prop_assert!(kafka_partition(&key, n) < n);
    }

    #[test]
    fn kafka_partition_is_the_31_bit_hash_mod_n(key in bytes(100), n in 1u32..=(1 << 31)) {
        // Every partition count reduces the same 31-bit hash.
        prop_assert_eq!(kafka_partition(&key, n), kafka_partition(&key, 1 << 31) % n);
    }

    #[test]
    fn redis_slot_is_in_range(key in bytes(100)) {
        prop_assert!(redis_slot(&key) < 16384);
    }

    #[test]
    fn redis_tag_decides_the_slot(
        prefix in braceless(20),
        tag in braceless(20).prop_filter("non-empty", |t| !t.is_empty()),
        suffix in bytes(20),
    ) {
        // `prefix{tag}suffix` hashes only `tag`, whatever follows.
        let mut key = prefix.clone();
        key.push(b'{');
        key.extend_from_slice(&tag);
        key.push(b'}');
        key.extend_from_slice(&suffix);
        prop_assert_eq!(redis_slot(&key), redis_slot(&tag));
    }

    #[test]
    fn redis_empty_tag_hashes_the_whole_key(prefix in braceless(20), suffix in bytes(20)) {
        // `prefix{}suffix`: Redis does not look for a later tag, even if
        // `suffix` has one.
        let mut key = prefix.clone();
        key.extend_from_slice(b"{}");
        key.extend_from_slice(&suffix);
        prop_assert_eq!(redis_slot(&key), crc16_xmodem_bitwise(&key) & 0x3fff);
    }

    #[test]
    fn redis_braceless_key_is_its_crc16(key in braceless(100)) {
        prop_assert_eq!(redis_slot(&key), crc16_xmodem_bitwise(&key) & 0x3fff);
    }

    #[test]
    fn scylla_shard_is_in_range(token in any::<i64>(), shards in 1u32..=4096, ignore_msb in 0u32..=63) {
        prop_assert!(scylla_shard(token, shards, ignore_msb) < shards);
    }

    #[test]
    fn scylla_shard_grows_with_the_token_when_no_bits_are_ignored(a in any::<i64>(), b in any::<i64>(), shards in 1u32..=64) {
        // With ignore_msb = 0 the shard is the token's position on the ring
        // scaled to `shards`, so it never decreases as the token grows.
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        prop_assert!(scylla_shard(lo, shards, 0) <= scylla_shard(hi, shards, 0));
    }

    #[test]
    fn nats_partition_is_in_range(tokens in proptest::collection::vec(bytes(12), 0..5), n in 1u32..) {
        let refs: Vec<&[u8]> = tokens.iter().map(Vec::as_slice).collect();
        prop_assert!(nats_partition(&refs, n) < n);
    }

    #[test]
    fn nats_tokens_concatenate(tokens in proptest::collection::vec(bytes(12), 0..5), n in 1u32..) {
        let refs: Vec<&[u8]> = tokens.iter().map(Vec::as_slice).collect();
        let joined = tokens.concat();
        prop_assert_eq!(nats_partition(&refs, n), nats_partition(&[joined.as_slice()], n));
    }
}

/// CRC-16/XMODEM one bit at a time, straight from its definition
/// (polynomial 0x1021, initial 0, no reflection, no final xor): an oracle
/// independent of the table-driven implementation.
fn crc16_xmodem_bitwise(bytes: &[u8]) -> u16 {
    let mut crc = 0u16;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[test]
fn the_oracle_is_crc16_xmodem() {
    // The check value of CRC-16/XMODEM, as in redis/redis src/crc16.c.
    assert_eq!(crc16_xmodem_bitwise(b"123456789"), 0x31c3);
}

/// Two-level routing: the node by the token's ring position, the core by
/// `scylla_shard`. With `ignore_msb = 0` the core is drawn from the same
/// high bits as the node and the levels alias; with the default 12 every
/// node uses every core (the reason for scylladb#1277's `ignore_msb`).
#[test]
fn ignore_msb_decorrelates_node_and_core() {
    const NODES: u32 = 2;
    const CORES: u32 = 2;
    let used = |ignore_msb: u32| {
        let mut seen = [[false; CORES as usize]; NODES as usize];
        for i in 0..10_000u32 {
            let token = cassandra_token(format!("user:{i}").as_bytes());
            // Two nodes owning the two halves of the ring.
            let node = usize::from(token >= 0);
            let core = scylla_shard(token, CORES, ignore_msb) as usize;
            seen[node][core] = true;
        }
        seen
    };
    // Aliased: node 0 owns the lower half, whose tokens all map to core 0.
    assert_eq!(used(0), [[true, false], [false, true]]);
    // Independent bits: both nodes use both cores.
    assert_eq!(used(12), [[true, true], [true, true]]);
}
