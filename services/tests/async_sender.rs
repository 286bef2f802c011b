//! shardpool's async sends and calls on three executors — tokio,
//! `futures::executor` and smol — none of which shardpool knows about: the
//! futures wait on wakers alone (no timer, no runtime handle, no
//! `spawn_blocking`). Each test pushes many tasks through a tiny inbox so
//! that the senders really wait, and checks exact delivery and answers.
//! Watchdogs are generous (a loaded 1–2 CPU machine); nothing is timed.

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::Duration;

use shardpool::prelude::*;

enum Msg {
    Add {
        task: u64,
        seq: u64,
    },
    /// The number of messages seen from `task`, and whether they came in
    /// order.
    Count {
        task: u64,
        reply: Reply<(u64, bool)>,
    },
    /// Drops its reply.
    Forget(#[allow(dead_code)] Reply<u64>),
}

#[derive(Default)]
struct Tally {
    next: HashMap<u64, u64>,
    in_order: bool,
}

impl Worker for Tally {
    type Msg = Msg;
    fn handle(&mut self, msg: Msg, _ctx: &mut Context<'_, Msg>) {
        match msg {
            Msg::Add { task, seq } => {
                let next = self.next.entry(task).or_default();
                if *next != seq {
                    self.in_order = false;
                }
                *next = seq + 1;
            }
            Msg::Count { task, reply } => {
                reply.send((self.next.get(&task).copied().unwrap_or(0), self.in_order))
            }
            Msg::Forget(_) => {}
        }
    }
}

fn pool() -> Pool<Tally> {
    let config = PoolConfig::default()
        .workers(2)
        .affinity(Affinity::None)
        .queue_capacity(4); // tiny: senders wait
    Pool::start(config, |_| Tally {
        in_order: true,
        ..Tally::default()
    })
    .unwrap()
}

const TASKS: u64 = 16;
const PER_TASK: u64 = 2_000;

/// One task's work: `PER_TASK` keyed async sends (all to the owner of the
/// task's key), then a keyed async call that reads the count back.
async fn task_body(tx: PoolSender<Msg>, task: u64) -> (u64, bool) {
    for seq in 0..PER_TASK {
        tx.send_keyed_async(&task, Msg::Add { task, seq })
            .await
            .expect("pool running");
    }
    tx.call_keyed_async(&task, |reply| Msg::Count { task, reply })
        .await
        .expect("answered")
}

/// Runs `f` on a thread, failing the test if it does not finish in time.
fn watchdog<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, wait) = mpsc::channel();
    let t = std::thread::spawn(move || {
        let v = f();
        let _ = done.send(());
        v
    });
    match wait.recv_timeout(Duration::from_secs(240)) {
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match t.join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("not done after 240 s: a lost wake-up?"),
    }
}

fn check(results: Vec<(u64, bool)>, pool: Pool<Tally>) {
    assert_eq!(results.len() as u64, TASKS);
    for (count, in_order) in results {
        assert_eq!(count, PER_TASK);
        assert!(in_order, "FIFO per (task, worker)");
    }
    let stats = pool.stats();
    let sent: u64 = stats
        .channels
        .iter()
        .filter(|c| c.from == Endpoint::External)
        .map(|c| c.sent)
        .sum();
    assert_eq!(sent, TASKS * (PER_TASK + 1));
    pool.shutdown().unwrap();
}

#[test]
fn tokio_tasks_on_a_two_thread_runtime() {
    watchdog(|| {
        let pool = pool();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let results = rt.block_on(async {
            let handles: Vec<_> = (0..TASKS)
                .map(|t| tokio::spawn(task_body(pool.sender(), t)))
                .collect();
            let mut results = Vec::new();
            for h in handles {
                results.push(h.await.unwrap());
            }
            results
        });
        check(results, pool);
    });
}

#[test]
fn tokio_current_thread_runtime() {
    watchdog(|| {
        let pool = pool();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let results = rt.block_on(async {
            let set: Vec<_> = (0..TASKS)
                .map(|t| tokio::spawn(task_body(pool.sender(), t)))
                .collect();
            let mut results = Vec::new();
            for h in set {
                results.push(h.await.unwrap());
            }
            results
        });
        check(results, pool);
    });
}

#[test]
fn futures_executor_thread_pool() {
    use futures_executor::ThreadPool;
    watchdog(|| {
        let pool = pool();
        let exec = ThreadPool::builder().pool_size(2).create().unwrap();
        let (done, results) = mpsc::channel();
        for t in 0..TASKS {
            let (tx, done) = (pool.sender(), done.clone());
            exec.spawn_ok(async move {
                let _ = done.send(task_body(tx, t).await);
            });
        }
        drop(done);
        check(results.iter().collect(), pool);
    });
}

#[test]
fn futures_executor_block_on() {
    use futures_executor::block_on;
    watchdog(|| {
        let pool = pool();
        // Two plain threads, each driving its own task with `block_on`.
        let threads: Vec<_> = (0..2)
            .map(|t| {
                let tx = pool.sender();
                std::thread::spawn(move || block_on(task_body(tx, t)))
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), (PER_TASK, true));
        }
        // A dropped reply ends the call, on this executor too.
        let err = block_on(pool.sender().call_async(WorkerId::from(0), Msg::Forget));
        assert!(err.unwrap_err().is_no_reply());
        pool.shutdown().unwrap();
    });
}

#[test]
fn smol_executor() {
    watchdog(|| {
        let pool = pool();
        let ex = smol::Executor::new();
        let results = std::thread::scope(|s| {
            // Two threads run the executor, as a multi-threaded smol app would.
            let (stop, stopped) = smol::channel::unbounded::<()>();
            for _ in 0..2 {
                let (ex, stopped) = (&ex, stopped.clone());
                s.spawn(move || smol::block_on(ex.run(stopped.recv())));
            }
            let tasks: Vec<_> = (0..TASKS)
                .map(|t| ex.spawn(task_body(pool.sender(), t)))
                .collect();
            let results: Vec<_> = smol::block_on(async {
                let mut out = Vec::new();
                for task in tasks {
                    out.push(task.await);
                }
                out
            });
            drop(stop);
            results
        });
        check(results, pool);
    });
}

#[test]
fn a_call_after_shutdown_is_closed_on_tokio() {
    let pool = pool();
    let tx = pool.sender();
    pool.shutdown().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let err = tx
            .call_keyed_async(&1u64, |reply| Msg::Count { task: 1, reply })
            .await
            .unwrap_err();
        assert!(err.is_closed());
        let err = tx
            .send_to_async(WorkerId::from(0), Msg::Add { task: 0, seq: 0 })
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::Closed(Msg::Add { task: 0, .. })));
    });
}
