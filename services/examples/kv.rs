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

use shardpool_services::cli::{parse_flags, pool_flag, POOL_SWITCHES};
use shardpool_services::server::{KvServer, ServerConfig};

const USAGE: &str =
    "usage: kv [--port P] [--workers N] [--no-pin] [--stats SECONDS] [--io-poll-us MICROS]";

fn main() -> ExitCode {
    let mut port: u16 = 6380;
    let mut stats_every = 0u64;
    let mut config = ServerConfig::default();
    let parsed = parse_flags(
        USAGE,
        POOL_SWITCHES,
        std::env::args().skip(1),
        |flag, value| {
            if let Some(taken) = pool_flag(&mut config.pool, flag, value) {
                return taken;
            }
            match (flag, value) {
                ("--port", Some(v)) => v.parse().map(|v| port = v).is_ok(),
                ("--stats", Some(v)) => v.parse().map(|s| stats_every = s).is_ok(),
                _ => false,
            }
        },
    );
    if let Err(code) = parsed {
        return code;
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
