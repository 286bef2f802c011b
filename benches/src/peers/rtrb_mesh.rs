//! The shuffle on a hand-rolled mesh of rtrb rings: what shardpool's mesh
//! is, with no framework around it. One pinned thread per worker, one rtrb
//! ring per ordered pair (`rings[src][dst]`, a worker's ring to itself
//! included), both directions at once. A worker generates a burst, pushes
//! each message into the owner's ring (draining its own inbound rings while
//! a ring is full, so two workers cannot deadlock), then drains.
//!
//! The same work as [`crate::workloads::shuffle`]: the same key stream,
//! routing, bursts, `End` protocol and per-key counts.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rtrb::{Consumer, Producer, RingBuffer};

use crate::harness::{cpus, pin, Finish, Gate};
use crate::workloads::keyed::KEYS;
use crate::workloads::shuffle::{generate_bursts, BurstPeer, Shuf};

/// One worker of the rtrb mesh: a producer per destination, a consumer per
/// source, its per-key counts.
struct MeshWorker {
    tx: Vec<Producer<Shuf>>,
    rx: Vec<Consumer<Shuf>>,
    map: HashMap<u64, u64>,
    ends: usize,
    batch: usize,
}

impl MeshWorker {
    #[inline]
    fn handle(&mut self, m: Shuf) {
        match m {
            Shuf::Data(k, v) => *self.map.entry(k).or_default() += v,
            Shuf::End => self.ends += 1,
            _ => {}
        }
    }
}

impl BurstPeer for MeshWorker {
    /// Pops up to `batch` messages from each inbound ring.
    fn drain(&mut self) -> usize {
        let mut n = 0;
        for src in 0..self.rx.len() {
            for _ in 0..self.batch {
                match self.rx[src].pop() {
                    Ok(m) => {
                        self.handle(m);
                        n += 1;
                    }
                    Err(_) => break,
                }
            }
        }
        n
    }

    /// Drains its own rings while `dst` is full.
    fn send(&mut self, dst: usize, mut m: Shuf) {
        loop {
            match self.tx[dst].push(m) {
                Ok(()) => return,
                Err(rtrb::PushError::Full(back)) => {
                    m = back;
                    if self.drain() == 0 {
                        std::hint::spin_loop();
                    }
                }
            }
        }
    }
}

/// Each of 2 pinned threads generates `per_worker` keyed messages and
/// pushes each into the ring of the worker that owns its key (half to
/// itself), over rings of shardpool's default capacity.
pub fn shuffle_rtrb_mesh(per_worker: u64) -> Duration {
    const WORKERS: usize = 2;
    let (c0, c1) = cpus();
    let capacity = shardpool::DEFAULT_CAPACITY;
    // rings[src][dst]
    let mut producers: Vec<Vec<Producer<Shuf>>> = (0..WORKERS).map(|_| Vec::new()).collect();
    let mut consumers: Vec<Vec<Consumer<Shuf>>> = (0..WORKERS).map(|_| Vec::new()).collect();
    for tx in producers.iter_mut() {
        for rx in consumers.iter_mut() {
            let (p, c) = RingBuffer::new(capacity);
            tx.push(p);
            rx.push(c);
        }
    }
    let fin = Finish::new(WORKERS);
    let gate = Arc::new(Gate::default());
    let mut handles = Vec::new();
    for (me, (tx, rx)) in producers.into_iter().zip(consumers).enumerate() {
        let cpu = [c0, c1][me];
        let mut w = MeshWorker {
            tx,
            rx,
            map: HashMap::with_capacity(KEYS as usize),
            ends: 0,
            batch: shardpool::DEFAULT_BATCH_SIZE,
        };
        let (fin, gate) = (fin.clone(), gate.clone());
        // Named, so a profile tells its threads from the other peers'.
        let builder = thread::Builder::new().name(format!("rtrb-mesh-{me}"));
        handles.push(
            builder
                .spawn(move || {
                    pin(cpu);
                    gate.arrive_and_wait();
                    generate_bursts(&mut w, me, per_worker, WORKERS);
                    while w.ends < WORKERS {
                        if w.drain() == 0 {
                            std::hint::spin_loop();
                        }
                    }
                    fin.one_done();
                    w.map.values().sum::<u64>()
                })
                .expect("spawn a mesh thread"),
        );
    }
    gate.wait_ready(WORKERS);
    let t0 = Instant::now();
    gate.open();
    fin.wait();
    let dt = t0.elapsed();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, 2 * per_worker);
    dt
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_everything() {
        if !crate::harness::tests::can_run() {
            return;
        }
        super::shuffle_rtrb_mesh(3_000);
    }
}
