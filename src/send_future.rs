//! The future of [`PoolSender::send_to_async`](crate::PoolSender::send_to_async):
//! a send that waits for space without blocking its thread.
//!
//! Its first poll is the same claim as `try_send_to` — nothing is added to
//! the fast path. Only when the inbox is full does it register its task's
//! waker in the inbox's wait list, the one blocked threads wait in
//! ([`crate::lockfree::inbox_wait`]), re-check, and return `Pending`; the
//! worker wakes it after the batch that frees a slot. No timer, no
//! polling loop, no helper thread, so it runs on any executor.
//!
//! Dropping the future before it resolves takes it out of the wait list
//! (handing on a wake-up it had received) and drops the message unsent.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};

use crate::lockfree::inbox::PushError;
use crate::lockfree::inbox_wait::Ticket;
use crate::lockfree::sync::Arc;
use crate::shared::Shared;
use crate::{SendError, WorkerId};

/// Sends one message into one worker's inbox, waiting for space.
pub(crate) struct SendToAsync<M> {
    shared: Arc<Shared<M>>,
    worker: WorkerId,
    /// `Some` until the future resolves.
    msg: Option<M>,
    /// Our place in the inbox's wait list while the inbox is full.
    ticket: Ticket,
}

impl<M> SendToAsync<M> {
    pub(crate) fn new(shared: Arc<Shared<M>>, worker: WorkerId, msg: M) -> Self {
        SendToAsync {
            shared,
            worker,
            msg: Some(msg),
            ticket: Ticket::default(),
        }
    }
}

// The message is never pinned (it is moved out by value), so the future
// can move freely between polls whatever `M` is.
impl<M> Unpin for SendToAsync<M> {}

impl<M: Send + 'static> Future for SendToAsync<M> {
    type Output = Result<(), SendError<M>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(w) = this.shared.workers.get(this.worker.index()) else {
            let msg = this.msg.take().expect("polled after completion");
            return Poll::Ready(Err(SendError::NoSuchWorker(msg)));
        };
        if w.failed.load(Relaxed) {
            w.inbox.cancel_wait(&mut this.ticket);
            let msg = this.msg.take().expect("polled after completion");
            return Poll::Ready(Err(SendError::Closed(msg)));
        }
        match w
            .inbox
            .poll_push(&mut this.msg, &mut this.ticket, cx.waker())
        {
            Poll::Ready(Ok(())) => {
                w.signal.notify();
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(PushError::Closed(m) | PushError::Full(m))) => {
                Poll::Ready(Err(SendError::Closed(m)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<M> Drop for SendToAsync<M> {
    fn drop(&mut self) {
        if self.ticket.is_waiting() {
            if let Some(w) = self.shared.workers.get(self.worker.index()) {
                w.inbox.cancel_wait(&mut self.ticket);
            }
        }
    }
}
