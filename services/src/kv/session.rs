//! One connection's side of the protocol: its buffers, and replies in order.
//!
//! A [`Session`] holds what a connection has read and not yet parsed, and
//! what it must still write. A server reads into [`Session::input_mut`],
//! takes [`Request`]s with [`Session::next_request`], answers each, and
//! writes out [`Session::output`]. After a protocol error (or `QUIT`) the
//! session yields no more requests: write the output, then close.
//!
//! When some answers come from elsewhere (another shard, over the mesh),
//! a [`ReplyQueue`] keeps a pipeline's replies in request order: reserve a
//! slot per request, fill slots as answers arrive in any order, and flush
//! the ready prefix. [`Gather`] collects the partial replies of one split
//! command and merges them once all have arrived.

use std::collections::VecDeque;

use bytes::BytesMut;

use super::request::{parse_request, PartialRequest};
use super::split::FanoutMerge;
use super::{Command, Limits, Reply};

/// What [`Session::next_request`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// A command to run.
    Command(Command),
    /// A well-framed request that is not a valid command (unknown name,
    /// wrong arity, bad option): send this error reply and carry on.
    Invalid(Reply),
    /// Malformed input: send this error reply, then close the connection.
    Fatal(Reply),
}

/// One connection's input and output buffers.
#[derive(Debug, Default)]
pub struct Session {
    input: BytesMut,
    /// How far the request at the front of `input` was checked.
    partial: PartialRequest,
    output: BytesMut,
    limits: Limits,
    closing: bool,
}

impl Session {
    /// A session enforcing `limits` on every request.
    pub fn new(limits: Limits) -> Self {
        Session {
            limits,
            ..Session::default()
        }
    }

    /// Where to put bytes read from the connection. Append only: the
    /// partial request at the front was checked as far as it had arrived,
    /// and the next [`Session::next_request`] resumes there.
    pub fn input_mut(&mut self) -> &mut BytesMut {
        &mut self.input
    }

    /// The next request in the input, or `None` when no whole request is
    /// buffered (or the session is closing).
    pub fn next_request(&mut self) -> Option<Request> {
        if self.closing {
            return None;
        }
        match parse_request(&mut self.input, &self.limits, &mut self.partial) {
            Ok(None) => None,
            Ok(Some(args)) => Some(match Command::parse(args) {
                Ok(command) => {
                    if command == Command::Quit {
                        self.closing = true;
                    }
                    Request::Command(command)
                }
                Err(reply) => Request::Invalid(reply),
            }),
            Err(error) => {
                self.closing = true;
                self.input.clear();
                Some(Request::Fatal(error.reply()))
            }
        }
    }

    /// Appends a reply to the output.
    pub fn push_reply(&mut self, reply: &Reply) {
        reply.encode(&mut self.output);
    }

    /// Bytes waiting to be written.
    pub fn output(&self) -> &[u8] {
        &self.output
    }

    /// The output buffer (advance it past what was written, or flush a
    /// [`ReplyQueue`] into it).
    pub fn output_mut(&mut self) -> &mut BytesMut {
        &mut self.output
    }

    /// Whether the connection should close once the output is written.
    pub fn is_closing(&self) -> bool {
        self.closing
    }
}

/// Replies of one connection's pipeline, released in request order.
#[derive(Debug, Default)]
pub struct ReplyQueue {
    /// Sequence number of `slots[0]`.
    first: u64,
    slots: VecDeque<Option<Reply>>,
    /// [`Reply::encoded_len`] of the replies in `slots`.
    queued_bytes: usize,
    /// Reserved slots not filled yet (answers still to come).
    unanswered: usize,
}

impl ReplyQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reserves the next slot; its reply comes later through
    /// [`ReplyQueue::fill`]. Returns the slot's sequence number.
    pub fn reserve(&mut self) -> u64 {
        self.slots.push_back(None);
        self.unanswered += 1;
        self.first + self.slots.len() as u64 - 1
    }

    /// A reply that is ready now: encoded into `out` at once when no
    /// earlier reply is still owed (the common case, every request of the
    /// pipeline answered here), queued behind the reserved slots otherwise.
    pub fn push_ready(&mut self, reply: Reply, out: &mut BytesMut) {
        if self.slots.is_empty() {
            reply.encode(out);
            self.first += 1;
            return;
        }
        self.queued_bytes += reply.encoded_len();
        self.slots.push_back(Some(reply));
    }

    /// Fills reserved slot `seq`. Returns `false` (and changes nothing) if
    /// `seq` is not a reserved, unfilled slot — e.g. an answer arriving
    /// twice, or for a slot already flushed.
    pub fn fill(&mut self, seq: u64, reply: Reply) -> bool {
        let Some(index) = seq.checked_sub(self.first) else {
            return false;
        };
        match self.slots.get_mut(index as usize) {
            Some(slot @ None) => {
                self.queued_bytes += reply.encoded_len();
                self.unanswered -= 1;
                *slot = Some(reply);
                true
            }
            _ => false,
        }
    }

    /// Encodes every reply whose predecessors are all done into `out`;
    /// returns how many it wrote.
    pub fn flush_into(&mut self, out: &mut BytesMut) -> usize {
        let mut written = 0;
        while let Some(Some(_)) = self.slots.front() {
            let reply = self.slots.pop_front().flatten().expect("checked above");
            self.queued_bytes -= reply.encoded_len();
            reply.encode(out);
            self.first += 1;
            written += 1;
        }
        written
    }

    /// About how many bytes the replies not flushed yet will take once
    /// encoded (those not answered yet count nothing).
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Reserved slots whose answer has not come yet: their size is not
    /// known until it does, so a server bounds their number.
    pub fn unanswered(&self) -> usize {
        self.unanswered
    }

    /// Replies not flushed yet (reserved or ready).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether every reply was flushed.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// The partial replies of one split command, merged once all are in.
#[derive(Debug)]
pub struct Gather {
    merge: FanoutMerge,
    replies: Vec<Option<Reply>>,
    missing: usize,
}

impl Gather {
    /// Waits for `merge.parts()` partial replies.
    pub fn new(merge: FanoutMerge) -> Self {
        let parts = merge.parts();
        Gather {
            merge,
            replies: vec![None; parts],
            missing: parts,
        }
    }

    /// Records part `part`'s reply; once every part has answered, returns
    /// the merged reply. A part answered twice or out of range is ignored.
    pub fn fill(&mut self, part: usize, reply: Reply) -> Option<Reply> {
        match self.replies.get_mut(part) {
            Some(slot @ None) => {
                *slot = Some(reply);
                self.missing -= 1;
            }
            _ => return None,
        }
        if self.missing > 0 {
            return None;
        }
        let replies = self
            .replies
            .drain(..)
            .map(|r| r.expect("all filled"))
            .collect();
        Some(self.merge.merge(replies))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{route, Route};
    use bytes::Bytes;

    fn feed(session: &mut Session, bytes: &[u8]) -> Vec<Request> {
        session.input_mut().extend_from_slice(bytes);
        std::iter::from_fn(|| session.next_request()).collect()
    }

    #[test]
    fn a_session_answers_a_pipeline_in_order() {
        let mut store = crate::kv::Store::new();
        let mut session = Session::default();
        let requests = feed(&mut session, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n1\r\n*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n*1\r\n$3\r\nFOO\r\nGET k\r\n");
        for request in requests {
            let reply = match request {
                Request::Command(c) => store.execute(c),
                Request::Invalid(r) | Request::Fatal(r) => r,
            };
            session.push_reply(&reply);
        }
        assert_eq!(
            session.output(),
            &b"+OK\r\n:2\r\n-ERR unknown command 'FOO', with args beginning with: \r\n$1\r\n2\r\n"
                [..]
        );
        assert!(!session.is_closing());
    }

    #[test]
    fn malformed_input_is_fatal_and_ends_the_session() {
        let mut session = Session::default();
        let requests = feed(
            &mut session,
            b"*1\r\n$4\r\nPING\r\n*1\r\n:1\r\n*1\r\n$4\r\nPING\r\n",
        );
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0], Request::Command(Command::Ping(None)));
        assert_eq!(
            requests[1],
            Request::Fatal(Reply::error("ERR Protocol error: expected '$', got ':'"))
        );
        assert!(session.is_closing());
        assert!(
            feed(&mut session, b"*1\r\n$4\r\nPING\r\n").is_empty(),
            "nothing after a fatal error"
        );
    }

    #[test]
    fn quit_ends_the_session_after_its_reply() {
        let mut session = Session::default();
        let requests = feed(&mut session, b"QUIT\r\nPING\r\n");
        assert_eq!(requests, vec![Request::Command(Command::Quit)]);
        assert!(session.is_closing());
    }

    #[test]
    fn reply_queue_counts_what_it_owes() {
        let mut queue = ReplyQueue::new();
        let mut out = BytesMut::new();
        let big = Reply::bulk_from(&[b'v'; 4096]);
        let earlier = queue.reserve();
        assert_eq!(queue.queued_bytes(), 0, "a reserved slot owes nothing yet");
        assert_eq!(queue.unanswered(), 1);
        queue.push_ready(big.clone(), &mut out);
        assert!(out.is_empty(), "queued behind the reserved slot");
        assert_eq!(queue.queued_bytes(), big.encoded_len());
        assert!(queue.fill(earlier, Reply::Integer(1)));
        assert_eq!(queue.unanswered(), 0);
        assert_eq!(
            queue.queued_bytes(),
            big.encoded_len() + Reply::Integer(1).encoded_len()
        );
        assert_eq!(queue.flush_into(&mut out), 2);
        assert_eq!(queue.queued_bytes(), 0);
        assert!(out.len() <= big.encoded_len() + Reply::Integer(1).encoded_len());
    }

    #[test]
    fn reply_queue_releases_in_request_order() {
        let mut queue = ReplyQueue::new();
        let mut out = BytesMut::new();
        queue.push_ready(Reply::Integer(1), &mut out);
        assert_eq!(
            &out[..],
            b":1\r\n",
            "nothing owed before it: encoded at once"
        );
        assert!(queue.is_empty());
        let second = queue.reserve();
        queue.push_ready(Reply::Integer(3), &mut out);
        let fourth = queue.reserve();
        assert_eq!(queue.flush_into(&mut out), 0);
        assert_eq!(&out[..], b":1\r\n");
        assert!(queue.fill(fourth, Reply::Integer(4)));
        assert_eq!(
            queue.flush_into(&mut out),
            0,
            "the second reply is still missing"
        );
        assert!(queue.fill(second, Reply::Integer(2)));
        assert!(
            !queue.fill(second, Reply::Integer(99)),
            "a slot is filled once"
        );
        assert_eq!(queue.flush_into(&mut out), 3);
        assert_eq!(&out[..], b":1\r\n:2\r\n:3\r\n:4\r\n");
        assert!(queue.is_empty());
        assert!(
            !queue.fill(fourth, Reply::Integer(5)),
            "flushed slots are gone"
        );
        assert!(
            !queue.fill(1000, Reply::Integer(5)),
            "unknown slots are refused"
        );
    }

    #[test]
    fn gather_merges_once_every_part_is_in() {
        let by_first = |k: &[u8]| (k[0] - b'a') as usize;
        let cmd = Command::MGet(vec![Bytes::from_static(b"b"), Bytes::from_static(b"a")]);
        let Route::Fanout(fanout) = route(cmd, 2, by_first) else {
            panic!()
        };
        let (parts, merge) = fanout.into_parts();
        assert_eq!(parts.len(), 2);
        let mut gather = Gather::new(merge);
        assert_eq!(
            gather.fill(1, Reply::Array(vec![Reply::bulk_from(b"A")])),
            None
        );
        assert_eq!(
            gather.fill(1, Reply::Array(vec![])),
            None,
            "a duplicate is ignored"
        );
        assert_eq!(
            gather.fill(7, Reply::Nil),
            None,
            "an unknown part is ignored"
        );
        assert_eq!(
            gather.fill(0, Reply::Array(vec![Reply::bulk_from(b"B")])),
            Some(Reply::Array(vec![
                Reply::bulk_from(b"B"),
                Reply::bulk_from(b"A")
            ]))
        );
    }
}
