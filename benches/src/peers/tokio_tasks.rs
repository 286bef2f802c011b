//! tokio as a peer: a multi-thread runtime (2 workers, pinned), one task
//! per shard, each owning a bounded `tokio::sync::mpsc` receiver. Peer of
//! the keyed workload. And tokio tasks talking to tokio tasks over
//! `tokio::sync` channels: the peers of the async-caller rows
//! ([`crate::workloads::async_callers`]).

use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::harness::{cpus, pin, sum_to, Finish, Latch};
use crate::workloads::async_callers::{rt_spawned, runtime, runtime_on};
use crate::workloads::inbox::share;
use crate::workloads::keyed::{time_keyed_stream, Tally};

/// Keyed peer: the timing thread sends the keyed stream with
/// `blocking_send` to the 2 tasks.
pub fn keyed_tokio(n: u64) -> Duration {
    let (c0, c1) = cpus();
    let started = Arc::new(AtomicUsize::new(0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_start(move || {
            let i = started.fetch_add(1, Relaxed);
            pin(if i % 2 == 0 { c0 } else { c1 });
        })
        .build()
        .expect("tokio runtime");
    let fin = Finish::new(2);
    let mut txs = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..2 {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(u64, u64)>(1024);
        txs.push(tx);
        let mut tally = Tally::new(fin.clone());
        handles.push(rt.spawn(async move {
            while let Some(msg) = rx.recv().await {
                if !tally.take(msg) {
                    break;
                }
            }
            tally.total()
        }));
    }
    let dt = time_keyed_stream(n, &fin, |w, msg| txs[w].blocking_send(msg).unwrap());
    let total: u64 = rt.block_on(async {
        let mut t = 0;
        for h in handles {
            t += h.await.unwrap();
        }
        t
    });
    assert_eq!(total, n);
    drop(rt);
    dt
}

/// Async-send peer: `tasks` tokio tasks send the values `0..n` into one
/// bounded `tokio::sync::mpsc` channel (capacity 1024) drained by a
/// consumer task on the same runtime; the time from spawning them until
/// the consumer has counted the last one.
pub fn async_send_tokio(n: u64, tasks: usize) -> Duration {
    let rt = runtime();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(1024);
    let latch = Latch::new();
    let l2 = latch.clone();
    let start = Instant::now();
    let consumer = rt.spawn(async move {
        let (mut count, mut sum) = (0u64, 0u64);
        while let Some(v) = rx.recv().await {
            count += 1;
            sum = sum.wrapping_add(v);
            if count == n {
                l2.set();
            }
        }
        (count, sum)
    });
    let producers: Vec<_> = (0..tasks)
        .map(|t| {
            let tx = tx.clone();
            rt.spawn(async move {
                for v in share(t, tasks, n) {
                    tx.send(v).await.expect("mpsc send");
                }
            })
        })
        .collect();
    drop(tx);
    latch.wait();
    let dt = start.elapsed();
    let counted = rt.block_on(async {
        for p in producers {
            p.await.expect("producer task");
        }
        consumer.await.expect("consumer task")
    });
    assert_eq!(counted, (n, sum_to(n)));
    dt
}

/// Call peer: `calls` sequential round trips from one tokio task to a
/// server task on the same runtime ([`runtime_on`] the producer CPU, as the
/// caller of the shardpool side): the request and a
/// `tokio::sync::oneshot` sender go over a bounded `tokio::sync::mpsc`
/// channel, the server answers on the oneshot. Nanoseconds per round trip.
pub fn call_rtt_tokio(calls: usize) -> Vec<u32> {
    let rt = runtime_on(cpus().0);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(u64, oneshot::Sender<u64>)>(1024);
    let server = rt.spawn(async move {
        while let Some((v, reply)) = rx.recv().await {
            let _ = reply.send(v * 2);
        }
    });
    let samples = rt.block_on(rt_spawned(async move {
        let mut samples = Vec::with_capacity(calls);
        for v in 0..calls as u64 {
            let t = Instant::now();
            let (reply, answer) = oneshot::channel();
            tx.send((v, reply)).await.expect("mpsc send");
            let r = answer.await.expect("answer");
            samples.push(t.elapsed().as_nanos() as u32);
            assert_eq!(r, v * 2);
        }
        samples
    }));
    rt.block_on(server).expect("server task");
    samples
}

/// Many-callers peer: `tasks` tokio tasks each make `calls` sequential
/// round trips to one actor task on the same runtime ([`runtime_on`] the
/// producer CPU, as the callers of the shardpool side): the request and a
/// `tokio::sync::oneshot` sender go over a bounded `tokio::sync::mpsc`
/// channel (capacity 1024), the actor doubles the value and answers on the
/// oneshot. The time from spawning the callers until the last one has its
/// last answer.
pub fn many_callers_tokio(tasks: usize, calls: u64) -> Duration {
    many_callers_on(runtime_on(cpus().0), 1, tasks, calls)
}

/// [`many_callers_tokio`] as a newcomer sets it up: tokio's default
/// multi-threaded runtime with 2 threads, unpinned, and two actors, each
/// task calling the one its number picks.
pub fn many_callers_tokio_unpinned(tasks: usize, calls: u64) -> Duration {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio runtime");
    many_callers_on(rt, 2, tasks, calls)
}

/// `actors` actor tasks on `rt`, and `tasks` tasks each making `calls`
/// sequential requests (mpsc + `oneshot`) to actor `t % actors`; the time
/// from spawning the callers until the last one has its last answer.
fn many_callers_on(rt: tokio::runtime::Runtime, actors: u64, tasks: usize, calls: u64) -> Duration {
    let mut senders = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..actors {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(u64, oneshot::Sender<u64>)>(1024);
        handles.push(rt.spawn(async move {
            while let Some((v, reply)) = rx.recv().await {
                let _ = reply.send(v * 2);
            }
        }));
        senders.push(tx);
    }
    let dt = rt.block_on(async move {
        let start = Instant::now();
        let callers: Vec<_> = (0..tasks as u64)
            .map(|t| {
                let tx = senders[(t % actors) as usize].clone();
                tokio::spawn(async move {
                    for i in 0..calls {
                        let v = t * calls + i;
                        let (reply, answer) = oneshot::channel();
                        tx.send((v, reply)).await.expect("mpsc send");
                        assert_eq!(answer.await.expect("answer"), v * 2);
                    }
                })
            })
            .collect();
        for c in callers {
            c.await.expect("caller task");
        }
        start.elapsed()
    });
    for h in handles {
        rt.block_on(h).expect("actor task");
    }
    dt
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_everything() {
        if !crate::harness::tests::can_run() {
            return;
        }
        super::keyed_tokio(5_000);
    }

    #[test]
    fn async_send_counts_everything() {
        super::async_send_tokio(20_000, 4);
    }

    #[test]
    fn call_round_trips_answer() {
        assert_eq!(super::call_rtt_tokio(200).len(), 200);
    }

    #[test]
    fn many_callers_get_their_answers() {
        super::many_callers_tokio(50, 20);
    }
}
