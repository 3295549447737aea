//! The failed-authentication limiter: too many failures from one client within a window lock it
//! out for a while. Keys are a credential class plus the canonical client address (or, for
//! browsers, the origin), so a device-token guesser and a shared-secret guesser are counted apart.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

/// Most keys tracked; past this the entries that matter least are dropped, so a flood of distinct
/// addresses cannot grow memory without bound.
pub const MAX_TRACKED_KEYS: usize = 10_000;

/// The limiter's settings (`gateway.auth.rateLimit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Failures within the window that trigger a lock.
    pub max_attempts: usize,
    /// The sliding window.
    pub window_ms: u64,
    /// How long a lock lasts.
    pub lockout_ms: u64,
    /// Whether clean direct-loopback requests are exempt.
    pub exempt_loopback: bool,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            max_attempts: 10,
            window_ms: 60_000,
            lockout_ms: 300_000,
            exempt_loopback: true,
        }
    }
}

/// What kind of credential failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialClass {
    /// The shared token or password.
    SharedSecret,
    /// A per-device token.
    DeviceToken,
}

impl CredentialClass {
    fn as_str(self) -> &'static str {
        match self {
            CredentialClass::SharedSecret => "shared-secret",
            CredentialClass::DeviceToken => "device-token",
        }
    }
}

/// The address an attempt is counted against: IPv4-mapped IPv6 addresses are the same client as
/// their IPv4 form.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The limiter key of an attempt. A browser (a request with an `Origin`) is keyed by its origin.
pub fn limiter_key(class: CredentialClass, ip: IpAddr, origin: Option<&str>) -> String {
    match origin {
        Some(o) => format!("{}|browser-origin:{}", class.as_str(), o.trim().to_ascii_lowercase()),
        None => format!("{}|{}", class.as_str(), canonical_ip(ip)),
    }
}

#[derive(Debug, Default)]
struct Entry {
    failures: VecDeque<u64>,
    locked_until: Option<u64>,
}

/// Failure counts per key.
#[derive(Debug, Default)]
pub struct AuthLimiter {
    pub config: RateLimitConfig,
    entries: HashMap<String, Entry>,
}

impl AuthLimiter {
    pub fn new(config: RateLimitConfig) -> Self {
        AuthLimiter {
            config,
            entries: HashMap::new(),
        }
    }

    /// `Err(retry_after_ms)` while the key is locked.
    pub fn check(&mut self, key: &str, now_ms: u64) -> Result<(), u64> {
        let Some(entry) = self.entries.get_mut(key) else {
            return Ok(());
        };
        match entry.locked_until {
            Some(until) if until > now_ms => Err(until - now_ms),
            Some(_) => {
                self.entries.remove(key);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts a failure; locks the key when the window holds `max_attempts` of them.
    pub fn record_failure(&mut self, key: &str, now_ms: u64) {
        if !self.entries.contains_key(key) && self.entries.len() >= MAX_TRACKED_KEYS {
            self.shed(now_ms);
        }
        let config = self.config;
        let entry = self.entries.entry(key.to_owned()).or_default();
        while entry
            .failures
            .front()
            .is_some_and(|t| now_ms.saturating_sub(*t) > config.window_ms)
        {
            entry.failures.pop_front();
        }
        entry.failures.push_back(now_ms);
        if entry.failures.len() >= config.max_attempts {
            entry.locked_until = Some(now_ms + config.lockout_ms);
            entry.failures.clear();
        }
    }

    /// A success forgets the key's failures.
    pub fn reset(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Number of keys tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops stale keys, then, if still full, the unlocked keys with the oldest failures.
    fn shed(&mut self, now_ms: u64) {
        let window = self.config.window_ms;
        self.entries.retain(|_, e| {
            e.locked_until.is_some_and(|u| u > now_ms)
                || e.failures.back().is_some_and(|t| now_ms.saturating_sub(*t) <= window)
        });
        if self.entries.len() >= MAX_TRACKED_KEYS {
            let mut unlocked: Vec<(u64, String)> = self
                .entries
                .iter()
                .filter(|(_, e)| e.locked_until.is_none())
                .map(|(k, e)| (e.failures.back().copied().unwrap_or(0), k.clone()))
                .collect();
            unlocked.sort_unstable();
            let excess = self.entries.len() + 1 - MAX_TRACKED_KEYS;
            for (_, k) in unlocked.into_iter().take(excess.max(MAX_TRACKED_KEYS / 10)) {
                self.entries.remove(&k);
            }
        }
        if self.entries.len() >= MAX_TRACKED_KEYS {
            // Only locked keys remain: drop the ones that unlock soonest.
            let mut locked: Vec<(u64, String)> = self
                .entries
                .iter()
                .map(|(k, e)| (e.locked_until.unwrap_or(0), k.clone()))
                .collect();
            locked.sort_unstable();
            for (_, k) in locked.into_iter().take(MAX_TRACKED_KEYS / 10) {
                self.entries.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_failures_in_a_minute_lock_for_five_minutes() {
        let mut l = AuthLimiter::new(RateLimitConfig::default());
        for i in 0..9 {
            l.record_failure("k", i * 1000);
            assert!(l.check("k", i * 1000).is_ok());
        }
        l.record_failure("k", 9_000);
        assert_eq!(l.check("k", 10_000), Err(299_000));
        assert!(l.check("k", 9_000 + 300_000).is_ok());
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let mut l = AuthLimiter::new(RateLimitConfig::default());
        for i in 0..20 {
            l.record_failure("k", i * 7_000);
        }
        assert!(l.check("k", 140_000).is_ok());
    }

    #[test]
    fn success_resets_and_keys_are_independent() {
        let mut l = AuthLimiter::new(RateLimitConfig::default());
        for _ in 0..9 {
            l.record_failure("a", 0);
        }
        l.reset("a");
        l.record_failure("a", 0);
        assert!(l.check("a", 0).is_ok());
        for _ in 0..10 {
            l.record_failure("b", 0);
        }
        assert!(l.check("b", 1).is_err());
        assert!(l.check("a", 1).is_ok());
    }

    #[test]
    fn mapped_addresses_share_a_key_with_their_ipv4_form() {
        let v4: IpAddr = "198.51.100.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:198.51.100.7".parse().unwrap();
        assert_eq!(
            limiter_key(CredentialClass::SharedSecret, v4, None),
            limiter_key(CredentialClass::SharedSecret, mapped, None)
        );
        assert_ne!(
            limiter_key(CredentialClass::SharedSecret, v4, None),
            limiter_key(CredentialClass::DeviceToken, v4, None)
        );
        assert_eq!(
            limiter_key(CredentialClass::SharedSecret, v4, Some("HTTP://Evil.Example")),
            "shared-secret|browser-origin:http://evil.example"
        );
    }

    proptest::proptest! {
        #[test]
        fn the_key_of_an_address_is_canonical(octets in proptest::prelude::any::<[u8; 4]>(), class in 0..2u8) {
            let class = if class == 0 { CredentialClass::SharedSecret } else { CredentialClass::DeviceToken };
            let v4 = std::net::Ipv4Addr::from(octets);
            let mapped = IpAddr::V6(v4.to_ipv6_mapped());
            proptest::prop_assert_eq!(limiter_key(class, IpAddr::V4(v4), None), limiter_key(class, mapped, None));
            proptest::prop_assert!(!limiter_key(class, mapped, None).contains("::ffff"));
        }
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_keys() {
        let mut l = AuthLimiter::new(RateLimitConfig::default());
        for i in 0..(MAX_TRACKED_KEYS as u64 * 3) {
            l.record_failure(&format!("k{i}"), i);
        }
        assert!(l.len() <= MAX_TRACKED_KEYS);
    }
}
