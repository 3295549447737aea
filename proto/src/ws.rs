//! The WebSocket protocol (RFC 6455), sans-IO, for both ends of a connection.
//!
//! - [`accept_upgrade`] checks an HTTP upgrade request and produces the `101` answer (or the HTTP
//!   error to send instead); [`ClientUpgrade`] writes the request a client sends and checks the answer.
//! - [`WsCodec`] decodes frames from arbitrary byte chunks (masking, fragmentation, control frames,
//!   UTF-8 validation, a message size limit that can be raised after authentication) and encodes
//!   frames, tracking the close handshake.
//!
//! No extension is negotiated, so any reserved bit is a protocol error. An idle codec holds no
//! heap memory: buffers are released once a message has been delivered.

use crate::close::{code, is_valid_received_code, truncate_utf8, CloseFrame};
use crate::http::{Request, Response};
use crate::limits::MAX_WS_CLOSE_REASON_BYTES;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::fmt;

/// Which end of the connection a codec serves: servers expect masked frames, clients send them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsRole {
    /// The accepting end.
    Server,
    /// The connecting end.
    Client,
}

/// Frame opcodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// Continuation of a fragmented message.
    Continuation,
    /// UTF-8 text.
    Text,
    /// Binary data.
    Binary,
    /// Close.
    Close,
    /// Ping.
    Ping,
    /// Pong.
    Pong,
}

impl OpCode {
    fn from_bits(bits: u8) -> Option<OpCode> {
        Some(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    const fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    const fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// A complete message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message (valid UTF-8).
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A ping; answer with a pong carrying the same data.
    Ping(Vec<u8>),
    /// A pong.
    Pong(Vec<u8>),
    /// The peer started or answered the close handshake; `None` when it sent no code.
    Close(Option<CloseFrame>),
}

/// A violation that ends the connection; [`WsError::close_frame`] is what to send before closing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsError {
    /// Framing rules broken (reserved bits, bad opcode, unmasked client frame, ...).
    Protocol(&'static str),
    /// A text message or close reason is not valid UTF-8.
    InvalidUtf8,
    /// A message exceeds the size limit.
    TooBig {
        /// The limit in force.
        limit: usize,
    },
}

impl WsError {
    /// The close frame that reports this error to the peer.
    pub fn close_frame(&self) -> CloseFrame {
        match self {
            WsError::Protocol(why) => CloseFrame::new(code::PROTOCOL_ERROR, why),
            WsError::InvalidUtf8 => CloseFrame::new(code::INVALID_PAYLOAD, "invalid utf-8"),
            WsError::TooBig { .. } => CloseFrame::new(code::MESSAGE_TOO_BIG, "message too big"),
        }
    }
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WsError::Protocol(why) => write!(f, "websocket protocol error: {why}"),
            WsError::InvalidUtf8 => f.write_str("websocket text is not valid UTF-8"),
            WsError::TooBig { limit } => write!(f, "websocket message larger than {limit} bytes"),
        }
    }
}

impl std::error::Error for WsError {}

/// Source of the 4-byte masks a client puts on its frames. RFC 6455 wants them unpredictable, so
/// the caller supplies randomness.
pub trait MaskSource: Send {
    /// The next mask.
    fn next_mask(&mut self) -> [u8; 4];
}

/// A small xorshift generator seeded by the caller, good enough for frame masks (which only stop
/// cache poisoning by intermediaries, not attackers who see the traffic).
#[derive(Debug, Clone)]
pub struct SeededMasks(u64);

impl SeededMasks {
    /// A generator seeded with 8 caller-supplied random bytes.
    pub fn new(seed: [u8; 8]) -> Self {
        SeededMasks(u64::from_le_bytes(seed) | 1)
    }
}

impl MaskSource for SeededMasks {
    fn next_mask(&mut self) -> [u8; 4] {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        let b = x.to_le_bytes();
        [b[0], b[1], b[2], b[3]]
    }
}

/// Applies (or removes) a mask in place.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = data.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let v = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) ^ word;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i];
    }
}

/// Writes one frame with FIN set.
pub fn encode_frame(opcode: OpCode, payload: &[u8], mask: Option<[u8; 4]>, out: &mut Vec<u8>) {
    out.reserve(payload.len() + 14);
    out.push(0x80 | opcode.bits());
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let len = payload.len();
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    match mask {
        None => out.extend_from_slice(payload),
        Some(m) => {
            out.extend_from_slice(&m);
            let start = out.len();
            out.extend_from_slice(payload);
            apply_mask(&mut out[start..], m);
        }
    }
}

struct Fragmented {
    opcode: OpCode,
    data: Vec<u8>,
}

/// One end of a WebSocket connection after the upgrade.
pub struct WsCodec {
    role: WsRole,
    max_message_size: usize,
    buf: Vec<u8>,
    start: usize,
    fragmented: Option<Fragmented>,
    masks: Option<Box<dyn MaskSource>>,
    close_sent: bool,
    close_received: bool,
}

impl fmt::Debug for WsCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsCodec")
            .field("role", &self.role)
            .field("max_message_size", &self.max_message_size)
            .field("buffered", &(self.buf.len() - self.start))
            .field("close_sent", &self.close_sent)
            .field("close_received", &self.close_received)
            .finish()
    }
}

/// Buffers larger than this are released when they become empty, so idle sockets hold nothing.
const RETAINED_BUFFER_BYTES: usize = 0;

impl WsCodec {
    /// The server end, accepting messages up to `max_message_size` bytes.
    pub fn server(max_message_size: usize) -> Self {
        WsCodec {
            role: WsRole::Server,
            max_message_size,
            buf: Vec::new(),
            start: 0,
            fragmented: None,
            masks: None,
            close_sent: false,
            close_received: false,
        }
    }

    /// The client end, masking its frames with masks from `masks`.
    pub fn client(max_message_size: usize, masks: Box<dyn MaskSource>) -> Self {
        WsCodec {
            role: WsRole::Client,
            masks: Some(masks),
            ..WsCodec::server(max_message_size)
        }
    }

    /// Which end this is.
    pub fn role(&self) -> WsRole {
        self.role
    }

    /// Changes the message size limit (the gateway raises it after `hello-ok`).
    pub fn set_max_message_size(&mut self, max: usize) {
        self.max_message_size = max;
    }

    /// The message size limit in force.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Whether a close frame was sent.
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// Whether a close frame was received.
    pub fn close_received(&self) -> bool {
        self.close_received
    }

    /// Heap bytes the codec holds (buffers for partial frames and fragmented messages).
    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity() + self.fragmented.as_ref().map_or(0, |f| f.data.capacity())
    }

    /// Appends received bytes; call [`WsCodec::poll_message`] until it returns `Ok(None)`.
    pub fn feed(&mut self, data: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete message, `Ok(None)` when more bytes are needed. After an error the caller
    /// sends [`WsError::close_frame`] and closes the connection.
    pub fn poll_message(&mut self) -> Result<Option<Message>, WsError> {
        loop {
            let Some((header, payload_range)) = self.parse_header()? else {
                self.compact();
                return Ok(None);
            };
            let end = payload_range.end;
            if let Some(mask) = header.mask {
                apply_mask(&mut self.buf[payload_range.clone()], mask);
            }
            let message = self.on_frame(header, payload_range.start, end)?;
            self.start = end;
            if let Some(m) = message {
                // Only release the buffer once it is fully consumed: moving the tail after every
                // message would make a batch of pipelined frames quadratic.
                if self.start == self.buf.len() {
                    self.compact();
                }
                return Ok(Some(m));
            }
        }
    }

    fn compact(&mut self) {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            if self.buf.capacity() > RETAINED_BUFFER_BYTES {
                self.buf = Vec::new();
            }
        } else if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }

    fn parse_header(&self) -> Result<Option<(FrameHeader, std::ops::Range<usize>)>, WsError> {
        let b = &self.buf[self.start..];
        if b.len() < 2 {
            return Ok(None);
        }
        if b[0] & 0x70 != 0 {
            return Err(WsError::Protocol("reserved bits set"));
        }
        let fin = b[0] & 0x80 != 0;
        let opcode = OpCode::from_bits(b[0] & 0x0F).ok_or(WsError::Protocol("unknown opcode"))?;
        let masked = b[1] & 0x80 != 0;
        match (self.role, masked) {
            (WsRole::Server, false) => return Err(WsError::Protocol("client frames must be masked")),
            (WsRole::Client, true) => return Err(WsError::Protocol("server frames must not be masked")),
            _ => {}
        }
        let (len, mut pos) = match b[1] & 0x7F {
            126 => {
                if b.len() < 4 {
                    return Ok(None);
                }
                let len = u16::from_be_bytes([b[2], b[3]]) as u64;
                if len < 126 {
                    return Err(WsError::Protocol("length not minimally encoded"));
                }
                (len, 4)
            }
            127 => {
                if b.len() < 10 {
                    return Ok(None);
                }
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(&b[2..10]);
                let len = u64::from_be_bytes(bytes);
                if len >> 63 != 0 {
                    return Err(WsError::Protocol("length has its top bit set"));
                }
                if len <= u16::MAX as u64 {
                    return Err(WsError::Protocol("length not minimally encoded"));
                }
                (len, 10)
            }
            n => (n as u64, 2),
        };
        if opcode.is_control() {
            if !fin {
                return Err(WsError::Protocol("fragmented control frame"));
            }
            if len > 125 {
                return Err(WsError::Protocol("control frame too long"));
            }
        } else {
            // Refuse oversized messages from the header alone, before buffering any of them.
            let already = self.fragmented.as_ref().map_or(0, |f| f.data.len()) as u64;
            if already.saturating_add(len) > self.max_message_size as u64 {
                return Err(WsError::TooBig {
                    limit: self.max_message_size,
                });
            }
        }
        let mask = if masked {
            if b.len() < pos + 4 {
                return Ok(None);
            }
            let m = [b[pos], b[pos + 1], b[pos + 2], b[pos + 3]];
            pos += 4;
            Some(m)
        } else {
            None
        };
        let len = len as usize;
        if b.len() - pos < len {
            return Ok(None);
        }
        let start = self.start + pos;
        Ok(Some((FrameHeader { fin, opcode, mask }, start..start + len)))
    }

    fn on_frame(&mut self, header: FrameHeader, start: usize, end: usize) -> Result<Option<Message>, WsError> {
        let payload = &self.buf[start..end];
        match header.opcode {
            OpCode::Ping => Ok(Some(Message::Ping(payload.to_vec()))),
            OpCode::Pong => Ok(Some(Message::Pong(payload.to_vec()))),
            OpCode::Close => {
                let frame = parse_close_payload(payload)?;
                self.close_received = true;
                Ok(Some(Message::Close(frame)))
            }
            OpCode::Text | OpCode::Binary => {
                if self.fragmented.is_some() {
                    return Err(WsError::Protocol("new message before the previous one finished"));
                }
                if header.fin {
                    return finish_message(header.opcode, payload.to_vec()).map(Some);
                }
                self.fragmented = Some(Fragmented {
                    opcode: header.opcode,
                    data: payload.to_vec(),
                });
                Ok(None)
            }
            OpCode::Continuation => {
                let Some(frag) = self.fragmented.as_mut() else {
                    return Err(WsError::Protocol("continuation without a message"));
                };
                frag.data.extend_from_slice(payload);
                if !header.fin {
                    return Ok(None);
                }
                let Some(frag) = self.fragmented.take() else {
                    return Ok(None);
                };
                finish_message(frag.opcode, frag.data).map(Some)
            }
        }
    }

    fn mask(&mut self) -> Option<[u8; 4]> {
        self.masks.as_mut().map(|m| m.next_mask())
    }

    /// Encodes a text message.
    pub fn encode_text(&mut self, text: &str, out: &mut Vec<u8>) {
        let mask = self.mask();
        encode_frame(OpCode::Text, text.as_bytes(), mask, out);
    }

    /// Encodes a binary message.
    pub fn encode_binary(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let mask = self.mask();
        encode_frame(OpCode::Binary, data, mask, out);
    }

    /// Encodes a ping (at most 125 bytes of data are sent).
    pub fn encode_ping(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let mask = self.mask();
        encode_frame(OpCode::Ping, &data[..data.len().min(125)], mask, out);
    }

    /// Encodes a pong answering a ping.
    pub fn encode_pong(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let mask = self.mask();
        encode_frame(OpCode::Pong, &data[..data.len().min(125)], mask, out);
    }

    /// Encodes a close frame (once; later calls write nothing). The reason is cut to 123 bytes.
    pub fn encode_close(&mut self, close: Option<&CloseFrame>, out: &mut Vec<u8>) {
        if self.close_sent {
            return;
        }
        self.close_sent = true;
        let mut payload = Vec::new();
        if let Some(c) = close {
            payload.extend_from_slice(&c.code.to_be_bytes());
            payload.extend_from_slice(truncate_utf8(&c.reason, MAX_WS_CLOSE_REASON_BYTES).as_bytes());
        }
        let mask = self.mask();
        encode_frame(OpCode::Close, &payload, mask, out);
    }
}

struct FrameHeader {
    fin: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
}

fn finish_message(opcode: OpCode, data: Vec<u8>) -> Result<Message, WsError> {
    match opcode {
        OpCode::Text => String::from_utf8(data)
            .map(Message::Text)
            .map_err(|_| WsError::InvalidUtf8),
        _ => Ok(Message::Binary(data)),
    }
}

fn parse_close_payload(payload: &[u8]) -> Result<Option<CloseFrame>, WsError> {
    match payload.len() {
        0 => Ok(None),
        1 => Err(WsError::Protocol("close payload of one byte")),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if !is_valid_received_code(code) {
                return Err(WsError::Protocol("invalid close code"));
            }
            let reason = std::str::from_utf8(&payload[2..]).map_err(|_| WsError::InvalidUtf8)?;
            Ok(Some(CloseFrame {
                code,
                reason: reason.to_owned(),
            }))
        }
    }
}

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    tungstenite::handshake::derive_accept_key(key.as_bytes())
}

/// A checked upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeAccepted {
    /// The `Sec-WebSocket-Accept` value.
    pub accept: String,
}

impl UpgradeAccepted {
    /// The `101 Switching Protocols` response.
    pub fn response_bytes(&self) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            self.accept
        )
        .into_bytes()
    }
}

/// Checks a WebSocket upgrade request; the error is the HTTP response to send instead.
pub fn accept_upgrade(req: &Request) -> Result<UpgradeAccepted, Response> {
    if req.method != "GET" {
        return Err(Response::text(405, "Method Not Allowed").header("Allow", "GET"));
    }
    if req.minor_version < 1 {
        return Err(Response::text(400, "WebSocket upgrade requires HTTP/1.1"));
    }
    if !req.header_has_token("upgrade", "websocket") || !req.header_has_token("connection", "upgrade") {
        return Err(Response::text(
            400,
            "Bad WebSocket upgrade: Upgrade and Connection headers required",
        ));
    }
    if req.header("sec-websocket-version") != Some("13") {
        return Err(Response::text(426, "Unsupported WebSocket version").header("Sec-WebSocket-Version", "13"));
    }
    let Some(key) = req.header("sec-websocket-key") else {
        return Err(Response::text(400, "Bad WebSocket upgrade: Sec-WebSocket-Key missing"));
    };
    match STANDARD.decode(key.as_bytes()) {
        Ok(bytes) if bytes.len() == 16 => Ok(UpgradeAccepted {
            accept: accept_key(key),
        }),
        _ => Err(Response::text(400, "Bad WebSocket upgrade: invalid Sec-WebSocket-Key")),
    }
}

/// Why a client's upgrade failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientUpgradeError {
    /// The server's answer is not HTTP.
    Malformed,
    /// The server answered with another status than 101.
    Status(u16),
    /// `Sec-WebSocket-Accept` is missing or wrong.
    BadAccept,
    /// The answer's head is too large.
    TooLarge,
}

impl fmt::Display for ClientUpgradeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientUpgradeError::Malformed => f.write_str("malformed upgrade response"),
            ClientUpgradeError::Status(s) => write!(f, "server answered HTTP {s} to the WebSocket upgrade"),
            ClientUpgradeError::BadAccept => f.write_str("wrong Sec-WebSocket-Accept"),
            ClientUpgradeError::TooLarge => f.write_str("upgrade response head too large"),
        }
    }
}

impl std::error::Error for ClientUpgradeError {}

/// The client side of the upgrade.
#[derive(Debug, Clone)]
pub struct ClientUpgrade {
    key: String,
}

impl ClientUpgrade {
    /// An upgrade whose key is made of 16 random bytes supplied by the caller.
    pub fn new(key_bytes: [u8; 16]) -> Self {
        ClientUpgrade {
            key: STANDARD.encode(key_bytes),
        }
    }

    /// The HTTP request to send. `extra_headers` are added as given (e.g. `Origin`).
    pub fn request(&self, host: &str, path: &str, extra_headers: &[(&str, &str)]) -> Vec<u8> {
        let mut s = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n",
            self.key
        );
        for (k, v) in extra_headers {
            s.push_str(k);
            s.push_str(": ");
            s.push_str(v);
            s.push_str("\r\n");
        }
        s.push_str("\r\n");
        s.into_bytes()
    }

    /// Checks the server's answer in `buf`: `Ok(None)` when incomplete, else the length of the
    /// head (bytes after it are WebSocket frames).
    pub fn parse_response(&self, buf: &[u8]) -> Result<Option<usize>, ClientUpgradeError> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut res = httparse::Response::new(&mut headers);
        let n = match res.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.len() > crate::limits::MAX_HTTP_HEAD_BYTES => {
                return Err(ClientUpgradeError::TooLarge)
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(ClientUpgradeError::Malformed),
        };
        let status = res.code.unwrap_or(0);
        if status != 101 {
            return Err(ClientUpgradeError::Status(status));
        }
        let expected = accept_key(&self.key);
        let ok = res
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept") && h.value == expected.as_bytes());
        if !ok {
            return Err(ClientUpgradeError::BadAccept);
        }
        Ok(Some(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{HttpLimits, RequestParser};

    fn masked_text(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(OpCode::Text, text.as_bytes(), Some([1, 2, 3, 4]), &mut out);
        out
    }

    #[test]
    fn rfc_sample_accept_key() {
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn upgrade_request_is_checked() {
        let parse = |s: &str| {
            let mut p = RequestParser::new(HttpLimits::default());
            p.feed(s.as_bytes());
            p.poll_request().unwrap().unwrap()
        };
        let ok = parse("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
        assert_eq!(accept_upgrade(&ok).unwrap().accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let bad_version = parse("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n");
        assert_eq!(accept_upgrade(&bad_version).unwrap_err().status, 426);
        let bad_key = parse("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n");
        assert_eq!(accept_upgrade(&bad_key).unwrap_err().status, 400);
    }

    #[test]
    fn client_upgrade_round_trip() {
        let up = ClientUpgrade::new([7; 16]);
        let mut p = RequestParser::new(HttpLimits::default());
        p.feed(&up.request("127.0.0.1:1", "/", &[]));
        let req = p.poll_request().unwrap().unwrap();
        let accepted = accept_upgrade(&req).unwrap();
        let mut resp = accepted.response_bytes();
        let n = resp.len();
        resp.extend_from_slice(b"extra");
        assert_eq!(up.parse_response(&resp), Ok(Some(n)));
        assert_eq!(
            up.parse_response(b"HTTP/1.1 403 Forbidden\r\n\r\n"),
            Err(ClientUpgradeError::Status(403))
        );
    }

    #[test]
    fn decodes_masked_text_fed_byte_by_byte() {
        let mut codec = WsCodec::server(1024);
        let mut got = Vec::new();
        for b in masked_text("héllo") {
            codec.feed(&[b]);
            while let Some(m) = codec.poll_message().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got, vec![Message::Text("héllo".into())]);
        assert_eq!(codec.heap_bytes(), 0);
    }

    #[test]
    fn server_refuses_unmasked_frames() {
        let mut codec = WsCodec::server(1024);
        let mut out = Vec::new();
        encode_frame(OpCode::Text, b"x", None, &mut out);
        codec.feed(&out);
        assert_eq!(codec.poll_message().unwrap_err().close_frame().code, 1002);
    }

    #[test]
    fn oversized_messages_are_refused_from_the_header() {
        let mut codec = WsCodec::server(100);
        codec.feed(&[0x81, 0x80 | 126, 0x01, 0x00]);
        assert_eq!(codec.poll_message().unwrap_err(), WsError::TooBig { limit: 100 });
    }

    #[test]
    fn fragments_are_reassembled_with_interleaved_pings() {
        let mut codec = WsCodec::server(1024);
        let mut bytes = vec![0x01, 0x83, 0, 0, 0, 0];
        bytes.extend_from_slice(b"abc");
        bytes.extend_from_slice(&[0x89, 0x81, 0, 0, 0, 0, b'p']);
        bytes.extend_from_slice(&[0x80, 0x82, 0, 0, 0, 0]);
        bytes.extend_from_slice(b"de");
        codec.feed(&bytes);
        assert_eq!(codec.poll_message().unwrap(), Some(Message::Ping(b"p".to_vec())));
        assert_eq!(codec.poll_message().unwrap(), Some(Message::Text("abcde".into())));
        assert_eq!(codec.poll_message().unwrap(), None);
    }

    #[test]
    fn fragmented_total_counts_against_the_limit() {
        let mut codec = WsCodec::server(4);
        let mut bytes = vec![0x01, 0x83, 0, 0, 0, 0];
        bytes.extend_from_slice(b"abc");
        bytes.extend_from_slice(&[0x80, 0x82, 0, 0, 0, 0]);
        bytes.extend_from_slice(b"de");
        codec.feed(&bytes);
        assert!(matches!(codec.poll_message(), Err(WsError::TooBig { .. })));
    }

    #[test]
    fn invalid_utf8_and_close_codes_are_rejected() {
        let mut codec = WsCodec::server(1024);
        let mut out = Vec::new();
        encode_frame(OpCode::Text, &[0xff, 0xfe], Some([0; 4]), &mut out);
        codec.feed(&out);
        assert_eq!(codec.poll_message().unwrap_err().close_frame().code, 1007);
        let mut codec = WsCodec::server(1024);
        let mut out = Vec::new();
        encode_frame(OpCode::Close, &1005u16.to_be_bytes(), Some([0; 4]), &mut out);
        codec.feed(&out);
        assert!(codec.poll_message().is_err());
    }

    #[test]
    fn control_frames_must_be_short_and_final() {
        let mut codec = WsCodec::server(1024);
        codec.feed(&[0x09, 0x80, 0, 0, 0, 0]);
        assert!(codec.poll_message().is_err());
        let mut codec = WsCodec::server(1024);
        codec.feed(&[0x89, 0x80 | 126, 0, 126]);
        assert!(codec.poll_message().is_err());
    }

    #[test]
    fn close_handshake_round_trip() {
        let mut client = WsCodec::client(1024, Box::new(SeededMasks::new([3; 8])));
        let mut server = WsCodec::server(1024);
        let mut wire = Vec::new();
        client.encode_close(Some(&CloseFrame::new(1000, "bye")), &mut wire);
        client.encode_close(Some(&CloseFrame::new(1000, "again")), &mut wire);
        server.feed(&wire);
        assert_eq!(
            server.poll_message().unwrap(),
            Some(Message::Close(Some(CloseFrame::new(1000, "bye"))))
        );
        assert_eq!(server.poll_message().unwrap(), None);
        assert!(server.close_received());
    }

    #[test]
    fn long_close_reasons_are_cut_to_the_frame_limit() {
        let mut server = WsCodec::server(1024);
        let mut client = WsCodec::client(1024, Box::new(SeededMasks::new([1; 8])));
        let mut wire = Vec::new();
        let reason = "x".repeat(300);
        server.encode_close(Some(&CloseFrame { code: 1008, reason }), &mut wire);
        client.feed(&wire);
        match client.poll_message().unwrap() {
            Some(Message::Close(Some(c))) => assert_eq!(c.reason.len(), MAX_WS_CLOSE_REASON_BYTES),
            other => panic!("{other:?}"),
        }
    }
}
