//! The client side: answer the challenge with a (signed) `connect`, track requests until their
//! responses arrive, and watch the server's tick.
//!
//! [`ClientConnection`] works on text messages; pair it with a [`crate::ws::WsCodec`] in client role
//! for the bytes. It is driven like the server state machines: feed it with
//! [`ClientConnection::handle_text`] and [`ClientConnection::handle_timeout`], then drain
//! [`ClientConnection::poll_transmit`] (text frames to send) and [`ClientConnection::poll_event`].

use crate::close::{code, CloseFrame};
use crate::connect::{ClientInfo, ConnectAuth, ConnectChallenge, ConnectParams, DeviceProof, HelloOk, Role};
use crate::device::DeviceIdentity;
use crate::frame::{ErrorShape, EventFrame, Frame, RequestFrame};
use crate::limits::{PROTOCOL_VERSION, TICK_INTERVAL_MS};
use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::{HashMap, VecDeque};

/// What the client says about itself in `connect`.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `connect.params.client`.
    pub client: ClientInfo,
    /// Requested role.
    pub role: Role,
    /// Requested scopes (signed exactly in this order).
    pub scopes: Vec<String>,
    /// Client capabilities.
    pub caps: Vec<String>,
    /// Commands a `node`-role client serves (sent only when not empty).
    pub commands: Vec<String>,
    /// Credentials to offer.
    pub auth: ConnectAuth,
    /// Device identity to prove, if any.
    pub device: Option<DeviceIdentity>,
    /// Lowest protocol version offered.
    pub min_protocol: u32,
    /// Highest protocol version offered.
    pub max_protocol: u32,
}

impl ClientOptions {
    /// Options for an operator client offering protocol 4 and no credentials.
    pub fn new(client: ClientInfo) -> Self {
        ClientOptions {
            client,
            role: Role::Operator,
            scopes: Vec::new(),
            caps: Vec::new(),
            commands: Vec::new(),
            auth: ConnectAuth::default(),
            device: None,
            min_protocol: PROTOCOL_VERSION,
            max_protocol: PROTOCOL_VERSION,
        }
    }
}

/// What happened on the connection.
#[derive(Debug, Clone)]
pub enum ClientEvent {
    /// The handshake succeeded.
    Connected(Box<HelloOk>),
    /// The server refused the `connect`; it will close the socket.
    ConnectFailed(ErrorShape),
    /// A response to a request. `is_final` is false for an interim `accepted` answer of a request
    /// made with [`ClientConnection::request_expect_final`].
    Response {
        /// The request id.
        id: String,
        /// The request's method.
        method: String,
        /// The payload, or the error.
        result: Result<Option<Box<RawValue>>, ErrorShape>,
        /// Whether this is the last response for the id.
        is_final: bool,
    },
    /// A server event (the challenge is consumed by the handshake and not reported).
    Event(EventFrame),
    /// The client must close the socket with this frame (tick timeout, broken challenge).
    Close(CloseFrame),
}

/// A protocol violation by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// A text message that is not a frame of the protocol.
    BadFrame(String),
    /// The answer to `connect` is not a valid `hello-ok`.
    BadHello(String),
    /// The answer to `connect` is something other than `hello-ok`.
    NotHello(String),
    /// A frame the handshake does not allow at this point (the frame, encoded).
    UnexpectedFrame(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::BadFrame(e) => write!(f, "bad frame from server: {e}"),
            ClientError::BadHello(e) => write!(f, "bad hello-ok: {e}"),
            ClientError::NotHello(ty) => write!(f, "expected hello-ok, got {ty}"),
            ClientError::UnexpectedFrame(frame) => write!(f, "unexpected frame during handshake: {frame}"),
        }
    }
}

impl std::error::Error for ClientError {}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    AwaitChallenge,
    AwaitHello { id: String },
    Open,
    Closed,
}

#[derive(Debug, Clone)]
struct Pending {
    method: String,
    expect_final: bool,
}

/// The client end of one gateway connection.
#[derive(Debug)]
pub struct ClientConnection {
    options: ClientOptions,
    state: State,
    next_id: u64,
    pending: HashMap<String, Pending>,
    queued: Vec<String>,
    outbox: VecDeque<String>,
    events: VecDeque<ClientEvent>,
    last_rx_ms: u64,
    tick_interval_ms: u64,
}

impl ClientConnection {
    /// A connection whose socket just opened at `now_ms`; it waits for `connect.challenge`.
    pub fn new(options: ClientOptions, now_ms: u64) -> Self {
        ClientConnection {
            options,
            state: State::AwaitChallenge,
            next_id: 1,
            pending: HashMap::new(),
            queued: Vec::new(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            last_rx_ms: now_ms,
            tick_interval_ms: TICK_INTERVAL_MS,
        }
    }

    /// Whether the handshake completed.
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// Number of requests still waiting for their (final) response.
    pub fn pending_requests(&self) -> usize {
        self.pending.len()
    }

    fn next_request_id(&mut self) -> String {
        let id = self.next_id.to_string();
        self.next_id += 1;
        id
    }

    /// Sends a request (queued until the handshake completes); returns its id.
    pub fn request<P: Serialize + ?Sized>(&mut self, method: &str, params: &P) -> String {
        self.send_request(method, params, false)
    }

    /// Sends a request that may be answered twice: an interim `{status:"accepted"}` and the final
    /// result (the `agent` method does this).
    pub fn request_expect_final<P: Serialize + ?Sized>(&mut self, method: &str, params: &P) -> String {
        self.send_request(method, params, true)
    }

    fn send_request<P: Serialize + ?Sized>(&mut self, method: &str, params: &P, expect_final: bool) -> String {
        let id = self.next_request_id();
        let text = RequestFrame::new(id.clone(), method, params).encode();
        self.pending.insert(
            id.clone(),
            Pending {
                method: method.to_owned(),
                expect_final,
            },
        );
        if self.state == State::Open {
            self.outbox.push_back(text);
        } else {
            self.queued.push(text);
        }
        id
    }

    /// Handles one text message from the server, received at `now_ms`.
    pub fn handle_text(&mut self, now_ms: u64, text: &str) -> Result<(), ClientError> {
        self.last_rx_ms = self.last_rx_ms.max(now_ms);
        let frame = Frame::decode(text).map_err(|e| ClientError::BadFrame(e.to_string()))?;
        match (&self.state, frame) {
            (State::AwaitChallenge, Frame::Event(ev)) if ev.event == "connect.challenge" => {
                let challenge: ConnectChallenge = match ev.parse_payload() {
                    Ok(c) => c,
                    Err(_) => return self.fail_challenge(),
                };
                if challenge.nonce.trim().is_empty() {
                    return self.fail_challenge();
                }
                let id = self.next_request_id();
                let params = self.connect_params(&challenge);
                self.outbox
                    .push_back(RequestFrame::new(id.clone(), "connect", &params).encode());
                self.state = State::AwaitHello { id };
                Ok(())
            }
            (State::AwaitHello { id }, Frame::Response(res)) if &res.id == id => {
                if !res.ok {
                    let error = res.error.unwrap_or_else(|| ErrorShape {
                        code: "UNKNOWN".into(),
                        message: "connect failed".into(),
                        details: None,
                        retryable: None,
                        retry_after_ms: None,
                    });
                    self.state = State::Closed;
                    self.events.push_back(ClientEvent::ConnectFailed(error));
                    return Ok(());
                }
                let payload = res.payload.as_deref().map(RawValue::get).unwrap_or("null");
                let hello: HelloOk = serde_json::from_str(payload).map_err(|e| ClientError::BadHello(e.to_string()))?;
                if hello.ty != HelloOk::TYPE {
                    return Err(ClientError::NotHello(hello.ty.to_string()));
                }
                self.tick_interval_ms = hello.policy.tick_interval_ms.max(1);
                self.state = State::Open;
                self.outbox.extend(self.queued.drain(..));
                self.events.push_back(ClientEvent::Connected(Box::new(hello)));
                Ok(())
            }
            (State::Open, Frame::Response(res)) => {
                let Some(pending) = self.pending.get(&res.id) else {
                    // A late duplicate for a finished request: legal, nothing waits for it.
                    return Ok(());
                };
                let interim = pending.expect_final
                    && res.ok
                    && res
                        .payload
                        .as_deref()
                        .and_then(|p| serde_json::from_str::<StatusOnly>(p.get()).ok())
                        .is_some_and(|s| s.status.as_deref() == Some("accepted"));
                let method = if interim {
                    pending.method.clone()
                } else {
                    self.pending.remove(&res.id).map(|p| p.method).unwrap_or_default()
                };
                let result = if res.ok {
                    Ok(res.payload)
                } else {
                    Err(res.error.unwrap_or_else(|| ErrorShape {
                        code: "UNKNOWN".into(),
                        message: "request failed".into(),
                        details: None,
                        retryable: None,
                        retry_after_ms: None,
                    }))
                };
                self.events.push_back(ClientEvent::Response {
                    id: res.id,
                    method,
                    result,
                    is_final: !interim,
                });
                Ok(())
            }
            (State::Open, Frame::Event(ev)) => {
                self.events.push_back(ClientEvent::Event(ev));
                Ok(())
            }
            (_, Frame::Event(ev)) if ev.event == "tick" => Ok(()),
            (State::Closed, _) => Ok(()),
            (_, other) => Err(ClientError::UnexpectedFrame(other.encode())),
        }
    }

    fn fail_challenge(&mut self) -> Result<(), ClientError> {
        self.state = State::Closed;
        self.events.push_back(ClientEvent::Close(CloseFrame::new(
            code::POLICY_VIOLATION,
            "connect challenge missing nonce",
        )));
        Ok(())
    }

    fn connect_params(&self, challenge: &ConnectChallenge) -> ConnectParams {
        let o = &self.options;
        let auth = o.auth.clone();
        let has_auth = auth != ConnectAuth::default();
        let mut params = ConnectParams {
            min_protocol: o.min_protocol,
            max_protocol: o.max_protocol,
            client: o.client.clone(),
            caps: Some(o.caps.clone()),
            commands: (!o.commands.is_empty()).then(|| o.commands.clone()),
            permissions: None,
            path_env: None,
            role: Some(o.role.as_str().to_owned()),
            scopes: Some(o.scopes.clone()),
            device: None,
            auth: has_auth.then_some(auth),
            locale: None,
            user_agent: None,
            model_catalog: None,
        };
        // Signed at the challenge's time, so the client's clock does not matter.
        params.device = o
            .device
            .as_ref()
            .map(|identity| DeviceProof::sign(identity, &params, &challenge.nonce, challenge.ts));
        params
    }

    /// The next text frame to send.
    pub fn poll_transmit(&mut self) -> Option<String> {
        self.outbox.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When [`ClientConnection::handle_timeout`] must be called next (the tick watchdog deadline).
    pub fn poll_timeout(&self) -> Option<u64> {
        match self.state {
            State::Closed => None,
            _ => Some(self.last_rx_ms.saturating_add(2 * self.tick_interval_ms)),
        }
    }

    /// Checks the tick watchdog: silent for more than twice the tick interval means the connection
    /// is dead, and the client closes it with 4000 "tick timeout". Early calls do nothing.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        if self.state == State::Closed {
            return;
        }
        if now_ms.saturating_sub(self.last_rx_ms) > 2 * self.tick_interval_ms {
            self.state = State::Closed;
            self.events
                .push_back(ClientEvent::Close(CloseFrame::new(code::TICK_TIMEOUT, "tick timeout")));
        }
    }
}

#[derive(serde::Deserialize)]
struct StatusOnly {
    status: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::{ClientId, ClientMode};
    use serde_json::json;

    fn options() -> ClientOptions {
        let mut o = ClientOptions::new(ClientInfo::new(ClientId::Cli, ClientMode::Cli, "1", "linux"));
        o.scopes = vec!["operator.read".into()];
        o.auth.token = Some("t".into());
        o
    }

    fn hello(id: &str) -> String {
        json!({"type":"res","id":id,"ok":true,"payload":{
            "type":"hello-ok","protocol":4,"server":{"version":"x","connId":"c"},
            "features":{"methods":[],"events":[]},"snapshot":{},
            "auth":{"role":"operator","scopes":[]},
            "policy":{"maxPayload":1,"maxBufferedBytes":1,"tickIntervalMs":1000}}})
        .to_string()
    }

    fn connected() -> ClientConnection {
        let mut c = ClientConnection::new(options(), 0);
        c.handle_text(
            0,
            r#"{"type":"event","event":"connect.challenge","payload":{"nonce":"n","ts":5}}"#,
        )
        .unwrap();
        let connect = c.poll_transmit().unwrap();
        let req = RequestFrame::decode(&connect).unwrap();
        c.handle_text(1, &hello(&req.id)).unwrap();
        assert!(matches!(c.poll_event(), Some(ClientEvent::Connected(_))));
        c
    }

    #[test]
    fn requests_made_early_wait_for_hello() {
        let mut c = ClientConnection::new(options(), 0);
        let id = c.request("health", &json!({}));
        assert!(c.poll_transmit().is_none());
        c.handle_text(
            0,
            r#"{"type":"event","event":"connect.challenge","payload":{"nonce":"n","ts":5}}"#,
        )
        .unwrap();
        let connect = RequestFrame::decode(&c.poll_transmit().unwrap()).unwrap();
        assert_eq!(connect.method, "connect");
        c.handle_text(1, &hello(&connect.id)).unwrap();
        let queued = RequestFrame::decode(&c.poll_transmit().unwrap()).unwrap();
        assert_eq!(queued.id, id);
    }

    #[test]
    fn interim_and_final_responses_share_an_id() {
        let mut c = connected();
        let id = c.request_expect_final("agent", &json!({"message":"hi"}));
        let accepted = json!({"type":"res","id":id,"ok":true,"payload":{"status":"accepted"}}).to_string();
        let done = json!({"type":"res","id":id,"ok":true,"payload":{"status":"ok"}}).to_string();
        c.handle_text(2, &accepted).unwrap();
        c.handle_text(3, &done).unwrap();
        c.handle_text(4, &done).unwrap();
        let finals: Vec<bool> = std::iter::from_fn(|| c.poll_event())
            .filter_map(|e| match e {
                ClientEvent::Response { is_final, .. } => Some(is_final),
                _ => None,
            })
            .collect();
        assert_eq!(finals, vec![false, true]);
        assert_eq!(c.pending_requests(), 0);
    }

    #[test]
    fn tick_watchdog_closes_a_silent_connection() {
        let mut c = connected();
        assert_eq!(c.poll_timeout(), Some(1 + 2000));
        c.handle_timeout(2001);
        assert!(c.poll_event().is_none());
        c.handle_timeout(2002);
        match c.poll_event() {
            Some(ClientEvent::Close(f)) => assert_eq!(f, CloseFrame::new(4000, "tick timeout")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_challenge_without_nonce_closes() {
        let mut c = ClientConnection::new(options(), 0);
        c.handle_text(
            0,
            r#"{"type":"event","event":"connect.challenge","payload":{"nonce":" ","ts":5}}"#,
        )
        .unwrap();
        assert!(matches!(c.poll_event(), Some(ClientEvent::Close(f)) if f.code == 1008));
    }
}
