//! [`SmallBytes`]: a byte string stored inline when short.
//!
//! The store's keys and values live in its hash table's slots. A `Bytes`
//! there points to a separate allocation, so a GET paid three cache misses
//! on a large keyspace: the slot, the key's bytes (to compare them) and
//! the value's bytes (to copy them out), plus an atomic on the value's
//! shared header to clone it. Redis-style workloads use short keys and
//! values; stored inline, the slot holds them and the probe that finds the
//! slot has already fetched them.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

/// Longest byte string kept inline.
const INLINE: usize = 22;

/// A byte string: inline up to 22 bytes, else on the heap. 24 bytes.
#[derive(Clone)]
pub enum SmallBytes {
    /// Up to 22 bytes, here.
    Inline {
        /// How many of `bytes` are used.
        len: u8,
        /// The bytes (the first `len`).
        bytes: [u8; INLINE],
    },
    /// Longer: on the heap.
    Heap(Box<[u8]>),
}

impl SmallBytes {
    /// A copy of `bytes`.
    pub fn copy_from_slice(bytes: &[u8]) -> Self {
        if bytes.len() <= INLINE {
            let mut inline = [0; INLINE];
            inline[..bytes.len()].copy_from_slice(bytes);
            SmallBytes::Inline {
                len: bytes.len() as u8,
                bytes: inline,
            }
        } else {
            SmallBytes::Heap(bytes.into())
        }
    }
}

impl Deref for SmallBytes {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            SmallBytes::Inline { len, bytes } => &bytes[..usize::from(*len)],
            SmallBytes::Heap(bytes) => bytes,
        }
    }
}

impl Borrow<[u8]> for SmallBytes {
    #[inline]
    fn borrow(&self) -> &[u8] {
        self
    }
}

// Hash and Eq as the byte slice, as `Borrow<[u8]>` requires for map lookups.
impl Hash for SmallBytes {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

impl PartialEq for SmallBytes {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for SmallBytes {}

impl std::fmt::Debug for SmallBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        bytes::Bytes::copy_from_slice(self).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn short_strings_are_inline_long_ones_on_the_heap_both_read_back() {
        assert_eq!(std::mem::size_of::<SmallBytes>(), 24);
        for len in [0, 1, 21, 22, 23, 100] {
            let data: Vec<u8> = (0..len as u8).collect();
            let s = SmallBytes::copy_from_slice(&data);
            assert_eq!(&*s, &data[..]);
            assert_eq!(
                matches!(s, SmallBytes::Inline { .. }),
                len <= INLINE,
                "{len}"
            );
        }
    }

    #[test]
    fn looks_up_by_slice_whichever_form() {
        let mut map = HashMap::new();
        map.insert(SmallBytes::copy_from_slice(b"key"), 1);
        map.insert(SmallBytes::copy_from_slice(&[7; 40]), 2);
        assert_eq!(map.get(&b"key"[..]), Some(&1));
        assert_eq!(map.get(&[7u8; 40][..]), Some(&2));
        assert_eq!(map.get(&b"kex"[..]), None);
    }
}
