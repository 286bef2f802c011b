//! Reading the topology from Linux sysfs, the default source: it needs no
//! system package and no `unsafe`, and it is what `lscpu` and hwloc read
//! too.
//!
//! Files read, under a root that is `/sys` on a real machine and a fixture
//! directory in tests:
//!
//! - `devices/system/cpu/online`: the online CPUs (if missing: every
//!   `cpuN` directory whose `online` file is not `0`). Offline CPUs are
//!   left out of the topology: they cannot run a thread.
//! - `devices/system/cpu/cpuN/topology/{physical_package_id, core_id,
//!   thread_siblings_list}` (`core_cpus_list` on newer kernels is read when
//!   `thread_siblings_list` is missing). A missing file degrades to
//!   package 0 / a core of its own, never an error.
//! - `devices/system/node/online` (or the `nodeN` directories) and each
//!   `nodeN/{cpulist,distance}`. When the kernel exposes no node directory
//!   (`CONFIG_NUMA=n`, some containers), every CPU's node is `None` rather
//!   than a made-up node 0.
//!
//! The "cpulist" syntax (`0-3,8-11`, `0`, empty, with a trailing newline)
//! is parsed by [`parse_cpulist`] and produced by [`format_cpulist`].

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::topology::{CoreKey, Node, RawCpu, Topology};

/// Parses the kernel's cpulist syntax: comma-separated ids and inclusive
/// ranges (`0-3,8-11`), optionally with a stride (`0-7:2`, as
/// `bitmap_parselist` accepts), surrounding whitespace ignored, empty =
/// no CPU. Returns sorted, deduplicated ids.
pub(crate) fn parse_cpulist(text: &str) -> Result<Vec<usize>, String> {
    let mut ids = Vec::new();
    let text = text.trim();
    if text.is_empty() {
        return Ok(ids);
    }
    for part in text.split(',') {
        let part = part.trim();
        let number = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| format!("`{s}` is not a CPU number in cpulist `{text}`"))
        };
        let (range, stride) = match part.split_once(':') {
            Some((range, stride)) => {
                // `a-b:used/group`: `used` CPUs out of every `group`.
                let (used, group) = match stride.split_once('/') {
                    Some((u, g)) => (number(u)?, number(g)?),
                    None => (1, number(stride)?),
                };
                if group == 0 || used == 0 || used > group {
                    return Err(format!("bad stride `{stride}` in cpulist `{text}`"));
                }
                (range, Some((used, group)))
            }
            None => (part, None),
        };
        let (first, last) = match range.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => {
                let n = number(range)?;
                (n, n)
            }
        };
        if first > last {
            return Err(format!(
                "range `{range}` runs backwards in cpulist `{text}`"
            ));
        }
        if last - first > MAX_CPUS {
            return Err(format!("range `{range}` is too large in cpulist `{text}`"));
        }
        let (used, group) = stride.unwrap_or((1, 1));
        ids.extend((first..=last).filter(|id| (id - first) % group < used));
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// More CPUs than any kernel supports (`NR_CPUS` ≤ 8192 today): a bound
/// that keeps a corrupt file from allocating without end.
const MAX_CPUS: usize = 1 << 16;

/// Writes sorted ids in cpulist syntax: `[0, 1, 2, 3, 8]` → `0-3,8`.
/// Empty → `none`.
pub(crate) fn format_cpulist(ids: &[usize]) -> String {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return String::from("none");
    }
    let mut out = Vec::new();
    let mut start = ids[0];
    let mut prev = ids[0];
    for &id in &ids[1..] {
        if id != prev + 1 {
            out.push(range_text(start, prev));
            start = id;
        }
        prev = id;
    }
    out.push(range_text(start, prev));
    out.join(",")
}

fn range_text(a: usize, b: usize) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("{a}-{b}")
    }
}

fn invalid(path: &Path, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {why}", path.display()),
    )
}

/// Reads a file; `Ok(None)` when it does not exist.
fn read_optional(path: &Path) -> io::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

fn read_cpulist(path: &Path) -> io::Result<Option<Vec<usize>>> {
    match read_optional(path)? {
        Some(text) => parse_cpulist(&text).map(Some).map_err(|e| invalid(path, e)),
        None => Ok(None),
    }
}

/// A number file such as `core_id`. Negative values (`-1` = unknown on
/// some platforms) read as `None`.
fn read_number(path: &Path) -> io::Result<Option<usize>> {
    match read_optional(path)? {
        Some(text) => {
            let n: i64 = text
                .trim()
                .parse()
                .map_err(|_| invalid(path, format!("`{}` is not a number", text.trim())))?;
            Ok(usize::try_from(n).ok())
        }
        None => Ok(None),
    }
}

/// The ids `N` of the entries `{prefix}N` of `dir`, sorted; empty when
/// `dir` does not exist.
fn numbered_entries(dir: &Path, prefix: &str) -> io::Result<Vec<usize>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name.strip_prefix(prefix).and_then(|s| s.parse().ok()) {
            ids.push(n);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// The online CPUs listed by `cpu_dir`.
fn online_cpus(cpu_dir: &Path) -> io::Result<Vec<usize>> {
    if let Some(ids) = read_cpulist(&cpu_dir.join("online"))? {
        return Ok(ids);
    }
    // No `online` file: every cpuN directory that does not say it is off.
    let mut ids = Vec::new();
    for id in numbered_entries(cpu_dir, "cpu")? {
        let flag = read_optional(&cpu_dir.join(format!("cpu{id}/online")))?;
        if flag.as_deref().map(str::trim) != Some("0") {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// The NUMA nodes under `node_dir`: `(id, cpulist, distances)`, sorted by
/// id. Distances are kept only when there is one per node (the kernel
/// prints one per online node, in id order).
fn read_nodes(node_dir: &Path) -> io::Result<Vec<(Node, Vec<usize>)>> {
    let ids = match read_cpulist(&node_dir.join("online"))? {
        Some(ids) => ids,
        None => numbered_entries(node_dir, "node")?,
    };
    let mut nodes = Vec::with_capacity(ids.len());
    for &id in &ids {
        let dir = node_dir.join(format!("node{id}"));
        if !dir.is_dir() {
            // Listed online but not exposed: nothing to read.
            continue;
        }
        let cpus = read_cpulist(&dir.join("cpulist"))?.unwrap_or_default();
        let distance_path = dir.join("distance");
        let mut distances = match read_optional(&distance_path)? {
            Some(text) => text
                .split_whitespace()
                .map(|d| {
                    d.parse::<u32>()
                        .map_err(|_| invalid(&distance_path, format!("`{d}` is not a distance")))
                })
                .collect::<io::Result<Vec<u32>>>()?,
            None => Vec::new(),
        };
        if distances.len() != ids.len() {
            distances.clear();
        }
        nodes.push((
            Node {
                id,
                cpus: Vec::new(),
                distances,
            },
            cpus,
        ));
    }
    // A node listed online whose directory is missing breaks the
    // column-to-node mapping of the distances: drop them all.
    if nodes.len() != ids.len() {
        for (node, _) in &mut nodes {
            node.distances.clear();
        }
    }
    Ok(nodes)
}

/// Reads the whole topology under `root` (see the module documentation).
pub(crate) fn read_topology(root: &Path) -> io::Result<Topology> {
    let system: PathBuf = root.join("devices/system");
    let cpu_dir = system.join("cpu");
    let online = online_cpus(&cpu_dir)?;
    if online.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{}: no online CPU found", cpu_dir.display()),
        ));
    }

    let nodes = read_nodes(&system.join("node"))?;
    let node_of = |cpu: usize| {
        nodes
            .iter()
            .find(|(_, cpus)| cpus.binary_search(&cpu).is_ok())
            .map(|(n, _)| n.id)
    };

    let mut raw = Vec::with_capacity(online.len());
    for &id in &online {
        let topo = cpu_dir.join(format!("cpu{id}/topology"));
        let package = read_number(&topo.join("physical_package_id"))?.unwrap_or(0);
        let siblings = match read_cpulist(&topo.join("thread_siblings_list"))? {
            Some(s) => Some(s),
            None => read_cpulist(&topo.join("core_cpus_list"))?,
        };
        let core = match (siblings, read_number(&topo.join("core_id"))?) {
            (Some(s), _) if !s.is_empty() => CoreKey::FirstThread(s[0].min(id)),
            (_, Some(core_id)) => CoreKey::PackageCore(package, core_id),
            _ => CoreKey::Alone(id),
        };
        raw.push(RawCpu {
            id,
            core,
            package,
            node: node_of(id),
        });
    }
    Ok(Topology::assemble(
        raw,
        nodes.into_iter().map(|(n, _)| n).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::Cpu;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/sysfs")
            .join(name)
    }

    #[test]
    fn cpulist_syntax() {
        assert_eq!(
            parse_cpulist("0-3,8-11").unwrap(),
            vec![0, 1, 2, 3, 8, 9, 10, 11]
        );
        assert_eq!(parse_cpulist("0").unwrap(), vec![0]);
        assert_eq!(parse_cpulist("0\n").unwrap(), vec![0]);
        assert_eq!(parse_cpulist("").unwrap(), Vec::<usize>::new());
        assert_eq!(parse_cpulist("\n").unwrap(), Vec::<usize>::new());
        assert_eq!(parse_cpulist("  \t\n").unwrap(), Vec::<usize>::new());
        assert_eq!(parse_cpulist(" 2, 0-1 \n").unwrap(), vec![0, 1, 2]);
        assert_eq!(parse_cpulist("5,1-2,2").unwrap(), vec![1, 2, 5]);
        assert_eq!(parse_cpulist("0-7:2").unwrap(), vec![0, 2, 4, 6]);
        assert_eq!(parse_cpulist("0-7:2/4").unwrap(), vec![0, 1, 4, 5]);
        for bad in ["3-1", "a", "0-", "-1", "1,,2", "0-3:0", "0-999999999"] {
            assert!(parse_cpulist(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn cpulist_round_trip() {
        assert_eq!(format_cpulist(&[0, 1, 2, 3, 8, 9, 10, 11]), "0-3,8-11");
        assert_eq!(format_cpulist(&[5]), "5");
        assert_eq!(format_cpulist(&[3, 1, 0]), "0-1,3");
        assert_eq!(format_cpulist(&[]), "none");
        let ids = vec![0, 2, 3, 4, 7, 9, 10];
        assert_eq!(parse_cpulist(&format_cpulist(&ids)).unwrap(), ids);
    }

    /// 2 packages × 1 node × 2 cores × 2 threads, CPU 7 offline
    /// (`online` = `0-6`), distances 10/21.
    #[test]
    fn two_nodes_with_smt_and_an_offline_cpu() {
        let t = Topology::from_sysfs(&fixture("numa2-smt")).unwrap();
        let ids: Vec<_> = t.cpus.iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![0, 1, 2, 3, 4, 5, 6], "offline CPU 7 left out");
        assert_eq!(t.core_count(), 4);
        assert_eq!(t.package_count(), 2);
        assert_eq!(t.siblings(0), vec![0, 4]);
        assert_eq!(t.siblings(3), vec![3], "sibling 7 is offline");
        assert_eq!(
            t.cpu(6).unwrap(),
            &Cpu {
                id: 6,
                core: 2,
                package: 1,
                node: Some(1)
            }
        );
        assert_eq!(t.cpu(1).unwrap().node, Some(0));
        assert_eq!(t.node(0).unwrap().cpus, vec![0, 1, 4, 5]);
        assert_eq!(t.node(1).unwrap().cpus, vec![2, 3, 6]);
        assert_eq!(t.distance(0, 1), Some(21));
        assert_eq!(t.distance(1, 1), Some(10));
    }

    /// No `devices/system/node` at all: nodes unknown, not node 0.
    #[test]
    fn missing_node_directories_mean_no_node() {
        let t = Topology::from_sysfs(&fixture("no-numa")).unwrap();
        assert_eq!(t.cpus.len(), 2);
        assert!(t.nodes.is_empty());
        assert!(t.cpus.iter().all(|c| c.node.is_none()));
        assert_eq!(t.core_count(), 2);
    }

    /// Nodes 0 and 2 (no node 1), a CPU without topology files, no
    /// `cpu/online` file (CPU 3 says `online` = 0).
    #[test]
    fn sparse_nodes_and_missing_files() {
        let t = Topology::from_sysfs(&fixture("sparse-nodes")).unwrap();
        let ids: Vec<_> = t.cpus.iter().map(|c| c.id).collect();
        assert_eq!(ids, vec![0, 1, 2], "cpu3/online is 0");
        assert_eq!(t.nodes.iter().map(|n| n.id).collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(t.cpu(2).unwrap().node, Some(2));
        assert_eq!(
            t.cpu(2).unwrap().package,
            0,
            "missing package file reads as 0"
        );
        assert_eq!(t.core_count(), 3);
        assert_eq!(t.distance(0, 2), Some(20));
        assert_eq!(t.distance(2, 0), Some(20));
        assert_eq!(t.distance(0, 1), None);
    }

    #[test]
    fn single_cpu() {
        let t = Topology::from_sysfs(&fixture("single")).unwrap();
        assert_eq!(
            t.cpus,
            vec![Cpu {
                id: 0,
                core: 0,
                package: 0,
                node: Some(0)
            }]
        );
        assert_eq!(t.distance(0, 0), Some(10));
    }

    #[test]
    fn unreadable_or_malformed_trees_are_errors_not_panics() {
        assert!(Topology::from_sysfs(&fixture("does-not-exist")).is_err());

        let dir = std::env::temp_dir().join(format!("placement-bad-{}", std::process::id()));
        let cpu = dir.join("devices/system/cpu");
        fs::create_dir_all(cpu.join("cpu0/topology")).unwrap();
        fs::write(cpu.join("online"), "0-x\n").unwrap();
        let err = Topology::from_sysfs(&dir).unwrap_err();
        assert!(err.to_string().contains("online"), "{err}");

        fs::write(cpu.join("online"), "0\n").unwrap();
        fs::write(cpu.join("cpu0/topology/core_id"), "zero\n").unwrap();
        assert!(Topology::from_sysfs(&dir).is_err());

        fs::write(cpu.join("cpu0/topology/core_id"), "-1\n").unwrap();
        let t = Topology::from_sysfs(&dir).unwrap();
        assert_eq!(t.cpus.len(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// This machine, as the brief describes it: 2 CPUs on node 0, no SMT.
    /// Only checks what every Linux machine has, plus the shape when there
    /// are exactly 2 CPUs.
    #[cfg(target_os = "linux")]
    #[test]
    fn this_machine() {
        let t = Topology::from_sysfs(Path::new("/sys")).unwrap();
        assert!(!t.cpus.is_empty());
        if !t.nodes.is_empty() {
            assert!(t.cpus.iter().all(|c| c.node.is_some()));
        }
    }
}
