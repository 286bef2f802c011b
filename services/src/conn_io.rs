//! The socket steps a worker-owned server repeats for every connection:
//! accept the next one, read a chunk, write out what is owed, and watch
//! WRITABLE only while output is left. Shared by the kv server
//! ([`crate::server`]) and the HTTP counter ([`crate::http`]); what each
//! does with the bytes (parsing, reply order, limits) stays its own.

use std::io::{self, ErrorKind, Read, Write};

use shardpool::io::{Interest, TcpListener, TcpStream, Token};
use shardpool::Context;

/// What [`accept_next`] found.
pub(crate) enum Accepted {
    /// A new connection (`TCP_NODELAY` set).
    Stream(TcpStream),
    /// Nothing waits: the listener's next readiness event brings more.
    Drained,
    /// Accepting failed in a way that will not raise a new event (out of
    /// file descriptors, out of memory): the caller tries again on a
    /// timer, since the waiting connections stay queued.
    Retry(io::Error),
}

/// Accepts the next connection, passing over interrupted calls and
/// connections reset before they were accepted.
pub(crate) fn accept_next(listener: &TcpListener) -> Accepted {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                return Accepted::Stream(stream);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Accepted::Drained,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::Interrupted | ErrorKind::ConnectionAborted
                ) => {}
            Err(e) => return Accepted::Retry(e),
        }
    }
}

/// What one [`read_some`] gave.
pub(crate) enum ReadStep {
    /// `n` bytes, at the front of the buffer.
    Data(usize),
    /// The peer closed its side.
    Eof,
    /// Nothing to read now.
    Empty,
    /// The connection failed.
    Failed,
}

/// One read into `buf`, retried when interrupted.
pub(crate) fn read_some(stream: &mut TcpStream, buf: &mut [u8]) -> ReadStep {
    loop {
        match stream.read(buf) {
            Ok(0) => return ReadStep::Eof,
            Ok(n) => return ReadStep::Data(n),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return ReadStep::Empty,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return ReadStep::Failed,
        }
    }
}

/// Writes as much of `out` as the socket takes. Returns how many bytes
/// went out and whether the connection failed (a write error, or a write
/// of zero bytes).
pub(crate) fn write_out(stream: &mut TcpStream, out: &[u8]) -> (usize, bool) {
    let mut written = 0;
    while written < out.len() {
        match stream.write(&out[written..]) {
            Ok(0) => return (written, true),
            Ok(n) => written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return (written, true),
        }
    }
    (written, false)
}

/// Registers connection `token` for WRITABLE as well as READABLE while
/// output is `pending`, and for READABLE alone once it is written;
/// `writing` is what is registered now. Errors when the reactor refuses
/// (the caller closes the connection).
pub(crate) fn watch_writable<M: Send + 'static>(
    ctx: &mut Context<'_, M>,
    stream: &mut TcpStream,
    token: Token,
    writing: &mut bool,
    pending: bool,
) -> io::Result<()> {
    if pending != *writing {
        let interest = if pending {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        ctx.io().reregister(stream, token, interest)?;
        *writing = pending;
    }
    Ok(())
}
