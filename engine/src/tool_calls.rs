//! `tools.invoke`: the policy decides, the runtime runs the tool, the caller gets the result and
//! the audit log gets one line.

use crate::agents::{AgentHub, Agents};
use crate::approvals::{Approvals, ExecGate, PendingApproval, APPROVALS_FILE, APPROVAL_TTL_MS};
use crate::conns::Timer;
use crate::context::Ctx;
use crate::idempotency::{CachedAnswer, IdempotencyCache};
use crate::log_ring::LogLevel;
use crate::output::{ConnId, Output};
use crate::reply::json_response;
use crate::reply::Reply;
use crate::tool_policy::{ToolDecision, ToolDenial, WorkspaceAccess};
use clawgate_proto::frame::{to_raw, ErrorCode, ErrorShape, RequestFrame, ResponseFrame};
use clawgate_proto::http::Response;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

pub use crate::output::ToolRun;

/// What kind of failure ended a tool run; its code is made only at the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolFailureKind {
    /// The arguments do not fit the tool's schema.
    InvalidArguments,
    /// The path leaves the workspace or is not acceptable.
    PathRefused,
    /// The workspace access does not permit the call.
    AccessDenied,
    /// `edit` did not find exactly one occurrence.
    EditMismatch,
    /// The file or program does not exist.
    NotFound,
    /// The file system said no.
    Io,
    /// The sandbox the call needs could not be set up; the call did not run.
    SandboxUnavailable,
}

impl ToolFailureKind {
    /// The stable code of `ToolsInvokeResult.error.code`, e.g. `PATH_REFUSED`.
    pub const fn code(self) -> &'static str {
        match self {
            ToolFailureKind::InvalidArguments => "INVALID_ARGUMENTS",
            ToolFailureKind::PathRefused => "PATH_REFUSED",
            ToolFailureKind::AccessDenied => "ACCESS_DENIED",
            ToolFailureKind::EditMismatch => "EDIT_MISMATCH",
            ToolFailureKind::NotFound => "NOT_FOUND",
            ToolFailureKind::Io => "IO_ERROR",
            ToolFailureKind::SandboxUnavailable => "SANDBOX_UNAVAILABLE",
        }
    }

    /// The HTTP status and error type of `POST /tools/invoke` for this failure.
    pub const fn http(self) -> (u16, &'static str) {
        match self {
            ToolFailureKind::InvalidArguments => (400, "invalid_request"),
            ToolFailureKind::PathRefused | ToolFailureKind::AccessDenied => (403, "tool_call_blocked"),
            _ => (500, "tool_error"),
        }
    }
}

/// Why a tool run failed, as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolFailure {
    /// What kind of failure.
    pub kind: ToolFailureKind,
    /// What happened.
    pub message: String,
}

/// The HTTP answer for a finished tool run.
pub(crate) fn tool_http_response(tool: &str, result: Result<&RawValue, &ToolFailure>) -> Response {
    #[derive(serde::Serialize)]
    struct Ran<'a> {
        ok: bool,
        result: &'a RawValue,
    }
    match result {
        Ok(output) => json_response(
            200,
            &Ran {
                ok: true,
                result: output,
            },
        ),
        Err(failure) => {
            let (status, kind) = failure.kind.http();
            json_response(
                status,
                &json!({"ok": false, "error": {"type": kind, "code": failure.kind.code(), "message": failure.message, "tool": tool}}),
            )
        }
    }
}

/// Where the answer of a running tool call goes.
pub(crate) enum ToolReply {
    /// A `res` frame for this request on this WebSocket.
    Ws { conn: ConnId, request_id: String },
    /// The HTTP response of `POST /tools/invoke` on this connection.
    Http { conn: ConnId, keep_alive: bool },
}

pub(crate) struct PendingToolCall {
    reply: ToolReply,
    /// The run (and the tool call's id within it) whose requester gets `tool` events.
    run: Option<(String, String)>,
    /// What the run's `item` events call the call (`Read from note.txt`) and its detail.
    title: (String, String),
    tool: &'static str,
    agent: String,
    session_key: String,
    caller: Option<String>,
    started_ms: u64,
    idempotency_key: Option<String>,
}

/// The tool calls that are running: each has a number the runtime reports its result under.
#[derive(Default)]
pub(crate) struct RunningTools {
    pending: std::collections::HashMap<u64, PendingToolCall>,
    next: u64,
    /// The approvals file and the approvals that wait.
    approvals: Approvals,
    /// Calls that wait for an approval, with what to run once it is given.
    held: std::collections::HashMap<u64, ToolRun>,
    /// Where the host finds the programs exec runs (nothing looked up without one).
    executables: Option<Box<dyn crate::approvals::ExecutableLookup + Send>>,
    /// Answers to an approval that let its call run, owed once the call has ended (as
    /// OpenClaw's resolver hears back after the command ran): the connection, request id and
    /// answer, by call.
    resolvers: std::collections::HashMap<u64, (ConnId, String, Value)>,
}

impl RunningTools {
    /// Looks up the programs exec runs with `lookup` from now on.
    pub(crate) fn set_executables(&mut self, lookup: Box<dyn crate::approvals::ExecutableLookup + Send>) {
        self.executables = Some(lookup);
    }

    /// The number the next call will get.
    fn next_call(&self) -> u64 {
        self.next + 1
    }

    /// Records a call started under [`RunningTools::next_call`].
    fn started(&mut self, pending: PendingToolCall) -> u64 {
        self.next += 1;
        self.pending.insert(self.next, pending);
        self.next
    }

    /// The call `call`, which has ended.
    fn finished(&mut self, call: u64) -> Option<PendingToolCall> {
        self.pending.remove(&call)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ToolsInvokeParams {
    name: String,
    args: Option<serde_json::Map<String, Value>>,
    session_key: Option<String>,
    agent_id: Option<String>,
    #[allow(dead_code)]
    confirm: Option<bool>,
    idempotency_key: Option<String>,
    #[allow(dead_code)]
    conversation_read_origin: Option<String>,
    /// The run a worker calls the tool for (node role only): its session and agent apply.
    run_id: Option<String>,
    /// The model's id of the call, for the run's `item` and `tool` events (node role only).
    tool_call_id: Option<String>,
}

/// A call as both front doors (WebSocket and HTTP) describe it.
pub(crate) struct ToolCallRequest {
    pub caller: Option<String>,
    pub name: String,
    pub args: serde_json::Map<String, Value>,
    pub session_key: Option<String>,
    pub agent_id: Option<String>,
    /// Calls over HTTP also pass `gateway.tools.*`.
    pub over_http: bool,
    /// The agent run the call belongs to: its requester gets `tool` events.
    pub run_id: Option<String>,
    /// The model's id of the call within the run.
    pub tool_call_id: Option<String>,
}

/// What became of a call at once.
pub(crate) enum ToolStart {
    /// The tool is running; the answer follows.
    Running,
    /// Refused: a stable code and the reason.
    Refused { code: &'static str, message: String },
}

/// The answer of a tool that ran.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct InvokeAnswer<'a> {
    ok: bool,
    tool_name: &'a str,
    output: &'a RawValue,
    source: &'a str,
}

fn refused(tool: &str, code: &str, message: String) -> Box<RawValue> {
    to_raw(&json!({"ok": false, "toolName": tool, "error": {"code": code, "message": message}}))
}

impl RunningTools {
    /// Starts a `tools.invoke` from a WebSocket: `Ok(None)` when the tool is running (the answer
    /// follows), `Ok(Some(payload))` when it is answered at once (refused, or a repeat).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start_ws(
        &mut self,
        cx: &mut Ctx<'_>,
        agents: &mut AgentHub,
        idempotency: &mut IdempotencyCache,
        now_ms: u64,
        conn: ConnId,
        caller: Option<String>,
        request: &RequestFrame,
    ) -> Result<Option<Box<RawValue>>, ErrorShape> {
        let params: ToolsInvokeParams = request
            .parse_params()
            .map_err(|e| ErrorShape::new(ErrorCode::InvalidRequest, format!("invalid tools.invoke params: {e}")))?;
        let idempotency_key = params.idempotency_key.as_ref().map(|k| format!("tools.invoke:{k}"));
        if let Some(key) = &idempotency_key {
            if let Some(CachedAnswer::Ok(payload)) = idempotency.get(key, now_ms) {
                return Ok(Some(payload.clone()));
            }
        }
        let name = params.name.clone();
        // A worker calls tools for one of its runs, in that run's session; nothing else.
        let is_node = cx
            .net
            .session_of(conn)
            .is_some_and(|s| s.role == clawgate_proto::Role::Node);
        let tool_call_id = if is_node { params.tool_call_id.clone() } else { None };
        let (session_key, agent_id, run_id) = if is_node {
            let Some(run_id) = params.run_id else {
                return Err(ErrorShape::new(
                    ErrorCode::InvalidRequest,
                    "invalid tools.invoke params: a node calls tools for a run: runId is required",
                ));
            };
            let (key, agent) = agents.run_of_worker(conn, &run_id)?;
            (Some(key), Some(agent), Some(run_id))
        } else {
            (params.session_key, params.agent_id, None)
        };
        let call = ToolCallRequest {
            caller,
            name: params.name,
            args: params.args.unwrap_or_default(),
            session_key,
            agent_id,
            over_http: false,
            run_id,
            tool_call_id,
        };
        let reply = ToolReply::Ws {
            conn,
            request_id: request.id.clone(),
        };
        match self.begin(cx, agents, now_ms, call, reply, idempotency_key)? {
            ToolStart::Running => Ok(None),
            ToolStart::Refused { code, message } => Ok(Some(refused(&name, code, message))),
        }
    }

    /// Decides a call and, when it may run, hands it to the runtime.
    pub(crate) fn begin(
        &mut self,
        cx: &mut Ctx<'_>,
        agents: &mut AgentHub,
        now_ms: u64,
        request: ToolCallRequest,
        reply: ToolReply,
        idempotency_key: Option<String>,
    ) -> Result<ToolStart, ErrorShape> {
        let routing = cx.config.session_routing();
        let session_key = routing
            .resolve(request.session_key.as_deref(), request.agent_id.as_deref())
            .map_err(|e| ErrorShape::new(ErrorCode::InvalidRequest, format!("invalid tools.invoke params: {e}")))?;
        let agent = agents.known_agent(cx.config, Some(routing.agent_of(&session_key).as_str()))?;
        let mut decision = cx
            .config
            .tool_policy
            .decide(&routing, &agent, &session_key, &request.name);
        if request.over_http {
            if let ToolDecision::Allowed { tool, .. } = &decision {
                if let Err(why) = cx.config.tool_policy.check_http(tool) {
                    decision = ToolDecision::Denied(why);
                }
            }
        }
        let audit = |decision: &str, detail: &str| {
            json!({
                "ts": now_ms, "caller": request.caller, "agent": agent.as_str(), "sessionKey": session_key,
                "tool": request.name, "decision": decision, "detail": detail, "http": request.over_http,
            })
        };
        let (tool, workspace, sandbox) = match decision {
            ToolDecision::Denied(why) => {
                let code = if why == ToolDenial::UnknownTool {
                    "TOOL_NOT_FOUND"
                } else {
                    "TOOL_DENIED"
                };
                record_denial(cx, now_ms, audit("denied", &why.to_string()), code);
                return Ok(ToolStart::Refused {
                    code,
                    message: format!("{}: {why}", request.name),
                });
            }
            // A call the policy wants confined never runs unconfined.
            ToolDecision::Allowed {
                sandbox: Some(plan), ..
            } if cx.config.sandbox.is_none() => {
                let message = format!(
                    "{}: the policy runs this call in a sandbox ({:?} workspace access) and no sandbox is available on this host",
                    request.name, plan.access
                );
                let code = crate::tool_calls::ToolFailureKind::SandboxUnavailable.code();
                record_denial(cx, now_ms, audit("denied", "sandbox unavailable"), code);
                return Ok(ToolStart::Refused { code, message });
            }
            ToolDecision::Allowed {
                tool,
                workspace,
                sandbox,
            } => (tool, workspace, sandbox),
        };
        // An exec runs, waits for an operator's decision, or is refused, by the exec policy.
        let mut approval = None;
        if tool.name == "exec" {
            // As OpenClaw: the allowlist is matched against the program's resolved path (its
            // basename for a pattern without a path); one that resolves nowhere keeps its name.
            let named = crate::approvals::program_of(&request.args);
            let resolved = self.executables.as_ref().and_then(|l| l.resolve(&named));
            let program = resolved.clone().unwrap_or(named);
            let policy = cx.config.exec_policy_of(agent.as_str());
            let gate = match self.approvals.gate(policy, agent.as_str(), &program) {
                ExecGate::Ask(policy) => {
                    let requester = match &reply {
                        ToolReply::Ws { conn, .. } if request.run_id.is_none() => Some(*conn),
                        _ => request.run_id.as_deref().and_then(|r| agents.requester_of(r)),
                    };
                    let approvers = cx.net.approvers(requester);
                    if approvers.is_empty() {
                        self.approvals.fallback(policy, agent.as_str(), &program)
                    } else {
                        approval = Some((policy, approvers, program, resolved));
                        ExecGate::Run
                    }
                }
                gate => gate,
            };
            if let ExecGate::Deny(reason) = gate {
                record_denial(cx, now_ms, audit("denied", &reason), "EXEC_DENIED");
                return Ok(ToolStart::Refused {
                    code: "EXEC_DENIED",
                    message: reason,
                });
            }
        }
        let call = self.next_call();
        let title = call_title(tool.name, &request.args);
        let run = request.run_id.clone().map(|run_id| {
            let tool_call_id = request.tool_call_id.clone().unwrap_or_else(|| format!("call_{call}"));
            let mut run_events = Agents {
                hub: agents,
                cx: cx.reborrow(),
            };
            // Everyone watching the run sees the call as an item; its requester with the
            // `tool-events` cap also sees the call itself.
            run_events.run_item(
                now_ms,
                &run_id,
                json!({
                    "itemId": format!("tool:{tool_call_id}"), "toolCallId": tool_call_id, "name": tool.name,
                    "kind": "tool", "phase": "start", "title": title.0, "status": "running", "meta": title.1,
                    "commandBearing": tool.name == "exec", "startedAt": now_ms,
                }),
            );
            run_events.tool_event(
                now_ms,
                &run_id,
                json!({"phase": "start", "name": tool.name, "toolCallId": tool_call_id, "args": request.args}),
            );
            (run_id, tool_call_id)
        });
        self.started(PendingToolCall {
            reply,
            run,
            title,
            tool: tool.name,
            agent: agent.as_str().to_owned(),
            session_key: session_key.clone(),
            caller: request.caller.clone(),
            started_ms: now_ms,
            idempotency_key,
        });
        let command = crate::approvals::command_line(&request.args);
        let tool_run = ToolRun {
            call,
            tool: tool.name,
            args: Value::Object(request.args),
            workspace,
            agent: agent.as_str().to_owned(),
            access: sandbox.as_ref().map_or(WorkspaceAccess::ReadWrite, |plan| plan.access),
            sandboxed: sandbox.is_some(),
        };
        let Some((policy, approvers, program, resolved)) = approval else {
            cx.net.push_output(Output::RunTool(tool_run));
            return Ok(ToolStart::Running);
        };
        // The call waits; the approvers are asked, and everyone watching the run learns why.
        let id = cx.random_uuid();
        let (run_id, tool_call_id) = match &self.pending.get(&call).and_then(|p| p.run.clone()) {
            Some((r, t)) => (Some(r.clone()), Some(t.clone())),
            None => (None, None),
        };
        let request_info = json!({
            "command": command, "systemRunBinding": null, "systemRunPlan": null, "cwd": null, "nodeId": null,
            "host": "gateway", "security": policy.security.as_str(), "ask": policy.ask.as_str(), "warningText": null,
            "scope": null, "commandAnalysis": {"commandCount": 1, "nestedCommandCount": 0, "riskKinds": [], "warningLines": []},
            "unavailableDecisions": [], "allowedDecisions": ["allow-once", "allow-always", "deny"],
            "agentId": agent.as_str(), "resolvedPath": resolved, "program": program, "sessionKey": session_key.as_str(),
            "sessionId": null, "runId": run_id, "toolCallId": tool_call_id, "turnSourceChannel": "webchat",
            "turnSourceTo": session_key.as_str(), "turnSourceAccountId": null, "turnSourceThreadId": null,
            "cronExecutionSource": null, "cronOperationBinding": null,
        });
        let pending = PendingApproval {
            id: id.clone(),
            request: request_info,
            created_at_ms: now_ms,
            expires_at_ms: now_ms + APPROVAL_TTL_MS,
            call,
        };
        let event = to_raw(&json!({
            "approvalKind": "exec", "id": id, "request": pending.request,
            "createdAtMs": pending.created_at_ms, "expiresAtMs": pending.expires_at_ms,
        }));
        for conn in approvers {
            cx.net.send_event(conn, "exec.approval.requested", &event, true);
        }
        cx.net.schedule(pending.expires_at_ms, Timer::Approvals);
        self.approvals.add_pending(pending);
        self.held.insert(call, tool_run);
        if let (Some(run_id), Some(tool_call_id)) = (run_id, tool_call_id) {
            let data = json!({"phase": "waiting-approval", "approvalId": id, "toolCallId": tool_call_id});
            Agents {
                hub: agents,
                cx: cx.reborrow(),
            }
            .run_lifecycle(now_ms, &run_id, data);
        }
        Ok(ToolStart::Running)
    }

    /// The run `run_id` ended: its running tool calls are stopped (their results still come back,
    /// and are answered as usual).
    pub(crate) fn cancel_run(
        &mut self,
        cx: &mut Ctx<'_>,
        agents: &mut AgentHub,
        idempotency: &mut IdempotencyCache,
        now_ms: u64,
        run_id: &str,
    ) {
        let mut calls: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.run.as_ref().is_some_and(|(r, _)| r == run_id))
            .map(|(call, _)| *call)
            .collect();
        calls.sort_unstable();
        for call in calls {
            if self.held.contains_key(&call) {
                // Waiting for a decision nobody needs any more: the approval is withdrawn.
                if let Some(pending) = self.approvals.take_pending_of_call(call) {
                    self.resolve(cx, agents, idempotency, now_ms, pending, "withdrawn", "gateway");
                }
            } else {
                cx.net.push_output(Output::CancelTool { call });
            }
        }
    }

    /// Output of the command call `call` runs, as it comes: for the run's watchers, an `item`
    /// update and a `command_output` delta; for a requester with `tool-events`, a `tool` update.
    pub(crate) fn output(&mut self, cx: &mut Ctx<'_>, agents: &mut AgentHub, now_ms: u64, call: u64, text: &str) {
        let Some(pending) = self.pending.get(&call) else { return };
        let Some((run_id, tool_call_id)) = &pending.run else {
            return;
        };
        let mut run = Agents {
            hub: agents,
            cx: cx.reborrow(),
        };
        run.tool_event(
            now_ms,
            run_id,
            json!({
                "phase": "update", "name": pending.tool, "toolCallId": tool_call_id,
                "partialResult": {"content": [{"type": "text", "text": text}], "details": {"status": "running"}},
            }),
        );
        run.run_item(
            now_ms,
            run_id,
            json!({
                "itemId": format!("tool:{tool_call_id}"), "toolCallId": tool_call_id, "name": pending.tool,
                "kind": "tool", "phase": "update", "title": pending.title.0, "status": "running",
                "meta": pending.title.1, "commandBearing": true,
            }),
        );
        run.run_command_output(
            now_ms,
            run_id,
            json!({
                "itemId": format!("command:{tool_call_id}"), "phase": "delta", "title": format!("command {}", pending.title.1),
                "toolCallId": tool_call_id, "name": pending.tool, "output": text, "status": "running",
            }),
        );
    }

    /// Loads the approvals file (read by the runtime at start).
    pub(crate) fn load_approvals(&mut self, text: &str) -> Result<(), String> {
        self.approvals.load(text)
    }

    /// The approvals methods.
    pub(crate) fn call_approvals(
        &mut self,
        cx: &mut Ctx<'_>,
        agents: &mut AgentHub,
        idempotency: &mut IdempotencyCache,
        now_ms: u64,
        conn: ConnId,
        request: &RequestFrame,
    ) -> Reply {
        if matches!(request.method.as_str(), "exec.approval.resolve" | "approval.resolve") {
            return Reply::deferred(self.resolve_request(cx, agents, idempotency, now_ms, conn, request));
        }
        Reply::value(self.approval_method(cx, conn, request))
    }

    /// `exec.approval.resolve` / `approval.resolve`: `Ok(None)` when the answer waits until the
    /// call the decision let run has ended.
    fn resolve_request(
        &mut self,
        cx: &mut Ctx<'_>,
        agents: &mut AgentHub,
        idempotency: &mut IdempotencyCache,
        now_ms: u64,
        conn: ConnId,
        request: &RequestFrame,
    ) -> Result<Option<Value>, ErrorShape> {
        let params: Value = request.parse_params().unwrap_or(Value::Null);
        let id = params["id"].as_str().unwrap_or_default();
        let decision = params["decision"].as_str().unwrap_or_default();
        if !matches!(decision, "allow-once" | "allow-always" | "deny") {
            return Err(ErrorShape::new(ErrorCode::InvalidRequest, "invalid decision"));
        }
        let canonical = request.method == "approval.resolve";
        let Some(pending) = self.approvals.take_pending(id) else {
            // A repeat of a decision is answered again, as OpenClaw does.
            return match self.approvals.get_resolved(id) {
                Some(done) if canonical => Ok(Some(
                    json!({"applied": false, "approval": approval_record(id, Some(done), None)}),
                )),
                Some(_) => Ok(Some(json!({"ok": true}))),
                None => Err(unknown_approval()),
            };
        };
        let resolver = cx
            .net
            .session_of(conn)
            .map_or_else(|| "unknown".to_owned(), |s| s.client_id.clone());
        let call = pending.call;
        self.resolve(cx, agents, idempotency, now_ms, pending, decision, &resolver);
        let answer = if canonical {
            let done = self.approvals.get_resolved(id);
            json!({"applied": true, "approval": approval_record(id, done, None)})
        } else {
            json!({"ok": true})
        };
        if decision != "deny" && self.pending.contains_key(&call) {
            self.resolvers.insert(call, (conn, request.id.clone(), answer));
            return Ok(None);
        }
        Ok(Some(answer))
    }

    /// The approval methods other than resolving one.
    fn approval_method(&mut self, cx: &mut Ctx<'_>, conn: ConnId, request: &RequestFrame) -> Result<Value, ErrorShape> {
        let params: Value = request.parse_params().unwrap_or(Value::Null);
        let id = params["id"].as_str().unwrap_or_default();
        let unknown = unknown_approval;
        match request.method.as_str() {
            "exec.approval.list" => Ok(self.approvals.list_payload()),
            "exec.approval.get" => {
                let p = self.approvals.get_pending(id).ok_or_else(unknown)?;
                Ok(json!({
                    "id": p.id, "commandText": p.request["command"], "commandPreview": null,
                    "allowedDecisions": p.request["allowedDecisions"], "host": "gateway", "nodeId": null,
                    "agentId": p.request["agentId"], "expiresAtMs": p.expires_at_ms,
                }))
            }
            "approval.get" => {
                if let Some(p) = self.approvals.get_pending(id) {
                    return Ok(json!({"approval": approval_record(id, None, Some(p))}));
                }
                match self.approvals.get_resolved(id) {
                    Some(done) => Ok(json!({"approval": approval_record(id, Some(done), None)})),
                    None => Err(ErrorShape::new(ErrorCode::InvalidRequest, "approval not found")
                        .with_details(json!({"reason": "APPROVAL_NOT_FOUND"}))),
                }
            }
            // Decided approvals, newest first (the store keeps the last ones it decided).
            "approval.history" => {
                let limit = params["limit"].as_u64().unwrap_or(50).clamp(1, 500) as usize;
                let items: Vec<Value> = self
                    .approvals
                    .resolved_newest_first()
                    .take(limit)
                    .map(|(id, done)| approval_record(id, Some(done), None))
                    .collect();
                Ok(json!({"items": items}))
            }
            // Standing grants are minted for cron jobs' commands; Clawgate mints none.
            "exec.approval.grants.list" => Ok(json!({"grants": []})),
            "plugin.approval.list" | "openclaw.approval.list" => Ok(json!([])),
            "exec.approvals.get" => Ok(self.approvals_snapshot(cx)),
            "exec.approvals.set" => {
                if let Some(base) = params["baseHash"].as_str() {
                    if base != self.approvals.file_hash() {
                        return Err(ErrorShape::new(
                            ErrorCode::InvalidRequest,
                            "exec approvals changed since last load; re-run exec.approvals.get and retry",
                        ));
                    }
                }
                let file = params.get("file").cloned().unwrap_or(params.clone());
                let text = self.approvals.set_file(file).map_err(|e| {
                    ErrorShape::new(
                        ErrorCode::InvalidRequest,
                        format!("invalid exec.approvals.set params: {e}"),
                    )
                })?;
                cx.net.persist_file(APPROVALS_FILE, text);
                cx.net.hold_for_persist(conn);
                Ok(self.approvals_snapshot(cx))
            }
            other => Err(ErrorShape::unknown_method(other)),
        }
    }

    /// `exec.approvals.get`'s snapshot: where the file is, whether it exists, its hash, the file.
    fn approvals_snapshot(&self, cx: &Ctx<'_>) -> Value {
        let path = if cx.config.state_dir.is_empty() {
            APPROVALS_FILE.to_owned()
        } else {
            format!("{}/{APPROVALS_FILE}", cx.config.state_dir.trim_end_matches('/'))
        };
        json!({
            "path": path, "exists": self.approvals.exists(), "hash": self.approvals.file_hash(),
            "file": self.approvals.file(),
        })
    }

    /// Approvals whose time is up are denied.
    pub(crate) fn expire_approvals(
        &mut self,
        cx: &mut Ctx<'_>,
        agents: &mut AgentHub,
        idempotency: &mut IdempotencyCache,
        now_ms: u64,
    ) {
        for pending in self.approvals.take_expired(now_ms) {
            self.resolve(cx, agents, idempotency, now_ms, pending, "expired", "gateway");
        }
        if let Some(at) = self.approvals.next_expiry() {
            cx.net.schedule(at, Timer::Approvals);
        }
    }

    /// Carries out a decision: the call runs, or ends denied; the approvers and the run's
    /// watchers are told.
    #[allow(clippy::too_many_arguments)]
    fn resolve(
        &mut self,
        cx: &mut Ctx<'_>,
        agents: &mut AgentHub,
        idempotency: &mut IdempotencyCache,
        now_ms: u64,
        pending: PendingApproval,
        decision: &str,
        resolver: &str,
    ) {
        self.approvals.record_resolved(
            &pending.id,
            crate::approvals::Resolved {
                decision: decision.to_owned(),
                resolver: resolver.to_owned(),
                request: pending.request.clone(),
                created_at_ms: pending.created_at_ms,
                expires_at_ms: pending.expires_at_ms,
            },
        );
        let PendingApproval { id, request, call, .. } = pending;
        let run_id = request["runId"].as_str().map(str::to_owned);
        let tool_call_id = request["toolCallId"].as_str().unwrap_or_default().to_owned();
        let requester = run_id.as_deref().and_then(|r| agents.requester_of(r));
        let resolved =
            to_raw(&json!({"id": id, "decision": decision, "resolvedBy": resolver, "ts": now_ms, "request": request}));
        for conn in cx.net.approvers(requester) {
            cx.net.send_event(conn, "exec.approval.resolved", &resolved, true);
        }
        let command = request["command"].as_str().unwrap_or_default().to_owned();
        if let Some(run_id) = &run_id {
            let mut run = Agents {
                hub: agents,
                cx: cx.reborrow(),
            };
            run.run_lifecycle(
                now_ms,
                run_id,
                json!({"phase": "approval-resolved", "approvalId": id, "toolCallId": tool_call_id}),
            );
            if decision != "allow-once" && decision != "allow-always" {
                run.run_approval(
                    now_ms,
                    run_id,
                    json!({
                        "phase": "resolved", "kind": "exec", "status": "denied", "title": "Command approval resolved",
                        "itemId": format!("command:{tool_call_id}"), "toolCallId": tool_call_id, "message": command,
                    }),
                );
            }
        }
        let Some(tool_run) = self.held.remove(&call) else {
            return;
        };
        match decision {
            "allow-once" | "allow-always" => {
                if decision == "allow-always" {
                    let program = request["program"].as_str().unwrap_or_default();
                    let text = self.approvals.allow_always(&tool_run.agent, program, &id, now_ms);
                    cx.net.persist_file(APPROVALS_FILE, text);
                }
                cx.net.push_output(Output::RunTool(tool_run));
            }
            _ => {
                let why = match decision {
                    "expired" => "approval-expired",
                    "withdrawn" => "run-ended",
                    _ => "user-denied",
                };
                let failure = ToolFailure {
                    kind: ToolFailureKind::AccessDenied,
                    message: format!("Exec denied (gateway id={id}, {why}): {command}"),
                };
                self.finish(cx, agents, idempotency, now_ms, call, Err(failure));
            }
        }
    }

    /// The runtime finished tool run `call`: answers the caller (if still connected) and writes
    /// the audit line. Unknown calls are ignored.
    pub(crate) fn finish(
        &mut self,
        cx: &mut Ctx<'_>,
        agents: &mut AgentHub,
        idempotency: &mut IdempotencyCache,
        now_ms: u64,
        call: u64,
        result: Result<Value, ToolFailure>,
    ) {
        let Some(pending) = self.finished(call) else {
            return;
        };
        if let Some((conn, request_id, answer)) = self.resolvers.remove(&call) {
            cx.net.send_text(conn, &ResponseFrame::ok(request_id, &answer).encode());
        }
        // The output is serialized once, for the answer and for its size in the audit line.
        let outcome = result.map(|output| (output.get("exitCode").cloned().unwrap_or(Value::Null), to_raw(&output)));
        let (payload, status, detail, output_bytes) = match &outcome {
            Ok((exit, output)) => {
                let answer = InvokeAnswer {
                    ok: true,
                    tool_name: pending.tool,
                    output,
                    source: "core",
                };
                (to_raw(&answer), "ok", exit.clone(), output.get().len())
            }
            Err(failure) => (
                refused(pending.tool, failure.kind.code(), failure.message.clone()),
                "error",
                json!(failure.kind.code()),
                0,
            ),
        };
        let line = json!({
            "ts": pending.started_ms, "caller": pending.caller, "agent": pending.agent,
            "sessionKey": pending.session_key, "tool": pending.tool, "decision": "allowed",
            "status": status, "detail": detail, "durationMs": now_ms.saturating_sub(pending.started_ms),
            "outputBytes": output_bytes, "http": matches!(pending.reply, ToolReply::Http { .. }),
        });
        cx.net.push_output(Output::AppendAudit { line: line.to_string() });
        if let Some(key) = pending.idempotency_key {
            idempotency.insert(key, CachedAnswer::Ok(payload.clone()), now_ms);
        }
        let kind = if status == "error" {
            "tool.execution.error"
        } else {
            "tool.execution.completed"
        };
        cx.net.diagnostic(
            now_ms,
            kind,
            json!({"toolName": pending.tool, "source": "core", "durationMs": now_ms.saturating_sub(pending.started_ms)}),
        );
        if status == "error" {
            cx.net.log(
                now_ms,
                LogLevel::Info,
                format!("tool {} for agent {} failed: {}", pending.tool, pending.agent, detail),
            );
        }
        if let Some((run_id, tool_call_id)) = &pending.run {
            let failed = status == "error";
            let text = match &outcome {
                Ok((_, output)) => {
                    result_text(pending.tool, &serde_json::from_str(output.get()).unwrap_or(Value::Null))
                }
                Err(failure) => failure.message.clone(),
            };
            let details: Value = match &outcome {
                Ok((_, output)) => serde_json::from_str(output.get()).unwrap_or(Value::Null),
                Err(failure) => json!({"status": "error", "code": failure.kind.code()}),
            };
            let command_bearing = pending.tool == "exec";
            let mut run_events = Agents {
                hub: agents,
                cx: cx.reborrow(),
            };
            run_events.tool_event(
                now_ms,
                run_id,
                json!({
                    "phase": "result", "name": pending.tool, "toolCallId": tool_call_id, "meta": pending.title.1,
                    "isError": failed, "commandBearing": command_bearing,
                    "result": {"content": [{"type": "text", "text": text}], "details": details},
                }),
            );
            run_events.run_item(
                now_ms,
                run_id,
                json!({
                    "itemId": format!("tool:{tool_call_id}"), "toolCallId": tool_call_id, "name": pending.tool,
                    "kind": "tool", "phase": "end", "title": pending.title.0,
                    "status": if failed { "failed" } else { "completed" }, "meta": pending.title.1,
                    "commandBearing": command_bearing, "startedAt": pending.started_ms, "endedAt": now_ms,
                }),
            );
            run_events.record_tool_result(now_ms, run_id, (tool_call_id, pending.tool), &text, failed);
            if command_bearing {
                let mut end = json!({
                    "itemId": format!("command:{tool_call_id}"), "phase": "end", "title": format!("command {}", pending.title.1),
                    "toolCallId": tool_call_id, "name": pending.tool, "output": text,
                    "status": if failed { "failed" } else { "completed" },
                });
                if let Some(code) = details["exitCode"].as_i64() {
                    end["exitCode"] = json!(code);
                }
                if let Some(ms) = details["durationMs"].as_u64() {
                    end["durationMs"] = json!(ms);
                }
                run_events.run_command_output(now_ms, run_id, end);
            }
        }
        match pending.reply {
            ToolReply::Ws { conn, request_id } => {
                let frame = ResponseFrame::ok_raw(request_id, payload);
                cx.net.send_text(conn, &frame.encode());
            }
            ToolReply::Http { conn, keep_alive } => {
                let outcome = outcome.as_ref().map(|(_, output)| &**output);
                let response = tool_http_response(pending.tool, outcome);
                cx.net.finish_http(conn, &response, false, keep_alive);
            }
        }
    }
}

/// The answer to an approval id that names nothing waiting or decided.
fn unknown_approval() -> ErrorShape {
    ErrorShape::new(ErrorCode::InvalidRequest, "unknown or expired approval id").with_details(json!({
        "reason": "APPROVAL_NOT_FOUND",
        "remediation": "list the approvals that wait with exec.approval.list",
    }))
}

/// A refused call: its audit line, and a `tool.execution.blocked` stability record with the
/// refusal's code (never its arguments).
fn record_denial(cx: &mut Ctx<'_>, now_ms: u64, line: Value, code: &str) {
    cx.net.diagnostic(
        now_ms,
        "tool.execution.blocked",
        json!({"toolName": line["tool"], "source": "core", "outcome": "blocked", "reasonCode": code}),
    );
    cx.net.push_output(Output::AppendAudit { line: line.to_string() });
}

/// What a run's `item` events call a tool call, and its short detail: `Read from note.txt` /
/// `from note.txt`, `Exec ls -l` / `ls -l`.
fn call_title(tool: &str, args: &serde_json::Map<String, Value>) -> (String, String) {
    let path = args.get("path").and_then(Value::as_str);
    match tool {
        "read" => match path {
            Some(p) => (format!("Read from {p}"), format!("from {p}")),
            None => ("Read".to_owned(), String::new()),
        },
        "write" | "edit" | "ls" => {
            let verb = match tool {
                "write" => "Write",
                "edit" => "Edit",
                _ => "List",
            };
            let p = path.unwrap_or(".");
            (format!("{verb} {p}"), p.to_owned())
        }
        "exec" => {
            let short: String = crate::approvals::command_line(args).chars().take(80).collect();
            (format!("Exec {short}"), short)
        }
        other => (other.to_owned(), String::new()),
    }
}

/// A tool's output as the text a model (and the run's `tool` result event) gets: a file's
/// content, a command's output (stderr after stdout, and the exit code when it is not 0), else
/// the output as JSON.
pub fn result_text(tool: &str, output: &Value) -> String {
    match tool {
        "read" => output["content"]
            .as_str()
            .map_or_else(|| output.to_string(), str::to_owned),
        "exec" => {
            let mut text = output["stdout"].as_str().unwrap_or_default().trim_end().to_owned();
            if let Some(err) = output["stderr"].as_str().map(str::trim_end).filter(|e| !e.is_empty()) {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(err);
            }
            match output["exitCode"].as_i64() {
                Some(0) => {}
                Some(code) => text.push_str(&format!("\n(exit code {code})")),
                None => text.push_str("\n(ended by a signal)"),
            }
            text
        }
        _ => output.to_string(),
    }
}

/// An approval as `approval.get` and `approval.resolve` describe it: pending, or how it was
/// decided (`resolved`, `expired`, `cancelled` for a withdrawn one).
fn approval_record(id: &str, done: Option<&crate::approvals::Resolved>, pending: Option<&PendingApproval>) -> Value {
    let (request, created, expires) = match (done, pending) {
        (Some(d), _) => (&d.request, d.created_at_ms, d.expires_at_ms),
        (None, Some(p)) => (&p.request, p.created_at_ms, p.expires_at_ms),
        (None, None) => return json!({"id": id, "status": "unknown"}),
    };
    let mut record = json!({
        "id": id, "kind": "exec", "createdAtMs": created, "expiresAtMs": expires, "request": request,
        "presentation": {"kind": "exec", "allowedDecisions": request["allowedDecisions"], "command": request["command"]},
    });
    match done {
        None => record["status"] = json!("pending"),
        Some(d) => match d.decision.as_str() {
            "expired" => record["status"] = json!("expired"),
            "withdrawn" => {
                record["status"] = json!("cancelled");
                record["reason"] = json!("the run ended");
            }
            decision => {
                record["status"] = json!("resolved");
                record["decision"] = json!(decision);
                record["resolver"] = json!({"kind": "client", "id": d.resolver});
            }
        },
    }
    record
}
