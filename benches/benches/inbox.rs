//! 1 and 2 external producers → 1 worker through `PoolSender::send_to`
//! vs crossbeam `ArrayQueue`, crossbeam-channel `bounded` and flume
//! `bounded`, capacity 1024. The consumer is pinned to the second CPU and
//! the producers to the first (on a 2-CPU machine the two producers share
//! one CPU).
//!
//! `cargo bench --bench inbox`. Each criterion iteration is 1000 messages
//! counted on the consumer; setup is outside the timed region.

use criterion::{criterion_group, criterion_main, Criterion};

mod common;
use shardpool_benches::peers::channel::{inbox_crossbeam_channel, inbox_flume};
use shardpool_benches::peers::spsc::inbox_arrayqueue;
use shardpool_benches::workloads::inbox::inbox_shardpool;

const PER_ITER: u64 = 1000;
const CAP: usize = 1024;

fn inbox(c: &mut Criterion) {
    for producers in [1usize, 2] {
        let name = format!("inbox_{producers}p_u64_cap1024");
        let mut g = common::group(c, &name, 10, 2, Some(PER_ITER));
        g.bench_function("shardpool_send_to", |b| {
            b.iter_custom(|iters| inbox_shardpool(iters * PER_ITER, producers, CAP))
        });
        g.bench_function("crossbeam_arrayqueue", |b| {
            b.iter_custom(|iters| inbox_arrayqueue(iters * PER_ITER, producers, CAP))
        });
        g.bench_function("crossbeam_channel_bounded", |b| {
            b.iter_custom(|iters| inbox_crossbeam_channel(iters * PER_ITER, producers, CAP))
        });
        g.bench_function("flume_bounded", |b| {
            b.iter_custom(|iters| inbox_flume(iters * PER_ITER, producers, CAP))
        });
        g.finish();
    }
}

criterion_group!(benches, inbox);
criterion_main!(benches);
