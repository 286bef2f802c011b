//! The kv server under clients that try to take a worker down: one that
//! floods, one past `maxclients`, one that pipelines cross-shard GETs and
//! never reads, one that declares an endless request; a server whose
//! workers all panic and restart, and one whose shard fails for good with
//! requests waiting on it. Each on raw sockets, each checking that the
//! others are still served.

#[allow(dead_code)] // the shared workload; this file uses its helpers only
mod resp;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shardpool::prelude::*;
use shardpool_services::kv::{KvStats, Limits};
use shardpool_services::server::{KvServer, ServerConfig};

/// Generous: the machine may be loaded.
const WATCHDOG: Duration = Duration::from_secs(60);

fn config(workers: usize) -> ServerConfig {
    ServerConfig {
        pool: PoolConfig::default()
            .workers(workers)
            .affinity(Affinity::None),
        limits: resp::test_limits(),
        ..ServerConfig::default()
    }
}

fn total(server: &KvServer) -> KvStats {
    let mut total = KvStats::default();
    for (_, s) in server.stats(WATCHDOG) {
        total.add(&s);
    }
    total
}

/// Waits (within the watchdog) until `done` holds for the server's totals.
fn wait_for(server: &KvServer, what: &str, done: impl Fn(&KvStats) -> bool) -> KvStats {
    let deadline = Instant::now() + WATCHDOG;
    loop {
        let stats = total(server);
        if done(&stats) {
            return stats;
        }
        assert!(Instant::now() < deadline, "never {what}: {stats}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WATCHDOG)).unwrap();
    stream
}

/// One PING round trip on `stream`.
fn ping(stream: &mut TcpStream) {
    stream.write_all(b"PING\r\n").unwrap();
    let mut pong = [0u8; 7];
    stream.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"+PONG\r\n");
}

/// A client streaming pipelined PINGs as fast as the kernel takes them
/// (and reading its replies as fast) gets a read budget per turn: the
/// worker serves another client on the same worker meanwhile, many times.
#[test]
fn a_flooding_client_gets_a_budget_per_turn_and_others_are_served() {
    let server = KvServer::start("127.0.0.1:0".parse().unwrap(), config(1)).unwrap();
    let addr = server.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let flood = connect(addr);
    let mut reader = flood.try_clone().unwrap();
    let drain = std::thread::spawn(move || {
        let mut sink = vec![0u8; 1 << 16];
        while let Ok(n) = reader.read(&mut sink) {
            if n == 0 {
                break;
            }
        }
    });
    let writer = {
        let stop = stop.clone();
        let mut flood = flood;
        std::thread::spawn(move || {
            let burst = b"*1\r\n$4\r\nPING\r\n".repeat(16 * 1024);
            while !stop.load(Ordering::Relaxed) {
                if flood.write_all(&burst).is_err() {
                    break;
                }
            }
            let _ = flood.shutdown(std::net::Shutdown::Both);
        })
    };
    // The flood is under way once the worker has had to cut it short.
    wait_for(&server, "yielded a flooding read", |s| s.reads_yielded > 0);
    let mut probe = connect(addr);
    for _ in 0..50 {
        ping(&mut probe);
    }
    assert!(!writer.is_finished(), "the flood was still running");
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    drain.join().unwrap();
    server.stop().expect("no worker panicked");
}

/// Past `maxclients` (over all workers) a client gets Redis's error and a
/// close; once a client leaves, a new one is served.
#[test]
fn past_maxclients_a_client_gets_redis_error_and_a_close() {
    let server = KvServer::start(
        "127.0.0.1:0".parse().unwrap(),
        ServerConfig {
            maxclients: Some(2),
            ..config(2)
        },
    )
    .unwrap();
    let addr = server.addr();
    let mut first = connect(addr);
    let mut second = connect(addr);
    ping(&mut first);
    ping(&mut second);
    let mut third = connect(addr);
    let mut got = Vec::new();
    third.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"-ERR max number of clients reached\r\n");
    assert!(total(&server).clients_refused >= 1);
    // The others are still served; one leaves, and a newcomer gets in.
    ping(&mut second);
    drop(first);
    let deadline = Instant::now() + WATCHDOG;
    loop {
        let mut newcomer = connect(addr);
        newcomer.write_all(b"PING\r\n").unwrap();
        let mut reply = [0u8; 7];
        newcomer.read_exact(&mut reply).unwrap();
        if &reply == b"+PONG\r\n" {
            break;
        }
        // The server had not seen the leaver's close yet.
        assert_eq!(&reply, b"-ERR ma");
        assert!(Instant::now() < deadline, "no room after a client left");
        std::thread::sleep(Duration::from_millis(10));
    }
    server.stop().expect("no worker panicked");
}

/// A client that pipelines GETs of a large value owned by another shard
/// and never reads is stopped after a bounded number of them: answers
/// still to come from the other shard count (by number, their size being
/// unknown until they arrive) as well as those that came.
#[test]
fn cross_shard_replies_count_towards_the_unsent_bound() {
    const VALUE: usize = 100 * 1024;
    const GETS: usize = 20_000;
    let server = KvServer::start("127.0.0.1:0".parse().unwrap(), config(2)).unwrap();
    let addr = server.addr();
    // Which worker took the flooding connection: the one whose accepted
    // count moved (one connection at a time).
    let before = server.stats(WATCHDOG);
    let mut flood = connect(addr);
    ping(&mut flood);
    let after = server.stats(WATCHDOG);
    let home = (0..2)
        .find(|&w| after[w].1.connections_accepted > before[w].1.connections_accepted)
        .expect("one worker accepted it");
    let key = (0..)
        .map(|i| format!("far{i}"))
        .find(|k| server.worker_for(k.as_bytes()).index() != home)
        .unwrap();
    let mut setter = connect(addr);
    let set = format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${VALUE}\r\n", key.len());
    setter.write_all(set.as_bytes()).unwrap();
    setter.write_all(&vec![b'v'; VALUE]).unwrap();
    setter.write_all(b"\r\n").unwrap();
    let mut ok = [0u8; 5];
    setter.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"+OK\r\n");
    // 20 000 GETs (2 GB of replies), written by a thread: the server stops
    // reading them, so the write may never finish.
    let get = format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len());
    let requests = get.repeat(GETS).into_bytes();
    let mut writer = flood.try_clone().unwrap();
    std::thread::spawn(move || {
        let _ = writer.write_all(&requests);
    });
    let paused = wait_for(&server, "paused the reader", |s| s.reads_paused > 0);
    // Paused: nothing more is taken from it, whatever the wait.
    std::thread::sleep(Duration::from_millis(300));
    let later = total(&server);
    // The kernel's socket buffers hold some tens of replies; the bound
    // 1 MiB (10 replies) plus 128 unanswered. Counting answers still to
    // come as nothing let it take thousands.
    assert!(
        later.commands < 1_000,
        "{} commands taken from a client that does not read (paused at {}): {later}",
        later.commands,
        paused.commands
    );
    // The setter's connection is still served.
    setter.write_all(b"PING\r\n").unwrap();
    let mut pong = [0u8; 7];
    setter.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"+PONG\r\n");
    drop(flood);
    server.stop().expect("no worker panicked");
}

/// A request that declares more than `client-query-buffer-limit` in all
/// (each bulk within `proto-max-bulk-len`) is refused at the header that
/// crosses it, with an error, and the connection closed.
#[test]
fn a_request_past_the_query_buffer_limit_is_refused_and_closed() {
    let server = KvServer::start(
        "127.0.0.1:0".parse().unwrap(),
        ServerConfig {
            limits: Limits {
                max_bulk_len: 600_000,
                max_query_len: 1 << 20,
                ..Limits::default()
            },
            ..config(1)
        },
    )
    .unwrap();
    let mut request = b"*1000000\r\n$600000\r\n".to_vec();
    request.extend(std::iter::repeat_n(b'x', 600_000));
    request.extend_from_slice(b"\r\n$600000\r\n");
    let (out, closed) = resp::raw(server.addr(), &request);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "-ERR Protocol error: request exceeds client-query-buffer-limit\r\n"
    );
    assert!(closed, "the connection was closed");
    // Others are served.
    let mut other = connect(server.addr());
    ping(&mut other);
    server.stop().expect("no worker panicked");
}

/// Under `PanicPolicy::Restart`, workers that panic come back listening:
/// with every worker restarted, new clients are still accepted and served.
#[test]
fn restarted_workers_listen_again() {
    let mut config = config(2);
    config.pool = config.pool.on_panic(PanicPolicy::Restart {
        max_restarts: 10,
        within: Duration::from_secs(60),
    });
    let server = KvServer::start("127.0.0.1:0".parse().unwrap(), config).unwrap();
    let mut before = connect(server.addr());
    ping(&mut before);
    for w in 0..2 {
        server.crash_worker(WorkerId::from(w)).unwrap();
    }
    let deadline = Instant::now() + WATCHDOG;
    while server.pool_stats().workers.iter().any(|w| w.restarts == 0) {
        assert!(Instant::now() < deadline, "the workers never restarted");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The connection accepted before went with its worker.
    let mut buf = [0u8; 1];
    before.write_all(b"PING\r\n").ok();
    assert!(matches!(before.read(&mut buf), Ok(0) | Err(_)));
    // Every listener was dropped with its worker: only new ones accept.
    for _ in 0..20 {
        let mut client = connect(server.addr());
        ping(&mut client);
        client
            .write_all(b"*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n")
            .unwrap();
        let mut reply = [0u8; 1];
        client.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b":");
    }
    // Restarted, not failed: the pool stops cleanly.
    server
        .stop()
        .expect("the workers were restarted, not failed");
}

/// One RESP reply read from `reader`, whole (a status, error or integer
/// line, or a bulk string with its header), as text.
fn read_reply(reader: &mut impl std::io::BufRead) -> String {
    let mut line = String::new();
    let n = reader.read_line(&mut line).expect("a reply, not a hang");
    assert!(
        n > 0,
        "the server closed the connection instead of answering"
    );
    if let Some(len) = line.strip_prefix('$') {
        let len: i64 = len.trim_end().parse().unwrap();
        if len >= 0 {
            let mut body = vec![0u8; len as usize + 2];
            reader.read_exact(&mut body).unwrap();
            line.push_str(&String::from_utf8_lossy(&body));
        }
    }
    line
}

/// A key whose shard is `worker`'s.
fn key_on(server: &KvServer, worker: WorkerId) -> String {
    (0..)
        .map(|i| format!("key{i}"))
        .find(|k| server.worker_for(k.as_bytes()) == worker)
        .unwrap()
}

fn set(key: &str) -> String {
    format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$1\r\nv\r\n", key.len())
}

fn get(key: &str) -> String {
    format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len())
}

/// A two-worker server under `policy` and one client, with a key on each
/// shard set to `v`.
struct TwoShards {
    server: KvServer,
    client: TcpStream,
    reader: std::io::BufReader<TcpStream>,
    /// The worker that does not hold the client's connection.
    other: WorkerId,
    /// A key of `other`'s shard.
    theirs: String,
    /// A key of the client's worker's shard.
    mine: String,
}

impl TwoShards {
    fn start(policy: PanicPolicy) -> TwoShards {
        let mut config = config(2);
        config.pool = config.pool.on_panic(policy);
        let server = KvServer::start("127.0.0.1:0".parse().unwrap(), config).unwrap();
        let mut client = connect(server.addr());
        ping(&mut client);
        let stats = server.stats(WATCHDOG);
        let (home, _) = stats
            .iter()
            .find(|(_, s)| s.connections_open() == 1)
            .expect("one worker holds the connection");
        let (home, other) = (*home, WorkerId::from(1 - home.index()));
        let (theirs, mine) = (key_on(&server, other), key_on(&server, home));
        let mut reader = std::io::BufReader::new(client.try_clone().unwrap());
        client
            .write_all(format!("{}{}", set(&theirs), set(&mine)).as_bytes())
            .unwrap();
        assert_eq!(read_reply(&mut reader), "+OK\r\n");
        assert_eq!(read_reply(&mut reader), "+OK\r\n");
        TwoShards {
            server,
            client,
            reader,
            other,
            theirs,
            mine,
        }
    }

    /// Sends `n` GETs of the other shard's key, crashes that worker, and
    /// returns the `n` replies.
    fn crash_with_requests_in_flight(&mut self, n: usize) -> Vec<String> {
        self.client
            .write_all(get(&self.theirs).repeat(n).as_bytes())
            .unwrap();
        self.server.crash_worker(self.other).unwrap();
        (0..n).map(|_| read_reply(&mut self.reader)).collect()
    }

    /// Waits (within the watchdog) until `done` holds for the other
    /// worker's pool statistics.
    fn wait_for_other(&self, what: &str, done: impl Fn(&WorkerStats) -> bool) {
        let deadline = Instant::now() + WATCHDOG;
        while !done(&self.server.pool_stats().workers[self.other.index()]) {
            assert!(Instant::now() < deadline, "the worker never {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Requests in flight to the other shard as it crashes.
const IN_FLIGHT: usize = 1000;

/// A shard that fails for good (`PanicPolicy::Stop`) while requests for
/// its keys wait on it, and after: every request still gets a reply — the
/// value, or an error naming the shard — the client's connection on the
/// other worker goes on, and that worker keeps serving its own keys. The
/// requests the failed shard dropped resolve at once, not at shutdown;
/// the ones sent after it failed are refused with an error, not a panic
/// of the asking worker.
#[test]
fn a_failed_shard_answers_its_waiting_requests_with_an_error() {
    let mut t = TwoShards::start(PanicPolicy::Stop);
    let failed = t.other;
    for reply in t.crash_with_requests_in_flight(IN_FLIGHT) {
        assert!(
            reply == "$1\r\nv\r\n" || reply.starts_with(&format!("-ERR shard {failed} ")),
            "{reply:?}"
        );
    }
    // Once it has failed: its keys get an error at once, also in a split
    // command, and the other worker's keys are served.
    t.wait_for_other("failed", |w| w.failed);
    let (mine, theirs) = (&t.mine, &t.theirs);
    let mget = format!(
        "*3\r\n$4\r\nMGET\r\n${}\r\n{mine}\r\n${}\r\n{theirs}\r\n",
        mine.len(),
        theirs.len()
    );
    t.client
        .write_all(format!("{}{mget}PING\r\n{}", get(theirs), get(mine)).as_bytes())
        .unwrap();
    let refused = format!("-ERR shard {failed} cannot take requests: it has failed\r\n");
    assert_eq!(read_reply(&mut t.reader), refused);
    assert_eq!(read_reply(&mut t.reader), refused);
    assert_eq!(read_reply(&mut t.reader), "+PONG\r\n");
    assert_eq!(read_reply(&mut t.reader), "$1\r\nv\r\n");
    // The failure is reported at shutdown.
    assert!(t.server.stop().is_err(), "the crashed worker is reported");
}

/// Under `PanicPolicy::Restart`, the requests queued for a shard as it
/// restarts are run by its new instance (whose shard starts empty): each
/// gets the value or nil, none hangs, and the connection goes on.
#[test]
fn requests_queued_for_a_restarting_shard_are_answered_by_its_new_instance() {
    let mut t = TwoShards::start(PanicPolicy::Restart {
        max_restarts: 10,
        within: Duration::from_secs(60),
    });
    for reply in t.crash_with_requests_in_flight(IN_FLIGHT) {
        assert!(reply == "$1\r\nv\r\n" || reply == "$-1\r\n", "{reply:?}");
    }
    t.wait_for_other("restarted", |w| w.restarts == 1);
    let theirs = t.theirs.clone();
    t.client
        .write_all(format!("{}{}", set(&theirs), get(&theirs)).as_bytes())
        .unwrap();
    assert_eq!(read_reply(&mut t.reader), "+OK\r\n");
    assert_eq!(read_reply(&mut t.reader), "$1\r\nv\r\n");
    t.server
        .stop()
        .expect("the worker was restarted, not failed");
}
