//! Unit tests of [`Outbound`] against a hand-built registry: no pool, no
//! worker threads. The test thread plays worker 0 (the sender) and, through
//! the consumers, every receiver.

use std::sync::atomic::Ordering::{Relaxed, Release};

use crossbeam_utils::CachePadded;

use super::pair::PairCounters;
use super::Outbound;
use crate::config::SharedPartitioner;
use crate::lockfree::inbox;
use crate::lockfree::ring::{self, Consumer};
use crate::lockfree::signal::Signal;
use crate::lockfree::sync::Arc;
use crate::partitioners::{key_hash, HashPartitioner};
use crate::placement::Slot;
use crate::shared::{InboundPair, Shared, WorkerShared};
use crate::{SendError, WorkerId};

/// Worker 0's outbound side in a registry of `workers` workers, and the
/// consuming ends of the rings `0 → dst`.
struct Mesh {
    out: Outbound<u64>,
    /// `rx[dst]` consumes the ring `0 → dst`.
    rx: Vec<Consumer<u64>>,
    shared: Arc<Shared<u64>>,
}

impl Mesh {
    fn new(workers: usize, ring_capacity: usize, overflow_limit: Option<usize>) -> Mesh {
        let mut producers = Vec::new();
        let mut pairs = Vec::new();
        let mut rx = Vec::new();
        let mut registry = Vec::new();
        for _dst in 0..workers {
            // `src → dst` for every src; only src 0 is driven by the test.
            let inbound: Box<[InboundPair<u64>]> = (0..workers)
                .map(|src| {
                    let (p, c) = ring::ring(ring_capacity);
                    let pair = InboundPair {
                        ring: c.shared_ring(),
                        counters: Arc::new(CachePadded::new(PairCounters::default())),
                    };
                    if src == 0 {
                        producers.push(p);
                        pairs.push(pair.counters.clone());
                        rx.push(c);
                    }
                    pair
                })
                .collect();
            let (inbox, _) = inbox::inbox(1);
            registry.push(WorkerShared::new(
                Signal::new(std::thread::current()),
                inbox,
                inbound,
                Slot::UNPINNED,
            ));
        }
        let shared = Arc::new(Shared::new(
            registry.into_boxed_slice(),
            SharedPartitioner::new(HashPartitioner),
        ));
        let out = Outbound::new(0, producers, pairs, shared.clone(), overflow_limit);
        Mesh { out, rx, shared }
    }

    /// One loop iteration of the sender: overflow into the rings, publish.
    fn iterate(&mut self) {
        self.out.refresh_peers();
        self.out.flush_overflow();
        self.out.flush();
    }

    /// Everything published so far on `0 → dst`.
    fn drain(&mut self, dst: usize) -> Vec<u64> {
        let mut got = Vec::new();
        self.rx[dst].pop_batch(1024, |m| got.push(m));
        got
    }

    /// `(sent, full, overflowed)` of the pair `0 → dst`.
    fn counters(&self, dst: usize) -> (u64, u64, u64) {
        let c = &self.shared.workers[dst].inbound[0].counters;
        (c.sent.get(), c.full.get(), c.overflowed.get())
    }

    /// Marks `peer` failed, as its runtime does.
    fn fail(&self, peer: usize) {
        self.shared.workers[peer].failed.store(true, Release);
        self.shared.failures.fetch_add(1, Release);
    }
}

#[test]
fn staged_sends_become_visible_at_flush() {
    let mut m = Mesh::new(2, 8, None);
    m.out.send_to(1, 10).unwrap();
    m.out.send_to(1, 11).unwrap();
    assert_eq!(m.drain(1), [] as [u64; 0], "staged, not published");
    assert_eq!(m.counters(1).0, 0, "sent is stored at publish");
    m.out.flush();
    assert_eq!(m.drain(1), [10, 11]);
    assert_eq!(m.counters(1), (2, 0, 0));
    assert!(!m.out.has_overflow());
}

#[test]
fn sending_to_itself_uses_its_own_ring() {
    let mut m = Mesh::new(2, 4, None);
    m.out.send_to(0, 7).unwrap();
    m.out.flush();
    assert_eq!(m.drain(0), [7]);
    assert_eq!(m.drain(1), [] as [u64; 0]);
}

#[test]
fn full_ring_spills_into_overflow_in_fifo_order() {
    let mut m = Mesh::new(2, 2, None);
    for i in 0..10 {
        m.out.send_to(1, i).unwrap();
    }
    assert!(m.out.has_overflow());
    // The ring filled at the third send: what was staged is published at
    // once so the peer can drain it, and the rest waits in the overflow.
    assert_eq!(m.counters(1), (10, 1, 8));
    assert_eq!(m.drain(1), [0, 1]);
    // Each iteration moves what fits; the order per pair holds, also for
    // sends made while older messages still wait.
    let mut got = vec![0, 1];
    let mut next = 10;
    while m.out.has_overflow() {
        m.iterate();
        got.extend(m.drain(1));
        if next < 14 {
            m.out.send_to(1, next).unwrap();
            next += 1;
        }
    }
    m.out.flush();
    got.extend(m.drain(1));
    assert_eq!(got, (0..next).collect::<Vec<_>>());
    let (sent, full, overflowed) = m.counters(1);
    assert_eq!(sent, next, "sent counts ring and overflow, once each");
    assert_eq!(full, 1, "only the send that found the ring full");
    assert!(overflowed >= 8, "queued behind the overflow counts too");
    // With the overflow empty, sends take the fast path again.
    m.out.send_to(1, 99).unwrap();
    m.out.flush();
    assert_eq!(m.drain(1), [99]);
    assert!(!m.out.has_overflow());
}

#[test]
fn overflow_is_per_pair() {
    let mut m = Mesh::new(3, 2, None);
    for i in 0..4 {
        m.out.send_to(1, i).unwrap();
    }
    assert!(m.out.has_overflow());
    m.out.send_to(2, 100).unwrap();
    m.out.flush();
    assert_eq!(m.drain(2), [100], "a full pair does not hold up another");
    assert_eq!(m.counters(2), (1, 0, 0));
}

#[test]
fn overflow_limit_refuses_and_hands_the_message_back() {
    let mut m = Mesh::new(2, 2, Some(2));
    for i in 0..4 {
        m.out.send_to(1, i).unwrap(); // 2 in the ring, 2 in the overflow
    }
    assert_eq!(m.out.send_to(1, 4), Err(SendError::Full(4)));
    assert_eq!(m.counters(1), (4, 2, 2), "the refused send counts in full");
    // A batch that does not fit is refused whole, left in order.
    let mut batch = vec![5, 6];
    assert_eq!(m.out.send_batch(1, &mut batch), Err(SendError::Full(())));
    assert_eq!(batch, [5, 6]);
    assert_eq!(m.counters(1).1, 3);
    // Once the peer drains, the overflow moves and there is room again.
    assert_eq!(m.drain(1), [0, 1]);
    m.iterate();
    assert!(!m.out.has_overflow());
    assert_eq!(m.drain(1), [2, 3]);
    assert_eq!(m.out.send_batch(1, &mut batch), Ok(()));
    assert!(batch.is_empty());
    m.out.flush();
    assert_eq!(m.drain(1), [5, 6]);
    assert_eq!(m.counters(1), (6, 3, 2));
}

#[test]
fn send_batch_takes_what_fits_and_queues_the_rest() {
    let mut m = Mesh::new(2, 4, Some(3));
    let mut batch: Vec<u64> = (0..10).collect();
    // 4 fit the ring, 3 the overflow; the other 3 stay in the batch.
    assert_eq!(m.out.send_batch(1, &mut batch), Err(SendError::Full(())));
    assert_eq!(batch, [7, 8, 9]);
    assert_eq!(m.counters(1).0, 7);
    m.out.flush();
    assert_eq!(m.drain(1), [0, 1, 2, 3]);
    m.iterate();
    assert_eq!(m.drain(1), [4, 5, 6]);
    assert_eq!(m.out.send_batch(1, &mut batch), Ok(()));
    m.out.flush();
    assert_eq!(m.drain(1), [7, 8, 9]);
    // Full twice: the ring (spilling into the overflow), then the overflow
    // at its limit.
    assert_eq!(m.counters(1), (10, 2, 3));
}

#[test]
fn failed_peer_is_closed_from_the_next_refresh() {
    let mut m = Mesh::new(3, 4, None);
    m.fail(1);
    // Not refreshed yet: the fast path still accepts (the failed peer
    // drops and counts it, as it would one sent a moment earlier).
    assert_eq!(m.out.send_to(1, 1), Ok(()));
    m.out.refresh_peers();
    assert_eq!(m.out.send_to(1, 2), Err(SendError::Closed(2)));
    let mut batch = vec![3, 4];
    assert_eq!(m.out.send_batch(1, &mut batch), Err(SendError::Closed(())));
    assert_eq!(batch, [3, 4]);
    // The other peers are unaffected.
    assert_eq!(m.out.send_to(2, 5), Ok(()));
    m.out.flush();
    assert_eq!(m.drain(2), [5]);
}

#[test]
fn refused_sends_hand_the_message_back() {
    let mut m = Mesh::new(2, 4, None);
    assert_eq!(m.out.send_to(2, 1), Err(SendError::NoSuchWorker(1)));
    let mut batch = vec![2];
    assert_eq!(
        m.out.send_batch(5, &mut batch),
        Err(SendError::NoSuchWorker(()))
    );
    assert_eq!(batch, [2]);
    m.out.close();
    assert_eq!(m.out.send_to(1, 3), Err(SendError::Closed(3)));
    assert_eq!(m.out.send_to(0, 4), Err(SendError::Closed(4)));
    assert!(!m.shared.workers[1].failed.load(Relaxed));
}

#[test]
fn keys_route_with_the_registry_partitioner() {
    let m = Mesh::new(4, 2, None);
    for key in 0..100u64 {
        let w = m.out.worker_for(&key);
        assert_eq!(w, m.shared.worker_for(key_hash(&key)));
        assert!(w < WorkerId::from(4));
    }
    assert_eq!(m.out.id(), WorkerId::from(0));
    assert_eq!(m.out.workers(), 4);
}
