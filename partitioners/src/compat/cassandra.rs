//! Apache Cassandra's (and ScyllaDB's) `Murmur3Partitioner` token.

const C1: u64 = 0x87c3_7b91_1142_53d5;
const C2: u64 = 0x4cf5_ad43_2745_937f;

/// The token Apache Cassandra's `Murmur3Partitioner` (the default
/// partitioner, also ScyllaDB's) gives the partition key `key`.
///
/// `key` is the serialized partition key as the engine hashes it: for a
/// single-column key the column's value bytes (e.g. the UTF-8 of a `text`,
/// the 4 big-endian bytes of an `int`); for a composite key each component
/// as a 2-byte big-endian length, the bytes, and a `0x00`.
///
/// Formula (Cassandra's `MurmurHash.hash3_x64_128(key, seed 0)` and
/// `Murmur3Partitioner.getToken`): the first 64-bit half `h1` of
/// MurmurHash3 x64/128, as a signed `i64`, with `i64::MIN` replaced by
/// `i64::MAX`.
///
/// **Traps avoided.**
/// - Cassandra's MurmurHash3 is *not* the reference MurmurHash3 for keys
///   whose length is not a multiple of 16: it reads the 1–15 tail bytes as
///   signed Java `byte`s, so a tail byte `>= 0x80` is sign-extended before
///   it is shifted into place (`0xfe` contributes `0xffff_ffff_ffff_fffe`,
///   not `0xfe`). Hashing with a standard MurmurHash3 crate gives other
///   tokens for such keys.
/// - `i64::MIN` is not a token (it is the ring's minimum, "before every
///   key"), so a hash of `i64::MIN` becomes `i64::MAX`.
/// - The empty key: Cassandra returns the minimum token, `i64::MIN`, and
///   this function does the same. Both engines refuse empty partition keys
///   in ordinary tables; only ScyllaDB's materialized views can have one,
///   and current ScyllaDB (and its drivers) hash it like any key, to 0.
///
/// # Example
///
/// ```
/// use shardpool_partitioners::compat::cassandra_token;
///
/// // scylla-rust-driver's test_murmur3_partitioner vectors.
/// assert_eq!(cassandra_token(b"test"), -6017608668500074083);
/// // 9 bytes, two of them (the UTF-8 of 'ó') negative as Java bytes.
/// assert_eq!(cassandra_token("kremówki".as_bytes()), 4354931215268080151);
/// ```
#[inline]
pub fn cassandra_token(key: &[u8]) -> i64 {
    if key.is_empty() {
        return i64::MIN;
    }
    normalize(murmur3_h1(key))
}

/// `Murmur3Partitioner.normalize`: `i64::MIN` is reserved for the minimum
/// token.
#[inline]
fn normalize(h: i64) -> i64 {
    if h == i64::MIN {
        i64::MAX
    } else {
        h
    }
}

/// `h1` of Cassandra's `MurmurHash.hash3_x64_128` with seed 0.
#[inline]
pub(crate) fn murmur3_h1(key: &[u8]) -> i64 {
    let (mut h1, mut h2) = (0u64, 0u64);

    let mut blocks = key.chunks_exact(16);
    for block in &mut blocks {
        let (lo, hi) = block.split_at(8);
        // Whole blocks are read unsigned (getBlock masks with 0xff).
        let k1 = u64::from_le_bytes(lo.try_into().expect("8 bytes"));
        let k2 = u64::from_le_bytes(hi.try_into().expect("8 bytes"));

        h1 ^= mix_k1(k1);
        h1 = h1.rotate_left(27).wrapping_add(h2);
        h1 = h1.wrapping_mul(5).wrapping_add(0x52dc_e729);

        h2 ^= mix_k2(k2);
        h2 = h2.rotate_left(31).wrapping_add(h1);
        h2 = h2.wrapping_mul(5).wrapping_add(0x3849_5ab5);
    }

    // The tail is read as signed Java bytes: `((long) key.get(i)) << shift`
    // sign-extends, so a byte >= 0x80 also flips every bit above it.
    let tail = blocks.remainder();
    let (mut k1, mut k2) = (0u64, 0u64);
    for (i, &b) in tail.iter().enumerate() {
        let signed = b as i8 as i64 as u64;
        if i < 8 {
            k1 ^= signed << (8 * i);
        } else {
            k2 ^= signed << (8 * (i - 8));
        }
    }
    if tail.len() > 8 {
        h2 ^= mix_k2(k2);
    }
    if !tail.is_empty() {
        h1 ^= mix_k1(k1);
    }

    let len = key.len() as u64;
    h1 ^= len;
    h2 ^= len;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix(h1);
    h2 = fmix(h2);
    h1 = h1.wrapping_add(h2);
    h1 as i64
}

#[inline]
fn mix_k1(k: u64) -> u64 {
    k.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2)
}

#[inline]
fn mix_k2(k: u64) -> u64 {
    k.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1)
}

#[inline]
fn fmix(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_the_datastax_python_driver() {
        // datastax/python-driver tests/unit/test_metadata.py,
        // TokensTest.test_murmur3_tokens (Murmur3Token.hash_fn), read at
        // commit 002ff27a1b3a6ee9a0e3a6365d4e51ff3ecd1ce2.
        assert_eq!(cassandra_token(b"123"), -7_468_325_962_851_647_638);
        // 50 bytes: 3 blocks and a 2-byte tail, 0xfa 0x99, both negative.
        assert_eq!(
            cassandra_token(&b"\x00\xff\x10\xfa\x99".repeat(10)),
            5_837_342_703_291_459_765
        );
        // An 8-byte tail of negative bytes, and of positive ones.
        assert_eq!(cassandra_token(&[0xfe; 8]), -8_927_430_733_708_461_935);
        assert_eq!(cassandra_token(&[0x10; 8]), 1_446_172_840_243_228_796);
        // str(MAX_LONG).
        assert_eq!(
            cassandra_token(b"9223372036854775807"),
            7_162_290_910_810_015_547
        );
    }

    #[test]
    fn tokens_match_the_scylla_rust_driver() {
        // scylladb/scylla-rust-driver scylla/src/routing/partitioner.rs,
        // test_murmur3_partitioner (read at commit
        // f01af256479da534578afbfbbdd650f7f4d72670).
        assert_eq!(cassandra_token(b"test"), -6_017_608_668_500_074_083);
        assert_eq!(cassandra_token(b"xd"), 4_507_812_186_440_344_727);
        assert_eq!(cassandra_token(b"primary_key"), -1_632_642_444_691_073_360);
        assert_eq!(
            cassandra_token("kremówki".as_bytes()),
            4_354_931_215_268_080_151
        );
    }

    #[test]
    fn composite_key_token_matches_scylladb_and_origin() {
        // scylladb/scylladb test/boost/partitioner_test.cc,
        // test_decorated_key_is_compatible_with_origin: the partition key
        // (c1 int, c2 int) = (143, 234) has token 4958784316840156970,
        // "taken from Origin" (Cassandra). Composite serialization: per
        // component a u16 BE length, the bytes, and 0x00. 143 = 0x8f and
        // 234 = 0xea are negative Java bytes in the 14-byte tail.
        let key = [
            0x00, 0x04, 0x00, 0x00, 0x00, 0x8f, 0x00, //
            0x00, 0x04, 0x00, 0x00, 0x00, 0xea, 0x00,
        ];
        assert_eq!(cassandra_token(&key), 4_958_784_316_840_156_970);
    }

    #[test]
    fn h1_matches_gocql_for_every_tail_length() {
        // scylladb/gocql internal/murmur/murmur_test.go, TestMurmur3H1
        // (read at commit 3703808ca4f2c332ef02b76212f627421cb873da):
        // "0", "01", … "0123456789012345678", values "generated by the java
        // datastax murmur3 implementation", covering tails of 0..15 bytes.
        let series: [u64; 20] = [
            0x0000_0000_0000_0000,
            0x2ac9_debe_d546_a380,
            0x649e_4eaa_7fc1_708e,
            0xce68_f60d_7c35_3bdb,
            0x0f95_757c_e7f3_8254,
            0x0f04_e459_497f_3fc1,
            0x88c0_a925_86be_0a27,
            0x13eb_9fb8_2606_f7a6,
            0x8236_039b_7387_354d,
            0x4c1e_8751_9fe7_38ba,
            0x3f96_52ac_3eff_eb24,
            0x3f33_760d_ed90_06c6,
            0xaed7_0a66_3185_4cb1,
            0x8a29_9a8f_8e0e_2da7,
            0x624b_675c_7792_49a6,
            0xa4b2_03bb_1d90_b9a3,
            0xa329_3ad6_98ec_b99a,
            0xbc74_0023_dbd5_0048,
            0x3fe5_ab98_37d2_5cdd,
            0x2d03_38c1_ca87_d132,
        ];
        let digits = b"0123456789012345678";
        for (len, &expected) in series.iter().enumerate() {
            let key = &digits[..len];
            assert_eq!(murmur3_h1(key), expected as i64, "length {len}");
            if len > 0 {
                assert_eq!(cassandra_token(key), expected as i64);
            }
        }
        // "test examples from other driver implementations" in the same test.
        for (key, expected) in [
            (&b"hello"[..], 0xcbd8_a7b3_41bd_9b02_u64),
            (b"hello, world", 0x342f_ac62_3a5e_bc8e),
            (b"19 Jan 2038 at 3:14:07 AM", 0xb89e_5988_b737_affc),
            (
                b"The quick brown fox jumps over the lazy dog.",
                0xcd99_481f_9ee9_02c9,
            ),
        ] {
            assert_eq!(cassandra_token(key), expected as i64);
        }
    }

    #[test]
    fn signed_tail_bytes_match_gocql() {
        // scylladb/gocql internal/murmur/murmur_test.go,
        // TestMurmur3H1_CassandraSign: 26 bytes, the tail starts 0x8b 0xb8.
        let key: [u8; 26] = [
            0x00, 0x10, 0x43, 0x27, 0x52, 0x9f, 0xb6, 0x45, 0xdd, 0x00, 0xb8, 0x83, 0xec, 0x39,
            0xae, 0x44, 0x8b, 0xb8, 0x00, 0x00, 0x04, 0x00, 0x06, 0x6a, 0x6b, 0x00,
        ];
        assert_eq!(cassandra_token(&key), -9_223_371_632_693_506_265);
        // BenchmarkMurmur3H1 in the same file: bytes 0, 1, … 255 four times.
        let data: Vec<u8> = (0..1024).map(|i| i as u8).collect();
        assert_eq!(cassandra_token(&data), 7_627_370_222_079_200_297);
    }

    #[test]
    fn empty_key_is_cassandras_minimum_token() {
        // Murmur3Partitioner.getToken: `if (key.remaining() == 0) return MINIMUM;`
        assert_eq!(cassandra_token(b""), i64::MIN);
        assert_eq!(murmur3_h1(b""), 0);
    }

    /// Modular inverse of an odd `a` mod 2^64 (Newton's iteration).
    fn inverse(a: u64) -> u64 {
        let mut x = a;
        for _ in 0..6 {
            x = x.wrapping_mul(2u64.wrapping_sub(a.wrapping_mul(x)));
        }
        assert_eq!(a.wrapping_mul(x), 1);
        x
    }

    fn unfmix(mut k: u64) -> u64 {
        k ^= k >> 33;
        k = k.wrapping_mul(inverse(0xc4ce_b9fe_1a85_ec53));
        k ^= k >> 33;
        k = k.wrapping_mul(inverse(0xff51_afd7_ed55_8ccd));
        k ^= k >> 33;
        k
    }

    /// A 16-byte key whose `h1` is `target`, by running the hash backwards
    /// (the idea of Cassandra's `LongToken.keyForToken`, which inverts
    /// murmur3 to build a key for a given token).
    fn key_with_h1(target: u64) -> [u8; 16] {
        // Final state (h1, h2) = (target, 0), undo `h1 += h2` after fmix.
        let (h1f, h2f) = (target, 0u64);
        let h1 = unfmix(h1f.wrapping_sub(h2f));
        let h2 = unfmix(h2f);
        // Undo `h1 += h2; h2 += h1;` and the length xor.
        let h2 = h2.wrapping_sub(h1);
        let h1 = h1.wrapping_sub(h2);
        let (h1, h2) = (h1 ^ 16, h2 ^ 16);
        // Undo the block round (h1 and h2 started at 0).
        let inv5 = inverse(5);
        let t2 = h2
            .wrapping_sub(0x3849_5ab5)
            .wrapping_mul(inv5)
            .wrapping_sub(h1);
        let mixed_k2 = t2.rotate_right(31);
        let t1 = h1.wrapping_sub(0x52dc_e729).wrapping_mul(inv5);
        let mixed_k1 = t1.rotate_right(27);
        let k1 = mixed_k1
            .wrapping_mul(inverse(C2))
            .rotate_right(31)
            .wrapping_mul(inverse(C1));
        let k2 = mixed_k2
            .wrapping_mul(inverse(C1))
            .rotate_right(33)
            .wrapping_mul(inverse(C2));
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&k1.to_le_bytes());
        key[8..].copy_from_slice(&k2.to_le_bytes());
        key
    }

    #[test]
    fn a_hash_of_i64_min_becomes_i64_max() {
        // The inversion is right: it reproduces arbitrary tokens.
        for target in [1u64, 42, 0x0123_4567_89ab_cdef, u64::MAX, i64::MAX as u64] {
            let key = key_with_h1(target);
            assert_eq!(murmur3_h1(&key), target as i64);
            assert_eq!(cassandra_token(&key), target as i64);
        }
        // And the one key class that hashes to i64::MIN gets i64::MAX.
        let key = key_with_h1(i64::MIN as u64);
        assert_eq!(murmur3_h1(&key), i64::MIN);
        assert_eq!(cassandra_token(&key), i64::MAX);
    }
}
