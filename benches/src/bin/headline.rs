//! shardpool against its peers, interleaved: the headline table, or the
//! sweeps with `--sweep`.
//!
//! ```text
//! cargo run --release -p shardpool-benches --bin headline                  # headline table (~15 s)
//! cargo run --release -p shardpool-benches --bin headline -- --reps 9      # more repetitions
//! cargo run --release -p shardpool-benches --bin headline -- --sweep       # mesh batch/capacity,
//!                                                                          # inbox coalescing, idle strategy
//! cargo run --release -p shardpool-benches --bin headline -- --async       # tokio callers
//! cargo run --release -p shardpool-benches --bin headline -- --only shuffle,latency
//!                                     # some sections: mesh inbox keyed shuffle latency idle ask
//! ```
//!
//! How it measures: the `shardpool_benches` crate docs.

const USAGE: &str = "usage: headline [--reps N] [--sweep | --async | --only SECTION,...]";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut reps = 5;
    let mut sweep = false;
    let mut callers = false;
    let mut only: Vec<String> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--reps" => {
                i += 1;
                reps = args.get(i).and_then(|s| s.parse().ok()).expect("--reps N");
            }
            "--sweep" => sweep = true,
            "--only" => {
                i += 1;
                only = args
                    .get(i)
                    .expect("--only SECTION,...")
                    .split(',')
                    .map(str::to_string)
                    .collect();
                let known = shardpool_benches::headline::SECTIONS;
                if let Some(bad) = only.iter().find(|s| !known.contains(&s.as_str())) {
                    eprintln!("--only: unknown section {bad} (known: {})", known.join(" "));
                    std::process::exit(2);
                }
            }
            "--async" => callers = true,
            "--bench" => {} // passed by `cargo bench`; ignore
            "-h" | "--help" => {
                println!(
                    "{USAGE}\n  --reps N  interleaved repetitions per row (default 5)\n  --sweep   the sweeps instead of the headline table\n  --async   the async-caller suite (tokio tasks) instead\n  --only S  only the headline sections S (comma-separated: {})",
                    shardpool_benches::headline::SECTIONS.join(" ")
                );
                return;
            }
            other => {
                eprintln!("{USAGE}   (unknown argument {other})");
                std::process::exit(2);
            }
        }
        i += 1;
    }
    if callers {
        shardpool_benches::callers::run(reps);
    } else if sweep {
        shardpool_benches::sweep::run(reps);
    } else {
        shardpool_benches::headline::run(reps, &only);
    }
}
