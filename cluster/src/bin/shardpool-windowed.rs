//! One process of the windowed example job ([`shardpool_cluster::windowed`]),
//! so that `cluster/tests/windowed.rs` can run, kill and stop it:
//!
//! ```text
//! shardpool-windowed --nats HOST:PORT --stream NAME --process I --of N
//!     --partitions P --width W --out DIR [--workers K] [--no-replay]
//! ```
//!
//! It ends when the stream is done (the publisher's end marker is in and
//! nothing is pending), or on SIGTERM, handing its partitions back.

use std::path::PathBuf;
use std::process::ExitCode;

use shardpool_cluster::layout::{Layout, Timing};
use shardpool_cluster::process::ProcessConfig;
use shardpool_cluster::{windowed, Error};

struct Args {
    nats: String,
    stream: String,
    process: u32,
    processes: u32,
    partitions: u32,
    width: u64,
    out: PathBuf,
    workers: usize,
    replay: bool,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        nats: "127.0.0.1:4222".into(),
        stream: "windowed".into(),
        process: 0,
        processes: 1,
        partitions: 8,
        width: 100,
        out: PathBuf::from("windowed-out"),
        workers: 2,
        replay: true,
    };
    fn value<T: std::str::FromStr>(
        flag: &str,
        args: &mut impl Iterator<Item = String>,
    ) -> Result<T, String> {
        let text = args.next().ok_or(format!("{flag} needs a value"))?;
        text.parse()
            .map_err(|_| format!("{flag}: bad value {text:?}"))
    }
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--nats" => parsed.nats = value(&flag, &mut args)?,
            "--stream" => parsed.stream = value(&flag, &mut args)?,
            "--process" => parsed.process = value(&flag, &mut args)?,
            "--of" => parsed.processes = value(&flag, &mut args)?,
            "--partitions" => parsed.partitions = value(&flag, &mut args)?,
            "--width" => parsed.width = value(&flag, &mut args)?,
            "--out" => parsed.out = value(&flag, &mut args)?,
            "--workers" => parsed.workers = value(&flag, &mut args)?,
            "--no-replay" => parsed.replay = false,
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    Ok(parsed)
}

async fn run(args: Args) -> Result<(), Error> {
    let config = ProcessConfig {
        nats: args.nats,
        layout: Layout::new(args.stream, args.partitions)?,
        timing: Timing::default(),
        process: args.process,
        processes: args.processes,
        workers: Some(args.workers),
        pin: false,
        log_dir: Some(args.out),
        pull_batch: 64,
        metrics: None,
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stop = async move {
        term.recv().await;
    };
    let report = windowed::run(config, args.width, args.replay, stop).await?;
    println!(
        "process {}: handled {} events; partitions held: {:?}",
        report.process,
        windowed::handled(&report),
        report.partitions
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(run(args)),
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
