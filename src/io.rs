//! Sockets a worker owns: the `mio` types and a listener every worker can bind.
//!
//! Thread-per-core pays off when a worker owns its sockets as well as its
//! state: a connection accepted by a worker is read, answered and closed by
//! that worker, with no lock and no hand-off. shardpool builds on
//! [`mio`], the readiness layer under tokio, and re-exports the parts a
//! worker needs so that user code names one crate:
//!
//! - [`Registry`] (shardpool's, with mio's `register` / `reregister` /
//!   `deregister`), [`Token`] and [`Interest`] register a source for
//!   readiness; [`Event`] is what a registered source reports, and
//!   [`Source`] is what can be registered.
//! - [`Context::io_again`](crate::Context::io_again) paces a connection:
//!   readiness is edge-triggered, so a worker that stops reading a socket
//!   before it would block asks for `on_io` again instead of waiting for
//!   an event that will not come.
//! - [`TcpListener`], [`TcpStream`] and [`UdpSocket`] are non-blocking
//!   sockets that can be registered.
//! - [`reuseport_listener`] binds a listener with `SO_REUSEPORT`, so every
//!   worker can listen on the same address and the kernel spreads incoming
//!   connections over the workers (one accept queue per worker, no
//!   thundering herd, no shared acceptor thread).
//!
//! ```
//! use std::net::SocketAddr;
//!
//! // Two workers listening on the same port, each with its own accept queue.
//! let first = shardpool::io::reuseport_listener("127.0.0.1:0".parse()?)?;
//! let addr: SocketAddr = first.local_addr()?;
//! let second = shardpool::io::reuseport_listener(addr)?;
//! assert_eq!(second.local_addr()?, addr);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::io::{Error, ErrorKind};
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

pub use mio::event::{Event, Source};
pub use mio::net::{TcpListener, TcpStream, UdpSocket};
pub use mio::{Interest, Token};

/// The token of each worker's own waker (the eventfd that wakes a worker
/// asleep in its OS poll when a message arrives). Its events are consumed
/// by the runtime and never reach [`Worker::on_io`](crate::Worker::on_io),
/// so [`Registry`] refuses it.
pub const WAKER_TOKEN: Token = Token(usize::MAX);

/// A worker's registry ([`Context::io`](crate::Context::io)): mio's
/// [`Registry`](mio::Registry) with the same `register`, `reregister` and
/// `deregister`, except that it refuses [`WAKER_TOKEN`] (whose events the
/// runtime consumes) with [`ErrorKind::InvalidInput`] instead of silently
/// losing the source's readiness.
///
/// ```
/// use shardpool::io::{Interest, WAKER_TOKEN};
/// use shardpool::prelude::*;
///
/// #[derive(Default)]
/// struct Refused(Option<std::io::ErrorKind>);
///
/// impl Worker for Refused {
///     type Msg = ();
///     fn handle(&mut self, _: (), _ctx: &mut Context<'_, ()>) {}
///     fn on_start(&mut self, ctx: &mut Context<'_, ()>) {
///         let mut listener =
///             shardpool::io::reuseport_listener("127.0.0.1:0".parse().unwrap()).unwrap();
///         let err = ctx.io().register(&mut listener, WAKER_TOKEN, Interest::READABLE);
///         self.0 = err.err().map(|e| e.kind());
///     }
/// }
///
/// let pool = Pool::start(
///     PoolConfig::default().workers(1).affinity(Affinity::None),
///     |_| Refused::default(),
/// )?;
/// let workers = pool.shutdown()?;
/// assert_eq!(workers[0].0, Some(std::io::ErrorKind::InvalidInput));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[repr(transparent)]
pub struct Registry {
    inner: mio::Registry,
}

impl Registry {
    /// The worker's view of its reactor's registry.
    pub(crate) fn from_mio(registry: &mio::Registry) -> &Registry {
        // SAFETY: `Registry` is `repr(transparent)` over `mio::Registry`
        // (one field, no other), so both have the same layout and the
        // reference keeps the lifetime of the one it comes from.
        unsafe { &*(registry as *const mio::Registry as *const Registry) }
    }

    /// Registers `source` for readiness `interests`, reported to this
    /// worker's [`on_io`](crate::Worker::on_io) with `token`; as
    /// [`mio::Registry::register`].
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for [`WAKER_TOKEN`]; else what the OS
    /// reports (e.g. the source is already registered).
    pub fn register<S>(
        &self,
        source: &mut S,
        token: Token,
        interests: Interest,
    ) -> std::io::Result<()>
    where
        S: Source + ?Sized,
    {
        check(token)?;
        self.inner.register(source, token, interests)
    }

    /// Changes the token or interests of a registered `source` (and re-arms
    /// its readiness); as [`mio::Registry::reregister`].
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for [`WAKER_TOKEN`]; else what the OS
    /// reports (e.g. the source was not registered).
    pub fn reregister<S>(
        &self,
        source: &mut S,
        token: Token,
        interests: Interest,
    ) -> std::io::Result<()>
    where
        S: Source + ?Sized,
    {
        check(token)?;
        self.inner.reregister(source, token, interests)
    }

    /// Stops readiness reports for `source`; as
    /// [`mio::Registry::deregister`]. Dropping a socket deregisters it too.
    ///
    /// # Errors
    /// What the OS reports (e.g. the source was not registered).
    pub fn deregister<S>(&self, source: &mut S) -> std::io::Result<()>
    where
        S: Source + ?Sized,
    {
        self.inner.deregister(source)
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

fn check(token: Token) -> std::io::Result<()> {
    if token == WAKER_TOKEN {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "shardpool::io::WAKER_TOKEN is reserved for the worker's waker",
        ));
    }
    Ok(())
}

/// The listen backlog of [`reuseport_listener`]: each listener has its own
/// accept queue of this length (the kernel may cap it at `somaxconn`).
pub const LISTEN_BACKLOG: i32 = 1024;

/// A non-blocking TCP listener on `addr` with `SO_REUSEPORT` and
/// `SO_REUSEADDR` set, so every worker can bind the same address and the
/// kernel spreads incoming connections over them.
///
/// Each call creates its own socket and accept queue (backlog
/// [`LISTEN_BACKLOG`]); a connection is queued on exactly one of the
/// listeners bound to the address. Binding port 0 picks a free port; bind
/// the others to the first one's [`local_addr`](TcpListener::local_addr).
///
/// # Errors
/// Whatever the OS reports for `socket`, `setsockopt`, `bind` or `listen`,
/// e.g. `AddrInUse` when a listener without `SO_REUSEPORT` (or one owned by
/// another user) already holds the address.
pub fn reuseport_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(TcpListener::from_std(socket.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{ErrorKind, Read, Write};
    use std::time::{Duration, Instant};

    /// Accepts one connection on a non-blocking listener, retrying until the
    /// watchdog runs out (generous: the machine may be loaded).
    fn accept_within(listener: &TcpListener, watchdog: Duration) -> Option<TcpStream> {
        let deadline = Instant::now() + watchdog;
        loop {
            match listener.accept() {
                Ok((stream, _)) => return Some(stream),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return None;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("accept failed: {e}"),
            }
        }
    }

    #[test]
    fn two_listeners_share_a_port_and_both_accept() {
        let first = reuseport_listener("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        let second = reuseport_listener(addr).unwrap();
        assert_eq!(second.local_addr().unwrap(), addr);

        // The kernel hashes each connection (by its source port) to one of
        // the two accept queues; connect until both have accepted one.
        let watchdog = Duration::from_secs(30);
        let deadline = Instant::now() + watchdog;
        let (mut first_accepted, mut second_accepted) = (0, 0);
        let mut clients = Vec::new();
        while first_accepted == 0 || second_accepted == 0 {
            assert!(Instant::now() < deadline, "one listener never accepted");
            let mut client = std::net::TcpStream::connect(addr).unwrap();
            client.write_all(b"x").unwrap();
            clients.push(client);
            // The connection is in exactly one of the two queues.
            let accepted = loop {
                if let Ok((stream, _)) = first.accept() {
                    first_accepted += 1;
                    break stream;
                }
                if let Ok((stream, _)) = second.accept() {
                    second_accepted += 1;
                    break stream;
                }
                assert!(Instant::now() < deadline, "connection was never accepted");
                std::thread::sleep(Duration::from_millis(1));
            };
            // The accepted stream is non-blocking (inherited from mio's accept)
            // and carries the byte the client sent.
            let mut byte = [0u8; 1];
            let mut stream = accepted;
            let read_deadline = Instant::now() + watchdog;
            loop {
                match stream.read(&mut byte) {
                    Ok(1) => break,
                    Ok(n) => panic!("read {n} bytes"),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        assert!(Instant::now() < read_deadline, "byte never arrived");
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => panic!("read failed: {e}"),
                }
            }
            assert_eq!(&byte, b"x");
        }
        assert!(first_accepted > 0 && second_accepted > 0);
        // Nothing is left behind in either queue.
        assert!(accept_within(&first, Duration::from_millis(10)).is_none());
        assert!(accept_within(&second, Duration::from_millis(10)).is_none());
    }

    #[test]
    fn listener_without_reuseport_blocks_the_address() {
        let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = plain.local_addr().unwrap();
        let err = reuseport_listener(addr).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse);
    }
}
