//! Apache Kafka's default partitioner for keyed records (Java client).

/// The partition Apache Kafka's Java producer picks for a record with key
/// `key` in a topic of `partitions` partitions.
///
/// Formula (Kafka's `BuiltInPartitioner.partitionForKey`, and before 3.3
/// `DefaultPartitioner`): `(murmur2(key) & 0x7fffffff) % partitions`, where
/// `murmur2` is Kafka's `Utils.murmur2`: 32-bit MurmurHash2 with seed
/// `0x9747b28c`, reading the key in little-endian 4-byte words. `key` is the
/// *serialized* key, the bytes the producer's key serializer produced.
///
/// **Trap avoided.** This is the Java client's default, not every client's:
/// librdkafka, and so the `rdkafka` crate, defaults to
/// `partitioner=consistent_random`, a CRC32 of the key; set
/// `partitioner=murmur2_random` there to land on the same partition as this
/// function and the Java client. The mask
/// `& 0x7fffffff` is not `abs`: Kafka clears the sign bit, so a negative
/// hash keeps its low 31 bits.
///
/// # Panics
///
/// If `partitions` is 0, as the Java client throws `ArithmeticException`
/// (`/ by zero`) there. A Kafka topic has at least one partition.
///
/// # Example
///
/// ```
/// use shardpool_partitioners::compat::kafka_partition;
///
/// // Kafka's UtilsTest: murmur2("foobar") == -790332482 as a Java int,
/// // so the partition among 10 is (-790332482 & 0x7fffffff) % 10 == 6.
/// assert_eq!(kafka_partition(b"foobar", 10), 6);
/// assert!(kafka_partition(b"order-42", 12) < 12);
/// ```
#[inline]
pub fn kafka_partition(key: &[u8], partitions: u32) -> u32 {
    assert!(
        partitions != 0,
        "kafka_partition: partitions must be at least 1"
    );
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// Kafka's `Utils.murmur2`, as the unsigned bits of the Java `int` it returns.
#[inline]
pub(crate) fn murmur2(key: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    // Java computes `seed ^ length` on an `int`; a key is at most 2^31 - 1
    // bytes there, so the low 32 bits of the length are the same value.
    let mut h = SEED ^ key.len() as u32;
    let mut words = key.chunks_exact(4);
    for word in &mut words {
        let mut k = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    // Kafka masks the tail bytes with `& 0xff`: no sign extension here.
    let tail = words.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= u32::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's own vectors, as the Java `int`s the test asserts.
    /// Source: apache/kafka
    /// `clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java`,
    /// `testMurmur2` (read at commit f55581dc73953c3509a4702433aeeeddc2970779).
    const KAFKA_UTILS_TEST: [(&[u8], i32); 6] = [
        (b"21", -973_932_308),
        (b"foobar", -790_332_482),
        (b"a-little-bit-long-string", -985_981_536),
        (b"a-little-bit-longer-string", -1_486_304_829),
        (
            b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58_897_971,
        ),
        (b"abc", 479_470_107),
    ];

    #[test]
    fn murmur2_matches_kafka_utils_test() {
        for (key, expected) in KAFKA_UTILS_TEST {
            assert_eq!(
                murmur2(key) as i32,
                expected,
                "murmur2({:?})",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn partition_is_the_masked_hash_mod_partitions() {
        for (key, expected) in KAFKA_UTILS_TEST {
            let positive = (expected & 0x7fff_ffff) as u32;
            // `Utils.toPositive(murmur2) % n` for a few topic sizes.
            for n in [1, 2, 3, 10, 12, 100, 1000, i32::MAX as u32] {
                assert_eq!(kafka_partition(key, n), positive % n);
            }
            // With 2^31 partitions the modulo is the identity on 31 bits, so
            // the public function exposes the whole masked Kafka hash.
            assert_eq!(kafka_partition(key, 1 << 31), positive);
        }
    }

    #[test]
    fn empty_key_and_every_tail_length_are_defined() {
        // Lengths 0..=10 cover tails of 0, 1, 2 and 3 bytes after 0, 1 and 2
        // whole words, with bytes >= 0x80 (negative as Java bytes) in both.
        let key = [0xffu8, 0x80, 0x81, 0xfe, 0x7f, 0x00, 0xc3, 0xa9, 0x90, 0x01];
        let mut seen = std::collections::HashSet::new();
        for len in 0..=key.len() {
            let h = murmur2(&key[..len]);
            assert!(seen.insert(h), "length {len} collided");
            assert!(kafka_partition(&key[..len], 7) < 7);
        }
    }

    #[test]
    #[should_panic(expected = "partitions must be at least 1")]
    fn zero_partitions_panics_like_java() {
        kafka_partition(b"key", 0);
    }
}
