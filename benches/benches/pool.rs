//! End-to-end keyed aggregation: (key, value) messages routed by key to two
//! workers that count per key in a `HashMap`.
//!
//! - `keyed`: an external thread sends with `send_keyed`, vs a hand-rolled
//!   pool (one pinned thread + crossbeam-channel bounded inbox per worker,
//!   routed by the same hash) and vs a tokio multi-thread runtime with one
//!   bounded mpsc per task.
//! - `shuffle`: the workers generate keyed traffic to each other
//!   (`ctx.send_keyed`), vs the hand-rolled pool doing the same through its
//!   channels (with `try_send`, draining its own inbox while a peer is full).
//!
//! `cargo bench --bench pool`. Each criterion iteration is 1000 messages
//! (all counted by the workers); setup is outside the timed region.

use criterion::{criterion_group, criterion_main, Criterion};

mod common;
use shardpool_benches::peers::handrolled::{keyed_handrolled, shuffle_handrolled};
use shardpool_benches::peers::tokio_tasks::keyed_tokio;
use shardpool_benches::workloads::keyed::keyed_shardpool;
use shardpool_benches::workloads::shuffle::shuffle_shardpool;

const PER_ITER: u64 = 1000;

fn keyed(c: &mut Criterion) {
    let mut g = common::group(c, "keyed_2_workers", 10, 3, Some(PER_ITER));
    g.bench_function("shardpool_send_keyed", |b| {
        b.iter_custom(|iters| keyed_shardpool(iters * PER_ITER))
    });
    g.bench_function("handrolled_crossbeam_channel", |b| {
        b.iter_custom(|iters| keyed_handrolled(iters * PER_ITER))
    });
    g.bench_function("tokio_mpsc_per_task", |b| {
        b.iter_custom(|iters| keyed_tokio(iters * PER_ITER))
    });
    g.finish();

    let mut g = common::group(c, "shuffle_2_workers", 10, 3, Some(PER_ITER));
    g.bench_function("shardpool_ctx_send_keyed", |b| {
        b.iter_custom(|iters| shuffle_shardpool((iters * PER_ITER).div_ceil(2)))
    });
    g.bench_function("handrolled_crossbeam_channel", |b| {
        b.iter_custom(|iters| shuffle_handrolled((iters * PER_ITER).div_ceil(2)))
    });
    g.finish();
}

criterion_group!(benches, keyed);
criterion_main!(benches);
