//! The plumbing every workload shares: which two CPUs a two-sided workload
//! uses, pinning, the start gate plain threads wait on and the latch the
//! timing thread parks on until the consumer is done.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use shardpool::prelude::*;

/// The two CPUs every two-sided workload uses: (producer side, consumer
/// side), or `None` when this process may use fewer than two.
pub fn two_cpus() -> Option<(usize, usize)> {
    let allowed = shardpool::placement::allowed_cpus();
    match allowed[..] {
        [a, b, ..] => Some((a, b)),
        _ => None,
    }
}

/// The two CPUs every two-sided workload uses: (producer side, consumer side).
///
/// # Panics
/// When this process may use fewer than two CPUs: the workloads compare
/// cross-CPU transfers and mean nothing on one.
pub fn cpus() -> (usize, usize) {
    two_cpus().unwrap_or_else(|| {
        panic!(
            "the benchmarks need two CPUs, this process may use {:?}",
            shardpool::placement::allowed_cpus()
        )
    })
}

/// Pins the calling thread to `cpu` (best effort, as the pool does).
pub fn pin(cpu: usize) {
    let _ = shardpool::placement::pin_current_thread(cpu);
}

/// A pool configuration pinned to exactly `cpus`, one worker each.
pub fn pool_config(cpus: Vec<usize>) -> PoolConfig {
    PoolConfig::default().affinity(Affinity::Cpus(cpus))
}

/// `0 + 1 + ... + (n - 1)`: what a consumer of the values `0..n` sums to.
pub fn sum_to(n: u64) -> u64 {
    n * (n.saturating_sub(1)) / 2
}

/// Completion signal: the consumer sets it, the timing thread parks on it.
pub struct Latch {
    done: AtomicBool,
    waiter: Thread,
}

impl Latch {
    /// A latch whose waiter is the calling thread.
    pub fn new() -> Arc<Latch> {
        Arc::new(Latch {
            done: AtomicBool::new(false),
            waiter: thread::current(),
        })
    }

    /// Marks the work done and wakes the waiter.
    pub fn set(&self) {
        self.done.store(true, Release);
        self.waiter.unpark();
    }

    /// Parks until [`set`](Latch::set) (called from the thread that made the latch).
    pub fn wait(&self) {
        while !self.done.load(Acquire) {
            thread::park();
        }
    }
}

/// Start gate for plain threads: they announce themselves, then spin
/// (yielding, so the timing thread can run) until opened.
#[derive(Default)]
pub struct Gate {
    ready: AtomicUsize,
    go: AtomicBool,
}

impl Gate {
    /// Announces this thread and waits for [`open`](Gate::open).
    pub fn arrive_and_wait(&self) {
        self.ready.fetch_add(1, Release);
        while !self.go.load(Acquire) {
            thread::yield_now();
        }
    }

    /// Waits until `n` threads have arrived.
    pub fn wait_ready(&self, n: usize) {
        while self.ready.load(Acquire) < n {
            thread::yield_now();
        }
    }

    /// Lets every arrived (and later) thread go.
    pub fn open(&self) {
        self.go.store(true, Release);
    }
}

/// A worker-side completion counter shared by several workers (or
/// threads, or tasks): the last of `of` to finish sets the latch.
pub struct Finish {
    finished: AtomicUsize,
    of: usize,
    latch: Arc<Latch>,
}

impl Finish {
    /// A counter for `of` finishers; the calling thread is the waiter.
    pub fn new(of: usize) -> Arc<Finish> {
        Arc::new(Finish {
            finished: AtomicUsize::new(0),
            of,
            latch: Latch::new(),
        })
    }

    /// One finisher is done; the last one wakes the waiter.
    pub fn one_done(&self) {
        if self.finished.fetch_add(1, Relaxed) + 1 == self.of {
            self.latch.set();
        }
    }

    /// Parks until all `of` are done.
    pub fn wait(&self) {
        self.latch.wait();
    }
}

/// A producer thread's work for [`run_threads`].
pub type Job = Box<dyn FnOnce() + Send>;
/// The consumer thread's work for [`run_threads`]; its result is returned.
pub type ConsumerJob = Box<dyn FnOnce() -> u64 + Send>;

/// Runs `producers` (each pinned to its CPU) and `consumer` (pinned), starts
/// the clock when all are ready, stops it when the consumer returns. Returns
/// the time and the consumer's result.
pub fn run_threads(
    producers: Vec<(usize, Job)>,
    consumer: (usize, ConsumerJob),
) -> (Duration, u64) {
    let gate = Arc::new(Gate::default());
    let latch = Latch::new();
    let n = producers.len() + 1;
    let mut handles: Vec<JoinHandle<()>> = Vec::new();
    for (cpu, job) in producers {
        let gate = gate.clone();
        handles.push(thread::spawn(move || {
            pin(cpu);
            gate.arrive_and_wait();
            job();
        }));
    }
    let (ccpu, cjob) = consumer;
    let (g, l) = (gate.clone(), latch.clone());
    let ch = thread::spawn(move || {
        pin(ccpu);
        g.arrive_and_wait();
        let r = cjob();
        l.set();
        r
    });
    gate.wait_ready(n);
    let t0 = Instant::now();
    gate.open();
    latch.wait();
    let dt = t0.elapsed();
    for h in handles {
        h.join().unwrap();
    }
    (dt, ch.join().unwrap())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Whether this machine can run the two-CPU workloads; says so when not.
    pub(crate) fn can_run() -> bool {
        let ok = two_cpus().is_some();
        if !ok {
            eprintln!("skipped: the workloads need two CPUs");
        }
        ok
    }

    #[test]
    fn run_threads_returns_the_consumers_result() {
        let (_, r) = run_threads(
            vec![(0, Box::new(|| {})), (0, Box::new(|| {}))],
            (0, Box::new(|| 42)),
        );
        assert_eq!(r, 42);
    }

    #[test]
    fn finish_fires_on_the_last() {
        let fin = Finish::new(3);
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let f = fin.clone();
                thread::spawn(move || f.one_done())
            })
            .collect();
        fin.wait();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(sum_to(4), 6);
    }
}
