//! The tokio peer under the shared RESP workload (`resp::exercise`), with
//! its lock shards and with its store owned by a shardpool
//! (`Backend::Pool`), plus bad input on raw sockets: an error reply or a
//! closed connection, never a crash, never harm to other connections.

mod resp;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use shardpool_services::tokio_peer::{Backend, PeerConfig, TokioPeer};

fn start() -> TokioPeer {
    start_with(Backend::Locks)
}

fn start_with(backend: Backend) -> TokioPeer {
    let config = PeerConfig {
        threads: Some(2),
        backend,
        limits: resp::test_limits(),
        ..PeerConfig::default()
    };
    TokioPeer::start("127.0.0.1:0".parse().unwrap(), config).expect("start the peer")
}

/// The shared workload on `peer`, whose keys are split over `shards`.
fn exercise(peer: TokioPeer, shards: &str) {
    resp::exercise(peer.addr());
    let stats = peer.stats();
    assert!(
        stats.commands >= (resp::CONNECTIONS * resp::COMMANDS_PER_CONNECTION) as u64,
        "{stats}"
    );
    assert!(
        stats.cross_shard > 0,
        "MGET/MSET/DEL/EXISTS over 5 keys split across {shards}: {stats}"
    );
    peer.stop();
}

#[test]
fn sixteen_connections_mixed_commands_exact_totals_in_order() {
    exercise(start(), "64 lock shards");
}

/// Tokio in front, the pool behind: the same workload with every command
/// handed to the worker that owns its key (`send_to_async` + a `Reply`),
/// whole pipelines sent before their answers are awaited.
#[test]
fn pool_backend_sixteen_connections_mixed_commands_exact_totals_in_order() {
    exercise(start_with(Backend::Pool { workers: 3 }), "3 workers");
}

#[test]
fn bad_input_gets_an_error_or_a_close_and_harms_no_one_else() {
    let peer = start();
    let addr = peer.addr();
    // A well-behaved client keeps its connection open throughout.
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let mut good = client.get_connection().unwrap();
    let _: () = redis::cmd("SET")
        .arg("survivor")
        .arg("1")
        .query(&mut good)
        .unwrap();

    let (out, closed) = resp::raw(
        addr,
        b"*1\r\n$4\r\nPING\r\n*1\r\n:1\r\n*1\r\n$4\r\nPING\r\n",
    );
    assert_eq!(
        out,
        b"+PONG\r\n-ERR Protocol error: expected '$', got ':'\r\n"
    );
    assert!(closed, "closed after a protocol error");

    let (out, closed) = resp::raw(addr, b"*2\r\n$3\r\nGET\r\n$2000000\r\n");
    assert_eq!(
        out, b"-ERR Protocol error: invalid bulk length\r\n",
        "oversized bulk refused at its header"
    );
    assert!(closed);

    let (out, closed) = resp::raw(addr, b"*x\r\n");
    assert_eq!(out, b"-ERR Protocol error: invalid multibulk length\r\n");
    assert!(closed);

    let (out, closed) = resp::raw(addr, b"*2\r\n$3\r\nFOO\r\n$1\r\na\r\nPING\r\n");
    assert_eq!(
        out,
        b"-ERR unknown command 'FOO', with args beginning with: 'a' \r\n+PONG\r\n"
    );
    assert!(!closed, "an unknown command is not fatal");

    // A client that leaves in the middle of a pipeline (half a request sent).
    for _ in 0..20 {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"*2\r\n$4\r\nINCR\r\n$7\r\nleavers\r\n*2\r\n$4\r\nINCR\r\n$7\r\nlea")
            .unwrap();
        drop(stream);
    }
    let (out, _) = resp::raw(addr, b"QUIT\r\n");
    assert_eq!(out, b"+OK\r\n");

    let survivor: String = redis::cmd("GET").arg("survivor").query(&mut good).unwrap();
    assert_eq!(survivor, "1");
    let pong: String = redis::cmd("PING").query(&mut good).unwrap();
    assert_eq!(pong, "PONG");
    // The whole requests the leavers sent were executed, the halves were not.
    let mut leavers: i64 = 0;
    for _ in 0..100 {
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
    assert_eq!(leavers, 20);
    assert!(peer.stats().protocol_errors >= 3);
    peer.stop();
}

#[test]
fn connect_time_commands_of_redis_tools_are_answered() {
    let peer = start();
    // What redis-benchmark sends first (pipelined on one connection).
    let (out, _) = resp::raw(
        peer.addr(),
        b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$4\r\nsave\r\n*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$10\r\nappendonly\r\n*2\r\n$7\r\nCOMMAND\r\n$4\r\nDOCS\r\n",
    );
    assert_eq!(
        out,
        b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n*0\r\n"
    );
    peer.stop();
}
