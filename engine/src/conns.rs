//! The connection table and the engine's outbox.
//!
//! It owns every connection (its phase, parser or codec, back-pressure, persist holds and event
//! sequence), the queue of outputs for the runtime, the timers, the log ring and the state
//! versions that broadcasts carry. The other parts of the engine never see a connection's fields:
//! they send, broadcast, close, persist, log and arm timers through the methods here.

use crate::admission::UpgradeInfo;
use crate::log_ring::{LogLevel, LogLine, LogRing};
use crate::metrics::ConnStats;
use crate::nodes::NodeInfo;
use crate::output::{ConnId, Output};
use crate::stability::StabilityRecorder;
use clawgate_proto::close::{code, CloseFrame};
use clawgate_proto::connect::Role;
use clawgate_proto::frame::{EventFrame, Extra, StateVersion};
use clawgate_proto::handshake::{ConnectRejection, ServerHandshake};
use clawgate_proto::http::{HttpError, HttpLimits, Request, RequestParser, RequestProgress, Response};
use clawgate_proto::scopes::{may_receive_event, Scope, ScopeSet};
use clawgate_proto::ws::{Message, WsCodec, WsError};
use serde_json::value::RawValue;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;

/// What a timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    /// A WebSocket handshake must complete by now.
    Handshake(ConnId),
    /// An HTTP connection's idle, head or body deadline.
    Http(ConnId),
    /// The `tick` event.
    Tick,
    /// The `health` snapshot broadcast.
    Health,
    /// Run deadlines and delta flushes of the agents.
    Agents,
    /// Exec approvals that expire.
    Approvals,
    /// The next due cron job.
    Cron,
    /// Channel deliveries: a retry that is due, an adapter that did not answer.
    Channels,
}

/// An authenticated WebSocket: who is on it and what it may do.
pub(crate) struct Session {
    pub device_id: Option<String>,
    /// The shared-secret generation this socket authenticated with (token or password only).
    pub secret_generation: Option<u64>,
    pub role: Role,
    pub scopes: ScopeSet,
    pub scope_names: Vec<String>,
    pub presence_key: Option<String>,
    pub conn_uuid: String,
    /// What a node-role client declared when it connected, for `node.list`.
    pub node: Option<Box<NodeInfo>>,
    /// The client declared the `tool-events` cap: its runs' `tool` events reach it.
    pub tool_events: bool,
    /// The client can decide exec approvals (its scopes allow it, and it is an app that shows
    /// approval prompts or declared the `approvals` cap).
    pub approver: bool,
    /// The client's id (`openclaw-control-ui`, `cli`, ...), for who resolved an approval.
    pub client_id: String,
}

impl Session {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Operator && self.scopes.allows(Scope::Admin)
    }

    /// The node id of a node-role session: its device id, else its connection id.
    pub fn node_id(&self) -> String {
        self.device_id.clone().unwrap_or_else(|| self.conn_uuid.clone())
    }
}

enum Phase {
    Http(RequestParser),
    Handshake {
        codec: WsCodec,
        handshake: Box<ServerHandshake>,
        upgrade: UpgradeInfo,
    },
    Open {
        codec: WsCodec,
        session: Box<Session>,
    },
    Closed,
}

struct Conn {
    peer: SocketAddr,
    local: SocketAddr,
    phase: Phase,
    /// Bytes the runtime reported as queued, plus bytes emitted since that report.
    buffered: usize,
    /// Per-connection event sequence.
    seq: u64,
    /// Set once a close was decided: nothing more is read or sent.
    closing: bool,
    /// While set, bytes for this connection wait until that `persist` is durable (an
    /// acknowledgement must not overtake the write it acknowledges).
    hold_until: Option<u64>,
    held: Vec<u8>,
    /// Close with this frame once the answer being prepared has been sent.
    close_after_answer: Option<CloseFrame>,
    /// An HTTP request is waiting for a tool; later pipelined requests wait behind it.
    http_busy: bool,
    /// Where the connection's next HTTP request is, and since when (for the HTTP timeouts).
    http_progress: (RequestProgress, u64),
    /// When the earliest pending HTTP timer of this connection fires.
    http_timer_at: Option<u64>,
}

/// The limits of the table, from the configuration (they change only with a restart).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    pub max_buffered_bytes: usize,
    pub http_idle_timeout_ms: u64,
    pub http_head_timeout_ms: u64,
    pub http_body_timeout_ms: u64,
}

/// What was on a connection that is gone.
pub(crate) enum Gone {
    /// It was still in its WebSocket handshake (its pre-auth slot is free again).
    Handshake(SocketAddr),
    /// It was an authenticated WebSocket.
    Session(Box<Session>),
    /// Plain HTTP, or already closed.
    Other,
}

/// The next thing a WebSocket said.
pub(crate) enum WsInput {
    /// A text message (a binary one that is UTF-8 counts as text): the `connect` when the
    /// connection is still in its handshake, a request after it.
    Text { text: String, handshake: bool },
    /// Nothing complete yet, or the connection was closed (answered here).
    Nothing,
}

/// The next thing an HTTP connection asked.
pub(crate) enum HttpInput {
    /// A request to answer.
    Request(Request, SocketAddr),
    /// A WebSocket upgrade, with the bytes already read behind it.
    Upgrade(Request, SocketAddr, SocketAddr, Vec<u8>),
    /// Nothing to serve now (no complete request, an answer pending, or closing).
    Nothing,
}

/// The connection table and the outbox.
pub(crate) struct Connections {
    limits: ConnLimits,
    next_conn: u64,
    conns: HashMap<ConnId, Conn>,
    outputs: VecDeque<Output>,
    timers: BinaryHeap<Reverse<(u64, Timer)>>,
    logs: LogRing,
    stability: StabilityRecorder,
    /// Sequence of the last `persist` output, and of the last one the runtime made durable.
    persist_seq: u64,
    persisted_seq: u64,
    /// Events that may go out only once the state they announce is durable.
    deferred_broadcasts: Vec<(u64, &'static str, Box<RawValue>)>,
    /// HTTP connections whose pending answer went out: what they pipelined is served next.
    resumed_http: Vec<ConnId>,
    /// Set when the gateway stops: no connection is kept alive after its answer.
    draining: bool,
    /// Moves whenever anything `health` reports changes (`stateVersion.health`).
    health_version: u64,
    bytes_in: u64,
    bytes_out: u64,
    slow_consumer_closes: u64,
}

impl Connections {
    pub fn new(limits: ConnLimits) -> Self {
        Connections {
            limits,
            next_conn: 1,
            conns: HashMap::new(),
            outputs: VecDeque::new(),
            timers: BinaryHeap::new(),
            logs: LogRing::default(),
            stability: StabilityRecorder::default(),
            persist_seq: 0,
            persisted_seq: 0,
            deferred_broadcasts: Vec::new(),
            resumed_http: Vec::new(),
            draining: false,
            health_version: 1,
            bytes_in: 0,
            bytes_out: 0,
            slow_consumer_closes: 0,
        }
    }

    // ----- the outbox ------------------------------------------------------------------------

    /// The next output for the runtime.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Queues an output that is not about a connection's bytes.
    pub fn push_output(&mut self, output: Output) {
        self.outputs.push_back(output);
    }

    /// Logs a line (kept for `logs.tail`, printed by the runtime).
    pub fn log(&mut self, now_ms: u64, level: LogLevel, message: String) {
        let line = LogLine {
            ts: now_ms,
            level,
            message,
        };
        self.logs.push(line.clone());
        self.outputs.push_back(Output::Log(line));
    }

    /// Records a stability event (`diagnostics.stability`): its kind and payload-free details.
    pub fn diagnostic(&mut self, now_ms: u64, kind: &str, fields: serde_json::Value) {
        self.stability.record(now_ms, kind, fields);
    }

    /// The stability records.
    pub fn stability(&self) -> &StabilityRecorder {
        &self.stability
    }

    /// The log lines kept for `logs.tail`.
    pub fn logs(&self) -> &LogRing {
        &self.logs
    }

    /// Arms a timer.
    pub fn schedule(&mut self, at: u64, timer: Timer) {
        self.timers.push(Reverse((at, timer)));
    }

    /// The earliest armed timer.
    pub fn next_timer_at(&self) -> Option<u64> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Takes the earliest timer if it is due at `now_ms`.
    pub fn pop_due_timer(&mut self, now_ms: u64) -> Option<Timer> {
        match self.timers.peek() {
            Some(Reverse((at, _))) if *at <= now_ms => self.timers.pop().map(|Reverse((_, t))| t),
            _ => None,
        }
    }

    /// Something `health` reports changed: the next snapshot is taken afresh.
    pub fn health_changed(&mut self) {
        self.health_version += 1;
    }

    /// The version of what `health` reports.
    pub fn health_version(&self) -> u64 {
        self.health_version
    }

    // ----- durability ------------------------------------------------------------------------

    /// Writes a state file durably (a `persist` output) and returns its sequence number; answers
    /// held with [`Connections::hold_for_persist`] wait for it.
    pub fn persist_file(&mut self, path: impl Into<String>, contents: String) -> u64 {
        self.persist_seq += 1;
        let seq = self.persist_seq;
        self.outputs.push_back(Output::Persist {
            path: path.into(),
            contents,
            seq,
        });
        seq
    }

    /// Holds everything sent to `conn` until the last `persist` is durable.
    pub fn hold_for_persist(&mut self, conn: ConnId) {
        if self.persist_seq > self.persisted_seq {
            let seq = self.persist_seq;
            if let Some(c) = self.conns.get_mut(&conn) {
                c.hold_until = Some(c.hold_until.map_or(seq, |s| s.max(seq)));
            }
        }
    }

    /// Broadcasts `event` once the last `persist` output is durable.
    pub fn broadcast_after_persist(&mut self, event: &'static str, payload: Box<RawValue>) {
        self.deferred_broadcasts.push((self.persist_seq, event, payload));
    }

    /// The runtime made `persist` output `seq` (and all before it) durable: what waited goes out.
    pub fn persisted(&mut self, now_ms: u64, seq: u64) {
        self.persisted_seq = self.persisted_seq.max(seq);
        let done = self.persisted_seq;
        for conn in self.held_through(done) {
            let Some(c) = self.conns.get_mut(&conn) else { continue };
            c.hold_until = None;
            let held = std::mem::take(&mut c.held);
            let closing = c.closing;
            c.closing = false;
            self.push_bytes(conn, held);
            if closing {
                self.close_now(conn);
            }
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.deferred_broadcasts)
            .into_iter()
            .partition(|(s, _, _)| *s <= done);
        self.deferred_broadcasts = later;
        for (_, event, payload) in due {
            self.broadcast(now_ms, event, &payload, true, None);
        }
    }

    /// The runtime could not write `persist` output `seq`: what waited for it is dropped and the
    /// connections that waited are closed (the change is not acknowledged to anyone).
    pub fn persist_failed(&mut self, now_ms: u64, seq: u64, error: &str) {
        self.log(
            now_ms,
            LogLevel::Error,
            format!("could not persist gateway state: {error}"),
        );
        self.deferred_broadcasts.retain(|(s, _, _)| *s > seq);
        for conn in self.held_through(seq) {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.hold_until = None;
                c.held.clear();
                c.closing = false;
            }
            self.close_ws(conn, &CloseFrame::new(code::INTERNAL_ERROR, "state could not be saved"));
        }
    }

    /// The connections whose output waits for persist outputs up to `seq`.
    fn held_through(&self, seq: u64) -> Vec<ConnId> {
        self.conns
            .iter()
            .filter(|(_, c)| c.hold_until.is_some_and(|h| h <= seq))
            .map(|(id, _)| *id)
            .collect()
    }

    // ----- the table -------------------------------------------------------------------------

    /// A new TCP connection; its idle timer starts now.
    pub fn insert(&mut self, now_ms: u64, peer: SocketAddr, local: SocketAddr) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        self.conns.insert(
            id,
            Conn {
                peer,
                local,
                phase: Phase::Http(RequestParser::new(HttpLimits::default())),
                buffered: 0,
                seq: 0,
                closing: false,
                hold_until: None,
                held: Vec::new(),
                close_after_answer: None,
                http_busy: false,
                http_progress: (RequestProgress::Idle, now_ms),
                http_timer_at: None,
            },
        );
        if self.draining {
            self.close_now(id);
        } else {
            self.arm_http_timer(id, RequestProgress::Idle, now_ms);
        }
        id
    }

    /// The connection is gone: what was on it.
    pub fn remove(&mut self, conn: ConnId) -> Option<Gone> {
        let c = self.conns.remove(&conn)?;
        Some(match c.phase {
            Phase::Handshake { .. } => Gone::Handshake(c.peer),
            Phase::Open { session, .. } => Gone::Session(session),
            _ => Gone::Other,
        })
    }

    /// Number of connections of any kind.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// How many bytes the runtime still holds unsent for `conn`.
    pub fn set_buffered(&mut self, conn: ConnId, queued_bytes: usize) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.buffered = queued_bytes;
        }
    }

    /// Stops keeping connections alive, and closes every one: WebSockets with `frame`.
    pub fn drain(&mut self, frame: &CloseFrame) {
        self.draining = true;
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            let is_ws = self
                .conns
                .get(&id)
                .is_some_and(|c| matches!(c.phase, Phase::Handshake { .. } | Phase::Open { .. }));
            if is_ws {
                self.close_ws(id, frame);
            } else {
                self.close_now(id);
            }
        }
    }

    /// Whether the table was drained: the gateway is stopping.
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Connection counts and byte counters, for `/metrics`.
    pub fn stats(&self) -> ConnStats {
        let mut states = [("http", 0), ("handshake", 0), ("open", 0)];
        for c in self.conns.values() {
            match c.phase {
                Phase::Http(_) => states[0].1 += 1,
                Phase::Handshake { .. } => states[1].1 += 1,
                Phase::Open { .. } => states[2].1 += 1,
                Phase::Closed => {}
            }
        }
        ConnStats {
            states,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            slow_consumer_closes: self.slow_consumer_closes,
        }
    }

    /// The session of an open connection.
    pub fn session_of(&self, conn: ConnId) -> Option<&Session> {
        match &self.conns.get(&conn)?.phase {
            Phase::Open { session, .. } => Some(session),
            _ => None,
        }
    }

    /// The open connections of `device_id` (for `role`, when given).
    pub fn connections_of_device(&self, device_id: &str, role: Option<&str>) -> Vec<ConnId> {
        self.conns
            .iter()
            .filter(|(_, c)| match &c.phase {
                Phase::Open { session, .. } => {
                    session.device_id.as_deref() == Some(device_id) && role.is_none_or(|r| session.role.as_str() == r)
                }
                _ => false,
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// The connected node-role clients: each one's node id and what it declared.
    pub fn connected_nodes(&self) -> impl Iterator<Item = (String, &NodeInfo)> {
        self.conns.values().filter_map(|c| match &c.phase {
            Phase::Open { session, .. } if !c.closing => session.node.as_deref().map(|n| (session.node_id(), n)),
            _ => None,
        })
    }

    /// The connections that may decide an exec approval asked for by `requester`: approvers
    /// with admin scope, and the requester itself when it is one.
    pub fn approvers(&self, requester: Option<ConnId>) -> Vec<ConnId> {
        self.conns
            .iter()
            .filter(|(_, c)| !c.closing)
            .filter_map(|(id, c)| match &c.phase {
                Phase::Open { session, .. } if session.approver && (session.is_admin() || Some(*id) == requester) => {
                    Some(*id)
                }
                _ => None,
            })
            .collect()
    }

    /// The device ids that have an open connection, for `device.pair.list`'s `connected`.
    pub fn connected_devices(&self) -> std::collections::BTreeSet<String> {
        self.conns
            .values()
            .filter(|c| !c.closing)
            .filter_map(|c| match &c.phase {
                Phase::Open { session, .. } => session.device_id.clone(),
                _ => None,
            })
            .collect()
    }

    /// The node id of a node-role connection.
    pub fn node_id_of(&self, conn: ConnId) -> String {
        self.session_of(conn).map(Session::node_id).unwrap_or_default()
    }

    /// The connection of a connected node, and the commands it declared.
    pub fn node_conn(&self, node_id: &str) -> Option<(ConnId, Vec<String>)> {
        self.conns.iter().find_map(|(id, c)| match &c.phase {
            Phase::Open { session, .. } if !c.closing => {
                let node = session.node.as_deref()?;
                let this = session.device_id.as_deref().unwrap_or(&session.conn_uuid);
                (this == node_id).then(|| (*id, node.commands().to_vec()))
            }
            _ => None,
        })
    }

    // ----- bytes out -------------------------------------------------------------------------

    /// Queues bytes for a connection (held back while an acknowledged write is not durable).
    pub fn push_bytes(&mut self, conn: ConnId, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        let Some(c) = self.conns.get_mut(&conn) else { return };
        if c.hold_until.is_some() {
            c.held.extend_from_slice(&bytes);
            return;
        }
        c.buffered += bytes.len();
        self.bytes_out += bytes.len() as u64;
        if let Some(Output::Transmit {
            conn: last,
            bytes: pending,
        }) = self.outputs.back_mut()
        {
            if *last == conn {
                pending.extend_from_slice(&bytes);
                return;
            }
        }
        self.outputs.push_back(Output::Transmit { conn, bytes });
    }

    /// Sends one text message on a WebSocket.
    pub fn send_text(&mut self, conn: ConnId, text: &str) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        if c.closing {
            return;
        }
        let mut out = Vec::with_capacity(text.len() + 10);
        match &mut c.phase {
            Phase::Handshake { codec, .. } | Phase::Open { codec, .. } => codec.encode_text(text, &mut out),
            _ => return,
        }
        self.push_bytes(conn, out);
    }

    /// Sends the answer to a request, then closes the connection if that was decided for after it.
    pub fn send_answer(&mut self, conn: ConnId, text: &str) {
        self.send_text(conn, text);
        if let Some(frame) = self.conns.get_mut(&conn).and_then(|c| c.close_after_answer.take()) {
            self.close_ws(conn, &frame);
        }
    }

    /// Sends one event to one connection: with the connection's `seq` when `with_seq` (targeted
    /// copies of broadcast-type events), without it for events aimed at one peer.
    pub fn send_event(&mut self, conn: ConnId, event: &str, payload: &RawValue, with_seq: bool) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        if c.closing {
            return;
        }
        let seq = if with_seq {
            c.seq += 1;
            Some(c.seq)
        } else {
            None
        };
        let frame = EventFrame {
            event: event.to_owned(),
            payload: Some(payload.to_owned()),
            seq,
            state_version: None,
            extra: Extra::new(),
        };
        let mut text = String::with_capacity(payload.get().len() + 64);
        frame.encode_into(&mut text);
        self.send_text(conn, &text);
    }

    /// Sends `event` to every open connection allowed to see it, with that connection's next
    /// `seq`. A slow connection skips `drop_if_slow` events and is closed for the others.
    pub fn broadcast(
        &mut self,
        now_ms: u64,
        event: &str,
        payload: &RawValue,
        drop_if_slow: bool,
        state_version: Option<StateVersion>,
    ) {
        let max = self.limits.max_buffered_bytes;
        let targets: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.closing)
            .filter_map(|(id, c)| match &c.phase {
                Phase::Open { session, .. } if may_receive_event(session.role, session.scopes, event) => Some(*id),
                _ => None,
            })
            .collect();
        let mut frame = EventFrame {
            event: event.to_owned(),
            payload: Some(payload.to_owned()),
            seq: None,
            state_version,
            extra: Extra::new(),
        };
        let mut text = String::with_capacity(payload.get().len() + 64);
        let mut slow = Vec::new();
        for conn in targets {
            let Some(c) = self.conns.get_mut(&conn) else { continue };
            c.seq += 1;
            if c.buffered > max {
                if drop_if_slow {
                    continue;
                }
                slow.push(conn);
                continue;
            }
            frame.seq = Some(c.seq);
            text.clear();
            frame.encode_into(&mut text);
            self.send_text(conn, &text);
        }
        self.close_slow_consumers(now_ms, &slow, event);
    }

    /// Closes connections whose unsent output is over the limit, saying what could not be queued.
    fn close_slow_consumers(&mut self, now_ms: u64, slow: &[ConnId], what: &str) {
        if slow.is_empty() {
            return;
        }
        self.slow_consumer_closes += slow.len() as u64;
        self.stability.record(
            now_ms,
            "gateway.slow_consumer",
            serde_json::json!({"count": slow.len(), "action": "closed", "surface": what}),
        );
        for &conn in slow {
            self.close_ws(conn, &CloseFrame::new(code::POLICY_VIOLATION, "slow consumer"));
            self.log(
                now_ms,
                LogLevel::Warn,
                format!("closed slow consumer {} ({what} could not be queued)", conn.0),
            );
        }
    }

    // ----- closing ---------------------------------------------------------------------------

    /// Closes the connection once what was queued for it is written.
    pub fn close_now(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        if c.closing {
            return;
        }
        c.closing = true;
        if c.hold_until.is_some() {
            // Released (bytes, then the close) once the write is durable.
            return;
        }
        self.outputs.push_back(Output::Close { conn });
    }

    /// Sends a close frame and closes the connection.
    pub fn close_ws(&mut self, conn: ConnId, frame: &CloseFrame) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        if c.closing {
            return;
        }
        let mut out = Vec::new();
        match &mut c.phase {
            Phase::Handshake { codec, .. } | Phase::Open { codec, .. } => codec.encode_close(Some(frame), &mut out),
            _ => {}
        }
        self.push_bytes(conn, out);
        self.close_now(conn);
    }

    /// Closes the connection right after the answer now being prepared for it.
    pub fn close_after_answer(&mut self, conn: ConnId, frame: &CloseFrame) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.close_after_answer = Some(frame.clone());
        }
    }

    // ----- HTTP ------------------------------------------------------------------------------

    /// Feeds bytes read from `conn` to its parser or codec; `true` for a WebSocket.
    pub fn feed(&mut self, conn: ConnId, data: &[u8]) -> Option<bool> {
        self.bytes_in += data.len() as u64;
        let c = self.conns.get_mut(&conn)?;
        if c.closing {
            return None;
        }
        match &mut c.phase {
            Phase::Http(parser) => {
                parser.feed(data);
                Some(false)
            }
            Phase::Handshake { codec, .. } | Phase::Open { codec, .. } => {
                codec.feed(data);
                Some(true)
            }
            Phase::Closed => None,
        }
    }

    /// The next HTTP request on `conn` to serve. A request the parser refuses is answered here
    /// with `refused` and the connection closes.
    pub fn poll_http(&mut self, conn: ConnId, refused: impl Fn(&HttpError) -> Response) -> HttpInput {
        let Some(c) = self.conns.get_mut(&conn) else {
            return HttpInput::Nothing;
        };
        if c.closing || c.http_busy {
            return HttpInput::Nothing;
        }
        let Phase::Http(parser) = &mut c.phase else {
            return HttpInput::Nothing;
        };
        match parser.poll_request() {
            Ok(Some(request)) if request.is_websocket_upgrade() => {
                let leftover = parser.take_buffered();
                HttpInput::Upgrade(request, c.peer, c.local, leftover)
            }
            Ok(Some(request)) => HttpInput::Request(request, c.peer),
            Ok(None) => HttpInput::Nothing,
            Err(e) => {
                let response = refused(&e);
                self.send_http(conn, &response, false, false);
                HttpInput::Nothing
            }
        }
    }

    /// The answer of `conn`'s current request comes later: later pipelined requests wait.
    pub fn answer_later(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.http_busy = true;
        }
    }

    /// Sends an HTTP response; the connection closes after it unless `keep_alive` (and the table
    /// is not draining).
    pub fn send_http(&mut self, conn: ConnId, response: &Response, head_only: bool, keep_alive: bool) {
        let keep_alive = keep_alive && !self.draining;
        let mut response = response.clone();
        response
            .headers
            .push(("X-Content-Type-Options".into(), "nosniff".into()));
        response.headers.push(("Referrer-Policy".into(), "no-referrer".into()));
        response.headers.push((
            "Permissions-Policy".into(),
            "camera=(), microphone=(), geolocation=()".into(),
        ));
        if !keep_alive
            && !response
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("connection"))
        {
            response.headers.push(("Connection".into(), "close".into()));
        }
        let mut out = Vec::with_capacity(256 + response.body.len());
        response.encode(head_only, &mut out);
        self.push_bytes(conn, out);
        if !keep_alive {
            self.close_now(conn);
        }
    }

    /// Sends the answer of an HTTP request that waited (for a tool, an agent, a file); what the
    /// client pipelined behind it is served next.
    pub fn finish_http(&mut self, conn: ConnId, response: &Response, head_only: bool, keep_alive: bool) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        c.http_busy = false;
        self.send_http(conn, response, head_only, keep_alive);
        self.resumed_http.push(conn);
    }

    /// The streamed answer of a waiting HTTP request is complete (its bytes were pushed): later
    /// pipelined requests are served, or the connection closes.
    pub fn end_stream(&mut self, conn: ConnId, keep_alive: bool) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        c.http_busy = false;
        if !keep_alive || self.draining {
            self.close_now(conn);
            return;
        }
        self.resumed_http.push(conn);
    }

    /// The HTTP connections whose waiting answer went out since the last call.
    pub fn take_resumed_http(&mut self) -> Vec<ConnId> {
        std::mem::take(&mut self.resumed_http)
    }

    /// Restarts the clock of the HTTP timeouts when the connection moved on (idle, into a head,
    /// into a body).
    pub fn note_http_progress(&mut self, now_ms: u64, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        let Phase::Http(parser) = &c.phase else { return };
        let progress = parser.progress();
        // Idle again means a request was just answered: the keep-alive clock starts over. A
        // head or body that is still coming keeps the clock of its first byte.
        if c.http_progress.0 != progress || progress == RequestProgress::Idle {
            c.http_progress = (progress, now_ms);
            self.arm_http_timer(conn, progress, now_ms);
        }
    }

    fn http_timeout(&self, progress: RequestProgress) -> u64 {
        match progress {
            RequestProgress::Idle => self.limits.http_idle_timeout_ms,
            RequestProgress::Head => self.limits.http_head_timeout_ms,
            RequestProgress::Body => self.limits.http_body_timeout_ms,
        }
    }

    /// Makes sure a timer fires by the deadline of `progress`; one already due earlier will do
    /// (it re-arms itself when it finds the connection has moved on), so a busy keep-alive
    /// connection holds one timer, not one per request.
    fn arm_http_timer(&mut self, conn: ConnId, progress: RequestProgress, since_ms: u64) {
        let at = since_ms.saturating_add(self.http_timeout(progress));
        let Some(c) = self.conns.get_mut(&conn) else { return };
        if c.http_timer_at.is_some_and(|pending| pending <= at) {
            return;
        }
        c.http_timer_at = Some(at);
        self.schedule(at, Timer::Http(conn));
    }

    /// An HTTP timer is due: a connection idle too long is closed, one too slow with a request
    /// gets 408 and is closed. A connection whose answer is being prepared is not timed out.
    pub fn on_http_timer(&mut self, now_ms: u64, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        if c.http_timer_at.is_some_and(|at| at <= now_ms) {
            c.http_timer_at = None;
        }
        if c.closing || !matches!(c.phase, Phase::Http(_)) {
            return;
        }
        let (progress, since) = c.http_progress;
        if c.http_busy {
            // The answer is being prepared (a tool, an agent): the clock starts again after it.
            return;
        }
        let peer = c.peer.ip();
        let due = since.saturating_add(self.http_timeout(progress));
        if now_ms < due {
            // The connection moved on since this timer was armed.
            self.arm_http_timer(conn, progress, since);
            return;
        }
        match progress {
            RequestProgress::Idle => self.close_now(conn),
            RequestProgress::Head | RequestProgress::Body => {
                let what = if progress == RequestProgress::Head {
                    "headers"
                } else {
                    "body"
                };
                self.log(
                    now_ms,
                    LogLevel::Warn,
                    format!("HTTP request {what} from {peer} too slow; closed"),
                );
                let response = Response::text(408, "Request Timeout").header("Connection", "close");
                self.send_http(conn, &response, false, false);
            }
        }
    }

    // ----- WebSocket -------------------------------------------------------------------------

    /// Turns an HTTP connection into a WebSocket in its handshake: `out` (the 101 and the
    /// challenge) is sent, the handshake must end by `deadline_ms`.
    pub fn begin_handshake(
        &mut self,
        conn: ConnId,
        codec: WsCodec,
        handshake: ServerHandshake,
        upgrade: UpgradeInfo,
        out: Vec<u8>,
        deadline_ms: u64,
    ) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        c.phase = Phase::Handshake {
            codec,
            handshake: Box::new(handshake),
            upgrade,
        };
        self.push_bytes(conn, out);
        self.schedule(deadline_ms, Timer::Handshake(conn));
    }

    /// Whether `conn` is still in its handshake (for the handshake timer).
    pub fn in_handshake(&self, conn: ConnId) -> Option<SocketAddr> {
        self.conns
            .get(&conn)
            .filter(|c| !c.closing && matches!(c.phase, Phase::Handshake { .. }))
            .map(|c| c.peer)
    }

    /// Takes the handshake state of `conn` to decide its first frame (put back with
    /// [`Connections::restore_handshake`] or replaced with [`Connections::open_session`]).
    pub fn take_handshake(&mut self, conn: ConnId) -> Option<(WsCodec, Box<ServerHandshake>, UpgradeInfo, SocketAddr)> {
        let c = self.conns.get_mut(&conn)?;
        if !matches!(c.phase, Phase::Handshake { .. }) {
            return None;
        }
        let Phase::Handshake {
            codec,
            handshake,
            upgrade,
        } = std::mem::replace(&mut c.phase, Phase::Closed)
        else {
            return None;
        };
        Some((codec, handshake, upgrade, c.peer))
    }

    /// Puts a refused handshake's codec back, so that its close frame can be sent.
    pub fn restore_handshake(&mut self, now_ms: u64, conn: ConnId, codec: WsCodec, upgrade: UpgradeInfo) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.phase = Phase::Handshake {
                codec,
                handshake: Box::new(ServerHandshake::new("", now_ms)),
                upgrade,
            };
        }
    }

    /// The handshake succeeded: the connection carries `session` from now on.
    pub fn open_session(&mut self, conn: ConnId, codec: WsCodec, session: Session) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.phase = Phase::Open {
                codec,
                session: Box::new(session),
            };
        }
    }

    /// The next message on a WebSocket. Pings, pongs, closes and protocol errors are answered
    /// here; so is a slow consumer.
    pub fn poll_ws(&mut self, now_ms: u64, conn: ConnId) -> WsInput {
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return WsInput::Nothing;
            };
            if c.closing {
                return WsInput::Nothing;
            }
            let in_handshake = matches!(c.phase, Phase::Handshake { .. });
            let message = match &mut c.phase {
                Phase::Handshake { codec, .. } | Phase::Open { codec, .. } => codec.poll_message(),
                _ => return WsInput::Nothing,
            };
            let message = match message {
                // A client that sends more requests while it has not read the answers to the
                // earlier ones past the limit is a slow consumer, like one that cannot keep up
                // with events: serving the rest of its burst would pile up answers without bound
                // and hold up everyone else.
                Ok(Some(_)) if !in_handshake && c.buffered > self.limits.max_buffered_bytes => {
                    self.close_slow_consumers(now_ms, &[conn], "its answers");
                    return WsInput::Nothing;
                }
                Ok(Some(m)) => m,
                Ok(None) => return WsInput::Nothing,
                Err(e) => {
                    if let WsError::TooBig { limit } = &e {
                        let surface = if in_handshake {
                            "gateway.ws.preauth"
                        } else {
                            "gateway.ws"
                        };
                        self.stability.record(
                            now_ms,
                            "payload.large",
                            serde_json::json!({"surface": surface, "action": "rejected", "limitBytes": limit}),
                        );
                    }
                    let frame = match (&e, in_handshake) {
                        (WsError::TooBig { .. }, true) => ConnectRejection::PreauthPayloadTooLarge.close(),
                        _ => e.close_frame(),
                    };
                    self.close_ws(conn, &frame);
                    return WsInput::Nothing;
                }
            };
            match message {
                Message::Text(text) => {
                    return WsInput::Text {
                        text,
                        handshake: in_handshake,
                    }
                }
                Message::Binary(data) => match String::from_utf8(data) {
                    Ok(text) => {
                        return WsInput::Text {
                            text,
                            handshake: in_handshake,
                        }
                    }
                    Err(_) => {
                        self.close_ws(
                            conn,
                            &CloseFrame::new(code::UNSUPPORTED_DATA, "binary frames are not supported"),
                        );
                        return WsInput::Nothing;
                    }
                },
                Message::Ping(data) => {
                    let mut out = Vec::new();
                    if let Some(c) = self.conns.get_mut(&conn) {
                        if let Phase::Handshake { codec, .. } | Phase::Open { codec, .. } = &mut c.phase {
                            codec.encode_pong(&data, &mut out);
                        }
                    }
                    self.push_bytes(conn, out);
                }
                Message::Pong(_) => {}
                Message::Close(frame) => {
                    let reply = frame.map_or(CloseFrame::new(code::NORMAL, ""), |f| CloseFrame::new(f.code, ""));
                    self.close_ws(conn, &reply);
                    return WsInput::Nothing;
                }
            }
        }
    }
}
