//! The async-caller suite: tokio tasks in front of the pool against tokio
//! tasks in front of tokio tasks, interleaved. The two targets of the
//! serving issue: `send_to_async` from 4 tasks ≥ 3× the same tasks into a
//! `tokio::sync::mpsc`, and a `call_async` round trip ≤ 1.0× a tokio
//! task-to-task round trip over mpsc + oneshot.
//! `cargo run --release -p shardpool-benches --bin headline -- --async`.

use shardpool::IdleStrategy;

use crate::peers::tokio_tasks::{async_send_tokio, call_rtt_tokio};
use crate::report::{
    floor_p50, loadavg, median, p50_p99_p999, percentile, print_table, throughput_row, Row,
};
use crate::workloads::async_callers::{async_send_shardpool, call_rtt_shardpool};

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

    eprintln!("call round trip (1 tokio task on CPU 0 -> answerer -> back)");
    let calls = 20_000;
    let (mut all_sp, mut all_tk, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut all_busy, mut r_busy) = (Vec::new(), Vec::new());
    let backoff = IdleStrategy::default();
    call_rtt_shardpool(1_000, backoff);
    call_rtt_tokio(1_000);
    for i in 0..reps {
        let (mut sp, mut tk) = if i % 2 == 0 {
            let sp = call_rtt_shardpool(calls, backoff);
            (sp, call_rtt_tokio(calls))
        } else {
            let tk = call_rtt_tokio(calls);
            (call_rtt_shardpool(calls, backoff), tk)
        };
        let mut busy = call_rtt_shardpool(calls, IdleStrategy::BusyPoll);
        let tk50 = percentile(&mut tk, 0.5);
        ratios.push(percentile(&mut sp, 0.5) / tk50);
        r_busy.push(percentile(&mut busy, 0.5) / tk50);
        all_sp.extend(sp);
        all_tk.extend(tk);
        all_busy.extend(busy);
    }
    eprintln!("  call_async / tokio p50 per rep {ratios:.2?}; BusyPoll worker {r_busy:.2?}");
    rows.push(Row {
        workload: "call_async RTT p50/p99/p99.9 ns".to_string(),
        ours: p50_p99_p999(&mut all_sp),
        peer: "tokio mpsc + oneshot task".to_string(),
        peer_value: p50_p99_p999(&mut all_tk),
        ratio: median(&ratios),
        target: Some((1.0, false)),
    });
    rows.push(Row {
        workload: "(context) same, BusyPoll worker".to_string(),
        ours: p50_p99_p999(&mut all_busy),
        peer: "tokio mpsc + oneshot task".to_string(),
        peer_value: p50_p99_p999(&mut all_tk),
        ratio: median(&r_busy),
        target: None,
    });

    print_table(&rows);
    println!();
    println!("ratio = shardpool / peer (median of paired per-rep ratios; for RTT lower is better)");
    println!(
        "cross-CPU RTT floor p50: start {floor_start:.0} ns, end {:.0} ns; loadavg at end {}",
        floor_p50(),
        loadavg()
    );
}
