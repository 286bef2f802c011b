//! Cross-core latency: two workers bounce a message back and forth over the
//! mesh and worker 0 records every round trip.
//!
//! ```text
//! cargo run --release --example pingpong -- [--rounds 100000] [--busy] [--unpinned]
//! ```
//!
//! ```text
//!   w0 ──Ping(sent_at)──▶ w1      (ring w0→w1)
//!   w0 ◀──Pong(sent_at)── w1      (ring w1→w0)
//! ```
//!
//! The workers are pinned to two different physical cores when the machine
//! has them. With the default idle strategy (`Backoff`: spin, yield, then
//! park) a worker waiting for the ball usually catches it while spinning;
//! `--busy` uses `IdleStrategy::BusyPoll` (never park: lowest latency, one
//! core at 100% each). The one-way latency is about half the round trip.
use std::sync::mpsc;
use std::time::{Duration, Instant};

use shardpool::prelude::*;

#[derive(Debug)]
enum Msg {
    /// From main: start `rounds` round trips.
    Start {
        rounds: u64,
        done: mpsc::Sender<Vec<Duration>>,
    },
    Ping(Instant),
    Pong(Instant),
}

#[derive(Default)]
struct Player {
    left: u64,
    samples: Vec<Duration>,
    done: Option<mpsc::Sender<Vec<Duration>>>,
}

const PEER: [usize; 2] = [1, 0];

impl Worker for Player {
    type Msg = Msg;
    fn handle(&mut self, msg: Msg, ctx: &mut Context<'_, Msg>) {
        let peer = WorkerId::from(PEER[ctx.id().index()]);
        match msg {
            Msg::Start { rounds, done } => {
                self.left = rounds;
                self.samples = Vec::with_capacity(rounds as usize);
                self.done = Some(done);
                ctx.send_to(peer, Msg::Ping(Instant::now())).unwrap();
            }
            // w1: bounce it straight back.
            Msg::Ping(t) => ctx.send_to(peer, Msg::Pong(t)).unwrap(),
            // w0: one round trip done.
            Msg::Pong(t) => {
                self.samples.push(t.elapsed());
                self.left -= 1;
                if self.left > 0 {
                    ctx.send_to(peer, Msg::Ping(Instant::now())).unwrap();
                } else if let Some(done) = self.done.take() {
                    let _ = done.send(std::mem::take(&mut self.samples));
                }
            }
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut rounds, mut busy, mut pinned) = (100_000u64, false, true);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => rounds = args.next().ok_or("--rounds N")?.parse()?,
            "--busy" => busy = true,
            "--unpinned" => pinned = false,
            _ => return Err("usage: pingpong [--rounds N] [--busy] [--unpinned]".into()),
        }
    }
    let rounds = rounds.max(1);

    let config = |affinity| {
        let c = PoolConfig::default().workers(2).affinity(affinity);
        if busy {
            c.idle(IdleStrategy::BusyPoll)
        } else {
            c
        }
    };
    let pool = if pinned {
        // Two physical cores if there are; fall back to unpinned on a
        // one-core machine.
        Pool::start(config(Affinity::PhysicalCores), |_| Player::default()).or_else(|e| {
            eprintln!("cannot pin 2 workers ({e}); running unpinned");
            Pool::start(config(Affinity::None), |_| Player::default())
        })?
    } else {
        Pool::start(config(Affinity::None), |_| Player::default())?
    };
    for w in &pool.stats().workers {
        println!(
            "w{} on cpu {}",
            w.id,
            w.cpu.map_or("(unpinned)".into(), |c| c.to_string())
        );
    }

    let (done, samples) = mpsc::channel();
    let started = Instant::now();
    pool.sender()
        .send_to(WorkerId::from(0), Msg::Start { rounds, done })?;
    let mut samples = samples.recv()?;
    let elapsed = started.elapsed();
    let stats = pool.stats();
    pool.shutdown()?;

    samples.sort_unstable();
    println!(
        "{rounds} round trips in {elapsed:.2?} ({:.0} per second), idle strategy: {}",
        rounds as f64 / elapsed.as_secs_f64(),
        if busy { "BusyPoll" } else { "Backoff" }
    );
    println!("round trip   p50 {:>9.2?}", percentile(&samples, 0.50));
    println!("             p90 {:>9.2?}", percentile(&samples, 0.90));
    println!("             p99 {:>9.2?}", percentile(&samples, 0.99));
    println!("           p99.9 {:>9.2?}", percentile(&samples, 0.999));
    println!("             max {:>9.2?}", samples[samples.len() - 1]);
    println!(
        "one way ≈ p50 / 2 = {:.2?}; parks: w0 {}, w1 {}",
        percentile(&samples, 0.50) / 2,
        stats.workers[0].parks,
        stats.workers[1].parks
    );
    Ok(())
}
