//! The gateway: a thin shell over the parts of the engine. It routes each input to the part that
//! owns it (the connection table, admission, pairing, the agents, the tools, the gateway's own
//! methods, the lifecycle) and hands each part what it may read and the outbox it writes into.

use crate::admission::{Admission, UpgradeInfo};
use crate::agents::{AgentHub, Agents};
use crate::cache::Cache;
use crate::config::GatewayConfig;
use crate::config_rpc::{ConfigRpc, FileInForce, WriteStart};
use crate::conns::{ConnLimits, Connections, Gone, HttpInput, Timer, WsInput};
use crate::context::Ctx;
use crate::cron::{Cron, CronPart};
use crate::idempotency::{CachedAnswer, IdempotencyCache};
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use crate::pairing::PairingStore;
use crate::presence::{Presence, PresenceEntry};
use crate::reply::{HttpReply, Reply};
use crate::tool_calls::{RunningTools, ToolFailure};
use clawgate_proto::auth::AuthFailure;
use clawgate_proto::close::{code, CloseFrame};
use clawgate_proto::connect::Role;
use clawgate_proto::device::DeviceIdentity;
use clawgate_proto::frame::{to_raw, ErrorShape, Frame, FrameError, ResponseFrame, StateVersion};
use clawgate_proto::handshake::{AcceptedConnect, ConnectRejection, Rejection, ServerHandshake};
use clawgate_proto::http::{Request, Response};
use clawgate_proto::methods::Owner;
use clawgate_proto::scopes::authorize;
use clawgate_proto::ws::WsCodec;
use serde_json::json;
use std::net::SocketAddr;

pub use crate::entropy::Entropy;
pub use crate::log_ring::{LogLevel, LogLine};
pub use crate::output::{ConnId, Output};

/// Changes of the control plane that the audit log records when they succeed (configuration
/// writes are recorded by the configuration part, with their paths).
const CONTROL_WRITES: &[&str] = &[
    "device.pair.approve",
    "device.pair.reject",
    "device.pair.remove",
    "device.pair.rename",
    "device.token.rotate",
    "device.token.revoke",
    "exec.approval.resolve",
    "approval.resolve",
    "exec.approvals.set",
    "cron.add",
    "cron.update",
    "cron.remove",
    "cron.run",
    "set-heartbeats",
    "sessions.reset",
    "sessions.delete",
    "channels.start",
    "channels.stop",
    "channels.pairing.approve",
    "channels.pairing.dismiss",
    "channels.deadLetters.retry",
];

/// What an audited change was about: the ids and the decision among its params, nothing else
/// (no text, no secret).
fn audit_targets(request: &clawgate_proto::frame::RequestFrame) -> serde_json::Value {
    const TARGETS: &[&str] = &[
        "id",
        "jobId",
        "name",
        "requestId",
        "deviceId",
        "agentId",
        "key",
        "role",
        "decision",
        "enabled",
        "channel",
        "accountId",
    ];
    let params: serde_json::Value = serde_json::from_str(request.params_text()).unwrap_or_default();
    let picked: serde_json::Map<String, serde_json::Value> = TARGETS
        .iter()
        .filter_map(|k| {
            let v = params.get(*k)?;
            (v.is_string() || v.is_boolean() || v.is_number()).then(|| ((*k).to_owned(), v.clone()))
        })
        .collect();
    json!({"target": picked})
}

/// The gateway.
pub struct Gateway {
    config: GatewayConfig,
    entropy: Box<dyn Entropy + Send>,
    started_at: u64,
    identity: DeviceIdentity,
    instance_id: String,
    net: Connections,
    admission: Admission,
    presence: Presence,
    pairing: PairingStore,
    agents: AgentHub,
    tools: RunningTools,
    /// The webhooks' limiter and replay keys.
    hooks: crate::hooks::Hooks,
    idempotency: IdempotencyCache,
    metrics: Metrics,
    cache: Cache,
    life: Lifecycle,
    cron: Cron,
    config_rpc: ConfigRpc,
    channels: crate::channels::Channels,
}

/// Hands a part of the engine the context it works in: the outbox, the configuration and the
/// entropy (a macro, so that the other fields of the gateway stay free to borrow beside it).
macro_rules! cx {
    ($g:expr) => {
        Ctx {
            net: &mut $g.net,
            config: &$g.config,
            entropy: $g.entropy.as_mut(),
        }
    };
}

macro_rules! cron {
    ($g:expr) => {
        CronPart {
            cron: &mut $g.cron,
            agents: &mut $g.agents,
            cx: cx!($g),
            instance_id: &$g.instance_id,
        }
    };
}

macro_rules! channels {
    ($g:expr) => {
        crate::channels::ChannelsPart {
            channels: &mut $g.channels,
            agents: &mut $g.agents,
            cx: cx!($g),
        }
    };
}

macro_rules! hooks {
    ($g:expr) => {
        crate::hooks_http::HookParts {
            hooks: &mut $g.hooks,
            cron: &mut $g.cron,
            channels: &mut $g.channels,
            agents: &mut $g.agents,
            cx: cx!($g),
            instance_id: &$g.instance_id,
        }
    };
}

macro_rules! agents {
    ($g:expr) => {
        Agents {
            hub: &mut $g.agents,
            cx: cx!($g),
        }
    };
}

impl Gateway {
    /// A gateway started at `now_ms`. The gateway's own identity seed is drawn from `entropy`.
    pub fn new(config: GatewayConfig, mut entropy: Box<dyn Entropy + Send>, now_ms: u64) -> Self {
        let mut seed = [0u8; 32];
        entropy.fill(&mut seed);
        let mut instance = [0u8; 16];
        entropy.fill(&mut instance);
        let mut config_hash_key = [0u8; 32];
        entropy.fill(&mut config_hash_key);
        let limits = ConnLimits {
            max_buffered_bytes: config.max_buffered_bytes,
            http_idle_timeout_ms: config.http_idle_timeout_ms,
            http_head_timeout_ms: config.http_head_timeout_ms,
            http_body_timeout_ms: config.http_body_timeout_ms,
        };
        let mut g = Gateway {
            identity: DeviceIdentity::from_seed(&seed),
            instance_id: crate::entropy::uuid_v4(instance),
            cache: Cache::new(&config),
            admission: Admission::new(config.rate_limit),
            net: Connections::new(limits),
            config,
            entropy,
            started_at: now_ms,
            presence: Presence::default(),
            pairing: PairingStore::default(),
            agents: AgentHub::default(),
            tools: RunningTools::default(),
            hooks: crate::hooks::Hooks::default(),
            idempotency: IdempotencyCache::default(),
            metrics: Metrics::default(),
            life: Lifecycle::new(),
            cron: Cron::default(),
            config_rpc: ConfigRpc::new(config_hash_key),
            channels: crate::channels::Channels::default(),
        };
        g.net.schedule(now_ms + g.config.tick_interval_ms, Timer::Tick);
        g.net
            .schedule(now_ms + g.config.health_refresh_interval_ms, Timer::Health);
        let me = PresenceEntry::of_gateway(&g.config, &g.instance_id, now_ms);
        g.presence.upsert(format!("gateway:{}", g.instance_id), me);
        g
    }

    /// Replaces the pairing state (read back from disk by the runtime at start).
    pub fn with_pairing(mut self, store: PairingStore) -> Self {
        self.pairing = store;
        self
    }

    /// The configuration file the gateway started with: its document (for diffing later
    /// changes) and its text (`None` without a file), which `config.get` shows and the writes
    /// over RPC edit.
    pub fn with_config_file(mut self, document: serde_json::Value, text: Option<String>) -> Self {
        self.life.set_file(document, text);
        self
    }

    /// The process environment, for checking the `${NAME}` references of a file written over RPC
    /// as the runtime will read them.
    pub fn with_environment(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        self.config_rpc.set_environment(vars);
        self
    }

    /// Restores sessions from their transcript files (read by the runtime at start).
    pub fn with_transcripts(mut self, files: Vec<String>) -> Self {
        self.agents.restore_transcripts(files);
        self
    }

    /// The exec approvals file (`exec-approvals.json` under the state directory), read at start.
    /// A file that is not a JSON object is an error: it holds what operators decided.
    pub fn with_exec_approvals(mut self, text: &str) -> Result<Self, String> {
        self.tools.load_approvals(text)?;
        Ok(self)
    }

    /// Restores the runs that waited for a worker when the gateway stopped (the text of
    /// [`crate::agents::QUEUE_FILE`]). A file that does not parse is an error: those messages
    /// were accepted.
    pub fn with_agent_queue(mut self, text: &str) -> Result<Self, String> {
        self.agents.restore_queue(text)?;
        Ok(self)
    }

    /// The host's lookup of the programs exec runs, so the exec allowlist matches their real
    /// paths as OpenClaw's does; without one, programs are matched as they are named.
    pub fn with_executables(mut self, lookup: Box<dyn crate::approvals::ExecutableLookup + Send>) -> Self {
        self.tools.set_executables(lookup);
        self
    }

    /// Restores the cron jobs (the text of [`crate::scheduler::JOBS_FILE`]) and their run
    /// histories (job id and file text), applies the missed-run policy, and sets up the jobs that
    /// the heartbeat settings declare. Call it after [`Gateway::with_agent_queue`]: a run still
    /// queued for a worker was not interrupted. A jobs file that does not parse is an error.
    /// `zones` is the host's time zone database, for cron expressions with a `tz`.
    pub fn with_cron(
        mut self,
        jobs: Option<&str>,
        runs: &[(String, String)],
        zones: Box<dyn crate::scheduler::TimeZones + Send>,
    ) -> Result<Self, String> {
        let now_ms = self.started_at;
        let interrupted = self
            .cron
            .restore(&self.config, &self.agents, jobs, runs, zones, now_ms)?;
        if interrupted > 0 {
            let line =
                format!("cron: {interrupted} run(s) were interrupted by the last stop and are recorded as errors");
            self.net.log(now_ms, LogLevel::Warn, line);
        }
        cron!(self).sync_declared(now_ms);
        Ok(self)
    }

    /// Restores the channels' state (the text of [`crate::channels::STATE_FILE`]): accepted
    /// messages whose run was lost with the last process run again, and what waited to be
    /// delivered goes out once the adapters connect. Call it after
    /// [`Gateway::with_agent_queue`]. A file that does not parse is an error: it holds accepted
    /// messages.
    pub fn with_channels(mut self, text: Option<&str>) -> Result<Self, String> {
        if let Some(text) = text {
            self.channels.restore(text)?;
        }
        let now_ms = self.started_at;
        channels!(self).restart_unanswered(now_ms);
        Ok(self)
    }

    /// Restores the hooks' state (the text of [`crate::hooks::STATE_FILE`]): accepted turns
    /// whose run was lost with the last process run again, and replay keys stay known. Call it
    /// after [`Gateway::with_channels`]. A file that does not parse is an error: it holds
    /// accepted turns.
    pub fn with_hooks(mut self, text: Option<&str>) -> Result<Self, String> {
        if let Some(text) = text {
            self.hooks.restore(text)?;
        }
        let now_ms = self.started_at;
        hooks!(self).restart_unanswered(now_ms);
        Ok(self)
    }

    /// Number of cron jobs (heartbeats included).
    pub fn cron_job_count(&self) -> usize {
        self.cron.job_count()
    }

    /// The configuration in force.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// The configuration document in force.
    pub fn document(&self) -> &serde_json::Value {
        self.life.document()
    }

    /// Whether a reload or an operator (`gateway.restart.request`) asked for a restart: once
    /// [`Output::Stopped`] arrives the runtime starts the gateway again with the same arguments.
    pub fn restart_requested(&self) -> bool {
        self.life.restart_requested()
    }

    /// Whether [`Gateway::handle_shutdown`] was called.
    pub fn is_stopping(&self) -> bool {
        self.net.is_draining()
    }

    /// Number of open connections of any kind.
    pub fn connection_count(&self) -> usize {
        self.net.len()
    }

    /// When [`Gateway::handle_timeout`] must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        self.net.next_timer_at()
    }

    /// The next thing to do; `None` when there is nothing until the next input or timeout.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.net.poll_output()
    }

    // ----- inputs ----------------------------------------------------------------------------

    /// Logs a line on behalf of the runtime (e.g. "listening on ...").
    pub fn handle_log(&mut self, now_ms: u64, level: LogLevel, message: String) {
        self.net.log(now_ms, level, message);
    }

    /// Reports how long the runtime spent on one turn of its event loop.
    pub fn handle_loop_turn(&mut self, micros: u64) {
        self.metrics.loop_turn(micros);
    }

    /// A new TCP connection from `peer`, accepted on the local address `local`.
    pub fn handle_connection(&mut self, now_ms: u64, peer: SocketAddr, local: SocketAddr) -> ConnId {
        self.net.insert(now_ms, peer, local)
    }

    /// How many bytes the runtime still holds unsent for `conn` (after a write completed or queued).
    pub fn handle_buffered(&mut self, conn: ConnId, queued_bytes: usize) {
        self.net.set_buffered(conn, queued_bytes);
    }

    /// Bytes received on `conn`.
    pub fn handle_bytes(&mut self, now_ms: u64, conn: ConnId, data: &[u8]) {
        match self.net.feed(conn, data) {
            Some(true) => self.drive_ws(now_ms, conn),
            Some(false) => self.drive_http(now_ms, conn),
            None => {}
        }
        self.settle(now_ms);
    }

    /// The connection is gone (peer closed, error, or our close completed).
    pub fn handle_closed(&mut self, now_ms: u64, conn: ConnId) {
        match self.net.remove(conn) {
            Some(Gone::Handshake(peer)) => self.admission.released(peer.ip()),
            Some(Gone::Session(session)) => {
                if let Some(key) = session.presence_key {
                    self.presence.disconnect(&key, now_ms);
                    self.broadcast_presence(now_ms);
                }
                agents!(self).conn_closed(now_ms, conn);
                channels!(self).conn_closed(now_ms, conn);
            }
            Some(Gone::Other) | None => {}
        }
        self.settle(now_ms);
    }

    /// The runtime made the `persist` output `seq` (and all before it) durable.
    pub fn handle_persisted(&mut self, now_ms: u64, seq: u64) {
        self.net.persisted(now_ms, seq);
    }

    /// The runtime could not write `persist` output `seq`: what waited for it is dropped and the
    /// connections that waited are closed (the change is not acknowledged to anyone).
    pub fn handle_persist_failed(&mut self, now_ms: u64, seq: u64, error: &str) {
        self.net.persist_failed(now_ms, seq, error);
    }

    /// The runtime finished tool run `call`: answers the caller (if still connected) and writes
    /// the audit line. Unknown calls are ignored.
    pub fn handle_tool_result(&mut self, now_ms: u64, call: u64, result: Result<serde_json::Value, ToolFailure>) {
        self.tools.finish(
            &mut cx!(self),
            &mut self.agents,
            &mut self.idempotency,
            now_ms,
            call,
            result,
        );
        self.settle(now_ms);
    }

    /// A command tool call `call` runs printed `text` (the run's watchers see it as it comes).
    pub fn handle_tool_output(&mut self, now_ms: u64, call: u64, text: &str) {
        self.tools.output(&mut cx!(self), &mut self.agents, now_ms, call, text);
    }

    /// The runtime read (or failed to find) a file of the bundle: answers the request and serves
    /// what the client pipelined behind it.
    pub fn handle_static_response(
        &mut self,
        now_ms: u64,
        request: &crate::control_ui::StaticRequest,
        response: &Response,
    ) {
        self.net
            .finish_http(request.conn, response, request.head_only, request.keep_alive);
        self.settle(now_ms);
    }

    /// The configuration file was read again (file change, SIGHUP, `config.reload`): `text` is its
    /// contents or why it could not be read; `env` looks up `${NAME}` substitutions. A file that does
    /// not parse or validate leaves everything as it is and is reported in `health.configReload`.
    pub fn handle_config_text(&mut self, now_ms: u64, text: Result<&str, &str>, env: &dyn Fn(&str) -> Option<String>) {
        let done = self.life.reload(&mut self.net, &mut self.config, now_ms, text, env);
        self.after_reload(now_ms, done);
    }

    /// The runtime's report on an [`Output::WriteConfig`]: once the file is on disk, its text is
    /// applied as a file edit is, and the write is answered with what changed.
    pub fn handle_config_written(&mut self, now_ms: u64, write: u64, outcome: Result<(), String>) {
        let Some(pending) = self.config_rpc.take(write) else {
            return;
        };
        let response = match outcome {
            Err(why) => {
                let line = format!("{} could not write {}: {why}", pending.method, self.config.config_path);
                self.net.log(now_ms, LogLevel::Error, line);
                let error = ErrorShape::new(
                    clawgate_proto::frame::ErrorCode::Unavailable,
                    format!("the configuration file could not be written: {why}"),
                );
                ResponseFrame::err(pending.request_id.clone(), error)
            }
            Ok(()) => {
                let vars = self.config_rpc.environment().clone();
                let env = |name: &str| vars.get(name).cloned();
                let done = self
                    .life
                    .reload(&mut self.net, &mut self.config, now_ms, Ok(&pending.text), &env);
                let payload = self.config_rpc.written(&self.config, &pending, now_ms);
                // Answered before the follow-ups, so that a restart closes the socket after it.
                let response = ResponseFrame::ok_raw(pending.request_id.clone(), to_raw(&payload));
                self.net.send_answer(pending.conn, &response.encode());
                self.after_reload(now_ms, done);
                self.settle(now_ms);
                return;
            }
        };
        self.net.send_answer(pending.conn, &response.encode());
        self.settle(now_ms);
    }

    /// The runtime's report on an [`Output::AgentFiles`]: the answer, or (after the check of a
    /// write) the write itself.
    pub fn handle_agent_files(
        &mut self,
        now_ms: u64,
        request: crate::agent_files::AgentFileRequest,
        facts: Result<Vec<crate::agent_files::AgentFileFacts>, String>,
    ) {
        let (conn, request_id, method) = (request.conn, request.request_id.clone(), request.method.clone());
        let written = matches!(request.stage, crate::agent_files::AgentFileStage::Write { .. });
        let name = request.names.first().cloned().unwrap_or_default();
        let agent = request.agent.clone();
        match crate::agent_files::finish(request, facts) {
            crate::agent_files::Next::Again(next) => self.net.push_output(Output::AgentFiles(next)),
            crate::agent_files::Next::Answer(answer) => {
                if written && answer.is_ok() {
                    self.audit_control(
                        now_ms,
                        conn,
                        &method,
                        json!({"target": {"agentId": agent, "name": name}}),
                    );
                }
                let response = match answer {
                    Ok(v) => ResponseFrame::ok_raw(request_id, to_raw(&v)),
                    Err(e) => ResponseFrame::err(request_id, e),
                };
                self.net.send_answer(conn, &response.encode());
            }
        }
        self.settle(now_ms);
    }

    /// The runtime's measurement of the host, for the `system.info` request it answers.
    pub fn handle_host_sample(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        request_id: &str,
        host: &crate::control_ui::HostSample,
    ) {
        let info = crate::control_ui::system_info(&self.config, &self.instance_id, self.started_at, now_ms, host);
        let response = ResponseFrame::ok_raw(request_id.to_owned(), to_raw(&info));
        self.net.send_answer(conn, &response.encode());
        self.settle(now_ms);
    }

    /// What the other parts do after a reload.
    fn after_reload(&mut self, now_ms: u64, done: crate::lifecycle::Reloaded) {
        if done.chat_metadata {
            // As OpenClaw: an empty payload that tells chats to read agents and models again;
            // it goes out before `config.changed`, as captured.
            self.net
                .broadcast(now_ms, "chat.metadata.changed", &to_raw(&json!({})), true, None);
        }
        if done.changed {
            let hash = self.life.text().map(|t| self.config_rpc.hash(t));
            let payload = to_raw(&json!({"path": self.config.config_path, "hash": hash, "ts": now_ms}));
            self.net.broadcast(now_ms, "config.changed", &payload, true, None);
        }
        if done.restart {
            let back_in = self.config.restart_expected_ms;
            self.handle_shutdown(now_ms, "gateway restarting", Some(back_in));
            return;
        }
        if done.rate_limit {
            self.admission.set_rate_limit(self.config.rate_limit);
        }
        if done.routing {
            self.cache.config_changed();
        }
        if done.cron {
            cron!(self).sync_declared(now_ms);
        }
    }

    /// Timers that are due.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        while let Some(timer) = self.net.pop_due_timer(now_ms) {
            match timer {
                Timer::Handshake(conn) => {
                    if let Some(peer) = self.net.in_handshake(conn) {
                        let ip = peer.ip();
                        self.net
                            .log(now_ms, LogLevel::Warn, format!("handshake timeout for {ip}"));
                        self.metrics
                            .handshake(ConnectRejection::HandshakeTimeout.metric_label());
                        self.net.close_ws(conn, &ConnectRejection::HandshakeTimeout.close());
                    }
                }
                Timer::Http(conn) => self.net.on_http_timer(now_ms, conn),
                Timer::Agents => agents!(self).on_timer(now_ms),
                Timer::Cron if !self.net.is_draining() => cron!(self).on_timer(now_ms),
                Timer::Cron => {}
                Timer::Channels => channels!(self).on_timer(now_ms),
                Timer::Approvals => {
                    self.tools
                        .expire_approvals(&mut cx!(self), &mut self.agents, &mut self.idempotency, now_ms)
                }
                Timer::Tick if !self.net.is_draining() => {
                    let payload = to_raw(&json!({"ts": now_ms}));
                    self.net.broadcast(now_ms, "tick", &payload, true, None);
                    self.net.schedule(now_ms + self.config.tick_interval_ms, Timer::Tick);
                }
                Timer::Health if !self.net.is_draining() => {
                    agents!(self).prune_idle_sessions(now_ms);
                    self.net.health_changed();
                    self.refresh_snapshots(now_ms);
                    let payload = self.cache.health().to_owned();
                    // Health snapshots are not skipped for slow clients: a client that cannot
                    // keep up with them is closed.
                    let sv = self.state_version();
                    self.net.broadcast(now_ms, "health", &payload, false, Some(sv));
                    self.net
                        .schedule(now_ms + self.config.health_refresh_interval_ms, Timer::Health);
                }
                Timer::Tick | Timer::Health => {}
            }
        }
        self.settle(now_ms);
    }

    /// Stops the gateway: every client is told (`shutdown` event), then closed with 1012.
    /// `restart_expected_ms` is set when the gateway will be back.
    pub fn handle_shutdown(&mut self, now_ms: u64, reason: &str, restart_expected_ms: Option<u64>) {
        // Stopping is draining the connection table: it is done once.
        if self.net.is_draining() {
            return;
        }
        self.net.log(now_ms, LogLevel::Info, format!("shutting down: {reason}"));
        let mut payload = json!({"reason": reason});
        if let Some(ms) = restart_expected_ms {
            payload["restartExpectedMs"] = json!(ms);
        }
        self.net.broadcast(now_ms, "shutdown", &to_raw(&payload), false, None);
        self.net
            .drain(&CloseFrame::new(code::SERVICE_RESTART, "service restart"));
        self.settle(now_ms);
    }

    // ----- the shell -------------------------------------------------------------------------

    /// What the parts left for the shell after an input: the tool calls of runs that ended are
    /// stopped, HTTP connections whose waiting answer went out serve what they pipelined, and a
    /// stopping gateway reports when it is empty.
    fn settle(&mut self, now_ms: u64) {
        let ended = self.agents.take_scheduled_done();
        if !ended.is_empty() {
            cron!(self).runs_ended(now_ms, ended);
        }
        for (run_id, text) in self.agents.take_channel_progress() {
            channels!(self).run_progress(now_ms, &run_id, &text);
        }
        for (run_id, finished) in self.agents.take_ended() {
            channels!(self).run_ended(now_ms, &run_id, &finished);
            hooks!(self).run_ended(now_ms, &run_id, &finished);
        }
        for run_id in self.agents.take_cancelled() {
            self.tools
                .cancel_run(&mut cx!(self), &mut self.agents, &mut self.idempotency, now_ms, &run_id);
        }
        loop {
            let resumed = self.net.take_resumed_http();
            if resumed.is_empty() {
                break;
            }
            for conn in resumed {
                self.drive_http(now_ms, conn);
            }
        }
        if self.life.take_stopped(self.net.is_draining(), self.net.len()) {
            self.net.push_output(Output::Stopped);
        }
    }

    fn state_version(&self) -> StateVersion {
        StateVersion {
            presence: self.presence.version(),
            health: self.net.health_version(),
        }
    }

    /// Re-serializes the cached health and presence snapshots if they changed.
    fn refresh_snapshots(&mut self, now_ms: u64) {
        let (config, agents, status) = (&self.config, &self.agents, self.life.reload_status());
        self.cache.refresh(self.net.health_version(), &self.presence, || {
            crate::methods::health_payload(config, agents, status, now_ms)
        });
    }

    /// `system-event` shows its text in presence, as OpenClaw's does.
    fn system_event_presence(&mut self, now_ms: u64, request: &clawgate_proto::frame::RequestFrame) {
        let text = request
            .parse_params::<serde_json::Value>()
            .ok()
            .and_then(|p| p.get("text").and_then(|t| t.as_str()).map(str::to_owned))
            .unwrap_or_default();
        let entry = PresenceEntry::of_text(&self.config, text, now_ms);
        self.presence.upsert("system-event".to_owned(), entry);
        self.broadcast_presence(now_ms);
    }

    fn broadcast_presence(&mut self, now_ms: u64) {
        self.presence.expire(now_ms);
        self.refresh_snapshots(now_ms);
        let text = format!("{{\"presence\":{}}}", self.cache.presence().get());
        let Ok(payload) = serde_json::value::RawValue::from_string(text) else {
            return;
        };
        let sv = self.state_version();
        self.net.broadcast(now_ms, "presence", &payload, true, Some(sv));
    }

    fn drive_http(&mut self, now_ms: u64, conn: ConnId) {
        loop {
            match self.net.poll_http(conn, crate::http_routes::refused_request) {
                HttpInput::Nothing => break,
                HttpInput::Upgrade(request, peer, local, leftover) => {
                    self.upgrade(now_ms, conn, &request, peer, local, leftover);
                    break;
                }
                HttpInput::Request(request, peer) => {
                    let head_only = request.method == "HEAD";
                    // The table closes the connection after its answer if it is draining.
                    let keep_alive = request.keep_alive();
                    match self.route_http(now_ms, conn, peer, &request, keep_alive) {
                        HttpReply::Now(response) => self.net.send_http(conn, &response, head_only, keep_alive),
                        HttpReply::Later => {
                            self.net.answer_later(conn);
                            break;
                        }
                    }
                }
            }
        }
        self.net.note_http_progress(now_ms, conn);
    }

    /// The answer to an HTTP request, from the part its route names.
    fn route_http(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        peer: SocketAddr,
        request: &Request,
        keep_alive: bool,
    ) -> HttpReply {
        if let Some(endpoint) = self.config.hooks.endpoint(request.path()) {
            return hooks!(self).answer(now_ms, (conn, peer), request, keep_alive, endpoint);
        }
        let parts = crate::http_routes::Parts {
            cx: cx!(self),
            admission: &mut self.admission,
            agents: &mut self.agents,
            tools: &mut self.tools,
            metrics: &self.metrics,
            pairing: &self.pairing,
            started_at: self.started_at,
        };
        crate::http_routes::answer(parts, now_ms, conn, peer, request, keep_alive)
    }

    fn upgrade(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        request: &Request,
        peer: SocketAddr,
        local: SocketAddr,
        leftover: Vec<u8>,
    ) {
        let stopping = self.net.is_draining();
        let (accepted, upgrade) = match self
            .admission
            .admit_upgrade(&self.config, stopping, peer, local, request)
        {
            Ok(ok) => ok,
            Err(refusal) => {
                self.net.send_http(conn, &refusal.response, false, false);
                if let Some(line) = refusal.log {
                    self.net.log(now_ms, LogLevel::Warn, line);
                }
                if let Some(label) = refusal.metric {
                    self.metrics.handshake(label);
                }
                return;
            }
        };
        let nonce = cx!(self).random_uuid();
        let handshake = ServerHandshake::new(nonce, now_ms);
        let mut codec = WsCodec::server(self.config.max_preauth_payload);
        let mut out = accepted.response_bytes();
        codec.encode_text(&handshake.challenge().encode(), &mut out);
        codec.feed(&leftover);
        let deadline = now_ms + self.config.handshake_timeout_ms;
        self.net.begin_handshake(conn, codec, handshake, upgrade, out, deadline);
        if !leftover.is_empty() {
            self.drive_ws(now_ms, conn);
        }
    }

    fn drive_ws(&mut self, now_ms: u64, conn: ConnId) {
        while let WsInput::Text { text, handshake } = self.net.poll_ws(now_ms, conn) {
            if !handshake {
                self.on_request(now_ms, conn, &text);
                continue;
            }
            let Some((codec, handshake, upgrade, peer)) = self.net.take_handshake(conn) else {
                return;
            };
            match handshake.handle_first_frame(&text, now_ms, self.admission.nonces()) {
                Err(rejection) => {
                    self.net.restore_handshake(now_ms, conn, codec, upgrade);
                    self.reject(now_ms, conn, peer, rejection);
                }
                Ok(accepted) => self.complete_handshake(now_ms, conn, peer, codec, accepted, upgrade),
            }
        }
    }

    fn reject(&mut self, now_ms: u64, conn: ConnId, peer: SocketAddr, rejection: Rejection) {
        let Rejection { response, close, label } = rejection;
        self.metrics.handshake(label);
        if let Some(res) = response {
            self.net.send_text(conn, &res.encode());
        }
        self.net.log(
            now_ms,
            LogLevel::Warn,
            format!("handshake from {} refused: {} {}", peer.ip(), close.code, close.reason),
        );
        self.net.close_ws(conn, &close);
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
        let admitted = crate::connect::admit(
            &mut cx!(self),
            &mut self.admission,
            &mut self.pairing,
            now_ms,
            peer,
            &accepted,
            &upgrade,
        );
        // Whatever the answer, it must not overtake the pairing write it reports.
        self.net.hold_for_persist(conn);
        let (method, scope_names) = match admitted {
            Ok(ok) => ok,
            Err(why) => {
                let rejection = accepted.reject(&why);
                self.net.restore_handshake(now_ms, conn, codec, upgrade);
                if let ConnectRejection::Unauthorized { failure, .. } = &why {
                    if failure.counts_as_attempt() || *failure == AuthFailure::TokenMissing {
                        self.net.log(
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
        self.admission.released(peer.ip());
        let client = accepted.params.client.clone();
        let role = accepted.role;
        let secret_generation = method.is_shared_secret().then_some(self.life.secret_generation());
        let (session, auth) = crate::connect::session(
            &mut cx!(self),
            &mut self.pairing,
            now_ms,
            &accepted,
            (method, scope_names.clone()),
            secret_generation,
        );
        let (conn_uuid, device_id, presence_key) = (
            session.conn_uuid.clone(),
            session.device_id.clone(),
            session.presence_key.clone(),
        );
        self.net.hold_for_persist(conn);
        self.refresh_snapshots(now_ms);
        let model_configured = crate::control_ui::model_configured(&self.config, &self.agents);
        let uptime_ms = now_ms.saturating_sub(self.started_at);
        let sv = self.state_version();
        let hello = self
            .cache
            .hello_ok(&self.config, &session, auth, sv, uptime_ms, model_configured);
        let response = accepted.accept_raw(hello);
        codec.set_max_message_size(self.config.max_payload);
        self.net.open_session(conn, codec, session);
        self.net.send_text(conn, &response.encode());
        self.metrics.handshake("ok");
        if role == Role::Node {
            agents!(self).worker_connected(now_ms, conn);
            channels!(self).adapter_connected(now_ms, conn);
        }
        self.net.log(
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
            let mut entry = PresenceEntry::of_client(&client, peer.ip(), role, device_id, scope_names, now_ms);
            if role == Role::Node && entry.device_id.is_none() {
                // A node without a device is listed by its connection id (`node.list`'s nodeId);
                // the same id here lets a client join the two into one entry.
                entry.instance_id = Some(conn_uuid.clone());
            }
            self.presence.upsert(key, entry);
            self.broadcast_presence(now_ms);
        }
    }

    /// A request on an open WebSocket: the scope gate, then the part that owns the method.
    fn on_request(&mut self, now_ms: u64, conn: ConnId, text: &str) {
        let refuse = |net: &mut Connections, id: Option<String>, reason: &str| {
            let e = ErrorShape::new(
                clawgate_proto::ErrorCode::InvalidRequest,
                format!("invalid request frame: {reason}"),
            );
            let id = id.unwrap_or_else(|| "invalid".to_owned());
            net.send_text(conn, &ResponseFrame::err(id, e).encode());
        };
        let request = match Frame::decode(text) {
            Ok(Frame::Request(r)) => r,
            Ok(Frame::Cancel { .. }) => return,
            Ok(_) => return refuse(&mut self.net, None, "expected a req frame"),
            Err(FrameError::InvalidFrame { id, reason }) => return refuse(&mut self.net, id, &reason),
            Err(FrameError::InvalidJson(_)) => {
                let line = format!("ignored a message that is not JSON on {}", conn.0);
                return self.net.log(now_ms, LogLevel::Warn, line);
            }
        };
        let Some(session) = self.net.session_of(conn) else {
            return;
        };
        if session
            .secret_generation
            .is_some_and(|g| g != self.life.secret_generation())
        {
            // Authenticated with a secret that no longer holds: the next request ends the socket.
            self.net
                .close_ws(conn, &CloseFrame::new(code::AUTH_CHANGED, "gateway auth changed"));
            return;
        }
        let (role, scopes, admin) = (session.role, session.scopes, session.is_admin());
        let owner = clawgate_proto::methods::lookup(&request.method).and_then(|m| m.owner);
        let known = request.method == "connect" || owner.is_some();
        let reply = match (authorize(role, scopes, &request.method), owner) {
            (Err(denied), _) => Reply::Now(Err(denied.to_error())),
            (Ok(()), Some(Owner::Tools)) => {
                let caller = self.net.session_of(conn).and_then(|s| s.device_id.clone());
                Reply::deferred(self.tools.start_ws(
                    &mut cx!(self),
                    &mut self.agents,
                    &mut self.idempotency,
                    now_ms,
                    conn,
                    caller,
                    &request,
                ))
            }
            (Ok(()), Some(Owner::Approvals)) => self.tools.call_approvals(
                &mut cx!(self),
                &mut self.agents,
                &mut self.idempotency,
                now_ms,
                conn,
                &request,
            ),
            (Ok(()), Some(Owner::ControlUi)) if request.method == "system.info" => {
                self.net.push_output(Output::SampleHost {
                    conn,
                    request_id: request.id.clone(),
                });
                Reply::Later
            }
            (Ok(()), Some(Owner::ControlUi)) => Reply::value(crate::control_ui::call(
                &self.config,
                &self.agents,
                self.net.stability(),
                now_ms,
                &request,
            )),
            (Ok(()), Some(Owner::Agents)) => agents!(self).call(now_ms, conn, &request),
            (Ok(()), Some(Owner::Cron)) => {
                let answer = cron!(self).call(now_ms, conn, &request);
                if answer.is_ok() && request.method == "system-event" {
                    self.system_event_presence(now_ms, &request);
                }
                Reply::Now(answer)
            }
            (Ok(()), Some(Owner::Pairing)) => {
                let device_id = self.net.session_of(conn).and_then(|s| s.device_id.clone());
                let caller = crate::pairing_methods::Caller { scopes, device_id };
                let mut effects = Vec::new();
                let online = self.net.connected_devices();
                let answer = crate::pairing_methods::call(
                    &mut self.pairing,
                    self.entropy.as_mut(),
                    now_ms,
                    (&caller, &online),
                    &request,
                    &mut effects,
                );
                crate::pairing_methods::apply_effects(&mut self.net, &self.pairing, now_ms, conn, effects);
                Reply::Now(answer)
            }
            (Ok(()), Some(Owner::Config)) => self.call_config(now_ms, conn, &request),
            (Ok(()), Some(Owner::Channels)) => channels!(self).call(now_ms, conn, &request),
            (Ok(()), Some(Owner::Core) | None) => Reply::Now(self.call_core(now_ms, &request, admin)),
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
        if response.ok && CONTROL_WRITES.contains(&request.method.as_str()) {
            self.audit_control(now_ms, conn, &request.method, audit_targets(&request));
        }
        self.metrics.request(&request.method, known, response.ok);
        self.net.send_answer(conn, &response.encode());
    }

    /// `config.*`: reads answer now; a write answers once the runtime has written the file.
    fn call_config(&mut self, now_ms: u64, conn: ConnId, request: &clawgate_proto::frame::RequestFrame) -> Reply {
        let file = FileInForce {
            text: self.life.text(),
            resolved: self.life.document(),
            reload_status: self.life.reload_status(),
        };
        match request.method.as_str() {
            "config.get" => Reply::value(Ok(self.config_rpc.get(&self.config, &file))),
            "config.schema" => Reply::value(Ok(crate::config_schema::schema(now_ms))),
            "config.schema.lookup" => Reply::value(crate::config_schema::lookup(request)),
            "agents.files.list" | "agents.files.get" | "agents.files.set" => {
                match crate::agent_files::start(&self.config, &self.agents, conn, request) {
                    Ok(output) => {
                        self.net.push_output(output);
                        Reply::Later
                    }
                    Err(e) => Reply::Now(Err(e)),
                }
            }
            // Answered first, then the gateway stops for the runtime to start it again.
            "gateway.restart.request" => {
                let params: serde_json::Value = serde_json::from_str(request.params_text()).unwrap_or_default();
                let reason = params["reason"]
                    .as_str()
                    .unwrap_or("operator request")
                    .chars()
                    .take(200)
                    .collect::<String>();
                let payload = json!({"ok": true, "status": "scheduled", "restart": {"reason": reason, "delayMs": 0}, "pid": null});
                let response = ResponseFrame::ok_raw(request.id.clone(), to_raw(&payload));
                self.net.send_answer(conn, &response.encode());
                self.audit_control(now_ms, conn, &request.method, json!({"target": {"reason": reason}}));
                self.life.request_restart();
                let back_in = self.config.restart_expected_ms;
                self.handle_shutdown(now_ms, "gateway restarting", Some(back_in));
                Reply::Later
            }
            method => match if method.starts_with("agents.") {
                self.config_rpc.write_agents(&self.config, &file, conn, request)
            } else {
                self.config_rpc.write(&self.config, &file, conn, request)
            } {
                Err(e) => Reply::Now(Err(e)),
                Ok(WriteStart::Unchanged(answer)) => Reply::value(Ok(answer)),
                Ok(WriteStart::Writing(output)) => {
                    let paths = match &output {
                        Output::WriteConfig { write, .. } => self.config_rpc.changed_paths(*write),
                        _ => Vec::new(),
                    };
                    self.audit_control(now_ms, conn, &request.method, json!({"paths": paths}));
                    self.net.push_output(output);
                    Reply::Later
                }
            },
        }
    }

    /// One line in the control-plane audit log: who (`conn`'s device and client), when, what.
    pub(crate) fn audit_control(&mut self, now_ms: u64, conn: ConnId, action: &str, detail: serde_json::Value) {
        let (device, client, role) = match self.net.session_of(conn) {
            Some(s) => (
                s.device_id.clone(),
                s.client_id.clone(),
                format!("{:?}", s.role).to_lowercase(),
            ),
            None => (None, String::new(), String::new()),
        };
        let mut line = json!({
            "ts": now_ms,
            "action": action,
            "actor": {"conn": conn.0, "deviceId": device, "clientId": client, "role": role},
        });
        if let (Some(map), serde_json::Value::Object(more)) = (line.as_object_mut(), detail) {
            map.extend(more);
        }
        self.net
            .push_output(Output::AppendControlAudit { line: line.to_string() });
    }

    /// The gateway's own methods, with the idempotency cache in front of them: a repeat of
    /// accepted work gets the first answer again.
    fn call_core(
        &mut self,
        now_ms: u64,
        request: &clawgate_proto::frame::RequestFrame,
        admin: bool,
    ) -> Result<Box<serde_json::value::RawValue>, ErrorShape> {
        use crate::methods::Answer;
        let key = IdempotencyCache::key_for(&request.method, request.params_text());
        if let Some(CachedAnswer::Ok(payload)) = key.as_deref().and_then(|k| self.idempotency.get(k, now_ms)) {
            return Ok(payload.clone());
        }
        let mut core = crate::methods::Core {
            config: &self.config,
            agents: &self.agents,
            net: &mut self.net,
            pairing: &self.pairing,
            identity: &self.identity,
            instance_id: &self.instance_id,
            started_at: self.started_at,
        };
        let payload = match crate::methods::call(&mut core, now_ms, request, admin)? {
            Answer::Value(payload) => payload,
            Answer::Health => {
                self.refresh_snapshots(now_ms);
                self.cache.health().to_owned()
            }
            Answer::Presence => {
                self.refresh_snapshots(now_ms);
                self.cache.presence().to_owned()
            }
        };
        // Only accepted work is remembered; a refused request may be retried.
        if let Some(k) = key {
            self.idempotency.insert(k, CachedAnswer::Ok(payload.clone()), now_ms);
        }
        Ok(payload)
    }
}
