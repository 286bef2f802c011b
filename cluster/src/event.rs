//! An event's wire form: the payload `"{key} {value}"`.
//!
//! The key is also what picks the partition
//! ([`Layout::partition_of`](crate::layout::Layout::partition_of)) and the
//! worker; the value is what the workers add up.

use bytes::Bytes;

/// The payload of an event.
pub fn encode(key: &str, value: u64) -> Bytes {
    Bytes::from(format!("{key} {value}"))
}

/// The key and value of a payload, or `None` if it is malformed.
pub fn decode(payload: &[u8]) -> Option<(&str, u64)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (key, value) = text.split_once(' ')?;
    if key.is_empty() {
        return None;
    }
    Some((key, value.parse().ok()?))
}

/// The `i`-th event of a deterministic input: `keys` distinct keys
/// `k0 … k{keys-1}` in turn, values `1..=7`. The example's publisher and the
/// test both use it, so the test knows the exact totals.
pub fn nth(i: u64, keys: u64) -> (String, u64) {
    (format!("k{}", i % keys.max(1)), i % 7 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!(decode(&encode("k12", 42)), Some(("k12", 42)));
    }

    #[test]
    fn malformed_payloads_are_refused() {
        for bad in [&b""[..], b"k1", b" 5", b"k1 x", b"k1 -1", b"\xff 1"] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }
}
