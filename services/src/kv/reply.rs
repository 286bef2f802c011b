//! Replies and their RESP2 encoding.
//!
//! Encoding RESP2 is five cases of "type byte, text, CRLF"; it is written
//! here directly into the connection's output buffer (no intermediate
//! frame). The tests check every case by decoding it back with
//! `redis-protocol`.

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};

/// One RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+text` — a status such as `OK` or `PONG`.
    Status(Cow<'static, str>),
    /// `-text` — an error; the text starts with its kind (`ERR`, `WRONGTYPE`…).
    Error(Cow<'static, str>),
    /// `:n`
    Integer(i64),
    /// `$len` + bytes.
    Bulk(Bytes),
    /// `$-1` — the nil bulk string (a missing key).
    Nil,
    /// `*n` + the elements.
    Array(Vec<Reply>),
}

impl Reply {
    /// `+OK`.
    pub const fn ok() -> Reply {
        Reply::Status(Cow::Borrowed("OK"))
    }

    /// An error reply with a fixed text (including its `ERR` prefix).
    pub const fn error(text: &'static str) -> Reply {
        Reply::Error(Cow::Borrowed(text))
    }

    /// An error reply with a formatted text (including its `ERR` prefix).
    pub fn error_owned(text: String) -> Reply {
        Reply::Error(Cow::Owned(text))
    }

    /// A bulk string copied from `bytes`.
    pub fn bulk_from(bytes: &[u8]) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(bytes))
    }

    /// Whether this is an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends the RESP2 encoding of this reply to `out`.
    ///
    /// Status and error texts cannot carry CR or LF in RESP2; any are
    /// written as spaces (as Redis does for error texts).
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Reply::Status(text) => line(out, b'+', text.as_bytes()),
            Reply::Error(text) => line(out, b'-', text.as_bytes()),
            Reply::Integer(n) => number(out, b':', *n),
            Reply::Bulk(bytes) => {
                number(out, b'$', bytes.len() as i64);
                out.reserve(bytes.len() + 2);
                out.put_slice(bytes);
                out.put_slice(b"\r\n");
            }
            Reply::Nil => out.put_slice(b"$-1\r\n"),
            Reply::Array(items) => {
                number(out, b'*', items.len() as i64);
                for item in items {
                    item.encode(out);
                }
            }
        }
    }

    /// About how many bytes [`encode`](Reply::encode) writes: exact for
    /// the payload, up to 24 bytes over for each header. What a connection
    /// owes before its replies are encoded (see `ReplyQueue::queued_bytes`).
    pub fn encoded_len(&self) -> usize {
        const HEADER: usize = 24;
        match self {
            Reply::Status(text) | Reply::Error(text) => HEADER + text.len(),
            Reply::Integer(_) | Reply::Nil => HEADER,
            Reply::Bulk(bytes) => HEADER + bytes.len(),
            Reply::Array(items) => HEADER + items.iter().map(Reply::encoded_len).sum::<usize>(),
        }
    }

    /// The RESP2 encoding of this reply as a new buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }
}

fn line(out: &mut BytesMut, kind: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.put_u8(kind);
    if text.iter().any(|&b| b == b'\r' || b == b'\n') {
        out.extend(
            text.iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
    } else {
        out.put_slice(text);
    }
    out.put_slice(b"\r\n");
}

fn number(out: &mut BytesMut, kind: u8, n: i64) {
    let mut digits = itoa::Buffer::new();
    line(out, kind, digits.format(n).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis_protocol::resp2::{decode::decode, types::OwnedFrame};

    fn roundtrip(reply: &Reply) -> OwnedFrame {
        let bytes = reply.to_bytes();
        let (frame, used) = decode(&bytes).unwrap().expect("a whole frame");
        assert_eq!(used, bytes.len(), "one frame, nothing left over");
        frame
    }

    #[test]
    fn encoded_len_bounds_the_encoding() {
        let replies = [
            Reply::ok(),
            Reply::error("ERR x"),
            Reply::Integer(i64::MIN),
            Reply::bulk_from(&[7; 1000]),
            Reply::Nil,
            Reply::Array(vec![
                Reply::bulk_from(b"abc"),
                Reply::Nil,
                Reply::Integer(5),
            ]),
        ];
        for reply in replies {
            let real = reply.to_bytes().len();
            let estimate = reply.encoded_len();
            assert!(real <= estimate && estimate <= real + 24 * 4, "{reply:?}");
        }
    }

    #[test]
    fn encodes_every_kind_as_redis_does() {
        assert_eq!(&Reply::ok().to_bytes()[..], b"+OK\r\n");
        assert_eq!(&Reply::error("ERR x").to_bytes()[..], b"-ERR x\r\n");
        assert_eq!(&Reply::Integer(-42).to_bytes()[..], b":-42\r\n");
        assert_eq!(&Reply::bulk_from(b"").to_bytes()[..], b"$0\r\n\r\n");
        assert_eq!(
            &Reply::bulk_from(b"a\r\nb").to_bytes()[..],
            b"$4\r\na\r\nb\r\n"
        );
        assert_eq!(&Reply::Nil.to_bytes()[..], b"$-1\r\n");
        assert_eq!(&Reply::Array(vec![]).to_bytes()[..], b"*0\r\n");
        assert_eq!(
            &Reply::Array(vec![Reply::bulk_from(b"v"), Reply::Nil, Reply::Integer(1)]).to_bytes()[..],
            b"*3\r\n$1\r\nv\r\n$-1\r\n:1\r\n"
        );
    }

    #[test]
    fn redis_protocol_decodes_what_we_encode() {
        assert_eq!(
            roundtrip(&Reply::ok()),
            OwnedFrame::SimpleString(b"OK".to_vec())
        );
        assert_eq!(
            roundtrip(&Reply::error("ERR bad")),
            OwnedFrame::Error("ERR bad".into())
        );
        assert_eq!(
            roundtrip(&Reply::Integer(i64::MIN)),
            OwnedFrame::Integer(i64::MIN)
        );
        assert_eq!(
            roundtrip(&Reply::bulk_from(&[0, 255, 13, 10])),
            OwnedFrame::BulkString(vec![0, 255, 13, 10])
        );
        assert_eq!(roundtrip(&Reply::Nil), OwnedFrame::Null);
        assert_eq!(
            roundtrip(&Reply::Array(vec![
                Reply::Array(vec![Reply::Integer(1)]),
                Reply::Nil
            ])),
            OwnedFrame::Array(vec![
                OwnedFrame::Array(vec![OwnedFrame::Integer(1)]),
                OwnedFrame::Null
            ])
        );
    }

    #[test]
    fn line_breaks_in_texts_become_spaces() {
        let reply = Reply::error_owned("ERR unknown command 'a\r\nb'".into());
        assert_eq!(&reply.to_bytes()[..], b"-ERR unknown command 'a  b'\r\n");
    }
}
