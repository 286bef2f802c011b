//! Round-trip latency between two pinned workers (worker 0 `ctx.send_to`s
//! a ping, worker 1 answers) vs a raw atomic ping-pong between the same two
//! CPUs (the floor), plus the wake-up latency of a parked worker.
//!
//! `cargo bench --bench latency` reports the mean per round trip; the
//! percentiles (p50/p99/p99.9 over 250k round trips) and the parked
//! wake-up p50 are printed by
//! `cargo run --release -p shardpool-benches --bin headline`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use shardpool::IdleStrategy;

mod common;
use shardpool_benches::peers::round_trip::rtt_floor;
use shardpool_benches::workloads::latency::rtt_shardpool;

fn total(samples: Vec<u32>) -> Duration {
    Duration::from_nanos(samples.iter().map(|&s| s as u64).sum())
}

fn latency(c: &mut Criterion) {
    let mut g = common::group(c, "rtt", 20, 2, None);
    g.bench_function("atomic_ping_pong_floor", |b| {
        b.iter_custom(|iters| total(rtt_floor(iters as usize)))
    });
    g.bench_function("shardpool_backoff", |b| {
        b.iter_custom(|iters| total(rtt_shardpool(iters as usize, IdleStrategy::default())))
    });
    g.bench_function("shardpool_busy_poll", |b| {
        b.iter_custom(|iters| total(rtt_shardpool(iters as usize, IdleStrategy::BusyPoll)))
    });
    g.finish();
}

criterion_group!(benches, latency);
criterion_main!(benches);
