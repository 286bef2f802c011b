//! Where a command runs when keys are spread over shards.
//!
//! [`route`] says whether a command can be answered anywhere (no key), by
//! one shard (every key it names lives there), or must be split into one
//! sub-command per shard ([`Fanout`]). [`Fanout::merge`] puts the shards'
//! partial replies back together in the client's key order. Both are pure
//! functions: a server sends the parts wherever its shards are (the mesh,
//! a lock) and merges what comes back.
//!
//! Split commands: `MGET` (values re-ordered by key position), `MSET`
//! (`OK` when every part is `OK`), `DEL` and `EXISTS` (counts summed),
//! `DBSIZE` (every shard, counts summed).
//!
//! ## A split `MSET` is not atomic
//! Each shard applies its part of an `MSET` when the part reaches it, so
//! a client reading meanwhile can see some of the new values and not the
//! others, and an error from one shard leaves the other parts applied.
//! This differs from both Redis setups: redis-server applies an `MSET`
//! atomically, and Redis Cluster refuses one whose keys hash to different
//! slots (`CROSSSLOT Keys in request don't hash to the same slot`). The
//! split is kept because this server stands in for a single redis-server,
//! whose clients (and `redis-benchmark -t mset`) send `MSET` over any
//! keys; refusing them would break those clients where a single node never
//! does. Keys that must change together belong on one shard: an `MSET`
//! whose keys all live on one shard is not split and is atomic (choose
//! the pool's partitioner accordingly, e.g. by Redis hash tag). The same
//! holds for `MGET`, `DEL` and `EXISTS`: each part sees its own shard at
//! its own moment.

use bytes::Bytes;

use super::{Command, Reply};

/// Where a command runs.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// No key: any shard (e.g. the connection's own) answers.
    Anywhere(Command),
    /// Every key lives on this shard.
    Shard(usize, Command),
    /// One sub-command per shard; merge the replies with [`Fanout::merge`].
    Fanout(Fanout),
}

/// A command split over shards.
#[derive(Debug, PartialEq, Eq)]
pub struct Fanout {
    /// (shard, sub-command), at most one per shard, in order of the shard
    /// first named by the command.
    pub parts: Vec<(usize, Command)>,
    merge: Merge,
}

#[derive(Debug, PartialEq, Eq)]
enum Merge {
    /// MGET: for each key of the original command, (part, index in that
    /// part's reply).
    Values(Vec<(usize, usize)>),
    /// DEL, EXISTS, DBSIZE.
    Sum,
    /// MSET.
    AllOk,
}

/// Decides where `command` runs, given `shards` shards and `shard_of`
/// (which must answer below `shards` for every key).
pub fn route(command: Command, shards: usize, shard_of: impl Fn(&[u8]) -> usize) -> Route {
    let shards = shards.max(1);
    match command {
        Command::Get(ref key) | Command::Set { ref key, .. } | Command::IncrBy { ref key, .. } => {
            let shard = shard_of(key);
            Route::Shard(shard, command)
        }
        Command::DbSize if shards == 1 => Route::Shard(0, Command::DbSize),
        Command::DbSize => Route::Fanout(Fanout {
            parts: (0..shards).map(|s| (s, Command::DbSize)).collect(),
            merge: Merge::Sum,
        }),
        Command::MGet(keys) => split_keys(keys, &shard_of, Command::MGet, true),
        Command::Del(keys) => split_keys(keys, &shard_of, Command::Del, false),
        Command::Exists(keys) => split_keys(keys, &shard_of, Command::Exists, false),
        Command::MSet(pairs) => {
            let (groups, _) = group(pairs, |(k, _)| shard_of(k));
            if groups.len() == 1 {
                let (shard, pairs) = groups.into_iter().next().expect("one group");
                return Route::Shard(shard, Command::MSet(pairs));
            }
            Route::Fanout(Fanout {
                parts: groups
                    .into_iter()
                    .map(|(s, pairs)| (s, Command::MSet(pairs)))
                    .collect(),
                merge: Merge::AllOk,
            })
        }
        keyless => Route::Anywhere(keyless),
    }
}

fn split_keys(
    keys: Vec<Bytes>,
    shard_of: &impl Fn(&[u8]) -> usize,
    make: fn(Vec<Bytes>) -> Command,
    keep_positions: bool,
) -> Route {
    let (groups, positions) = group(keys, |k| shard_of(k));
    if groups.len() == 1 {
        let (shard, keys) = groups.into_iter().next().expect("one group");
        return Route::Shard(shard, make(keys));
    }
    let merge = if keep_positions {
        Merge::Values(positions)
    } else {
        Merge::Sum
    };
    Route::Fanout(Fanout {
        parts: groups
            .into_iter()
            .map(|(s, keys)| (s, make(keys)))
            .collect(),
        merge,
    })
}

/// Groups items by shard in order of first appearance; also returns, for
/// each item, (group, index within the group).
#[allow(clippy::type_complexity)]
fn group<T>(
    items: Vec<T>,
    shard_of: impl Fn(&T) -> usize,
) -> (Vec<(usize, Vec<T>)>, Vec<(usize, usize)>) {
    let mut groups: Vec<(usize, Vec<T>)> = Vec::new();
    let mut positions = Vec::with_capacity(items.len());
    for item in items {
        let shard = shard_of(&item);
        let g = match groups.iter().position(|(s, _)| *s == shard) {
            Some(g) => g,
            None => {
                groups.push((shard, Vec::new()));
                groups.len() - 1
            }
        };
        positions.push((g, groups[g].1.len()));
        groups[g].1.push(item);
    }
    (groups, positions)
}

impl Fanout {
    /// How many shards take part.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// Whether no shard takes part (never, for a fanout made by [`route`]).
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Splits off the sub-commands to send, keeping what [`FanoutMerge::merge`]
    /// needs to put the replies back together.
    pub fn into_parts(self) -> (Vec<(usize, Command)>, FanoutMerge) {
        let parts = self.parts.len();
        (
            self.parts,
            FanoutMerge {
                merge: self.merge,
                parts,
            },
        )
    }

    /// Merges the parts' replies, given in the order of [`Fanout::parts`].
    pub fn merge(&self, replies: Vec<Reply>) -> Reply {
        merge(&self.merge, self.parts.len(), replies)
    }
}

/// What is left of a [`Fanout`] once its parts were sent: enough to merge
/// their replies.
#[derive(Debug, PartialEq, Eq)]
pub struct FanoutMerge {
    merge: Merge,
    parts: usize,
}

impl FanoutMerge {
    /// How many replies [`FanoutMerge::merge`] expects.
    pub fn parts(&self) -> usize {
        self.parts
    }

    /// Merges the parts' replies, given in the order the parts had.
    pub fn merge(&self, replies: Vec<Reply>) -> Reply {
        merge(&self.merge, self.parts, replies)
    }
}

fn merge(merge: &Merge, parts: usize, replies: Vec<Reply>) -> Reply {
    const BAD_SHAPE: Reply =
        Reply::error("ERR internal: a shard's partial reply has the wrong shape");
    if replies.len() != parts {
        return BAD_SHAPE;
    }
    if let Some(error) = replies.iter().find(|r| r.is_error()) {
        return error.clone();
    }
    match merge {
        Merge::Sum => {
            let mut total: i64 = 0;
            for reply in replies {
                match reply {
                    Reply::Integer(n) => total = total.saturating_add(n),
                    _ => return BAD_SHAPE,
                }
            }
            Reply::Integer(total)
        }
        Merge::AllOk => {
            if replies.iter().all(|r| *r == Reply::ok()) {
                Reply::ok()
            } else {
                BAD_SHAPE
            }
        }
        Merge::Values(positions) => {
            let mut columns = Vec::with_capacity(replies.len());
            for reply in replies {
                match reply {
                    Reply::Array(values) => {
                        columns.push(values.into_iter().map(Some).collect::<Vec<_>>())
                    }
                    _ => return BAD_SHAPE,
                }
            }
            let mut out = Vec::with_capacity(positions.len());
            for &(part, index) in positions {
                match columns
                    .get_mut(part)
                    .and_then(|c| c.get_mut(index))
                    .and_then(Option::take)
                {
                    Some(value) => out.push(value),
                    None => return BAD_SHAPE,
                }
            }
            Reply::Array(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::Store;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn cmd(words: &[&str]) -> Command {
        Command::parse(words.iter().map(|w| b(w)).collect()).unwrap()
    }

    /// Shard = first byte of the key minus 'a': "a…" on 0, "b…" on 1, …
    fn by_first_letter(key: &[u8]) -> usize {
        (key[0] - b'a') as usize
    }

    /// Runs `words` through route + per-shard stores + merge.
    fn run_sharded(stores: &mut [Store], words: &[&str]) -> Reply {
        match route(cmd(words), stores.len(), by_first_letter) {
            Route::Anywhere(c) => stores[0].execute(c),
            Route::Shard(s, c) => stores[s].execute(c),
            Route::Fanout(f) => {
                let (parts, merge) = f.into_parts();
                let replies = parts
                    .into_iter()
                    .map(|(s, c)| stores[s].execute(c))
                    .collect();
                merge.merge(replies)
            }
        }
    }

    #[test]
    fn single_key_and_keyless_commands_do_not_split() {
        assert_eq!(
            route(cmd(&["GET", "b1"]), 3, by_first_letter),
            Route::Shard(1, cmd(&["GET", "b1"]))
        );
        assert_eq!(
            route(cmd(&["INCR", "c"]), 3, by_first_letter),
            Route::Shard(2, cmd(&["INCR", "c"]))
        );
        assert_eq!(
            route(cmd(&["PING"]), 3, by_first_letter),
            Route::Anywhere(cmd(&["PING"]))
        );
        assert_eq!(
            route(cmd(&["MGET", "a1", "a2"]), 3, by_first_letter),
            Route::Shard(0, cmd(&["MGET", "a1", "a2"])),
            "all keys on one shard: no fanout"
        );
    }

    #[test]
    fn mget_splits_per_shard_and_merges_in_key_order() {
        let Route::Fanout(f) = route(
            cmd(&["MGET", "b1", "a1", "b2", "c1", "a2"]),
            3,
            by_first_letter,
        ) else {
            panic!("expected a fanout")
        };
        assert_eq!(
            f.parts,
            vec![
                (1, cmd(&["MGET", "b1", "b2"])),
                (0, cmd(&["MGET", "a1", "a2"])),
                (2, cmd(&["MGET", "c1"]))
            ]
        );
        let merged = f.merge(vec![
            Reply::Array(vec![Reply::bulk_from(b"B1"), Reply::Nil]),
            Reply::Array(vec![Reply::bulk_from(b"A1"), Reply::bulk_from(b"A2")]),
            Reply::Array(vec![Reply::bulk_from(b"C1")]),
        ]);
        assert_eq!(
            merged,
            Reply::Array(vec![
                Reply::bulk_from(b"B1"),
                Reply::bulk_from(b"A1"),
                Reply::Nil,
                Reply::bulk_from(b"C1"),
                Reply::bulk_from(b"A2"),
            ])
        );
    }

    #[test]
    fn mset_del_exists_dbsize_across_shards_match_one_store() {
        let mut sharded: Vec<Store> = (0..3).map(|_| Store::new()).collect();
        let mut single = Store::new();
        let script: &[&[&str]] = &[
            &[
                "MSET", "a1", "1", "b1", "2", "c1", "3", "a2", "4", "a1", "5",
            ],
            &["MGET", "c1", "a1", "c7", "b1", "a2"],
            &["EXISTS", "a1", "b1", "c9", "a1"],
            &["DBSIZE"],
            &["DEL", "a1", "c1", "b9", "c1"],
            &["MGET", "a1", "b1", "c1", "a2"],
            &["DBSIZE"],
        ];
        for words in script {
            let expected = single.execute(cmd(words));
            assert_eq!(run_sharded(&mut sharded, words), expected, "{words:?}");
        }
        assert_eq!(sharded.iter().map(Store::len).sum::<usize>(), single.len());
    }

    #[test]
    fn a_split_mset_is_applied_part_by_part_not_atomically() {
        // Unlike redis-server (atomic) and Redis Cluster (CROSSSLOT), the
        // parts land one at a time: a read between them sees a mix.
        let mut stores: Vec<Store> = (0..2).map(|_| Store::new()).collect();
        run_sharded(&mut stores, &["MSET", "a", "old", "b", "old"]);
        let Route::Fanout(f) = route(cmd(&["MSET", "a", "new", "b", "new"]), 2, by_first_letter)
        else {
            panic!("keys on two shards: a fanout, not a CROSSSLOT refusal")
        };
        let (parts, merge) = f.into_parts();
        let mut replies = Vec::new();
        let mut parts = parts.into_iter();
        let (shard, first) = parts.next().unwrap();
        replies.push(stores[shard].execute(first));
        assert_eq!(
            run_sharded(&mut stores, &["MGET", "a", "b"]),
            Reply::Array(vec![Reply::bulk_from(b"new"), Reply::bulk_from(b"old")]),
            "half of the MSET is visible"
        );
        // An error from the other shard is the reply, yet the first part
        // stays written.
        assert_eq!(parts.next().map(|(s, _)| s), Some(1));
        replies.push(Reply::error("ERR shard gone"));
        assert_eq!(merge.merge(replies), Reply::error("ERR shard gone"));
        assert_eq!(
            run_sharded(&mut stores, &["GET", "a"]),
            Reply::bulk_from(b"new")
        );
        // Keys of one shard are one part, applied at once.
        assert_eq!(
            route(cmd(&["MSET", "a1", "x", "a2", "y"]), 2, by_first_letter),
            Route::Shard(0, cmd(&["MSET", "a1", "x", "a2", "y"]))
        );
    }

    #[test]
    fn dbsize_asks_every_shard() {
        let Route::Fanout(f) = route(Command::DbSize, 4, by_first_letter) else {
            panic!()
        };
        assert_eq!(
            f.parts.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        assert_eq!(
            f.merge((1..=4).map(Reply::Integer).collect()),
            Reply::Integer(10)
        );
        assert_eq!(
            route(Command::DbSize, 1, by_first_letter),
            Route::Shard(0, Command::DbSize)
        );
    }

    #[test]
    fn an_error_from_any_part_is_the_reply() {
        let Route::Fanout(f) = route(cmd(&["DEL", "a", "b"]), 2, by_first_letter) else {
            panic!()
        };
        assert_eq!(
            f.merge(vec![Reply::Integer(1), Reply::error("ERR shard gone")]),
            Reply::error("ERR shard gone")
        );
    }

    #[test]
    fn wrongly_shaped_partial_replies_get_an_error_not_a_panic() {
        let Route::Fanout(f) = route(cmd(&["MGET", "a", "b"]), 2, by_first_letter) else {
            panic!()
        };
        let bad = Reply::error("ERR internal: a shard's partial reply has the wrong shape");
        assert_eq!(f.merge(vec![Reply::Array(vec![])]), bad, "too few parts");
        assert_eq!(
            f.merge(vec![Reply::Array(vec![]), Reply::Array(vec![Reply::Nil])]),
            bad,
            "short part"
        );
        assert_eq!(
            f.merge(vec![Reply::Integer(1), Reply::Array(vec![Reply::Nil])]),
            bad,
            "not an array"
        );
        let Route::Fanout(f) = route(cmd(&["MSET", "a", "1", "b", "2"]), 2, by_first_letter) else {
            panic!()
        };
        assert_eq!(f.merge(vec![Reply::ok(), Reply::Nil]), bad);
        assert_eq!(f.merge(vec![Reply::ok(), Reply::ok()]), Reply::ok());
    }
}
