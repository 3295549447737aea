//! Plain HTTP requests on the gateway port.

use crate::gateway::Gateway;
use clawgate_proto::http::{Request, Response};
use serde_json::json;
use std::net::SocketAddr;

fn json_response(status: u16, body: &serde_json::Value) -> Response {
    Response::json(status, body).header("Cache-Control", "no-store")
}

impl Gateway {
    /// Whether `Authorization: Bearer <secret>` carries the shared token or password.
    fn bearer_ok(&self, request: &Request) -> bool {
        let Some(value) = request.header("authorization") else {
            return false;
        };
        let Some((scheme, secret)) = value.split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return false;
        }
        let offered = clawgate_proto::connect::ConnectAuth {
            token: Some(secret.trim().to_owned()),
            password: Some(secret.trim().to_owned()),
            ..Default::default()
        };
        matches!(
            self.config.auth.check(Some(&offered)),
            Ok(clawgate_proto::auth::AuthMethod::Token | clawgate_proto::auth::AuthMethod::Password)
        )
    }

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
            "/metrics" if !get_like => Response::text(405, "Method Not Allowed").header("Allow", "GET, HEAD"),
            "/metrics" => {
                if Self::is_local_direct(peer, request) || self.bearer_ok(request) {
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
            _ => Response::text(404, "Not Found"),
        }
    }
}
