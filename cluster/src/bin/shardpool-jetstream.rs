//! The `jetstream` example's program as a bin target, so that
//! `cluster/tests/jetstream.rs` can spawn it (cargo builds bins, not
//! examples, for integration tests). See `cluster/examples/jetstream.rs`.

fn main() -> std::process::ExitCode {
    shardpool_cluster::cli::main()
}
