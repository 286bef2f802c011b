//! The kv engine served by a shardpool: every worker owns a shard of the
//! keys, its own listener and the connections it accepted.
//!
//! - Each worker binds the same address with
//!   [`reuseport_listener`](shardpool::io::reuseport_listener) (the kernel
//!   spreads connections over the workers) and registers it with its own
//!   reactor ([`Context::io`]); the connections it accepts are read,
//!   answered and closed by it alone.
//! - A request is [`route`]d with the pool's partitioner. Keyless commands
//!   and keys of the worker's own shard are answered at once; a key owned
//!   by another worker goes over the mesh as [`Msg::Exec`] carrying the
//!   connection's id and the request's slot, and the answer comes back over
//!   the mesh ([`Msg::Done`]) to the connection's worker. `MGET`, `MSET`,
//!   `DEL`, `EXISTS` and `DBSIZE` over several shards are split, sent to
//!   each shard, and merged back.
//! - A per-connection [`ReplyQueue`] releases a pipeline's replies in
//!   request order whatever order the shards answer in. Output is written
//!   until the socket would block; the rest waits for `WRITABLE`.
//! - Bad input gets the engine's error reply (and a close for malformed
//!   RESP); a client that leaves mid-pipeline only loses its own
//!   connection. Answers for a connection that has gone are dropped.
//! - Answers from other shards are written once per batch (in `tick`,
//!   which runs after every batch), not once per answer.
//! - A client that sends without reading cannot make the server buffer
//!   without bound: once a connection owes [`MAX_UNSENT_BYTES`] of written
//!   replies or [`MAX_UNSENT_REPLIES`] replies, the worker stops parsing
//!   and reading its input (the kernel's socket buffer fills and TCP makes
//!   the client wait) until the socket has taken enough; nothing is
//!   dropped ([`KvStats::reads_paused`] counts the pauses).
//! - `tick` sweeps expired keys. [`KvStats`] per worker: connections,
//!   commands, cross-shard share.
//!
//! ```no_run
//! use shardpool_services::server::{KvServer, ServerConfig};
//!
//! let server = KvServer::start("127.0.0.1:6380".parse()?, ServerConfig::default())?;
//! println!("serving RESP on {}", server.addr());
//! server.stop()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use shardpool::io::{Event, Interest, TcpListener, TcpStream, Token};
use shardpool::prelude::*;

use crate::kv::{
    execute_keyless, route, Command, Gather, KvStats, Limits, Reply, ReplyQueue, Request, Route,
    Session, Store,
};

/// The listener's token; connections use their id (from 1).
const LISTENER: Token = Token(0);
/// Expired keys removed per tick (a bounded sweep).
const SWEEP_PER_TICK: usize = 256;
/// Bytes read per `read` call.
const READ_CHUNK: usize = 16 * 1024;
/// Replies encoded for a connection but not yet taken by its socket, in
/// bytes, at which the worker stops reading that connection (Redis's
/// equivalent, `client-output-buffer-limit`, disconnects instead).
pub const MAX_UNSENT_BYTES: usize = 1 << 20;
/// Replies owed to a connection (answered or waiting for another shard,
/// not yet written) at which the worker stops reading it.
pub const MAX_UNSENT_REPLIES: usize = 4096;

/// How the server is set up.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The pool: workers, affinity, intervals. Default: one pinned worker
    /// per physical core, ticks every 10 ms (the expiry sweep).
    pub pool: PoolConfig,
    /// Request limits per connection.
    pub limits: Limits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            pool: PoolConfig::default().name("kv"),
            limits: Limits::default(),
        }
    }
}

/// A message between the server's workers (and from the server's handle).
pub enum Msg {
    /// Take this listener: register it and serve what it accepts.
    Listen(TcpListener),
    /// Run `command` on this worker's shard and answer `from`.
    Exec {
        /// The connection's worker.
        from: WorkerId,
        /// The connection, on `from`.
        conn: u64,
        /// The request's slot in the connection's [`ReplyQueue`].
        seq: u64,
        /// Which part of a split command (`None`: the whole command).
        part: Option<u32>,
        /// What to run.
        command: Command,
    },
    /// The answer to an [`Msg::Exec`], back at the connection's worker.
    Done {
        /// The connection.
        conn: u64,
        /// The request's slot.
        seq: u64,
        /// The part of a split command, as sent.
        part: Option<u32>,
        /// The shard's reply.
        reply: Reply,
    },
    /// Report this worker's counters.
    Stats(mpsc::Sender<(WorkerId, KvStats)>),
}

/// One client connection, owned by the worker that accepted it.
struct Conn {
    stream: TcpStream,
    session: Session,
    replies: ReplyQueue,
    /// Split commands waiting for their parts, by slot.
    gathers: HashMap<u64, Gather>,
    /// Registered for WRITABLE as well (output is waiting).
    writing: bool,
    /// The client closed its side: answer what it sent, then close.
    eof: bool,
    /// Reading stopped at the output limit; resumed when the socket has
    /// taken enough (see [`MAX_UNSENT_BYTES`]).
    paused: bool,
}

impl Conn {
    /// Whether this connection owes so much output that the worker should
    /// not take more requests from it.
    fn backlogged(&self) -> bool {
        // Replies queued behind an answer still to come from another
        // shard are encoded only when flushed, so they count too: a single
        // read can bring hundreds of GETs of large values.
        self.session.output().len() + self.replies.queued_bytes() >= MAX_UNSENT_BYTES
            || self.replies.len() >= MAX_UNSENT_REPLIES
    }

    /// Answers the next request with `reply`, which is ready now (see
    /// [`ReplyQueue::push_ready`]).
    fn answer(&mut self, reply: Reply) {
        self.replies.push_ready(reply, self.session.output_mut());
    }

    /// Whether to take no more input now: if the connection is
    /// backlogged, pauses it until [`KvWorker::flush`] finds the backlog
    /// gone, counting the pause in `stats` when it was running.
    fn hold_back(&mut self, stats: &mut KvStats) -> bool {
        if !self.backlogged() {
            return false;
        }
        if !std::mem::replace(&mut self.paused, true) {
            stats.reads_paused += 1;
        }
        true
    }
}

/// One worker of the server: a shard of the keys and its connections.
pub struct KvWorker {
    store: Store,
    listener: Option<TcpListener>,
    conns: HashMap<u64, Conn>,
    next_conn: u64,
    limits: Limits,
    stats: KvStats,
    /// Where reads land before they are appended to a connection's input.
    scratch: Box<[u8]>,
    /// Connections that got answers from other shards this iteration:
    /// flushed once, in `tick` (after the batch), not once per answer.
    dirty: Vec<u64>,
    /// Paused connections whose backlog the socket has taken: read again
    /// after the current event or tick (not from inside `flush`).
    resume: Vec<u64>,
}

impl KvWorker {
    /// A worker with an empty shard, enforcing `limits` per connection.
    pub fn new(limits: Limits) -> Self {
        KvWorker {
            store: Store::new(),
            listener: None,
            conns: HashMap::new(),
            next_conn: 0,
            limits,
            stats: KvStats::default(),
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            dirty: Vec::new(),
            resume: Vec::new(),
        }
    }

    /// This worker's counters.
    pub fn stats(&self) -> KvStats {
        self.stats
    }

    fn accept(&mut self, ctx: &mut Context<'_, Msg>) {
        let Some(listener) = &self.listener else {
            return;
        };
        loop {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    self.next_conn += 1;
                    let id = self.next_conn;
                    if ctx
                        .io()
                        .register(&mut stream, Token(id as usize), Interest::READABLE)
                        .is_err()
                    {
                        continue;
                    }
                    self.stats.connections_accepted += 1;
                    self.conns.insert(
                        id,
                        Conn {
                            stream,
                            session: Session::new(self.limits),
                            replies: ReplyQueue::new(),
                            gathers: HashMap::new(),
                            writing: false,
                            eof: false,
                            paused: false,
                        },
                    );
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // Out of file descriptors, a connection reset before
                // accept: drop it and wait for the next readiness.
                Err(e) => {
                    eprintln!("kv: accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// Reads what the connection has and answers every whole request, a
    /// chunk at a time, until the socket is empty or the connection owes
    /// too much output (then the rest waits in the kernel: see
    /// [`MAX_UNSENT_BYTES`]).
    ///
    /// A read shorter than the chunk took everything the socket held, and
    /// bytes that arrive later raise a new readiness event (edge-triggered),
    /// so the read that would only say `WouldBlock` is skipped: one system
    /// call in seven at `redis-benchmark -P 1`, as tokio does. Not with
    /// `to_the_end`: when the peer has closed its side (or the socket has
    /// an error) no later event will come, and after a pause the event
    /// that announced the close may already have been spent, so the socket
    /// is read until it says so.
    fn readable(&mut self, id: u64, ctx: &mut Context<'_, Msg>, to_the_end: bool) {
        loop {
            let Some(conn) = self.conns.get_mut(&id) else {
                return;
            };
            if conn.eof {
                break;
            }
            if conn.hold_back(&mut self.stats) {
                break;
            }
            match conn.stream.read(&mut self.scratch) {
                Ok(0) => conn.eof = true,
                Ok(n) => {
                    conn.session
                        .input_mut()
                        .extend_from_slice(&self.scratch[..n]);
                    self.serve(id, ctx);
                    if n < self.scratch.len() && !to_the_end {
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.close(id);
                    return;
                }
            }
        }
        self.serve(id, ctx);
    }

    /// Reads again from the paused connections whose backlog went out.
    fn resume_paused(&mut self, ctx: &mut Context<'_, Msg>) {
        for id in std::mem::take(&mut self.resume) {
            self.readable(id, ctx, true);
        }
    }

    /// Answers the whole requests buffered on connection `id`.
    fn serve(&mut self, id: u64, ctx: &mut Context<'_, Msg>) {
        let me = ctx.id();
        let shards = ctx.workers();
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        loop {
            if conn.hold_back(&mut self.stats) {
                break;
            }
            let Some(request) = conn.session.next_request() else {
                break;
            };
            self.stats.commands += 1;
            let command = match request {
                Request::Command(command) => command,
                Request::Invalid(reply) => {
                    conn.answer(reply);
                    continue;
                }
                Request::Fatal(reply) => {
                    self.stats.protocol_errors += 1;
                    conn.answer(reply);
                    continue;
                }
            };
            match route(command, shards, |key| ctx.worker_for(key).index()) {
                Route::Anywhere(command) => conn.answer(execute_keyless(command)),
                Route::Shard(shard, command) if shard == me.index() => {
                    conn.answer(self.store.execute(command));
                }
                Route::Shard(shard, command) => {
                    self.stats.cross_shard += 1;
                    let seq = conn.replies.reserve();
                    let msg = Msg::Exec {
                        from: me,
                        conn: id,
                        seq,
                        part: None,
                        command,
                    };
                    send(ctx, WorkerId::from(shard), msg);
                }
                Route::Fanout(fanout) => {
                    self.stats.cross_shard += 1;
                    let seq = conn.replies.reserve();
                    let (parts, merge) = fanout.into_parts();
                    let mut gather = Gather::new(merge);
                    let mut merged = None;
                    for (part, (shard, command)) in parts.into_iter().enumerate() {
                        if shard == me.index() {
                            merged = gather.fill(part, self.store.execute(command));
                        } else {
                            let msg = Msg::Exec {
                                from: me,
                                conn: id,
                                seq,
                                part: Some(part as u32),
                                command,
                            };
                            send(ctx, WorkerId::from(shard), msg);
                        }
                    }
                    match merged {
                        Some(reply) => {
                            conn.replies.fill(seq, reply);
                        }
                        None => {
                            conn.gathers.insert(seq, gather);
                        }
                    }
                }
            }
        }
        self.flush(id, ctx);
    }

    /// An answer from another shard.
    fn done(&mut self, id: u64, seq: u64, part: Option<u32>, reply: Reply) {
        // The connection may have gone meanwhile: drop the answer.
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let reply = match part {
            None => Some(reply),
            Some(part) => {
                let merged = conn
                    .gathers
                    .get_mut(&seq)
                    .and_then(|gather| gather.fill(part as usize, reply));
                if merged.is_some() {
                    conn.gathers.remove(&seq);
                }
                merged
            }
        };
        if let Some(reply) = reply {
            conn.replies.fill(seq, reply);
            self.dirty.push(id);
        }
    }

    /// Moves the ready prefix of replies to the output, writes as much as
    /// the socket takes, and watches WRITABLE while some is left. Closes a
    /// connection that is done (QUIT, a protocol error, or the client's
    /// EOF) once everything owed to it is written.
    fn flush(&mut self, id: u64, ctx: &mut Context<'_, Msg>) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.replies.flush_into(conn.session.output_mut());
        let mut failed = false;
        while !conn.session.output().is_empty() {
            match conn.stream.write(conn.session.output()) {
                Ok(0) => {
                    failed = true;
                    break;
                }
                Ok(n) => {
                    let _ = conn.session.output_mut().split_to(n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        let pending = !conn.session.output().is_empty();
        let finished = conn.replies.is_empty() && !pending;
        if failed || (finished && (conn.eof || conn.session.is_closing())) {
            self.close(id);
            return;
        }
        if conn.paused && !conn.backlogged() {
            conn.paused = false;
            self.resume.push(id);
        }
        if pending != conn.writing {
            let interest = if pending {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if ctx
                .io()
                .reregister(&mut conn.stream, Token(id as usize), interest)
                .is_err()
            {
                self.close(id);
                return;
            }
            conn.writing = pending;
        }
    }

    fn close(&mut self, id: u64) {
        if self.conns.remove(&id).is_some() {
            // Dropping the stream closes it, which also removes it from
            // the worker's epoll set.
            self.stats.connections_closed += 1;
        }
    }
}

/// A send over the mesh never blocks; it fails only if the peer has
/// failed, and then the request can never be answered: panic, so the
/// failure is reported like the peer's.
fn send(ctx: &mut Context<'_, Msg>, to: WorkerId, msg: Msg) {
    if ctx.send_to(to, msg).is_err() {
        panic!("kv: worker {to} refused a request (it has failed)");
    }
}

impl Worker for KvWorker {
    type Msg = Msg;

    fn handle(&mut self, msg: Msg, ctx: &mut Context<'_, Msg>) {
        match msg {
            Msg::Listen(mut listener) => {
                match ctx
                    .io()
                    .register(&mut listener, LISTENER, Interest::READABLE)
                {
                    Ok(()) => {
                        self.listener = Some(listener);
                        // Connections queued before the registration.
                        self.accept(ctx);
                    }
                    Err(e) => eprintln!("kv: cannot register the listener: {e}"),
                }
            }
            Msg::Exec {
                from,
                conn,
                seq,
                part,
                command,
            } => {
                let reply = self.store.execute(command);
                send(
                    ctx,
                    from,
                    Msg::Done {
                        conn,
                        seq,
                        part,
                        reply,
                    },
                );
            }
            Msg::Done {
                conn,
                seq,
                part,
                reply,
            } => self.done(conn, seq, part, reply),
            Msg::Stats(reply) => {
                let _ = reply.send((ctx.id(), self.stats));
            }
        }
    }

    /// After every batch (and every tick interval while idle): write out
    /// the answers that came back from other shards, one write per
    /// connection; sweep expired keys.
    fn tick(&mut self, ctx: &mut Context<'_, Msg>) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for &id in &dirty {
            self.flush(id, ctx);
        }
        dirty.clear();
        self.dirty = dirty;
        self.resume_paused(ctx);
        self.store.expire_some(SWEEP_PER_TICK);
    }

    fn on_io(&mut self, event: &Event, ctx: &mut Context<'_, Msg>) {
        if event.token() == LISTENER {
            self.accept(ctx);
            return;
        }
        let id = event.token().0 as u64;
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.readable(id, ctx, event.is_read_closed() || event.is_error());
        }
        if event.is_writable() {
            self.flush(id, ctx);
        }
        self.resume_paused(ctx);
    }
}

/// A running shardpool kv server.
pub struct KvServer {
    addr: SocketAddr,
    pool: Pool<KvWorker>,
}

impl KvServer {
    /// Starts the pool, binds `addr` once per worker (`SO_REUSEPORT`) and
    /// hands each worker its listener. Port 0 picks a free port.
    ///
    /// # Errors
    /// The pool refused the configuration, or binding failed (e.g. the
    /// address is held by a server without `SO_REUSEPORT`).
    pub fn start(
        addr: SocketAddr,
        config: ServerConfig,
    ) -> Result<KvServer, Box<dyn std::error::Error>> {
        let limits = config.limits;
        let pool = Pool::start(config.pool, move |_| KvWorker::new(limits))?;
        let first = shardpool::io::reuseport_listener(addr)?;
        let addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..pool.workers() {
            listeners.push(shardpool::io::reuseport_listener(addr)?);
        }
        let sender = pool.sender();
        for (worker, listener) in listeners.into_iter().enumerate() {
            sender
                .send_to(WorkerId::from(worker), Msg::Listen(listener))
                .map_err(|e| io::Error::other(e.to_string()))?;
        }
        Ok(KvServer { addr, pool })
    }

    /// The address it serves on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The pool's per-channel and per-worker statistics.
    pub fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// Each worker's kv counters, in id order (a worker that does not
    /// answer within `timeout` is left out).
    pub fn stats(&self, timeout: Duration) -> Vec<(WorkerId, KvStats)> {
        let (tx, rx) = mpsc::channel();
        let _ = self.pool.sender().broadcast_with_stats(tx);
        let mut all: Vec<_> = (0..self.pool.workers())
            .map_while(|_| rx.recv_timeout(timeout).ok())
            .collect();
        all.sort_by_key(|(id, _)| *id);
        all
    }

    /// A table of [`stats`](Self::stats): one row per worker and a total.
    pub fn stats_table(&self, timeout: Duration) -> String {
        let mut out = String::from(
            "worker  conns open  accepted    commands  cross-shard  share  proto-errors\n",
        );
        let mut total = KvStats::default();
        for (id, s) in self.stats(timeout) {
            total.add(&s);
            out.push_str(&row(&id.to_string(), &s));
        }
        out.push_str(&row("total", &total));
        out
    }

    /// Stops the pool (closing every connection); reports a worker that
    /// panicked.
    ///
    /// # Errors
    /// A worker panicked.
    pub fn stop(self) -> Result<Vec<KvStats>, shardpool::Error> {
        Ok(self.pool.shutdown()?.iter().map(KvWorker::stats).collect())
    }
}

fn row(name: &str, s: &KvStats) -> String {
    format!(
        "{name:>6}  {:>10}  {:>8}  {:>10}  {:>11}  {:>4.1}%  {:>12}\n",
        s.connections_open(),
        s.connections_accepted,
        s.commands,
        s.cross_shard,
        s.cross_shard_share() * 100.0,
        s.protocol_errors
    )
}

/// Sends one `Stats` request per worker (the reply channel is cloned for
/// each, so the message need not be `Clone`).
trait BroadcastStats {
    fn broadcast_with_stats(&self, tx: mpsc::Sender<(WorkerId, KvStats)>) -> Result<(), ()>;
}

impl BroadcastStats for PoolSender<Msg> {
    fn broadcast_with_stats(&self, tx: mpsc::Sender<(WorkerId, KvStats)>) -> Result<(), ()> {
        for worker in 0..self.workers() {
            self.send_to(WorkerId::from(worker), Msg::Stats(tx.clone()))
                .map_err(|_| ())?;
        }
        Ok(())
    }
}
