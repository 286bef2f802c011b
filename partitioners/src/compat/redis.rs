//! Redis Cluster's key → hash slot function.

/// The number of hash slots in a Redis Cluster.
const SLOTS: u16 = 16384;

/// The Redis Cluster hash slot (`0..16384`) of `key`, the value of
/// `CLUSTER KEYSLOT key`.
///
/// Formula (Redis `keyHashSlot` in `src/cluster.h`): `crc16(h) & 0x3fff`,
/// where `crc16` is CRC-16/XMODEM (polynomial `0x1021`, initial value 0, no
/// reflection, no final xor; `crc16("123456789") == 0x31c3`) and `h` is the
/// key's *hash tag* if it has one, else the whole key. The hash tag is the
/// bytes between the first `{` and the first `}` after it, if that is not
/// empty.
///
/// **Traps avoided.** Only the *first* `{` counts, and then the *first* `}`
/// after it: `foo{{bar}}zap` hashes `{bar`, `foo{bar}{zap}` hashes `bar`.
/// An empty tag does not make Redis look further: `foo{}{bar}` hashes the
/// whole key, so a key that starts with `{}` is always hashed whole. A `{`
/// without a later `}` also hashes the whole key. The key is bytes, not
/// text: `{` and `}` are the bytes `0x7b` and `0x7d` wherever they occur.
///
/// # Example
///
/// ```
/// use shardpool_partitioners::compat::redis_slot;
///
/// // Redis's own test suite (tests/unit/moduleapi/misc.tcl): KEYSLOT foo is 12182.
/// assert_eq!(redis_slot(b"foo"), 12182);
/// // Keys sharing a hash tag share a slot, so multi-key commands work on them.
/// assert_eq!(redis_slot(b"{user1000}.following"), redis_slot(b"{user1000}.followers"));
/// assert_eq!(redis_slot(b"{user1000}.following"), redis_slot(b"user1000"));
/// ```
#[inline]
pub fn redis_slot(key: &[u8]) -> u16 {
    crc16_xmodem(hash_tag(key)) & (SLOTS - 1)
}

/// The bytes Redis hashes for `key`: its non-empty `{tag}`, or all of it.
#[inline]
fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        let rest = &key[open + 1..];
        if let Some(close) = rest.iter().position(|&b| b == b'}') {
            if close > 0 {
                return &rest[..close];
            }
        }
    }
    key
}

/// CRC-16/XMODEM, one table lookup per byte.
#[inline]
pub(crate) fn crc16_xmodem(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ b)]
    })
}

/// `CRC16_TABLE[i]` is the CRC of the byte `i` shifted through the
/// polynomial `0x1021` (computed at compile time, not copied).
static CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_redis_and_jedis_vectors() {
        // redis/redis src/crc16.c header: `Output for "123456789" : 31C3`.
        assert_eq!(crc16_xmodem(b"123456789"), 0x31c3);
        // redis/jedis (the Redis Java client)
        // src/test/java/redis/clients/jedis/util/JedisClusterCRC16Test.java,
        // prepareSolutionSet().
        let jedis: [(&[u8], u16); 6] = [
            (b"", 0x0),
            (b"123456789", 0x31c3),
            (b"sfger132515", 0xa45c),
            (b"hae9Napahngaikeethievubaibogiech", 0x58ce),
            (b"AAAAAAAAAAAAAAAAAAAAAA", 0x92cd),
            (b"Hello, World!", 0x4fd6),
        ];
        for (key, crc) in jedis {
            assert_eq!(crc16_xmodem(key), crc, "{}", String::from_utf8_lossy(key));
            // None of them has braces, so the slot is the CRC's low 14 bits.
            assert_eq!(redis_slot(key), crc & 0x3fff);
        }
    }

    #[test]
    fn slots_match_redis_and_jedis() {
        // redis/redis tests/unit/moduleapi/misc.tcl, "Cluster keyslot":
        // `assert_equal 12182 [r test.keyslot foo]`.
        assert_eq!(redis_slot(b"foo"), 12182);
        // redis/jedis JedisClusterCRC16Test.testGetSlot:
        // `assertEquals(7186, JedisClusterCRC16.getSlot("51"))`.
        assert_eq!(redis_slot(b"51"), 7186);
    }

    /// Entries of redis/redis `src/crc16_slottable.h`, the table of the
    /// shortest alphanumeric string for every slot (`crc16_slot_table[slot]`),
    /// which Redis's `tests/modules/misc.c` `test_keyslot` checks for all
    /// 16384 slots both bare and as the tag of `x{…}y`.
    const SLOT_TABLE_SAMPLE: [(u16, &[u8]); 10] = [
        (0, b"06S"),
        (1, b"Qi"),
        (2, b"5L5"),
        (77, b"1ML"),
        (1000, b"19w"),
        (4096, b"0cY"),
        (8192, b"8YG"),
        (12182, b"9Le"),
        (16382, b"4oi"),
        (16383, b"6ZJ"),
    ];

    #[test]
    fn canonical_slot_names_land_on_their_slot() {
        for (slot, name) in SLOT_TABLE_SAMPLE {
            assert_eq!(redis_slot(name), slot, "{}", String::from_utf8_lossy(name));
            let mut tagged = Vec::from(&b"x{"[..]);
            tagged.extend_from_slice(name);
            tagged.extend_from_slice(b"}y");
            assert_eq!(redis_slot(&tagged), slot);
        }
    }

    #[test]
    fn hash_tag_rules_of_the_cluster_spec() {
        // The examples of the Redis Cluster specification, "Hash tags"
        // (redis/redis-doc topics/cluster-spec.md), as asserted by Jedis's
        // testRedisHashtagGetSlot.
        assert_eq!(hash_tag(b"{user1000}.following"), b"user1000");
        assert_eq!(hash_tag(b"{user1000}.followers"), b"user1000");
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(redis_slot(b"foo{{bar}}zap"), redis_slot(b"{bar"));
        assert_eq!(redis_slot(b"foo{bar}{zap}"), redis_slot(b"bar"));
        assert_ne!(redis_slot(b"foo{}{bar}"), redis_slot(b"bar"));
        // Edge cases of keyHashSlot: no `}`, `}` before `{`, lone braces.
        for whole in [
            &b"foo{bar"[..],
            b"foo}bar{",
            b"{",
            b"}",
            b"{}",
            b"{}foo",
            b"",
        ] {
            assert_eq!(hash_tag(whole), whole);
        }
        assert_eq!(hash_tag(b"{{}}"), b"{");
        // Binary keys: only the bytes 0x7b / 0x7d matter.
        assert_eq!(hash_tag(&[0x81, 0x7b, 0x41, 0x81, 0x7d]), &[0x41, 0x81]);
    }
}
