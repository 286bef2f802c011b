//! Prefetch hints: ask the CPU to fetch a cache line before the thread
//! needs it — for writing (in the exclusive state) or for reading.
//!
//! A sender on the inbox claims its slot with a locked compare-and-swap, and
//! a locked instruction waits for every earlier store of the thread to
//! complete. When the consumer has read the line that the previous message
//! went into, that store first has to take the line back from the
//! consumer's cache, and the next send stalls for that cross-core round
//! trip. Fetching the line a few slots ahead for writing, while the thread
//! is busy anyway, takes that round trip off the send path (measured in
//! docs/performance-log.md, "Inbox").
//!
//! The ring's consumer knows, from the producer's published tail, which
//! lines hold its next batch; asking for all of them at once overlaps
//! their transfers instead of taking one miss after another.
//!
//! `prefetchw`/`prefetcht0` on x86-64 (a no-op on CPUs that predate it: the opcode space
//! is reserved as a hint), `prfm pstl1keep`/`pldl1keep` on AArch64, nothing elsewhere
//! and under loom. A prefetch never faults and changes no memory, so a
//! wrong hint costs only time.

/// Hints that the cache line holding `p` will soon be written by this
/// thread. `p` should point into memory the caller owns a reference to; the
/// hint itself never dereferences it.
#[inline(always)]
pub(crate) fn prefetch_write<T>(p: *const T) {
    prefetch::<true, T>(p);
}

/// Hints that the cache line holding `p` will soon be read by this thread.
/// Like [`prefetch_write`], a hint only: it never faults.
#[inline(always)]
pub(crate) fn prefetch_read<T>(p: *const T) {
    prefetch::<false, T>(p);
}

#[inline(always)]
fn prefetch<const WRITE: bool, T>(p: *const T) {
    #[cfg(all(target_arch = "x86_64", not(loom), not(miri)))]
    // SAFETY: `prefetchw`/`prefetcht0` only hint the cache; they cannot
    // fault, read or write no architectural state (flags included), and
    // touch no stack.
    unsafe {
        if WRITE {
            std::arch::asm!("prefetchw [{0}]", in(reg) p, options(nostack, preserves_flags, readonly));
        } else {
            std::arch::asm!("prefetcht0 [{0}]", in(reg) p, options(nostack, preserves_flags, readonly));
        }
    }
    #[cfg(all(target_arch = "aarch64", not(loom), not(miri)))]
    // SAFETY: `prfm` only hints the cache; it cannot fault and changes no
    // architectural state.
    unsafe {
        if WRITE {
            std::arch::asm!("prfm pstl1keep, [{0}]", in(reg) p, options(nostack, preserves_flags, readonly));
        } else {
            std::arch::asm!("prfm pldl1keep, [{0}]", in(reg) p, options(nostack, preserves_flags, readonly));
        }
    }
    // (Miri cannot run inline assembly: a prefetch is only a hint, so under
    // Miri it is nothing.)
    #[cfg(any(loom, miri, not(any(target_arch = "x86_64", target_arch = "aarch64"))))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_is_only_a_hint() {
        let mut v = vec![7u64; 64];
        for x in &v {
            prefetch_write(x);
            prefetch_read(x);
        }
        // One past the end and null are fine too: a prefetch never faults.
        prefetch_write(v.as_ptr().wrapping_add(64));
        prefetch_write(std::ptr::null::<u64>());
        prefetch_read(std::ptr::null::<u64>());
        v[3] = 9;
        assert_eq!(v.iter().sum::<u64>(), 7 * 63 + 9);
    }
}
