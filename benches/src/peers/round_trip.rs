//! Round-trip peers: the floor (one cache-padded atomic bounced between the
//! two CPUs) and a bare Lamport queue each way (rtrb), timed per round trip
//! the way [`crate::workloads::latency`] times shardpool's.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Release};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crossbeam_utils::CachePadded;

use crate::harness::{cpus, run_threads, ConsumerJob, Job};

/// Times `rtts` request/response round trips between the two benchmark
/// CPUs: `serve(i)` answers the i-th request on CPU 1; `ask(i)` sends it
/// and waits for the answer on CPU 0, timed with `Instant` per round trip.
fn timed_round_trips(
    rtts: usize,
    mut serve: impl FnMut(u64) + Send + 'static,
    mut ask: impl FnMut(u64) + Send + 'static,
) -> Vec<u32> {
    let (c0, c1) = cpus();
    let ponger: Job = Box::new(move || (0..rtts as u64).for_each(&mut serve));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let s2 = samples.clone();
    let pinger: ConsumerJob = Box::new(move || {
        let mut v = Vec::with_capacity(rtts);
        for i in 0..rtts as u64 {
            let t = Instant::now();
            ask(i);
            v.push(t.elapsed().as_nanos() as u32);
        }
        *s2.lock().unwrap() = v;
        0
    });
    run_threads(vec![(c1, ponger)], (c0, pinger));
    let v = std::mem::take(&mut *samples.lock().unwrap());
    v
}

/// The same request/response over two rtrb rings (a bare Lamport queue
/// each way, both threads spinning): what the ring structure alone costs
/// over the floor, without any runtime around it.
pub fn rtt_rtrb(rtts: usize) -> Vec<u32> {
    let (mut ping_tx, mut ping_rx) = rtrb::RingBuffer::<u64>::new(1024);
    let (mut pong_tx, mut pong_rx) = rtrb::RingBuffer::<u64>::new(1024);
    timed_round_trips(
        rtts,
        move |_| {
            let v = loop {
                match ping_rx.pop() {
                    Ok(v) => break v,
                    Err(_) => std::hint::spin_loop(),
                }
            };
            pong_tx.push(v).expect("pong ring has room");
        },
        move |i| {
            ping_tx.push(i).expect("ping ring has room");
            while pong_rx.pop().is_err() {
                std::hint::spin_loop();
            }
        },
    )
}

/// The floor: one cache-padded atomic bounced between the same two CPUs,
/// timed per round trip the same way.
pub fn rtt_floor(rtts: usize) -> Vec<u32> {
    let flag = Arc::new(CachePadded::new(AtomicU64::new(0)));
    let f1 = flag.clone();
    timed_round_trips(
        rtts,
        move |i| {
            while f1.load(Acquire) != 2 * i + 1 {
                std::hint::spin_loop();
            }
            f1.store(2 * i + 2, Release);
        },
        move |i| {
            flag.store(2 * i + 1, Release);
            while flag.load(Acquire) != 2 * i + 2 {
                std::hint::spin_loop();
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sample_per_round_trip() {
        if !crate::harness::tests::can_run() {
            return;
        }
        assert_eq!(rtt_floor(200).len(), 200);
        assert_eq!(rtt_rtrb(200).len(), 200);
    }
}
