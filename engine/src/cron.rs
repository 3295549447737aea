//! Cron jobs and heartbeats as a part of the gateway: the `cron.*`, `wake`, `last-heartbeat`,
//! `set-heartbeats` and `system-event` methods, the `cron` and `heartbeat` events, the jobs and
//! run history files, and the agent runs that carry the jobs out. When a job is due is
//! [`crate::scheduler`]'s to say.
//!
//! A job's payload is carried out like this:
//! - `systemEvent`: the text is queued for the agent's main session; with `wakeMode: "now"` a
//!   heartbeat turn runs at once and reads it, otherwise the next heartbeat does.
//! - `agentTurn`: an agent run in session `agent:<id>:cron:<jobId>` (`isolated`), in the agent's
//!   main session (`current`), or in the session a `session:<key>` target names. With delivery
//!   mode `announce` (the CLI's default for these jobs) the reply is posted into the agent's
//!   main session, where the Control UI shows it; Clawgate has no chat channels yet, so a
//!   delivery to a named channel is reported `not-delivered`, never dropped silently.
//! - `heartbeat` (the job each heartbeat setting declares, `heartbeat:<agent>`): a heartbeat turn.
//!
//! A heartbeat turn is a run on the agent's main session that sends no `agent` / `chat` events to
//! operators, as OpenClaw's do; its outcome is the `heartbeat` event and `last-heartbeat`.

use crate::agents::{AgentHub, Agents, Finished, Origin, RunOptions, RunRequest};
use crate::conns::Timer;
use crate::context::Ctx;
use crate::log_ring::LogLevel;
use crate::output::{ConnId, Output};
use crate::scheduler::{
    check_job_shape, CronJob, JobState, RunOutcome, RunStatus, Schedule, Scheduler, StartedRun, TimeZones, UtcOnly,
    DEFAULT_HEARTBEAT_PROMPT, JOBS_FILE, RUNS_DIR,
};
use clawgate_proto::frame::{to_raw, ErrorCode, ErrorShape, RequestFrame};
use clawgate_proto::session::AgentId;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};

/// Longest run of an `agentTurn` job without its own `timeoutSeconds` (OpenClaw's watchdog).
const AGENT_TURN_TIMEOUT_MS: u64 = 3_600_000;
/// Longest heartbeat turn.
const HEARTBEAT_TIMEOUT_MS: u64 = 600_000;
/// Largest page of `cron.list` / `cron.runs` (the CLI asks for 200).
const MAX_PAGE: usize = 200;
/// System events kept per session until a heartbeat reads them.
const MAX_PENDING_EVENTS: usize = 20;
/// The reply a heartbeat turn gives when nothing needs attention.
const HEARTBEAT_OK: &str = "HEARTBEAT_OK";

/// What an agent run started by this part is for.
enum Purpose {
    /// A heartbeat turn, for a cron run (a heartbeat job, or a system event that wakes now) or
    /// for `wake`.
    Heartbeat {
        run: Option<StartedRun>,
        summary: Option<String>,
    },
    /// An `agentTurn` job's run.
    AgentTurn { run: StartedRun, delivery: Delivery },
}

#[derive(Clone)]
enum Delivery {
    None,
    /// Into the agent's main session.
    MainSession {
        session_key: String,
        agent: String,
    },
    /// To a channel Clawgate does not have.
    Unavailable(String),
}

/// The scheduler's state in the gateway.
#[derive(Default)]
pub(crate) struct Cron {
    sched: Scheduler,
    /// Agent runs of this part, by run id.
    active: HashMap<String, Purpose>,
    /// Runs `cron.run` started, begun on the next timer turn (after the answer went out).
    forced: Vec<StartedRun>,
    timer_at: Option<u64>,
    /// `set-heartbeats`: off stops heartbeat turns until it is turned on again (not persisted,
    /// as with OpenClaw).
    heartbeats_off: bool,
    last_heartbeat: Option<Value>,
    /// System events waiting for a heartbeat, by session key.
    pending_events: BTreeMap<String, Vec<String>>,
    /// Where cron expressions' time zones come from.
    zones: ZoneDb,
}

/// The runtime's zone database; UTC only until one is given.
struct ZoneDb(Box<dyn TimeZones + Send>);

impl Default for ZoneDb {
    fn default() -> Self {
        ZoneDb(Box::new(UtcOnly))
    }
}

/// The part at work on an input.
pub(crate) struct CronPart<'a> {
    pub cron: &'a mut Cron,
    pub agents: &'a mut AgentHub,
    pub cx: Ctx<'a>,
    /// The gateway process's id (`processInstanceId` of `cron.run`).
    pub instance_id: &'a str,
}

fn invalid(method: &str, reason: impl std::fmt::Display) -> ErrorShape {
    ErrorShape::new(ErrorCode::InvalidRequest, format!("invalid {method} params: {reason}"))
}

fn not_found(id: &str) -> ErrorShape {
    ErrorShape::new(
        ErrorCode::InvalidRequest,
        format!("cron job not found: {id}. List automations and retry with a current job id."),
    )
    .with_details(json!({"code": "CRON_JOB_NOT_FOUND", "jobId": id}))
}

fn job_id_param(p: &Value) -> Option<&str> {
    p.get("id")
        .or_else(|| p.get("jobId"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn runs_file(id: &str) -> String {
    format!("{RUNS_DIR}/{id}.jsonl")
}

fn preview(text: &str) -> String {
    let t = text.trim();
    match t.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &t[..i]),
        None => t.to_owned(),
    }
}

impl Cron {
    /// Reads the jobs and run histories back at start (see [`Scheduler::restore`]).
    pub(crate) fn restore(
        &mut self,
        config: &crate::config::GatewayConfig,
        agents: &AgentHub,
        jobs_text: Option<&str>,
        runs: &[(String, String)],
        zones: Box<dyn TimeZones + Send>,
        now_ms: u64,
    ) -> Result<usize, String> {
        self.zones = ZoneDb(zones);
        let (sched, interrupted) = Scheduler::restore(
            jobs_text,
            runs,
            now_ms,
            &config.cron,
            &config.host_time_zone,
            &*self.zones.0,
            &|run_id| agents.is_queued(run_id),
        )?;
        self.sched = sched;
        Ok(interrupted.len())
    }

    /// Jobs, for tests and figures.
    pub(crate) fn job_count(&self) -> usize {
        self.sched.jobs().len()
    }
}

impl CronPart<'_> {
    fn agents(&mut self) -> Agents<'_> {
        Agents {
            hub: &mut *self.agents,
            cx: self.cx.reborrow(),
        }
    }

    fn default_agent(&self) -> String {
        self.cx.config.session_routing().default_agent.as_str().to_owned()
    }

    fn main_session(&self, agent: &str) -> String {
        self.cx
            .config
            .session_routing()
            .main_session(Some(&AgentId::normalize(agent)))
    }

    fn persist_jobs(&mut self) {
        let text = self.cron.sched.jobs_file();
        self.cx.net.persist_file(JOBS_FILE, text);
    }

    fn persist_runs(&mut self, id: &str) {
        let text = self.cron.sched.runs_file(id);
        self.cx.net.persist_file(runs_file(id), text);
    }

    fn event(&mut self, now_ms: u64, payload: Value) {
        self.cx.net.broadcast(now_ms, "cron", &to_raw(&payload), false, None);
    }

    /// Arms the timer for the next due job (or at once for forced runs).
    pub(crate) fn arm(&mut self, now_ms: u64) {
        let next = if !self.cron.forced.is_empty() {
            Some(now_ms)
        } else if self.cx.config.cron.enabled {
            self.cron.sched.next_wake().map(|at| at.max(now_ms))
        } else {
            None
        };
        if let Some(at) = next {
            if self.cron.timer_at.is_none_or(|t| at < t || t < now_ms) {
                self.cron.timer_at = Some(at);
                self.cx.net.schedule(at, Timer::Cron);
            }
        }
    }

    /// The timer: forced runs begin, then the jobs that are due, as many as may run at once.
    pub(crate) fn on_timer(&mut self, now_ms: u64) {
        if self.cron.timer_at.is_some_and(|t| t <= now_ms) {
            self.cron.timer_at = None;
        }
        for run in std::mem::take(&mut self.cron.forced) {
            self.begin(now_ms, run);
        }
        if self.cx.config.cron.enabled {
            let max = self.cx.config.cron.max_concurrent_runs;
            for run in self.cron.sched.take_due(now_ms, max) {
                self.begin(now_ms, run);
            }
        }
        self.arm(now_ms);
    }

    /// Starts carrying out a claimed run.
    fn begin(&mut self, now_ms: u64, run: StartedRun) {
        let Some(job) = self.cron.sched.get(&run.job_id).cloned() else {
            return;
        };
        self.persist_jobs();
        self.event(
            now_ms,
            json!({"jobId": job.id, "action": "started", "job": job.to_value(), "runAtMs": run.run_at_ms}),
        );
        let agent = job
            .agent_id()
            .map_or_else(|| self.default_agent(), |a| AgentId::normalize(a).as_str().to_owned());
        let kind = job.payload.get("kind").and_then(Value::as_str).unwrap_or("");
        match kind {
            "heartbeat" => {
                if self.cron.heartbeats_off {
                    return self.skip(now_ms, &run, "heartbeats are turned off (set-heartbeats)");
                }
                self.heartbeat_turn(now_ms, &agent, Some(run), None);
            }
            "systemEvent" => {
                let text = job.payload.get("text").and_then(Value::as_str).unwrap_or("").to_owned();
                let session = self.main_session(&agent);
                self.queue_event(&session, &text);
                if job.wake_mode == "now" {
                    self.heartbeat_turn(now_ms, &agent, Some(run), Some(text));
                } else {
                    self.finish(now_ms, &run, RunOutcome::ok(Some(text), Some(session)));
                }
            }
            "agentTurn" => self.agent_turn(now_ms, &job, &agent, run),
            other => {
                let error = format!("payload kind {other} cannot run here");
                self.fail(now_ms, &run, &error);
            }
        }
    }

    fn queue_event(&mut self, session: &str, text: &str) {
        if text.trim().is_empty() {
            return;
        }
        let list = self.cron.pending_events.entry(session.to_owned()).or_default();
        list.push(text.to_owned());
        if list.len() > MAX_PENDING_EVENTS {
            list.remove(0);
        }
    }

    fn skip(&mut self, now_ms: u64, run: &StartedRun, reason: &str) {
        self.finish(now_ms, run, RunOutcome::not_done(RunStatus::Skipped, reason));
    }

    fn fail(&mut self, now_ms: u64, run: &StartedRun, error: &str) {
        self.finish(now_ms, run, RunOutcome::not_done(RunStatus::Error, error));
    }

    /// Runs a heartbeat turn on the agent's main session; the queued system events go with it.
    /// A turn cannot run without a worker: the run is skipped and says why.
    fn heartbeat_turn(&mut self, now_ms: u64, agent: &str, run: Option<StartedRun>, summary: Option<String>) {
        let session = self.main_session(agent);
        if !self.agents.agent_has_worker(agent) {
            let reason = format!("agent {agent} has no worker online");
            self.heartbeat_event(
                now_ms,
                json!({
                    "ts": now_ms, "status": "skipped", "reason": "agent-offline", "preview": "", "hasMedia": false,
                    "durationMs": 0, "message": reason,
                }),
            );
            if let Some(run) = run {
                match summary {
                    // The event waits in the queue for the next heartbeat.
                    Some(text) => self.finish(now_ms, &run, RunOutcome::ok(Some(text), Some(session))),
                    None => self.skip(now_ms, &run, &reason),
                }
            }
            return;
        }
        let prompt = self
            .cx
            .config
            .cron
            .heartbeat_of(agent, &self.default_agent())
            .and_then(|h| h.prompt.clone())
            .unwrap_or_else(|| DEFAULT_HEARTBEAT_PROMPT.to_owned());
        let mut message = prompt;
        if let Some(events) = self.cron.pending_events.remove(&session) {
            message.push_str("\n\nSystem events since the last heartbeat:");
            for e in events {
                message.push_str("\n- ");
                message.push_str(&e);
            }
        }
        let run_id = format!("heartbeat:{}", self.cx.random_uuid());
        let started = self.agents().start_run(
            now_ms,
            RunRequest {
                run_id: run_id.clone(),
                session_key: session,
                agent_id: agent.to_owned(),
                message,
                origin: Origin::Scheduled,
                timeout_ms: HEARTBEAT_TIMEOUT_MS,
                options: RunOptions::default(),
                created_via: "heartbeat",
                quiet: true,
                ack: None,
            },
        );
        match started {
            Ok(_) => {
                self.cron.active.insert(run_id, Purpose::Heartbeat { run, summary });
            }
            Err(e) => {
                if let Some(run) = run {
                    self.fail(now_ms, &run, &e.message);
                }
            }
        }
    }

    /// Where an `agentTurn` job's reply goes (see the module documentation).
    fn delivery_for(&self, job: &CronJob, agent: &str, session: &str) -> Delivery {
        match job.extra.get("delivery") {
            None | Some(Value::Null) => Delivery::None,
            Some(d) => match d.get("mode").and_then(Value::as_str) {
                Some("announce") => match d.get("channel").and_then(Value::as_str) {
                    None | Some("last" | "webchat" | "") => {
                        let main = self.main_session(agent);
                        if main == session {
                            Delivery::None
                        } else {
                            Delivery::MainSession {
                                session_key: main,
                                agent: agent.to_owned(),
                            }
                        }
                    }
                    Some(channel) => Delivery::Unavailable(format!("channel {channel} is not configured in Clawgate")),
                },
                Some("webhook") => Delivery::Unavailable("webhook delivery is not supported by Clawgate".into()),
                _ => Delivery::None,
            },
        }
    }

    fn agent_turn(&mut self, now_ms: u64, job: &CronJob, agent: &str, run: StartedRun) {
        let session = match job.session_target.as_str() {
            "current" => self.main_session(agent),
            t => match t.strip_prefix("session:") {
                Some(key) => key.trim().to_owned(),
                None => format!("agent:{agent}:cron:{}", job.id),
            },
        };
        let delivery = self.delivery_for(job, agent, &session);
        let message = job
            .payload
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let timeout_ms = job
            .payload
            .get("timeoutSeconds")
            .and_then(Value::as_u64)
            .filter(|s| *s > 0)
            .map_or(AGENT_TURN_TIMEOUT_MS, |s| s.saturating_mul(1000));
        let options = RunOptions {
            model: job.payload.get("model").and_then(Value::as_str).map(str::to_owned),
            ..RunOptions::default()
        };
        let started = self.agents().start_run(
            now_ms,
            RunRequest {
                run_id: run.run_id.clone(),
                session_key: session,
                agent_id: agent.to_owned(),
                message,
                origin: Origin::Scheduled,
                timeout_ms,
                options,
                created_via: "cron",
                quiet: false,
                ack: None,
            },
        );
        match started {
            Ok(_) => {
                self.cron
                    .active
                    .insert(run.run_id.clone(), Purpose::AgentTurn { run, delivery });
            }
            Err(e) => self.fail(now_ms, &run, &e.message),
        }
    }

    fn heartbeat_event(&mut self, now_ms: u64, payload: Value) {
        self.cron.last_heartbeat = Some(payload.clone());
        self.cx
            .net
            .broadcast(now_ms, "heartbeat", &to_raw(&payload), false, None);
    }

    /// Agent runs of the scheduler that ended.
    pub(crate) fn runs_ended(&mut self, now_ms: u64, ended: Vec<(String, Finished)>) {
        for (run_id, finished) in ended {
            match self.cron.active.remove(&run_id) {
                Some(Purpose::Heartbeat { run, summary }) => {
                    let text = finished.text.trim();
                    let (status, reason, message) = match finished.status {
                        "ok" if text.is_empty() => ("ok-empty", None, None),
                        "ok" if text.starts_with(HEARTBEAT_OK) || text.ends_with(HEARTBEAT_OK) => ("ok-token", None, None),
                        "ok" => (
                            "skipped",
                            Some("no-route"),
                            Some("Heartbeat has no delivery route: Clawgate has no chat channels yet, so the reply stays in the main session."),
                        ),
                        _ => ("failed", finished.error.as_deref(), None),
                    };
                    let mut payload = json!({
                        "ts": now_ms, "status": status, "preview": preview(text), "hasMedia": false,
                        "durationMs": finished.duration_ms,
                    });
                    if let Some(r) = reason {
                        payload["reason"] = json!(r);
                    }
                    if let Some(m) = message {
                        payload["message"] = json!(m);
                    }
                    self.heartbeat_event(now_ms, payload);
                    if let Some(run) = run {
                        let ok = finished.status == "ok";
                        self.finish(
                            now_ms,
                            &run,
                            RunOutcome {
                                status: if ok { RunStatus::Ok } else { RunStatus::Error },
                                error: (!ok).then(|| {
                                    finished
                                        .error
                                        .clone()
                                        .unwrap_or_else(|| format!("run {}", finished.status))
                                }),
                                summary: summary.or_else(|| Some(preview(text))),
                                delivery_status: "not-requested".into(),
                                session_key: Some(finished.session_key.clone()),
                            },
                        );
                    }
                }
                Some(Purpose::AgentTurn { run, delivery }) => {
                    let ok = finished.status == "ok";
                    let (delivery_status, delivery_error) = match (&delivery, ok) {
                        (_, false) | (Delivery::None, _) => ("not-requested", None),
                        (Delivery::MainSession { session_key, agent }, true) => {
                            let (key, agent) = (session_key.clone(), agent.clone());
                            self.agents().post_message(now_ms, &key, &agent, finished.text.trim());
                            ("delivered", None)
                        }
                        (Delivery::Unavailable(why), true) => ("not-delivered", Some(why.clone())),
                    };
                    self.finish(
                        now_ms,
                        &run,
                        RunOutcome {
                            status: if ok { RunStatus::Ok } else { RunStatus::Error },
                            error: if ok {
                                delivery_error
                            } else {
                                Some(
                                    finished
                                        .error
                                        .clone()
                                        .unwrap_or_else(|| format!("run {}", finished.status)),
                                )
                            },
                            summary: Some(preview(&finished.text)),
                            delivery_status: delivery_status.into(),
                            session_key: Some(finished.session_key.clone()),
                        },
                    );
                }
                // A run restored from the agents' queue after a restart: the job still waits
                // for it.
                None => {
                    let Some(job) = self
                        .cron
                        .sched
                        .jobs()
                        .iter()
                        .find(|j| j.state.running_run_id.as_deref() == Some(run_id.as_str()))
                        .cloned()
                    else {
                        continue;
                    };
                    let run = StartedRun {
                        job_id: job.id.clone(),
                        run_id: run_id.clone(),
                        run_at_ms: job.state.running_at_ms.unwrap_or(now_ms),
                        manual: run_id.starts_with("manual:"),
                    };
                    let delivery = self.delivery_for(&job, &finished.agent_id, &finished.session_key);
                    self.cron
                        .active
                        .insert(run_id.clone(), Purpose::AgentTurn { run, delivery });
                    self.runs_ended(now_ms, vec![(run_id, finished)]);
                }
            }
        }
    }

    /// Records a run's end: history, state, files, the `finished` event; then the next due job.
    fn finish(&mut self, now_ms: u64, run: &StartedRun, outcome: RunOutcome) {
        let Some(done) = self.cron.sched.finish(run, outcome, now_ms) else {
            return;
        };
        self.persist_jobs();
        let e = &done.entry;
        let job = done.job.as_ref().or(done.removed.as_ref()).map(CronJob::to_value);
        let mut payload = json!({
            "jobId": e.job_id, "action": "finished", "job": job, "status": e.status,
            "completionStatus": e.completion_status, "summary": e.summary, "deliveryStatus": e.delivery_status,
            "runAtMs": e.run_at_ms, "durationMs": e.duration_ms, "nextRunAtMs": e.next_run_at_ms, "runId": e.run_id,
        });
        if let Some(err) = &e.error {
            payload["error"] = json!(err);
        }
        self.event(now_ms, payload);
        if let Some(removed) = done.removed {
            self.cx.net.push_output(Output::RemoveStateFile {
                path: runs_file(&removed.id),
            });
            self.event(
                now_ms,
                json!({"jobId": removed.id, "action": "removed", "job": removed.to_value()}),
            );
        } else {
            self.persist_runs(&run.job_id);
        }
        if e.status == "error" {
            let line = format!(
                "cron job {} failed: {}",
                e.job_name,
                e.error.as_deref().unwrap_or("error")
            );
            self.cx.net.log(now_ms, LogLevel::Warn, line);
        }
        // A run's end may free the way for the next due one.
        if self.cron.timer_at.is_none_or(|t| t > now_ms) {
            self.cron.timer_at = Some(now_ms);
            self.cx.net.schedule(now_ms, Timer::Cron);
        }
    }

    /// Keeps the jobs that heartbeat settings declare (`heartbeat:<agent>`) in line with the
    /// config: at start and after every reload.
    pub(crate) fn sync_declared(&mut self, now_ms: u64) {
        let default_agent = self.default_agent();
        let mut agents: Vec<String> = self.cx.config.tool_policy.agent_ids().collect();
        if !agents.contains(&default_agent) {
            agents.push(default_agent.clone());
        }
        let mut changed = false;
        let declared: Vec<(String, String)> = self
            .cron
            .sched
            .jobs()
            .iter()
            .filter_map(|j| j.declaration_key().map(|k| (k.to_owned(), j.id.clone())))
            .filter(|(k, _)| k.starts_with("heartbeat:"))
            .collect();
        for (key, id) in &declared {
            let agent = key.trim_start_matches("heartbeat:");
            if !agents.iter().any(|a| a == agent) || self.cx.config.cron.heartbeat_of(agent, &default_agent).is_none() {
                self.cron.sched.remove(id);
                self.cx.net.push_output(Output::RemoveStateFile { path: runs_file(id) });
                changed = true;
            }
        }
        for agent in &agents {
            let Some(every_ms) = self
                .cx
                .config
                .cron
                .heartbeat_of(agent, &default_agent)
                .map(|h| h.every_ms)
            else {
                continue;
            };
            let key = format!("heartbeat:{agent}");
            match declared.iter().find(|(k, _)| *k == key) {
                Some((_, id)) => {
                    let same = matches!(self.cron.sched.get(id).map(|j| &j.schedule), Some(Schedule::Every { every_ms: e, .. }) if *e == every_ms);
                    if !same
                        && self
                            .cron
                            .sched
                            .update(id, now_ms, |j| {
                                j.schedule = Schedule::Every {
                                    every_ms,
                                    anchor_ms: now_ms,
                                };
                                Ok(true)
                            })
                            .is_ok()
                    {
                        changed = true;
                    }
                }
                None => {
                    let mut extra = Map::new();
                    extra.insert("declarationKey".into(), json!(key));
                    extra.insert("displayName".into(), json!(format!("Heartbeat ({agent})")));
                    extra.insert("agentId".into(), json!(agent));
                    let job = CronJob {
                        id: self.cx.random_uuid(),
                        name: format!("heartbeat-{agent}"),
                        enabled: true,
                        created_at_ms: now_ms,
                        updated_at_ms: now_ms,
                        schedule: Schedule::Every {
                            every_ms,
                            anchor_ms: now_ms,
                        },
                        session_target: "main".into(),
                        wake_mode: "next-heartbeat".into(),
                        payload: json!({"kind": "heartbeat"}),
                        state: JobState::default(),
                        extra,
                    };
                    if self.cron.sched.add(job, now_ms).is_ok() {
                        changed = true;
                    }
                }
            }
        }
        if changed {
            self.persist_jobs();
        }
        self.arm(now_ms);
    }

    // ----- methods -------------------------------------------------------------------------

    /// The methods of this part.
    pub(crate) fn call(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        request: &RequestFrame,
    ) -> Result<Box<RawValue>, ErrorShape> {
        let method = request.method.as_str();
        let p: Value = match request.parse_params::<Value>() {
            Ok(Value::Null) => json!({}),
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return Err(invalid(method, "params must be an object")),
            Err(e) => return Err(invalid(method, e)),
        };
        let answer = match method {
            "cron.status" => Ok(self.status()),
            "cron.list" => self.list(&p),
            "cron.get" => {
                let id = job_id_param(&p).ok_or_else(|| invalid(method, "missing id"))?;
                self.cron
                    .sched
                    .get(id)
                    .map(CronJob::to_value)
                    .ok_or_else(|| not_found(id))
            }
            "cron.add" => self.add(now_ms, &p),
            "cron.update" => self.update(now_ms, &p),
            "cron.remove" => self.remove(now_ms, &p),
            "cron.run" => self.run(now_ms, &p),
            "cron.runs" => self.runs(&p),
            "wake" => self.wake(now_ms, &p),
            "last-heartbeat" => Ok(self.cron.last_heartbeat.clone().unwrap_or(Value::Null)),
            "set-heartbeats" => {
                let enabled = p
                    .get("enabled")
                    .and_then(Value::as_bool)
                    .ok_or_else(|| invalid(method, "enabled must be true or false"))?;
                self.cron.heartbeats_off = !enabled;
                Ok(json!({"ok": true, "enabled": enabled}))
            }
            "system-event" => {
                let text = p
                    .get("text")
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| invalid(method, "text is required"))?;
                let agent = self.default_agent();
                let session = p
                    .get("sessionKey")
                    .and_then(Value::as_str)
                    .map_or_else(|| self.main_session(&agent), str::to_owned);
                self.queue_event(&session, text);
                Ok(json!({"ok": true}))
            }
            _ => Err(ErrorShape::new(
                ErrorCode::InvalidRequest,
                format!("unknown method: {method}"),
            )),
        }?;
        // Whatever changed is on disk before the caller hears of it.
        self.cx.net.hold_for_persist(conn);
        self.arm(now_ms);
        Ok(to_raw(&answer))
    }

    fn status(&self) -> Value {
        let dir = &self.cx.config.state_dir;
        let store = if dir.is_empty() {
            JOBS_FILE.to_owned()
        } else {
            format!("{}/{JOBS_FILE}", dir.trim_end_matches('/'))
        };
        json!({
            "enabled": self.cx.config.cron.enabled,
            "triggersEnabled": false,
            "storePath": store,
            "storage": "json",
            "jobs": self.cron.sched.jobs().len(),
            "nextWakeAtMs": self.cron.sched.next_wake(),
        })
    }

    fn effective_agent(&self, job: &CronJob) -> String {
        job.agent_id()
            .map_or_else(|| self.default_agent(), |a| AgentId::normalize(a).as_str().to_owned())
    }

    fn list(&self, p: &Value) -> Result<Value, ErrorShape> {
        let include_disabled = p.get("includeDisabled").and_then(Value::as_bool).unwrap_or(true);
        let enabled = p.get("enabled").and_then(Value::as_bool);
        let agent = p
            .get("agentId")
            .and_then(Value::as_str)
            .map(|a| AgentId::normalize(a).as_str().to_owned());
        let query = p.get("query").and_then(Value::as_str).map(str::to_lowercase);
        let offset = p.get("offset").and_then(Value::as_u64).unwrap_or(0) as usize;
        let limit = match p.get("limit") {
            None | Some(Value::Null) => MAX_PAGE,
            Some(l) => match l.as_u64() {
                Some(n) if n >= 1 => (n as usize).min(MAX_PAGE),
                _ => return Err(invalid("cron.list", "limit must be a positive whole number")),
            },
        };
        let matching: Vec<&CronJob> = self
            .cron
            .sched
            .jobs()
            .iter()
            .filter(|j| include_disabled || j.enabled)
            .filter(|j| enabled.is_none_or(|e| j.enabled == e))
            .filter(|j| agent.as_ref().is_none_or(|a| self.effective_agent(j) == *a))
            .filter(|j| query.as_ref().is_none_or(|q| j.name.to_lowercase().contains(q)))
            .collect();
        let total = matching.len();
        let page: Vec<&CronJob> = matching.into_iter().skip(offset).take(limit).collect();
        let mut previews = Map::new();
        let jobs: Vec<Value> = page
            .iter()
            .map(|j| {
                previews.insert(j.id.clone(), delivery_preview(j));
                let mut v = j.to_value();
                v["effectiveAgentId"] = json!(self.effective_agent(j));
                v
            })
            .collect();
        let end = offset + jobs.len();
        let has_more = end < total;
        Ok(json!({
            "jobs": jobs, "snapshotRevision": self.snapshot_revision(), "total": total, "offset": offset,
            "limit": limit, "hasMore": has_more, "nextOffset": if has_more { json!(end) } else { Value::Null },
            "deliveryPreviews": previews,
        }))
    }

    /// Changes whenever a job does: the CLI pages through one revision.
    fn snapshot_revision(&self) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for j in self.cron.sched.jobs() {
            h.update(j.id.as_bytes());
            h.update(j.updated_at_ms.to_le_bytes());
            h.update([u8::from(j.enabled)]);
        }
        let digest = h.finalize();
        format!("sha256:{}", clawgate_proto::device::base64url_encode(&digest))
    }

    fn add(&mut self, now_ms: u64, p: &Value) -> Result<Value, ErrorShape> {
        let m = "cron.add";
        let name = p
            .get("name")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| invalid(m, "name is required"))?;
        if let Some(key) = p.get("declarationKey").and_then(Value::as_str) {
            if let Some(existing) = self.cron.sched.jobs().iter().find(|j| j.declaration_key() == Some(key)) {
                // A declaration is idempotent: the job it declared is the answer.
                let mut v = existing.to_value();
                v["deliveryPreview"] = delivery_preview(existing);
                return Ok(v);
            }
        }
        let schedule = Schedule::parse(
            p.get("schedule").unwrap_or(&Value::Null),
            now_ms,
            &self.cx.config.host_time_zone,
            &*self.cron.zones.0,
        )
        .map_err(|e| invalid(m, e))?;
        let payload = p
            .get("payload")
            .cloned()
            .ok_or_else(|| invalid(m, "payload is required"))?;
        let wake_mode = p.get("wakeMode").and_then(Value::as_str).unwrap_or("now").to_owned();
        let target = check_job_shape(&payload, p.get("sessionTarget").and_then(Value::as_str), &wake_mode)
            .map_err(|e| invalid(m, e))?;
        if let Some(agent) = p.get("agentId").and_then(Value::as_str) {
            self.agents.known_agent(self.cx.config, Some(agent))?;
        }
        let mut extra = Map::new();
        for key in [
            "agentId",
            "description",
            "delivery",
            "deleteAfterRun",
            "declarationKey",
            "displayName",
            "sessionKey",
        ] {
            if let Some(v) = p.get(key).filter(|v| !v.is_null()) {
                extra.insert(key.into(), v.clone());
            }
        }
        let job = CronJob {
            id: self.cx.random_uuid(),
            name: name.to_owned(),
            enabled: p.get("enabled").and_then(Value::as_bool).unwrap_or(true),
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            schedule,
            session_target: target,
            wake_mode,
            payload: strip_nulls(payload),
            state: JobState::default(),
            extra,
        };
        let job = self.cron.sched.add(job, now_ms).map_err(|e| invalid(m, e))?.clone();
        self.persist_jobs();
        let v = job.to_value();
        self.event(
            now_ms,
            json!({"jobId": job.id, "action": "added", "job": v, "nextRunAtMs": job.state.next_run_at_ms}),
        );
        let mut answer = v;
        answer["deliveryPreview"] = delivery_preview(&job);
        Ok(answer)
    }

    fn update(&mut self, now_ms: u64, p: &Value) -> Result<Value, ErrorShape> {
        let m = "cron.update";
        let id = job_id_param(p).ok_or_else(|| invalid(m, "missing id"))?.to_owned();
        let patch = p
            .get("patch")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid(m, "patch must be an object"))?
            .clone();
        if self.cron.sched.get(&id).is_none() {
            return Err(not_found(&id));
        }
        if let Some(agent) = patch.get("agentId").and_then(Value::as_str) {
            self.agents.known_agent(self.cx.config, Some(agent))?;
        }
        let host_zone = self.cx.config.host_time_zone.clone();
        let zones = &*self.cron.zones.0;
        let job = self
            .cron
            .sched
            .update(&id, now_ms, |j| {
                let mut reschedule = false;
                for (key, value) in &patch {
                    match key.as_str() {
                        "name" => {
                            j.name = value
                                .as_str()
                                .map(str::trim)
                                .filter(|n| !n.is_empty())
                                .ok_or("name must be a non-empty string")?
                                .to_owned()
                        }
                        "enabled" => j.enabled = value.as_bool().ok_or("enabled must be true or false")?,
                        "schedule" => {
                            j.schedule = Schedule::parse(value, now_ms, &host_zone, zones)?;
                            reschedule = true;
                        }
                        "sessionTarget" => {
                            j.session_target = value.as_str().ok_or("sessionTarget must be a string")?.to_owned()
                        }
                        "wakeMode" => j.wake_mode = value.as_str().ok_or("wakeMode must be a string")?.to_owned(),
                        "payload" => {
                            // A payload patch without a kind edits the payload in place.
                            let mut merged = match (value.get("kind"), &j.payload) {
                                (None, Value::Object(old)) => Value::Object(old.clone()),
                                _ => json!({}),
                            };
                            if let (Value::Object(target), Value::Object(new)) = (&mut merged, value) {
                                target.extend(new.clone());
                            }
                            j.payload = strip_nulls(merged);
                        }
                        "state" | "id" | "createdAtMs" | "updatedAtMs" => {
                            return Err(format!("{key} cannot be changed"));
                        }
                        _ if value.is_null() => {
                            j.extra.remove(key);
                        }
                        _ => {
                            j.extra.insert(key.clone(), value.clone());
                        }
                    }
                }
                if j.payload.get("kind").and_then(Value::as_str) != Some("heartbeat") {
                    let target = Some(j.session_target.clone());
                    j.session_target = check_job_shape(&j.payload, target.as_deref(), &j.wake_mode)?;
                }
                Ok(reschedule)
            })
            .map_err(|e| invalid(m, e))?
            .clone();
        self.persist_jobs();
        let v = job.to_value();
        self.event(
            now_ms,
            json!({"jobId": job.id, "action": "updated", "job": v, "nextRunAtMs": job.state.next_run_at_ms}),
        );
        Ok(v)
    }

    fn remove(&mut self, now_ms: u64, p: &Value) -> Result<Value, ErrorShape> {
        let id = job_id_param(p)
            .ok_or_else(|| invalid("cron.remove", "missing id"))?
            .to_owned();
        if self
            .cron
            .sched
            .get(&id)
            .is_some_and(|j| j.declaration_key().is_some_and(|k| k.starts_with("heartbeat:")))
        {
            return Err(invalid(
                "cron.remove",
                "this job is declared by the heartbeat settings: set agents.defaults.heartbeat.every (or the agent's) to 0m, or disable it",
            ));
        }
        let Some(job) = self.cron.sched.remove(&id) else {
            return Ok(json!({"ok": true, "removed": false}));
        };
        self.persist_jobs();
        self.cx
            .net
            .push_output(Output::RemoveStateFile { path: runs_file(&id) });
        // A run in progress goes on; its end finds no job and is dropped.
        self.event(now_ms, json!({"jobId": id, "action": "removed", "job": job.to_value()}));
        Ok(json!({"ok": true, "removed": true}))
    }

    fn run(&mut self, now_ms: u64, p: &Value) -> Result<Value, ErrorShape> {
        let id = job_id_param(p)
            .ok_or_else(|| invalid("cron.run", "missing id"))?
            .to_owned();
        let force = match p.get("mode").and_then(Value::as_str) {
            None | Some("force") => true,
            Some("due") => false,
            Some(_) => return Err(invalid("cron.run", "mode must be force or due")),
        };
        if self.cron.sched.get(&id).is_none() {
            return Err(not_found(&id));
        }
        if self
            .cron
            .sched
            .get(&id)
            .is_some_and(|j| j.state.running_at_ms.is_some())
        {
            return Ok(json!({"ok": true, "ran": false, "reason": "already-running"}));
        }
        match self
            .cron
            .sched
            .run_now(&id, now_ms, force)
            .map_err(|e| invalid("cron.run", e))?
        {
            None => Ok(json!({"ok": true, "ran": false, "reason": "not-due"})),
            Some(run) => {
                let run_id = run.run_id.clone();
                self.persist_jobs();
                self.cron.forced.push(run);
                Ok(json!({"ok": true, "enqueued": true, "runId": run_id, "processInstanceId": self.instance_id}))
            }
        }
    }

    fn runs(&self, p: &Value) -> Result<Value, ErrorShape> {
        // Without an id: the history of every job (the Control UI's "Run history").
        let id = job_id_param(p);
        let limit = p
            .get("limit")
            .and_then(Value::as_u64)
            .unwrap_or(50)
            .clamp(1, MAX_PAGE as u64) as usize;
        let offset = p.get("offset").and_then(Value::as_u64).unwrap_or(0) as usize;
        let status = p.get("status").and_then(Value::as_str);
        let run_id = p.get("runId").and_then(Value::as_str);
        let mut all: Vec<&crate::scheduler::RunEntry> = match id {
            Some(id) => self.cron.sched.runs_of(id).collect(),
            None => self
                .cron
                .sched
                .jobs()
                .iter()
                .flat_map(|j| self.cron.sched.runs_of(&j.id))
                .collect(),
        };
        all.sort_by_key(|e| e.ts);
        let mut entries: Vec<Value> = all
            .into_iter()
            .filter(|e| status.is_none_or(|s| s == "all" || e.status == s))
            .filter(|e| run_id.is_none_or(|r| e.run_id == r))
            .filter_map(|e| serde_json::to_value(e).ok())
            .collect();
        if p.get("sortDir").and_then(Value::as_str) != Some("asc") {
            entries.reverse();
        }
        let total = entries.len();
        let page: Vec<Value> = entries.into_iter().skip(offset).take(limit).collect();
        let end = offset + page.len();
        let has_more = end < total;
        Ok(json!({
            "entries": page, "total": total, "offset": offset, "limit": limit, "hasMore": has_more,
            "nextOffset": if has_more { json!(end) } else { Value::Null },
        }))
    }

    fn wake(&mut self, now_ms: u64, p: &Value) -> Result<Value, ErrorShape> {
        let mode = p.get("mode").and_then(Value::as_str).unwrap_or("now");
        if mode != "now" && mode != "next-heartbeat" {
            return Err(invalid("wake", "mode must be now or next-heartbeat"));
        }
        let agent = self
            .agents
            .known_agent(self.cx.config, p.get("agentId").and_then(Value::as_str))?
            .as_str()
            .to_owned();
        let session = p
            .get("sessionKey")
            .and_then(Value::as_str)
            .map_or_else(|| self.main_session(&agent), str::to_owned);
        if let Some(text) = p.get("text").and_then(Value::as_str) {
            self.queue_event(&session, text);
        }
        if mode == "now" && !self.cron.heartbeats_off {
            self.heartbeat_turn(now_ms, &agent, None, None);
        }
        Ok(json!({"ok": true}))
    }

    /// `POST /hooks/wake`: `text` for `agent`'s main session (or `session`, already checked by
    /// the hook policy); with `now`, a heartbeat turn. `coalesced` when the same text is already
    /// the session's newest pending event, as OpenClaw reports it.
    pub(crate) fn wake_from_hook(
        &mut self,
        now_ms: u64,
        text: &str,
        now: bool,
        agent: &str,
        session: Option<&str>,
    ) -> &'static str {
        let session = session.map_or_else(|| self.main_session(agent), str::to_owned);
        let coalesced = self
            .cron
            .pending_events
            .get(&session)
            .and_then(|events| events.last())
            .is_some_and(|last| last == text);
        if !coalesced {
            self.queue_event(&session, text);
        }
        if now && !self.cron.heartbeats_off {
            self.heartbeat_turn(now_ms, agent, None, None);
        }
        if coalesced {
            "coalesced"
        } else {
            "queued"
        }
    }
}

fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        v => v,
    }
}

/// How a job's result is delivered, in words (`deliveryPreviews` of `cron.list`).
fn delivery_preview(job: &CronJob) -> Value {
    let (label, detail) = match job
        .extra
        .get("delivery")
        .and_then(|d| d.get("mode"))
        .and_then(Value::as_str)
    {
        Some("announce") => match job
            .extra
            .get("delivery")
            .and_then(|d| d.get("channel"))
            .and_then(Value::as_str)
        {
            None | Some("last" | "webchat" | "") => ("main session", "posted into the agent's main session".to_owned()),
            Some(c) => ("not available", format!("channel {c} is not configured")),
        },
        Some("webhook") => ("not available", "webhook delivery is not supported".to_owned()),
        _ => ("not requested", "not requested".to_owned()),
    };
    json!({"label": label, "detail": detail})
}
