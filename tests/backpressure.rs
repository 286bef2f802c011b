//! Bounded memory by default (`PoolConfig::overflow_pause`): a handler that
//! fans each input out into 1,000 messages cannot pile them up without
//! limit; the messages queued in the pool stay within the documented bound
//!
//! ```text
//! N·inbox_capacity + N²·ring_capacity + N·(overflow_pause + batch_size·F)
//! ```
//!
//! while every message is still handled exactly once.
//!
//! CI runs 2 M messages; `SHARDPOOL_BACKPRESSURE_MESSAGES=20000000 cargo
//! test --release --test backpressure` runs the issue's full 20 M.

mod common;

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::Duration;

use common::watchdog;
use shardpool::prelude::*;

const FAN_OUT: u32 = 1000;

#[derive(Clone, Copy)]
enum Msg {
    /// From outside: send `FAN_OUT` leaves, alternating over the workers.
    Fan(u32),
    /// Leaf number `input * FAN_OUT + j`.
    Leaf(u32),
}

/// Marks each leaf it handles in a bitset (and notes a second visit).
struct Fanner {
    seen: Vec<u64>,
    twice: u64,
}

impl Worker for Fanner {
    type Msg = Msg;
    fn handle(&mut self, msg: Msg, ctx: &mut Context<'_, Msg>) {
        match msg {
            Msg::Fan(input) => {
                let n = ctx.workers();
                for j in 0..FAN_OUT {
                    let peer = WorkerId::from(j as usize % n);
                    ctx.send_to(peer, Msg::Leaf(input * FAN_OUT + j)).unwrap();
                }
            }
            Msg::Leaf(id) => {
                let (word, bit) = (id as usize / 64, 1u64 << (id % 64));
                if self.seen[word] & bit != 0 {
                    self.twice += 1;
                }
                self.seen[word] |= bit;
            }
        }
    }
}

fn total_messages() -> u32 {
    std::env::var("SHARDPOOL_BACKPRESSURE_MESSAGES")
        .ok()
        .map(|v| {
            v.parse()
                .expect("SHARDPOOL_BACKPRESSURE_MESSAGES: a number")
        })
        .unwrap_or(2_000_000)
}

#[test]
fn queued_messages_stay_within_the_documented_bound_with_a_fan_out_of_1000() {
    watchdog(600, || {
        let inputs = total_messages().div_ceil(FAN_OUT);
        let leaves = inputs as usize * FAN_OUT as usize;
        let workers = 2;
        // The defaults: nothing about the pause is configured here.
        let config = PoolConfig::default()
            .workers(workers)
            .affinity(Affinity::None);
        let (n, cin, cring) = (
            workers,
            config.get_inbox_capacity(),
            config.get_ring_capacity(),
        );
        let (pause, batch) = (config.get_overflow_pause(), shardpool::DEFAULT_BATCH_SIZE);
        let bound = n * cin + n * n * cring + n * (pause + batch * FAN_OUT as usize);
        let words = leaves.div_ceil(64);
        let pool = Pool::start(config, move |_| Fanner {
            seen: vec![0; words],
            twice: 0,
        })
        .unwrap();
        let done = AtomicBool::new(false);
        let (peak, peak_overflow, samples) = std::thread::scope(|s| {
            let sampler = s.spawn(|| {
                let (mut peak, mut peak_overflow, mut samples) = (0, 0, 0u64);
                while !done.load(SeqCst) {
                    let stats = pool.stats();
                    peak = peak.max(stats.depth());
                    let overflow: u64 = stats.workers.iter().map(|w| w.overflow_queued).sum();
                    peak_overflow = peak_overflow.max(overflow);
                    samples += 1;
                    std::thread::sleep(Duration::from_micros(500));
                }
                (peak, peak_overflow, samples)
            });
            let tx = pool.sender();
            for input in 0..inputs {
                // Waits while the inbox is full: that is the backpressure.
                tx.send_to(WorkerId::from(input as usize % n), Msg::Fan(input))
                    .unwrap();
            }
            while pool.stats().handled() < u64::from(inputs) + leaves as u64 {
                std::thread::sleep(Duration::from_millis(1));
            }
            done.store(true, SeqCst);
            sampler.join().unwrap()
        });
        let stats = pool.stats();
        let ws = pool.shutdown().unwrap();
        eprintln!(
            "{leaves} leaves: peak queued {peak} (in overflow {peak_overflow}) over {samples} \
             samples; bound {bound}"
        );
        assert!(
            peak <= bound,
            "queued {peak} > documented bound {bound}\n{stats}"
        );
        // Exactly once: no leaf twice on a worker, none on two workers,
        // every one somewhere.
        assert!(ws.iter().all(|w| w.twice == 0));
        let mut count = 0u64;
        for i in 0..words {
            let (a, b) = (ws[0].seen[i], ws[1].seen[i]);
            assert_eq!(a & b, 0, "a leaf handled by both workers");
            count += u64::from((a | b).count_ones());
        }
        assert_eq!(count, leaves as u64);
        assert_eq!(stats.handled(), u64::from(inputs) + leaves as u64);
    });
}

/// Pauses only the inbox: a worker whose overflow is over the threshold
/// still drains its rings, so two workers flooding each other finish.
#[test]
fn two_workers_flooding_each_other_with_a_zero_pause_still_finish() {
    watchdog(120, || {
        let config = PoolConfig::default()
            .workers(2)
            .affinity(Affinity::None)
            .queue_capacity(4)
            .overflow_pause(0);
        let pool = Pool::start(config, |_| Fanner {
            seen: vec![0; (200 * FAN_OUT as usize).div_ceil(64)],
            twice: 0,
        })
        .unwrap();
        let tx = pool.sender();
        for input in 0..200 {
            tx.send_to(WorkerId::from(input as usize % 2), Msg::Fan(input))
                .unwrap();
        }
        let ws = pool.shutdown().unwrap();
        let handled: u64 = ws
            .iter()
            .flat_map(|w| w.seen.iter())
            .map(|x| u64::from(x.count_ones()))
            .sum();
        assert_eq!(handled, 200 * u64::from(FAN_OUT));
    });
}
