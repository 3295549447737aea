//! The OpenAI-compatible HTTP endpoints and the session endpoints, on the gateway port: each
//! message is one run of [`crate::agents`]; streamed answers are server-sent events.

use crate::admission::Admission;
use crate::agents::{message_text, Ack, Agents, Origin, RunOptions, RunRequest, MAX_MESSAGE_BYTES};
use crate::config::GatewayConfig;
use crate::http_runs::{completion_chunk, openai_error, sse_chunk, sse_head, HttpRun, HttpShape};
use crate::output::ConnId;
use crate::reply::HttpReply;
use clawgate_proto::http::{Request, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;

/// Caller-visible model names: `openclaw`, `openclaw/default`, `openclaw/<agentId>`,
/// `openclaw:<agentId>`, `agent:<agentId>`.
fn agent_of_model(model: &str) -> Option<Option<&str>> {
    match model {
        "openclaw" | "openclaw/default" => Some(None),
        m => m
            .strip_prefix("openclaw/")
            .or_else(|| m.strip_prefix("openclaw:"))
            .or_else(|| m.strip_prefix("agent:"))
            .filter(|a| clawgate_proto::session::AgentId::is_valid(a))
            .map(Some),
    }
}

/// What an OpenAI conversation becomes for the agent, as OpenClaw's endpoint makes it: `system`
/// and `developer` messages are the run's extra system prompt; the last `user` message is the
/// message; the turns before it travel with it as context, under the same markers OpenClaw uses
/// for history it injects.
struct Prompt {
    message: String,
    extra_system_prompt: Option<String>,
}

const HISTORY_MARKER: &str = "[Chat messages since your last reply - for context]";
const CURRENT_MARKER: &str = "[Current message - respond to this]";

fn prompt_of(messages: &[Value]) -> Option<Prompt> {
    let mut system = Vec::new();
    let mut turns: Vec<(&str, String)> = Vec::new();
    for m in messages {
        let text = message_text(m).trim().to_owned();
        let role = m["role"].as_str().unwrap_or_default();
        match role {
            "system" | "developer" if !text.is_empty() => system.push(text),
            "user" | "assistant" | "tool" | "function" if !text.is_empty() => turns.push((role, text)),
            _ => {}
        }
    }
    let current = turns.iter().rposition(|(role, _)| *role == "user")?;
    let sender = |role: &str| match role {
        "user" => "User",
        "assistant" => "Assistant",
        _ => "Tool",
    };
    let message = if current == 0 {
        turns[0].1.clone()
    } else {
        let history: Vec<String> = turns[..current]
            .iter()
            .map(|(role, text)| format!("{}: {text}", sender(role)))
            .collect();
        format!(
            "{HISTORY_MARKER}\n{}\n\n{CURRENT_MARKER}\nUser: {}",
            history.join("\n"),
            turns[current].1
        )
    };
    Some(Prompt {
        message,
        extra_system_prompt: (!system.is_empty()).then(|| system.join("\n\n")),
    })
}

#[derive(Deserialize)]
struct CompletionRequest {
    model: Option<String>,
    messages: Vec<Value>,
    #[serde(default)]
    stream: bool,
    user: Option<String>,
    stream_options: Option<Value>,
}

#[derive(Deserialize)]
struct SessionMessageRequest {
    role: Option<String>,
    content: Value,
}

/// Bearer auth of the HTTP API with the failed-attempt limiter: `Err` is the 401 or 429.
fn http_api_auth(
    admission: &mut Admission,
    config: &GatewayConfig,
    now_ms: u64,
    peer: SocketAddr,
    request: &Request,
) -> Result<(), Response> {
    match admission.check_http_bearer(config, now_ms, peer, request) {
        Ok(()) => Ok(()),
        Err(None) => Err(openai_error(401, "unauthorized", "Unauthorized")),
        Err(Some(retry_after_ms)) => Err(Response::json(
            429,
            &json!({"error": {"message": "Too many failed authentication attempts. Please try again later.", "type": "rate_limited"}}),
        )
        .header("Retry-After", &retry_after_ms.div_ceil(1000).to_string())),
    }
}

/// An endpoint of this module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `/v1/models`, or one of them.
    Models(Option<String>),
    /// `/v1/chat/completions`.
    Completions,
    /// `/api/sessions/<key>/messages`.
    SessionMessages(String),
    /// `/sessions/<key>/history`.
    SessionHistory(String),
    /// A session path whose key is not valid percent-encoding.
    BadKey,
}

/// The endpoint of this module `path` names, if any.
pub(crate) fn endpoint(path: &str) -> Option<Endpoint> {
    if path == "/v1/models" {
        return Some(Endpoint::Models(None));
    }
    if let Some(one) = path.strip_prefix("/v1/models/") {
        return Some(Endpoint::Models(Some(one.to_owned())));
    }
    if path == "/v1/chat/completions" {
        return Some(Endpoint::Completions);
    }
    let (encoded, messages) = match (path.strip_prefix("/api/sessions/"), path.strip_prefix("/sessions/")) {
        (Some(rest), _) => (rest.strip_suffix("/messages")?, true),
        (None, Some(rest)) => (rest.strip_suffix("/history")?, false),
        (None, None) => return None,
    };
    // Session keys in paths may be percent-encoded (`agent%3Amain%3Amain`).
    Some(match crate::control_ui::percent_decode(encoded) {
        None => Endpoint::BadKey,
        Some(key) if messages => Endpoint::SessionMessages(key),
        Some(key) => Endpoint::SessionHistory(key),
    })
}

/// The answer of `endpoint`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn route(
    agents: &mut Agents<'_>,
    admission: &mut Admission,
    now_ms: u64,
    conn: ConnId,
    peer: SocketAddr,
    request: &Request,
    keep_alive: bool,
    endpoint: Endpoint,
) -> HttpReply {
    if endpoint == Endpoint::BadKey {
        return HttpReply::Now(Response::text(404, "Not Found"));
    }
    let posts = matches!(endpoint, Endpoint::Completions | Endpoint::SessionMessages(_));
    let method = request.method.as_str();
    let allowed = if posts {
        method == "POST"
    } else {
        method == "GET" || method == "HEAD"
    };
    if !allowed {
        let allow = if posts { "POST" } else { "GET, HEAD" };
        return HttpReply::Now(Response::text(405, "Method Not Allowed").header("Allow", allow));
    }
    if let Err(r) = http_api_auth(admission, agents.cx.config, now_ms, peer, request) {
        return HttpReply::Now(r);
    }
    match endpoint {
        Endpoint::Models(one) => {
            let model =
                |id: &str| json!({"id": id, "object": "model", "created": 0, "owned_by": "openclaw", "permission": []});
            let mut data = vec![model("openclaw"), model("openclaw/default")];
            data.extend(
                agents
                    .hub
                    .agent_ids(agents.cx.config)
                    .iter()
                    .map(|a| model(&format!("openclaw/{a}"))),
            );
            HttpReply::Now(match one {
                None => Response::json(200, &json!({"object": "list", "data": data})),
                Some(one) => match data.into_iter().find(|m| m["id"] == one.as_str()) {
                    Some(m) => Response::json(200, &m),
                    None => openai_error(
                        404,
                        "invalid_request_error",
                        &format!("The model `{one}` does not exist"),
                    ),
                },
            })
        }
        Endpoint::Completions => chat_completion(agents, now_ms, conn, request, keep_alive).into(),
        Endpoint::SessionMessages(key) => session_message(agents, now_ms, conn, &key, request, keep_alive).into(),
        Endpoint::SessionHistory(key) => {
            let limit = request
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("limit=")))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(200)
                .clamp(1, 1000);
            HttpReply::Now(match agents.hub.session_history(agents.cx.config, &key, limit) {
                Ok(v) => Response::json(200, &v).header("Cache-Control", "no-store"),
                Err(e) => openai_error(400, "invalid_request_error", &e.message),
            })
        }
        Endpoint::BadKey => HttpReply::Now(Response::text(404, "Not Found")),
    }
}

/// `POST /v1/chat/completions`. `Ok` means the answer comes later (or streams).
fn chat_completion(
    agents: &mut Agents<'_>,
    now_ms: u64,
    conn: ConnId,
    request: &Request,
    keep_alive: bool,
) -> Result<(), Response> {
    let body: CompletionRequest = serde_json::from_slice(&request.body)
        .map_err(|e| openai_error(400, "invalid_request_error", &format!("Invalid request body: {e}")))?;
    let model = body.model.unwrap_or_else(|| "openclaw".to_owned());
    // `model` names the agent; `x-openclaw-agent-id` does when it names none.
    let agent = agent_of_model(&model).ok_or_else(|| {
        openai_error(
            400,
            "invalid_request_error",
            "Invalid `model`. Use `openclaw` or `openclaw/<agentId>`.",
        )
    })?;
    let header_agent = request
        .header("x-openclaw-agent-id")
        .or_else(|| request.header("x-openclaw-agent"))
        .map(str::trim)
        .filter(|a| !a.is_empty());
    if header_agent.is_some_and(|a| !clawgate_proto::session::AgentId::is_valid(a)) {
        return Err(openai_error(
            400,
            "invalid_request_error",
            "Invalid `x-openclaw-agent-id`.",
        ));
    }
    let agent = agent.or(header_agent);
    let Prompt {
        message,
        extra_system_prompt,
    } = prompt_of(&body.messages)
        .ok_or_else(|| openai_error(400, "invalid_request_error", "Missing user message in `messages`."))?;
    // The upstream model is the agent's own unless the caller names one with the header.
    let upstream_model = request
        .header("x-openclaw-model")
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_owned);
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(openai_error(413, "invalid_request_error", "Message too long."));
    }
    // The session: the header, else one per `user`, else a fresh one per call.
    let raw_key = match (request.header("x-openclaw-session-key"), &body.user) {
        (Some(k), _) => k.to_owned(),
        (None, Some(user)) => format!("openai-user:{user}"),
        (None, None) => format!("openai:{}", agents.cx.random_uuid()),
    };
    let (key, agent) = agents
        .hub
        .session_key_for(agents.cx.config, Some(&raw_key), agent)
        .map_err(|e| openai_error(400, "invalid_request_error", &e.message))?;
    let id = format!("chatcmpl_{}", agents.cx.random_uuid());
    let include_usage = body
        .stream_options
        .as_ref()
        .is_some_and(|o| o["include_usage"] == json!(true));
    let created = now_ms / 1000;
    let ack = body.stream.then(|| {
        let mut bytes = sse_head();
        bytes.extend(sse_chunk(&completion_chunk(
            &id,
            &model,
            created,
            json!({"role": "assistant"}),
            None,
        )));
        bytes
    });
    let run_id = agents.cx.random_uuid();
    start_http_run(
        agents,
        now_ms,
        RunRequest {
            run_id,
            session_key: key,
            agent_id: agent,
            message: message.clone(),
            origin: Origin::Http(HttpRun {
                conn,
                keep_alive,
                shape: HttpShape::Completion {
                    id,
                    model,
                    created,
                    include_usage,
                    prompt_chars: message.len(),
                },
                stream: body.stream,
            }),
            options: RunOptions {
                extra_system_prompt,
                model: upstream_model,
            },
            timeout_ms: 600_000,
            quiet: false,
            created_via: "openai",
            ack: None,
        },
        ack,
    )
}

/// `POST /api/sessions/<key>/messages`: `{role, content}`; SSE when the client accepts it.
fn session_message(
    agents: &mut Agents<'_>,
    now_ms: u64,
    conn: ConnId,
    raw_key: &str,
    request: &Request,
    keep_alive: bool,
) -> Result<(), Response> {
    let body: SessionMessageRequest = serde_json::from_slice(&request.body)
        .map_err(|e| openai_error(400, "invalid_request_error", &format!("Invalid request body: {e}")))?;
    if body.role.as_deref().is_some_and(|r| r != "user") {
        return Err(openai_error(
            400,
            "invalid_request_error",
            "Only `user` messages can be sent.",
        ));
    }
    let text = message_text(&json!({"content": body.content}));
    if text.trim().is_empty() {
        return Err(openai_error(400, "invalid_request_error", "Missing `content`."));
    }
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(openai_error(413, "invalid_request_error", "Message too long."));
    }
    let (key, agent) = agents
        .hub
        .session_key_for(agents.cx.config, Some(raw_key), None)
        .map_err(|e| openai_error(400, "invalid_request_error", &e.message))?;
    let stream = request.header_has_token("accept", "text/event-stream")
        || request
            .header("accept")
            .is_some_and(|a| a.contains("text/event-stream"));
    let run_id = agents.cx.random_uuid();
    let ack = stream.then(|| {
        let mut bytes = sse_head();
        let start = json!({"type": "run.started", "runId": run_id, "sessionKey": key});
        bytes.extend(sse_chunk(&start.to_string()));
        bytes
    });
    start_http_run(
        agents,
        now_ms,
        RunRequest {
            run_id: run_id.clone(),
            session_key: key,
            agent_id: agent,
            message: text,
            origin: Origin::Http(HttpRun {
                conn,
                keep_alive,
                shape: HttpShape::SessionMessage,
                stream,
            }),
            options: RunOptions::default(),
            timeout_ms: 600_000,
            quiet: false,
            created_via: "http",
            ack: None,
        },
        ack,
    )
}

fn start_http_run(
    agents: &mut Agents<'_>,
    now_ms: u64,
    mut run: RunRequest,
    head: Option<Vec<u8>>,
) -> Result<(), Response> {
    // An HTTP caller holds its connection open for the answer, so a message for an agent
    // that no worker serves is refused at once rather than queued behind a silent wait.
    // 503 with Retry-After is what OpenAI clients retry by themselves (the official SDKs
    // honour the header); nothing was queued, so a retry never runs the message twice.
    if !agents.hub.agent_has_worker(&run.agent_id) {
        return Err(openai_error(
            503,
            "unavailable",
            &format!(
                "agent {} has no worker connected, so nothing can answer yet (start one with \
                 `clawgate agent --agent {}`); the message was not queued",
                run.agent_id, run.agent_id
            ),
        )
        .header("Retry-After", "5"));
    }
    if let (Some(head), Origin::Http(h)) = (head, &run.origin) {
        // A stream's head is its acknowledgement: it goes out once the message is recorded.
        run.ack = Some(Ack::Raw(h.conn, head));
    }
    agents
        .start_run(now_ms, run)
        .map(|_| ())
        .map_err(|e| openai_error(503, "unavailable", &e.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_name_agents() {
        assert_eq!(agent_of_model("openclaw"), Some(None));
        assert_eq!(agent_of_model("openclaw/default"), Some(None));
        assert_eq!(agent_of_model("openclaw/ops"), Some(Some("ops")));
        assert_eq!(agent_of_model("agent:ops"), Some(Some("ops")));
        assert_eq!(agent_of_model("gpt-4"), None);
    }
}
