//! Admission: who may open a WebSocket and who passes the shared-secret check, on the socket and
//! over HTTP. This part owns the count of unauthenticated sockets per client address, the
//! single-use nonces issued over HTTP, and the failed-attempt limiter. It reads the
//! configuration and decides; the gateway acts on the decision.

use crate::config::{GatewayConfig, HTTP_NONCE_TTL_MS, MAX_HTTP_NONCES};
use crate::rate_limit::{canonical_ip, limiter_key, AuthLimiter, CredentialClass, RateLimitConfig};
use clawgate_proto::auth::{AuthFailure, AuthMethod, SharedSecretConfig};
use clawgate_proto::handshake::{AcceptedConnect, ConnectRejection, NonceRedeemer};
use clawgate_proto::http::{Request, Response};
use clawgate_proto::ws::{accept_upgrade, UpgradeAccepted};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

pub(crate) fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

const FORWARDING_HEADERS: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
];

/// A request straight from this host: a loopback peer that names no one it forwards for.
pub(crate) fn is_local_direct(peer: SocketAddr, request: &Request) -> bool {
    is_loopback(peer.ip()) && !FORWARDING_HEADERS.iter().any(|h| request.has_header(h))
}

/// Whether an origin's host is a loopback name or address.
fn origin_is_loopback(origin: &str) -> bool {
    let rest = origin.split_once("://").map_or(origin, |(_, r)| r);
    let host = rest.split('/').next().unwrap_or("");
    let host = if let Some(stripped) = host.strip_prefix('[') {
        stripped.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(is_loopback)
}

/// Whether `Authorization: Bearer <secret>` carries the shared token or password of `auth`.
pub(crate) fn bearer_matches(auth: &SharedSecretConfig, request: &Request) -> bool {
    let Some(value) = request.header("authorization") else {
        return false;
    };
    let Some((scheme, secret)) = value.split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return false;
    }
    let offered = clawgate_proto::connect::ConnectAuth {
        token: Some(secret.trim().to_owned()),
        password: Some(secret.trim().to_owned()),
        ..Default::default()
    };
    matches!(auth.check(Some(&offered)), Ok(AuthMethod::Token | AuthMethod::Password))
}

/// What the upgrade request said about the client, kept for the `connect` that follows.
pub(crate) struct UpgradeInfo {
    pub local_direct: bool,
    /// The client's address: the peer, or what a trusted proxy says in `X-Forwarded-For`.
    pub client_ip: IpAddr,
    /// Whether the peer is a trusted proxy.
    pub via_trusted_proxy: bool,
    /// Identity headers (lower-cased name, value), kept for trusted-proxy auth.
    pub identity_headers: Vec<(String, String)>,
    /// `http://<address the socket was accepted on>`: the gateway's own origin.
    pub own_origin: String,
    pub origin: Option<String>,
    pub host: Option<String>,
}

impl UpgradeInfo {
    /// Reads the upgrade `request` of `peer`, accepted on `local`.
    pub(crate) fn read(config: &GatewayConfig, peer: SocketAddr, local: SocketAddr, request: &Request) -> UpgradeInfo {
        let via_trusted_proxy = crate::config::ip_in_list(peer.ip(), &config.trusted_proxies);
        // Forwarding headers count only from a trusted proxy; the leftmost address is the client.
        let forwarded_ip = request
            .header("x-forwarded-for")
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok());
        let client_ip = if via_trusted_proxy {
            forwarded_ip.unwrap_or(peer.ip())
        } else {
            peer.ip()
        };
        let identity_headers = config
            .trusted_proxy
            .user_header
            .iter()
            .chain(config.trusted_proxy.required_headers.iter())
            .filter_map(|name| request.header(name).map(|v| (name.clone(), v.to_owned())))
            .collect();
        UpgradeInfo {
            client_ip,
            via_trusted_proxy,
            identity_headers,
            local_direct: is_local_direct(peer, request),
            own_origin: format!("http://{local}"),
            origin: request.header("origin").map(str::to_owned),
            host: request.header("host").map(str::to_owned),
        }
    }

    /// Whether a browser origin may connect: the gateway's own origin, one listed in
    /// `gateway.controlUi.allowedOrigins` (or `*`), or a loopback origin on a direct-local
    /// connection (or matching a loopback `Host`). `null`, empty or absent origins never are.
    pub(crate) fn origin_allowed(&self, config: &GatewayConfig) -> bool {
        match self.origin.as_deref() {
            None | Some("null") | Some("") => false,
            Some(origin) => {
                let origin = origin.trim_end_matches('/');
                let same_host = self.host.as_deref().is_some_and(|h| {
                    origin
                        .split_once("://")
                        .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(h))
                });
                let own = origin.eq_ignore_ascii_case(&self.own_origin)
                    || origin.eq_ignore_ascii_case(&self.own_origin.replacen("http://", "https://", 1));
                let listed = config
                    .allowed_origins
                    .iter()
                    .any(|o| o == "*" || o.trim_end_matches('/').eq_ignore_ascii_case(origin));
                own || listed || ((self.local_direct || same_host) && origin_is_loopback(origin))
            }
        }
    }

    /// Auth mode `trusted-proxy`: the peer must be a trusted proxy (not loopback unless allowed)
    /// and vouch for a user with the configured headers.
    fn check_trusted_proxy(&self, config: &GatewayConfig, peer: SocketAddr) -> Result<(), AuthFailure> {
        let tp = &config.trusted_proxy;
        if !self.via_trusted_proxy {
            return Err(AuthFailure::TrustedProxy("trusted_proxy_untrusted_source".into()));
        }
        if is_loopback(peer.ip()) && !tp.allow_loopback {
            return Err(AuthFailure::TrustedProxy("trusted_proxy_loopback_source".into()));
        }
        let header = |name: &str| {
            self.identity_headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        for required in &tp.required_headers {
            if header(required).is_none() {
                return Err(AuthFailure::TrustedProxy(format!(
                    "trusted_proxy_missing_header_{required}"
                )));
            }
        }
        let Some(user) = tp.user_header.as_deref().and_then(header) else {
            return Err(AuthFailure::TrustedProxy("trusted_proxy_user_missing".into()));
        };
        if !tp.allow_users.is_empty() && !tp.allow_users.iter().any(|u| u == user) {
            return Err(AuthFailure::TrustedProxy("trusted_proxy_user_not_allowed".into()));
        }
        Ok(())
    }
}

/// Nonces issued over HTTP for devices to sign instead of the socket's challenge nonce.
#[derive(Default)]
pub(crate) struct HttpNonces {
    issued: VecDeque<(String, u64)>,
}

impl NonceRedeemer for HttpNonces {
    fn redeem(&mut self, nonce: &str, now_ms: u64) -> bool {
        let Some(pos) = self.issued.iter().position(|(n, _)| n == nonce) else {
            return false;
        };
        let (_, issued_at) = self.issued.remove(pos).unwrap_or_default();
        now_ms.saturating_sub(issued_at) <= HTTP_NONCE_TTL_MS
    }
}

/// Why a WebSocket upgrade was refused: the HTTP answer, and what to log and count.
pub(crate) struct UpgradeRefusal {
    pub response: Response,
    pub log: Option<String>,
    /// The handshake metric's outcome label.
    pub metric: Option<&'static str>,
}

/// The admission state of one gateway.
pub(crate) struct Admission {
    preauth_per_ip: HashMap<IpAddr, usize>,
    http_nonces: HttpNonces,
    limiter: AuthLimiter,
}

impl Admission {
    pub(crate) fn new(rate_limit: RateLimitConfig) -> Admission {
        Admission {
            preauth_per_ip: HashMap::new(),
            http_nonces: HttpNonces::default(),
            limiter: AuthLimiter::new(rate_limit),
        }
    }

    /// New limits of the failed-attempt limiter (a reload).
    pub(crate) fn set_rate_limit(&mut self, rate_limit: RateLimitConfig) {
        self.limiter.config = rate_limit;
    }

    /// Whether `ip` may open one more unauthenticated socket.
    pub(crate) fn may_open(&self, ip: IpAddr, max_per_ip: usize) -> bool {
        self.preauth_per_ip.get(&canonical_ip(ip)).copied().unwrap_or(0) < max_per_ip
    }

    /// Whether a WebSocket upgrade from `peer` may go ahead. When it may, its socket counts as
    /// unauthenticated from now on, and the answer is the `101` and what the request says about
    /// its client; when not, the HTTP answer that refuses it.
    pub(crate) fn admit_upgrade(
        &mut self,
        config: &GatewayConfig,
        stopping: bool,
        peer: SocketAddr,
        local: SocketAddr,
        request: &Request,
    ) -> Result<(UpgradeAccepted, UpgradeInfo), UpgradeRefusal> {
        let ip = canonical_ip(peer.ip());
        let refuse = |status: u16, text: &str| UpgradeRefusal {
            response: Response::text(status, text),
            log: None,
            metric: None,
        };
        if stopping {
            return Err(refuse(503, "Gateway stopping"));
        }
        if !self.may_open(ip, config.max_preauth_per_ip) {
            return Err(UpgradeRefusal {
                log: Some(format!("refused upgrade from {ip}: too many unauthenticated sockets")),
                ..refuse(503, "Too many unauthenticated sockets")
            });
        }
        let accepted = accept_upgrade(request).map_err(|response| UpgradeRefusal {
            response,
            log: None,
            metric: None,
        })?;
        let upgrade = UpgradeInfo::read(config, peer, local, request);
        if upgrade.origin.is_some() && !upgrade.origin_allowed(config) {
            // A browser page from a foreign origin never gets a WebSocket.
            return Err(UpgradeRefusal {
                metric: Some("origin_refused"),
                ..refuse(403, "Origin not allowed")
            });
        }
        self.opened(ip);
        Ok((accepted, upgrade))
    }

    /// An unauthenticated socket of `ip` opened.
    pub(crate) fn opened(&mut self, ip: IpAddr) {
        *self.preauth_per_ip.entry(canonical_ip(ip)).or_insert(0) += 1;
    }

    /// An unauthenticated socket of `ip` authenticated or closed.
    pub(crate) fn released(&mut self, ip: IpAddr) {
        let ip = canonical_ip(ip);
        if let Some(n) = self.preauth_per_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.preauth_per_ip.remove(&ip);
            }
        }
    }

    /// Records `nonce` as issued at `now_ms` (at most [`MAX_HTTP_NONCES`] outstanding, oldest
    /// dropped); returns it with its expiry.
    pub(crate) fn issue_nonce(&mut self, nonce: String, now_ms: u64) -> (String, u64) {
        let nonces = &mut self.http_nonces.issued;
        nonces.retain(|(_, at)| now_ms.saturating_sub(*at) <= HTTP_NONCE_TTL_MS);
        if nonces.len() >= MAX_HTTP_NONCES {
            nonces.pop_front();
        }
        nonces.push_back((nonce.clone(), now_ms));
        (nonce, now_ms + HTTP_NONCE_TTL_MS)
    }

    /// The nonces a device proof may redeem instead of the challenge's.
    pub(crate) fn nonces(&mut self) -> &mut HttpNonces {
        &mut self.http_nonces
    }

    /// The HTTP bearer check with the failed-attempt limiter: `Err(None)` is a wrong or missing
    /// secret, `Err(Some(ms))` a client locked out for that long. Clean requests from this host
    /// are exempt, as on the WebSocket.
    pub(crate) fn check_http_bearer(
        &mut self,
        config: &GatewayConfig,
        now_ms: u64,
        peer: SocketAddr,
        request: &Request,
    ) -> Result<(), Option<u64>> {
        let exempt = self.limiter.config.exempt_loopback && is_local_direct(peer, request);
        let key = limiter_key(CredentialClass::SharedSecret, peer.ip(), request.header("origin"));
        if !exempt {
            self.limiter.check(&key, now_ms).map_err(Some)?;
        }
        if bearer_matches(&config.auth, request) {
            self.limiter.reset(&key);
            return Ok(());
        }
        if !exempt {
            self.limiter.record_failure(&key, now_ms);
        }
        Err(None)
    }

    /// How a `connect` authenticates: the browser origin first, then the shared secret (or a
    /// trusted proxy), and, for a device whose shared secret failed, its own device token,
    /// which `verify_device_token` checks. Failed attempts are counted per client (per origin for
    /// browsers), device tokens in a bucket of their own; a clean request from this host is
    /// exempt, a browser never is.
    pub(crate) fn authenticate(
        &mut self,
        config: &GatewayConfig,
        now_ms: u64,
        peer: SocketAddr,
        accepted: &AcceptedConnect,
        upgrade: &UpgradeInfo,
        verify_device_token: Option<&mut dyn FnMut(&str) -> bool>,
    ) -> Result<AuthMethod, ConnectRejection> {
        use clawgate_proto::connect::{ClientId, ClientMode};
        let client = &accepted.params.client;
        let browser =
            client.id == ClientId::ControlUi || client.mode == ClientMode::Webchat || client.id == ClientId::WebchatUi;
        if (upgrade.origin.is_some() || browser) && !upgrade.origin_allowed(config) {
            let reason = match upgrade.origin.as_deref() {
                None | Some("null") | Some("") => "origin missing or invalid",
                Some(_) => "origin not allowed",
            };
            return Err(ConnectRejection::OriginNotAllowed { reason: reason.into() });
        }
        let exempt = self.limiter.config.exempt_loopback && upgrade.local_direct && upgrade.origin.is_none();
        let origin = upgrade.origin.as_deref();
        let secret_key = limiter_key(CredentialClass::SharedSecret, upgrade.client_ip, origin);
        if !exempt {
            if let Err(retry_after_ms) = self.limiter.check(&secret_key, now_ms) {
                return Err(accepted.unauthorized(AuthFailure::RateLimited { retry_after_ms }));
            }
        }
        let secret = config.auth.check(accepted.params.auth.as_ref()).and_then(|m| {
            if m == AuthMethod::TrustedProxy {
                upgrade.check_trusted_proxy(config, peer)?;
            }
            Ok(m)
        });
        let failure = match secret {
            Ok(method) => {
                self.limiter.reset(&secret_key);
                return Ok(method);
            }
            Err(failure) => failure,
        };
        // A failed shared secret counts only if nothing else authenticates the connection (a
        // device may offer its device token in `auth.token`).
        let count_secret_failure = |limiter: &mut AuthLimiter| {
            if failure.counts_as_attempt() && !exempt {
                limiter.record_failure(&secret_key, now_ms);
            }
        };
        let Some(verify) = verify_device_token else {
            count_secret_failure(&mut self.limiter);
            return Err(accepted.unauthorized(failure));
        };
        // The device may authenticate with its own token (`auth.deviceToken`, else `auth.token`).
        let auth = accepted.params.auth.as_ref();
        let explicit = auth.and_then(|a| a.device_token.as_deref()).filter(|t| !t.is_empty());
        let candidate = explicit.or(auth.and_then(|a| a.token.as_deref()).filter(|t| !t.is_empty()));
        let token_key = limiter_key(CredentialClass::DeviceToken, upgrade.client_ip, origin);
        if candidate.is_some() && !exempt {
            if let Err(retry_after_ms) = self.limiter.check(&token_key, now_ms) {
                return Err(accepted.unauthorized(AuthFailure::RateLimited { retry_after_ms }));
            }
        }
        match candidate.map(verify) {
            Some(true) => {
                self.limiter.reset(&token_key);
                Ok(AuthMethod::DeviceToken)
            }
            Some(false) => {
                if !exempt {
                    self.limiter.record_failure(&token_key, now_ms);
                }
                count_secret_failure(&mut self.limiter);
                if explicit.is_some() {
                    return Err(accepted.unauthorized(AuthFailure::DeviceTokenMismatch));
                }
                Err(accepted.unauthorized(failure))
            }
            None => {
                count_secret_failure(&mut self.limiter);
                Err(accepted.unauthorized(failure))
            }
        }
    }
}
