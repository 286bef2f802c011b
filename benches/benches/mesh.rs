//! Worker → worker u64 messages through the pool's mesh (`ctx.send_to`
//! per message, and `ctx.send_batch` per burst of 256, the chunk path) vs
//! rtrb (push/pop and chunks), crossbeam `ArrayQueue` and
//! crossbeam-channel `bounded`, capacity 1024, producer and consumer pinned
//! to different CPUs.
//!
//! `cargo bench --bench mesh`. Each criterion iteration is 1000 messages
//! counted on the consumer; pool start and thread spawn/pinning happen once
//! per sample, outside the timed region (the workloads are the
//! `shardpool_benches` library's). For interleaved, ratio-based numbers use
//! `cargo run --release -p shardpool-benches --bin headline`.

use criterion::{criterion_group, criterion_main, Criterion};

mod common;
use shardpool_benches::peers::channel::mesh_crossbeam_channel;
use shardpool_benches::peers::spsc::{mesh_arrayqueue, mesh_rtrb, mesh_rtrb_chunks};
use shardpool_benches::workloads::mesh::{mesh_shardpool, MeshCfg};

const PER_ITER: u64 = 1000;
const CAP: usize = 1024;

fn mesh(c: &mut Criterion) {
    let mut g = common::group(c, "mesh_u64_cap1024", 10, 2, Some(PER_ITER));
    g.bench_function("shardpool_send_to", |b| {
        b.iter_custom(|iters| mesh_shardpool(iters * PER_ITER, MeshCfg::default()))
    });
    g.bench_function("shardpool_send_batch", |b| {
        let cfg = MeshCfg {
            batched: true,
            ..MeshCfg::default()
        };
        b.iter_custom(|iters| mesh_shardpool(iters * PER_ITER, cfg))
    });
    g.bench_function("rtrb_push_pop", |b| {
        b.iter_custom(|iters| mesh_rtrb(iters * PER_ITER, CAP))
    });
    g.bench_function("rtrb_chunks", |b| {
        b.iter_custom(|iters| mesh_rtrb_chunks(iters * PER_ITER, CAP))
    });
    g.bench_function("crossbeam_arrayqueue", |b| {
        b.iter_custom(|iters| mesh_arrayqueue(iters * PER_ITER, CAP))
    });
    g.bench_function("crossbeam_channel_bounded", |b| {
        b.iter_custom(|iters| mesh_crossbeam_channel(iters * PER_ITER, CAP))
    });
    g.finish();
}

criterion_group!(benches, mesh);
criterion_main!(benches);
