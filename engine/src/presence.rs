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
