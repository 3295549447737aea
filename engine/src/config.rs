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
