//! The shardpool kv server against a request that could take a worker for
//! good: `CONFIG GET` with a pattern of 200 `*` then a byte no name has.
//! The worker must answer it and go on serving, so new clients' requests
//! on every shard are answered too. Waited for behind a generous watchdog,
//! not a timing assert. (The other hostile clients are in the suite under
//! `services/hostile/`.)

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use shardpool::prelude::*;
use shardpool_services::server::{KvServer, ServerConfig};

fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
    }
    out
}

/// Sends `request` on a new connection and reads exactly `expected.len()`
/// bytes back.
fn exchange(addr: SocketAddr, request: &[u8], expected: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut reply = vec![0; expected.len()];
    stream.read_exact(&mut reply).expect("the whole reply");
    reply
}

#[test]
fn config_get_with_200_stars_leaves_every_worker_serving() {
    let config = ServerConfig {
        pool: PoolConfig::default().workers(2).affinity(Affinity::None),
        ..ServerConfig::default()
    };
    let server = KvServer::start("127.0.0.1:0".parse().unwrap(), config).expect("start");
    let addr = server.addr();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let pattern = format!("{}x", "*".repeat(200));
        let mut glob = TcpStream::connect(addr).expect("connect");
        glob.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        glob.write_all(&resp(&["CONFIG", "GET", &pattern])).unwrap();
        // Meanwhile, ten new connections (spread over the workers by the
        // kernel), each with keys on every shard.
        for client in 0..10 {
            let mut request = resp(&["PING"]);
            let mut expected = b"+PONG\r\n".to_vec();
            for key in 0..8 {
                request.extend(resp(&["SET", &format!("glob:{client}:{key}"), "v"]));
                expected.extend_from_slice(b"+OK\r\n");
            }
            assert_eq!(exchange(addr, &request, &expected), expected);
        }
        let mut reply = [0; 4];
        glob.read_exact(&mut reply).expect("the CONFIG GET reply");
        assert_eq!(&reply, b"*0\r\n", "no parameter matches");
        done.send(()).unwrap();
    });
    if finished.recv_timeout(Duration::from_secs(120)).is_err() {
        // A worker may be stuck for good: stopping the pool (here or in
        // its drop) would wait for it forever.
        std::mem::forget(server);
        panic!("CONFIG GET with 200 stars, then 10 clients: not all answered within 120 s");
    }
    server.stop().expect("no worker panicked");
}
