//! A loopback `nats-server` with JetStream, for the example and the tests.
//!
//! [`NatsServer::start`] writes a config file into a fresh temporary
//! directory (JetStream store, log file, the `partition(n, …)` subject
//! mapping that [`mapping`](crate::mapping) checks), starts the binary on
//! `127.0.0.1` with a port the server picks, reads the port from its log and
//! waits until it is ready. Dropping the handle kills the server and removes
//! the directory: whatever starts a server stops it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::mapping::{MAPPING_IN, MAPPING_OUT};

/// The binary started by [`NatsServer::start`]: `$NATS_SERVER_BIN`, else
/// `nats-server` from `PATH` (Debian: `apt-get install nats-server`).
pub fn binary() -> PathBuf {
    std::env::var_os("NATS_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("nats-server"))
}

/// Whether [`binary`] can be run (`nats-server --version` succeeds).
pub fn binary_available() -> bool {
    Command::new(binary())
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}

/// A running `nats-server` on `127.0.0.1`, killed when dropped.
#[derive(Debug)]
pub struct NatsServer {
    child: Child,
    port: u16,
    dir: PathBuf,
    partitions: u32,
}

impl NatsServer {
    /// Starts a server with JetStream on `127.0.0.1` and a port of its
    /// choosing, its store in a new temporary directory, and the subject
    /// mapping `map.in.* → map.out.{{partition(partitions,1)}}.{{wildcard(1)}}`.
    /// Waits (up to 30 s) until it accepts clients.
    pub fn start(partitions: u32) -> io::Result<NatsServer> {
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "shardpool-nats-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        fs::create_dir_all(&dir)?;
        let (child, log) = spawn(&dir, partitions, None)?;
        let mut server = NatsServer {
            child,
            port: 0,
            dir,
            partitions,
        };
        server.port = server.wait_ready(&log, Duration::from_secs(30))?;
        Ok(server)
    }

    /// Stops the server the way a restart or an upgrade does (SIGTERM:
    /// it flushes its stores and closes its clients), then starts it again
    /// on the same port with the same store. Waits (up to 30 s) until it
    /// accepts clients again. Clients reconnect by themselves.
    pub fn restart(&mut self) -> io::Result<()> {
        let pid = libc::pid_t::try_from(self.child.id()).map_err(io::Error::other)?;
        // SAFETY: kill(2) on the pid of our own child, not yet reaped (so
        // not reused), with a valid signal number.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            return Err(io::Error::last_os_error());
        }
        self.child.wait()?;
        let (child, log) = spawn(&self.dir, self.partitions, Some(self.port))?;
        self.child = child;
        let port = self.wait_ready(&log, Duration::from_secs(30))?;
        debug_assert_eq!(port, self.port);
        Ok(())
    }

    /// `127.0.0.1:PORT`, for `async_nats::connect`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's temporary directory (config, log, JetStream store).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads the log until the server says it is ready; returns the port.
    fn wait_ready(&mut self, log: &Path, timeout: Duration) -> io::Result<u16> {
        const LISTENING: &str = "Listening for client connections on 127.0.0.1:";
        let deadline = Instant::now() + timeout;
        loop {
            let text = fs::read_to_string(log).unwrap_or_default();
            let port = text.lines().find_map(|line| {
                let at = line.find(LISTENING)? + LISTENING.len();
                line[at..].trim().parse::<u16>().ok()
            });
            if let (Some(port), true) = (port, text.contains("Server is ready")) {
                return Ok(port);
            }
            if let Some(status) = self.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "nats-server exited with {status} before it was ready; its log:\n{text}"
                )));
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("nats-server not ready after {timeout:?}; its log:\n{text}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Writes the config (a fresh log: `nats-server.log`, or
/// `nats-server.{port}.log` on a restart) and starts the binary.
fn spawn(dir: &Path, partitions: u32, port: Option<u16>) -> io::Result<(Child, PathBuf)> {
    let log = match port {
        None => dir.join("nats-server.log"),
        Some(port) => {
            let log = dir.join(format!("nats-server.{port}.log"));
            let _ = fs::remove_file(&log);
            log
        }
    };
    let config = dir.join("nats-server.conf");
    fs::write(&config, config_text(dir, &log, partitions, port))?;
    let child = Command::new(binary())
        .arg("-c")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run {}: {e}", binary().display())))?;
    Ok((child, log))
}

/// The server's config: loopback only (on `port`, or one the server picks),
/// JetStream with bounded stores, the partition mapping.
fn config_text(dir: &Path, log: &Path, partitions: u32, port: Option<u16>) -> String {
    let port = port.map_or_else(|| "-1".to_string(), |p| p.to_string());
    format!(
        r#"listen: "127.0.0.1:{port}"
log_file: "{log}"
jetstream {{
  store_dir: "{store}"
  max_memory_store: 268435456
  max_file_store: 4294967296
}}
mappings = {{
  "{MAPPING_IN}.*": "{MAPPING_OUT}.{{{{partition({partitions},1)}}}}.{{{{wildcard(1)}}}}"
}}
"#,
        log = log.display(),
        store = dir.join("store").display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_the_partition_mapping_and_loopback_listen() {
        let text = config_text(Path::new("/d"), Path::new("/d/log"), 16, None);
        assert!(text.contains(r#""map.in.*": "map.out.{{partition(16,1)}}.{{wildcard(1)}}""#));
        assert!(text.contains(r#"listen: "127.0.0.1:-1""#));
        let text = config_text(Path::new("/d"), Path::new("/d/log"), 16, Some(4999));
        assert!(text.contains(r#"listen: "127.0.0.1:4999""#));
    }
}
