//! ScyllaDB's token → shard (CPU core) function.

/// The shard (core) of a ScyllaDB node with `shards` shards that owns
/// `token`, given the node's `ignore_msb` setting
/// (`murmur3_partitioner_ignore_msb_bits`, default 12, which the node
/// reports to drivers as `SCYLLA_SHARDING_IGNORE_MSB`).
///
/// Formula (ScyllaDB's `zero_based_shard_of` in `dht/token.cc`, and the
/// `biased-token-round-robin` sharding algorithm the drivers implement):
/// bias the token to unsigned, `u = token as u64 + 2^63` (wrapping), drop
/// the `ignore_msb` top bits, `u <<= ignore_msb`, and read the result as a
/// fraction of 2^64 scaled by the shard count:
/// `shard = (u as u128 * shards as u128) >> 64`. This is a multiply-high
/// range reduction (the engine's own, so it is bit-exact), not `%`.
///
/// **Trap avoided.** The node that owns a token is chosen by the token's
/// position on the ring, i.e. by its *high* bits. Were the shard also taken
/// from the high bits (`ignore_msb = 0`), every token a node owns would
/// fall into the same few shards: with 2 nodes splitting the ring in halves
/// and 2 shards each, each node would use one shard. Ignoring the top
/// `ignore_msb` bits makes the shard depend on bits below those that pick
/// the node (scylladb#1277). So the cluster level and the core level use
/// different bits; pass the node's actual setting, not 0.
///
/// `shards == 0` returns 0, as the engine's formula does (no node has zero
/// shards). `ignore_msb >= 64` ignores every bit and returns 0 (ScyllaDB's
/// C++ shift would be undefined there).
///
/// # Example
///
/// ```
/// use shardpool_partitioners::compat::{cassandra_token, scylla_shard};
///
/// // gocql's TestScyllaConnPickerShardOf vectors: 4 shards, ignore_msb 12.
/// assert_eq!(scylla_shard(-9219783007514621794, 4, 12), 3);
/// assert_eq!(scylla_shard(-5512003267608309385, 4, 12), 0);
///
/// // Routing a CQL partition key to its core: token, then shard.
/// let shard = scylla_shard(cassandra_token(b"user:42"), 8, 12);
/// assert!(shard < 8);
/// ```
#[inline]
pub fn scylla_shard(token: i64, shards: u32, ignore_msb: u32) -> u32 {
    let biased = (token as u64).wrapping_add(1 << 63);
    let fraction = biased.checked_shl(ignore_msb).unwrap_or(0);
    ((u128::from(fraction) * u128::from(shards)) >> 64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_match_gocql_scylla_tokens_test() {
        // scylladb/gocql scylla_tokens_test.go, scyllaShardOfTests (10 000
        // tokens, checked by scylla_test.go TestScyllaConnPickerShardOf
        // with nrShards 4, msbIgnore 12; read at commit
        // 3703808ca4f2c332ef02b76212f627421cb873da): every 500th entry and
        // the last. The first and last are also scylla-rust-driver's
        // test_shard_of vectors (scylla/src/routing/sharding.rs).
        let vectors: [(i64, u32); 21] = [
            (-9_219_783_007_514_621_794, 3),
            (-8_322_671_511_628_216_748, 3),
            (-7_397_642_702_856_021_659, 1),
            (-6_436_637_831_158_602_014, 3),
            (-5_512_003_267_608_309_385, 0),
            (-4_595_436_456_670_287_526, 2),
            (-3_595_607_972_434_835_807, 2),
            (-2_720_157_737_819_232_648, 0),
            (-1_854_493_237_484_912_544, 0),
            (-936_260_470_151_143_969, 0),
            (-3_790_811_379_916_698, 0),
            (861_385_654_789_185_798, 1),
            (1_845_449_733_049_728_993, 3),
            (2_769_522_714_752_031_731, 3),
            (3_609_227_581_859_355_055, 1),
            (4_557_448_425_965_485_281, 3),
            (5_411_684_524_875_350_561, 2),
            (6_416_377_191_741_043_014, 2),
            (7_330_963_716_307_289_410, 3),
            (8_269_465_132_232_115_011, 0),
            (9_222_582_454_147_032_830, 3),
        ];
        for (token, shard) in vectors {
            assert_eq!(scylla_shard(token, 4, 12), shard, "token {token}");
        }
    }

    /// ScyllaDB's `test_sharding` check on a list of shard boundaries: the
    /// i-th boundary is the first token of shard `i % shards`, and the token
    /// before it belongs to shard `(i - 1) % shards`.
    fn check_boundaries(shards: u32, ignore_msb: u32, limits: &[i64]) {
        assert_eq!(limits.len(), (shards << ignore_msb) as usize);
        for (i, &limit) in limits.iter().enumerate() {
            let i = i as u32;
            assert_eq!(scylla_shard(limit, shards, ignore_msb), i % shards);
            if i != 0 {
                assert_eq!(
                    scylla_shard(limit - 1, shards, ignore_msb),
                    (i - 1) % shards
                );
            }
        }
    }

    #[test]
    fn shard_boundaries_match_scylladb_partitioner_test() {
        // scylladb/scylladb test/boost/partitioner_test.cc,
        // test_murmur3_sharding (read at commit
        // 01e3307ca59cb3c0691a5c2e6a7a5757ec329663).
        check_boundaries(
            7,
            0,
            &[
                -9_223_372_036_854_775_807,
                -6_588_122_883_467_697_006 + 1,
                -3_952_873_730_080_618_204 + 1,
                -1_317_624_576_693_539_402 + 1,
                1_317_624_576_693_539_401 + 1,
                3_952_873_730_080_618_203 + 1,
                6_588_122_883_467_697_005 + 1,
            ],
        );
        check_boundaries(2, 0, &[-9_223_372_036_854_775_807, 0]);
        check_boundaries(1, 0, &[-9_223_372_036_854_775_807]);
    }

    #[test]
    fn shard_boundaries_with_ignore_msb_match_scylladb_partitioner_test() {
        // Same file, test_murmur3_sharding_with_ignorebits.
        check_boundaries(
            7,
            2,
            &[
                -9_223_372_036_854_775_807,
                -8_564_559_748_508_006_107,
                -7_905_747_460_161_236_406,
                -7_246_935_171_814_466_706,
                -6_588_122_883_467_697_005,
                -5_929_310_595_120_927_305,
                -5_270_498_306_774_157_604,
                -4_611_686_018_427_387_904,
                -3_952_873_730_080_618_203,
                -3_294_061_441_733_848_502,
                -2_635_249_153_387_078_802,
                -1_976_436_865_040_309_101,
                -1_317_624_576_693_539_401,
                -658_812_288_346_769_700,
                0,
                658_812_288_346_769_701,
                1_317_624_576_693_539_402,
                1_976_436_865_040_309_102,
                2_635_249_153_387_078_803,
                3_294_061_441_733_848_503,
                3_952_873_730_080_618_204,
                4_611_686_018_427_387_904,
                5_270_498_306_774_157_605,
                5_929_310_595_120_927_306,
                6_588_122_883_467_697_006,
                7_246_935_171_814_466_707,
                7_905_747_460_161_236_407,
                8_564_559_748_508_006_108,
            ],
        );
        check_boundaries(
            2,
            4,
            &[
                -9_223_372_036_854_775_807,
                -8_646_911_284_551_352_320,
                -8_070_450_532_247_928_832,
                -7_493_989_779_944_505_344,
                -6_917_529_027_641_081_856,
                -6_341_068_275_337_658_368,
                -5_764_607_523_034_234_880,
                -5_188_146_770_730_811_392,
                -4_611_686_018_427_387_904,
                -4_035_225_266_123_964_416,
                -3_458_764_513_820_540_928,
                -2_882_303_761_517_117_440,
                -2_305_843_009_213_693_952,
                -1_729_382_256_910_270_464,
                -1_152_921_504_606_846_976,
                -576_460_752_303_423_488,
                0,
                576_460_752_303_423_488,
                1_152_921_504_606_846_976,
                1_729_382_256_910_270_464,
                2_305_843_009_213_693_952,
                2_882_303_761_517_117_440,
                3_458_764_513_820_540_928,
                4_035_225_266_123_964_416,
                4_611_686_018_427_387_904,
                5_188_146_770_730_811_392,
                5_764_607_523_034_234_880,
                6_341_068_275_337_658_368,
                6_917_529_027_641_081_856,
                7_493_989_779_944_505_344,
                8_070_450_532_247_928_832,
                8_646_911_284_551_352_320,
            ],
        );
    }

    #[test]
    fn extreme_tokens_and_degenerate_arguments() {
        // The ring's ends: i64::MIN + 1 is the first key token (shard 0);
        // i64::MAX is the last (the top shard when nothing is ignored).
        assert_eq!(scylla_shard(i64::MIN + 1, 16, 0), 0);
        assert_eq!(scylla_shard(i64::MAX, 16, 0), 15);
        assert_eq!(scylla_shard(i64::MAX, 16, 12), 15);
        assert_eq!(scylla_shard(0, 16, 0), 8);
        // Zero shards: the formula's 0. All bits ignored: 0.
        assert_eq!(scylla_shard(12_345, 0, 12), 0);
        assert_eq!(scylla_shard(i64::MAX, 16, 64), 0);
        assert_eq!(scylla_shard(i64::MAX, 16, u32::MAX), 0);
        assert_eq!(scylla_shard(i64::MAX, 16, 63), 8);
        assert_eq!(scylla_shard(i64::MAX, u32::MAX, 0), u32::MAX - 1);
    }
}
