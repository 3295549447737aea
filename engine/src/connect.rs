//! The decisions of a `connect` that need gateway state: the shared secret, device admission
//! and pairing (silent for local clients when the policy says so), the granted scopes, and the
//! device token handed back in `hello-ok`.

use crate::admission::{Admission, UpgradeInfo};
use crate::cache::HelloAuth;
use crate::conns::Session;
use crate::context::Ctx;
use crate::entropy::mint_token;
use crate::log_ring::LogLevel;
use crate::pairing::{DeviceClaim, PairingStore};
use crate::rate_limit::canonical_ip;
use clawgate_proto::auth::AuthMethod;
use clawgate_proto::connect::{ClientId, ClientMode, Role};
use clawgate_proto::device::base64url_encode;
use clawgate_proto::frame::to_raw;
use clawgate_proto::handshake::{AcceptedConnect, ConnectRejection, PairingReason};
use clawgate_proto::scopes::ScopeSet;
use serde_json::json;
use std::net::SocketAddr;

/// The decisions that need gateway state: origin, shared secret, device admission, scopes.
pub(crate) fn admit(
    cx: &mut Ctx<'_>,
    admission: &mut Admission,
    pairing: &mut PairingStore,
    now_ms: u64,
    peer: SocketAddr,
    accepted: &AcceptedConnect,
    upgrade: &UpgradeInfo,
) -> Result<(AuthMethod, Vec<String>), ConnectRejection> {
    let client = &accepted.params.client;
    let requested = accepted.params.scopes().to_vec();
    let role = accepted.role.as_str();
    // A device whose shared secret fails may authenticate with its own token.
    let store = &mut *pairing;
    let mut verify = |token: &str| match &accepted.device {
        Some(device) => store.verify_token(&device.id, token, role, &requested, now_ms).is_ok(),
        None => false,
    };
    let device_token = accepted
        .device
        .is_some()
        .then_some(&mut verify as &mut dyn FnMut(&str) -> bool);
    let method = admission.authenticate(cx.config, now_ms, peer, accepted, upgrade, device_token)?;
    match &accepted.device {
        None => {
            if client.id == ClientId::ControlUi || client.id == ClientId::Tui {
                return Err(ConnectRejection::ControlUiDeviceIdentityRequired);
            }
            if method == AuthMethod::None && !upgrade.local_direct {
                // Without a shared secret, a device-less caller must at least be on this host.
                return Err(ConnectRejection::DeviceIdentityRequired);
            }
            let keeps_scopes = upgrade.local_direct
                && matches!(
                    (client.id, client.mode),
                    (ClientId::Cli, ClientMode::Cli) | (ClientId::GatewayClient, ClientMode::Backend)
                );
            let scopes = if keeps_scopes || accepted.role == Role::Node {
                requested
            } else {
                Vec::new()
            };
            Ok((method, scopes))
        }
        Some(device) => {
            let params = &accepted.params;
            let public_key = base64url_encode(&device.public_key);
            let claim = DeviceClaim {
                device_id: &device.id,
                public_key: &public_key,
                role,
                scopes: &requested,
                display_name: params.client.display_name.as_deref(),
                platform: &params.client.platform,
                device_family: params.client.device_family.as_deref(),
                client_id: params.client.id.as_str(),
                client_mode: params.client.mode.as_str(),
                remote_ip: (!crate::admission::is_loopback(upgrade.client_ip))
                    .then(|| canonical_ip(upgrade.client_ip).to_string()),
            };
            if let Err(reason) = pairing.check(&claim) {
                let request_id = cx.random_uuid();
                let (request, new) = pairing.request(&claim, request_id, now_ms);
                let browser_ok = upgrade.origin.is_none() || client.id == ClientId::ControlUi;
                let silent = cx.config.auto_approve_local
                    && upgrade.local_direct
                    && browser_ok
                    && matches!(reason, PairingReason::NotPaired | PairingReason::RoleUpgrade);
                if !silent {
                    crate::pairing_methods::persist(cx.net, pairing);
                    if new {
                        cx.net
                            .broadcast_after_persist("device.pair.requested", to_raw(&request));
                    }
                    return Err(ConnectRejection::PairingRequired {
                        request_id: request.request_id,
                        reason,
                    });
                }
                let granted = ScopeSet::from_names(&requested);
                let entropy = &mut *cx.entropy;
                let mut mint = || mint_token(entropy);
                let approved = pairing.approve(&request.request_id, granted, now_ms, &mut mint);
                if let Err(e) = approved {
                    cx.net.log(
                        now_ms,
                        LogLevel::Warn,
                        format!("silent pairing of {} failed: {e:?}", device.id),
                    );
                    return Err(ConnectRejection::PairingRequired {
                        request_id: request.request_id,
                        reason,
                    });
                }
                cx.net.log(
                    now_ms,
                    LogLevel::Info,
                    format!("paired device {} silently ({})", device.id, reason.as_str()),
                );
                crate::pairing_methods::persist(cx.net, pairing);
                let resolved = json!({"requestId": request.request_id, "deviceId": device.id, "decision": "approved", "ts": now_ms});
                cx.net
                    .broadcast_after_persist("device.pair.resolved", to_raw(&resolved));
            }
            Ok((method, requested))
        }
    }
}

/// The device token a paired device gets in `hello-ok` for `role` (minted on first use, written
/// durably when new) and when it was issued.
pub(crate) fn device_token(
    cx: &mut Ctx<'_>,
    pairing: &mut PairingStore,
    now_ms: u64,
    device_id: &str,
    role: Role,
    scope_names: &[String],
) -> (Option<String>, Option<u64>) {
    let before = pairing
        .paired
        .get(device_id)
        .and_then(|d| d.tokens.get(role.as_str()))
        .map(|t| t.token.clone());
    let entropy = &mut *cx.entropy;
    let mut mint = || mint_token(entropy);
    let token = pairing.ensure_token(device_id, role.as_str(), scope_names, now_ms, &mut mint);
    if token.as_ref().map(|t| &t.token) != before.as_ref() {
        crate::pairing_methods::persist(cx.net, pairing);
    }
    match token {
        Some(t) => (Some(t.token), Some(t.rotated_at_ms.unwrap_or(t.created_at_ms))),
        None => (None, None),
    }
}

/// The session an admitted `connect` opens (`admitted` is how it authenticated and the scopes it
/// was granted), and what `hello-ok.auth` tells it.
pub(crate) fn session(
    cx: &mut Ctx<'_>,
    pairing: &mut PairingStore,
    now_ms: u64,
    accepted: &AcceptedConnect,
    admitted: (AuthMethod, Vec<String>),
    secret_generation: Option<u64>,
) -> (Session, HelloAuth) {
    let (method, scope_names) = admitted;
    let scope_names_for_approver = scope_names.clone();
    let client = &accepted.params.client;
    let role = accepted.role;
    let conn_uuid = cx.random_uuid();
    let device_id = accepted.device.as_ref().map(|d| d.id.clone());
    let (device_token, issued_at_ms) = match &device_id {
        Some(id) => device_token(cx, pairing, now_ms, id, role, &scope_names),
        None => (None, None),
    };
    // The command line comes and goes, with its backend connection and its probes: none of
    // them is a presence (the real gateway lists none of them either).
    let passing = matches!(client.mode, ClientMode::Cli | ClientMode::Backend | ClientMode::Probe);
    let presence_key = (!passing).then(|| {
        device_id
            .clone()
            .or_else(|| client.instance_id.clone())
            .unwrap_or_else(|| conn_uuid.clone())
    });
    let session = Session {
        secret_generation,
        device_id,
        role,
        scopes: ScopeSet::from_names(&scope_names),
        scope_names,
        presence_key,
        conn_uuid,
        node: (role == Role::Node).then(|| {
            let by_owner_secret = method.is_shared_secret() && accepted.device.is_none();
            Box::new(crate::nodes::NodeInfo::from_connect(
                &accepted.params,
                now_ms,
                by_owner_secret,
            ))
        }),
        tool_events: accepted.params.caps().iter().any(|c| c == "tool-events"),
        approver: approver(accepted, &scope_names_for_approver),
        client_id: client.id.as_str().to_owned(),
    };
    let auth = HelloAuth {
        method,
        device_token,
        issued_at_ms,
    };
    (session, auth)
}

/// Whether a client may decide exec approvals, as OpenClaw decides it: its scopes include
/// `operator.admin` or `operator.approvals`, and it is the Control UI or one of the apps, or
/// declared the `approvals` / `exec-approvals` cap.
fn approver(accepted: &AcceptedConnect, scopes: &[String]) -> bool {
    let scoped = scopes
        .iter()
        .any(|s| s == "operator.admin" || s == "operator.approvals");
    let app = matches!(
        accepted.params.client.id.as_str(),
        "openclaw-control-ui" | "openclaw-macos" | "openclaw-ios" | "openclaw-android"
    );
    let cap = accepted
        .params
        .caps()
        .iter()
        .any(|c| c == "approvals" || c == "exec-approvals");
    accepted.role == Role::Operator && scoped && (app || cap)
}
