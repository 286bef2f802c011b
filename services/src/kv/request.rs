//! Cutting requests out of a connection's input buffer.
//!
//! A request is either a RESP2 multibulk (`*<n>\r\n` then `n` bulk strings),
//! decoded with `redis-protocol`, or an inline command (a line of
//! whitespace-separated words, as typed into telnet), as Redis accepts both.
//! Decoding is incremental: a partial request stays in the buffer and
//! [`parse_request`] answers `Ok(None)` until more bytes arrive.
//!
//! `redis-protocol` waits for a whole frame before it says anything, so a
//! header announcing a 100 GB bulk string would make the server buffer
//! forever. When a frame is incomplete (or fails to decode), a short scan
//! of the headers already received checks them against the [`Limits`]
//! first, so bad input is refused as soon as its header arrives. The errors
//! are Redis's own (`ERR Protocol error: invalid bulk length`, …); after one
//! the connection must be closed, since the stream has lost its framing.

use std::fmt;

use bytes::{Bytes, BytesMut};
use redis_protocol::resp2::{decode::decode_range, types::RangeFrame};

/// Size limits for one request. Anything beyond them is a protocol error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest bulk string (key or value) accepted, in bytes. Redis's
    /// `proto-max-bulk-len` is 512 MB; the default here is
    /// [`Limits::DEFAULT_MAX_BULK_LEN`] (16 MiB), which bounds what one
    /// connection can make the server buffer.
    pub max_bulk_len: usize,
    /// Most arguments in one multibulk request (default 1 Mi).
    pub max_args: usize,
    /// Longest inline request line (Redis: 64 KiB).
    pub max_inline_len: usize,
}

impl Limits {
    /// Default [`Limits::max_bulk_len`]: 16 MiB.
    pub const DEFAULT_MAX_BULK_LEN: usize = 16 << 20;
    /// Default [`Limits::max_args`].
    pub const DEFAULT_MAX_ARGS: usize = 1 << 20;
    /// Default [`Limits::max_inline_len`], as in Redis.
    pub const DEFAULT_MAX_INLINE_LEN: usize = 64 << 10;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: Self::DEFAULT_MAX_BULK_LEN,
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
        }
    }
}

impl std::error::Error for ProtocolError {}

/// Takes the next request's arguments out of `buf`.
///
/// `Ok(None)`: no whole request yet (the partial one stays in `buf`).
/// `Ok(Some(args))`: one request, never empty (empty requests — `*0`,
/// `*-1`, blank lines — are skipped as Redis skips them); the arguments
/// share one allocation with the request's bytes, which left `buf`.
/// `Err`: the input is malformed; reply [`ProtocolError::reply`] and close.
pub fn parse_request(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    loop {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        let args = if first == b'*' {
            multibulk(buf, limits)?
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

fn multibulk(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let (frame, used) = match decode_range(buf) {
        Ok(Some(decoded)) => decoded,
        Ok(None) => {
            // Incomplete: refuse now if a header already received is bad.
            check_headers(buf, limits)?;
            return Ok(None);
        }
        Err(_) => {
            check_headers(buf, limits)?;
            // The scan found nothing more precise; the count line is bad.
            return Err(ProtocolError::InvalidMultibulkLength);
        }
    };
    let items = match frame {
        RangeFrame::Array(items) => items,
        // `*-1`: a null multibulk, skipped.
        RangeFrame::Null => {
            let _ = buf.split_to(used);
            return Ok(Some(Vec::new()));
        }
        // Starts with '*', so redis-protocol decodes an array or null.
        _ => return Err(ProtocolError::InvalidMultibulkLength),
    };
    if items.len() > limits.max_args {
        return Err(ProtocolError::InvalidMultibulkLength);
    }
    let request = buf.split_to(used).freeze();
    items
        .into_iter()
        .map(|item| match item {
            RangeFrame::BulkString((start, end)) => {
                if end - start > limits.max_bulk_len {
                    Err(ProtocolError::InvalidBulkLength)
                } else {
                    Ok(request.slice(start..end))
                }
            }
            RangeFrame::Null => Err(ProtocolError::InvalidBulkLength),
            RangeFrame::SimpleString(_) => Err(ProtocolError::ExpectedBulk(b'+')),
            RangeFrame::Error(_) => Err(ProtocolError::ExpectedBulk(b'-')),
            RangeFrame::Integer(_) => Err(ProtocolError::ExpectedBulk(b':')),
            RangeFrame::Array(_) => Err(ProtocolError::ExpectedBulk(b'*')),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The longest `*<n>` / `$<n>` header line accepted before its CRLF.
const MAX_HEADER_LINE: usize = 32;

/// Scans the headers of a (possibly partial) multibulk against `limits`.
/// `Ok(())` means nothing received so far is wrong.
fn check_headers(buf: &[u8], limits: &Limits) -> Result<(), ProtocolError> {
    let Some(header) = header_number(buf, 1, ProtocolError::InvalidMultibulkLength)? else {
        return Ok(());
    };
    let (count, mut pos) = header;
    if count < -1 || count > limits.max_args as i64 {
        return Err(ProtocolError::InvalidMultibulkLength);
    }
    for _ in 0..count.max(0) {
        let Some(&kind) = buf.get(pos) else {
            return Ok(());
        };
        if kind != b'$' {
            return Err(ProtocolError::ExpectedBulk(kind));
        }
        let Some((len, next)) = header_number(buf, pos + 1, ProtocolError::InvalidBulkLength)?
        else {
            return Ok(());
        };
        if len < 0 || len > limits.max_bulk_len as i64 {
            return Err(ProtocolError::InvalidBulkLength);
        }
        pos = next + len as usize + 2;
    }
    Ok(())
}

/// Reads the decimal number on the header line starting at `start`.
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
    let number = std::str::from_utf8(&rest[..cr])
        .ok()
        .and_then(|text| text.parse::<i64>().ok())
        .ok_or(invalid)?;
    Ok(Some((number, start + cr + 2)))
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
            match parse_request(&mut buf, &Limits::default()) {
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
            let mut buf = BytesMut::from(&input[..split]);
            let mut got = Vec::new();
            while let Some(req) = parse_request(&mut buf, &Limits::default()).unwrap() {
                got.push(req);
            }
            buf.extend_from_slice(&input[split..]);
            while let Some(req) = parse_request(&mut buf, &Limits::default()).unwrap() {
                got.push(req);
            }
            assert_eq!(
                got,
                vec![args(&["SET", "key", "va\r\nl"]), args(&["PING"])],
                "split at {split}"
            );
            assert!(buf.is_empty());
        }
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
            parse_request(&mut buf, &limits),
            Err(ProtocolError::InvalidBulkLength)
        );
        // Exactly at the limit is fine, also when it arrives whole.
        let mut buf = BytesMut::from(&b"*2\r\n$4\r\nECHO\r\n$10\r\n0123456789\r\n"[..]);
        assert_eq!(
            parse_request(&mut buf, &limits).unwrap().unwrap()[1].len(),
            10
        );
        // One above, arriving whole, is refused too.
        let mut buf = BytesMut::from(&b"*2\r\n$4\r\nECHO\r\n$11\r\n0123456789a\r\n"[..]);
        assert_eq!(
            parse_request(&mut buf, &limits),
            Err(ProtocolError::InvalidBulkLength)
        );
        // The default refuses a header announcing 100 GB at once.
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$100000000000\r\n"[..]);
        assert_eq!(
            parse_request(&mut buf, &Limits::default()),
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
            parse_request(&mut buf, &limits),
            Err(ProtocolError::InvalidMultibulkLength)
        );
        let mut buf = BytesMut::from(&[b"*".as_slice(), &[b'1'; 40]].concat()[..]);
        assert_eq!(
            parse_request(&mut buf, &limits),
            Err(ProtocolError::InvalidMultibulkLength)
        );
        let mut buf = BytesMut::from(&[b"*1\r\n$".as_slice(), &[b'1'; 40]].concat()[..]);
        assert_eq!(
            parse_request(&mut buf, &limits),
            Err(ProtocolError::InvalidBulkLength)
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
            parse_request(&mut buf, &limits),
            Err(ProtocolError::TooBigInline)
        );
        let mut buf = BytesMut::from(&[b'a'; 16][..]);
        assert_eq!(parse_request(&mut buf, &limits), Ok(None));
    }
}
