//! The gateway's own methods (health, status, logs, identity, config, nodes, tools) and the
//! payloads they return.

use crate::agents::AgentHub;
use crate::config::GatewayConfig;
use crate::conns::Connections;
use crate::output::Output;
use crate::pairing::PairingStore;
use clawgate_proto::device::DeviceIdentity;
use clawgate_proto::frame::{to_raw, ErrorCode, ErrorShape, RequestFrame};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

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

/// What the gateway's own methods read.
pub(crate) struct Core<'a> {
    pub config: &'a GatewayConfig,
    pub agents: &'a AgentHub,
    pub net: &'a mut Connections,
    pub pairing: &'a PairingStore,
    pub identity: &'a DeviceIdentity,
    pub instance_id: &'a str,
    pub started_at: u64,
}

/// The answer of one of the gateway's own methods.
pub(crate) enum Answer {
    /// This payload.
    Value(Box<RawValue>),
    /// The cached `health` summary.
    Health,
    /// The cached presence list.
    Presence,
}

/// The `health` summary.
pub(crate) fn health_payload(config: &GatewayConfig, agents: &AgentHub, config_reload: &Value, now_ms: u64) -> Value {
    let agent = config.session_routing().default_agent.as_str().to_owned();
    json!({
        "ok": true,
        "ts": now_ms,
        "durationMs": 0,
        "plugins": {"loaded": [], "errors": [], "unavailable": []},
        "configReload": config_reload,
        "channels": {},
        "channelOrder": [],
        "channelLabels": {},
        "heartbeatSeconds": 0,
        "defaultAgentId": agent,
        "agents": agents.agent_presence(config),
        "sessions": {"path": crate::agents::TRANSCRIPT_DIR, "count": agents.sessions.len(), "recent": []},
        "eventLoop": {"degraded": false, "degradedSinceMs": null, "reasons": []},
    })
}

fn status_payload(core: &Core<'_>, now_ms: u64, admin: bool) -> Value {
    let agent = core.config.session_routing().default_agent.as_str().to_owned();
    let agents = core.agents.agent_presence(core.config);
    let mut v = json!({
        "runtimeVersion": core.config.server_version,
        "heartbeat": {"defaultAgentId": agent, "agents": [{"agentId": agent, "enabled": false}]},
        "channelSummary": [],
        "queuedSystemEvents": [],
        "sessions": {
            "paths": [crate::agents::TRANSCRIPT_DIR],
            "count": core.agents.sessions.len(),
            "defaults": {"model": null, "contextTokens": null},
            "recent": [],
            "byAgent": agents.iter().map(|a| json!({
                "agentId": a["agentId"], "count": a["sessions"]["count"], "recent": [],
            })).collect::<Vec<_>>(),
        },
        "agents": agents,
        "eventLoop": {"degraded": false, "degradedSinceMs": null, "reasons": []},
        "uptimeMs": now_ms.saturating_sub(core.started_at),
    });
    if admin {
        v["stateDir"] = json!(core.config.state_dir);
        v["configPath"] = json!(core.config.config_path);
    }
    v
}

fn logs_tail(net: &Connections, params: LogsTailParams) -> Value {
    let limit = params.limit.unwrap_or(200).clamp(1, 1000);
    let max_bytes = params.max_bytes.unwrap_or(256 * 1024).max(1);
    net.logs().tail(params.cursor, limit, max_bytes)
}

pub(crate) fn call(
    core: &mut Core<'_>,
    now_ms: u64,
    request: &RequestFrame,
    admin: bool,
) -> Result<Answer, ErrorShape> {
    let method = request.method.as_str();
    let value = match method {
        // The cached summary, as the reference gateway answers (refreshed every 60 s).
        "health" => return Ok(Answer::Health),
        "system-presence" => return Ok(Answer::Presence),
        "status" => status_payload(core, now_ms, admin),
        "logs.tail" => {
            let params: LogsTailParams = request.parse_params().map_err(|e| invalid_params(method, e))?;
            logs_tail(core.net, params)
        }
        "gateway.identity.get" => json!({
            "deviceId": core.identity.device_id(),
            "publicKey": core.identity.public_key_b64url(),
            "instanceId": core.instance_id,
        }),
        "node.list" => crate::nodes::node_list(now_ms, core.net.connected_nodes(), core.pairing),
        "node.describe" => {
            let params: NodeDescribeParams = request.parse_params().map_err(|e| invalid_params(method, e))?;
            crate::nodes::node_describe(now_ms, &params.node_id, core.net.connected_nodes(), core.pairing).ok_or_else(
                || ErrorShape::new(ErrorCode::InvalidRequest, format!("unknown nodeId: {}", params.node_id)),
            )?
        }
        "tools.catalog" => {
            let params: ToolsCatalogParams = request.parse_params().map_err(|e| invalid_params(method, e))?;
            let agent = core.agents.known_agent(core.config, params.agent_id.as_deref())?;
            crate::tool_catalog::catalog(&agent)
        }
        "tools.effective" => {
            let params: ToolsEffectiveParams = request.parse_params().map_err(|e| invalid_params(method, e))?;
            let routing = core.config.session_routing();
            let key = routing
                .resolve(Some(&params.session_key), params.agent_id.as_deref())
                .map_err(|e| invalid_params(method, e))?;
            let agent = core
                .agents
                .known_agent(core.config, Some(routing.agent_of(&key).as_str()))?;
            crate::tool_catalog::effective(&core.config.tool_policy, &routing, &agent, &key)
        }
        "sessions.list" => core.agents.sessions_list_payload(core.config, now_ms, request)?,
        "config.reload" => {
            core.net.push_output(Output::ReloadConfig);
            json!({"ok": true, "path": core.config.config_path})
        }
        // Secrets are `${NAME}` references in the file, resolved when it is read: reading it
        // again resolves them again.
        "secrets.reload" => {
            core.net.push_output(Output::ReloadConfig);
            json!({"ok": true, "warningCount": 0})
        }
        "node.pair.list" => crate::nodes::node_pair_list(core.pairing),
        "connect" => {
            return Err(ErrorShape::new(
                ErrorCode::InvalidRequest,
                "connect is only valid as the first request",
            ));
        }
        other => return Err(ErrorShape::unknown_method(other)),
    };
    Ok(Answer::Value(to_raw(&value)))
}
