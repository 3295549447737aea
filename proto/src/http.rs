//! HTTP/1.1 on the gateway port: an incremental request parser with size caps, a response writer,
//! chunked transfer encoding for streamed responses, and Server-Sent Events.
//!
//! The parser is fed arbitrary byte chunks and yields complete requests. Malformed input is answered
//! with 400, an oversized body with 413, an oversized head with 431; nothing panics. Request bodies
//! must be framed by `Content-Length` (chunked request bodies get 411 Length Required).

use crate::limits::{DEFAULT_MAX_HTTP_BODY_BYTES, MAX_HTTP_HEADERS, MAX_HTTP_HEAD_BYTES};
use std::fmt;

/// Caps applied while parsing requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Largest request line plus headers.
    pub max_head_bytes: usize,
    /// Most headers.
    pub max_headers: usize,
    /// Largest body.
    pub max_body_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_head_bytes: MAX_HTTP_HEAD_BYTES,
            max_headers: MAX_HTTP_HEADERS,
            max_body_bytes: DEFAULT_MAX_HTTP_BODY_BYTES,
        }
    }
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method, e.g. `GET`.
    pub method: String,
    /// Request target as sent, e.g. `/health?x=1`.
    pub target: String,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub minor_version: u8,
    /// Headers with lower-cased names, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

impl Request {
    /// The first header called `name` (case-insensitive) as text, if it is valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
            .map(str::trim)
    }

    /// Whether a header called `name` is present.
    pub fn has_header(&self, name: &str) -> bool {
        self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// Whether the comma-separated header `name` contains `token` (case-insensitive).
    pub fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// The path part of the target (before `?`).
    pub fn path(&self) -> &str {
        self.target.split(['?', '#']).next().unwrap_or("")
    }

    /// The query part of the target (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.target
            .split_once('?')
            .map(|(_, q)| q.split('#').next().unwrap_or(""))
    }

    /// Whether the client wants the connection kept open after this request.
    pub fn keep_alive(&self) -> bool {
        if self.header_has_token("connection", "close") {
            return false;
        }
        self.minor_version >= 1 || self.header_has_token("connection", "keep-alive")
    }

    /// Whether this is a WebSocket upgrade request (`Upgrade: websocket`).
    pub fn is_websocket_upgrade(&self) -> bool {
        self.header_has_token("upgrade", "websocket")
    }
}

/// A request the parser refuses, with the status to answer it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// 400, 411, 413, 431 or 505.
    pub status: u16,
    /// Why, for the response body.
    pub message: &'static str,
    /// The request's path, when its head could be read (so the answer can take the shape of the
    /// endpoint that was asked for).
    pub path: Option<String>,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl std::error::Error for HttpError {}

impl HttpError {
    const fn new(status: u16, message: &'static str) -> Self {
        HttpError {
            status,
            message,
            path: None,
        }
    }

    fn for_request(status: u16, message: &'static str, request: &Request) -> Self {
        HttpError {
            status,
            message,
            path: Some(request.path().to_owned()),
        }
    }

    /// A plain-text response for this error, with `Connection: close` (the stream cannot be trusted).
    pub fn response(&self) -> Response {
        Response::text(self.status, self.message).header("Connection", "close")
    }
}

enum ParseState {
    Head,
    Body { request: Request, remaining: usize },
}

/// Where a connection is between requests, as [`RequestParser::progress`] tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestProgress {
    /// Nothing of a next request has arrived (a keep-alive connection between requests).
    Idle,
    /// Part of a request line or its headers has arrived.
    Head,
    /// The head is complete and the body is still coming.
    Body,
}

/// Incremental request parser for one connection; handles keep-alive and pipelining.
pub struct RequestParser {
    limits: HttpLimits,
    buf: Vec<u8>,
    state: ParseState,
}

impl fmt::Debug for RequestParser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestParser")
            .field("buffered", &self.buf.len())
            .finish()
    }
}

impl RequestParser {
    /// A parser with the given caps.
    pub fn new(limits: HttpLimits) -> Self {
        RequestParser {
            limits,
            buf: Vec::new(),
            state: ParseState::Head,
        }
    }

    /// Appends received bytes.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes received but not yet part of a returned request (e.g. the first WebSocket frames that
    /// followed an upgrade request). Takes them out of the parser.
    pub fn take_buffered(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// How far the parser is into the next request, for the timeouts of slow clients.
    pub fn progress(&self) -> RequestProgress {
        match &self.state {
            ParseState::Head if self.buf.is_empty() => RequestProgress::Idle,
            ParseState::Head => RequestProgress::Head,
            ParseState::Body { .. } => RequestProgress::Body,
        }
    }

    /// Bytes of memory the parser holds.
    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity()
            + match &self.state {
                ParseState::Head => 0,
                ParseState::Body { request, .. } => request.body.capacity(),
            }
    }

    /// The next complete request, `Ok(None)` when more bytes are needed, or the error to answer.
    /// After an error the connection must be closed.
    pub fn poll_request(&mut self) -> Result<Option<Request>, HttpError> {
        loop {
            match &mut self.state {
                ParseState::Head => {
                    let Some((request, head_len, body_len)) = self.parse_head()? else {
                        return Ok(None);
                    };
                    self.buf.drain(..head_len);
                    if body_len == 0 {
                        self.release_if_idle();
                        return Ok(Some(request));
                    }
                    self.state = ParseState::Body {
                        request,
                        remaining: body_len,
                    };
                }
                ParseState::Body { request, remaining } => {
                    let take = (*remaining).min(self.buf.len());
                    if request.body.capacity() == 0 {
                        request.body.reserve_exact(*remaining);
                    }
                    request.body.extend_from_slice(&self.buf[..take]);
                    self.buf.drain(..take);
                    *remaining -= take;
                    if *remaining > 0 {
                        return Ok(None);
                    }
                    let ParseState::Body { request, .. } = std::mem::replace(&mut self.state, ParseState::Head) else {
                        return Ok(None);
                    };
                    self.release_if_idle();
                    return Ok(Some(request));
                }
            }
        }
    }

    fn release_if_idle(&mut self) {
        if self.buf.is_empty() {
            self.buf = Vec::new();
        }
    }

    fn parse_head(&mut self) -> Result<Option<(Request, usize, usize)>, HttpError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        // Stack storage: no allocation per parse attempt.
        let mut storage = [httparse::EMPTY_HEADER; MAX_HTTP_HEADERS];
        let max_headers = self.limits.max_headers.min(MAX_HTTP_HEADERS);
        let mut req = httparse::Request::new(&mut storage[..max_headers]);
        let head_len = match req.parse(&self.buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                if self.buf.len() > self.limits.max_head_bytes {
                    return Err(HttpError::new(431, "Request Header Fields Too Large"));
                }
                return Ok(None);
            }
            Err(httparse::Error::TooManyHeaders) => return Err(HttpError::new(431, "Request Header Fields Too Large")),
            Err(httparse::Error::Version) => return Err(HttpError::new(505, "HTTP Version Not Supported")),
            Err(_) => return Err(HttpError::new(400, "Bad Request")),
        };
        if head_len > self.limits.max_head_bytes {
            return Err(HttpError::new(431, "Request Header Fields Too Large"));
        }
        let method = req.method.unwrap_or_default().to_owned();
        let target = req.path.unwrap_or_default().to_owned();
        let minor_version = req.version.unwrap_or(1);
        let headers: Vec<(String, Vec<u8>)> = req
            .headers
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
            .collect();
        let request = Request {
            method,
            target,
            minor_version,
            headers,
            body: Vec::new(),
        };
        if request.has_header("transfer-encoding") {
            return Err(HttpError::for_request(411, "Length Required", &request));
        }
        let mut body_len = 0usize;
        let mut seen_length: Option<usize> = None;
        for (name, value) in &request.headers {
            if name != "content-length" {
                continue;
            }
            let parsed = std::str::from_utf8(value)
                .ok()
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok());
            let Some(len) = parsed else {
                return Err(HttpError::for_request(400, "Bad Request", &request));
            };
            if len > self.limits.max_body_bytes as u64 {
                return Err(HttpError::for_request(413, "Payload Too Large", &request));
            }
            let len = len as usize;
            // Differing duplicate lengths are a request-smuggling vector.
            if seen_length.is_some_and(|prev| prev != len) {
                return Err(HttpError::for_request(400, "Bad Request", &request));
            }
            seen_length = Some(len);
            body_len = len;
        }
        Ok(Some((request, head_len, body_len)))
    }
}

/// The reason phrase of a status code.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// An HTTP response with a complete body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, in order. `Content-Length` is added by the encoder.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with a status and no headers or body.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `text/plain` response.
    pub fn text(status: u16, body: &str) -> Self {
        Response::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(body.as_bytes().to_vec())
    }

    /// An `application/json` response with `body` serialized.
    pub fn json<T: serde::Serialize + ?Sized>(status: u16, body: &T) -> Self {
        Response::new(status)
            .header("Content-Type", "application/json; charset=utf-8")
            .body(serde_json::to_vec(body).unwrap_or_else(|_| b"null".to_vec()))
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// Writes the response. With `head_only` (a `HEAD` request) the body is left out but its
    /// length is still announced.
    pub fn encode(&self, head_only: bool, out: &mut Vec<u8>) {
        write_head(self.status, &self.headers, out);
        out.extend_from_slice(b"Content-Length: ");
        out.extend_from_slice(self.body.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        if !head_only {
            out.extend_from_slice(&self.body);
        }
    }
}

fn write_head(status: u16, headers: &[(String, String)], out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        // Header values never carry line breaks, whatever the caller passed.
        let clean = |s: &str| s.replace(['\r', '\n'], " ");
        out.extend_from_slice(clean(name).as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(clean(value).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Starts a streamed response with `Transfer-Encoding: chunked`; follow with [`encode_chunk`] and
/// [`encode_last_chunk`].
pub fn encode_chunked_head(status: u16, headers: &[(String, String)], out: &mut Vec<u8>) {
    write_head(status, headers, out);
    out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
}

/// One chunk of a chunked body (an empty `data` writes nothing, since an empty chunk ends the body).
pub fn encode_chunk(data: &[u8], out: &mut Vec<u8>) {
    if data.is_empty() {
        return;
    }
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The terminating chunk of a chunked body.
pub fn encode_last_chunk(out: &mut Vec<u8>) {
    out.extend_from_slice(b"0\r\n\r\n");
}

/// Server-Sent Events encoding (the `text/event-stream` format).
pub mod sse {
    /// Appends one event. Each line of `data` becomes its own `data:` line, so any text is safe.
    pub fn encode_event(event: Option<&str>, data: &str, out: &mut Vec<u8>) {
        if let Some(name) = event {
            out.extend_from_slice(b"event: ");
            out.extend_from_slice(name.replace(['\r', '\n'], "").as_bytes());
            out.push(b'\n');
        }
        let mut lines = data.split('\n').peekable();
        if lines.peek().is_none() {
            out.extend_from_slice(b"data: \n");
        }
        for line in lines {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(line.trim_end_matches('\r').as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
    }

    /// Appends a comment line, used as a keep-alive.
    pub fn encode_comment(text: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(b": ");
        out.extend_from_slice(text.replace(['\r', '\n'], " ").as_bytes());
        out.extend_from_slice(b"\n\n");
    }

    /// One event of a stream: its `event:` name, if any, and its `data:` lines joined by `\n`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Event {
        /// The `event:` field (`None` means the default type, `message`).
        pub event: Option<String>,
        /// The data, lines joined with `\n`.
        pub data: String,
    }

    /// An incremental decoder of a `text/event-stream` body, as the HTML standard parses one:
    /// lines end in LF, CRLF or CR; a blank line ends an event; lines starting with `:` are
    /// comments; a field without a colon has an empty value; one space after the colon is dropped;
    /// an event without data is not dispatched. Bytes may arrive split anywhere.
    #[derive(Debug, Default)]
    pub struct Decoder {
        buf: Vec<u8>,
        event: Option<String>,
        data: Option<String>,
        /// The last byte consumed was a CR, so an LF right after it belongs to the same line end.
        after_cr: bool,
        /// Longest line kept before the decoder gives up on the stream.
        max_line: Option<usize>,
    }

    /// A line longer than the decoder's limit.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct LineTooLong;

    impl std::fmt::Display for LineTooLong {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("server-sent event line too long")
        }
    }

    impl std::error::Error for LineTooLong {}

    impl Decoder {
        /// A decoder that holds lines of any length.
        pub fn new() -> Decoder {
            Decoder::default()
        }

        /// A decoder that refuses lines longer than `max_line` bytes (a peer that never ends a
        /// line must not make it grow without bound).
        pub fn with_max_line(max_line: usize) -> Decoder {
            Decoder {
                max_line: Some(max_line),
                ..Decoder::default()
            }
        }

        /// Feeds bytes and returns the events they complete, in order.
        pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Event>, LineTooLong> {
            let mut events = Vec::new();
            for &b in bytes {
                if self.after_cr {
                    self.after_cr = false;
                    if b == b'\n' {
                        continue;
                    }
                }
                match b {
                    b'\n' | b'\r' => {
                        self.after_cr = b == b'\r';
                        let line = std::mem::take(&mut self.buf);
                        if let Some(event) = self.line(&line) {
                            events.push(event);
                        }
                    }
                    _ => {
                        if self.max_line.is_some_and(|max| self.buf.len() >= max) {
                            return Err(LineTooLong);
                        }
                        self.buf.push(b);
                    }
                }
            }
            Ok(events)
        }

        fn line(&mut self, line: &[u8]) -> Option<Event> {
            if line.is_empty() {
                let event = self.event.take();
                return self.data.take().map(|data| Event { event, data });
            }
            if line[0] == b':' {
                return None;
            }
            let text = String::from_utf8_lossy(line);
            let (field, value) = match text.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (text.as_ref(), ""),
            };
            match field {
                "data" => match &mut self.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => self.data = Some(value.to_owned()),
                },
                "event" => self.event = Some(value.to_owned()),
                // `id` and `retry` concern reconnection, which a one-shot reader does not do.
                _ => {}
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_sent_events_decode_whatever_the_split_and_line_ends() {
        let mut encoded = Vec::new();
        sse::encode_event(None, "first", &mut encoded);
        sse::encode_comment("keep-alive", &mut encoded);
        sse::encode_event(Some("done"), "two\nlines", &mut encoded);
        encoded.extend_from_slice(b"data:no space\r\n\r\ndata: cr\r\r");
        let expected = vec![
            sse::Event {
                event: None,
                data: "first".into(),
            },
            sse::Event {
                event: Some("done".into()),
                data: "two\nlines".into(),
            },
            sse::Event {
                event: None,
                data: "no space".into(),
            },
            sse::Event {
                event: None,
                data: "cr".into(),
            },
        ];
        for split in 0..encoded.len() {
            let mut d = sse::Decoder::new();
            let mut got = d.feed(&encoded[..split]).unwrap();
            got.extend(d.feed(&encoded[split..]).unwrap());
            assert_eq!(got, expected, "split at {split}");
        }
        let mut d = sse::Decoder::new();
        let one_by_one: Vec<sse::Event> = encoded.iter().flat_map(|b| d.feed(&[*b]).unwrap()).collect();
        assert_eq!(one_by_one, expected);
    }

    #[test]
    fn a_server_sent_line_over_the_limit_is_refused() {
        let mut d = sse::Decoder::with_max_line(8);
        assert!(d.feed(b"data: 12").is_ok());
        assert_eq!(d.feed(b"3"), Err(sse::LineTooLong));
    }

    fn parse_all(input: &[u8]) -> Result<Vec<Request>, HttpError> {
        let mut p = RequestParser::new(HttpLimits::default());
        p.feed(input);
        let mut out = Vec::new();
        while let Some(r) = p.poll_request()? {
            out.push(r);
        }
        Ok(out)
    }

    #[test]
    fn pipelined_requests_with_bodies() {
        let reqs = parse_all(b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /b?x=1 HTTP/1.1\r\nHost: h\r\n\r\n")
            .unwrap();
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].body, b"abc");
        assert_eq!(reqs[1].path(), "/b");
        assert_eq!(reqs[1].query(), Some("x=1"));
        assert_eq!(reqs[1].header("HOST"), Some("h"));
    }

    #[test]
    fn byte_by_byte_feeding_gives_the_same_request() {
        let input = b"POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        let mut p = RequestParser::new(HttpLimits::default());
        let mut got = None;
        for b in input {
            p.feed(&[*b]);
            if let Some(r) = p.poll_request().unwrap() {
                got = Some(r);
            }
        }
        assert_eq!(got.unwrap().body, b"hello");
    }

    #[test]
    fn errors_have_the_right_status() {
        assert_eq!(parse_all(b"GARBAGE\r\n\r\n").unwrap_err().status, 400);
        let big = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            DEFAULT_MAX_HTTP_BODY_BYTES + 1
        );
        assert_eq!(parse_all(big.as_bytes()).unwrap_err().status, 413);
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HTTP_HEAD_BYTES + 1));
        assert_eq!(parse_all(long.as_bytes()).unwrap_err().status, 431);
        let many: String = (0..MAX_HTTP_HEADERS + 1).map(|i| format!("H{i}: v\r\n")).collect();
        assert_eq!(
            parse_all(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes())
                .unwrap_err()
                .status,
            431
        );
        assert_eq!(
            parse_all(b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            parse_all(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            parse_all(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap_err()
                .status,
            411
        );
    }

    #[test]
    fn keep_alive_defaults_by_version() {
        let r = &parse_all(b"GET / HTTP/1.1\r\n\r\n").unwrap()[0];
        assert!(r.keep_alive());
        let r = &parse_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap()[0];
        assert!(!r.keep_alive());
        let r = &parse_all(b"GET / HTTP/1.0\r\n\r\n").unwrap()[0];
        assert!(!r.keep_alive());
    }

    #[test]
    fn head_responses_announce_but_omit_the_body() {
        let mut out = Vec::new();
        Response::text(200, "hi").encode(true, &mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(s.ends_with("Content-Length: 2\r\n\r\n"));
    }

    #[test]
    fn sse_splits_lines() {
        let mut out = Vec::new();
        sse::encode_event(Some("delta"), "a\nb", &mut out);
        assert_eq!(out, b"event: delta\ndata: a\ndata: b\n\n");
    }

    #[test]
    fn chunks_frame_their_length_in_hex() {
        let mut out = Vec::new();
        encode_chunk(&[b'x'; 26], &mut out);
        encode_last_chunk(&mut out);
        assert!(out.starts_with(b"1a\r\n"));
        assert!(out.ends_with(b"\r\n0\r\n\r\n"));
    }
}
