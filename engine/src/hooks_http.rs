//! The answers of the webhook endpoints: [`crate::hooks`] checks the request and the policy,
//! the scheduler queues a wake, the agents run a turn, the channels deliver its reply.

use crate::agents::{AgentHub, Agents, Finished, Origin, RunOptions, RunRequest};
use crate::channels::{Channels, ChannelsPart};
use crate::context::Ctx;
use crate::cron::{Cron, CronPart};
use crate::hooks::{hook_error, AcceptedTurn, AgentHook, HookEndpoint, Hooks, MappedAction, WakeHook};
use crate::http_runs::{HttpRun, HttpShape};
use crate::log_ring::LogLevel;
use crate::output::ConnId;
use crate::reply::{json_response, HttpReply};
use clawgate_proto::http::{Request, Response};
use serde_json::json;
use std::net::SocketAddr;

/// How long a hook's agent turn may take when the request names no timeout.
const HOOK_RUN_TIMEOUT_MS: u64 = 600_000;
/// Accepted turns that may wait for their run at once; beyond, senders are told to retry.
const ACCEPTED_LIMIT: usize = 1000;

/// What the hooks work with: their own state, and the parts a hook hands its work to.
pub(crate) struct HookParts<'a> {
    pub hooks: &'a mut Hooks,
    pub cron: &'a mut Cron,
    pub channels: &'a mut Channels,
    pub agents: &'a mut AgentHub,
    pub cx: Ctx<'a>,
    pub instance_id: &'a str,
}

impl HookParts<'_> {
    fn cron(&mut self) -> CronPart<'_> {
        CronPart {
            cron: &mut *self.cron,
            agents: &mut *self.agents,
            cx: self.cx.reborrow(),
            instance_id: self.instance_id,
        }
    }

    fn channels(&mut self) -> ChannelsPart<'_> {
        ChannelsPart {
            channels: &mut *self.channels,
            agents: &mut *self.agents,
            cx: self.cx.reborrow(),
        }
    }

    fn agents(&mut self) -> Agents<'_> {
        Agents {
            hub: &mut *self.agents,
            cx: self.cx.reborrow(),
        }
    }

    fn persist(&mut self) {
        let text = self.hooks.state_text();
        self.cx.net.persist_file(crate::hooks::STATE_FILE, text);
    }

    // ----- requests --------------------------------------------------------------------------

    /// The answer to a request under `hooks.path`.
    pub(crate) fn answer(
        &mut self,
        now_ms: u64,
        (conn, peer): (ConnId, SocketAddr),
        request: &Request,
        keep_alive: bool,
        endpoint: HookEndpoint,
    ) -> HttpReply {
        let client = crate::rate_limit::canonical_ip(peer.ip()).to_string();
        if let Err(refused) = self.hooks.admit(&self.cx.config.hooks, now_ms, &client, request) {
            return HttpReply::Now(refused);
        }
        let result = match endpoint {
            HookEndpoint::Base => Err(hook_error(404, "no hook action at the base path")),
            HookEndpoint::Wake => self
                .cx
                .config
                .hooks
                .wake_request(request)
                .and_then(|wake| self.wake(now_ms, &wake))
                .map(|(mode, outcome)| json_response(200, &json!({"ok": true, "mode": mode, "eventOutcome": outcome}))),
            HookEndpoint::Agent => return self.direct_agent(now_ms, conn, request, keep_alive),
            HookEndpoint::Mapped(subpath) => self.mapped(now_ms, conn, &subpath, request),
        };
        HttpReply::Now(result.unwrap_or_else(|refused| refused))
    }

    fn checked_agent(&self, requested: Option<&str>, fall_back: bool) -> Result<String, Response> {
        let config = self.cx.config;
        let agent = match self.agents.known_agent(config, requested) {
            Ok(agent) => agent,
            // A mapping naming an agent that is gone uses the default one, as in OpenClaw.
            Err(_) if fall_back => self
                .agents
                .known_agent(config, None)
                .map_err(|e| hook_error(400, &e.message))?,
            Err(e) => return Err(hook_error(400, &e.message)),
        };
        if !config.hooks.agent_allowed(agent.as_str()) {
            return Err(hook_error(
                400,
                &format!("agent {agent} is not in hooks.allowedAgentIds"),
            ));
        }
        Ok(agent.as_str().to_owned())
    }

    /// Queues a wake; its mode and outcome.
    fn wake(&mut self, now_ms: u64, wake: &WakeHook) -> Result<(&'static str, &'static str), Response> {
        let agent = self.checked_agent(wake.agent_id.as_deref(), false)?;
        let session = match &wake.session_key {
            Some(raw) => Some(
                self.agents
                    .session_key_for(self.cx.config, Some(raw), Some(&agent))
                    .map_err(|e| hook_error(400, &e.message))?
                    .0,
            ),
            None => None,
        };
        let outcome = self
            .cron()
            .wake_from_hook(now_ms, &wake.text, wake.now, &agent, session.as_deref());
        Ok((if wake.now { "now" } else { "next-heartbeat" }, outcome))
    }

    fn direct_agent(&mut self, now_ms: u64, conn: ConnId, request: &Request, keep_alive: bool) -> HttpReply {
        let (hook, replay) = match self.cx.config.hooks.agent_request(request) {
            Ok(checked) => checked,
            Err(refused) => return HttpReply::Now(refused),
        };
        let waiting = hook.wait_for_completion.then_some(HttpRun {
            conn,
            keep_alive,
            shape: HttpShape::Hook,
            stream: false,
        });
        let waits = waiting.is_some();
        match self.admit_turn(now_ms, hook, replay, waiting, false) {
            Err(refused) => HttpReply::Now(refused),
            Ok((_, true)) if waits => HttpReply::Later,
            Ok((run_id, _)) => {
                // The admission goes out once the accepted turn is durable, as acknowledgements do.
                self.cx.net.hold_for_persist(conn);
                HttpReply::Now(json_response(200, &json!({"ok": true, "runId": run_id})))
            }
        }
    }

    fn mapped(&mut self, now_ms: u64, conn: ConnId, subpath: &str, request: &Request) -> Result<Response, Response> {
        let now_iso = crate::log_ring::iso8601_utc(now_ms);
        let actions = self.cx.config.hooks.mapped_actions(subpath, request, &now_iso)?;
        if actions.is_empty() {
            return Ok(Response::new(204).header("Cache-Control", "no-store"));
        }
        let mut run_ids = Vec::new();
        let mut errors = Vec::new();
        let mut failed_status = None;
        let mut wakes = Vec::new();
        let mut mode = "now";
        for action in actions {
            let outcome = match action {
                MappedAction::Wake(wake) => self.wake(now_ms, &wake).map(|(m, outcome)| {
                    mode = m;
                    wakes.push(outcome);
                }),
                MappedAction::Agent(hook, replay) => self
                    .admit_turn(now_ms, hook, replay, None, true)
                    .map(|(run, _)| run_ids.push(run)),
            };
            if let Err(refused) = outcome {
                failed_status.get_or_insert(refused.status);
                if errors.len() < 5 {
                    let body: serde_json::Value = serde_json::from_slice(&refused.body).unwrap_or_default();
                    errors.push(body["error"].as_str().unwrap_or("refused").to_owned());
                }
            }
        }
        self.cx.net.log(
            now_ms,
            LogLevel::Info,
            format!(
                "hook {subpath}: {} run(s), {} wake(s), {} refused",
                run_ids.len(),
                wakes.len(),
                errors.len()
            ),
        );
        self.cx.net.hold_for_persist(conn);
        let mut body = json!({"ok": errors.is_empty()});
        if let Some(first) = run_ids.first() {
            body["runId"] = json!(first);
        }
        if run_ids.len() > 1 || !errors.is_empty() {
            body["runIds"] = json!(run_ids);
            body["dispatched"] = json!(run_ids.len());
        }
        if !wakes.is_empty() {
            body["mode"] = json!(mode);
            let outcome = if wakes.contains(&"queued") {
                "queued"
            } else {
                "coalesced"
            };
            body["eventOutcome"] = json!(outcome);
        }
        match failed_status {
            None => Ok(json_response(200, &body)),
            Some(status) => {
                body["error"] = json!("the batch was not fully admitted");
                body["errors"] = json!(errors);
                Err(json_response(status, &body))
            }
        }
    }

    /// Accepts one agent turn: the policy, the session, the delivery target, then the run and
    /// the accepted turn in the hooks' state. The run id and whether it is new (not a replay),
    /// or the refusal.
    fn admit_turn(
        &mut self,
        now_ms: u64,
        hook: AgentHook,
        replay: Option<String>,
        waiting: Option<HttpRun>,
        mapped: bool,
    ) -> Result<(String, bool), Response> {
        let agent = self.checked_agent(hook.agent_id.as_deref(), mapped)?;
        if let Some(run_id) = replay.as_deref().and_then(|key| self.hooks.replayed(now_ms, key)) {
            // The same request again: the run it started, not a second one.
            return Ok((run_id, false));
        }
        let target = match &hook.delivery {
            Some(requested) => self
                .channels()
                .hook_target(requested, &agent)
                .map_err(|why| hook_error(400, &why))?,
            None => None,
        };
        let session_key = match &hook.session_key {
            Some(raw) => {
                self.agents
                    .session_key_for(self.cx.config, Some(raw), Some(&agent))
                    .map_err(|e| hook_error(400, &e.message))?
                    .0
            }
            None => {
                let logical = format!("hook:{}", self.cx.random_uuid());
                if !self.cx.config.hooks.key_allowed(&logical) {
                    return Err(hook_error(
                        400,
                        "hooks.allowedSessionKeyPrefixes does not admit generated hook: keys",
                    ));
                }
                format!("agent:{agent}:{logical}")
            }
        };
        if waiting.is_some() && !self.agents.agent_has_worker(&agent) {
            // A caller that waits would wait for a worker that is not there: refused, and nothing
            // was queued, so a retry never runs the turn twice.
            return Err(hook_error(
                503,
                &format!("agent {agent} has no worker connected; nothing was queued"),
            )
            .header("Retry-After", "5"));
        }
        if self.hooks.pending() >= ACCEPTED_LIMIT {
            return Err(hook_error(
                503,
                &format!("{ACCEPTED_LIMIT} hook turns already wait for their agents"),
            )
            .header("Retry-After", "5"));
        }
        let run_id = self.cx.random_uuid();
        let turn = AcceptedTurn {
            run_id: run_id.clone(),
            session_key,
            agent_id: agent,
            message: hook.message,
            name: hook.name,
            accepted_at: now_ms,
            timeout_ms: hook.timeout_ms.unwrap_or(HOOK_RUN_TIMEOUT_MS),
            model: hook.model,
            target,
        };
        let origin = waiting.map_or(Origin::Nobody, Origin::Http);
        self.start_turn(now_ms, &turn, origin)
            .map_err(|why| hook_error(503, &why))?;
        self.cx.net.log(
            now_ms,
            LogLevel::Info,
            format!("hook {} accepted as run {run_id}", turn.name),
        );
        self.hooks.accept(turn);
        if let Some(key) = replay {
            self.hooks.remember(now_ms, key, run_id.clone());
        }
        self.persist();
        Ok((run_id, true))
    }

    fn start_turn(&mut self, now_ms: u64, turn: &AcceptedTurn, origin: Origin) -> Result<(), String> {
        let run = RunRequest {
            run_id: turn.run_id.clone(),
            session_key: turn.session_key.clone(),
            agent_id: turn.agent_id.clone(),
            message: turn.message.clone(),
            origin,
            timeout_ms: turn.timeout_ms,
            options: RunOptions {
                model: turn.model.clone(),
                ..RunOptions::default()
            },
            created_via: "hook",
            quiet: false,
            ack: None,
        };
        self.agents().start_run(now_ms, run).map(|_| ()).map_err(|e| e.message)
    }

    // ----- runs ------------------------------------------------------------------------------

    /// A run ended: if a hook started it, its turn is done, and an answer with a target is
    /// handed to the channels (which deliver it once, even when handed over again).
    pub(crate) fn run_ended(&mut self, now_ms: u64, run_id: &str, finished: &Finished) {
        let Some(turn) = self.hooks.take_ended(run_id) else {
            return;
        };
        let text = finished.text.trim();
        if let (Some(target), "ok", false) = (&turn.target, finished.status, text.is_empty()) {
            self.channels()
                .deliver_hook_reply(now_ms, run_id, target, text.to_owned());
        }
        self.persist();
    }

    /// After a restart: turns whose run was lost with the process run again, unless the reply
    /// is already in the transcript (the process stopped between the reply and its record
    /// here), in which case only what was left undone is done.
    pub(crate) fn restart_unanswered(&mut self, now_ms: u64) {
        let mut restarted = 0;
        for turn in self.hooks.accepted().to_vec() {
            if self.agents.is_queued(&turn.run_id) {
                continue;
            }
            if let Some(text) = self.agents.reply_in_transcript(&turn.session_key, &turn.run_id) {
                let done = Finished {
                    status: "ok",
                    text,
                    error: None,
                    ..Finished::failed(&turn.session_key, &turn.agent_id, now_ms, "")
                };
                self.run_ended(now_ms, &turn.run_id, &done);
                continue;
            }
            restarted += 1;
            if let Err(why) = self.start_turn(now_ms, &turn, Origin::Nobody) {
                self.cx
                    .net
                    .log(now_ms, LogLevel::Warn, format!("hook run {}: {why}", turn.run_id));
            }
        }
        if restarted > 0 {
            let line = format!("hooks: {restarted} accepted turn(s) whose run was interrupted run again");
            self.cx.net.log(now_ms, LogLevel::Warn, line);
        }
    }
}
