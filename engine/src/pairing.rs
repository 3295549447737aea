//! Device pairing: which devices are approved for which roles and scopes, the pending requests,
//! and per-device tokens. Pure data and decisions; the gateway persists the two maps through
//! `persist` outputs in the layout of OpenClaw's `devices/paired.json` and `devices/pending.json`.

use clawgate_proto::device::{normalize_metadata, secrets_equal};
use clawgate_proto::handshake::PairingReason;
use clawgate_proto::scopes::{Scope, ScopeSet};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How long a pending request waits for an operator.
pub const PENDING_TTL_MS: u64 = 5 * 60_000;

/// What a device says about itself when it asks: kept on its request and, once approved, on
/// its record (the same keys in both of OpenClaw's files).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceDescription {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_family: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_ip: Option<String>,
}

impl DeviceDescription {
    /// This description, completed with what `older` says where this one says nothing.
    fn or(self, older: DeviceDescription) -> DeviceDescription {
        DeviceDescription {
            display_name: self.display_name.or(older.display_name),
            platform: self.platform.or(older.platform),
            device_family: self.device_family.or(older.device_family),
            client_id: self.client_id.or(older.client_id),
            client_mode: self.client_mode.or(older.client_mode),
            role: self.role.or(older.role),
            remote_ip: self.remote_ip.or(older.remote_ip),
        }
    }
}

/// A request for approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingRequest {
    pub request_id: String,
    pub device_id: String,
    pub public_key: String,
    #[serde(flatten)]
    pub description: DeviceDescription,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub silent: bool,
    #[serde(default)]
    pub is_repair: bool,
    pub ts: u64,
}

/// A device token for one role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceToken {
    pub token: String,
    pub role: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub created_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at_ms: Option<u64>,
}

/// An approved device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairedDevice {
    pub device_id: String,
    pub public_key: String,
    #[serde(flatten)]
    pub description: DeviceDescription,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_label: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub approved_scopes: Vec<String>,
    #[serde(default)]
    pub tokens: BTreeMap<String, DeviceToken>,
    pub created_at_ms: u64,
    pub approved_at_ms: u64,
}

/// What a connecting device claims.
#[derive(Debug, Clone)]
pub struct DeviceClaim<'a> {
    pub device_id: &'a str,
    pub public_key: &'a str,
    pub role: &'a str,
    pub scopes: &'a [String],
    pub display_name: Option<&'a str>,
    pub platform: &'a str,
    pub device_family: Option<&'a str>,
    pub client_id: &'a str,
    pub client_mode: &'a str,
    pub remote_ip: Option<String>,
}

/// Why an operation on the store was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairingError {
    UnknownRequest,
    UnknownDevice,
    UnknownRole,
    /// A requested scope does not belong to a requested role.
    ScopeOutsideRoles(String),
    /// The approver lacks a scope it would grant.
    CallerMissingScope(String),
    /// The requested token scopes go beyond what the device was approved for.
    ScopeBeyondApproval,
}

/// Why a device token did not authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFailure {
    NotPaired,
    RoleMissing,
    Revoked,
    Mismatch,
    ScopeMismatch,
}

/// Operator scope implication for a role: for `operator` the scope rules apply, for other roles
/// every scope must be `<role>.`-prefixed and approved verbatim.
pub fn role_scopes_allow(role: &str, requested: &[String], approved: &[String]) -> bool {
    if role == "operator" {
        let approved = ScopeSet::from_names(approved);
        requested
            .iter()
            .all(|s| Scope::parse(s).is_some_and(|sc| approved.allows(sc)))
    } else {
        requested
            .iter()
            .all(|s| s.starts_with(&format!("{role}.")) && approved.contains(s))
    }
}

fn union(a: &[String], b: &[String]) -> Vec<String> {
    let mut out: Vec<String> = a.to_vec();
    for s in b {
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    out.sort();
    out
}

/// The pairing state.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PairingStore {
    pub paired: BTreeMap<String, PairedDevice>,
    pub pending: BTreeMap<String, PendingRequest>,
}

impl PairingStore {
    /// Parses the two persisted files (each may be absent). The error names the problem.
    pub fn load(paired: Option<&str>, pending: Option<&str>) -> Result<PairingStore, (String, String)> {
        let paired = match paired {
            None => BTreeMap::new(),
            Some(text) => serde_json::from_str(text).map_err(|e| ("devices/paired.json".to_owned(), e.to_string()))?,
        };
        let pending = match pending {
            None => BTreeMap::new(),
            Some(text) => serde_json::from_str(text).map_err(|e| ("devices/pending.json".to_owned(), e.to_string()))?,
        };
        Ok(PairingStore { paired, pending })
    }

    /// The JSON text of `devices/paired.json`.
    pub fn paired_json(&self) -> String {
        serde_json::to_string_pretty(&self.paired).unwrap_or_default()
    }

    /// The JSON text of `devices/pending.json`.
    pub fn pending_json(&self) -> String {
        serde_json::to_string_pretty(&self.pending).unwrap_or_default()
    }

    /// Drops pending requests older than the TTL; returns whether any were dropped.
    pub fn expire(&mut self, now_ms: u64) -> bool {
        let before = self.pending.len();
        self.pending
            .retain(|_, p| now_ms.saturating_sub(p.ts) <= PENDING_TTL_MS);
        before != self.pending.len()
    }

    /// Roles the device may use now: approved roles that hold a live token.
    fn effective_roles(device: &PairedDevice) -> Vec<&str> {
        device
            .roles
            .iter()
            .filter(|r| device.tokens.get(*r).is_some_and(|t| t.revoked_at_ms.is_none()))
            .map(String::as_str)
            .collect()
    }

    /// Whether the device may connect as it claims, or why it needs approval.
    pub fn check(&self, claim: &DeviceClaim<'_>) -> Result<(), PairingReason> {
        let Some(device) = self
            .paired
            .get(claim.device_id)
            .filter(|d| d.public_key == claim.public_key)
        else {
            return Err(PairingReason::NotPaired);
        };
        let pinned_differs = |pinned: &Option<String>, claimed: Option<&str>| {
            pinned
                .as_deref()
                .filter(|p| !p.is_empty())
                .is_some_and(|p| normalize_metadata(p) != normalize_metadata(claimed.unwrap_or("")))
        };
        if pinned_differs(&device.description.platform, Some(claim.platform))
            || pinned_differs(&device.description.device_family, claim.device_family)
        {
            return Err(PairingReason::MetadataUpgrade);
        }
        if !Self::effective_roles(device).contains(&claim.role) {
            return Err(PairingReason::RoleUpgrade);
        }
        if !claim.scopes.is_empty()
            && (device.approved_scopes.is_empty()
                || !role_scopes_allow(claim.role, claim.scopes, &device.approved_scopes))
        {
            return Err(PairingReason::ScopeUpgrade);
        }
        Ok(())
    }

    /// Records a request (one per device: an identical one is refreshed in place keeping its `ts`,
    /// anything else is merged into one request). Returns the request and whether it is new.
    pub fn request(&mut self, claim: &DeviceClaim<'_>, request_id: String, now_ms: u64) -> (PendingRequest, bool) {
        self.expire(now_ms);
        let is_repair = self.paired.contains_key(claim.device_id);
        let existing: Vec<PendingRequest> = self
            .pending
            .values()
            .filter(|p| p.device_id == claim.device_id)
            .cloned()
            .collect();
        let roles = vec![claim.role.to_owned()];
        let scopes = union(&[], claim.scopes);
        if let Some(same) = existing
            .iter()
            .find(|p| p.public_key == claim.public_key && p.roles == roles && p.scopes == scopes)
        {
            return (same.clone(), false);
        }
        let mut merged_roles = roles.clone();
        let mut merged_scopes = scopes;
        let mut ts = now_ms;
        for old in &existing {
            merged_roles = union(&merged_roles, &old.roles);
            merged_scopes = union(&merged_scopes, &old.scopes);
            ts = ts.min(old.ts);
            self.pending.remove(&old.request_id);
        }
        let request = PendingRequest {
            request_id: request_id.clone(),
            device_id: claim.device_id.to_owned(),
            public_key: claim.public_key.to_owned(),
            description: DeviceDescription {
                display_name: claim.display_name.map(str::to_owned),
                platform: Some(claim.platform.to_owned()),
                device_family: claim.device_family.map(str::to_owned),
                client_id: Some(claim.client_id.to_owned()),
                client_mode: Some(claim.client_mode.to_owned()),
                role: Some(claim.role.to_owned()),
                remote_ip: claim.remote_ip.clone(),
            },
            roles: merged_roles,
            scopes: merged_scopes,
            silent: false,
            is_repair,
            ts: if existing.is_empty() { now_ms } else { ts },
        };
        self.pending.insert(request_id, request.clone());
        (request, true)
    }

    /// Approves a pending request on behalf of a caller holding `caller_scopes`; returns the
    /// paired record. Mints a fresh token for every requested role with `mint`.
    pub fn approve(
        &mut self,
        request_id: &str,
        caller_scopes: ScopeSet,
        now_ms: u64,
        mint: &mut dyn FnMut() -> String,
    ) -> Result<PairedDevice, PairingError> {
        self.expire(now_ms);
        let request = self
            .pending
            .get(request_id)
            .cloned()
            .ok_or(PairingError::UnknownRequest)?;
        for scope in &request.scopes {
            let belongs = request.roles.iter().any(|r| {
                if r == "operator" {
                    scope.starts_with("operator.")
                } else {
                    scope.starts_with(&format!("{r}."))
                }
            });
            if !belongs {
                return Err(PairingError::ScopeOutsideRoles(scope.clone()));
            }
            if scope.starts_with("operator.") && !Scope::parse(scope).is_some_and(|s| caller_scopes.allows(s)) {
                return Err(PairingError::CallerMissingScope(scope.clone()));
            }
        }
        let existing = self
            .paired
            .get(&request.device_id)
            .filter(|d| d.public_key == request.public_key)
            .cloned();
        let mut device = existing.unwrap_or(PairedDevice {
            device_id: request.device_id.clone(),
            public_key: request.public_key.clone(),
            description: DeviceDescription::default(),
            operator_label: None,
            roles: Vec::new(),
            scopes: Vec::new(),
            approved_scopes: Vec::new(),
            tokens: BTreeMap::new(),
            created_at_ms: now_ms,
            approved_at_ms: now_ms,
        });
        device.description = request.description.clone().or(device.description);
        device.roles = union(&device.roles, &request.roles);
        device.approved_scopes = union(&device.approved_scopes, &request.scopes);
        device.scopes = device.approved_scopes.clone();
        for role in &request.roles {
            let role_scopes: Vec<String> = request
                .scopes
                .iter()
                .filter(|s| {
                    if role == "operator" {
                        s.starts_with("operator.")
                    } else {
                        !s.starts_with("operator.")
                    }
                })
                .cloned()
                .collect();
            let previous = device.tokens.get(role).cloned();
            let scopes = if role_scopes.is_empty() {
                previous.as_ref().map(|t| t.scopes.clone()).unwrap_or_default()
            } else {
                role_scopes
            };
            device.tokens.insert(
                role.clone(),
                DeviceToken {
                    token: mint(),
                    role: role.clone(),
                    scopes,
                    created_at_ms: previous.as_ref().map_or(now_ms, |t| t.created_at_ms),
                    rotated_at_ms: previous.as_ref().map(|_| now_ms),
                    revoked_at_ms: None,
                    last_used_at_ms: None,
                },
            );
        }
        device.approved_at_ms = now_ms;
        self.pending.remove(request_id);
        self.paired.insert(device.device_id.clone(), device.clone());
        Ok(device)
    }

    /// Rejects a pending request; returns it.
    pub fn reject(&mut self, request_id: &str) -> Result<PendingRequest, PairingError> {
        self.pending.remove(request_id).ok_or(PairingError::UnknownRequest)
    }

    /// Forgets a device.
    pub fn remove(&mut self, device_id: &str) -> Result<PairedDevice, PairingError> {
        self.pending.retain(|_, p| p.device_id != device_id);
        self.paired.remove(device_id).ok_or(PairingError::UnknownDevice)
    }

    /// Sets the operator's label for a device.
    pub fn rename(&mut self, device_id: &str, label: &str) -> Result<(), PairingError> {
        let device = self.paired.get_mut(device_id).ok_or(PairingError::UnknownDevice)?;
        device.operator_label = Some(label.to_owned());
        Ok(())
    }

    /// Checks a device token for `role` and `scopes`, and records its use.
    /// Whether `token` is the operator token of a paired device, not revoked.
    pub fn holds_operator_token(&self, token: &str) -> bool {
        !token.is_empty()
            && self.paired.values().any(|d| {
                d.tokens
                    .get("operator")
                    .is_some_and(|t| t.revoked_at_ms.is_none() && secrets_equal(&t.token, token))
            })
    }

    pub fn verify_token(
        &mut self,
        device_id: &str,
        token: &str,
        role: &str,
        scopes: &[String],
        now_ms: u64,
    ) -> Result<(), TokenFailure> {
        let device = self.paired.get_mut(device_id).ok_or(TokenFailure::NotPaired)?;
        let entry = device.tokens.get_mut(role).ok_or(TokenFailure::RoleMissing)?;
        if entry.revoked_at_ms.is_some() {
            return Err(TokenFailure::Revoked);
        }
        if !secrets_equal(&entry.token, token) {
            return Err(TokenFailure::Mismatch);
        }
        if !role_scopes_allow(role, &entry.scopes, &device.approved_scopes)
            || !role_scopes_allow(role, scopes, &entry.scopes)
        {
            return Err(TokenFailure::ScopeMismatch);
        }
        entry.last_used_at_ms = Some(now_ms);
        Ok(())
    }

    /// The device's token for `role`, reused while it covers `scopes`, else minted anew. `None`
    /// when the scopes go beyond the approval.
    pub fn ensure_token(
        &mut self,
        device_id: &str,
        role: &str,
        scopes: &[String],
        now_ms: u64,
        mint: &mut dyn FnMut() -> String,
    ) -> Option<DeviceToken> {
        let device = self.paired.get_mut(device_id)?;
        if !scopes.is_empty() && !role_scopes_allow(role, scopes, &device.approved_scopes) {
            return None;
        }
        if let Some(t) = device.tokens.get(role) {
            if t.revoked_at_ms.is_none() && role_scopes_allow(role, scopes, &t.scopes) {
                return Some(t.clone());
            }
        }
        let previous = device.tokens.get(role).cloned();
        let token = DeviceToken {
            token: mint(),
            role: role.to_owned(),
            scopes: union(previous.as_ref().map_or(&[][..], |t| &t.scopes), scopes),
            created_at_ms: previous.as_ref().map_or(now_ms, |t| t.created_at_ms),
            rotated_at_ms: previous.as_ref().map(|_| now_ms),
            revoked_at_ms: None,
            last_used_at_ms: None,
        };
        device.tokens.insert(role.to_owned(), token.clone());
        Some(token)
    }

    /// Mints a new token for an approved role.
    pub fn rotate(
        &mut self,
        device_id: &str,
        role: &str,
        scopes: Option<&[String]>,
        now_ms: u64,
        mint: &mut dyn FnMut() -> String,
    ) -> Result<DeviceToken, PairingError> {
        let device = self.paired.get_mut(device_id).ok_or(PairingError::UnknownDevice)?;
        if !device.roles.iter().any(|r| r == role) {
            return Err(PairingError::UnknownRole);
        }
        let previous = device.tokens.get(role).cloned();
        let scopes: Vec<String> = match scopes {
            Some(s) => s.to_vec(),
            None => previous.as_ref().map(|t| t.scopes.clone()).unwrap_or_default(),
        };
        if !role_scopes_allow(role, &scopes, &device.approved_scopes) {
            return Err(PairingError::ScopeBeyondApproval);
        }
        let token = DeviceToken {
            token: mint(),
            role: role.to_owned(),
            scopes,
            created_at_ms: previous.as_ref().map_or(now_ms, |t| t.created_at_ms),
            rotated_at_ms: Some(now_ms),
            revoked_at_ms: None,
            last_used_at_ms: None,
        };
        device.tokens.insert(role.to_owned(), token.clone());
        Ok(token)
    }

    /// Revokes the device's token for `role` (the entry is kept, marked revoked).
    pub fn revoke(&mut self, device_id: &str, role: &str, now_ms: u64) -> Result<(), PairingError> {
        let device = self.paired.get_mut(device_id).ok_or(PairingError::UnknownDevice)?;
        let token = device.tokens.get_mut(role).ok_or(PairingError::UnknownRole)?;
        token.revoked_at_ms = Some(now_ms);
        Ok(())
    }

    /// The record without secrets, as `device.pair.list` shows it.
    pub fn redacted(device: &PairedDevice) -> serde_json::Value {
        let mut v = serde_json::to_value(device).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            obj.remove("approvedScopes");
            let tokens: Vec<serde_json::Value> = device
                .tokens
                .values()
                .map(|t| {
                    let mut s = serde_json::json!({"role": t.role, "scopes": t.scopes, "createdAtMs": t.created_at_ms});
                    if let Some(x) = t.rotated_at_ms {
                        s["rotatedAtMs"] = x.into();
                    }
                    if let Some(x) = t.revoked_at_ms {
                        s["revokedAtMs"] = x.into();
                    }
                    if let Some(x) = t.last_used_at_ms {
                        s["lastUsedAtMs"] = x.into();
                    }
                    s
                })
                .collect();
            obj.insert("tokens".into(), tokens.into());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_is_stored_flat_as_in_openclaw_files() {
        let text = r#"{"deviceId":"d","publicKey":"k","displayName":"Desk","platform":"linux","clientId":"cli",
            "clientMode":"cli","role":"operator","remoteIp":"10.0.0.2","roles":["operator"],"scopes":[],
            "tokens":{},"createdAtMs":1,"approvedAtMs":2}"#;
        let device: PairedDevice = serde_json::from_str(text).unwrap();
        assert_eq!(device.description.display_name.as_deref(), Some("Desk"));
        assert_eq!(device.description.remote_ip.as_deref(), Some("10.0.0.2"));
        // Written back with the same flat keys (and `approvedScopes`, which is always written).
        let mut expected: serde_json::Value = serde_json::from_str(text).unwrap();
        expected["approvedScopes"] = serde_json::json!([]);
        assert_eq!(serde_json::to_value(&device).unwrap(), expected);
    }

    fn claim<'a>(id: &'a str, key: &'a str, role: &'a str, scopes: &'a [String]) -> DeviceClaim<'a> {
        DeviceClaim {
            device_id: id,
            public_key: key,
            role,
            scopes,
            display_name: None,
            platform: "Linux",
            device_family: None,
            client_id: "cli",
            client_mode: "cli",
            remote_ip: None,
        }
    }

    fn minter() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("token-{n}")
        }
    }

    fn read() -> Vec<String> {
        vec!["operator.read".into()]
    }

    #[test]
    fn an_unknown_device_needs_pairing_and_an_approved_one_does_not() {
        let mut s = PairingStore::default();
        let scopes = read();
        let c = claim("d1", "k1", "operator", &scopes);
        assert_eq!(s.check(&c), Err(PairingReason::NotPaired));
        let (req, new) = s.request(&c, "r1".into(), 0);
        assert!(new);
        let dev = s.approve(&req.request_id, ScopeSet::all(), 10, &mut minter()).unwrap();
        assert_eq!(dev.tokens["operator"].token, "token-1");
        assert_eq!(s.check(&c), Ok(()));
        // Another key under the same id is not the same device.
        assert_eq!(
            s.check(&claim("d1", "k2", "operator", &scopes)),
            Err(PairingReason::NotPaired)
        );
    }

    #[test]
    fn upgrades_are_told_apart() {
        let mut s = PairingStore::default();
        let scopes = read();
        let c = claim("d1", "k1", "operator", &scopes);
        let (req, _) = s.request(&c, "r1".into(), 0);
        s.approve(&req.request_id, ScopeSet::all(), 0, &mut minter()).unwrap();
        let admin = vec!["operator.admin".to_owned()];
        assert_eq!(
            s.check(&claim("d1", "k1", "operator", &admin)),
            Err(PairingReason::ScopeUpgrade)
        );
        assert_eq!(
            s.check(&claim("d1", "k1", "node", &[])),
            Err(PairingReason::RoleUpgrade)
        );
        let mut other_platform = claim("d1", "k1", "operator", &scopes);
        other_platform.platform = "Windows";
        assert_eq!(s.check(&other_platform), Err(PairingReason::MetadataUpgrade));
        let mut same_platform = claim("d1", "k1", "operator", &scopes);
        same_platform.platform = " LINUX ";
        assert_eq!(s.check(&same_platform), Ok(()));
    }

    #[test]
    fn identical_requests_keep_their_time_and_different_ones_merge() {
        let mut s = PairingStore::default();
        let scopes = read();
        let (a, new_a) = s.request(&claim("d1", "k1", "operator", &scopes), "r1".into(), 100);
        let (b, new_b) = s.request(&claim("d1", "k1", "operator", &scopes), "r2".into(), 200);
        assert!(new_a && !new_b);
        assert_eq!((b.request_id.as_str(), b.ts), ("r1", 100));
        let write = vec!["operator.write".to_owned()];
        let (c, new_c) = s.request(&claim("d1", "k1", "operator", &write), "r3".into(), 300);
        assert!(new_c);
        assert_eq!(c.scopes, vec!["operator.read".to_owned(), "operator.write".to_owned()]);
        assert_eq!(c.ts, 100);
        assert_eq!(s.pending.len(), 1);
        assert_eq!(a.request_id, "r1");
    }

    #[test]
    fn pending_requests_expire_after_five_minutes() {
        let mut s = PairingStore::default();
        let scopes = read();
        s.request(&claim("d1", "k1", "operator", &scopes), "r1".into(), 0);
        assert!(!s.expire(PENDING_TTL_MS));
        assert!(s.expire(PENDING_TTL_MS + 1));
        assert_eq!(
            s.approve("r1", ScopeSet::all(), PENDING_TTL_MS + 2, &mut minter()),
            Err(PairingError::UnknownRequest)
        );
    }

    #[test]
    fn the_approver_must_hold_what_it_grants() {
        let mut s = PairingStore::default();
        let admin = vec!["operator.admin".to_owned()];
        s.request(&claim("d1", "k1", "operator", &admin), "r1".into(), 0);
        let pairing_only: ScopeSet = [Scope::Pairing].into_iter().collect();
        assert_eq!(
            s.approve("r1", pairing_only, 0, &mut minter()),
            Err(PairingError::CallerMissingScope("operator.admin".into()))
        );
        assert!(s
            .approve("r1", [Scope::Admin].into_iter().collect(), 0, &mut minter())
            .is_ok());
    }

    #[test]
    fn tokens_are_reused_while_they_cover_and_rotated_otherwise() {
        let mut s = PairingStore::default();
        let both = vec!["operator.read".to_owned(), "operator.write".to_owned()];
        s.request(&claim("d1", "k1", "operator", &both), "r1".into(), 0);
        let mut mint = minter();
        s.approve("r1", ScopeSet::all(), 0, &mut mint).unwrap();
        let read = read();
        let t = s.ensure_token("d1", "operator", &read, 1, &mut mint).unwrap();
        assert_eq!(t.token, "token-1");
        assert!(s.verify_token("d1", "token-1", "operator", &read, 2).is_ok());
        assert_eq!(
            s.verify_token("d1", "token-x", "operator", &read, 2),
            Err(TokenFailure::Mismatch)
        );
        let admin = vec!["operator.admin".to_owned()];
        assert!(
            s.ensure_token("d1", "operator", &admin, 3, &mut mint).is_none(),
            "beyond the approval"
        );
        let rotated = s.rotate("d1", "operator", None, 4, &mut mint).unwrap();
        assert_eq!(rotated.token, "token-2");
        assert_eq!(
            s.verify_token("d1", "token-1", "operator", &read, 5),
            Err(TokenFailure::Mismatch)
        );
        s.revoke("d1", "operator", 6).unwrap();
        assert_eq!(
            s.verify_token("d1", "token-2", "operator", &read, 7),
            Err(TokenFailure::Revoked)
        );
        assert_eq!(
            s.check(&claim("d1", "k1", "operator", &read)),
            Err(PairingReason::RoleUpgrade)
        );
    }

    #[test]
    fn the_files_round_trip_and_corruption_is_named() {
        let mut s = PairingStore::default();
        let scopes = read();
        s.request(&claim("d1", "k1", "operator", &scopes), "r1".into(), 0);
        s.approve("r1", ScopeSet::all(), 0, &mut minter()).unwrap();
        s.request(&claim("d2", "k2", "operator", &scopes), "r2".into(), 0);
        let back = PairingStore::load(Some(&s.paired_json()), Some(&s.pending_json())).unwrap();
        assert_eq!(back, s);
        let err = PairingStore::load(Some("{not json"), None).unwrap_err();
        assert_eq!(err.0, "devices/paired.json");
    }

    #[test]
    fn redaction_hides_tokens_and_approved_scopes() {
        let mut s = PairingStore::default();
        let scopes = read();
        s.request(&claim("d1", "k1", "operator", &scopes), "r1".into(), 0);
        let dev = s.approve("r1", ScopeSet::all(), 0, &mut minter()).unwrap();
        let text = PairingStore::redacted(&dev).to_string();
        assert!(!text.contains("token-1"));
        assert!(!text.contains("approvedScopes"));
        assert!(text.contains("\"role\":\"operator\""));
    }
}
