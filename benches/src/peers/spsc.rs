//! Lock-free queue peers with spinning ends: rtrb (an SPSC ring, with
//! push/pop and with its chunk API) and crossbeam `ArrayQueue` (MPMC), for
//! the mesh workload and (ArrayQueue) the inbox workload.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::Backoff;

use crate::harness::{cpus, run_threads, sum_to, ConsumerJob, Job};
use crate::workloads::inbox::share;

/// Times `n` `u64`s from CPU 0 to CPU 1 through a peer queue given as a
/// `push` that hands the value back when full and a `pop`; each side spins
/// while it cannot proceed. The consumer sums what it takes.
fn spsc_peer(
    n: u64,
    mut push: impl FnMut(u64) -> Result<(), u64> + Send + 'static,
    mut pop: impl FnMut() -> Option<u64> + Send + 'static,
) -> Duration {
    let (c0, c1) = cpus();
    let prod: Job = Box::new(move || {
        for i in 0..n {
            let mut v = i;
            while let Err(back) = push(v) {
                v = back;
                std::hint::spin_loop();
            }
        }
    });
    let cons: ConsumerJob = Box::new(move || {
        let mut sum = 0u64;
        let mut count = 0;
        while count < n {
            match pop() {
                Some(v) => {
                    sum = sum.wrapping_add(v);
                    count += 1;
                }
                None => std::hint::spin_loop(),
            }
        }
        sum
    });
    let (dt, sum) = run_threads(vec![(c0, prod)], (c1, cons));
    assert_eq!(sum, sum_to(n));
    dt
}

/// Mesh peer: rtrb with `push`/`pop` per message.
pub fn mesh_rtrb(n: u64, capacity: usize) -> Duration {
    let (mut p, mut c) = rtrb::RingBuffer::<u64>::new(capacity);
    spsc_peer(
        n,
        move |v| p.push(v).map_err(|rtrb::PushError::Full(back)| back),
        move || c.pop().ok(),
    )
}

/// Mesh peer: rtrb with its chunk API, each side taking all the slots it
/// can at once.
pub fn mesh_rtrb_chunks(n: u64, capacity: usize) -> Duration {
    let (c0, c1) = cpus();
    let (mut p, mut c) = rtrb::RingBuffer::<u64>::new(capacity);
    let prod: Job = Box::new(move || {
        let mut i = 0u64;
        while i < n {
            let want = (p.slots() as u64).min(n - i) as usize;
            if want == 0 {
                std::hint::spin_loop();
                continue;
            }
            let chunk = p.write_chunk_uninit(want).unwrap();
            let start = i;
            let written = chunk.fill_from_iter(start..start + want as u64);
            i += written as u64;
        }
    });
    let cons: ConsumerJob = Box::new(move || {
        let mut sum = 0u64;
        let mut count = 0u64;
        while count < n {
            let avail = c.slots();
            if avail == 0 {
                std::hint::spin_loop();
                continue;
            }
            let chunk = c.read_chunk(avail).unwrap();
            for v in chunk.into_iter() {
                sum = sum.wrapping_add(v);
            }
            count += avail as u64;
        }
        sum
    });
    let (dt, sum) = run_threads(vec![(c0, prod)], (c1, cons));
    assert_eq!(sum, sum_to(n));
    dt
}

/// rtrb with its chunk API or with push/pop.
pub fn mesh_rtrb_api(n: u64, capacity: usize, chunks: bool) -> Duration {
    if chunks {
        mesh_rtrb_chunks(n, capacity)
    } else {
        mesh_rtrb(n, capacity)
    }
}

/// Mesh peer: crossbeam `ArrayQueue`, both ends spinning.
pub fn mesh_arrayqueue(n: u64, capacity: usize) -> Duration {
    let q = Arc::new(crossbeam_queue::ArrayQueue::<u64>::new(capacity));
    let qp = q.clone();
    spsc_peer(n, move |v| qp.push(v), move || q.pop())
}

/// Inbox peer: `producers` threads (CPU 0) push into one crossbeam
/// `ArrayQueue` (backing off while it is full), one consumer (CPU 1) spins
/// on `pop`.
pub fn inbox_arrayqueue(n: u64, producers: usize, capacity: usize) -> Duration {
    let (c0, c1) = cpus();
    let q = Arc::new(crossbeam_queue::ArrayQueue::<u64>::new(capacity));
    let prods = (0..producers)
        .map(|p| {
            let q = q.clone();
            let job: Job = Box::new(move || {
                for v in share(p, producers, n) {
                    let backoff = Backoff::new();
                    let mut v = v;
                    while let Err(back) = q.push(v) {
                        v = back;
                        backoff.snooze();
                    }
                }
            });
            (c0, job)
        })
        .collect();
    let cons: ConsumerJob = Box::new(move || {
        let (mut sum, mut count) = (0u64, 0u64);
        while count < n {
            match q.pop() {
                Some(v) => {
                    sum = sum.wrapping_add(v);
                    count += 1;
                }
                None => std::hint::spin_loop(),
            }
        }
        sum
    });
    let (dt, sum) = run_threads(prods, (c1, cons));
    assert_eq!(sum, sum_to(n));
    dt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_peer_delivers_everything() {
        if !crate::harness::tests::can_run() {
            return;
        }
        mesh_rtrb_api(5_000, 16, false);
        mesh_rtrb_api(5_000, 16, true);
        mesh_arrayqueue(5_000, 16);
        inbox_arrayqueue(5_000, 2, 16);
    }
}
