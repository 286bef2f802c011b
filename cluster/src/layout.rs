//! The names one partitioned stream is made of, and their idempotent setup.
//!
//! For a stream named `events` with 16 partitions:
//!
//! | thing | name |
//! |---|---|
//! | the stream (file storage, limits retention) | `events`, subjects `events.>` |
//! | partition `p`'s subject | `events.p.{p}` |
//! | the publisher's end marker | `events.end` |
//! | partition `p`'s durable pull consumer | `events-p{p}`, filter `events.p.{p}`, explicit acks |
//! | the lease bucket | `events-leases` (stream `KV_events-leases`), `max_age` = lease TTL |
//!
//! Every process and the publisher call [`Layout::setup`]; whoever comes
//! first creates, the others find the same things.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, stream};
use shardpool::partitioners::compat::nats_partition;

use crate::Error;

/// The timing of consumers and leases. The defaults suit a test on a
/// loaded machine: a dead process's partitions move after about one
/// `lease_ttl`, its unacked messages come back after `ack_wait`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// How long a lease lives without a refresh (the bucket's `max_age`).
    pub lease_ttl: Duration,
    /// How long JetStream waits for an ack before redelivering.
    pub ack_wait: Duration,
    /// Most messages a partition's consumer has delivered and not yet had
    /// acked; JetStream stops delivering past it (flow control).
    pub max_ack_pending: i64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease_ttl: Duration::from_secs(3),
            ack_wait: Duration::from_secs(2),
            max_ack_pending: 4096,
        }
    }
}

/// One partitioned stream: its name and partition count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Stream name, also the subject prefix (letters, digits, `-`, `_`).
    pub stream: String,
    /// Number of partitions (subjects, consumers, leases).
    pub partitions: u32,
}

impl Layout {
    /// A layout; `partitions` must be at least 1.
    pub fn new(stream: impl Into<String>, partitions: u32) -> Result<Layout, Error> {
        let stream = stream.into();
        if partitions == 0 {
            return Err("partitions: must be at least 1".into());
        }
        if stream.is_empty()
            || !stream
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "stream: {stream:?} must be non-empty letters, digits, '-' or '_'"
            )
            .into());
        }
        Ok(Layout { stream, partitions })
    }

    /// The partition of `key`: what the server's `partition(n, 1)` mapping
    /// gives the subject token `key` ([`nats_partition`]).
    pub fn partition_of(&self, key: &str) -> u32 {
        self.partition_of_bytes(key.as_bytes())
    }

    /// The partition of a key given as bytes (the same as
    /// [`Layout::partition_of`] for a UTF-8 key).
    pub fn partition_of_bytes(&self, key: &[u8]) -> u32 {
        nats_partition(&[key], self.partitions)
    }

    /// The subject of partition `p`.
    pub fn partition_subject(&self, p: u32) -> String {
        format!("{}.p.{p}", self.stream)
    }

    /// The subject the publisher marks the end of its input on.
    pub fn end_subject(&self) -> String {
        format!("{}.end", self.stream)
    }

    /// The durable consumer of partition `p`.
    pub fn durable(&self, p: u32) -> String {
        format!("{}-p{p}", self.stream)
    }

    /// The lease bucket's name.
    pub fn bucket(&self) -> String {
        format!("{}-leases", self.stream)
    }

    /// Creates (or finds) the stream, one durable pull consumer per
    /// partition and the lease bucket.
    pub async fn setup(
        &self,
        js: &jetstream::Context,
        timing: &Timing,
    ) -> Result<(stream::Stream, kv::Store), Error> {
        let events = js
            .get_or_create_stream(stream::Config {
                name: self.stream.clone(),
                subjects: vec![format!("{}.>", self.stream)],
                storage: stream::StorageType::File,
                retention: stream::RetentionPolicy::Limits,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("stream {}: {e}", self.stream))?;
        for p in 0..self.partitions {
            events
                .get_or_create_consumer::<consumer::pull::Config>(
                    &self.durable(p),
                    consumer::pull::Config {
                        durable_name: Some(self.durable(p)),
                        filter_subject: self.partition_subject(p),
                        ack_policy: consumer::AckPolicy::Explicit,
                        ack_wait: timing.ack_wait,
                        max_ack_pending: timing.max_ack_pending,
                        deliver_policy: consumer::DeliverPolicy::All,
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| format!("consumer {}: {e}", self.durable(p)))?;
        }
        let leases = self.lease_bucket(js, timing).await?;
        Ok((events, leases))
    }

    /// Creates (or finds) the lease bucket.
    ///
    /// The bucket's stream is created here, laid out as the key-value
    /// design (ADR-8) and `async_nats`'s own `create_key_value` lay it out,
    /// and then opened with `get_key_value`: `create_key_value` first asks
    /// for the account's info, whose reply from nats-server 2.9 (Debian
    /// bookworm's) lacks fields async-nats 0.51 requires
    /// (`reserved_memory`), so it fails there. The key-value operations
    /// used on the bucket (`create`, `update`, `entry`, `delete`) all work
    /// on 2.9.
    async fn lease_bucket(
        &self,
        js: &jetstream::Context,
        timing: &Timing,
    ) -> Result<kv::Store, Error> {
        let bucket = self.bucket();
        js.get_or_create_stream(stream::Config {
            name: format!("KV_{bucket}"),
            subjects: vec![format!("$KV.{bucket}.>")],
            // One value per key: the current lease holder.
            max_messages_per_subject: 1,
            // A lease not refreshed within the TTL disappears.
            max_age: timing.lease_ttl,
            // File storage: a restarted server still has the bucket and
            // knows who holds what. With memory storage a restart wiped the
            // bucket itself: every lease at once, and every later key-value
            // call failed until the bucket was made again.
            storage: stream::StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            num_replicas: 1,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("key-value bucket {bucket}: {e}"))?;
        Ok(js
            .get_key_value(&bucket)
            .await
            .map_err(|e| format!("key-value bucket {bucket}: {e}"))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let layout = Layout::new("events", 16).unwrap();
        assert_eq!(layout.partition_subject(3), "events.p.3");
        assert_eq!(layout.durable(3), "events-p3");
        assert_eq!(layout.bucket(), "events-leases");
        assert_eq!(layout.end_subject(), "events.end");
    }

    #[test]
    fn bad_layouts_are_refused_with_the_field() {
        let err = Layout::new("events", 0).unwrap_err().to_string();
        assert!(err.starts_with("partitions:"), "{err}");
        let err = Layout::new("a.b", 4).unwrap_err().to_string();
        assert!(err.starts_with("stream:"), "{err}");
    }

    #[test]
    fn partition_and_worker_use_independent_bits() {
        use shardpool::partitioners::{key_hash, HashPartitioner, Partitioner};
        // 16 partitions, 2 workers per process. The pool's partitioner
        // (ahash) spreads each partition's keys over both workers...
        let layout = Layout::new("events", 16).unwrap();
        let mut seen = [[false; 2]; 16];
        let mut aliased = [[false; 2]; 16];
        for i in 0..4000 {
            let key = format!("k{i}");
            let p = layout.partition_of(&key) as usize;
            seen[p][HashPartitioner.shard(key_hash(&key), 2)] = true;
            // ...while reusing the partition's hash for the worker
            // (FNV-1a mod 2 after FNV-1a mod 16) would not: 2 divides 16,
            // so the partition fixes the worker.
            aliased[p][nats_partition(&[key.as_bytes()], 2) as usize] = true;
        }
        assert!(seen.iter().all(|workers| workers[0] && workers[1]));
        assert!(aliased.iter().all(|workers| workers[0] != workers[1]));
    }

    #[test]
    fn partition_is_nats_partition_of_the_key() {
        let layout = Layout::new("events", 16).unwrap();
        for key in ["k0", "k1", "user:42"] {
            assert_eq!(
                layout.partition_of(key),
                nats_partition(&[key.as_bytes()], 16)
            );
            assert!(layout.partition_of(key) < 16);
        }
    }
}
