//! The tokio peer under the shared RESP workload (`resp::exercise`), with
//! its lock shards and with its store owned by a shardpool
//! (`Backend::Pool`), plus bad input on raw sockets: an error reply or a
//! closed connection, never a crash, never harm to other connections.

mod resp;

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
    resp::bad_input(addr);
    assert!(peer.stats().protocol_errors >= 3);
    peer.stop();
}

#[test]
fn connect_time_commands_of_redis_tools_are_answered() {
    let peer = start();
    resp::connect_time_commands(peer.addr());
    peer.stop();
}
