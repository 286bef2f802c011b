//! The examples' logic, checked: wordcount's parallel count against its
//! single-threaded reference, and the OpenMetrics export of a real pool.

// `main` and the flag parsing are unused here; the file allows dead code.
#[path = "../examples/wordcount.rs"]
mod wordcount;

use shardpool::prelude::*;

fn small(routing: wordcount::Routing, batch: usize, combine: bool) -> wordcount::Options {
    wordcount::Options {
        words: 30_000,
        chunk: 512,
        batch,
        inbox: 16, // small queues: exercise full inboxes and ring overflow
        capacity: 16,
        workers: Some(2),
        affinity: Affinity::None,
        routing,
        seed: 7,
        combine,
        progress: false,
        verify: true,
    }
}

#[test]
fn corpus_is_deterministic_and_sized() {
    let a = wordcount::corpus(10_000, 300, 1);
    assert_eq!(a, wordcount::corpus(10_000, 300, 1));
    assert_ne!(a, wordcount::corpus(10_000, 300, 2));
    assert_eq!(a.len(), 34);
    let words: usize = a.iter().map(|c| c.split_ascii_whitespace().count()).sum();
    assert_eq!(words, 10_000);
    // Zipf: the most common word is rank 0.
    let reference = wordcount::count_reference(&a);
    assert_eq!(wordcount::top(&reference, 1)[0].0, wordcount::word(0));
}

#[test]
fn wordcount_parallel_equals_single_threaded() {
    for (routing, batch, combine) in [
        (wordcount::Routing::Hash, 64, true),
        (wordcount::Routing::Hash, 64, false),
        (wordcount::Routing::Jump, 1, false),
        (wordcount::Routing::Anchor, 1000, true),
    ] {
        let opts = small(routing, batch, combine);
        let chunks = wordcount::corpus(opts.words, opts.chunk, opts.seed);
        let reference = wordcount::count_reference(&chunks);
        let out = wordcount::count_parallel(chunks, &opts).unwrap();
        assert!(
            out.disjoint,
            "{routing:?}: a word was counted on two workers"
        );
        assert_eq!(out.counts.len(), reference.len(), "{routing:?}");
        assert!(out.counts == reference, "{routing:?}: counts differ");
        assert_eq!(out.counts.values().sum::<u64>(), opts.words as u64);
        assert_eq!(out.stats.workers.len(), 2);
    }
}

#[derive(Default)]
struct Forward;

impl Worker for Forward {
    type Msg = u32;
    fn handle(&mut self, hops: u32, ctx: &mut Context<'_, u32>) {
        if hops > 0 {
            let next = WorkerId::from((ctx.id().index() + 1) % ctx.workers());
            ctx.send_to(next, hops - 1).unwrap();
        }
    }
}

#[test]
fn openmetrics_of_a_real_pool() {
    let config = PoolConfig::default().workers(2).affinity(Affinity::None);
    let pool = Pool::start(config, |_| Forward).unwrap();
    let tx = pool.sender();
    for i in 0..100u32 {
        tx.send_to(WorkerId::from(i as usize % 2), 3).unwrap();
    }
    // 100 external messages, each forwarded 3 times: 400 handled in all.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while pool.stats().handled() < 400 {
        assert!(std::time::Instant::now() < deadline, "pool stalled");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let stats = pool.stats();
    for per_channel in [false, true] {
        let text = stats.to_openmetrics(per_channel);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.last(), Some(&"# EOF"));
        assert_eq!(text.matches("# EOF").count(), 1);
        let mut families = std::collections::HashSet::new();
        let mut sum_handled = 0;
        for line in &lines[..lines.len() - 1] {
            if let Some(meta) = line.strip_prefix("# ") {
                let mut parts = meta.splitn(3, ' ');
                let (kind, name) = (parts.next().unwrap(), parts.next().unwrap());
                assert!(kind == "HELP" || kind == "TYPE", "{line}");
                if kind == "TYPE" {
                    assert!(families.insert(name.to_string()), "{name} declared twice");
                    let t = parts.next().unwrap();
                    assert!(["counter", "gauge", "info"].contains(&t), "{line}");
                }
                continue;
            }
            // name{labels} value: a non-negative integer, or for the
            // `_seconds` gauges a non-negative number.
            let (series, value) = line.rsplit_once(' ').unwrap();
            let name = series.split('{').next().unwrap();
            let value: u64 = if name.ends_with("_seconds") {
                let v: f64 = value
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value: {line}"));
                assert!(v >= 0.0, "{line}");
                0
            } else {
                value
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value: {line}"))
            };
            assert!(name.starts_with("shardpool_"), "{line}");
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{line}"
            );
            if let Some(labels) = series.strip_prefix(name) {
                if !labels.is_empty() {
                    assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
                    for pair in labels[1..labels.len() - 1].split(',') {
                        let (k, v) = pair.split_once('=').unwrap();
                        assert!(
                            !k.is_empty() && v.starts_with('"') && v.ends_with('"'),
                            "{line}"
                        );
                    }
                }
            }
            if name == "shardpool_worker_handled_total" {
                sum_handled += value;
            }
        }
        assert_eq!(sum_handled, stats.handled());
        assert_eq!(sum_handled, 400);
        assert!(text.contains("shardpool_inbox_sent_total{worker=\"0\"} 50\n"));
        assert_eq!(
            text.contains("shardpool_channel_sent_total{from=\"ext\",to=\"1\"} 50\n"),
            per_channel
        );
        // w0 forwards to w1 and w1 to w0 only.
        if per_channel {
            assert!(text.contains("shardpool_channel_sent_total{from=\"0\",to=\"0\"} 0\n"));
            assert!(text.contains("shardpool_channel_sent_total{from=\"0\",to=\"1\"} 150\n"));
        }
    }
    pool.shutdown().unwrap();
}

struct Fragile;

impl Worker for Fragile {
    type Msg = bool;
    fn handle(&mut self, panic: bool, _ctx: &mut Context<'_, bool>) {
        assert!(!panic, "asked to panic");
    }
}

#[test]
fn restarts_reach_the_stats_and_the_export() {
    let config = PoolConfig::default()
        .workers(1)
        .affinity(Affinity::None)
        .on_panic(PanicPolicy::Restart {
            max_restarts: 10,
            within: std::time::Duration::from_secs(60),
        });
    let pool = Pool::start(config, |_| Fragile).unwrap();
    let before = pool.stats();
    let tx = pool.sender();
    for panic in [false, true, false, true, false] {
        tx.send_to(WorkerId::from(0), panic).unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while pool.stats().inbox(WorkerId::from(0)).unwrap().received < 5 {
        assert!(std::time::Instant::now() < deadline, "pool stalled");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let stats = pool.stats();
    assert_eq!(stats.workers[0].restarts, 2);
    assert!(!stats.workers[0].failed);
    assert_eq!(stats.delta(&before).workers[0].restarts, 2);
    assert!(stats
        .to_openmetrics(false)
        .contains("shardpool_worker_restarts_total{worker=\"0\"} 2\n"));
    assert!(stats.to_string().contains("restarted 2 times"));
    pool.shutdown().unwrap();
}
