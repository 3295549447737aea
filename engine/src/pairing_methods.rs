//! The pairing methods: `device.pair.*` and `device.token.*`. They work on the pairing store alone
//! and say what else must happen as [`PairingEffect`]s, which the gateway carries out in order:
//! the files written (and the answer held until they are durable), the resolution announced,
//! devices disconnected.

use crate::conns::Connections;
use crate::entropy::{mint_token, Entropy};
use crate::log_ring::LogLevel;
use crate::output::ConnId;
use crate::pairing::{PairingError, PairingStore};
use clawgate_proto::close::{code, CloseFrame};
use clawgate_proto::frame::{to_raw, ErrorCode, ErrorShape, RequestFrame};
use clawgate_proto::scopes::{Scope, ScopeSet};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use std::collections::BTreeSet;

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

/// What a pairing method needs done beyond its answer, in this order.
#[derive(Debug)]
pub(crate) enum PairingEffect {
    /// The pairing files changed: write them; with `hold`, the caller's answer waits until they
    /// are durable.
    Persist { hold: bool },
    /// Announce `device.pair.resolved` with this payload, once the files are durable.
    Resolved(Box<RawValue>),
    /// A line for the gateway's log.
    Log(String),
    /// Close the connections of `device_id` (for `role` only, when given); the caller's own is
    /// closed after its answer.
    Disconnect {
        device_id: String,
        role: Option<String>,
        reason: &'static str,
    },
}

/// Answers a pairing method on `store`, pushing what else must happen onto `effects`.
pub(crate) fn call(
    store: &mut PairingStore,
    entropy: &mut dyn Entropy,
    now_ms: u64,
    (caller, online): (&Caller, &BTreeSet<String>),
    request: &RequestFrame,
    effects: &mut Vec<PairingEffect>,
) -> Result<Box<RawValue>, ErrorShape> {
    if store.expire(now_ms) {
        effects.push(PairingEffect::Persist { hold: false });
    }
    let value = match request.method.as_str() {
        "device.pair.list" => {
            // A non-admin device sees only its own entries.
            let visible =
                |device_id: &str| caller.admin() || caller.device_id.as_deref().is_none_or(|own| own == device_id);
            let mut pending: Vec<_> = store
                .pending
                .values()
                .filter(|p| visible(&p.device_id))
                .cloned()
                .collect();
            pending.sort_by_key(|p| std::cmp::Reverse(p.ts));
            let mut paired: Vec<_> = store.paired.values().filter(|d| visible(&d.device_id)).collect();
            paired.sort_by_key(|d| std::cmp::Reverse(d.approved_at_ms));
            // `connected` says whether the device has a connection open now, as OpenClaw adds it.
            let paired: Vec<_> = paired
                .into_iter()
                .map(|d| {
                    let mut entry = PairingStore::redacted(d);
                    entry["connected"] = json!(online.contains(&d.device_id));
                    entry
                })
                .collect();
            json!({"pending": pending, "paired": paired})
        }
        "device.pair.approve" => {
            let p: RequestIdParams = params(request)?;
            if !caller.admin() {
                // A non-admin may approve operator access for a device it may touch; anything
                // else is denied in one message, which clients answer by retrying as admin.
                let allowed = store.pending.get(&p.request_id).is_some_and(|pending| {
                    caller.may_touch(&pending.device_id) && pending.roles.iter().all(|r| r == "operator")
                });
                if !allowed {
                    return Err(invalid("device pairing approval denied"));
                }
            }
            let mut mint = || mint_token(entropy);
            let device = match store.approve(&p.request_id, caller.scopes, now_ms, &mut mint) {
                Ok(d) => d,
                Err(PairingError::CallerMissingScope(s)) => return Err(invalid(format!("missing scope: {s}"))),
                Err(PairingError::ScopeOutsideRoles(s)) => {
                    return Err(invalid(format!("invalid scope for requested roles: {s}")))
                }
                Err(_) => return Err(invalid("unknown requestId")),
            };
            effects.push(PairingEffect::Persist { hold: true });
            let resolved =
                json!({"requestId": p.request_id, "deviceId": device.device_id, "decision": "approved", "ts": now_ms});
            effects.push(PairingEffect::Resolved(to_raw(&resolved)));
            effects.push(PairingEffect::Log(format!(
                "approved pairing {} of device {}",
                p.request_id, device.device_id
            )));
            json!({"requestId": p.request_id, "device": PairingStore::redacted(&device)})
        }
        "device.pair.reject" => {
            let p: RequestIdParams = params(request)?;
            let rejected = store.reject(&p.request_id).map_err(|_| invalid("unknown requestId"))?;
            effects.push(PairingEffect::Persist { hold: true });
            let resolved = json!({"requestId": p.request_id, "deviceId": rejected.device_id, "decision": "rejected", "ts": now_ms});
            effects.push(PairingEffect::Resolved(to_raw(&resolved)));
            json!({"requestId": p.request_id, "deviceId": rejected.device_id})
        }
        "device.pair.remove" => {
            let p: DeviceParams = params(request)?;
            if !caller.may_touch(&p.device_id) {
                return Err(invalid("device pairing removal denied"));
            }
            store.remove(&p.device_id).map_err(|_| invalid("unknown deviceId"))?;
            effects.push(PairingEffect::Persist { hold: true });
            effects.push(PairingEffect::Disconnect {
                device_id: p.device_id.clone(),
                role: None,
                reason: "device removed",
            });
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
            store
                .rename(&p.device_id, label.trim())
                .map_err(|_| invalid("unknown deviceId"))?;
            effects.push(PairingEffect::Persist { hold: true });
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
            let mut mint = || mint_token(entropy);
            let token = store
                .rotate(&p.device_id, &role, p.scopes.as_deref(), now_ms, &mut mint)
                .map_err(|_| denied())?;
            effects.push(PairingEffect::Persist { hold: true });
            // The new token goes to its own device only; everyone else learns that it changed.
            let own = caller.device_id.as_deref() == Some(p.device_id.as_str());
            effects.push(PairingEffect::Disconnect {
                device_id: p.device_id.clone(),
                role: Some(role.clone()),
                reason: "device token rotated",
            });
            let mut v = json!({"deviceId": p.device_id, "role": role, "scopes": token.scopes, "rotatedAtMs": now_ms});
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
            store
                .revoke(&p.device_id, &role, now_ms)
                .map_err(|_| invalid("unknown deviceId/role"))?;
            effects.push(PairingEffect::Persist { hold: true });
            effects.push(PairingEffect::Disconnect {
                device_id: p.device_id.clone(),
                role: Some(role.clone()),
                reason: "device token revoked",
            });
            json!({"deviceId": p.device_id, "role": role, "revokedAtMs": now_ms})
        }
        other => return Err(ErrorShape::unknown_method(other)),
    };
    Ok(to_raw(&value))
}

/// Writes the pairing files (a `persist` output each); returns the sequence number to wait for.
pub(crate) fn persist(net: &mut Connections, store: &PairingStore) -> u64 {
    net.persist_file("devices/paired.json", store.paired_json());
    net.persist_file("devices/pending.json", store.pending_json())
}

/// Carries out what a pairing method asked for, in order, for the request on `conn`.
pub(crate) fn apply_effects(
    net: &mut Connections,
    store: &PairingStore,
    now_ms: u64,
    conn: ConnId,
    effects: Vec<PairingEffect>,
) {
    for effect in effects {
        match effect {
            PairingEffect::Persist { hold } => {
                persist(net, store);
                if hold {
                    net.hold_for_persist(conn);
                }
            }
            PairingEffect::Resolved(payload) => net.broadcast_after_persist("device.pair.resolved", payload),
            PairingEffect::Log(line) => net.log(now_ms, LogLevel::Info, line),
            PairingEffect::Disconnect {
                device_id,
                role,
                reason,
            } => {
                // The caller's own connection gets its answer first and is closed after it.
                for c in net.connections_of_device(&device_id, role.as_deref()) {
                    let frame = CloseFrame::new(code::POLICY_VIOLATION, reason);
                    if c == conn {
                        net.close_after_answer(c, &frame);
                    } else {
                        net.close_ws(c, &frame);
                    }
                }
            }
        }
    }
}
