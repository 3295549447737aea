//! Shared-secret authentication of a `connect`: the pure part that needs only the configured mode
//! and secret. Rate limiting, device tokens and pairing need gateway state and live in the engine.

use crate::connect::{ClientId, ClientMode, ConnectAuth};
use crate::device::secrets_equal;
use std::fmt;

/// How the gateway authenticates shared-secret callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMode {
    /// No shared secret: every caller passes this stage.
    None,
    /// A shared token (`gateway.auth.token`).
    Token,
    /// A shared password (`gateway.auth.password`).
    Password,
    /// Identity headers from a trusted reverse proxy.
    TrustedProxy,
}

impl AuthMode {
    /// The configuration spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            AuthMode::None => "none",
            AuthMode::Token => "token",
            AuthMode::Password => "password",
            AuthMode::TrustedProxy => "trusted-proxy",
        }
    }

    /// Parses the configuration spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => AuthMode::None,
            "token" => AuthMode::Token,
            "password" => AuthMode::Password,
            "trusted-proxy" => AuthMode::TrustedProxy,
            _ => return None,
        })
    }
}

impl fmt::Display for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a connection authenticated, as reported in `hello-ok.auth.method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// Auth mode `none`.
    None,
    /// Shared token.
    Token,
    /// Shared password.
    Password,
    /// Per-device token.
    DeviceToken,
    /// One-time setup token.
    BootstrapToken,
    /// Trusted reverse proxy.
    TrustedProxy,
}

impl AuthMethod {
    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::Token => "token",
            AuthMethod::Password => "password",
            AuthMethod::DeviceToken => "device-token",
            AuthMethod::BootstrapToken => "bootstrap-token",
            AuthMethod::TrustedProxy => "trusted-proxy",
        }
    }

    /// Whether this is a shared-secret method (token or password), which a secret rotation revokes.
    pub const fn is_shared_secret(self) -> bool {
        matches!(self, AuthMethod::Token | AuthMethod::Password)
    }
}

/// Why authentication failed; each maps to the reference server's `authReason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// Token mode, no token offered.
    TokenMissing,
    /// Token mode, wrong token.
    TokenMismatch,
    /// Token mode without a configured token.
    TokenMissingConfig,
    /// Password mode, no password offered.
    PasswordMissing,
    /// Password mode, wrong password.
    PasswordMismatch,
    /// Password mode without a configured password.
    PasswordMissingConfig,
    /// Too many failures from this caller.
    RateLimited {
        /// Time until the lock ends.
        retry_after_ms: u64,
    },
    /// The offered device token is not this device's.
    DeviceTokenMismatch,
    /// The device token does not cover the requested role or scopes.
    ScopeMismatch,
    /// The setup token is invalid or expired.
    BootstrapTokenInvalid,
    /// A trusted-proxy failure, with the reference reason string (e.g. `trusted_proxy_untrusted_source`).
    TrustedProxy(String),
    /// Any other failure.
    Unauthorized,
}

impl AuthFailure {
    /// The `authReason` string.
    pub fn reason(&self) -> &str {
        match self {
            AuthFailure::TokenMissing => "token_missing",
            AuthFailure::TokenMismatch => "token_mismatch",
            AuthFailure::TokenMissingConfig => "token_missing_config",
            AuthFailure::PasswordMissing => "password_missing",
            AuthFailure::PasswordMismatch => "password_mismatch",
            AuthFailure::PasswordMissingConfig => "password_missing_config",
            AuthFailure::RateLimited { .. } => "rate_limited",
            AuthFailure::DeviceTokenMismatch => "device_token_mismatch",
            AuthFailure::ScopeMismatch => "scope_mismatch",
            AuthFailure::BootstrapTokenInvalid => "bootstrap_token_invalid",
            AuthFailure::TrustedProxy(r) => r,
            AuthFailure::Unauthorized => "unauthorized",
        }
    }

    /// The `details.code` string.
    pub fn detail_code(&self) -> &'static str {
        match self {
            AuthFailure::TokenMissing => "AUTH_TOKEN_MISSING",
            AuthFailure::TokenMismatch => "AUTH_TOKEN_MISMATCH",
            AuthFailure::TokenMissingConfig => "AUTH_TOKEN_NOT_CONFIGURED",
            AuthFailure::PasswordMissing => "AUTH_PASSWORD_MISSING",
            AuthFailure::PasswordMismatch => "AUTH_PASSWORD_MISMATCH",
            AuthFailure::PasswordMissingConfig => "AUTH_PASSWORD_NOT_CONFIGURED",
            AuthFailure::RateLimited { .. } => "AUTH_RATE_LIMITED",
            AuthFailure::DeviceTokenMismatch => "AUTH_DEVICE_TOKEN_MISMATCH",
            AuthFailure::ScopeMismatch => "AUTH_SCOPE_MISMATCH",
            AuthFailure::BootstrapTokenInvalid => "AUTH_BOOTSTRAP_TOKEN_INVALID",
            AuthFailure::TrustedProxy(r) if r.starts_with("trusted_proxy_missing_header") => {
                "AUTH_IDENTITY_HEADER_REQUIRED"
            }
            AuthFailure::TrustedProxy(_) | AuthFailure::Unauthorized => "AUTH_UNAUTHORIZED",
        }
    }

    /// Whether this failure counts toward the failed-attempt limiter (missing credentials do not).
    pub fn counts_as_attempt(&self) -> bool {
        matches!(
            self,
            AuthFailure::TokenMismatch
                | AuthFailure::PasswordMismatch
                | AuthFailure::DeviceTokenMismatch
                | AuthFailure::BootstrapTokenInvalid
        )
    }

    /// `details.recommendedNextStep`.
    pub fn recommended_next_step(&self, can_retry_with_device_token: bool) -> &'static str {
        if can_retry_with_device_token {
            return "retry_with_device_token";
        }
        match self {
            AuthFailure::TokenMissing
            | AuthFailure::TokenMissingConfig
            | AuthFailure::PasswordMissing
            | AuthFailure::PasswordMissingConfig => "update_auth_configuration",
            AuthFailure::TokenMismatch
            | AuthFailure::PasswordMismatch
            | AuthFailure::DeviceTokenMismatch
            | AuthFailure::BootstrapTokenInvalid => "update_auth_credentials",
            AuthFailure::RateLimited { .. } => "wait_then_retry",
            _ => "review_auth_configuration",
        }
    }

    /// The error message, whose hint depends on the kind of client.
    pub fn message(&self, client_id: ClientId, client_mode: ClientMode) -> String {
        let kind = ClientKind::of(client_id, client_mode);
        let token_hint = match kind {
            ClientKind::Cli => "use this gateway's gateway.auth.token or pair the device",
            ClientKind::Browser => "open the dashboard URL and paste the token in Control UI settings",
            ClientKind::Other => "provide gateway auth token",
        };
        let password_hint = match kind {
            ClientKind::Cli => "use this gateway's gateway.auth.password or pair the device",
            ClientKind::Browser => "enter the password in Control UI settings",
            ClientKind::Other => "provide gateway auth password",
        };
        match self {
            AuthFailure::TokenMissing => format!("unauthorized: gateway token missing ({token_hint})"),
            AuthFailure::TokenMismatch => format!("unauthorized: gateway token mismatch ({token_hint})"),
            AuthFailure::TokenMissingConfig => {
                "unauthorized: gateway token not configured on gateway (set gateway.auth.token)".into()
            }
            AuthFailure::PasswordMissing => format!("unauthorized: gateway password missing ({password_hint})"),
            AuthFailure::PasswordMismatch => format!("unauthorized: gateway password mismatch ({password_hint})"),
            AuthFailure::PasswordMissingConfig => {
                "unauthorized: gateway password not configured on gateway (set gateway.auth.password)".into()
            }
            AuthFailure::RateLimited { .. } => {
                "unauthorized: too many failed authentication attempts (retry later)".into()
            }
            AuthFailure::DeviceTokenMismatch => {
                "unauthorized: device token mismatch (rotate/reissue device token)".into()
            }
            AuthFailure::ScopeMismatch => {
                "unauthorized: device token does not cover the requested role or scopes (pair the device again)".into()
            }
            AuthFailure::BootstrapTokenInvalid => {
                "unauthorized: bootstrap token invalid or expired (scan a fresh setup code)".into()
            }
            AuthFailure::TrustedProxy(_) | AuthFailure::Unauthorized => "unauthorized".into(),
        }
    }
}

#[derive(Clone, Copy)]
enum ClientKind {
    Cli,
    Browser,
    Other,
}

impl ClientKind {
    fn of(id: ClientId, mode: ClientMode) -> Self {
        if id == ClientId::Cli || mode == ClientMode::Cli {
            ClientKind::Cli
        } else if matches!(id, ClientId::ControlUi | ClientId::WebchatUi)
            || mode == ClientMode::Webchat
            || id == ClientId::Webchat
        {
            ClientKind::Browser
        } else {
            ClientKind::Other
        }
    }
}

/// The configured shared secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedSecretConfig {
    /// The auth mode.
    pub mode: AuthMode,
    /// The token for [`AuthMode::Token`].
    pub token: Option<String>,
    /// The password for [`AuthMode::Password`].
    pub password: Option<String>,
}

impl SharedSecretConfig {
    /// Checks the credentials a `connect` offers against the shared secret. Trusted-proxy
    /// identities are checked by the caller, who sees the request headers; here that mode passes.
    pub fn check(&self, auth: Option<&ConnectAuth>) -> Result<AuthMethod, AuthFailure> {
        let offered_token = auth.and_then(|a| a.token.as_deref()).filter(|t| !t.is_empty());
        let offered_password = auth.and_then(|a| a.password.as_deref()).filter(|p| !p.is_empty());
        match self.mode {
            AuthMode::None => Ok(AuthMethod::None),
            AuthMode::TrustedProxy => Ok(AuthMethod::TrustedProxy),
            AuthMode::Token => {
                let Some(expected) = self.token.as_deref().filter(|t| !t.is_empty()) else {
                    return Err(AuthFailure::TokenMissingConfig);
                };
                match offered_token {
                    None => Err(AuthFailure::TokenMissing),
                    Some(t) if secrets_equal(t, expected) => Ok(AuthMethod::Token),
                    Some(_) => Err(AuthFailure::TokenMismatch),
                }
            }
            AuthMode::Password => {
                let Some(expected) = self.password.as_deref().filter(|p| !p.is_empty()) else {
                    return Err(AuthFailure::PasswordMissingConfig);
                };
                match offered_password {
                    None => Err(AuthFailure::PasswordMissing),
                    Some(p) if secrets_equal(p, expected) => Ok(AuthMethod::Password),
                    Some(_) => Err(AuthFailure::PasswordMismatch),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_cfg() -> SharedSecretConfig {
        SharedSecretConfig {
            mode: AuthMode::Token,
            token: Some("secret".into()),
            password: None,
        }
    }

    fn offer(token: Option<&str>, password: Option<&str>) -> ConnectAuth {
        ConnectAuth {
            token: token.map(Into::into),
            password: password.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn token_mode_outcomes() {
        let cfg = token_cfg();
        assert_eq!(cfg.check(Some(&offer(Some("secret"), None))), Ok(AuthMethod::Token));
        assert_eq!(
            cfg.check(Some(&offer(Some("nope"), None))),
            Err(AuthFailure::TokenMismatch)
        );
        assert_eq!(cfg.check(None), Err(AuthFailure::TokenMissing));
        assert_eq!(cfg.check(Some(&offer(Some(""), None))), Err(AuthFailure::TokenMissing));
        let unconfigured = SharedSecretConfig {
            token: None,
            ..token_cfg()
        };
        assert_eq!(
            unconfigured.check(Some(&offer(Some("x"), None))),
            Err(AuthFailure::TokenMissingConfig)
        );
    }

    #[test]
    fn password_mode_ignores_tokens() {
        let cfg = SharedSecretConfig {
            mode: AuthMode::Password,
            token: None,
            password: Some("pw".into()),
        };
        assert_eq!(
            cfg.check(Some(&offer(Some("pw"), None))),
            Err(AuthFailure::PasswordMissing)
        );
        assert_eq!(
            cfg.check(Some(&offer(Some("pw"), Some("pw")))),
            Ok(AuthMethod::Password)
        );
        assert_eq!(
            cfg.check(Some(&offer(None, Some("px")))),
            Err(AuthFailure::PasswordMismatch)
        );
    }

    #[test]
    fn missing_credentials_do_not_count_as_attempts() {
        assert!(!AuthFailure::TokenMissing.counts_as_attempt());
        assert!(AuthFailure::TokenMismatch.counts_as_attempt());
    }

    #[test]
    fn cli_hint_matches_the_captured_message() {
        assert_eq!(
            AuthFailure::TokenMismatch.message(ClientId::Cli, ClientMode::Cli),
            "unauthorized: gateway token mismatch (use this gateway's gateway.auth.token or pair the device)"
        );
    }
}
