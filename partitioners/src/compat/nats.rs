//! NATS subject mapping's `partition(n, …)` function.

const FNV32_OFFSET: u32 = 0x811c_9dc5;
const FNV32_PRIME: u32 = 0x0100_0193;

/// The partition `0..partitions` that a NATS server's subject mapping
/// `{{partition(partitions, i, j, …)}}` gives a subject whose wildcard
/// tokens `i, j, …` are `tokens` (in the order the mapping lists them).
///
/// Formula (nats-server `server/subject_transform.go`,
/// `TransformTokenizedSubject` and `getHashPartition`): FNV-1a 32-bit of
/// the chosen tokens *concatenated with no separator*, `% partitions`.
///
/// **Traps avoided.**
/// - No separator: `partition(n, 1, 2)` on `foo.ab.c` and on `foo.a.bc`
///   hashes `abc` both times, and `tokens = [b"ab", b"c"]` and
///   `[b"a", b"bc"]` agree here too.
/// - The shorthand `partition(n)` (no token indexes) hashes the *whole
///   subject*, tokens joined with `.`: pass the subject as one token,
///   `&[b"foo.bar"]`, not its tokens.
/// - It is FNV-1a (xor, then multiply), not FNV-1 (multiply, then xor).
///
/// `partitions == 0` returns 0, as nats-server does ("Avoid an integer
/// divide by zero panic").
///
/// # Example
///
/// ```
/// use shardpool_partitioners::compat::nats_partition;
///
/// // nats-server's TestSubjectTransforms: `*` → `bar.{{partition(10)}}`
/// // maps `foo` to `bar.3`; `foo.bar` → `baz.{{partition(10)}}` gives `baz.6`.
/// assert_eq!(nats_partition(&[b"foo"], 10), 3);
/// assert_eq!(nats_partition(&[b"foo.bar"], 10), 6);
/// // partition(10, 1, 2) on `orders.eu.42`: the tokens `eu` and `42`.
/// assert_eq!(nats_partition(&[b"eu", b"42"], 10), nats_partition(&[b"eu42"], 10));
/// ```
#[inline]
pub fn nats_partition(tokens: &[&[u8]], partitions: u32) -> u32 {
    if partitions == 0 {
        return 0;
    }
    let hash = tokens
        .iter()
        .fold(FNV32_OFFSET, |h, token| fnv1a32(h, token));
    hash % partitions
}

/// Continues an FNV-1a 32 hash `h` over `bytes`.
#[inline]
fn fnv1a32(h: u32, bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(h, |h, &b| (h ^ u32::from(b)).wrapping_mul(FNV32_PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a32_matches_go_hash_fnv() {
        // nats-server hashes with Go's `hash/fnv` New32a; these are the
        // golden32a vectors of golang/go src/hash/fnv/fnv_test.go (read at
        // commit 34aeeefd26fd780ff7ac83cb26f775d0fd3f3541).
        for (input, expected) in [
            (&b""[..], 0x811c_9dc5),
            (b"a", 0xe40c_292c),
            (b"ab", 0x4d25_05ca),
            (b"abc", 0x1a47_e90b),
        ] {
            assert_eq!(fnv1a32(FNV32_OFFSET, input), expected);
        }
    }

    #[test]
    fn partitions_match_nats_server_subject_transform_test() {
        // nats-io/nats-server server/subject_transform_test.go,
        // TestSubjectTransforms (read at commit
        // 1787eee035cf0253c201fa0f05afad92b6f296dc).
        // shouldMatch("*", "bar.{{partition(10)}}", "foo", "bar.3") and
        // partition(10, 0) likewise.
        assert_eq!(nats_partition(&[b"foo"], 10), 3);
        // shouldMatch("*", "bar.{{partition(10)}}", "baz", "bar.0")
        assert_eq!(nats_partition(&[b"baz"], 10), 0);
        // shouldMatch("*", "bar.{{partition(10)}}", "qux", "bar.9")
        assert_eq!(nats_partition(&[b"qux"], 10), 9);
        // The shorthand hashes the whole subject, tokens joined with '.':
        // shouldMatch("*.*", "bar.{{partition(10)}}", "foo.bar", "bar.6")
        assert_eq!(nats_partition(&[b"foo.bar"], 10), 6);
        // shouldMatch("foo.baz", "qux.{{partition(10)}}", "foo.baz", "qux.4")
        assert_eq!(nats_partition(&[b"foo.baz"], 10), 4);
        // shouldMatch("test.subject", "result.{{partition(5)}}", "test.subject", "result.0")
        assert_eq!(nats_partition(&[b"test.subject"], 5), 0);
        // shouldMatch("*", "bar.{{partition(0)}}", "baz", "bar.0")
        assert_eq!(nats_partition(&[b"baz"], 0), 0);
    }

    #[test]
    fn tokens_are_concatenated_without_separator() {
        let joined = nats_partition(&[b"foobar"], 1 << 31);
        assert_eq!(nats_partition(&[b"foo", b"bar"], 1 << 31), joined);
        assert_eq!(nats_partition(&[b"fo", b"", b"obar"], 1 << 31), joined);
        // Not the dotted subject, which the shorthand would hash.
        assert_ne!(nats_partition(&[b"foo.bar"], 1 << 31), joined);
        // No tokens: the hash of nothing, the FNV offset basis.
        assert_eq!(nats_partition(&[], u32::MAX), FNV32_OFFSET % u32::MAX);
    }
}
