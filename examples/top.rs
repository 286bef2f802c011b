//! `top` for a pool: a live, refreshing view of every worker and every
//! channel of a pool under synthetic load.
//!
//! ```text
//! cargo run --release --example top -- [--workers N] [--interval MS] [--iterations N]
//!                                      [--no-clear] [--openmetrics]
//! ```
//!
//! A load thread sends jobs into the pool at a rate that rises and falls;
//! each job does a little work and hops to a few random peers over the
//! mesh. Every `--interval` (default 500 ms) the screen is redrawn from two
//! [`PoolStats`] snapshots: [`PoolStats::delta`] gives what happened in the
//! interval and the `*_per_sec` helpers turn it into rates. It runs for
//! `--iterations` refreshes (default 20, ~10 s); `--openmetrics` then prints
//! what a `/metrics` endpoint would serve: a `prometheus-client` registry
//! holding the example's own metric next to the pool's
//! [`MetricsCollector`](shardpool::MetricsCollector), which takes a fresh
//! snapshot when encoded.
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shardpool::prelude::*;
use shardpool::prometheus_client::encoding::text::encode;
use shardpool::prometheus_client::metrics::counter::Counter;
use shardpool::prometheus_client::registry::Registry;

/// A unit of synthetic work.
#[derive(Debug, Clone, Copy)]
struct Job {
    /// How many more peers this job visits after this one.
    hops: u8,
    /// Loop iterations of busy work per visit.
    work: u32,
}

struct Busy {
    rng: u64,
    sum: u64,
}

impl Worker for Busy {
    type Msg = Job;
    fn handle(&mut self, job: Job, ctx: &mut Context<'_, Job>) {
        for i in 0..job.work {
            self.sum = std::hint::black_box(self.sum.wrapping_mul(31).wrapping_add(i as u64));
        }
        if job.hops > 0 {
            // xorshift: a cheap per-worker random peer.
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let peer = WorkerId::from((self.rng % ctx.workers() as u64) as usize);
            let next = Job {
                hops: job.hops - 1,
                ..job
            };
            ctx.send_to(peer, next).expect("peers do not fail here");
        }
    }
}

struct Args {
    workers: Option<usize>,
    interval: Duration,
    iterations: u64,
    clear: bool,
    openmetrics: bool,
}

fn parse() -> Result<Args, Box<dyn std::error::Error>> {
    let mut a = Args {
        workers: None,
        interval: Duration::from_millis(500),
        iterations: 20,
        clear: true,
        openmetrics: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || -> Result<u64, Box<dyn std::error::Error>> {
            Ok(args
                .next()
                .ok_or(format!("{flag} needs a value"))?
                .parse()?)
        };
        match flag.as_str() {
            "--workers" => a.workers = Some(value()? as usize),
            "--interval" => a.interval = Duration::from_millis(value()?.max(1)),
            "--iterations" => a.iterations = value()?,
            "--no-clear" => a.clear = false,
            "--openmetrics" => a.openmetrics = true,
            _ => {
                return Err("usage: top [--workers N] [--interval MS] [--iterations N] \
                            [--no-clear] [--openmetrics]"
                    .into())
            }
        }
    }
    Ok(a)
}

/// `1234567.0` → `"1.23M"`.
fn human(x: f64) -> String {
    match x {
        x if x >= 1e9 => format!("{:.2}G", x / 1e9),
        x if x >= 1e6 => format!("{:.2}M", x / 1e6),
        x if x >= 1e3 => format!("{:.1}k", x / 1e3),
        x => format!("{x:.0}"),
    }
}

fn draw(now: &PoolStats, prev: &PoolStats, dt: Duration, uptime: Duration, frame: u64) -> String {
    let d = now.delta(prev);
    let n = now.workers.len();
    let mut s = String::new();
    s += &format!(
        "shardpool top — {n} workers, up {:.1} s, frame {frame}   total {} msg/s, {} handled, {} in flight\n\n",
        uptime.as_secs_f64(),
        human(d.handled_per_sec(dt)),
        human(now.handled() as f64),
        now.depth(),
    );
    s += &format!(
        "{:>6} {:>5} {:>5} {:>10} {:>10} {:>8} {:>10} {:>10} {:>9} {:>9} {:>6} {:>9}  status\n",
        "worker",
        "cpu",
        "node",
        "handled/s",
        "handled",
        "parks/s",
        "inbox/s",
        "mesh in/s",
        "inbox q",
        "mesh q",
        "stalls",
        "longest"
    );
    for (w, dw) in now.workers.iter().zip(&d.workers) {
        let inbox = d.inbox(w.id).map_or(0.0, |c| c.received_per_sec(dt));
        let inbox_q = now.inbox(w.id).map_or(0, |c| c.depth);
        let mesh: Vec<&ChannelStats> = d
            .channels
            .iter()
            .filter(|c| c.to == w.id && c.from != Endpoint::External)
            .collect();
        let mesh_in: f64 = mesh.iter().map(|c| c.received_per_sec(dt)).sum();
        let mesh_q: usize = mesh.iter().map(|c| c.depth).sum();
        s += &format!(
            "{:>6} {:>5} {:>5} {:>10} {:>10} {:>8} {:>10} {:>10} {:>9} {:>9} {:>6} {:>9}  {}\n",
            format!("w{}", w.id),
            w.cpu.map_or("-".into(), |c| c.to_string()),
            w.numa_node.map_or("-".into(), |c| c.to_string()),
            human(dw.handled_per_sec(dt)),
            human(w.handled as f64),
            human(dw.parks as f64 / dt.as_secs_f64()),
            human(inbox),
            human(mesh_in),
            inbox_q,
            mesh_q,
            w.stalls,
            if w.longest_stall.is_zero() {
                "-".to_string()
            } else {
                format!("{:.0?}", w.longest_stall)
            },
            if w.failed { "FAILED" } else { "ok" },
        );
    }
    // The traffic matrix: messages/s on every channel, sender by row.
    s += "\nmessages/s by channel (row: from, column: to)\n";
    s += &format!("{:>6}", "");
    for to in 0..n {
        s += &format!(" {:>8}", format!("w{to}"));
    }
    s += "\n";
    let mut rows = vec![Endpoint::External];
    rows.extend((0..n).map(|i| Endpoint::Worker(WorkerId::from(i))));
    for from in rows {
        s += &format!("{:>6}", from.to_string());
        for to in 0..n {
            let rate = d
                .channel(from, WorkerId::from(to))
                .map_or(0.0, |c| c.sent_per_sec(dt));
            s += &format!(" {:>8}", human(rate));
        }
        s += "\n";
    }
    let overflowed: u64 = d.channels.iter().map(|c| c.overflowed).sum();
    let full: u64 = d.channels.iter().map(|c| c.full).sum();
    s += &format!(
        "\nthis interval: {} sends found a queue full, {} waited in an overflow\n",
        full, overflowed
    );
    s
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse()?;
    let mut config = PoolConfig::default().affinity(Affinity::None).name("top");
    if let Some(n) = args.workers {
        config = config.workers(n);
    }
    let pool = Pool::start(config, |id: WorkerId| Busy {
        rng: 0x9e37_79b9_7f4a_7c15 ^ (id.index() as u64 + 1),
        sum: 0,
    })?;
    // A service's registry: its own metrics, and the pool's collector.
    let mut registry = Registry::default();
    let frames = Counter::<u64>::default();
    registry.register("top_frames", "Screens drawn", frames.clone());
    registry.register_collector(Box::new(pool.metrics_collector()));

    let stop = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|s| -> Result<(), Box<dyn std::error::Error>> {
        // The load: bursts of jobs, at a rate that follows a slow wave.
        let tx = pool.sender();
        let stop = &stop;
        s.spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let phase = started.elapsed().as_secs_f64() * 0.6;
                let burst = (200.0 + 800.0 * (0.5 + 0.5 * phase.sin())) as u64;
                for _ in 0..burst {
                    let job = Job {
                        hops: (i % 4) as u8,
                        work: 200 + (i % 7) as u32 * 100,
                    };
                    if tx.send_keyed(&i, job).is_err() {
                        return;
                    }
                    i += 1;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });

        let (mut prev, mut prev_at) = (pool.stats(), Instant::now());
        for frame in 1..=args.iterations {
            std::thread::sleep(args.interval);
            let now = pool.stats();
            let screen = draw(&now, &prev, prev_at.elapsed(), started.elapsed(), frame);
            if args.clear {
                print!("\x1b[2J\x1b[H{screen}"); // clear, cursor home
            } else {
                println!("{screen}");
            }
            (prev, prev_at) = (now, Instant::now());
            frames.inc();
        }
        stop.store(true, Ordering::Relaxed);
        Ok(())
    })?;

    if args.openmetrics {
        let mut body = String::new();
        encode(&mut body, &registry)?;
        print!("{body}");
    }
    pool.shutdown()?;
    Ok(())
}
