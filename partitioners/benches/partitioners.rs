//! ns per key for every partitioner, with and without the `key_hash` cost.
//!
//! `CARGO_TARGET_DIR=/work/target-part cargo bench -p shardpool-partitioners --bench partitioners`
//!
//! Each iteration routes a batch of 1024 keys; criterion reports the time
//! per iteration and, via `Throughput::Elements(1024)`, keys per second.
//! Divide the time by 1024 for ns/key.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shardpool_partitioners::compat::{
    cassandra_token, kafka_partition, nats_partition, redis_slot, scylla_shard,
};
use shardpool_partitioners::{
    key_hash, Custom, HashPartitioner, JumpAnchor, JumpHash, Partitioner, RoundRobin,
};
use std::time::Duration;

#[path = "support/alternatives.rs"]
mod alternatives;

const BATCH: usize = 1024;
const SHARDS: [usize; 3] = [2, 16, 1024];

fn u64_keys() -> Vec<u64> {
    // Scattered, not sequential, so branch predictors do not learn a pattern.
    (0..BATCH as u64)
        .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .collect()
}

fn str_keys() -> Vec<String> {
    (0..BATCH).map(|i| format!("user:{i}")).collect()
}

/// `JumpAnchor` over `n` buckets with about 1/8 of them removed (at least 1).
fn anchor_with_removals(n: usize) -> JumpAnchor {
    let mut m = JumpAnchor::new(n + n.div_ceil(8));
    let removals = n.div_ceil(8);
    for i in 0..removals {
        m.remove(i * 8 % m.bucket_count()).unwrap();
    }
    m
}

fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
        .sample_size(50)
}

fn bench_key_hash(c: &mut Criterion) {
    let u = u64_keys();
    let s = str_keys();
    let mut g = c.benchmark_group("key_hash");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("u64", |b| {
        b.iter(|| black_box(&u).iter().fold(0u64, |acc, k| acc ^ key_hash(k)))
    });
    g.bench_function("str", |b| {
        b.iter(|| {
            black_box(&s)
                .iter()
                .fold(0u64, |acc, k| acc ^ key_hash(k.as_str()))
        })
    });
    g.finish();
}

/// Benchmarks one partitioner at n = 2, 16, 1024: shard only (hashes
/// precomputed), u64 key → shard, and string key → shard.
fn bench_partitioner<P: Partitioner>(c: &mut Criterion, name: &str, make: impl Fn(usize) -> P) {
    let u = u64_keys();
    let s = str_keys();
    let hashes: Vec<u64> = u.iter().map(key_hash).collect();
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(BATCH as u64));
    for n in SHARDS {
        let p = make(n);
        g.bench_with_input(BenchmarkId::new("shard_only", n), &n, |b, &n| {
            b.iter(|| {
                black_box(&hashes)
                    .iter()
                    .fold(0usize, |acc, &h| acc ^ p.shard(h, n))
            })
        });
        g.bench_with_input(BenchmarkId::new("u64_key", n), &n, |b, &n| {
            b.iter(|| {
                black_box(&u)
                    .iter()
                    .fold(0usize, |acc, k| acc ^ p.shard(key_hash(k), n))
            })
        });
        g.bench_with_input(BenchmarkId::new("str_key", n), &n, |b, &n| {
            b.iter(|| {
                black_box(&s)
                    .iter()
                    .fold(0usize, |acc, k| acc ^ p.shard(key_hash(k.as_str()), n))
            })
        });
    }
    g.finish();
}

fn bench_all(c: &mut Criterion) {
    bench_key_hash(c);
    bench_partitioner(c, "hash", |_| HashPartitioner);
    bench_partitioner(c, "jump", |_| JumpHash);
    bench_partitioner(c, "jump_anchor", JumpAnchor::new);
    bench_partitioner(c, "jump_anchor_1_8_removed", |n| {
        // The Partitioner impl honours removals when shards == bucket_count;
        // wrap shard_of so the benchmark's n is the working count.
        let m = anchor_with_removals(n);
        Custom::new(move |h, _| m.shard_of(h))
    });
    bench_partitioner(c, "round_robin", |_| RoundRobin);
    bench_partitioner(c, "custom_mod", |_| {
        Custom::new(|h: u64, n: usize| (h % n as u64) as usize)
    });
}

/// The pool's actual call: through `Arc<dyn Partitioner>`.
fn bench_dyn(c: &mut Criterion) {
    let u = u64_keys();
    let mut g = c.benchmark_group("dyn_u64_key");
    g.throughput(Throughput::Elements(BATCH as u64));
    let ps: [std::sync::Arc<dyn Partitioner>; 2] = [
        std::sync::Arc::new(HashPartitioner),
        std::sync::Arc::new(JumpHash),
    ];
    for p in ps {
        g.bench_with_input(BenchmarkId::new(p.name(), 16), &16usize, |b, &n| {
            b.iter(|| {
                black_box(&u)
                    .iter()
                    .fold(0usize, |acc, k| acc ^ p.shard(key_hash(k), n))
            })
        });
    }
    g.finish();
}

/// The schemes JumpAnchor was chosen over (shard only).
fn bench_alternatives(c: &mut Criterion) {
    let hashes: Vec<u64> = u64_keys().iter().map(key_hash).collect();
    let mut g = c.benchmark_group("alternatives");
    g.throughput(Throughput::Elements(BATCH as u64));
    for n in SHARDS {
        let ring = alternatives::Ring::new(n, 160);
        g.bench_with_input(BenchmarkId::new("ring_160vn", n), &n, |b, _| {
            b.iter(|| {
                black_box(&hashes)
                    .iter()
                    .fold(0usize, |acc, &h| acc ^ ring.shard_of(h))
            })
        });
        let hrw = alternatives::Rendezvous::new(n);
        g.bench_with_input(BenchmarkId::new("rendezvous", n), &n, |b, _| {
            b.iter(|| {
                black_box(&hashes)
                    .iter()
                    .fold(0usize, |acc, &h| acc ^ hrw.shard_of(h))
            })
        });
    }
    g.finish();
}

/// `BATCH` distinct keys of exactly `len` bytes: `user:<n>` padded with
/// `-`, like a user or order id with a tenant prefix.
fn sized_keys(len: usize) -> Vec<Vec<u8>> {
    (0..BATCH)
        .map(|i| {
            let mut k =
                format!("user:{:08}", i.wrapping_mul(2_654_435_761) % 100_000_000).into_bytes();
            k.resize(len, b'-');
            k
        })
        .collect()
}

/// The engine-compatible key functions (`compat`), ns/key on 16- and
/// 64-byte keys.
fn bench_compat(c: &mut Criterion) {
    let mut g = c.benchmark_group("compat");
    g.throughput(Throughput::Elements(BATCH as u64));
    for len in [16usize, 64] {
        let keys = sized_keys(len);
        g.bench_with_input(BenchmarkId::new("kafka_partition_12", len), &len, |b, _| {
            b.iter(|| {
                black_box(&keys)
                    .iter()
                    .fold(0u32, |acc, k| acc ^ kafka_partition(k, black_box(12)))
            })
        });
        g.bench_with_input(BenchmarkId::new("redis_slot", len), &len, |b, _| {
            b.iter(|| {
                black_box(&keys)
                    .iter()
                    .fold(0u16, |acc, k| acc ^ redis_slot(k))
            })
        });
        // The same key with a hash tag: `{<first 12 bytes>}` + the rest.
        let tagged: Vec<Vec<u8>> = keys
            .iter()
            .map(|k| {
                let mut t = Vec::with_capacity(len);
                t.push(b'{');
                t.extend_from_slice(&k[..12]);
                t.push(b'}');
                t.extend_from_slice(&k[14..]);
                t
            })
            .collect();
        g.bench_with_input(BenchmarkId::new("redis_slot_tagged", len), &len, |b, _| {
            b.iter(|| {
                black_box(&tagged)
                    .iter()
                    .fold(0u16, |acc, k| acc ^ redis_slot(k))
            })
        });
        g.bench_with_input(BenchmarkId::new("cassandra_token", len), &len, |b, _| {
            b.iter(|| {
                black_box(&keys)
                    .iter()
                    .fold(0i64, |acc, k| acc ^ cassandra_token(k))
            })
        });
        g.bench_with_input(
            BenchmarkId::new("cassandra_token+scylla_shard_8", len),
            &len,
            |b, _| {
                b.iter(|| {
                    black_box(&keys).iter().fold(0u32, |acc, k| {
                        acc ^ scylla_shard(cassandra_token(k), black_box(8), black_box(12))
                    })
                })
            },
        );
        // Two wildcard tokens that together are the key.
        g.bench_with_input(
            BenchmarkId::new("nats_partition_2tok_10", len),
            &len,
            |b, _| {
                b.iter(|| {
                    black_box(&keys).iter().fold(0u32, |acc, k| {
                        let (a, z) = k.split_at(len / 2);
                        acc ^ nats_partition(&[a, z], black_box(10))
                    })
                })
            },
        );
    }
    let tokens: Vec<i64> = sized_keys(16).iter().map(|k| cassandra_token(k)).collect();
    g.bench_function("scylla_shard_8", |b| {
        b.iter(|| {
            black_box(&tokens).iter().fold(0u32, |acc, &t| {
                acc ^ scylla_shard(t, black_box(8), black_box(12))
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = criterion();
    targets = bench_all, bench_dyn, bench_alternatives, bench_compat
}
criterion_main!(benches);
