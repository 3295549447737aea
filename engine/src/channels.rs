//! Chat channels: people talk to their agents from IRC, Matrix, Telegram. Each channel account
//! is served by an adapter process that the gateway supervises; the adapter does the network I/O
//! and connects back as a `node` with the cap `channel:<channel>:<account>`. This part decides
//! everything else:
//!
//! - an inbound message (`channel.inbound` from the adapter) is checked against the account's
//!   access policy (pairing, allowlists, mention gating), routed to a session key by OpenClaw's
//!   rules, and written to the channel state file *before* the adapter's answer goes out, so the
//!   adapter acknowledges it to its network only once it cannot be lost;
//! - the agent's reply becomes a delivery in the same file (the inbox entry and the delivery are
//!   one write, so a crash leaves one or the other) and goes to the adapter as `channel.deliver`;
//!   the adapter answers `channel.delivered`;
//! - a delivery that fails is retried with a pause that doubles from one second to a minute;
//!   after [`MAX_ATTEMPTS`] it goes to the dead letters with its reason, which operators list and
//!   retry. Deliveries are independent, so a poison message never holds up the ones behind it;
//! - `channels.*`, `send` and `message.action` for operators.

use crate::agents::{AgentHub, Agents, Finished, Origin, RunOptions, RunRequest};
use crate::channel_config::label_of;
use crate::channel_pairing::{ChannelPairings, PairingAsk, PENDING_PER_ACCOUNT};
use crate::channel_routing::{DmAdmission, GroupAdmission, Inbound, Peer, PeerKind, DEFAULT_ACCOUNT};
use crate::conns::Timer;
use crate::context::Ctx;
use crate::hooks::{HookTarget, RequestedDelivery};
use crate::log_ring::LogLevel;
use crate::output::ConnId;
use crate::reply::Reply;
use clawgate_proto::frame::{to_raw, ErrorShape, RequestFrame, ResponseFrame};
use clawgate_proto::ErrorCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, VecDeque};

/// The file (under the state directory) of the inbox, the deliveries, the dead letters, the
/// recent message ids and the DM pairings: one document, so that each change is one write.
pub const STATE_FILE: &str = "channels/state.json";
/// The cap an adapter connects with: `channel:<channel>:<account>`.
pub const ADAPTER_CAP_PREFIX: &str = "channel:";
/// The event that hands an adapter a message to send.
pub const DELIVER_EVENT: &str = "channel.deliver";
/// The event that shows an adapter the reply of a run so far, for a network that can edit a
/// message as it grows (Telegram); best effort, not durable.
pub const PREVIEW_EVENT: &str = "channel.preview";
/// Channels whose adapters show a growing reply.
const PREVIEW_CHANNELS: &[&str] = &["telegram"];
/// At most one preview of a run in this many milliseconds (Telegram limits edits).
const PREVIEW_INTERVAL_MS: u64 = 1000;
/// The event that tells an adapter to connect to its network or to leave it.
pub const CONTROL_EVENT: &str = "channel.control";
/// Attempts of a delivery before it becomes a dead letter.
pub const MAX_ATTEMPTS: u32 = 8;
const FIRST_PAUSE_MS: u64 = 1000;
const LONGEST_PAUSE_MS: u64 = 60_000;
/// How long an adapter has to answer a delivery before it counts as failed.
pub const DELIVERY_TIMEOUT_MS: u64 = 60_000;
/// Deliveries an adapter is handed at once.
const IN_FLIGHT_PER_ACCOUNT: usize = 8;
/// Message ids remembered per account for dropping the network's (or the adapter's) repeats.
const SEEN_PER_ACCOUNT: usize = 2048;
/// Inbound messages that may wait for their run at once; beyond, the adapter is told to retry.
const INBOX_LIMIT: usize = 1000;
/// Deliveries that may wait at once; beyond, `send` is refused.
const OUTBOX_LIMIT: usize = 10_000;
/// Dead letters kept; the oldest goes first.
const DEAD_KEPT: usize = 1000;
/// The longest inbound text taken.
const MAX_TEXT_BYTES: usize = 64 * 1024;
/// How long a channel run may take.
const RUN_TIMEOUT_MS: u64 = 600_000;

// ----- durable state -----------------------------------------------------------------------

/// An inbound message accepted for its agent, waiting for the run's end.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InboxEntry {
    run_id: String,
    channel: String,
    account: String,
    message_id: String,
    /// Where the reply goes (the room, or the sender of a direct message).
    reply_to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    thread_id: Option<String>,
    session_key: String,
    agent_id: String,
    text: String,
    accepted_at: u64,
}

/// A message to send on a channel: a reply, a pairing code, or an operator's `send`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Delivery {
    id: String,
    channel: String,
    account: String,
    target: String,
    text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    thread_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reply_to_id: Option<String>,
    /// `reply`, `pairing` or `send`.
    kind: String,
    /// The run that wrote it, for a reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run_id: Option<String>,
    created_at: u64,
    attempts: u32,
    /// When the next attempt may start.
    next_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    /// Until when the adapter has it (not persisted: after a restart it is handed over again).
    #[serde(skip)]
    in_flight_until: Option<u64>,
}

/// A delivery that failed for good.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeadLetter {
    #[serde(flatten)]
    delivery: Delivery,
    reason: String,
    dead_at: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Store {
    #[serde(default)]
    next_id: u64,
    #[serde(default)]
    inbox: Vec<InboxEntry>,
    #[serde(default)]
    outbox: Vec<Delivery>,
    #[serde(default)]
    dead: VecDeque<DeadLetter>,
    /// Recent message ids per `channel:account`.
    #[serde(default)]
    seen: BTreeMap<String, VecDeque<String>>,
    #[serde(default)]
    pairings: ChannelPairings,
    /// Deliveries done lately, for `channels.status` (not the texts).
    #[serde(default)]
    delivered: u64,
    /// Per agent, where someone last wrote to it directly: the target of a hook that delivers
    /// to `last`.
    #[serde(default)]
    last_routes: BTreeMap<String, HookTarget>,
}

/// The `seen` list of hook replies handed over (so that a reply handed over again after a
/// restart is not sent twice).
const HOOK_REPLIES_SEEN: &str = "hooks";

/// What the gateway knows of a running adapter (not persisted).
#[derive(Debug, Default)]
struct AdapterState {
    conn: Option<ConnId>,
    running: bool,
    connected: bool,
    last_error: Option<String>,
    last_start_at: Option<u64>,
    last_stop_at: Option<u64>,
    last_inbound_at: Option<u64>,
    last_outbound_at: Option<u64>,
    /// An operator stopped it (`channels.stop`); `channels.start` or a restart undoes it.
    stopped: bool,
}

fn account_key(channel: &str, account: &str) -> String {
    format!("{channel}:{account}")
}

/// The channels' state.
#[derive(Default)]
pub(crate) struct Channels {
    store: Store,
    adapters: BTreeMap<String, AdapterState>,
    timer_at: Option<u64>,
    /// When each run's reply was last previewed.
    previewed: BTreeMap<String, u64>,
}

impl Channels {
    /// Restores the state file's text; a file that does not parse is an error (it holds
    /// accepted messages).
    pub(crate) fn restore(&mut self, text: &str) -> Result<(), String> {
        self.store = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Counts for `health` and `status`: waiting inbound, waiting deliveries, dead letters.
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        (self.store.inbox.len(), self.store.outbox.len(), self.store.dead.len())
    }
}

/// The channels at work on an input, with the agents they start runs on.
pub(crate) struct ChannelsPart<'a> {
    pub channels: &'a mut Channels,
    pub agents: &'a mut AgentHub,
    pub cx: Ctx<'a>,
}

fn invalid(method: &str, why: impl std::fmt::Display) -> ErrorShape {
    ErrorShape::new(ErrorCode::InvalidRequest, format!("invalid {method} params: {why}"))
}

fn text_param(p: &Value, key: &str) -> Option<String> {
    p.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn iso(ms: u64) -> String {
    crate::log_ring::iso8601_utc(ms)
}

impl ChannelsPart<'_> {
    fn agents(&mut self) -> Agents<'_> {
        Agents {
            hub: &mut *self.agents,
            cx: self.cx.reborrow(),
        }
    }

    fn persist(&mut self) {
        let text = serde_json::to_string(&self.channels.store).unwrap_or_default();
        self.cx.net.persist_file(STATE_FILE, text);
    }

    fn next_id(&mut self, prefix: &str) -> String {
        self.channels.store.next_id += 1;
        let mut b = [0u8; 4];
        self.cx.entropy.fill(&mut b);
        format!("{prefix}-{}-{:08x}", self.channels.store.next_id, u32::from_le_bytes(b))
    }

    fn adapter_of(&self, conn: ConnId) -> Option<(String, String)> {
        let node = self.cx.net.session_of(conn)?.node.as_deref()?;
        adapter_cap(node.caps())
    }

    // ----- startup ---------------------------------------------------------------------------

    /// After a restart: the accepted messages whose run was lost with the process run again
    /// (the ones still queued for a worker come back by themselves); the deliveries are due.
    pub(crate) fn restart_unanswered(&mut self, now_ms: u64) {
        let mut restarted = 0;
        for entry in self.channels.store.inbox.clone() {
            if self.agents.is_queued(&entry.run_id) {
                continue;
            }
            restarted += 1;
            self.start_entry_run(now_ms, &entry);
        }
        if restarted > 0 {
            let line = format!("channels: {restarted} accepted message(s) whose run was interrupted run again");
            self.cx.net.log(now_ms, LogLevel::Warn, line);
        }
        self.arm_timer(now_ms);
    }

    fn start_entry_run(&mut self, now_ms: u64, entry: &InboxEntry) {
        let run = RunRequest {
            run_id: entry.run_id.clone(),
            session_key: entry.session_key.clone(),
            agent_id: entry.agent_id.clone(),
            message: entry.text.clone(),
            origin: Origin::Channel,
            timeout_ms: RUN_TIMEOUT_MS,
            options: RunOptions::default(),
            created_via: "channel",
            quiet: false,
            ack: None,
        };
        if let Err(e) = self.agents().start_run(now_ms, run) {
            // The queue is full: the reply says so instead of the message vanishing.
            self.run_ended(
                now_ms,
                &entry.run_id,
                &Finished::failed(&entry.session_key, &entry.agent_id, now_ms, &e.message),
            );
        }
    }

    // ----- adapters --------------------------------------------------------------------------

    /// A node connected: if it is an adapter, it is told whether to run, and its deliveries go out.
    pub(crate) fn adapter_connected(&mut self, now_ms: u64, conn: ConnId) {
        let Some((channel, account)) = self.adapter_of(conn) else {
            return;
        };
        let state = self
            .channels
            .adapters
            .entry(account_key(&channel, &account))
            .or_default();
        state.conn = Some(conn);
        state.last_start_at = Some(now_ms);
        let run = !state.stopped;
        self.cx
            .net
            .send_event(conn, CONTROL_EVENT, &to_raw(&json!({"run": run})), false);
        self.cx.net.log(
            now_ms,
            LogLevel::Info,
            format!("channel {channel}/{account}: adapter connected"),
        );
        self.cx.net.health_changed();
        self.pump(now_ms);
    }

    /// A connection is gone: if it was an adapter, what it was handed goes out again later.
    pub(crate) fn conn_closed(&mut self, now_ms: u64, conn: ConnId) {
        let mut gone = None;
        for (key, state) in &mut self.channels.adapters {
            if state.conn == Some(conn) {
                state.conn = None;
                state.running = false;
                state.connected = false;
                state.last_stop_at = Some(now_ms);
                gone = Some(key.clone());
            }
        }
        let Some(key) = gone else { return };
        for d in &mut self.channels.store.outbox {
            if account_key(&d.channel, &d.account) == key && d.in_flight_until.take().is_some() {
                d.next_at = now_ms;
            }
        }
        self.cx
            .net
            .log(now_ms, LogLevel::Warn, format!("channel {key}: adapter disconnected"));
        self.cx.net.health_changed();
    }

    /// Requests only adapters make: `channel.inbound`, `channel.state`, `channel.delivered`.
    pub(crate) fn call_adapter(&mut self, now_ms: u64, conn: ConnId, request: &RequestFrame) -> Reply {
        let method = request.method.as_str();
        let Some((channel, account)) = self.adapter_of(conn) else {
            return Reply::Now(Err(ErrorShape::new(
                ErrorCode::InvalidRequest,
                format!("{method} is for channel adapters (a node with a channel:<channel>:<account> cap)"),
            )));
        };
        let p: Value = match request.parse_params::<Value>() {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return Reply::Now(Err(invalid(method, "params must be an object"))),
            Err(e) => return Reply::Now(Err(invalid(method, e))),
        };
        match method {
            "channel.inbound" => self.inbound(now_ms, conn, request, (&channel, &account), &p),
            "channel.state" => {
                let state = self
                    .channels
                    .adapters
                    .entry(account_key(&channel, &account))
                    .or_default();
                state.running = p["running"].as_bool().unwrap_or(false);
                state.connected = p["connected"].as_bool().unwrap_or(false);
                let error = text_param(&p, "error").map(|e| e.chars().take(500).collect::<String>());
                if error.is_some() {
                    state.last_error = error.clone();
                } else if state.connected {
                    state.last_error = None;
                }
                if let Some(e) = error {
                    let line = format!("channel {channel}/{account}: {e}");
                    self.cx.net.log(now_ms, LogLevel::Warn, line);
                }
                self.cx.net.health_changed();
                if state.connected {
                    self.pump(now_ms);
                }
                Reply::value(Ok(json!({"ok": true})))
            }
            "channel.delivered" => {
                let Some(id) = text_param(&p, "id") else {
                    return Reply::Now(Err(invalid(method, "id is required")));
                };
                let ok = p["ok"].as_bool().unwrap_or(false);
                let error = text_param(&p, "error").unwrap_or_else(|| "the adapter gave no reason".into());
                let permanent = p["permanent"].as_bool().unwrap_or(false);
                self.delivered(now_ms, &id, ok.then_some(()).ok_or((error, permanent)));
                Reply::value(Ok(json!({"ok": true})))
            }
            _ => Reply::Now(Err(ErrorShape::new(
                ErrorCode::InvalidRequest,
                format!("unknown method: {method}"),
            ))),
        }
    }

    /// One inbound message. Its answer is held until what it changed is durable.
    fn inbound(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        request: &RequestFrame,
        (channel, account): (&str, &str),
        p: &Value,
    ) -> Reply {
        let method = "channel.inbound";
        let Some(message_id) = text_param(p, "messageId") else {
            return Reply::Now(Err(invalid(method, "messageId is required")));
        };
        let Some(peer_id) = text_param(p, "peerId") else {
            return Reply::Now(Err(invalid(method, "peerId is required")));
        };
        let Some(sender) = text_param(p, "senderId") else {
            return Reply::Now(Err(invalid(method, "senderId is required")));
        };
        let kind: PeerKind = match serde_json::from_value(p["chatType"].clone()) {
            Ok(k) => k,
            Err(_) => return Reply::Now(Err(invalid(method, "chatType must be direct, group or channel"))),
        };
        let text = p["text"].as_str().unwrap_or_default();
        if text.len() > MAX_TEXT_BYTES {
            return Reply::Now(Err(invalid(
                method,
                format!("text is longer than {MAX_TEXT_BYTES} bytes"),
            )));
        }
        let mentioned = p["mentioned"].as_bool().unwrap_or(false);
        let thread_id = text_param(p, "threadId");
        let key = account_key(channel, account);
        if let Some(state) = self.channels.adapters.get_mut(&key) {
            state.last_inbound_at = Some(now_ms);
        }
        let seen = self.channels.store.seen.entry(key.clone()).or_default();
        if seen.iter().any(|m| *m == message_id) {
            // A repeat (the adapter retried after a lost answer): it was taken the first time.
            return self.answer_durable(conn, request, json!({"accepted": true, "duplicate": true}));
        }
        let Some(spec) = self.cx.config.channels.account(channel, account).cloned() else {
            return Reply::Now(Err(ErrorShape::new(
                ErrorCode::InvalidRequest,
                format!("channel {channel} has no account {account} in the configuration"),
            )));
        };
        let outcome = match kind {
            PeerKind::Direct => {
                let paired = self.channels.store.pairings.approved(channel, account).to_vec();
                match spec.access.admit_dm(&sender, &paired) {
                    DmAdmission::Accept => None,
                    DmAdmission::Drop(why) => Some(why),
                    DmAdmission::Pair => {
                        let mut random = [0u8; crate::channel_routing::PAIRING_CODE_LEN];
                        self.cx.entropy.fill(&mut random);
                        let mut meta = Map::new();
                        if let Some(name) = text_param(p, "senderName") {
                            meta.insert("name".into(), json!(name));
                        }
                        let asked = self
                            .channels
                            .store
                            .pairings
                            .ask(now_ms, (channel, account), &sender, meta, random);
                        if let PairingAsk::Created(code) = &asked {
                            let text = pairing_text(channel, &sender, code);
                            self.enqueue(now_ms, (channel, account), &peer_id, text, "pairing", None);
                            self.cx.net.log(
                                now_ms,
                                LogLevel::Info,
                                format!("channel {channel}/{account}: pairing requested by {sender}"),
                            );
                        }
                        Some(match asked {
                            PairingAsk::Created(_) => "pairing-requested",
                            PairingAsk::Waiting => "pairing-pending",
                            PairingAsk::Full => "pairing-full",
                        })
                    }
                }
            }
            PeerKind::Group | PeerKind::Channel => match spec.access.admit_group(&peer_id, &sender, mentioned) {
                GroupAdmission::Accept => None,
                GroupAdmission::ContextOnly => Some("not-mentioned"),
                GroupAdmission::Drop(why) => Some(why),
            },
        };
        remember(&mut self.channels.store.seen, &key, message_id.clone());
        if let Some(reason) = outcome {
            self.persist();
            self.pump(now_ms);
            return self.answer_durable(conn, request, json!({"accepted": false, "reason": reason}));
        }
        if text.trim().is_empty() {
            self.persist();
            return self.answer_durable(conn, request, json!({"accepted": false, "reason": "empty"}));
        }
        if self.channels.store.inbox.len() >= INBOX_LIMIT {
            return Reply::Now(Err(ErrorShape::new(
                ErrorCode::Unavailable,
                format!("{INBOX_LIMIT} channel messages already wait for their agents"),
            )
            .retry_after(5000)));
        }
        let mut routing = self.cx.config.channels.routing.clone();
        routing.sessions = self.cx.config.session_routing();
        let parent = thread_id.as_ref().map(|_| Peer {
            kind,
            id: peer_id.clone(),
        });
        let route = routing.route(&Inbound {
            channel,
            account_id: account,
            peer: Peer {
                kind,
                id: if kind == PeerKind::Direct {
                    sender.clone()
                } else {
                    peer_id.clone()
                },
            },
            parent_peer: parent,
            thread_id: thread_id.as_deref(),
            guild_id: p["guildId"].as_str(),
            team_id: p["teamId"].as_str(),
        });
        let run_id = self.cx.random_uuid();
        let entry = InboxEntry {
            run_id: run_id.clone(),
            channel: channel.to_owned(),
            account: account.to_owned(),
            message_id,
            reply_to: peer_id,
            thread_id,
            session_key: route.session_key.clone(),
            agent_id: route.agent_id.as_str().to_owned(),
            text: text.to_owned(),
            accepted_at: now_ms,
        };
        if kind == PeerKind::Direct {
            let last = HookTarget {
                channel: channel.to_owned(),
                account: account.to_owned(),
                to: entry.reply_to.clone(),
            };
            self.channels.store.last_routes.insert(entry.agent_id.clone(), last);
        }
        self.channels.store.inbox.push(entry.clone());
        self.persist();
        self.start_entry_run(now_ms, &entry);
        self.answer_durable(
            conn,
            request,
            json!({"accepted": true, "runId": run_id, "sessionKey": route.session_key, "agentId": entry.agent_id, "matchedBy": route.matched_by.as_str()}),
        )
    }

    fn answer_durable(&mut self, conn: ConnId, request: &RequestFrame, payload: Value) -> Reply {
        let response = ResponseFrame::ok_raw(request.id.clone(), to_raw(&payload));
        self.cx.net.hold_for_persist(conn);
        self.cx.net.send_answer(conn, &response.encode());
        Reply::Later
    }

    // ----- runs ------------------------------------------------------------------------------

    /// A channel run's reply grew: adapters that can edit a message are shown it, once the run
    /// has streamed for a second and then at most once a second (a short reply arrives whole).
    pub(crate) fn run_progress(&mut self, now_ms: u64, run_id: &str, text: &str) {
        let Some(entry) = self.channels.store.inbox.iter().find(|e| e.run_id == run_id) else {
            return;
        };
        if !PREVIEW_CHANNELS.contains(&entry.channel.as_str()) || text.trim().is_empty() {
            return;
        }
        match self.channels.previewed.get(run_id) {
            None => {
                self.channels.previewed.insert(run_id.to_owned(), now_ms);
                return;
            }
            Some(at) if now_ms < at + PREVIEW_INTERVAL_MS => return,
            Some(_) => {}
        }
        let key = account_key(&entry.channel, &entry.account);
        let Some(conn) = self
            .channels
            .adapters
            .get(&key)
            .filter(|a| a.connected)
            .and_then(|a| a.conn)
        else {
            return;
        };
        let payload = json!({"runId": run_id, "target": entry.reply_to, "text": text});
        self.channels.previewed.insert(run_id.to_owned(), now_ms);
        self.cx.net.send_event(conn, PREVIEW_EVENT, &to_raw(&payload), false);
    }

    /// A channel run ended: its reply becomes a delivery in the same write that takes the
    /// message off the inbox.
    pub(crate) fn run_ended(&mut self, now_ms: u64, run_id: &str, finished: &Finished) {
        self.channels.previewed.remove(run_id);
        let Some(at) = self.channels.store.inbox.iter().position(|e| e.run_id == run_id) else {
            return;
        };
        let entry = self.channels.store.inbox.remove(at);
        let text = match (finished.status, finished.text.trim()) {
            ("ok", "") => None,
            ("ok", text) => Some(text.to_owned()),
            (_, _) => Some(format!(
                "The agent could not answer: {}",
                finished.error.as_deref().unwrap_or(finished.status)
            )),
        };
        match text {
            Some(text) => {
                let id = self.enqueue(
                    now_ms,
                    (&entry.channel, &entry.account),
                    &entry.reply_to,
                    text,
                    "reply",
                    entry.thread_id.clone(),
                );
                if let Some(d) = self.channels.store.outbox.iter_mut().find(|d| d.id == id) {
                    d.run_id = Some(run_id.to_owned());
                }
            }
            None => self.persist(),
        }
        self.pump(now_ms);
    }

    /// Adds a delivery and persists; returns its id.
    fn enqueue(
        &mut self,
        now_ms: u64,
        (channel, account): (&str, &str),
        target: &str,
        text: String,
        kind: &str,
        thread_id: Option<String>,
    ) -> String {
        let id = self.next_id("d");
        self.channels.store.outbox.push(Delivery {
            id: id.clone(),
            channel: channel.to_owned(),
            account: account.to_owned(),
            target: target.to_owned(),
            text,
            thread_id,
            reply_to_id: None,
            kind: kind.to_owned(),
            run_id: None,
            created_at: now_ms,
            attempts: 0,
            next_at: now_ms,
            last_error: None,
            in_flight_until: None,
        });
        self.persist();
        id
    }

    // ----- deliveries ------------------------------------------------------------------------

    /// Hands due deliveries to their adapters (at most a few each at once) and arms the timer.
    fn pump(&mut self, now_ms: u64) {
        let mut in_flight: BTreeMap<String, usize> = BTreeMap::new();
        for d in &self.channels.store.outbox {
            if d.in_flight_until.is_some() {
                *in_flight.entry(account_key(&d.channel, &d.account)).or_default() += 1;
            }
        }
        let mut handed = Vec::new();
        for d in &mut self.channels.store.outbox {
            if d.in_flight_until.is_some() || d.next_at > now_ms {
                continue;
            }
            let key = account_key(&d.channel, &d.account);
            let Some(state) = self.channels.adapters.get(&key) else {
                continue;
            };
            let (Some(conn), true) = (state.conn, state.connected) else {
                continue;
            };
            let count = in_flight.entry(key).or_default();
            if *count >= IN_FLIGHT_PER_ACCOUNT {
                continue;
            }
            *count += 1;
            d.in_flight_until = Some(now_ms + DELIVERY_TIMEOUT_MS);
            d.attempts += 1;
            let payload = json!({
                "id": d.id, "target": d.target, "text": d.text, "threadId": d.thread_id, "runId": d.run_id,
                "replyToId": d.reply_to_id, "attempt": d.attempts,
            });
            handed.push((conn, payload));
        }
        for (conn, payload) in handed {
            // Not before the delivery is durable: a reply sent and then lost with the gateway's
            // state would run again and be sent twice.
            self.cx.net.hold_for_persist(conn);
            self.cx.net.send_event(conn, DELIVER_EVENT, &to_raw(&payload), false);
        }
        self.arm_timer(now_ms);
    }

    fn arm_timer(&mut self, now_ms: u64) {
        let next = self
            .channels
            .store
            .outbox
            .iter()
            .filter_map(|d| match d.in_flight_until {
                Some(until) => Some(until),
                None => {
                    let key = account_key(&d.channel, &d.account);
                    let ready = self.channels.adapters.get(&key).is_some_and(|a| a.connected);
                    (ready && d.next_at > now_ms).then_some(d.next_at)
                }
            })
            .min();
        if let Some(at) = next {
            if self.channels.timer_at.is_none_or(|t| at < t || t <= now_ms) {
                self.channels.timer_at = Some(at);
                self.cx.net.schedule(at, Timer::Channels);
            }
        }
    }

    /// Deliveries whose adapter did not answer in time fail; due retries go out.
    pub(crate) fn on_timer(&mut self, now_ms: u64) {
        if self.channels.timer_at.is_some_and(|t| t <= now_ms) {
            self.channels.timer_at = None;
        }
        let late: Vec<String> = self
            .channels
            .store
            .outbox
            .iter()
            .filter(|d| d.in_flight_until.is_some_and(|t| t <= now_ms))
            .map(|d| d.id.clone())
            .collect();
        for id in late {
            self.delivered(
                now_ms,
                &id,
                Err(("the adapter did not answer within 60 s".into(), false)),
            );
        }
        self.pump(now_ms);
    }

    /// The adapter's answer on a delivery.
    fn delivered(&mut self, now_ms: u64, id: &str, outcome: Result<(), (String, bool)>) {
        let Some(at) = self.channels.store.outbox.iter().position(|d| d.id == id) else {
            return;
        };
        match outcome {
            Ok(()) => {
                let d = self.channels.store.outbox.remove(at);
                self.channels.store.delivered += 1;
                if let Some(state) = self.channels.adapters.get_mut(&account_key(&d.channel, &d.account)) {
                    state.last_outbound_at = Some(now_ms);
                }
            }
            Err((why, permanent)) => {
                let d = &mut self.channels.store.outbox[at];
                d.in_flight_until = None;
                d.last_error = Some(why.chars().take(500).collect());
                if permanent || d.attempts >= MAX_ATTEMPTS {
                    let d = self.channels.store.outbox.remove(at);
                    let reason = if permanent {
                        why.clone()
                    } else {
                        format!("failed {} times; last: {why}", d.attempts)
                    };
                    let line = format!(
                        "channel {}/{}: delivery {} to {} is a dead letter: {reason}",
                        d.channel, d.account, d.id, d.target
                    );
                    self.cx.net.log(now_ms, LogLevel::Error, line);
                    self.channels.store.dead.push_back(DeadLetter {
                        delivery: d,
                        reason,
                        dead_at: now_ms,
                    });
                    while self.channels.store.dead.len() > DEAD_KEPT {
                        self.channels.store.dead.pop_front();
                    }
                } else {
                    let pause = FIRST_PAUSE_MS
                        .saturating_mul(1 << (d.attempts.saturating_sub(1)).min(16))
                        .min(LONGEST_PAUSE_MS);
                    d.next_at = now_ms + pause;
                }
            }
        }
        self.persist();
        self.pump(now_ms);
    }

    // ----- operator methods ------------------------------------------------------------------

    /// `channels.*`, `send`, `message.action`.
    pub(crate) fn call(&mut self, now_ms: u64, conn: ConnId, request: &RequestFrame) -> Reply {
        let method = request.method.as_str();
        if method.starts_with("channel.") {
            return self.call_adapter(now_ms, conn, request);
        }
        let p: Value = match request.parse_params::<Value>() {
            Ok(Value::Null) => json!({}),
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return Reply::Now(Err(invalid(method, "params must be an object"))),
            Err(e) => return Reply::Now(Err(invalid(method, e))),
        };
        let answer = match method {
            "channels.status" => self.status(now_ms, &p),
            "channels.start" | "channels.stop" => self.start_stop(now_ms, method == "channels.start", &p),
            "channels.logout" => self.logout(&p),
            "channels.pairing.list" => self.pairing_list(now_ms, &p),
            "channels.pairing.approve" | "channels.pairing.dismiss" => {
                self.pairing_decide(now_ms, method == "channels.pairing.approve", &p)
            }
            "channels.deadLetters.list" => Ok(self.dead_letters()),
            "channels.deadLetters.retry" => self.retry_dead(now_ms, &p),
            "send" => return self.send(now_ms, conn, request, &p),
            "message.action" => {
                let channel = text_param(&p, "channel").unwrap_or_default();
                match text_param(&p, "action").as_deref() {
                    Some("send") => {
                        let mut params = p["params"].as_object().cloned().unwrap_or_default();
                        params.insert("channel".into(), json!(channel));
                        for key in ["accountId", "idempotencyKey"] {
                            if let Some(v) = p.get(key) {
                                params.entry(key.to_owned()).or_insert(v.clone());
                            }
                        }
                        return self.send(now_ms, conn, request, &Value::Object(params));
                    }
                    Some(action) => Err(ErrorShape::new(
                        ErrorCode::InvalidRequest,
                        format!("Channel {channel} does not support action {action}."),
                    )),
                    None => Err(invalid(method, "action is required")),
                }
            }
            _ => Err(ErrorShape::new(
                ErrorCode::InvalidRequest,
                format!("unknown method: {method}"),
            )),
        };
        Reply::value(answer)
    }

    fn known_channel(&self, method: &str, p: &Value) -> Result<(String, String), ErrorShape> {
        let channel = text_param(p, "channel")
            .map(|c| c.to_lowercase())
            .ok_or_else(|| invalid(method, "channel is required"))?;
        let account = text_param(p, "accountId")
            .map(|a| a.to_lowercase())
            .unwrap_or_else(|| DEFAULT_ACCOUNT.to_owned());
        let config = &self.cx.config.channels;
        if !config.channels.iter().any(|(c, _)| *c == channel) {
            return Err(ErrorShape::new(
                ErrorCode::InvalidRequest,
                format!("unknown channel: {channel}"),
            ));
        }
        if config.account(&channel, &account).is_none() {
            return Err(ErrorShape::new(
                ErrorCode::InvalidRequest,
                format!("channel {channel} has no account {account}"),
            ));
        }
        Ok((channel, account))
    }

    // ----- hooks -----------------------------------------------------------------------------

    /// Where a hook's reply for `agent` goes: a named channel account (checked), or `last`, the
    /// agent's most recent direct conversation. `None`: nowhere (no conversation yet, or a
    /// channel without a target and no conversation on it).
    pub(crate) fn hook_target(&self, requested: &RequestedDelivery, agent: &str) -> Result<Option<HookTarget>, String> {
        let last = self.channels.store.last_routes.get(agent);
        if requested.channel == "last" {
            return Ok(last.cloned());
        }
        let params = json!({"channel": requested.channel, "accountId": requested.account});
        let (channel, account) = self.known_channel("hook", &params).map_err(|e| e.message)?;
        let to = match &requested.to {
            Some(to) => to.clone(),
            None => match last.filter(|l| l.channel == channel && l.account == account) {
                Some(l) => l.to.clone(),
                None => return Ok(None),
            },
        };
        Ok(Some(HookTarget { channel, account, to }))
    }

    /// A hook's reply, to be delivered once: `run_id` names it, so handing it over again (after
    /// a restart between the two writes) adds nothing.
    pub(crate) fn deliver_hook_reply(&mut self, now_ms: u64, run_id: &str, target: &HookTarget, text: String) {
        let seen = self
            .channels
            .store
            .seen
            .entry(HOOK_REPLIES_SEEN.to_owned())
            .or_default();
        if seen.iter().any(|r| r == run_id) {
            return;
        }
        remember(&mut self.channels.store.seen, HOOK_REPLIES_SEEN, run_id.to_owned());
        let id = self.enqueue(
            now_ms,
            (&target.channel, &target.account),
            &target.to,
            text,
            "hook",
            None,
        );
        if let Some(d) = self.channels.store.outbox.iter_mut().find(|d| d.id == id) {
            d.run_id = Some(run_id.to_owned());
        }
        self.pump(now_ms);
    }

    fn status(&self, now_ms: u64, p: &Value) -> Result<Value, ErrorShape> {
        let config = &self.cx.config.channels;
        let only = text_param(p, "channel").map(|c| c.to_lowercase());
        if let Some(c) = &only {
            if !config.channels.iter().any(|(id, _)| id == c) {
                return Err(ErrorShape::new(
                    ErrorCode::InvalidRequest,
                    format!("unknown channel: {c}"),
                ));
            }
        }
        let ids: Vec<&String> = config
            .channels
            .iter()
            .map(|(id, _)| id)
            .filter(|id| only.as_ref().is_none_or(|o| o == *id))
            .collect();
        let (mut channels, mut accounts, mut labels, mut defaults) = (Map::new(), Map::new(), Map::new(), Map::new());
        let mut issues = Vec::new();
        for id in &ids {
            labels.insert((*id).clone(), json!(label_of(id)));
            defaults.insert((*id).clone(), json!(DEFAULT_ACCOUNT));
            let mut rows = Vec::new();
            let (mut any_configured, mut any_running, mut any_connected) = (false, false, false);
            let mut channel_error = None;
            for spec in config.accounts.iter().filter(|a| &&a.channel == id) {
                let key = account_key(&spec.channel, &spec.account);
                let state = self.channels.adapters.get(&key);
                let configured = spec.problem.is_none();
                any_configured |= configured;
                let last_error = spec
                    .problem
                    .clone()
                    .or_else(|| state.and_then(|s| s.last_error.clone()));
                if let Some(e) = &last_error {
                    channel_error.get_or_insert(e.clone());
                    issues.push(json!({"channel": id, "accountId": spec.account, "kind": "runtime", "message": e}));
                }
                let running = state.is_some_and(|s| s.running);
                let connected = state.is_some_and(|s| s.connected);
                any_running |= running;
                any_connected |= connected;
                let health = match (spec.enabled, configured, connected) {
                    (false, _, _) => "disabled",
                    (true, false, _) => "unconfigured",
                    (true, true, true) => "healthy",
                    (true, true, false) if state.is_some_and(|s| s.stopped) => "stopped",
                    (true, true, false) => "disconnected",
                };
                let waiting = self
                    .channels
                    .store
                    .outbox
                    .iter()
                    .filter(|d| d.channel == spec.channel && d.account == spec.account)
                    .count();
                let dead = self
                    .channels
                    .store
                    .dead
                    .iter()
                    .filter(|d| d.delivery.channel == spec.channel && d.delivery.account == spec.account)
                    .count();
                rows.push(json!({
                    "accountId": spec.account,
                    "enabled": spec.enabled,
                    "configured": configured,
                    "running": running,
                    "connected": connected,
                    "healthState": health,
                    "lastError": last_error,
                    "lastStartAt": state.and_then(|s| s.last_start_at),
                    "lastStopAt": state.and_then(|s| s.last_stop_at),
                    "lastInboundAt": state.and_then(|s| s.last_inbound_at),
                    "lastOutboundAt": state.and_then(|s| s.last_outbound_at),
                    "dmPolicy": format!("{:?}", spec.access.dm_policy).to_lowercase(),
                    "allowFrom": spec.access.allow_from,
                    "pendingDeliveries": waiting,
                    "deadLetters": dead,
                }));
            }
            channels.insert(
                (*id).clone(),
                // The Control UI reads the channel's own running/connected for its state badge.
                json!({"configured": any_configured, "running": any_running, "connected": any_connected, "lastError": channel_error}),
            );
            accounts.insert((*id).clone(), Value::Array(rows));
        }
        let (inbox, outbox, dead) = self.channels.counts();
        Ok(json!({
            "ts": now_ms,
            "channelOrder": ids,
            "channelLabels": labels,
            "channelDetailLabels": {},
            "channelSystemImages": {},
            "channelMeta": [],
            "channels": channels,
            "channelAccounts": accounts,
            "channelDefaultAccountId": defaults,
            "statusIssues": issues,
            "eventLoop": {"degraded": false, "degradedSinceMs": null, "reasons": []},
            "queues": {"inbound": inbox, "outbound": outbox, "deadLetters": dead, "delivered": self.channels.store.delivered},
        }))
    }

    fn start_stop(&mut self, now_ms: u64, start: bool, p: &Value) -> Result<Value, ErrorShape> {
        let method = if start { "channels.start" } else { "channels.stop" };
        let (channel, account) = self.known_channel(method, p)?;
        let state = self
            .channels
            .adapters
            .entry(account_key(&channel, &account))
            .or_default();
        state.stopped = !start;
        if let Some(conn) = state.conn {
            self.cx
                .net
                .send_event(conn, CONTROL_EVENT, &to_raw(&json!({"run": start})), false);
        }
        let online = state.conn.is_some();
        let verb = if start { "started" } else { "stopped" };
        self.cx.net.log(
            now_ms,
            LogLevel::Info,
            format!("channel {channel}/{account}: {verb} by an operator"),
        );
        self.cx.net.health_changed();
        Ok(if start {
            let outcome = if online { "started" } else { "pending" };
            json!({"channel": channel, "accountId": account, "started": true, "outcome": outcome})
        } else {
            json!({"channel": channel, "accountId": account, "stopped": true})
        })
    }

    fn logout(&self, p: &Value) -> Result<Value, ErrorShape> {
        let (channel, _) = self.known_channel("channels.logout", p)?;
        // IRC has no session to forget; the adapters that keep one (a Matrix access token, a
        // Telegram bot token) keep it in the configuration, which `config.*` edits.
        Err(ErrorShape::new(
            ErrorCode::InvalidRequest,
            format!("channel {channel} does not support logout"),
        ))
    }

    fn pairing_list(&mut self, now_ms: u64, p: &Value) -> Result<Value, ErrorShape> {
        let only_channel = text_param(p, "channel").map(|c| c.to_lowercase());
        let only_account = text_param(p, "accountId").map(|c| c.to_lowercase());
        let config = &self.cx.config.channels;
        let expired = self.channels.store.pairings.expire(now_ms);
        let mut accounts = Vec::new();
        let mut requests = Vec::new();
        for spec in &config.accounts {
            if only_channel.as_ref().is_some_and(|c| *c != spec.channel)
                || only_account.as_ref().is_some_and(|a| *a != spec.account)
            {
                continue;
            }
            let label = label_of(&spec.channel);
            accounts.push(json!({
                "channel": spec.channel, "channelLabel": label, "accountId": spec.account, "notifySupported": true,
            }));
            let Some(state) = self.channels.store.pairings.account(&spec.channel, &spec.account) else {
                continue;
            };
            for r in &state.pending {
                requests.push(json!({
                    "requestId": r.code,
                    "channel": spec.channel,
                    "channelLabel": label,
                    "accountId": spec.account,
                    "senderId": r.sender_id,
                    "senderLabel": r.meta.get("name").cloned().unwrap_or(json!(r.sender_id)),
                    "metadata": r.meta,
                    "createdAt": iso(r.created_at_ms),
                    "lastSeenAt": iso(r.last_seen_at_ms),
                    "expiresAt": iso(r.created_at_ms + crate::channel_pairing::PAIRING_TTL_MS),
                    "notifySupported": true,
                }));
            }
        }
        if expired {
            self.persist();
        }
        Ok(json!({
            "accounts": accounts,
            "requests": requests,
            "commandOwnerConfigured": false,
            "limits": {"pendingPerAccount": PENDING_PER_ACCOUNT, "ttlMs": crate::channel_pairing::PAIRING_TTL_MS},
        }))
    }

    fn pairing_decide(&mut self, now_ms: u64, approve: bool, p: &Value) -> Result<Value, ErrorShape> {
        let method = if approve {
            "channels.pairing.approve"
        } else {
            "channels.pairing.dismiss"
        };
        let (channel, account) = self.known_channel(method, p)?;
        let code = text_param(p, "requestId")
            .or_else(|| text_param(p, "code"))
            .ok_or_else(|| invalid(method, "requestId is required"))?;
        let pairings = &mut self.channels.store.pairings;
        let taken = if approve {
            pairings.approve(now_ms, (&channel, &account), &code)
        } else {
            pairings.dismiss(now_ms, (&channel, &account), &code)
        };
        let Some(request) = taken else {
            return Err(ErrorShape::new(
                ErrorCode::InvalidRequest,
                format!("no pending pairing request {code} for {channel}/{account}"),
            ));
        };
        let notify = approve && p["notify"].as_bool().unwrap_or(true);
        if notify {
            let text = format!(
                "Your access to this assistant on {} was approved. You can write now.",
                label_of(&channel)
            );
            self.enqueue(
                now_ms,
                (&channel, &account),
                &request.sender_nick(),
                text,
                "pairing",
                None,
            );
            self.pump(now_ms);
        } else {
            self.persist();
        }
        let verb = if approve { "approved" } else { "dismissed" };
        self.cx.net.log(
            now_ms,
            LogLevel::Info,
            format!("channel {channel}/{account}: pairing of {} {verb}", request.sender_id),
        );
        Ok(if approve {
            let notification = if notify { "sent" } else { "not-requested" };
            json!({"requestId": request.code, "senderId": request.sender_id, "notification": notification, "commandOwnerBootstrap": "not-requested"})
        } else {
            json!({"requestId": request.code, "senderId": request.sender_id})
        })
    }

    fn dead_letters(&self) -> Value {
        let letters: Vec<Value> = self
            .channels
            .store
            .dead
            .iter()
            .rev()
            .map(|d| {
                json!({
                    "id": d.delivery.id, "channel": d.delivery.channel, "accountId": d.delivery.account,
                    "target": d.delivery.target, "kind": d.delivery.kind, "text": d.delivery.text,
                    "attempts": d.delivery.attempts, "reason": d.reason, "lastError": d.delivery.last_error,
                    "createdAt": d.delivery.created_at, "deadAt": d.dead_at,
                })
            })
            .collect();
        json!({"deadLetters": letters, "count": letters.len()})
    }

    fn retry_dead(&mut self, now_ms: u64, p: &Value) -> Result<Value, ErrorShape> {
        let all = p["all"].as_bool().unwrap_or(false);
        let id = text_param(p, "id");
        if id.is_none() && !all {
            return Err(invalid("channels.deadLetters.retry", "id (or all: true) is required"));
        }
        let dead = std::mem::take(&mut self.channels.store.dead);
        let (retry, keep): (Vec<DeadLetter>, Vec<DeadLetter>) = dead
            .into_iter()
            .partition(|d| all || id.as_deref() == Some(d.delivery.id.as_str()));
        self.channels.store.dead = keep.into();
        if retry.is_empty() {
            return Err(ErrorShape::new(
                ErrorCode::InvalidRequest,
                format!("no dead letter {}", id.unwrap_or_default()),
            ));
        }
        let ids: Vec<String> = retry.iter().map(|d| d.delivery.id.clone()).collect();
        for d in retry {
            let mut delivery = d.delivery;
            delivery.attempts = 0;
            delivery.next_at = now_ms;
            delivery.in_flight_until = None;
            self.channels.store.outbox.push(delivery);
        }
        self.persist();
        self.pump(now_ms);
        Ok(json!({"retried": ids}))
    }

    /// `send`: a message to a channel target, answered once it is durably queued.
    fn send(&mut self, now_ms: u64, conn: ConnId, request: &RequestFrame, p: &Value) -> Reply {
        let method = "send";
        let to = match text_param(p, "to") {
            Some(t) => t,
            None => return Reply::Now(Err(invalid(method, "to is required"))),
        };
        let text = p["message"].as_str().unwrap_or_default().trim().to_owned();
        if text.is_empty() {
            return Reply::Now(Err(invalid(method, "text or media is required")));
        }
        if p["idempotencyKey"].as_str().is_none_or(|k| k.trim().is_empty()) {
            return Reply::Now(Err(invalid(method, "idempotencyKey is required")));
        }
        let channel = match text_param(p, "channel") {
            Some(c) => c.to_lowercase(),
            None => match self.cx.config.channels.channels.as_slice() {
                [(only, _)] => only.clone(),
                _ => return Reply::Now(Err(invalid(method, "channel is required"))),
            },
        };
        let mut params = p.clone();
        params["channel"] = json!(channel);
        let (channel, account) = match self.known_channel(method, &params) {
            Ok(ok) => ok,
            Err(_) => {
                return Reply::Now(Err(ErrorShape::new(
                    ErrorCode::InvalidRequest,
                    format!("unsupported channel: {channel}"),
                )))
            }
        };
        if self.channels.store.outbox.len() >= OUTBOX_LIMIT {
            return Reply::Now(Err(ErrorShape::new(
                ErrorCode::Unavailable,
                format!("{OUTBOX_LIMIT} channel messages already wait to be delivered"),
            )
            .retry_after(5000)));
        }
        let thread = text_param(p, "threadId");
        let id = self.enqueue(now_ms, (&channel, &account), &to, text, "send", thread);
        if let Some(d) = self.channels.store.outbox.last_mut() {
            d.reply_to_id = text_param(p, "replyToId");
        }
        self.pump(now_ms);
        let key = p["idempotencyKey"].as_str().unwrap_or_default();
        let payload = json!({
            "runId": key, "messageId": id, "channel": channel, "accountId": account, "to": to,
            "status": "queued",
        });
        self.answer_durable(conn, request, payload)
    }
}

/// The channel and account of an adapter's caps.
fn adapter_cap(caps: &[String]) -> Option<(String, String)> {
    caps.iter().find_map(|c| {
        let rest = c.strip_prefix(ADAPTER_CAP_PREFIX)?;
        let (channel, account) = rest.split_once(':')?;
        (!channel.is_empty() && !account.is_empty()).then(|| (channel.to_lowercase(), account.to_lowercase()))
    })
}

fn remember(seen: &mut BTreeMap<String, VecDeque<String>>, key: &str, id: String) {
    let list = seen.entry(key.to_owned()).or_default();
    list.push_back(id);
    while list.len() > SEEN_PER_ACCOUNT {
        list.pop_front();
    }
}

/// The message an unknown sender gets: who they are to the gateway, the code, and the command
/// the owner runs.
fn pairing_text(channel: &str, sender: &str, code: &str) -> String {
    format!(
        "This assistant does not know you yet. Your {} id: {sender}. Pairing code: {code}. \
         Ask its owner to approve it with: openclaw pairing approve {channel} {code}",
        label_of(channel)
    )
}

impl crate::channel_pairing::PairingRequest {
    /// Where a note to the sender goes: the nick of an IRC `nick!user@host`, else the id.
    fn sender_nick(&self) -> String {
        self.sender_id
            .split_once('!')
            .map_or(self.sender_id.clone(), |(nick, _)| nick.to_owned())
    }
}
