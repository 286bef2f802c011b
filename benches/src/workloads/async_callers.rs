//! Async callers: tokio tasks feeding one worker with `send_to_async`, a
//! tokio task calling a worker with `call_async` and awaiting the answer,
//! and many tokio tasks (1,000 in the suite) calling one worker in a loop.
//! The peers (the same tasks over `tokio::sync` channels) are in
//! [`crate::peers::tokio_tasks`].
//!
//! Both sides of a row run their tasks on the same kind of runtime. The
//! senders: 2 worker threads, not pinned (the pool worker is pinned to the
//! consumer CPU and shares it with whichever runtime thread the OS puts
//! there). The calls: 1 worker thread pinned to the producer CPU, the
//! answering worker pinned to the consumer CPU — tokio in front on its
//! core, the pool behind on its own. Unpinned, the caller's runtime thread
//! landed on the worker's CPU in some runs, and each call then waited for
//! the two threads to take turns on one CPU (~10 us instead of ~0.4 us).

use std::sync::Arc;
use std::time::{Duration, Instant};

use shardpool::prelude::*;

use crate::harness::{cpus, pin, pool_config, sum_to, Latch};
use crate::workloads::inbox::share;
use crate::workloads::Sink;

/// The runtime both sides of the async-send row run their tasks on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio runtime")
}

/// The runtime both sides of the call row run their tasks on: one worker
/// thread, pinned to `cpu`.
pub fn runtime_on(cpu: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .on_thread_start(move || pin(cpu))
        .build()
        .expect("tokio runtime")
}

struct Consumer {
    sink: Sink,
    target: u64,
    latch: Arc<Latch>,
}

impl Worker for Consumer {
    type Msg = u64;
    #[inline]
    fn handle(&mut self, v: u64, _: &mut Context<'_, u64>) {
        self.sink.take(v);
        self.sink.fire_at(self.target, &self.latch);
    }
}

/// `tasks` tokio tasks send the values `0..n` to one worker (pinned to the
/// consumer CPU, inbox capacity 1024) with `send_to_async`; the time from
/// spawning them until the worker has counted the last one.
pub fn async_send_shardpool(n: u64, tasks: usize) -> Duration {
    let (_, c1) = cpus();
    let rt = runtime();
    let latch = Latch::new();
    let l2 = latch.clone();
    let pool = Pool::start(pool_config(vec![c1]).inbox_capacity(1024), move |_| {
        Consumer {
            sink: Sink::default(),
            target: n,
            latch: l2.clone(),
        }
    })
    .expect("pool start");
    let tx = pool.sender();
    let start = Instant::now();
    let producers: Vec<_> = (0..tasks)
        .map(|t| {
            let tx = tx.clone();
            rt.spawn(async move {
                for v in share(t, tasks, n) {
                    tx.send_to_async(WorkerId::from(0), v)
                        .await
                        .expect("send_to_async");
                }
            })
        })
        .collect();
    latch.wait();
    let dt = start.elapsed();
    rt.block_on(async {
        for p in producers {
            p.await.expect("producer task");
        }
    });
    drop(tx);
    let w = pool.shutdown().expect("shutdown");
    assert_eq!((w[0].sink.count, w[0].sink.sum), (n, sum_to(n)));
    dt
}

/// The answering worker of the call round trip.
struct Doubler;

impl Worker for Doubler {
    type Msg = (u64, Reply<u64>);
    #[inline]
    fn handle(&mut self, (v, reply): (u64, Reply<u64>), _: &mut Context<'_, Self::Msg>) {
        reply.send(v * 2);
    }
}

/// `calls` sequential `call_async` round trips from one tokio task (on
/// [`runtime_on`] the producer CPU) to a worker pinned to the consumer CPU,
/// with `PoolConfig::call_spin(spin)`; nanoseconds per round trip.
pub fn call_rtt_shardpool(calls: usize, idle: IdleStrategy, spin: Duration) -> Vec<u32> {
    let (c0, c1) = cpus();
    let rt = runtime_on(c0);
    let config = pool_config(vec![c1]).idle(idle).call_spin(spin);
    let pool = Pool::start(config, |_| Doubler).expect("pool start");
    let tx = pool.sender();
    let samples = rt.block_on(async move {
        rt_spawned(async move {
            let mut samples = Vec::with_capacity(calls);
            for v in 0..calls as u64 {
                let t = Instant::now();
                let r = tx
                    .call_async(WorkerId::from(0), |reply| (v, reply))
                    .await
                    .expect("call_async");
                samples.push(t.elapsed().as_nanos() as u32);
                assert_eq!(r, v * 2);
            }
            samples
        })
        .await
    });
    pool.shutdown().expect("shutdown");
    samples
}

/// `tasks` tokio tasks (on [`runtime_on`] the producer CPU) each make
/// `calls` sequential `call_async` round trips to one worker pinned to the
/// consumer CPU, with `PoolConfig::call_spin(spin)`; the time from
/// spawning them until the last one has its last answer. The many-callers
/// row: a tokio front end with many connections, each awaiting the pool.
pub fn many_callers_shardpool(tasks: usize, calls: u64, spin: Duration) -> Duration {
    let (c0, c1) = cpus();
    let rt = runtime_on(c0);
    let pool = Pool::start(pool_config(vec![c1]).call_spin(spin), |_| Doubler).expect("pool start");
    let tx = pool.sender();
    let dt = time_callers(&rt, tasks, calls, move |_, v| {
        tx.call_async(WorkerId::from(0), move |reply| (v, reply))
    });
    pool.shutdown().expect("shutdown");
    dt
}

/// The same many callers as a newcomer sets them up: tokio's default
/// multi-threaded runtime with 2 threads and a 2-worker pool, nothing
/// pinned, each task calling its key's owner with `call_keyed_async`.
/// Here a caller that keeps its executor thread busy while it waits takes
/// the CPU from the workers that would answer it.
pub fn many_callers_shardpool_unpinned(tasks: usize, calls: u64, spin: Duration) -> Duration {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio runtime");
    let config = PoolConfig::default()
        .workers(2)
        .affinity(Affinity::None)
        .call_spin(spin);
    let pool = Pool::start(config, |_| Doubler).expect("pool start");
    let tx = pool.sender();
    let dt = time_callers(&rt, tasks, calls, move |t, v| {
        tx.call_keyed_async(&t, move |reply| (v, reply))
    });
    pool.shutdown().expect("shutdown");
    dt
}

/// Spawns `tasks` tasks on `rt`, task `t` making `calls` sequential calls
/// `call(t, v)` (each must answer `2 * v`); the time from spawning them
/// until the last one has its last answer.
fn time_callers<F, Fut>(rt: &tokio::runtime::Runtime, tasks: usize, calls: u64, call: F) -> Duration
where
    F: Fn(u64, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<u64, CallError<(u64, Reply<u64>)>>> + Send + 'static,
{
    rt.block_on(async move {
        let start = Instant::now();
        let callers: Vec<_> = (0..tasks as u64)
            .map(|t| {
                let call = call.clone();
                tokio::spawn(async move {
                    for i in 0..calls {
                        let v = t * calls + i;
                        let r = call(t, v).await.unwrap_or_else(|_| panic!("call"));
                        assert_eq!(r, v * 2);
                    }
                })
            })
            .collect();
        for c in callers {
            c.await.expect("caller task");
        }
        start.elapsed()
    })
}

/// Runs `f` as a spawned task (on a runtime worker thread, as a service's
/// handler would) rather than on the thread inside `block_on`.
pub async fn rt_spawned<T: Send + 'static>(
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    tokio::spawn(f).await.expect("task")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn async_send_counts_everything() {
        if !crate::harness::tests::can_run() {
            return;
        }
        async_send_shardpool(20_000, 4);
    }

    #[test]
    fn call_round_trips_answer() {
        if !crate::harness::tests::can_run() {
            return;
        }
        for spin in [Duration::ZERO, Duration::from_micros(20)] {
            assert_eq!(
                call_rtt_shardpool(200, IdleStrategy::default(), spin).len(),
                200
            );
        }
    }

    #[test]
    fn many_callers_get_their_answers() {
        if !crate::harness::tests::can_run() {
            return;
        }
        many_callers_shardpool(50, 20, Duration::from_micros(20));
    }
}
