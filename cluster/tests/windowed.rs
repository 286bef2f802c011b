//! The windowed example job ([`shardpool_cluster::windowed`]) gives the
//! single-process answer when its partitions move: three processes share
//! an 8-partition stream published in chunks; mid-stream one is killed
//! with SIGKILL (its partitions are taken over when its leases expire),
//! then started again (the others hand its home partitions back), and
//! later another is stopped with SIGTERM (it hands its partitions over).
//! The answers the processes wrote through the fenced sink, de-duplicated
//! by (key, window), must equal the reference computed from the input in
//! one place: every window of every key, with its exact count.
//!
//! Each move puts windows that are open at that moment into a fresh
//! worker; only the replay on acquire gives that worker the window's
//! earlier events (with `--no-replay` the test fails).
//!
//! Needs `nats-server`; skipped without it unless
//! `SHARDPOOL_REQUIRE_SERVERS=1`. Everything binds 127.0.0.1; the server
//! and the processes are killed when the test ends, whatever the outcome.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shardpool_cluster::layout::{Layout, Timing};
use shardpool_cluster::record::{self, LeaseChange, LeaseRecord};
use shardpool_cluster::server::NatsServer;
use shardpool_cluster::{publish, windowed};

use common::{server_or_skip, signal, wait_for, Processes};

const PARTITIONS: u32 = 8;
const PROCESSES: u32 = 3;
const KEYS: u64 = 200;
const EVENTS: u64 = 24_000;
const CHUNKS: u64 = 12;
const WIDTH: u64 = 64;
/// Killed with SIGKILL, then started again.
const VICTIM: u32 = 1;
/// Stopped with SIGTERM later: hands its partitions over cleanly.
const LEAVER: u32 = 2;
/// The whole test, on a loaded 2-core machine; each wait checks it.
const WATCHDOG: Duration = Duration::from_secs(120);

fn spawn(server: &NatsServer, dir: &Path, process: u32, run: u32) -> Child {
    let out = fs::File::create(dir.join(format!("p{process}-{run}.out"))).unwrap();
    let err = fs::File::create(dir.join(format!("p{process}-{run}.err"))).unwrap();
    Command::new(env!("CARGO_BIN_EXE_shardpool-windowed"))
        .args(["--nats", &server.addr(), "--stream", "windows"])
        .args(["--process", &process.to_string()])
        .args(["--of", &PROCESSES.to_string()])
        .args(["--partitions", &PARTITIONS.to_string()])
        .args(["--width", &WIDTH.to_string(), "--workers", "2"])
        .arg("--out")
        .arg(dir.join("out"))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn shardpool-windowed")
}

/// The leases `process` logged acquiring: (partition, at_ns).
fn acquired(dir: &Path, process: u32) -> Vec<(u32, u64)> {
    fs::read_to_string(record::lease_log(&dir.join("out"), process))
        .unwrap_or_default()
        .lines()
        .filter_map(LeaseRecord::parse)
        .filter(|r| r.change == LeaseChange::Acquired)
        .map(|r| (r.partition, r.at_ns))
        .collect()
}

/// Every partition whose home is `home` acquired by another process after
/// `after` (system-clock ns).
fn taken_over(dir: &Path, home: u32, after: u64) -> bool {
    (0..PARTITIONS).filter(|p| p % PROCESSES == home).all(|p| {
        (0..PROCESSES).filter(|&q| q != home).any(|q| {
            acquired(dir, q)
                .iter()
                .any(|&(pp, at)| pp == p && at > after)
        })
    })
}

#[test]
fn windowed_answers_survive_a_sigkill_and_handovers() {
    let started = Instant::now();
    let Some(server) = server_or_skip(
        "windowed_answers_survive_a_sigkill_and_handovers",
        PARTITIONS,
    ) else {
        return;
    };
    let dir = server.dir().join("windowed");
    fs::create_dir_all(dir.join("out")).unwrap();
    let layout = Layout::new("windows", PARTITIONS).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _in_runtime = rt.enter();
    let client = rt.block_on(async_nats::connect(server.addr())).unwrap();
    let js = async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(30))
        .build(client);
    let (_, kv) = rt.block_on(layout.setup(&js, &Timing::default())).unwrap();

    let mut processes = Processes(
        (0..PROCESSES)
            .map(|p| Some(spawn(&server, &dir, p, 0)))
            .collect(),
    );
    wait_for("all partitions leased", started, WATCHDOG, || {
        rt.block_on(async {
            for p in 0..PARTITIONS {
                if !matches!(kv.get(format!("partition.{p}")).await, Ok(Some(_))) {
                    return false;
                }
            }
            true
        })
    });

    let publish_range = |range: std::ops::Range<u64>| {
        let ticks = range.map(|i| windowed::nth(i, KEYS));
        let messages = ticks.map(|t| (t.key.clone(), windowed::encode(&t)));
        let stored = rt
            .block_on(publish::publish_all(&js, &layout, messages, 512, |_| {}))
            .unwrap();
        assert!(stored > 0);
    };
    let chunk = EVENTS / CHUNKS;
    let answers_of = |process: u32| {
        windowed::read_answers(&dir.join("out"), PARTITIONS)
            .map(|a| a.by_process.get(&process).copied().unwrap_or(0))
            .unwrap_or(0)
    };
    for c in 0..CHUNKS {
        publish_range(c * chunk..(c + 1) * chunk);
        match c {
            // The victim answered some windows, and has others open.
            3 => {
                wait_for("the victim to answer", started, WATCHDOG, || {
                    answers_of(VICTIM) > 0
                });
                let killed_at = record::now_ns();
                let mut victim = processes.0[VICTIM as usize].take().unwrap();
                victim.kill().unwrap(); // SIGKILL
                victim.wait().unwrap();
                eprintln!(
                    "SIGKILL process {VICTIM} {:.1} s in",
                    started.elapsed().as_secs_f64()
                );
                wait_for(
                    "the victim's partitions taken over",
                    started,
                    WATCHDOG,
                    || taken_over(&dir, VICTIM, killed_at),
                );
            }
            // Started again: the others hand its home partitions back.
            5 => {
                let restarted_at = record::now_ns();
                processes.0[VICTIM as usize] = Some(spawn(&server, &dir, VICTIM, 1));
                wait_for(
                    "the victim's partitions handed back",
                    started,
                    WATCHDOG,
                    || {
                        let back = acquired(&dir, VICTIM);
                        (0..PARTITIONS)
                            .filter(|p| p % PROCESSES == VICTIM)
                            .all(|p| back.iter().any(|&(pp, at)| pp == p && at > restarted_at))
                    },
                );
                eprintln!(
                    "process {VICTIM} back {:.1} s in",
                    started.elapsed().as_secs_f64()
                );
            }
            // A clean stop: it hands its partitions over and exits.
            8 => {
                let stopped_at = record::now_ns();
                let leaver = processes.0[LEAVER as usize].take().unwrap();
                signal(&leaver, libc::SIGTERM);
                let status = leaver.wait_with_output().unwrap().status;
                assert!(status.success(), "process {LEAVER} after SIGTERM: {status}");
                wait_for(
                    "the leaver's partitions taken over",
                    started,
                    WATCHDOG,
                    || taken_over(&dir, LEAVER, stopped_at),
                );
                eprintln!(
                    "process {LEAVER} stopped {:.1} s in",
                    started.elapsed().as_secs_f64()
                );
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    // Each key's end closes its last window; then the stream's end.
    let ends = (0..KEYS).map(|k| windowed::end(k, KEYS, EVENTS));
    let messages = ends.map(|t| (t.key.clone(), windowed::encode(&t)));
    rt.block_on(publish::publish_all(&js, &layout, messages, 512, |_| {}))
        .unwrap();
    rt.block_on(publish::publish_end(&js, &layout, EVENTS + KEYS))
        .unwrap();

    for (process, child) in processes.0.iter_mut().enumerate() {
        let Some(child) = child else { continue };
        wait_for(
            &format!("process {process} to finish"),
            started,
            WATCHDOG,
            || child.try_wait().unwrap().is_some(),
        );
        let status = child.wait().unwrap();
        assert!(status.success(), "process {process}: {status}");
    }
    eprintln!("stream done {:.1} s in", started.elapsed().as_secs_f64());

    let found = windowed::read_answers(&dir.join("out"), PARTITIONS)
        .unwrap_or_else(|e| panic!("answers: {e}"));
    let expected = windowed::reference((0..EVENTS).map(|i| windowed::nth(i, KEYS)), WIDTH);
    let missing = expected
        .keys()
        .filter(|w| !found.answers.contains_key(*w))
        .count();
    let wrong: Vec<String> = expected
        .iter()
        .filter_map(|(w, count)| {
            let got = found.answers.get(w)?;
            (got != count).then(|| format!("{w:?}: {got}, expected {count}"))
        })
        .take(5)
        .collect();
    eprintln!(
        "{} answers ({} lines, by process {:?}); {} expected; {missing} missing; wrong e.g. {wrong:?}",
        found.answers.len(),
        found.lines,
        found.by_process,
        expected.len(),
    );
    assert!(
        found.by_process.len() == PROCESSES as usize,
        "every process answered"
    );
    assert_eq!(found.answers, expected, "the single-process answers");
}
