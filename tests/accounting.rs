//! Exact accounting: every message handled exactly once, FIFO per
//! (sender, receiver), across the overflow path and across `shutdown`.

mod common;

use common::watchdog;
use shardpool::prelude::*;

/// A message that records where it came from and how many hops are left.
#[derive(Debug, Clone, Copy)]
struct Msg {
    /// The external producer (or `u32::MAX` for a worker-originated one).
    origin: u32,
    /// Sequence number per origin.
    seq: u64,
    /// Hops still to make through the mesh.
    hops: u32,
    /// The worker that sent this message (`u32::MAX`: an external thread).
    from: u32,
    /// Sequence number per (from, to) pair, set by the sender.
    pair_seq: u64,
}

/// Forwards messages along the mesh, and checks FIFO per (sender, receiver).
struct Hopper {
    /// Next expected `pair_seq` from each worker.
    expect_from_worker: Vec<u64>,
    /// Next expected `seq` from each external producer.
    expect_from_external: Vec<u64>,
    /// Next `pair_seq` to stamp on a message to each worker.
    next_to: Vec<u64>,
    /// Messages whose last hop ended here, by origin.
    finished: Vec<u64>,
    handled: u64,
}

impl Hopper {
    fn new(workers: usize, producers: usize) -> Self {
        Hopper {
            expect_from_worker: vec![0; workers],
            expect_from_external: vec![0; producers],
            next_to: vec![0; workers],
            finished: vec![0; producers],
            handled: 0,
        }
    }
}

impl Worker for Hopper {
    type Msg = Msg;
    fn handle(&mut self, mut m: Msg, ctx: &mut Context<'_, Msg>) {
        self.handled += 1;
        if m.from == u32::MAX {
            let o = m.origin as usize;
            assert_eq!(
                m.pair_seq, self.expect_from_external[o],
                "FIFO from producer {o}"
            );
            self.expect_from_external[o] += 1;
        } else {
            let f = m.from as usize;
            assert_eq!(
                m.pair_seq, self.expect_from_worker[f],
                "FIFO from worker {f}"
            );
            self.expect_from_worker[f] += 1;
        }
        if m.hops == 0 {
            self.finished[m.origin as usize] += 1;
            return;
        }
        m.hops -= 1;
        // Pseudo-random next hop (self included).
        let next = ((m.seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 7) as usize + m.hops as usize)
            % ctx.workers();
        m.from = usize::from(ctx.id()) as u32;
        m.pair_seq = self.next_to[next];
        self.next_to[next] += 1;
        ctx.send_to(WorkerId::from(next), m)
            .expect("worker-to-worker sends never fail in a running pool");
    }
}

fn run(workers: usize, producers: usize, per_producer: u64, hops: u32, ring: usize, inbox: usize) {
    let config = PoolConfig::default()
        .workers(workers)
        .affinity(Affinity::None)
        .ring_capacity(ring)
        .inbox_capacity(inbox)
        .batch_size(3);
    let pool = Pool::start(config, move |_| Hopper::new(workers, producers)).unwrap();
    let threads: Vec<_> = (0..producers)
        .map(|p| {
            let tx = pool.sender();
            std::thread::spawn(move || {
                // Each producer spreads its messages over the workers,
                // numbering them per (producer, worker) pair.
                let mut next = vec![0u64; workers];
                for seq in 0..per_producer {
                    let target = (p + seq as usize) % workers;
                    let pair_seq = next[target];
                    next[target] += 1;
                    tx.send_to(
                        WorkerId::from(target),
                        Msg {
                            origin: p as u32,
                            seq,
                            hops,
                            from: u32::MAX,
                            pair_seq,
                        },
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Shut down while messages are still hopping through the mesh.
    let ws = pool.shutdown().unwrap();
    let handled: u64 = ws.iter().map(|w| w.handled).sum();
    let expected = producers as u64 * per_producer * (hops as u64 + 1);
    assert_eq!(handled, expected, "every message handled exactly once");
    for p in 0..producers {
        let finished: u64 = ws.iter().map(|w| w.finished[p]).sum();
        assert_eq!(
            finished, per_producer,
            "every message of producer {p} finished"
        );
    }
}

#[test]
fn overflow_path_with_two_slot_rings() {
    watchdog(120, || run(3, 3, 2_000, 8, 2, 4));
}

#[test]
fn more_workers_than_cpus() {
    watchdog(120, || run(6, 2, 1_000, 5, 2, 2));
}

#[test]
fn roomy_rings() {
    watchdog(120, || run(2, 4, 5_000, 3, 1024, 1024));
}

/// Shutdown right after sending: the last messages are still in inboxes and
/// rings when shutdown begins.
#[test]
fn shutdown_while_hopping() {
    watchdog(120, || {
        for round in 0..20 {
            run(2 + round % 3, 1, 200, 20, 2, 2);
        }
    });
}

/// The stats agree with what the workers saw.
#[test]
fn stats_account_for_every_message() {
    watchdog(120, || {
        let workers = 2;
        let config = PoolConfig::default()
            .workers(workers)
            .affinity(Affinity::None)
            .ring_capacity(2);
        let pool = Pool::start(config, move |_| Hopper::new(workers, 1)).unwrap();
        let tx = pool.sender();
        for seq in 0..1000 {
            tx.send_to(
                WorkerId::from(0),
                Msg {
                    origin: 0,
                    seq,
                    hops: 4,
                    from: u32::MAX,
                    pair_seq: seq,
                },
            )
            .unwrap();
        }
        // Wait until everything has been handled (no timing assumption).
        while pool.stats().handled() < 5000 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let stats = pool.stats();
        assert_eq!(stats.channels.len(), workers + workers * workers);
        let inbox0 = stats
            .channel(Endpoint::External, WorkerId::from(0))
            .unwrap();
        assert_eq!(inbox0.sent, 1000);
        assert_eq!(inbox0.received, 1000);
        assert_eq!(inbox0.depth, 0);
        let ring_sent: u64 = stats
            .channels
            .iter()
            .filter(|c| c.from != Endpoint::External)
            .map(|c| c.sent)
            .sum();
        assert_eq!(ring_sent, 4000);
        for c in &stats.channels {
            assert_eq!(c.sent, c.received, "{c:?}");
            assert_eq!(c.depth, 0);
            assert!(c.capacity.is_power_of_two());
        }
        let text = stats.to_string();
        assert!(text.contains("overflowed") && text.contains("w1"), "{text}");
        let ws = pool.shutdown().unwrap();
        assert_eq!(ws.iter().map(|w| w.handled).sum::<u64>(), 5000);
    });
}
