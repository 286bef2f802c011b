//! # shardpool-services
//!
//! Service examples built on shardpool, and the reusable pieces they share.
//! This crate is not published: it is where the heavy examples live (tokio,
//! and for the tests the `redis` client and `redis-protocol`) so that the
//! root package stays light.
//!
//! - [`kv`]: a Redis-protocol (RESP2) key-value engine — request parsing
//!   with limits, commands, a shard-local store with expiry, replies, and
//!   the split/merge of multi-key commands across shards. It does no I/O:
//!   a server feeds it bytes and writes out what it encodes.
//! - [`server`]: the engine served by a shardpool — each worker owns a
//!   shard of the keys, its listener and its connections; a request for
//!   another shard is a `Context::ask` of its owner
//!   (`cargo run --release --example kv`).
//! - [`http`]: a keep-alive HTTP/1.1 hit counter on shardpool — each
//!   worker owns its sockets and a share of the counters, and asks a key's
//!   owner with `Context::ask` — and its axum peer over a sharded map
//!   (`cargo run --release -p shardpool-services --example http_counter`).
//! - [`cli`]: the command line the server examples share (flags, the
//!   pool flags, help and errors).
//! - [`tokio_peer`]: the same engine served by a tokio multi-thread runtime
//!   over a sharded `Mutex<Store>` — what a Rust user would write without
//!   shardpool, and the peer the shardpool kv server is compared with.
//!
//! ```
//! use bytes::BytesMut;
//! use shardpool_services::kv::{Request, Session, Store};
//!
//! let mut store = Store::new();
//! let mut session = Session::default();
//! session.input_mut().extend_from_slice(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
//! while let Some(request) = session.next_request() {
//!     let reply = match request {
//!         Request::Command(cmd) => store.execute(cmd),
//!         Request::Invalid(reply) | Request::Fatal(reply) => reply,
//!     };
//!     session.push_reply(&reply);
//! }
//! assert_eq!(&session.output()[..], b"+OK\r\n$1\r\nv\r\n");
//! ```

#![deny(missing_docs)]
#![warn(rust_2018_idioms)]

pub mod cli;
mod conn_io;
pub mod http;
pub mod kv;
mod runtime_thread;
pub mod server;
pub mod tokio_peer;
