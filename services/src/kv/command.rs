//! Commands, parsed from a request's arguments with Redis's error texts.
//!
//! Names are matched case-insensitively. Arity and syntax errors carry the
//! exact texts redis-server 7.0 sends (checked against redis-server 7.0.15),
//! e.g. `ERR wrong number of arguments for 'get' command` and
//! `ERR unknown command 'FOO', with args beginning with: 'a' `.

use std::time::Duration;

use bytes::Bytes;

use super::Reply;

/// When a `SET` key expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// `EX seconds` / `PX milliseconds`: this long after the write.
    After(Duration),
    /// `KEEPTTL`: keep the key's current expiry.
    Keep,
}

/// `SET`'s `NX` / `XX` condition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SetCondition {
    /// Always write.
    #[default]
    Always,
    /// `NX`: only if the key does not exist.
    IfAbsent,
    /// `XX`: only if the key exists.
    IfPresent,
}

/// One command of the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `PING [message]`
    Ping(Option<Bytes>),
    /// `ECHO message`
    Echo(Bytes),
    /// `GET key`
    Get(Bytes),
    /// `SET key value [NX|XX] [GET] [EX s|PX ms|KEEPTTL]`
    Set {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
        /// `EX`/`PX`/`KEEPTTL`; `None` clears any expiry.
        expiry: Option<Expiry>,
        /// `NX`/`XX`.
        condition: SetCondition,
        /// `GET`: reply the old value instead of `OK`.
        get: bool,
    },
    /// `DEL key [key …]`
    Del(Vec<Bytes>),
    /// `EXISTS key [key …]`
    Exists(Vec<Bytes>),
    /// `INCR`, `DECR`, `INCRBY`, `DECRBY`: add `delta` to the integer at `key`.
    IncrBy {
        /// The key.
        key: Bytes,
        /// What to add (negative for DECR/DECRBY).
        delta: i64,
    },
    /// `MGET key [key …]`
    MGet(Vec<Bytes>),
    /// `MSET key value [key value …]`
    MSet(Vec<(Bytes, Bytes)>),
    /// `DBSIZE`
    DbSize,
    /// `CONFIG GET pattern [pattern …]`
    ConfigGet(Vec<Bytes>),
    /// `COMMAND`, `COMMAND DOCS …`: an empty list (no hints for redis-cli).
    CommandList,
    /// `COMMAND COUNT`
    CommandCount,
    /// `CLIENT SETINFO …` (sent by the `redis` crate at connect): `OK`.
    ClientSetInfo,
    /// `SELECT db`: only database 0 exists.
    Select(Bytes),
    /// `QUIT`: `OK`, then the server closes the connection.
    Quit,
}

/// How many commands [`Command::parse`] knows (the `COMMAND COUNT` reply).
pub const COMMAND_COUNT: i64 = 18;

impl Command {
    /// Parses a request's arguments (never empty: see
    /// [`parse_request`](super::request::parse_request)).
    ///
    /// `Err` carries the error reply to send; the connection stays usable.
    pub fn parse(mut args: Vec<Bytes>) -> Result<Command, Reply> {
        let Some(name) = args.first().cloned() else {
            return Err(Reply::error("ERR empty command"));
        };
        let is = |expected: &str| name.eq_ignore_ascii_case(expected.as_bytes());
        let argc = args.len();
        // (name, arity) with Redis's arity rule: n = exactly n, -n = at least n.
        let arity = |lower: &'static str, arity: i64| -> Result<(), Reply> {
            let ok = if arity >= 0 {
                argc as i64 == arity
            } else {
                argc as i64 >= -arity
            };
            if ok {
                Ok(())
            } else {
                Err(wrong_arity(lower))
            }
        };
        if is("GET") {
            arity("get", 2)?;
            Ok(Command::Get(args.swap_remove(1)))
        } else if is("SET") {
            arity("set", -3)?;
            parse_set(args)
        } else if is("INCR") || is("DECR") {
            let lower = if is("INCR") { "incr" } else { "decr" };
            arity(lower, 2)?;
            let delta = if is("INCR") { 1 } else { -1 };
            Ok(Command::IncrBy {
                key: args.swap_remove(1),
                delta,
            })
        } else if is("INCRBY") || is("DECRBY") {
            let incr = is("INCRBY");
            arity(if incr { "incrby" } else { "decrby" }, 3)?;
            let n = parse_i64(&args[2]).ok_or(NOT_AN_INTEGER)?;
            let delta = if incr {
                n
            } else {
                n.checked_neg()
                    .ok_or(Reply::error("ERR decrement would overflow"))?
            };
            Ok(Command::IncrBy {
                key: args.swap_remove(1),
                delta,
            })
        } else if is("MGET") {
            arity("mget", -2)?;
            args.remove(0);
            Ok(Command::MGet(args))
        } else if is("MSET") {
            if argc < 3 || argc.is_multiple_of(2) {
                return Err(wrong_arity("mset"));
            }
            let mut rest = args.into_iter().skip(1);
            let mut pairs = Vec::with_capacity(argc / 2);
            while let (Some(k), Some(v)) = (rest.next(), rest.next()) {
                pairs.push((k, v));
            }
            Ok(Command::MSet(pairs))
        } else if is("DEL") {
            arity("del", -2)?;
            args.remove(0);
            Ok(Command::Del(args))
        } else if is("EXISTS") {
            arity("exists", -2)?;
            args.remove(0);
            Ok(Command::Exists(args))
        } else if is("PING") {
            match argc {
                1 => Ok(Command::Ping(None)),
                2 => Ok(Command::Ping(Some(args.swap_remove(1)))),
                _ => Err(wrong_arity("ping")),
            }
        } else if is("ECHO") {
            arity("echo", 2)?;
            Ok(Command::Echo(args.swap_remove(1)))
        } else if is("DBSIZE") {
            arity("dbsize", 1)?;
            Ok(Command::DbSize)
        } else if is("CONFIG") {
            arity("config", -2)?;
            if args[1].eq_ignore_ascii_case(b"GET") {
                if argc < 3 {
                    return Err(wrong_arity("config|get"));
                }
                args.drain(..2);
                Ok(Command::ConfigGet(args))
            } else {
                Err(unknown_subcommand(&args[1], "CONFIG"))
            }
        } else if is("COMMAND") {
            if argc == 1 || args[1].eq_ignore_ascii_case(b"DOCS") {
                Ok(Command::CommandList)
            } else if args[1].eq_ignore_ascii_case(b"COUNT") {
                if argc != 2 {
                    return Err(wrong_arity("command|count"));
                }
                Ok(Command::CommandCount)
            } else {
                Err(unknown_subcommand(&args[1], "COMMAND"))
            }
        } else if is("CLIENT") {
            arity("client", -2)?;
            if args[1].eq_ignore_ascii_case(b"SETINFO") {
                if argc != 4 {
                    return Err(wrong_arity("client|setinfo"));
                }
                Ok(Command::ClientSetInfo)
            } else {
                Err(unknown_subcommand(&args[1], "CLIENT"))
            }
        } else if is("SELECT") {
            arity("select", 2)?;
            Ok(Command::Select(args.swap_remove(1)))
        } else if is("QUIT") {
            Ok(Command::Quit)
        } else {
            Err(unknown_command(&args))
        }
    }

    /// The keys this command reads or writes, in argument order (empty for
    /// keyless commands such as `PING` or `DBSIZE`).
    pub fn keys(&self) -> Vec<&[u8]> {
        match self {
            Command::Get(key) | Command::Set { key, .. } | Command::IncrBy { key, .. } => vec![key],
            Command::Del(keys) | Command::Exists(keys) | Command::MGet(keys) => {
                keys.iter().map(|k| &k[..]).collect()
            }
            Command::MSet(pairs) => pairs.iter().map(|(k, _)| &k[..]).collect(),
            _ => Vec::new(),
        }
    }
}

/// `ERR value is not an integer or out of range`.
pub const NOT_AN_INTEGER: Reply = Reply::error("ERR value is not an integer or out of range");

fn wrong_arity(lower_name: &str) -> Reply {
    Reply::error_owned(format!(
        "ERR wrong number of arguments for '{lower_name}' command"
    ))
}

fn unknown_subcommand(sub: &[u8], command: &str) -> Reply {
    Reply::error_owned(format!(
        "ERR unknown subcommand '{}'. Try {command} HELP.",
        clip(sub, 128)
    ))
}

/// Redis: the name (at most 128 bytes), then quoted arguments while the
/// list is shorter than 128 bytes, each cut to what is left of the 128.
fn unknown_command(args: &[Bytes]) -> Reply {
    let mut listed = String::new();
    for arg in &args[1..] {
        if listed.len() >= 128 {
            break;
        }
        let room = 128 - listed.len();
        listed.push('\'');
        listed.push_str(&clip(arg, room));
        listed.push_str("' ");
    }
    Reply::error_owned(format!(
        "ERR unknown command '{}', with args beginning with: {listed}",
        clip(&args[0], 128)
    ))
}

fn clip(bytes: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned()
}

/// Parses a Redis integer argument: optional '-', decimal digits, no
/// spaces or '+', within i64.
pub fn parse_i64(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || bytes.len() > 20 || bytes[0] == b'+' {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

fn parse_set(args: Vec<Bytes>) -> Result<Command, Reply> {
    const SYNTAX: Reply = Reply::error("ERR syntax error");
    const INVALID_EXPIRE: Reply = Reply::error("ERR invalid expire time in 'set' command");
    let mut args = args.into_iter().skip(1);
    let (Some(key), Some(value)) = (args.next(), args.next()) else {
        return Err(wrong_arity("set"));
    };
    let mut expiry = None;
    let mut condition = SetCondition::Always;
    let mut get = false;
    while let Some(option) = args.next() {
        let is = |name: &[u8]| option.eq_ignore_ascii_case(name);
        if is(b"NX") || is(b"XX") {
            if condition != SetCondition::Always {
                return Err(SYNTAX);
            }
            condition = if is(b"NX") {
                SetCondition::IfAbsent
            } else {
                SetCondition::IfPresent
            };
        } else if is(b"GET") {
            get = true;
        } else if is(b"KEEPTTL") {
            if expiry.is_some() {
                return Err(SYNTAX);
            }
            expiry = Some(Expiry::Keep);
        } else if is(b"EX") || is(b"PX") {
            if expiry.is_some() {
                return Err(SYNTAX);
            }
            let millis_per_unit: i64 = if is(b"EX") { 1000 } else { 1 };
            let amount = args.next().ok_or(SYNTAX)?;
            let n = parse_i64(&amount).ok_or(NOT_AN_INTEGER)?;
            if n <= 0 {
                return Err(INVALID_EXPIRE);
            }
            // Redis refuses expiries whose absolute unix time in ms overflows;
            // refusing any above i64 ms (from now) is the same for real input.
            let millis = n.checked_mul(millis_per_unit).ok_or(INVALID_EXPIRE)?;
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            if millis.checked_add(now_ms).is_none() {
                return Err(INVALID_EXPIRE);
            }
            expiry = Some(Expiry::After(Duration::from_millis(millis as u64)));
        } else {
            return Err(SYNTAX);
        }
    }
    Ok(Command::Set {
        key,
        value,
        expiry,
        condition,
        get,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Result<Command, Reply> {
        Command::parse(
            words
                .iter()
                .map(|w| Bytes::copy_from_slice(w.as_bytes()))
                .collect(),
        )
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn err(text: &str) -> Result<Command, Reply> {
        Err(Reply::error_owned(text.to_string()))
    }

    #[test]
    fn names_are_case_insensitive() {
        assert_eq!(parse(&["get", "k"]), Ok(Command::Get(b("k"))));
        assert_eq!(parse(&["GeT", "k"]), Ok(Command::Get(b("k"))));
        assert_eq!(parse(&["pInG"]), Ok(Command::Ping(None)));
        assert_eq!(
            parse(&["config", "get", "save"]),
            Ok(Command::ConfigGet(vec![b("save")]))
        );
    }

    #[test]
    fn every_command_parses() {
        assert_eq!(parse(&["PING", "hi"]), Ok(Command::Ping(Some(b("hi")))));
        assert_eq!(parse(&["ECHO", "x"]), Ok(Command::Echo(b("x"))));
        assert_eq!(
            parse(&["SET", "k", "v"]),
            Ok(Command::Set {
                key: b("k"),
                value: b("v"),
                expiry: None,
                condition: SetCondition::Always,
                get: false
            })
        );
        assert_eq!(
            parse(&["SET", "k", "v", "ex", "10", "NX", "GET"]),
            Ok(Command::Set {
                key: b("k"),
                value: b("v"),
                expiry: Some(Expiry::After(Duration::from_secs(10))),
                condition: SetCondition::IfAbsent,
                get: true
            })
        );
        assert_eq!(
            parse(&["SET", "k", "v", "PX", "1500", "xx"]),
            Ok(Command::Set {
                key: b("k"),
                value: b("v"),
                expiry: Some(Expiry::After(Duration::from_millis(1500))),
                condition: SetCondition::IfPresent,
                get: false
            })
        );
        assert!(matches!(
            parse(&["SET", "k", "v", "KEEPTTL"]),
            Ok(Command::Set {
                expiry: Some(Expiry::Keep),
                ..
            })
        ));
        assert_eq!(
            parse(&["DEL", "a", "b"]),
            Ok(Command::Del(vec![b("a"), b("b")]))
        );
        assert_eq!(parse(&["EXISTS", "a"]), Ok(Command::Exists(vec![b("a")])));
        assert_eq!(
            parse(&["INCR", "c"]),
            Ok(Command::IncrBy {
                key: b("c"),
                delta: 1
            })
        );
        assert_eq!(
            parse(&["DECR", "c"]),
            Ok(Command::IncrBy {
                key: b("c"),
                delta: -1
            })
        );
        assert_eq!(
            parse(&["INCRBY", "c", "-7"]),
            Ok(Command::IncrBy {
                key: b("c"),
                delta: -7
            })
        );
        assert_eq!(
            parse(&["DECRBY", "c", "7"]),
            Ok(Command::IncrBy {
                key: b("c"),
                delta: -7
            })
        );
        assert_eq!(
            parse(&["MGET", "a", "b"]),
            Ok(Command::MGet(vec![b("a"), b("b")]))
        );
        assert_eq!(
            parse(&["MSET", "a", "1", "b", "2"]),
            Ok(Command::MSet(vec![(b("a"), b("1")), (b("b"), b("2"))]))
        );
        assert_eq!(parse(&["DBSIZE"]), Ok(Command::DbSize));
        assert_eq!(parse(&["COMMAND"]), Ok(Command::CommandList));
        assert_eq!(parse(&["COMMAND", "DOCS"]), Ok(Command::CommandList));
        assert_eq!(parse(&["command", "count"]), Ok(Command::CommandCount));
        assert_eq!(
            parse(&["CLIENT", "SETINFO", "LIB-NAME", "redis-rs"]),
            Ok(Command::ClientSetInfo)
        );
        assert_eq!(parse(&["SELECT", "0"]), Ok(Command::Select(b("0"))));
        assert_eq!(parse(&["QUIT"]), Ok(Command::Quit));
    }

    #[test]
    fn wrong_arity_texts_match_redis() {
        for (words, name) in [
            (&["GET"][..], "get"),
            (&["get", "a", "b"], "get"),
            (&["SET", "a"], "set"),
            (&["DECR"], "decr"),
            (&["INCR", "a", "b"], "incr"),
            (&["INCRBY", "a", "1", "2"], "incrby"),
            (&["MGET"], "mget"),
            (&["MSET", "a"], "mset"),
            (&["MSET", "a", "1", "b"], "mset"),
            (&["DEL"], "del"),
            (&["EXISTS"], "exists"),
            (&["DBSIZE", "x"], "dbsize"),
            (&["ECHO"], "echo"),
            (&["PING", "a", "b"], "ping"),
            (&["CONFIG"], "config"),
            (&["CONFIG", "GET"], "config|get"),
        ] {
            assert_eq!(
                parse(words),
                err(&format!(
                    "ERR wrong number of arguments for '{name}' command"
                )),
                "{words:?}"
            );
        }
    }

    #[test]
    fn unknown_command_text_matches_redis() {
        assert_eq!(
            parse(&["foo", "bar", "baz"]),
            err("ERR unknown command 'foo', with args beginning with: 'bar' 'baz' ")
        );
        assert_eq!(
            parse(&["FOO"]),
            err("ERR unknown command 'FOO', with args beginning with: ")
        );
        // The argument list stops once it reaches 128 bytes.
        let long = "x".repeat(200);
        let Err(Reply::Error(text)) = parse(&["foo", &long, "next"]) else {
            panic!()
        };
        assert_eq!(
            text,
            format!(
                "ERR unknown command 'foo', with args beginning with: '{}' ",
                "x".repeat(128)
            )
        );
        assert_eq!(
            parse(&["CONFIG", "SET", "save", ""]),
            err("ERR unknown subcommand 'SET'. Try CONFIG HELP.")
        );
        assert_eq!(
            parse(&["COMMAND", "foo"]),
            err("ERR unknown subcommand 'foo'. Try COMMAND HELP.")
        );
    }

    #[test]
    fn set_option_errors_match_redis() {
        assert_eq!(
            parse(&["SET", "k", "v", "EX", "0"]),
            err("ERR invalid expire time in 'set' command")
        );
        assert_eq!(
            parse(&["SET", "k", "v", "EX", "-1"]),
            err("ERR invalid expire time in 'set' command")
        );
        assert_eq!(
            parse(&["SET", "k", "v", "EX", "9999999999999999"]),
            err("ERR invalid expire time in 'set' command")
        );
        assert_eq!(
            parse(&["SET", "k", "v", "EX", "abc"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            parse(&["SET", "k", "v", "PX", "10", "EX", "10"]),
            err("ERR syntax error")
        );
        assert_eq!(
            parse(&["SET", "k", "v", "NX", "XX"]),
            err("ERR syntax error")
        );
        assert_eq!(parse(&["SET", "k", "v", "bogus"]), err("ERR syntax error"));
        assert_eq!(parse(&["SET", "k", "v", "EX"]), err("ERR syntax error"));
        assert_eq!(
            parse(&["SET", "k", "v", "KEEPTTL", "EX", "1"]),
            err("ERR syntax error")
        );
    }

    #[test]
    fn integer_arguments_are_strict() {
        assert_eq!(
            parse(&["INCRBY", "c", "abc"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            parse(&["INCRBY", "c", " 1"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            parse(&["INCRBY", "c", "+1"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            parse(&["INCRBY", "c", "9223372036854775808"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            parse(&["DECRBY", "c", "-9223372036854775808"]),
            err("ERR decrement would overflow")
        );
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
    }

    #[test]
    fn keys_are_listed_in_argument_order() {
        assert_eq!(
            parse(&["MSET", "a", "1", "b", "2"]).unwrap().keys(),
            vec![&b"a"[..], b"b"]
        );
        assert_eq!(parse(&["GET", "k"]).unwrap().keys(), vec![&b"k"[..]]);
        assert!(parse(&["PING"]).unwrap().keys().is_empty());
    }
}
