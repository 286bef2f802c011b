//! Three shardpool processes share a 16-partition JetStream stream; one is
//! killed with SIGKILL mid-stream (or, in the second test, stopped with
//! SIGSTOP for 2.5 lease TTLs and continued; in the third, the server is
//! restarted halfway instead). The processes finish the stream, and:
//!
//! - after de-duplication by stream sequence, every published event was
//!   handled, with its own key and value, and the per-key totals equal the
//!   input exactly (at-least-once, never lost);
//! - within each process, each key was handled by exactly one worker, the
//!   one the pool's partitioner picks;
//! - each event was handled by a process that held its partition's lease at
//!   the time: under an epoch that process had acquired, inside that lease's
//!   lifetime, and no two leases on one partition overlapped;
//! - the victim's partitions were taken over by the others.
//!
//! Needs `nats-server` (Debian: `apt-get install nats-server`). Without it
//! the tests are skipped with a message, unless `SHARDPOOL_REQUIRE_SERVERS=1`
//! (CI), which makes a missing server a failure. Everything binds
//! 127.0.0.1; the server and the processes are killed when the test ends,
//! whatever the outcome.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use shardpool::partitioners::{key_hash, HashPartitioner, Partitioner};
use shardpool_cluster::event;
use shardpool_cluster::layout::{Layout, Timing};
use shardpool_cluster::record::{self, Handled, LeaseChange, LeaseRecord};
use shardpool_cluster::server::NatsServer;
use shardpool_cluster::{mapping, publish};

use common::{runtime, server_or_skip, signal, wait_for, Processes};

const PARTITIONS: u32 = 16;
const PROCESSES: u32 = 3;
const EVENTS: u64 = 200_000;
const KEYS: u64 = 2_000;
const WORKERS: usize = 2;
const VICTIM: u32 = 1;
/// The whole test, on a loaded 2-core machine; each wait checks it.
const WATCHDOG: Duration = Duration::from_secs(170);

#[test]
fn server_partition_mapping_agrees_with_nats_partition() {
    let Some(server) = server_or_skip(
        "server_partition_mapping_agrees_with_nats_partition",
        PARTITIONS,
    ) else {
        return;
    };
    runtime().block_on(async {
        let client = async_nats::connect(server.addr()).await.unwrap();
        let keys: Vec<String> = (0..5000)
            .map(|i| format!("k{i}"))
            .chain(["user-42", "orders", "a_b-c", "x"].map(String::from))
            .collect();
        let check = mapping::check(&client, &keys, PARTITIONS).await.unwrap();
        assert_eq!(check.checked, keys.len());
        assert_eq!(check.mismatches, [], "server vs nats_partition");
    });
}

/// Lines of the handled-event logs written by `process`.
fn handled_lines(dir: &Path, process: u32) -> usize {
    let tag = format!(" {process} ");
    (0..PARTITIONS)
        .map(|p| {
            fs::read_to_string(record::handled_log(dir, p))
                .map(|text| {
                    text.lines()
                        .filter(|line| {
                            // `H seq partition epoch key value process worker at`
                            let fields: Vec<&str> = line.splitn(8, ' ').collect();
                            fields.len() == 8 && format!(" {} ", fields[6]) == tag
                        })
                        .count()
                })
                .unwrap_or(0)
        })
        .sum()
}

/// What happens to the victim mid-stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// SIGKILL: no clean-up at all; its leases expire.
    Kill,
    /// SIGSTOP for this long, then SIGCONT: it resumes with events in its
    /// queues under leases the others have taken over meanwhile.
    Stop(Duration),
    /// Not the victim: the server is restarted (SIGTERM, start again on the
    /// same port and store) once everything is published.
    RestartServer,
}

#[test]
fn three_processes_survive_a_sigkill() {
    let Some(server) = server_or_skip("three_processes_survive_a_sigkill", PARTITIONS) else {
        return;
    };
    three_processes(&mut { server }, Fault::Kill);
}

/// A stall (GC pause, stopped container, slow host) past the lease TTL:
/// stopped for 2.5 × the TTL, the victim must not handle, on resuming,
/// what it had fetched under leases that expired meanwhile.
#[test]
fn three_processes_survive_a_sigstop() {
    let Some(server) = server_or_skip("three_processes_survive_a_sigstop", PARTITIONS) else {
        return;
    };
    three_processes(
        &mut { server },
        Fault::Stop(Timing::default().lease_ttl * 5 / 2),
    );
}

/// The server restarts mid-stream: every process loses it, its leases pass
/// their deadlines, and it must reconnect, claim again and finish, with the
/// leases (on file storage) never overlapping.
#[test]
fn three_processes_survive_a_server_restart() {
    let Some(server) = server_or_skip("three_processes_survive_a_server_restart", PARTITIONS)
    else {
        return;
    };
    three_processes(&mut { server }, Fault::RestartServer);
}

/// One three-process run at a time: two at once (cargo runs tests in
/// parallel) would put six processes, two servers and two publishers on a
/// machine that may have two CPUs.
static ONE_RUN: Mutex<()> = Mutex::new(());

fn three_processes(server: &mut NatsServer, fault: Fault) {
    let _one_run = ONE_RUN.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let dir = server.dir().join("run");
    let logs = dir.join("logs");
    fs::create_dir_all(&logs).unwrap();
    let layout = Layout::new("events", PARTITIONS).unwrap();
    let timing = Timing::default(); // lease TTL 3 s, ack wait 2 s
    let rt = runtime();
    let _in_runtime = rt.enter(); // async-nats spawns tasks on creation
    let client = rt.block_on(async_nats::connect(server.addr())).unwrap();
    // A publish ack may take long on a loaded machine: wait 30 s, not the
    // client's default 5 s, before calling it failed.
    let js = async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(30))
        .build(client);
    let (_, kv) = rt.block_on(layout.setup(&js, &timing)).unwrap();

    // Three processes of the example's program.
    let bin = env!("CARGO_BIN_EXE_shardpool-jetstream");
    let mut processes = Processes(Vec::new());
    for process in 0..PROCESSES {
        let out = fs::File::create(dir.join(format!("p{process}.out"))).unwrap();
        let err = fs::File::create(dir.join(format!("p{process}.err"))).unwrap();
        let child = Command::new(bin)
            .args(["--nats", &server.addr(), "--process", &process.to_string()])
            .args([
                "--of",
                &PROCESSES.to_string(),
                "--partitions",
                &PARTITIONS.to_string(),
            ])
            .args([
                "--workers",
                &WORKERS.to_string(),
                "--no-pin",
                "--lease-ttl",
                "3s",
            ])
            .args(["--ack-wait", "2s", "--log-dir"])
            .arg(&logs)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn shardpool-jetstream");
        processes.0.push(Some(child));
    }

    // Every partition leased, every process a member.
    wait_for("all partitions leased", started, WATCHDOG, || {
        rt.block_on(async {
            for p in 0..PARTITIONS {
                if !matches!(kv.get(format!("partition.{p}")).await, Ok(Some(_))) {
                    return false;
                }
            }
            for i in 0..PROCESSES {
                if !matches!(kv.get(format!("member.{i}")).await, Ok(Some(_))) {
                    return false;
                }
            }
            true
        })
    });

    // Publish all events in the background; hit the victim while it is
    // busy with them. A server restart would lose publishes in flight: then
    // the publisher stops halfway (`paused`) until the restart is done
    // (`resume`), and the processes consume the first half meanwhile.
    let restart = fault == Fault::RestartServer;
    let (paused_tx, paused_rx) = tokio::sync::oneshot::channel::<()>();
    let (resume_tx, resume_rx) = tokio::sync::oneshot::channel::<()>();
    let publisher = {
        let (js, layout) = (js.clone(), layout.clone());
        rt.spawn(async move {
            let mut seqs: Vec<u64> = Vec::with_capacity(EVENTS as usize);
            let half = if restart { EVENTS / 2 } else { EVENTS };
            for range in [0..half, half..EVENTS] {
                if range.is_empty() {
                    break;
                }
                if range.start > 0 {
                    let _ = paused_tx.send(());
                    let _ = resume_rx.await;
                    let mut rest = Vec::new();
                    let events = range.map(|i| event::nth(i, KEYS));
                    publish::publish_events(&js, &layout, events, 1024, |seq| rest.push(seq))
                        .await
                        .unwrap();
                    seqs.extend(rest);
                    break;
                }
                let events = range.map(|i| event::nth(i, KEYS));
                publish::publish_events(&js, &layout, events, 1024, |seq| seqs.push(seq))
                    .await
                    .unwrap();
            }
            assert_eq!(seqs.len() as u64, EVENTS);
            seqs
        })
    };
    let victim_share = EVENTS / u64::from(PROCESSES);
    if restart {
        rt.block_on(paused_rx).expect("publisher paused halfway");
    }
    wait_for("the victim to handle events", started, WATCHDOG, || {
        handled_lines(&logs, VICTIM) as u64 >= victim_share / 4 || publisher.is_finished()
    });
    let hit_at = record::now_ns();
    let killed_at = match fault {
        Fault::Kill => {
            let mut victim = processes.0[VICTIM as usize].take().unwrap();
            victim.kill().unwrap(); // SIGKILL
            victim.wait().unwrap();
            Some(hit_at)
        }
        Fault::Stop(pause) => {
            let victim = processes.0[VICTIM as usize].as_ref().unwrap();
            signal(victim, libc::SIGSTOP);
            std::thread::sleep(pause);
            signal(victim, libc::SIGCONT);
            None
        }
        Fault::RestartServer => {
            server.restart().expect("restart nats-server");
            let _ = resume_tx.send(());
            None
        }
    };
    eprintln!(
        "{fault:?} (victim {VICTIM}) after it handled {} events ({:.1} s in)",
        handled_lines(&logs, VICTIM),
        started.elapsed().as_secs_f64(),
    );
    let seqs = rt.block_on(publisher).unwrap();
    rt.block_on(publish::publish_end(&js, &layout, EVENTS))
        .unwrap();

    // The others (and a stopped victim, continued) finish the stream and
    // exit by themselves.
    for (process, child) in processes.0.iter_mut().enumerate() {
        let Some(child) = child else { continue };
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() >= WATCHDOG {
                let errs: Vec<String> = (0..PROCESSES)
                    .map(|p| {
                        let err =
                            fs::read_to_string(dir.join(format!("p{p}.err"))).unwrap_or_default();
                        let tail: Vec<&str> = err.lines().rev().take(15).collect();
                        format!("p{p}.err (last lines, newest first):\n{}", tail.join("\n"))
                    })
                    .collect();
                // Each call bounded: a broken server must not hold the
                // failure report up.
                let state = rt.block_on(async {
                    let mut out = String::new();
                    let stream =
                        tokio::time::timeout(Duration::from_secs(2), js.get_stream(&layout.stream))
                            .await
                            .map_err(|_| "timed out".to_string())
                            .and_then(|r| r.map_err(|e| e.to_string()));
                    let Ok(stream) = stream else {
                        return format!("stream: {:?}", stream.err());
                    };
                    for p in 0..PARTITIONS {
                        let bound = Duration::from_secs(1);
                        let info =
                            tokio::time::timeout(bound, stream.consumer_info(layout.durable(p)))
                                .await
                                .map_err(|_| "timed out".to_string())
                                .and_then(|r| r.map_err(|e| e.to_string()));
                        let lease = tokio::time::timeout(bound, kv.entry(format!("partition.{p}")))
                            .await
                            .map_err(|_| "timed out".to_string())
                            .and_then(|r| r.map_err(|e| e.to_string()));
                        out += &format!(
                            "p{p}: {:?} lease {:?}\n",
                            info.map(|i| (i.num_pending, i.num_ack_pending, i.num_waiting)),
                            lease.map(|e| e.map(|e| (e.revision, e.operation)))
                        );
                    }
                    out
                });
                panic!(
                    "watchdog: gave up waiting for process {process} to finish\n{}\n{state}",
                    errs.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let status = child.wait().unwrap();
        let out = fs::read_to_string(dir.join(format!("p{process}.out"))).unwrap();
        let err = fs::read_to_string(dir.join(format!("p{process}.err"))).unwrap();
        eprint!("{out}");
        assert!(
            status.success(),
            "process {process}: {status}\n{out}\n{err}"
        );
    }
    eprintln!("stream done {:.1} s in", started.elapsed().as_secs_f64());

    let takeover_after = (fault != Fault::RestartServer).then_some(hit_at);
    check_logs(&logs, &layout, &seqs, killed_at, takeover_after);
}

/// A lease as the logs show it.
struct Lease {
    process: u32,
    acquired: u64,
    /// Released or lost; `None` if the process ended (or was killed) holding it.
    ended: Option<u64>,
}

/// Checks the logs; `killed_at`: when the victim was SIGKILLed (its leases
/// then end at its last handled event), `None` if it ran to the end;
/// `takeover_after`: when the victim was hit (its home partitions must be
/// taken over after), if it was.
fn check_logs(
    logs: &Path,
    layout: &Layout,
    seqs: &[u64],
    killed_at: Option<u64>,
    takeover_after: Option<u64>,
) {
    // What was published: sequence → (key, value), and the totals per key.
    assert_eq!(seqs.len() as u64, EVENTS);
    let mut input: HashMap<u64, (String, u64)> = HashMap::with_capacity(seqs.len());
    let mut expected: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (i, &seq) in seqs.iter().enumerate() {
        let (key, value) = event::nth(i as u64, KEYS);
        let total = expected.entry(key.clone()).or_default();
        total.0 += 1;
        total.1 += value;
        assert!(
            input.insert(seq, (key, value)).is_none(),
            "sequence {seq} twice"
        );
    }

    // The leases each process logged: (partition, epoch) → lease.
    let mut leases: HashMap<(u32, u64), Lease> = HashMap::new();
    for process in 0..PROCESSES {
        let text = fs::read_to_string(record::lease_log(logs, process)).unwrap_or_default();
        for line in text.lines() {
            let r = LeaseRecord::parse(line).unwrap_or_else(|| panic!("bad lease line {line:?}"));
            match r.change {
                LeaseChange::Acquired => {
                    let lease = Lease {
                        process,
                        acquired: r.at_ns,
                        ended: None,
                    };
                    assert!(
                        leases.insert((r.partition, r.epoch), lease).is_none(),
                        "epoch {} twice",
                        r.epoch
                    );
                }
                LeaseChange::Released | LeaseChange::Lost => {
                    let lease = leases
                        .get_mut(&(r.partition, r.epoch))
                        .expect("ended lease was acquired");
                    assert_eq!(lease.process, process, "a lease ended by another process");
                    lease.ended = Some(r.at_ns);
                }
            }
        }
    }

    // Every handled event, from each partition's fenced output file, in
    // the order the sink accepted them: never an older lease epoch after a
    // newer one (the sink refuses such a write).
    let mut handled: Vec<(u32, Handled)> = Vec::new();
    for p in 0..PARTITIONS {
        let text = fs::read_to_string(record::handled_log(logs, p)).unwrap_or_default();
        let mut newest = 0;
        for line in text.lines() {
            let h = Handled::parse(line).unwrap_or_else(|| panic!("bad handled line {line:?}"));
            assert_eq!(
                h.partition, p,
                "a line of partition {} in {p}'s log",
                h.partition
            );
            assert!(
                h.epoch >= newest,
                "partition {p}: output of epoch {} accepted after epoch {newest}",
                h.epoch
            );
            newest = h.epoch;
            assert!(h.process < PROCESSES && h.worker < WORKERS, "{line}");
            handled.push((h.process, h));
        }
    }

    // De-duplicated by sequence: exactly the input, with its own key and value.
    let mut seen: HashSet<u64> = HashSet::with_capacity(seqs.len());
    let mut totals: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut duplicates = 0;
    for (_, h) in &handled {
        let (key, value) = input
            .get(&h.seq)
            .unwrap_or_else(|| panic!("handled unknown sequence {}", h.seq));
        assert_eq!((&h.key, h.value), (key, *value), "sequence {}", h.seq);
        if seen.insert(h.seq) {
            let total = totals.entry(h.key.clone()).or_default();
            total.0 += 1;
            total.1 += h.value;
        } else {
            duplicates += 1;
        }
    }
    assert_eq!(
        seen.len(),
        seqs.len(),
        "events never handled: {}",
        seqs.len() - seen.len()
    );
    assert_eq!(totals, expected, "per-key totals after de-duplication");

    // One worker per key in each process: the partitioner's.
    let mut worker_of: HashMap<(u32, &str), usize> = HashMap::new();
    for (process, h) in &handled {
        let expected_worker = HashPartitioner.shard(key_hash(&h.key), WORKERS);
        assert_eq!(
            h.worker, expected_worker,
            "key {} in process {process}",
            h.key
        );
        let w = *worker_of
            .entry((*process, h.key.as_str()))
            .or_insert(h.worker);
        assert_eq!(
            w, h.worker,
            "key {} handled by two workers of process {process}",
            h.key
        );
    }

    // Handled by the holder of its partition's lease, at the time.
    let mut last_handled: HashMap<(u32, u64), u64> = HashMap::new();
    for (process, h) in &handled {
        assert_eq!(
            h.partition,
            layout.partition_of(&h.key),
            "key {} in the wrong partition",
            h.key
        );
        let lease = leases
            .get(&(h.partition, h.epoch))
            .unwrap_or_else(|| panic!("sequence {}: epoch {} never acquired", h.seq, h.epoch));
        assert_eq!(
            lease.process, *process,
            "sequence {}: handled under another process's lease",
            h.seq
        );
        assert!(
            h.at_ns >= lease.acquired,
            "sequence {}: handled before its lease",
            h.seq
        );
        if let Some(ended) = lease.ended {
            assert!(
                h.at_ns <= ended,
                "sequence {}: handled after its lease ended",
                h.seq
            );
        }
        let last = last_handled.entry((h.partition, h.epoch)).or_default();
        *last = (*last).max(h.at_ns);
    }
    // Handled after another lease on its partition began: the stall case
    // (a stopped process handling what it had queued on resuming).
    let mut acquired_by_partition: HashMap<u32, Vec<u64>> = HashMap::new();
    for (&(partition, _), lease) in &leases {
        acquired_by_partition
            .entry(partition)
            .or_default()
            .push(lease.acquired);
    }
    // Leases on one partition are ordered by epoch (the bucket's revision),
    // not by their logged times, which come from different processes.
    let under_taken_leases: Vec<String> = handled
        .iter()
        .filter_map(|(process, h)| {
            let lease = &leases[&(h.partition, h.epoch)];
            let later = leases.iter().find(|(&(partition, epoch), other)| {
                partition == h.partition && epoch > h.epoch && other.acquired <= h.at_ns
            })?;
            Some(format!(
                "sequence {} of partition {} handled by process {process} under epoch {} \
                 (acquired {}, ended {:?}) at {}, after process {} acquired epoch {} at {}",
                h.seq,
                h.partition,
                h.epoch,
                lease.acquired,
                lease.ended,
                h.at_ns,
                later.1.process,
                later.0 .1,
                later.1.acquired
            ))
        })
        .collect();
    assert!(
        under_taken_leases.is_empty(),
        "{} events handled under leases others already held, e.g.\n{}",
        under_taken_leases.len(),
        under_taken_leases[..under_taken_leases.len().min(5)].join("\n")
    );
    for p in 0..PARTITIONS {
        let mut spans: Vec<(u64, u64, u64, u32)> = leases
            .iter()
            .filter(|((partition, _), _)| *partition == p)
            .map(|(&(_, epoch), lease)| {
                let end = lease.ended.unwrap_or_else(|| {
                    if lease.process == VICTIM && killed_at.is_some() {
                        // Killed holding it: it ended at its last event.
                        last_handled
                            .get(&(p, epoch))
                            .copied()
                            .unwrap_or(lease.acquired)
                    } else {
                        u64::MAX
                    }
                });
                (epoch, lease.acquired, end, lease.process)
            })
            .collect();
        spans.sort_unstable();
        for pair in spans.windows(2) {
            assert!(
                pair[0].2 <= pair[1].1,
                "partition {p}: the leases of processes {} and {} overlap \
                 (epoch {} ends at {}, epoch {} began by {})",
                pair[0].3,
                pair[1].3,
                pair[0].0,
                pair[0].2,
                pair[1].0,
                pair[1].1
            );
        }
    }

    // The victim's home partitions were taken over by the others.
    if let Some(hit_at) = takeover_after {
        for p in (0..PARTITIONS).filter(|p| p % PROCESSES == VICTIM) {
            let taken = leases.iter().any(|(&(partition, _), l)| {
                partition == p && l.process != VICTIM && l.acquired > hit_at
            });
            assert!(
                taken,
                "partition {p} was not taken over after the victim was hit"
            );
        }
    }
    eprintln!(
        "{} handled lines, {} events, {duplicates} handled twice (redelivered after the fault)",
        handled.len(),
        seen.len()
    );
}
