//! Cutting requests out of a connection's input buffer.
//!
//! A request is either a RESP2 multibulk (`*<n>\r\n` then `n` bulk strings)
//! or an inline command (a line of whitespace-separated words, as typed
//! into telnet), as Redis accepts both. Decoding is incremental: a partial
//! request stays in the buffer and [`parse_request`] answers `Ok(None)`
//! until more bytes arrive.
//!
//! The multibulk walk is written here rather than taken from
//! `redis-protocol`, for two reasons. A request has one shape (an array of
//! bulk strings), and decoding it as a general RESP frame cost a quarter of
//! the kv server's CPU under pipelined GETs (PERFORMANCE.md); this walk
//! allocates only the argument list. And each header is checked against
//! the [`Limits`] as soon as it arrives, so a header announcing a 100 GB
//! bulk string is refused at once instead of buffered. The tests check the
//! walk against `redis-protocol`'s decoder on generated and mangled input.
//! The errors are Redis's own (`ERR Protocol error: invalid bulk length`,
//! …); after one the connection must be closed, since the stream has lost
//! its framing.

use std::fmt;

use bytes::{Bytes, BytesMut};

/// Size limits for one request. Anything beyond them is a protocol error,
/// found as soon as the header that declares it arrives (nothing beyond a
/// limit is ever buffered); the connection is then closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest bulk string (key or value) accepted, in bytes: Redis's
    /// `proto-max-bulk-len`, with its default ([`Limits::DEFAULT_MAX_BULK_LEN`],
    /// 512 MiB). Refused with Redis's `ERR Protocol error: invalid bulk
    /// length`.
    pub max_bulk_len: usize,
    /// Longest request, in bytes (headers and data, as declared): Redis's
    /// `client-query-buffer-limit`, with its default
    /// ([`Limits::DEFAULT_MAX_QUERY_LEN`], 1 GiB). This is what bounds the
    /// input one connection can make the server hold: a request declaring
    /// more is refused at the header that crosses the limit (Redis closes
    /// such a client without a reply; this answers
    /// `ERR Protocol error: request exceeds client-query-buffer-limit`
    /// before closing).
    pub max_query_len: usize,
    /// Most arguments in one multibulk request (default 1 Mi; Redis accepts
    /// up to `INT_MAX`, bounded in practice by `client-query-buffer-limit`).
    pub max_args: usize,
    /// Longest inline request line (Redis: 64 KiB, `PROTO_INLINE_MAX_SIZE`).
    pub max_inline_len: usize,
}

impl Limits {
    /// Default [`Limits::max_bulk_len`]: 512 MiB, Redis's
    /// `proto-max-bulk-len`.
    pub const DEFAULT_MAX_BULK_LEN: usize = 512 << 20;
    /// Default [`Limits::max_query_len`]: 1 GiB, Redis's
    /// `client-query-buffer-limit`.
    pub const DEFAULT_MAX_QUERY_LEN: usize = 1 << 30;
    /// Default [`Limits::max_args`].
    pub const DEFAULT_MAX_ARGS: usize = 1 << 20;
    /// Default [`Limits::max_inline_len`], as in Redis.
    pub const DEFAULT_MAX_INLINE_LEN: usize = 64 << 10;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: Self::DEFAULT_MAX_BULK_LEN,
            max_query_len: Self::DEFAULT_MAX_QUERY_LEN,
            max_args: Self::DEFAULT_MAX_ARGS,
            max_inline_len: Self::DEFAULT_MAX_INLINE_LEN,
        }
    }
}

/// Why a request could not be read. The connection must be closed after
/// the error reply: the byte stream has lost its framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// `*<n>` is not a number, is negative (other than -1) or above
    /// [`Limits::max_args`].
    InvalidMultibulkLength,
    /// `$<n>` is not a number, is negative or above [`Limits::max_bulk_len`].
    InvalidBulkLength,
    /// An element of a multibulk is not a bulk string; carries the type byte.
    ExpectedBulk(u8),
    /// An inline request longer than [`Limits::max_inline_len`].
    TooBigInline,
    /// A multibulk request that declares more than
    /// [`Limits::max_query_len`] bytes in all.
    TooBigRequest,
}

impl ProtocolError {
    /// The error reply Redis sends for this (before closing the connection).
    pub fn reply(self) -> super::Reply {
        super::Reply::error_owned(format!("ERR Protocol error: {self}"))
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::InvalidMultibulkLength => f.write_str("invalid multibulk length"),
            ProtocolError::InvalidBulkLength => f.write_str("invalid bulk length"),
            ProtocolError::ExpectedBulk(got) => {
                write!(
                    f,
                    "expected '$', got '{}'",
                    char::from(*got).escape_default()
                )
            }
            ProtocolError::TooBigInline => f.write_str("too big inline request"),
            ProtocolError::TooBigRequest => {
                f.write_str("request exceeds client-query-buffer-limit")
            }
        }
    }
}

impl std::error::Error for ProtocolError {}

/// How far the walk of a partial multibulk request at the front of a
/// buffer got, so that the next [`parse_request`] resumes there: a request
/// of a million arguments arrives in hundreds of reads, and walking it from
/// its start on each would take seconds of the worker's time. Keep one per
/// connection, next to its input buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartialRequest {
    /// The request's argument count (0 until its header has arrived).
    args: usize,
    /// How many of its arguments were walked.
    walked: usize,
    /// Where the next argument's header starts (0: nothing walked yet).
    pos: usize,
}

/// Takes the next request's arguments out of `buf`.
///
/// `Ok(None)`: no whole request yet (the partial one stays in `buf`, and
/// `partial` remembers how far it was checked; append to `buf` and call
/// again with the same `partial`).
/// `Ok(Some(args))`: one request, never empty (empty requests — `*0`,
/// `*-1`, blank lines — are skipped as Redis skips them); the arguments
/// share one allocation with the request's bytes, which left `buf`.
/// `Err`: the input is malformed; reply [`ProtocolError::reply`] and close.
pub fn parse_request(
    buf: &mut BytesMut,
    limits: &Limits,
    partial: &mut PartialRequest,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    loop {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        let args = if first == b'*' {
            multibulk(buf, limits, partial)?
        } else {
            inline(buf, limits)?
        };
        match args {
            None => return Ok(None),
            Some(args) if args.is_empty() => continue,
            Some(args) => return Ok(Some(args)),
        }
    }
}

fn multibulk(
    buf: &mut BytesMut,
    limits: &Limits,
    partial: &mut PartialRequest,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let from = std::mem::take(partial);
    let (end, count) = match walk_multibulk(buf, limits, from, |_, _| {})? {
        Walk::Whole { end, args } => (end, args),
        Walk::Partial(so_far) => {
            *partial = so_far;
            return Ok(None);
        }
    };
    // The request is whole and valid: take it out of the buffer and walk it
    // again from its start, slicing out the arguments (this walk cannot
    // fail, and runs once per request).
    let request = buf.split_to(end).freeze();
    let mut args = Vec::with_capacity(count);
    walk_multibulk(&request, limits, PartialRequest::default(), |start, end| {
        args.push(request.slice(start..end))
    })?;
    Ok(Some(args))
}

/// Where a walk of a multibulk request ended.
enum Walk {
    /// The request is whole: its length in bytes and its argument count.
    Whole { end: usize, args: usize },
    /// Nothing received so far is wrong, but the request is not whole yet.
    Partial(PartialRequest),
}

/// The longest `*<n>` / `$<n>` header line accepted before its CRLF.
const MAX_HEADER_LINE: usize = 32;

/// Walks the multibulk request at the front of `buf` from where an
/// earlier walk got (`from`), checking every header against `limits` as
/// soon as it has arrived and calling `on_arg` with the byte range of each
/// argument it walks.
fn walk_multibulk(
    buf: &[u8],
    limits: &Limits,
    from: PartialRequest,
    mut on_arg: impl FnMut(usize, usize),
) -> Result<Walk, ProtocolError> {
    let mut at = from;
    if at.pos == 0 {
        let Some((count, pos)) = header_number(buf, 1, ProtocolError::InvalidMultibulkLength)?
        else {
            return Ok(Walk::Partial(at));
        };
        if count < -1 || count > limits.max_args as i64 {
            return Err(ProtocolError::InvalidMultibulkLength);
        }
        at.args = count.max(0) as usize;
        at.pos = pos;
    }
    while at.walked < at.args {
        let Some(&kind) = buf.get(at.pos) else {
            return Ok(Walk::Partial(at));
        };
        if kind != b'$' {
            return Err(ProtocolError::ExpectedBulk(kind));
        }
        let Some((len, start)) = header_number(buf, at.pos + 1, ProtocolError::InvalidBulkLength)?
        else {
            return Ok(Walk::Partial(at));
        };
        if len < 0 || len > limits.max_bulk_len as i64 {
            return Err(ProtocolError::InvalidBulkLength);
        }
        let end = start + len as usize;
        // The whole request so far, this bulk's data and CRLF included, as
        // its headers declare it (none of it need have arrived).
        if end + 2 > limits.max_query_len {
            return Err(ProtocolError::TooBigRequest);
        }
        // The two bytes after the data are skipped, not checked, as Redis
        // and redis-protocol skip them: the length alone frames the data.
        if buf.len() < end + 2 {
            return Ok(Walk::Partial(at));
        }
        on_arg(start, end);
        at.walked += 1;
        at.pos = end + 2;
    }
    Ok(Walk::Whole {
        end: at.pos,
        args: at.args,
    })
}

/// Reads the decimal number (a sign and at most 18 digits, as
/// redis-protocol reads them) on the header line starting at `start`.
/// `Ok(None)`: the line has not fully arrived yet. Returns the number and
/// the position after its CRLF.
fn header_number(
    buf: &[u8],
    start: usize,
    invalid: ProtocolError,
) -> Result<Option<(i64, usize)>, ProtocolError> {
    let rest = buf.get(start..).unwrap_or(&[]);
    let window = &rest[..rest.len().min(MAX_HEADER_LINE)];
    let Some(cr) = window.iter().position(|&b| b == b'\r') else {
        return if rest.len() >= MAX_HEADER_LINE {
            Err(invalid)
        } else {
            Ok(None)
        };
    };
    match rest.get(cr + 1) {
        None => return Ok(None),
        Some(b'\n') => {}
        Some(_) => return Err(invalid),
    }
    let (negative, digits) = match &rest[..cr] {
        [b'-', digits @ ..] => (true, digits),
        [b'+', digits @ ..] => (false, digits),
        digits => (false, digits),
    };
    // 18 digits cannot overflow an i64, and no limit is near 10^18.
    if digits.is_empty() || digits.len() > 18 {
        return Err(invalid);
    }
    let mut number = 0i64;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return Err(invalid);
        }
        number = number * 10 + i64::from(digit - b'0');
    }
    Ok(Some((
        if negative { -number } else { number },
        start + cr + 2,
    )))
}

fn inline(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(newline) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() > limits.max_inline_len {
            Err(ProtocolError::TooBigInline)
        } else {
            Ok(None)
        };
    };
    if newline > limits.max_inline_len {
        return Err(ProtocolError::TooBigInline);
    }
    let line = buf.split_to(newline + 1).freeze();
    let mut args = Vec::new();
    let mut start = None;
    for (i, &b) in line.iter().enumerate() {
        match (b.is_ascii_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                args.push(line.slice(s..i));
                start = None;
            }
            _ => {}
        }
    }
    Ok(Some(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> (Vec<Vec<Bytes>>, Result<(), ProtocolError>, usize) {
        let mut buf = BytesMut::from(input);
        let mut requests = Vec::new();
        loop {
            match parse_request(&mut buf, &Limits::default(), &mut PartialRequest::default()) {
                Ok(Some(args)) => requests.push(args),
                Ok(None) => return (requests, Ok(()), buf.len()),
                Err(e) => return (requests, Err(e), buf.len()),
            }
        }
    }

    fn args(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    #[test]
    fn one_multibulk_request() {
        let (reqs, end, left) = parse_all(b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n");
        assert_eq!(reqs, vec![args(&["GET", "key"])]);
        assert_eq!((end, left), (Ok(()), 0));
    }

    #[test]
    fn pipelined_requests_in_one_buffer_come_out_in_order() {
        let input = b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n";
        let (reqs, end, left) = parse_all(input);
        assert_eq!(
            reqs,
            vec![
                args(&["PING"]),
                args(&["SET", "a", "1"]),
                args(&["GET", "a"])
            ]
        );
        assert_eq!((end, left), (Ok(()), 0));
    }

    #[test]
    fn a_partial_request_waits_for_more_bytes_at_every_split_point() {
        let input: &[u8] = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n*1\r\n$4\r\nPING\r\n";
        for split in 0..input.len() {
            let limits = Limits::default();
            let mut partial = PartialRequest::default();
            let mut buf = BytesMut::from(&input[..split]);
            let mut got = Vec::new();
            while let Some(req) = parse_request(&mut buf, &limits, &mut partial).unwrap() {
                got.push(req);
            }
            buf.extend_from_slice(&input[split..]);
            while let Some(req) = parse_request(&mut buf, &limits, &mut partial).unwrap() {
                got.push(req);
            }
            assert_eq!(
                got,
                vec![args(&["SET", "key", "va\r\nl"]), args(&["PING"])],
                "split at {split}"
            );
            assert!(buf.is_empty());
            assert_eq!(partial, PartialRequest::default());
        }
    }

    /// A request arriving in many reads is walked once, not once per read:
    /// each call resumes at the first argument not walked yet.
    #[test]
    fn a_long_request_is_resumed_where_the_last_read_ended() {
        let limits = Limits::default();
        let mut partial = PartialRequest::default();
        let mut buf = BytesMut::new();
        let mut walked = Vec::new();
        let n = 1000;
        let mut input = format!("*{}\r\n$4\r\nMSET\r\n", 2 * n + 1).into_bytes();
        for i in 0..n {
            let key = format!("key:{i}");
            input.extend_from_slice(format!("${}\r\n{key}\r\n$1\r\nv\r\n", key.len()).as_bytes());
        }
        let mut got = None;
        for chunk in input.chunks(100) {
            buf.extend_from_slice(chunk);
            got = parse_request(&mut buf, &limits, &mut partial).unwrap();
            walked.push(partial.walked);
        }
        let got = got.expect("whole after the last chunk");
        assert_eq!(got.len(), 2 * n + 1);
        assert_eq!(&got[2 * n - 1][..], format!("key:{}", n - 1).as_bytes());
        // Each read added some arguments to what was walked before it.
        let partial_reads = &walked[..walked.len() - 1];
        assert!(partial_reads.windows(2).all(|w| w[0] <= w[1]));
        assert!(partial_reads.last().unwrap() > &(2 * n - 10));
        assert_eq!(partial, PartialRequest::default(), "reset once whole");
    }

    #[test]
    fn binary_and_empty_arguments_are_kept_exactly() {
        let (reqs, _, _) = parse_all(b"*3\r\n$3\r\nSET\r\n$0\r\n\r\n$3\r\n\x00\xff\n\r\n");
        assert_eq!(reqs[0][1], Bytes::new());
        assert_eq!(&reqs[0][2][..], b"\x00\xff\n");
    }

    #[test]
    fn empty_requests_are_skipped() {
        let (reqs, end, left) = parse_all(b"*0\r\n*-1\r\n\r\n \r\n*1\r\n$4\r\nPING\r\n");
        assert_eq!(reqs, vec![args(&["PING"])]);
        assert_eq!((end, left), (Ok(()), 0));
    }

    #[test]
    fn inline_requests_split_on_whitespace() {
        let (reqs, end, left) = parse_all(b"PING\r\nset  k\tv\nGET k");
        assert_eq!(reqs, vec![args(&["PING"]), args(&["set", "k", "v"])]);
        assert_eq!(end, Ok(()));
        assert_eq!(left, 5, "the unterminated line waits");
    }

    #[test]
    fn malformed_input_gets_redis_protocol_errors() {
        let cases: &[(&[u8], ProtocolError, &str)] = &[
            (
                b"*1\r\n:5\r\n",
                ProtocolError::ExpectedBulk(b':'),
                "ERR Protocol error: expected '$', got ':'",
            ),
            (
                b"*1\r\n*1\r\n$4\r\nPING\r\n",
                ProtocolError::ExpectedBulk(b'*'),
                "ERR Protocol error: expected '$', got '*'",
            ),
            (
                b"*1\r\n+PING\r\n",
                ProtocolError::ExpectedBulk(b'+'),
                "ERR Protocol error: expected '$', got '+'",
            ),
            (
                b"*x\r\n",
                ProtocolError::InvalidMultibulkLength,
                "ERR Protocol error: invalid multibulk length",
            ),
            (
                b"*-2\r\n",
                ProtocolError::InvalidMultibulkLength,
                "ERR Protocol error: invalid multibulk length",
            ),
            (
                b"*1\r\n$-1\r\n",
                ProtocolError::InvalidBulkLength,
                "ERR Protocol error: invalid bulk length",
            ),
            (
                b"*1\r\n$abc\r\n",
                ProtocolError::InvalidBulkLength,
                "ERR Protocol error: invalid bulk length",
            ),
            (
                b"*1\r\n$-5\r\nab",
                ProtocolError::InvalidBulkLength,
                "ERR Protocol error: invalid bulk length",
            ),
            (
                b"*2\r\n$3\r\nGET\r\n$3x\r\n",
                ProtocolError::InvalidBulkLength,
                "ERR Protocol error: invalid bulk length",
            ),
        ];
        for (input, error, text) in cases {
            let (_, end, _) = parse_all(input);
            assert_eq!(
                end,
                Err(*error),
                "input {:?}",
                String::from_utf8_lossy(input)
            );
            assert_eq!(
                error.reply(),
                super::super::Reply::error_owned(text.to_string())
            );
        }
    }

    #[test]
    fn requests_before_a_malformed_one_are_still_returned() {
        let (reqs, end, _) = parse_all(b"*1\r\n$4\r\nPING\r\n*1\r\n:1\r\n");
        assert_eq!(reqs, vec![args(&["PING"])]);
        assert_eq!(end, Err(ProtocolError::ExpectedBulk(b':')));
    }

    #[test]
    fn an_oversized_bulk_is_refused_as_soon_as_its_header_arrives() {
        let limits = Limits {
            max_bulk_len: 10,
            ..Limits::default()
        };
        let mut buf = BytesMut::from(&b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$11\r\n"[..]);
        assert_eq!(
            parse_request(&mut buf, &limits, &mut PartialRequest::default()),
            Err(ProtocolError::InvalidBulkLength)
        );
        // Exactly at the limit is fine, also when it arrives whole.
        let mut buf = BytesMut::from(&b"*2\r\n$4\r\nECHO\r\n$10\r\n0123456789\r\n"[..]);
        assert_eq!(
            parse_request(&mut buf, &limits, &mut PartialRequest::default())
                .unwrap()
                .unwrap()[1]
                .len(),
            10
        );
        // One above, arriving whole, is refused too.
        let mut buf = BytesMut::from(&b"*2\r\n$4\r\nECHO\r\n$11\r\n0123456789a\r\n"[..]);
        assert_eq!(
            parse_request(&mut buf, &limits, &mut PartialRequest::default()),
            Err(ProtocolError::InvalidBulkLength)
        );
        // The default refuses a header announcing 100 GB at once.
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$100000000000\r\n"[..]);
        assert_eq!(
            parse_request(&mut buf, &Limits::default(), &mut PartialRequest::default()),
            Err(ProtocolError::InvalidBulkLength)
        );
    }

    #[test]
    fn too_many_arguments_and_endless_headers_are_refused() {
        let limits = Limits {
            max_args: 3,
            ..Limits::default()
        };
        let mut buf = BytesMut::from(&b"*4\r\n"[..]);
        assert_eq!(
            parse_request(&mut buf, &limits, &mut PartialRequest::default()),
            Err(ProtocolError::InvalidMultibulkLength)
        );
        let mut buf = BytesMut::from(&[b"*".as_slice(), &[b'1'; 40]].concat()[..]);
        assert_eq!(
            parse_request(&mut buf, &limits, &mut PartialRequest::default()),
            Err(ProtocolError::InvalidMultibulkLength)
        );
        let mut buf = BytesMut::from(&[b"*1\r\n$".as_slice(), &[b'1'; 40]].concat()[..]);
        assert_eq!(
            parse_request(&mut buf, &limits, &mut PartialRequest::default()),
            Err(ProtocolError::InvalidBulkLength)
        );
    }

    #[test]
    fn lengths_frame_the_data_and_are_plain_decimals() {
        // As in Redis, the two bytes after a bulk's data are not checked.
        let (reqs, end, left) = parse_all(b"*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\r");
        assert_eq!((reqs, end), (vec![args(&["PING"])], Ok(())));
        assert_eq!(left, 13, "the second request waits for its last byte");
        for input in [
            &b"*1\r\n$4-\r\nPING\r\n"[..],
            b"*1\r\n$ 4\r\nPING\r\n",
            b"*1\r\n$4 \r\nPING\r\n",
            b"*1\r\n$\r\n",
            b"*1\r\n$-\r\n",
        ] {
            assert_eq!(
                parse_all(input).1,
                Err(ProtocolError::InvalidBulkLength),
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
        for input in [&b"*+-1\r\n"[..], b"*\r\n", b"*1\rx"] {
            assert_eq!(
                parse_all(input).1,
                Err(ProtocolError::InvalidMultibulkLength),
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
        let (reqs, end, _) = parse_all(b"*+01\r\n$0004\r\nPING\r\n");
        assert_eq!((reqs, end), (vec![args(&["PING"])], Ok(())));
    }

    /// What a parser made of the first request of an input.
    #[derive(Debug, PartialEq)]
    enum Outcome {
        /// A whole request: its arguments and its length in bytes.
        Whole(Vec<Bytes>, usize),
        /// Not whole yet.
        Partial,
        /// Not a request.
        Invalid,
    }

    /// `redis-protocol`'s reading of the first frame, as a request.
    fn reference(input: &[u8]) -> Outcome {
        use redis_protocol::resp2::{decode::decode, types::OwnedFrame};
        match decode(input) {
            Ok(None) => Outcome::Partial,
            Err(_) => Outcome::Invalid,
            Ok(Some((OwnedFrame::Null, used))) => Outcome::Whole(Vec::new(), used),
            Ok(Some((OwnedFrame::Array(items), used))) => {
                let args: Option<Vec<Bytes>> = items
                    .into_iter()
                    .map(|item| match item {
                        OwnedFrame::BulkString(bytes) => Some(Bytes::from(bytes)),
                        _ => None,
                    })
                    .collect();
                args.map_or(Outcome::Invalid, |args| Outcome::Whole(args, used))
            }
            Ok(Some(_)) => Outcome::Invalid,
        }
    }

    /// The walk's reading of the first request (the input starts with `*`),
    /// and its error if any.
    fn ours(input: &[u8]) -> (Outcome, Option<ProtocolError>) {
        let mut buf = BytesMut::from(input);
        match multibulk(&mut buf, &Limits::default(), &mut PartialRequest::default()) {
            Ok(Some(args)) => (Outcome::Whole(args, input.len() - buf.len()), None),
            Ok(None) => (Outcome::Partial, None),
            Err(error) => (Outcome::Invalid, Some(error)),
        }
    }

    /// [`ours`], with the input arriving in two reads (cut at `cut`) and
    /// the second call resuming where the first walk ended.
    fn ours_in_two(input: &[u8], cut: usize) -> Outcome {
        let (limits, mut partial) = (Limits::default(), PartialRequest::default());
        let mut buf = BytesMut::from(&input[..cut]);
        match multibulk(&mut buf, &limits, &mut partial) {
            Ok(Some(args)) => return Outcome::Whole(args, cut - buf.len()),
            Err(_) => return Outcome::Invalid,
            Ok(None) => {}
        }
        buf.extend_from_slice(&input[cut..]);
        match multibulk(&mut buf, &limits, &mut partial) {
            Ok(Some(args)) => Outcome::Whole(args, input.len() - buf.len()),
            Ok(None) => Outcome::Partial,
            Err(_) => Outcome::Invalid,
        }
    }

    /// A deterministic xorshift generator, so a failure can be replayed.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    /// Whether `input` has a CR followed by something other than LF.
    fn has_lone_cr(input: &[u8]) -> bool {
        input
            .windows(2)
            .any(|pair| pair[0] == b'\r' && pair[1] != b'\n')
    }

    /// The walk agrees with redis-protocol on every input, except that it
    /// refuses two kinds of bad input before the request is whole, where
    /// redis-protocol waits: an element that is not a bulk string (refused
    /// when its type byte arrives, as Redis does) and a header line whose
    /// CR is not followed by LF (redis-protocol would wait for a CRLF that
    /// may never come).
    #[test]
    fn the_walk_reads_requests_as_redis_protocol_does() {
        // Bulk data is drawn without CR, so a lone CR comes only from the
        // mangling below, and the allowed differences stay rare.
        const DATA: &[u8] = b"\n*$-+:0123456789 x";
        const NOISE: &[u8] = b"\r\n*$-+:0123456789 x";
        let mut rng = Rng(0x5eed_1234_abcd_ef01);
        let (mut whole, mut partial, mut invalid, mut early) = (0, 0, 0, 0);
        for case in 0..50_000 {
            // One or two well-formed requests of random binary arguments.
            let mut input = Vec::new();
            for _ in 0..1 + rng.below(2) {
                let argc = rng.below(5);
                input.extend_from_slice(format!("*{argc}\r\n").as_bytes());
                for _ in 0..argc {
                    let len = [0, 1, 3, 10, 40][rng.below(5)];
                    input.extend_from_slice(format!("${len}\r\n").as_bytes());
                    input.extend((0..len).map(|_| DATA[rng.below(DATA.len())]));
                    input.extend_from_slice(b"\r\n");
                }
            }
            // Then mangled: cut short, a byte replaced, inserted or removed.
            match rng.below(5) {
                0 => {}
                1 => input.truncate(1 + rng.below(input.len())),
                2 => {
                    let at = 1 + rng.below(input.len() - 1);
                    input[at] = NOISE[rng.below(NOISE.len())];
                }
                3 => {
                    let at = 1 + rng.below(input.len());
                    input.insert(at, NOISE[rng.below(NOISE.len())]);
                }
                _ if input.len() > 1 => {
                    input.remove(1 + rng.below(input.len() - 1));
                }
                _ => {}
            }
            let expected = reference(&input);
            let (got, error) = ours(&input);
            let cut = 1 + rng.below(input.len());
            assert_eq!(
                ours_in_two(&input, cut),
                got,
                "case {case}, cut at {cut}, input {:?}",
                String::from_utf8_lossy(&input)
            );
            if (&got, &expected) == (&Outcome::Invalid, &Outcome::Partial)
                && (matches!(error, Some(ProtocolError::ExpectedBulk(_))) || has_lone_cr(&input))
            {
                early += 1;
                continue;
            }
            match expected {
                Outcome::Whole(..) => whole += 1,
                Outcome::Partial => partial += 1,
                Outcome::Invalid => invalid += 1,
            }
            assert_eq!(
                got,
                expected,
                "case {case}, input {:?}",
                String::from_utf8_lossy(&input)
            );
        }
        // The generator reaches all three outcomes, often.
        assert!(
            whole > 10_000 && partial > 2_000 && invalid > 2_000 && early < 5_000,
            "whole {whole}, partial {partial}, invalid {invalid}, refused early {early}"
        );
    }

    #[test]
    fn a_request_declaring_more_than_the_query_limit_is_refused_at_its_header() {
        let limits = Limits {
            max_bulk_len: 16,
            max_query_len: 64,
            ..Limits::default()
        };
        // Each bulk is within max_bulk_len; the fourth 16-byte one takes
        // the request past 64 bytes: refused at its header, before its data.
        let mut buf = BytesMut::from(&b"*1000\r\n$16\r\n"[..]);
        let mut partial = PartialRequest::default();
        assert_eq!(parse_request(&mut buf, &limits, &mut partial), Ok(None));
        buf.extend_from_slice(b"0123456789abcdef\r\n$16\r\n0123456789abcdef\r\n$16\r\n");
        assert_eq!(
            parse_request(&mut buf, &limits, &mut partial),
            Err(ProtocolError::TooBigRequest)
        );
        assert_eq!(
            ProtocolError::TooBigRequest.reply(),
            super::super::Reply::error_owned(
                "ERR Protocol error: request exceeds client-query-buffer-limit".to_string()
            )
        );
        // Exactly at the limit is whole and fine.
        let exact = b"*2\r\n$4\r\nECHO\r\n$16\r\n0123456789abcdef\r\n";
        let limits = Limits {
            max_query_len: exact.len(),
            ..limits
        };
        let mut buf = BytesMut::from(&exact[..]);
        assert!(
            parse_request(&mut buf, &limits, &mut PartialRequest::default())
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn an_endless_inline_line_is_refused() {
        let limits = Limits {
            max_inline_len: 16,
            ..Limits::default()
        };
        let mut buf = BytesMut::from(&[b'a'; 17][..]);
        assert_eq!(
            parse_request(&mut buf, &limits, &mut PartialRequest::default()),
            Err(ProtocolError::TooBigInline)
        );
        let mut buf = BytesMut::from(&[b'a'; 16][..]);
        assert_eq!(
            parse_request(&mut buf, &limits, &mut PartialRequest::default()),
            Ok(None)
        );
    }
}
