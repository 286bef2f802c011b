//! Latency: ping/pong round trips between two pinned workers over the
//! mesh. The floor and the rtrb round trip are in
//! [`crate::peers::round_trip`].

use std::sync::Arc;
use std::time::Instant;

use shardpool::prelude::*;

use crate::harness::{cpus, pool_config, Latch};

/// The "go" message from outside (never a sequence number).
const PING_GO: u64 = u64::MAX;

struct PingWorker {
    id: usize,
    target: usize,
    sent_at: Instant,
    seq: u64,
    samples: Vec<u32>,
    latch: Arc<Latch>,
}

impl Worker for PingWorker {
    type Msg = u64;
    #[inline]
    fn handle(&mut self, msg: u64, ctx: &mut Context<'_, u64>) {
        if self.id == 1 {
            let _ = ctx.send_to(WorkerId::from(0), msg); // pong
            return;
        }
        if msg != PING_GO {
            let now = Instant::now();
            self.samples.push((now - self.sent_at).as_nanos() as u32);
            if self.samples.len() == self.target {
                self.latch.set();
                return;
            }
        }
        self.seq += 1;
        self.sent_at = Instant::now();
        let _ = ctx.send_to(WorkerId::from(1), self.seq); // ping
    }
}

/// `rtts` ping/pong round trips worker 0 ⇄ worker 1; nanoseconds per RTT.
pub fn rtt_shardpool(rtts: usize, idle: IdleStrategy) -> Vec<u32> {
    let (c0, c1) = cpus();
    let latch = Latch::new();
    let l2 = latch.clone();
    let pool = Pool::start(pool_config(vec![c0, c1]).idle(idle), move |id| PingWorker {
        id: id.index(),
        target: rtts,
        sent_at: Instant::now(),
        seq: 0,
        samples: Vec::with_capacity(if id.index() == 0 { rtts } else { 0 }),
        latch: l2.clone(),
    })
    .expect("pool start");
    pool.sender().send_to(WorkerId::from(0), PING_GO).unwrap();
    latch.wait();
    let mut w = pool.shutdown().expect("shutdown");
    std::mem::take(&mut w[0].samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sample_per_round_trip() {
        if !crate::harness::tests::can_run() {
            return;
        }
        for idle in [IdleStrategy::default(), IdleStrategy::BusyPoll] {
            assert_eq!(rtt_shardpool(200, idle).len(), 200);
        }
    }
}
