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
/// Sessions idle this long are pruned unless `session.maintenance.pruneAfter` says otherwise
/// (OpenClaw's default is 30 days too).
pub const SESSION_PRUNE_AFTER_MS: u64 = 30 * 24 * 3_600_000;
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
    /// How long a plain HTTP connection may sit between requests (keep-alive) or before its first.
    pub http_idle_timeout_ms: u64,
    /// Time from the first byte of a request to the end of its headers.
    pub http_head_timeout_ms: u64,
    /// Time from the end of a request's headers to the end of its body.
    pub http_body_timeout_ms: u64,
    /// Interval of `tick` events.
    pub tick_interval_ms: u64,
    /// Time a closing connection gets to flush what is queued for it before the runtime cuts it.
    pub close_grace_ms: u64,
    /// Time the runtime waits at shutdown for clients to take their close frames.
    pub shutdown_grace_ms: u64,
    /// `restartExpectedMs` of the `shutdown` event before a restart: when clients may try again.
    pub restart_expected_ms: u64,
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
    /// The main session key suffix (`session.mainKey`).
    pub main_key: String,
    /// `session.scope`: whether the main session is per agent or the single `global` one.
    pub session_scope: clawgate_proto::session::SessionScope,
    /// Sessions idle longer than this are pruned with their transcripts
    /// (`session.maintenance.pruneAfter`); 0 keeps them forever.
    pub session_prune_after_ms: u64,
    /// Which tools agents may run, and where.
    pub tool_policy: crate::tool_policy::ToolPolicy,
    /// Model providers and each agent's model.
    pub models: crate::models::ModelCatalog,
    /// `cron.*` and the agents' heartbeats.
    pub cron: crate::scheduler::CronSettings,
    /// `hooks.*`: the inbound webhooks.
    pub hooks: crate::hooks::HooksConfig,
    /// `channels.*` and the routing of their messages.
    pub channels: crate::channel_config::ChannelsConfig,
    /// The gateway host's time zone (IANA name), for cron expressions without one.
    pub host_time_zone: String,
    /// `tools.exec`: whether commands run, wait for approval or are refused.
    pub exec_policy: crate::approvals::ExecPolicy,
    /// The agents' own exec policies (over `tools.exec`).
    pub agent_exec_policies: std::collections::BTreeMap<String, crate::approvals::ExecPolicy>,
    /// The sandbox the runtime can confine tool calls with (e.g. "Landlock"); `None` refuses
    /// every call the policy wants sandboxed.
    pub sandbox: Option<String>,
    /// Where the gateway keeps its state, reported to admins.
    pub state_dir: String,
    /// The config file path, reported to admins.
    pub config_path: String,
    /// The port the runtime listens on, reported in `system.info`.
    pub port: u16,
    /// Approve first pairings and role upgrades of devices on this host without an operator
    /// (`gateway.nodes.pairing.autoApproveLocal`).
    pub auto_approve_local: bool,
    /// The failed-authentication limiter (`gateway.auth.rateLimit`).
    pub rate_limit: crate::rate_limit::RateLimitConfig,
    /// Browser origins allowed besides the gateway's own (`gateway.controlUi.allowedOrigins`;
    /// `*` allows any).
    pub allowed_origins: Vec<String>,
    /// The Control UI bundle served over HTTP (a folder the runtime reads), if any.
    pub control_ui_root: Option<String>,
    /// Where the Control UI is served: `""` (the root) or a path such as `/ui`.
    pub control_ui_base_path: String,
    /// `gateway.reload.mode`.
    pub reload_mode: crate::reload::ReloadMode,
    /// Reverse proxies whose forwarding headers are believed (`gateway.trustedProxies`: addresses
    /// or CIDR ranges).
    pub trusted_proxies: Vec<String>,
    /// Identity headers for auth mode `trusted-proxy` (`gateway.auth.trustedProxy`).
    pub trusted_proxy: TrustedProxyConfig,
    /// What the command line fixed, which a reloaded file does not override.
    pub overrides: Overrides,
}

pub use crate::settings::TrustedProxyConfig;

/// Whether `ip` is one of `list` (addresses or CIDR ranges such as `10.0.0.0/8`).
pub fn ip_in_list(ip: std::net::IpAddr, list: &[String]) -> bool {
    use std::net::IpAddr;
    let ip = crate::rate_limit::canonical_ip(ip);
    list.iter().any(|entry| {
        let (addr, bits) = match entry.split_once('/') {
            Some((a, b)) => (a, b.parse::<u32>().ok()),
            None => (entry.as_str(), None),
        };
        let Ok(net) = addr.trim().parse::<IpAddr>() else {
            return false;
        };
        match (ip, crate::rate_limit::canonical_ip(net)) {
            (IpAddr::V4(a), IpAddr::V4(n)) => {
                let bits = bits.unwrap_or(32).min(32);
                let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
                u32::from(a) & mask == u32::from(n) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(n)) => {
                let bits = bits.unwrap_or(128).min(128);
                let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
                u128::from(a) & mask == u128::from(n) & mask
            }
            _ => false,
        }
    })
}

/// Settings given on the command line (they win over the file) and secrets from the environment
/// (the file wins over them), captured at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub auth_mode: Option<clawgate_proto::auth::AuthMode>,
    pub token: Option<String>,
    pub password: Option<String>,
    /// `--control-ui`: the Control UI bundle folder, over `gateway.controlUi.root`.
    pub control_ui_root: Option<String>,
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
    /// Where request session keys point under this config's default agent, main key and scope.
    pub fn session_routing(&self) -> clawgate_proto::session::SessionRouting {
        clawgate_proto::session::SessionRouting {
            default_agent: self.tool_policy.default_agent.clone().unwrap_or_default(),
            main_key: self.main_key.clone(),
            scope: self.session_scope,
        }
    }

    /// The exec policy of `agent`: its own, else the gateway-wide one.
    pub fn exec_policy_of(&self, agent: &str) -> crate::approvals::ExecPolicy {
        self.agent_exec_policies.get(agent).copied().unwrap_or(self.exec_policy)
    }

    /// Settings with the protocol's default limits and the given auth.
    pub fn new(auth: SharedSecretConfig) -> Self {
        GatewayConfig {
            auth,
            server_version: env!("CARGO_PKG_VERSION").to_owned(),
            host_name: "localhost".to_owned(),
            handshake_timeout_ms: HANDSHAKE_TIMEOUT_MS,
            http_idle_timeout_ms: 60_000,
            http_head_timeout_ms: 10_000,
            http_body_timeout_ms: 30_000,
            tick_interval_ms: TICK_INTERVAL_MS,
            close_grace_ms: 1_000,
            shutdown_grace_ms: 2_000,
            restart_expected_ms: 1_500,
            max_preauth_payload: MAX_PREAUTH_PAYLOAD_BYTES,
            max_payload: MAX_PAYLOAD_BYTES,
            max_buffered_bytes: MAX_BUFFERED_BYTES,
            max_preauth_per_ip: MAX_PREAUTH_CONNECTIONS_PER_IP,
            health_refresh_interval_ms: HEALTH_REFRESH_INTERVAL_MS,
            main_key: "main".to_owned(),
            session_scope: clawgate_proto::session::SessionScope::PerSender,
            session_prune_after_ms: SESSION_PRUNE_AFTER_MS,
            tool_policy: crate::tool_policy::ToolPolicy::default(),
            models: crate::models::ModelCatalog::default(),
            cron: crate::scheduler::CronSettings::default(),
            hooks: crate::hooks::HooksConfig::default(),
            channels: crate::channel_config::ChannelsConfig::default(),
            host_time_zone: "UTC".to_owned(),
            exec_policy: crate::approvals::ExecPolicy::default(),
            agent_exec_policies: std::collections::BTreeMap::new(),
            sandbox: None,
            state_dir: String::new(),
            config_path: String::new(),
            port: 18789,
            auto_approve_local: true,
            rate_limit: crate::rate_limit::RateLimitConfig::default(),
            allowed_origins: Vec::new(),
            control_ui_root: None,
            control_ui_base_path: String::new(),
            reload_mode: crate::reload::ReloadMode::Hybrid,
            trusted_proxies: Vec::new(),
            trusted_proxy: TrustedProxyConfig::default(),
            overrides: Overrides::default(),
        }
    }

    /// Takes every setting the configuration file decides, over what the command line fixed in
    /// [`GatewayConfig::overrides`]. The one place the file becomes a configuration: the binary
    /// calls it at start and the engine on each reload (which then applies what is hot).
    pub fn apply_file(&mut self, file: &crate::settings::FileSettings) {
        if let Some(auth) = self.overrides.effective_auth(file) {
            self.auth = auth;
        }
        self.auto_approve_local = self
            .overrides
            .auto_approve_local
            .or(file.auto_approve_local)
            .unwrap_or(true);
        self.rate_limit = file.rate_limit.unwrap_or_default();
        self.allowed_origins = file.allowed_origins.clone();
        self.trusted_proxies = file.trusted_proxies.clone();
        self.trusted_proxy = file.trusted_proxy.clone();
        self.reload_mode = file
            .reload_mode
            .as_deref()
            .and_then(crate::reload::ReloadMode::parse)
            .unwrap_or(crate::reload::ReloadMode::Hybrid);
        self.main_key = file
            .main_key
            .clone()
            .unwrap_or_else(|| clawgate_proto::session::DEFAULT_MAIN_KEY.to_owned());
        self.session_scope = file.session_scope.unwrap_or_default();
        self.session_prune_after_ms = file.session_prune_after_ms.unwrap_or(SESSION_PRUNE_AFTER_MS);
        self.tool_policy = file.tool_policy.clone();
        self.models = file.models.clone();
        self.exec_policy = file.exec_policy;
        self.agent_exec_policies = file.agent_exec_policies.clone();
        self.cron = file.cron.clone();
        self.hooks = file.hooks.clone();
        self.channels = file.channels.clone();
        self.control_ui_base_path = file
            .control_ui_base_path
            .as_deref()
            .map(|p| p.trim_end_matches('/').to_owned())
            .filter(|p| p.is_empty() || p.starts_with('/'))
            .unwrap_or_default();
        self.control_ui_root = self
            .overrides
            .control_ui_root
            .clone()
            .or_else(|| file.control_ui_root.clone());
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

#[cfg(test)]
mod tests {
    use super::ip_in_list;

    #[test]
    fn addresses_and_ranges_match() {
        let list = vec!["10.0.0.0/8".to_owned(), "192.0.2.7".to_owned(), "fd00::/8".to_owned()];
        assert!(ip_in_list("10.1.2.3".parse().unwrap(), &list));
        assert!(
            ip_in_list("::ffff:10.1.2.3".parse().unwrap(), &list),
            "a mapped address is its IPv4 form"
        );
        assert!(ip_in_list("192.0.2.7".parse().unwrap(), &list));
        assert!(!ip_in_list("192.0.2.8".parse().unwrap(), &list));
        assert!(ip_in_list("fd12::1".parse().unwrap(), &list));
        assert!(!ip_in_list("11.0.0.1".parse().unwrap(), &list));
        assert!(!ip_in_list("10.0.0.1".parse().unwrap(), &["not an address".to_owned()]));
    }

    #[test]
    fn secrets_come_from_the_command_line_then_the_file_then_the_environment() {
        use super::Overrides;
        use crate::settings::FileSettings;
        use clawgate_proto::auth::AuthMode;
        let file = FileSettings {
            auth_token: Some("file".into()),
            ..Default::default()
        };
        let env_only = Overrides {
            env_token: Some("env".into()),
            ..Default::default()
        };
        assert_eq!(env_only.effective_auth(&file).unwrap().token.as_deref(), Some("file"));
        assert_eq!(
            env_only
                .effective_auth(&FileSettings::default())
                .unwrap()
                .token
                .as_deref(),
            Some("env")
        );
        let flag = Overrides {
            token: Some("flag".into()),
            ..env_only.clone()
        };
        assert_eq!(flag.effective_auth(&file).unwrap().token.as_deref(), Some("flag"));
        let password_file = FileSettings {
            auth_password: Some("pw".into()),
            ..Default::default()
        };
        assert_eq!(
            Overrides::default().effective_auth(&password_file).unwrap().mode,
            AuthMode::Password
        );
        let mode_file = FileSettings {
            auth_mode: Some("none".into()),
            ..Default::default()
        };
        assert_eq!(env_only.effective_auth(&mode_file).unwrap().mode, AuthMode::None);
        assert!(Overrides::default().effective_auth(&FileSettings::default()).is_none());
    }
}
