//! Memory per pending `ctx.ask`, measured with a counting allocator.
//!
//! ```text
//! cargo run --release -p shardpool-benches --bin ask_memory               # 1,000,000 pending
//! cargo run --release -p shardpool-benches --bin ask_memory -- --n 1000
//! ```
//!
//! Worker 0 makes `n` questions to worker 1 in one callback, which worker 1
//! keeps unanswered: once as plain messages (the baseline: the messages'
//! own storage), once with `ctx.ask` (no deadline, then a deadline), once
//! with a hand-written table. The bytes worker 0's thread requested from
//! the allocator meanwhile, minus the baseline, divided by `n`, is what a
//! pending question costs the asker. A binary of its own because the
//! counting allocator would slow every other benchmark down.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use shardpool_benches::workloads::ask::pending_memory;

/// The system allocator, counting the bytes each thread has allocated and
/// not freed (a thread that frees what another allocated goes negative).
struct Counting;

thread_local! {
    static NET: Cell<i64> = const { Cell::new(0) };
}

fn add(delta: i64) {
    let _ = NET.try_with(|n| n.set(n.get() + delta));
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; the thread-local count needs no allocation (const-initialised,
// no destructor), so counting cannot recurse into the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as i64);
        // SAFETY: forwarded as is (see the impl).
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as i64);
        // SAFETY: forwarded as is (see the impl).
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-(layout.size() as i64));
        // SAFETY: forwarded as is (see the impl).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size as i64 - layout.size() as i64);
        // SAFETY: forwarded as is (see the impl).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn thread_bytes() -> i64 {
    NET.try_with(Cell::get).unwrap_or(0)
}

fn main() {
    let mut n = 1_000_000u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next().and_then(|v| v.parse().ok())) {
            ("--n", Some(v)) if v > 0 => n = v,
            _ => {
                eprintln!("usage: ask_memory [--n PENDING]");
                std::process::exit(2);
            }
        }
    }
    let m = pending_memory(n, thread_bytes);
    let (ask, ask_deadline, hand) = m.per_pending();
    println!("{n} pending questions, bytes the asker's thread requested from the allocator:");
    println!(
        "  plain messages (baseline)   {:>12} ({:.1} B each)",
        m.plain,
        m.plain as f64 / n as f64
    );
    println!(
        "  ctx.ask, no deadline        {:>12} (+{ask:.1} B per pending ask)",
        m.ask
    );
    println!(
        "  ctx.ask, with a deadline    {:>12} (+{ask_deadline:.1} B per pending ask)",
        m.ask_deadline
    );
    println!(
        "  hand-written id table       {:>12} (+{hand:.1} B per pending entry)",
        m.hand
    );
    println!(
        "(requested sizes, spare capacity of doubling Vecs and tables included; \
         malloc's own per-allocation overhead not included)"
    );
}
