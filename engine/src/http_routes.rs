//! Plain HTTP requests on the gateway port.

use crate::gateway::{ConnId, Gateway};
use crate::reply::HttpReply;
use crate::tool_calls::{json_response, ToolCallRequest, ToolReply, ToolStart};
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

impl Gateway {
    /// Whether `Authorization: Bearer <secret>` carries the shared token or password.
    pub(crate) fn bearer_ok(&self, request: &Request) -> bool {
        crate::admission::bearer_matches(&self.config.auth, request)
    }

    /// The answer to an HTTP request (later for a tool, an agent or a file; see
    /// [`Gateway::finish_deferred_http`]).
    pub(crate) fn route_http(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        peer: SocketAddr,
        request: &Request,
        keep_alive: bool,
    ) -> HttpReply {
        if let Some(answer) = self.route_agent_http(now_ms, conn, peer, request, keep_alive) {
            return answer;
        }
        let path = request.path();
        let get_like = request.method == "GET" || request.method == "HEAD";
        HttpReply::Now(match path {
            "/tools/invoke" if request.method != "POST" => {
                Response::text(405, "Method Not Allowed").header("Allow", "POST")
            }
            "/tools/invoke" => return self.http_tool_call(now_ms, conn, request, keep_alive),
            "/health" | "/healthz" | "/ready" | "/readyz" if !get_like => {
                Response::text(405, "Method Not Allowed").header("Allow", "GET, HEAD")
            }
            "/health" | "/healthz" => json_response(200, &json!({"ok": true, "status": "live"})),
            "/ready" | "/readyz" => {
                let ready = !self.is_stopping();
                let status = if ready { 200 } else { 503 };
                // Details only for callers on this host; others learn just the verdict.
                if crate::admission::is_local_direct(peer, request) {
                    let failing: Vec<&str> = if ready { vec![] } else { vec!["stopping"] };
                    json_response(
                        status,
                        &json!({"ready": ready, "failing": failing, "uptimeMs": now_ms.saturating_sub(self.started_at)}),
                    )
                } else {
                    json_response(status, &json!({"ready": ready}))
                }
            }
            "/api/device/nonce" if !get_like => Response::text(405, "Method Not Allowed").header("Allow", "GET, HEAD"),
            "/api/device/nonce" => {
                let (nonce, expires_at_ms) = self.issue_http_nonce(now_ms);
                json_response(
                    200,
                    &json!({"nonce": nonce, "ts": now_ms, "expiresAtMs": expires_at_ms}),
                )
            }
            "/metrics" if !get_like => Response::text(405, "Method Not Allowed").header("Allow", "GET, HEAD"),
            "/metrics" => {
                if crate::admission::is_local_direct(peer, request) || self.bearer_ok(request) {
                    let body = self.metrics.render(&self.connection_states());
                    Response::new(200)
                        .header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                        .header("Cache-Control", "no-store")
                        .body(body.into_bytes())
                } else {
                    json_response(
                        401,
                        &json!({"error": {"message": "Unauthorized", "type": "unauthorized"}}),
                    )
                }
            }
            _ => match self.route_control_ui(now_ms, conn, peer, request, keep_alive) {
                Some(answer) => return answer,
                None => Response::text(404, "Not Found"),
            },
        })
    }

    /// `POST /tools/invoke`: the shared secret as a bearer token is a full operator.
    fn http_tool_call(&mut self, now_ms: u64, conn: ConnId, request: &Request, keep_alive: bool) -> HttpReply {
        if !self.bearer_ok(request) {
            return HttpReply::Now(json_response(
                401,
                &json!({"error": {"message": "Unauthorized", "type": "unauthorized"}}),
            ));
        }
        let call: HttpToolCall = match serde_json::from_slice(&request.body) {
            Ok(call) => call,
            Err(e) => return HttpReply::Now(http_error(400, "invalid_request", &format!("invalid body: {e}"))),
        };
        let mut args = call.args.unwrap_or_default();
        if let Some(action) = call.action {
            args.entry("action").or_insert(Value::String(action));
        }
        let header = |name: &str| request.header(name).map(str::to_owned);
        let start = ToolCallRequest {
            caller: Some("http".to_owned()),
            name: call.tool.clone(),
            args,
            session_key: call.session_key.or_else(|| header("x-openclaw-session-key")),
            agent_id: header("x-openclaw-agent-id").or_else(|| header("x-openclaw-agent")),
            over_http: true,
            run_id: None,
        };
        match self.begin_tool_call(now_ms, start, ToolReply::Http { conn, keep_alive }, None) {
            Ok(ToolStart::Running) => HttpReply::Later,
            Ok(ToolStart::Refused {
                code: "TOOL_NOT_FOUND", ..
            }) => HttpReply::Now(http_error(
                404,
                "not_found",
                &format!("Tool not available: {}", call.tool),
            )),
            Ok(ToolStart::Refused { message, .. }) => HttpReply::Now(http_error(403, "tool_call_blocked", &message)),
            Err(e) => HttpReply::Now(http_error(400, "invalid_request", &e.message)),
        }
    }
}
