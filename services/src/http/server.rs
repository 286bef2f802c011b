//! The hit counter on shardpool: every worker owns its listener, the
//! connections it accepted and a share of the counters.
//!
//! - Each worker binds the same address with
//!   [`reuseport_listener`](shardpool::io::reuseport_listener) in
//!   `on_start` (the kernel spreads connections over the workers; a worker
//!   restarted after a panic binds again) and registers it, and every
//!   connection it accepts, with its own reactor ([`Context::io`]). Only
//!   that worker reads, answers and closes them, in [`Worker::on_io`].
//!   [`Pool::start`] returns once every worker listens, or fails if one
//!   cannot.
//! - Each connection is read at most [`READ_BUDGET`] bytes per turn; one
//!   with more to read comes back for it with [`Context::io_again`], after
//!   the worker's other ready connections.
//! - A request is cut out of the input with [`parse`]. Its
//!   key's owner is [`Context::worker_for`]: if that is this worker, the
//!   counter is bumped and the response written at once; if not, the worker
//!   asks the owner with [`Context::ask`] ([`Msg::Hit`] carries the key
//!   and the [`Asked`] to answer) and goes on with the next request. The
//!   answer comes back as this worker's own [`Msg::Counted`], naming the
//!   connection and the request's place in it.
//! - Responses leave in request order: each connection keeps a queue with
//!   one slot per request not yet written; an answer fills its slot, and
//!   the filled slots at the front are written out. Answers that came back
//!   during a batch are written in `tick` (after the batch): one `write`
//!   per connection for all of them.
//! - A malformed request gets its `4xx` after the responses owed before it,
//!   and then its connection — only that one — closes. `connection: close`
//!   and HTTP/1.0 close after their response. A client that sends without
//!   reading stops being read once it owes [`MAX_QUEUED`] responses or
//!   [`MAX_UNSENT_BYTES`] of output (TCP then makes it wait); nothing is
//!   dropped.
//! - An answer that cannot come (the owner failed) or comes after the
//!   deadline ([`CounterConfig::ask_deadline`]) is a `503` for that request.
//!   A worker that fails takes its listener and connections with it (the
//!   kernel sends new connections to the other listeners); under
//!   [`PanicPolicy::Restart`] the new instance listens again, its share of
//!   the counters back at zero, and the answers to the old instance's
//!   asks are dropped with it (they never reach the new one's
//!   connections).
//!
//! ```no_run
//! use shardpool_services::http::server::{CounterConfig, HttpCounter};
//!
//! let server = HttpCounter::start("127.0.0.1:8080".parse()?, CounterConfig::default())?;
//! println!("try: curl http://{}/hit/apples", server.addr());
//! server.stop()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use shardpool::io::{Event, Interest, TcpListener, TcpStream, Token};
use shardpool::prelude::*;

use super::{parse, write_response, DateCache, Parsed, Persist, Route, Status};
use crate::conn_io::{accept_next, read_some, watch_writable, write_out, Accepted, ReadStep};

/// The listener's token; connections use their id (from 1).
const LISTENER: Token = Token(0);
/// Bytes read per `read` call.
const READ_CHUNK: usize = 16 * 1024;
/// Bytes read from one connection per turn, before the worker serves its
/// other ready connections and comes back ([`Context::io_again`]).
pub const READ_BUDGET: usize = 64 * 1024;
/// Responses owed to one connection (answered or waiting for a key's
/// owner, not yet written) at which its worker stops reading it.
pub const MAX_QUEUED: usize = 1024;
/// Output written for one connection but not yet taken by its socket, in
/// bytes, at which its worker stops reading it.
pub const MAX_UNSENT_BYTES: usize = 1 << 20;

/// How the server is set up.
#[derive(Clone, Debug)]
pub struct CounterConfig {
    /// The pool: workers, affinity, intervals. Default: one pinned worker
    /// per physical core.
    pub pool: PoolConfig,
    /// How long a worker waits for a key's owner before it answers `503`.
    /// Default: 5 s (an owner that fails is noticed at once, not at the
    /// deadline).
    pub ask_deadline: Duration,
}

impl Default for CounterConfig {
    fn default() -> Self {
        CounterConfig {
            pool: PoolConfig::default().name("http"),
            ask_deadline: Duration::from_secs(5),
        }
    }
}

/// A message between the server's workers (and from its handle).
pub enum Msg {
    /// Take this listener: register it and serve what it accepts (for a
    /// worker made with [`CounterWorker::new`], wired by hand).
    Listen(TcpListener),
    /// At the key's owner: count a hit on `key` and answer the count.
    Hit {
        /// The key.
        key: Box<[u8]>,
        /// Where the new count goes.
        asked: Asked<u64>,
    },
    /// Back at the asking worker: the count for request `seq` of
    /// connection `conn`, or why there is none.
    Counted {
        /// The connection, on this worker.
        conn: u64,
        /// The request's number on that connection.
        seq: u64,
        /// The owner's answer.
        outcome: Result<u64, AskError>,
    },
    /// Report this worker's counters.
    Stats(mpsc::Sender<(WorkerId, CounterStats)>),
    /// Accept again: a timer set when `accept` failed (out of file
    /// descriptors), since the connections waiting then raise no new
    /// readiness event.
    Accept,
}

/// One worker's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CounterStats {
    /// Connections accepted.
    pub connections: u64,
    /// Requests answered or being answered.
    pub requests: u64,
    /// Requests whose key another worker owns (each one an ask).
    pub asked: u64,
    /// Requests that could not be parsed (each closed its connection).
    pub invalid: u64,
    /// Asks that came back without a count (each a `503`).
    pub unanswered: u64,
}

/// A response not yet written: its status once known.
struct Slot {
    status: Option<Status>,
    head: bool,
    persist: Persist,
}

/// One client connection, owned by the worker that accepted it.
struct Conn {
    stream: TcpStream,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Responses owed, in request order: the front one answers request
    /// `next_seq - queue.len()`.
    queue: VecDeque<Slot>,
    /// The number of the next request.
    next_seq: u64,
    /// Registered for WRITABLE as well (output is waiting).
    writing: bool,
    /// The client closed its side: answer what it sent, then close.
    eof: bool,
    /// A request said the connection ends after its response (or could
    /// not be parsed): read nothing more, close once it is written.
    last: bool,
    /// Reading stopped at [`MAX_QUEUED`] or [`MAX_UNSENT_BYTES`].
    paused: bool,
    /// Read until the socket says `WouldBlock` or ends: reading stopped
    /// before that (a pause, a spent budget) or the peer closed, so no new
    /// readiness event may come for what is left.
    read_all: bool,
}

impl Conn {
    fn backlogged(&self) -> bool {
        self.queue.len() >= MAX_QUEUED || self.output.len() >= MAX_UNSENT_BYTES
    }

    /// Queues the response to the next request, `status` if known now.
    fn push(&mut self, status: Option<Status>, head: bool, persist: Persist, date: &mut DateCache) {
        self.next_seq += 1;
        if persist.closes() {
            self.last = true;
        }
        match status {
            // Nothing owed before it: straight to the output.
            Some(status) if self.queue.is_empty() => {
                write_response(&mut self.output, status, head, persist, date.now());
            }
            status => self.queue.push_back(Slot {
                status,
                head,
                persist,
            }),
        }
    }

    /// Fills request `seq`'s slot and moves the known responses at the
    /// front of the queue to the output.
    fn fill(&mut self, seq: u64, status: Status, date: &mut DateCache) {
        let front = self.next_seq - self.queue.len() as u64;
        let Some(slot) = seq
            .checked_sub(front)
            .and_then(|at| self.queue.get_mut(at as usize))
        else {
            return;
        };
        slot.status = Some(status);
        while let Some(Slot {
            status: Some(status),
            head,
            persist,
        }) = self.queue.front()
        {
            write_response(&mut self.output, *status, *head, *persist, date.now());
            self.queue.pop_front();
        }
    }
}

/// A worker's share of the counters.
type Counts = HashMap<Box<[u8]>, u64, ahash::RandomState>;

/// Counts a hit on a key this worker owns; returns the new count.
fn hit(counts: &mut Counts, key: &[u8]) -> u64 {
    if let Some(count) = counts.get_mut(key) {
        *count += 1;
        return *count;
    }
    counts.insert(key.into(), 1);
    1
}

/// One worker of the server: its share of the counters and its
/// connections.
pub struct CounterWorker {
    counts: Counts,
    listener: Option<TcpListener>,
    /// Where `on_start` listens (`None`: it does not).
    listen_on: Option<SocketAddr>,
    /// A listener already bound to `listen_on`, to use instead of binding.
    bound: Option<TcpListener>,
    conns: HashMap<u64, Conn>,
    next_conn: u64,
    ask_deadline: Duration,
    date: DateCache,
    stats: CounterStats,
    scratch: Box<[u8]>,
    /// Connections that got answers this batch: written once, in `tick`.
    dirty: Vec<u64>,
}

impl CounterWorker {
    /// A worker with no counters and no listener (send it one with
    /// [`Msg::Listen`]), waiting `ask_deadline` at most for a key's owner.
    pub fn new(ask_deadline: Duration) -> Self {
        CounterWorker {
            counts: HashMap::with_hasher(super::seeded_hasher()),
            listener: None,
            listen_on: None,
            bound: None,
            conns: HashMap::new(),
            next_conn: 0,
            ask_deadline,
            date: DateCache::default(),
            stats: CounterStats::default(),
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            dirty: Vec::new(),
        }
    }

    /// A worker that listens on `addr` from `on_start`, with `bound` if
    /// given (a listener already bound there, e.g. the one that picked the
    /// port), else with a new [`reuseport_listener`]. If it cannot, its
    /// `on_start` panics, and [`Pool::start`] returns the error.
    ///
    /// [`reuseport_listener`]: shardpool::io::reuseport_listener
    pub fn listening(addr: SocketAddr, bound: Option<TcpListener>, ask_deadline: Duration) -> Self {
        CounterWorker {
            listen_on: Some(addr),
            bound,
            ..CounterWorker::new(ask_deadline)
        }
    }

    /// This worker's counters.
    pub fn stats(&self) -> CounterStats {
        self.stats
    }

    /// Registers `listener` and accepts what already waits on it.
    fn listen(&mut self, mut listener: TcpListener, ctx: &mut Context<'_, Msg>) -> io::Result<()> {
        ctx.io()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        self.listener = Some(listener);
        // Connections queued before the registration.
        self.accept(ctx);
        Ok(())
    }

    fn accept(&mut self, ctx: &mut Context<'_, Msg>) {
        let Some(listener) = &self.listener else {
            return;
        };
        loop {
            match accept_next(listener) {
                Accepted::Stream(mut stream) => {
                    self.next_conn += 1;
                    let id = self.next_conn;
                    let token = Token(id as usize);
                    if ctx
                        .io()
                        .register(&mut stream, token, Interest::READABLE)
                        .is_err()
                    {
                        continue;
                    }
                    self.stats.connections += 1;
                    self.conns.insert(
                        id,
                        Conn {
                            stream,
                            input: Vec::new(),
                            output: Vec::new(),
                            queue: VecDeque::new(),
                            next_seq: 0,
                            writing: false,
                            eof: false,
                            last: false,
                            paused: false,
                            read_all: false,
                        },
                    );
                }
                Accepted::Drained => return,
                // Out of file descriptors, say: the waiting connections
                // raise no new event (edge-triggered), so try again soon.
                Accepted::Retry(e) => {
                    eprintln!("http_counter: accept failed: {e}");
                    let _ = ctx.send_after(Duration::from_millis(100), Msg::Accept);
                    return;
                }
            }
        }
    }

    /// Reads what connection `id` has, at most [`READ_BUDGET`] bytes this
    /// turn, and answers its whole requests. A connection with more to
    /// read comes back for it with [`Context::io_again`], after the
    /// worker's other ready connections: a client that floods the server
    /// delays the others by one budget, not by its flood.
    ///
    /// A read shorter than the chunk took everything the socket held, and
    /// later bytes raise a new (edge-triggered) event, so the read that
    /// would only say `WouldBlock` is skipped — except when `read_all` is
    /// set: after a close or an error, a pause or a spent budget no new
    /// event may come, so the socket is read until it says so.
    fn readable(&mut self, id: u64, ctx: &mut Context<'_, Msg>) {
        let mut budget = READ_BUDGET;
        loop {
            let Some(conn) = self.conns.get_mut(&id) else {
                return;
            };
            if conn.eof || conn.last {
                break;
            }
            if conn.backlogged() {
                // `flush` asks for another turn once there is room.
                conn.paused = true;
                conn.read_all = true;
                break;
            }
            if budget == 0 {
                conn.read_all = true;
                ctx.io_again(Token(id as usize));
                break;
            }
            let chunk = self.scratch.len().min(budget);
            match read_some(&mut conn.stream, &mut self.scratch[..chunk]) {
                ReadStep::Eof => conn.eof = true,
                ReadStep::Data(n) => {
                    budget -= n;
                    conn.input.extend_from_slice(&self.scratch[..n]);
                    let read_all = conn.read_all;
                    self.serve(id, ctx);
                    if n < chunk && !read_all {
                        return;
                    }
                }
                ReadStep::Empty => {
                    conn.read_all = false;
                    break;
                }
                ReadStep::Failed => {
                    self.close(id);
                    return;
                }
            }
        }
        self.serve(id, ctx);
    }

    /// Answers (or asks for) every whole request in connection `id`'s
    /// input, then writes what is ready.
    fn serve(&mut self, id: u64, ctx: &mut Context<'_, Msg>) {
        let me = ctx.id();
        let Self {
            conns,
            counts,
            date,
            stats,
            ask_deadline,
            ..
        } = self;
        let Some(conn) = conns.get_mut(&id) else {
            return;
        };
        let mut used = 0;
        while !conn.last && !conn.backlogged() {
            let (route, head, persist) = match parse(&conn.input[used..]) {
                Parsed::Partial => break,
                Parsed::Invalid(status) => {
                    stats.invalid += 1;
                    conn.push(Some(status), false, Persist::Close, date);
                    break;
                }
                Parsed::Request {
                    route,
                    head,
                    persist,
                    len,
                } => {
                    used += len;
                    (route, head, persist)
                }
            };
            stats.requests += 1;
            let key = match route {
                Route::Answer(status) => {
                    conn.push(Some(status), head, persist, date);
                    continue;
                }
                Route::Hit(key) => key,
            };
            let owner = ctx.worker_for(key);
            if owner == me {
                let count = hit(counts, key);
                conn.push(Some(Status::Count(count)), head, persist, date);
                continue;
            }
            stats.asked += 1;
            let key: Box<[u8]> = key.into();
            let seq = conn.next_seq;
            conn.push(None, head, persist, date);
            let asked = ctx.ask(
                owner,
                |asked| Msg::Hit { key, asked },
                move |outcome| Msg::Counted {
                    conn: id,
                    seq,
                    outcome,
                },
                *ask_deadline,
            );
            if asked.is_err() {
                // The owner has failed for good: this request cannot be
                // counted.
                stats.unanswered += 1;
                conn.fill(seq, Status::Unavailable, date);
            }
        }
        conn.input.drain(..used);
        if !conn.last && conn.backlogged() {
            // Requests may wait in `input` with no readiness event to come
            // for them: `flush` resumes the connection once it has room.
            conn.paused = true;
            conn.read_all = true;
        }
        self.flush(id, ctx);
    }

    /// Writes as much output as the socket takes, watches WRITABLE while
    /// some is left, and closes a connection that is done.
    fn flush(&mut self, id: u64, ctx: &mut Context<'_, Msg>) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let (written, failed) = write_out(&mut conn.stream, &conn.output);
        conn.output.drain(..written);
        let pending = !conn.output.is_empty();
        let finished = conn.queue.is_empty() && !pending;
        if failed || (finished && (conn.eof || conn.last)) {
            self.close(id);
            return;
        }
        if conn.paused && !conn.backlogged() {
            // Parse what waits in `input` and read the rest, in this
            // worker's next loop iteration.
            conn.paused = false;
            ctx.io_again(Token(id as usize));
        }
        let token = Token(id as usize);
        if watch_writable(ctx, &mut conn.stream, token, &mut conn.writing, pending).is_err() {
            self.close(id);
        }
    }

    fn close(&mut self, id: u64) {
        // Dropping the stream closes it and takes it out of the reactor.
        self.conns.remove(&id);
    }
}

impl Worker for CounterWorker {
    type Msg = Msg;

    /// Listens, if made with [`CounterWorker::listening`]; panics if it
    /// cannot (so that [`Pool::start`] reports it).
    fn on_start(&mut self, ctx: &mut Context<'_, Msg>) {
        let Some(addr) = self.listen_on else {
            return;
        };
        let listener = match self.bound.take() {
            Some(listener) => Ok(listener),
            None => shardpool::io::reuseport_listener(addr),
        };
        if let Err(e) = listener.and_then(|listener| self.listen(listener, ctx)) {
            panic!("http_counter: cannot listen on {addr}: {e}");
        }
    }

    fn handle(&mut self, msg: Msg, ctx: &mut Context<'_, Msg>) {
        match msg {
            Msg::Listen(listener) => {
                if let Err(e) = self.listen(listener, ctx) {
                    eprintln!("http_counter: cannot register the listener: {e}");
                }
            }
            Msg::Hit { key, asked } => asked.send(hit(&mut self.counts, &key)),
            Msg::Counted { conn, seq, outcome } => {
                let status = match outcome {
                    Ok(count) => Status::Count(count),
                    Err(_) => {
                        self.stats.unanswered += 1;
                        Status::Unavailable
                    }
                };
                // The connection may have gone meanwhile: drop the answer.
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.fill(seq, status, &mut self.date);
                    self.dirty.push(conn);
                }
            }
            Msg::Stats(reply) => {
                let _ = reply.send((ctx.id(), self.stats));
            }
            Msg::Accept => self.accept(ctx),
        }
    }

    /// After every batch: write the answers that came back, one write per
    /// connection.
    fn tick(&mut self, ctx: &mut Context<'_, Msg>) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for &id in &dirty {
            self.flush(id, ctx);
        }
        dirty.clear();
        self.dirty = dirty;
    }

    fn on_io(&mut self, event: &Event, ctx: &mut Context<'_, Msg>) {
        if event.token() == LISTENER {
            self.accept(ctx);
            return;
        }
        let id = event.token().0 as u64;
        if event.is_read_closed() || event.is_error() {
            if let Some(conn) = self.conns.get_mut(&id) {
                conn.read_all = true;
            }
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.readable(id, ctx);
        }
        if event.is_writable() {
            self.flush(id, ctx);
        }
    }
}

/// A running shardpool hit counter.
pub struct HttpCounter {
    addr: SocketAddr,
    pool: Pool<CounterWorker>,
}

impl HttpCounter {
    /// Starts the pool; each worker binds `addr` (`SO_REUSEPORT`) in its
    /// `on_start`, and this returns once they all listen. Port 0 picks a
    /// free port: it is bound here first, and that listener goes to
    /// worker 0.
    ///
    /// # Errors
    /// The pool refused the configuration, or binding failed (here, or in
    /// a worker's `on_start`: [`shardpool::Error::WorkerPanicked`]).
    pub fn start(
        addr: SocketAddr,
        config: CounterConfig,
    ) -> Result<HttpCounter, Box<dyn std::error::Error>> {
        let deadline = config.ask_deadline;
        let first = shardpool::io::reuseport_listener(addr)?;
        let addr = first.local_addr()?;
        let first = Mutex::new(Some(first));
        let pool = Pool::start(config.pool, move |id| {
            // Worker 0's first start takes the listener bound here; every
            // other start (a restart of worker 0 included) binds anew.
            let bound = match id.index() {
                0 => first.lock().unwrap_or_else(|e| e.into_inner()).take(),
                _ => None,
            };
            CounterWorker::listening(addr, bound, deadline)
        })?;
        Ok(HttpCounter { addr, pool })
    }

    /// The address it serves on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The worker that owns `key`'s counter.
    pub fn owner(&self, key: &[u8]) -> WorkerId {
        self.pool.sender().worker_for(key)
    }

    /// Each worker's counters, in id order (a worker that does not answer
    /// within `timeout` is left out).
    pub fn stats(&self, timeout: Duration) -> Vec<(WorkerId, CounterStats)> {
        let (tx, rx) = mpsc::channel();
        let sender = self.pool.sender();
        let asked = (0..self.pool.workers())
            .filter(|&w| {
                sender
                    .send_to(WorkerId::from(w), Msg::Stats(tx.clone()))
                    .is_ok()
            })
            .count();
        let mut all: Vec<_> = (0..asked)
            .map_while(|_| rx.recv_timeout(timeout).ok())
            .collect();
        all.sort_by_key(|(id, _)| *id);
        all
    }

    /// Stops the pool (closing every connection) and returns each worker's
    /// counters.
    ///
    /// # Errors
    /// A worker panicked.
    pub fn stop(self) -> Result<Vec<CounterStats>, shardpool::Error> {
        Ok(self
            .pool
            .shutdown()?
            .iter()
            .map(CounterWorker::stats)
            .collect())
    }
}
