//! The operating-system calls of placement: the CPUs this process may use,
//! pinning the calling thread, and where it runs now. Everything else in
//! placement is plain data and pure functions.

/// The CPUs the calling thread may run on, sorted: its
/// `sched_getaffinity` mask, which already reflects `taskset` and the
/// cgroup cpuset of a container. Threads inherit this mask when spawned,
/// so called from the thread that starts the pool it is the set the
/// workers can use.
///
/// On other systems: the CPUs `core_affinity` reports. Where neither
/// answers: `0..available_parallelism`.
pub fn allowed_cpus() -> Vec<usize> {
    #[cfg(target_os = "linux")]
    let reported = linux_affinity();
    #[cfg(not(target_os = "linux"))]
    let reported = other_os_affinity();
    reported.unwrap_or_else(|| {
        (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect()
    })
}

/// The CPUs `core_affinity` reports, sorted and without duplicates.
#[cfg(not(target_os = "linux"))]
fn other_os_affinity() -> Option<Vec<usize>> {
    match core_affinity::get_core_ids() {
        Some(ids) if !ids.is_empty() => {
            let mut cpus: Vec<usize> = ids.into_iter().map(|c| c.id).collect();
            cpus.sort_unstable();
            cpus.dedup();
            Some(cpus)
        }
        _ => None,
    }
}

/// `sched_getaffinity(0)`, growing the mask past `CPU_SETSIZE` (1024) on
/// machines with more CPUs.
#[cfg(target_os = "linux")]
fn linux_affinity() -> Option<Vec<usize>> {
    const WORD_BITS: usize = u64::BITS as usize;
    let mut words = 1024 / WORD_BITS;
    loop {
        let mut mask = vec![0u64; words];
        let bytes = words * std::mem::size_of::<u64>();
        // SAFETY: `mask` is a live, writable, 8-byte-aligned buffer of
        // exactly `bytes` bytes; the kernel writes at most `bytes` bytes
        // into it (glibc zero-fills the rest). `cpu_set_t` is a plain array
        // of words, so the cast only tells libc where the buffer is. Pid 0
        // is the calling thread.
        let rc = unsafe { libc::sched_getaffinity(0, bytes, mask.as_mut_ptr().cast()) };
        if rc == 0 {
            let cpus = mask
                .iter()
                .enumerate()
                .flat_map(|(w, &bits)| {
                    (0..WORD_BITS)
                        .filter(move |b| bits & (1u64 << b) != 0)
                        .map(move |b| w * WORD_BITS + b)
                })
                .collect();
            return Some(cpus);
        }
        let too_small = std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL);
        if !too_small || words >= (1 << 16) {
            return None;
        }
        words *= 2;
    }
}

/// Pins the calling thread to OS CPU `cpu`. False when the OS refused
/// (the CPU is not allowed or does not exist) or the platform cannot pin;
/// never panics, whatever `cpu` is.
///
/// On Linux this calls `sched_setaffinity` with a mask sized for `cpu`
/// (`core_affinity` 0.8 aborts the process on an id ≥ 1024, the fixed
/// `cpu_set_t` size); elsewhere it uses `core_affinity`.
pub fn pin_current_thread(cpu: usize) -> bool {
    #[cfg(target_os = "linux")]
    {
        const WORD_BITS: usize = u64::BITS as usize;
        // Far beyond any kernel's NR_CPUS: the kernel would refuse anyway.
        if cpu >= (1 << 22) {
            return false;
        }
        // At least a whole `cpu_set_t`, as glibc's own callers pass.
        let words = (cpu / WORD_BITS + 1).max(1024 / WORD_BITS);
        let mut mask = vec![0u64; words];
        mask[cpu / WORD_BITS] |= 1u64 << (cpu % WORD_BITS);
        let bytes = words * std::mem::size_of::<u64>();
        // SAFETY: `mask` is a live, 8-byte-aligned buffer of exactly
        // `bytes` bytes that the kernel only reads; `cpu_set_t` is a plain
        // array of words, so the cast only tells libc where it is. Pid 0 is
        // the calling thread.
        let rc = unsafe { libc::sched_setaffinity(0, bytes, mask.as_ptr().cast()) };
        rc == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        core_affinity::set_for_current(core_affinity::CoreId { id: cpu })
    }
}

/// The CPU the calling thread is running on right now (`sched_getcpu`);
/// `None` where unsupported. Without pinning the answer may be stale by
/// the time it is read.
pub fn current_cpu() -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sched_getcpu takes no arguments, touches no memory of
        // ours and has no preconditions; it returns -1 on error, which
        // `try_from` turns into `None`.
        let cpu = unsafe { libc::sched_getcpu() };
        usize::try_from(cpu).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Affinity, NumaFill};
    use crate::placement::{plan, Topology};

    #[test]
    fn allowed_cpus_are_known_and_nonempty() {
        let allowed = allowed_cpus();
        assert!(!allowed.is_empty());
        assert!(
            allowed.windows(2).all(|w| w[0] < w[1]),
            "sorted, no duplicates"
        );
        let t = Topology::discover();
        for cpu in &allowed {
            assert!(
                t.cpu(*cpu).is_some(),
                "allowed CPU {cpu} missing from {t:?}"
            );
        }
        // The default plan works on any machine, 1 CPU included.
        let s = plan(
            &t,
            &allowed,
            &Affinity::PhysicalCores,
            NumaFill::Compact,
            None,
        )
        .unwrap();
        assert!(!s.is_empty() && s.len() <= allowed.len());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn pinning_moves_the_thread() {
        for cpu in allowed_cpus() {
            let seen = std::thread::spawn(move || {
                assert!(
                    pin_current_thread(cpu),
                    "could not pin to allowed CPU {cpu}"
                );
                // Pinning takes effect at once for the calling thread; yield
                // anyway so a stale sample cannot pass.
                std::thread::yield_now();
                (current_cpu(), allowed_cpus())
            })
            .join()
            .unwrap();
            assert_eq!(seen, (Some(cpu), vec![cpu]));
        }
    }

    #[test]
    fn pinning_to_a_cpu_that_does_not_exist_fails() {
        let before = allowed_cpus();
        let handle = std::thread::spawn(|| {
            let refused = [4095, 1 << 20, usize::MAX].map(pin_current_thread);
            (refused, allowed_cpus())
        });
        let (refused, after) = handle.join().unwrap();
        assert_eq!(refused, [false; 3]);
        assert_eq!(after, before, "a refused pin leaves the mask alone");
    }
}
