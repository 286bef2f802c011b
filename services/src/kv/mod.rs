//! A Redis-protocol (RESP2) key-value engine, without I/O.
//!
//! The pieces, each in its own file, each usable alone:
//!
//! | module        | job |
//! |---------------|-----|
//! | [`request`]   | cut one request out of a connection's input buffer (a RESP2 multibulk, checked against `redis-protocol` in the tests, or an inline command), enforcing [`Limits`] |
//! | [`command`]   | turn a request's arguments into a [`Command`], with Redis's own error texts |
//! | [`reply`]     | the [`Reply`] values and their RESP2 encoding |
//! | [`store`]     | a shard-local [`Store`] with lazy expiry and a bounded sweep, and [`Store::execute`] |
//! | [`small`]     | [`SmallBytes`]: the store's keys and values, inline in the table's slots when short |
//! | [`split`]     | where a command runs: anywhere, one shard, or split over shards and merged back in key order |
//! | [`session`]   | one connection's buffers, and a [`ReplyQueue`] that answers a pipeline in order when sub-requests come back out of order |
//! | [`stats`]     | per-worker counters: connections, commands, cross-shard share |
//!
//! What clients send at connect, and what this engine answers (checked
//! against redis-server 7.0.15 and its tools):
//! - `redis-benchmark` opens one extra connection and pipelines
//!   `CONFIG GET save` and `CONFIG GET appendonly`; it prints the values in
//!   its report (and only warns if they fail). Answered as a server without
//!   persistence: `save` → `""`, `appendonly` → `"no"`.
//! - `redis-cli` (interactive) sends `COMMAND DOCS` for its hints; the
//!   engine answers an empty array (no hints, no error). `COMMAND` alone
//!   also answers an empty array, `COMMAND COUNT` the number of commands.
//! - the `redis` crate pipelines `CLIENT SETINFO LIB-NAME …` and
//!   `CLIENT SETINFO LIB-VER …` and ignores the answers; the engine answers
//!   `OK` as Redis 7.2 does.

//! ## Wiring it into a thread-per-core server
//! Each worker owns its connections (one [`Session`] and one [`ReplyQueue`]
//! each), its shard's [`Store`] and a [`KvStats`]. For every request:
//! [`route`] it with the pool's partitioner as `shard_of`;
//! [`Route::Anywhere`] and a [`Route::Shard`] that is the worker's own
//! shard are executed at once ([`ReplyQueue::push_ready`]); anything else
//! reserves a slot ([`ReplyQueue::reserve`]) and goes over the mesh with
//! (connection id, slot, part). A fanout keeps a [`Gather`] per slot. The
//! owning worker fills the slot when the answer comes back and flushes the
//! queue into [`Session::output_mut`], so a pipeline is answered in request
//! order whatever order the shards answer in. `tick` calls
//! [`Store::expire_some`].

pub mod command;
pub mod reply;
pub mod request;
pub mod session;
pub mod small;
pub mod split;
pub mod stats;
pub mod store;

pub use command::{Command, Expiry, SetCondition};
pub use reply::Reply;
pub use request::{Limits, ProtocolError};
pub use session::{Gather, ReplyQueue, Request, Session};
pub use small::SmallBytes;
pub use split::{route, Fanout, FanoutMerge, Route};
pub use stats::KvStats;
pub use store::{execute_keyless, Clock, Entry, ManualClock, Store, SystemClock};
