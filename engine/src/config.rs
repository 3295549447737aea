//! The gateway's settings, as the runtime resolved them from flags and environment.

use clawgate_proto::auth::{AuthMode, SharedSecretConfig};
use clawgate_proto::limits::{
    HANDSHAKE_TIMEOUT_MS, MAX_BUFFERED_BYTES, MAX_PAYLOAD_BYTES, MAX_PREAUTH_PAYLOAD_BYTES, TICK_INTERVAL_MS,
};

/// Most unauthenticated sockets one client address may hold at once.
pub const MAX_PREAUTH_CONNECTIONS_PER_IP: usize = 32;
/// Lines kept in the log ring that `logs.tail` reads.
pub const LOG_RING_LINES: usize = 1000;
/// How long a nonce from `GET /api/device/nonce` may be signed.
pub const HTTP_NONCE_TTL_MS: u64 = 60_000;
/// Most outstanding nonces from `GET /api/device/nonce`; the oldest is dropped beyond this.
pub const MAX_HTTP_NONCES: usize = 1024;
/// How long an idempotent result is replayed.
pub const IDEMPOTENCY_TTL_MS: u64 = 5 * 60_000;
/// Most idempotent results kept.
pub const IDEMPOTENCY_MAX_ENTRIES: usize = 1000;
/// Interval of the `health` broadcast.
pub const HEALTH_REFRESH_INTERVAL_MS: u64 = 60_000;
/// Presence entries expire after this long without a refresh.
pub const PRESENCE_TTL_MS: u64 = 5 * 60_000;
/// Most presence entries kept.
pub const MAX_PRESENCE_ENTRIES: usize = 200;

/// Everything the engine needs to know about its configuration.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Shared-secret authentication.
    pub auth: SharedSecretConfig,
    /// Version reported in `hello-ok.server.version`.
    pub server_version: String,
    /// Host name reported in presence.
    pub host_name: String,
    /// Time a socket has to complete the handshake.
    pub handshake_timeout_ms: u64,
    /// Interval of `tick` events.
    pub tick_interval_ms: u64,
    /// Largest frame before `hello-ok`.
    pub max_preauth_payload: usize,
    /// Largest frame after `hello-ok`.
    pub max_payload: usize,
    /// Outbound buffer threshold of the slow-consumer rule.
    pub max_buffered_bytes: usize,
    /// Most unauthenticated sockets per client address.
    pub max_preauth_per_ip: usize,
    /// Interval of the `health` broadcast.
    pub health_refresh_interval_ms: u64,
    /// The default agent id.
    pub default_agent_id: String,
    /// The main session key suffix (`session.mainKey`).
    pub main_key: String,
    /// Where the gateway keeps its state, reported to admins.
    pub state_dir: String,
    /// The config file path, reported to admins.
    pub config_path: String,
    /// Approve first pairings and role upgrades of devices on this host without an operator
    /// (`gateway.nodes.pairing.autoApproveLocal`).
    pub auto_approve_local: bool,
    /// The failed-authentication limiter (`gateway.auth.rateLimit`).
    pub rate_limit: crate::rate_limit::RateLimitConfig,
    /// Browser origins allowed besides the gateway's own (`gateway.controlUi.allowedOrigins`;
    /// `*` allows any).
    pub allowed_origins: Vec<String>,
    /// `gateway.reload.mode`.
    pub reload_mode: crate::reload::ReloadMode,
    /// What the command line fixed, which a reloaded file does not override.
    pub overrides: Overrides,
}

/// Settings given on the command line (they win over the file) and secrets from the environment
/// (the file wins over them), captured at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub auth_mode: Option<clawgate_proto::auth::AuthMode>,
    pub token: Option<String>,
    pub password: Option<String>,
    pub auto_approve_local: Option<bool>,
    pub env_token: Option<String>,
    pub env_password: Option<String>,
}

impl Overrides {
    /// The shared secret in force: command line, then file, then environment. Without any
    /// secret the result is token mode without a token (every connect is refused) unless the
    /// caller generated one.
    pub fn effective_auth(&self, file: &crate::settings::FileSettings) -> Option<SharedSecretConfig> {
        use clawgate_proto::auth::AuthMode;
        let file_mode = file.auth_mode.as_deref().and_then(AuthMode::parse);
        let token = self
            .token
            .clone()
            .or_else(|| file.auth_token.clone())
            .or_else(|| self.env_token.clone());
        let password = self
            .password
            .clone()
            .or_else(|| file.auth_password.clone())
            .or_else(|| self.env_password.clone());
        let mode = self.auth_mode.or(file_mode).or_else(|| {
            if self.password.is_some() || (self.token.is_none() && password.is_some() && token.is_none()) {
                Some(AuthMode::Password)
            } else if token.is_some() {
                Some(AuthMode::Token)
            } else {
                None
            }
        })?;
        Some(SharedSecretConfig { mode, token, password })
    }
}

impl GatewayConfig {
    /// Settings with the protocol's default limits and the given auth.
    pub fn new(auth: SharedSecretConfig) -> Self {
        GatewayConfig {
            auth,
            server_version: env!("CARGO_PKG_VERSION").to_owned(),
            host_name: "localhost".to_owned(),
            handshake_timeout_ms: HANDSHAKE_TIMEOUT_MS,
            tick_interval_ms: TICK_INTERVAL_MS,
            max_preauth_payload: MAX_PREAUTH_PAYLOAD_BYTES,
            max_payload: MAX_PAYLOAD_BYTES,
            max_buffered_bytes: MAX_BUFFERED_BYTES,
            max_preauth_per_ip: MAX_PREAUTH_CONNECTIONS_PER_IP,
            health_refresh_interval_ms: HEALTH_REFRESH_INTERVAL_MS,
            default_agent_id: "main".to_owned(),
            main_key: "main".to_owned(),
            state_dir: String::new(),
            config_path: String::new(),
            auto_approve_local: true,
            rate_limit: crate::rate_limit::RateLimitConfig::default(),
            allowed_origins: Vec::new(),
            reload_mode: crate::reload::ReloadMode::Hybrid,
            overrides: Overrides::default(),
        }
    }

    /// Token auth with `token`.
    pub fn with_token(token: &str) -> Self {
        GatewayConfig::new(SharedSecretConfig {
            mode: AuthMode::Token,
            token: Some(token.to_owned()),
            password: None,
        })
    }
}
