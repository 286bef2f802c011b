//! Round-trip peers: the floor (one cache-padded atomic bounced between the
//! two CPUs) and a bare Lamport queue each way (rtrb), timed per round trip
//! the way [`crate::workloads::latency`] times shardpool's. The rtrb round
//! trip also runs on two pool workers' threads ([`rtt_rtrb_in_pool`]), so
//! a gap between shardpool and rtrb can be told apart from what the pool's
//! threads (pinning, placement, allocation on the worker's thread) cost.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Release};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crossbeam_utils::CachePadded;

use shardpool::prelude::*;

use crate::harness::{cpus, pool_config, run_threads, ConsumerJob, Job, Latch};

/// `ask(i)` for `i` in `0..rtts`, each timed with `Instant`: nanoseconds
/// per round trip.
fn time_asks(rtts: usize, mut ask: impl FnMut(u64)) -> Vec<u32> {
    let mut v = Vec::with_capacity(rtts);
    for i in 0..rtts as u64 {
        let t = Instant::now();
        ask(i);
        v.push(t.elapsed().as_nanos() as u32);
    }
    v
}

/// Times `rtts` request/response round trips between the two benchmark
/// CPUs: `serve(i)` answers the i-th request on CPU 1; `ask(i)` sends it
/// and waits for the answer on CPU 0, timed with `Instant` per round trip.
fn timed_round_trips(
    rtts: usize,
    mut serve: impl FnMut(u64) + Send + 'static,
    ask: impl FnMut(u64) + Send + 'static,
) -> Vec<u32> {
    let (c0, c1) = cpus();
    let ponger: Job = Box::new(move || (0..rtts as u64).for_each(&mut serve));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let s2 = samples.clone();
    let pinger: ConsumerJob = Box::new(move || {
        *s2.lock().unwrap() = time_asks(rtts, ask);
        0
    });
    run_threads(vec![(c1, ponger)], (c0, pinger));
    let v = std::mem::take(&mut *samples.lock().unwrap());
    v
}

/// The two ends of an rtrb request/response: `serve(i)` waits for the
/// i-th request and answers it, `ask(i)` sends it and waits for the
/// answer. A bare Lamport queue each way, both sides spinning.
fn rtrb_ends() -> (
    impl FnMut(u64) + Send + 'static,
    impl FnMut(u64) + Send + 'static,
) {
    let (mut ping_tx, mut ping_rx) = rtrb::RingBuffer::<u64>::new(1024);
    let (mut pong_tx, mut pong_rx) = rtrb::RingBuffer::<u64>::new(1024);
    let serve = move |_| {
        let v = loop {
            match ping_rx.pop() {
                Ok(v) => break v,
                Err(_) => std::hint::spin_loop(),
            }
        };
        pong_tx.push(v).expect("pong ring has room");
    };
    let ask = move |i| {
        ping_tx.push(i).expect("ping ring has room");
        while pong_rx.pop().is_err() {
            std::hint::spin_loop();
        }
    };
    (serve, ask)
}

/// The same request/response over two rtrb rings between two spinning
/// threads: what the ring structure alone costs over the floor, without
/// any runtime around it.
pub fn rtt_rtrb(rtts: usize) -> Vec<u32> {
    let (serve, ask) = rtrb_ends();
    timed_round_trips(rtts, serve, ask)
}

/// One side of [`rtt_rtrb_in_pool`]: the loop a worker runs in `on_start`.
type Side = Box<dyn FnOnce() + Send>;

/// A worker whose `on_start` runs its side of the rtrb round trip to the
/// end; it never receives a message.
struct SideWorker(Option<Side>);

impl Worker for SideWorker {
    type Msg = ();
    fn handle(&mut self, _: (), _: &mut Context<'_, ()>) {}
    fn on_start(&mut self, _: &mut Context<'_, ()>) {
        if let Some(side) = self.0.take() {
            side();
        }
    }
}

/// [`rtt_rtrb`] run by two pool workers (worker 0 asks, worker 1 serves),
/// each inside its `on_start`: the same rings and loops on the threads the
/// pool starts, pins and places. If this matches [`rtt_rtrb`], the pool's
/// threads are not what separates shardpool's round trip from rtrb's.
pub fn rtt_rtrb_in_pool(rtts: usize) -> Vec<u32> {
    let (c0, c1) = cpus();
    let (mut serve, ask) = rtrb_ends();
    let samples = Arc::new(Mutex::new(Vec::new()));
    let latch = Latch::new();
    let (s2, l2) = (samples.clone(), latch.clone());
    let asker: Side = Box::new(move || {
        *s2.lock().unwrap() = time_asks(rtts, ask);
        l2.set();
    });
    let server: Side = Box::new(move || (0..rtts as u64).for_each(&mut serve));
    let sides = Mutex::new([Some(asker), Some(server)]);
    let pool = Pool::start(pool_config(vec![c0, c1]), move |id| {
        SideWorker(sides.lock().unwrap()[id.index()].take())
    })
    .expect("pool start");
    latch.wait();
    pool.shutdown().expect("shutdown");
    let v = std::mem::take(&mut *samples.lock().unwrap());
    v
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
        assert_eq!(rtt_rtrb_in_pool(200).len(), 200);
    }
}
