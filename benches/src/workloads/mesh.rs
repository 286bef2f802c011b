//! Mesh: worker 0 → worker 1 `u64`s over the pool's SPSC ring, per message
//! (`ctx.send_to`) or per burst (`ctx.send_batch`, the chunk path). Peers:
//! [`crate::peers::spsc`] and [`crate::peers::channel`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use shardpool::prelude::*;

use super::Sink;
use crate::harness::{cpus, pool_config, sum_to, Latch};

/// How the mesh workload's pool is configured and how worker 0 sends.
#[derive(Clone, Copy, Debug)]
pub struct MeshCfg {
    /// Ring capacity.
    pub capacity: usize,
    /// The pool's `batch_size`.
    pub batch: usize,
    /// Messages worker 0 sends per loop iteration (at most).
    pub burst: u64,
    /// Worker 0 sends each burst with one `ctx.send_batch` (the chunk
    /// path) instead of `ctx.send_to` per message.
    pub batched: bool,
}

impl Default for MeshCfg {
    fn default() -> Self {
        MeshCfg {
            capacity: 1024,
            batch: shardpool::DEFAULT_BATCH_SIZE,
            burst: 256,
            batched: false,
        }
    }
}

struct MeshShared {
    target: u64,
    burst: u64,
    batched: bool,
    latch: Arc<Latch>,
}

struct MeshWorker {
    id: usize,
    sh: Arc<MeshShared>,
    /// Messages generated so far (worker 0).
    sent: u64,
    /// Generated and not yet accepted by the ring (batched mode).
    out: Vec<u64>,
    /// What worker 1 received.
    sink: Sink,
}

impl Worker for MeshWorker {
    type Msg = u64;

    #[inline]
    fn handle(&mut self, msg: u64, ctx: &mut Context<'_, u64>) {
        if self.id == 1 {
            self.sink.take(msg);
            return;
        }
        self.produce(ctx);
    }

    #[inline]
    fn tick(&mut self, _ctx: &mut Context<'_, u64>) {
        if self.id == 1 {
            self.sink.fire_at(self.sh.target, &self.sh.latch);
        }
    }
}

impl MeshWorker {
    /// Worker 0, on a "go" from the inbox or its own "continue": sends up
    /// to a burst, stopping when the ring is full (the pool runs with
    /// `overflow_limit(0)`, so a full ring refuses the message: the same
    /// back-pressure a spinning SPSC producer has). Out of line, so that
    /// worker 1's `handle` (count and sum) is small enough to inline into
    /// the pool's receive loop, as a consumer's loop body is in the peers.
    #[inline(never)]
    fn produce(&mut self, ctx: &mut Context<'_, u64>) {
        let sh = &*self.sh;
        let end = (self.sent + sh.burst).min(sh.target);
        if sh.batched {
            // The chunk path: generate a burst into a buffer, hand it over
            // in one call; a full ring leaves the rest in the buffer.
            if self.out.is_empty() {
                self.out.extend(self.sent..end);
                self.sent = end;
            }
            match ctx.send_batch(WorkerId::from(1), &mut self.out) {
                Ok(()) | Err(SendError::Full(())) => {}
                Err(e) => panic!("mesh send: {e}"),
            }
            if self.sent < sh.target || !self.out.is_empty() {
                ctx.send_to(WorkerId::from(0), 0).expect("continue");
            }
            return;
        }
        while self.sent < end {
            match ctx.send_to(WorkerId::from(1), self.sent) {
                Ok(()) => self.sent += 1,
                Err(SendError::Full(_)) => break,
                Err(e) => panic!("mesh send: {e}"),
            }
        }
        if self.sent < sh.target {
            ctx.send_to(WorkerId::from(0), 0).expect("continue");
        }
    }
}

/// `n` u64 messages worker 0 → worker 1 (`ctx.send_to`), timed from the
/// "go" message until worker 1 has handled the last one.
pub fn mesh_shardpool(n: u64, cfg: MeshCfg) -> Duration {
    let (c0, c1) = cpus();
    let sh = Arc::new(MeshShared {
        target: n,
        burst: cfg.burst.max(1),
        batched: cfg.batched,
        latch: Latch::new(),
    });
    let s2 = sh.clone();
    let pool = Pool::start(
        pool_config(vec![c0, c1])
            .ring_capacity(cfg.capacity)
            .batch_size(cfg.batch)
            .overflow_limit(0),
        move |id| MeshWorker {
            id: id.index(),
            sh: s2.clone(),
            sent: 0,
            out: Vec::with_capacity(cfg.burst.max(1) as usize),
            sink: Sink::default(),
        },
    )
    .expect("pool start");
    let tx = pool.sender();
    let t0 = Instant::now();
    tx.send_to(WorkerId::from(0), 0).unwrap();
    sh.latch.wait();
    let dt = t0.elapsed();
    let workers = pool.shutdown().expect("shutdown");
    assert_eq!(workers[1].sink.count, n);
    assert_eq!(workers[1].sink.sum, sum_to(n));
    dt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_send_paths_deliver_everything() {
        if !crate::harness::tests::can_run() {
            return;
        }
        // Small ring and bursts: exercises the full-ring stop and "continue".
        for batched in [false, true] {
            let cfg = MeshCfg {
                capacity: 16,
                burst: 40,
                batched,
                ..MeshCfg::default()
            };
            mesh_shardpool(5_000, cfg);
        }
    }
}
