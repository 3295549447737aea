//! `node.list`: the node-role clients that are connected or paired, as OpenClaw reports them.

use crate::pairing::PairingStore;
use clawgate_proto::connect::ConnectParams;
use clawgate_proto::session::AgentId;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The command a worker declares, and that the gateway invokes for every run.
pub const WORKER_COMMAND: &str = "agent.run";
/// Caps `agent:<agentId>` name the agents a worker serves.
pub const WORKER_CAP_PREFIX: &str = "agent:";

/// The agents a node-role connection serves (empty for other nodes).
pub(crate) fn served_agents(caps: &[String], commands: &[String]) -> Vec<String> {
    if !commands.iter().any(|c| c == WORKER_COMMAND) {
        return Vec::new();
    }
    let mut agents: Vec<String> = caps
        .iter()
        .filter_map(|c| c.strip_prefix(WORKER_CAP_PREFIX))
        .filter(|a| AgentId::is_valid(a))
        .map(|a| AgentId::normalize(a).as_str().to_owned())
        .collect();
    agents.dedup();
    agents
}

/// What a node-role client declared in its `connect`.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    display_name: Option<String>,
    platform: String,
    version: String,
    client_id: Value,
    client_mode: Value,
    device_family: Option<String>,
    caps: Vec<String>,
    commands: Vec<String>,
    path_env: Option<String>,
    connected_at_ms: u64,
    /// The node proved the gateway's own secret (token or password) and has no device identity,
    /// as the workers the gateway starts do: the owner's credential stands for its approval.
    by_owner_secret: bool,
}

impl NodeInfo {
    /// The caps the node declared.
    pub fn caps(&self) -> &[String] {
        &self.caps
    }

    /// The commands the node declared.
    pub fn commands(&self) -> &[String] {
        &self.commands
    }

    /// Takes what `node.list` shows from the accepted `connect` params; `by_owner_secret` says
    /// the node authenticated with the gateway's shared secret and no device identity.
    pub fn from_connect(params: &ConnectParams, now_ms: u64, by_owner_secret: bool) -> NodeInfo {
        let client = &params.client;
        NodeInfo {
            display_name: client.display_name.clone(),
            platform: client.platform.clone(),
            version: client.version.clone(),
            client_id: serde_json::to_value(client.id).unwrap_or(Value::Null),
            client_mode: serde_json::to_value(client.mode).unwrap_or(Value::Null),
            device_family: client.device_family.clone(),
            caps: params.caps.clone().unwrap_or_default(),
            commands: params.commands.clone().unwrap_or_default(),
            path_env: params.path_env.clone(),
            connected_at_ms: now_ms,
            by_owner_secret,
        }
    }
}

/// `node.list`: connected node clients first (by node id), then paired node devices that are
/// offline. `connected` gives each connected node's id and what it declared.
pub(crate) fn node_list<'a>(
    now_ms: u64,
    connected: impl Iterator<Item = (String, &'a NodeInfo)>,
    pairing: &PairingStore,
) -> Value {
    json!({"ts": now_ms, "nodes": node_entries(connected, pairing)})
}

/// `node.pair.list`: nodes pair as devices do, so the pending requests and the paired devices
/// with the node role.
pub(crate) fn node_pair_list(pairing: &PairingStore) -> Value {
    let is_node = |roles: &[String], role: Option<&str>| roles.iter().any(|r| r == "node") || role == Some("node");
    let pending: Vec<Value> = pairing
        .pending
        .values()
        .filter(|r| is_node(&r.roles, r.description.role.as_deref()))
        .map(|r| {
            json!({"requestId": r.request_id, "nodeId": r.device_id, "displayName": r.description.display_name,
                   "platform": r.description.platform, "ts": r.ts})
        })
        .collect();
    let paired: Vec<Value> = pairing
        .paired
        .iter()
        .filter(|(_, d)| is_node(&d.roles, d.description.role.as_deref()))
        .map(|(id, d)| {
            json!({"nodeId": id, "displayName": d.description.display_name, "platform": d.description.platform,
                   "approvedAtMs": d.approved_at_ms})
        })
        .collect();
    json!({"pending": pending, "paired": paired})
}

/// One node of [`node_list`] by id, for `node.describe`.
pub(crate) fn node_describe<'a>(
    now_ms: u64,
    node_id: &str,
    connected: impl Iterator<Item = (String, &'a NodeInfo)>,
    pairing: &PairingStore,
) -> Option<Value> {
    let mut entry = node_entries(connected, pairing)
        .into_iter()
        .find(|n| n["nodeId"] == node_id)?;
    entry["ts"] = json!(now_ms);
    Some(entry)
}

fn node_entries<'a>(connected: impl Iterator<Item = (String, &'a NodeInfo)>, pairing: &PairingStore) -> Vec<Value> {
    let mut nodes: BTreeMap<String, Value> = BTreeMap::new();
    for (node_id, node) in connected {
        let paired = pairing.paired.get(&node_id);
        let pending = pairing.pending.values().find(|r| r.device_id == node_id);
        let approved = paired.is_some() || node.by_owner_secret;
        // OpenClaw's four states; a pending request on an approved node asks for re-approval.
        let approval_state = match (pending, approved) {
            (Some(_), true) => "pending-reapproval",
            (Some(_), false) => "pending-approval",
            (None, true) => "approved",
            (None, false) => "unapproved",
        };
        let mut entry = json!({
            "nodeId": node_id,
            "displayName": node.display_name,
            "platform": node.platform,
            "version": node.version,
            "clientId": node.client_id,
            "clientMode": node.client_mode,
            "deviceFamily": node.device_family,
            "caps": node.caps,
            "commands": node.commands,
            "sessionHost": false,
            "nodePluginTools": [],
            "pathEnv": node.path_env,
            "agents": served_agents(&node.caps, &node.commands),
            "approvalState": approval_state,
            "connectedAtMs": node.connected_at_ms,
            "lastConnectedAtMs": node.connected_at_ms,
            "lastSeenAtMs": node.connected_at_ms,
            "lastSeenReason": "connect",
            "paired": approved,
            "connected": true,
        });
        if let Some(p) = paired {
            entry["approvedAtMs"] = json!(p.approved_at_ms);
        }
        if let Some(r) = pending {
            entry["pendingRequestId"] = json!(r.request_id);
        }
        nodes.insert(node_id, entry);
    }
    for (id, device) in &pairing.paired {
        let is_node = device.roles.iter().any(|r| r == "node") || device.description.role.as_deref() == Some("node");
        if !is_node || nodes.contains_key(id) {
            continue;
        }
        nodes.insert(
            id.clone(),
            json!({
                "nodeId": id,
                "displayName": device.description.display_name,
                "platform": device.description.platform,
                "clientId": device.description.client_id,
                "clientMode": device.description.client_mode,
                "deviceFamily": device.description.device_family,
                "caps": [],
                "commands": [],
                "approvalState": "approved",
                "approvedAtMs": device.approved_at_ms,
                "paired": true,
                "connected": false,
            }),
        );
    }
    let (online, offline): (Vec<Value>, Vec<Value>) = nodes.into_values().partition(|n| n["connected"] == json!(true));
    let mut list = online;
    list.extend(offline);
    // Fields a node did not declare are left out rather than sent as null.
    for node in &mut list {
        if let Some(map) = node.as_object_mut() {
            map.retain(|_, v| !v.is_null());
        }
    }
    list
}
