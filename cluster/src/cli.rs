//! The `jetstream` example's command line (also built as the
//! `shardpool-jetstream` binary, which the integration test spawns).
//!
//! ```text
//! jetstream [--start-server | --nats HOST:PORT] [--process I --of N] [--publish COUNT]
//!           [--partitions 16] [--keys 1000] [--workers W] [--no-pin] [--stream events]
//!           [--lease-ttl 3s] [--ack-wait 2s] [--pull-batch 256] [--log-dir DIR] [--fsync]
//!           [--check-mapping KEYS] [--plain]
//! ```
//!
//! - `--process I --of N`: run process `I` of `N` until the stream is done
//!   (the publisher's end marker is in and nothing is pending or unacked),
//!   then print its per-process and per-worker counts.
//! - `--publish COUNT`: publish `COUNT` events over `--keys` keys, then the
//!   end marker (alone, or next to a process).
//! - `--plain`: instead of a process, one plain async-nats consumer that
//!   does the same counting (the baseline in PERFORMANCE.md).
//! - `--start-server`: start `nats-server` with JetStream on a free
//!   loopback port, print its address, check its `partition(n, …)` mapping
//!   against `nats_partition`, and stop it when this process ends (a few
//!   seconds after, so the other processes see the end too).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::layout::{Layout, Timing};
use crate::process::ProcessConfig;
use crate::server::NatsServer;
use crate::{event, mapping, plain, publish, Error};

/// The parsed command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    /// `--nats`: the server (default `127.0.0.1:4222`).
    pub nats: String,
    /// `--start-server`.
    pub start_server: bool,
    /// `--process I --of N`.
    pub process: Option<(u32, u32)>,
    /// `--publish COUNT`.
    pub publish: Option<u64>,
    /// `--keys`: distinct keys the publisher uses.
    pub keys: u64,
    /// `--partitions`.
    pub partitions: u32,
    /// `--workers`.
    pub workers: Option<usize>,
    /// `--no-pin` clears it.
    pub pin: bool,
    /// `--stream`.
    pub stream: String,
    /// `--lease-ttl`, `--ack-wait`.
    pub timing: Timing,
    /// `--pull-batch`.
    pub pull_batch: usize,
    /// `--log-dir`.
    pub log_dir: Option<PathBuf>,
    /// `--fsync`: each log write is on disk before its events are acked.
    pub fsync: bool,
    /// `--check-mapping KEYS`.
    pub check_mapping: Option<usize>,
    /// `--plain`: consume with one plain async-nats consumer instead (the
    /// baseline).
    pub plain: bool,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            nats: "127.0.0.1:4222".into(),
            start_server: false,
            process: None,
            publish: None,
            keys: 1000,
            partitions: 16,
            workers: None,
            pin: true,
            stream: "events".into(),
            timing: Timing::default(),
            pull_batch: 256,
            log_dir: None,
            fsync: false,
            check_mapping: None,
            plain: false,
        }
    }
}

/// The usage text.
pub const USAGE: &str =
    "usage: jetstream [--start-server | --nats HOST:PORT] [--process I --of N] \
[--publish COUNT] [--partitions 16] [--keys 1000] [--workers W] [--no-pin] [--stream events] \
[--lease-ttl 3s] [--ack-wait 2s] [--pull-batch 256] [--log-dir DIR] [--fsync] [--check-mapping KEYS] [--plain]";

/// `3s`, `500ms` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    let secs: f64 = text.strip_suffix('s').unwrap_or(text).parse().ok()?;
    (secs.is_finite() && secs > 0.0).then(|| Duration::from_secs_f64(secs))
}

impl Args {
    /// Parses the arguments after the program name. Errors name the flag.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
        fn value<T: std::str::FromStr>(
            flag: &str,
            it: &mut impl Iterator<Item = String>,
        ) -> Result<T, String> {
            let text = it.next().ok_or_else(|| format!("{flag}: missing value"))?;
            text.parse()
                .map_err(|_| format!("{flag}: {text:?} is not a valid value"))
        }
        fn duration(flag: &str, it: &mut impl Iterator<Item = String>) -> Result<Duration, String> {
            let text: String = value(flag, it)?;
            parse_duration(&text)
                .ok_or_else(|| format!("{flag}: {text:?} is not a duration (3s, 500ms)"))
        }
        let mut out = Args::default();
        let mut of = None;
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            match flag.as_str() {
                "--nats" => out.nats = value(&flag, &mut it)?,
                "--start-server" => out.start_server = true,
                "--process" => out.process = Some((value(&flag, &mut it)?, 0)),
                "--of" => of = Some(value(&flag, &mut it)?),
                "--publish" => out.publish = Some(value(&flag, &mut it)?),
                "--keys" => out.keys = value(&flag, &mut it)?,
                "--partitions" => out.partitions = value(&flag, &mut it)?,
                "--workers" => out.workers = Some(value(&flag, &mut it)?),
                "--no-pin" => out.pin = false,
                "--stream" => out.stream = value(&flag, &mut it)?,
                "--lease-ttl" => out.timing.lease_ttl = duration(&flag, &mut it)?,
                "--ack-wait" => out.timing.ack_wait = duration(&flag, &mut it)?,
                "--pull-batch" => out.pull_batch = value(&flag, &mut it)?,
                "--log-dir" => out.log_dir = Some(value(&flag, &mut it)?),
                "--fsync" => out.fsync = true,
                "--check-mapping" => out.check_mapping = Some(value(&flag, &mut it)?),
                "--plain" => out.plain = true,
                "-h" | "--help" => return Err(USAGE.to_string()),
                other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
            }
        }
        match (&mut out.process, of) {
            (Some((process, processes)), Some(n)) => {
                if n == 0 || *process >= n {
                    return Err(format!("--process: {process} is not in 0..{n} (--of {n})"));
                }
                *processes = n;
            }
            (Some(_), None) => return Err("--process: needs --of N".into()),
            (None, Some(_)) => return Err("--of: needs --process I".into()),
            (None, None) => {}
        }
        if out.plain && out.process.is_some() {
            return Err("--plain: the baseline consumer runs instead of --process".into());
        }
        if out.process.is_none()
            && out.publish.is_none()
            && out.check_mapping.is_none()
            && !out.plain
        {
            return Err(format!(
                "nothing to do: give --process I --of N, --plain, --publish COUNT or --check-mapping KEYS\n{USAGE}"
            ));
        }
        if out.keys == 0 {
            return Err("--keys: must be at least 1".into());
        }
        if out.pull_batch == 0 {
            return Err("--pull-batch: must be at least 1".into());
        }
        if out.workers == Some(0) {
            return Err("--workers: must be at least 1".into());
        }
        Layout::new(out.stream.clone(), out.partitions).map_err(|e| format!("--{e}"))?;
        Ok(out)
    }
}

/// Parses `std::env::args`, runs, and returns the process exit code.
pub fn main() -> std::process::ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tokio runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs what `args` ask for.
pub async fn run(mut args: Args) -> Result<(), Error> {
    let server = if args.start_server {
        let server = NatsServer::start(args.partitions)?;
        args.nats = server.addr();
        println!(
            "nats-server listening on {} (store in {})",
            server.addr(),
            server.dir().display()
        );
        args.check_mapping.get_or_insert(1000);
        Some(server)
    } else {
        None
    };
    let layout = Layout::new(args.stream.clone(), args.partitions)?;

    if let Some(keys) = args.check_mapping {
        let client = async_nats::connect(&args.nats).await?;
        let keys: Vec<String> = (0..keys as u64)
            .map(|i| event::nth(i, keys as u64).0)
            .collect();
        let check = mapping::check(&client, &keys, args.partitions).await?;
        if !check.mismatches.is_empty() {
            return Err(format!(
                "the server's partition({}, 1) mapping disagrees with nats_partition on {} of {} keys, e.g. {:?}",
                args.partitions,
                check.mismatches.len(),
                check.checked,
                check.mismatches.first()
            )
            .into());
        }
        println!(
            "server mapping partition({}, 1) agrees with compat::nats_partition on all {} keys",
            args.partitions, check.checked
        );
    }

    let publisher = args.publish.map(|count| {
        let (nats, layout, timing, keys) = (
            args.nats.clone(),
            layout.clone(),
            args.timing.clone(),
            args.keys,
        );
        tokio::spawn(async move { publish_all(&nats, &layout, &timing, count, keys).await })
    });

    if let Some((process, processes)) = args.process {
        let config = ProcessConfig {
            nats: args.nats.clone(),
            layout: layout.clone(),
            timing: args.timing.clone(),
            process,
            processes,
            workers: args.workers,
            pin: args.pin,
            log_dir: args.log_dir.clone(),
            pull_batch: args.pull_batch,
            metrics: None,
        };
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let report = crate::counting::run(config, args.fsync, ctrl_c).await?;
        print!("{report}");
    }
    if args.plain {
        let report = plain::run(&args.nats, &layout, &args.timing, args.pull_batch).await?;
        let secs = report.elapsed.as_secs_f64();
        println!(
            "plain consumer: handled {} events in {secs:.1} s ({:.0}/s), {} keys, sum {}",
            report.handled,
            report.handled as f64 / secs.max(1e-9),
            report.keys,
            report.sum
        );
    }
    if let Some(publisher) = publisher {
        publisher.await??;
    }
    if server.is_some() && (args.process.is_some() || args.plain) {
        // The other processes poll for the end every 0.5 s: give them time
        // to see it before their server goes away.
        println!("stopping nats-server in 3 s");
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    drop(server);
    Ok(())
}

async fn publish_all(
    nats: &str,
    layout: &Layout,
    timing: &Timing,
    count: u64,
    keys: u64,
) -> Result<(), Error> {
    let client = async_nats::connect(nats).await?;
    let js = async_nats::jetstream::new(client);
    layout.setup(&js, timing).await?;
    let started = Instant::now();
    let published = publish::publish_events(
        &js,
        layout,
        (0..count).map(|i| event::nth(i, keys)),
        1024,
        |_| {},
    )
    .await?;
    publish::publish_end(&js, layout, published).await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "published {published} events over {keys} keys to {} partitions in {secs:.1} s ({:.0}/s)",
        layout.partitions,
        published as f64 / secs.max(1e-9)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &str) -> Result<Args, String> {
        Args::parse(args.split_whitespace().map(String::from))
    }

    #[test]
    fn process_flags() {
        let args =
            parse("--process 1 --of 3 --nats 127.0.0.1:5000 --no-pin --lease-ttl 500ms").unwrap();
        assert_eq!(args.process, Some((1, 3)));
        assert_eq!(args.nats, "127.0.0.1:5000");
        assert!(!args.pin);
        assert_eq!(args.timing.lease_ttl, Duration::from_millis(500));
    }

    #[test]
    fn bad_flags_are_named() {
        for (args, flag) in [
            ("--process 3 --of 3", "--process"),
            ("--process 0", "--process"),
            ("--of 2 --publish 1", "--of"),
            ("--publish x", "--publish"),
            ("--publish 1 --keys 0", "--keys"),
            ("--publish 1 --partitions 0", "--partitions"),
            ("--publish 1 --ack-wait soon", "--ack-wait"),
            ("--publish 1 --bogus", "unknown argument"),
            ("", "nothing to do"),
        ] {
            let err = parse(args).unwrap_err();
            assert!(err.starts_with(flag), "{args}: {err}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3s"), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("0"), None);
        assert_eq!(parse_duration("-1s"), None);
    }
}
