//! The queues one worker consumes: the receiving side of its inbox and the
//! consumers of the rings `src → me` for every `src`, all allocated on the
//! worker's own thread (see [`crate::spawn`]).

use std::sync::atomic::Ordering::Acquire;

use crate::lockfree::inbox::InboxReceiver;
use crate::lockfree::ring::Consumer;
use crate::mesh::asks::AnswerBox;
use crate::shared::Shared;

/// A worker's inbound queues.
pub(crate) struct Inbound<M> {
    pub(crate) inbox: InboxReceiver<M>,
    pub(crate) rings: Vec<Consumer<M>>,
}

/// Whether a message waits in the inbox or any inbound ring, an answer to
/// one of the worker's asks waits, or the control word changed. Takes the fields it needs, so callers can hold other
/// borrows of the runtime.
#[inline]
pub(super) fn pending<M>(
    inbox: &mut InboxReceiver<M>,
    rx: &mut [Consumer<M>],
    answers: &AnswerBox,
    shared: &Shared<M>,
    control_seen: u64,
) -> bool {
    inbox.has_pending() || rings_pending(rx, answers, shared, control_seen)
}

/// [`pending`] without the inbox: a message in one of `rx`, an answer to
/// one of the worker's asks, or a new control word.
#[inline]
pub(super) fn rings_pending<M>(
    rx: &mut [Consumer<M>],
    answers: &AnswerBox,
    shared: &Shared<M>,
    control_seen: u64,
) -> bool {
    rx.iter_mut().any(|c| c.has_pending())
        || answers.has_pending()
        || shared.control.load(Acquire) != control_seen
}
