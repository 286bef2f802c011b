//! The backtrace of a stalled worker, taken on its own thread while it is
//! stalled.
//!
//! Only the thread itself can walk its stack, so the watchdog sends it a
//! dedicated signal (`SIGRTMIN + 4`, with `pthread_kill`) and the handler
//! walks the stack into the worker's [`Capture`], allocated with the
//! registry before the worker ran. The handler may interrupt anything —
//! `malloc`, a lock, the worker's own code — so it only reads a
//! thread-local pointer, does atomic loads and stores, and calls libgcc's
//! `_Unwind_Backtrace` (already linked by std), which allocates nothing and
//! takes no lock the interrupted code could hold (the loader's lock it
//! takes in `dl_iterate_phdr` is recursive). It neither logs nor formats:
//! the watchdog symbolizes the raw addresses afterwards, on its own
//! thread, with the `backtrace` crate when the `backtrace` feature is on,
//! else with `dladdr` (`file+offset`, which `addr2line` resolves).
//!
//! A handshake on [`Capture::state`] keeps `pthread_kill` away from a
//! thread that has ended: the watchdog signals only after moving the state
//! from `IDLE` to `REQUESTED`, and a worker thread leaving its loop waits
//! for any such request to be answered before it marks itself `EXITED`.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::StallSlot;

/// Frames kept per backtrace.
const MAX_FRAMES: usize = 64;

/// The thread has not registered (or is not a worker): never signalled.
const UNREGISTERED: u32 = 0;
/// Registered; no backtrace asked for.
const IDLE: u32 = 1;
/// The watchdog asked for a backtrace and signals (or signalled) the thread.
const REQUESTED: u32 = 2;
/// The handler is walking the stack.
const WRITING: u32 = 3;
/// The frames are in the buffer.
const DONE: u32 = 4;
/// The thread has left its loop: never signalled again.
const EXITED: u32 = 5;

/// A worker's preallocated backtrace buffer and its handshake.
#[derive(Debug)]
pub(crate) struct Capture {
    state: AtomicU32,
    /// The worker's `pthread_t`, set when it registers.
    thread: AtomicU64,
    /// The interrupted instruction address (0 if unknown): the walk is
    /// trimmed to start there, leaving out the handler's own frames.
    pc: AtomicUsize,
    len: AtomicUsize,
    frames: [AtomicUsize; MAX_FRAMES],
}

impl Default for Capture {
    fn default() -> Self {
        Capture {
            state: AtomicU32::new(UNREGISTERED),
            thread: AtomicU64::new(0),
            pc: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            frames: std::array::from_fn(|_| AtomicUsize::new(0)),
        }
    }
}

/// A stalled thread's stack, or why there is none.
pub(crate) type Taken = Result<Vec<usize>, &'static str>;

/// Asks the worker of `slot` for its backtrace and waits up to `wait` for
/// it. Called by the watchdog only (one request at a time per worker).
pub(crate) fn take(slot: &StallSlot, wait: Duration) -> Taken {
    imp::take(&slot.capture, wait)
}

/// Turns raw addresses (innermost first) into text, one frame per line.
pub(crate) fn symbolize(frames: &[usize]) -> String {
    imp::symbolize(frames)
}

/// A worker thread's registration (see [`super::Probe::register_thread`]).
pub(crate) struct Registration {
    slot: Arc<StallSlot>,
}

impl Registration {
    pub(crate) fn new(slot: Arc<StallSlot>) -> Self {
        imp::register(&slot.capture);
        Registration { slot }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let c = &self.slot.capture;
        // Answer or outwait any request in flight, then refuse new ones:
        // after EXITED the watchdog never signals this thread, which may
        // then end and be joined.
        let started = Instant::now();
        loop {
            let s = c.state.load(Acquire);
            if matches!(s, UNREGISTERED | IDLE | DONE)
                && c.state.compare_exchange(s, EXITED, AcqRel, Acquire).is_ok()
            {
                break;
            }
            if s == EXITED || started.elapsed() > Duration::from_secs(5) {
                // Cannot happen (the watchdog times out well before); never
                // hang a stopping worker on it.
                break;
            }
            std::thread::yield_now();
        }
        imp::unregister();
    }
}

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod imp {
    use std::cell::Cell;
    use std::ffi::{c_int, c_void, CStr};
    use std::fmt::Write;
    use std::sync::atomic::AtomicUsize;
    use std::sync::OnceLock;

    use super::*;

    thread_local! {
        /// This worker thread's capture buffer (null on other threads).
        /// Const-initialized and without `Drop`: reading it is a plain
        /// thread-local access, safe in a signal handler.
        static CURRENT: Cell<*const Capture> = const { Cell::new(std::ptr::null()) };
    }

    /// The signal the watchdog sends: real-time signal `SIGRTMIN + 4`
    /// (libc's first few are taken by some runtimes; ours must not be one
    /// a program already handles, see [`install`]).
    fn stall_signal() -> c_int {
        libc::SIGRTMIN() + 4
    }

    /// Installs the handler once per process. `Err` if the signal already
    /// has another disposition (someone else's): then no backtraces.
    fn install() -> Result<(), &'static str> {
        static INSTALLED: OnceLock<Result<(), &'static str>> = OnceLock::new();
        *INSTALLED.get_or_init(|| {
            let sig = stall_signal();
            // SAFETY: plain sigaction calls on zeroed/filled structs we own;
            // the handler is an `extern "C"` function that lives forever.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
                    return Err("sigaction failed");
                }
                if old.sa_sigaction != libc::SIG_DFL {
                    tracing::warn!(
                        signal = sig,
                        "the stall signal already has a handler: stall reports carry no backtrace"
                    );
                    return Err("the stall signal (SIGRTMIN+4) is used by something else");
                }
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal
                    as extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void)
                    as libc::sighandler_t;
                sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
                libc::sigfillset(&mut sa.sa_mask);
                if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                    return Err("sigaction failed");
                }
            }
            Ok(())
        })
    }

    pub(super) fn register(c: &Capture) {
        if install().is_err() {
            return;
        }
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        c.thread.store(me as u64, Relaxed);
        CURRENT.with(|cur| cur.set(c));
        c.state.store(IDLE, Release);
    }

    pub(super) fn unregister() {
        CURRENT.with(|cur| cur.set(std::ptr::null()));
    }

    pub(super) fn take(c: &Capture, wait: Duration) -> Taken {
        // A DONE left by an earlier, timed-out request is stale.
        let _ = c.state.compare_exchange(DONE, IDLE, AcqRel, Acquire);
        match c.state.compare_exchange(IDLE, REQUESTED, AcqRel, Acquire) {
            Ok(_) => {}
            Err(UNREGISTERED) => {
                return Err(install()
                    .err()
                    .unwrap_or("the worker thread is not registered"))
            }
            Err(EXITED) => return Err("the worker thread has ended"),
            Err(_) => return Err("an earlier backtrace request is still pending"),
        }
        let thread = c.thread.load(Relaxed) as libc::pthread_t;
        // SAFETY: the state is REQUESTED, so the thread has not passed its
        // Registration's drop (which waits for REQUESTED to clear): it is
        // alive and its pthread_t valid.
        let sent = unsafe { libc::pthread_kill(thread, stall_signal()) };
        if sent != 0 {
            let _ = c.state.compare_exchange(REQUESTED, IDLE, AcqRel, Acquire);
            return Err("pthread_kill failed");
        }
        let deadline = Instant::now() + wait;
        loop {
            if c.state.load(Acquire) == DONE {
                break;
            }
            if Instant::now() >= deadline {
                // Withdraw the request unless the handler has begun; if it
                // has, give it a little longer.
                if c.state
                    .compare_exchange(REQUESTED, IDLE, AcqRel, Acquire)
                    .is_ok()
                {
                    return Err("the stalled thread did not answer the signal in time");
                }
                if Instant::now() >= deadline + wait {
                    return Err("the stalled thread did not finish its backtrace in time");
                }
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let n = c.len.load(Relaxed).min(MAX_FRAMES);
        let mut frames: Vec<usize> = c.frames[..n].iter().map(|f| f.load(Relaxed)).collect();
        let pc = c.pc.load(Relaxed);
        // Leave the thread's registration free for the next request (it
        // may have moved to EXITED meanwhile: then keep that).
        let _ = c.state.compare_exchange(DONE, IDLE, AcqRel, Acquire);
        if let Some(at) = frames.iter().position(|&f| pc != 0 && f == pc) {
            frames.drain(..at);
        }
        Ok(frames)
    }

    /// The signal handler: see the module doc for what it may do.
    extern "C" fn on_signal(_sig: c_int, _info: *mut libc::siginfo_t, ucontext: *mut c_void) {
        // SAFETY: errno is thread-local; saved and restored around the
        // handler so the interrupted code never sees it change.
        let errno = unsafe { *libc::__errno_location() };
        let c = CURRENT.with(|cur| cur.get());
        if !c.is_null() {
            // SAFETY: CURRENT points into the Arc held by this thread's
            // Registration, cleared before that Arc is dropped.
            let c = unsafe { &*c };
            if c.state
                .compare_exchange(REQUESTED, WRITING, Acquire, Relaxed)
                .is_ok()
            {
                c.pc.store(interrupted_pc(ucontext), Relaxed);
                let n = walk(&c.frames);
                c.len.store(n, Relaxed);
                c.state.store(DONE, Release);
            }
        }
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = errno };
    }

    /// The instruction the signal interrupted, from the handler's context.
    fn interrupted_pc(ucontext: *mut c_void) -> usize {
        if ucontext.is_null() {
            return 0;
        }
        // SAFETY: with SA_SIGINFO the third argument is the thread's
        // `ucontext_t`, valid for the handler's duration.
        let uc = unsafe { &*(ucontext as *const libc::ucontext_t) };
        #[cfg(target_arch = "x86_64")]
        {
            uc.uc_mcontext.gregs[libc::REG_RIP as usize] as usize
        }
        #[cfg(target_arch = "aarch64")]
        {
            uc.uc_mcontext.pc as usize
        }
    }

    #[repr(C)]
    struct UnwindContext {
        _private: [u8; 0],
    }

    type TraceFn = extern "C" fn(*mut UnwindContext, *mut c_void) -> c_int;

    extern "C" {
        // libgcc's unwinder (libunwind's on musl), which std links.
        fn _Unwind_Backtrace(trace: TraceFn, arg: *mut c_void) -> c_int;
        fn _Unwind_GetIP(ctx: *mut UnwindContext) -> usize;
    }

    /// `_URC_NO_REASON` and `_URC_END_OF_STACK`.
    const CONTINUE: c_int = 0;
    const STOP: c_int = 5;

    struct Walk<'a> {
        frames: &'a [AtomicUsize],
        n: usize,
    }

    extern "C" fn step(ctx: *mut UnwindContext, arg: *mut c_void) -> c_int {
        // SAFETY: `arg` is the `Walk` that `walk` passed, alive for the
        // whole `_Unwind_Backtrace` call.
        let w = unsafe { &mut *(arg as *mut Walk<'_>) };
        if w.n == w.frames.len() {
            return STOP;
        }
        // SAFETY: `ctx` is the live context the unwinder passed us.
        let ip = unsafe { _Unwind_GetIP(ctx) };
        if ip == 0 {
            return STOP;
        }
        w.frames[w.n].store(ip, Relaxed);
        w.n += 1;
        CONTINUE
    }

    /// Walks this thread's stack into `frames`; returns how many it wrote.
    #[inline(never)]
    fn walk(frames: &[AtomicUsize]) -> usize {
        let mut w = Walk { frames, n: 0 };
        // SAFETY: `step` only touches `w`, which outlives the call.
        unsafe { _Unwind_Backtrace(step, (&mut w as *mut Walk<'_>).cast()) };
        w.n
    }

    /// The address to look a frame up at: a return address points after
    /// its call, possibly into the next function or line, so all frames
    /// but the interrupted one are looked up one byte earlier.
    fn lookup_addr(i: usize, ip: usize) -> usize {
        if i == 0 {
            ip
        } else {
            ip.saturating_sub(1)
        }
    }

    #[cfg(feature = "backtrace")]
    pub(super) fn symbolize(frames: &[usize]) -> String {
        let mut out = String::new();
        for (i, &ip) in frames.iter().enumerate() {
            let mut named = false;
            backtrace::resolve(lookup_addr(i, ip) as *mut c_void, |sym| {
                let name = sym
                    .name()
                    .map_or_else(|| String::from("<unknown>"), |n| n.to_string());
                let _ = write!(out, "{i:4}: {name}");
                if let (Some(file), Some(line)) = (sym.filename(), sym.lineno()) {
                    let _ = write!(out, "\n          at {}:{line}", file.display());
                }
                out.push('\n');
                named = true;
            });
            if !named {
                let _ = writeln!(out, "{i:4}: {}", dladdr_frame(ip));
            }
        }
        out
    }

    #[cfg(not(feature = "backtrace"))]
    pub(super) fn symbolize(frames: &[usize]) -> String {
        let mut out = String::new();
        for (i, &ip) in frames.iter().enumerate() {
            let _ = writeln!(out, "{i:4}: {}", dladdr_frame(lookup_addr(i, ip)));
        }
        out.push_str(
            "(names of the program's own functions need the `backtrace` feature of \
             shardpool; or run `addr2line -Cfie FILE OFFSET`)\n",
        );
        out
    }

    /// `symbol+offset (file)` for an exported symbol, else `file+offset`.
    fn dladdr_frame(addr: usize) -> String {
        // SAFETY: a zeroed Dl_info is a valid out-parameter; dladdr only
        // reads the loader's tables.
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        if unsafe { libc::dladdr(addr as *const c_void, &mut info) } == 0 {
            return format!("{addr:#x}");
        }
        // SAFETY: non-null dli_* strings are NUL-terminated and owned by
        // the loader for as long as the object is loaded.
        let cstr = |p: *const libc::c_char| {
            (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
        };
        let file = cstr(info.dli_fname).unwrap_or_default();
        match cstr(info.dli_sname) {
            Some(sym) => format!(
                "{sym}+{:#x} ({file})",
                addr.wrapping_sub(info.dli_saddr as usize)
            ),
            None => format!("{file}+{:#x}", addr.wrapping_sub(info.dli_fbase as usize)),
        }
    }
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
mod imp {
    use super::*;

    pub(super) fn register(_c: &Capture) {}

    pub(super) fn unregister() {}

    pub(super) fn take(_c: &Capture, _wait: Duration) -> Taken {
        Err("backtraces of stalled workers are taken on Linux (x86_64, aarch64) only")
    }

    pub(super) fn symbolize(_frames: &[usize]) -> String {
        String::new()
    }
}
