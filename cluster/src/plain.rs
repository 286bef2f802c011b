//! The baseline: one plain `async-nats` consumer doing the same counting,
//! no pool, no leases.
//!
//! One durable pull consumer over the whole stream, one task that decodes each event, adds it to a
//! `HashMap` and acks it. It is what the cluster's numbers are compared
//! with in PERFORMANCE.md: the cost of the JetStream round trip itself.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, AckKind};
use futures_util::StreamExt;

use crate::layout::{Layout, Timing};
use crate::{event, Error};

/// What the plain consumer counted.
#[derive(Debug, Clone, Default)]
pub struct PlainReport {
    /// Events handled.
    pub handled: u64,
    /// Distinct keys.
    pub keys: usize,
    /// Sum of the values.
    pub sum: u64,
    /// From connecting to the end.
    pub elapsed: Duration,
}

/// Consumes the whole stream from its start with one (new) consumer until the end marker is in
/// and the consumer has nothing pending or unacked.
pub async fn run(
    nats: &str,
    layout: &Layout,
    timing: &Timing,
    pull_batch: usize,
) -> Result<PlainReport, Error> {
    let started = Instant::now();
    let client = async_nats::connect(nats).await?;
    let js = jetstream::new(client.clone());
    let (events, _) = layout.setup(&js, timing).await?;
    let name = format!("{}-plain", layout.stream);
    // From the start of the stream every run: a fresh consumer.
    let _ = events.delete_consumer(&name).await;
    let consumer: consumer::PullConsumer = events
        .create_consumer(consumer::pull::Config {
            durable_name: Some(name.clone()),
            // No filter: the whole stream (the partitions and the end
            // marker, which is terminated as not an event). With the
            // wildcard filter `events.p.*`, Debian's nats-server 2.9.10
            // delivered a pre-filled file-backed stream ever slower as the
            // consumer advanced — 20 000 events took 14.5 s instead of 0.5
            // s, with the client idle and the batch size (64 to 1024)
            // making no difference — while the partition consumers'
            // literal filters (`events.p.3`) are served from the
            // per-subject index at full speed.
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: timing.ack_wait,
            max_ack_pending: timing.max_ack_pending,
            ..Default::default()
        })
        .await?;
    let messages = consumer
        .stream()
        .max_messages_per_batch(pull_batch)
        .messages()
        .await?;
    let mut totals: HashMap<String, (u64, u64)> = HashMap::new();
    let mut report = PlainReport::default();
    // The end is checked in its own task, off the message loop.
    let done = tokio::spawn(crate::process::wait_until_done(
        events.clone(),
        layout.clone(),
        Some(name.clone()),
    ));
    // Ends when the end task does; the message loop itself awaits nothing
    // but the next message and its ack.
    let mut messages = messages.take_until(done);
    while let Some(next) = messages.next().await {
        let message = match next {
            Ok(message) => message,
            Err(e) => {
                eprintln!("plain: {e}");
                continue;
            }
        };
        match event::decode(&message.payload) {
            Some((key, value)) => {
                let total = totals.entry(key.to_string()).or_default();
                total.0 += 1;
                total.1 += value;
                report.handled += 1;
                report.sum += value;
                message.ack().await?;
            }
            None => message.ack_with(AckKind::Term).await?,
        }
    }
    client.flush().await?;
    report.keys = totals.len();
    report.elapsed = started.elapsed();
    Ok(report)
}
