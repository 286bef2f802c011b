//! The hit counter on axum: what a Rust user would write without
//! shardpool, and the peer the shardpool server is compared with.
//!
//! A tokio multi-thread runtime serves the router; the counters live in a
//! map split into shards, each behind its own `Mutex` (a key's shard is
//! its hash modulo the shard count), so that two requests contend only
//! when their keys share a shard. The route and the responses are those of
//! the shardpool server (see [the module above](super)); hyper writes the
//! `content-length` and `date` headers and answers `400` to a malformed
//! request.
//!
//! ```no_run
//! use shardpool_services::http::axum_peer::{AxumCounter, AxumConfig};
//!
//! let peer = AxumCounter::start("127.0.0.1:8081".parse()?, AxumConfig::default())?;
//! println!("try: curl http://{}/hit/apples", peer.addr());
//! peer.stop();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;

use crate::runtime_thread::RuntimeThread;

/// How the peer is set up.
#[derive(Clone, Debug)]
pub struct AxumConfig {
    /// Runtime worker threads (default: tokio's, one per CPU).
    pub threads: Option<usize>,
    /// Map shards, each behind its own lock (default 64).
    pub shards: usize,
}

impl Default for AxumConfig {
    fn default() -> Self {
        AxumConfig {
            threads: None,
            shards: 64,
        }
    }
}

/// The counters: `shards` maps, each behind its own lock.
struct Counters {
    shards: Vec<Mutex<HashMap<String, u64, ahash::RandomState>>>,
    hasher: ahash::RandomState,
}

impl Counters {
    fn hit(&self, key: String) -> u64 {
        let shard = self.hasher.hash_one(key.as_str()) as usize % self.shards.len();
        // A panic cannot leave a count half-written: use the map anyway.
        let mut map = self.shards[shard]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = map.entry(key).or_insert(0);
        *count += 1;
        *count
    }
}

/// `GET /hit/{key}` (and `HEAD`, which axum routes to the same handler).
async fn hit(
    State(counters): State<Arc<Counters>>,
    Path(key): Path<String>,
) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    let count = counters.hit(key);
    (
        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{count}\n"),
    )
}

/// The router, on its own (no runtime, no listener).
fn router(shards: usize) -> Router {
    let counters = Arc::new(Counters {
        shards: (0..shards.max(1))
            .map(|_| Mutex::new(HashMap::with_hasher(super::seeded_hasher())))
            .collect(),
        hasher: super::seeded_hasher(),
    });
    Router::new()
        .route("/hit/{key}", get(hit))
        .with_state(counters)
}

/// A running axum hit counter.
pub struct AxumCounter {
    addr: SocketAddr,
    runtime: RuntimeThread,
}

impl AxumCounter {
    /// Binds `addr` (port 0 picks a free port) and serves on a new runtime.
    ///
    /// # Errors
    /// Binding or building the runtime failed.
    pub fn start(addr: SocketAddr, config: AxumConfig) -> io::Result<AxumCounter> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let app = router(config.shards);
        // Keep-alive connections do not end a graceful shutdown: give them
        // a moment, then drop them.
        let grace = Duration::from_secs(1);
        let runtime =
            RuntimeThread::spawn("http-axum", config.threads, grace, |stopped| async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                // As the shardpool server: responses leave at once.
                let listener = listener.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            })?;
        Ok(AxumCounter { addr, runtime })
    }

    /// The address it serves on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Blocks the calling thread while the peer serves.
    pub fn wait(mut self) {
        self.runtime.wait();
    }

    /// Stops accepting, closes the connections and joins the runtime.
    pub fn stop(mut self) {
        self.runtime.stop();
    }
}
