//! A worker asks another worker and carries on when the answer arrives —
//! request/response *inside* the pool, without blocking a worker.
//!
//! ```text
//! cargo run --example ask_peer -- [--keys 1000] [--workers 4]
//! ```
//!
//! Each worker owns some counters (by key). A client asks the owner of `a`
//! for `a + b`. The owner of `a` knows `a` but not `b`, so it sends an
//! `Ask` to the owner of `b` over the mesh, parks the client's `Reply` in a
//! table under a request id, and goes on handling other messages. The owner
//! of `b` answers with an ordinary message back to the asker; when that
//! `Told` arrives, the asker takes the parked `Reply` out of its table and
//! answers the client.
//!
//! ```text
//!  client ──call_keyed(a, Sum{a, b, reply})──▶ owner(a) ──Ask{id, b}──▶ owner(b)
//!    ▲                                            │   ▲                    │
//!    │                          parks reply as id │   └──Told{id, value}───┘
//!    └───────────── reply.send(a + b) ◀───────────┘
//! ```
//!
//! Why not `call` from inside a worker? A worker blocked waiting for a
//! peer handles nothing, and two workers asking each other that way
//! deadlock (ScyllaDB hit this: scylladb#1088). Worker-to-worker sends never
//! block, so asking is a send and answering is a send.
//!
//! The peer answers whoever asked: `ctx.source()` names the sender of the
//! message being handled (a worker, for a mesh message), so `Ask` carries
//! no return address.
use std::collections::HashMap;

use shardpool::prelude::*;

enum Msg {
    /// From outside: set a counter.
    Set { key: u64, value: u64 },
    /// From outside: the sum of two counters, owned by any workers.
    Sum { a: u64, b: u64, reply: Reply<u64> },
    /// Worker to worker: what is `key`? Answer the sender, quoting `id`.
    Ask { id: u64, key: u64 },
    /// Worker to worker: the answer to request `id`.
    Told { id: u64, value: u64 },
}

/// A request waiting for a peer's answer.
struct Waiting {
    partial: u64,
    reply: Reply<u64>,
}

#[derive(Default)]
struct Owner {
    counters: HashMap<u64, u64>,
    waiting: HashMap<u64, Waiting>,
    next_id: u64,
    asked: u64,
}

impl Worker for Owner {
    type Msg = Msg;
    fn handle(&mut self, msg: Msg, ctx: &mut Context<'_, Msg>) {
        match msg {
            Msg::Set { key, value } => {
                self.counters.insert(key, value);
            }
            Msg::Sum { a, b, reply } => {
                let partial = self.counters.get(&a).copied().unwrap_or(0);
                let id = self.next_id;
                self.next_id += 1;
                self.waiting.insert(id, Waiting { partial, reply });
                self.asked += 1;
                let ask = Msg::Ask { id, key: b };
                // Never blocks; sending to ourselves is fine too.
                if let Err(e) = ctx.send_keyed(&b, ask) {
                    // Only while the pool is stopping: drop the request,
                    // which ends the client's call with NoReply.
                    drop(e);
                    self.waiting.remove(&id);
                }
            }
            Msg::Ask { id, key } => {
                let value = self.counters.get(&key).copied().unwrap_or(0);
                // An `Ask` only ever comes from a worker (itself included).
                if let Some(Endpoint::Worker(asker)) = ctx.source() {
                    let _ = ctx.send_to(asker, Msg::Told { id, value });
                }
            }
            Msg::Told { id, value } => {
                if let Some(w) = self.waiting.remove(&id) {
                    w.reply.send(w.partial + value);
                }
            }
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut keys, mut workers) = (1000u64, 4usize);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next().map(|v| v.parse::<u64>())) {
            ("--keys", Some(Ok(v))) if v > 0 => keys = v,
            ("--workers", Some(Ok(v))) if v > 0 => workers = v as usize,
            _ => return Err("usage: ask_peer [--keys N] [--workers N]".into()),
        }
    }
    let config = PoolConfig::default()
        .workers(workers)
        .affinity(Affinity::None);
    let pool = Pool::start(config, |_| Owner::default())?;
    let tx = pool.sender();

    for key in 0..keys {
        tx.send_keyed(
            &key,
            Msg::Set {
                key,
                value: key * 10,
            },
        )?;
    }
    let started = std::time::Instant::now();
    let mut cross = 0;
    for a in 0..keys {
        let b = (a * 7 + 3) % keys;
        if tx.worker_for(&a) != tx.worker_for(&b) {
            cross += 1;
        }
        let sum = tx.call_keyed(&a, |reply| Msg::Sum { a, b, reply })?;
        assert_eq!(sum, a * 10 + b * 10, "sum of {a} and {b}");
    }
    println!(
        "{keys} sums in {:.2?}, {cross} of them needing a value from another worker",
        started.elapsed()
    );
    let owners = pool.shutdown()?;
    let asked: u64 = owners.iter().map(|o| o.asked).sum();
    assert_eq!(asked, keys);
    assert!(
        owners.iter().all(|o| o.waiting.is_empty()),
        "every request was answered"
    );
    Ok(())
}
