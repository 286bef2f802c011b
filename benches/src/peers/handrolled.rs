//! The hand-rolled pool: what a user writes without shardpool — one pinned
//! thread per worker, each with a crossbeam-channel bounded inbox, keys
//! routed by the same hash. Peer of the keyed and the shuffle workloads.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{cpus, pin, Finish, Gate};
use crate::workloads::keyed::{time_keyed_stream, Tally, KEYS};
use crate::workloads::shuffle::{generate_bursts, BurstPeer, Shuf};

/// Keyed peer: the timing thread sends the keyed stream to 2 pinned
/// threads, each blocking in `recv` on its own bounded channel.
pub fn keyed_handrolled(n: u64) -> Duration {
    let (c0, c1) = cpus();
    let fin = Finish::new(2);
    let mut txs = Vec::new();
    let mut handles = Vec::new();
    for cpu in [c0, c1] {
        let (tx, rx) = crossbeam_channel::bounded::<(u64, u64)>(1024);
        txs.push(tx);
        let mut tally = Tally::new(fin.clone());
        handles.push(thread::spawn(move || {
            pin(cpu);
            while let Ok(msg) = rx.recv() {
                if !tally.take(msg) {
                    break;
                }
            }
            tally.total()
        }));
    }
    let dt = time_keyed_stream(n, &fin, |w, msg| txs[w].send(msg).unwrap());
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, n);
    dt
}

/// One hand-rolled shuffle worker: its inbox, every worker's sender, its
/// per-key counts.
struct HandShuf {
    rx: crossbeam_channel::Receiver<Shuf>,
    txs: Vec<crossbeam_channel::Sender<Shuf>>,
    map: HashMap<u64, u64>,
    ends: usize,
    batch: usize,
}

impl HandShuf {
    #[inline]
    fn handle(&mut self, m: Shuf) {
        match m {
            Shuf::Data(k, v) => *self.map.entry(k).or_default() += v,
            Shuf::End => self.ends += 1,
            _ => {}
        }
    }
}

impl BurstPeer for HandShuf {
    /// Handles up to `batch` queued messages; returns how many.
    fn drain(&mut self) -> usize {
        let mut n = 0;
        while n < self.batch {
            match self.rx.try_recv() {
                Ok(m) => {
                    self.handle(m);
                    n += 1;
                }
                Err(_) => break,
            }
        }
        n
    }

    /// Never blocks on a full peer (that could deadlock two workers sending
    /// to each other): drains its own inbox while waiting.
    fn send(&mut self, dst: usize, mut m: Shuf) {
        loop {
            match self.txs[dst].try_send(m) {
                Ok(()) => return,
                Err(crossbeam_channel::TrySendError::Full(back)) => {
                    m = back;
                    if self.drain() == 0 {
                        std::hint::spin_loop();
                    }
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
}

/// Shuffle peer: the hand-rolled pool doing the shuffle through its
/// channels (with `try_send`, draining its own inbox while a peer is full).
pub fn shuffle_handrolled(per_worker: u64) -> Duration {
    let (c0, c1) = cpus();
    let fin = Finish::new(2);
    let gate = Arc::new(Gate::default());
    let chans: Vec<_> = (0..2)
        .map(|_| crossbeam_channel::bounded::<Shuf>(1024))
        .collect();
    let txs: Vec<_> = chans.iter().map(|c| c.0.clone()).collect();
    let mut handles = Vec::new();
    for (me, cpu) in [c0, c1].into_iter().enumerate() {
        let mut w = HandShuf {
            rx: chans[me].1.clone(),
            txs: txs.clone(),
            map: HashMap::with_capacity(KEYS as usize),
            ends: 0,
            batch: shardpool::DEFAULT_BATCH_SIZE,
        };
        let (fin, gate) = (fin.clone(), gate.clone());
        handles.push(thread::spawn(move || {
            pin(cpu);
            gate.arrive_and_wait();
            generate_bursts(&mut w, me, per_worker, 2);
            while w.ends < 2 {
                let m = w.rx.recv().unwrap();
                w.handle(m);
            }
            fin.one_done();
            w.map.values().sum::<u64>()
        }));
    }
    drop(chans);
    gate.wait_ready(2);
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
    use super::*;

    #[test]
    fn both_count_everything() {
        if !crate::harness::tests::can_run() {
            return;
        }
        keyed_handrolled(5_000);
        shuffle_handrolled(3_000);
    }
}
