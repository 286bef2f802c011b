//! Publishing keyed events to their partitions.
//!
//! Each event goes to `{stream}.p.{nats_partition(key, n)}`, the subject the
//! server's own `partition(n, 1)` mapping would pick. Publishes are
//! pipelined: up to `window` wait for their JetStream ack at once, so the
//! publisher is not one round trip per event; an event counts as published
//! only once the stream has stored it.

use std::collections::VecDeque;

use async_nats::jetstream;

use crate::{event, layout::Layout, Error};

/// Publishes `events` (key, value) to their partitions, at most `window`
/// unacknowledged at a time; returns how many the stream stored. Calls
/// `stored_at(sequence)` with each event's stream sequence, in input order,
/// once the stream has stored it.
pub async fn publish_events(
    js: &jetstream::Context,
    layout: &Layout,
    events: impl IntoIterator<Item = (String, u64)>,
    window: usize,
    mut stored_at: impl FnMut(u64),
) -> Result<u64, Error> {
    let mut pending = VecDeque::with_capacity(window);
    let mut stored = 0u64;
    for (key, value) in events {
        let subject = layout.partition_subject(layout.partition_of(&key));
        pending.push_back(js.publish(subject, event::encode(&key, value)).await?);
        if pending.len() >= window.max(1) {
            if let Some(ack) = pending.pop_front() {
                stored_at(ack.await?.sequence);
                stored += 1;
            }
        }
    }
    while let Some(ack) = pending.pop_front() {
        stored_at(ack.await?.sequence);
        stored += 1;
    }
    Ok(stored)
}

/// Marks the end of the input: processes finish once this marker is in the
/// stream and every partition's consumer has nothing pending or unacked.
pub async fn publish_end(
    js: &jetstream::Context,
    layout: &Layout,
    events: u64,
) -> Result<(), Error> {
    js.publish(layout.end_subject(), events.to_string().into())
        .await?
        .await?;
    Ok(())
}
