//! membarrier failing after start-up (issue 13): a seccomp filter
//! installed while a pool runs makes every later `membarrier` call fail.
//! The pool must switch its sleep/wake handshakes to symmetric fences and
//! go on delivering everything: workers park and are woken, senders block
//! on a full inbox and are woken, and shutdown completes.
//!
//! This file holds one test on purpose: the filter applies to every thread
//! of the test process, for the rest of its life.

mod common;

use std::time::Duration;

use common::watchdog;
use shardpool::prelude::*;

/// Forwards each message once to the next worker, then counts it.
#[derive(Default)]
struct Relay {
    delivered: u64,
}

impl Worker for Relay {
    type Msg = (bool, u64);
    fn handle(&mut self, (forward, seq): (bool, u64), ctx: &mut Context<'_, (bool, u64)>) {
        if forward {
            let next = WorkerId::from((usize::from(ctx.id()) + 1) % ctx.workers());
            ctx.send_to(next, (false, seq))
                .expect("mesh sends never fail");
        } else {
            self.delivered += 1;
        }
    }
}

#[cfg(target_os = "linux")]
mod seccomp {
    const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;

    fn membarrier(cmd: libc::c_long) -> libc::c_long {
        // SAFETY: membarrier takes two integers and touches no memory.
        unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_long) }
    }

    /// Whether this process can use expedited private membarriers (the
    /// pool registered it when it started).
    pub fn expedited_membarrier_works() -> bool {
        membarrier(PRIVATE_EXPEDITED) == 0
    }

    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xC000_003E;
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xC000_00B7;

    /// Installs, on every thread of the process, a filter that makes
    /// `membarrier` fail with EPERM. Whether that worked.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    pub fn make_membarrier_fail() -> bool {
        const LD_W_ABS: u16 = 0x20;
        const JEQ_K: u16 = 0x15;
        const RET_K: u16 = 0x06;
        const RET_ALLOW: u32 = 0x7fff_0000;
        const RET_ERRNO: u32 = 0x0005_0000;
        const SET_MODE_FILTER: libc::c_long = 1;
        const FLAG_TSYNC: libc::c_long = 1;
        let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
        let mut program = [
            op(LD_W_ABS, 0, 0, 4), // seccomp_data.arch
            op(JEQ_K, 0, 3, AUDIT_ARCH),
            op(LD_W_ABS, 0, 0, 0), // seccomp_data.nr
            op(JEQ_K, 0, 1, libc::SYS_membarrier as u32),
            op(RET_K, 0, 0, RET_ERRNO | libc::EPERM as u32),
            op(RET_K, 0, 0, RET_ALLOW),
        ];
        let prog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_mut_ptr(),
        };
        // SAFETY: PR_SET_NO_NEW_PRIVS takes integers; seccomp reads the
        // program through `prog`, which outlives the call.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return false;
            }
            libc::syscall(
                libc::SYS_seccomp,
                SET_MODE_FILTER,
                FLAG_TSYNC,
                &prog as *const libc::sock_fprog,
            ) == 0
        }
    }

    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    pub fn make_membarrier_fail() -> bool {
        false
    }
}

#[cfg(target_os = "linux")]
#[test]
fn pool_keeps_delivering_after_membarrier_starts_failing() {
    watchdog(120, || {
        const SENDERS: u64 = 2;
        const PER_SENDER: u64 = 20_000;
        // A tiny inbox, so senders block; a long tick, so a worker's park
        // is bounded only by the (switched) handshake and its re-check.
        let config = PoolConfig::default()
            .workers(2)
            .affinity(Affinity::None)
            .inbox_capacity(2)
            .ring_capacity(4)
            .tick_interval(Duration::from_secs(3600));
        let pool = Pool::start(config, |_| Relay::default()).unwrap();
        let tx = pool.sender();
        let before_switch = seccomp::expedited_membarrier_works();
        for seq in 0..100 {
            tx.send_to(WorkerId::from(seq as usize % 2), (true, seq))
                .unwrap();
        }
        if !seccomp::make_membarrier_fail() {
            eprintln!("cannot install a seccomp filter here: only the fence path ran");
        } else {
            assert!(
                !seccomp::expedited_membarrier_works(),
                "the filter makes membarrier fail"
            );
            if !before_switch {
                eprintln!("membarrier was not available: no switch to test");
            }
        }
        let senders: Vec<_> = (0..SENDERS)
            .map(|s| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for i in 0..PER_SENDER {
                        let seq = s * PER_SENDER + i;
                        tx.send_to(WorkerId::from(seq as usize % 2), (seq % 3 == 0, seq))
                            .unwrap();
                        // Pauses let the workers go idle and park, so the
                        // next send must wake them.
                        if i % 500 == 499 {
                            std::thread::sleep(Duration::from_millis(2));
                        }
                    }
                })
            })
            .collect();
        for s in senders {
            s.join().unwrap();
        }
        let ws = pool.shutdown().expect("no worker failed");
        let delivered: u64 = ws.iter().map(|w| w.delivered).sum();
        assert_eq!(delivered, 100 + SENDERS * PER_SENDER);
    });
}
