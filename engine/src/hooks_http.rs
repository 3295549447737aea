//! The answers of the webhook endpoints: [`crate::hooks`] checks the request and the policy,
//! the scheduler queues a wake, the agents run a turn.

use crate::agents::{Agents, Origin, RunOptions, RunRequest};
use crate::cron::CronPart;
use crate::hooks::{hook_error, HookEndpoint, Hooks};
use crate::http_runs::{HttpRun, HttpShape};
use crate::output::ConnId;
use crate::reply::{json_response, HttpReply};
use clawgate_proto::http::{Request, Response};
use serde_json::json;
use std::net::SocketAddr;

/// How long a hook's agent turn may take when the request names no timeout.
const HOOK_RUN_TIMEOUT_MS: u64 = 600_000;

/// The answer to a request under `hooks.path`.
pub(crate) fn answer(
    hooks: &mut Hooks,
    part: &mut CronPart<'_>,
    now_ms: u64,
    (conn, peer): (ConnId, SocketAddr),
    request: &Request,
    keep_alive: bool,
    endpoint: HookEndpoint,
) -> HttpReply {
    let config = &part.cx.config.hooks;
    let client = crate::rate_limit::canonical_ip(peer.ip()).to_string();
    if let Err(refused) = hooks.admit(config, now_ms, &client, request) {
        return HttpReply::Now(refused);
    }
    let result = match endpoint {
        HookEndpoint::Unmapped => Err(hook_error(
            404,
            "no hook at this path (mapped hooks are not served yet)",
        )),
        HookEndpoint::Wake => wake(part, now_ms, request),
        HookEndpoint::Agent => return agent(hooks, part, now_ms, conn, request, keep_alive),
    };
    HttpReply::Now(result.unwrap_or_else(|refused| refused))
}

fn checked_agent(part: &CronPart<'_>, requested: Option<&str>) -> Result<String, Response> {
    let agent = part
        .agents
        .known_agent(part.cx.config, requested)
        .map_err(|e| hook_error(400, &e.message))?;
    if !part.cx.config.hooks.agent_allowed(agent.as_str()) {
        return Err(hook_error(
            400,
            &format!("agent {agent} is not in hooks.allowedAgentIds"),
        ));
    }
    Ok(agent.as_str().to_owned())
}

fn wake(part: &mut CronPart<'_>, now_ms: u64, request: &Request) -> Result<Response, Response> {
    let wake = part.cx.config.hooks.wake_request(request)?;
    let agent = checked_agent(part, wake.agent_id.as_deref())?;
    let session = match &wake.session_key {
        Some(raw) => Some(
            part.agents
                .session_key_for(part.cx.config, Some(raw), Some(&agent))
                .map_err(|e| hook_error(400, &e.message))?
                .0,
        ),
        None => None,
    };
    let outcome = part.wake_from_hook(now_ms, &wake.text, wake.now, &agent, session.as_deref());
    let mode = if wake.now { "now" } else { "next-heartbeat" };
    Ok(json_response(
        200,
        &json!({"ok": true, "mode": mode, "eventOutcome": outcome}),
    ))
}

fn agent(
    hooks: &mut Hooks,
    part: &mut CronPart<'_>,
    now_ms: u64,
    conn: ConnId,
    request: &Request,
    keep_alive: bool,
) -> HttpReply {
    let checked = (|| {
        let (hook, replay) = part.cx.config.hooks.agent_request(request)?;
        let agent = checked_agent(part, hook.agent_id.as_deref())?;
        Ok::<_, Response>((hook, replay, agent))
    })();
    let (hook, replay, agent) = match checked {
        Ok(c) => c,
        Err(refused) => return HttpReply::Now(refused),
    };
    if let Some(run_id) = replay.as_deref().and_then(|key| hooks.replayed(now_ms, key)) {
        // The same request again: the run it started, not a second one.
        return HttpReply::Now(json_response(200, &json!({"ok": true, "runId": run_id})));
    }
    let session_key = match &hook.session_key {
        Some(raw) => match part.agents.session_key_for(part.cx.config, Some(raw), Some(&agent)) {
            Ok((key, _)) => key,
            Err(e) => return HttpReply::Now(hook_error(400, &e.message)),
        },
        None => {
            let logical = format!("hook:{}", part.cx.random_uuid());
            if !part.cx.config.hooks.key_allowed(&logical) {
                return HttpReply::Now(hook_error(
                    400,
                    "hooks.allowedSessionKeyPrefixes does not admit generated hook: keys",
                ));
            }
            format!("agent:{agent}:{logical}")
        }
    };
    let mut agents = Agents {
        hub: part.agents,
        cx: part.cx.reborrow(),
    };
    if hook.wait_for_completion && !agents.hub.agent_has_worker(&agent) {
        // A caller that waits would wait for a worker that is not there: refused, and nothing
        // was queued, so a retry never runs the turn twice.
        return HttpReply::Now(
            hook_error(
                503,
                &format!("agent {agent} has no worker connected; nothing was queued"),
            )
            .header("Retry-After", "5"),
        );
    }
    let run_id = agents.cx.random_uuid();
    let origin = if hook.wait_for_completion {
        Origin::Http(HttpRun {
            conn,
            keep_alive,
            shape: HttpShape::Hook,
            stream: false,
        })
    } else {
        Origin::Nobody
    };
    let run = RunRequest {
        run_id: run_id.clone(),
        session_key,
        agent_id: agent,
        message: hook.message,
        origin,
        timeout_ms: hook.timeout_ms.unwrap_or(HOOK_RUN_TIMEOUT_MS),
        options: RunOptions {
            model: hook.model,
            ..RunOptions::default()
        },
        created_via: "hook",
        quiet: false,
        ack: None,
    };
    if let Err(e) = agents.start_run(now_ms, run) {
        return HttpReply::Now(hook_error(503, &e.message));
    }
    agents.cx.net.log(
        now_ms,
        crate::log_ring::LogLevel::Info,
        format!("hook {} accepted as run {run_id}", hook.name),
    );
    if let Some(key) = replay {
        hooks.remember(now_ms, key, run_id.clone());
    }
    if hook.wait_for_completion {
        return HttpReply::Later;
    }
    // The admission goes out once the accepted message is durable, as acknowledgements do.
    agents.cx.net.hold_for_persist(conn);
    HttpReply::Now(json_response(200, &json!({"ok": true, "runId": run_id})))
}
