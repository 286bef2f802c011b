//! The async-caller suite: tokio tasks in front of the pool against tokio
//! tasks in front of tokio tasks, interleaved. The two targets of the
//! serving issue: `send_to_async` from 4 tasks ≥ 3× the same tasks into a
//! `tokio::sync::mpsc`, and a `call_async` round trip ≤ 1.0× a tokio
//! task-to-task round trip over mpsc + oneshot. The round trip is
//! measured with the default (the caller's task sleeps until the answer
//! wakes it) and with `PoolConfig::call_spin` of 20 µs (it stays runnable
//! and checks, as the tokio peer's task does by never leaving its thread).
//! And many callers: 1,000 tokio tasks each calling one worker in a loop
//! with `call_async` (`call_spin` 20 µs, as recommended for a tokio front
//! end) against the same tasks calling a tokio actor (mpsc + oneshot).
//! `cargo run --release -p shardpool-benches --bin headline -- --async`.

use std::time::Duration;

use shardpool::IdleStrategy;

use crate::peers::round_trip::rtt_floor;
use crate::peers::tokio_tasks::{
    async_send_tokio, call_rtt_tokio, many_callers_tokio, many_callers_tokio_unpinned,
};
use crate::report::{
    floor_p50, loadavg, median, p50_p99_p999, percentile, print_table, throughput_row, Row,
};
use crate::workloads::async_callers::{
    async_send_shardpool, call_rtt_shardpool, many_callers_shardpool,
    many_callers_shardpool_unpinned,
};

/// Runs the async-caller suite with `reps` interleaved repetitions per row
/// and prints the table.
pub fn run(reps: usize) {
    let floor_start = floor_p50();
    println!(
        "shardpool async-caller benchmarks: {reps} interleaved reps each, loadavg {}, \
         cross-CPU RTT floor p50 at start {floor_start:.0} ns",
        loadavg()
    );
    let mut rows = Vec::new();

    eprintln!("async send (4 tokio tasks on a 2-thread runtime -> 1 consumer)");
    let n = 1_000_000;
    throughput_row(
        &mut rows,
        reps,
        (
            "4 tasks send_to_async -> worker",
            "4 tasks -> tokio mpsc -> task",
        ),
        n,
        Some(3.0),
        || async_send_shardpool(n, 4),
        || async_send_tokio(n, 4),
    );

    eprintln!("many callers (1,000 tokio tasks on CPU 0, call_async in a loop -> 1 answerer)");
    let (tasks, per_task) = (1_000, 100);
    throughput_row(
        &mut rows,
        reps,
        (
            "1000 tasks call_async (spin 20 us)",
            "1000 tasks -> tokio actor",
        ),
        tasks as u64 * per_task,
        None,
        || many_callers_shardpool(tasks, per_task, Duration::from_micros(20)),
        || many_callers_tokio(tasks, per_task),
    );

    eprintln!(
        "many callers, a newcomer's setup (tokio's 2-thread runtime, a 2-worker pool, unpinned)"
    );
    throughput_row(
        &mut rows,
        reps,
        (
            "1000 tasks call_keyed_async, unpinned (spin 20 us)",
            "1000 tasks -> 2 tokio actors, unpinned",
        ),
        tasks as u64 * per_task,
        None,
        || many_callers_shardpool_unpinned(tasks, per_task, Duration::from_micros(20)),
        || many_callers_tokio_unpinned(tasks, per_task),
    );

    eprintln!("call round trip (1 tokio task on CPU 0 -> answerer -> back)");
    let calls = 20_000;
    let spin = Duration::from_micros(20);
    let backoff = IdleStrategy::default();
    // Per variant: every sample, and the per-rep p50 ratio to tokio.
    // 0: call_spin 20 us, 1: default (sleeps at once), 2: default, BusyPoll.
    let variants = [
        (
            backoff,
            spin,
            "call_async RTT p50/p99/p99.9 ns (call_spin 20 us)",
            Some((1.0, false)),
        ),
        (
            backoff,
            Duration::ZERO,
            "(context) call_async RTT, default (no spin)",
            None,
        ),
        (
            IdleStrategy::BusyPoll,
            Duration::ZERO,
            "(context) same, BusyPoll worker",
            None,
        ),
    ];
    let mut all: Vec<(Vec<u32>, Vec<f64>)> = variants.iter().map(|_| Default::default()).collect();
    let mut all_tk = Vec::new();
    // The cross-CPU floor in each rep, against the same tokio p50: a call
    // into the pool crosses CPUs twice, the tokio peer's tasks share one
    // thread. When the floor alone is above the peer, no cross-CPU round
    // trip can meet the target in that rep.
    let (mut all_floor, mut floor_ratios) = (Vec::new(), Vec::new());
    call_rtt_shardpool(1_000, backoff, spin);
    call_rtt_tokio(1_000);
    for i in 0..reps {
        // tokio first in odd reps, last in even ones.
        let mut tk = if i % 2 == 1 {
            call_rtt_tokio(calls)
        } else {
            Vec::new()
        };
        let mut ours: Vec<Vec<u32>> = variants
            .iter()
            .map(|&(idle, spin, _, _)| call_rtt_shardpool(calls, idle, spin))
            .collect();
        if i % 2 == 0 {
            tk = call_rtt_tokio(calls);
        }
        let mut floor = rtt_floor(calls);
        let tk50 = percentile(&mut tk, 0.5);
        for (v, (samples, ratios)) in ours.iter_mut().zip(all.iter_mut()) {
            ratios.push(percentile(v, 0.5) / tk50);
            samples.append(v);
        }
        floor_ratios.push(percentile(&mut floor, 0.5) / tk50);
        all_floor.extend(floor);
        all_tk.extend(tk);
    }
    let tk_text = p50_p99_p999(&mut all_tk);
    for ((_, _, name, target), (samples, ratios)) in variants.iter().zip(all.iter_mut()) {
        eprintln!("  {name}: / tokio p50 per rep {ratios:.2?}");
        rows.push(Row {
            workload: name.to_string(),
            ours: p50_p99_p999(samples),
            peer: "tokio mpsc + oneshot task".to_string(),
            peer_value: tk_text.clone(),
            ratio: median(ratios),
            target: *target,
        });
    }

    eprintln!("  cross-CPU floor: / tokio p50 per rep {floor_ratios:.2?}");
    rows.push(Row {
        workload: "(context) cross-CPU floor p50/p99/p99.9 ns".to_string(),
        ours: p50_p99_p999(&mut all_floor),
        peer: "tokio mpsc + oneshot task".to_string(),
        peer_value: tk_text,
        ratio: median(&floor_ratios),
        target: None,
    });

    print_table(&rows);
    println!();
    println!("ratio = shardpool / peer (median of paired per-rep ratios; for RTT lower is better)");
    println!(
        "the floor row: one cache-padded atomic bounced between the two CPUs, the least any \
         cross-CPU round trip costs; above 1.0x, the call_async target is out of reach here"
    );
    println!(
        "cross-CPU RTT floor p50: start {floor_start:.0} ns, end {:.0} ns; loadavg at end {}",
        floor_p50(),
        loadavg()
    );
}
