//! Plain HTTP requests on the gateway port: which part of the gateway a request goes to (a pure
//! function of the request), and the answers of the gateway's own endpoints.

use crate::admission::Admission;
use crate::agents::{AgentHub, Agents};
use crate::context::Ctx;
use crate::metrics::Metrics;
use crate::output::ConnId;
use crate::reply::json_response;
use crate::reply::HttpReply;
use crate::tool_calls::{RunningTools, ToolCallRequest, ToolReply, ToolStart};
use clawgate_proto::frame::ErrorShape;
use clawgate_proto::http::{Request, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;

/// The body of `POST /tools/invoke`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HttpToolCall {
    tool: String,
    action: Option<String>,
    args: Option<serde_json::Map<String, Value>>,
    session_key: Option<String>,
}

fn http_error(status: u16, kind: &str, message: &str) -> Response {
    json_response(
        status,
        &json!({"ok": false, "error": {"type": kind, "message": message}}),
    )
}

/// The answer to a request the parser refused. The JSON API families (`/v1/`, `/tools/`,
/// `/api/`, `/sessions/`) answer in the error shape of their endpoints, as OpenClaw does
/// (`{"error":{"message","type":"invalid_request_error"}}`); everything else in plain text. Either
/// way the connection closes, since the rest of the stream cannot be trusted.
pub(crate) fn refused_request(e: &clawgate_proto::http::HttpError) -> Response {
    let api = e.path.as_deref().is_some_and(|p| {
        ["/v1/", "/tools/", "/api/", "/sessions/"]
            .iter()
            .any(|prefix| p.starts_with(prefix))
    });
    if !api {
        return e.response();
    }
    let message = match e.status {
        413 => "Payload too large",
        _ => e.message,
    };
    json_response(
        e.status,
        &json!({"error": {"message": message, "type": "invalid_request_error"}}),
    )
    .header("Connection", "close")
}

/// Where an HTTP request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// The HTTP API of the agents (`/v1/...`, `/api/sessions/.../messages`,
    /// `/sessions/.../history`).
    Agents(crate::openai_http::Endpoint),
    /// `POST /tools/invoke`.
    ToolsInvoke,
    /// `/health`, `/healthz`: the process is alive.
    Live,
    /// `/ready`, `/readyz`: the gateway serves.
    Ready,
    /// `/api/device/nonce`.
    DeviceNonce,
    /// `/metrics`.
    Metrics,
    /// Anything else: a path of the Control UI, or nothing (404).
    ControlUi,
    /// A known path asked with a method it does not take; the value is its `Allow`.
    MethodNotAllowed(&'static str),
}

/// Which part of the gateway answers `request`.
pub(crate) fn route(request: &Request) -> Route {
    let path = request.path();
    if let Some(endpoint) = crate::openai_http::endpoint(path) {
        return Route::Agents(endpoint);
    }
    let get_like = request.method == "GET" || request.method == "HEAD";
    let (route, allowed, allow) = match path {
        "/tools/invoke" => (Route::ToolsInvoke, request.method == "POST", "POST"),
        "/health" | "/healthz" => (Route::Live, get_like, "GET, HEAD"),
        "/ready" | "/readyz" => (Route::Ready, get_like, "GET, HEAD"),
        "/api/device/nonce" => (Route::DeviceNonce, get_like, "GET, HEAD"),
        "/metrics" => (Route::Metrics, get_like, "GET, HEAD"),
        _ => return Route::ControlUi,
    };
    if allowed {
        route
    } else {
        Route::MethodNotAllowed(allow)
    }
}

/// The answer to a method a path does not take.
pub(crate) fn method_not_allowed(allow: &str) -> Response {
    Response::text(405, "Method Not Allowed").header("Allow", allow)
}

/// `/health`: alive.
pub(crate) fn live() -> Response {
    json_response(200, &json!({"ok": true, "status": "live"}))
}

/// `/ready`: whether the gateway serves; details only for callers on this host, others learn just
/// the verdict.
pub(crate) fn ready(stopping: bool, local_caller: bool, uptime_ms: u64) -> Response {
    let ready = !stopping;
    let status = if ready { 200 } else { 503 };
    if local_caller {
        let failing: Vec<&str> = if ready { vec![] } else { vec!["stopping"] };
        json_response(
            status,
            &json!({"ready": ready, "failing": failing, "uptimeMs": uptime_ms}),
        )
    } else {
        json_response(status, &json!({"ready": ready}))
    }
}

/// `/api/device/nonce`: a nonce for a device's HTTP signature.
pub(crate) fn nonce(nonce: &str, now_ms: u64, expires_at_ms: u64) -> Response {
    json_response(
        200,
        &json!({"nonce": nonce, "ts": now_ms, "expiresAtMs": expires_at_ms}),
    )
}

/// `/metrics` in the Prometheus text format, for callers on this host or with the secret.
pub(crate) fn metrics(allowed: bool, body: impl FnOnce() -> String) -> Response {
    if !allowed {
        return unauthorized();
    }
    Response::new(200)
        .header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        .header("Cache-Control", "no-store")
        .body(body().into_bytes())
}

fn unauthorized() -> Response {
    json_response(
        401,
        &json!({"error": {"message": "Unauthorized", "type": "unauthorized"}}),
    )
}

/// The call a `POST /tools/invoke` asks for (the shared secret as a bearer token is a full
/// operator), or the answer that refuses it.
pub(crate) fn tool_call_of(request: &Request, bearer_ok: bool) -> Result<ToolCallRequest, Response> {
    if !bearer_ok {
        return Err(unauthorized());
    }
    let call: HttpToolCall = serde_json::from_slice(&request.body)
        .map_err(|e| http_error(400, "invalid_request", &format!("invalid body: {e}")))?;
    let mut args = call.args.unwrap_or_default();
    if let Some(action) = call.action {
        args.entry("action").or_insert(Value::String(action));
    }
    let header = |name: &str| request.header(name).map(str::to_owned);
    Ok(ToolCallRequest {
        caller: Some("http".to_owned()),
        name: call.tool,
        args,
        session_key: call.session_key.or_else(|| header("x-openclaw-session-key")),
        agent_id: header("x-openclaw-agent-id").or_else(|| header("x-openclaw-agent")),
        over_http: true,
        run_id: None,
        tool_call_id: None,
    })
}

/// The answer of a `POST /tools/invoke` once the call was decided: later when the tool runs.
pub(crate) fn tool_call_answer(tool: &str, started: Result<ToolStart, ErrorShape>) -> HttpReply {
    HttpReply::Now(match started {
        Ok(ToolStart::Running) => return HttpReply::Later,
        Ok(ToolStart::Refused {
            code: "TOOL_NOT_FOUND", ..
        }) => http_error(404, "not_found", &format!("Tool not available: {tool}")),
        Ok(ToolStart::Refused { message, .. }) => http_error(403, "tool_call_blocked", &message),
        Err(e) => http_error(400, "invalid_request", &e.message),
    })
}

/// What the HTTP endpoints work with.
pub(crate) struct Parts<'a> {
    pub cx: Ctx<'a>,
    pub admission: &'a mut Admission,
    pub agents: &'a mut AgentHub,
    pub tools: &'a mut RunningTools,
    pub metrics: &'a Metrics,
    /// Device tokens: the Control UI fetches its config with its own.
    pub pairing: &'a crate::pairing::PairingStore,
    pub started_at: u64,
}

/// The answer to an HTTP request, from the part its route names.
pub(crate) fn answer(
    mut parts: Parts<'_>,
    now_ms: u64,
    conn: ConnId,
    peer: SocketAddr,
    request: &Request,
    keep_alive: bool,
) -> HttpReply {
    let local_caller = crate::admission::is_local_direct(peer, request);
    HttpReply::Now(match route(request) {
        Route::MethodNotAllowed(allow) => method_not_allowed(allow),
        Route::Live => live(),
        Route::Ready => ready(
            parts.cx.net.is_draining(),
            local_caller,
            now_ms.saturating_sub(parts.started_at),
        ),
        Route::DeviceNonce => {
            let fresh = parts.cx.random_uuid();
            let (issued, expires_at_ms) = parts.admission.issue_nonce(fresh, now_ms);
            nonce(&issued, now_ms, expires_at_ms)
        }
        Route::Metrics => {
            let allowed = local_caller || crate::admission::bearer_matches(&parts.cx.config.auth, request);
            let stats = parts.cx.net.stats();
            metrics(allowed, || parts.metrics.render(&stats))
        }
        Route::ToolsInvoke => {
            let bearer_ok = crate::admission::bearer_matches(&parts.cx.config.auth, request);
            let call = match tool_call_of(request, bearer_ok) {
                Ok(call) => call,
                Err(response) => return HttpReply::Now(response),
            };
            let tool = call.name.clone();
            let reply = ToolReply::Http { conn, keep_alive };
            let started = parts
                .tools
                .begin(&mut parts.cx, parts.agents, now_ms, call, reply, None);
            return tool_call_answer(&tool, started);
        }
        Route::Agents(endpoint) => {
            let mut agents = Agents {
                hub: parts.agents,
                cx: parts.cx,
            };
            return crate::openai_http::route(
                &mut agents,
                parts.admission,
                now_ms,
                conn,
                peer,
                request,
                keep_alive,
                endpoint,
            );
        }
        Route::ControlUi => {
            let gate = crate::control_ui::UiGate {
                admission: parts.admission,
                pairing: parts.pairing,
            };
            let routed = crate::control_ui::route(&mut parts.cx, gate, now_ms, conn, peer, request, keep_alive);
            return routed.unwrap_or_else(|| HttpReply::Now(Response::text(404, "Not Found")));
        }
    })
}
