//! Agent workers, runs and chat sessions.
//!
//! An agent worker is a `node`-role client that declares, in its `connect`, the command
//! [`WORKER_COMMAND`] and one cap `agent:<agentId>` per agent it serves. The first worker of an
//! agent is its active worker; later ones are standbys that take over when it leaves.
//!
//! A message (`chat.send`, `agent`, or one of the HTTP endpoints) becomes a run: its user message
//! is appended to the session's transcript, then the run goes to the agent's active worker as a
//! `node.invoke.request` event. The worker streams text with `node.event` (`agent.delta`) and
//! ends with `node.invoke.result`. While no worker serves the agent, runs wait in a bounded queue
//! that is persisted under the state directory and delivered in order when one connects. A worker
//! that leaves mid-run ends its runs with an error, visibly, and the message can be sent again.

use crate::config::GatewayConfig;
use crate::conns::Timer;
use crate::context::Ctx;
use crate::http_runs::HttpRun;
use crate::log_ring::LogLevel;
use crate::output::{ConnId, Output};
use crate::reply::Reply;
use clawgate_proto::frame::{to_raw, ErrorCode, ErrorShape, RequestFrame, ResponseFrame};
use clawgate_proto::session::AgentId;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

pub use crate::nodes::{WORKER_CAP_PREFIX, WORKER_COMMAND};
/// The `node.event` a worker sends for each piece of reply text.
pub const DELTA_EVENT: &str = "agent.delta";
/// The `node.event` a worker sends when a model turn starts: `{runId, provider, model}`.
pub const MODEL_EVENT: &str = "agent.model";
/// The `node.event` a worker sends after a model turn: `{runId, input, output}` tokens.
pub const USAGE_EVENT: &str = "agent.usage";
/// The event a worker gets when the gateway ends one of its runs before the worker did (an
/// abort, a timeout): `{id, runId}`. The worker stops the run's model stream and sends nothing
/// more for it.
pub const CANCEL_EVENT: &str = "node.invoke.cancel";
/// The `node.event` a worker sends when a turn ends in tool calls, before it runs them:
/// `{runId, calls: [{id, name, arguments}], text}` (`text`: what the model said before them).
pub const TOOL_CALLS_EVENT: &str = "agent.toolCalls";
/// The file (under the state directory) holding the runs that wait for a worker.
pub const QUEUE_FILE: &str = "agents/queue.json";
/// The folder (under the state directory) of the transcripts, one `<sessionId>.jsonl` each.
pub const TRANSCRIPT_DIR: &str = "sessions";

/// Runs waiting for a worker, over all agents; beyond this a message is refused.
pub const QUEUE_LIMIT: usize = 1000;
/// Messages of a session kept in memory (for history and context); the transcript keeps all.
const MEMORY_MESSAGES: usize = 400;
/// Messages of history handed to a worker with each run.
const CONTEXT_MESSAGES: usize = 40;
/// At most one `chat` delta per run in this many milliseconds.
pub const DELTA_INTERVAL_MS: u64 = 150;
/// Finished runs remembered for `agent.wait` and idempotent replays.
const FINISHED_KEPT: usize = 2048;
/// How long a run may take when the caller gives no timeout.
const DEFAULT_RUN_TIMEOUT_MS: u64 = 600_000;
/// Messages a session may hold in its transcript line (bytes of text).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Who started a run and waits for its end.
pub(crate) enum Origin {
    /// Restored from the persisted queue after a restart: nobody waits.
    Nobody,
    /// `chat.send`: the answer was `started`; the reply goes out as events.
    Chat { conn: ConnId },
    /// `agent`: a second `res` on `request_id` carries the result.
    Agent { conn: ConnId, request_id: String },
    /// One of the HTTP endpoints.
    Http(HttpRun),
    /// The scheduler (a cron job or a heartbeat): its end goes back to it.
    Scheduled,
    /// A chat channel's inbound message: its end becomes the reply the channels deliver.
    Channel,
    /// `sessions.compact`: the reply is the summary that replaces the session's history, and
    /// the answer goes to `request_id`.
    Compaction { conn: ConnId, request_id: String },
}

pub(crate) struct Run {
    pub session_key: String,
    pub session_id: String,
    pub agent_id: String,
    message: String,
    worker: Option<ConnId>,
    pub origin: Origin,
    seq: u64,
    pub text: String,
    /// Bytes of `text` already sent in `chat` deltas.
    sent: usize,
    /// Bytes of `text` already in the transcript as a preamble (text before a tool call).
    recorded: usize,
    last_delta_ms: u64,
    /// When a held-back delta is due.
    flush_at: Option<u64>,
    accepted_at: u64,
    started_at: u64,
    deadline: u64,
    item_id: String,
    options: RunOptions,
    /// The model the run went to, and the tokens its turns used.
    model: Option<crate::models::ModelRef>,
    usage: crate::usage::Tokens,
    /// A heartbeat turn: its events go to no operator, as OpenClaw keeps them out of the chat.
    quiet: bool,
}

impl Run {
    /// The payload of the run's next `agent` event (drawing the run's next seq).
    fn next_agent_event(
        &mut self,
        run_id: &str,
        stream: &str,
        data: Value,
        now_ms: u64,
    ) -> Box<serde_json::value::RawValue> {
        to_raw(&self.next_agent_event_value(run_id, stream, data, now_ms))
    }

    fn next_agent_event_value(&mut self, run_id: &str, stream: &str, data: Value, now_ms: u64) -> Value {
        self.seq += 1;
        json!({
            "runId": run_id,
            "stream": stream,
            "data": data,
            "sessionKey": self.session_key,
            "sessionId": self.session_id,
            "agentId": self.agent_id,
            "seq": self.seq,
            "ts": now_ms,
        })
    }
}

/// What a caller asks of a run beyond its message, handed to the worker as they are: an extra
/// system prompt (an OpenAI client's `system` messages) and an upstream model override (the
/// `x-openclaw-model` header).
#[derive(Serialize, Deserialize, Clone, Default, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RunOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_system_prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// A run waiting for its agent's worker, as persisted in [`QUEUE_FILE`].
#[derive(Serialize, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct Queued {
    run_id: String,
    session_key: String,
    agent_id: String,
    message: String,
    accepted_at: u64,
    timeout_ms: u64,
    #[serde(default, flatten)]
    options: RunOptions,
    /// Started by the scheduler, which waits for its end across a restart.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    scheduled: bool,
    /// Started by a channel message, whose reply the channels wait for across a restart.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    channel: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    quiet: bool,
}

/// How a run ended, kept for `agent.wait` and replays.
#[derive(Clone)]
pub(crate) struct Finished {
    pub status: &'static str,
    pub ended_at: u64,
    pub text: String,
    pub error: Option<String>,
    pub session_key: String,
    pub agent_id: String,
    pub duration_ms: u64,
    pub session_id: String,
}

impl Finished {
    /// A run that never started, failed for `why`.
    pub(crate) fn failed(session_key: &str, agent_id: &str, now_ms: u64, why: &str) -> Finished {
        Finished {
            status: "error",
            ended_at: now_ms,
            text: String::new(),
            error: Some(why.to_owned()),
            session_key: session_key.to_owned(),
            agent_id: agent_id.to_owned(),
            duration_ms: 0,
            session_id: String::new(),
        }
    }
}

/// One chat session.
pub(crate) struct ChatSession {
    pub session_id: String,
    pub agent_id: String,
    created_at: u64,
    pub updated_at: u64,
    created_via: String,
    messages: VecDeque<Value>,
    total: u64,
    last_run_id: Option<String>,
    status: Option<&'static str>,
    /// What the session's messages used: tokens and cost per model and day, tool calls.
    usage: crate::session_usage::SessionUsage,
    /// What `sessions.patch` set (label, read markers, pin, archive, model override), kept in
    /// the transcript as `session.patch` lines.
    meta: Map<String, Value>,
}

/// Fields `sessions.patch` takes, and the ones it refuses because OpenClaw retired them.
const PATCHABLE: &[&str] = &[
    "label",
    "unread",
    "expectedMarkedUnreadAt",
    "pinned",
    "archived",
    "model",
    "thinkingLevel",
];
const RETIRED: &[&str] = &["execSecurity", "execAsk"];

/// A caller waiting in `agent.wait`.
struct Waiter {
    conn: ConnId,
    request_id: String,
    run_id: String,
    deadline: u64,
}

/// An operator's `node.invoke` waiting for the node's result.
struct PendingInvoke {
    conn: ConnId,
    request_id: String,
    node_conn: ConnId,
    node_id: String,
    command: String,
    deadline: u64,
}

/// Everything the gateway knows about agents, runs and sessions.
#[derive(Default)]
pub(crate) struct AgentHub {
    /// Workers per agent id, in the order they connected: the first is active.
    workers: BTreeMap<String, Vec<ConnId>>,
    pub runs: HashMap<String, Run>,
    finished: HashMap<String, Finished>,
    finished_order: VecDeque<String>,
    queue: VecDeque<Queued>,
    pub sessions: BTreeMap<String, ChatSession>,
    waiters: Vec<Waiter>,
    invokes: HashMap<String, PendingInvoke>,
    session_subscribers: BTreeSet<ConnId>,
    message_subscribers: BTreeMap<ConnId, BTreeSet<String>>,
    timer_at: Option<u64>,
    /// Tokens per day, for `usage.cost`.
    usage: crate::usage::UsageLedger,
    /// Runs ended before their worker finished them (aborted, timed out, lost): their tool calls
    /// are to be stopped.
    cancelled: Vec<String>,
    /// Runs of the scheduler that ended, for it to take.
    scheduled_done: Vec<(String, Finished)>,
    /// Runs that ended, for the parts that keep a message until its run's end (the channels'
    /// inbox, the hooks' accepted turns).
    ended: Vec<(String, Finished)>,
    /// Channel runs whose text grew since the channels last looked.
    channel_progress: BTreeSet<String>,
}

impl AgentHub {
    /// The scheduler's runs that ended since the last call.
    pub(crate) fn take_scheduled_done(&mut self) -> Vec<(String, Finished)> {
        std::mem::take(&mut self.scheduled_done)
    }

    /// The channel runs whose text grew since the last call, with their text so far.
    pub(crate) fn take_channel_progress(&mut self) -> Vec<(String, String)> {
        std::mem::take(&mut self.channel_progress)
            .into_iter()
            .filter_map(|id| self.runs.get(&id).map(|r| (id, r.text.clone())))
            .collect()
    }

    /// The runs that ended since the last call.
    pub(crate) fn take_ended(&mut self) -> Vec<(String, Finished)> {
        std::mem::take(&mut self.ended)
    }

    /// The reply of run `run_id` in its session's transcript, if it was written: the assistant
    /// message after the run's own user message.
    pub(crate) fn reply_in_transcript(&self, session_key: &str, run_id: &str) -> Option<String> {
        let session = self.sessions.get(session_key)?;
        let marker = format!("{run_id}:user");
        let asked = session
            .messages
            .iter()
            .rposition(|m| m["role"] == "user" && m["idempotencyKey"].as_str() == Some(&marker))?;
        session
            .messages
            .iter()
            .skip(asked + 1)
            .find(|m| m["role"] == "assistant" || m["role"] == "user")
            .filter(|m| m["role"] == "assistant")
            .map(message_text)
    }

    /// Whether `run_id` waits in the queue for a worker (restored after a restart).
    pub(crate) fn is_queued(&self, run_id: &str) -> bool {
        self.queue.iter().any(|q| q.run_id == run_id)
    }

    /// The runs that ended before their worker finished them, since the last call.
    pub(crate) fn take_cancelled(&mut self) -> Vec<String> {
        std::mem::take(&mut self.cancelled)
    }

    /// The connection that started `run_id` and waits for it, if any.
    pub(crate) fn requester_of(&self, run_id: &str) -> Option<ConnId> {
        match &self.runs.get(run_id)?.origin {
            Origin::Chat { conn } | Origin::Agent { conn, .. } => Some(*conn),
            Origin::Http(_) | Origin::Nobody | Origin::Scheduled | Origin::Channel | Origin::Compaction { .. } => None,
        }
    }

    /// Whether a worker serving `agent` is connected.
    pub(crate) fn serves(&self, agent: &str) -> bool {
        self.workers.contains_key(agent)
    }

    /// Whether any worker is connected.
    pub(crate) fn any_worker(&self) -> bool {
        !self.workers.is_empty()
    }

    /// Runs under way and runs waiting for a worker (`diagnostics.lanes`).
    pub(crate) fn run_counts(&self) -> (usize, usize) {
        let active = self.runs.values().filter(|r| r.worker.is_some()).count();
        (active, self.runs.len() - active)
    }

    /// The runs under way, waiting, and recently ended, as `tasks.list` rows (newest first).
    pub(crate) fn task_rows(&self) -> Vec<Value> {
        let mut rows: Vec<(u64, Value)> = Vec::new();
        for (id, r) in &self.runs {
            rows.push((r.accepted_at, running_task(id, r)));
        }
        for (id, f) in &self.finished {
            rows.push((f.ended_at.saturating_sub(f.duration_ms), finished_task(id, f)));
        }
        rows.sort_by_key(|r| std::cmp::Reverse(r.0));
        rows.into_iter().map(|r| r.1).collect()
    }

    /// The `task` event of a run under way whose state changed (queued, running), as OpenClaw
    /// announces each change of a task.
    fn task_event(&self, run_id: &str) -> Option<Box<serde_json::value::RawValue>> {
        let task = running_task(run_id, self.runs.get(run_id)?);
        Some(to_raw(&json!({"action": "upserted", "task": task})))
    }
}

/// A task row, in `tasks.list`'s shape.
fn task_row(
    run_id: &str,
    kind: &str,
    status: &str,
    (agent, key): (&str, &str),
    created: u64,
    ended: Option<u64>,
) -> Value {
    let state = if ended.is_some() { "finished" } else { status };
    json!({
        "id": run_id, "taskId": run_id, "kind": kind, "runtime": "clawgate-worker", "status": status,
        "execution": {"state": state}, "title": key, "agentId": agent, "sessionKey": key,
        "hasTranscript": true, "ownerKey": key, "runId": run_id, "sourceId": run_id,
        "createdAt": created, "updatedAt": ended.unwrap_or(created), "startedAt": created,
        "endedAt": ended, "progressSummary": null, "terminalSummary": null, "deliveryStatus": null,
    })
}

/// The task of a run under way; one still waiting for its agent's worker is queued.
fn running_task(run_id: &str, r: &Run) -> Value {
    let kind = match r.origin {
        Origin::Scheduled => "automation_run",
        _ => "cli",
    };
    let status = if r.worker.is_some() { "running" } else { "queued" };
    task_row(run_id, kind, status, (&r.agent_id, &r.session_key), r.accepted_at, None)
}

/// The task of a run that ended.
fn finished_task(run_id: &str, f: &Finished) -> Value {
    let status = match f.status {
        "ok" => "completed",
        "timeout" => "timed_out",
        _ => "failed",
    };
    let started = f.ended_at.saturating_sub(f.duration_ms);
    task_row(
        run_id,
        "cli",
        status,
        (&f.agent_id, &f.session_key),
        started,
        Some(f.ended_at),
    )
}

fn invalid(method: &str, e: impl std::fmt::Display) -> ErrorShape {
    ErrorShape::new(ErrorCode::InvalidRequest, format!("invalid {method} params: {e}"))
}

fn transcript_file(session_id: &str) -> String {
    format!("{TRANSCRIPT_DIR}/{session_id}.jsonl")
}

/// What a summary turn is asked.
const COMPACT_PROMPT: &str = "Summarize the conversation so far for your own later use: the user's requests, what was \
decided and done, open tasks, constraints, and exact names, paths and identifiers. Reply with the summary only.";

/// Messages kept after a summary: the latest exchange.
const COMPACT_KEEP: usize = 2;

/// Files the session's tool calls read and changed (`read`; `write`, `edit`), for a compaction's
/// details.
fn files_touched(messages: &[Value]) -> (Vec<String>, Vec<String>) {
    let (mut read, mut modified) = (Vec::new(), Vec::new());
    for m in messages {
        for c in m["content"].as_array().into_iter().flatten() {
            if c["type"] != "toolCall" {
                continue;
            }
            let Some(path) = c["arguments"]["path"].as_str() else {
                continue;
            };
            let list = match c["name"].as_str() {
                Some("read") => &mut read,
                Some("write" | "edit" | "apply_patch") => &mut modified,
                _ => continue,
            };
            if !list.iter().any(|p| p == path) {
                list.push(path.to_owned());
            }
        }
    }
    (read, modified)
}

/// A `sessions.patch` change: `null` removes a field.
fn merge_meta(meta: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (k, v) in patch {
        if v.is_null() {
            meta.remove(k);
        } else {
            meta.insert(k.clone(), v.clone());
        }
    }
}

impl ChatSession {
    /// Marked unread after it was last read.
    fn unread(&self) -> bool {
        let marked = self.meta.get("markedUnreadAt").and_then(Value::as_u64);
        let read = self.meta.get("lastReadAt").and_then(Value::as_u64).unwrap_or(0);
        marked.is_some_and(|m| m >= read)
    }

    /// The session's entry as `sessions.patch` and `sessions.create` answer it.
    fn entry(&self, parent: Option<&str>) -> Value {
        let mut entry = json!({
            "sessionId": self.session_id,
            "updatedAt": self.updated_at,
            "createdVia": self.created_via,
            "createdAt": self.created_at,
            "delivery": {"kind": "none"},
            "spawnDepth": 0,
            "modelOverrideSource": if self.meta.contains_key("modelOverride") { "session" } else { "default" },
        });
        if let Some(parent) = parent {
            entry["parentSessionKey"] = json!(parent);
        }
        for (k, v) in &self.meta {
            entry[k] = v.clone();
        }
        entry
    }
}

fn user_message(text: &str, run_id: &str, now_ms: u64) -> Value {
    json!({
        "role": "user",
        "content": text,
        "timestamp": now_ms,
        "idempotencyKey": format!("{run_id}:user"),
    })
}

fn assistant_message(text: &str, now_ms: u64) -> Value {
    json!({"role": "assistant", "content": [{"type": "text", "text": text}], "timestamp": now_ms})
}

/// The text of a transcript message (a string, or text parts).
pub(crate) fn message_text(message: &Value) -> String {
    match &message["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChatSendParams {
    session_key: String,
    message: String,
    idempotency_key: String,
    agent_id: Option<String>,
    timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AgentParams {
    message: String,
    idempotency_key: String,
    agent_id: Option<String>,
    session_key: Option<String>,
    /// Seconds; 0 means no limit.
    timeout: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AgentWaitParams {
    run_id: String,
    timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChatHistoryParams {
    session_key: String,
    limit: Option<usize>,
    /// A `deltaCursor` from an earlier answer: only newer messages are wanted.
    cursor: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChatAbortParams {
    session_key: String,
    run_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionKeyParams {
    key: String,
    limit: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SessionsListParams {
    limit: Option<usize>,
    agent_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NodeInvokeParams {
    node_id: String,
    command: String,
    params: Option<Value>,
    timeout_ms: Option<u64>,
    idempotency_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeInvokeResultParams {
    id: String,
    #[allow(dead_code)]
    node_id: Option<String>,
    ok: bool,
    payload: Option<Value>,
    #[serde(rename = "payloadJSON")]
    payload_json: Option<String>,
    error: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeEventParams {
    event: String,
    payload: Option<Value>,
    #[serde(rename = "payloadJSON")]
    payload_json: Option<String>,
}

/// What a worker sends with [`DELTA_EVENT`].
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WorkerDelta {
    run_id: String,
    delta: String,
}

/// A session's recent messages, for `chat.startup`.
pub(crate) struct StartupHistory {
    pub key: String,
    pub agent: String,
    pub messages: Vec<Value>,
    pub total: u64,
    pub session_id: Option<String>,
}

/// Where a new run comes from, for [`Gateway::start_run`].
pub(crate) struct RunRequest {
    pub run_id: String,
    pub session_key: String,
    pub agent_id: String,
    pub message: String,
    pub origin: Origin,
    pub timeout_ms: u64,
    pub options: RunOptions,
    pub created_via: &'static str,
    /// See [`Run::quiet`].
    pub quiet: bool,
    /// The answer that acknowledges the message: sent once the message is recorded (and, when
    /// queued, held until the queue is durable), before any event of the run.
    pub ack: Option<Ack>,
}

/// An acknowledgement of [`RunRequest::ack`].
pub(crate) enum Ack {
    /// A text frame on a WebSocket.
    Ws(ConnId, String),
    /// Bytes on an HTTP connection (the head of a stream).
    Raw(ConnId, Vec<u8>),
}

impl AgentHub {
    /// The active worker of `agent`, if one is online.
    fn active_worker(&self, agent: &str) -> Option<ConnId> {
        self.workers.get(agent).and_then(|w| w.first().copied())
    }

    /// Whether a worker serves `agent` now.
    pub(crate) fn agent_has_worker(&self, agent: &str) -> bool {
        self.active_worker(agent).is_some()
    }

    /// Presence of the agents: configured ones and the ones workers serve.
    pub(crate) fn agent_presence(&self, config: &GatewayConfig) -> Vec<Value> {
        let routing = config.session_routing();
        self.agent_ids(config)
            .iter()
            .map(|id| {
                let workers = self.workers.get(id).map_or(0, Vec::len);
                let active: Vec<&String> = self
                    .runs
                    .iter()
                    .filter(|(_, r)| &r.agent_id == id && r.worker.is_some())
                    .map(|(k, _)| k)
                    .collect();
                let queued = self.queue.iter().filter(|q| &q.agent_id == id).count();
                let state = match (workers, active.is_empty()) {
                    (0, _) => "offline",
                    (_, true) => "online",
                    (_, false) => "busy",
                };
                let sessions = self.sessions.values().filter(|s| &s.agent_id == id).count();
                json!({
                    "agentId": id,
                    "isDefault": *id == routing.default_agent.as_str(),
                    "state": state,
                    "workers": workers,
                    "standbyWorkers": workers.saturating_sub(1),
                    "activeRuns": active.len(),
                    "queued": queued,
                    "heartbeat": {"enabled": false, "every": "disabled", "everyMs": null},
                    "sessions": {"path": TRANSCRIPT_DIR, "count": sessions, "recent": []},
                })
            })
            .collect()
    }

    fn run_session(&self, run_id: &str) -> String {
        self.runs.get(run_id).map(|r| r.session_key.clone()).unwrap_or_default()
    }

    /// The session and agent of `run_id` if it is assigned to worker `conn`.
    pub(crate) fn run_of_worker(&self, conn: ConnId, run_id: &str) -> Result<(String, String), ErrorShape> {
        match self.runs.get(run_id) {
            Some(run) if run.worker == Some(conn) => Ok((run.session_key.clone(), run.agent_id.clone())),
            _ => Err(ErrorShape::new(
                ErrorCode::InvalidRequest,
                format!("run {run_id} is not an active run of this node"),
            )),
        }
    }

    fn session_row(&self, config: &GatewayConfig, key: &str, s: &ChatSession) -> Value {
        let active: Vec<&String> = self
            .runs
            .iter()
            .filter(|(_, r)| r.session_key == key)
            .map(|(id, _)| id)
            .collect();
        let is_main = key
            == config
                .session_routing()
                .main_session(Some(&AgentId::normalize(&s.agent_id)));
        let preview = s
            .messages
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .map(|m| message_text(m).chars().take(120).collect::<String>());
        let mut row = json!({
            "key": key,
            "kind": "direct",
            "chatType": "direct",
            "visibility": "shared",
            "classification": if is_main { "main" } else { "session" },
            "agentId": s.agent_id,
            "sessionId": s.session_id,
            "isMain": is_main,
            "isBackground": false,
            "archived": false,
            "pinned": false,
            "unread": false,
            "lastMessagePreview": preview,
            "lastInteractionAt": s.updated_at,
            "createdAt": s.created_at,
            "updatedAt": s.updated_at,
            "createdVia": s.created_via,
            "status": s.status,
            "lastRunId": s.last_run_id,
            "hasActiveRun": !active.is_empty(),
            "activeRunIds": active,
            "messageCount": s.total,
            "inputTokens": s.usage.tokens().0,
            "outputTokens": s.usage.tokens().1,
            "totalTokens": s.usage.tokens().0 + s.usage.tokens().1,
        });
        for (field, value) in &s.meta {
            match field.as_str() {
                "label" | "pinned" | "archived" | "modelOverride" => row[field] = value.clone(),
                _ => {}
            }
        }
        row["unread"] = json!(s.unread());
        // Clients validate rows with optional, not nullable, fields: absent beats null.
        if let Some(map) = row.as_object_mut() {
            map.retain(|_, v| !v.is_null());
        }
        row
    }

    pub(crate) fn sessions_list_payload(
        &self,
        config: &GatewayConfig,
        now_ms: u64,
        request: &RequestFrame,
    ) -> Result<Value, ErrorShape> {
        let params: SessionsListParams = request.parse_params().map_err(|e| invalid("sessions.list", e))?;
        let agent = params
            .agent_id
            .as_deref()
            .map(|a| AgentId::normalize(a).as_str().to_owned());
        let mut rows: Vec<(&String, &ChatSession)> = self
            .sessions
            .iter()
            .filter(|(_, s)| agent.as_ref().is_none_or(|a| *a == s.agent_id))
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.1.updated_at));
        let total = rows.len();
        let limit = params.limit.unwrap_or(100).clamp(1, 1000);
        let sessions: Vec<Value> = rows
            .iter()
            .take(limit)
            .map(|(k, s)| self.session_row(config, k, s))
            .collect();
        Ok(json!({
            "ts": now_ms,
            "path": format!("{}/{TRANSCRIPT_DIR}", config.state_dir),
            "count": sessions.len(),
            "totalCount": total,
            "limitApplied": limit,
            "hasMore": total > limit,
            "defaults": {"model": null, "contextTokens": null},
            "sessions": sessions,
        }))
    }

    /// `sessions.preview {keys, limit?, maxChars?}`: the last user and assistant texts of each.
    pub(crate) fn sessions_preview(
        &self,
        config: &GatewayConfig,
        now_ms: u64,
        request: &RequestFrame,
    ) -> Result<Value, ErrorShape> {
        let m = "sessions.preview";
        let p: Value = serde_json::from_str(request.params_text()).map_err(|e| invalid(m, e))?;
        let limit = p.get("limit").and_then(Value::as_u64).unwrap_or(12).clamp(1, 100) as usize;
        let max_chars = p
            .get("maxChars")
            .and_then(Value::as_u64)
            .unwrap_or(240)
            .clamp(4, 10_000) as usize;
        let keys: Vec<&str> = p
            .get("keys")
            .and_then(Value::as_array)
            .map(|k| {
                k.iter()
                    .filter_map(Value::as_str)
                    .filter(|k| !k.trim().is_empty())
                    .take(64)
                    .collect()
            })
            .unwrap_or_default();
        let mut previews = Vec::new();
        for raw in keys {
            let (key, _) = self.session_key_for(config, Some(raw), None)?;
            let Some(s) = self.sessions.get(&key) else {
                previews.push(json!({"key": raw, "status": "missing", "items": []}));
                continue;
            };
            let mut items: Vec<Value> = s
                .messages
                .iter()
                .rev()
                .filter(|msg| msg["role"] == "user" || msg["role"] == "assistant")
                .filter_map(|msg| {
                    let text = message_text(msg).trim().to_owned();
                    (!text.is_empty()).then(|| {
                        let cut = if text.chars().count() <= max_chars {
                            text
                        } else {
                            format!("{}...", text.chars().take(max_chars - 3).collect::<String>())
                        };
                        json!({"role": msg["role"], "text": cut})
                    })
                })
                .take(limit)
                .collect();
            items.reverse();
            let status = if items.is_empty() { "empty" } else { "ok" };
            previews.push(json!({"key": raw, "status": status, "items": items}));
        }
        Ok(json!({"ts": now_ms, "previews": previews}))
    }

    /// `sessions.usage {startDate?, endDate?, limit?, key?}`: the tokens and cost of each session
    /// active in the range (dates as `YYYY-MM-DD`, UTC), with their totals. Clawgate counts per
    /// session and per day, not per message: the breakdowns by model, tool or hour are empty.
    pub(crate) fn sessions_usage_payload(&self, now_ms: u64, request: &RequestFrame) -> Result<Value, ErrorShape> {
        let m = "sessions.usage";
        let p: Value = serde_json::from_str(request.params_text()).map_err(|e| invalid(m, e))?;
        let day_of = |field: &str, default: u64| -> Result<u64, ErrorShape> {
            match p.get(field).and_then(Value::as_str) {
                None => Ok(default),
                Some(text) => crate::usage::epoch_day(text)
                    .ok_or_else(|| invalid(m, format!("{field} must be a date as YYYY-MM-DD"))),
            }
        };
        let today = now_ms / crate::usage::DAY_MS;
        let (first, last) = (
            day_of("startDate", today.saturating_sub(29))?,
            day_of("endDate", today)?,
        );
        let limit = p.get("limit").and_then(Value::as_u64).unwrap_or(100).clamp(1, 1000) as usize;
        let only = p.get("key").and_then(Value::as_str);
        let mut rows: Vec<(&String, &ChatSession)> = self
            .sessions
            .iter()
            .filter(|(k, s)| s.usage.active_within(first, last) && only.is_none_or(|o| o == k.as_str()))
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.1.updated_at));
        let mut aggregate = crate::session_usage::UsageAggregate::default();
        for (_, s) in &rows {
            aggregate.add(&s.agent_id, &s.usage, first, last);
        }
        let sessions: Vec<Value> = rows
            .iter()
            .take(limit)
            .map(|(k, s)| {
                let mut row = json!({
                    "key": k, "sessionId": s.session_id, "agentId": s.agent_id, "updatedAt": s.updated_at,
                    "chatType": "direct", "usage": s.usage.row(first, last), "hasContextWeight": false,
                });
                if let Some(label) = s.meta.get("label") {
                    row["label"] = label.clone();
                }
                row
            })
            .collect();
        let date = crate::session_usage::date;
        Ok(json!({
            "updatedAt": now_ms,
            "startDate": date(first),
            "endDate": date(last),
            "sessions": sessions,
            "totals": aggregate.totals(),
            "aggregates": aggregate.to_json(),
            "creatorOptions": [],
            "cacheStatus": {"status": "fresh", "cachedFiles": 0, "pendingFiles": 0, "staleFiles": 0},
        }))
    }

    // ----- methods -------------------------------------------------------------------------

    /// A request's session key, canonical, and its agent (which must be known).
    pub(crate) fn session_key_for(
        &self,
        config: &GatewayConfig,
        raw: Option<&str>,
        agent: Option<&str>,
    ) -> Result<(String, String), ErrorShape> {
        let routing = config.session_routing();
        let key = routing
            .resolve(raw, agent)
            .map_err(|e| ErrorShape::new(ErrorCode::InvalidRequest, format!("invalid session key: {e}")))?;
        let agent = self.known_agent(config, Some(routing.agent_of(&key).as_str()))?;
        Ok((key.as_str().to_owned(), agent.as_str().to_owned()))
    }

    fn agents_list(&self, config: &GatewayConfig) -> Value {
        let routing = config.session_routing();
        let agents: Vec<Value> = self
            .agent_presence(config)
            .into_iter()
            .map(|a| {
                // The Control UI asks for model setup while an agent has no `model.primary`: a
                // worker is the agent's model here.
                json!({
                    "id": a["agentId"],
                    "kind": "agent",
                    "state": a["state"],
                    "agentRuntime": {"id": "clawgate-worker", "cloudPlacementSupported": false, "devicePlacementSupported": false, "source": "implicit"},
                    "thinkingLevels": [{"id": "off", "label": "off"}],
                    "thinkingOptions": ["off"],
                    "thinkingDefault": "off",
                    "model": {"primary": format!("clawgate/{}", a["agentId"].as_str().unwrap_or("main"))},
                    "defaultPermissionMode": "full",
                })
            })
            .collect();
        json!({
            "defaultId": routing.default_agent.as_str(),
            "mainKey": routing.effective_main_key(),
            "scope": match config.session_scope {
                clawgate_proto::session::SessionScope::PerSender => "per-sender",
                clawgate_proto::session::SessionScope::Global => "global",
            },
            "ownership": "explicit",
            "selectionRequired": false,
            "agents": agents,
        })
    }

    fn chat_history(&self, config: &GatewayConfig, request: &RequestFrame) -> Result<Value, ErrorShape> {
        let p: ChatHistoryParams = request.parse_params().map_err(|e| invalid("chat.history", e))?;
        let (key, _) = self.session_key_for(config, Some(&p.session_key), None)?;
        let limit = p.limit.unwrap_or(200).clamp(1, 1000);
        let pending = json!({"items": [], "total": 0});
        let Some(s) = self.sessions.get(&key) else {
            if p.cursor.is_some() {
                return Ok(json!({"kind": "delta", "messages": [], "deltaCursor": "0", "pendingInputs": pending}));
            }
            return Ok(json!({
                "sessionKey": key, "messages": [], "hasMore": false, "totalMessages": 0, "deltaCursor": "0",
                "pendingInputs": pending,
            }));
        };
        // The cursor is the seq of the last message the caller has (an opaque string to it).
        if let Some(cursor) = &p.cursor {
            let after = cursor.parse::<u64>().unwrap_or(0);
            let messages: Vec<Value> = s
                .messages
                .iter()
                .filter(|m| m["__openclaw"]["seq"].as_u64().is_some_and(|seq| seq > after))
                .take(limit)
                .map(|m| {
                    json!({
                        "sessionKey": key, "agentId": s.agent_id, "message": m,
                        "messageId": m["__openclaw"]["id"], "messageSeq": m["__openclaw"]["seq"],
                    })
                })
                .collect();
            let last = messages
                .last()
                .and_then(|m| m["messageSeq"].as_u64())
                .unwrap_or(after.min(s.total));
            return Ok(json!({
                "kind": "delta", "messages": messages, "deltaCursor": last.to_string(), "pendingInputs": pending,
                "sessionInfo": self.session_row(config, &key, s),
            }));
        }
        let skip = s.messages.len().saturating_sub(limit);
        let messages: Vec<&Value> = s.messages.iter().skip(skip).collect();
        Ok(json!({
            "sessionKey": key,
            "sessionId": s.session_id,
            "messages": messages,
            "hasMore": s.total > messages.len() as u64,
            "totalMessages": s.total,
            "deltaCursor": s.total.to_string(),
            "pendingInputs": pending,
            "inputReceipts": [],
            "inputConsumptions": [],
            "sessionInfo": self.session_row(config, &key, s),
        }))
    }

    /// `sessions.describe` / `chat.startup`'s view of a session; `None` for one never used.
    pub(crate) fn session_info(
        &self,
        config: &GatewayConfig,
        now_ms: u64,
        raw_key: &str,
    ) -> Result<Option<Value>, ErrorShape> {
        let (key, agent) = self.session_key_for(config, Some(raw_key), None)?;
        let Some(s) = self.sessions.get(&key) else {
            return Ok(None);
        };
        let mut row = self.session_row(config, &key, s);
        row["modelProvider"] = json!("clawgate");
        row["model"] = json!(agent);
        row["activeLeafEntryId"] = Value::Null;
        row["snapshotAt"] = json!(now_ms);
        Ok(Some(row))
    }

    /// The last `limit` messages of a session for `chat.startup`.
    pub(crate) fn startup_history(
        &self,
        config: &GatewayConfig,
        raw_key: &str,
        limit: usize,
    ) -> Result<StartupHistory, ErrorShape> {
        let (key, agent) = self.session_key_for(config, Some(raw_key), None)?;
        let Some(s) = self.sessions.get(&key) else {
            return Ok(StartupHistory {
                key,
                agent,
                messages: Vec::new(),
                total: 0,
                session_id: None,
            });
        };
        let messages = s
            .messages
            .iter()
            .skip(s.messages.len().saturating_sub(limit))
            .cloned()
            .collect();
        Ok(StartupHistory {
            key,
            agent,
            messages,
            total: s.total,
            session_id: Some(s.session_id.clone()),
        })
    }

    /// The messages of a session, for `GET /sessions/<key>/history`.
    pub(crate) fn session_history(
        &self,
        config: &GatewayConfig,
        raw_key: &str,
        limit: usize,
    ) -> Result<Value, ErrorShape> {
        let (key, _) = self.session_key_for(config, Some(raw_key), None)?;
        let messages: Vec<&Value> = self.sessions.get(&key).map_or_else(Vec::new, |s| {
            s.messages.iter().skip(s.messages.len().saturating_sub(limit)).collect()
        });
        Ok(json!({"sessionKey": key, "messages": messages}))
    }

    /// The agent ids that are configured or served by a worker.
    pub(crate) fn agent_ids(&self, config: &GatewayConfig) -> BTreeSet<String> {
        let mut ids: BTreeSet<String> = config.tool_policy.agent_ids().collect();
        ids.insert(config.session_routing().default_agent.as_str().to_owned());
        ids.extend(self.workers.keys().cloned());
        ids
    }

    /// The agent a request names (the default one when it names none); an agent the config does
    /// not know is refused.
    pub(crate) fn known_agent(&self, config: &GatewayConfig, requested: Option<&str>) -> Result<AgentId, ErrorShape> {
        let routing = config.session_routing();
        let Some(raw) = requested.filter(|r| !r.trim().is_empty()) else {
            return Ok(routing.default_agent);
        };
        let agent = AgentId::normalize(raw);
        if agent == routing.default_agent || config.tool_policy.agent(&agent).is_some() || self.serves(agent.as_str()) {
            Ok(agent)
        } else {
            Err(ErrorShape::new(
                ErrorCode::InvalidRequest,
                format!("unknown agent id: {raw}"),
            ))
        }
    }
    /// Restores sessions from their transcript files (read by the runtime at start).
    pub(crate) fn restore_transcripts(&mut self, files: Vec<String>) {
        for text in files {
            let mut lines = text.lines();
            let Some(header) = lines.next().and_then(|l| serde_json::from_str::<Value>(l).ok()) else {
                continue;
            };
            let (Some(key), Some(id)) = (header["key"].as_str(), header["sessionId"].as_str()) else {
                continue;
            };
            let mut session = ChatSession {
                session_id: id.to_owned(),
                agent_id: header["agentId"].as_str().unwrap_or("main").to_owned(),
                created_at: header["createdAt"].as_u64().unwrap_or(0),
                updated_at: header["createdAt"].as_u64().unwrap_or(0),
                created_via: header["createdVia"].as_str().unwrap_or("run").to_owned(),
                messages: VecDeque::new(),
                total: 0,
                last_run_id: None,
                status: None,
                usage: crate::session_usage::SessionUsage::default(),
                meta: Map::new(),
            };
            // A torn last line (a crash mid-write) is skipped; every complete line counts.
            for entry in lines.filter_map(|l| serde_json::from_str::<Value>(l).ok()) {
                if entry["type"] == "session.patch" {
                    if let Some(patch) = entry["patch"].as_object() {
                        merge_meta(&mut session.meta, patch);
                    }
                    continue;
                }
                let message = &entry["message"];
                if message.is_object() {
                    session.total += 1;
                    session.updated_at = session.updated_at.max(message["timestamp"].as_u64().unwrap_or(0));
                    if let Some(r) = message["__openclaw"]["runId"].as_str() {
                        session.last_run_id = Some(r.to_owned());
                        session.status = Some(if message["stopReason"] == "stop" {
                            "done"
                        } else {
                            "failed"
                        });
                    }
                    session.usage.record(message);
                    let usage = &message["usage"];
                    let (input, output) = (
                        usage["input"].as_u64().unwrap_or(0),
                        usage["output"].as_u64().unwrap_or(0),
                    );
                    if input + output > 0 {
                        let (input_cost, output_cost) = (
                            usage["cost"]["input"].as_f64().unwrap_or(0.0),
                            usage["cost"]["output"].as_f64().unwrap_or(0.0),
                        );
                        self.usage.record(
                            message["timestamp"].as_u64().unwrap_or(0),
                            crate::usage::Tokens {
                                input,
                                output,
                                input_cost,
                                output_cost,
                            },
                        );
                    }
                    session.messages.push_back(message.clone());
                    if session.messages.len() > MEMORY_MESSAGES {
                        session.messages.pop_front();
                    }
                }
            }
            let newer = self
                .sessions
                .get(key)
                .is_some_and(|s| s.updated_at > session.updated_at);
            if !newer {
                self.sessions.insert(key.to_owned(), session);
            }
        }
    }

    /// Restores the runs that waited for a worker when the gateway stopped (the text of
    /// [`QUEUE_FILE`]). A file that does not parse is an error: those messages were accepted.
    pub(crate) fn restore_queue(&mut self, text: &str) -> Result<(), String> {
        #[derive(Deserialize)]
        struct File {
            #[serde(default)]
            queue: Vec<Queued>,
        }
        let file: File = serde_json::from_str(text).map_err(|e| e.to_string())?;
        self.queue = file.queue.into_iter().take(QUEUE_LIMIT).collect();
        Ok(())
    }

    // ----- timers --------------------------------------------------------------------------
}

/// The agents at work on an input: their own state, and what they may send and read.
pub(crate) struct Agents<'a> {
    pub hub: &'a mut AgentHub,
    pub cx: Ctx<'a>,
}

impl Agents<'_> {
    /// Text of a run for a streaming HTTP caller.
    fn stream_http_delta(&mut self, run_id: &str, delta: &str) {
        let Some(Run {
            origin: Origin::Http(http),
            ..
        }) = self.hub.runs.get(run_id)
        else {
            return;
        };
        if let Some(bytes) = crate::http_runs::delta_bytes(http, run_id, delta) {
            self.cx.net.push_bytes(http.conn, bytes);
        }
    }

    /// The end of a run started over HTTP: the last events of a stream, or the whole answer.
    fn finish_http_run(&mut self, run_id: &str, http: HttpRun, done: &Finished) {
        use crate::http_runs::{end_of_run, HttpEnd, RunEnd};
        let error = done.error.clone().unwrap_or_else(|| format!("run {}", done.status));
        let end = RunEnd {
            ok: done.status == "ok",
            error: &error,
            text: &done.text,
            session_key: &done.session_key,
        };
        match end_of_run(&http, run_id, &end) {
            HttpEnd::Stream(bytes) => {
                self.cx.net.push_bytes(http.conn, bytes);
                self.cx.net.end_stream(http.conn, http.keep_alive);
            }
            HttpEnd::Whole(response) => self.cx.net.finish_http(http.conn, &response, false, http.keep_alive),
        }
    }

    // ----- workers -------------------------------------------------------------------------

    /// A node connected: if it is a worker, it serves (or stands by for) its agents, and what
    /// waited for them is delivered.
    pub(crate) fn worker_connected(&mut self, now_ms: u64, conn: ConnId) {
        let Some(node) = self.cx.net.session_of(conn).and_then(|s| s.node.as_deref()) else {
            return;
        };
        let agents = crate::nodes::served_agents(node.caps(), node.commands());
        if agents.is_empty() {
            return;
        }
        for agent in &agents {
            let list = self.hub.workers.entry(agent.clone()).or_default();
            list.push(conn);
            let role = if list.len() == 1 { "active" } else { "standby" };
            self.cx.net.log(
                now_ms,
                LogLevel::Info,
                format!("agent {agent}: worker {} is {role}", conn.0),
            );
        }
        self.cx.net.health_changed();
        self.deliver_queue(now_ms);
    }

    /// A connection is gone: a worker's runs end with an error, its agents fall to a standby,
    /// and what the connection waited for is forgotten.
    pub(crate) fn conn_closed(&mut self, now_ms: u64, conn: ConnId) {
        let mut was_worker = false;
        let mut notes = Vec::new();
        for (agent, list) in self.hub.workers.iter_mut() {
            if let Some(pos) = list.iter().position(|c| *c == conn) {
                list.remove(pos);
                was_worker = true;
                let next = list.first().map(|c| c.0);
                let message = match next {
                    Some(n) if pos == 0 => format!("agent {agent}: worker {} left; standby {n} takes over", conn.0),
                    _ => format!("agent {agent}: worker {} left", conn.0),
                };
                notes.push(message);
            }
        }
        self.hub.workers.retain(|_, l| !l.is_empty());
        for message in notes {
            self.cx.net.log(now_ms, LogLevel::Info, message);
        }
        if was_worker {
            self.cx.net.health_changed();
            for run_id in ids_where(&self.hub.runs, |r| r.worker == Some(conn)) {
                self.fail_run(now_ms, &run_id, "the agent worker disconnected during the run");
            }
        }
        // Operators waiting on this node's answers get an error.
        for id in ids_where(&self.hub.invokes, |p| p.node_conn == conn) {
            if let Some(p) = self.hub.invokes.remove(&id) {
                let e = ErrorShape::new(ErrorCode::Unavailable, "node disconnected before answering");
                self.cx
                    .net
                    .send_text(p.conn, &ResponseFrame::err(p.request_id, e).encode());
            }
        }
        self.hub.waiters.retain(|w| w.conn != conn);
        self.hub.invokes.retain(|_, p| p.conn != conn);
        self.hub.session_subscribers.remove(&conn);
        self.hub.message_subscribers.remove(&conn);
        // A run whose requester left goes on (others may watch it); an HTTP answer has no reader.
        for run in self.hub.runs.values_mut() {
            let gone = match &run.origin {
                Origin::Chat { conn: c } | Origin::Agent { conn: c, .. } => *c == conn,
                Origin::Http(h) => h.conn == conn,
                // A compaction goes on: its summary still replaces the history.
                Origin::Nobody | Origin::Scheduled | Origin::Channel | Origin::Compaction { .. } => false,
            };
            if gone {
                run.origin = Origin::Nobody;
            }
        }
        // Runs of agents that just lost their last worker wait for the next one.
        self.deliver_queue(now_ms);
    }

    // ----- runs ----------------------------------------------------------------------------

    /// Posts `text` into a session as the agent's message (a scheduled run's result delivered to
    /// the agent's main session), as if a run had answered.
    pub(crate) fn post_message(&mut self, now_ms: u64, session_key: &str, agent_id: &str, text: &str) {
        self.touch_session(now_ms, session_key, agent_id, "cron");
        let mut message = assistant_message(text, now_ms);
        message["stopReason"] = json!("stop");
        self.append_message(now_ms, session_key, message);
        self.session_changed(now_ms, session_key, "message", None);
    }

    /// Accepts a message: records it in the transcript, then hands it to the agent's worker or
    /// queues it. Returns the session id.
    pub(crate) fn start_run(&mut self, now_ms: u64, request: RunRequest) -> Result<String, ErrorShape> {
        let worker = self.hub.active_worker(&request.agent_id);
        if worker.is_none() && self.hub.queue.len() >= QUEUE_LIMIT {
            return Err(ErrorShape::new(
                ErrorCode::Unavailable,
                format!(
                    "agent {} has no worker online and {QUEUE_LIMIT} messages already wait",
                    request.agent_id
                ),
            )
            .retry_after(1000));
        }
        let session_id = self.touch_session(now_ms, &request.session_key, &request.agent_id, request.created_via);
        let mut request = request;
        if request.options.model.is_none() {
            // A session's model override (sessions.patch model) is the model of its runs.
            request.options.model = self
                .hub
                .sessions
                .get(&request.session_key)
                .and_then(|s| s.meta.get("modelOverride"))
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        self.append_message(
            now_ms,
            &request.session_key,
            user_message(&request.message, &request.run_id, now_ms),
        );
        if let Some(s) = self.hub.sessions.get_mut(&request.session_key) {
            s.last_run_id = Some(request.run_id.clone());
            s.status = Some("running");
        }
        let queued = Queued {
            run_id: request.run_id,
            session_key: request.session_key,
            agent_id: request.agent_id,
            message: request.message,
            accepted_at: now_ms,
            timeout_ms: request.timeout_ms,
            options: request.options,
            scheduled: matches!(request.origin, Origin::Scheduled),
            channel: matches!(request.origin, Origin::Channel),
            quiet: request.quiet,
        };
        self.insert_run(&queued, session_id.clone(), request.origin, now_ms);
        // Health shows runs and queues per agent.
        self.cx.net.health_changed();
        self.session_changed(now_ms, &queued.session_key, "run.accepted", Some(&queued.run_id));
        match worker {
            Some(w) => {
                self.send_ack(request.ack);
                self.dispatch(now_ms, &queued.run_id, w);
            }
            None => {
                let line = format!(
                    "agent {}: no worker online, run {} queued ({} waiting)",
                    queued.agent_id,
                    queued.run_id,
                    self.hub.queue.len() + 1
                );
                let position = self.hub.queue.len() + 1;
                let (run_id, agent_id) = (queued.run_id.clone(), queued.agent_id.clone());
                self.hub.queue.push_back(queued);
                self.persist_queue();
                self.send_ack(request.ack);
                self.announce_task(now_ms, &run_id);
                self.cx.net.diagnostic(
                    now_ms,
                    "message.queued",
                    json!({"source": "agent_offline", "queueDepth": position}),
                );
                self.cx.net.log(now_ms, LogLevel::Info, line);
                // The sender learns why nothing streams yet: the message waits for a worker.
                let status = json!({
                    "phase": "queued",
                    "reason": "agent_offline",
                    "agentId": agent_id,
                    "position": position,
                    "message": format!("agent {agent_id} has no worker connected; the message is queued and runs when one connects"),
                });
                self.run_event(now_ms, &run_id, "run_status", status.clone());
                if self
                    .hub
                    .runs
                    .get(&run_id)
                    .is_some_and(|r| matches!(r.origin, Origin::Chat { .. }))
                {
                    self.chat_event(now_ms, &run_id, "status", status);
                }
            }
        }
        self.arm_agents_timer();
        Ok(session_id)
    }

    /// Registers a run (not yet on a worker); its deadline counts from `now_ms`.
    fn insert_run(&mut self, q: &Queued, session_id: String, origin: Origin, now_ms: u64) {
        let mut item = [0u8; 16];
        self.cx.entropy.fill(&mut item);
        // A timeout of 0 means no limit; far enough away never to come, and safe to add to.
        let timeout = if q.timeout_ms == 0 { u64::MAX / 4 } else { q.timeout_ms };
        let run = Run {
            session_key: q.session_key.clone(),
            session_id,
            agent_id: q.agent_id.clone(),
            message: q.message.clone(),
            worker: None,
            origin,
            seq: 0,
            text: String::new(),
            sent: 0,
            recorded: 0,
            last_delta_ms: 0,
            flush_at: None,
            accepted_at: q.accepted_at,
            started_at: now_ms,
            deadline: now_ms.saturating_add(timeout),
            item_id: format!("{}:1", crate::entropy::uuid_v4(item)),
            options: q.options.clone(),
            model: None,
            usage: crate::usage::Tokens::default(),
            quiet: q.quiet,
        };
        self.hub.runs.insert(q.run_id.clone(), run);
    }

    fn announce_task(&mut self, now_ms: u64, run_id: &str) {
        if let Some(payload) = self.hub.task_event(run_id) {
            self.cx.net.broadcast(now_ms, "task", &payload, true, None);
        }
    }

    /// Sends the acknowledgement of an accepted message, after what is to be durable first.
    fn send_ack(&mut self, ack: Option<Ack>) {
        match ack {
            Some(Ack::Ws(conn, text)) => {
                self.cx.net.hold_for_persist(conn);
                self.cx.net.send_text(conn, &text);
            }
            Some(Ack::Raw(conn, bytes)) => {
                self.cx.net.hold_for_persist(conn);
                self.cx.net.push_bytes(conn, bytes);
            }
            None => {}
        }
    }

    fn persist_queue(&mut self) {
        let contents = serde_json::to_string(&json!({"version": 1, "queue": self.hub.queue}))
            .unwrap_or_else(|_| "{\"version\":1,\"queue\":[]}".to_owned());
        self.cx.net.persist_file(QUEUE_FILE, contents);
    }

    /// Delivers queued runs, in order, to agents that now have a worker.
    fn deliver_queue(&mut self, now_ms: u64) {
        if self.hub.queue.is_empty() {
            return;
        }
        let mut kept = VecDeque::new();
        let mut delivered = Vec::new();
        for q in std::mem::take(&mut self.hub.queue) {
            match self.hub.active_worker(&q.agent_id) {
                Some(w) => delivered.push((q, w)),
                None => kept.push_back(q),
            }
        }
        self.hub.queue = kept;
        if delivered.is_empty() {
            return;
        }
        self.persist_queue();
        for (q, worker) in delivered {
            if !self.hub.runs.contains_key(&q.run_id) {
                // Restored after a restart: the run is known again, with nobody waiting.
                let session_id = self.touch_session(now_ms, &q.session_key, &q.agent_id, "run");
                let origin = match (q.scheduled, q.channel) {
                    (true, _) => Origin::Scheduled,
                    (false, true) => Origin::Channel,
                    (false, false) => Origin::Nobody,
                };
                self.insert_run(&q, session_id, origin, now_ms);
            }
            self.dispatch(now_ms, &q.run_id, worker);
        }
        self.arm_agents_timer();
    }

    /// Sends a run to a worker and announces its start.
    fn dispatch(&mut self, now_ms: u64, run_id: &str, worker: ConnId) {
        let node_id = self.cx.net.node_id_of(worker);
        let Some(run) = self.hub.runs.get_mut(run_id) else {
            return;
        };
        run.worker = Some(worker);
        run.started_at = now_ms;
        let history: Vec<Value> = self
            .hub
            .sessions
            .get(&run.session_key)
            .map(|s| {
                // The run's own user message is the last one; the context is what came before.
                let n = s.messages.len().saturating_sub(1);
                s.messages
                    .iter()
                    .take(n)
                    .skip(n.saturating_sub(CONTEXT_MESSAGES))
                    .map(|m| json!({"role": m["role"], "content": message_text(m)}))
                    .collect()
            })
            .unwrap_or_default();
        let timeout_ms = run.deadline.saturating_sub(now_ms).min(u64::MAX / 4);
        let mut params = json!({
            "runId": run_id,
            "sessionKey": run.session_key,
            "sessionId": run.session_id,
            "agentId": run.agent_id,
            "message": run.message,
            "history": history,
        });
        if let (Some(map), Ok(Value::Object(options))) = (params.as_object_mut(), serde_json::to_value(&run.options)) {
            map.extend(options);
        }
        // The worker runs the agent's configured model (reading its provider from the same
        // file) with the tools this session may use.
        let config = self.cx.config;
        if let Some(model) = config.models.model_for_run(&run.agent_id, run.options.model.as_deref()) {
            params["modelRef"] = json!(model.as_string());
            run.model = Some(model);
        }
        let routing = config.session_routing();
        let agent = AgentId::normalize(&run.agent_id);
        params["tools"] = json!(crate::tool_catalog::offered(
            &config.tool_policy,
            &routing,
            &agent,
            &run.session_key
        ));
        let payload = json!({
            "id": run_id,
            "nodeId": node_id,
            "command": WORKER_COMMAND,
            "paramsJSON": params.to_string(),
            "timeoutMs": timeout_ms,
            "idempotencyKey": run_id,
        });
        self.cx
            .net
            .send_event(worker, "node.invoke.request", &to_raw(&payload), false);
        let chat_run = self
            .hub
            .runs
            .get(run_id)
            .is_some_and(|r| matches!(r.origin, Origin::Chat { .. }));
        if chat_run {
            // As for OpenClaw's chat.send runs: a status the UI shows until text arrives.
            self.run_event(now_ms, run_id, "run_status", json!({"phase": "starting_model"}));
            self.chat_event(now_ms, run_id, "status", json!({"phase": "starting_model"}));
        }
        self.run_event(
            now_ms,
            run_id,
            "lifecycle",
            json!({"phase": "start", "startedAt": now_ms}),
        );
        self.announce_task(now_ms, run_id);
        let model = self.hub.runs.get(run_id).and_then(|r| r.model.clone());
        self.cx.net.diagnostic(
            now_ms,
            "run.started",
            json!({"provider": model.as_ref().map(|m| &m.provider), "model": model.as_ref().map(|m| &m.model)}),
        );
        self.session_changed(now_ms, &self.hub.run_session(run_id), "run.started", Some(run_id));
    }

    /// Broadcasts one `agent` event of a run (drawing the run's next seq).
    fn run_event(&mut self, now_ms: u64, run_id: &str, stream: &str, data: Value) {
        let Some(run) = self.hub.runs.get_mut(run_id) else {
            return;
        };
        let payload = run.next_agent_event(run_id, stream, data, now_ms);
        if run.quiet {
            return;
        }
        self.cx
            .net
            .broadcast(now_ms, "agent", &payload, stream == "assistant", None);
    }

    /// An `agent` event of stream `tool`: only the run's requester gets it.
    pub(crate) fn tool_event(&mut self, now_ms: u64, run_id: &str, data: Value) {
        let Some(requester) = self.hub.requester_of(run_id) else {
            return;
        };
        // Only a requester that declared the `tool-events` cap gets them, as with OpenClaw.
        if !self.cx.net.session_of(requester).is_some_and(|s| s.tool_events) {
            return;
        }
        let key = self.hub.run_session(run_id);
        let row = self
            .hub
            .sessions
            .get(&key)
            .map(|s| self.hub.session_row(self.cx.config, &key, s));
        let Some(run) = self.hub.runs.get_mut(run_id) else {
            return;
        };
        let mut payload = run.next_agent_event_value(run_id, "tool", data, now_ms);
        // As OpenClaw's: the session's row rides along, whole and with its fields copied to the
        // top level (the event's own keys win), so a tool card can show where it ran.
        if let (Some(row), Some(event)) = (row, payload.as_object_mut()) {
            for (field, value) in row.as_object().into_iter().flatten() {
                event.entry(field.clone()).or_insert_with(|| value.clone());
            }
            event.insert("session".into(), row);
        }
        self.cx.net.send_event(requester, "agent", &to_raw(&payload), true);
    }

    /// An `agent` event of stream `lifecycle` (waiting for an approval, say), for everyone.
    pub(crate) fn run_lifecycle(&mut self, now_ms: u64, run_id: &str, data: Value) {
        self.run_event(now_ms, run_id, "lifecycle", data);
    }

    /// An `agent` event of stream `approval` (how an approval ended), for everyone.
    pub(crate) fn run_approval(&mut self, now_ms: u64, run_id: &str, data: Value) {
        self.run_event(now_ms, run_id, "approval", data);
    }

    /// An `agent` event of stream `item` (a tool call as a step of the run), for everyone who
    /// sees the run.
    pub(crate) fn run_item(&mut self, now_ms: u64, run_id: &str, data: Value) {
        self.run_event(now_ms, run_id, "item", data);
    }

    /// An `agent` event of stream `command_output` (what a command printed), for everyone.
    pub(crate) fn run_command_output(&mut self, now_ms: u64, run_id: &str, data: Value) {
        self.run_event(now_ms, run_id, "command_output", data);
    }

    /// Broadcasts one `chat` event of a run, with the run's current seq.
    fn chat_event(&mut self, now_ms: u64, run_id: &str, state: &str, extra: Value) {
        let Some(run) = self.hub.runs.get(run_id).filter(|r| !r.quiet) else {
            return;
        };
        let mut payload = json!({
            "runId": run_id,
            "sessionKey": run.session_key,
            "agentId": run.agent_id,
            "seq": run.seq,
            "state": state,
        });
        if let (Some(map), Value::Object(more)) = (payload.as_object_mut(), extra) {
            map.extend(more);
        }
        self.cx
            .net
            .broadcast(now_ms, "chat", &to_raw(&payload), state == "delta", None);
    }

    /// Sends the text held back by the delta throttle as one `chat` delta.
    fn flush_delta(&mut self, now_ms: u64, run_id: &str) {
        let Some(run) = self.hub.runs.get_mut(run_id) else {
            return;
        };
        run.flush_at = None;
        if run.sent >= run.text.len() {
            return;
        }
        let delta = run.text[run.sent..].to_owned();
        run.sent = run.text.len();
        run.last_delta_ms = now_ms;
        let message = assistant_message(&run.text, now_ms);
        self.chat_event(now_ms, run_id, "delta", json!({"deltaText": delta, "message": message}));
    }

    /// Text from a worker.
    fn on_worker_delta(&mut self, now_ms: u64, conn: ConnId, delta: WorkerDelta) -> Result<(), ErrorShape> {
        let Some(run) = self.hub.runs.get_mut(&delta.run_id) else {
            // A run that already ended (aborted, timed out): its late text is dropped.
            return Ok(());
        };
        if run.worker != Some(conn) {
            return Err(ErrorShape::new(
                ErrorCode::InvalidRequest,
                format!("run {} is not assigned to this node", delta.run_id),
            ));
        }
        if run.text.len() + delta.delta.len() > MAX_MESSAGE_BYTES {
            return Err(ErrorShape::new(ErrorCode::InvalidRequest, "reply too long"));
        }
        run.text.push_str(&delta.delta);
        if matches!(run.origin, Origin::Channel) {
            self.hub.channel_progress.insert(delta.run_id.clone());
        }
        let data = json!({"text": run.text, "delta": delta.delta, "itemId": run.item_id});
        let due = run.last_delta_ms + DELTA_INTERVAL_MS;
        let hold = run.last_delta_ms != 0 && now_ms < due;
        if hold && run.flush_at.is_none() {
            run.flush_at = Some(due);
        }
        let run_id = delta.run_id;
        self.run_event(now_ms, &run_id, "assistant", data);
        if !hold {
            self.flush_delta(now_ms, &run_id);
        }
        self.stream_http_delta(&run_id, &delta.delta);
        self.arm_agents_timer();
        Ok(())
    }

    /// A worker's result for a run.
    fn finish_run(&mut self, now_ms: u64, run_id: &str, outcome: Result<String, String>) {
        match outcome {
            Ok(text) => {
                if let Some(run) = self.hub.runs.get_mut(run_id) {
                    if !text.is_empty() && text != run.text {
                        // The result is the whole reply; text not streamed goes out as a last delta.
                        if let Some(rest) = text.strip_prefix(run.text.as_str()) {
                            let rest = rest.to_owned();
                            run.text = text.clone();
                            self.stream_http_delta(run_id, &rest);
                        } else {
                            run.text = text.clone();
                        }
                    }
                }
                self.end_run(now_ms, run_id, "ok", None);
            }
            Err(error) => self.end_run(now_ms, run_id, "error", Some(error)),
        }
    }

    fn fail_run(&mut self, now_ms: u64, run_id: &str, error: &str) {
        self.end_run(now_ms, run_id, "error", Some(error.to_owned()));
    }

    /// Ends a run: the last delta, the lifecycle end, `chat` final/error/aborted, the transcript,
    /// and the answers of whoever waits.
    fn end_run(&mut self, now_ms: u64, run_id: &str, status: &'static str, error: Option<String>) {
        if !self.hub.runs.contains_key(run_id) {
            return;
        }
        if self.hub.queue.iter().any(|q| q.run_id == run_id) {
            self.hub.queue.retain(|q| q.run_id != run_id);
            self.persist_queue();
        }
        let Some(run) = self.hub.runs.get(run_id) else {
            return;
        };
        let started_at = run.started_at;
        let text = run.text.clone();
        // The transcript has the text before the tool calls already, as its own message.
        let rest = text.get(run.recorded..).unwrap_or_default().trim_start().to_owned();
        let session_key = run.session_key.clone();
        let usage = run.usage;
        if let (Some(worker), false) = (run.worker, status == "ok") {
            // The worker may still be streaming from the model or about to call a tool.
            let cancel = to_raw(&json!({"id": run_id, "runId": run_id}));
            self.cx.net.send_event(worker, CANCEL_EVENT, &cancel, false);
        }
        if status != "ok" {
            self.hub.cancelled.push(run_id.to_owned());
        }
        // The reply's message carries what the run used, as OpenClaw's assistant messages do.
        let model = run.model.clone();
        let assistant_message = |text: &str, now_ms: u64| {
            let mut m = assistant_message(text, now_ms);
            if let Some(model) = &model {
                m["provider"] = json!(model.provider);
                m["model"] = json!(model.model);
            }
            if usage.input + usage.output > 0 {
                m["usage"] = json!({"input": usage.input, "output": usage.output, "totalTokens": usage.input + usage.output,
                                    "cost": {"input": usage.input_cost, "output": usage.output_cost, "total": usage.input_cost + usage.output_cost}});
            }
            m
        };
        match status {
            "ok" => {
                self.run_event(
                    now_ms,
                    run_id,
                    "lifecycle",
                    json!({
                        "phase": "end", "startedAt": started_at, "endedAt": now_ms, "aborted": false,
                        "stopReason": "stop", "livenessState": "working", "executionSettled": true,
                        "terminalReply": {"disposition": "visible", "text": text},
                    }),
                );
                // As the reference gateway does: text held back by the throttle goes out after the
                // lifecycle end, as a delta with the final's seq, right before the final.
                self.flush_delta(now_ms, run_id);
                self.chat_event(
                    now_ms,
                    run_id,
                    "final",
                    json!({"stopReason": "stop", "message": assistant_message(&text, now_ms)}),
                );
                self.append_message(now_ms, &session_key, {
                    let mut m = assistant_message(&rest, now_ms);
                    m["stopReason"] = json!("stop");
                    m["__openclaw"] = json!({"runId": run_id});
                    m
                });
            }
            "aborted" => {
                self.run_event(
                    now_ms,
                    run_id,
                    "lifecycle",
                    json!({"phase": "end", "startedAt": started_at, "endedAt": now_ms, "aborted": true,
                           "stopReason": "aborted", "executionSettled": true}),
                );
                self.chat_event(now_ms, run_id, "aborted", json!({}));
                if !rest.is_empty() {
                    self.append_message(now_ms, &session_key, {
                        let mut m = assistant_message(&rest, now_ms);
                        m["stopReason"] = json!("aborted");
                        m["__openclaw"] = json!({"runId": run_id});
                        m
                    });
                }
            }
            _ => {
                let message = error.clone().unwrap_or_else(|| "the run failed".to_owned());
                self.run_event(
                    now_ms,
                    run_id,
                    "lifecycle",
                    json!({"phase": "error", "error": message, "aborted": false, "livenessState": "blocked",
                           "startedAt": started_at, "endedAt": now_ms, "executionSettled": true}),
                );
                let kind = if message.contains("timed out") {
                    "timeout"
                } else {
                    "unknown"
                };
                self.chat_event(
                    now_ms,
                    run_id,
                    "error",
                    json!({"errorMessage": message, "errorKind": kind}),
                );
                self.append_message(now_ms, &session_key, {
                    let mut m = assistant_message(&rest, now_ms);
                    m["stopReason"] = json!("error");
                    m["errorMessage"] = json!(message);
                    m["__openclaw"] = json!({"runId": run_id});
                    m
                });
            }
        }
        let Some(run) = self.hub.runs.remove(run_id) else {
            return;
        };
        let finished = Finished {
            status,
            ended_at: now_ms,
            text: run.text.clone(),
            error,
            session_key: run.session_key.clone(),
            agent_id: run.agent_id.clone(),
            duration_ms: now_ms.saturating_sub(run.accepted_at),
            session_id: run.session_id.clone(),
        };
        if let Some(s) = self.hub.sessions.get_mut(&run.session_key) {
            s.status = Some(if status == "ok" { "done" } else { "failed" });
            s.updated_at = now_ms;
        }
        self.cx.net.diagnostic(
            now_ms,
            "run.completed",
            json!({
                "provider": run.model.as_ref().map(|m| &m.provider), "model": run.model.as_ref().map(|m| &m.model),
                "durationMs": finished.duration_ms, "outcome": finished_task(run_id, &finished)["status"],
            }),
        );
        // The task's end is announced before the answer, as captured.
        let task = to_raw(&json!({"action": "upserted", "task": finished_task(run_id, &finished)}));
        self.cx.net.broadcast(now_ms, "task", &task, true, None);
        self.hub.ended.push((run_id.to_owned(), finished.clone()));
        self.answer_origin(run_id, run.origin, &finished);
        let waiting: Vec<Waiter> = {
            let (hit, rest): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(&mut self.hub.waiters)
                .into_iter()
                .partition(|w| w.run_id == run_id);
            self.hub.waiters = rest;
            hit
        };
        for w in waiting {
            let payload = wait_payload(run_id, &finished);
            self.cx
                .net
                .send_text(w.conn, &ResponseFrame::ok(w.request_id, &payload).encode());
        }
        self.hub.finished.insert(run_id.to_owned(), finished);
        self.hub.finished_order.push_back(run_id.to_owned());
        while self.hub.finished_order.len() > FINISHED_KEPT {
            if let Some(old) = self.hub.finished_order.pop_front() {
                self.hub.finished.remove(&old);
            }
        }
        self.session_changed(now_ms, &session_key, "run.ended", Some(run_id));
        self.cx.net.health_changed();
    }

    /// The answer owed to whoever started the run.
    fn answer_origin(&mut self, run_id: &str, origin: Origin, finished: &Finished) {
        match origin {
            Origin::Nobody | Origin::Chat { .. } => {}
            Origin::Agent { conn, request_id } => {
                let frame = match finished.status {
                    "ok" => ResponseFrame::ok(request_id, &agent_final_payload(run_id, finished)),
                    status => ResponseFrame::err(
                        request_id,
                        ErrorShape::new(
                            ErrorCode::Unavailable,
                            finished.error.clone().unwrap_or_else(|| format!("run {status}")),
                        )
                        .with_details(json!({"runId": run_id, "status": status})),
                    ),
                };
                self.cx.net.send_text(conn, &frame.encode());
            }
            Origin::Http(http) => self.finish_http_run(run_id, http, finished),
            Origin::Scheduled => self.hub.scheduled_done.push((run_id.to_owned(), finished.clone())),
            Origin::Channel => {}
            Origin::Compaction { conn, request_id } => self.finish_compaction(conn, request_id, finished),
        }
    }

    /// `sessions.compact {key, maxLines?}`: with `maxLines`, the session keeps its last lines;
    /// without, one quiet turn of the agent summarises it and the summary takes the place of
    /// the history before the latest exchange.
    fn sessions_compact(&mut self, now_ms: u64, conn: ConnId, request: &RequestFrame) -> Reply {
        let m = "sessions.compact";
        let p: Value = match serde_json::from_str(request.params_text()) {
            Ok(p) => p,
            Err(e) => return Reply::Now(Err(invalid(m, e))),
        };
        let Some(raw) = p.get("key").and_then(Value::as_str) else {
            return Reply::Now(Err(invalid(m, "key is required")));
        };
        let (key, agent) = match self.hub.session_key_for(self.cx.config, Some(raw), None) {
            Ok(k) => k,
            Err(e) => return Reply::Now(Err(e)),
        };
        let max_lines = match p.get("maxLines") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64().filter(|n| *n >= 1) {
                Some(n) => Some(n as usize),
                None => return Reply::Now(Err(invalid(m, "maxLines must be a whole number of at least 1"))),
            },
        };
        let lines = self.hub.sessions.get(&key).map_or(0, |s| s.messages.len());
        let too_small =
            json!({"ok": false, "key": key, "compacted": false, "reason": "Nothing to compact (session too small)"});
        if lines < 2 || max_lines.is_some_and(|n| lines <= n) {
            return Reply::value(Ok(too_small));
        }
        if self.hub.runs.values().any(|r| r.session_key == key) {
            return Reply::Now(Err(ErrorShape::new(
                ErrorCode::Unavailable,
                format!("session {key} has a run under way; compact it once the run has ended"),
            )
            .retry_after(1000)));
        }
        if let Some(n) = max_lines {
            let kept: Vec<Value> = self.hub.sessions.get(&key).map_or_else(Vec::new, |s| {
                s.messages.iter().skip(s.messages.len() - n).cloned().collect()
            });
            self.rewrite_session(now_ms, &key, kept);
            return Reply::value(Ok(json!({"ok": true, "key": key, "compacted": true, "kept": n})));
        }
        let run_id = self.cx.random_uuid();
        let started = self.start_run(
            now_ms,
            RunRequest {
                run_id,
                session_key: key,
                agent_id: agent,
                message: COMPACT_PROMPT.to_owned(),
                origin: Origin::Compaction {
                    conn,
                    request_id: request.id.clone(),
                },
                options: RunOptions::default(),
                timeout_ms: DEFAULT_RUN_TIMEOUT_MS,
                quiet: true,
                created_via: "compact",
                ack: None,
            },
        );
        match started {
            Ok(_) => Reply::Later,
            Err(e) => Reply::Now(Err(e)),
        }
    }

    /// The end of a summary turn: its reply becomes the session's summary, the latest exchange
    /// before the request stays, and the request and reply themselves go.
    fn finish_compaction(&mut self, conn: ConnId, request_id: String, finished: &Finished) {
        let key = finished.session_key.clone();
        let Some(s) = self.hub.sessions.get(&key) else { return };
        // The last two messages are the summary request and its reply.
        let history: Vec<Value> = s
            .messages
            .iter()
            .take(s.messages.len().saturating_sub(2))
            .cloned()
            .collect();
        let tokens_before = s.usage.tokens().0 + s.usage.tokens().1;
        let now_ms = finished.ended_at;
        if finished.status != "ok" || finished.text.trim().is_empty() {
            self.rewrite_session(now_ms, &key, history);
            let why = finished
                .error
                .clone()
                .unwrap_or_else(|| format!("the summary turn ended {}", finished.status));
            let e = ErrorShape::new(ErrorCode::Unavailable, format!("compaction failed: {why}"));
            self.cx.net.send_text(conn, &ResponseFrame::err(request_id, e).encode());
            return;
        }
        let (read, modified) = files_touched(&history);
        let kept_from = history.len().saturating_sub(COMPACT_KEEP);
        let summary = json!({
            "role": "assistant",
            "content": [{"type": "text", "text": format!("Summary of the conversation so far:\n\n{}", finished.text.trim())}],
            "timestamp": now_ms,
            "stopReason": "stop",
            "__openclaw": {"compaction": true},
        });
        let first_kept = history
            .get(kept_from)
            .map(|m| m["__openclaw"]["id"].clone())
            .unwrap_or(Value::Null);
        let mut messages = vec![summary];
        messages.extend(history.into_iter().skip(kept_from));
        self.rewrite_session(now_ms, &key, messages);
        let payload = json!({
            "ok": true, "key": key, "compacted": true,
            "result": {
                "summary": finished.text.trim(), "firstKeptEntryId": first_kept, "tokensBefore": tokens_before,
                "details": {"readFiles": read, "modifiedFiles": modified},
            },
        });
        self.cx
            .net
            .send_text(conn, &ResponseFrame::ok(request_id, &payload).encode());
    }

    /// Replaces a session's history with `messages`, in memory and on disk (the transcript is
    /// written again whole, in one step).
    fn rewrite_session(&mut self, now_ms: u64, key: &str, messages: Vec<Value>) {
        let Some(s) = self.hub.sessions.get_mut(key) else {
            return;
        };
        let header = json!({
            "type": "session", "key": key, "sessionId": s.session_id, "agentId": s.agent_id,
            "createdAt": s.created_at, "createdVia": s.created_via,
        });
        let mut contents = header.to_string();
        contents.push('\n');
        if !s.meta.is_empty() {
            contents.push_str(&json!({"type": "session.patch", "patch": s.meta, "ts": now_ms}).to_string());
            contents.push('\n');
        }
        for m in &messages {
            contents.push_str(&json!({"type": "message", "message": m}).to_string());
            contents.push('\n');
        }
        s.total = messages.len() as u64;
        s.messages = messages.into();
        s.updated_at = now_ms;
        let file = transcript_file(&s.session_id);
        self.cx.net.push_output(Output::ReplaceTranscript { file, contents });
        self.session_changed(now_ms, key, "compacted", None);
    }

    /// A caller stops a session's runs (`chat.abort`).
    fn abort_runs(&mut self, now_ms: u64, session_key: &str, run_id: Option<&str>) -> Vec<String> {
        let ids: Vec<String> = self
            .hub
            .runs
            .iter()
            .filter(|(id, r)| r.session_key == session_key && run_id.is_none_or(|want| want == id.as_str()))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            self.end_run(now_ms, id, "aborted", None);
        }
        ids
    }

    // ----- sessions ------------------------------------------------------------------------

    /// Creates the session if new; returns its id.
    fn touch_session(&mut self, now_ms: u64, key: &str, agent_id: &str, created_via: &str) -> String {
        if let Some(s) = self.hub.sessions.get_mut(key) {
            s.updated_at = now_ms;
            return s.session_id.clone();
        }
        let mut b = [0u8; 16];
        self.cx.entropy.fill(&mut b);
        let session_id = crate::entropy::uuid_v4(b);
        let header = json!({
            "type": "session", "key": key, "sessionId": session_id, "agentId": agent_id,
            "createdAt": now_ms, "createdVia": created_via,
        });
        self.cx.net.push_output(Output::AppendTranscript {
            file: transcript_file(&session_id),
            line: header.to_string(),
        });
        self.hub.sessions.insert(
            key.to_owned(),
            ChatSession {
                session_id: session_id.clone(),
                agent_id: agent_id.to_owned(),
                created_at: now_ms,
                updated_at: now_ms,
                created_via: created_via.to_owned(),
                messages: VecDeque::new(),
                total: 0,
                last_run_id: None,
                status: None,
                usage: crate::session_usage::SessionUsage::default(),
                meta: Map::new(),
            },
        );
        self.session_changed(now_ms, key, "created", None);
        session_id
    }

    /// Records a message: its id and place in the session go in `__openclaw` (`id`, `seq`), as
    /// OpenClaw's transcripts have them; clients use them to merge history and live events.
    fn append_message(&mut self, now_ms: u64, key: &str, mut message: Value) {
        let id = self.cx.random_uuid();
        let Some(s) = self.hub.sessions.get_mut(key) else {
            return;
        };
        s.updated_at = now_ms;
        s.total += 1;
        let seq = s.total;
        let agent_id = s.agent_id.clone();
        if !message["__openclaw"].is_object() {
            message["__openclaw"] = json!({});
        }
        message["__openclaw"]["id"] = json!(id);
        message["__openclaw"]["seq"] = json!(seq);
        s.usage.record(&message);
        let line = json!({"type": "message", "message": message}).to_string();
        let file = transcript_file(&s.session_id);
        s.messages.push_back(message.clone());
        while s.messages.len() > MEMORY_MESSAGES {
            s.messages.pop_front();
        }
        self.cx.net.push_output(Output::AppendTranscript { file, line });
        let targets: Vec<ConnId> = self
            .hub
            .message_subscribers
            .iter()
            .filter(|(_, keys)| keys.contains(key))
            .map(|(c, _)| *c)
            .collect();
        if !targets.is_empty() {
            let payload = to_raw(&json!({
                "sessionKey": key, "agentId": agent_id, "message": message, "messageId": id, "messageSeq": seq,
                "ts": now_ms,
            }));
            for conn in targets {
                self.cx.net.send_event(conn, "session.message", &payload, true);
            }
        }
    }

    fn session_changed(&mut self, now_ms: u64, key: &str, phase: &str, run_id: Option<&str>) {
        if self.hub.session_subscribers.is_empty() {
            return;
        }
        // Subscribers (the Control UI) read the session's row from the event itself.
        let session = self
            .hub
            .sessions
            .get(key)
            .map(|s| self.hub.session_row(self.cx.config, key, s));
        let agent_id = session.as_ref().map(|s| s["agentId"].clone());
        let payload = to_raw(&json!({
            "sessionKey": key, "agentId": agent_id, "phase": phase, "reason": phase, "runId": run_id, "ts": now_ms,
            "session": session,
        }));
        let targets: Vec<ConnId> = self.hub.session_subscribers.iter().copied().collect();
        for conn in targets {
            self.cx.net.send_event(conn, "sessions.changed", &payload, true);
        }
    }

    /// Prunes sessions idle longer than the configured time (their transcripts go too).
    pub(crate) fn prune_idle_sessions(&mut self, now_ms: u64) -> usize {
        let limit = self.cx.config.session_prune_after_ms;
        if limit == 0 {
            return 0;
        }
        let idle: Vec<String> = self
            .hub
            .sessions
            .iter()
            .filter(|(k, s)| {
                now_ms.saturating_sub(s.updated_at) > limit && !self.hub.runs.values().any(|r| &r.session_key == *k)
            })
            .map(|(k, _)| k.clone())
            .collect();
        let pruned = idle.len();
        for key in idle {
            self.cx
                .net
                .log(now_ms, LogLevel::Info, format!("pruned idle session {key}"));
            self.remove_session(now_ms, &key);
        }
        pruned
    }

    fn remove_session(&mut self, now_ms: u64, key: &str) -> bool {
        let Some(s) = self.hub.sessions.remove(key) else {
            return false;
        };
        self.cx.net.push_output(Output::RemoveTranscript {
            file: transcript_file(&s.session_id),
        });
        self.session_changed(now_ms, key, "deleted", None);
        true
    }

    fn arm_agents_timer(&mut self) {
        let next = self
            .hub
            .runs
            .values()
            .flat_map(|r| [r.flush_at, Some(r.deadline)])
            .flatten()
            .chain(self.hub.waiters.iter().map(|w| w.deadline))
            .chain(self.hub.invokes.values().map(|p| p.deadline))
            .min();
        if let Some(at) = next {
            if self.hub.timer_at.is_none_or(|t| at < t) {
                self.hub.timer_at = Some(at);
                self.cx.net.schedule(at, Timer::Agents);
            }
        }
    }

    pub(crate) fn on_timer(&mut self, now_ms: u64) {
        if self.hub.timer_at.is_some_and(|t| t <= now_ms) {
            self.hub.timer_at = None;
        }
        for id in ids_where(&self.hub.runs, |r| r.flush_at.is_some_and(|t| t <= now_ms)) {
            self.flush_delta(now_ms, &id);
        }
        for id in ids_where(&self.hub.runs, |r| r.deadline <= now_ms) {
            self.fail_run(now_ms, &id, "the run timed out");
        }
        let (due, rest): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(&mut self.hub.waiters)
            .into_iter()
            .partition(|w| w.deadline <= now_ms);
        self.hub.waiters = rest;
        for w in due {
            let payload = json!({"runId": w.run_id, "status": "timeout"});
            self.cx
                .net
                .send_text(w.conn, &ResponseFrame::ok(w.request_id, &payload).encode());
        }
        for id in ids_where(&self.hub.invokes, |p| p.deadline <= now_ms) {
            if let Some(p) = self.hub.invokes.remove(&id) {
                let e = ErrorShape::new(
                    ErrorCode::Unavailable,
                    format!("node {} did not answer {} in time", p.node_id, p.command),
                )
                .retry_after(1000);
                self.cx
                    .net
                    .send_text(p.conn, &ResponseFrame::err(p.request_id, e).encode());
            }
        }
        self.arm_agents_timer();
    }

    /// The model a session's runs use (its override, else its agent's), as the answers name it.
    fn resolved_model(&self, key: &str, agent: &str) -> Value {
        let override_model = self
            .hub
            .sessions
            .get(key)
            .and_then(|s| s.meta.get("modelOverride"))
            .and_then(Value::as_str);
        match self.cx.config.models.model_for_run(agent, override_model) {
            Some(m) => json!({"modelProvider": m.provider, "model": m.model}),
            // Without a configured model the agent's worker is its model.
            None => json!({"modelProvider": "clawgate", "model": agent}),
        }
    }

    /// The parent a session's entry names: its agent's main session, unless it is that one.
    fn parent_of(&self, key: &str, agent: &str) -> Option<String> {
        let main = self
            .cx
            .config
            .session_routing()
            .main_session(Some(&AgentId::normalize(agent)));
        (main != key).then_some(main)
    }

    /// Applies a checked `sessions.patch` change to a session (made if it does not exist yet) and
    /// keeps it in the transcript.
    fn patch_session(&mut self, now_ms: u64, key: &str, agent: &str, patch: Map<String, Value>, via: &str) {
        self.touch_session(now_ms, key, agent, via);
        let Some(s) = self.hub.sessions.get_mut(key) else {
            return;
        };
        merge_meta(&mut s.meta, &patch);
        s.updated_at = now_ms;
        let line = json!({"type": "session.patch", "patch": patch, "ts": now_ms});
        let file = transcript_file(&s.session_id);
        self.cx.net.push_output(Output::AppendTranscript {
            file,
            line: line.to_string(),
        });
        self.session_changed(now_ms, key, "patch", None);
    }

    /// What a `sessions.patch` or `sessions.create` request asks to change, checked.
    fn session_patch_of(&self, method: &str, now_ms: u64, p: &Value) -> Result<Map<String, Value>, ErrorShape> {
        if RETIRED.iter().any(|f| p.get(*f).is_some()) {
            return Err(ErrorShape::new(
                ErrorCode::InvalidRequest,
                "execSecurity/execAsk are retired; set permissionMode (read-only|guarded|workspace|full) instead, or use /exec for this run only.",
            ));
        }
        let current_mark = p
            .get("key")
            .and_then(Value::as_str)
            .and_then(|k| self.hub.session_key_for(self.cx.config, Some(k), None).ok())
            .and_then(|(key, _)| {
                self.hub
                    .sessions
                    .get(&key)
                    .and_then(|s| s.meta.get("markedUnreadAt").cloned())
            })
            .unwrap_or(Value::Null);
        let expected_mark_changed = p.get("expectedMarkedUnreadAt").is_some_and(|e| *e != current_mark);
        let mut patch = Map::new();
        for (field, value) in p.as_object().into_iter().flatten() {
            match field.as_str() {
                "key" | "agentId" => {}
                "label" => match value {
                    Value::Null => {
                        patch.insert("label".into(), Value::Null);
                    }
                    Value::String(l) if !l.trim().is_empty() && l.chars().count() <= 200 => {
                        patch.insert("label".into(), json!(l.trim()));
                    }
                    _ => return Err(invalid(method, "label must be a text of 1 to 200 characters, or null")),
                },
                "unread" => match value.as_bool() {
                    Some(true) => {
                        patch.insert("markedUnreadAt".into(), json!(now_ms));
                    }
                    // Marking read names the unread mark it saw: a mark set since stays.
                    Some(false) if expected_mark_changed => {}
                    Some(false) => {
                        patch.insert("lastReadAt".into(), json!(now_ms));
                    }
                    None => return Err(invalid(method, "unread must be true or false")),
                },
                "expectedMarkedUnreadAt" => {
                    if !(value.is_null() || value.is_u64()) {
                        return Err(invalid(method, "expectedMarkedUnreadAt must be milliseconds or null"));
                    }
                }
                "pinned" | "archived" => {
                    let on = value
                        .as_bool()
                        .ok_or_else(|| invalid(method, format!("{field} must be true or false")))?;
                    patch.insert(field.clone(), json!(on));
                }
                "model" => match value {
                    Value::Null => {
                        patch.insert("modelOverride".into(), Value::Null);
                    }
                    Value::String(m) => {
                        let known = crate::models::ModelRef::parse(m)
                            .filter(|r| self.cx.config.models.has_provider(&r.provider))
                            .ok_or_else(|| {
                                invalid(
                                    method,
                                    format!("model {m:?} is not provider/model of a configured provider"),
                                )
                            })?;
                        patch.insert("modelOverride".into(), json!(known.as_string()));
                    }
                    _ => return Err(invalid(method, "model must be provider/model, or null")),
                },
                "thinkingLevel" => {
                    if !(value.is_null() || value == "off") {
                        return Err(invalid(
                            method,
                            "Clawgate runs models without thinking levels; only off is available",
                        ));
                    }
                }
                other if PATCHABLE.contains(&other) => {}
                other => {
                    return Err(invalid(
                        method,
                        format!("{other} is not a session field Clawgate keeps"),
                    ))
                }
            }
        }
        Ok(patch)
    }

    fn sessions_send(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        request: &RequestFrame,
    ) -> Result<Option<Value>, ErrorShape> {
        let m = "sessions.send";
        let p: Value = serde_json::from_str(request.params_text()).map_err(|e| invalid(m, e))?;
        let (raw, key, agent) = self.key_param(m, &p)?;
        let main = self
            .cx
            .config
            .session_routing()
            .main_session(Some(&AgentId::normalize(&agent)));
        if key != main && !self.hub.sessions.contains_key(&key) {
            return Err(ErrorShape::new(
                ErrorCode::InvalidRequest,
                format!("session not found: {raw}"),
            ));
        }
        let idempotency_key = match p.get("idempotencyKey").and_then(Value::as_str).map(str::trim) {
            Some(k) if !k.is_empty() => k.to_owned(),
            _ => self.cx.random_uuid(),
        };
        let mut params = json!({"sessionKey": key, "message": p.get("message").cloned().unwrap_or(Value::Null), "idempotencyKey": idempotency_key});
        if let Some(t) = p.get("timeoutMs") {
            params["timeoutMs"] = t.clone();
        }
        let forwarded = RequestFrame::new(request.id.clone(), "chat.send", &params);
        self.chat_send(now_ms, conn, &forwarded)
    }

    /// A request's `key` as given, canonical, and its agent.
    fn key_param<'p>(&self, m: &str, p: &'p Value) -> Result<(&'p str, String, String), ErrorShape> {
        let raw = p
            .get("key")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(m, "key is required"))?;
        let (key, agent) = self.hub.session_key_for(self.cx.config, Some(raw), None)?;
        Ok((raw, key, agent))
    }

    /// `sessions.patch {key, label?, unread?, pinned?, archived?, model?, thinkingLevel?}`.
    fn sessions_patch(&mut self, now_ms: u64, request: &RequestFrame) -> Result<Value, ErrorShape> {
        let m = "sessions.patch";
        let p: Value = serde_json::from_str(request.params_text()).map_err(|e| invalid(m, e))?;
        let (_, key, agent) = self.key_param(m, &p)?;
        let patch = self.session_patch_of(m, now_ms, &p)?;
        self.patch_session(now_ms, &key, &agent, patch, "operator");
        self.session_answer(&key, &agent, json!({}))
    }

    /// `sessions.create {key?, agentId?, label?}`: a new, empty session.
    fn sessions_create(&mut self, now_ms: u64, request: &RequestFrame) -> Result<Value, ErrorShape> {
        let m = "sessions.create";
        let p: Value = serde_json::from_str(request.params_text()).map_err(|e| invalid(m, e))?;
        if p.get("message").is_some_and(|v| !v.is_null()) {
            return Err(invalid(
                m,
                "message is not taken here; create the session, then chat.send to it",
            ));
        }
        let agent_param = p.get("agentId").and_then(Value::as_str);
        let raw = match p.get("key").and_then(Value::as_str) {
            Some(k) => k.to_owned(),
            None => {
                let agent = self.hub.known_agent(self.cx.config, agent_param)?;
                format!("agent:{}:{}", agent.as_str(), self.cx.random_uuid())
            }
        };
        let (key, agent) = self.hub.session_key_for(self.cx.config, Some(&raw), agent_param)?;
        if self.hub.sessions.contains_key(&key) {
            return Err(ErrorShape::new(
                ErrorCode::InvalidRequest,
                format!("session already exists: {key}"),
            ));
        }
        let patch = self.session_patch_of(m, now_ms, &p)?;
        self.patch_session(now_ms, &key, &agent, patch, "operator");
        let session_id = self.hub.sessions.get(&key).map(|s| s.session_id.clone());
        self.session_answer(&key, &agent, json!({"sessionId": session_id, "runStarted": false}))
    }

    fn session_answer(&self, key: &str, agent: &str, extra: Value) -> Result<Value, ErrorShape> {
        let parent = self.parent_of(key, agent);
        let s = self
            .hub
            .sessions
            .get(key)
            .ok_or_else(|| ErrorShape::new(ErrorCode::Unavailable, format!("session {key} is gone")))?;
        let mut resolved = self.resolved_model(key, agent);
        resolved["agentRuntime"] = json!({"id": "clawgate-worker", "source": "implicit"});
        resolved["runtimeSelectionLocked"] = json!(false);
        let mut answer = json!({
            "ok": true,
            "path": format!("{}/{}", self.cx.config.state_dir, transcript_file(&s.session_id)),
            "key": key,
            "entry": s.entry(parent.as_deref()),
            "resolved": resolved,
        });
        if let (Some(map), Value::Object(more)) = (answer.as_object_mut(), extra) {
            map.extend(more);
        }
        Ok(answer)
    }

    /// Methods of this module; `None` means the answer goes out later (or went out already).
    pub(crate) fn call(&mut self, now_ms: u64, conn: ConnId, request: &RequestFrame) -> Reply {
        let method = request.method.as_str();
        let result = match method {
            // These may answer later.
            "chat.send" => return Reply::deferred(self.chat_send(now_ms, conn, request)),
            "agent" => return Reply::deferred(self.agent_call(now_ms, conn, request)),
            "agent.wait" => return Reply::deferred(self.agent_wait(now_ms, conn, request)),
            "chat.history" => self.hub.chat_history(self.cx.config, request),
            "chat.abort" => (|| {
                let p: ChatAbortParams = request.parse_params().map_err(|e| invalid(method, e))?;
                let (key, _) = self.hub.session_key_for(self.cx.config, Some(&p.session_key), None)?;
                let ids = self.abort_runs(now_ms, &key, p.run_id.as_deref());
                Ok(json!({"ok": true, "aborted": !ids.is_empty(), "runIds": ids}))
            })(),
            "agents.list" => Ok(self.hub.agents_list(self.cx.config)),
            "sessions.patch" => self.sessions_patch(now_ms, request),
            "sessions.compact" => return self.sessions_compact(now_ms, conn, request),
            "sessions.preview" => self.hub.sessions_preview(self.cx.config, now_ms, request),
            "sessions.cleanup" => {
                let pruned = self.prune_idle_sessions(now_ms);
                Ok(json!({"ok": true, "mode": "enforce", "removed": pruned,
                          "pruneAfterMs": self.cx.config.session_prune_after_ms}))
            }
            // chat.send on a session that exists (or an agent's main session).
            "sessions.send" => return Reply::deferred(self.sessions_send(now_ms, conn, request)),
            "sessions.create" => self.sessions_create(now_ms, request),
            "sessions.abort" => (|| {
                let p: SessionKeyParams = request.parse_params().map_err(|e| invalid(method, e))?;
                let (key, _) = self.hub.session_key_for(self.cx.config, Some(&p.key), None)?;
                let ids = self.abort_runs(now_ms, &key, None);
                Ok(match ids.first() {
                    Some(id) => json!({"ok": true, "abortedRunId": id, "status": "aborted"}),
                    None => json!({"ok": true, "abortedRunId": null, "status": "no-active-run"}),
                })
            })(),
            "sessions.get" => (|| {
                let p: SessionKeyParams = request.parse_params().map_err(|e| invalid(method, e))?;
                let (key, _) = self.hub.session_key_for(self.cx.config, Some(&p.key), None)?;
                let limit = p.limit.unwrap_or(200).clamp(1, 1000);
                let messages: Vec<&Value> = self.hub.sessions.get(&key).map_or_else(Vec::new, |s| {
                    s.messages.iter().skip(s.messages.len().saturating_sub(limit)).collect()
                });
                Ok(json!({"key": key, "messages": messages}))
            })(),
            "sessions.resolve" => (|| {
                let p: SessionKeyParams = request.parse_params().map_err(|e| invalid(method, e))?;
                let (key, agent) = self.hub.session_key_for(self.cx.config, Some(&p.key), None)?;
                Ok(json!({"ok": true, "key": key, "agentId": agent}))
            })(),
            "sessions.reset" => (|| {
                let p: SessionKeyParams = request.parse_params().map_err(|e| invalid(method, e))?;
                let (key, agent) = self.hub.session_key_for(self.cx.config, Some(&p.key), None)?;
                self.abort_runs(now_ms, &key, None);
                self.remove_session(now_ms, &key);
                let session_id = self.touch_session(now_ms, &key, &agent, "reset");
                Ok(json!({"ok": true, "key": key, "entry": {"sessionId": session_id, "updatedAt": now_ms}}))
            })(),
            "sessions.delete" => (|| {
                let p: SessionKeyParams = request.parse_params().map_err(|e| invalid(method, e))?;
                let (key, _) = self.hub.session_key_for(self.cx.config, Some(&p.key), None)?;
                self.abort_runs(now_ms, &key, None);
                let deleted = self.remove_session(now_ms, &key);
                Ok(json!({"ok": true, "key": key, "deleted": deleted}))
            })(),
            "sessions.subscribe" => {
                self.hub.session_subscribers.insert(conn);
                Ok(json!({"subscribed": true}))
            }
            "sessions.unsubscribe" => {
                self.hub.session_subscribers.remove(&conn);
                Ok(json!({"subscribed": false}))
            }
            "sessions.messages.subscribe" | "sessions.messages.unsubscribe" => (|| {
                let p: SessionKeyParams = request.parse_params().map_err(|e| invalid(method, e))?;
                let (key, _) = self.hub.session_key_for(self.cx.config, Some(&p.key), None)?;
                let on = method == "sessions.messages.subscribe";
                let keys = self.hub.message_subscribers.entry(conn).or_default();
                if on {
                    keys.insert(key.clone());
                } else {
                    keys.remove(&key);
                }
                Ok(json!({"subscribed": on, "key": key}))
            })(),
            "usage.status" => Ok(crate::usage::status_payload(now_ms)),
            "sessions.usage" => self.hub.sessions_usage_payload(now_ms, request),
            "usage.cost" => Ok(self.hub.usage.cost_payload(now_ms, 30)),
            "node.invoke" => return Reply::deferred(self.node_invoke(now_ms, conn, request)),
            "node.invoke.result" => self.node_invoke_result(now_ms, conn, request),
            "node.event" => self.node_event(now_ms, conn, request),
            other => Err(ErrorShape::unknown_method(other)),
        };
        Reply::value(result)
    }

    fn chat_send(&mut self, now_ms: u64, conn: ConnId, request: &RequestFrame) -> Result<Option<Value>, ErrorShape> {
        let p: ChatSendParams = request.parse_params().map_err(|e| invalid("chat.send", e))?;
        check_message(
            "chat.send",
            &p.idempotency_key,
            &p.message,
            "message or attachment required",
        )?;
        let run_id = p.idempotency_key;
        if self.hub.runs.contains_key(&run_id) {
            return Ok(Some(json!({"runId": run_id, "status": "in_flight"})));
        }
        if self.hub.finished.contains_key(&run_id) {
            return Ok(Some(json!({"runId": run_id, "status": "started"})));
        }
        let ack = ResponseFrame::ok(request.id.clone(), &json!({"runId": run_id, "status": "started"})).encode();
        let (key, agent) = self
            .hub
            .session_key_for(self.cx.config, Some(&p.session_key), p.agent_id.as_deref())?;
        self.start_run(
            now_ms,
            RunRequest {
                run_id: run_id.clone(),
                session_key: key,
                agent_id: agent,
                message: p.message,
                origin: Origin::Chat { conn },
                options: RunOptions::default(),
                timeout_ms: p.timeout_ms.unwrap_or(DEFAULT_RUN_TIMEOUT_MS),
                quiet: false,
                created_via: "operator",
                ack: Some(Ack::Ws(conn, ack)),
            },
        )?;
        Ok(None)
    }

    fn agent_call(&mut self, now_ms: u64, conn: ConnId, request: &RequestFrame) -> Result<Option<Value>, ErrorShape> {
        let p: AgentParams = request.parse_params().map_err(|e| invalid("agent", e))?;
        check_message("agent", &p.idempotency_key, &p.message, "message required")?;
        let run_id = p.idempotency_key;
        if let Some(run) = self.hub.runs.get(&run_id) {
            return Ok(Some(json!({
                "runId": run_id, "status": "in_flight", "sessionKey": run.session_key, "agentId": run.agent_id,
            })));
        }
        if let Some(done) = self.hub.finished.get(&run_id) {
            // A repeat of a finished run gets its outcome again, not a second run.
            return match done.status {
                "ok" => Ok(Some(agent_final_payload(&run_id, done))),
                status => Err(ErrorShape::new(
                    ErrorCode::Unavailable,
                    done.error.clone().unwrap_or_else(|| format!("run {status}")),
                )
                .with_details(json!({"runId": run_id, "status": status}))),
            };
        }
        let (key, agent) = self
            .hub
            .session_key_for(self.cx.config, p.session_key.as_deref(), p.agent_id.as_deref())?;
        let accepted = json!({
            "runId": run_id, "sessionKey": key, "agentId": agent, "status": "accepted", "acceptedAt": now_ms,
        });
        self.start_run(
            now_ms,
            RunRequest {
                run_id: run_id.clone(),
                session_key: key,
                agent_id: agent,
                message: p.message,
                origin: Origin::Agent {
                    conn,
                    request_id: request.id.clone(),
                },
                options: RunOptions::default(),
                timeout_ms: p.timeout.map_or(DEFAULT_RUN_TIMEOUT_MS, |s| s.saturating_mul(1000)),
                quiet: false,
                created_via: "run",
                ack: Some(Ack::Ws(conn, ResponseFrame::ok(request.id.clone(), &accepted).encode())),
            },
        )?;
        // Accepted: the final answer follows the run's events.
        Ok(None)
    }

    fn agent_wait(&mut self, now_ms: u64, conn: ConnId, request: &RequestFrame) -> Result<Option<Value>, ErrorShape> {
        let p: AgentWaitParams = request.parse_params().map_err(|e| invalid("agent.wait", e))?;
        if let Some(done) = self.hub.finished.get(&p.run_id) {
            return Ok(Some(wait_payload(&p.run_id, done)));
        }
        let timeout = p.timeout_ms.unwrap_or(30_000).min(24 * 3_600_000);
        if timeout == 0 {
            return Ok(Some(json!({"runId": p.run_id, "status": "timeout"})));
        }
        self.hub.waiters.push(Waiter {
            conn,
            request_id: request.id.clone(),
            run_id: p.run_id,
            deadline: now_ms + timeout,
        });
        self.arm_agents_timer();
        Ok(None)
    }

    fn node_invoke(&mut self, now_ms: u64, conn: ConnId, request: &RequestFrame) -> Result<Option<Value>, ErrorShape> {
        let p: NodeInvokeParams = request.parse_params().map_err(|e| invalid("node.invoke", e))?;
        let Some((node_conn, commands)) = self.cx.net.node_conn(&p.node_id) else {
            return Err(ErrorShape::new(
                ErrorCode::Unavailable,
                format!("node not connected: {}", p.node_id),
            ));
        };
        if !commands.contains(&p.command) || p.command == WORKER_COMMAND {
            return Err(ErrorShape::new(
                ErrorCode::InvalidRequest,
                format!(
                    "node command not allowed: \"{}\" is not declared by node {}",
                    p.command, p.node_id
                ),
            )
            .with_details(json!({"reason": "command not declared", "command": p.command})));
        }
        let id = self.cx.random_uuid();
        let timeout = p.timeout_ms.unwrap_or(30_000).clamp(1, 600_000);
        let params = p.params.unwrap_or(json!({}));
        let payload = json!({
            "id": id,
            "nodeId": p.node_id,
            "command": p.command,
            "paramsJSON": params.to_string(),
            "timeoutMs": timeout,
            "idempotencyKey": p.idempotency_key,
        });
        self.cx
            .net
            .send_event(node_conn, "node.invoke.request", &to_raw(&payload), false);
        self.hub.invokes.insert(
            id,
            PendingInvoke {
                conn,
                request_id: request.id.clone(),
                node_conn,
                node_id: p.node_id,
                command: p.command,
                deadline: now_ms + timeout,
            },
        );
        self.arm_agents_timer();
        Ok(None)
    }

    fn node_invoke_result(&mut self, now_ms: u64, conn: ConnId, request: &RequestFrame) -> Result<Value, ErrorShape> {
        let p: NodeInvokeResultParams = request.parse_params().map_err(|e| invalid("node.invoke.result", e))?;
        let payload = match (&p.payload, &p.payload_json) {
            (Some(v), _) => Some(v.clone()),
            (None, Some(text)) => Some(
                serde_json::from_str::<Value>(text)
                    .map_err(|e| invalid("node.invoke.result", format!("payloadJSON: {e}")))?,
            ),
            (None, None) => None,
        };
        let error_text = || {
            p.error
                .as_ref()
                .and_then(|e| {
                    e["message"]
                        .as_str()
                        .map(str::to_owned)
                        .or_else(|| e.as_str().map(str::to_owned))
                })
                .unwrap_or_else(|| "the node reported a failure".to_owned())
        };
        if let Some(run) = self.hub.runs.get(&p.id) {
            if run.worker != Some(conn) {
                return Err(ErrorShape::new(
                    ErrorCode::InvalidRequest,
                    format!("run {} is not assigned to this node", p.id),
                ));
            }
            let outcome = if p.ok {
                Ok(payload
                    .as_ref()
                    .and_then(|v| v["text"].as_str())
                    .map(str::to_owned)
                    .unwrap_or_default())
            } else {
                Err(error_text())
            };
            self.finish_run(now_ms, &p.id, outcome);
            return Ok(json!({"ok": true}));
        }
        if let Some(pending) = self.hub.invokes.get(&p.id) {
            if pending.node_conn != conn {
                return Err(ErrorShape::new(
                    ErrorCode::InvalidRequest,
                    "invoke not addressed to this node",
                ));
            }
            let Some(pending) = self.hub.invokes.remove(&p.id) else {
                return Ok(json!({"ok": true}));
            };
            let frame = if p.ok {
                let payload = payload.unwrap_or(Value::Null);
                let answer = json!({
                    "ok": true, "nodeId": pending.node_id, "command": pending.command,
                    "payloadJSON": payload.to_string(), "payload": payload,
                });
                ResponseFrame::ok(pending.request_id, &answer)
            } else {
                ResponseFrame::err(
                    pending.request_id,
                    ErrorShape::new(ErrorCode::Unavailable, error_text()),
                )
            };
            self.cx.net.send_text(pending.conn, &frame.encode());
            return Ok(json!({"ok": true}));
        }
        // A result for a run that was aborted or timed out: accepted and dropped.
        Ok(json!({"ok": true, "ignored": true}))
    }

    /// The tool calls of a turn go into the session's transcript as OpenClaw keeps them: the
    /// text the model wrote before them (its preamble) as an assistant message of its own, then
    /// one assistant message of `toolCall` parts.
    fn record_tool_calls(&mut self, now_ms: u64, run_id: &str, calls: &Value) {
        let parts: Vec<Value> = calls
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| json!({"type": "toolCall", "id": c["id"], "name": c["name"], "arguments": c["arguments"]}))
            .collect();
        let Some(run) = self.hub.runs.get_mut(run_id) else {
            return;
        };
        if parts.is_empty() {
            return;
        }
        let key = run.session_key.clone();
        let preamble = run.text.get(run.recorded..).unwrap_or_default().trim().to_owned();
        run.recorded = run.text.len();
        if !preamble.is_empty() {
            let message = json!({
                "role": "assistant", "content": [{"type": "text", "text": preamble}], "timestamp": now_ms,
                "__openclaw": {"runId": run_id},
            });
            self.append_message(now_ms, &key, message);
        }
        let message = json!({
            "role": "assistant", "content": parts, "stopReason": "toolUse", "timestamp": now_ms,
            "__openclaw": {"runId": run_id},
        });
        self.append_message(now_ms, &key, message);
    }

    /// A tool call's result goes into the run's session transcript as a `toolResult` message.
    pub(crate) fn record_tool_result(
        &mut self,
        now_ms: u64,
        run_id: &str,
        call: (&str, &str),
        text: &str,
        is_error: bool,
    ) {
        let Some(key) = self.hub.runs.get(run_id).map(|r| r.session_key.clone()) else {
            return;
        };
        let (tool_call_id, tool) = call;
        let message = json!({
            "role": "toolResult", "toolCallId": tool_call_id, "toolName": tool,
            "content": [{"type": "text", "text": text}], "isError": is_error, "timestamp": now_ms,
            "__openclaw": {"runId": run_id},
        });
        self.append_message(now_ms, &key, message);
    }

    /// A model turn's tokens (`{runId, input, output}`): counted for the run and the day, and
    /// announced as a `usage` event. The session counts them from the run's final message, as
    /// it does when it reads its transcript back.
    fn record_usage(&mut self, now_ms: u64, run_id: &str, payload: &Value) {
        let (input, output) = (
            payload["input"].as_u64().unwrap_or(0),
            payload["output"].as_u64().unwrap_or(0),
        );
        let Some(run) = self.hub.runs.get_mut(run_id) else {
            return;
        };
        let (input_cost, output_cost) = run
            .model
            .as_ref()
            .map_or((0.0, 0.0), |m| self.cx.config.models.cost_of(m, input, output));
        let tokens = crate::usage::Tokens {
            input,
            output,
            input_cost,
            output_cost,
        };
        run.usage.input += input;
        run.usage.output += output;
        run.usage.input_cost += input_cost;
        run.usage.output_cost += output_cost;
        self.hub.usage.record(now_ms, tokens);
        let model = run.model.as_ref();
        self.cx.net.diagnostic(
            now_ms,
            "model.usage",
            json!({
                "provider": model.map(|m| &m.provider), "model": model.map(|m| &m.model),
                "usage": {"input": input, "output": output, "total": input + output},
                "costUsd": input_cost + output_cost,
            }),
        );
        self.run_event(now_ms, run_id, "usage", json!({"outputTokens": output}));
    }

    fn node_event(&mut self, now_ms: u64, conn: ConnId, request: &RequestFrame) -> Result<Value, ErrorShape> {
        let p: NodeEventParams = request.parse_params().map_err(|e| invalid("node.event", e))?;
        let payload = match (&p.payload, &p.payload_json) {
            (Some(v), _) => v.clone(),
            (None, Some(text)) => {
                serde_json::from_str(text).map_err(|e| invalid("node.event", format!("payloadJSON: {e}")))?
            }
            (None, None) => Value::Null,
        };
        if p.event == DELTA_EVENT {
            let delta: WorkerDelta = serde_json::from_value(payload).map_err(|e| invalid("node.event", e))?;
            self.on_worker_delta(now_ms, conn, delta)?;
            return Ok(json!({"ok": true, "event": p.event, "handled": true}));
        }
        if p.event == MODEL_EVENT || p.event == USAGE_EVENT || p.event == TOOL_CALLS_EVENT {
            let run_id = payload["runId"].as_str().unwrap_or_default().to_owned();
            match self.hub.runs.get(&run_id) {
                None => return Ok(json!({"ok": true, "event": p.event, "handled": false})),
                Some(run) if run.worker != Some(conn) => {
                    return Err(ErrorShape::new(
                        ErrorCode::InvalidRequest,
                        format!("run {run_id} is not assigned to this node"),
                    ))
                }
                Some(_) => {}
            }
            if p.event == MODEL_EVENT {
                let data = json!({"phase": "model", "provider": payload["provider"], "model": payload["model"]});
                self.run_event(now_ms, &run_id, "lifecycle", data);
            } else if p.event == TOOL_CALLS_EVENT {
                if let Some(text) = payload["text"].as_str().filter(|t| !t.trim().is_empty()) {
                    // Text before the tools is the turn's preamble, an item of its own.
                    let mut id = [0u8; 8];
                    self.cx.entropy.fill(&mut id);
                    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
                    let item = json!({
                        "itemId": format!("commentary-0-{hex}"), "kind": "preamble", "title": "Preamble",
                        "phase": "end", "progressText": text,
                    });
                    self.run_event(now_ms, &run_id, "item", item);
                }
                self.record_tool_calls(now_ms, &run_id, &payload["calls"]);
            } else {
                self.record_usage(now_ms, &run_id, &payload);
            }
            return Ok(json!({"ok": true, "event": p.event, "handled": true}));
        }
        Ok(json!({"ok": true, "event": p.event, "handled": false}))
    }
}

/// The keys of the entries of `map` that satisfy `pred` (collected, so the map can change).
fn ids_where<T>(map: &HashMap<String, T>, pred: impl Fn(&T) -> bool) -> Vec<String> {
    map.iter().filter(|(_, v)| pred(v)).map(|(k, _)| k.clone()).collect()
}

/// The checks `chat.send` and `agent` share: a run id, and a message that fits.
fn check_message(method: &str, idempotency_key: &str, message: &str, empty: &str) -> Result<(), ErrorShape> {
    if idempotency_key.trim().is_empty() {
        return Err(invalid(method, "idempotencyKey must not be empty"));
    }
    if message.trim().is_empty() {
        return Err(ErrorShape::new(ErrorCode::InvalidRequest, empty));
    }
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(ErrorShape::new(ErrorCode::InvalidRequest, "message too long"));
    }
    Ok(())
}

fn wait_payload(run_id: &str, done: &Finished) -> Value {
    match done.status {
        "ok" => json!({
            "runId": run_id, "status": "ok", "endedAt": done.ended_at,
            "terminalReply": {"disposition": "visible", "text": done.text},
        }),
        status => json!({
            "runId": run_id, "status": status, "endedAt": done.ended_at,
            "error": done.error.clone().unwrap_or_else(|| status.to_owned()),
        }),
    }
}

/// The final `agent` answer, in the shape the OpenClaw CLI prints.
fn agent_final_payload(run_id: &str, done: &Finished) -> Value {
    json!({
        "runId": run_id,
        "status": "ok",
        "summary": "completed",
        "result": {
            "payloads": [{"text": done.text, "mediaUrl": null}],
            "meta": {
                "durationMs": done.duration_ms,
                "aborted": false,
                "stopReason": "stop",
                "livenessState": "working",
                "agentMeta": {
                    "sessionId": done.session_id,
                    "sessionFile": done.session_key,
                    "agentId": done.agent_id,
                    "provider": "clawgate-worker",
                },
                "finalAssistantVisibleText": done.text,
            },
            "sourceReplyDeliveryState": "missing",
        },
    })
}
