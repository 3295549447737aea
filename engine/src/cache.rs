//! JSON text reused across requests and handshakes: the features, the policy and the session
//! defaults of `hello-ok`, and the `health` and presence snapshots (re-serialized only when their
//! versions move).

use crate::config::GatewayConfig;
use crate::conns::Session;
use crate::presence::Presence;
use clawgate_proto::auth::AuthMethod;
use clawgate_proto::connect::HelloOk;
use clawgate_proto::frame::{to_raw, StateVersion};
use serde_json::json;
use serde_json::value::RawValue;

/// Every method this gateway implements, as advertised in `hello-ok.features.methods`: the
/// entries of proto's method table that have an owner here.
pub fn implemented_methods() -> impl Iterator<Item = &'static str> {
    clawgate_proto::methods::implemented().map(|m| m.name)
}

/// Events this gateway emits, advertised in `hello-ok.features.events`.
pub const EVENTS: &[&str] = &[
    "connect.challenge",
    "presence",
    "tick",
    "health",
    "shutdown",
    "device.pair.requested",
    "device.pair.resolved",
    "agent",
    "chat",
    "sessions.changed",
    "session.message",
    "node.invoke.request",
    "node.invoke.cancel",
    "cron",
    "heartbeat",
    "config.changed",
    "chat.metadata.changed",
    "exec.approval.requested",
    "exec.approval.resolved",
];

/// The `snapshot.sessionDefaults` of `hello-ok`. The Control UI sends a user to its model setup
/// page while `modelConfigured` is false: it is true once an agent is configured or served.
fn session_defaults(config: &GatewayConfig, model_configured: bool) -> Box<RawValue> {
    let routing = config.session_routing();
    to_raw(&json!({
        "defaultAgentId": routing.default_agent.as_str(),
        "modelConfigured": model_configured,
        "ownership": "sole",
        "selectionRequired": false,
        "mainKey": routing.effective_main_key(),
        "mainSessionKey": routing.main_session(None),
        "scope": match config.session_scope {
            clawgate_proto::session::SessionScope::PerSender => "per-sender",
            clawgate_proto::session::SessionScope::Global => "global",
        },
    }))
}

/// How a connection authenticated, for `hello-ok.auth`.
pub(crate) struct HelloAuth {
    pub method: AuthMethod,
    pub device_token: Option<String>,
    pub issued_at_ms: Option<u64>,
}

/// The cached pieces.
pub(crate) struct Cache {
    features: Box<RawValue>,
    policy: Box<RawValue>,
    /// `(model configured, session defaults)`; taken again when either moves.
    session_defaults: Option<(bool, Box<RawValue>)>,
    /// `(health version, health summary)`: the summary is taken when the version moves.
    health: (u64, Box<RawValue>),
    /// `(presence version, presence list)`.
    presence: (u64, Box<RawValue>),
}

impl Cache {
    pub fn new(config: &GatewayConfig) -> Cache {
        Cache {
            features: to_raw(&json!({
                "methods": implemented_methods().collect::<Vec<_>>(),
                "events": EVENTS,
                // models.list answers the published catalog (each model with `available`), which
                // the CLI's `models list` asks the gateway for.
                "capabilities": ["published-model-catalog"],
            })),
            policy: to_raw(&json!({
                "maxPayload": config.max_payload,
                "maxBufferedBytes": config.max_buffered_bytes,
                "tickIntervalMs": config.tick_interval_ms,
            })),
            session_defaults: None,
            // Version 0 is never current: the first use fills these.
            health: (0, to_raw(&json!({}))),
            presence: (0, to_raw(&json!([]))),
        }
    }

    /// The session routing of the configuration changed.
    pub fn config_changed(&mut self) {
        self.session_defaults = None;
    }

    /// Takes the snapshots again whose versions moved; `health` makes the summary.
    pub fn refresh(&mut self, health_version: u64, presence: &Presence, health: impl FnOnce() -> serde_json::Value) {
        if self.health.0 != health_version {
            self.health = (health_version, to_raw(&health()));
        }
        if self.presence.0 != presence.version() {
            self.presence = (presence.version(), to_raw(&presence.list()));
        }
    }

    /// The `health` summary as last refreshed.
    pub fn health(&self) -> &RawValue {
        &self.health.1
    }

    /// The presence list as last refreshed.
    pub fn presence(&self) -> &RawValue {
        &self.presence.1
    }

    /// The `hello-ok` payload as JSON text, assembled from cached pieces (refresh the snapshots
    /// first).
    pub fn hello_ok(
        &mut self,
        config: &GatewayConfig,
        session: &Session,
        auth: HelloAuth,
        state_version: StateVersion,
        uptime_ms: u64,
        model_configured: bool,
    ) -> Box<RawValue> {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Snapshot<'a> {
            presence: &'a RawValue,
            health: &'a RawValue,
            state_version: StateVersion,
            uptime_ms: u64,
            session_defaults: &'a RawValue,
            #[serde(skip_serializing_if = "Option::is_none")]
            config_path: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            state_dir: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            auth_mode: Option<&'a str>,
        }
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Server<'a> {
            version: &'a str,
            conn_id: &'a str,
        }
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Auth<'a> {
            method: &'a str,
            role: &'a str,
            scopes: &'a [String],
            #[serde(skip_serializing_if = "Option::is_none")]
            device_token: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            issued_at_ms: Option<u64>,
        }
        #[derive(serde::Serialize)]
        struct Hello<'a> {
            #[serde(rename = "type")]
            ty: &'static str,
            protocol: u32,
            server: Server<'a>,
            features: &'a RawValue,
            snapshot: Snapshot<'a>,
            auth: Auth<'a>,
            policy: &'a RawValue,
        }
        if self
            .session_defaults
            .as_ref()
            .is_none_or(|(m, _)| *m != model_configured)
        {
            self.session_defaults = Some((model_configured, session_defaults(config, model_configured)));
        }
        let defaults: &RawValue = match &self.session_defaults {
            Some((_, raw)) => raw,
            None => return to_raw(&json!({})),
        };
        let admin = session.is_admin();
        let hello = Hello {
            ty: HelloOk::TYPE,
            protocol: clawgate_proto::limits::PROTOCOL_VERSION,
            server: Server {
                version: &config.server_version,
                conn_id: &session.conn_uuid,
            },
            features: &self.features,
            snapshot: Snapshot {
                presence: &self.presence.1,
                health: &self.health.1,
                state_version,
                uptime_ms,
                session_defaults: defaults,
                config_path: admin.then_some(config.config_path.as_str()),
                state_dir: admin.then_some(config.state_dir.as_str()),
                auth_mode: admin.then_some(config.auth.mode.as_str()),
            },
            auth: Auth {
                method: auth.method.as_str(),
                role: session.role.as_str(),
                scopes: &session.scope_names,
                device_token: auth.device_token,
                issued_at_ms: auth.issued_at_ms,
            },
            policy: &self.policy,
        };
        to_raw(&hello)
    }
}
