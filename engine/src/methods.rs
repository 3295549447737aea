//! Method handlers and the payloads they return.

use crate::gateway::Gateway;
use clawgate_proto::frame::{to_raw, ErrorCode, ErrorShape, RequestFrame};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// Every method this gateway implements, as advertised in `hello-ok.features.methods`: the
/// entries of proto's method table that have an owner here.
pub fn implemented_methods() -> impl Iterator<Item = &'static str> {
    clawgate_proto::methods::implemented().map(|m| m.name)
}

/// Events this gateway emits, advertised in `hello-ok.features.events`.
pub const EVENTS: &[&str] = &[
    "connect.challenge",
    "presence",
    "tick",
    "health",
    "shutdown",
    "device.pair.requested",
    "device.pair.resolved",
    "agent",
    "chat",
    "sessions.changed",
    "session.message",
    "node.invoke.request",
];

pub use crate::settings::REDACTED;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ToolsCatalogParams {
    agent_id: Option<String>,
    #[allow(dead_code)]
    include_plugins: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NodeDescribeParams {
    node_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ToolsEffectiveParams {
    agent_id: Option<String>,
    session_key: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct LogsTailParams {
    cursor: Option<u64>,
    limit: Option<usize>,
    max_bytes: Option<usize>,
}

fn invalid_params(method: &str, e: impl std::fmt::Display) -> ErrorShape {
    ErrorShape::new(ErrorCode::InvalidRequest, format!("invalid {method} params: {e}"))
}

impl Gateway {
    pub(crate) fn health_payload(&self, now_ms: u64) -> Value {
        let agent = self.config.session_routing().default_agent.as_str().to_owned();
        json!({
            "ok": true,
            "ts": now_ms,
            "durationMs": 0,
            "plugins": {"loaded": [], "errors": [], "unavailable": []},
            "configReload": self.config_reload_status,
            "channels": {},
            "channelOrder": [],
            "channelLabels": {},
            "heartbeatSeconds": 0,
            "defaultAgentId": agent,
            "agents": self.agent_presence(),
            "sessions": {"path": crate::agents::TRANSCRIPT_DIR, "count": self.agents.sessions.len(), "recent": []},
            "eventLoop": {"degraded": false, "degradedSinceMs": null, "reasons": []},
        })
    }

    /// The agent a request names (the default one when it names none); an agent the config does
    /// not know is refused.
    pub(crate) fn known_agent(&self, requested: Option<&str>) -> Result<clawgate_proto::session::AgentId, ErrorShape> {
        let routing = self.config.session_routing();
        let Some(raw) = requested.filter(|r| !r.trim().is_empty()) else {
            return Ok(routing.default_agent);
        };
        let agent = clawgate_proto::session::AgentId::normalize(raw);
        if agent == routing.default_agent
            || self.config.tool_policy.agent(&agent).is_some()
            || self.agents.serves(agent.as_str())
        {
            Ok(agent)
        } else {
            Err(ErrorShape::new(
                ErrorCode::InvalidRequest,
                format!("unknown agent id: {raw}"),
            ))
        }
    }

    fn status_payload(&self, now_ms: u64, admin: bool) -> Value {
        let agent = self.config.session_routing().default_agent.as_str().to_owned();
        let agents = self.agent_presence();
        let mut v = json!({
            "runtimeVersion": self.config.server_version,
            "heartbeat": {"defaultAgentId": agent, "agents": [{"agentId": agent, "enabled": false}]},
            "channelSummary": [],
            "queuedSystemEvents": [],
            "sessions": {
                "paths": [crate::agents::TRANSCRIPT_DIR],
                "count": self.agents.sessions.len(),
                "defaults": {"model": null, "contextTokens": null},
                "recent": [],
                "byAgent": agents.iter().map(|a| json!({
                    "agentId": a["agentId"], "count": a["sessions"]["count"], "recent": [],
                })).collect::<Vec<_>>(),
            },
            "agents": agents,
            "eventLoop": {"degraded": false, "degradedSinceMs": null, "reasons": []},
            "uptimeMs": now_ms.saturating_sub(self.started_at),
        });
        if admin {
            v["stateDir"] = json!(self.config.state_dir);
            v["configPath"] = json!(self.config.config_path);
        }
        v
    }

    fn logs_tail(&self, params: LogsTailParams) -> Value {
        let limit = params.limit.unwrap_or(200).clamp(1, 1000);
        let max_bytes = params.max_bytes.unwrap_or(256 * 1024).max(1);
        self.logs_ring().tail(params.cursor, limit, max_bytes)
    }

    pub(crate) fn call_method(
        &mut self,
        now_ms: u64,
        method: &str,
        request: &RequestFrame,
        admin: bool,
    ) -> Result<Box<RawValue>, ErrorShape> {
        let value = match method {
            // The cached summary, as the reference gateway answers (refreshed every 60 s).
            "health" => {
                self.refresh_snapshots(now_ms);
                return Ok(self.cache.health.1.clone());
            }
            "system-presence" => {
                self.refresh_snapshots(now_ms);
                return Ok(self.cache.presence.1.clone());
            }
            "status" => self.status_payload(now_ms, admin),
            "logs.tail" => {
                let params: LogsTailParams = request.parse_params().map_err(|e| invalid_params(method, e))?;
                self.logs_tail(params)
            }
            "gateway.identity.get" => json!({
                "deviceId": self.identity.device_id(),
                "publicKey": self.identity.public_key_b64url(),
                "instanceId": self.instance_id,
            }),
            "config.get" => {
                let secret = match self.auth_mode() {
                    clawgate_proto::auth::AuthMode::Token => json!({"mode": "token", "token": REDACTED}),
                    clawgate_proto::auth::AuthMode::Password => json!({"mode": "password", "password": REDACTED}),
                    other => json!({"mode": other.as_str()}),
                };
                let mut config = crate::settings::redacted(self.document());
                if config.get("gateway").is_none() {
                    config["gateway"] = json!({"mode": "local"});
                }
                config["gateway"]["auth"] = secret;
                json!({
                    "path": self.config.config_path,
                    "exists": self.document().as_object().is_some_and(|m| !m.is_empty()),
                    "config": config,
                    "hash": null,
                })
            }
            "node.list" => crate::nodes::node_list(now_ms, self.connected_nodes(), &self.pairing),
            "node.describe" => {
                let params: NodeDescribeParams = request.parse_params().map_err(|e| invalid_params(method, e))?;
                crate::nodes::node_describe(now_ms, &params.node_id, self.connected_nodes(), &self.pairing).ok_or_else(
                    || ErrorShape::new(ErrorCode::InvalidRequest, format!("unknown nodeId: {}", params.node_id)),
                )?
            }
            "tools.catalog" => {
                let params: ToolsCatalogParams = request.parse_params().map_err(|e| invalid_params(method, e))?;
                let agent = self.known_agent(params.agent_id.as_deref())?;
                crate::tool_catalog::catalog(&agent)
            }
            "tools.effective" => {
                let params: ToolsEffectiveParams = request.parse_params().map_err(|e| invalid_params(method, e))?;
                let routing = self.config.session_routing();
                let key = routing
                    .resolve(Some(&params.session_key), params.agent_id.as_deref())
                    .map_err(|e| invalid_params(method, e))?;
                let agent = self.known_agent(Some(routing.agent_of(&key).as_str()))?;
                crate::tool_catalog::effective(&self.config.tool_policy, &routing, &agent, &key)
            }
            "sessions.list" => self.sessions_list_payload(now_ms, request)?,
            "config.reload" => {
                self.request_config_reload();
                json!({"ok": true, "path": self.config.config_path})
            }
            "connect" => {
                return Err(ErrorShape::new(
                    ErrorCode::InvalidRequest,
                    "connect is only valid as the first request",
                ));
            }
            other => return Err(ErrorShape::unknown_method(other)),
        };
        Ok(to_raw(&value))
    }
}
