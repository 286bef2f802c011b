//! A three-stage pipeline, one stage per worker, results passed along the
//! mesh:
//!
//! ```text
//!   main ──Raw("17")──▶ w0 parse ──Parsed(17)──▶ w1 test primality ──Checked──▶ w2 aggregate
//!        (inbox)                  (ring w0→w1)                     (ring w1→w2)
//! ```
//!
//! ```text
//! cargo run --example pipeline -- [--n 100000]
//! ```
//!
//! Each stage keeps its own state and never locks. Because every hop is a
//! single (sender, receiver) pair and shardpool keeps FIFO order per pair,
//! the last stage sees the numbers in the order main sent them — it checks
//! that. The stats table at the end shows the traffic on exactly three
//! channels: `ext→w0`, `w0→w1`, `w1→w2`.
//!
//! Real pipelines usually partition each stage over several workers
//! (`ctx.send_keyed` instead of `ctx.send_to` a fixed stage); the shape
//! stays the same.
use shardpool::prelude::*;

#[derive(Debug)]
enum Msg {
    /// Stage 0 input: a line of text.
    Raw(String),
    /// Stage 1 input: a parsed number.
    Parsed(u64),
    /// Stage 2 input: a number and whether it is prime.
    Checked { n: u64, prime: bool },
}

/// One worker type for every stage; the factory decides which stage a
/// worker runs from its id.
enum Stage {
    Parse {
        bad: u64,
    },
    Prime,
    Aggregate {
        seen: u64,
        primes: u64,
        last: Option<u64>,
        in_order: bool,
    },
}

/// The worker of each stage.
const PARSE: usize = 0;
const PRIME: usize = 1;
const AGGREGATE: usize = 2;

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 1;
    }
    true
}

impl Worker for Stage {
    type Msg = Msg;

    fn handle(&mut self, msg: Msg, ctx: &mut Context<'_, Msg>) {
        match (self, msg) {
            (Stage::Parse { bad }, Msg::Raw(line)) => match line.trim().parse() {
                // `send_to` a peer never blocks: a full ring spills into an
                // overflow the loop flushes, in order.
                Ok(n) => ctx
                    .send_to(WorkerId::from(PRIME), Msg::Parsed(n))
                    .expect("stage 1 is up"),
                Err(_) => *bad += 1,
            },
            (Stage::Prime, Msg::Parsed(n)) => {
                let prime = is_prime(n);
                ctx.send_to(WorkerId::from(AGGREGATE), Msg::Checked { n, prime })
                    .expect("stage 2 is up");
            }
            (
                Stage::Aggregate {
                    seen,
                    primes,
                    last,
                    in_order,
                },
                Msg::Checked { n, prime },
            ) => {
                *seen += 1;
                *primes += u64::from(prime);
                *in_order &= last.is_none_or(|l| l < n);
                *last = Some(n);
            }
            _ => unreachable!("a message reached the wrong stage"),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut n: u64 = 100_000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--n", Some(v)) => n = v.parse()?,
            _ => return Err("usage: pipeline [--n COUNT]".into()),
        }
    }

    // Three stages need three workers. Unpinned, so this runs on any
    // machine; on a machine with >= 3 cores use Affinity::PhysicalCores.
    let config = PoolConfig::default().workers(3).affinity(Affinity::None);
    let pool = Pool::start(config, |id: WorkerId| match id.index() {
        0 => Stage::Parse { bad: 0 },
        1 => Stage::Prime,
        _ => Stage::Aggregate {
            seen: 0,
            primes: 0,
            last: None,
            in_order: true,
        },
    })?;

    let tx = pool.sender();
    for i in 0..n {
        tx.send_to(WorkerId::from(PARSE), Msg::Raw(i.to_string()))?;
    }
    tx.send_to(WorkerId::from(PARSE), Msg::Raw("not a number".into()))?;

    // Everything sent is handled before shutdown returns, including the
    // messages still travelling between the stages.
    println!("{}", pool.stats());
    let stages = pool.shutdown()?;
    let Stage::Parse { bad } = stages[PARSE] else {
        unreachable!()
    };
    let Stage::Aggregate {
        seen,
        primes,
        in_order,
        ..
    } = stages[AGGREGATE]
    else {
        unreachable!()
    };
    println!("{seen} numbers through 3 stages ({bad} bad lines dropped by stage 0)");
    println!("{primes} primes below {n}; arrived in order: {in_order}");
    assert_eq!(seen, n);
    assert!(in_order, "FIFO per (sender, receiver) pair");
    Ok(())
}
