//! The server side of the handshake, as a chain of states.
//!
//! [`ServerHandshake`] expects the first frame. Fed that frame it either rejects the socket with a
//! [`Rejection`] (the exact response and close frame the reference gateway sends) or yields an
//! [`AcceptedConnect`]: a connect request whose frame, params, protocol, role and device proof have
//! been checked. What needs gateway state (shared secret, rate limits, pairing, device tokens) is
//! decided by the caller, which then turns the [`AcceptedConnect`] into a `hello-ok` response or into
//! a [`Rejection`] through the same table ([`ConnectRejection`]).

use crate::auth::AuthFailure;
use crate::close::{code, CloseFrame};
use crate::connect::{
    ClientId, ClientMode, ConnectChallenge, ConnectParams, DeviceProof, HelloOk, Role, CHALLENGE_CAPABILITIES,
};
use crate::device::{device_id_from_raw_public_key, parse_public_key, verify_payload, SignatureVersion};
use crate::frame::{ErrorCode, ErrorShape, EventFrame, Frame, FrameError, ResponseFrame};
use crate::limits::{
    DEVICE_SIGNATURE_SKEW_MS, MIN_NODE_PROTOCOL_VERSION, MIN_PROBE_PROTOCOL_VERSION, PROTOCOL_VERSION,
};
use serde_json::json;

/// Why a device proof failed, in the order the checks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceProofFailure {
    /// `device.id` is not the SHA-256 of the public key.
    IdMismatch,
    /// `signedAt` is more than 120 s away from the server clock.
    SignatureExpired,
    /// The nonce is blank.
    NonceRequired,
    /// The nonce is not this socket's challenge nonce.
    NonceMismatch,
    /// Neither the v3 nor the v2 payload verifies.
    SignatureInvalid,
    /// The public key cannot be decoded.
    PublicKeyInvalid,
}

impl DeviceProofFailure {
    /// `(details.code, details.reason, message)`.
    pub const fn parts(self) -> (&'static str, &'static str, &'static str) {
        match self {
            DeviceProofFailure::IdMismatch => (
                "DEVICE_AUTH_DEVICE_ID_MISMATCH",
                "device-id-mismatch",
                "device identity mismatch",
            ),
            DeviceProofFailure::SignatureExpired => (
                "DEVICE_AUTH_SIGNATURE_EXPIRED",
                "device-signature-stale",
                "device signature expired",
            ),
            DeviceProofFailure::NonceRequired => (
                "DEVICE_AUTH_NONCE_REQUIRED",
                "device-nonce-missing",
                "device nonce required",
            ),
            DeviceProofFailure::NonceMismatch => (
                "DEVICE_AUTH_NONCE_MISMATCH",
                "device-nonce-mismatch",
                "device nonce mismatch",
            ),
            DeviceProofFailure::SignatureInvalid => (
                "DEVICE_AUTH_SIGNATURE_INVALID",
                "device-signature",
                "device signature invalid",
            ),
            DeviceProofFailure::PublicKeyInvalid => (
                "DEVICE_AUTH_PUBLIC_KEY_INVALID",
                "device-public-key",
                "device public key invalid",
            ),
        }
    }
}

/// Why the pairing check asks for approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairingReason {
    /// Unknown device, or a known id with another key.
    NotPaired,
    /// Platform or device family differ from the pinned ones.
    MetadataUpgrade,
    /// The role is not approved for this device.
    RoleUpgrade,
    /// The scopes go beyond the approved ones.
    ScopeUpgrade,
}

impl PairingReason {
    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            PairingReason::NotPaired => "not-paired",
            PairingReason::MetadataUpgrade => "metadata-upgrade",
            PairingReason::RoleUpgrade => "role-upgrade",
            PairingReason::ScopeUpgrade => "scope-upgrade",
        }
    }
}

/// Every way a handshake can fail. [`ConnectRejection::rejection`] is the one table that maps each
/// to the response and close frame of the reference gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectRejection {
    /// The first message is not JSON: closed without a response.
    InvalidJson,
    /// The first message is JSON but not a request frame: closed without a response.
    InvalidRequestFrame,
    /// The first request is not `connect`.
    FirstRequestNotConnect,
    /// The `connect` params fail the schema.
    InvalidConnectParams(String),
    /// No common protocol version.
    ProtocolMismatch {
        /// The client's `minProtocol`.
        client_min: u32,
        /// The client's `maxProtocol`.
        client_max: u32,
    },
    /// The role is neither `operator` nor `node`.
    InvalidRole,
    /// The device proof failed.
    DeviceProof(DeviceProofFailure),
    /// The browser origin is not allowed.
    OriginNotAllowed {
        /// Why (e.g. `origin missing or invalid`, `origin not allowed`).
        reason: String,
    },
    /// The Control UI connected without a device identity.
    ControlUiDeviceIdentityRequired,
    /// A device-less connect that no rule admits.
    DeviceIdentityRequired,
    /// Authentication failed.
    Unauthorized {
        /// Why.
        failure: AuthFailure,
        /// The client, for the message hint.
        client: (ClientId, ClientMode),
        /// Whether the client may retry with its stored device token.
        can_retry_with_device_token: bool,
    },
    /// The device must be approved first.
    PairingRequired {
        /// The pending request's id.
        request_id: String,
        /// Why approval is needed.
        reason: PairingReason,
    },
    /// The gateway is still starting.
    Starting,
    /// No successful `connect` within the handshake timeout.
    HandshakeTimeout,
    /// A frame larger than the pre-auth limit arrived before `hello-ok`.
    PreauthPayloadTooLarge,
}

/// What to send when a handshake fails: an optional error response, then a close frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The error response to the `connect` request, when the request had a usable id.
    pub response: Option<Box<ResponseFrame>>,
    /// The close frame that follows.
    pub close: CloseFrame,
    /// The outcome's name for metrics ([`ConnectRejection::metric_label`]).
    pub label: &'static str,
}

impl ConnectRejection {
    /// The error object of this rejection, or `None` for rejections that only close the socket.
    pub fn error(&self) -> Option<ErrorShape> {
        Some(match self {
            ConnectRejection::InvalidJson
            | ConnectRejection::InvalidRequestFrame
            | ConnectRejection::HandshakeTimeout
            | ConnectRejection::PreauthPayloadTooLarge => return None,
            ConnectRejection::FirstRequestNotConnect => {
                ErrorShape::new(ErrorCode::InvalidRequest, "invalid handshake: first request must be connect")
            }
            ConnectRejection::InvalidConnectParams(detail) => {
                ErrorShape::new(ErrorCode::InvalidRequest, format!("invalid connect params: {detail}"))
            }
            ConnectRejection::ProtocolMismatch { client_min, client_max } => {
                ErrorShape::new(ErrorCode::InvalidRequest, "protocol mismatch").with_details(json!({
                    "code": "PROTOCOL_MISMATCH",
                    "clientMinProtocol": client_min,
                    "clientMaxProtocol": client_max,
                    "expectedProtocol": PROTOCOL_VERSION,
                    "minimumProbeProtocol": MIN_PROBE_PROTOCOL_VERSION,
                }))
            }
            ConnectRejection::InvalidRole => ErrorShape::new(ErrorCode::InvalidRequest, "invalid role"),
            ConnectRejection::DeviceProof(f) => {
                let (detail, reason, message) = f.parts();
                ErrorShape::new(ErrorCode::InvalidRequest, message).with_details(json!({"code": detail, "reason": reason}))
            }
            ConnectRejection::OriginNotAllowed { reason } => ErrorShape::new(
                ErrorCode::InvalidRequest,
                "origin not allowed (open the Control UI from the gateway host or allow it in gateway.controlUi.allowedOrigins)",
            )
            .with_details(json!({"code": "CONTROL_UI_ORIGIN_NOT_ALLOWED", "reason": reason})),
            ConnectRejection::ControlUiDeviceIdentityRequired => ErrorShape::new(
                ErrorCode::InvalidRequest,
                "control ui requires device identity (use HTTPS or localhost secure context)",
            )
            .with_details(json!({"code": "CONTROL_UI_DEVICE_IDENTITY_REQUIRED"})),
            ConnectRejection::DeviceIdentityRequired => ErrorShape::new(ErrorCode::NotPaired, "device identity required")
                .with_details(json!({"code": "DEVICE_IDENTITY_REQUIRED"})),
            ConnectRejection::Unauthorized {
                failure,
                client,
                can_retry_with_device_token,
            } => {
                let mut e = ErrorShape::new(ErrorCode::InvalidRequest, failure.message(client.0, client.1)).with_details(json!({
                    "code": failure.detail_code(),
                    "authReason": failure.reason(),
                    "canRetryWithDeviceToken": can_retry_with_device_token,
                    "recommendedNextStep": failure.recommended_next_step(*can_retry_with_device_token),
                }));
                if let AuthFailure::RateLimited { retry_after_ms } = failure {
                    e = e.retry_after(*retry_after_ms);
                }
                e
            }
            ConnectRejection::PairingRequired { request_id, reason } => ErrorShape::new(ErrorCode::NotPaired, "pairing required")
                // Current clients keep retrying (rather than pausing) while the request waits for an
                // operator, so an approval lets them in without a restart.
                .with_details(json!({
                    "code": "PAIRING_REQUIRED",
                    "requestId": request_id,
                    "reason": reason.as_str(),
                    "recommendedNextStep": "wait_then_retry",
                    "retryable": true,
                    "pauseReconnect": false,
                })),
            ConnectRejection::Starting => ErrorShape::new(ErrorCode::Unavailable, "gateway starting; retry shortly")
                .retry_after(500)
                .with_details(json!({"reason": "startup-sidecars"})),
        })
    }

    /// The close frame that ends the socket.
    pub fn close(&self) -> CloseFrame {
        match self {
            ConnectRejection::InvalidJson => CloseFrame::new(code::NORMAL, "invalid json"),
            ConnectRejection::InvalidRequestFrame => CloseFrame::new(code::POLICY_VIOLATION, "invalid request frame"),
            ConnectRejection::HandshakeTimeout => CloseFrame::new(code::NORMAL, "handshake timeout"),
            ConnectRejection::PreauthPayloadTooLarge => {
                CloseFrame::new(code::MESSAGE_TOO_BIG, "preauth payload too large")
            }
            ConnectRejection::ProtocolMismatch { .. } => CloseFrame::new(code::PROTOCOL_ERROR, "protocol mismatch"),
            ConnectRejection::Starting => CloseFrame::new(code::TRY_AGAIN_LATER, "gateway starting"),
            ConnectRejection::PairingRequired { .. } => CloseFrame::new(code::POLICY_VIOLATION, "pairing required"),
            other => {
                let message = other.error().map(|e| e.message).unwrap_or_default();
                CloseFrame::new(code::POLICY_VIOLATION, &message)
            }
        }
    }

    /// The response (addressed to `request_id`, when there is one) and the close frame.
    pub fn rejection(&self, request_id: Option<&str>) -> Rejection {
        Rejection {
            response: match (request_id, self.error()) {
                (Some(id), Some(e)) => Some(Box::new(ResponseFrame::err(id, e))),
                _ => None,
            },
            close: self.close(),
            label: self.metric_label(),
        }
    }

    /// A short name of the outcome for metrics (`clawgate_handshakes_total{outcome}`).
    pub fn metric_label(&self) -> &'static str {
        match self {
            ConnectRejection::InvalidJson
            | ConnectRejection::InvalidRequestFrame
            | ConnectRejection::FirstRequestNotConnect
            | ConnectRejection::InvalidConnectParams(_)
            | ConnectRejection::InvalidRole
            | ConnectRejection::Starting => "invalid",
            ConnectRejection::ProtocolMismatch { .. } => "protocol_mismatch",
            ConnectRejection::DeviceProof(_) => "device_proof",
            ConnectRejection::OriginNotAllowed { .. } => "origin_refused",
            ConnectRejection::ControlUiDeviceIdentityRequired | ConnectRejection::DeviceIdentityRequired => {
                "device_required"
            }
            ConnectRejection::Unauthorized { .. } => "auth_failed",
            ConnectRejection::PairingRequired { .. } => "pairing_required",
            ConnectRejection::HandshakeTimeout => "timeout",
            ConnectRejection::PreauthPayloadTooLarge => "too_large",
        }
    }
}

/// A single-use nonce issued outside the socket's challenge (the gateway's `GET /api/device/nonce`).
/// The handshake asks the caller to redeem one when a proof carries a nonce other than the challenge's.
pub trait NonceRedeemer {
    /// Consumes `nonce` if it was issued, is unexpired and unused; returns whether it was.
    fn redeem(&mut self, nonce: &str, now_ms: u64) -> bool;
}

/// A [`NonceRedeemer`] that knows no other nonces: only the challenge nonce is accepted.
#[derive(Debug, Default, Clone, Copy)]
pub struct ChallengeNonceOnly;

impl NonceRedeemer for ChallengeNonceOnly {
    fn redeem(&mut self, _nonce: &str, _now_ms: u64) -> bool {
        false
    }
}

/// A device whose proof verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDevice {
    /// The device id.
    pub id: String,
    /// The raw public key.
    pub public_key: [u8; 32],
    /// Which payload version verified.
    pub signature_version: SignatureVersion,
}

/// Checks a device proof in the reference server's order. `params` supplies the signed fields.
pub fn verify_device_proof(
    params: &ConnectParams,
    device: &DeviceProof,
    challenge_nonce: &str,
    now_ms: u64,
    other_nonces: &mut dyn NonceRedeemer,
) -> Result<VerifiedDevice, DeviceProofFailure> {
    let public_key = parse_public_key(&device.public_key);
    match public_key {
        Some(raw) if device_id_from_raw_public_key(&raw) == device.id => {}
        _ => return Err(DeviceProofFailure::IdMismatch),
    }
    if now_ms.abs_diff(device.signed_at) > DEVICE_SIGNATURE_SKEW_MS {
        return Err(DeviceProofFailure::SignatureExpired);
    }
    let nonce = device.nonce.trim();
    if nonce.is_empty() {
        return Err(DeviceProofFailure::NonceRequired);
    }
    if nonce != challenge_nonce && !other_nonces.redeem(nonce, now_ms) {
        return Err(DeviceProofFailure::NonceMismatch);
    }
    let Some(public_key) = public_key else {
        return Err(DeviceProofFailure::PublicKeyInvalid);
    };
    let payload = params.signature_payload(&device.id, device.signed_at, nonce);
    let Some(signature_version) = verify_payload(&public_key, &payload, &device.signature) else {
        return Err(DeviceProofFailure::SignatureInvalid);
    };
    Ok(VerifiedDevice {
        id: device.id.clone(),
        public_key,
        signature_version,
    })
}

/// Whether a client's protocol range is admitted: it contains 4; or a `probe` client reaches 3..4;
/// or a `node`/`node` client's range contains 3.
pub fn protocol_admitted(params: &ConnectParams) -> bool {
    let (min, max) = (params.min_protocol, params.max_protocol);
    let contains = |v: u32| min <= v && v <= max;
    if contains(PROTOCOL_VERSION) {
        return true;
    }
    if params.client.mode == ClientMode::Probe && max >= MIN_PROBE_PROTOCOL_VERSION && min <= PROTOCOL_VERSION {
        return true;
    }
    params.role.as_deref() == Some("node")
        && params.client.mode == ClientMode::Node
        && contains(MIN_NODE_PROTOCOL_VERSION)
}

/// The first state of a server connection: the challenge is out, the `connect` request is expected.
#[derive(Debug, Clone)]
pub struct ServerHandshake {
    nonce: String,
    challenge_ts: u64,
}

impl ServerHandshake {
    /// A handshake whose challenge carries `nonce` (a fresh random UUID chosen by the caller) and `now_ms`.
    pub fn new(nonce: impl Into<String>, now_ms: u64) -> Self {
        ServerHandshake {
            nonce: nonce.into(),
            challenge_ts: now_ms,
        }
    }

    /// This socket's challenge nonce.
    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    /// The `connect.challenge` event to send as soon as the socket opens.
    pub fn challenge(&self) -> EventFrame {
        EventFrame::new(
            "connect.challenge",
            &ConnectChallenge {
                nonce: self.nonce.clone(),
                ts: self.challenge_ts,
                capabilities: CHALLENGE_CAPABILITIES.iter().map(|c| (*c).to_owned()).collect(),
            },
        )
    }

    /// Handles the first text message of the socket.
    pub fn handle_first_frame(
        self,
        text: &str,
        now_ms: u64,
        other_nonces: &mut dyn NonceRedeemer,
    ) -> Result<AcceptedConnect, Rejection> {
        let request = match Frame::decode(text) {
            Ok(Frame::Request(r)) => r,
            Err(FrameError::InvalidJson(_)) => return Err(ConnectRejection::InvalidJson.rejection(None)),
            Ok(_) | Err(FrameError::InvalidFrame { .. }) => {
                return Err(ConnectRejection::InvalidRequestFrame.rejection(None))
            }
        };
        let id = request.id.as_str();
        if request.method != "connect" {
            return Err(ConnectRejection::FirstRequestNotConnect.rejection(Some(id)));
        }
        let params = match ConnectParams::parse(request.params_text()) {
            Ok(p) => p,
            Err(detail) => return Err(ConnectRejection::InvalidConnectParams(detail).rejection(Some(id))),
        };
        if !protocol_admitted(&params) {
            return Err(ConnectRejection::ProtocolMismatch {
                client_min: params.min_protocol,
                client_max: params.max_protocol,
            }
            .rejection(Some(id)));
        }
        let Some(role) = Role::parse(params.role_str()) else {
            return Err(ConnectRejection::InvalidRole.rejection(Some(id)));
        };
        let device = match &params.device {
            None => None,
            Some(proof) => match verify_device_proof(&params, proof, &self.nonce, now_ms, other_nonces) {
                Ok(d) => Some(d),
                Err(f) => return Err(ConnectRejection::DeviceProof(f).rejection(Some(id))),
            },
        };
        Ok(AcceptedConnect {
            request_id: request.id,
            params,
            role,
            device,
            nonce: self.nonce,
        })
    }
}

/// A `connect` request that passed every check that needs no gateway state.
#[derive(Debug, Clone)]
pub struct AcceptedConnect {
    /// The id of the `connect` request.
    pub request_id: String,
    /// The validated params.
    pub params: ConnectParams,
    /// The parsed role.
    pub role: Role,
    /// The verified device, when the client sent a proof.
    pub device: Option<VerifiedDevice>,
    /// This socket's challenge nonce.
    pub nonce: String,
}

impl AcceptedConnect {
    /// Completes the handshake: the `hello-ok` response.
    pub fn accept(self, hello: &HelloOk) -> ResponseFrame {
        ResponseFrame::ok(self.request_id, hello)
    }

    /// Completes the handshake with a `hello-ok` payload that is already JSON text (a gateway
    /// that assembles it from cached pieces avoids building a [`HelloOk`] per connection).
    pub fn accept_raw(self, hello: Box<serde_json::value::RawValue>) -> ResponseFrame {
        ResponseFrame::ok_raw(self.request_id, hello)
    }

    /// Fails the handshake with `why`.
    pub fn reject(&self, why: &ConnectRejection) -> Rejection {
        why.rejection(Some(&self.request_id))
    }

    /// The rejection for an authentication failure, with the client-specific hint and the
    /// device-token retry hint filled in from the request.
    pub fn unauthorized(&self, failure: AuthFailure) -> ConnectRejection {
        let auth = self.params.auth.as_ref();
        let can_retry_with_device_token = failure == AuthFailure::TokenMismatch
            && self.params.device.is_some()
            && auth.is_some_and(|a| a.token.is_some() && a.device_token.is_none());
        ConnectRejection::Unauthorized {
            failure,
            client: (self.params.client.id, self.params.client.mode),
            can_retry_with_device_token,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::DeviceIdentity;

    fn connect_text(params: serde_json::Value) -> String {
        json!({"type":"req","id":"c1","method":"connect","params":params}).to_string()
    }

    fn base_params() -> serde_json::Value {
        json!({"minProtocol":4,"maxProtocol":4,"client":{"id":"cli","version":"1","platform":"linux","mode":"cli"}})
    }

    fn run(text: &str) -> Result<AcceptedConnect, Rejection> {
        ServerHandshake::new("nonce-1", 1_000_000).handle_first_frame(text, 1_000_000, &mut ChallengeNonceOnly)
    }

    #[test]
    fn challenge_has_nonce_ts_and_capabilities() {
        let hs = ServerHandshake::new("n", 42);
        assert_eq!(
            hs.challenge().encode(),
            r#"{"type":"event","event":"connect.challenge","payload":{"nonce":"n","ts":42,"capabilities":["model-catalog-snapshot"]}}"#
        );
    }

    #[test]
    fn first_request_must_be_connect() {
        let r = run(r#"{"type":"req","id":"x","method":"health"}"#).unwrap_err();
        let e = r.response.unwrap().error.unwrap();
        assert_eq!(e.message, "invalid handshake: first request must be connect");
        assert_eq!(r.close.code, 1008);
    }

    #[test]
    fn not_json_and_not_a_request_close_without_response() {
        let r = run("{{{").unwrap_err();
        assert!(r.response.is_none());
        let r = run(r#"{"type":"event","event":"x"}"#).unwrap_err();
        assert!(r.response.is_none());
        assert_eq!(r.close, CloseFrame::new(1008, "invalid request frame"));
    }

    #[test]
    fn protocol_mismatch_closes_1002() {
        let mut p = base_params();
        p["minProtocol"] = 5.into();
        p["maxProtocol"] = 6.into();
        let r = run(&connect_text(p)).unwrap_err();
        assert_eq!(r.close, CloseFrame::new(1002, "protocol mismatch"));
        let d = r.response.unwrap().error.unwrap().details.unwrap();
        assert_eq!(d["code"], "PROTOCOL_MISMATCH");
        assert_eq!(d["clientMinProtocol"], 5);
    }

    #[test]
    fn probes_and_legacy_nodes_may_speak_protocol_3() {
        let mut p = base_params();
        p["minProtocol"] = 3.into();
        p["maxProtocol"] = 3.into();
        assert!(run(&connect_text(p.clone())).is_err());
        p["client"]["mode"] = "probe".into();
        assert!(run(&connect_text(p.clone())).is_ok());
        p["client"]["mode"] = "node".into();
        assert!(run(&connect_text(p.clone())).is_err());
        p["role"] = "node".into();
        assert!(run(&connect_text(p)).is_ok());
    }

    #[test]
    fn unknown_role_is_refused() {
        let mut p = base_params();
        p["role"] = "worker".into();
        let r = run(&connect_text(p)).unwrap_err();
        assert_eq!(r.response.unwrap().error.unwrap().message, "invalid role");
    }

    fn signed_params(identity: &DeviceIdentity, nonce: &str, signed_at: u64) -> serde_json::Value {
        let mut p = base_params();
        p["scopes"] = json!(["operator.read"]);
        p["auth"] = json!({"token": "tok"});
        let parsed = ConnectParams::parse(&p.to_string()).unwrap();
        p["device"] = serde_json::to_value(DeviceProof::sign(identity, &parsed, nonce, signed_at)).unwrap();
        p
    }

    #[test]
    fn a_valid_device_proof_is_accepted() {
        let id = DeviceIdentity::from_seed(&[1; 32]);
        let accepted = run(&connect_text(signed_params(&id, "nonce-1", 1_000_000))).unwrap();
        let device = accepted.device.unwrap();
        assert_eq!(device.id, id.device_id());
        assert_eq!(device.signature_version, SignatureVersion::V3);
    }

    #[test]
    fn device_failures_are_checked_in_order() {
        let id = DeviceIdentity::from_seed(&[1; 32]);
        let code_of = |p: serde_json::Value| {
            run(&connect_text(p))
                .unwrap_err()
                .response
                .unwrap()
                .error
                .unwrap()
                .details
                .unwrap()["code"]
                .clone()
        };
        let mut p = signed_params(&id, "other", 1_000_000 + 200_000);
        p["device"]["id"] = "00".repeat(32).into();
        assert_eq!(code_of(p), "DEVICE_AUTH_DEVICE_ID_MISMATCH");
        assert_eq!(
            code_of(signed_params(&id, "other", 1_000_000 + 200_000)),
            "DEVICE_AUTH_SIGNATURE_EXPIRED"
        );
        assert_eq!(
            code_of(signed_params(&id, " ", 1_000_000)),
            "DEVICE_AUTH_NONCE_REQUIRED"
        );
        assert_eq!(
            code_of(signed_params(&id, "other", 1_000_000)),
            "DEVICE_AUTH_NONCE_MISMATCH"
        );
        let mut p = signed_params(&id, "nonce-1", 1_000_000);
        p["auth"]["token"] = "changed".into();
        assert_eq!(code_of(p), "DEVICE_AUTH_SIGNATURE_INVALID");
    }

    struct OneNonce(Option<String>);
    impl NonceRedeemer for OneNonce {
        fn redeem(&mut self, nonce: &str, _now_ms: u64) -> bool {
            self.0.as_deref() == Some(nonce) && self.0.take().is_some()
        }
    }

    #[test]
    fn a_redeemed_nonce_replaces_the_challenge_once() {
        let id = DeviceIdentity::from_seed(&[2; 32]);
        let text = connect_text(signed_params(&id, "http-nonce", 1_000_000));
        let mut store = OneNonce(Some("http-nonce".into()));
        assert!(ServerHandshake::new("n", 1_000_000)
            .handle_first_frame(&text, 1_000_000, &mut store)
            .is_ok());
        assert!(ServerHandshake::new("n", 1_000_000)
            .handle_first_frame(&text, 1_000_000, &mut store)
            .is_err());
    }

    #[test]
    fn rate_limited_errors_carry_retry_after() {
        let r = ConnectRejection::Unauthorized {
            failure: AuthFailure::RateLimited { retry_after_ms: 1234 },
            client: (ClientId::Cli, ClientMode::Cli),
            can_retry_with_device_token: false,
        };
        let e = r.error().unwrap();
        assert_eq!(e.retry_after_ms, Some(1234));
        assert_eq!(e.details.unwrap()["recommendedNextStep"], "wait_then_retry");
    }
}
