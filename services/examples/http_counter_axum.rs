//! The axum peer of the `http_counter` example: the same hit counter
//! (`GET /hit/<key>` answers the key's new count, same responses) on a
//! tokio multi-thread runtime over a map split into shards, each behind
//! its own `Mutex` — what a Rust user would write without shardpool (see
//! `shardpool_services::http::axum_peer`).
//!
//! ```text
//! cargo run --release -p shardpool-services --example http_counter_axum -- --port 8081
//! curl http://127.0.0.1:8081/hit/apples
//! ```
//!
//! Options: `--port P` (default 8081), `--threads N` (runtime worker
//! threads; default: one per CPU), `--shards N` (default 64). Binds
//! 127.0.0.1 only; runs until killed.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use shardpool_services::cli::parse_flags;
use shardpool_services::http::axum_peer::{AxumConfig, AxumCounter};

const USAGE: &str = "usage: http_counter_axum [--port P] [--threads N] [--shards N]";

fn main() -> ExitCode {
    let mut port: u16 = 8081;
    let mut config = AxumConfig::default();
    let parsed = parse_flags(USAGE, &[], std::env::args().skip(1), |flag, value| {
        let Some(v) = value else { return false };
        match flag {
            "--port" => v.parse().map(|v| port = v).is_ok(),
            "--threads" => v.parse().map(|v| config.threads = Some(v)).is_ok(),
            "--shards" => v.parse().map(|v| config.shards = v).is_ok(),
            _ => false,
        }
    });
    if let Err(code) = parsed {
        return code;
    }
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    match AxumCounter::start(addr, config) {
        Ok(peer) => {
            println!(
                "http_counter_axum listening on {}; try: curl http://{}/hit/apples",
                peer.addr(),
                peer.addr()
            );
            peer.wait();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("http_counter_axum: cannot serve on {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}
