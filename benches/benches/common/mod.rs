//! The criterion group settings every bench here shares.

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};

/// A group measured the way all of ours are: flat sampling (each sample
/// starts its own pool or threads, outside the timed region), 0.5 s of
/// warm-up, `samples` samples over `secs` seconds, and a throughput of
/// `per_iter` elements per iteration when given.
pub fn group<'a>(
    c: &'a mut Criterion,
    name: &str,
    samples: usize,
    secs: u64,
    per_iter: Option<u64>,
) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(samples)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(secs))
        .sampling_mode(SamplingMode::Flat);
    if let Some(n) = per_iter {
        g.throughput(Throughput::Elements(n));
    }
    g
}
