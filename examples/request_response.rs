//! Request/response from outside the pool: a key-value store sharded by
//! key, where each request carries its own reply channel.
//!
//! ```text
//! cargo run --example request_response -- [--clients 4] [--requests 10000]
//! ```
//!
//! ```text
//!   client thread ──send_keyed(key, Get { key, reply })──▶ owner of key
//!        ▲                                                    │
//!        └───────────── reply.send(value) (a oneshot) ◀────────┘
//! ```
//!
//! The "oneshot" is `std::sync::mpsc::sync_channel(1)`: the worker's
//! `reply.send` never blocks (one slot, one reply), and the caller blocks
//! in `recv` until its answer arrives. Any oneshot channel (tokio's,
//! futures', crossbeam's) works the same way; with an async oneshot the
//! caller can `.await` instead of blocking a thread.
//!
//! A request about the whole store (`Len`) is broadcast to every worker,
//! each answering on a clone of the same reply channel; the caller sums the
//! `N` answers.
use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, SyncSender};

use shardpool::prelude::*;

#[derive(Debug)]
enum Msg {
    Put {
        key: String,
        value: u64,
        reply: SyncSender<Option<u64>>,
    },
    Get {
        key: String,
        reply: SyncSender<Option<u64>>,
    },
    /// Broadcast: every shard answers with its size.
    Len { reply: SyncSender<usize> },
}

// Broadcast needs `Msg: Clone`; only `Len` is ever broadcast.
impl Clone for Msg {
    fn clone(&self) -> Self {
        match self {
            Msg::Len { reply } => Msg::Len {
                reply: reply.clone(),
            },
            _ => unreachable!("only Len is broadcast"),
        }
    }
}

#[derive(Default)]
struct Shard {
    map: HashMap<String, u64>,
}

impl Worker for Shard {
    type Msg = Msg;
    fn handle(&mut self, msg: Msg, _ctx: &mut Context<'_, Msg>) {
        // A caller that gave up has dropped its receiver: ignore the error.
        match msg {
            Msg::Put { key, value, reply } => {
                let _ = reply.send(self.map.insert(key, value));
            }
            Msg::Get { key, reply } => {
                let _ = reply.send(self.map.get(&key).copied());
            }
            Msg::Len { reply } => {
                let _ = reply.send(self.map.len());
            }
        }
    }
}

/// The client side: a blocking call that hides the message passing.
fn get(tx: &PoolSender<Msg>, key: &str) -> Result<Option<u64>, Box<dyn std::error::Error>> {
    let (reply, answer) = sync_channel(1);
    tx.send_keyed(
        key,
        Msg::Get {
            key: key.to_string(),
            reply,
        },
    )?;
    Ok(answer.recv()?)
}

fn put(
    tx: &PoolSender<Msg>,
    key: &str,
    value: u64,
) -> Result<Option<u64>, Box<dyn std::error::Error>> {
    let (reply, answer) = sync_channel(1);
    tx.send_keyed(
        key,
        Msg::Put {
            key: key.to_string(),
            value,
            reply,
        },
    )?;
    Ok(answer.recv()?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut clients, mut requests) = (4usize, 10_000u64);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next().map(|v| v.parse::<u64>())) {
            ("--clients", Some(Ok(v))) => clients = v as usize,
            ("--requests", Some(Ok(v))) => requests = v,
            _ => return Err("usage: request_response [--clients N] [--requests N]".into()),
        }
    }

    let config = PoolConfig::default().workers(2).affinity(Affinity::None);
    let pool = Pool::start(config, |_| Shard::default())?;

    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for c in 0..clients {
            let tx = pool.sender(); // one cheap clone per client thread
            s.spawn(move || {
                for i in 0..requests {
                    let key = format!("client{c}:key{}", i % 100);
                    let before = get(&tx, &key).unwrap().unwrap_or(0);
                    put(&tx, &key, before + 1).unwrap();
                }
            });
        }
    });
    let round_trips = clients as u64 * requests * 2;
    let elapsed = started.elapsed();
    println!(
        "{round_trips} request/response round trips from {clients} threads in {:.2?} ({:.1} µs each)",
        elapsed,
        elapsed.as_secs_f64() * 1e6 / round_trips as f64 * clients as f64
    );

    // Each client's keys were updated only by that client, in order, so
    // every key saw get-then-put `requests / 100` times.
    let tx = pool.sender();
    if requests >= 100 {
        assert_eq!(get(&tx, "client0:key7")?, Some(requests / 100));
    }

    // Ask every shard at once and add up the answers.
    let (reply, answers) = sync_channel(pool.workers());
    tx.broadcast(Msg::Len { reply })?;
    let total: usize = answers.iter().take(pool.workers()).sum();
    println!("{total} keys in {} shards", pool.workers());
    assert_eq!(total, clients * (requests.min(100) as usize));

    println!("{}", pool.stats());
    pool.shutdown()?;
    Ok(())
}
