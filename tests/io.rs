//! Workers that own I/O: readiness reaches `on_io`, a message wakes a
//! worker asleep in its OS poll (no tick to rescue it), replies travel
//! over the mesh to the worker that owns the connection, and a panic in
//! `on_io` is caught like one in `handle`.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use shardpool::io::{Event, Interest, TcpListener, TcpStream, Token};
use shardpool::prelude::*;

/// Generous: the machine may be loaded.
const WATCHDOG: Duration = Duration::from_secs(60);
/// Long enough that an idle tick never wakes a worker during a test: only
/// readiness or the eventfd can.
const NO_TICK: Duration = Duration::from_secs(3600);

const LISTENER: Token = Token(0);

enum Msg {
    /// Register a listener on the worker's own reactor; report its address.
    Listen(mpsc::Sender<SocketAddr>),
    /// Uppercase `line` for connection `conn` of worker `from`.
    Upper {
        from: WorkerId,
        conn: usize,
        line: Vec<u8>,
    },
    /// The answer, back at the connection's worker.
    Answer { conn: usize, line: Vec<u8> },
    /// Report that this message was handled.
    Ping(mpsc::Sender<WorkerId>),
    /// Panic in the next on_io.
    PanicOnIo,
}

/// Accepts connections; each line a client sends goes to the worker that
/// owns the line's first byte, which uppercases it and sends it back over
/// the mesh; the connection's worker writes it out.
#[derive(Default)]
struct LineServer {
    listener: Option<TcpListener>,
    conns: HashMap<usize, (TcpStream, Vec<u8>)>,
    next: usize,
    panic_on_io: bool,
}

impl LineServer {
    fn read(&mut self, conn: usize, ctx: &mut Context<'_, Msg>) {
        let Some((stream, buf)) = self.conns.get_mut(&conn) else {
            return;
        };
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => {
                    self.conns.remove(&conn);
                    return;
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.conns.remove(&conn);
                    return;
                }
            }
        }
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            let from = ctx.id();
            let key = line[0];
            ctx.send_keyed(&key, Msg::Upper { from, conn, line })
                .unwrap_or_else(|_| panic!("send refused"));
        }
    }
}

impl Worker for LineServer {
    type Msg = Msg;

    fn handle(&mut self, msg: Msg, ctx: &mut Context<'_, Msg>) {
        match msg {
            Msg::Listen(reply) => {
                let mut listener =
                    shardpool::io::reuseport_listener("127.0.0.1:0".parse().unwrap()).unwrap();
                ctx.io()
                    .register(&mut listener, LISTENER, Interest::READABLE)
                    .unwrap();
                reply.send(listener.local_addr().unwrap()).unwrap();
                self.listener = Some(listener);
            }
            Msg::Upper { from, conn, line } => {
                let line = line.to_ascii_uppercase();
                ctx.send_to(from, Msg::Answer { conn, line })
                    .unwrap_or_else(|_| panic!("send refused"));
            }
            Msg::Answer { conn, line } => {
                if let Some((stream, _)) = self.conns.get_mut(&conn) {
                    // Small lines on loopback: the socket buffer has room.
                    stream.write_all(&line).unwrap();
                }
            }
            Msg::Ping(reply) => reply.send(ctx.id()).unwrap(),
            Msg::PanicOnIo => self.panic_on_io = true,
        }
    }

    fn on_io(&mut self, event: &Event, ctx: &mut Context<'_, Msg>) {
        assert!(ctx.workers() > 0);
        if self.panic_on_io {
            panic!("on_io failed on purpose");
        }
        if event.token() == LISTENER {
            while let Some(Ok((mut stream, _))) = self.listener.as_ref().map(|l| l.accept()) {
                self.next += 1;
                let conn = self.next;
                ctx.io()
                    .register(&mut stream, Token(conn), Interest::READABLE)
                    .unwrap();
                self.conns.insert(conn, (stream, Vec::new()));
            }
        } else {
            self.read(event.token().0, ctx);
        }
    }
}

fn start(workers: usize) -> Pool<LineServer> {
    start_with(workers, shardpool::DEFAULT_IO_POLL_INTERVAL)
}

fn start_with(workers: usize, io_poll_interval: Duration) -> Pool<LineServer> {
    let config = PoolConfig::default()
        .workers(workers)
        .affinity(Affinity::None)
        .tick_interval(NO_TICK)
        .io_poll_interval(io_poll_interval);
    Pool::start(config, |_| LineServer::default()).unwrap()
}

fn listen(pool: &Pool<LineServer>, worker: usize) -> SocketAddr {
    let (tx, rx) = mpsc::channel();
    pool.sender()
        .send_to(WorkerId::from(worker), Msg::Listen(tx))
        .unwrap();
    rx.recv_timeout(WATCHDOG).expect("listener registered")
}

fn read_line(stream: &mut std::net::TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(WATCHDOG)).unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.last() != Some(&b'\n') {
        let n = stream.read(&mut byte).expect("answer within the watchdog");
        assert_eq!(n, 1, "connection closed early");
        line.push(byte[0]);
    }
    line
}

#[test]
fn readiness_reaches_on_io_and_answers_come_back_over_the_mesh() {
    for interval in [
        shardpool::DEFAULT_IO_POLL_INTERVAL,
        Duration::ZERO,
        Duration::MAX,
    ] {
        lines_round_trip(start_with(2, interval));
    }
}

fn lines_round_trip(pool: Pool<LineServer>) {
    let addr = listen(&pool, 0);
    let mut clients: Vec<_> = (0..4)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    // Lines whose first byte sends them to either worker; answers in order
    // per connection.
    for round in 0..50 {
        for (i, client) in clients.iter_mut().enumerate() {
            let line = format!(
                "{}line {round} of {i}\n",
                (b'a' + (round % 26) as u8) as char
            );
            client.write_all(line.as_bytes()).unwrap();
            assert_eq!(read_line(client), line.to_ascii_uppercase().into_bytes());
        }
    }
    let stats = pool.stats();
    let cross: u64 = stats
        .channels
        .iter()
        .filter(|c| c.from == Endpoint::Worker(WorkerId::from(0)) && c.to == WorkerId::from(1))
        .map(|c| c.sent)
        .sum();
    assert!(cross > 0, "some lines went to the other worker");
    drop(clients);
    pool.shutdown().unwrap();
}

#[test]
fn a_message_wakes_a_worker_asleep_in_its_poll() {
    let pool = start(1);
    // `parks` counts before each sleep. Read it before whatever wakes the
    // worker next (here the listener registration), so the sleep after
    // that wake always shows as a change: reading it after the wake raced
    // with the worker going back to sleep, and then the test waited for a
    // sleep that nothing would end (seen under ThreadSanitizer).
    let mut parks = pool.stats().workers[0].parks;
    let _addr = listen(&pool, 0);
    let tx = pool.sender();
    for _ in 0..10 {
        // Wait until the worker has gone to sleep again; with no tick due
        // for an hour, only the eventfd can wake it. No timing assumption:
        // the watchdog is generous.
        let deadline = std::time::Instant::now() + WATCHDOG;
        while pool.stats().workers[0].parks == parks {
            assert!(std::time::Instant::now() < deadline, "never slept");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Asleep: nothing but the message below can wake it, so this is
        // the count before the wake it causes.
        parks = pool.stats().workers[0].parks;
        let (reply, answer) = mpsc::channel();
        tx.send_to(WorkerId::from(0), Msg::Ping(reply)).unwrap();
        assert_eq!(
            answer.recv_timeout(WATCHDOG).expect("woken by the message"),
            WorkerId::from(0)
        );
    }
    pool.shutdown().unwrap();
}

#[test]
fn shutdown_wakes_a_worker_asleep_in_its_poll() {
    let pool = start(2);
    listen(&pool, 0);
    listen(&pool, 1);
    std::thread::sleep(Duration::from_millis(50));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(pool.shutdown().is_ok()).unwrap());
    assert!(rx.recv_timeout(WATCHDOG).expect("shutdown returned"));
}

#[test]
fn a_panic_in_on_io_is_caught_and_reported() {
    let pool = start(2);
    let addr = listen(&pool, 0);
    let tx = pool.sender();
    tx.send_to(WorkerId::from(0), Msg::PanicOnIo).unwrap();
    // Make sure the flag is set before the connection arrives.
    let (reply, answer) = mpsc::channel();
    tx.send_to(WorkerId::from(0), Msg::Ping(reply)).unwrap();
    answer.recv_timeout(WATCHDOG).unwrap();
    let _client = std::net::TcpStream::connect(addr).unwrap();
    // The other worker keeps answering.
    let (reply, answer) = mpsc::channel();
    tx.send_to(WorkerId::from(1), Msg::Ping(reply)).unwrap();
    answer.recv_timeout(WATCHDOG).unwrap();
    // Worker 0 fails once it sees the connection; shutdown reports it.
    let deadline = std::time::Instant::now() + WATCHDOG;
    while tx.send_to(WorkerId::from(0), Msg::PanicOnIo).is_ok() {
        assert!(std::time::Instant::now() < deadline, "on_io never ran");
        std::thread::sleep(Duration::from_millis(10));
    }
    match pool.shutdown() {
        Err(Error::WorkerPanicked { worker, message }) => {
            assert_eq!(worker, WorkerId::from(0));
            assert!(message.contains("on_io failed on purpose"), "{message}");
        }
        other => panic!("expected WorkerPanicked, got {:?}", other.map(|_| ())),
    }
}

/// Reads at most `CHUNK` bytes per `on_io` and asks for the rest with
/// `io_again`: the socket holds data no new readiness will announce.
struct Sipper {
    listener: Option<TcpListener>,
    conn: Option<TcpStream>,
    read: usize,
    /// Events for the connection (each read one chunk at most).
    events: usize,
    /// Events that came from `io_again` (readable and writable, while the
    /// connection was registered for READABLE only).
    again: usize,
    report: mpsc::Sender<(usize, usize, usize)>,
    want: usize,
}

const CHUNK: usize = 7;
const CONN: Token = Token(1);

impl Worker for Sipper {
    type Msg = mpsc::Sender<SocketAddr>;

    fn handle(&mut self, reply: Self::Msg, ctx: &mut Context<'_, Self::Msg>) {
        let mut listener =
            shardpool::io::reuseport_listener("127.0.0.1:0".parse().unwrap()).unwrap();
        ctx.io()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .unwrap();
        reply.send(listener.local_addr().unwrap()).unwrap();
        self.listener = Some(listener);
    }

    fn on_io(&mut self, event: &Event, ctx: &mut Context<'_, Self::Msg>) {
        if event.token() == LISTENER {
            if let Some(Ok((mut stream, _))) = self.listener.as_ref().map(|l| l.accept()) {
                ctx.io()
                    .register(&mut stream, CONN, Interest::READABLE)
                    .unwrap();
                self.conn = Some(stream);
            }
            return;
        }
        assert_eq!(event.token(), CONN);
        self.events += 1;
        if event.is_writable() {
            self.again += 1;
        }
        let Some(stream) = self.conn.as_mut() else {
            return;
        };
        let mut chunk = [0u8; CHUNK];
        match stream.read(&mut chunk) {
            Ok(0) => {}
            Ok(n) => {
                self.read += n;
                if self.read == self.want {
                    self.report
                        .send((self.read, self.events, self.again))
                        .unwrap();
                }
                // Not read to `WouldBlock`: come back for the rest.
                ctx.io_again(CONN);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

#[test]
fn io_again_delivers_what_a_partial_read_left_without_new_readiness() {
    const WANT: usize = 64 * 1024;
    let (report, reports) = mpsc::channel();
    let config = PoolConfig::default()
        .workers(1)
        .affinity(Affinity::None)
        .tick_interval(NO_TICK);
    let pool = Pool::start(config, move |_| Sipper {
        listener: None,
        conn: None,
        read: 0,
        events: 0,
        again: 0,
        report: report.clone(),
        want: WANT,
    })
    .unwrap();
    let (tx, rx) = mpsc::channel();
    pool.sender().send_to(WorkerId::from(0), tx).unwrap();
    let addr = rx.recv_timeout(WATCHDOG).unwrap();
    let mut client = std::net::TcpStream::connect(addr).unwrap();
    // One write, then silence: the kernel announces the data once (or a
    // few times, as segments arrive), far fewer times than the thousands
    // of chunk-sized reads it takes.
    client.write_all(&vec![b'x'; WANT]).unwrap();
    let (read, events, again) = reports
        .recv_timeout(WATCHDOG)
        .expect("every byte read, with no new readiness after the write");
    assert_eq!(read, WANT);
    assert!(events >= WANT / CHUNK, "{events} events");
    assert!(again > 0);
    drop(client);
    pool.shutdown().unwrap();
}

#[derive(Default)]
struct Reserved(Vec<ErrorKind>);

impl Worker for Reserved {
    type Msg = ();
    fn handle(&mut self, _: (), _ctx: &mut Context<'_, ()>) {}
    fn on_start(&mut self, ctx: &mut Context<'_, ()>) {
        let mut listener =
            shardpool::io::reuseport_listener("127.0.0.1:0".parse().unwrap()).unwrap();
        let io = ctx.io();
        let kind = |r: std::io::Result<()>| r.err().map(|e| e.kind());
        let waker = shardpool::io::WAKER_TOKEN;
        self.0
            .extend(kind(io.register(&mut listener, waker, Interest::READABLE)));
        // A normal registration works, and moving it onto the waker's
        // token is refused too.
        io.register(&mut listener, Token(3), Interest::READABLE)
            .unwrap();
        self.0.extend(kind(io.reregister(
            &mut listener,
            waker,
            Interest::READABLE,
        )));
        io.deregister(&mut listener).unwrap();
    }
}

#[test]
fn registering_the_waker_token_is_refused() {
    let config = PoolConfig::default().workers(1).affinity(Affinity::None);
    let pool = Pool::start(config, |_| Reserved::default()).unwrap();
    let workers = pool.shutdown().unwrap();
    assert_eq!(
        workers[0].0,
        [ErrorKind::InvalidInput, ErrorKind::InvalidInput]
    );
}
