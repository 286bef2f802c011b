//! The tokio peer of the shardpool kv server: a Redis-protocol key-value
//! server on a tokio multi-thread runtime over a sharded `Mutex<Store>`.
//!
//! ```text
//! cargo run --release -p shardpool-services --example kv_tokio -- --port 6380
//! redis-benchmark -h 127.0.0.1 -p 6380 -t set,get,incr -P 16
//! ```
//!
//! Options: `--port P` (default 6380), `--shards N` (default 64),
//! `--threads N` (default: one per CPU), `--pool N`: no locks, the store
//! sharded over a shardpool of N workers (0: one per CPU) that the tokio
//! tasks call with `send_to_async` — tokio in front, the pool behind. Binds
//! 127.0.0.1 only; runs until killed.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use shardpool_services::cli::parse_flags;
use shardpool_services::tokio_peer::{Backend, PeerConfig, TokioPeer};

const USAGE: &str = "usage: kv_tokio [--port P] [--shards N] [--threads N] [--pool N]";

fn main() -> ExitCode {
    let mut port: u16 = 6380;
    let mut config = PeerConfig::default();
    let parsed = parse_flags(USAGE, &[], std::env::args().skip(1), |flag, value| {
        let Some(v) = value else { return false };
        match flag {
            "--port" => v.parse().map(|v| port = v).is_ok(),
            "--shards" => v.parse().map(|v| config.shards = v).is_ok(),
            "--threads" => v.parse().map(|v| config.threads = Some(v)).is_ok(),
            "--pool" => v
                .parse()
                .map(|workers| config.backend = Backend::Pool { workers })
                .is_ok(),
            _ => false,
        }
    });
    if let Err(code) = parsed {
        return code;
    }
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    match TokioPeer::start(addr, config) {
        Ok(peer) => {
            println!("kv_tokio listening on {}", peer.addr());
            peer.wait();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kv_tokio: cannot serve on {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}
