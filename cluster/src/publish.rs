//! Publishing keyed messages to their partitions.
//!
//! Each message goes to `{stream}.p.{nats_partition(key, n)}`, the subject
//! the server's own `partition(n, 1)` mapping would pick; its payload is
//! any bytes (the job's [`decode`](crate::job::Job::decode) reads them).
//! Publishes are pipelined: up to `window` wait for their JetStream ack at
//! once, so the publisher is not one round trip per message; a message
//! counts as published only once the stream has stored it.

use std::collections::VecDeque;

use async_nats::jetstream::{self, context::PublishAckFuture};
use bytes::Bytes;

use crate::{event, layout::Layout, Error};

/// Publishes `payload` to the partition of `key`; await the returned
/// future for the stream's ack (its sequence).
pub async fn publish_keyed(
    js: &jetstream::Context,
    layout: &Layout,
    key: &[u8],
    payload: Bytes,
) -> Result<PublishAckFuture, Error> {
    let subject = layout.partition_subject(layout.partition_of_bytes(key));
    Ok(js.publish(subject, payload).await?)
}

/// Publishes `messages` (key, payload) to their partitions, at most
/// `window` unacknowledged at a time; returns how many the stream stored.
/// Calls `stored_at(sequence)` with each message's stream sequence, in
/// input order, once the stream has stored it.
pub async fn publish_all<K: AsRef<[u8]>>(
    js: &jetstream::Context,
    layout: &Layout,
    messages: impl IntoIterator<Item = (K, Bytes)>,
    window: usize,
    mut stored_at: impl FnMut(u64),
) -> Result<u64, Error> {
    let mut pending = VecDeque::with_capacity(window);
    let mut stored = 0u64;
    for (key, payload) in messages {
        pending.push_back(publish_keyed(js, layout, key.as_ref(), payload).await?);
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

/// Publishes `events` (key, value) of the counting example as `"key value"`
/// payloads ([`event::encode`]) with [`publish_all`].
pub async fn publish_events(
    js: &jetstream::Context,
    layout: &Layout,
    events: impl IntoIterator<Item = (String, u64)>,
    window: usize,
    stored_at: impl FnMut(u64),
) -> Result<u64, Error> {
    let messages = events.into_iter().map(|(key, value)| {
        let payload = event::encode(&key, value);
        (key, payload)
    });
    publish_all(js, layout, messages, window, stored_at).await
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
