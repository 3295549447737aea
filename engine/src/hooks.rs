//! Inbound webhooks, as OpenClaw serves them under `hooks.path` (default `/hooks`): `POST
//! /hooks/wake` queues a system event for an agent's main session and asks for a heartbeat, and
//! `POST /hooks/agent` submits an agent turn, answered `{ok, runId}` once the message is durably
//! accepted (or, with `waitForCompletion`, when the run has ended). The hook token comes as a
//! Bearer or `x-openclaw-token` header, never from the query string; failed attempts are
//! throttled (20 a minute, loopback included). Mapped hooks (`hooks.mappings`) are not served yet:
//! any other path under `hooks.path` answers 404.

use crate::rate_limit::{AuthLimiter, RateLimitConfig};
use clawgate_proto::http::{Request, Response};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};

/// The largest body a hook takes, as OpenClaw's.
pub const MAX_HOOK_BODY_BYTES: usize = 256 * 1024;
/// Replay keys remembered, and for how long.
const REPLAYS_KEPT: usize = 1000;
const REPLAY_TTL_MS: u64 = 24 * 60 * 60 * 1000;

/// `hooks.*`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HooksConfig {
    pub enabled: bool,
    pub token: Option<String>,
    /// The base path: a leading `/`, no trailing one.
    pub path: String,
    /// `allowedAgentIds`: `None` (or `*`) allows every agent, an empty list none.
    pub allowed_agent_ids: Option<Vec<String>>,
    pub default_session_key: Option<String>,
    pub allow_request_session_key: bool,
    /// Lower-case prefixes an explicit or default session key must start with (empty: any).
    pub allowed_session_key_prefixes: Vec<String>,
}

impl HooksConfig {
    /// Reads `hooks` from the resolved document; a setting that cannot work is an error with
    /// its path and what it needs.
    pub fn from_document(doc: &Value) -> Result<HooksConfig, (String, &'static str)> {
        let hooks = &doc["hooks"];
        if hooks.is_null() {
            return Ok(HooksConfig::default());
        }
        let text = |key: &str| -> Result<Option<String>, (String, &'static str)> {
            match &hooks[key] {
                Value::Null => Ok(None),
                Value::String(s) => Ok(Some(s.trim().to_owned()).filter(|s| !s.is_empty())),
                _ => Err((format!("hooks.{key}"), "a string")),
            }
        };
        let list = |key: &str| -> Result<Option<Vec<String>>, (String, &'static str)> {
            match &hooks[key] {
                Value::Null => Ok(None),
                Value::Array(items) => items
                    .iter()
                    .map(|v| v.as_str().map(|s| s.trim().to_owned()))
                    .collect::<Option<Vec<_>>>()
                    .map(Some)
                    .ok_or((format!("hooks.{key}"), "a list of strings")),
                _ => Err((format!("hooks.{key}"), "a list of strings")),
            }
        };
        let flag = |key: &str| -> Result<bool, (String, &'static str)> {
            match &hooks[key] {
                Value::Null => Ok(false),
                Value::Bool(b) => Ok(*b),
                _ => Err((format!("hooks.{key}"), "true or false")),
            }
        };
        let enabled = flag("enabled")?;
        let token = text("token")?;
        if enabled && token.is_none() {
            return Err(("hooks.token".into(), "a non-empty token when hooks.enabled is true"));
        }
        let path = match text("path")? {
            None => "/hooks".to_owned(),
            Some(p) => {
                let p = format!("/{}", p.trim_matches('/'));
                if p == "/" {
                    return Err(("hooks.path".into(), "a dedicated path, not /"));
                }
                p
            }
        };
        let allowed_agent_ids = list("allowedAgentIds")?
            .filter(|ids| !ids.iter().any(|i| i == "*"))
            .map(|ids| ids.into_iter().map(|i| i.to_lowercase()).collect());
        Ok(HooksConfig {
            enabled,
            token,
            path,
            allowed_agent_ids,
            default_session_key: text("defaultSessionKey")?,
            allow_request_session_key: flag("allowRequestSessionKey")?,
            allowed_session_key_prefixes: list("allowedSessionKeyPrefixes")?
                .unwrap_or_default()
                .into_iter()
                .filter(|p| !p.is_empty())
                .map(|p| p.to_lowercase())
                .collect(),
        })
    }

    /// Which hook `path` names, if it is under the base path of enabled hooks.
    pub fn endpoint(&self, path: &str) -> Option<HookEndpoint> {
        if !self.enabled {
            return None;
        }
        let rest = path.strip_prefix(&self.path)?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        Some(match rest.trim_matches('/') {
            "wake" => HookEndpoint::Wake,
            "agent" => HookEndpoint::Agent,
            _ => HookEndpoint::Unmapped,
        })
    }

    /// Whether `agent` may be the target of a hook.
    pub fn agent_allowed(&self, agent: &str) -> bool {
        self.allowed_agent_ids
            .as_ref()
            .is_none_or(|ids| ids.iter().any(|i| i == &agent.to_lowercase()))
    }

    /// Whether a session key passes the prefix allowlist.
    pub fn key_allowed(&self, key: &str) -> bool {
        let key = key.to_lowercase();
        self.allowed_session_key_prefixes.is_empty()
            || self.allowed_session_key_prefixes.iter().any(|p| key.starts_with(p))
    }
}

/// A path under `hooks.path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookEndpoint {
    Wake,
    Agent,
    /// A mapped hook's path (or the base path itself), which nothing serves yet.
    Unmapped,
}

/// The hooks' own state: the failed-token limiter and the replay keys of `/hooks/agent`.
#[derive(Debug)]
pub struct Hooks {
    limiter: AuthLimiter,
    replays: BTreeMap<String, (String, u64)>,
    replay_order: VecDeque<String>,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            limiter: AuthLimiter::new(RateLimitConfig {
                max_attempts: 20,
                window_ms: 60_000,
                lockout_ms: 60_000,
                exempt_loopback: false,
            }),
            replays: BTreeMap::new(),
            replay_order: VecDeque::new(),
        }
    }
}

/// A hook answer that is not JSON: plain text with a status.
fn plain(status: u16, text: &str) -> Response {
    Response::text(status, text).header("Cache-Control", "no-store")
}

/// A JSON error answer in OpenClaw's hook shape.
pub fn hook_error(status: u16, message: &str) -> Response {
    Response::json(status, &json!({"ok": false, "error": message})).header("Cache-Control", "no-store")
}

impl Hooks {
    /// The checks every hook request passes before its body is read: the method, the token
    /// (never a `token` query parameter), the limiter. `client` keys the limiter.
    pub fn admit(
        &mut self,
        config: &HooksConfig,
        now_ms: u64,
        client: &str,
        request: &Request,
    ) -> Result<(), Response> {
        if request.method != "POST" {
            return Err(plain(405, "Method Not Allowed").header("Allow", "POST"));
        }
        let query_token = request
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv == "token" || kv.starts_with("token=")));
        if query_token {
            return Err(hook_error(
                400,
                "hook token must be sent in a header, not the query string",
            ));
        }
        if let Err(retry_after_ms) = self.limiter.check(client, now_ms) {
            return Err(hook_error(429, "too many failed authentication attempts")
                .header("Retry-After", &retry_after_ms.div_ceil(1000).to_string()));
        }
        let bearer = request
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let offered = bearer.or_else(|| request.header("x-openclaw-token").map(str::trim));
        let expected = config.token.as_deref().unwrap_or_default();
        let matches = offered.is_some_and(|t| clawgate_proto::device::secrets_equal(t, expected));
        if !matches {
            self.limiter.record_failure(client, now_ms);
            return Err(plain(401, "Unauthorized"));
        }
        self.limiter.reset(client);
        if request.body.len() > MAX_HOOK_BODY_BYTES {
            return Err(hook_error(413, "payload too large"));
        }
        Ok(())
    }

    /// The run an earlier request with this replay key started, if any.
    pub fn replayed(&mut self, now_ms: u64, key: &str) -> Option<String> {
        self.forget_old(now_ms);
        self.replays.get(key).map(|(run, _)| run.clone())
    }

    /// Remembers that `key` started `run_id`.
    pub fn remember(&mut self, now_ms: u64, key: String, run_id: String) {
        self.forget_old(now_ms);
        if self.replays.insert(key.clone(), (run_id, now_ms)).is_none() {
            self.replay_order.push_back(key);
        }
        while self.replay_order.len() > REPLAYS_KEPT {
            if let Some(old) = self.replay_order.pop_front() {
                self.replays.remove(&old);
            }
        }
    }

    fn forget_old(&mut self, now_ms: u64) {
        while let Some(oldest) = self.replay_order.front() {
            match self.replays.get(oldest) {
                Some((_, at)) if now_ms.saturating_sub(*at) < REPLAY_TTL_MS => break,
                _ => {
                    if let Some(old) = self.replay_order.pop_front() {
                        self.replays.remove(&old);
                    }
                }
            }
        }
    }
}

/// A `/hooks/wake` request, checked against the policy.
#[derive(Debug, Clone, PartialEq)]
pub struct WakeHook {
    pub text: String,
    pub now: bool,
    pub agent_id: Option<String>,
    pub session_key: Option<String>,
}

/// A `/hooks/agent` request, checked against the policy.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentHook {
    pub message: String,
    pub name: String,
    pub agent_id: Option<String>,
    /// The caller's session key (persistent mode), else `None`: an isolated run.
    pub session_key: Option<String>,
    pub wait_for_completion: bool,
    pub timeout_ms: Option<u64>,
    pub model: Option<String>,
}

fn body_json(request: &Request) -> Result<Value, Response> {
    let payload: Value =
        serde_json::from_slice(&request.body).map_err(|e| hook_error(400, &format!("invalid JSON: {e}")))?;
    if !payload.is_object() {
        return Err(hook_error(400, "the payload must be a JSON object"));
    }
    Ok(payload)
}

fn optional_text(payload: &Value, key: &str) -> Result<Option<String>, Response> {
    match &payload[key] {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.trim().to_owned()).filter(|s| !s.is_empty())),
        _ => Err(hook_error(400, &format!("{key} must be a string"))),
    }
}

impl HooksConfig {
    /// A caller's session key, if the policy lets callers choose one.
    fn request_key(&self, key: Option<String>) -> Result<Option<String>, Response> {
        let Some(key) = key else { return Ok(None) };
        if !self.allow_request_session_key {
            return Err(hook_error(
                400,
                "sessionKey is not allowed (hooks.allowRequestSessionKey is false)",
            ));
        }
        if !self.key_allowed(&key) {
            return Err(hook_error(400, "sessionKey is outside hooks.allowedSessionKeyPrefixes"));
        }
        Ok(Some(key))
    }

    /// Reads and checks a `/hooks/wake` body.
    pub fn wake_request(&self, request: &Request) -> Result<WakeHook, Response> {
        let payload = body_json(request)?;
        let text = optional_text(&payload, "text")?.ok_or_else(|| hook_error(400, "text is required"))?;
        let now = match optional_text(&payload, "mode")?.as_deref() {
            None | Some("now") => true,
            Some("next-heartbeat") => false,
            Some(_) => return Err(hook_error(400, "mode must be now or next-heartbeat")),
        };
        let session_key = optional_text(&payload, "sessionKey")?;
        if session_key.is_some() && !now {
            return Err(hook_error(400, "a sessionKey needs mode now"));
        }
        Ok(WakeHook {
            text,
            now,
            agent_id: optional_text(&payload, "agentId")?,
            session_key: self.request_key(session_key)?,
        })
    }

    /// Reads and checks a `/hooks/agent` body; the replay key and the checked request.
    pub fn agent_request(&self, request: &Request) -> Result<(AgentHook, Option<String>), Response> {
        let payload = body_json(request)?;
        let message = optional_text(&payload, "message")?.ok_or_else(|| hook_error(400, "message is required"))?;
        let persistent = match optional_text(&payload, "sessionMode")?.as_deref() {
            None | Some("isolated") => false,
            Some("persistent") => true,
            Some(_) => return Err(hook_error(400, "sessionMode must be isolated or persistent")),
        };
        let requested = optional_text(&payload, "sessionKey")?;
        let session_key = if persistent {
            if requested.is_none() || self.allowed_session_key_prefixes.is_empty() {
                return Err(hook_error(
                    400,
                    "persistent mode needs a sessionKey, hooks.allowRequestSessionKey and hooks.allowedSessionKeyPrefixes",
                ));
            }
            self.request_key(requested)?
        } else {
            // An isolated run gets a fresh session whatever key the caller names, but the key is
            // still held to the policy, as OpenClaw holds it.
            self.request_key(requested)?;
            None
        };
        let channel = optional_text(&payload, "channel")?;
        let to = optional_text(&payload, "to")?;
        if payload["deliver"] != false && (channel.is_some() || to.is_some()) {
            return Err(hook_error(
                400,
                "delivery to a channel is not available: Clawgate has no channels yet",
            ));
        }
        let timeout_ms = payload["timeoutSeconds"]
            .as_f64()
            .filter(|t| *t >= 1.0)
            .map(|t| (t.floor() as u64).saturating_mul(1000));
        let hook = AgentHook {
            name: optional_text(&payload, "name")?.unwrap_or_else(|| "Hook".to_owned()),
            agent_id: optional_text(&payload, "agentId")?,
            session_key,
            wait_for_completion: payload["waitForCompletion"] == true,
            timeout_ms,
            model: optional_text(&payload, "model")?,
            message,
        };
        let dispatch = json!([hook.message, hook.agent_id, hook.session_key, hook.model]).to_string();
        let replay = replay_key(request, &payload, &dispatch);
        Ok((hook, replay))
    }
}

/// The replay key of an agent hook request: the `Idempotency-Key` header, then
/// `X-OpenClaw-Idempotency-Key`, then the payload's `idempotencyKey` (trimmed, at most 256
/// characters); joined with what the request dispatches, so a changed message is a new run.
pub fn replay_key(request: &Request, payload: &Value, dispatch: &str) -> Option<String> {
    let key = request
        .header("idempotency-key")
        .or_else(|| request.header("x-openclaw-idempotency-key"))
        .map(str::to_owned)
        .or_else(|| payload["idempotencyKey"].as_str().map(str::to_owned))?;
    let key = key.trim();
    (!key.is_empty() && key.chars().count() <= 256).then(|| format!("{key}\u{0}{dispatch}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_need_a_token_and_a_dedicated_path() {
        let ok =
            HooksConfig::from_document(&json!({"hooks": {"enabled": true, "token": "t", "path": "hooks/"}})).unwrap();
        assert_eq!(ok.path, "/hooks");
        assert!(HooksConfig::from_document(&json!({"hooks": {"enabled": true}})).is_err());
        assert!(HooksConfig::from_document(&json!({"hooks": {"enabled": true, "token": "t", "path": "/"}})).is_err());
        let all = HooksConfig::from_document(&json!({"hooks": {"allowedAgentIds": ["*"]}})).unwrap();
        assert!(all.agent_allowed("anyone"));
        let none = HooksConfig::from_document(&json!({"hooks": {"allowedAgentIds": []}})).unwrap();
        assert!(!none.agent_allowed("main"));
    }

    #[test]
    fn paths_under_the_base_path_name_their_hook() {
        let c = HooksConfig::from_document(&json!({"hooks": {"enabled": true, "token": "t", "path": "/in"}})).unwrap();
        assert_eq!(c.endpoint("/in/wake"), Some(HookEndpoint::Wake));
        assert_eq!(c.endpoint("/in/agent/"), Some(HookEndpoint::Agent));
        assert_eq!(c.endpoint("/in/gmail"), Some(HookEndpoint::Unmapped));
        assert_eq!(c.endpoint("/inbox"), None);
        assert_eq!(
            HooksConfig::default().endpoint("/hooks/wake"),
            None,
            "disabled hooks fall through"
        );
    }

    #[test]
    fn replay_keys_are_bounded() {
        let mut h = Hooks::default();
        for i in 0..(REPLAYS_KEPT + 5) {
            h.remember(0, format!("k{i}"), format!("r{i}"));
        }
        assert_eq!(h.replayed(0, "k0"), None);
        assert_eq!(
            h.replayed(0, &format!("k{}", REPLAYS_KEPT + 4)).as_deref(),
            Some(&*format!("r{}", REPLAYS_KEPT + 4))
        );
        assert_eq!(h.replayed(REPLAY_TTL_MS + 1, "k10"), None, "and forgotten after a day");
    }
}
