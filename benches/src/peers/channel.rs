//! Channel peers with blocking ends: crossbeam-channel and flume `bounded`,
//! for the mesh workload (crossbeam-channel) and the inbox workload (both).

use std::time::Duration;

use crate::harness::{cpus, run_threads, sum_to, ConsumerJob, Job};
use crate::workloads::inbox::share;

/// Mesh peer: one producer (CPU 0) → one consumer (CPU 1) through a
/// crossbeam-channel `bounded`.
pub fn mesh_crossbeam_channel(n: u64, capacity: usize) -> Duration {
    let (c0, c1) = cpus();
    let (tx, rx) = crossbeam_channel::bounded::<u64>(capacity);
    let prod: Job = Box::new(move || {
        for i in 0..n {
            tx.send(i).unwrap();
        }
    });
    let cons: ConsumerJob = Box::new(move || {
        let mut sum = 0u64;
        for _ in 0..n {
            sum = sum.wrapping_add(rx.recv().unwrap());
        }
        sum
    });
    let (dt, sum) = run_threads(vec![(c0, prod)], (c1, cons));
    assert_eq!(sum, sum_to(n));
    dt
}

/// `producers` threads (CPU 0) → 1 consumer (CPU 1) through a bounded
/// channel, given as its two ends and how to send and receive on them.
fn inbox_channel<S, R>(
    n: u64,
    producers: usize,
    (tx, rx): (S, R),
    send: fn(&S, u64),
    recv: fn(&R) -> u64,
) -> Duration
where
    S: Clone + Send + 'static,
    R: Send + 'static,
{
    let (c0, c1) = cpus();
    let prods = (0..producers)
        .map(|p| {
            let tx = tx.clone();
            let job: Job = Box::new(move || {
                for v in share(p, producers, n) {
                    send(&tx, v);
                }
            });
            (c0, job)
        })
        .collect();
    drop(tx);
    let cons: ConsumerJob = Box::new(move || {
        let mut sum = 0u64;
        for _ in 0..n {
            sum = sum.wrapping_add(recv(&rx));
        }
        sum
    });
    let (dt, sum) = run_threads(prods, (c1, cons));
    assert_eq!(sum, sum_to(n));
    dt
}

/// Inbox peer: crossbeam-channel `bounded`.
pub fn inbox_crossbeam_channel(n: u64, producers: usize, capacity: usize) -> Duration {
    inbox_channel(
        n,
        producers,
        crossbeam_channel::bounded::<u64>(capacity),
        |tx, v| tx.send(v).unwrap(),
        |rx| rx.recv().unwrap(),
    )
}

/// Inbox peer: flume `bounded`.
pub fn inbox_flume(n: u64, producers: usize, capacity: usize) -> Duration {
    inbox_channel(
        n,
        producers,
        flume::bounded::<u64>(capacity),
        |tx, v| tx.send(v).unwrap(),
        |rx| rx.recv().unwrap(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_peer_delivers_everything() {
        if !crate::harness::tests::can_run() {
            return;
        }
        mesh_crossbeam_channel(5_000, 16);
        inbox_crossbeam_channel(5_000, 2, 16);
        inbox_flume(5_000, 2, 16);
    }
}
