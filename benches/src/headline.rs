//! The headline suite: each target comparison of PERFORMANCE.md (mesh vs
//! rtrb, inbox vs crossbeam `ArrayQueue`, keyed aggregation vs a hand-rolled
//! pool and tokio, round trips vs the floor, idle CPU and wake-up, `ctx.ask`
//! vs the same exchange written by hand), one table. `cargo run --release -p shardpool-benches --bin headline`.

use std::time::Duration;

use shardpool::IdleStrategy;

use crate::peers::handrolled::{keyed_handrolled, shuffle_handrolled};
use crate::peers::round_trip::{rtt_floor, rtt_rtrb, rtt_rtrb_in_pool};
use crate::peers::rtrb_mesh::shuffle_rtrb_mesh;
use crate::peers::spsc::{inbox_arrayqueue, mesh_rtrb_api};
use crate::peers::tokio_tasks::keyed_tokio;
use crate::report::{
    floor_p50, loadavg, median, p50_p99_p999, percentile, print_table, throughput_row, Row,
};
use crate::workloads::ask::{pipelined_ask, pipelined_hand, rtt_ask, rtt_hand};
use crate::workloads::idle::{idle_cpu, idle_floor, wakeup};
use crate::workloads::inbox::{inbox_shardpool, inbox_shardpool_batched, inbox_shardpool_idle};
use crate::workloads::keyed::{keyed_shardpool, keyed_shardpool_batched};
use crate::workloads::latency::rtt_shardpool;
use crate::workloads::mesh::{mesh_shardpool, MeshCfg};
use crate::workloads::shuffle::shuffle_shardpool;

/// The headline's sections, in the order they run (`headline --only`).
pub const SECTIONS: [&str; 7] = [
    "mesh", "inbox", "keyed", "shuffle", "latency", "idle", "ask",
];

/// Runs the headline suite with `reps` interleaved repetitions per row and
/// prints the table (progress and per-rep values go to stderr). `only`:
/// the [`SECTIONS`] to run (empty: all).
pub fn run(reps: usize, only: &[String]) {
    let floor_start = floor_p50();
    println!(
        "shardpool headline benchmarks: {reps} interleaved reps each, loadavg {}, \
         cross-CPU RTT floor p50 at start {floor_start:.0} ns",
        loadavg()
    );
    let mut rows = Vec::new();

    let mut footer = String::new();
    let wants = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    if wants("mesh") {
        mesh(reps, &mut rows);
    }
    if wants("inbox") {
        inbox(reps, &mut rows);
    }
    if wants("keyed") {
        keyed(reps, &mut rows);
    }
    if wants("shuffle") {
        shuffle(reps, &mut rows);
    }
    if wants("latency") {
        latency(reps, &mut rows);
    }
    if wants("idle") {
        idle(&mut rows, &mut footer);
    }
    if wants("ask") {
        ask(reps, &mut rows);
    }
    print_table(&rows);
    println!();
    if !footer.is_empty() {
        println!("{footer}");
    }
    println!(
        "ratio = shardpool / peer (median of paired per-rep ratios; for RTT and wake-up, \
         lower is better)"
    );
    println!(
        "cross-CPU RTT floor p50: start {floor_start:.0} ns, end {:.0} ns; loadavg at end {}",
        floor_p50(),
        loadavg()
    );
}

/// The mesh rows: `send_to` and `send_batch` against rtrb.
fn mesh(reps: usize, rows: &mut Vec<Row>) {
    eprintln!("mesh (worker -> worker, u64, capacity 1024)");
    let n = 2_000_000;
    let cfg = MeshCfg::default();
    let batched = MeshCfg {
        batched: true,
        ..cfg
    };
    // send_to against push/pop, the chunk path against rtrb's chunk API
    // (the targets), and send_to against chunks for the record.
    for (workload, cfg, chunks, target) in [
        ("mesh w0->w1 (ctx.send_to)", cfg, false, Some(1.0)),
        ("mesh w0->w1 (ctx.send_batch)", batched, true, Some(0.9)),
        ("mesh w0->w1 (ctx.send_to)", cfg, true, None),
    ] {
        let peer = if chunks {
            "rtrb chunks"
        } else {
            "rtrb push/pop"
        };
        throughput_row(
            rows,
            reps,
            (workload, peer),
            n,
            target,
            || mesh_shardpool(n, cfg),
            || mesh_rtrb_api(n, 1024, chunks),
        );
    }
}

/// The inbox rows: external producers against crossbeam's `ArrayQueue`.
fn inbox(reps: usize, rows: &mut Vec<Row>) {
    eprintln!("inbox (external producers -> 1 worker, capacity 1024)");
    let n = 1_000_000;
    for p in [1, 2] {
        throughput_row(
            rows,
            reps,
            (
                &format!("inbox {p} producer(s) (send_to)"),
                "crossbeam ArrayQueue",
            ),
            n,
            Some(1.5),
            || inbox_shardpool(n, p, 1024),
            || inbox_arrayqueue(n, p, 1024),
        );
    }

    // Diagnostic: the same with a worker that never advertises idleness.
    throughput_row(
        rows,
        reps,
        ("inbox 1 producer, BusyPoll worker", "crossbeam ArrayQueue"),
        n,
        None,
        || inbox_shardpool_idle(n, 1, 1024, IdleStrategy::BusyPoll),
        || inbox_arrayqueue(n, 1, 1024),
    );

    throughput_row(
        rows,
        reps,
        (
            "inbox 1 producer (send_batch of 64)",
            "crossbeam ArrayQueue",
        ),
        n,
        Some(1.5),
        || inbox_shardpool_batched(n, 64, 1024),
        || inbox_arrayqueue(n, 1, 1024),
    );
}

/// The keyed rows: an external producer routing by key to 2 workers.
fn keyed(reps: usize, rows: &mut Vec<Row>) {
    eprintln!("keyed aggregation (external producer -> 2 workers)");
    let n = 1_000_000;
    throughput_row(
        rows,
        reps,
        ("keyed (send_keyed, HashMap)", "hand-rolled (crossbeam-ch)"),
        n,
        Some(3.0),
        || keyed_shardpool(n),
        || keyed_handrolled(n),
    );
    throughput_row(
        rows,
        reps,
        ("keyed (send_keyed, HashMap)", "tokio mpsc per task"),
        n,
        Some(5.0),
        || keyed_shardpool(n),
        || keyed_tokio(n),
    );
    throughput_row(
        rows,
        reps,
        (
            "keyed (SendBatch of 64, HashMap)",
            "hand-rolled (crossbeam-ch)",
        ),
        n,
        Some(3.0),
        || keyed_shardpool_batched(n, 64),
        || keyed_handrolled(n),
    );
    throughput_row(
        rows,
        reps,
        ("keyed (SendBatch of 64, HashMap)", "tokio mpsc per task"),
        n,
        Some(5.0),
        || keyed_shardpool_batched(n, 64),
        || keyed_tokio(n),
    );
}

/// The shuffle rows: 2 workers sending keyed messages to each other.
fn shuffle(reps: usize, rows: &mut Vec<Row>) {
    eprintln!("shuffle (2 workers, both directions)");
    let per = 500_000;
    throughput_row(
        rows,
        reps,
        ("shuffle (ctx.send_keyed)", "hand-rolled (crossbeam-ch)"),
        2 * per,
        None,
        || shuffle_shardpool(per),
        || shuffle_handrolled(per),
    );
    throughput_row(
        rows,
        reps,
        ("shuffle (ctx.send_keyed)", "rtrb mesh (a ring per pair)"),
        2 * per,
        None,
        || shuffle_shardpool(per),
        || shuffle_rtrb_mesh(per),
    );
}

/// The round-trip rows: the floor, rtrb, shardpool, and rtrb on the pool's
/// threads.
fn latency(reps: usize, rows: &mut Vec<Row>) {
    eprintln!("latency (round trip w0 <-> w1)");
    let rtts = 50_000;
    let (mut all_sp, mut all_busy, mut all_fl) = (Vec::new(), Vec::new(), Vec::new());
    let (mut r_sp, mut r_busy) = (Vec::new(), Vec::new());
    let (mut all_rtrb, mut r_rtrb, mut r_vs_rtrb) = (Vec::new(), Vec::new(), Vec::new());
    let (mut all_in_pool, mut r_in_pool) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let mut fl = rtt_floor(rtts);
        let mut sp = rtt_shardpool(rtts, IdleStrategy::default());
        let mut busy = rtt_shardpool(rtts, IdleStrategy::BusyPoll);
        let mut rb = rtt_rtrb(rtts);
        let mut in_pool = rtt_rtrb_in_pool(rtts);
        let f50 = percentile(&mut fl, 0.5);
        let sp50 = percentile(&mut sp, 0.5);
        let rb50 = percentile(&mut rb, 0.5);
        r_sp.push(sp50 / f50);
        r_busy.push(percentile(&mut busy, 0.5) / f50);
        r_rtrb.push(rb50 / f50);
        r_vs_rtrb.push(sp50 / rb50);
        r_in_pool.push(percentile(&mut in_pool, 0.5) / rb50);
        all_fl.extend(fl);
        all_sp.extend(sp);
        all_busy.extend(busy);
        all_rtrb.extend(rb);
        all_in_pool.extend(in_pool);
    }
    let fl_text = p50_p99_p999(&mut all_fl);
    for (name, v, r) in [
        ("RTT p50/p99/p99.9 ns (Backoff)", &mut all_sp, &r_sp),
        ("RTT p50/p99/p99.9 ns (BusyPoll)", &mut all_busy, &r_busy),
    ] {
        eprintln!("  {name}: per-rep p50 ratios {r:.2?}");
        rows.push(Row {
            workload: name.to_string(),
            ours: p50_p99_p999(v),
            peer: "atomic ping-pong (floor)".to_string(),
            peer_value: fl_text.clone(),
            ratio: median(r),
            target: Some((1.5, false)),
        });
    }
    // Context for the floor target: a bare Lamport ring each way (rtrb,
    // no runtime) against the same floor, and shardpool against it.
    eprintln!(
        "  rtrb ping-pong p50 / floor per rep {r_rtrb:.2?}; shardpool / rtrb {r_vs_rtrb:.2?}"
    );
    let rtrb_text = p50_p99_p999(&mut all_rtrb);
    rows.push(Row {
        workload: "(context) rtrb ping-pong RTT ns".to_string(),
        ours: rtrb_text.clone(),
        peer: "atomic ping-pong (floor)".to_string(),
        peer_value: fl_text.clone(),
        ratio: median(&r_rtrb),
        target: None,
    });
    rows.push(Row {
        workload: "RTT p50/p99/p99.9 ns (Backoff)".to_string(),
        ours: p50_p99_p999(&mut all_sp),
        peer: "rtrb ping-pong (no runtime)".to_string(),
        peer_value: rtrb_text.clone(),
        ratio: median(&r_vs_rtrb),
        target: None,
    });
    // The same rtrb loops on two pool workers' threads: whether the
    // pool's threads (pinning, placement) account for any of the gap.
    eprintln!("  rtrb on pool threads / rtrb per rep {r_in_pool:.2?}");
    rows.push(Row {
        workload: "(context) rtrb RTT on pool threads".to_string(),
        ours: p50_p99_p999(&mut all_in_pool),
        peer: "rtrb ping-pong (no runtime)".to_string(),
        peer_value: rtrb_text,
        ratio: median(&r_in_pool),
        target: None,
    });
}

/// The ask rows: a `ctx.ask` round trip worker 0 -> worker 1 -> worker 0
/// against the same exchange written by hand (a question message, an
/// answer message and a table of ids), one at a time (latency, each round
/// trip timed) and 64 in flight (throughput), with the cross-CPU floor
/// measured in the same reps.
fn ask(reps: usize, rows: &mut Vec<Row>) {
    eprintln!("ask (w0 asks w1: ctx.ask vs two hand-written messages and a table)");
    let rtts = 50_000;
    let deadline = Duration::from_secs(1);
    // Untimed warm-up of each side.
    rtt_ask(rtts / 10, Duration::MAX);
    rtt_hand(rtts / 10);
    let (mut all_ask, mut all_dl, mut all_hand, mut all_fl) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut r_ask, mut r_dl, mut r_hand_fl, mut r_ask_fl) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..reps {
        let mut fl = rtt_floor(rtts);
        // Alternate which goes first, so neither always runs "second".
        let (mut a, mut h) = if i % 2 == 0 {
            let a = rtt_ask(rtts, Duration::MAX);
            (a, rtt_hand(rtts))
        } else {
            let h = rtt_hand(rtts);
            (rtt_ask(rtts, Duration::MAX), h)
        };
        let mut dl = rtt_ask(rtts, deadline);
        let f50 = percentile(&mut fl, 0.5);
        let a50 = percentile(&mut a, 0.5);
        let h50 = percentile(&mut h, 0.5);
        r_ask.push(a50 / h50);
        r_dl.push(percentile(&mut dl, 0.5) / h50);
        r_hand_fl.push(h50 / f50);
        r_ask_fl.push(a50 / f50);
        all_fl.extend(fl);
        all_ask.extend(a);
        all_dl.extend(dl);
        all_hand.extend(h);
    }
    eprintln!("  ask / hand-written p50 per rep {r_ask:.2?}; with a 1 s deadline {r_dl:.2?}");
    eprintln!("  hand-written / floor {r_hand_fl:.2?}; ask / floor {r_ask_fl:.2?}");
    let hand_text = p50_p99_p999(&mut all_hand);
    let fl_text = p50_p99_p999(&mut all_fl);
    let ask_text = p50_p99_p999(&mut all_ask);
    let hand_peer = "hand-written Q/A + table";
    rows.push(Row {
        workload: "ask RTT p50/p99/p99.9 ns".to_string(),
        ours: ask_text.clone(),
        peer: hand_peer.to_string(),
        peer_value: hand_text.clone(),
        ratio: median(&r_ask),
        target: Some((1.1, false)),
    });
    rows.push(Row {
        workload: "ask RTT, 1 s deadline".to_string(),
        ours: p50_p99_p999(&mut all_dl),
        peer: hand_peer.to_string(),
        peer_value: hand_text.clone(),
        ratio: median(&r_dl),
        target: None,
    });
    rows.push(Row {
        workload: "(context) hand-written Q/A RTT ns".to_string(),
        ours: hand_text,
        peer: "atomic ping-pong (floor)".to_string(),
        peer_value: fl_text.clone(),
        ratio: median(&r_hand_fl),
        target: None,
    });
    rows.push(Row {
        workload: "(context) ask RTT ns".to_string(),
        ours: ask_text,
        peer: "atomic ping-pong (floor)".to_string(),
        peer_value: fl_text,
        ratio: median(&r_ask_fl),
        target: None,
    });
    let n = 500_000;
    throughput_row(
        rows,
        reps,
        ("ask pipelined, 64 in flight", "hand-written, 64 in flight"),
        n,
        None,
        || pipelined_ask(n, 64),
        || pipelined_hand(n, 64),
    );
}

/// The idle rows, and the parked wake-up.
fn idle(rows: &mut Vec<Row>, footer: &mut String) {
    eprintln!("idle");
    let second = Duration::from_secs(1);
    let idle = idle_cpu(second, None);
    let floor = idle_floor(second, shardpool::DEFAULT_TICK_INTERVAL);
    rows.push(Row {
        workload: "idle 2-worker pool, CPU over 1 s".to_string(),
        ours: format!("{:.3}%", idle * 100.0),
        peer: "(target: 1% of one core)".to_string(),
        peer_value: "1%".to_string(),
        ratio: idle / 0.01,
        target: Some((1.0, false)),
    });
    rows.push(Row {
        workload: "(context) the same, CPU over 1 s".to_string(),
        ours: format!("{:.3}%", idle * 100.0),
        peer: format!(
            "2 threads park_timeout {:?}",
            shardpool::DEFAULT_TICK_INTERVAL
        ),
        peer_value: format!("{:.3}%", floor * 100.0),
        ratio: idle / floor,
        target: None,
    });
    let ten_ms = Duration::from_millis(10);
    let (idle10, floor10) = (idle_cpu(second, Some(ten_ms)), idle_floor(second, ten_ms));
    rows.push(Row {
        workload: "(context) idle pool, tick 10 ms".to_string(),
        ours: format!("{:.3}%", idle10 * 100.0),
        peer: "2 threads park_timeout 10ms".to_string(),
        peer_value: format!("{:.3}%", floor10 * 100.0),
        ratio: idle10 / floor10,
        target: None,
    });
    let (mut sp, mut ch) = wakeup(200);
    let (s50, c50) = (percentile(&mut sp, 0.5), percentile(&mut ch, 0.5));
    rows.push(Row {
        workload: "parked wake-up p50/p99 (idle>10ms)".to_string(),
        ours: format!("{:.1}/{:.1} us", s50 / 1e3, percentile(&mut sp, 0.99) / 1e3),
        peer: "thread in crossbeam recv".to_string(),
        peer_value: format!("{:.1}/{:.1} us", c50 / 1e3, percentile(&mut ch, 0.99) / 1e3),
        ratio: s50 / c50,
        target: None,
    });

    *footer = format!(
        "parked wake-up p50 {:.1} us (target < 20 us: {})",
        s50 / 1e3,
        if s50 < 20_000.0 { "met" } else { "MISSED" }
    );
}
