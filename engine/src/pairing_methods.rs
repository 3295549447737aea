//! The pairing methods: `device.pair.*` and `device.token.*`.

use crate::gateway::{mint_token, ConnId, Gateway};
use crate::pairing::{PairingError, PairingStore};
use clawgate_proto::close::{code, CloseFrame};
use clawgate_proto::frame::{to_raw, ErrorCode, ErrorShape, RequestFrame};
use clawgate_proto::scopes::{Scope, ScopeSet};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestIdParams {
    request_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeviceParams {
    device_id: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
}

fn invalid(message: impl Into<String>) -> ErrorShape {
    ErrorShape::new(ErrorCode::InvalidRequest, message)
}

fn params<'a, T: Deserialize<'a>>(request: &'a RequestFrame) -> Result<T, ErrorShape> {
    request
        .parse_params()
        .map_err(|e| invalid(format!("invalid {} params: {e}", request.method)))
}

/// Who is calling: its scopes and, when it connected with a device, that device.
pub(crate) struct Caller {
    pub scopes: ScopeSet,
    pub device_id: Option<String>,
}

impl Caller {
    fn admin(&self) -> bool {
        self.scopes.allows(Scope::Admin)
    }

    /// A non-admin caller with a device may act on its own device only.
    fn may_touch(&self, device_id: &str) -> bool {
        self.admin() || self.device_id.as_deref().is_none_or(|own| own == device_id)
    }
}

impl Gateway {
    pub(crate) fn call_pairing(
        &mut self,
        now_ms: u64,
        conn: ConnId,
        caller: &Caller,
        request: &RequestFrame,
    ) -> Result<Box<RawValue>, ErrorShape> {
        if self.pairing.expire(now_ms) {
            self.persist_pairing(now_ms);
        }
        let value = match request.method.as_str() {
            "device.pair.list" => {
                // A non-admin device sees only its own entries.
                let visible =
                    |device_id: &str| caller.admin() || caller.device_id.as_deref().is_none_or(|own| own == device_id);
                let mut pending: Vec<_> = self
                    .pairing
                    .pending
                    .values()
                    .filter(|p| visible(&p.device_id))
                    .cloned()
                    .collect();
                pending.sort_by_key(|p| std::cmp::Reverse(p.ts));
                let mut paired: Vec<_> = self.pairing.paired.values().filter(|d| visible(&d.device_id)).collect();
                paired.sort_by_key(|d| std::cmp::Reverse(d.approved_at_ms));
                let paired: Vec<_> = paired.into_iter().map(PairingStore::redacted).collect();
                json!({"pending": pending, "paired": paired})
            }
            "device.pair.approve" => {
                let p: RequestIdParams = params(request)?;
                if !caller.admin() {
                    // A non-admin may approve operator access for a device it may touch; anything
                    // else is denied in one message, which clients answer by retrying as admin.
                    let allowed = self.pairing.pending.get(&p.request_id).is_some_and(|pending| {
                        caller.may_touch(&pending.device_id) && pending.roles.iter().all(|r| r == "operator")
                    });
                    if !allowed {
                        return Err(invalid("device pairing approval denied"));
                    }
                }
                let entropy = self.entropy.as_mut();
                let mut mint = || mint_token(entropy);
                let device = match self.pairing.approve(&p.request_id, caller.scopes, now_ms, &mut mint) {
                    Ok(d) => d,
                    Err(PairingError::CallerMissingScope(s)) => return Err(invalid(format!("missing scope: {s}"))),
                    Err(PairingError::ScopeOutsideRoles(s)) => {
                        return Err(invalid(format!("invalid scope for requested roles: {s}")))
                    }
                    Err(_) => return Err(invalid("unknown requestId")),
                };
                self.persist_pairing(now_ms);
                self.hold_for_persist(conn);
                let resolved = json!({"requestId": p.request_id, "deviceId": device.device_id, "decision": "approved", "ts": now_ms});
                self.broadcast_after_persist("device.pair.resolved", to_raw(&resolved));
                self.log(
                    now_ms,
                    crate::gateway::LogLevel::Info,
                    format!("approved pairing {} of device {}", p.request_id, device.device_id),
                );
                json!({"requestId": p.request_id, "device": PairingStore::redacted(&device)})
            }
            "device.pair.reject" => {
                let p: RequestIdParams = params(request)?;
                let rejected = self
                    .pairing
                    .reject(&p.request_id)
                    .map_err(|_| invalid("unknown requestId"))?;
                self.persist_pairing(now_ms);
                self.hold_for_persist(conn);
                let resolved = json!({"requestId": p.request_id, "deviceId": rejected.device_id, "decision": "rejected", "ts": now_ms});
                self.broadcast_after_persist("device.pair.resolved", to_raw(&resolved));
                json!({"requestId": p.request_id, "deviceId": rejected.device_id})
            }
            "device.pair.remove" => {
                let p: DeviceParams = params(request)?;
                if !caller.may_touch(&p.device_id) {
                    return Err(invalid("device pairing removal denied"));
                }
                self.pairing
                    .remove(&p.device_id)
                    .map_err(|_| invalid("unknown deviceId"))?;
                self.persist_pairing(now_ms);
                self.hold_for_persist(conn);
                self.disconnect_device_except(&p.device_id, None, conn, "device removed");
                json!({"deviceId": p.device_id})
            }
            "device.pair.rename" => {
                let p: DeviceParams = params(request)?;
                let label = p
                    .label
                    .or(p.display_name)
                    .filter(|l| !l.trim().is_empty())
                    .ok_or_else(|| invalid("label required"))?;
                if !caller.may_touch(&p.device_id) {
                    return Err(invalid("device rename denied"));
                }
                self.pairing
                    .rename(&p.device_id, label.trim())
                    .map_err(|_| invalid("unknown deviceId"))?;
                self.persist_pairing(now_ms);
                self.hold_for_persist(conn);
                json!({"deviceId": p.device_id, "label": label.trim()})
            }
            "device.token.rotate" => {
                let p: DeviceParams = params(request)?;
                let role = p.role.clone().unwrap_or_else(|| "operator".into());
                let denied = || invalid("device token rotation denied");
                if !caller.may_touch(&p.device_id) {
                    return Err(denied());
                }
                if let Some(scopes) = &p.scopes {
                    if !caller.scopes.allows_all(ScopeSet::from_names(scopes)) {
                        return Err(denied());
                    }
                }
                let entropy = self.entropy.as_mut();
                let mut mint = || mint_token(entropy);
                let token = self
                    .pairing
                    .rotate(&p.device_id, &role, p.scopes.as_deref(), now_ms, &mut mint)
                    .map_err(|_| denied())?;
                self.persist_pairing(now_ms);
                self.hold_for_persist(conn);
                // The new token goes to its own device only; everyone else learns that it changed.
                let own = caller.device_id.as_deref() == Some(p.device_id.as_str());
                self.disconnect_device_except(&p.device_id, Some(&role), conn, "device token rotated");
                let mut v =
                    json!({"deviceId": p.device_id, "role": role, "scopes": token.scopes, "rotatedAtMs": now_ms});
                if own {
                    v["token"] = json!(token.token);
                }
                v
            }
            "device.token.revoke" => {
                let p: DeviceParams = params(request)?;
                let role = p.role.clone().unwrap_or_else(|| "operator".into());
                if !caller.may_touch(&p.device_id) {
                    return Err(invalid("device token revocation denied"));
                }
                self.pairing
                    .revoke(&p.device_id, &role, now_ms)
                    .map_err(|_| invalid("unknown deviceId/role"))?;
                self.persist_pairing(now_ms);
                self.hold_for_persist(conn);
                self.disconnect_device_except(&p.device_id, Some(&role), conn, "device token revoked");
                json!({"deviceId": p.device_id, "role": role, "revokedAtMs": now_ms})
            }
            other => return Err(ErrorShape::unknown_method(other)),
        };
        Ok(to_raw(&value))
    }

    /// Like [`Gateway::disconnect_device`], sparing the caller's own connection (it gets its
    /// answer first and is closed after it).
    fn disconnect_device_except(&mut self, device_id: &str, role: Option<&str>, caller: ConnId, reason: &str) {
        let conns = self.connections_of_device(device_id, role);
        for c in conns {
            if c == caller {
                self.close_after_answer(c, &CloseFrame::new(code::POLICY_VIOLATION, reason));
            } else {
                self.close_connection(c, &CloseFrame::new(code::POLICY_VIOLATION, reason));
            }
        }
    }
}
