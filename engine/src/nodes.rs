//! `node.list`: the node-role clients that are connected or paired, as OpenClaw reports them.

use crate::gateway::Gateway;
use clawgate_proto::connect::ConnectParams;
use serde_json::{json, Value};
use std::collections::BTreeMap;

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

    /// Takes what `node.list` shows from the accepted `connect` params.
    pub fn from_connect(params: &ConnectParams, now_ms: u64) -> NodeInfo {
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
        }
    }
}

impl Gateway {
    /// Connected node clients first (by node id), then paired node devices that are offline.
    pub(crate) fn node_list(&self, now_ms: u64) -> Value {
        json!({"ts": now_ms, "nodes": self.node_entries()})
    }

    /// One node of [`Gateway::node_list`] by id, for `node.describe`.
    pub(crate) fn node_describe(&self, now_ms: u64, node_id: &str) -> Option<Value> {
        let mut entry = self.node_entries().into_iter().find(|n| n["nodeId"] == node_id)?;
        entry["ts"] = json!(now_ms);
        Some(entry)
    }

    fn node_entries(&self) -> Vec<Value> {
        let mut nodes: BTreeMap<String, Value> = BTreeMap::new();
        for (session, node) in self.node_sessions() {
            let node_id = session.device_id.clone().unwrap_or_else(|| session.conn_uuid.clone());
            let paired = self.pairing.paired.get(&node_id);
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
                "agents": Self::served_agents(&node.caps, &node.commands),
                "approvalState": if paired.is_some() { "approved" } else { "unpaired" },
                "connectedAtMs": node.connected_at_ms,
                "lastConnectedAtMs": node.connected_at_ms,
                "lastSeenAtMs": node.connected_at_ms,
                "lastSeenReason": "connect",
                "paired": paired.is_some(),
                "connected": true,
            });
            if let Some(p) = paired {
                entry["approvedAtMs"] = json!(p.approved_at_ms);
            }
            nodes.insert(node_id, entry);
        }
        for (id, device) in &self.pairing.paired {
            let is_node =
                device.roles.iter().any(|r| r == "node") || device.description.role.as_deref() == Some("node");
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
        let (online, offline): (Vec<Value>, Vec<Value>) =
            nodes.into_values().partition(|n| n["connected"] == json!(true));
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
}
