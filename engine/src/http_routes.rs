//! Plain HTTP requests on the gateway port.

use crate::gateway::Gateway;
use clawgate_proto::http::{Request, Response};
use serde_json::json;
use std::net::SocketAddr;

fn json_response(status: u16, body: &serde_json::Value) -> Response {
    Response::json(status, body).header("Cache-Control", "no-store")
}

impl Gateway {
    pub(crate) fn route_http(&mut self, now_ms: u64, peer: SocketAddr, request: &Request) -> Response {
        let path = request.path();
        let get_like = request.method == "GET" || request.method == "HEAD";
        match path {
            "/health" | "/healthz" | "/ready" | "/readyz" if !get_like => {
                Response::text(405, "Method Not Allowed").header("Allow", "GET, HEAD")
            }
            "/health" | "/healthz" => json_response(200, &json!({"ok": true, "status": "live"})),
            "/ready" | "/readyz" => {
                let ready = !self.is_stopping();
                let status = if ready { 200 } else { 503 };
                // Details only for callers on this host; others learn just the verdict.
                if Self::is_local_direct(peer, request) {
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
            _ => Response::text(404, "Not Found"),
        }
    }
}
