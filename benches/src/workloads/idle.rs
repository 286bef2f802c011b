//! Idle: the CPU an idle pool burns, and how long a parked worker takes to
//! wake for a message (interleaved with a thread blocked in a
//! crossbeam-channel `recv`, the OS wake-up floor).

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use shardpool::prelude::*;

use crate::harness::{cpus, pin, pool_config};

/// User + system CPU time of this process so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we pass; RUSAGE_SELF
    // is always valid.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

struct Nop;
impl Worker for Nop {
    type Msg = u64;
    fn handle(&mut self, _: u64, _: &mut Context<'_, u64>) {}
}

/// Process CPU time over `window` while a 2-worker pool (default config,
/// or the given `tick_interval`) sits idle, as a fraction of one core.
pub fn idle_cpu(window: Duration, tick: Option<Duration>) -> f64 {
    let (c0, c1) = cpus();
    let mut config = pool_config(vec![c0, c1]);
    if let Some(tick) = tick {
        config = config.tick_interval(tick);
    }
    let pool = Pool::start(config, |_| Nop).expect("pool start");
    thread::sleep(Duration::from_millis(200));
    let share = cpu_share(window);
    drop(pool);
    share
}

/// The floor under [`idle_cpu`]: process CPU time over `window` while two
/// plain threads, pinned like the pool's workers, do nothing but
/// `park_timeout(interval)` in a loop — what waking every `interval`
/// costs on this machine, with no runtime at all.
pub fn idle_floor(window: Duration, interval: Duration) -> f64 {
    let (c0, c1) = cpus();
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = [c0, c1]
        .into_iter()
        .map(|cpu| {
            let stop = stop.clone();
            thread::spawn(move || {
                pin(cpu);
                while !stop.load(Relaxed) {
                    thread::park_timeout(interval);
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(200));
    let share = cpu_share(window);
    stop.store(true, Relaxed);
    for t in threads {
        t.thread().unpark();
        t.join().expect("floor thread");
    }
    share
}

/// This process's CPU time over the next `window` (sleeping), as a
/// fraction of one core.
fn cpu_share(window: Duration) -> f64 {
    let (u0, t0) = (cpu_time(), Instant::now());
    thread::sleep(window);
    let (u1, dt) = (cpu_time(), t0.elapsed());
    (u1 - u0).as_secs_f64() / dt.as_secs_f64()
}

struct WakeWorker {
    samples: Vec<u32>,
}
impl Worker for WakeWorker {
    type Msg = Instant;
    fn handle(&mut self, sent: Instant, _: &mut Context<'_, Instant>) {
        self.samples.push(sent.elapsed().as_nanos() as u32);
    }
}

/// Wake-up latency (send → `handle` runs) of a worker idle for 11-17 ms,
/// interleaved sample by sample with a thread blocked in a
/// crossbeam-channel `recv` (the OS wake-up floor). Returns
/// (shardpool ns, channel ns).
pub fn wakeup(samples: usize) -> (Vec<u32>, Vec<u32>) {
    let (c0, c1) = cpus();
    let pool = Pool::start(pool_config(vec![c1]), |_| WakeWorker {
        samples: Vec::new(),
    })
    .expect("pool start");
    let tx = pool.sender();
    let (ctx, crx) = crossbeam_channel::bounded::<Instant>(16);
    let peer = thread::spawn(move || {
        pin(c1);
        let mut v = Vec::new();
        while let Ok(sent) = crx.recv() {
            v.push(sent.elapsed().as_nanos() as u32);
        }
        v
    });
    // The sender sits on the other CPU, so the wake-up crosses CPUs.
    thread::spawn(move || {
        pin(c0);
        for i in 0..samples {
            thread::sleep(Duration::from_millis(11 + (i % 7) as u64));
            tx.send_to(WorkerId::from(0), Instant::now()).unwrap();
            thread::sleep(Duration::from_millis(11 + ((i + 3) % 7) as u64));
            ctx.send(Instant::now()).unwrap();
        }
    })
    .join()
    .unwrap();
    let mut w = pool.shutdown().expect("shutdown");
    let chan = peer.join().unwrap();
    (std::mem::take(&mut w[0].samples), chan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_wakeup_sample_per_send_on_each_side() {
        if !crate::harness::tests::can_run() {
            return;
        }
        let (sp, ch) = wakeup(3);
        assert_eq!((sp.len(), ch.len()), (3, 3));
    }
}
