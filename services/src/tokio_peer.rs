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
//! With [`Backend::Pool`] the same tokio front end keeps no locks: each
//! shard of the store is owned by a shardpool worker, and a connection task
//! hands every command of a pipeline batch to its shard's worker with
//! [`send_to_async`](shardpool::PoolSender::send_to_async) and a
//! [`shardpool::Reply`], then awaits the answers in order — "tokio in
//! front, the pool behind", the design the serving issue made possible.
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
use std::time::Duration;

use shardpool::{Affinity, Answer, Context, Pool, PoolConfig, PoolSender, Worker, WorkerId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::kv::{
    execute_keyless, route, Command, FanoutMerge, KvStats, Limits, Reply, Request, Route, Session,
    Store,
};
use crate::runtime_thread::RuntimeThread;

/// Where the peer's commands run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// A sharded `Mutex<Store>`, locked by the connection task (default).
    #[default]
    Locks,
    /// A shardpool of `workers` workers, each owning one shard of the
    /// store; connection tasks send each command to its shard's worker and
    /// await the answer.
    Pool {
        /// Pool workers: 0 for one per CPU, pinned (the pool's default);
        /// any other count runs that many, unpinned.
        workers: usize,
    },
}

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
    /// Where commands run (default: the sharded locks).
    pub backend: Backend,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            shards: 64,
            threads: None,
            limits: Limits::default(),
            sweep_interval: Duration::from_millis(100),
            backend: Backend::Locks,
        }
    }
}

/// A command and where its answer goes: the message of a pool backend.
type ShardCall = (Command, shardpool::Reply<Reply>);

/// One shard of the store, owned by a pool worker.
struct ShardWorker {
    store: Store,
}

impl Worker for ShardWorker {
    type Msg = ShardCall;

    fn handle(&mut self, (command, reply): ShardCall, _: &mut Context<'_, ShardCall>) {
        reply.send(self.store.execute(command));
    }

    fn tick(&mut self, _: &mut Context<'_, ShardCall>) {
        self.store.expire_some(256);
    }
}

/// A command's reply: ready now, or awaited from one or several shards.
enum Pending {
    Ready(Reply),
    One(Answer<Reply>),
    Gather(Vec<Answer<Reply>>, FanoutMerge),
}

impl Pending {
    async fn finish(self) -> Reply {
        const GONE: Reply = Reply::error("ERR shard worker stopped");
        match self {
            Pending::Ready(reply) => reply,
            Pending::One(answer) => answer.await.unwrap_or(GONE),
            Pending::Gather(answers, merge) => {
                let mut replies = Vec::with_capacity(answers.len());
                for answer in answers {
                    replies.push(answer.await.unwrap_or(GONE));
                }
                merge.merge(replies)
            }
        }
    }
}

/// The sharded store and the counters, shared by every connection task.
struct Shared {
    /// The lock shards ([`Backend::Locks`]; empty with a pool).
    shards: Vec<Mutex<Store>>,
    /// The pool's sender ([`Backend::Pool`]).
    pool: Option<PoolSender<ShardCall>>,
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

    /// Starts `command`: runs it at once on the lock shards, or hands it
    /// to the pool (waiting only while the worker's inbox is full).
    async fn start(&self, command: Command) -> Pending {
        let Some(pool) = &self.pool else {
            return Pending::Ready(self.execute(command));
        };
        let call = |shard: usize, command: Command| {
            let (reply, answer) = shardpool::Reply::channel();
            let sent = pool.send_to_async(WorkerId::from(shard), (command, reply));
            async move { sent.await.map(|()| answer) }
        };
        let stopped = || Pending::Ready(Reply::error("ERR shard worker stopped"));
        match route(command, pool.workers(), |key| pool.worker_for(key).index()) {
            Route::Anywhere(command) => Pending::Ready(execute_keyless(command)),
            Route::Shard(shard, command) => match call(shard, command).await {
                Ok(answer) => Pending::One(answer),
                Err(_) => stopped(),
            },
            Route::Fanout(fanout) => {
                self.cross_shard.fetch_add(1, Ordering::Relaxed);
                let (parts, merge) = fanout.into_parts();
                let mut answers = Vec::with_capacity(parts.len());
                for (shard, command) in parts {
                    match call(shard, command).await {
                        Ok(answer) => answers.push(answer),
                        Err(_) => return stopped(),
                    }
                }
                Pending::Gather(answers, merge)
            }
        }
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

    fn protocol_error(&self, reply: Reply) -> Reply {
        self.protocol_errors.fetch_add(1, Ordering::Relaxed);
        reply
    }

    fn stats(&self) -> KvStats {
        KvStats {
            connections_accepted: self.connections_accepted.load(Ordering::Relaxed),
            connections_closed: self.connections_closed.load(Ordering::Relaxed),
            commands: self.commands.load(Ordering::Relaxed),
            cross_shard: self.cross_shard.load(Ordering::Relaxed),
            protocol_errors: self.protocol_errors.load(Ordering::Relaxed),
            // Each connection task writes a batch's replies (awaiting the
            // socket) before it reads again: bounded without pausing.
            reads_paused: 0,
            ..KvStats::default()
        }
    }
}

/// A running tokio peer. [`TokioPeer::stop`] (or dropping it) stops the
/// runtime and closes every connection.
pub struct TokioPeer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: RuntimeThread,
    pool: Option<Pool<ShardWorker>>,
}

impl TokioPeer {
    /// Binds `addr` and serves RESP on it from a new runtime.
    ///
    /// # Errors
    /// Binding, building the runtime or starting the pool failed.
    pub fn start(addr: SocketAddr, config: PeerConfig) -> io::Result<TokioPeer> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (pool, shards) = match config.backend {
            Backend::Locks => (None, config.shards.max(1)),
            Backend::Pool { workers } => {
                let mut pool_config = PoolConfig::default().tick_interval(config.sweep_interval);
                if workers > 0 {
                    pool_config = pool_config.workers(workers).affinity(Affinity::None);
                }
                let pool = Pool::start(pool_config, |_| ShardWorker {
                    store: Store::new(),
                })
                .map_err(io::Error::other)?;
                (Some(pool), 0)
            }
        };
        let shared = Arc::new(Shared {
            shards: (0..shards).map(|_| Mutex::new(Store::new())).collect(),
            pool: pool.as_ref().map(Pool::sender),
            hasher: RandomState::new(),
            limits: config.limits,
            connections_accepted: AtomicU64::new(0),
            connections_closed: AtomicU64::new(0),
            commands: AtomicU64::new(0),
            cross_shard: AtomicU64::new(0),
            protocol_errors: AtomicU64::new(0),
        });
        let serving = Arc::clone(&shared);
        let sweep = config.sweep_interval;
        let grace = Duration::from_secs(5);
        let runtime = RuntimeThread::spawn(
            "kv-tokio",
            config.threads,
            grace,
            move |stopped| async move {
                let Ok(listener) = TcpListener::from_std(listener) else {
                    return;
                };
                if serving.pool.is_none() {
                    tokio::spawn(sweep_expired(Arc::clone(&serving), sweep));
                }
                tokio::select! {
                    _ = accept_loop(listener, serving) => {}
                    _ = stopped => {}
                }
            },
        )?;
        Ok(TokioPeer {
            addr,
            shared,
            runtime,
            pool,
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
        self.runtime.wait();
    }

    /// Stops accepting, closes every connection and joins the runtime.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.runtime.stop();
        if let Some(pool) = self.pool.take() {
            let _ = pool.shutdown();
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
    let mut pending = Vec::new();
    loop {
        session.input_mut().reserve(16 * 1024);
        match stream.read_buf(session.input_mut()).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut commands = 0;
        if shared.pool.is_none() {
            while let Some(request) = session.next_request() {
                let reply = match request {
                    Request::Command(command) => shared.execute(command),
                    Request::Invalid(reply) => reply,
                    Request::Fatal(reply) => shared.protocol_error(reply),
                };
                commands += 1;
                session.push_reply(&reply);
            }
        } else {
            // The whole pipeline batch is handed to the workers before the
            // first answer is awaited, so its commands are worked on while
            // the later ones are still being sent.
            while let Some(request) = session.next_request() {
                pending.push(match request {
                    Request::Command(command) => shared.start(command).await,
                    Request::Invalid(reply) => Pending::Ready(reply),
                    Request::Fatal(reply) => Pending::Ready(shared.protocol_error(reply)),
                });
                commands += 1;
            }
            for reply in pending.drain(..) {
                let reply = reply.finish().await;
                session.push_reply(&reply);
            }
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
