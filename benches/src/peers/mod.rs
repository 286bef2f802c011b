//! The peers: each workload of [`crate::workloads`] on the queues and
//! runtimes shardpool is compared with, doing the same work (same values,
//! same key stream, same routing, same checks) between the same two CPUs.
//!
//! | module | peers |
//! |---|---|
//! | [`spsc`] | rtrb (push/pop and chunks), crossbeam `ArrayQueue`: spinning producer and consumer |
//! | [`channel`] | crossbeam-channel and flume `bounded`: blocking send and receive |
//! | [`handrolled`] | a hand-rolled pool: a pinned thread and a crossbeam-channel inbox per worker |
//! | [`rtrb_mesh`] | a hand-rolled mesh of rtrb rings: a pinned thread per worker, a ring per ordered pair |
//! | [`tokio_tasks`] | a tokio multi-thread runtime with one bounded mpsc per task |
//! | [`round_trip`] | the round-trip floor (one atomic) and rtrb ping-pong, between plain threads and on two pool workers' threads |

pub mod channel;
pub mod handrolled;
pub mod round_trip;
pub mod rtrb_mesh;
pub mod spsc;
pub mod tokio_tasks;
