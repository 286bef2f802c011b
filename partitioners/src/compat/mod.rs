//! The key → partition functions of the engines a cluster layer is built on,
//! bit-compatible with each engine.
//!
//! Use these when shardpool sits behind (or beside) Kafka, Redis Cluster,
//! Cassandra/ScyllaDB or NATS and a key must land where the engine puts it:
//! a Kafka consumer pool whose workers own partitions, a Redis Cluster proxy
//! that owns slots, a ScyllaDB-style shard-per-core store. Each function is
//! the engine's formula exactly, checked against vectors from the engine's
//! own test suite or its official client's (cited next to each vector in the
//! tests), allocation-free and without `unsafe`.
//!
//! | function | engine | formula | trap it avoids |
//! |---|---|---|---|
//! | [`kafka_partition`] | Apache Kafka, Java producer's default for keyed records | `(murmur2(key) & 0x7fffffff) % partitions`, seed `0x9747b28c` | librdkafka / `rdkafka` default to a CRC32 partitioner (`consistent_random`); `murmur2_random` matches Java |
//! | [`redis_slot`] | Redis Cluster (`CLUSTER KEYSLOT`) | `crc16_xmodem(tag or key) & 0x3fff` | tag = first `{` to the next `}`; an empty tag means the whole key |
//! | [`cassandra_token`] | Cassandra / ScyllaDB `Murmur3Partitioner` | `h1` of MurmurHash3 x64/128, seed 0; `i64::MIN` → `i64::MAX` | tail bytes read as *signed* Java bytes; empty key → `i64::MIN` (Cassandra) |
//! | [`scylla_shard`] | ScyllaDB token → shard (core) | `((token + 2^63) << ignore_msb) × shards >> 64` | `ignore_msb` keeps the core level off the bits that chose the node (scylladb#1277) |
//! | [`nats_partition`] | NATS subject mapping `partition(n, …)` | `fnv1a32(tokens concatenated) % n` | no separator between tokens; the shorthand `partition(n)` hashes the whole dotted subject |
//!
//! # Two levels of routing
//!
//! These functions give the *engine's* placement. When shardpool's own pool
//! routes the same key again, key → core on one node, it must not reuse the
//! bits that picked the node, or the levels correlate and some cores get no
//! keys. ScyllaDB solves this with `ignore_msb` ([`scylla_shard`]); for
//! shardpool's partitioners, derive an independent hash with
//! [`derive_hash`](crate::derive_hash) (see the
//! [crate docs](crate#two-level-routing)).
//!
//! ```
//! use shardpool_partitioners::compat::{cassandra_token, scylla_shard};
//!
//! // A partition key → its token (which picks the node on the ring) →
//! // the core on that node, as a shard-aware ScyllaDB driver routes it.
//! let token = cassandra_token(b"user:12345");
//! let core = scylla_shard(token, 8, 12);
//! assert!(core < 8);
//! ```

mod cassandra;
mod kafka;
mod nats;
mod redis;
mod scylla;

pub use cassandra::cassandra_token;
pub use kafka::kafka_partition;
pub use nats::nats_partition;
pub use redis::redis_slot;
pub use scylla::scylla_shard;
