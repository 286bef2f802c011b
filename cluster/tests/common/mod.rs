//! Helpers the JetStream integration tests share: the server or a skip,
//! the tokio runtime, the child processes killed when a test ends, signals
//! to them, and waiting under the test's watchdog.
#![allow(dead_code)]

use std::process::Child;
use std::time::{Duration, Instant};

use shardpool_cluster::server::{self, NatsServer};

/// A fresh `nats-server` with `partitions` partitions, or `None` (the test
/// skips, saying so) when it cannot be run, unless
/// `SHARDPOOL_REQUIRE_SERVERS=1`, which turns that into a failure.
pub fn server_or_skip(test: &str, partitions: u32) -> Option<NatsServer> {
    if !server::binary_available() {
        let required = std::env::var("SHARDPOOL_REQUIRE_SERVERS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "{test}: SHARDPOOL_REQUIRE_SERVERS=1 but `{}` cannot be run \
             (apt-get install nats-server)",
            server::binary().display()
        );
        eprintln!(
            "SKIPPED {test}: `{}` not found (apt-get install nats-server)",
            server::binary().display()
        );
        return None;
    }
    Some(NatsServer::start(partitions).expect("start nats-server"))
}

/// The tests' tokio runtime: two threads.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The processes, killed (SIGKILL) and reaped when dropped.
pub struct Processes(pub Vec<Option<Child>>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in self.0.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends `signal` to `child`.
pub fn signal(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) with a pid of a child this test spawned and has not
    // reaped (so the pid is not reused) and a valid signal number.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {signal}): {}",
        std::io::Error::last_os_error()
    );
}

/// Polls `done` every 100 ms until it holds; fails the test once
/// `watchdog` has passed since `started`.
pub fn wait_for(what: &str, started: Instant, watchdog: Duration, mut done: impl FnMut() -> bool) {
    while !done() {
        assert!(
            started.elapsed() < watchdog,
            "watchdog: gave up waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
