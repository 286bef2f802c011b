//! A Redis-protocol (RESP2) key-value server on shardpool: each worker owns
//! a shard of the keys, its own `SO_REUSEPORT` listener and the
//! connections it accepted; a request for another worker's key goes over
//! the mesh and its answer comes back the same way (see
//! `shardpool_services::server`).
//!
//! ```text
//! cargo run --release --example kv -- --port 6380
//! redis-cli -p 6380 SET greeting hello
//! redis-benchmark -h 127.0.0.1 -p 6380 -t set,get,incr -n 1000000 -c 50 -P 16 -q
//! ```
//!
//! Options: `--port P` (default 6380), `--workers N` (default: one per
//! physical core), `--no-pin` (do not pin workers to CPUs), `--stats S`
//! (print the per-worker table every S seconds; default 0 = never),
//! `--io-poll-us U` (`PoolConfig::io_poll_interval`). Binds 127.0.0.1
//! only; runs until killed.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use shardpool::prelude::*;
use shardpool_services::server::{KvServer, ServerConfig};

const USAGE: &str =
    "usage: kv [--port P] [--workers N] [--no-pin] [--stats SECONDS] [--io-poll-us MICROS]";

fn main() -> ExitCode {
    let mut port: u16 = 6380;
    let mut stats_every = 0u64;
    let mut config = ServerConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--no-pin" {
            config.pool = config.pool.affinity(Affinity::None);
            continue;
        }
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        let value = args.next();
        let parsed = match (flag.as_str(), value.as_deref()) {
            ("--port", Some(v)) => v.parse().map(|v| port = v).is_ok(),
            ("--workers", Some(v)) => v
                .parse()
                .map(|n| config.pool = config.pool.clone().workers(n))
                .is_ok(),
            ("--stats", Some(v)) => v.parse().map(|s| stats_every = s).is_ok(),
            ("--io-poll-us", Some(v)) => v
                .parse()
                .map(|us| {
                    config.pool = config
                        .pool
                        .clone()
                        .io_poll_interval(Duration::from_micros(us))
                })
                .is_ok(),
            _ => false,
        };
        if !parsed {
            eprintln!("{USAGE} (bad or missing value for {flag})");
            return ExitCode::from(2);
        }
    }
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let server = match KvServer::start(addr, config) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("kv: cannot serve on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "kv listening on {} ({} workers); try: redis-cli -p {}",
        server.addr(),
        server.pool_stats().workers.len(),
        server.addr().port()
    );
    loop {
        if stats_every == 0 {
            std::thread::park();
            continue;
        }
        std::thread::sleep(Duration::from_secs(stats_every));
        println!("{}", server.stats_table(Duration::from_secs(1)));
        println!("{}", server.pool_stats());
    }
}
