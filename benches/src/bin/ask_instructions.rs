//! The instructions one ask costs, for callgrind: a pool of one worker
//! that asks itself `n` times (`ask`), or does the same exchange by hand
//! with two messages and a table of ids (`hand`), one at a time.
//!
//! One worker, so nothing spins waiting for another thread and the
//! counts repeat to the instruction; the difference between two sizes is
//! the cost of one exchange, loop included:
//!
//! ```sh
//! cargo build --release -p shardpool-benches --bin ask_instructions
//! for n in 100000 200000; do
//!     valgrind --tool=callgrind --callgrind-out-file=cg.ask.$n \
//!         target/release/ask_instructions ask $n
//! done
//! # (Ir(200000) - Ir(100000)) / 100000 = instructions per exchange;
//! # callgrind_annotate cg.ask.200000 gives them per function.
//! ```

use std::sync::mpsc;
use std::time::Duration;

use shardpool::prelude::*;
use shardpool_benches::workloads::ask::Table;

enum Msg {
    Go,
    Q(u64, Asked<u64>),
    A(Result<u64, AskError>, u64),
    HQ { id: u64, key: u64 },
    HA { id: u64, value: u64 },
}

struct Asker {
    ask: bool,
    left: u64,
    table: Table,
    next_id: u64,
    done: mpsc::Sender<()>,
}

impl Asker {
    fn next(&mut self, ctx: &mut Context<'_, Msg>) {
        if self.left == 0 {
            let _ = self.done.send(());
            return;
        }
        self.left -= 1;
        let key = self.left;
        let me = ctx.id();
        let sent = if self.ask {
            ctx.ask(
                me,
                |a| Msg::Q(key, a),
                move |r| Msg::A(r, key),
                Duration::MAX,
            )
            .is_ok()
        } else {
            let id = self.next_id;
            self.next_id += 1;
            self.table.insert(id, key);
            ctx.send_to(me, Msg::HQ { id, key }).is_ok()
        };
        assert!(sent, "the question went out");
    }
}

impl Worker for Asker {
    type Msg = Msg;
    fn handle(&mut self, msg: Msg, ctx: &mut Context<'_, Msg>) {
        match msg {
            Msg::Go => self.next(ctx),
            Msg::Q(key, asked) => asked.send(2 * key),
            Msg::A(r, key) => {
                assert_eq!(r, Ok(2 * key));
                self.next(ctx);
            }
            Msg::HQ { id, key } => {
                let me = ctx.id();
                let sent = ctx.send_to(me, Msg::HA { id, value: 2 * key });
                assert!(sent.is_ok(), "the answer went out");
            }
            Msg::HA { id, value } => {
                let key = self
                    .table
                    .remove(&id)
                    .expect("an answer to a question asked");
                assert_eq!(value, 2 * key);
                self.next(ctx);
            }
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let ask = match args.next().as_deref() {
        Some("ask") => true,
        Some("hand") => false,
        _ => {
            eprintln!("usage: ask_instructions ask|hand [N]");
            std::process::exit(2);
        }
    };
    let n: u64 = args.next().map_or(100_000, |s| s.parse().expect("N"));
    let (tx, rx) = mpsc::channel();
    let config = PoolConfig::default().workers(1).affinity(Affinity::None);
    let pool = Pool::start(config, move |_| Asker {
        ask,
        left: n,
        table: Table::default(),
        next_id: 0,
        done: tx.clone(),
    })
    .expect("pool start");
    pool.sender()
        .send_to(WorkerId::from(0), Msg::Go)
        .expect("start");
    rx.recv().expect("the exchanges ended");
    pool.shutdown().expect("shutdown");
}
