//! A tokio service that calls into a shardpool: a line-protocol counter
//! server whose connection tasks `call_keyed_async` the worker that owns
//! each key — tokio does the networking, the pool owns the state, and no
//! executor thread ever blocks on the pool.
//!
//! ```text
//! cargo run -p shardpool-services --example tokio_service -- [--clients 8] [--requests 2000]
//! ```
//!
//! Protocol, one request per line: `INCR key` answers the new value,
//! `GET key` the current one (0 if unknown); anything else gets
//! `ERR ...`. The example binds 127.0.0.1 on a free port, runs `--clients`
//! client tasks against itself, checks every answer, prints the pool's
//! statistics and exits.
//!
//! ```text
//!  tokio task (one per connection)            shardpool worker (owns key)
//!   read line ─▶ call_keyed_async(key, |reply| Incr{key, reply}).await ─▶ handle
//!   write answer ◀──────────────────── reply.send(value) ◀──────────────────┘
//! ```
//!
//! While a worker's inbox is full, `call_keyed_async` waits without
//! blocking the executor thread (the worker wakes the task when it frees a
//! slot), so one slow shard slows only the connections that need it.
//!
//! An awaited call never spins: a poll that finds no answer yields the
//! runtime's thread to the other tasks, and the worker's `reply.send`
//! wakes the task. (`PoolConfig::call_spin` applies to the blocking
//! `call` only.)

use std::collections::HashMap;
use std::net::SocketAddr;

use shardpool::prelude::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

enum Msg {
    Incr { key: String, reply: Reply<u64> },
    Get { key: String, reply: Reply<u64> },
}

#[derive(Default)]
struct Counters(HashMap<String, u64>);

impl Worker for Counters {
    type Msg = Msg;
    fn handle(&mut self, msg: Msg, _ctx: &mut Context<'_, Msg>) {
        match msg {
            Msg::Incr { key, reply } => {
                let n = self.0.entry(key).or_default();
                *n += 1;
                reply.send(*n);
            }
            Msg::Get { key, reply } => reply.send(self.0.get(&key).copied().unwrap_or(0)),
        }
    }
}

/// One request line to one answer line.
async fn answer(tx: &PoolSender<Msg>, line: &str) -> String {
    let mut words = line.split_whitespace();
    let result = match (words.next(), words.next(), words.next()) {
        (Some("INCR"), Some(key), None) => {
            let key = key.to_string();
            tx.call_keyed_async(&key, |reply| Msg::Incr {
                key: key.clone(),
                reply,
            })
            .await
        }
        (Some("GET"), Some(key), None) => {
            let key = key.to_string();
            tx.call_keyed_async(&key, |reply| Msg::Get {
                key: key.clone(),
                reply,
            })
            .await
        }
        _ => return "ERR expected INCR key or GET key".into(),
    };
    match result {
        Ok(n) => n.to_string(),
        // Closed: the pool is shutting down; NoReply: the handler failed.
        Err(e) => format!("ERR {e}"),
    }
}

async fn serve(listener: TcpListener, tx: PoolSender<Msg>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut out = answer(&tx, &line).await;
                out.push('\n');
                if write.write_all(out.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// A client: `requests` INCRs over its own keys, then reads one back.
async fn client(addr: SocketAddr, id: u64, requests: u64) -> std::io::Result<()> {
    let stream = TcpStream::connect(addr).await?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut ask = async |line: String| -> std::io::Result<String> {
        write.write_all(format!("{line}\n").as_bytes()).await?;
        lines
            .next_line()
            .await?
            .ok_or_else(|| std::io::Error::other("server closed"))
    };
    for i in 0..requests {
        let got = ask(format!("INCR c{id}:k{}", i % 10)).await?;
        assert_eq!(got, (i / 10 + 1).to_string(), "client {id} request {i}");
    }
    let got = ask(format!("GET c{id}:k0")).await?;
    assert_eq!(got, requests.div_ceil(10).to_string());
    assert!(ask("HELLO".into()).await?.starts_with("ERR"));
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut clients, mut requests) = (8u64, 2_000u64);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next().map(|v| v.parse::<u64>())) {
            ("--clients", Some(Ok(v))) => clients = v,
            ("--requests", Some(Ok(v))) => requests = v,
            _ => return Err("usage: tokio_service [--clients N] [--requests N]".into()),
        }
    }
    let config = PoolConfig::default().workers(2).affinity(Affinity::None);
    let pool = Pool::start(config, |_| Counters::default())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .build()?;
    let started = std::time::Instant::now();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(serve(listener, pool.sender()));
        let tasks: Vec<_> = (0..clients)
            .map(|id| tokio::spawn(client(addr, id, requests)))
            .collect();
        for t in tasks {
            t.await??;
        }
        server.abort();
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    let calls = clients * (requests + 1);
    println!(
        "{calls} calls from {clients} tokio connections in {:.2?}",
        started.elapsed()
    );
    println!("{}", pool.stats());
    pool.shutdown()?;
    Ok(())
}
