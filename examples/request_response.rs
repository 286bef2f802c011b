//! Request/response from outside the pool: a key-value store sharded by
//! key, called with `call_keyed` (blocking) from plain threads.
//!
//! ```text
//! cargo run --example request_response -- [--clients 4] [--requests 10000]
//! ```
//!
//! ```text
//!   client thread ──call_keyed(key, |reply| Get { key, reply })──▶ owner of key
//!        ▲                                                           │
//!        └──────────────────── reply.send(value) ◀───────────────────┘
//! ```
//!
//! `call_keyed` builds the request around a fresh `Reply`, sends it to the
//! key's owner and waits for the answer; `reply.send` never blocks. A
//! handler that drops its `Reply` (or panics) ends the call with
//! `CallError::NoReply` instead of a hang. From async code the same calls
//! are `call_keyed_async(..).await` (see `services/examples/tokio_service.rs`).
//!
//! A request about the whole store (`Len`) goes to every worker with
//! `broadcast_with`, which builds one message — with its own `Reply` — per
//! worker; the caller adds up the answers.
use std::collections::HashMap;

use shardpool::prelude::*;
use shardpool::Answer;

enum Msg {
    Put {
        key: String,
        value: u64,
        reply: Reply<Option<u64>>,
    },
    Get {
        key: String,
        reply: Reply<Option<u64>>,
    },
    /// Sent to every shard: answer with your size.
    Len { reply: Reply<usize> },
}

#[derive(Default)]
struct Shard {
    map: HashMap<String, u64>,
}

impl Worker for Shard {
    type Msg = Msg;
    fn handle(&mut self, msg: Msg, _ctx: &mut Context<'_, Msg>) {
        // `send` ignores a caller that gave up; it never blocks.
        match msg {
            Msg::Put { key, value, reply } => reply.send(self.map.insert(key, value)),
            Msg::Get { key, reply } => reply.send(self.map.get(&key).copied()),
            Msg::Len { reply } => reply.send(self.map.len()),
        }
    }
}

fn get(tx: &PoolSender<Msg>, key: &str) -> Result<Option<u64>, CallError<Msg>> {
    tx.call_keyed(key, |reply| Msg::Get {
        key: key.to_string(),
        reply,
    })
}

fn put(tx: &PoolSender<Msg>, key: &str, value: u64) -> Result<Option<u64>, CallError<Msg>> {
    tx.call_keyed(key, |reply| Msg::Put {
        key: key.to_string(),
        value,
        reply,
    })
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
                    let before = get(&tx, &key).expect("get").unwrap_or(0);
                    put(&tx, &key, before + 1).expect("put");
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

    // Ask every shard at once (one message per worker, each with its own
    // Reply), then add up the answers.
    let mut answers: Vec<Answer<usize>> = Vec::new();
    tx.broadcast_with(|_worker| {
        let (reply, answer) = Reply::channel();
        answers.push(answer);
        Msg::Len { reply }
    })?;
    let mut total = 0;
    for answer in answers {
        total += answer.recv()?;
    }
    println!("{total} keys in {} shards", pool.workers());
    assert_eq!(total, clients * (requests.min(100) as usize));

    println!("{}", tx.stats()); // any sender can read the pool's statistics
    pool.shutdown()?;

    // After shutdown a call fails at once and hands the request back.
    match get(&tx, "late") {
        Err(CallError::Send(SendError::Closed(Msg::Get { key, .. }))) => {
            println!("after shutdown: call refused, request for {key:?} handed back")
        }
        Err(e) => return Err(format!("expected Closed, got {e}").into()),
        Ok(_) => return Err("a call after shutdown was answered".into()),
    }
    Ok(())
}
