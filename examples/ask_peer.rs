//! A worker asks another worker and carries on when the answer arrives —
//! request/response *inside* the pool, without blocking a worker.
//!
//! ```text
//! cargo run --example ask_peer -- [--keys 1000] [--workers 4]
//! ```
//!
//! Each worker owns some counters (by key). A client asks the owner of `a`
//! for `a + b`. The owner of `a` knows `a` but not `b`, so it asks the
//! owner of `b` with [`Context::ask_keyed`] and goes on handling other
//! messages. The question is an ordinary message carrying an [`Asked`];
//! the owner of `b` answers with `asked.send(value)`. The answer comes back
//! to the asker as one of its own messages — `Got`, built by the `then`
//! closure, which also carries what the asker needs to finish (its part of
//! the sum and the client's `Reply`) — and the asker answers the client.
//!
//! ```text
//!  client ──call_keyed(a, Sum{a, b, reply})──▶ owner(a) ──Get{key: b, asked}──▶ owner(b)
//!    ▲                                            │   ▲                          │
//!    │                   then(outcome) builds Got │   └───── asked.send(value) ──┘
//!    └──────── reply.send(Ok(a + b)) ◀── Got ◀────┘
//! ```
//!
//! Every ask ends exactly once, as one `Got`: `Ok(value)`, or
//! `Err(AskError::NoReply)` as soon as the `Asked` is dropped unanswered
//! (here: the owner of `b` does not know `b`; also when it panics, fails
//! or restarts with the question), or `Err(AskError::Timeout)` when the
//! deadline passes first (a peer stuck or far behind); an answer after
//! that is dropped. The asker passes either error on to its client, so no
//! client waits for an answer that cannot come.
//!
//! Why not `call` from inside a worker? A worker blocked waiting for a
//! peer handles nothing, and two workers asking each other that way
//! deadlock (ScyllaDB hit this: scylladb#1088). Asking is a send and
//! answering is a send; neither blocks.
//!
//! [`Context::ask_keyed`]: shardpool::Context::ask_keyed
//! [`Asked`]: shardpool::Asked
use std::collections::HashMap;
use std::time::Duration;

use shardpool::prelude::*;

/// How long an owner waits for a peer's answer before giving up.
const DEADLINE: Duration = Duration::from_secs(1);

/// What a client gets: the sum, or why a peer could not give its part.
type SumReply = Reply<Result<u64, AskError>>;

enum Msg {
    /// From outside: set a counter.
    Set { key: u64, value: u64 },
    /// From outside: the sum of two counters, owned by any workers.
    Sum { a: u64, b: u64, reply: SumReply },
    /// Worker to worker: the question — what is `key`?
    Get { key: u64, asked: Asked<u64> },
    /// The outcome of an ask, built by its `then` on the asker's thread,
    /// with the asker's part of the sum and the client's reply.
    Got {
        outcome: Result<u64, AskError>,
        partial: u64,
        reply: SumReply,
    },
}

#[derive(Default)]
struct Owner {
    counters: HashMap<u64, u64>,
    asked: u64,
    answered: u64,
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
                self.asked += 1;
                // Never blocks; asking ourselves (when we own `b` too) is
                // fine. `then` runs later, on this thread, and need not be
                // `Send`; here it only packs the outcome into a message.
                let asked = ctx.ask_keyed(
                    &b,
                    |asked| Msg::Get { key: b, asked },
                    move |outcome| Msg::Got {
                        outcome,
                        partial,
                        reply,
                    },
                    DEADLINE,
                );
                // Refused only while the pool is stopping: the question is
                // handed back and `then` dropped unrun, which drops the
                // client's `Reply`, ending its call with `NoReply`.
                drop(asked);
            }
            Msg::Get { key, asked } => match self.counters.get(&key) {
                Some(&value) => asked.send(value),
                // Dropping the `Asked` unanswered tells the asker
                // `NoReply` at once, not at the deadline.
                None => drop(asked),
            },
            Msg::Got {
                outcome,
                partial,
                reply,
            } => {
                self.answered += 1;
                let sum = match outcome {
                    Ok(value) => Ok(partial + value),
                    // The owner of `b` did not answer within DEADLINE
                    // (stuck, or far behind). Its answer, if it comes
                    // later, is dropped: this arm never runs twice.
                    Err(AskError::Timeout) => Err(AskError::Timeout),
                    // It dropped the question (unknown key), or panicked,
                    // failed or restarted holding it: known at once.
                    Err(other) => Err(other),
                };
                reply.send(sum);
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
        assert_eq!(sum, Ok(a * 10 + b * 10), "sum of {a} and {b}");
    }
    println!(
        "{keys} sums in {:.2?}, {cross} of them needing a value from another worker",
        started.elapsed()
    );

    // A key nobody has: its owner drops the question, and the asker hears
    // `NoReply` at once, long before its deadline.
    let missing = keys;
    let started = std::time::Instant::now();
    let sum = tx.call_keyed(&0u64, |reply| Msg::Sum {
        a: 0,
        b: missing,
        reply,
    })?;
    assert_eq!(sum, Err(AskError::NoReply));
    println!(
        "sum with unknown key {missing}: {} (after {:.2?}, deadline {DEADLINE:?})",
        sum.unwrap_err(),
        started.elapsed()
    );

    let owners = pool.shutdown()?;
    let asked: u64 = owners.iter().map(|o| o.asked).sum();
    let answered: u64 = owners.iter().map(|o| o.answered).sum();
    assert_eq!(asked, keys + 1);
    assert_eq!(answered, asked, "every ask ended exactly once");
    Ok(())
}
