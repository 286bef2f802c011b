//! A keep-alive HTTP/1.1 hit counter, twice: on shardpool ([`server`]) and
//! on axum over a sharded map ([`axum_peer`]), with the same route and the
//! same responses, so that the two can be compared with a real load
//! generator (`services/bench/http-compare.sh`, `wrk`).
//!
//! The service: `GET /hit/<key>` adds one to `<key>`'s counter and answers
//! `200` with the new count (decimal, then `\n`, `text/plain`). `HEAD` is
//! answered as `GET` without the body (it counts too, as axum's `get`
//! routing does). Any other path is a `404`, another method on `/hit/<key>`
//! a `405` with `allow: GET,HEAD`. A key is one non-empty path segment
//! (no `/`); the query string is ignored.
//!
//! This module holds what both servers share: [`parse`] (one request head
//! cut out of a connection's input with `httparse`, with its framing and
//! keep-alive rules), [`route`], and [`write_response`] with its
//! [`DateCache`] — the bytes the shardpool server writes are the bytes
//! hyper writes for the axum handler, headers in the same order.
//!
//! ## When the hop pays off
//! In [`server`] every worker owns its connections *and* a share of the
//! keys. A request whose key the worker owns is answered at once: no lock,
//! no shared cache line, no other thread involved. A request for another
//! worker's key costs a hop: [`Context::ask`](shardpool::Context::ask)
//! sends the question (the key, boxed, and an `Asked`) over the mesh, the
//! owner counts and answers, and the answer comes back through the answer
//! lane from the owner to the asking worker as one of its own messages; the response is
//! written when the asker gets to it. If the owner (or, on the way back,
//! the asker) was asleep, it is woken first. With `n` workers and keys
//! spread evenly, `(n - 1) / n` of the requests hop: half of them on two
//! workers. The axum peer does the whole request on the thread that read
//! it, with an uncontended `Mutex` over one of 64 map shards: tens of
//! nanoseconds.
//!
//! What the design implies:
//! - **With few connections, each waiting for its answer** (`wrk -c 8`
//!   keeps one request in flight per connection), the service is
//!   latency-bound: requests per second are the requests in flight divided
//!   by the time each takes. The hop puts a second core on the critical
//!   path of every other request, and with little work in hand the workers
//!   go idle between requests, so a hop often includes waking the owner
//!   and then the asker — microseconds, against the axum peer's lock of
//!   tens of nanoseconds. Expect the shardpool server to lose here.
//! - **With many busy connections** (`wrk -c 64`), it is throughput-bound.
//!   Each worker has many requests in hand per loop iteration: the
//!   questions of one batch travel together, the answers come back
//!   together, no worker sleeps (so no wake-ups), and one `write` per
//!   connection carries every response a batch completed. The hop's cost
//!   is spread over the batch, and what remains is a request's own cost,
//!   where a worker that owns its sockets pays less than a runtime's
//!   per-connection tasks, wakers and locks. Expect it to win, by a margin
//!   that a counter (the cheapest state there is) keeps small.
//! - Pipelining (several requests in flight per connection) acts like
//!   more connections: the batch amortises the hop.
//! - The hop pays off more as the state grows (per-key token buckets,
//!   sessions, caches): each key's data stays in its owner's cache, where a
//!   lock-based map moves the shard's lines between cores. It disappears
//!   when requests can arrive at their owner (a load balancer hashing the
//!   key onto one port per worker, or clients that know the partitioning):
//!   then no request hops at all.
//!
//! The measured ratios at 8 and 64 connections, and the exact command,
//! are in PERFORMANCE.md.

pub mod axum_peer;
pub mod server;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest request head (request line and headers) a connection may
/// send; a longer one is answered `431` and the connection closed.
pub const MAX_HEAD: usize = 8 * 1024;
/// The most headers a request may carry (a request with more is a `431`).
pub const MAX_HEADERS: usize = 32;
/// The longest request body accepted (and skipped: the counter reads no
/// body); a longer one is answered `413` and the connection closed.
pub const MAX_BODY: usize = 64 * 1024;

/// What a request is answered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `200 OK` with the key's new count.
    Count(u64),
    /// `400 Bad Request`: the bytes are not an HTTP/1.x request (or use a
    /// framing this example does not take, such as a chunked body).
    BadRequest,
    /// `404 Not Found`: not `/hit/<key>`.
    NotFound,
    /// `405 Method Not Allowed`: `/hit/<key>` with neither `GET` nor `HEAD`.
    MethodNotAllowed,
    /// `413 Content Too Large`: a body over [`MAX_BODY`].
    TooLarge,
    /// `431 Request Header Fields Too Large`: a head over [`MAX_HEAD`] or
    /// with more than [`MAX_HEADERS`] headers.
    HeadTooLarge,
    /// `503 Service Unavailable`: the key's owner did not answer (it
    /// failed, or the deadline passed).
    Unavailable,
}

impl Status {
    /// The status line after the version.
    fn line(self) -> &'static [u8] {
        match self {
            Status::Count(_) => b" 200 OK\r\n",
            Status::BadRequest => b" 400 Bad Request\r\n",
            Status::NotFound => b" 404 Not Found\r\n",
            Status::MethodNotAllowed => b" 405 Method Not Allowed\r\n",
            Status::TooLarge => b" 413 Payload Too Large\r\n",
            Status::HeadTooLarge => b" 431 Request Header Fields Too Large\r\n",
            Status::Unavailable => b" 503 Service Unavailable\r\n",
        }
    }
}

/// What the response says about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persist {
    /// HTTP/1.1 default: the connection stays open, nothing said.
    KeepAlive,
    /// An HTTP/1.0 client asked to keep the connection:
    /// `connection: keep-alive`.
    KeepAlive10,
    /// The connection closes after this response: `connection: close`.
    Close,
    /// An HTTP/1.0 request that did not ask to keep the connection: it
    /// closes after the response, which is an `HTTP/1.0` one.
    Close10,
}

impl Persist {
    /// Whether the connection closes after the response.
    pub fn closes(self) -> bool {
        matches!(self, Persist::Close | Persist::Close10)
    }
}

/// Where a request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// Count a hit on this key.
    Hit(&'a [u8]),
    /// Answer this at once.
    Answer(Status),
}

/// Routes a request: `GET` or `HEAD` on `/hit/<key>` to [`Route::Hit`],
/// anything else to its error status.
///
/// ```
/// use shardpool_services::http::{route, Route, Status};
///
/// assert_eq!(route("GET", "/hit/apples?x=1"), Route::Hit(b"apples"));
/// assert_eq!(route("POST", "/hit/apples"), Route::Answer(Status::MethodNotAllowed));
/// assert_eq!(route("GET", "/hit/a/b"), Route::Answer(Status::NotFound));
/// ```
pub fn route<'a>(method: &str, target: &'a str) -> Route<'a> {
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    let Some(key) = path.strip_prefix("/hit/") else {
        return Route::Answer(Status::NotFound);
    };
    if key.is_empty() || key.contains('/') {
        return Route::Answer(Status::NotFound);
    }
    match method {
        "GET" | "HEAD" => Route::Hit(key.as_bytes()),
        _ => Route::Answer(Status::MethodNotAllowed),
    }
}

/// One request cut out of a connection's input.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// The head is not complete yet: read more.
    Partial,
    /// A whole request, `len` bytes of input (head and skipped body).
    Request {
        /// Where it goes.
        route: Route<'a>,
        /// `HEAD`: answer without the body.
        head: bool,
        /// What the response says about the connection, and whether the
        /// connection closes after it.
        persist: Persist,
        /// The bytes it took.
        len: usize,
    },
    /// Not a request this server takes: answer `status` and close the
    /// connection (the rest of its input cannot be framed).
    Invalid(Status),
}

/// Cuts the first request out of `input`: its head with `httparse`, then
/// its body (skipped) as `content-length` frames it. Keep-alive as HTTP/1.1
/// says: a 1.1 request keeps the connection unless it says
/// `connection: close`; a 1.0 request closes it unless it says
/// `connection: keep-alive`.
///
/// ```
/// use shardpool_services::http::{parse, Parsed, Persist, Route};
///
/// let input = b"GET /hit/k HTTP/1.1\r\nhost: x\r\n\r\nGET /hit/k HTTP/1.1\r\n";
/// assert_eq!(
///     parse(input),
///     Parsed::Request { route: Route::Hit(b"k"), head: false, persist: Persist::KeepAlive, len: 32 }
/// );
/// assert_eq!(parse(&input[32..]), Parsed::Partial);
/// ```
pub fn parse(input: &[u8]) -> Parsed<'_> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(input) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if input.len() > MAX_HEAD => {
            return Parsed::Invalid(Status::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Invalid(Status::HeadTooLarge),
        Err(_) => return Parsed::Invalid(Status::BadRequest),
    };
    if head_len > MAX_HEAD {
        return Parsed::Invalid(Status::HeadTooLarge);
    }
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return Parsed::Invalid(Status::BadRequest);
    };
    let mut body = 0usize;
    let mut close = version == 0;
    let mut keep_alive = false;
    let mut said_close = false;
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let parsed = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok());
            match parsed {
                Some(n) if n > MAX_BODY => return Parsed::Invalid(Status::TooLarge),
                Some(n) => body = n,
                None => return Parsed::Invalid(Status::BadRequest),
            }
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            // A chunked body would have to be decoded to be skipped; a
            // counter takes no body, so this example refuses the framing.
            return Parsed::Invalid(Status::BadRequest);
        } else if header.name.eq_ignore_ascii_case("connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                    said_close = true;
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && version == 0 {
                    close = false;
                    keep_alive = true;
                }
            }
        }
    }
    let len = head_len + body;
    if input.len() < len {
        return Parsed::Partial;
    }
    let persist = if close && version == 0 && !said_close {
        Persist::Close10
    } else if close {
        Persist::Close
    } else if keep_alive {
        Persist::KeepAlive10
    } else {
        Persist::KeepAlive
    };
    Parsed::Request {
        route: route(method, target),
        head: method == "HEAD",
        persist,
        len,
    }
}

/// An aHash state with keys drawn from std's per-process random keys (keys
/// come from the network): as hard to flood as std's `HashMap`, cheaper
/// per short key than SipHash. Both servers' maps use it.
fn seeded_hasher() -> ahash::RandomState {
    use std::hash::BuildHasher;
    let std_keys = std::collections::hash_map::RandomState::new();
    let seed = |i: u64| std_keys.hash_one(i);
    ahash::RandomState::with_seeds(seed(0), seed(1), seed(2), seed(3))
}

/// The `date` header's value, formatted once per second.
#[derive(Debug)]
pub struct DateCache {
    second: u64,
    text: String,
}

impl Default for DateCache {
    fn default() -> Self {
        DateCache {
            second: u64::MAX,
            text: String::new(),
        }
    }
}

impl DateCache {
    /// Now, as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
    pub fn now(&mut self) -> &str {
        let now = SystemTime::now();
        let second = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        if second != self.second {
            self.second = second;
            self.text = httpdate::fmt_http_date(now);
        }
        &self.text
    }
}

/// Appends the response for `status` to `out`, byte for byte as hyper
/// writes it for the axum peer (the same headers in the same order; the
/// version is the request's). `head`: without the body.
///
/// ```
/// use shardpool_services::http::{write_response, Persist, Status};
///
/// let mut out = Vec::new();
/// write_response(&mut out, Status::Count(7), false, Persist::KeepAlive, "Sun, 06 Nov 1994 08:49:37 GMT");
/// assert_eq!(
///     out,
///     b"HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 2\r\n\
///       date: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n7\n"
/// );
/// ```
pub fn write_response(out: &mut Vec<u8>, status: Status, head: bool, persist: Persist, date: &str) {
    let version: &[u8] = match persist {
        Persist::KeepAlive10 | Persist::Close10 => b"HTTP/1.0",
        Persist::KeepAlive | Persist::Close => b"HTTP/1.1",
    };
    out.extend_from_slice(version);
    out.extend_from_slice(status.line());
    let connection: &[u8] = match persist {
        Persist::KeepAlive | Persist::Close10 => b"",
        Persist::KeepAlive10 => b"connection: keep-alive\r\n",
        Persist::Close => b"connection: close\r\n",
    };
    let mut digits = itoa::Buffer::new();
    match status {
        Status::Count(n) => {
            let digits = digits.format(n).as_bytes();
            out.extend_from_slice(b"content-type: text/plain; charset=utf-8\r\ncontent-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(digits.len() + 1).as_bytes());
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(connection);
            out.extend_from_slice(b"date: ");
            out.extend_from_slice(date.as_bytes());
            out.extend_from_slice(b"\r\n\r\n");
            if !head {
                out.extend_from_slice(digits);
                out.push(b'\n');
            }
        }
        _ => {
            // hyper's order for an empty body: the handler's headers, then
            // `connection`, `content-length: 0`, `date`.
            if status == Status::MethodNotAllowed {
                out.extend_from_slice(b"allow: GET,HEAD\r\n");
            }
            out.extend_from_slice(connection);
            out.extend_from_slice(b"content-length: 0\r\ndate: ");
            out.extend_from_slice(date.as_bytes());
            out.extend_from_slice(b"\r\n\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelined_requests_are_cut_one_at_a_time() {
        let one = b"GET /hit/a HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut input = one.repeat(3);
        input.extend_from_slice(b"GET /hit/b HT");
        let mut at = 0;
        for _ in 0..3 {
            match parse(&input[at..]) {
                Parsed::Request { route, len, .. } => {
                    assert_eq!(route, Route::Hit(b"a"));
                    at += len;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(parse(&input[at..]), Parsed::Partial);
    }

    #[test]
    fn bodies_are_skipped_and_framing_errors_refused() {
        let input = b"POST /hit/a HTTP/1.1\r\ncontent-length: 3\r\n\r\nabcGET";
        match parse(input) {
            Parsed::Request { route, len, .. } => {
                assert_eq!(route, Route::Answer(Status::MethodNotAllowed));
                assert_eq!(&input[len..], b"GET");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse(b"POST /hit/a HTTP/1.1\r\ncontent-length: 3\r\n\r\nab"),
            Parsed::Partial
        );
        assert_eq!(
            parse(b"GET /hit/a HTTP/1.1\r\ncontent-length: x\r\n\r\n"),
            Parsed::Invalid(Status::BadRequest)
        );
        assert_eq!(
            parse(b"GET /hit/a HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"),
            Parsed::Invalid(Status::BadRequest)
        );
        assert_eq!(
            parse(b"NOT HTTP\r\n\r\n"),
            Parsed::Invalid(Status::BadRequest)
        );
        let huge = format!("GET /hit/a HTTP/1.1\r\nx: {}\r\n", "y".repeat(MAX_HEAD));
        assert_eq!(
            parse(huge.as_bytes()),
            Parsed::Invalid(Status::HeadTooLarge)
        );
    }

    #[test]
    fn keep_alive_follows_the_version_and_the_connection_header() {
        let persist = |input: &[u8]| match parse(input) {
            Parsed::Request { persist, .. } => persist,
            other => panic!("{other:?}"),
        };
        assert_eq!(persist(b"GET / HTTP/1.1\r\n\r\n"), Persist::KeepAlive);
        assert_eq!(
            persist(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n"),
            Persist::Close
        );
        assert_eq!(persist(b"GET / HTTP/1.0\r\n\r\n"), Persist::Close10);
        assert_eq!(
            persist(b"GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n"),
            Persist::KeepAlive10
        );
    }

    #[test]
    fn head_and_errors_have_no_body() {
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        let mut out = Vec::new();
        write_response(&mut out, Status::Count(42), true, Persist::Close, date);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("content-length: 3\r\n"), "{text}");
        assert!(text.contains("connection: close\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "{text}");
        let mut out = Vec::new();
        write_response(
            &mut out,
            Status::MethodNotAllowed,
            false,
            Persist::KeepAlive,
            date,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 405 "), "{text}");
        assert!(
            text.contains("allow: GET,HEAD\r\ncontent-length: 0\r\n"),
            "{text}"
        );
        assert!(text.ends_with("\r\n\r\n"), "{text}");
    }
}
