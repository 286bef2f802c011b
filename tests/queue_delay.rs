//! `WorkerStats::queue_delay`: how long messages wait in a worker's queues.
//! Lower bounds only (no upper-bound timing asserts).

mod common;

use std::time::Duration;

use common::watchdog;
use shardpool::prelude::*;

const SLEEP: Duration = Duration::from_millis(2);

struct Slow;

impl Worker for Slow {
    type Msg = u32;
    fn handle(&mut self, _: u32, _ctx: &mut Context<'_, u32>) {
        std::thread::sleep(SLEEP);
    }
}

#[test]
fn a_worker_that_sleeps_in_handle_shows_a_delay_of_at_least_the_sleep() {
    watchdog(120, || {
        let config = PoolConfig::default()
            .workers(1)
            .affinity(Affinity::None)
            .batch_size(1);
        let pool = Pool::start(config, |_| Slow).unwrap();
        let idle = pool.stats().workers[0].queue_delay;
        assert_eq!(idle.samples, 0, "nothing waited yet: {idle:?}");
        let tx = pool.sender();
        for i in 0..200 {
            tx.send_to(WorkerId::from(0), i).unwrap();
        }
        while pool.stats().handled() < 200 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let stats = pool.stats();
        let d = stats.workers[0].queue_delay;
        // Every timed message waited behind at least one 2 ms handle (or
        // its own, which ends the iteration that took it).
        assert!(d.samples >= 1, "{d:?}");
        assert!(d.max >= SLEEP, "{d:?}");
        assert!(d.p50 >= SLEEP && d.p99 >= d.p50 && d.max >= d.p99, "{d:?}");
        assert!(stats.to_string().contains("wait p99"), "{stats}");
        let text = stats.to_openmetrics(false);
        assert!(
            text.contains("shardpool_worker_queue_delay_p99_seconds{worker=\"0\"}"),
            "{text}"
        );
        pool.shutdown().unwrap();
    });
}
