//! The shardpool kv server (`services/examples/kv.rs`) under the shared
//! RESP workload (`resp::exercise`: 16 connections, 200 k mixed commands,
//! cross-shard keys, exact INCR totals, pipelines answered in order), plus
//! bad input on raw sockets: an error reply or a closed connection, never
//! a panic, never harm to other connections.

mod resp;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use shardpool::prelude::*;
use shardpool_services::server::{KvServer, ServerConfig};

fn start(workers: usize) -> KvServer {
    let config = ServerConfig {
        pool: PoolConfig::default()
            .workers(workers)
            .affinity(Affinity::None),
        limits: resp::test_limits(),
        ..ServerConfig::default()
    };
    KvServer::start("127.0.0.1:0".parse().unwrap(), config).expect("start the server")
}

#[test]
fn sixteen_connections_mixed_commands_exact_totals_in_order() {
    // Three workers even on a 2-CPU machine: keys spread over three shards.
    let server = start(3);
    resp::exercise(server.addr());
    let per_worker = server.stats(Duration::from_secs(30));
    assert_eq!(per_worker.len(), 3);
    let mut total = shardpool_services::kv::KvStats::default();
    for (_, s) in &per_worker {
        total.add(s);
    }
    assert!(
        total.commands >= (resp::CONNECTIONS * resp::COMMANDS_PER_CONNECTION) as u64,
        "{total}"
    );
    assert!(
        total.cross_shard > 0,
        "keys on other workers went over the mesh: {total}"
    );
    assert!(total.connections_accepted >= resp::CONNECTIONS as u64);
    let table = server.stats_table(Duration::from_secs(30));
    assert!(table.contains("total"), "{table}");
    server.stop().expect("no worker panicked");
}

#[test]
fn bad_input_gets_an_error_or_a_close_and_harms_no_one_else() {
    let server = start(2);
    let addr = server.addr();
    resp::bad_input(addr);
    let stats = server.stats(Duration::from_secs(30));
    let errors: u64 = stats.iter().map(|(_, s)| s.protocol_errors).sum();
    assert!(errors >= 3);
    server.stop().expect("no worker panicked");
}

/// A client that sends its requests and closes its side at once (the
/// data and the FIN in one readiness event) gets every answer, and then
/// the server closes too: a read that returns less than the chunk must not
/// hide the close behind it.
#[test]
fn requests_then_close_get_answered_and_the_connection_ends() {
    let server = start(2);
    for _ in 0..20 {
        let mut stream = TcpStream::connect(server.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream
            .write_all(b"PING\r\n*2\r\n$4\r\nINCR\r\n$7\r\nclosers\r\n")
            .unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = Vec::new();
        // Ends only when the server closes (or the 30 s timeout fails it).
        std::io::Read::read_to_end(&mut stream, &mut out).unwrap();
        assert!(
            out.starts_with(b"+PONG\r\n:"),
            "{:?}",
            String::from_utf8_lossy(&out)
        );
    }
    let client = redis::Client::open(format!("redis://{}/", server.addr())).unwrap();
    let mut con = client.get_connection().unwrap();
    let closers: i64 = redis::cmd("GET").arg("closers").query(&mut con).unwrap();
    assert_eq!(closers, 20);
    server.stop().expect("no worker panicked");
}

#[test]
fn connect_time_commands_of_redis_tools_are_answered() {
    let server = start(2);
    resp::connect_time_commands(server.addr());
    server.stop().expect("no worker panicked");
}

#[test]
fn a_large_reply_is_written_when_the_socket_drains() {
    // A value of 512 KiB read back 16 times in one pipeline: more than the
    // socket buffer, so the server must wait for WRITABLE.
    let server = start(2);
    let client = redis::Client::open(format!("redis://{}/", server.addr())).unwrap();
    let mut con = client.get_connection().unwrap();
    let value = vec![b'x'; 512 * 1024];
    let _: () = redis::cmd("SET")
        .arg("big")
        .arg(&value)
        .query(&mut con)
        .unwrap();
    let mut pipe = redis::pipe();
    for _ in 0..16 {
        pipe.cmd("GET").arg("big");
    }
    let got: Vec<Vec<u8>> = pipe.query(&mut con).unwrap();
    assert_eq!(got.len(), 16);
    assert!(got.iter().all(|v| v == &value));
    server.stop().expect("no worker panicked");
}

/// A client that pipelines requests and does not read its replies cannot
/// make a worker buffer without bound: at the output limit the worker
/// stops reading that connection (the kernel's buffers and TCP hold the
/// client back), keeps serving the others, and once the client reads it
/// gets every reply, in order.
#[test]
fn a_client_that_does_not_read_is_paused_not_buffered() {
    let server = start(1);
    let client = redis::Client::open(format!("redis://{}/", server.addr())).unwrap();
    let mut con = client.get_connection().unwrap();
    let value = vec![b'v'; 64 * 1024];
    let _: () = redis::cmd("SET")
        .arg("big")
        .arg(&value)
        .query(&mut con)
        .unwrap();
    // 400 GETs of 64 KiB: 26 MB of replies, far above the 1 MiB limit and
    // the loopback socket buffers. The requests themselves are 9 KB.
    const GETS: usize = 400;
    let mut flood = TcpStream::connect(server.addr()).unwrap();
    flood
        .write_all(&b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(GETS))
        .unwrap();
    let watchdog = std::time::Instant::now() + Duration::from_secs(60);
    let paused = loop {
        let paused: u64 = server
            .stats(Duration::from_secs(10))
            .iter()
            .map(|(_, s)| s.reads_paused)
            .sum();
        if paused > 0 || std::time::Instant::now() > watchdog {
            break paused;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(paused > 0, "the flooding connection was never paused");
    // Another connection is served meanwhile.
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
    // Now read: every reply, whole and in order.
    flood
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let header = format!("${}\r\n", value.len());
    let one = [header.as_bytes(), &value[..], b"\r\n"].concat();
    let mut got = vec![0u8; one.len() * GETS];
    flood.read_exact(&mut got).unwrap();
    assert!(got.chunks(one.len()).all(|reply| reply == &one[..]));
    server.stop().expect("no worker panicked");
}
