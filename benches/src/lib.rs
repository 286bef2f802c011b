//! shardpool's benchmark harness: every workload, shardpool's side and its
//! peers', the interleaved runner and the report.
//!
//! ```text
//! cargo run --release -p shardpool-benches --bin headline                  # headline table (~15 s)
//! cargo run --release -p shardpool-benches --bin headline -- --reps 9      # more repetitions
//! cargo run --release -p shardpool-benches --bin headline -- --sweep       # mesh batch/capacity,
//!                                                                          # inbox coalescing, idle strategy
//! cargo run --release -p shardpool-benches --bin headline -- --async     # tokio callers: send_to_async,
//!                                                                          # call_async vs tokio channels
//! cargo bench                                                              # the criterion benches
//! ```
//!
//! Every comparison runs shardpool and its peer alternately (A B A B ...,
//! `--reps` times each) in one process and reports medians and the median of
//! the paired ratios (shardpool / peer), because on a small VM the absolute
//! numbers drift 2-4x from minute to minute while adjacent runs stay
//! comparable. The cross-CPU round-trip floor is measured at the start and
//! the end of the run so the reader knows which regime the machine was in.
//!
//! Setup (pool start, thread spawn and pinning) and teardown (shutdown,
//! join, result checks) are outside every timed region: threads wait on a
//! "go" (a flag, or a message for pool workers), the clock starts right
//! before "go" and stops when the consumer has counted the last message and
//! woken the timing thread.
//!
//! This crate is a workspace member of its own so that the peers (rtrb,
//! crossbeam, flume, tokio) and criterion stay out of `shardpool`'s
//! dev-dependencies. It uses only shardpool's public API.
//!
//! | module | job |
//! |---|---|
//! | [`harness`] | the two benchmark CPUs, pinning, start gates, completion latches |
//! | [`workloads`] | shardpool's side of each workload: mesh, inbox, keyed, shuffle, latency, idle, ask |
//! | [`peers`] | the same workloads on rtrb, crossbeam, flume, tokio and a hand-rolled pool |
//! | [`report`] | interleaved runs, medians, percentiles, the table |
//! | [`headline`], [`sweep`], [`callers`] | the suites the `headline` binary runs |
#![deny(missing_docs)]
#![warn(rust_2018_idioms)]

pub mod callers;
pub mod harness;
pub mod headline;
pub mod peers;
pub mod report;
pub mod sweep;
pub mod workloads;
