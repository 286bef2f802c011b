//! A workload for any server that speaks RESP2 on an address: the same
//! checks run against the tokio peer now and the shardpool kv server later.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use redis::{Connection, Value};
use shardpool_services::kv::Limits;

/// Connections driven in parallel.
pub const CONNECTIONS: usize = 16;
/// Commands each connection sends (16 × 12 500 = 200 000).
pub const COMMANDS_PER_CONNECTION: usize = 12_500;
/// Counters shared by every connection (cross-connection, cross-shard INCR).
const SHARED_COUNTERS: usize = 8;
/// Commands per pipeline.
const PIPELINE: usize = 100;

/// The limits both servers run with in the tests: bulk strings up to
/// 1 MiB, so the oversized-bulk checks need only a few megabytes.
pub fn test_limits() -> Limits {
    Limits {
        max_bulk_len: 1 << 20,
        ..Limits::default()
    }
}

/// Sends `bytes` on a fresh connection, then reads until the server closes
/// it (`true`) or goes quiet for 500 ms (`false`); returns what was read.
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> (Vec<u8>, bool) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (out, false)
            }
            Err(_) => return (out, true),
        }
    }
}

/// A check of one reply.
type Check = Box<dyn Fn(&Value)>;

fn connect(addr: SocketAddr) -> Connection {
    let client = redis::Client::open(format!("redis://{addr}/")).expect("valid url");
    let con = client.get_connection().expect("connect");
    con.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    con
}

fn bulk(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::Nil => None,
        other => panic!("expected a bulk string or nil, got {other:?}"),
    }
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        other => panic!("expected an integer, got {other:?}"),
    }
}

fn okay(v: &Value) {
    assert!(matches!(v, Value::Okay), "expected OK, got {v:?}");
}

/// One connection's share of the workload: pipelines of mixed commands on
/// its own keys (whose values it predicts exactly), on a private counter
/// (whose INCR replies must come back in order, 1, 2, 3, …), and on the
/// shared counters. Returns how many INCRs it sent to each shared counter
/// and how many commands it sent.
fn drive(addr: SocketAddr, conn: usize, run: &str) -> ([i64; SHARED_COUNTERS], usize) {
    let mut con = connect(addr);
    let mut shared = [0i64; SHARED_COUNTERS];
    let mut private = 0i64;
    let mut sent = 0;
    let mut round = 0usize;
    while sent < COMMANDS_PER_CONNECTION {
        let mut pipe = redis::pipe();
        // Error replies come back as values, in their slot.
        pipe.ignore_errors();
        // What each reply must be, in order.
        let mut expect: Vec<Check> = Vec::with_capacity(PIPELINE);
        let batch = PIPELINE.min(COMMANDS_PER_CONNECTION - sent);
        for i in 0..batch {
            let n = round * PIPELINE + i;
            let key = format!("{run}:c{conn}:k{}", n % 50);
            match n % 10 {
                0 | 1 => {
                    let value = format!("v{conn}-{n}");
                    pipe.cmd("SET").arg(&key).arg(&value);
                    expect.push(Box::new(okay));
                    // Read it straight back in the same pipeline.
                    pipe.cmd("GET").arg(&key);
                    expect.push(Box::new(move |v| {
                        assert_eq!(bulk(v).as_deref(), Some(value.as_bytes()))
                    }));
                }
                2..=4 => {
                    let counter = (conn + n) % SHARED_COUNTERS;
                    shared[counter] += 1;
                    pipe.cmd("INCR").arg(format!("{run}:shared{counter}"));
                    expect.push(Box::new(|v| assert!(int(v) >= 1)));
                }
                5 => {
                    private += 1;
                    let want = private;
                    pipe.cmd("INCR").arg(format!("{run}:private{conn}"));
                    expect.push(Box::new(move |v| {
                        assert_eq!(int(v), want, "pipeline answered out of order")
                    }));
                }
                6 => {
                    // Keys spread over shards: MSET then MGET in another order.
                    let keys: Vec<String> =
                        (0..5).map(|j| format!("{run}:c{conn}:m{n}:{j}")).collect();
                    let mut mset = redis::cmd("MSET");
                    for (j, k) in keys.iter().enumerate() {
                        mset.arg(k).arg(format!("{n}/{j}"));
                    }
                    pipe.add_command(mset);
                    expect.push(Box::new(okay));
                    let mut mget = redis::cmd("MGET");
                    for k in keys.iter().rev() {
                        mget.arg(k);
                    }
                    mget.arg(format!("{run}:missing"));
                    pipe.add_command(mget);
                    expect.push(Box::new(move |v| {
                        let Value::Array(items) = v else {
                            panic!("MGET gave {v:?}")
                        };
                        let got: Vec<Option<Vec<u8>>> = items.iter().map(bulk).collect();
                        let mut want: Vec<Option<Vec<u8>>> = (0..5)
                            .rev()
                            .map(|j| Some(format!("{n}/{j}").into_bytes()))
                            .collect();
                        want.push(None);
                        assert_eq!(got, want);
                    }));
                }
                7 => {
                    let keys: Vec<String> = (0..3)
                        .map(|j| format!("{run}:c{conn}:m{}:{j}", n - 1))
                        .collect();
                    pipe.cmd("EXISTS").arg(&keys).arg(format!("{run}:missing"));
                    expect.push(Box::new(|v| assert_eq!(int(v), 3)));
                    pipe.cmd("DEL").arg(&keys);
                    expect.push(Box::new(|v| assert_eq!(int(v), 3)));
                }
                8 => {
                    let key = format!("{run}:c{conn}:ttl{n}");
                    pipe.cmd("SET").arg(&key).arg("x").arg("EX").arg(1000);
                    expect.push(Box::new(okay));
                    pipe.cmd("ECHO").arg(&key);
                    expect.push(Box::new(move |v| {
                        assert_eq!(bulk(v).as_deref(), Some(key.as_bytes()))
                    }));
                }
                _ => {
                    // An error in the middle of a pipeline answers that slot only.
                    pipe.cmd("INCR").arg(&key).arg("extra");
                    expect.push(Box::new(|v| {
                        let Value::ServerError(e) = v else {
                            panic!("expected an error, got {v:?}")
                        };
                        assert_eq!(
                            e.details(),
                            Some("wrong number of arguments for 'incr' command")
                        );
                    }));
                }
            }
        }
        let replies: Vec<Value> = pipe.query(&mut con).expect("pipeline");
        assert_eq!(replies.len(), expect.len(), "one reply per command");
        for (check, reply) in expect.iter().zip(&replies) {
            check(reply);
        }
        sent += expect.len();
        round += 1;
    }
    (shared, sent)
}

/// Runs the whole workload against `addr`: 16 connections in parallel,
/// about 200 000 commands, then checks the shared counters exactly.
pub fn exercise(addr: SocketAddr) {
    let run = format!("run{}", std::process::id());
    let handles: Vec<_> = (0..CONNECTIONS)
        .map(|conn| {
            let run = run.clone();
            thread::spawn(move || drive(addr, conn, &run))
        })
        .collect();
    let mut expected = [0i64; SHARED_COUNTERS];
    let mut total = 0;
    for handle in handles {
        let (shared, sent) = handle.join().expect("a connection's checks failed");
        for (e, s) in expected.iter_mut().zip(shared) {
            *e += s;
        }
        total += sent;
    }
    assert!(
        total >= CONNECTIONS * COMMANDS_PER_CONNECTION,
        "sent {total}"
    );
    let mut con = connect(addr);
    for (counter, want) in expected.iter().enumerate() {
        let got: i64 = redis::cmd("GET")
            .arg(format!("{run}:shared{counter}"))
            .query(&mut con)
            .expect("GET");
        assert_eq!(
            got, *want,
            "shared counter {counter}: every INCR counted exactly once"
        );
    }
    let keys: i64 = redis::cmd("DBSIZE").query(&mut con).expect("DBSIZE");
    assert!(keys > 0);
}

/// Bad input on raw sockets against the server at `addr`: a protocol
/// error gets an error reply and a close, an unknown command an error
/// reply only, an oversized bulk string is refused at its header, and
/// clients that leave mid-pipeline (with requests for other shards in
/// flight) have their whole requests run and their halves dropped; a
/// well-behaved connection open throughout is unharmed. Leaves at least
/// three protocol errors in the server's stats.
pub fn bad_input(addr: SocketAddr) {
    // A well-behaved client keeps its connection open throughout.
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let mut good = client.get_connection().unwrap();
    let _: () = redis::cmd("SET")
        .arg("survivor")
        .arg("1")
        .query(&mut good)
        .unwrap();

    let (out, closed) = raw(
        addr,
        b"*1\r\n$4\r\nPING\r\n*1\r\n:1\r\n*1\r\n$4\r\nPING\r\n",
    );
    assert_eq!(
        out,
        b"+PONG\r\n-ERR Protocol error: expected '$', got ':'\r\n"
    );
    assert!(closed, "closed after a protocol error");

    let (out, closed) = raw(addr, b"*2\r\n$3\r\nGET\r\n$2000000\r\n");
    assert_eq!(out, b"-ERR Protocol error: invalid bulk length\r\n");
    assert!(closed);

    let (out, closed) = raw(addr, b"*x\r\n");
    assert_eq!(out, b"-ERR Protocol error: invalid multibulk length\r\n");
    assert!(closed);

    let (out, closed) = raw(addr, b"*2\r\n$3\r\nFOO\r\n$1\r\na\r\nPING\r\n");
    assert_eq!(
        out,
        b"-ERR unknown command 'FOO', with args beginning with: 'a' \r\n+PONG\r\n"
    );
    assert!(!closed, "an unknown command is not fatal");

    // Clients that leave in the middle of a pipeline, with requests for
    // other shards still in flight.
    for i in 0..20 {
        let mut stream = TcpStream::connect(addr).unwrap();
        let mut pipeline = Vec::new();
        for k in 0..8 {
            let key = format!("leaver{i}:{k}");
            pipeline.extend_from_slice(
                format!("*2\r\n$4\r\nINCR\r\n${}\r\n{key}\r\n", key.len()).as_bytes(),
            );
        }
        pipeline.extend_from_slice(
            b"*2\r\n$4\r\nINCR\r\n$7\r\nleavers\r\n*2\r\n$4\r\nINCR\r\n$7\r\nlea",
        );
        stream.write_all(&pipeline).unwrap();
        drop(stream);
    }
    let (out, _) = raw(addr, b"QUIT\r\n");
    assert_eq!(out, b"+OK\r\n");

    let survivor: String = redis::cmd("GET").arg("survivor").query(&mut good).unwrap();
    assert_eq!(survivor, "1");
    let mut leavers: i64 = 0;
    for _ in 0..200 {
        leavers = redis::cmd("GET")
            .arg("leavers")
            .query::<Option<i64>>(&mut good)
            .unwrap()
            .unwrap_or(0);
        if leavers == 20 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(leavers, 20, "whole requests ran, halves did not");
    let pong: String = redis::cmd("PING").query(&mut good).unwrap();
    assert_eq!(pong, "PONG");
}

/// What redis-benchmark sends first (pipelined on one connection) gets the
/// replies it expects.
pub fn connect_time_commands(addr: SocketAddr) {
    let (out, _) = raw(
        addr,
        b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$4\r\nsave\r\n*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$10\r\nappendonly\r\n*2\r\n$7\r\nCOMMAND\r\n$4\r\nDOCS\r\n",
    );
    assert_eq!(
        out,
        b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n*0\r\n"
    );
}
