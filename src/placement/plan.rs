//! The planner: where each worker runs, as a pure function of the machine
//! ([`Topology`]), the CPUs this process may use and the configuration, so
//! that every policy is tested on machines we do not have. The policies are
//! described in the [module documentation](super).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::config::{Affinity, NumaFill};
use crate::Error;

use super::sysfs;
use super::topology::Topology;

/// Where one worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The CPU it is pinned to; `None` when unpinned.
    pub cpu: Option<usize>,
    /// The NUMA node of that CPU, if known.
    pub numa_node: Option<usize>,
}

impl Slot {
    /// An unpinned slot.
    pub const UNPINNED: Slot = Slot {
        cpu: None,
        numa_node: None,
    };
}

/// `cpu3/node1`, `cpu3` (node unknown) or `unpinned`.
impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.cpu, self.numa_node) {
            (Some(cpu), Some(node)) => write!(f, "cpu{cpu}/node{node}"),
            (Some(cpu), None) => write!(f, "cpu{cpu}"),
            (None, Some(node)) => write!(f, "node{node}"),
            (None, None) => f.write_str("unpinned"),
        }
    }
}

/// A printable summary of a plan, logged once when a pool starts:
/// `2 workers: w0→cpu0/node0, w1→cpu1/node0`.
#[derive(Debug, Clone, Copy)]
pub struct Placement<'a> {
    slots: &'a [Slot],
}

impl<'a> Placement<'a> {
    /// Wraps the slots returned by [`plan`].
    pub fn new(slots: &'a [Slot]) -> Self {
        Placement { slots }
    }

    /// The slots, one per worker.
    pub fn slots(&self) -> &'a [Slot] {
        self.slots
    }
}

impl fmt::Display for Placement<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.slots.len();
        write!(f, "{n} worker{}:", if n == 1 { "" } else { "s" })?;
        for (i, slot) in self.slots.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            write!(f, "{sep}w{i}→{slot}")?;
        }
        Ok(())
    }
}

/// One physical core restricted to the allowed CPUs.
#[derive(Debug)]
struct AllowedCore {
    node: Option<usize>,
    /// Its allowed hardware threads, sorted; never empty.
    cpus: Vec<usize>,
}

/// The allowed CPUs grouped by physical core, in the order of their lowest
/// allowed CPU. An allowed CPU the topology does not know (a topology from
/// a fallback source) counts as a core of its own with no node.
fn allowed_cores(topology: &Topology, allowed: &BTreeSet<usize>) -> Vec<AllowedCore> {
    #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    enum Key {
        Core(usize),
        Unknown(usize),
    }
    let mut order: Vec<Key> = Vec::new();
    let mut cores: BTreeMap<Key, AllowedCore> = BTreeMap::new();
    for &id in allowed {
        let (key, node) = match topology.cpu(id) {
            Some(c) => (Key::Core(c.core), c.node),
            None => (Key::Unknown(id), None),
        };
        let core = cores.entry(key).or_insert_with(|| {
            order.push(key);
            AllowedCore {
                node,
                cpus: Vec::new(),
            }
        });
        core.cpus.push(id);
    }
    order.into_iter().filter_map(|k| cores.remove(&k)).collect()
}

/// The order in which NUMA nodes are visited. Both start at the lowest
/// node; then `Compact` goes to the node nearest to the one just filled
/// (keeping neighbouring workers close), `Spread` to the node farthest
/// from all nodes visited so far (so 2 workers on a 2-socket machine land
/// on different sockets). Ties go to the lowest id; without distances
/// this is id order. The unknown node (`None`) comes last.
fn node_order(topology: &Topology, nodes: &[Option<usize>], fill: NumaFill) -> Vec<Option<usize>> {
    let mut left: Vec<usize> = nodes.iter().flatten().copied().collect();
    let mut order: Vec<usize> = Vec::with_capacity(nodes.len());
    while !left.is_empty() {
        // Score of a candidate, lower is better.
        let score = |to: usize| -> i64 {
            let d = |from: usize| topology.distance(from, to).map(i64::from);
            match (fill, order.last()) {
                (_, None) => 0,
                (NumaFill::Compact, Some(&last)) => d(last).unwrap_or(i64::MAX),
                (NumaFill::Spread, Some(_)) => {
                    // Farthest from its nearest visited node.
                    let nearest = order.iter().map(|&v| d(v).unwrap_or(0)).min().unwrap_or(0);
                    -nearest
                }
            }
        };
        let mut best = 0;
        for i in 1..left.len() {
            if score(left[i]) < score(left[best]) {
                best = i;
            }
        }
        order.push(left.remove(best));
    }
    let mut order: Vec<Option<usize>> = order.into_iter().map(Some).collect();
    if nodes.contains(&None) {
        order.push(None);
    }
    order
}

/// Every allowed CPU, in the order workers take them: the first thread of
/// each core (in fill order), then the second thread of each core, and so
/// on. Each entry is `(cpu, node)`.
fn fill_order(
    topology: &Topology,
    cores: &[AllowedCore],
    fill: NumaFill,
) -> Vec<(usize, Option<usize>)> {
    // Cores per node, each node's cores in order of their lowest CPU.
    let mut by_node: BTreeMap<Option<usize>, Vec<&AllowedCore>> = BTreeMap::new();
    for core in cores {
        by_node.entry(core.node).or_default().push(core);
    }
    let present: Vec<Option<usize>> = by_node.keys().copied().collect();
    let groups: Vec<&Vec<&AllowedCore>> = node_order(topology, &present, fill)
        .iter()
        .map(|n| &by_node[n])
        .collect();
    let tiers = cores.iter().map(|c| c.cpus.len()).max().unwrap_or(0);
    let mut out = Vec::new();
    for tier in 0..tiers {
        // The `tier`-th thread of each core, grouped by node.
        let lists: Vec<Vec<(usize, Option<usize>)>> = groups
            .iter()
            .map(|g| {
                g.iter()
                    .filter_map(|c| c.cpus.get(tier).map(|&cpu| (cpu, c.node)))
                    .collect()
            })
            .collect();
        match fill {
            NumaFill::Compact => out.extend(lists.into_iter().flatten()),
            NumaFill::Spread => {
                let longest = lists.iter().map(Vec::len).max().unwrap_or(0);
                for i in 0..longest {
                    out.extend(lists.iter().filter_map(|l| l.get(i).copied()));
                }
            }
        }
    }
    out
}

/// The most workers [`plan`] accepts (with every policy): far more threads
/// than any machine runs well, low enough that a typo such as
/// `workers(usize::MAX)` is refused instead of exhausting memory.
pub const MAX_WORKERS: usize = 1 << 16;

/// Decides where each worker runs: one [`Slot`] per worker, so the
/// length of the result is the worker count.
///
/// A pure function of its arguments (see the [module documentation](super)
/// for the policies). `allowed` is the set from [`allowed_cpus`](super::allowed_cpus); order
/// and duplicates do not matter. `workers` is the configured count
/// (`None` = the default for the policy).
///
/// # Errors
///
/// [`Error::InvalidConfig`] naming `"workers"` (zero or more than
/// [`MAX_WORKERS`] workers; more pinned
/// workers than allowed CPUs; a count that disagrees with an
/// [`Affinity::Cpus`] list) or `"affinity"` (an empty or repeating CPU
/// list; a CPU that does not exist or is not allowed; no allowed CPU at
/// all for `PhysicalCores`). Never panics, never clamps silently.
pub fn plan(
    topology: &Topology,
    allowed: &[usize],
    affinity: &Affinity,
    fill: NumaFill,
    workers: Option<usize>,
) -> Result<Vec<Slot>, Error> {
    match workers {
        Some(0) => return Err(Error::invalid("workers", "must be at least 1")),
        Some(n) if n > MAX_WORKERS => {
            return Err(Error::invalid(
                "workers",
                format!("{n} workers is more than the {MAX_WORKERS} a pool can plan"),
            ))
        }
        _ => {}
    }
    let allowed: BTreeSet<usize> = allowed.iter().copied().collect();
    let allowed_list = || sysfs::format_cpulist(&allowed.iter().copied().collect::<Vec<_>>());
    let cores = allowed_cores(topology, &allowed);

    match affinity {
        Affinity::None => {
            let n = workers.unwrap_or(cores.len().max(1));
            Ok(vec![Slot::UNPINNED; n])
        }

        Affinity::Cpus(list) => {
            crate::config::check_cpu_list(list, workers)?;
            list.iter()
                .map(|&cpu| {
                    let known = topology.cpu(cpu);
                    if known.is_none() && !allowed.contains(&cpu) {
                        let online: Vec<usize> = topology.cpus.iter().map(|c| c.id).collect();
                        return Err(Error::invalid(
                            "affinity",
                            format!(
                                "CPU {cpu} does not exist or is offline (online CPUs: {})",
                                sysfs::format_cpulist(&online)
                            ),
                        ));
                    }
                    if !allowed.contains(&cpu) {
                        return Err(Error::invalid(
                            "affinity",
                            format!(
                                "CPU {cpu} is not allowed to this process (allowed CPUs: {}; \
                                 a taskset or container cpuset restricts them)",
                                allowed_list()
                            ),
                        ));
                    }
                    Ok(Slot {
                        cpu: Some(cpu),
                        numa_node: known.and_then(|c| c.node),
                    })
                })
                .collect()
        }

        Affinity::PhysicalCores => {
            if cores.is_empty() {
                return Err(Error::invalid(
                    "affinity",
                    "no CPU is allowed to this process; use Affinity::None to run unpinned",
                ));
            }
            let order = fill_order(topology, &cores, fill);
            let n = workers.unwrap_or(cores.len());
            if n > order.len() {
                return Err(Error::invalid(
                    "workers",
                    format!(
                        "{n} workers but only {} CPUs are allowed ({}); \
                         use Affinity::None to run unpinned",
                        order.len(),
                        allowed_list()
                    ),
                ));
            }
            Ok(order[..n]
                .iter()
                .map(|&(cpu, node)| Slot {
                    cpu: Some(cpu),
                    numa_node: node,
                })
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpus(slots: &[Slot]) -> Vec<usize> {
        slots.iter().map(|s| s.cpu.unwrap()).collect()
    }

    fn nodes(slots: &[Slot]) -> Vec<usize> {
        slots.iter().map(|s| s.numa_node.unwrap()).collect()
    }

    /// [`plan`] with `Affinity::PhysicalCores`, the policy most tests are
    /// about.
    fn try_physical(
        t: &Topology,
        allowed: &[usize],
        fill: NumaFill,
        workers: Option<usize>,
    ) -> Result<Vec<Slot>, Error> {
        plan(t, allowed, &Affinity::PhysicalCores, fill, workers)
    }

    /// [`try_physical`], which must succeed.
    fn physical(
        t: &Topology,
        allowed: &[usize],
        fill: NumaFill,
        workers: Option<usize>,
    ) -> Vec<Slot> {
        try_physical(t, allowed, fill, workers).unwrap()
    }

    fn refused(r: Result<Vec<Slot>, Error>) -> (&'static str, String) {
        match r {
            Err(Error::InvalidConfig { field, reason }) => (field, reason),
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    /// 2 sockets × 2 NUMA nodes × 8 cores × 2 SMT: CPUs 0-31 are the
    /// first threads (node = cpu / 8), 32-63 their siblings.
    fn big() -> (Topology, Vec<usize>) {
        (Topology::uniform(2, 2, 8, 2), (0..64).collect())
    }

    #[test]
    fn compact_fills_node_zero_first_and_skips_siblings() {
        let (t, all) = big();
        let s = physical(&t, &all, NumaFill::Compact, None);
        assert_eq!(s.len(), 32, "one worker per physical core");
        assert_eq!(
            cpus(&s),
            (0..32).collect::<Vec<_>>(),
            "no sibling (32..64) used"
        );
        assert_eq!(nodes(&s[..8]), vec![0; 8]);
        assert_eq!(nodes(&s[8..16]), vec![1; 8]);
        assert_eq!(nodes(&s[24..]), vec![3; 8]);

        let s = physical(&t, &all, NumaFill::Compact, Some(10));
        assert_eq!(cpus(&s), (0..10).collect::<Vec<_>>());
        assert_eq!(nodes(&s), [vec![0; 8], vec![1; 2]].concat());
    }

    #[test]
    fn spread_alternates_nodes() {
        let (t, all) = big();
        let s = physical(&t, &all, NumaFill::Spread, Some(8));
        // Farthest first: node 2 (other socket) right after node 0.
        assert_eq!(nodes(&s), vec![0, 2, 1, 3, 0, 2, 1, 3]);
        assert_eq!(cpus(&s), vec![0, 16, 8, 24, 1, 17, 9, 25]);
        let packages: Vec<usize> = s
            .iter()
            .map(|s| t.cpu(s.cpu.unwrap()).unwrap().package)
            .collect();
        assert_eq!(packages, vec![0, 1, 0, 1, 0, 1, 0, 1], "sockets alternate");
        // Without distances: nodes in id order.
        let mut flat = t.clone();
        flat.nodes.iter_mut().for_each(|n| n.distances.clear());
        let s = physical(&flat, &all, NumaFill::Spread, Some(8));
        assert_eq!(nodes(&s), vec![0, 1, 2, 3, 0, 1, 2, 3]);
        let s = physical(&t, &all, NumaFill::Spread, None);
        assert_eq!(s.len(), 32);
        assert!(
            s.iter().all(|s| s.cpu.unwrap() < 32),
            "no sibling while cores are left"
        );
    }

    #[test]
    fn more_workers_than_cores_use_siblings_then_refuse() {
        let (t, all) = big();
        let s = physical(&t, &all, NumaFill::Compact, Some(34));
        assert_eq!(cpus(&s[..32]), (0..32).collect::<Vec<_>>());
        assert_eq!(cpus(&s[32..]), vec![32, 33], "node 0's siblings come first");
        assert_eq!(nodes(&s[32..]), vec![0, 0]);

        let s = physical(&t, &all, NumaFill::Spread, Some(36));
        assert_eq!(cpus(&s[32..]), vec![32, 48, 40, 56]);

        let s = physical(&t, &all, NumaFill::Compact, Some(64));
        let mut used = cpus(&s);
        used.sort_unstable();
        assert_eq!(used, all, "every CPU once");

        let (field, reason) = refused(try_physical(&t, &all, NumaFill::Compact, Some(65)));
        assert_eq!(field, "workers");
        assert!(
            reason.contains("65 workers but only 64 CPUs are allowed"),
            "{reason}"
        );
        assert!(reason.contains("Affinity::None"), "{reason}");
    }

    #[test]
    fn one_core_container() {
        let (t, _) = big();
        // A cpuset of one CPU on a big machine.
        let s = physical(&t, &[5], NumaFill::Compact, None);
        assert_eq!(
            s,
            vec![Slot {
                cpu: Some(5),
                numa_node: Some(0)
            }]
        );
        // Its core with both threads: still one worker by default.
        let s = physical(&t, &[37, 5], NumaFill::Spread, None);
        assert_eq!(cpus(&s), vec![5]);
        let s = physical(&t, &[37, 5], NumaFill::Spread, Some(2));
        assert_eq!(cpus(&s), vec![5, 37]);
        // A 1-CPU machine.
        let one = Topology::flat(1);
        let s = physical(&one, &[0], NumaFill::Compact, None);
        assert_eq!(
            s,
            vec![Slot {
                cpu: Some(0),
                numa_node: None
            }]
        );
        let (field, _) = refused(try_physical(&one, &[0], NumaFill::Compact, Some(2)));
        assert_eq!(field, "workers");
        // Unpinned, any count works on it.
        let s = plan(&one, &[0], &Affinity::None, NumaFill::Compact, Some(4)).unwrap();
        assert_eq!(s, vec![Slot::UNPINNED; 4]);
        let s = plan(&one, &[0], &Affinity::None, NumaFill::Compact, None).unwrap();
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn allowed_set_excluding_cores() {
        let (t, _) = big();
        // Node 0 only half allowed (cores 4-7 and their siblings), node 1
        // not at all, nodes 2-3 fully.
        let allowed: Vec<usize> = (4..8).chain(36..40).chain(16..32).chain(48..64).collect();
        let s = physical(&t, &allowed, NumaFill::Compact, None);
        assert_eq!(s.len(), 20, "4 + 16 allowed physical cores");
        assert_eq!(cpus(&s), (4..8).chain(16..32).collect::<Vec<_>>());
        assert!(s.iter().all(|s| allowed.contains(&s.cpu.unwrap())));
        let s = physical(&t, &allowed, NumaFill::Spread, Some(6));
        assert_eq!(nodes(&s), vec![0, 2, 3, 0, 2, 3]);
        let s = physical(&t, &allowed, NumaFill::Compact, Some(6));
        assert_eq!(nodes(&s), vec![0, 0, 0, 0, 2, 2]);
        // Only siblings allowed on a core: the sibling is the core's worker.
        let s = physical(&t, &[40, 1], NumaFill::Compact, None);
        assert_eq!(cpus(&s), vec![1, 40]);
        // Default count for None follows the allowed physical cores too.
        let s = plan(&t, &allowed, &Affinity::None, NumaFill::Compact, None).unwrap();
        assert_eq!(s.len(), 20);
    }

    #[test]
    fn no_allowed_cpu() {
        let (t, _) = big();
        let (field, reason) = refused(try_physical(&t, &[], NumaFill::Compact, None));
        assert_eq!(field, "affinity");
        assert!(reason.contains("Affinity::None"));
        assert_eq!(
            plan(&t, &[], &Affinity::None, NumaFill::Compact, None)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn more_workers_than_cpus_unpinned_is_fine() {
        let t = Topology::flat(2);
        let s = plan(&t, &[0, 1], &Affinity::None, NumaFill::Compact, Some(4)).unwrap();
        assert_eq!(s, vec![Slot::UNPINNED; 4]);
        let (field, reason) = refused(try_physical(&t, &[0, 1], NumaFill::Compact, Some(4)));
        assert_eq!(field, "workers");
        assert_eq!(
            reason,
            "4 workers but only 2 CPUs are allowed (0-1); use Affinity::None to run unpinned"
        );
    }

    #[test]
    fn zero_or_absurd_worker_counts_refused() {
        let t = Topology::flat(2);
        for a in [Affinity::PhysicalCores, Affinity::None] {
            for n in [0, MAX_WORKERS + 1, usize::MAX] {
                let (field, _) = refused(plan(&t, &[0, 1], &a, NumaFill::Compact, Some(n)));
                assert_eq!(field, "workers");
            }
        }
        let s = plan(
            &t,
            &[0, 1],
            &Affinity::None,
            NumaFill::Compact,
            Some(MAX_WORKERS),
        );
        assert_eq!(s.unwrap().len(), MAX_WORKERS);
    }

    #[test]
    fn cpus_list() {
        let (t, _) = big();
        let allowed: Vec<usize> = (0..16).collect();
        let refuse_cpus = |list: Vec<usize>, workers: Option<usize>| {
            refused(plan(
                &t,
                &allowed,
                &Affinity::Cpus(list),
                NumaFill::Compact,
                workers,
            ))
        };
        let s = plan(
            &t,
            &allowed,
            &Affinity::Cpus(vec![9, 0, 3]),
            NumaFill::Compact,
            None,
        )
        .unwrap();
        assert_eq!(cpus(&s), vec![9, 0, 3], "list order kept");
        assert_eq!(nodes(&s), vec![1, 0, 0]);
        let s = plan(
            &t,
            &allowed,
            &Affinity::Cpus(vec![9, 0, 3]),
            NumaFill::Spread,
            Some(3),
        )
        .unwrap();
        assert_eq!(s.len(), 3);

        let (field, reason) = refuse_cpus(vec![1, 99], None);
        assert_eq!(field, "affinity");
        assert!(reason.contains("CPU 99 does not exist"), "{reason}");
        assert!(reason.contains("0-63"), "{reason}");

        let (field, reason) = refuse_cpus(vec![1, 20], None);
        assert_eq!(field, "affinity");
        assert!(reason.contains("CPU 20 is not allowed"), "{reason}");
        assert!(reason.contains("0-15"), "{reason}");

        let (field, _) = refuse_cpus(vec![], None);
        assert_eq!(field, "affinity");
        let (field, reason) = refuse_cpus(vec![2, 2], None);
        assert_eq!(
            (field, reason.as_str()),
            ("affinity", "CPU 2 is listed twice")
        );
        let (field, _) = refuse_cpus(vec![2], Some(2));
        assert_eq!(field, "workers");
    }

    #[test]
    fn cpus_list_on_cpu_unknown_to_topology_but_allowed() {
        // A fallback topology that knows fewer CPUs than the OS allows.
        let t = Topology::flat(1);
        let s = plan(
            &t,
            &[0, 1],
            &Affinity::Cpus(vec![1]),
            NumaFill::Compact,
            None,
        )
        .unwrap();
        assert_eq!(
            s,
            vec![Slot {
                cpu: Some(1),
                numa_node: None
            }]
        );
        let s = physical(&t, &[0, 1], NumaFill::Compact, None);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn compact_goes_to_the_nearest_node_next() {
        // 3 nodes of 1 core; node 0 is nearer to node 2 than to node 1.
        let mut t = Topology::uniform(1, 3, 1, 1);
        t.nodes[0].distances = vec![10, 30, 15];
        t.nodes[1].distances = vec![30, 10, 30];
        t.nodes[2].distances = vec![15, 30, 10];
        let all = [0, 1, 2];
        let s = physical(&t, &all, NumaFill::Compact, None);
        assert_eq!(nodes(&s), vec![0, 2, 1]);
        let s = physical(&t, &all, NumaFill::Spread, None);
        assert_eq!(nodes(&s), vec![0, 1, 2], "node 1 is farthest from node 0");
    }

    #[test]
    fn summary() {
        let s = [
            Slot {
                cpu: Some(0),
                numa_node: Some(0),
            },
            Slot {
                cpu: Some(1),
                numa_node: Some(0),
            },
        ];
        assert_eq!(
            Placement::new(&s).to_string(),
            "2 workers: w0→cpu0/node0, w1→cpu1/node0"
        );
        let s = [Slot {
            cpu: Some(3),
            numa_node: None,
        }];
        assert_eq!(Placement::new(&s).to_string(), "1 worker: w0→cpu3");
        let s = [Slot::UNPINNED; 2];
        assert_eq!(
            Placement::new(&s).to_string(),
            "2 workers: w0→unpinned, w1→unpinned"
        );
        assert_eq!(Placement::new(&[]).to_string(), "0 workers:");
    }
}
