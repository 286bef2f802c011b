//! The kv engine served by a shardpool: every worker owns a shard of the
//! keys, its own listener and the connections it accepted.
//!
//! - Each worker binds the same address with
//!   [`reuseport_listener`](shardpool::io::reuseport_listener) (the kernel
//!   spreads connections over the workers) and registers it with its own
//!   reactor ([`Context::io`]), in `on_start`, so a worker restarted after
//!   a panic listens again; the connections it accepts are read, answered
//!   and closed by it alone. Connection ids come from a process-wide
//!   counter and are never reused, so an answer from another shard for a
//!   connection that has gone is dropped, never delivered to a newer
//!   connection (the asks of a worker that restarts are dropped with it by
//!   the runtime: their answers reach no one).
//! - Each connection reads at most [`ServerConfig::read_budget`] per turn
//!   and comes back for the rest with [`Context::io_again`], after the
//!   worker's other ready connections: a client sending as fast as the
//!   kernel allows delays the others by one budget, not by its flood.
//! - At most [`ServerConfig::maxclients`] clients (Redis's `maxclients`,
//!   derived from `RLIMIT_NOFILE` as Redis derives it); past it a new
//!   client gets Redis's `-ERR max number of clients reached` and is
//!   closed. When `accept` fails for want of file descriptors, it is
//!   retried on a timer (readiness is edge-triggered: the listener would
//!   not report the waiting connections again).
//! - A request is [`route`]d with the pool's partitioner. Keyless commands
//!   and keys of the worker's own shard are answered at once; a key owned
//!   by another worker is a [`Context::ask`] of its owner: the question,
//!   [`Msg::Exec`], carries the command and the [`Asked`] the owner answers
//!   with its reply, and the ask's continuation turns the outcome into a
//!   [`Msg::Done`] for the connection's slot (the continuation holds only
//!   the connection id, the slot and the part, so the runtime keeps it
//!   without an allocation). The answer rides the pair's answer lane,
//!   published with the rings, so it costs about what a second message
//!   would. `MGET`, `MSET`, `DEL`, `EXISTS` and `DBSIZE` over several
//!   shards are split, each part asked of its shard, and merged back.
//! - A request whose shard cannot answer it gets an error reply in its
//!   place at once (a split command: for the whole command), and the
//!   connection goes on: a shard that panics while running it, or fails
//!   for good with it queued, drops the question, and the ask resolves to
//!   [`AskError::NoReply`] (`-ERR shard N failed or restarted before
//!   answering`); a shard that has failed for good cannot be asked
//!   (`-ERR shard N cannot take requests`). Requests queued for a shard
//!   that restarts are run by its new instance. The asks have no
//!   deadline: a live shard answers every request it takes, and an error
//!   sent at a deadline could not tell the client whether its command ran
//!   (it may still run after); how many answers a connection waits for is
//!   bounded by [`ServerConfig::max_unanswered`] instead.
//! - A per-connection [`ReplyQueue`] releases a pipeline's replies in
//!   request order whatever order the shards answer in. Output is written
//!   until the socket would block; the rest waits for `WRITABLE`.
//! - Bad input gets the engine's error reply (and a close for malformed
//!   RESP); a client that leaves mid-pipeline only loses its own
//!   connection. Answers for a connection that has gone are dropped.
//! - Answers from other shards are written once per batch (in `tick`,
//!   which runs after every batch), not once per answer.
//! - A client that sends without reading cannot make the server buffer
//!   without bound: once a connection owes
//!   [`ServerConfig::max_unsent_bytes`] of replies (encoded, or answered
//!   by another shard and waiting their turn),
//!   [`ServerConfig::max_unsent_replies`] replies, or
//!   [`ServerConfig::max_unanswered`] answers still to come from other
//!   shards, the worker stops parsing and reading its input (the kernel's
//!   socket buffer fills and TCP makes the client wait) until the socket
//!   has taken enough; nothing is dropped ([`KvStats::reads_paused`]
//!   counts the pauses). Redis's equivalent, `client-output-buffer-limit`,
//!   closes the client instead (and has no limit for normal clients by
//!   default). A request larger than [`Limits::max_query_len`] (Redis's
//!   `client-query-buffer-limit`) is refused at its header.
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
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use shardpool::io::{Event, Interest, TcpListener, TcpStream, Token};
use shardpool::prelude::*;

use crate::conn_io::{accept_next, read_some, watch_writable, write_out, Accepted, ReadStep};
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
/// Default [`ServerConfig::max_unsent_bytes`]: 1 MiB.
pub const MAX_UNSENT_BYTES: usize = 1 << 20;
/// Default [`ServerConfig::max_unsent_replies`].
pub const MAX_UNSENT_REPLIES: usize = 4096;
/// Default [`ServerConfig::max_unanswered`].
pub const MAX_UNANSWERED: usize = 128;
/// Default [`ServerConfig::read_budget`]: 64 KiB.
pub const READ_BUDGET: usize = 64 << 10;
/// Redis's default `maxclients`.
pub const DEFAULT_MAXCLIENTS: usize = 10_000;
/// File descriptors kept out of `maxclients` for the process's own use, as
/// Redis's `CONFIG_MIN_RESERVED_FDS`…
pub const RESERVED_FDS: usize = 32;
/// …plus these per worker: its epoll, eventfd, listener, and the three of
/// `io_again`.
pub const RESERVED_FDS_PER_WORKER: usize = 6;
/// How long a worker waits before accepting again after running out of
/// file descriptors.
pub const ACCEPT_RETRY: Duration = Duration::from_millis(10);
/// The reply to a client past `maxclients` (Redis's, byte for byte).
const MAXCLIENTS_REACHED: &[u8] = b"-ERR max number of clients reached\r\n";

/// How the server is set up.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The pool: workers, affinity, intervals. Default: one pinned worker
    /// per physical core, ticks every 10 ms (the expiry sweep).
    pub pool: PoolConfig,
    /// Request limits per connection (Redis's `proto-max-bulk-len` and
    /// `client-query-buffer-limit` among them).
    pub limits: Limits,
    /// Most clients connected at once, over all workers: Redis's
    /// `maxclients`. `None` (the default): [`DEFAULT_MAXCLIENTS`], lowered
    /// as Redis lowers it when the process may not open that many files
    /// (see [`derive_maxclients`]; the soft `RLIMIT_NOFILE` is raised
    /// towards the hard one first, as Redis does). Past it, a new client
    /// is accepted, sent `-ERR max number of clients reached` and closed.
    pub maxclients: Option<usize>,
    /// Bytes of replies a connection may owe (encoded and not yet taken by
    /// its socket, or answered by another shard and waiting their turn)
    /// before the worker stops reading it until the socket has taken them.
    /// Redis's nearest setting, `client-output-buffer-limit` (class
    /// `normal`, no limit by default), closes the client instead; pausing
    /// loses nothing and TCP makes the client wait. Default
    /// [`MAX_UNSENT_BYTES`] (1 MiB).
    pub max_unsent_bytes: usize,
    /// Replies a connection may owe (in any state) before the worker stops
    /// reading it. Default [`MAX_UNSENT_REPLIES`].
    pub max_unsent_replies: usize,
    /// Requests of one connection waiting for another shard's answer
    /// before the worker stops reading it. Their size is known only when
    /// the answer comes, so this is what bounds it: a connection holds at
    /// most `max_unsent_bytes` plus this many replies. Default
    /// [`MAX_UNANSWERED`]. No Redis equivalent (Redis has one shard).
    pub max_unanswered: usize,
    /// Bytes read from one connection per turn: the rest is read after the
    /// worker's other ready connections (see [`Context::io_again`]).
    /// Redis reads at most 16 KiB per client per event-loop pass (no
    /// setting). Default [`READ_BUDGET`] (64 KiB).
    pub read_budget: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            pool: PoolConfig::default().name("kv"),
            limits: Limits::default(),
            maxclients: None,
            max_unsent_bytes: MAX_UNSENT_BYTES,
            max_unsent_replies: MAX_UNSENT_REPLIES,
            max_unanswered: MAX_UNANSWERED,
            read_budget: READ_BUDGET,
        }
    }
}

/// Redis's `maxclients` for a process whose `RLIMIT_NOFILE` is `soft`
/// after trying to raise it: `requested` when the process may open that
/// many files plus the reserved ones ([`RESERVED_FDS`], and
/// [`RESERVED_FDS_PER_WORKER`] per worker), else what is left after the
/// reserved ones (at least 1).
pub fn derive_maxclients(requested: usize, soft: u64, workers: usize) -> usize {
    let reserved = RESERVED_FDS + RESERVED_FDS_PER_WORKER * workers;
    let soft = usize::try_from(soft).unwrap_or(usize::MAX);
    requested.min(soft.saturating_sub(reserved)).max(1)
}

/// Raises the soft `RLIMIT_NOFILE` towards `wanted` (not above the hard
/// limit), as Redis does at start, and returns the soft limit then in force
/// (`None` when it cannot be read).
fn raise_nofile(wanted: u64) -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given, a valid local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    let target = (wanted as libc::rlim_t).min(limit.rlim_max);
    if limit.rlim_cur < target {
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = target;
        }
    }
    // `rlim_t` is `u64` on Linux and differs elsewhere.
    #[allow(clippy::unnecessary_cast)]
    Some(limit.rlim_cur as u64)
}

/// The settings a worker applies per connection.
#[derive(Clone, Copy, Debug)]
struct Settings {
    limits: Limits,
    max_unsent_bytes: usize,
    max_unsent_replies: usize,
    max_unanswered: usize,
    read_budget: usize,
}

impl Settings {
    fn new(config: &ServerConfig) -> Self {
        Settings {
            limits: config.limits,
            max_unsent_bytes: config.max_unsent_bytes,
            max_unsent_replies: config.max_unsent_replies,
            max_unanswered: config.max_unanswered.max(1),
            read_budget: config.read_budget.max(1),
        }
    }
}

/// Connection ids are taken from here, a block at a time: unique in the
/// process, never reused (also across a worker's restarts and across
/// servers). 0 is the listener's token.
static NEXT_ID_BLOCK: AtomicU64 = AtomicU64::new(1);
/// Ids a worker takes per visit to [`NEXT_ID_BLOCK`].
const ID_BLOCK: u64 = 1 << 16;

/// One worker's supply of connection ids (see [`NEXT_ID_BLOCK`]).
#[derive(Debug, Default)]
struct ConnIds {
    next: u64,
    end: u64,
}

impl ConnIds {
    fn take(&mut self) -> u64 {
        if self.next == self.end {
            self.next = NEXT_ID_BLOCK.fetch_add(ID_BLOCK, Ordering::Relaxed);
            self.end = self.next + ID_BLOCK;
        }
        self.next += 1;
        self.next - 1
    }
}

/// One connected client, counted towards `maxclients` over all workers
/// until dropped (also when its worker is dropped after a panic).
#[derive(Debug)]
struct ClientSlot(Arc<AtomicUsize>);

impl ClientSlot {
    /// A slot if fewer than `max` clients hold one.
    fn take(clients: &Arc<AtomicUsize>, max: usize) -> Option<ClientSlot> {
        clients
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| ClientSlot(clients.clone()))
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A message between the server's workers (and from the server's handle).
pub enum Msg {
    /// Accept again (or bind the listener again) after running out of file
    /// descriptors: a worker's own timer.
    Accept,
    /// Panic in this worker: how the tests check `PanicPolicy::Restart`.
    #[doc(hidden)]
    Crash,
    /// At a key's owner: run `command` on this worker's shard and answer
    /// the connection's worker (a [`Context::ask`]).
    Exec {
        /// What to run.
        command: Command,
        /// Where the reply goes.
        asked: Asked<Reply>,
    },
    /// The outcome of an [`Msg::Exec`], back at the connection's worker
    /// (built by the ask's continuation).
    Done {
        /// The connection.
        conn: u64,
        /// The request's slot in the connection's [`ReplyQueue`].
        seq: u64,
        /// Which part of a split command (`None`: the whole command).
        part: Option<u32>,
        /// The shard's reply, or why none will come (the shard failed or
        /// restarted with the request).
        outcome: Result<Reply, AskError>,
    },
    /// Report this worker's counters.
    Stats(mpsc::Sender<(WorkerId, KvStats)>),
}

/// One client connection, owned by the worker that accepted it.
struct Conn {
    stream: TcpStream,
    /// Its place under `maxclients`.
    _slot: ClientSlot,
    /// The client closed its side or the socket has an error: read to the
    /// end on each turn (no later event will announce what is left).
    drain: bool,
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
    fn backlogged(&self, settings: &Settings) -> bool {
        // Replies queued behind an answer still to come from another
        // shard are encoded only when flushed, so they count too: a single
        // read can bring hundreds of GETs of large values. Answers still
        // to come have no size yet: their number is bounded instead.
        self.session.output().len() + self.replies.queued_bytes() >= settings.max_unsent_bytes
            || self.replies.len() >= settings.max_unsent_replies
            || self.replies.unanswered() >= settings.max_unanswered
    }

    /// Answers the next request with `reply`, which is ready now (see
    /// [`ReplyQueue::push_ready`]).
    fn answer(&mut self, reply: Reply) {
        self.replies.push_ready(reply, self.session.output_mut());
    }

    /// Whether to take no more input now: if the connection is
    /// backlogged, pauses it until [`KvWorker::flush`] finds the backlog
    /// gone, counting the pause in `stats` when it was running.
    fn hold_back(&mut self, settings: &Settings, stats: &mut KvStats) -> bool {
        if !self.backlogged(settings) {
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
    /// Where to listen (`None`: a worker that only serves its shard).
    addr: Option<SocketAddr>,
    /// A listener bound before the pool started (the first worker's, so
    /// that the address is known and held), registered in `on_start`.
    bound: Option<TcpListener>,
    listener: Option<TcpListener>,
    /// An [`Msg::Accept`] timer is set.
    accept_retry: bool,
    conns: HashMap<u64, Conn>,
    ids: ConnIds,
    settings: Settings,
    /// The server's `maxclients` (set once the pool's size is known).
    maxclients: Arc<AtomicUsize>,
    /// Clients connected to the whole server.
    clients: Arc<AtomicUsize>,
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
    /// A worker with an empty shard, enforcing `limits` per connection,
    /// the other settings at their defaults; it listens nowhere (it serves
    /// its shard to the workers that do).
    pub fn new(limits: Limits) -> Self {
        let config = ServerConfig {
            limits,
            ..ServerConfig::default()
        };
        let maxclients = Arc::new(AtomicUsize::new(DEFAULT_MAXCLIENTS));
        KvWorker::serving(None, None, &config, maxclients, Arc::default())
    }

    fn serving(
        addr: Option<SocketAddr>,
        bound: Option<TcpListener>,
        config: &ServerConfig,
        maxclients: Arc<AtomicUsize>,
        clients: Arc<AtomicUsize>,
    ) -> Self {
        KvWorker {
            store: Store::new(),
            addr,
            bound,
            listener: None,
            accept_retry: false,
            conns: HashMap::new(),
            ids: ConnIds::default(),
            settings: Settings::new(config),
            maxclients,
            clients,
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

    /// Binds (or takes the bound) listener and registers it; on failure
    /// (out of file descriptors) tries again on a timer.
    fn listen(&mut self, ctx: &mut Context<'_, Msg>) {
        let Some(addr) = self.addr else {
            return;
        };
        let listener = match self.bound.take() {
            Some(listener) => Ok(listener),
            None => shardpool::io::reuseport_listener(addr),
        };
        let registered = listener.and_then(|mut listener| {
            ctx.io()
                .register(&mut listener, LISTENER, Interest::READABLE)
                .map(|()| listener)
        });
        match registered {
            Ok(listener) => {
                self.listener = Some(listener);
                // Connections queued before the registration.
                self.accept(ctx);
            }
            Err(e) => {
                eprintln!("kv: cannot listen on {addr}: {e}");
                self.retry_accept(ctx);
            }
        }
    }

    /// Sets the [`Msg::Accept`] timer (once).
    fn retry_accept(&mut self, ctx: &mut Context<'_, Msg>) {
        if !std::mem::replace(&mut self.accept_retry, true) {
            // Refused only from on_stop: nothing left to accept then.
            let _ = ctx.send_after(ACCEPT_RETRY, Msg::Accept);
        }
    }

    fn accept(&mut self, ctx: &mut Context<'_, Msg>) {
        let Some(listener) = &self.listener else {
            return;
        };
        loop {
            match accept_next(listener) {
                Accepted::Stream(mut stream) => {
                    let Some(slot) =
                        ClientSlot::take(&self.clients, self.maxclients.load(Ordering::Relaxed))
                    else {
                        // As Redis: accept, say why, close (one try: the
                        // socket is fresh, its buffer empty).
                        let _ = stream.write(MAXCLIENTS_REACHED);
                        self.stats.clients_refused += 1;
                        continue;
                    };
                    let id = self.ids.take();
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
                            _slot: slot,
                            drain: false,
                            session: Session::new(self.settings.limits),
                            replies: ReplyQueue::new(),
                            gathers: HashMap::new(),
                            writing: false,
                            eof: false,
                            paused: false,
                        },
                    );
                }
                Accepted::Drained => return,
                // Out of file descriptors: the connections wait in the
                // queue, and with edge-triggered readiness the listener
                // will not report them again. Retry on a timer.
                Accepted::Retry(e) => {
                    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                        self.stats.accept_retries += 1;
                    } else {
                        // Anything else (out of memory, …): retry later too.
                        eprintln!("kv: accept failed: {e}");
                    }
                    self.retry_accept(ctx);
                    return;
                }
            }
        }
    }

    /// Reads what the connection has and answers every whole request, a
    /// chunk at a time, until the socket is empty, the connection owes too
    /// much output (then the rest waits in the kernel: see
    /// [`ServerConfig::max_unsent_bytes`]) or this turn's
    /// [`ServerConfig::read_budget`] is spent (then the connection asks for
    /// another turn with [`Context::io_again`]).
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
        let mut budget = self.settings.read_budget;
        loop {
            let Some(conn) = self.conns.get_mut(&id) else {
                return;
            };
            if conn.eof {
                break;
            }
            if conn.hold_back(&self.settings, &mut self.stats) {
                break;
            }
            if budget == 0 {
                self.stats.reads_yielded += 1;
                ctx.io_again(Token(id as usize));
                break;
            }
            let chunk = self.scratch.len().min(budget);
            match read_some(&mut conn.stream, &mut self.scratch[..chunk]) {
                ReadStep::Eof => conn.eof = true,
                ReadStep::Data(n) => {
                    budget -= n;
                    conn.session
                        .input_mut()
                        .extend_from_slice(&self.scratch[..n]);
                    self.serve(id, ctx);
                    if n < chunk && !to_the_end {
                        return;
                    }
                }
                ReadStep::Empty => break,
                ReadStep::Failed => {
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
            if conn.hold_back(&self.settings, &mut self.stats) {
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
                    if let Err(reply) = exec_at(ctx, shard, id, seq, None, command) {
                        conn.replies.fill(seq, reply);
                    }
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
                        } else if let Err(reply) =
                            exec_at(ctx, shard, id, seq, Some(part as u32), command)
                        {
                            merged = gather.fill(part, reply);
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
        let (written, failed) = write_out(&mut conn.stream, conn.session.output());
        let _ = conn.session.output_mut().split_to(written);
        let pending = !conn.session.output().is_empty();
        let finished = conn.replies.is_empty() && !pending;
        if failed || (finished && (conn.eof || conn.session.is_closing())) {
            self.close(id);
            return;
        }
        if conn.paused && !conn.backlogged(&self.settings) {
            conn.paused = false;
            self.resume.push(id);
        }
        let token = Token(id as usize);
        if watch_writable(ctx, &mut conn.stream, token, &mut conn.writing, pending).is_err() {
            self.close(id);
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

/// Asks worker `shard` to run `command` for slot `seq` (part `part`) of
/// connection `conn` on this worker; the outcome comes back as
/// [`Msg::Done`]. No deadline: a live shard answers every request it
/// takes, and one that panics while running it, or fails for good with it
/// queued, drops the question, which comes back at once as
/// [`AskError::NoReply`]. A request that cannot be sent at all
/// (the shard has failed for good, or its queue is full under a configured
/// `overflow_limit`) gets its error reply here, to be filled in at once.
fn exec_at(
    ctx: &mut Context<'_, Msg>,
    shard: usize,
    conn: u64,
    seq: u64,
    part: Option<u32>,
    command: Command,
) -> Result<(), Reply> {
    ctx.ask(
        WorkerId::from(shard),
        |asked| Msg::Exec { command, asked },
        // Three words: held inline by the runtime, no allocation per ask.
        move |outcome| Msg::Done {
            conn,
            seq,
            part,
            outcome,
        },
        Duration::MAX,
    )
    .map_err(|e| {
        let why = match e {
            SendError::Full(_) => "its queue is full",
            _ => "it has failed",
        };
        Reply::error_owned(format!("ERR shard {shard} cannot take requests: {why}"))
    })
}

/// The reply for a request whose shard will not answer: `source` is the
/// worker that was asked.
fn unanswered(source: Option<Endpoint>, error: &AskError) -> Reply {
    let shard = match source {
        Some(Endpoint::Worker(worker)) => worker.to_string(),
        _ => "?".to_owned(),
    };
    let why = match error {
        AskError::Timeout => "did not answer in time",
        _ => "failed or restarted before answering",
    };
    Reply::error_owned(format!("ERR shard {shard} {why}"))
}

impl Worker for KvWorker {
    type Msg = Msg;

    /// Listens (again, after a restart: a restarted worker is a new
    /// `KvWorker`, and its predecessor's listener was dropped with it).
    fn on_start(&mut self, ctx: &mut Context<'_, Msg>) {
        self.listen(ctx);
    }

    fn handle(&mut self, msg: Msg, ctx: &mut Context<'_, Msg>) {
        match msg {
            Msg::Accept => {
                self.accept_retry = false;
                if self.listener.is_none() {
                    self.listen(ctx);
                } else {
                    self.accept(ctx);
                }
            }
            Msg::Crash => panic!("kv: crash requested"),
            Msg::Exec { command, asked } => asked.send(self.store.execute(command)),
            Msg::Done {
                conn,
                seq,
                part,
                outcome,
            } => {
                let reply = outcome.unwrap_or_else(|e| unanswered(ctx.source(), &e));
                self.done(conn, seq, part, reply);
            }
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
        if event.is_read_closed() || event.is_error() {
            if let Some(conn) = self.conns.get_mut(&id) {
                conn.drain = true;
            }
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            let drain = self.conns.get(&id).is_some_and(|conn| conn.drain);
            self.readable(id, ctx, drain);
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
    /// Binds `addr` (`SO_REUSEPORT`; port 0 picks a free port) and starts
    /// the pool; each worker listens on the address from its `on_start`
    /// (the first one on the listener bound here).
    ///
    /// # Errors
    /// The pool refused the configuration, binding failed (e.g. the address
    /// is held by a server without `SO_REUSEPORT`), or the process may open
    /// too few files for one client.
    pub fn start(
        addr: SocketAddr,
        config: ServerConfig,
    ) -> Result<KvServer, Box<dyn std::error::Error>> {
        let first = shardpool::io::reuseport_listener(addr)?;
        let addr = first.local_addr()?;
        // The pool's worker count is known once it runs; until then
        // (while the workers start), one per CPU bounds it in the default
        // configuration.
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let maxclients = Arc::new(AtomicUsize::new(KvServer::maxclients(&config, cpus)?));
        let first = Mutex::new(Some(first));
        let clients = Arc::new(AtomicUsize::new(0));
        let settings = config.clone();
        let limit = maxclients.clone();
        let pool = Pool::start(config.pool.clone(), move |id| {
            let bound = if id.index() == 0 {
                first.lock().unwrap_or_else(|e| e.into_inner()).take()
            } else {
                None
            };
            KvWorker::serving(Some(addr), bound, &settings, limit.clone(), clients.clone())
        })?;
        maxclients.store(
            KvServer::maxclients(&config, pool.workers())?,
            Ordering::Relaxed,
        );
        Ok(KvServer { addr, pool })
    }

    /// `config.maxclients`, or Redis's default lowered to what
    /// `RLIMIT_NOFILE` allows with `workers` workers.
    fn maxclients(config: &ServerConfig, workers: usize) -> io::Result<usize> {
        if let Some(n) = config.maxclients {
            return Ok(n.max(1));
        }
        let reserved = RESERVED_FDS + RESERVED_FDS_PER_WORKER * workers;
        let wanted = (DEFAULT_MAXCLIENTS + reserved) as u64;
        let soft = raise_nofile(wanted).unwrap_or(1024);
        if soft <= reserved as u64 {
            return Err(io::Error::other(format!(
                "RLIMIT_NOFILE is {soft}: no file descriptor left for clients \
                 after the {reserved} the server reserves"
            )));
        }
        Ok(derive_maxclients(DEFAULT_MAXCLIENTS, soft, workers))
    }

    /// The address it serves on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The worker whose shard holds `key` (and that answers for it).
    pub fn worker_for(&self, key: &[u8]) -> WorkerId {
        self.pool.sender().worker_for(key)
    }

    /// Makes `worker` panic (for tests of `PanicPolicy::Restart`).
    #[doc(hidden)]
    pub fn crash_worker(&self, worker: WorkerId) -> Result<(), SendError<()>> {
        self.pool
            .sender()
            .send_to(worker, Msg::Crash)
            .map_err(|e| e.map(drop))
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
