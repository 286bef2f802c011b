//! The command line of the server examples (`kv`, `kv_tokio`,
//! `http_counter`, `http_counter_axum`): `--flag value` pairs, a few bare
//! switches, and `-h`/`--help`. Each example says what its flags do; this
//! only walks them, so that a bad value gets the same answer everywhere.

use std::process::ExitCode;
use std::time::Duration;

use shardpool::{Affinity, PoolConfig};

/// Walks `args` (the arguments after the program name) and hands each
/// flag to `apply`: a flag listed in `switches` with `None`, any other
/// with the argument after it. `apply` returns whether it took the flag
/// and its value.
///
/// # Errors
/// The exit code to end with: success after printing `usage` for `-h` or
/// `--help`, 2 after printing it with the flag for an unknown flag, a
/// missing value or one `apply` refused.
///
/// ```
/// use shardpool_services::cli::parse_flags;
///
/// let (mut port, mut pin) = (6380u16, true);
/// let args = ["--port", "7000", "--no-pin"].map(String::from);
/// let parsed = parse_flags("usage: demo [--port P] [--no-pin]", &["--no-pin"], args, |flag, value| {
///     match (flag, value) {
///         ("--no-pin", None) => pin = false,
///         ("--port", Some(v)) => return v.parse().map(|v| port = v).is_ok(),
///         _ => return false,
///     }
///     true
/// });
/// assert!(parsed.is_ok());
/// assert_eq!((port, pin), (7000, false));
/// ```
pub fn parse_flags(
    usage: &str,
    switches: &[&str],
    args: impl IntoIterator<Item = String>,
    mut apply: impl FnMut(&str, Option<&str>) -> bool,
) -> Result<(), ExitCode> {
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            println!("{usage}");
            return Err(ExitCode::SUCCESS);
        }
        let taken = if switches.contains(&flag.as_str()) {
            apply(&flag, None)
        } else {
            let value = args.next();
            value.is_some() && apply(&flag, value.as_deref())
        };
        if !taken {
            eprintln!("{usage} (bad or missing value for {flag})");
            return Err(ExitCode::from(2));
        }
    }
    Ok(())
}

/// The switches of [`pool_flag`], for [`parse_flags`].
pub const POOL_SWITCHES: &[&str] = &["--no-pin"];

/// Applies a flag that the pool-based server examples share to `pool`:
/// `--no-pin` (no affinity), `--workers N`, `--io-poll-us MICROS`.
/// `Some(taken)` for one of these, `None` for any other flag.
pub fn pool_flag(pool: &mut PoolConfig, flag: &str, value: Option<&str>) -> Option<bool> {
    let taken = match (flag, value) {
        ("--no-pin", None) => {
            *pool = pool.clone().affinity(Affinity::None);
            true
        }
        ("--workers", Some(v)) => v.parse().map(|n| *pool = pool.clone().workers(n)).is_ok(),
        ("--io-poll-us", Some(v)) => v
            .parse()
            .map(|us| *pool = pool.clone().io_poll_interval(Duration::from_micros(us)))
            .is_ok(),
        ("--no-pin" | "--workers" | "--io-poll-us", _) => false,
        _ => return None,
    };
    Some(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flags `apply` was handed, with their values.
    type Seen = Vec<(String, Option<String>)>;

    fn run(args: &[&str]) -> (Result<(), ExitCode>, Seen) {
        let mut seen = Vec::new();
        let r = parse_flags(
            "usage",
            &["--flag"],
            args.iter().map(|s| s.to_string()),
            |f, v| {
                seen.push((f.to_string(), v.map(str::to_string)));
                f != "--bad"
            },
        );
        (r, seen)
    }

    #[test]
    fn values_switches_help_and_errors() {
        let (r, seen) = run(&["--a", "1", "--flag", "--b", "2"]);
        assert!(r.is_ok());
        assert_eq!(
            seen,
            [
                ("--a".into(), Some("1".into())),
                ("--flag".into(), None),
                ("--b".into(), Some("2".into()))
            ]
        );
        assert_eq!(run(&["--help", "--a"]).0, Err(ExitCode::SUCCESS));
        assert_eq!(run(&["--a"]).0, Err(ExitCode::from(2)), "missing value");
        assert_eq!(run(&["--bad", "1"]).0, Err(ExitCode::from(2)), "refused");
    }

    #[test]
    fn pool_flags_change_the_config_and_leave_the_rest() {
        let mut pool = PoolConfig::default();
        assert_eq!(pool_flag(&mut pool, "--workers", Some("3")), Some(true));
        assert_eq!(pool_flag(&mut pool, "--workers", Some("x")), Some(false));
        assert_eq!(pool_flag(&mut pool, "--no-pin", None), Some(true));
        assert_eq!(pool_flag(&mut pool, "--io-poll-us", Some("7")), Some(true));
        assert_eq!(pool_flag(&mut pool, "--port", Some("1")), None);
        let expected = PoolConfig::default()
            .workers(3)
            .affinity(Affinity::None)
            .io_poll_interval(Duration::from_micros(7));
        assert_eq!(format!("{pool:?}"), format!("{expected:?}"));
    }
}
