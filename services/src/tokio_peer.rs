//! The tokio peer: the kv engine on a tokio multi-thread runtime over a
//! sharded `Mutex<Store>` — what a Rust user would write without shardpool.
//!
//! Every connection is a task; any runtime thread may run it. A command
//! locks the shard of its key (a split command locks its shards one after
//! another, never two at once), so threads contend only when they touch the
//! same shard at the same moment. The same [`kv`](crate::kv) engine
//! answers, so a benchmark against the shardpool kv server compares the
//! runtimes, not the parsers.
//!
//! ```no_run
//! use shardpool_services::tokio_peer::{PeerConfig, TokioPeer};
//!
//! let peer = TokioPeer::start("127.0.0.1:0".parse()?, PeerConfig::default())?;
//! println!("serving RESP on {}", peer.addr());
//! peer.stop();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::kv::{
    execute_keyless, route, Command, KvStats, Limits, Reply, Request, Route, Session, Store,
};

/// How the peer is set up.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// Lock shards (default 64): more shards, less contention.
    pub shards: usize,
    /// Runtime threads (default: tokio's, one per CPU).
    pub threads: Option<usize>,
    /// Request limits per connection.
    pub limits: Limits,
    /// How often expired keys are swept (default 100 ms).
    pub sweep_interval: Duration,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            shards: 64,
            threads: None,
            limits: Limits::default(),
            sweep_interval: Duration::from_millis(100),
        }
    }
}

/// The sharded store and the counters, shared by every connection task.
struct Shared {
    shards: Vec<Mutex<Store>>,
    hasher: RandomState,
    limits: Limits,
    connections_accepted: AtomicU64,
    connections_closed: AtomicU64,
    commands: AtomicU64,
    cross_shard: AtomicU64,
    protocol_errors: AtomicU64,
}

impl Shared {
    fn shard_of(&self, key: &[u8]) -> usize {
        (self.hasher.hash_one(key) % self.shards.len() as u64) as usize
    }

    fn on_shard(&self, shard: usize, command: Command) -> Reply {
        self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .execute(command)
    }

    fn execute(&self, command: Command) -> Reply {
        match route(command, self.shards.len(), |key| self.shard_of(key)) {
            Route::Anywhere(command) => execute_keyless(command),
            Route::Shard(shard, command) => self.on_shard(shard, command),
            Route::Fanout(fanout) => {
                self.cross_shard.fetch_add(1, Ordering::Relaxed);
                let (parts, merge) = fanout.into_parts();
                let replies = parts
                    .into_iter()
                    .map(|(shard, command)| self.on_shard(shard, command))
                    .collect();
                merge.merge(replies)
            }
        }
    }

    fn stats(&self) -> KvStats {
        KvStats {
            connections_accepted: self.connections_accepted.load(Ordering::Relaxed),
            connections_closed: self.connections_closed.load(Ordering::Relaxed),
            commands: self.commands.load(Ordering::Relaxed),
            cross_shard: self.cross_shard.load(Ordering::Relaxed),
            protocol_errors: self.protocol_errors.load(Ordering::Relaxed),
        }
    }
}

/// A running tokio peer. [`TokioPeer::stop`] (or dropping it) stops the
/// runtime and closes every connection.
pub struct TokioPeer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TokioPeer {
    /// Binds `addr` and serves RESP on it from a new runtime.
    ///
    /// # Errors
    /// Binding or building the runtime failed.
    pub fn start(addr: SocketAddr, config: PeerConfig) -> io::Result<TokioPeer> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.enable_all().thread_name("kv-tokio");
        if let Some(threads) = config.threads {
            builder.worker_threads(threads.max(1));
        }
        let runtime = builder.build()?;
        let shared = Arc::new(Shared {
            shards: (0..config.shards.max(1))
                .map(|_| Mutex::new(Store::new()))
                .collect(),
            hasher: RandomState::new(),
            limits: config.limits,
            connections_accepted: AtomicU64::new(0),
            connections_closed: AtomicU64::new(0),
            commands: AtomicU64::new(0),
            cross_shard: AtomicU64::new(0),
            protocol_errors: AtomicU64::new(0),
        });
        let (stop, stopped) = oneshot::channel();
        let serving = Arc::clone(&shared);
        let sweep = config.sweep_interval;
        let thread = std::thread::Builder::new()
            .name("kv-tokio-main".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(listener) else {
                        return;
                    };
                    tokio::spawn(sweep_expired(Arc::clone(&serving), sweep));
                    tokio::select! {
                        _ = accept_loop(listener, serving) => {}
                        _ = stopped => {}
                    }
                });
                runtime.shutdown_timeout(Duration::from_secs(5));
            })?;
        Ok(TokioPeer {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address it serves on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Counters over all connections so far.
    pub fn stats(&self) -> KvStats {
        self.shared.stats()
    }

    /// Blocks the calling thread while the peer serves (until it stops).
    pub fn wait(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Stops accepting, closes every connection and joins the runtime.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for TokioPeer {
    fn drop(&mut self) {
        self.stop_now();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                shared.connections_accepted.fetch_add(1, Ordering::Relaxed);
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    serve_connection(stream, &shared).await;
                    shared.connections_closed.fetch_add(1, Ordering::Relaxed);
                });
            }
            // Out of file descriptors and the like: back off, keep serving.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn sweep_expired(shared: Arc<Shared>, every: Duration) {
    let mut interval = tokio::time::interval(every);
    loop {
        interval.tick().await;
        for shard in &shared.shards {
            shard
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .expire_some(256);
        }
    }
}

/// Reads requests, answers each pipeline batch with one write, until the
/// client leaves, sends garbage (error reply, then close) or says QUIT.
async fn serve_connection(mut stream: TcpStream, shared: &Shared) {
    let mut session = Session::new(shared.limits);
    loop {
        session.input_mut().reserve(16 * 1024);
        match stream.read_buf(session.input_mut()).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut commands = 0;
        while let Some(request) = session.next_request() {
            let reply = match request {
                Request::Command(command) => shared.execute(command),
                Request::Invalid(reply) => reply,
                Request::Fatal(reply) => {
                    shared.protocol_errors.fetch_add(1, Ordering::Relaxed);
                    reply
                }
            };
            commands += 1;
            session.push_reply(&reply);
        }
        shared.commands.fetch_add(commands, Ordering::Relaxed);
        if !session.output().is_empty() {
            if stream.write_all(session.output()).await.is_err() {
                return;
            }
            session.output_mut().clear();
        }
        if session.is_closing() {
            let _ = stream.shutdown().await;
            return;
        }
    }
}
