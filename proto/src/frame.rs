//! The JSON frames carried in WebSocket text messages: `req`, `res` and `event`.
//!
//! Every frame is one JSON object discriminated by its `type` field. The schemas are closed: a key
//! that does not belong to the frame type makes the frame invalid, exactly as the reference server
//! rejects it. `params` and `payload` are kept as raw JSON text ([`RawValue`]) so that a frame can be
//! routed without parsing its body, and re-encoded byte for byte.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::fmt;

/// The error codes a gateway puts in `error.code`.
///
/// Clients must accept codes they do not know: [`ErrorShape::code`] is a [`Code`], which keeps an
/// unknown one as it came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Bad frame or params, unknown method, handshake failures.
    InvalidRequest,
    /// Device identity or pairing required.
    NotPaired,
    /// Client not linked.
    NotLinked,
    /// Agent wait window exceeded.
    AgentTimeout,
    /// Approval id unknown or expired.
    ApprovalNotFound,
    /// Transient failure: startup, rate limit, backend failure.
    Unavailable,
    /// Method-level authorization failure (missing scope).
    Forbidden,
    /// Cache-only agent result recovery miss.
    AgentResultNotFound,
}

impl ErrorCode {
    /// The wire spelling, e.g. `INVALID_REQUEST`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::NotPaired => "NOT_PAIRED",
            ErrorCode::NotLinked => "NOT_LINKED",
            ErrorCode::AgentTimeout => "AGENT_TIMEOUT",
            ErrorCode::ApprovalNotFound => "APPROVAL_NOT_FOUND",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::AgentResultNotFound => "AGENT_RESULT_NOT_FOUND",
        }
    }

    /// Parses a wire spelling; `None` for codes this crate does not know.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "INVALID_REQUEST" => ErrorCode::InvalidRequest,
            "NOT_PAIRED" => ErrorCode::NotPaired,
            "NOT_LINKED" => ErrorCode::NotLinked,
            "AGENT_TIMEOUT" => ErrorCode::AgentTimeout,
            "APPROVAL_NOT_FOUND" => ErrorCode::ApprovalNotFound,
            "UNAVAILABLE" => ErrorCode::Unavailable,
            "FORBIDDEN" => ErrorCode::Forbidden,
            "AGENT_RESULT_NOT_FOUND" => ErrorCode::AgentResultNotFound,
            _ => return None,
        })
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `error.code` as carried: a code this crate knows, or any other as it came. It is a string
/// only on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Code {
    /// One of the protocol's codes.
    Known(ErrorCode),
    /// A code this crate does not know (a newer gateway's), kept for re-encoding.
    Unknown(String),
}

impl Code {
    /// The wire spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Code::Known(c) => c.as_str(),
            Code::Unknown(s) => s,
        }
    }

    /// The known code, if it is one.
    pub fn known(&self) -> Option<ErrorCode> {
        match self {
            Code::Known(c) => Some(*c),
            Code::Unknown(_) => None,
        }
    }
}

impl From<ErrorCode> for Code {
    fn from(code: ErrorCode) -> Self {
        Code::Known(code)
    }
}

impl From<&str> for Code {
    fn from(text: &str) -> Self {
        ErrorCode::parse(text).map_or_else(|| Code::Unknown(text.to_owned()), Code::Known)
    }
}

impl PartialEq<ErrorCode> for Code {
    fn eq(&self, other: &ErrorCode) -> bool {
        self.known() == Some(*other)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(Code::from(text.as_ref()))
    }
}

/// The `error` object of a failed response: `{code, message, details?, retryable?, retryAfterMs?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorShape {
    /// A code such as `INVALID_REQUEST`.
    pub code: Code,
    /// Human-readable message; clients branch on some of them.
    pub message: String,
    /// Structured details, e.g. `{"code":"AUTH_TOKEN_MISMATCH", ...}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
    /// Whether retrying the same request may succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    /// How long to wait before retrying.
    #[serde(default, rename = "retryAfterMs", skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ErrorShape {
    /// An error with a code and message and nothing else.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorShape {
            code: Code::Known(code),
            message: message.into(),
            details: None,
            retryable: None,
            retry_after_ms: None,
        }
    }

    /// Adds `details`.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Marks the error retryable after `retry_after_ms` milliseconds.
    pub fn retry_after(mut self, retry_after_ms: u64) -> Self {
        self.retryable = Some(true);
        self.retry_after_ms = Some(retry_after_ms);
        self
    }

    /// `INVALID_REQUEST "unknown method: <method>"`, the answer to an admin calling a method that
    /// does not exist.
    pub fn unknown_method(method: &str) -> Self {
        ErrorShape::new(ErrorCode::InvalidRequest, format!("unknown method: {method}"))
    }

    fn validate(&self) -> Result<(), String> {
        if self.code.as_str().is_empty() {
            return Err("error.code must not be empty".into());
        }
        if self.message.is_empty() {
            return Err("error.message must not be empty".into());
        }
        Ok(())
    }
}

/// `{presence, health}` counters attached to presence and health broadcasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StateVersion {
    /// Incremented whenever the presence list changes.
    pub presence: u64,
    /// Incremented whenever the cached health snapshot changes.
    pub health: u64,
}

/// A client request: `{type:"req", id, method, params?}`.
#[derive(Debug, Clone)]
pub struct RequestFrame {
    /// Non-empty id chosen by the client and echoed in every response.
    pub id: String,
    /// Non-empty method name.
    pub method: String,
    /// Raw JSON params; handlers treat `None` as `{}`.
    pub params: Option<Box<RawValue>>,
    /// Optional W3C trace context (at most 128 characters).
    pub traceparent: Option<String>,
}

/// A server response: `{type:"res", id, ok, payload?, error?}`.
///
/// Several responses may carry the same id: long-running methods answer `accepted` first and the
/// final result later.
#[derive(Debug, Clone)]
pub struct ResponseFrame {
    /// The id of the request this answers.
    pub id: String,
    /// Whether the request succeeded.
    pub ok: bool,
    /// Raw JSON payload of a successful response.
    pub payload: Option<Box<RawValue>>,
    /// The error of a failed response.
    pub error: Option<ErrorShape>,
    /// Fields beyond the published schema (servers add some, e.g. `recipientProfileId`); clients
    /// ignore them, and they are kept so a frame re-encodes unchanged.
    pub extra: Extra,
}

/// Unknown fields of a server frame.
pub type Extra = serde_json::Map<String, serde_json::Value>;

/// A server event: `{type:"event", event, payload?, seq?, stateVersion?}`.
#[derive(Debug, Clone)]
pub struct EventFrame {
    /// Non-empty event name, e.g. `tick`.
    pub event: String,
    /// Raw JSON payload.
    pub payload: Option<Box<RawValue>>,
    /// Per-connection sequence number of broadcast events; absent on targeted events.
    pub seq: Option<u64>,
    /// Presence and health counters.
    pub state_version: Option<StateVersion>,
    /// Fields beyond the published schema, kept for lossless re-encoding.
    pub extra: Extra,
}

/// Any frame of the protocol.
#[derive(Debug, Clone)]
pub enum Frame {
    /// `type: "req"`.
    Request(RequestFrame),
    /// `type: "res"`.
    Response(ResponseFrame),
    /// `type: "event"`.
    Event(EventFrame),
    /// `type: "cancel"`: the client gives up on a pending request. Servers may ignore it.
    Cancel {
        /// The id of the request to cancel.
        id: String,
    },
}

/// Why a text message is not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The text is not a JSON object.
    InvalidJson(String),
    /// The JSON does not match any frame schema. `id` is the frame's `id` when it had a usable one,
    /// so that a server can address its error response.
    InvalidFrame {
        /// The offending frame's id, when present and a non-empty string.
        id: Option<String>,
        /// What is wrong, in the style of the reference server's validator.
        reason: String,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::InvalidJson(e) => write!(f, "invalid JSON: {e}"),
            FrameError::InvalidFrame { reason, .. } => write!(f, "invalid frame: {reason}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Longest accepted `traceparent`.
pub const MAX_TRACEPARENT_LEN: usize = 128;

/// Union of every frame field; closed, so unknown keys are rejected during parsing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireFrame {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default, deserialize_with = "present_raw")]
    params: Option<Box<RawValue>>,
    #[serde(default)]
    traceparent: Option<String>,
    #[serde(default)]
    ok: Option<bool>,
    #[serde(default, deserialize_with = "present_raw")]
    payload: Option<Box<RawValue>>,
    #[serde(default)]
    error: Option<ErrorShape>,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default, rename = "stateVersion")]
    state_version: Option<StateVersion>,
}

/// Keeps an explicit `null` as a value, so that `"payload": null` re-encodes as it came.
fn present_raw<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

/// Extracts `id` when the frame has a usable (non-empty string) one, for error addressing.
fn usable_id(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct IdOnly {
        id: Option<serde_json::Value>,
    }
    match serde_json::from_str::<IdOnly>(text) {
        Ok(IdOnly {
            id: Some(serde_json::Value::String(s)),
        }) if !s.is_empty() => Some(s),
        _ => None,
    }
}

fn invalid(id: Option<String>, reason: impl Into<String>) -> FrameError {
    FrameError::InvalidFrame {
        id,
        reason: reason.into(),
    }
}

/// The slow path for server frames with fields beyond the schema: known fields are checked as
/// usual, the rest is kept in `extra`.
fn decode_with_extra(mut map: Extra) -> Result<Frame, String> {
    use serde_json::Value;
    let ty = map.remove("type");
    let take_raw = |map: &mut Extra, key: &str| map.remove(key).map(|v| to_raw(&v));
    let take_str = |map: &mut Extra, key: &str| match map.remove(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(format!("{key} must be a non-empty string")),
        None => Err(format!("must have required property '{key}'")),
    };
    let take_typed = |map: &mut Extra, key: &str| -> Result<Option<Value>, String> { Ok(map.remove(key)) };
    match ty.as_ref().and_then(Value::as_str) {
        Some("res") => {
            let id = take_str(&mut map, "id")?;
            let ok = match map.remove("ok") {
                Some(Value::Bool(b)) => b,
                _ => return Err("must have required boolean property 'ok'".into()),
            };
            let payload = take_raw(&mut map, "payload");
            let error = match take_typed(&mut map, "error")? {
                None => None,
                Some(v) => {
                    let e: ErrorShape = serde_json::from_value(v).map_err(|e| e.to_string())?;
                    e.validate()?;
                    Some(e)
                }
            };
            Ok(Frame::Response(ResponseFrame {
                id,
                ok,
                payload,
                error,
                extra: map,
            }))
        }
        Some("event") => {
            let event = take_str(&mut map, "event")?;
            let payload = take_raw(&mut map, "payload");
            let seq = match map.remove("seq") {
                None => None,
                Some(v) => Some(v.as_u64().ok_or("seq must be an integer >= 0")?),
            };
            let state_version = match map.remove("stateVersion") {
                None => None,
                Some(v) => Some(serde_json::from_value(v).map_err(|e| e.to_string())?),
            };
            Ok(Frame::Event(EventFrame {
                event,
                payload,
                seq,
                state_version,
                extra: map,
            }))
        }
        _ => Err("unknown frame type".into()),
    }
}

impl Frame {
    /// Decodes one text message into a frame, enforcing the closed schemas.
    pub fn decode(text: &str) -> Result<Frame, FrameError> {
        let wire: WireFrame = match serde_json::from_str(text) {
            Ok(w) => w,
            Err(e) => {
                // Distinguish "not JSON" from "JSON, but not a frame": the server reacts differently.
                let Ok(map) = serde_json::from_str::<Extra>(text) else {
                    return match serde_json::from_str::<serde::de::IgnoredAny>(text) {
                        Err(_) => Err(FrameError::InvalidJson(e.to_string())),
                        Ok(_) => Err(invalid(None, "frame must be an object")),
                    };
                };
                // Server frames may carry fields beyond the schema; requests may not.
                return match map.get("type").and_then(serde_json::Value::as_str) {
                    Some("res" | "event") => decode_with_extra(map).map_err(|r| invalid(usable_id(text), r)),
                    _ => Err(invalid(usable_id(text), e.to_string())),
                };
            }
        };
        let id = match wire.id {
            None => None,
            Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s),
            Some(_) => return Err(invalid(None, "id must be a non-empty string")),
        };
        let forbid = |present: bool, field: &str, id: &Option<String>| -> Result<(), FrameError> {
            if present {
                Err(invalid(
                    id.clone(),
                    format!("unexpected property '{field}' for type '{}'", wire.ty),
                ))
            } else {
                Ok(())
            }
        };
        match wire.ty.as_str() {
            "req" => {
                forbid(wire.ok.is_some(), "ok", &id)?;
                forbid(wire.payload.is_some(), "payload", &id)?;
                forbid(wire.error.is_some(), "error", &id)?;
                forbid(wire.event.is_some(), "event", &id)?;
                forbid(wire.seq.is_some(), "seq", &id)?;
                forbid(wire.state_version.is_some(), "stateVersion", &id)?;
                let Some(id) = id else {
                    return Err(invalid(None, "must have required property 'id'"));
                };
                let method = match wire.method {
                    Some(m) if !m.is_empty() => m,
                    Some(_) => return Err(invalid(Some(id), "method must not be empty")),
                    None => return Err(invalid(Some(id), "must have required property 'method'")),
                };
                if let Some(tp) = &wire.traceparent {
                    if tp.len() > MAX_TRACEPARENT_LEN {
                        return Err(invalid(Some(id), "traceparent is too long"));
                    }
                }
                Ok(Frame::Request(RequestFrame {
                    id,
                    method,
                    params: wire.params,
                    traceparent: wire.traceparent,
                }))
            }
            "res" => {
                forbid(wire.method.is_some(), "method", &id)?;
                forbid(wire.params.is_some(), "params", &id)?;
                forbid(wire.traceparent.is_some(), "traceparent", &id)?;
                forbid(wire.event.is_some(), "event", &id)?;
                forbid(wire.seq.is_some(), "seq", &id)?;
                forbid(wire.state_version.is_some(), "stateVersion", &id)?;
                let Some(id) = id else {
                    return Err(invalid(None, "must have required property 'id'"));
                };
                let Some(ok) = wire.ok else {
                    return Err(invalid(Some(id), "must have required property 'ok'"));
                };
                if let Some(e) = &wire.error {
                    e.validate().map_err(|r| invalid(Some(id.clone()), r))?;
                }
                Ok(Frame::Response(ResponseFrame {
                    id,
                    ok,
                    payload: wire.payload,
                    error: wire.error,
                    extra: Extra::new(),
                }))
            }
            "event" => {
                forbid(id.is_some(), "id", &id)?;
                forbid(wire.method.is_some(), "method", &id)?;
                forbid(wire.params.is_some(), "params", &id)?;
                forbid(wire.traceparent.is_some(), "traceparent", &id)?;
                forbid(wire.ok.is_some(), "ok", &id)?;
                forbid(wire.error.is_some(), "error", &id)?;
                let event = match wire.event {
                    Some(e) if !e.is_empty() => e,
                    _ => return Err(invalid(None, "must have required property 'event'")),
                };
                Ok(Frame::Event(EventFrame {
                    event,
                    payload: wire.payload,
                    seq: wire.seq,
                    state_version: wire.state_version,
                    extra: Extra::new(),
                }))
            }
            "cancel" => {
                forbid(wire.method.is_some(), "method", &id)?;
                forbid(wire.params.is_some(), "params", &id)?;
                forbid(wire.traceparent.is_some(), "traceparent", &id)?;
                forbid(wire.ok.is_some(), "ok", &id)?;
                forbid(wire.payload.is_some(), "payload", &id)?;
                forbid(wire.error.is_some(), "error", &id)?;
                forbid(wire.event.is_some(), "event", &id)?;
                forbid(wire.seq.is_some(), "seq", &id)?;
                forbid(wire.state_version.is_some(), "stateVersion", &id)?;
                let Some(id) = id else {
                    return Err(invalid(None, "must have required property 'id'"));
                };
                Ok(Frame::Cancel { id })
            }
            other => Err(invalid(id, format!("unknown frame type '{other}'"))),
        }
    }

    /// Encodes the frame as one JSON text.
    pub fn encode(&self) -> String {
        match self {
            Frame::Request(r) => r.encode(),
            Frame::Response(r) => r.encode(),
            Frame::Event(e) => e.encode(),
            Frame::Cancel { id } => {
                #[derive(Serialize)]
                struct Out<'a> {
                    #[serde(rename = "type")]
                    ty: &'static str,
                    id: &'a str,
                }
                to_json(&Out { ty: "cancel", id })
            }
        }
    }
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Serializing these plain structs into a String cannot fail: every key is a string and
    // RawValue holds already-valid JSON.
    serde_json::to_string(value).unwrap_or_default()
}

/// Serializes any value to a boxed [`RawValue`], for use as `params` or `payload`.
pub fn to_raw<T: Serialize + ?Sized>(value: &T) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).unwrap_or_else(|_| raw_null())
}

fn raw_null() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).expect("`null` is valid JSON")
}

impl RequestFrame {
    /// A request with typed params.
    pub fn new<P: Serialize + ?Sized>(id: impl Into<String>, method: impl Into<String>, params: &P) -> Self {
        RequestFrame {
            id: id.into(),
            method: method.into(),
            params: Some(to_raw(params)),
            traceparent: None,
        }
    }

    /// Decodes a text message that must be a request.
    pub fn decode(text: &str) -> Result<RequestFrame, FrameError> {
        match Frame::decode(text)? {
            Frame::Request(r) => Ok(r),
            Frame::Response(r) => Err(invalid(Some(r.id), "expected a req frame")),
            Frame::Event(_) => Err(invalid(None, "expected a req frame")),
            Frame::Cancel { id } => Err(invalid(Some(id), "expected a req frame")),
        }
    }

    /// The params as text (`{}` when absent or `null`).
    pub fn params_text(&self) -> &str {
        match self.params.as_deref().map(RawValue::get) {
            None | Some("null") => "{}",
            Some(text) => text,
        }
    }

    /// Parses the params into `T` (absent params parse as `{}`).
    pub fn parse_params<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.params_text())
    }

    /// Encodes as JSON text.
    pub fn encode(&self) -> String {
        #[derive(Serialize)]
        struct Out<'a> {
            #[serde(rename = "type")]
            ty: &'static str,
            id: &'a str,
            method: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            params: Option<&'a RawValue>,
            #[serde(skip_serializing_if = "Option::is_none")]
            traceparent: Option<&'a str>,
        }
        to_json(&Out {
            ty: "req",
            id: &self.id,
            method: &self.method,
            params: self.params.as_deref(),
            traceparent: self.traceparent.as_deref(),
        })
    }
}

impl ResponseFrame {
    /// A successful response with a typed payload.
    pub fn ok<P: Serialize + ?Sized>(id: impl Into<String>, payload: &P) -> Self {
        ResponseFrame {
            id: id.into(),
            ok: true,
            payload: Some(to_raw(payload)),
            error: None,
            extra: Extra::new(),
        }
    }

    /// A successful response whose payload is already JSON text.
    pub fn ok_raw(id: impl Into<String>, payload: Box<RawValue>) -> Self {
        ResponseFrame {
            id: id.into(),
            ok: true,
            payload: Some(payload),
            error: None,
            extra: Extra::new(),
        }
    }

    /// A failed response.
    pub fn err(id: impl Into<String>, error: ErrorShape) -> Self {
        ResponseFrame {
            id: id.into(),
            ok: false,
            payload: None,
            error: Some(error),
            extra: Extra::new(),
        }
    }

    /// Encodes as JSON text.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(64 + self.payload.as_deref().map_or(0, |p| p.get().len()));
        self.encode_into(&mut out);
        out
    }

    /// Appends the JSON text to `out`, avoiding an intermediate allocation.
    pub fn encode_into(&self, out: &mut String) {
        #[derive(Serialize)]
        struct Out<'a> {
            #[serde(rename = "type")]
            ty: &'static str,
            id: &'a str,
            ok: bool,
            #[serde(skip_serializing_if = "Option::is_none")]
            payload: Option<&'a RawValue>,
            #[serde(skip_serializing_if = "Option::is_none")]
            error: Option<&'a ErrorShape>,
            #[serde(flatten, skip_serializing_if = "Extra::is_empty")]
            extra: &'a Extra,
        }
        append_json(
            out,
            &Out {
                ty: "res",
                id: &self.id,
                ok: self.ok,
                payload: self.payload.as_deref(),
                error: self.error.as_ref(),
                extra: &self.extra,
            },
        );
    }
}

fn append_json<T: Serialize>(out: &mut String, value: &T) {
    let mut bytes = std::mem::take(out).into_bytes();
    let before = bytes.len();
    if serde_json::to_writer(&mut bytes, value).is_err() {
        bytes.truncate(before);
    }
    // serde_json writes valid UTF-8 only.
    *out = String::from_utf8(bytes).unwrap_or_default();
}

impl EventFrame {
    /// An event with a typed payload and no sequence number.
    pub fn new<P: Serialize + ?Sized>(event: impl Into<String>, payload: &P) -> Self {
        EventFrame {
            event: event.into(),
            payload: Some(to_raw(payload)),
            seq: None,
            state_version: None,
            extra: Extra::new(),
        }
    }

    /// Parses the payload into `T` (absent payloads parse as `null`).
    pub fn parse_payload<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.payload.as_deref().map(RawValue::get).unwrap_or("null"))
    }

    /// Encodes as JSON text.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(48 + self.payload.as_deref().map_or(0, |p| p.get().len()));
        self.encode_into(&mut out);
        out
    }

    /// Appends the JSON text to `out`.
    pub fn encode_into(&self, out: &mut String) {
        #[derive(Serialize)]
        struct Out<'a> {
            #[serde(rename = "type")]
            ty: &'static str,
            event: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            payload: Option<&'a RawValue>,
            #[serde(skip_serializing_if = "Option::is_none")]
            seq: Option<u64>,
            #[serde(rename = "stateVersion", skip_serializing_if = "Option::is_none")]
            state_version: Option<&'a StateVersion>,
            #[serde(flatten, skip_serializing_if = "Extra::is_empty")]
            extra: &'a Extra,
        }
        append_json(
            out,
            &Out {
                ty: "event",
                event: &self.event,
                payload: self.payload.as_deref(),
                seq: self.seq,
                state_version: self.state_version.as_ref(),
                extra: &self.extra,
            },
        );
    }
}

fn raw_eq(a: &Option<Box<RawValue>>, b: &Option<Box<RawValue>>) -> bool {
    a.as_deref().map(RawValue::get) == b.as_deref().map(RawValue::get)
}

// Frames compare by the JSON text of their params and payloads.
impl PartialEq for RequestFrame {
    fn eq(&self, o: &Self) -> bool {
        self.id == o.id
            && self.method == o.method
            && raw_eq(&self.params, &o.params)
            && self.traceparent == o.traceparent
    }
}

impl PartialEq for ResponseFrame {
    fn eq(&self, o: &Self) -> bool {
        self.id == o.id
            && self.ok == o.ok
            && raw_eq(&self.payload, &o.payload)
            && self.error == o.error
            && self.extra == o.extra
    }
}

impl PartialEq for EventFrame {
    fn eq(&self, o: &Self) -> bool {
        self.event == o.event
            && raw_eq(&self.payload, &o.payload)
            && self.seq == o.seq
            && self.state_version == o.state_version
    }
}

impl PartialEq for Frame {
    fn eq(&self, o: &Self) -> bool {
        match (self, o) {
            (Frame::Request(a), Frame::Request(b)) => a == b,
            (Frame::Response(a), Frame::Response(b)) => a == b,
            (Frame::Event(a), Frame::Event(b)) => a == b,
            (Frame::Cancel { id: a }, Frame::Cancel { id: b }) => a == b,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_typed_and_unknown_ones_kept_as_they_came() {
        let known: ErrorShape = serde_json::from_str(r#"{"code":"NOT_PAIRED","message":"pairing required"}"#).unwrap();
        assert_eq!(known.code, ErrorCode::NotPaired);
        let text = r#"{"code":"SOMETHING_NEWER","message":"m"}"#;
        let unknown: ErrorShape = serde_json::from_str(text).unwrap();
        assert_eq!(unknown.code, Code::Unknown("SOMETHING_NEWER".into()));
        assert_eq!(serde_json::to_string(&unknown).unwrap(), text);
    }

    #[test]
    fn request_round_trips() {
        let text = r#"{"type":"req","id":"1","method":"health","params":{}}"#;
        let f = RequestFrame::decode(text).unwrap();
        assert_eq!(f.method, "health");
        assert_eq!(f.encode(), text);
    }

    #[test]
    fn unknown_key_is_rejected_with_the_id() {
        let err = Frame::decode(r#"{"type":"req","id":"7","method":"health","extra":1}"#).unwrap_err();
        match err {
            FrameError::InvalidFrame { id, .. } => assert_eq!(id.as_deref(), Some("7")),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn empty_id_and_method_are_rejected() {
        assert!(Frame::decode(r#"{"type":"req","id":"","method":"health"}"#).is_err());
        assert!(Frame::decode(r#"{"type":"req","id":"1","method":""}"#).is_err());
    }

    #[test]
    fn fields_of_another_frame_type_are_rejected() {
        assert!(Frame::decode(r#"{"type":"req","id":"1","method":"m","ok":true}"#).is_err());
        assert!(Frame::decode(r#"{"type":"event","event":"tick","id":"1"}"#).is_err());
        assert!(Frame::decode(r#"{"type":"res","id":"1","ok":true,"method":"m"}"#).is_err());
    }

    #[test]
    fn not_json_is_distinguished_from_bad_frames() {
        assert!(matches!(Frame::decode("{nope"), Err(FrameError::InvalidJson(_))));
        assert!(matches!(Frame::decode("[1]"), Err(FrameError::InvalidFrame { .. })));
    }

    #[test]
    fn error_shape_must_have_non_empty_code_and_message() {
        assert!(Frame::decode(r#"{"type":"res","id":"1","ok":false,"error":{"code":"","message":"x"}}"#).is_err());
        assert!(
            Frame::decode(r#"{"type":"res","id":"1","ok":false,"error":{"code":"X","message":"x","more":1}}"#).is_err()
        );
    }

    #[test]
    fn server_frames_keep_unknown_fields_but_requests_may_not_have_them() {
        let text = r#"{"type":"event","event":"presence","payload":{"a":1},"seq":1,"recipientProfileId":"x"}"#;
        let Frame::Event(e) = Frame::decode(text).unwrap() else {
            panic!()
        };
        assert_eq!(e.extra["recipientProfileId"], "x");
        let again: serde_json::Value = serde_json::from_str(&e.encode()).unwrap();
        assert_eq!(again, serde_json::from_str::<serde_json::Value>(text).unwrap());
        assert!(Frame::decode(r#"{"type":"req","id":"1","method":"m","recipientProfileId":"x"}"#).is_err());
    }

    #[test]
    fn long_traceparent_is_rejected() {
        let tp = "0".repeat(MAX_TRACEPARENT_LEN + 1);
        let text = format!(r#"{{"type":"req","id":"1","method":"m","traceparent":"{tp}"}}"#);
        assert!(Frame::decode(&text).is_err());
    }
}
