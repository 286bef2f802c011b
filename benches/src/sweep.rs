//! The sweeps: the mesh's batch size, capacity, burst and chunk path
//! against rtrb, the inbox's coalescing window against crossbeam
//! `ArrayQueue`, and the idle strategy under keyed aggregation against the
//! hand-rolled pool.
//! `cargo run --release -p shardpool-benches --bin headline -- --sweep`.

use std::time::Duration;

use shardpool::IdleStrategy;

use crate::peers::handrolled::keyed_handrolled;
use crate::peers::spsc::{inbox_arrayqueue, mesh_rtrb_api};
use crate::report::{floor_p50, loadavg, print_table, throughput_row, Row};
use crate::workloads::inbox::inbox_shardpool_cfg;
use crate::workloads::keyed::{keyed_shardpool_batched_cfg, keyed_shardpool_cfg};
use crate::workloads::mesh::{mesh_shardpool, MeshCfg};

/// One mesh row of the sweep: `cfg` against rtrb at the same capacity
/// (its chunk API when `cfg` sends with `send_batch`, else push/pop).
fn mesh_sweep_row(rows: &mut Vec<Row>, reps: usize, n: u64, label: &str, cfg: MeshCfg) {
    let capacity = cfg.capacity;
    let api = if cfg.batched { "chunks" } else { "push/pop" };
    throughput_row(
        rows,
        reps,
        (label, &format!("rtrb {api} cap {capacity}")),
        n,
        None,
        || mesh_shardpool(n, cfg),
        || mesh_rtrb_api(n, capacity, cfg.batched),
    );
}

/// Runs the sweeps with `reps` interleaved repetitions per row and prints
/// the table (progress and per-rep values go to stderr).
pub fn run(reps: usize) {
    println!(
        "sweep: mesh (worker->worker u64, 2M messages), inbox coalescing window, \
         idle strategy; {reps} interleaved reps, loadavg {}, RTT floor p50 {:.0} ns",
        loadavg(),
        floor_p50()
    );
    let n = 2_000_000;
    let mut rows = Vec::new();
    let default = MeshCfg::default();
    for batch in [1, 16, 64, 256] {
        let label = format!("mesh cap 1024 batch {batch}");
        mesh_sweep_row(&mut rows, reps, n, &label, MeshCfg { batch, ..default });
    }
    // The chunk path (`ctx.send_batch` per burst of 256) against rtrb's
    // chunk API: the batch size sets how far ahead the consumer prefetches.
    for batch in [32, 64, 128, 256] {
        let label = format!("mesh send_batch cap 1024 batch {batch}");
        let cfg = MeshCfg {
            batch,
            batched: true,
            ..default
        };
        mesh_sweep_row(&mut rows, reps, n, &label, cfg);
    }
    for capacity in [64, 1024, 16384] {
        let label = format!("mesh cap {capacity} batch 64");
        mesh_sweep_row(
            &mut rows,
            reps,
            n,
            &label,
            MeshCfg {
                capacity,
                ..default
            },
        );
    }
    for burst in [16, 64, 1024] {
        let label = format!("mesh cap 1024 batch 64 burst {burst}");
        mesh_sweep_row(&mut rows, reps, n, &label, MeshCfg { burst, ..default });
    }
    // The inbox's coalescing window (`PoolConfig::inbox_coalesce`), one
    // external producer, against ArrayQueue.
    let n_inbox = 1_000_000;
    for ns in [0u64, 300, 500, 1000, 2000] {
        let window = Duration::from_nanos(ns);
        throughput_row(
            &mut rows,
            reps,
            (
                &format!("inbox 1 producer, inbox_coalesce {ns} ns"),
                "crossbeam ArrayQueue",
            ),
            n_inbox,
            None,
            || inbox_shardpool_cfg(n_inbox, 1, 1024, |c| c.inbox_coalesce(window)),
            || inbox_arrayqueue(n_inbox, 1, 1024),
        );
    }
    // The idle strategy when an external producer shares a CPU with a
    // worker: keyed aggregation, per message and with SendBatch, against
    // the hand-rolled pool.
    let n_keyed = 1_000_000;
    let strategies = [
        (512, 8),
        (64, 16),
        (64, 64),
        (64, 256),
        (0, 256),
        (64, 1024),
        (0, 0),
    ];
    for batched in [false, true] {
        for (spins, yields) in strategies {
            let idle = IdleStrategy::Backoff { spins, yields };
            let how = if batched { "SendBatch" } else { "send_keyed" };
            throughput_row(
                &mut rows,
                reps,
                (
                    &format!("keyed {how}, Backoff {spins}/{yields}"),
                    "hand-rolled (crossbeam-ch)",
                ),
                n_keyed,
                None,
                || {
                    if batched {
                        keyed_shardpool_batched_cfg(n_keyed, 64, |c| c.idle(idle))
                    } else {
                        keyed_shardpool_cfg(n_keyed, |c| c.idle(idle))
                    }
                },
                || keyed_handrolled(n_keyed),
            );
        }
    }
    print_table(&rows);
    println!(
        "RTT floor p50 at end {:.0} ns, loadavg {}",
        floor_p50(),
        loadavg()
    );
}
