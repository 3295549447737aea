//! Presence: who is connected, keyed by device id, instance id or connection id.

use crate::config::{MAX_PRESENCE_ENTRIES, PRESENCE_TTL_MS};
use serde::Serialize;
use std::collections::BTreeMap;

/// One presence entry, as `system-presence` and `presence` events report it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PresenceEntry {
    pub host: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    pub version: String,
    pub platform: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_family: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_identifier: Option<String>,
    pub mode: String,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    pub text: String,
    pub ts: u64,
}

impl PresenceEntry {
    /// The gateway's own entry.
    pub(crate) fn of_gateway(config: &crate::config::GatewayConfig, instance_id: &str, now_ms: u64) -> PresenceEntry {
        PresenceEntry {
            host: config.host_name.clone(),
            ip: None,
            version: config.server_version.clone(),
            platform: std::env::consts::OS.to_owned(),
            device_family: None,
            model_identifier: None,
            mode: "gateway".to_owned(),
            reason: "self".to_owned(),
            device_id: None,
            instance_id: Some(instance_id.to_owned()),
            roles: Vec::new(),
            scopes: None,
            text: format!(
                "Gateway: {} · app {} · mode gateway · reason self",
                config.host_name, config.server_version
            ),
            ts: now_ms,
        }
    }

    /// The entry a `system-event` leaves: its text, from the gateway's host.
    pub(crate) fn of_text(config: &crate::config::GatewayConfig, text: String, now_ms: u64) -> PresenceEntry {
        PresenceEntry {
            reason: "system-event".to_owned(),
            instance_id: None,
            text,
            ..PresenceEntry::of_gateway(config, "", now_ms)
        }
    }

    /// The entry of a client that connected from `ip`.
    pub(crate) fn of_client(
        client: &clawgate_proto::connect::ClientInfo,
        ip: std::net::IpAddr,
        role: clawgate_proto::connect::Role,
        device_id: Option<String>,
        scopes: Vec<String>,
        now_ms: u64,
    ) -> PresenceEntry {
        PresenceEntry {
            host: client
                .display_name
                .clone()
                .unwrap_or_else(|| client.id.as_str().to_owned()),
            ip: (!crate::admission::is_loopback(ip)).then(|| crate::rate_limit::canonical_ip(ip).to_string()),
            version: client.version.clone(),
            platform: client.platform.clone(),
            device_family: client.device_family.clone(),
            model_identifier: client.model_identifier.clone(),
            mode: client.mode.as_str().to_owned(),
            reason: "connect".to_owned(),
            device_id,
            instance_id: client.instance_id.clone(),
            roles: vec![role.as_str().to_owned()],
            scopes: Some(scopes),
            text: format!("Node: {} · app {} · mode {}", client.id, client.version, client.mode),
            ts: now_ms,
        }
    }
}

/// The presence table with its version counter.
#[derive(Debug, Default)]
pub struct Presence {
    entries: BTreeMap<String, PresenceEntry>,
    version: u64,
}

impl Presence {
    /// Inserts or replaces the entry under `key`; bumps the version.
    pub fn upsert(&mut self, key: String, entry: PresenceEntry) {
        self.entries.insert(key, entry);
        if self.entries.len() > MAX_PRESENCE_ENTRIES {
            // Drop the stalest entry: the table stays bounded whatever clients do.
            if let Some(oldest) = self.entries.iter().min_by_key(|(_, e)| e.ts).map(|(k, _)| k.clone()) {
                self.entries.remove(&oldest);
            }
        }
        self.version += 1;
    }

    /// Drops entries older than the TTL; returns whether anything changed.
    pub fn expire(&mut self, now_ms: u64) -> bool {
        let before = self.entries.len();
        self.entries
            .retain(|_, e| e.reason != "disconnect" || now_ms.saturating_sub(e.ts) <= PRESENCE_TTL_MS);
        let changed = self.entries.len() != before;
        if changed {
            self.version += 1;
        }
        changed
    }

    /// Marks the entry under `key` as disconnected.
    pub fn disconnect(&mut self, key: &str, now_ms: u64) {
        if let Some(e) = self.entries.get_mut(key) {
            e.reason = "disconnect".to_owned();
            e.ts = now_ms;
            self.version += 1;
        }
    }

    /// The entries, newest first.
    pub fn list(&self) -> Vec<&PresenceEntry> {
        let mut v: Vec<&PresenceEntry> = self.entries.values().collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.ts));
        v
    }

    /// The version counter (`stateVersion.presence`).
    pub fn version(&self) -> u64 {
        self.version
    }
}
