//! Inbound webhooks, as OpenClaw serves them under `hooks.path` (default `/hooks`): `POST
//! /hooks/wake` queues a system event for an agent's main session and asks for a heartbeat, and
//! `POST /hooks/agent` submits an agent turn, answered `{ok, runId}` once the message is durably
//! accepted (or, with `waitForCompletion`, when the run has ended). The hook token comes as a
//! Bearer or `x-openclaw-token` header, never from the query string; failed attempts are
//! throttled (20 a minute, loopback included). Any other path under `hooks.path` is a mapped
//! hook ([`crate::hook_mappings`]).
//!
//! An accepted agent turn is kept in [`STATE_FILE`] until its run ends, with the replay key of
//! the request that started it: a run the gateway lost by stopping runs again after the restart
//! (unless its reply is already in the transcript), and a sender that retries with the same
//! idempotency key after a restart gets the same run instead of a second one. OpenClaw forgets
//! replay keys on restart; Clawgate keeps them so that a retry across a crash stays one run.

use crate::hook_mappings::HookMapping;
use crate::rate_limit::{AuthLimiter, RateLimitConfig};
use clawgate_proto::http::{Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::VecDeque;

/// The file (under the state directory) of the accepted hook turns and their replay keys.
pub const STATE_FILE: &str = "hooks/state.json";

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
    /// `hooks.mappings` then `hooks.presets`, in the order they are tried.
    pub mappings: Vec<HookMapping>,
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
        let allowed_session_key_prefixes: Vec<String> = list("allowedSessionKeyPrefixes")?
            .unwrap_or_default()
            .into_iter()
            .filter(|p| !p.is_empty())
            .map(|p| p.to_lowercase())
            .collect();
        let default_session_key = text("defaultSessionKey")?;
        let mappings = crate::hook_mappings::parse_mappings(
            hooks,
            (!allowed_session_key_prefixes.is_empty(), default_session_key.is_some()),
        )?;
        let allowed_agent_ids = list("allowedAgentIds")?
            .filter(|ids| !ids.iter().any(|i| i == "*"))
            .map(|ids| ids.into_iter().map(|i| i.to_lowercase()).collect());
        Ok(HooksConfig {
            enabled,
            token,
            path,
            allowed_agent_ids,
            default_session_key,
            allow_request_session_key: flag("allowRequestSessionKey")?,
            allowed_session_key_prefixes,
            mappings,
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
            "" => HookEndpoint::Base,
            name => HookEndpoint::Mapped(name.to_owned()),
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookEndpoint {
    Wake,
    Agent,
    /// `hooks.path` itself, which has no action.
    Base,
    /// Any other subpath (without slashes), for the mappings.
    Mapped(String),
}

/// Where the reply of a hook's turn goes: a channel account and a target on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookTarget {
    pub channel: String,
    pub account: String,
    pub to: String,
}

/// An agent turn a hook started, kept until its run ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedTurn {
    pub run_id: String,
    pub session_key: String,
    pub agent_id: String,
    pub message: String,
    pub name: String,
    pub accepted_at: u64,
    pub timeout_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<HookTarget>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Replay {
    key: String,
    run_id: String,
    at: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HookStore {
    #[serde(default)]
    accepted: Vec<AcceptedTurn>,
    /// Oldest first.
    #[serde(default)]
    replays: VecDeque<Replay>,
}

/// The hooks' own state: the failed-token limiter, the accepted turns and the replay keys.
#[derive(Debug)]
pub struct Hooks {
    limiter: AuthLimiter,
    store: HookStore,
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
            store: HookStore::default(),
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
        self.store
            .replays
            .iter()
            .find(|r| r.key == key)
            .map(|r| r.run_id.clone())
    }

    /// Remembers that `key` started `run_id`.
    pub fn remember(&mut self, now_ms: u64, key: String, run_id: String) {
        self.forget_old(now_ms);
        if !self.store.replays.iter().any(|r| r.key == key) {
            self.store.replays.push_back(Replay {
                key,
                run_id,
                at: now_ms,
            });
        }
        while self.store.replays.len() > REPLAYS_KEPT {
            self.store.replays.pop_front();
        }
    }

    fn forget_old(&mut self, now_ms: u64) {
        while self
            .store
            .replays
            .front()
            .is_some_and(|r| now_ms.saturating_sub(r.at) >= REPLAY_TTL_MS)
        {
            self.store.replays.pop_front();
        }
    }

    /// Keeps a turn until its run ends.
    pub fn accept(&mut self, turn: AcceptedTurn) {
        self.store.accepted.push(turn);
    }

    /// The turn of a run that ended, taken off the accepted list.
    pub fn take_ended(&mut self, run_id: &str) -> Option<AcceptedTurn> {
        let at = self.store.accepted.iter().position(|t| t.run_id == run_id)?;
        Some(self.store.accepted.remove(at))
    }

    /// The turns accepted and not yet ended.
    pub fn accepted(&self) -> &[AcceptedTurn] {
        &self.store.accepted
    }

    /// How many turns wait for their run.
    pub fn pending(&self) -> usize {
        self.store.accepted.len()
    }

    /// The text of [`STATE_FILE`].
    pub fn state_text(&self) -> String {
        serde_json::to_string(&self.store).unwrap_or_default()
    }

    /// Restores [`STATE_FILE`]; a file that does not parse is an error (it holds accepted turns).
    pub fn restore(&mut self, text: &str) -> Result<(), String> {
        self.store = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Ok(())
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
    /// Where the reply is to be delivered, if anywhere.
    pub delivery: Option<RequestedDelivery>,
}

/// A delivery target as a request or mapping names it, before the channels check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestedDelivery {
    /// A channel id, or `last`: where the agent's main session last heard from someone.
    pub channel: String,
    pub account: Option<String>,
    pub to: Option<String>,
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
        let channel = optional_text(&payload, "channel")?.map(|c| c.to_lowercase());
        let to = optional_text(&payload, "to")?;
        let account = optional_text(&payload, "accountId")?;
        let delivery = if payload["deliver"] == false {
            None
        } else {
            match (channel, to) {
                (None, None) if account.is_some() => {
                    return Err(hook_error(400, "accountId needs channel and to"));
                }
                (None, None) => None,
                (Some(c), _) if c == "last" => {
                    return Err(hook_error(400, "channel last is only for mapped hooks; name a channel"));
                }
                (Some(channel), Some(to)) => Some(RequestedDelivery {
                    channel,
                    account,
                    to: Some(to),
                }),
                _ => return Err(hook_error(400, "channel and to go together")),
            }
        };
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
            delivery,
        };
        let dispatch = json!([hook.message, hook.agent_id, hook.session_key, hook.model, hook.delivery]).to_string();
        let replay = replay_key(request, &payload, &dispatch);
        Ok((hook, replay))
    }
}

/// One action a mapped hook produced.
#[derive(Debug, Clone, PartialEq)]
pub enum MappedAction {
    Wake(WakeHook),
    /// An agent turn and its replay key.
    Agent(AgentHook, Option<String>),
}

impl HooksConfig {
    /// The actions of a request to the mapped hook `subpath`: 404 when no mapping owns it, 500
    /// when the owner needs a JavaScript transform, 400 when a rendered action breaks the
    /// policy. An empty list (a `forEach` over nothing) is answered 204.
    pub fn mapped_actions(
        &self,
        subpath: &str,
        request: &Request,
        now_iso: &str,
    ) -> Result<Vec<MappedAction>, Response> {
        let payload = body_json(request)?;
        let Some(mapping) = self.mappings.iter().find(|m| m.matches(subpath, &payload)) else {
            return Err(hook_error(404, &format!("no hook mapping for {subpath}")));
        };
        if let Some(module) = &mapping.transform {
            return Err(hook_error(
                500,
                &format!("hook mapping failed: {} needs the transform {module}, and Clawgate does not run JavaScript transforms", mapping.id),
            ));
        }
        let headers: Vec<(String, String)> = request
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect();
        let query = request.query().unwrap_or_default();
        let explicit_key = replay_key(request, &payload, "");
        let (payloads, _dropped) = crate::hook_mappings::payloads_of(mapping, &payload);
        let mut actions = Vec::with_capacity(payloads.len());
        for one in &payloads {
            let t = crate::hook_mappings::TemplateInput {
                payload: one,
                headers: &headers,
                query,
                path: subpath,
                now_iso,
            };
            let optional = |template: &Option<String>| {
                template
                    .as_deref()
                    .map(|x| t.render(x).trim().to_owned())
                    .filter(|x| !x.is_empty())
            };
            match mapping.action {
                crate::hook_mappings::MappingAction::Wake => {
                    let text = t.render(&mapping.text_template).trim().to_owned();
                    if text.is_empty() {
                        return Err(hook_error(
                            400,
                            &format!("mapping {} rendered an empty wake text", mapping.id),
                        ));
                    }
                    actions.push(MappedAction::Wake(WakeHook {
                        text,
                        now: mapping.wake_now,
                        agent_id: mapping.agent_id.clone(),
                        session_key: None,
                    }));
                }
                crate::hook_mappings::MappingAction::Agent => {
                    let message = t.render(&mapping.message_template).trim().to_owned();
                    if message.is_empty() {
                        return Err(hook_error(
                            400,
                            &format!("mapping {} rendered an empty message", mapping.id),
                        ));
                    }
                    let key = match &mapping.session_key {
                        Some(template) => {
                            let key = t.render(template).trim().to_owned();
                            if key.is_empty() {
                                return Err(hook_error(
                                    400,
                                    &format!("mapping {} rendered an empty sessionKey", mapping.id),
                                ));
                            }
                            if mapping.templated_key() && !self.allow_request_session_key {
                                return Err(hook_error(
                                    400,
                                    "a templated mapping sessionKey needs hooks.allowRequestSessionKey",
                                ));
                            }
                            Some(key)
                        }
                        None => self.default_session_key.clone(),
                    };
                    if let Some(k) = &key {
                        if !self.key_allowed(k) {
                            return Err(hook_error(400, "sessionKey is outside hooks.allowedSessionKeyPrefixes"));
                        }
                    }
                    let delivery = mapping.deliver.then(|| RequestedDelivery {
                        channel: mapping.channel.clone(),
                        account: None,
                        to: optional(&mapping.to),
                    });
                    let hook = AgentHook {
                        message,
                        name: optional(&mapping.name).unwrap_or_else(|| "Hook".to_owned()),
                        agent_id: mapping.agent_id.clone(),
                        session_key: key.filter(|_| mapping.persistent),
                        wait_for_completion: false,
                        timeout_ms: mapping.timeout_ms,
                        model: optional(&mapping.model),
                        delivery,
                    };
                    let dispatch = json!([
                        subpath,
                        hook.message,
                        hook.agent_id,
                        hook.session_key,
                        hook.model,
                        hook.delivery
                    ])
                    .to_string();
                    // A batch is retried by its sender as a whole: each item's own rendering is
                    // its replay identity, as in OpenClaw, even without an idempotency key.
                    let replay = match &explicit_key {
                        Some(k) => Some(format!("{k}{dispatch}")),
                        None => mapping.for_each.as_ref().map(|_| format!("each\u{0}{dispatch}")),
                    };
                    actions.push(MappedAction::Agent(hook, replay));
                }
            }
        }
        Ok(actions)
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
        assert_eq!(c.endpoint("/in/gmail"), Some(HookEndpoint::Mapped("gmail".into())));
        assert_eq!(c.endpoint("/in/"), Some(HookEndpoint::Base));
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
