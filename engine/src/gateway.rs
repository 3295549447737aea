//! The gateway state machine.

use crate::admission::UpgradeInfo;
use crate::config::GatewayConfig;
use crate::pairing::{DeviceClaim, PairingStore};
use crate::presence::{Presence, PresenceEntry};
use crate::rate_limit::canonical_ip;
use crate::reply::Reply;
use clawgate_proto::auth::{AuthFailure, AuthMethod, AuthMode};
use clawgate_proto::close::{code, CloseFrame};
use clawgate_proto::connect::{ClientId, ClientMode, HelloOk, Role};
use clawgate_proto::device::{base64url_encode, DeviceIdentity};
use clawgate_proto::frame::{to_raw, ErrorShape, EventFrame, Extra, Frame, FrameError, ResponseFrame, StateVersion};
use clawgate_proto::handshake::{AcceptedConnect, ConnectRejection, PairingReason, ServerHandshake};
use clawgate_proto::http::{HttpLimits, Request, RequestParser, RequestProgress, Response};
use clawgate_proto::scopes::{authorize, may_receive_event, ScopeSet};
use clawgate_proto::ws::{accept_upgrade, Message, WsCodec, WsError};
use serde_json::json;
use serde_json::value::RawValue;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

/// A connection handle, chosen by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

pub use crate::entropy::Entropy;
pub(crate) use crate::entropy::{mint_token, uuid_v4};

pub use crate::log_ring::{LogLevel, LogLine};

/// What the runtime must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send these bytes on the connection, after any bytes sent before.
    Transmit {
        /// The connection.
        conn: ConnId,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Close the connection once its queued bytes are written (or a short grace passed).
    Close {
        /// The connection.
        conn: ConnId,
    },
    /// Print this log line.
    Log(LogLine),
    /// Write `contents` to `path` (relative to the state directory) atomically and durably, then
    /// call [`Gateway::handle_persisted`] with `seq` (or [`Gateway::handle_persist_failed`]).
    Persist {
        /// Relative path, e.g. `devices/paired.json`.
        path: &'static str,
        /// The whole new file.
        contents: String,
        /// Acknowledge with this number.
        seq: u64,
    },
    /// The gateway stopped: every connection was told and closed; the runtime may exit.
    Stopped,
    /// Read the configuration file again and pass it to [`Gateway::handle_config_text`]
    /// (asked for over RPC with `config.reload`).
    ReloadConfig,
    /// Run a tool off the event loop, then call [`Gateway::handle_tool_result`] with its `call`.
    RunTool(crate::tool_calls::ToolRun),
    /// Append this line (JSON, no newline) to the tool audit log under the state directory.
    AppendAudit {
        /// The line.
        line: String,
    },
    /// Append this line (JSON, no newline) to a session transcript, creating the file (0600) and
    /// its folder (0700) if needed. Lines are written in order; the runtime syncs the files it
    /// appended to before it reads more input.
    AppendTranscript {
        /// Relative to the state directory, e.g. `sessions/<sessionId>.jsonl`.
        file: String,
        /// The line.
        line: String,
    },
    /// Read a file of the Control UI bundle and answer with it: call
    /// [`Gateway::handle_static_response`].
    ServeStatic(crate::control_ui::StaticRequest),
    /// Delete a session transcript (the session was reset, deleted or pruned).
    RemoveTranscript {
        /// Relative to the state directory.
        file: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Handshake(ConnId),
    Http(ConnId),
    Tick,
    Health,
    Agents,
}

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
    pub node: Option<Box<crate::nodes::NodeInfo>>,
}

impl Session {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Operator && self.scopes.allows(clawgate_proto::scopes::Scope::Admin)
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

/// The `snapshot.sessionDefaults` of `hello-ok`. The Control UI sends a user to its model setup
/// page while `modelConfigured` is false: it is true once an agent is configured or served.
fn session_defaults(config: &GatewayConfig, model_configured: bool) -> Box<RawValue> {
    let routing = config.session_routing();
    to_raw(&json!({
        "defaultAgentId": routing.default_agent.as_str(),
        "modelConfigured": model_configured,
        "ownership": "sole",
        "selectionRequired": false,
        "mainKey": routing.effective_main_key(),
        "mainSessionKey": routing.main_session(None),
        "scope": match config.session_scope {
            clawgate_proto::session::SessionScope::PerSender => "per-sender",
            clawgate_proto::session::SessionScope::Global => "global",
        },
    }))
}

/// JSON text reused across requests and handshakes.
pub(crate) struct Cache {
    features: Box<RawValue>,
    policy: Box<RawValue>,
    session_defaults: Box<RawValue>,
    /// `(health version, health summary)`: the summary is taken when the version moves.
    pub health: (u64, Box<RawValue>),
    /// `(presence version, presence list)`.
    pub presence: (u64, Box<RawValue>),
    /// Moves whenever anything `health` reports changes; the summary is re-taken then.
    health_version: u64,
}

impl Cache {
    fn new(config: &GatewayConfig) -> Cache {
        Cache {
            features: to_raw(&json!({
                "methods": crate::methods::implemented_methods().collect::<Vec<_>>(),
                "events": crate::methods::EVENTS,
            })),
            policy: to_raw(&json!({
                "maxPayload": config.max_payload,
                "maxBufferedBytes": config.max_buffered_bytes,
                "tickIntervalMs": config.tick_interval_ms,
            })),
            session_defaults: session_defaults(config, !config.tool_policy.agents.is_empty()),
            // Version 0 is never current: the first use fills these.
            health: (0, to_raw(&json!({}))),
            presence: (0, to_raw(&json!([]))),
            health_version: 1,
        }
    }

    /// Something `health` reports changed: the next snapshot is taken afresh.
    pub(crate) fn health_changed(&mut self) {
        self.health_version += 1;
    }

    /// The version of what `health` reports (`stateVersion.health`).
    pub(crate) fn health_version(&self) -> u64 {
        self.health_version
    }
}

/// The gateway.
pub struct Gateway {
    pub(crate) config: GatewayConfig,
    pub(crate) entropy: Box<dyn Entropy + Send>,
    pub(crate) started_at: u64,
    next_conn: u64,
    conns: HashMap<ConnId, Conn>,
    admission: crate::admission::Admission,
    timers: BinaryHeap<Reverse<(u64, Timer)>>,
    outputs: VecDeque<Output>,
    pub(crate) presence: Presence,
    logs: crate::log_ring::LogRing,
    pub(crate) idempotency: crate::idempotency::IdempotencyCache,
    pub(crate) tool_calls: crate::tool_calls::RunningTools,
    pub(crate) agents: crate::agents::AgentHub,
    pub(crate) metrics: crate::metrics::Metrics,
    pub(crate) cache: Cache,
    /// Incremented whenever the shared secret changes.
    secret_generation: u64,
    /// The configuration document in force, for diffing on reload.
    document: serde_json::Value,
    /// `health.configReload`.
    pub(crate) config_reload_status: serde_json::Value,
    restart_requested: bool,
    pub(crate) identity: DeviceIdentity,
    pub(crate) pairing: PairingStore,
    /// Sequence of the last `persist` output, and of the last one the runtime made durable.
    persist_seq: u64,
    persisted_seq: u64,
    /// Events that may go out only once the pairing state they announce is durable.
    deferred_broadcasts: Vec<(u64, &'static str, Box<RawValue>)>,
    pub(crate) instance_id: String,
    stopping: bool,
    stopped_reported: bool,
}

impl Gateway {
    /// A gateway started at `now_ms`. The gateway's own identity seed is drawn from `entropy`.
    pub fn new(config: GatewayConfig, mut entropy: Box<dyn Entropy + Send>, now_ms: u64) -> Self {
        let mut seed = [0u8; 32];
        entropy.fill(&mut seed);
        let mut instance = [0u8; 16];
        entropy.fill(&mut instance);
        let cache = Cache::new(&config);
        let admission = crate::admission::Admission::new(config.rate_limit);
        let mut g = Gateway {
            identity: DeviceIdentity::from_seed(&seed),
            instance_id: uuid_v4(instance),
            config,
            entropy,
            started_at: now_ms,
            next_conn: 1,
            conns: HashMap::new(),
            admission,
            timers: BinaryHeap::new(),
            outputs: VecDeque::new(),
            presence: Presence::default(),
            logs: crate::log_ring::LogRing::default(),
            idempotency: crate::idempotency::IdempotencyCache::default(),
            tool_calls: crate::tool_calls::RunningTools::default(),
            agents: crate::agents::AgentHub::default(),
            metrics: crate::metrics::Metrics::default(),
            cache,
            secret_generation: 1,
            document: crate::settings::empty_document(),
            config_reload_status: json!({"hotReloadStatus": "active"}),
            restart_requested: false,
            pairing: PairingStore::default(),
            persist_seq: 0,
            persisted_seq: 0,
            deferred_broadcasts: Vec::new(),
            stopping: false,
            stopped_reported: false,
        };
        g.timers
            .push(Reverse((now_ms + g.config.tick_interval_ms, Timer::Tick)));
        g.timers
            .push(Reverse((now_ms + g.config.health_refresh_interval_ms, Timer::Health)));
        let self_entry = g.self_presence(now_ms);
        g.presence.upsert(format!("gateway:{}", g.instance_id), self_entry);
        g
    }

    fn self_presence(&self, now_ms: u64) -> PresenceEntry {
        PresenceEntry {
            host: self.config.host_name.clone(),
            ip: None,
            version: self.config.server_version.clone(),
            platform: std::env::consts::OS.to_owned(),
            device_family: None,
            model_identifier: None,
            mode: "gateway".to_owned(),
            reason: "self".to_owned(),
            device_id: None,
            instance_id: Some(self.instance_id.clone()),
            roles: Vec::new(),
            scopes: None,
            text: format!(
                "Gateway: {} · app {} · mode gateway · reason self",
                self.config.host_name, self.config.server_version
            ),
            ts: now_ms,
        }
    }

    pub(crate) fn random_uuid(&mut self) -> String {
        let mut b = [0u8; 16];
        self.entropy.fill(&mut b);
        uuid_v4(b)
    }

    /// The log lines kept for `logs.tail`.
    pub(crate) fn logs_ring(&self) -> &crate::log_ring::LogRing {
        &self.logs
    }

    pub(crate) fn log(&mut self, now_ms: u64, level: LogLevel, message: String) {
        let line = LogLine {
            ts: now_ms,
            level,
            message,
        };
        self.logs.push(line.clone());
        self.outputs.push_back(Output::Log(line));
    }

    /// Replaces the pairing state (read back from disk by the runtime at start).
    pub fn with_pairing(mut self, store: PairingStore) -> Self {
        self.pairing = store;
        self
    }

    /// Emits the pairing files for the runtime to write; returns the sequence number to wait for.
    pub(crate) fn persist_pairing(&mut self, _now_ms: u64) -> u64 {
        let paired = self.pairing.paired_json();
        self.persist_file("devices/paired.json", paired);
        let pending = self.pairing.pending_json();
        self.persist_file("devices/pending.json", pending)
    }

    /// Carries out what a pairing method asked for, in order, for the request on `conn`.
    fn apply_pairing_effects(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        effects: Vec<crate::pairing_methods::PairingEffect>,
    ) {
        use crate::pairing_methods::PairingEffect;
        for effect in effects {
            match effect {
                PairingEffect::Persist { hold } => {
                    self.persist_pairing(now_ms);
                    if hold {
                        self.hold_for_persist(conn);
                    }
                }
                PairingEffect::Resolved(payload) => self.broadcast_after_persist("device.pair.resolved", payload),
                PairingEffect::Log(line) => self.log(now_ms, LogLevel::Info, line),
                PairingEffect::Disconnect {
                    device_id,
                    role,
                    reason,
                } => {
                    // The caller's own connection gets its answer first and is closed after it.
                    for c in self.connections_of_device(&device_id, role.as_deref()) {
                        let frame = CloseFrame::new(code::POLICY_VIOLATION, reason);
                        if c == conn {
                            self.close_after_answer(c, &frame);
                        } else {
                            self.close_connection(c, &frame);
                        }
                    }
                }
            }
        }
    }

    /// Holds everything sent to `conn` until the last `persist` is durable.
    pub(crate) fn hold_for_persist(&mut self, conn: ConnId) {
        if self.persist_seq > self.persisted_seq {
            let seq = self.persist_seq;
            if let Some(c) = self.conns.get_mut(&conn) {
                c.hold_until = Some(c.hold_until.map_or(seq, |s| s.max(seq)));
            }
        }
    }

    /// Writes a state file durably (a `persist` output) and returns its sequence number; answers
    /// held with [`Gateway::hold_for_persist`] wait for it.
    pub(crate) fn persist_file(&mut self, path: &'static str, contents: String) -> u64 {
        self.persist_seq += 1;
        let seq = self.persist_seq;
        self.outputs.push_back(Output::Persist { path, contents, seq });
        seq
    }

    /// Broadcasts `event` once the last `persist` output is durable.
    pub(crate) fn broadcast_after_persist(&mut self, event: &'static str, payload: Box<RawValue>) {
        self.deferred_broadcasts.push((self.persist_seq, event, payload));
    }

    /// The runtime made the `persist` output `seq` (and all before it) durable.
    pub fn handle_persisted(&mut self, now_ms: u64, seq: u64) {
        self.persisted_seq = self.persisted_seq.max(seq);
        self.release_persisted(now_ms);
    }

    /// The runtime could not write `persist` output `seq`: what waited for it is dropped and the
    /// connections that waited are closed (the change is not acknowledged to anyone).
    pub fn handle_persist_failed(&mut self, now_ms: u64, seq: u64, error: &str) {
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

    fn release_persisted(&mut self, now_ms: u64) {
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

    /// The configuration document the gateway started with (for diffing later changes).
    pub fn with_config_document(mut self, document: serde_json::Value) -> Self {
        self.document = document;
        self
    }

    pub(crate) fn request_config_reload(&mut self) {
        self.outputs.push_back(Output::ReloadConfig);
    }

    /// The configuration document in force.
    pub fn document(&self) -> &serde_json::Value {
        &self.document
    }

    /// Whether the last reload asked for a restart: once [`Output::Stopped`] arrives the runtime
    /// starts the gateway again with the same arguments.
    pub fn restart_requested(&self) -> bool {
        self.restart_requested
    }

    /// The configuration file was read again (file change, SIGHUP, `config.reload`): `text` is its
    /// contents or why it could not be read; `env` looks up `${NAME}` substitutions. A file that does
    /// not parse or validate leaves everything as it is and is reported in `health.configReload`.
    pub fn handle_config_text(&mut self, now_ms: u64, text: Result<&str, &str>, env: &dyn Fn(&str) -> Option<String>) {
        use crate::reload::{plan, HotAction, ReloadMode};
        let parsed = match text {
            Err(e) => Err(e.to_owned()),
            Ok(t) => crate::settings::parse(t, env).map_err(|e| e.to_string()),
        };
        let (settings, warnings) = match parsed {
            Ok(ok) => ok,
            Err(e) => {
                self.log(
                    now_ms,
                    LogLevel::Error,
                    format!("config reload skipped (invalid config): {e}"),
                );
                self.config_reload_status =
                    json!({"hotReloadStatus": "error", "lastError": e, "lastAttemptAtMs": now_ms});
                self.cache.health_changed();
                return;
            }
        };
        for w in warnings {
            self.log(now_ms, LogLevel::Warn, w);
        }
        // What the whole file means; the plan decides which of it applies now.
        let mut next = self.config.clone();
        next.apply_file(&settings);
        let mode: ReloadMode = next.reload_mode;
        let plan = plan(mode, &self.document, &settings.document);
        if plan.changed.is_empty() {
            return;
        }
        self.log(
            now_ms,
            LogLevel::Info,
            format!("config changed: {}", plan.changed.join(", ")),
        );
        if !plan.ignored.is_empty() {
            self.log(
                now_ms,
                LogLevel::Warn,
                format!(
                    "config changes NOT applied (reload mode {mode:?} needs a restart for them): {}",
                    plan.ignored.join(", ")
                ),
            );
        }
        self.config.reload_mode = mode;
        self.config_reload_status =
            json!({"hotReloadStatus": "active", "lastReloadAtMs": now_ms, "changed": plan.changed});
        self.cache.health_changed();
        if plan.restart {
            self.document = settings.document;
            self.restart_requested = true;
            self.handle_shutdown(now_ms, "gateway restarting", Some(1500));
            return;
        }
        for action in &plan.hot {
            match action {
                HotAction::AuthSecret => {
                    if next.auth != self.config.auth {
                        self.config.auth = next.auth.clone();
                        self.secret_generation += 1;
                        self.log(
                            now_ms,
                            LogLevel::Info,
                            "shared secret changed; sockets that used the old one close at their next request".into(),
                        );
                    }
                }
                HotAction::RateLimit => {
                    self.config.rate_limit = next.rate_limit;
                    self.admission.set_rate_limit(self.config.rate_limit);
                }
                HotAction::AllowedOrigins => self.config.allowed_origins = next.allowed_origins.clone(),
                HotAction::PairingPolicy => self.config.auto_approve_local = next.auto_approve_local,
                HotAction::TrustedProxies => {
                    self.config.trusted_proxies = next.trusted_proxies.clone();
                    self.config.trusted_proxy = next.trusted_proxy.clone();
                }
                HotAction::Agents | HotAction::SessionRouting => {
                    self.config.tool_policy = next.tool_policy.clone();
                    self.config.main_key = next.main_key.clone();
                    self.config.session_scope = next.session_scope;
                    self.config.session_prune_after_ms = next.session_prune_after_ms;
                    self.refresh_session_defaults();
                }
                HotAction::ToolPolicy => {
                    self.config.tool_policy = next.tool_policy.clone();
                    self.refresh_session_defaults();
                }
                // Read by parts of the gateway that are not built yet; nothing to refresh.
                HotAction::HttpEndpoints => {}
            }
        }
        self.document = settings.document;
    }

    /// Logs a line on behalf of the runtime (e.g. "listening on ...").
    pub fn handle_log(&mut self, now_ms: u64, level: LogLevel, message: String) {
        self.log(now_ms, level, message);
    }

    /// The configuration in force.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// Number of open connections of any kind.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// A new TCP connection from `peer`, accepted on the local address `local`.
    pub fn handle_connection(&mut self, now_ms: u64, peer: SocketAddr, local: SocketAddr) -> ConnId {
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
        if self.stopping {
            self.close_now(id);
        } else {
            self.arm_http_timer(id, RequestProgress::Idle, now_ms);
        }
        id
    }

    /// How many bytes the runtime still holds unsent for `conn` (after a write completed or queued).
    pub fn handle_buffered(&mut self, conn: ConnId, queued_bytes: usize) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.buffered = queued_bytes;
        }
    }

    /// The connection is gone (peer closed, error, or our close completed).
    pub fn handle_closed(&mut self, now_ms: u64, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        match c.phase {
            Phase::Handshake { .. } => self.release_preauth(c.peer.ip()),
            Phase::Open { session, .. } => {
                if let Some(key) = session.presence_key {
                    self.presence.disconnect(&key, now_ms);
                    self.broadcast_presence(now_ms);
                }
                self.agent_conn_closed(now_ms, conn);
            }
            _ => {}
        }
        self.maybe_report_stopped();
    }

    fn release_preauth(&mut self, ip: IpAddr) {
        self.admission.released(ip);
    }

    /// Queues bytes for a connection (held back while an acknowledged write is not durable).
    pub(crate) fn push_bytes(&mut self, conn: ConnId, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            if c.hold_until.is_some() {
                c.held.extend_from_slice(&bytes);
                return;
            }
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.buffered += bytes.len();
        }
        self.metrics.bytes_out += bytes.len() as u64;
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

    fn close_now(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if c.closing {
                return;
            }
            if c.hold_until.is_some() {
                // Released (bytes, then the close) once the write is durable.
                c.closing = true;
                return;
            }
            c.closing = true;
            self.outputs.push_back(Output::Close { conn });
        }
    }

    /// The open connections of `device_id` (for `role`, when given).
    pub(crate) fn connections_of_device(&self, device_id: &str, role: Option<&str>) -> Vec<ConnId> {
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

    /// Sends a close frame and closes the connection.
    pub(crate) fn close_connection(&mut self, conn: ConnId, frame: &CloseFrame) {
        self.close_ws(conn, frame);
    }

    /// Closes the connection right after the answer now being prepared for it.
    pub(crate) fn close_after_answer(&mut self, conn: ConnId, frame: &CloseFrame) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.close_after_answer = Some(frame.clone());
        }
    }

    /// Sends a close frame and closes the connection.
    fn close_ws(&mut self, conn: ConnId, frame: &CloseFrame) {
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

    /// The open node-role sessions and what each declared.
    pub(crate) fn node_sessions(&self) -> impl Iterator<Item = (&Session, &crate::nodes::NodeInfo)> {
        self.conns.values().filter_map(|c| match &c.phase {
            Phase::Open { session, .. } if !c.closing => session.node.as_deref().map(|n| (&**session, n)),
            _ => None,
        })
    }

    /// The connected node-role clients: each one's node id (its device, else its connection)
    /// and what it declared.
    pub(crate) fn connected_nodes(&self) -> impl Iterator<Item = (String, &crate::nodes::NodeInfo)> {
        self.node_sessions().map(|(session, node)| {
            (
                session.device_id.clone().unwrap_or_else(|| session.conn_uuid.clone()),
                node,
            )
        })
    }

    /// The session of an open connection.
    pub(crate) fn session_of(&self, conn: ConnId) -> Option<&Session> {
        match &self.conns.get(&conn)?.phase {
            Phase::Open { session, .. } => Some(session),
            _ => None,
        }
    }

    /// The node id of a node-role connection: its device id, else its connection id.
    pub(crate) fn node_id_of(&self, conn: ConnId) -> String {
        self.session_of(conn)
            .map(|s| s.device_id.clone().unwrap_or_else(|| s.conn_uuid.clone()))
            .unwrap_or_default()
    }

    /// The connection of a connected node, and the commands it declared.
    pub(crate) fn node_conn(&self, node_id: &str) -> Option<(ConnId, Vec<String>)> {
        self.conns.iter().find_map(|(id, c)| match &c.phase {
            Phase::Open { session, .. } if !c.closing => {
                let node = session.node.as_deref()?;
                let this = session.device_id.as_deref().unwrap_or(&session.conn_uuid);
                (this == node_id).then(|| (*id, node.commands().to_vec()))
            }
            _ => None,
        })
    }

    /// Sends one event to one connection: with the connection's `seq` when `with_seq` (targeted
    /// copies of broadcast-type events), without it for events aimed at one peer.
    pub(crate) fn send_event(&mut self, conn: ConnId, event: &str, payload: &RawValue, with_seq: bool) {
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

    /// The streamed answer of a deferred HTTP request is complete: later pipelined requests are
    /// served, or the connection closes.
    pub(crate) fn end_streamed_http(&mut self, now_ms: u64, conn: ConnId, keep_alive: bool) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        c.http_busy = false;
        if !keep_alive || self.stopping {
            self.close_now(conn);
            return;
        }
        self.drive_http(now_ms, conn);
    }

    /// The HTTP bearer check with the failed-attempt limiter: `Err(None)` is a wrong or missing
    /// secret, `Err(Some(ms))` a client locked out for that long. Clean requests from this host
    /// are exempt, as on the WebSocket.
    pub(crate) fn check_http_bearer(
        &mut self,
        now_ms: u64,
        peer: SocketAddr,
        request: &Request,
    ) -> Result<(), Option<u64>> {
        self.admission.check_http_bearer(&self.config, now_ms, peer, request)
    }

    pub(crate) fn refresh_session_defaults(&mut self) {
        self.cache.session_defaults = session_defaults(&self.config, self.model_configured());
    }

    pub(crate) fn schedule_agents_timer(&mut self, at: u64) {
        self.timers.push(Reverse((at, Timer::Agents)));
    }

    pub(crate) fn push_output(&mut self, output: Output) {
        self.outputs.push_back(output);
    }

    pub(crate) fn send_text(&mut self, conn: ConnId, text: &str) {
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

    fn send_http(&mut self, conn: ConnId, response: &Response, head_only: bool, keep_alive: bool) {
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

    /// Bytes received on `conn`.
    pub fn handle_bytes(&mut self, now_ms: u64, conn: ConnId, data: &[u8]) {
        self.metrics.bytes_in += data.len() as u64;
        let Some(c) = self.conns.get_mut(&conn) else { return };
        if c.closing {
            return;
        }
        match &mut c.phase {
            Phase::Http(parser) => {
                parser.feed(data);
                self.drive_http(now_ms, conn);
            }
            Phase::Handshake { codec, .. } | Phase::Open { codec, .. } => {
                codec.feed(data);
                self.drive_ws(now_ms, conn);
            }
            Phase::Closed => {}
        }
    }

    fn drive_http(&mut self, now_ms: u64, conn: ConnId) {
        self.serve_http(now_ms, conn);
        self.note_http_progress(now_ms, conn);
    }

    /// Restarts the clock of the HTTP timeouts when the connection moved on (idle, into a head,
    /// into a body).
    fn note_http_progress(&mut self, now_ms: u64, conn: ConnId) {
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
            RequestProgress::Idle => self.config.http_idle_timeout_ms,
            RequestProgress::Head => self.config.http_head_timeout_ms,
            RequestProgress::Body => self.config.http_body_timeout_ms,
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
        self.timers.push(Reverse((at, Timer::Http(conn))));
    }

    /// An HTTP timer is due: a connection idle too long is closed, one too slow with a request
    /// gets 408 and is closed. A connection whose answer is being prepared is not timed out.
    fn on_http_timer(&mut self, now_ms: u64, conn: ConnId) {
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

    fn serve_http(&mut self, now_ms: u64, conn: ConnId) {
        loop {
            let Some(c) = self.conns.get_mut(&conn) else { return };
            if c.closing || c.http_busy {
                return;
            }
            let Phase::Http(parser) = &mut c.phase else { return };
            let request = match parser.poll_request() {
                Ok(Some(r)) => r,
                Ok(None) => return,
                Err(e) => {
                    let response = crate::http_routes::refused_request(&e);
                    self.send_http(conn, &response, false, false);
                    return;
                }
            };
            if request.is_websocket_upgrade() {
                let leftover = parser.take_buffered();
                self.upgrade(now_ms, conn, &request, leftover);
                return;
            }
            let peer = c.peer;
            let head_only = request.method == "HEAD";
            let keep_alive = request.keep_alive() && !self.stopping;
            match self.route_http(now_ms, conn, peer, &request, keep_alive) {
                crate::reply::HttpReply::Now(response) => self.send_http(conn, &response, head_only, keep_alive),
                crate::reply::HttpReply::Later => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.http_busy = true;
                    }
                    return;
                }
            }
        }
    }

    /// Sends the answer of an HTTP request that waited (for a tool), then serves what the client
    /// pipelined behind it.
    pub(crate) fn finish_deferred_http(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        response: &Response,
        head_only: bool,
        keep_alive: bool,
    ) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        c.http_busy = false;
        self.send_http(conn, response, head_only, keep_alive && !self.stopping);
        self.drive_http(now_ms, conn);
    }

    pub(crate) fn issue_http_nonce(&mut self, now_ms: u64) -> (String, u64) {
        let nonce = self.random_uuid();
        self.admission.issue_nonce(nonce, now_ms)
    }

    fn upgrade(&mut self, now_ms: u64, conn: ConnId, request: &Request, leftover: Vec<u8>) {
        let Some(c) = self.conns.get(&conn) else { return };
        let peer = c.peer;
        let ip = canonical_ip(peer.ip());
        if self.stopping {
            let r = Response::text(503, "Gateway stopping");
            self.send_http(conn, &r, false, false);
            return;
        }
        if !self.admission.may_open(ip, self.config.max_preauth_per_ip) {
            let r = Response::text(503, "Too many unauthenticated sockets");
            self.send_http(conn, &r, false, false);
            self.log(
                now_ms,
                LogLevel::Warn,
                format!("refused upgrade from {ip}: too many unauthenticated sockets"),
            );
            return;
        }
        let accepted = match accept_upgrade(request) {
            Ok(a) => a,
            Err(response) => {
                self.send_http(conn, &response, false, false);
                return;
            }
        };
        let local = self.conns.get(&conn).map(|c| c.local).unwrap_or(peer);
        let upgrade = UpgradeInfo::read(&self.config, peer, local, request);
        if upgrade.origin.is_some() && !upgrade.origin_allowed(&self.config) {
            // A browser page from a foreign origin never gets a WebSocket.
            let r = Response::text(403, "Origin not allowed");
            self.send_http(conn, &r, false, false);
            self.metrics.handshake("origin_refused");
            return;
        }
        self.admission.opened(ip);
        let nonce = self.random_uuid();
        let handshake = ServerHandshake::new(nonce, now_ms);
        let mut codec = WsCodec::server(self.config.max_preauth_payload);
        let mut out = accepted.response_bytes();
        codec.encode_text(&handshake.challenge().encode(), &mut out);
        codec.feed(&leftover);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.phase = Phase::Handshake {
                codec,
                handshake: Box::new(handshake),
                upgrade,
            };
        }
        self.push_bytes(conn, out);
        self.timers.push(Reverse((
            now_ms + self.config.handshake_timeout_ms,
            Timer::Handshake(conn),
        )));
        if !leftover.is_empty() {
            self.drive_ws(now_ms, conn);
        }
    }

    fn drive_ws(&mut self, now_ms: u64, conn: ConnId) {
        loop {
            let Some(c) = self.conns.get_mut(&conn) else { return };
            if c.closing {
                return;
            }
            let in_handshake = matches!(c.phase, Phase::Handshake { .. });
            let message = match &mut c.phase {
                Phase::Handshake { codec, .. } | Phase::Open { codec, .. } => codec.poll_message(),
                _ => return,
            };
            let message = match message {
                // A client that sends more requests while it has not read the answers to the
                // earlier ones past the limit is a slow consumer, like one that cannot keep up
                // with events: serving the rest of its burst would pile up answers without bound
                // and hold up everyone else.
                Ok(Some(_)) if !in_handshake && c.buffered > self.config.max_buffered_bytes => {
                    self.close_slow_consumers(now_ms, &[conn], "its answers");
                    return;
                }
                Ok(Some(m)) => m,
                Ok(None) => return,
                Err(e) => {
                    let frame = match (&e, in_handshake) {
                        (WsError::TooBig { .. }, true) => ConnectRejection::PreauthPayloadTooLarge.close(),
                        _ => e.close_frame(),
                    };
                    self.close_ws(conn, &frame);
                    return;
                }
            };
            match message {
                Message::Text(text) => self.on_text(now_ms, conn, &text),
                Message::Binary(data) => match String::from_utf8(data) {
                    Ok(text) => self.on_text(now_ms, conn, &text),
                    Err(_) => self.close_ws(
                        conn,
                        &CloseFrame::new(code::UNSUPPORTED_DATA, "binary frames are not supported"),
                    ),
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
                    return;
                }
            }
        }
    }

    fn on_text(&mut self, now_ms: u64, conn: ConnId, text: &str) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        if matches!(c.phase, Phase::Handshake { .. }) {
            let Phase::Handshake {
                codec,
                handshake,
                upgrade,
            } = std::mem::replace(&mut c.phase, Phase::Closed)
            else {
                return;
            };
            let peer = c.peer;
            match handshake.handle_first_frame(text, now_ms, self.admission.nonces()) {
                Err(rejection) => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.phase = Phase::Handshake {
                            codec,
                            handshake: Box::new(ServerHandshake::new("", now_ms)),
                            upgrade,
                        };
                    }
                    self.reject(now_ms, conn, peer, rejection);
                }
                Ok(accepted) => self.complete_handshake(now_ms, conn, peer, codec, accepted, upgrade),
            }
            return;
        }
        self.on_request(now_ms, conn, text);
    }

    fn reject(&mut self, now_ms: u64, conn: ConnId, peer: SocketAddr, rejection: clawgate_proto::handshake::Rejection) {
        let clawgate_proto::handshake::Rejection { response, close, label } = rejection;
        let response = response.map(|r| *r);
        let close = &close;
        self.metrics.handshake(label);
        if let Some(res) = response {
            self.send_text(conn, &res.encode());
        }
        self.log(
            now_ms,
            LogLevel::Warn,
            format!("handshake from {} refused: {} {}", peer.ip(), close.code, close.reason),
        );
        self.close_ws(conn, close);
    }

    /// The decisions that need gateway state: origin, shared secret, device admission, scopes.
    fn admit(
        &mut self,
        now_ms: u64,
        peer: SocketAddr,
        accepted: &AcceptedConnect,
        upgrade: &UpgradeInfo,
    ) -> Result<(AuthMethod, Vec<String>), ConnectRejection> {
        let client = &accepted.params.client;
        let requested = accepted.params.scopes().to_vec();
        let role = accepted.role.as_str();
        // A device whose shared secret fails may authenticate with its own token.
        let pairing = &mut self.pairing;
        let mut verify = |token: &str| match &accepted.device {
            Some(device) => pairing
                .verify_token(&device.id, token, role, &requested, now_ms)
                .is_ok(),
            None => false,
        };
        let device_token = accepted
            .device
            .is_some()
            .then_some(&mut verify as &mut dyn FnMut(&str) -> bool);
        let method = self
            .admission
            .authenticate(&self.config, now_ms, peer, accepted, upgrade, device_token)?;
        match &accepted.device {
            None => {
                if client.id == ClientId::ControlUi || client.id == ClientId::Tui {
                    return Err(ConnectRejection::ControlUiDeviceIdentityRequired);
                }
                if method == AuthMethod::None && !upgrade.local_direct {
                    // Without a shared secret, a device-less caller must at least be on this host.
                    return Err(ConnectRejection::DeviceIdentityRequired);
                }
                let keeps_scopes = upgrade.local_direct
                    && matches!(
                        (client.id, client.mode),
                        (ClientId::Cli, ClientMode::Cli) | (ClientId::GatewayClient, ClientMode::Backend)
                    );
                let scopes = if keeps_scopes || accepted.role == Role::Node {
                    requested
                } else {
                    Vec::new()
                };
                Ok((method, scopes))
            }
            Some(device) => {
                let params = &accepted.params;
                let public_key = base64url_encode(&device.public_key);
                let claim = DeviceClaim {
                    device_id: &device.id,
                    public_key: &public_key,
                    role,
                    scopes: &requested,
                    display_name: params.client.display_name.as_deref(),
                    platform: &params.client.platform,
                    device_family: params.client.device_family.as_deref(),
                    client_id: params.client.id.as_str(),
                    client_mode: params.client.mode.as_str(),
                    remote_ip: (!crate::admission::is_loopback(upgrade.client_ip))
                        .then(|| canonical_ip(upgrade.client_ip).to_string()),
                };
                if let Err(reason) = self.pairing.check(&claim) {
                    let request_id = self.random_uuid();
                    let (request, new) = self.pairing.request(&claim, request_id, now_ms);
                    let browser_ok = upgrade.origin.is_none() || client.id == ClientId::ControlUi;
                    let silent = self.config.auto_approve_local
                        && upgrade.local_direct
                        && browser_ok
                        && matches!(reason, PairingReason::NotPaired | PairingReason::RoleUpgrade);
                    if !silent {
                        self.persist_pairing(now_ms);
                        if new {
                            self.broadcast_after_persist("device.pair.requested", to_raw(&request));
                        }
                        return Err(ConnectRejection::PairingRequired {
                            request_id: request.request_id,
                            reason,
                        });
                    }
                    let granted = ScopeSet::from_names(&requested);
                    let entropy = &mut self.entropy;
                    let mut mint = || mint_token(entropy.as_mut());
                    let approved = self.pairing.approve(&request.request_id, granted, now_ms, &mut mint);
                    if let Err(e) = approved {
                        self.log(
                            now_ms,
                            LogLevel::Warn,
                            format!("silent pairing of {} failed: {e:?}", device.id),
                        );
                        return Err(ConnectRejection::PairingRequired {
                            request_id: request.request_id,
                            reason,
                        });
                    }
                    self.log(
                        now_ms,
                        LogLevel::Info,
                        format!("paired device {} silently ({})", device.id, reason.as_str()),
                    );
                    self.persist_pairing(now_ms);
                    let resolved = json!({"requestId": request.request_id, "deviceId": device.id, "decision": "approved", "ts": now_ms});
                    self.broadcast_after_persist("device.pair.resolved", to_raw(&resolved));
                }
                Ok((method, requested))
            }
        }
    }

    fn complete_handshake(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        peer: SocketAddr,
        mut codec: WsCodec,
        accepted: AcceptedConnect,
        upgrade: UpgradeInfo,
    ) {
        let admitted = self.admit(now_ms, peer, &accepted, &upgrade);
        // Whatever the answer, it must not overtake the pairing write it reports.
        self.hold_for_persist(conn);
        let (method, scope_names) = match admitted {
            Ok(ok) => ok,
            Err(why) => {
                let rejection = accepted.reject(&why);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.phase = Phase::Handshake {
                        codec,
                        handshake: Box::new(ServerHandshake::new("", now_ms)),
                        upgrade,
                    };
                }
                if let ConnectRejection::Unauthorized { failure, .. } = &why {
                    if failure.counts_as_attempt() || *failure == AuthFailure::TokenMissing {
                        self.log(
                            now_ms,
                            LogLevel::Warn,
                            format!("auth failure from {}: {}", peer.ip(), failure.reason()),
                        );
                    }
                }
                self.reject(now_ms, conn, peer, rejection);
                return;
            }
        };
        self.release_preauth(peer.ip());
        let client = accepted.params.client.clone();
        let scopes = ScopeSet::from_names(&scope_names);
        let conn_uuid = self.random_uuid();
        let device_id = accepted.device.as_ref().map(|d| d.id.clone());
        let (device_token, issued_at) = match &device_id {
            Some(id) => {
                let before = self
                    .pairing
                    .paired
                    .get(id)
                    .and_then(|d| d.tokens.get(accepted.role.as_str()))
                    .cloned();
                let entropy = &mut self.entropy;
                let mut mint = || mint_token(entropy.as_mut());
                let token = self
                    .pairing
                    .ensure_token(id, accepted.role.as_str(), &scope_names, now_ms, &mut mint);
                if token.as_ref().map(|t| &t.token) != before.as_ref().map(|t| &t.token) {
                    self.persist_pairing(now_ms);
                }
                match token {
                    Some(t) => (Some(t.token), Some(t.rotated_at_ms.unwrap_or(t.created_at_ms))),
                    None => (None, None),
                }
            }
            None => (None, None),
        };
        let presence_key = if client.mode == ClientMode::Cli {
            None
        } else {
            Some(
                device_id
                    .clone()
                    .or_else(|| client.instance_id.clone())
                    .unwrap_or_else(|| conn_uuid.clone()),
            )
        };
        self.hold_for_persist(conn);
        let session = Session {
            secret_generation: method.is_shared_secret().then_some(self.secret_generation),
            device_id: device_id.clone(),
            role: accepted.role,
            scopes,
            scope_names: scope_names.clone(),
            presence_key: presence_key.clone(),
            conn_uuid: conn_uuid.clone(),
            node: (accepted.role == Role::Node)
                .then(|| Box::new(crate::nodes::NodeInfo::from_connect(&accepted.params, now_ms))),
        };
        let hello = self.hello_ok(now_ms, &session, method, device_token, issued_at);
        let role = accepted.role;
        let response = accepted.accept_raw(hello);
        codec.set_max_message_size(self.config.max_payload);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.phase = Phase::Open {
                codec,
                session: Box::new(session),
            };
        }
        self.send_text(conn, &response.encode());
        self.metrics.handshake("ok");
        if role == Role::Node {
            self.worker_connected(now_ms, conn);
        }
        self.log(
            now_ms,
            LogLevel::Info,
            format!(
                "connected {} {}/{} role={} auth={} from {}",
                conn_uuid,
                client.id,
                client.mode,
                role,
                method.as_str(),
                peer.ip()
            ),
        );
        if let Some(key) = presence_key {
            let entry = PresenceEntry {
                host: client
                    .display_name
                    .clone()
                    .unwrap_or_else(|| client.id.as_str().to_owned()),
                ip: if crate::admission::is_loopback(peer.ip()) {
                    None
                } else {
                    Some(canonical_ip(peer.ip()).to_string())
                },
                version: client.version.clone(),
                platform: client.platform.clone(),
                device_family: client.device_family.clone(),
                model_identifier: client.model_identifier.clone(),
                mode: client.mode.as_str().to_owned(),
                reason: "connect".to_owned(),
                device_id,
                instance_id: client.instance_id.clone(),
                roles: vec![role.as_str().to_owned()],
                scopes: Some(scope_names),
                text: format!("Node: {} · app {} · mode {}", client.id, client.version, client.mode),
                ts: now_ms,
            };
            self.presence.upsert(key, entry);
            self.broadcast_presence(now_ms);
        }
    }

    /// The `hello-ok` payload as JSON text, assembled from cached pieces: the features and the
    /// session defaults never change, and the health and presence snapshots are re-serialized
    /// only when their versions move.
    fn hello_ok(
        &mut self,
        now_ms: u64,
        session: &Session,
        method: AuthMethod,
        device_token: Option<String>,
        issued_at_ms: Option<u64>,
    ) -> Box<RawValue> {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Snapshot<'a> {
            presence: &'a RawValue,
            health: &'a RawValue,
            state_version: StateVersion,
            uptime_ms: u64,
            session_defaults: &'a RawValue,
            #[serde(skip_serializing_if = "Option::is_none")]
            config_path: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            state_dir: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            auth_mode: Option<&'a str>,
        }
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Server<'a> {
            version: &'a str,
            conn_id: &'a str,
        }
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Auth<'a> {
            method: &'a str,
            role: &'a str,
            scopes: &'a [String],
            #[serde(skip_serializing_if = "Option::is_none")]
            device_token: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            issued_at_ms: Option<u64>,
        }
        #[derive(serde::Serialize)]
        struct Hello<'a> {
            #[serde(rename = "type")]
            ty: &'static str,
            protocol: u32,
            server: Server<'a>,
            features: &'a RawValue,
            snapshot: Snapshot<'a>,
            auth: Auth<'a>,
            policy: &'a RawValue,
        }
        self.refresh_snapshots(now_ms);
        let admin = session.is_admin();
        let hello = Hello {
            ty: HelloOk::TYPE,
            protocol: clawgate_proto::limits::PROTOCOL_VERSION,
            server: Server {
                version: &self.config.server_version,
                conn_id: &session.conn_uuid,
            },
            features: &self.cache.features,
            snapshot: Snapshot {
                presence: &self.cache.presence.1,
                health: &self.cache.health.1,
                state_version: StateVersion {
                    presence: self.presence.version(),
                    health: self.cache.health_version(),
                },
                uptime_ms: now_ms.saturating_sub(self.started_at),
                session_defaults: &self.cache.session_defaults,
                config_path: admin.then_some(self.config.config_path.as_str()),
                state_dir: admin.then_some(self.config.state_dir.as_str()),
                auth_mode: admin.then_some(self.config.auth.mode.as_str()),
            },
            auth: Auth {
                method: method.as_str(),
                role: session.role.as_str(),
                scopes: &session.scope_names,
                device_token,
                issued_at_ms,
            },
            policy: &self.cache.policy,
        };
        to_raw(&hello)
    }

    /// Re-serializes the cached health and presence snapshots if they changed.
    pub(crate) fn refresh_snapshots(&mut self, now_ms: u64) {
        if self.cache.health.0 != self.cache.health_version() {
            let health = to_raw(&self.health_payload(now_ms));
            self.cache.health = (self.cache.health_version(), health);
        }
        if self.cache.presence.0 != self.presence.version() {
            let presence = to_raw(&self.presence.list());
            self.cache.presence = (self.presence.version(), presence);
        }
    }

    fn on_request(&mut self, now_ms: u64, conn: ConnId, text: &str) {
        let request = match Frame::decode(text) {
            Ok(Frame::Request(r)) => r,
            Ok(Frame::Cancel { .. }) => return,
            Ok(_) => {
                let e = ErrorShape::new(
                    clawgate_proto::ErrorCode::InvalidRequest,
                    "invalid request frame: expected a req frame",
                );
                self.send_text(conn, &ResponseFrame::err("invalid", e).encode());
                return;
            }
            Err(FrameError::InvalidJson(_)) => {
                self.log(
                    now_ms,
                    LogLevel::Warn,
                    format!("ignored a message that is not JSON on {}", conn.0),
                );
                return;
            }
            Err(FrameError::InvalidFrame { id, reason }) => {
                let e = ErrorShape::new(
                    clawgate_proto::ErrorCode::InvalidRequest,
                    format!("invalid request frame: {reason}"),
                );
                let id = id.unwrap_or_else(|| "invalid".to_owned());
                self.send_text(conn, &ResponseFrame::err(id, e).encode());
                return;
            }
        };
        let Some(Conn {
            phase: Phase::Open { session, .. },
            ..
        }) = self.conns.get(&conn)
        else {
            return;
        };
        if session.secret_generation.is_some_and(|g| g != self.secret_generation) {
            // Authenticated with a secret that no longer holds: the next request ends the socket.
            self.close_ws(conn, &CloseFrame::new(code::AUTH_CHANGED, "gateway auth changed"));
            return;
        }
        use clawgate_proto::methods::Owner;
        let group = clawgate_proto::methods::lookup(&request.method).and_then(|m| m.owner);
        let known = request.method == "connect" || group.is_some();
        let reply = match (authorize(session.role, session.scopes, &request.method), group) {
            (Err(denied), _) => Reply::Now(Err(denied.to_error())),
            (Ok(()), Some(Owner::Tools)) => {
                let caller = session.device_id.clone();
                Reply::deferred(self.start_tool_call(now_ms, conn, caller, &request))
            }
            (Ok(()), Some(Owner::ControlUi)) => Reply::value(self.call_control_ui_method(now_ms, &request)),
            (Ok(()), Some(Owner::Agents)) => self.call_agent_method(now_ms, conn, &request),
            (Ok(()), Some(Owner::Pairing)) => {
                let caller = crate::pairing_methods::Caller {
                    scopes: session.scopes,
                    device_id: session.device_id.clone(),
                };
                let mut effects = Vec::new();
                let answer = crate::pairing_methods::call(
                    &mut self.pairing,
                    self.entropy.as_mut(),
                    now_ms,
                    &caller,
                    &request,
                    &mut effects,
                );
                self.apply_pairing_effects(now_ms, conn, effects);
                Reply::Now(answer)
            }
            (Ok(()), Some(Owner::Core) | None) => {
                use crate::idempotency::{CachedAnswer, IdempotencyCache};
                let admin = session.is_admin();
                let key = IdempotencyCache::key_for(&request.method, request.params_text());
                let cached = key.as_deref().and_then(|k| self.idempotency.get(k, now_ms)).cloned();
                let answer = match cached {
                    Some(answer) => answer,
                    None => {
                        let answer = match self.call_method(now_ms, &request.method, &request, admin) {
                            Ok(payload) => CachedAnswer::Ok(payload),
                            Err(e) => CachedAnswer::Err(e),
                        };
                        // Only accepted work is remembered; a refused request may be retried.
                        if let (Some(k), CachedAnswer::Ok(_)) = (key, &answer) {
                            self.idempotency.insert(k, answer.clone(), now_ms);
                        }
                        answer
                    }
                };
                Reply::Now(match answer {
                    CachedAnswer::Ok(payload) => Ok(payload),
                    CachedAnswer::Err(e) => Err(e),
                })
            }
        };
        let response = match reply {
            // The owner answers when the work is done; it counts as accepted.
            Reply::Later => {
                self.metrics.request(&request.method, true, true);
                return;
            }
            Reply::Now(Ok(payload)) => ResponseFrame::ok_raw(request.id.clone(), payload),
            Reply::Now(Err(e)) => ResponseFrame::err(request.id.clone(), e),
        };
        self.metrics.request(&request.method, known, response.ok);
        self.send_text(conn, &response.encode());
        if let Some(frame) = self.conns.get_mut(&conn).and_then(|c| c.close_after_answer.take()) {
            self.close_ws(conn, &frame);
        }
    }

    /// Reports how long the runtime spent on one turn of its event loop.
    pub fn handle_loop_turn(&mut self, micros: u64) {
        self.metrics.loop_turn(micros);
    }

    /// Connection counts by state, for `/metrics`.
    pub(crate) fn connection_states(&self) -> [(&'static str, usize); 3] {
        let mut counts = [("http", 0), ("handshake", 0), ("open", 0)];
        for c in self.conns.values() {
            match c.phase {
                Phase::Http(_) => counts[0].1 += 1,
                Phase::Handshake { .. } => counts[1].1 += 1,
                Phase::Open { .. } => counts[2].1 += 1,
                Phase::Closed => {}
            }
        }
        counts
    }

    /// Sends `event` to every open connection allowed to see it, with that connection's next
    /// `seq`. A slow connection skips `drop_if_slow` events and is closed for the others.
    pub(crate) fn broadcast(
        &mut self,
        now_ms: u64,
        event: &str,
        payload: &RawValue,
        drop_if_slow: bool,
        state_version: Option<StateVersion>,
    ) {
        let max = self.config.max_buffered_bytes;
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
        self.metrics.slow_consumer_closes += slow.len() as u64;
        for &conn in slow {
            self.close_ws(conn, &CloseFrame::new(code::POLICY_VIOLATION, "slow consumer"));
            self.log(
                now_ms,
                LogLevel::Warn,
                format!("closed slow consumer {} ({what} could not be queued)", conn.0),
            );
        }
    }

    fn broadcast_presence(&mut self, now_ms: u64) {
        self.presence.expire(now_ms);
        self.refresh_snapshots(now_ms);
        let text = format!("{{\"presence\":{}}}", self.cache.presence.1.get());
        let Ok(payload) = RawValue::from_string(text) else {
            return;
        };
        let sv = StateVersion {
            presence: self.presence.version(),
            health: self.cache.health_version(),
        };
        self.broadcast(now_ms, "presence", &payload, true, Some(sv));
    }

    /// Timers that are due.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        while let Some(Reverse((at, timer))) = self.timers.peek().copied() {
            if at > now_ms {
                break;
            }
            self.timers.pop();
            match timer {
                Timer::Handshake(conn) => {
                    let still_waiting = self
                        .conns
                        .get(&conn)
                        .is_some_and(|c| !c.closing && matches!(c.phase, Phase::Handshake { .. }));
                    if still_waiting {
                        let peer = self.conns.get(&conn).map(|c| c.peer.ip());
                        if let Some(ip) = peer {
                            self.log(now_ms, LogLevel::Warn, format!("handshake timeout for {ip}"));
                        }
                        self.metrics
                            .handshake(ConnectRejection::HandshakeTimeout.metric_label());
                        self.close_ws(conn, &ConnectRejection::HandshakeTimeout.close());
                    }
                }
                Timer::Http(conn) => self.on_http_timer(now_ms, conn),
                Timer::Tick => {
                    if !self.stopping {
                        let payload = to_raw(&json!({"ts": now_ms}));
                        self.broadcast(now_ms, "tick", &payload, true, None);
                        self.timers
                            .push(Reverse((now_ms + self.config.tick_interval_ms, Timer::Tick)));
                    }
                }
                Timer::Agents => self.on_agents_timer(now_ms),
                Timer::Health => {
                    if !self.stopping {
                        self.prune_idle_sessions(now_ms);
                        self.cache.health_changed();
                        self.refresh_snapshots(now_ms);
                        let payload = self.cache.health.1.clone();
                        let sv = StateVersion {
                            presence: self.presence.version(),
                            health: self.cache.health_version(),
                        };
                        // Health snapshots are not skipped for slow clients: a client that cannot
                        // keep up with them is closed.
                        self.broadcast(now_ms, "health", &payload, false, Some(sv));
                        self.timers.push(Reverse((
                            now_ms + self.config.health_refresh_interval_ms,
                            Timer::Health,
                        )));
                    }
                }
            }
        }
    }

    /// When [`Gateway::handle_timeout`] must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// The next thing to do; `None` when there is nothing until the next input or timeout.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Stops the gateway: every client is told (`shutdown` event), then closed with 1012.
    /// `restart_expected_ms` is set when the gateway will be back.
    pub fn handle_shutdown(&mut self, now_ms: u64, reason: &str, restart_expected_ms: Option<u64>) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        self.log(now_ms, LogLevel::Info, format!("shutting down: {reason}"));
        let mut payload = json!({"reason": reason});
        if let Some(ms) = restart_expected_ms {
            payload["restartExpectedMs"] = json!(ms);
        }
        self.broadcast(now_ms, "shutdown", &to_raw(&payload), false, None);
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            let is_ws = self
                .conns
                .get(&id)
                .is_some_and(|c| matches!(c.phase, Phase::Handshake { .. } | Phase::Open { .. }));
            if is_ws {
                self.close_ws(id, &CloseFrame::new(code::SERVICE_RESTART, "service restart"));
            } else {
                self.close_now(id);
            }
        }
        self.maybe_report_stopped();
    }

    fn maybe_report_stopped(&mut self) {
        if self.stopping && !self.stopped_reported && self.conns.is_empty() {
            self.stopped_reported = true;
            self.outputs.push_back(Output::Stopped);
        }
    }

    /// Whether [`Gateway::handle_shutdown`] was called.
    pub fn is_stopping(&self) -> bool {
        self.stopping
    }

    pub(crate) fn auth_mode(&self) -> AuthMode {
        self.config.auth.mode
    }
}
