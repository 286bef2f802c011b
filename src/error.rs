//! Errors: the pool's [`Error`], the send-side [`SendError`], which always
//! hands the message back, and [`CallError`], a request/response call that
//! got no answer.

use std::fmt;

use crate::WorkerId;

/// An error from starting or stopping a [`Pool`](crate::Pool).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A [`PoolConfig`](crate::PoolConfig) value was refused by
    /// [`Pool::start`](crate::Pool::start).
    InvalidConfig {
        /// The configuration field at fault, e.g. `"queue_capacity"`.
        field: &'static str,
        /// Why the value was refused.
        reason: String,
    },
    /// A worker panicked in its factory, `on_start`, `handle`, `tick` or
    /// `on_stop`.
    WorkerPanicked {
        /// The worker that panicked (the first one, if several did).
        worker: WorkerId,
        /// The panic message.
        message: String,
    },
    /// [`Pool::shutdown`](crate::Pool::shutdown) (or
    /// [`shutdown_all`](crate::Pool::shutdown_all)) was called from inside
    /// one of that pool's own workers, which cannot wait for itself to
    /// stop. The pool is still stopped and drained, on a separate thread;
    /// its workers are dropped there.
    ShutdownFromWorker {
        /// The worker the call was made from.
        worker: WorkerId,
    },
    /// The operating system refused to create a worker thread.
    Spawn {
        /// The worker whose thread could not be created.
        worker: WorkerId,
        /// The OS error text.
        reason: String,
    },
}

impl Error {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidConfig {
            field,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidConfig { field, reason } => {
                write!(f, "invalid pool configuration: `{field}`: {reason}")
            }
            Error::WorkerPanicked { worker, message } => {
                write!(f, "worker {worker} panicked: {message}")
            }
            Error::ShutdownFromWorker { worker } => write!(
                f,
                "the pool was shut down from inside its own worker {worker}, which cannot \
                 wait for itself: it is being stopped on a separate thread and its workers \
                 are dropped there"
            ),
            Error::Spawn { worker, reason } => {
                write!(f, "could not spawn the thread of worker {worker}: {reason}")
            }
        }
    }
}

impl std::error::Error for Error {}

/// A send that did not happen. The message is always handed back.
///
/// ```
/// use shardpool::SendError;
/// let err = SendError::Full(7u32);
/// assert!(err.is_full());
/// assert_eq!(format!("{err:?}"), "Full(..)"); // never the message itself
/// assert_eq!(err.into_inner(), 7);
/// ```
///
/// `Debug`, `Display` and [`std::error::Error`] are implemented for every
/// `M`, also one that is not `Debug`, so `.expect()` and `?` work on any
/// message type.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum SendError<M> {
    /// The queue was full (only from the `try_` sends).
    Full(M),
    /// The receiver is gone: the pool is shutting down or stopped, or the
    /// target worker failed.
    Closed(M),
    /// The target [`WorkerId`] is not below the number of workers.
    NoSuchWorker(M),
    /// [`Context::send_after`](crate::Context::send_after) was given a
    /// delay so long that its deadline cannot be represented (an
    /// [`Instant`](std::time::Instant) overflow, e.g. `Duration::MAX`).
    DelayTooLong(M),
}

impl<M> SendError<M> {
    /// The message that was not sent.
    pub fn into_inner(self) -> M {
        match self {
            SendError::Full(m)
            | SendError::Closed(m)
            | SendError::NoSuchWorker(m)
            | SendError::DelayTooLong(m) => m,
        }
    }

    /// A reference to the message that was not sent.
    pub fn message(&self) -> &M {
        match self {
            SendError::Full(m)
            | SendError::Closed(m)
            | SendError::NoSuchWorker(m)
            | SendError::DelayTooLong(m) => m,
        }
    }

    /// The same error with the message mapped by `f`.
    pub fn map<N>(self, f: impl FnOnce(M) -> N) -> SendError<N> {
        match self {
            SendError::Full(m) => SendError::Full(f(m)),
            SendError::Closed(m) => SendError::Closed(f(m)),
            SendError::NoSuchWorker(m) => SendError::NoSuchWorker(f(m)),
            SendError::DelayTooLong(m) => SendError::DelayTooLong(f(m)),
        }
    }

    /// True for [`SendError::Full`].
    pub fn is_full(&self) -> bool {
        matches!(self, SendError::Full(_))
    }

    /// True for [`SendError::Closed`].
    pub fn is_closed(&self) -> bool {
        matches!(self, SendError::Closed(_))
    }

    fn kind(&self) -> &'static str {
        match self {
            SendError::Full(_) => "Full",
            SendError::Closed(_) => "Closed",
            SendError::NoSuchWorker(_) => "NoSuchWorker",
            SendError::DelayTooLong(_) => "DelayTooLong",
        }
    }
}

/// Prints the variant without the message (`Full(..)`), for every `M`: a
/// failed send of a large message must not dump it, and `.expect()` or `?`
/// into a `Box<dyn Error>` must not need `M: Debug`. Use
/// [`message`](SendError::message) to look at the message.
impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(..)", self.kind())
    }
}

impl<M> fmt::Display for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::Full(_) => "send failed: the queue is full",
            SendError::Closed(_) => "send failed: the receiver is closed",
            SendError::NoSuchWorker(_) => "send failed: no such worker",
            SendError::DelayTooLong(_) => {
                "send failed: the delay is too long for the clock to represent its deadline"
            }
        })
    }
}

/// For every `M`, so that `?` works in a function returning
/// `Result<_, Box<dyn Error>>` (that needs `M: 'static`, and `Send + Sync`
/// for `Box<dyn Error + Send + Sync>`).
impl<M> std::error::Error for SendError<M> {}

/// A call ([`PoolSender::call`](crate::PoolSender::call) and friends) that
/// did not get its answer.
///
/// ```
/// use shardpool::{CallError, SendError};
/// let err: CallError<u32> = CallError::Send(SendError::Closed(7));
/// assert_eq!(format!("{err:?}"), "Send(Closed(..))"); // never the message
/// assert_eq!(err.into_inner(), Some(7));
/// assert!(CallError::<u32>::NoReply.to_string().contains("dropped"));
/// ```
///
/// Like [`SendError`], `Debug`, `Display` and [`std::error::Error`] are
/// implemented for every `M`, and `Debug` never prints the message.
#[derive(Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallError<M> {
    /// The request could not be sent; the message is handed back (with the
    /// [`Reply`](crate::Reply) inside it, now unanswerable).
    Send(SendError<M>),
    /// The [`Reply`](crate::Reply) was dropped unanswered: the handler
    /// dropped it, panicked, its worker failed, or the pool stopped before
    /// the message was handled. A call never hangs on a lost reply.
    NoReply,
}

impl<M> CallError<M> {
    /// The request message, if the send failed (`None` for
    /// [`NoReply`](CallError::NoReply): the message was delivered).
    pub fn into_inner(self) -> Option<M> {
        match self {
            CallError::Send(e) => Some(e.into_inner()),
            CallError::NoReply => None,
        }
    }

    /// True for [`CallError::NoReply`].
    pub fn is_no_reply(&self) -> bool {
        matches!(self, CallError::NoReply)
    }

    /// True when the request could not be sent because the pool is
    /// shutting down or stopped, or the worker failed.
    pub fn is_closed(&self) -> bool {
        matches!(self, CallError::Send(e) if e.is_closed())
    }
}

impl<M> From<SendError<M>> for CallError<M> {
    fn from(e: SendError<M>) -> Self {
        CallError::Send(e)
    }
}

/// Prints the variant without the message (`Send(Full(..))`, `NoReply`),
/// for every `M`, as [`SendError`]'s `Debug` does.
impl<M> fmt::Debug for CallError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Send(e) => write!(f, "Send({e:?})"),
            CallError::NoReply => f.write_str("NoReply"),
        }
    }
}

impl<M> fmt::Display for CallError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Send(e) => write!(f, "call failed: {e}"),
            CallError::NoReply => f.write_str("call failed: the reply was dropped unanswered"),
        }
    }
}

/// For every `M`, as for [`SendError`].
impl<M> std::error::Error for CallError<M> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_field_and_worker() {
        let e = Error::invalid("batch_size", "must be at least 1");
        assert!(e.to_string().contains("batch_size"));
        assert!(e.to_string().contains("at least 1"));
        let e = Error::WorkerPanicked {
            worker: WorkerId::from(3),
            message: "boom".into(),
        };
        assert!(e.to_string().contains('3') && e.to_string().contains("boom"));
    }

    #[test]
    fn send_error_hands_message_back() {
        for e in [
            SendError::Full(String::from("m")),
            SendError::Closed(String::from("m")),
            SendError::NoSuchWorker(String::from("m")),
            SendError::DelayTooLong(String::from("m")),
        ] {
            let boxed: Box<dyn std::error::Error> = Box::new(e.clone());
            assert!(!boxed.to_string().is_empty());
            assert_eq!(e.into_inner(), "m");
        }
    }

    /// Issue 13: a failed send of a large message printed it in full, and
    /// `Debug`/`Error` needed `M: Debug`.
    #[test]
    fn send_error_debug_omits_the_message_for_any_type() {
        let chunk = SendError::Full(vec![7u8; 64 * 1024]);
        assert_eq!(format!("{chunk:?}"), "Full(..)");
        assert_eq!(format!("{chunk:#?}"), "Full(..)");

        struct NotDebug(#[allow(dead_code)] u8);
        for (e, debug) in [
            (SendError::Full(NotDebug(1)), "Full(..)"),
            (SendError::Closed(NotDebug(2)), "Closed(..)"),
            (SendError::NoSuchWorker(NotDebug(3)), "NoSuchWorker(..)"),
            (SendError::DelayTooLong(NotDebug(5)), "DelayTooLong(..)"),
        ] {
            assert_eq!(format!("{e:?}"), debug);
            let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(e);
            assert!(boxed.to_string().starts_with("send failed"));
        }
        fn send() -> Result<(), SendError<NotDebug>> {
            Err(SendError::Closed(NotDebug(4)))
        }
        fn question_mark() -> Result<(), Box<dyn std::error::Error>> {
            send()?;
            Ok(())
        }
        assert!(question_mark().is_err());
    }

    #[test]
    fn call_error_debug_omits_the_message_for_any_type() {
        struct NotDebug(#[allow(dead_code)] u8);
        let e = CallError::Send(SendError::Full(NotDebug(1)));
        assert_eq!(format!("{e:?}"), "Send(Full(..))");
        assert!(e.to_string().contains("full"));
        assert!(e.into_inner().is_some());
        let e: CallError<NotDebug> = CallError::NoReply;
        assert_eq!(format!("{e:?}"), "NoReply");
        assert!(e.is_no_reply() && !e.is_closed());
        assert!(e.into_inner().is_none());
        fn call() -> Result<(), CallError<NotDebug>> {
            Err(SendError::Closed(NotDebug(2)).into())
        }
        fn question_mark() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            call()?;
            Ok(())
        }
        let boxed = question_mark().unwrap_err();
        assert!(boxed.to_string().contains("closed"), "{boxed}");
    }
}
