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
    if let Some(open) = find_byte(key, b'{') {
        let rest = &key[open + 1..];
        if let Some(close) = find_byte(rest, b'}') {
            if close > 0 {
                return &rest[..close];
            }
        }
    }
    key
}

/// The index of the first `needle` in `haystack`, eight bytes per step.
///
/// For a word `v = w ^ needle×8`, `(v - 0x01…01) & !v & 0x80…80` is non-zero
/// iff some byte of `v` is zero, and its lowest set bit is in the first
/// such byte (borrows only run towards higher bytes), so with the word read
/// little-endian, `trailing_zeros / 8` is the first match.
#[inline]
fn find_byte(haystack: &[u8], needle: u8) -> Option<usize> {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let pattern = LOW * u64::from(needle);
    let mut words = haystack.chunks_exact(8);
    let mut offset = 0;
    for w in &mut words {
        let v = u64::from_le_bytes(w.try_into().expect("8 bytes")) ^ pattern;
        let found = v.wrapping_sub(LOW) & !v & HIGH;
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == needle)
        .map(|i| offset + i)
}

/// CRC-16/XMODEM, eight bytes per step ("slicing-by-8"), then one byte per
/// step for the rest.
///
/// The bytewise form `crc = (crc << 8) ^ T0[(crc >> 8) ^ b]` makes every
/// byte wait for the previous one (a table load per byte on the critical
/// path). A CRC is linear, so eight bytes can be folded at once: xor the
/// 16-bit register into the first two bytes, then `crc = T7[x0] ^ T6[x1] ^
/// … ^ T0[x7]`, where `Tk[x]` is the CRC of byte `x` followed by `k` zero
/// bytes. The eight loads are independent. Same function, same values.
#[inline]
pub(crate) fn crc16_xmodem(bytes: &[u8]) -> u16 {
    let mut crc = 0u16;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let [hi, lo] = crc.to_be_bytes();
        crc = CRC16_TABLES[7][usize::from(w[0] ^ hi)]
            ^ CRC16_TABLES[6][usize::from(w[1] ^ lo)]
            ^ CRC16_TABLES[5][usize::from(w[2])]
            ^ CRC16_TABLES[4][usize::from(w[3])]
            ^ CRC16_TABLES[3][usize::from(w[4])]
            ^ CRC16_TABLES[2][usize::from(w[5])]
            ^ CRC16_TABLES[1][usize::from(w[6])]
            ^ CRC16_TABLES[0][usize::from(w[7])];
    }
    words.remainder().iter().fold(crc, |crc, &b| {
        (crc << 8) ^ CRC16_TABLES[0][usize::from((crc >> 8) as u8 ^ b)]
    })
}

/// `CRC16_TABLES[k][x]`: the CRC-16/XMODEM register after the byte `x`
/// followed by `k` zero bytes, from a zero register (computed at compile
/// time from the polynomial `0x1021`, not copied).
static CRC16_TABLES: [[u16; 256]; 8] = {
    let mut tables = [[0u16; 256]; 8];
    let mut x = 0;
    while x < 256 {
        let mut crc = (x as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        tables[0][x] = crc;
        x += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut x = 0;
        while x < 256 {
            // One more zero byte through the bytewise step.
            let prev = tables[k - 1][x];
            tables[k][x] = (prev << 8) ^ tables[0][(prev >> 8) as usize];
            x += 1;
        }
        k += 1;
    }
    tables
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
    fn eight_byte_steps_equal_the_bytewise_crc() {
        // Redis's own loop, one byte at a time (src/crc16.c `crc16`).
        fn bytewise(bytes: &[u8]) -> u16 {
            bytes.iter().fold(0u16, |crc, &b| {
                (crc << 8) ^ CRC16_TABLES[0][usize::from((crc >> 8) as u8 ^ b)]
            })
        }
        let data: Vec<u8> = (0..200u32)
            .map(|i| (i.wrapping_mul(167) ^ 0x5a) as u8)
            .collect();
        for start in 0..8 {
            for end in start..data.len() {
                let s = &data[start..end];
                assert_eq!(crc16_xmodem(s), bytewise(s), "bytes {start}..{end}");
            }
        }
    }

    #[test]
    fn find_byte_finds_the_first_match() {
        let mut hay = [b'x'; 40];
        assert_eq!(find_byte(&hay, b'{'), None);
        assert_eq!(find_byte(&[], b'{'), None);
        for first in 0..hay.len() {
            hay = [b'x'; 40];
            hay[first] = b'{';
            // Later matches, and bytes `needle ^ 1` (which become 0x01 in
            // `v`, where a borrow from a lower match can make them look like
            // a match), must not change the answer.
            for (later, b) in hay.iter_mut().enumerate().skip(first + 1) {
                *b = if later % 2 == 0 { b'{' } else { b'{' ^ 1 };
            }
            assert_eq!(find_byte(&hay, b'{'), Some(first));
            assert_eq!(find_byte(&hay[..first], b'{'), None);
        }
        // 0x00 and 0xff needles, where the bit trick is most fragile.
        for needle in [0x00u8, 0x01, 0x7f, 0x80, 0xff] {
            for at in 0..20 {
                let mut hay = [needle ^ 1; 20];
                hay[at] = needle;
                assert_eq!(find_byte(&hay, needle), Some(at));
            }
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
