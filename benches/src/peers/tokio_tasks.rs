//! tokio as a peer: a multi-thread runtime (2 workers, pinned), one task
//! per shard, each owning a bounded `tokio::sync::mpsc` receiver. Peer of
//! the keyed workload.

use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use crate::harness::{cpus, pin, Finish};
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

#[cfg(test)]
mod tests {
    #[test]
    fn counts_everything() {
        if !crate::harness::tests::can_run() {
            return;
        }
        super::keyed_tokio(5_000);
    }
}
