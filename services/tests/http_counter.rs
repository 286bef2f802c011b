//! The HTTP hit counter (`services/examples/http_counter.rs`) on raw
//! sockets: pipelined keep-alive requests for keys of both workers over one
//! connection are counted exactly and answered in request order; a
//! malformed request gets a 400 and closes only its own connection; the
//! axum peer answers the same bytes. Every read has a 30 s timeout, so a
//! hang fails the test instead of holding it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use shardpool::prelude::*;
use shardpool_services::http::axum_peer::{AxumConfig, AxumCounter};
use shardpool_services::http::server::{CounterConfig, HttpCounter};

const WATCHDOG: Duration = Duration::from_secs(30);

fn start(workers: usize) -> HttpCounter {
    let config = CounterConfig {
        pool: PoolConfig::default()
            .workers(workers)
            .affinity(Affinity::None),
        ..CounterConfig::default()
    };
    HttpCounter::start("127.0.0.1:0".parse().unwrap(), config).expect("start the server")
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WATCHDOG)).unwrap();
    stream
}

/// A response read off a connection: status code, headers (lowercase
/// names) and body.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn count(&self) -> u64 {
        assert_eq!(self.status, 200, "{self:?}");
        std::str::from_utf8(&self.body)
            .unwrap()
            .trim_end()
            .parse()
            .unwrap()
    }
}

/// Reads responses off `stream` as they come, with `httparse`.
struct Reader {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Reader {
    fn new(stream: TcpStream) -> Self {
        Reader {
            stream,
            buf: Vec::new(),
        }
    }

    /// The next response (`head`: to a HEAD request, so without a body),
    /// or `None` if the server closed the connection first.
    fn next(&mut self, head: bool) -> Option<Response> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut parsed = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(n) = parsed.parse(&self.buf).expect("a response") {
                let headers: Vec<(String, String)> = parsed
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                let status = parsed.code.unwrap();
                let len: usize = headers
                    .iter()
                    .find(|(n, _)| n == "content-length")
                    .map_or(0, |(_, v)| v.parse().unwrap());
                let len = if head { 0 } else { len };
                if self.buf.len() >= n + len {
                    let body = self.buf[n..n + len].to_vec();
                    self.buf.drain(..n + len);
                    return Some(Response {
                        status,
                        headers,
                        body,
                    });
                }
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    assert!(self.buf.is_empty(), "a cut response: {:?}", self.buf);
                    return None;
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => panic!("no response within the watchdog: {e}"),
            }
        }
    }

    /// Whether the server closed the connection (after any responses).
    fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 64];
        match self.stream.read(&mut chunk) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => true,
            Err(e) => panic!("the connection neither closed nor answered: {e}"),
        }
    }
}

/// Sends `request` on a new connection and reads the response, trying
/// again (up to 10 times) when the connection is reset or closed unanswered:
/// it reached a listener that was closing with its failed worker. A
/// connection that hangs fails the test (the read timeout is the
/// watchdog).
fn served_on_a_new_connection(addr: SocketAddr, request: &str) -> Response {
    let once = || {
        let mut fresh = Reader::new(connect(addr));
        fresh.stream.write_all(request.as_bytes()).ok()?;
        let mut chunk = [0u8; 4096];
        match fresh.stream.read(&mut chunk) {
            Ok(0) => None,
            Ok(n) => {
                fresh.buf.extend_from_slice(&chunk[..n]);
                fresh.next(false)
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
            Err(e) => panic!("a new connection hung: {e}"),
        }
    };
    (0..10).find_map(|_| once()).expect("served after a retry")
}

fn get(key: &str) -> String {
    format!("GET /hit/{key} HTTP/1.1\r\nhost: test\r\n\r\n")
}

/// `n` distinct keys that `server` gives to worker `owner`.
fn keys_of(server: &HttpCounter, owner: usize, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("k{owner}-{i}"))
        .filter(|k| server.owner(k.as_bytes()).index() == owner)
        .take(n)
        .collect()
}

/// Over one connection: `rounds` rounds of one request for each of three
/// keys per worker, interleaving the owners, in a single write. Worker
/// `w`'s keys first get `1000 * w` hits each, so that every response of
/// the pipeline has a count of its own: an answer out of order would show
/// as a wrong count.
fn pipelined_hits_are_counted_and_answered_in_order(workers: usize) {
    let server = start(workers);
    let addr = server.addr();
    let per_owner: Vec<Vec<String>> = (0..workers).map(|w| keys_of(&server, w, 3)).collect();
    let offset = |owner: usize| 1000 * owner as u64;

    let mut warm = String::new();
    for (owner, keys) in per_owner.iter().enumerate() {
        for key in keys {
            for _ in 0..offset(owner) {
                warm.push_str(&get(key));
            }
        }
    }
    let mut stream = connect(addr);
    stream.write_all(warm.as_bytes()).unwrap();
    let mut reader = Reader::new(stream);
    for (owner, keys) in per_owner.iter().enumerate() {
        for key in keys {
            for i in 1..=offset(owner) {
                assert_eq!(reader.next(false).expect("a response").count(), i, "{key}");
            }
        }
    }

    // Whichever worker takes the connection answers a share of the
    // requests itself and asks the other workers for the rest.
    let rounds = 300u64;
    let mut pipeline = String::new();
    for _ in 0..rounds {
        for i in 0..3 {
            for keys in &per_owner {
                pipeline.push_str(&get(&keys[i]));
            }
        }
    }
    let mut stream = connect(addr);
    stream.write_all(pipeline.as_bytes()).unwrap();
    let mut reader = Reader::new(stream);
    for round in 1..=rounds {
        for i in 0..3 {
            for (owner, keys) in per_owner.iter().enumerate() {
                assert_eq!(
                    reader.next(false).expect("a response").count(),
                    offset(owner) + round,
                    "{}",
                    keys[i]
                );
            }
        }
    }

    let stats = server.stats(WATCHDOG);
    assert_eq!(stats.len(), workers);
    let asked: u64 = stats.iter().map(|(_, s)| s.asked).sum();
    let others = (workers - 1) as u64;
    assert!(
        asked >= rounds * 3 * others,
        "every other owner's keys went over the mesh: {stats:?}"
    );
    assert_eq!(stats.iter().map(|(_, s)| s.unanswered).sum::<u64>(), 0);
    server.stop().expect("no worker panicked");
}

#[test]
fn pipelined_hits_on_both_workers_are_counted_and_answered_in_order() {
    pipelined_hits_are_counted_and_answered_in_order(2);
}

/// Three owners: answers from two other workers interleave on their way
/// back, and still leave in request order.
#[test]
fn pipelined_hits_on_three_workers_are_counted_and_answered_in_order() {
    pipelined_hits_are_counted_and_answered_in_order(3);
}

#[test]
fn a_malformed_request_gets_400_and_closes_only_its_connection() {
    let server = start(2);
    let addr = server.addr();
    let key = &keys_of(&server, 1, 1)[0];
    // Opened first, used after the bad one is gone.
    let mut other = Reader::new(connect(addr));
    other.stream.write_all(get(key).as_bytes()).unwrap();
    assert_eq!(other.next(false).unwrap().count(), 1);

    // Answered in order: the good request (asked of worker 1 by whichever
    // worker took the connection), then the 400; the request after the
    // garbage is never read.
    let mut bad = Reader::new(connect(addr));
    let input = format!("{}GARBAGE\r\n\r\n{}", get(key), get(key));
    bad.stream.write_all(input.as_bytes()).unwrap();
    assert_eq!(bad.next(false).unwrap().count(), 2);
    let refused = bad.next(false).expect("a 400");
    assert_eq!(refused.status, 400);
    assert_eq!(refused.header("connection"), Some("close"));
    assert!(bad.closed(), "the bad connection closes");

    // The other connection is still served, here and across workers.
    for i in 3..=5 {
        other.stream.write_all(get(key).as_bytes()).unwrap();
        assert_eq!(other.next(false).unwrap().count(), i);
    }
    let mut fresh = Reader::new(connect(addr));
    fresh.stream.write_all(get(key).as_bytes()).unwrap();
    assert_eq!(fresh.next(false).unwrap().count(), 6);

    let stats = server.stats(WATCHDOG);
    assert_eq!(stats.iter().map(|(_, s)| s.invalid).sum::<u64>(), 1);
    server.stop().expect("no worker panicked");
}

#[test]
fn close_http10_and_half_close_end_the_connection_after_the_responses() {
    let server = start(2);
    let mut reader = Reader::new(connect(server.addr()));
    let input = format!(
        "{}GET /hit/x HTTP/1.1\r\nconnection: close\r\n\r\n{}",
        get("x"),
        get("x")
    );
    reader.stream.write_all(input.as_bytes()).unwrap();
    assert_eq!(reader.next(false).unwrap().count(), 1);
    let last = reader.next(false).unwrap();
    assert_eq!(last.count(), 2);
    assert_eq!(last.header("connection"), Some("close"));
    assert!(reader.closed());

    let mut reader = Reader::new(connect(server.addr()));
    reader
        .stream
        .write_all(b"GET /hit/x HTTP/1.0\r\n\r\n")
        .unwrap();
    assert_eq!(reader.next(false).unwrap().count(), 3);
    assert!(reader.closed());

    // A client that sends and shuts its side at once (the data and the FIN
    // may come in one readiness event) still gets every answer, and then
    // the server closes too.
    let key = &keys_of(&server, 1, 1)[0];
    for round in 0..10u64 {
        let mut reader = Reader::new(connect(server.addr()));
        let input = format!("{}{}", get(key), get(key));
        reader.stream.write_all(input.as_bytes()).unwrap();
        reader.stream.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(reader.next(false).unwrap().count(), 2 * round + 1);
        assert_eq!(reader.next(false).unwrap().count(), 2 * round + 2);
        assert!(reader.closed());
    }

    // The same with a pipeline long enough to pause the connection (more
    // responses owed than the server queues) and to span several turns of
    // reading: the close announced while it was paused is not lost.
    let mut reader = Reader::new(connect(server.addr()));
    let pipeline = get("long").repeat(5000);
    reader.stream.write_all(pipeline.as_bytes()).unwrap();
    reader.stream.shutdown(std::net::Shutdown::Write).unwrap();
    for i in 1..=5000 {
        assert_eq!(reader.next(false).unwrap().count(), i);
    }
    assert!(reader.closed());
    server.stop().expect("no worker panicked");
}

/// Sends `input` on a fresh connection and returns everything the server
/// wrote until it closed, `date` values blanked.
fn exchange(addr: SocketAddr, input: &[u8]) -> String {
    let mut stream = connect(addr);
    stream.write_all(input).unwrap();
    let mut out = Vec::new();
    stream
        .read_to_end(&mut out)
        .expect("the server closes within the watchdog");
    let text = String::from_utf8(out).unwrap();
    text.split("\r\n")
        .map(|line| {
            if line.to_ascii_lowercase().starts_with("date: ") {
                "date: -"
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

#[test]
fn the_axum_peer_answers_the_same_bytes() {
    let server = start(2);
    let peer = AxumCounter::start(
        "127.0.0.1:0".parse().unwrap(),
        AxumConfig {
            threads: Some(2),
            shards: 4,
        },
    )
    .expect("start the peer");
    let inputs: [&[u8]; 6] = [
        b"GET /hit/a HTTP/1.1\r\nhost: t\r\n\r\nGET /hit/b?x=1 HTTP/1.1\r\n\r\n\
          HEAD /hit/a HTTP/1.1\r\n\r\nGET /hit/a HTTP/1.1\r\nconnection: close\r\n\r\n",
        b"POST /hit/a HTTP/1.1\r\ncontent-length: 3\r\n\r\nabcGET /nope HTTP/1.1\r\n\r\n\
          GET /hit/ HTTP/1.1\r\n\r\nGET /hit/a/b HTTP/1.1\r\nconnection: close\r\n\r\n",
        b"GET /hit/a HTTP/1.1\r\n\r\nGARBAGE\r\n\r\n",
        b"GET /hit/a HTTP/1.0\r\n\r\n",
        b"GET /hit/a HTTP/1.0\r\nconnection: keep-alive\r\n\r\nGET /hit/a HTTP/1.0\r\n\r\n",
        b"DELETE /hit/a HTTP/1.1\r\nconnection: close\r\n\r\n",
    ];
    for input in inputs {
        let ours = exchange(server.addr(), input);
        let axum = exchange(peer.addr(), input);
        assert_eq!(ours, axum, "for {:?}", String::from_utf8_lossy(input));
    }
    peer.stop();
    server.stop().expect("no worker panicked");
}

/// The server's worker, made to panic when asked to count a key that
/// starts with `BOOM`: a worker that fails while it holds a question.
struct Fragile(shardpool_services::http::server::CounterWorker);

const BOOM: &[u8] = b"boom";

impl Worker for Fragile {
    type Msg = shardpool_services::http::server::Msg;

    fn handle(&mut self, msg: Self::Msg, ctx: &mut Context<'_, Self::Msg>) {
        if let shardpool_services::http::server::Msg::Hit { key, .. } = &msg {
            assert!(!key.starts_with(BOOM), "counting {key:?} fails");
        }
        self.0.handle(msg, ctx);
    }

    fn on_start(&mut self, ctx: &mut Context<'_, Self::Msg>) {
        self.0.on_start(ctx);
    }

    fn tick(&mut self, ctx: &mut Context<'_, Self::Msg>) {
        self.0.tick(ctx);
    }

    fn on_io(&mut self, event: &shardpool::io::Event, ctx: &mut Context<'_, Self::Msg>) {
        self.0.on_io(event, ctx);
    }
}

/// A key's owner that fails costs the requests for its keys a `503` —
/// at once, not at the ask's deadline — and nothing else: the connection
/// goes on, in order, keys of the live worker are still counted, and new
/// connections go to the live worker.
#[test]
fn an_owner_that_fails_costs_its_requests_a_503_and_nothing_else() {
    use shardpool_services::http::server::{CounterWorker, Msg};

    // The deadline is far beyond the watchdog: a 503 within the watchdog
    // is the failure being noticed, not the deadline passing.
    let deadline = Duration::from_secs(600);
    let pool = Pool::start(
        PoolConfig::default()
            .workers(2)
            .affinity(Affinity::None)
            .on_panic(PanicPolicy::Stop),
        move |_| Fragile(CounterWorker::new(deadline)),
    )
    .expect("start the pool");
    // Only worker 0 listens when the first connection comes: it is worker
    // 0's, asking worker 1. Then worker 1 listens on the same port too.
    let listener = shardpool::io::reuseport_listener("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let sender = pool.sender();
    let listen = |worker: usize, listener| {
        assert!(sender
            .send_to(WorkerId::from(worker), Msg::Listen(listener))
            .is_ok());
    };
    listen(0, listener);
    let mut reader = Reader::new(connect(addr));
    listen(1, shardpool::io::reuseport_listener(addr).unwrap());
    let key_of = |prefix: &str, owner: usize| {
        (0..)
            .map(|i| format!("{prefix}{i}"))
            .find(|k| sender.worker_for(k.as_bytes()).index() == owner)
            .unwrap()
    };
    let (mine, theirs) = (key_of("f", 0), key_of("f", 1));
    let boom = key_of(std::str::from_utf8(BOOM).unwrap(), 1);

    let input = format!(
        "{}{}{}{}{}",
        get(&theirs),
        get(&mine),
        get(&boom),
        get(&mine),
        get(&theirs),
    );
    reader.stream.write_all(input.as_bytes()).unwrap();
    assert_eq!(reader.next(false).unwrap().count(), 1);
    assert_eq!(reader.next(false).unwrap().count(), 1);
    assert_eq!(
        reader.next(false).unwrap().status,
        503,
        "the owner panicked"
    );
    assert_eq!(reader.next(false).unwrap().count(), 2);
    assert_eq!(
        reader.next(false).unwrap().status,
        503,
        "the owner has failed"
    );
    // Later requests on the same connection: still served.
    reader.stream.write_all(get(&mine).as_bytes()).unwrap();
    assert_eq!(reader.next(false).unwrap().count(), 3);

    // The failed worker's listener closed with it: new connections all go
    // to worker 0. One that reached worker 1's listener just before it
    // closed is reset, and a client tries again; none hangs (the read
    // timeout is the watchdog).
    for expected in 4..24 {
        assert_eq!(
            served_on_a_new_connection(addr, &get(&mine)).count(),
            expected
        );
    }

    match pool.shutdown() {
        Err(shardpool::Error::WorkerPanicked { worker, .. }) => assert_eq!(worker.index(), 1),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("worker 1 panicked"),
    }
}

/// Under `PanicPolicy::Restart`, a worker that panics comes back with its
/// listener: new connections reach both workers again, and the restarted
/// owner counts its keys from zero. A worker whose port is taken fails
/// `Pool::start` instead of starting deaf.
#[test]
fn a_restarted_worker_listens_again() {
    use shardpool_services::http::server::{CounterWorker, Msg};
    use std::sync::{mpsc, Mutex};

    let probe = shardpool::io::reuseport_listener("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = probe.local_addr().unwrap();
    let first = Mutex::new(Some(probe));
    let pool = Pool::start(
        PoolConfig::default()
            .workers(2)
            .affinity(Affinity::None)
            .on_panic(PanicPolicy::Restart {
                max_restarts: 3,
                within: Duration::from_secs(600),
            }),
        move |id| {
            let bound = match id.index() {
                0 => first.lock().unwrap().take(),
                _ => None,
            };
            Fragile(CounterWorker::listening(
                addr,
                bound,
                Duration::from_secs(600),
            ))
        },
    )
    .expect("start the pool");
    let sender = pool.sender();
    let key_of = |prefix: &str, owner: usize| {
        (0..)
            .map(|i| format!("{prefix}{i}"))
            .find(|k| sender.worker_for(k.as_bytes()).index() == owner)
            .unwrap()
    };
    let theirs = key_of("r", 1);
    let boom = key_of(std::str::from_utf8(BOOM).unwrap(), 1);

    let served = |request: &str| served_on_a_new_connection(addr, request);

    assert_eq!(served(&get(&theirs)).count(), 1);
    // Counting `boom` panics worker 1 when worker 0 asks it (worker 1
    // counts it without a message on its own connections).
    let panicked = (0..100).any(|_| served(&get(&boom)).status == 503);
    assert!(panicked, "no connection reached worker 0");
    // Worker 1 restarted: its counters start again, and it listens.
    for expected in 1..=20 {
        assert_eq!(served(&get(&theirs)).count(), expected);
    }
    let (tx, rx) = mpsc::channel();
    assert!(sender.send_to(WorkerId::from(1), Msg::Stats(tx)).is_ok());
    let (_, restarted) = rx.recv_timeout(WATCHDOG).expect("worker 1 answers");
    assert!(
        restarted.connections > 0,
        "the restarted worker took some of the 20 connections: {restarted:?}"
    );
    let report = pool.shutdown_all();
    assert!(report.is_clean(), "both workers ended well");

    // The port is taken by a listener without SO_REUSEPORT: the workers
    // cannot bind, and start says so.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let refused = Pool::start(
        PoolConfig::default().workers(2).affinity(Affinity::None),
        move |_| CounterWorker::listening(addr, None, Duration::from_secs(1)),
    );
    assert!(
        matches!(refused, Err(shardpool::Error::WorkerPanicked { .. })),
        "start fails when a worker cannot listen"
    );
}
