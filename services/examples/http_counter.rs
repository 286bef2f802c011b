//! A keep-alive HTTP/1.1 hit counter on shardpool: `GET /hit/<key>` adds
//! one to the key's counter and answers the new count. Each worker owns
//! its own `SO_REUSEPORT` listener, the connections it accepted and a share
//! of the counters; a request for a key another worker owns is asked of
//! that worker with `Context::ask`, and answered when the answer message
//! comes back, in request order on its connection (see
//! `shardpool_services::http::server`, and `shardpool_services::http` for
//! when the hop pays off).
//!
//! ```text
//! cargo run --release -p shardpool-services --example http_counter -- --port 8080
//! curl http://127.0.0.1:8080/hit/apples        # 1
//! curl http://127.0.0.1:8080/hit/apples        # 2
//! wrk -t2 -c64 -d10s http://127.0.0.1:8080/hit/apples
//! ```
//!
//! Its peer, the same service on axum over a sharded map, is the
//! `http_counter_axum` example; `services/bench/http-compare.sh` compares
//! the two with `wrk`.
//!
//! Options: `--port P` (default 8080), `--workers N` (default: one per
//! physical core), `--no-pin` (do not pin workers to CPUs), `--stats S`
//! (print each worker's counters every S seconds; default 0 = never),
//! `--io-poll-us U` (`PoolConfig::io_poll_interval`: how long a worker
//! busy with messages goes without polling its sockets).
//! Binds 127.0.0.1 only; runs until killed.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use shardpool_services::cli::{parse_flags, pool_flag, POOL_SWITCHES};
use shardpool_services::http::server::{CounterConfig, HttpCounter};

const USAGE: &str =
    "usage: http_counter [--port P] [--workers N] [--no-pin] [--stats SECONDS] [--io-poll-us MICROS]";

fn main() -> ExitCode {
    let mut port: u16 = 8080;
    let mut stats_every = 0u64;
    let mut config = CounterConfig::default();
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
    let server = match HttpCounter::start(addr, config) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("http_counter: cannot serve on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "http_counter listening on {}; try: curl http://{}/hit/apples",
        server.addr(),
        server.addr()
    );
    loop {
        if stats_every == 0 {
            std::thread::park();
            continue;
        }
        std::thread::sleep(Duration::from_secs(stats_every));
        for (worker, stats) in server.stats(Duration::from_secs(1)) {
            println!("worker {worker}: {stats:?}");
        }
    }
}
