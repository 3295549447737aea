//! The handshake payloads: `connect.challenge`, the `connect` params and `hello-ok`.
//!
//! `connect` params are closed objects with closed `client.id` and `client.mode` lists, as the
//! reference server enforces, plus the few fields the official clients send beyond the published
//! schema (`client.buildId`, `client.timeZone`, `modelCatalog`). `hello-ok` is decoded leniently:
//! clients must ignore fields they do not know, so every object keeps its unknown fields in `extra`.

use crate::device::{DeviceIdentity, SignaturePayload, SignatureVersion};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The wire spelling.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }

            /// Parses the wire spelling.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)* _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// The closed list of `client.id` values.
    ClientId {
        /// Browser webchat.
        WebchatUi = "webchat-ui",
        /// The official Control UI.
        ControlUi = "openclaw-control-ui",
        /// The terminal UI.
        Tui = "openclaw-tui",
        /// Webchat widget.
        Webchat = "webchat",
        /// The `openclaw` command line.
        Cli = "cli",
        /// Backend helpers and generic gateway clients.
        GatewayClient = "gateway-client",
        /// macOS app.
        MacOs = "openclaw-macos",
        /// iOS app.
        Ios = "openclaw-ios",
        /// Android app.
        Android = "openclaw-android",
        /// Node host.
        NodeHost = "node-host",
        /// Tests.
        Test = "test",
        /// Fingerprinting probes.
        Fingerprint = "fingerprint",
        /// Health probes.
        Probe = "openclaw-probe",
        /// Browser copilot.
        BrowserCopilot = "openclaw-browser-copilot",
        /// Linux app.
        Linux = "openclaw-linux",
        /// watchOS app.
        WatchOs = "openclaw-watchos",
        /// Cloud worker.
        Worker = "openclaw-worker",
    }
}

string_enum! {
    /// The closed list of `client.mode` values.
    ClientMode {
        /// Browser chat surfaces, including the Control UI.
        Webchat = "webchat",
        /// Command line.
        Cli = "cli",
        /// Native UI.
        Ui = "ui",
        /// Backend service.
        Backend = "backend",
        /// Capability host.
        Node = "node",
        /// Status probe.
        Probe = "probe",
        /// Tests.
        Test = "test",
        /// Cloud worker.
        Worker = "worker",
    }
}

string_enum! {
    /// Connection roles.
    Role {
        /// Control plane: CLI, UIs, automation.
        Operator = "operator",
        /// Capability host (agent workers too).
        Node = "node",
    }
}

/// `connect.params.client`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientInfo {
    /// Which client this is (closed list).
    pub id: ClientId,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Client version, non-empty.
    pub version: String,
    /// Build id (sent by current clients; informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    /// Platform, non-empty; part of the v3 signature payload.
    pub platform: String,
    /// Device family; part of the v3 signature payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_family: Option<String>,
    /// Hardware model identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_identifier: Option<String>,
    /// IANA time zone (sent by current clients; informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Client mode (closed list).
    pub mode: ClientMode,
    /// Per-install instance id; keys presence when there is no device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
}

impl ClientInfo {
    /// A client description with the required fields; the optional ones are left out.
    pub fn new(id: ClientId, mode: ClientMode, version: impl Into<String>, platform: impl Into<String>) -> Self {
        ClientInfo {
            id,
            display_name: None,
            version: version.into(),
            build_id: None,
            platform: platform.into(),
            device_family: None,
            model_identifier: None,
            time_zone: None,
            mode,
            instance_id: None,
        }
    }
}

/// `connect.params.auth`: the credentials a client offers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConnectAuth {
    /// Shared gateway token (also tried as a device token when a device is present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// One-time setup token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_token: Option<String>,
    /// Per-device token from an earlier `hello-ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
    /// Shared gateway password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Internal token of local backend helpers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_runtime_token: Option<String>,
    /// Internal token of local agent runtimes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_runtime_identity_token: Option<String>,
}

impl ConnectAuth {
    /// The token that goes into the device signature payload:
    /// `token ?? deviceToken ?? bootstrapToken ?? ""`. A present but empty `token` is used as is.
    pub fn signature_token(&self) -> &str {
        self.token
            .as_deref()
            .or(self.device_token.as_deref())
            .or(self.bootstrap_token.as_deref())
            .unwrap_or("")
    }
}

/// `connect.params.device`: the device proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeviceProof {
    /// Lowercase hex SHA-256 of the raw public key.
    pub id: String,
    /// Base64url (no padding) of the raw 32-byte ed25519 key, or a PEM SPKI key.
    pub public_key: String,
    /// Base64url of the 64-byte signature over the v3 (or v2) payload.
    pub signature: String,
    /// Milliseconds since the epoch at signing; clients use the challenge `ts`.
    pub signed_at: u64,
    /// The challenge nonce.
    pub nonce: String,
}

impl DeviceProof {
    /// Signs `params` (everything but its `device` field) for the challenge `nonce`, with the v3
    /// payload that current servers verify first.
    pub fn sign(identity: &DeviceIdentity, params: &ConnectParams, nonce: &str, signed_at_ms: u64) -> DeviceProof {
        let payload = params.signature_payload(identity.device_id(), signed_at_ms, nonce);
        DeviceProof {
            id: identity.device_id().to_owned(),
            public_key: identity.public_key_b64url().to_owned(),
            signature: identity.sign(&payload.render(SignatureVersion::V3)),
            signed_at: signed_at_ms,
            nonce: nonce.to_owned(),
        }
    }
}

/// The params of the `connect` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConnectParams {
    /// Lowest protocol version the client speaks.
    pub min_protocol: u32,
    /// Highest protocol version the client speaks.
    pub max_protocol: u32,
    /// Who the client is.
    pub client: ClientInfo,
    /// Client capabilities such as `tool-events`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caps: Option<Vec<String>>,
    /// Node command allowlist claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands: Option<Vec<String>>,
    /// Node permission toggles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<BTreeMap<String, bool>>,
    /// The node's PATH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_env: Option<String>,
    /// Requested role; `operator` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Requested scopes, exactly as signed; `[]` when absent (default deny).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Device proof.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceProof>,
    /// Offered credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ConnectAuth>,
    /// Locale, informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// User agent, informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Model catalog request of the Control UI (accepted, informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_catalog: Option<serde_json::Value>,
}

impl ConnectParams {
    /// Parses and validates `connect` params. The error text follows the reference server's
    /// `invalid connect params: ...` message.
    pub fn parse(params_json: &str) -> Result<ConnectParams, String> {
        let params: ConnectParams = serde_json::from_str(params_json).map_err(|e| e.to_string())?;
        params.validate()?;
        Ok(params)
    }

    /// Checks the constraints serde cannot express: minimums and non-empty strings.
    pub fn validate(&self) -> Result<(), String> {
        fn non_empty(path: &str, v: &str) -> Result<(), String> {
            if v.is_empty() {
                Err(format!("at {path}: must not have fewer than 1 characters"))
            } else {
                Ok(())
            }
        }
        fn opt_non_empty(path: &str, v: &Option<String>) -> Result<(), String> {
            v.as_deref().map_or(Ok(()), |v| non_empty(path, v))
        }
        fn all_non_empty(path: &str, v: &Option<Vec<String>>) -> Result<(), String> {
            for s in v.iter().flatten() {
                non_empty(path, s)?;
            }
            Ok(())
        }
        if self.min_protocol < 1 {
            return Err("at /minProtocol: must be >= 1".into());
        }
        if self.max_protocol < 1 {
            return Err("at /maxProtocol: must be >= 1".into());
        }
        non_empty("/client/version", &self.client.version)?;
        non_empty("/client/platform", &self.client.platform)?;
        opt_non_empty("/client/displayName", &self.client.display_name)?;
        opt_non_empty("/client/deviceFamily", &self.client.device_family)?;
        opt_non_empty("/client/modelIdentifier", &self.client.model_identifier)?;
        opt_non_empty("/client/instanceId", &self.client.instance_id)?;
        all_non_empty("/caps", &self.caps)?;
        all_non_empty("/commands", &self.commands)?;
        all_non_empty("/scopes", &self.scopes)?;
        opt_non_empty("/role", &self.role)?;
        if let Some(p) = &self.permissions {
            for k in p.keys() {
                non_empty("/permissions", k)?;
            }
        }
        if let Some(d) = &self.device {
            non_empty("/device/id", &d.id)?;
            non_empty("/device/publicKey", &d.public_key)?;
            non_empty("/device/signature", &d.signature)?;
            non_empty("/device/nonce", &d.nonce)?;
        }
        Ok(())
    }

    /// The requested role string (`operator` when absent).
    pub fn role_str(&self) -> &str {
        self.role.as_deref().unwrap_or("operator")
    }

    /// The requested scopes (`[]` when absent).
    pub fn scopes(&self) -> &[String] {
        self.scopes.as_deref().unwrap_or(&[])
    }

    /// The fields a device signs, filled from these params exactly as the server fills them when
    /// it verifies: scopes as sent, the role defaulting to `operator`, and the token
    /// `auth.token ?? auth.deviceToken ?? auth.bootstrapToken ?? ""`.
    pub fn signature_payload<'a>(
        &'a self,
        device_id: &'a str,
        signed_at_ms: u64,
        nonce: &'a str,
    ) -> SignaturePayload<'a> {
        SignaturePayload {
            device_id,
            client_id: self.client.id.as_str(),
            client_mode: self.client.mode.as_str(),
            role: self.role_str(),
            scopes: self.scopes(),
            signed_at_ms,
            token: self.auth.as_ref().map_or("", |a| a.signature_token()),
            nonce,
            platform: &self.client.platform,
            device_family: self.client.device_family.as_deref().unwrap_or(""),
        }
    }

    /// The client capabilities (`[]` when absent).
    pub fn caps(&self) -> &[String] {
        self.caps.as_deref().unwrap_or(&[])
    }
}

/// Payload of the `connect.challenge` event the server sends when a socket opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectChallenge {
    /// Single-use nonce the device proof must carry.
    pub nonce: String,
    /// Server time in milliseconds; clients sign it as `signedAt`.
    pub ts: u64,
    /// Server capabilities announced before the handshake.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
}

/// Capabilities the reference server announces in its challenge.
pub const CHALLENGE_CAPABILITIES: &[&str] = &["model-catalog-snapshot"];

/// Additional fields of any `hello-ok` object, kept so clients can read them and re-encode losslessly.
pub type Extra = serde_json::Map<String, serde_json::Value>;

/// `hello-ok.server`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelloServer {
    /// Server version.
    pub version: String,
    /// This connection's id.
    pub conn_id: String,
    /// Other fields (`buildId`, `bootId`, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `hello-ok.features`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HelloFeatures {
    /// Methods the server offers.
    pub methods: Vec<String>,
    /// Events the server may send.
    pub events: Vec<String>,
    /// Server capabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One issued device token in `hello-ok.auth.deviceTokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedDeviceToken {
    /// The token.
    pub device_token: String,
    /// The role it authenticates.
    pub role: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Issue time.
    pub issued_at_ms: u64,
}

/// `hello-ok.auth`: how the connection authenticated and what it may do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelloAuth {
    /// Auth method, e.g. `token`, `password`, `device-token`, `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Granted role.
    pub role: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Device token issued to this device, returned only to the device itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
    /// Issue time of `device_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at_ms: Option<u64>,
    /// Extra tokens from a bootstrap hand-off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_tokens: Option<Vec<IssuedDeviceToken>>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `hello-ok.policy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelloPolicy {
    /// Largest inbound frame after the handshake.
    pub max_payload: u64,
    /// Outbound buffer threshold of the slow-consumer rule.
    pub max_buffered_bytes: u64,
    /// Interval of `tick` events.
    pub tick_interval_ms: u64,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Default for HelloPolicy {
    fn default() -> Self {
        HelloPolicy {
            max_payload: crate::limits::MAX_PAYLOAD_BYTES as u64,
            max_buffered_bytes: crate::limits::MAX_BUFFERED_BYTES as u64,
            tick_interval_ms: crate::limits::TICK_INTERVAL_MS,
            extra: Extra::new(),
        }
    }
}

/// The `hello-ok` payload of a successful `connect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HelloOk {
    /// Always `hello-ok`.
    #[serde(rename = "type")]
    pub ty: String,
    /// The server's protocol version.
    pub protocol: u32,
    /// Server identity and this connection's id.
    pub server: HelloServer,
    /// What the server offers.
    pub features: HelloFeatures,
    /// Initial state (`presence`, `health`, `stateVersion`, `uptimeMs`, `sessionDefaults`, ...).
    pub snapshot: serde_json::Value,
    /// Auth outcome.
    pub auth: HelloAuth,
    /// Limits the client must respect.
    pub policy: HelloPolicy,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Extra,
}

impl HelloOk {
    /// The `type` value of a `hello-ok` payload.
    pub const TYPE: &'static str = "hello-ok";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> serde_json::Value {
        serde_json::json!({
            "minProtocol": 4, "maxProtocol": 4,
            "client": {"id": "cli", "version": "1", "platform": "linux", "mode": "cli"}
        })
    }

    #[test]
    fn minimal_params_parse_with_defaults() {
        let p = ConnectParams::parse(&minimal().to_string()).unwrap();
        assert_eq!(p.role_str(), "operator");
        assert!(p.scopes().is_empty());
    }

    #[test]
    fn unknown_client_id_or_mode_is_rejected() {
        let mut v = minimal();
        v["client"]["id"] = "someone".into();
        assert!(ConnectParams::parse(&v.to_string()).is_err());
        let mut v = minimal();
        v["client"]["mode"] = "operator".into();
        assert!(ConnectParams::parse(&v.to_string()).is_err());
    }

    #[test]
    fn unknown_fields_are_rejected_at_every_level() {
        for path in [&[][..], &["client"][..]] {
            let mut v = minimal();
            let mut target = &mut v;
            for p in path {
                target = &mut target[*p];
            }
            target["surprise"] = 1.into();
            assert!(ConnectParams::parse(&v.to_string()).is_err(), "{path:?}");
        }
        let mut v = minimal();
        v["auth"] = serde_json::json!({"token": "t", "other": "x"});
        assert!(ConnectParams::parse(&v.to_string()).is_err());
    }

    #[test]
    fn fields_of_current_clients_are_accepted() {
        let mut v = minimal();
        v["client"]["buildId"] = "b".into();
        v["client"]["timeZone"] = "UTC".into();
        v["modelCatalog"] = serde_json::json!({"sessionKey": "main"});
        v["userAgent"] = "ua".into();
        v["locale"] = "en-US".into();
        assert!(ConnectParams::parse(&v.to_string()).is_ok());
    }

    #[test]
    fn empty_strings_and_zero_protocols_are_rejected() {
        let mut v = minimal();
        v["client"]["version"] = "".into();
        assert!(ConnectParams::parse(&v.to_string()).is_err());
        let mut v = minimal();
        v["minProtocol"] = 0.into();
        assert!(ConnectParams::parse(&v.to_string()).is_err());
        let mut v = minimal();
        v["scopes"] = serde_json::json!(["operator.read", ""]);
        assert!(ConnectParams::parse(&v.to_string()).is_err());
    }

    #[test]
    fn signature_token_follows_nullish_coalescing() {
        let a = ConnectAuth {
            token: Some(String::new()),
            device_token: Some("dt".into()),
            ..Default::default()
        };
        assert_eq!(a.signature_token(), "");
        let a = ConnectAuth {
            device_token: Some("dt".into()),
            bootstrap_token: Some("bt".into()),
            ..Default::default()
        };
        assert_eq!(a.signature_token(), "dt");
        assert_eq!(ConnectAuth::default().signature_token(), "");
    }
}
