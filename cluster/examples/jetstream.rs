//! A partitioned NATS JetStream stream consumed by several shardpool
//! processes.
//!
//! Events for key `k` are published to partition `nats_partition(k, 16)` of
//! the stream `events` (subject `events.p.{partition}`). Each process owns a
//! set of partitions through leases in a JetStream key-value bucket, pulls
//! from a durable consumer per owned partition, sends each event to the pool
//! worker that owns its key, and acks it only after that worker handled it.
//! Kill a process and, once its leases expire, the others take its
//! partitions over; what it had in flight is redelivered.
//!
//! One terminal, one process, its own server:
//!
//! ```sh
//! cargo run --release -p shardpool-cluster --example jetstream -- --start-server --process 0 --of 1 --publish 200000
//! ```
//!
//! Three processes (the first starts the server and prints its address):
//!
//! ```sh
//! cargo run --release -p shardpool-cluster --example jetstream -- --start-server --process 0 --of 3
//! cargo run --release -p shardpool-cluster --example jetstream -- --nats 127.0.0.1:PORT --process 1 --of 3
//! cargo run --release -p shardpool-cluster --example jetstream -- --nats 127.0.0.1:PORT --process 2 --of 3
//! cargo run --release -p shardpool-cluster --example jetstream -- --nats 127.0.0.1:PORT --publish 200000
//! ```
//!
//! Each process prints its per-process and per-worker counts when the
//! stream is done. The program lives in `shardpool_cluster::cli`; the job
//! (a `Job` and a `JobWorker`) in `shardpool_cluster::counting`, run by the
//! library's `shardpool_cluster::process::run_job`.

fn main() -> std::process::ExitCode {
    shardpool_cluster::cli::main()
}
