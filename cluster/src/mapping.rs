//! Does the server's own `partition(n, …)` subject mapping agree with
//! [`nats_partition`]?
//!
//! The server started by [`server`](crate::server) maps
//! `map.in.{key}` to `map.out.{{partition(n,1)}}.{key}`. Publishing to the
//! unpartitioned subject and reading which partition subject the server
//! chose shows, key by key, that the publisher's `nats_partition(&[key], n)`
//! picks the same partition the server would. (nats-server 2.9 has the
//! `partition` function in account mappings; streams' own
//! `subject_transform` came in 2.10, so the check uses a mapping.)

use std::time::Duration;

use futures_util::StreamExt;
use shardpool::partitioners::compat::nats_partition;

use crate::Error;

/// The subject prefix the server maps from.
pub const MAPPING_IN: &str = "map.in";
/// The subject prefix the server maps to: `map.out.{partition}.{key}`.
pub const MAPPING_OUT: &str = "map.out";

/// What [`check`] saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappingCheck {
    /// Keys the server mapped and we compared.
    pub checked: usize,
    /// `(key, server's partition, nats_partition's)` where they differ.
    pub mismatches: Vec<(String, u32, u32)>,
}

/// Publishes `map.in.{key}` for every key (each a valid subject token) and
/// compares the partition in the subject each arrives on with
/// `nats_partition(&[key], partitions)`. `partitions` must be the number in
/// the server's mapping. Fails if a message does not arrive within 10 s.
pub async fn check(
    client: &async_nats::Client,
    keys: &[String],
    partitions: u32,
) -> Result<MappingCheck, Error> {
    let mut subscriber = client.subscribe(format!("{MAPPING_OUT}.>")).await?;
    client.flush().await?;
    for key in keys {
        client
            .publish(format!("{MAPPING_IN}.{key}"), bytes::Bytes::new())
            .await?;
    }
    client.flush().await?;
    let mut result = MappingCheck::default();
    while result.checked < keys.len() {
        let message = tokio::time::timeout(Duration::from_secs(10), subscriber.next())
            .await
            .map_err(|_| {
                format!(
                    "only {} of {} mapped messages arrived: is the server's \
                     `{MAPPING_IN}.*` mapping configured?",
                    result.checked,
                    keys.len()
                )
            })?
            .ok_or("subscription closed")?;
        let mut tokens = message.subject.split('.').skip(2);
        let (Some(partition), Some(key)) = (tokens.next(), tokens.next()) else {
            return Err(format!("unexpected mapped subject {}", message.subject).into());
        };
        let server: u32 = partition.parse()?;
        let ours = nats_partition(&[key.as_bytes()], partitions);
        if server != ours {
            result.mismatches.push((key.to_string(), server, ours));
        }
        result.checked += 1;
    }
    subscriber.unsubscribe().await?;
    Ok(result)
}
