//! Session keys: how a request names the agent session it talks to.
//!
//! A stored session key has the canonical shape `agent:<agentId>:<rest>`, all
//! lower case; the main session of the default agent is usually
//! `agent:main:main`. Requests may send shorter forms: `main` (or nothing) for
//! the main session, or a bare key such as `work` that is qualified with the
//! agent (`agent:main:work`). [`SessionRouting::resolve`] turns what a request
//! sent into the stored key the same way the OpenClaw gateway does, so a key a
//! client learned from one gateway names the same session on the other.
//!
//! ```
//! use clawgate_proto::session::{SessionKey, SessionRouting};
//!
//! let routing = SessionRouting::default();
//! assert_eq!(routing.resolve(Some("main"), None).unwrap(), "agent:main:main");
//! assert_eq!(routing.resolve(Some("Work"), Some("Coder")).unwrap(), "agent:coder:work");
//!
//! let key = SessionKey::parse("agent:coder:work").unwrap();
//! assert_eq!((key.agent_id(), key.rest()), ("coder", "work"));
//! ```

use std::fmt;

/// The agent a request is routed to when it names none.
pub const DEFAULT_AGENT_ID: &str = "main";

/// The default `session.mainKey`: the last part of the main session's key.
pub const DEFAULT_MAIN_KEY: &str = "main";

/// The longest session key a request may send, in bytes.
pub const MAX_SESSION_KEY_LEN: usize = 512;

/// The longest agent id, in characters.
pub const MAX_AGENT_ID_LEN: usize = 64;

/// The main session's key when `session.scope` is `"global"`.
pub const GLOBAL_SESSION_KEY: &str = "global";

/// An agent id in its normal form: lower case, path- and shell-safe.
///
/// Ids are compared after normalisation, so `Coder` and `coder` are the same
/// agent. An id that is not already valid keeps its letters, digits, `_` and
/// `-`; every run of other characters becomes one `-`, dashes at either end
/// are dropped, and the result is cut to 64 characters. An id that ends up
/// empty is [`DEFAULT_AGENT_ID`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentId(String);

impl AgentId {
    /// Normalises `raw` (see the type's documentation).
    pub fn normalize(raw: &str) -> AgentId {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return AgentId(DEFAULT_AGENT_ID.to_owned());
        }
        if AgentId::is_valid(trimmed) {
            return AgentId(trimmed.to_ascii_lowercase());
        }
        let lowered = trimmed.to_lowercase();
        let mut out = String::with_capacity(lowered.len());
        let mut in_invalid_run = false;
        for c in lowered.chars() {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
                out.push(c);
                in_invalid_run = false;
            } else if !in_invalid_run {
                out.push('-');
                in_invalid_run = true;
            }
        }
        // Only ASCII is left, so byte offsets are character offsets.
        let mut id = out.trim_matches('-').to_owned();
        id.truncate(MAX_AGENT_ID_LEN);
        if id.is_empty() {
            id = DEFAULT_AGENT_ID.to_owned();
        }
        AgentId(id)
    }

    /// Whether `raw` (after trimming) is already a valid id in any case:
    /// an ASCII letter or digit, then up to 63 letters, digits, `_` or `-`.
    pub fn is_valid(raw: &str) -> bool {
        let bytes = raw.trim().as_bytes();
        match bytes.split_first() {
            Some((first, rest)) => {
                first.is_ascii_alphanumeric()
                    && rest.len() < MAX_AGENT_ID_LEN
                    && rest
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
            }
            None => false,
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for AgentId {
    fn default() -> Self {
        AgentId(DEFAULT_AGENT_ID.to_owned())
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A session key in the canonical `agent:<agentId>:<rest>` shape.
///
/// Parsing is case-insensitive and the parts are kept lower case. Empty parts
/// (`agent::main::x`) are skipped, as the OpenClaw gateway does, and so are
/// parts of only spaces, with spaces around the key trimmed, so that parsing
/// the text of a parsed key gives the same key back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionKey {
    text: String,
    agent_len: usize,
}

impl SessionKey {
    /// Parses a canonical key; `None` when `raw` is not `agent:<id>:<rest>`
    /// with non-empty parts.
    pub fn parse(raw: &str) -> Option<SessionKey> {
        let lowered = raw.trim().to_lowercase();
        let mut parts = lowered.split(':').filter(|part| !part.trim().is_empty());
        if parts.next()? != "agent" {
            return None;
        }
        let agent = parts.next()?.trim();
        let rest: Vec<&str> = parts.collect();
        if rest.is_empty() {
            return None;
        }
        Some(SessionKey::from_parts(agent, rest.join(":").trim()))
    }

    /// The key of `agent`'s session `rest` (both taken as they are).
    fn from_parts(agent: &str, rest: &str) -> SessionKey {
        SessionKey {
            text: format!("agent:{agent}:{rest}"),
            agent_len: agent.len(),
        }
    }

    /// The agent part, as the key spells it.
    pub fn agent_id(&self) -> &str {
        &self.text["agent:".len().."agent:".len() + self.agent_len]
    }

    /// Everything after the agent part, e.g. `main` or `telegram:direct:42`.
    pub fn rest(&self) -> &str {
        &self.text["agent:".len() + self.agent_len + 1..]
    }

    /// The whole key.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Whether direct chats share one main session or the whole gateway does
/// (`session.scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionScope {
    /// `"per-sender"` (the default): each agent has its own main session.
    #[default]
    PerSender,
    /// `"global"`: the main session is the single key `global`.
    Global,
}

/// Why a request's session key was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionKeyError {
    /// The key is longer than [`MAX_SESSION_KEY_LEN`] bytes.
    TooLong {
        /// The length that was sent, in bytes.
        len: usize,
    },
    /// The key contains a control character.
    ControlCharacter,
    /// The key is only separators and spaces, such as `:`.
    NoName,
}

impl fmt::Display for SessionKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionKeyError::TooLong { len } => write!(
                f,
                "sessionKey is {len} bytes long; at most {MAX_SESSION_KEY_LEN} are allowed"
            ),
            SessionKeyError::ControlCharacter => f.write_str("sessionKey must not contain control characters"),
            SessionKeyError::NoName => f.write_str("sessionKey names no session"),
        }
    }
}

impl std::error::Error for SessionKeyError {}

/// The settings that decide where a request's session key points: the
/// default agent, `session.mainKey` and `session.scope`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionRouting {
    /// The agent used when a request names none (`agents.list` default entry).
    pub default_agent: AgentId,
    /// `session.mainKey`; empty means [`DEFAULT_MAIN_KEY`].
    pub main_key: String,
    /// `session.scope`.
    pub scope: SessionScope,
}

impl SessionRouting {
    /// Routing with `default_agent` and the default main key and scope.
    pub fn with_default_agent(default_agent: AgentId) -> SessionRouting {
        SessionRouting {
            default_agent,
            ..SessionRouting::default()
        }
    }

    /// The main key as used in keys: trimmed, lower case, [`DEFAULT_MAIN_KEY`] when empty.
    pub fn effective_main_key(&self) -> String {
        let trimmed = self.main_key.trim();
        if trimmed.is_empty() {
            DEFAULT_MAIN_KEY.to_owned()
        } else {
            trimmed.to_lowercase()
        }
    }

    /// The main session of `agent` (the default agent when `None`).
    pub fn main_session(&self, agent: Option<&AgentId>) -> String {
        if self.scope == SessionScope::Global {
            return GLOBAL_SESSION_KEY.to_owned();
        }
        let agent = agent.unwrap_or(&self.default_agent);
        format!("agent:{agent}:{}", self.effective_main_key())
    }

    /// The stored key for what a request sent.
    ///
    /// `agent` is the request's agent id, if it named one. Nothing, an empty
    /// key or `main` is that agent's main session; a canonical key keeps its
    /// own agent; a key that starts with `agent:` but is not canonical is kept
    /// (lower case) so that it still names one session; under the global
    /// scope `global` is kept; any other key is qualified with the agent.
    /// Keys over 512 bytes, with control characters, or of nothing but `:`
    /// and spaces are refused.
    pub fn resolve(&self, request_key: Option<&str>, agent: Option<&str>) -> Result<String, SessionKeyError> {
        let raw = request_key.unwrap_or("");
        if raw.len() > MAX_SESSION_KEY_LEN {
            return Err(SessionKeyError::TooLong { len: raw.len() });
        }
        if raw.chars().any(char::is_control) {
            return Err(SessionKeyError::ControlCharacter);
        }
        let agent = match agent {
            Some(agent) if !agent.trim().is_empty() => AgentId::normalize(agent),
            _ => self.default_agent.clone(),
        };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.eq_ignore_ascii_case(DEFAULT_MAIN_KEY) {
            return Ok(self.main_session(Some(&agent)));
        }
        if let Some(key) = SessionKey::parse(trimmed) {
            return Ok(key.text);
        }
        let lowered = trimmed.to_lowercase();
        let global = self.scope == SessionScope::Global && lowered == GLOBAL_SESSION_KEY;
        if lowered.starts_with("agent:") || global {
            return Ok(lowered);
        }
        let qualified = SessionKey::from_parts(agent.as_str(), &lowered).text;
        // `a::b:` and `a:b` name the same session; store the canonical one.
        SessionKey::parse(&qualified)
            .map(|key| key.text)
            .ok_or(SessionKeyError::NoName)
    }

    /// The agent a stored key belongs to: its agent part, normalised, or the
    /// default agent for keys without one (such as `global`).
    pub fn agent_of(&self, key: &str) -> AgentId {
        match SessionKey::parse(key) {
            Some(parsed) => AgentId::normalize(parsed.agent_id()),
            None => self.default_agent.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_ids_normalise() {
        for (raw, want) in [
            ("main", "main"),
            ("  Coder ", "coder"),
            ("", "main"),
            ("   ", "main"),
            ("my agent!", "my-agent"),
            ("--x--", "x"),
            ("a..b//c", "a-b-c"),
            ("Ünïcode Agent", "n-code-agent"),
            ("!!!", "main"),
            ("_private", "_private"),
        ] {
            assert_eq!(AgentId::normalize(raw).as_str(), want, "{raw:?}");
        }
        let long = "x".repeat(100);
        assert_eq!(AgentId::normalize(&long).as_str().len(), MAX_AGENT_ID_LEN);
        assert!(AgentId::is_valid("A1_b-c"));
        assert!(!AgentId::is_valid("-a"));
        assert!(!AgentId::is_valid(&"a".repeat(65)));
        assert!(AgentId::is_valid(&"a".repeat(64)));
    }

    #[test]
    fn canonical_keys_parse() {
        let key = SessionKey::parse(" Agent:Main:Telegram:Direct:42 ").unwrap();
        assert_eq!(key.agent_id(), "main");
        assert_eq!(key.rest(), "telegram:direct:42");
        assert_eq!(key.as_str(), "agent:main:telegram:direct:42");
        assert_eq!(SessionKey::parse("agent::main::x").unwrap().as_str(), "agent:main:x");
        for bad in ["", "main", "agent:main", "agent::main", "session:a:b", "agent:"] {
            assert!(SessionKey::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn request_keys_resolve() {
        let routing = SessionRouting::default();
        let cases: [(Option<&str>, Option<&str>, &str); 9] = [
            (None, None, "agent:main:main"),
            (Some(""), None, "agent:main:main"),
            (Some("MAIN"), None, "agent:main:main"),
            (Some("main"), Some("ops"), "agent:ops:main"),
            (Some("work"), None, "agent:main:work"),
            (Some("Work"), Some("Ops Team"), "agent:ops-team:work"),
            (Some("agent:other:x"), Some("ops"), "agent:other:x"),
            (Some("agent:broken"), None, "agent:broken"),
            (Some("global"), None, "agent:main:global"),
        ];
        for (key, agent, want) in cases {
            assert_eq!(routing.resolve(key, agent).unwrap(), want, "{key:?} {agent:?}");
        }
    }

    #[test]
    fn main_key_and_scope_apply() {
        let mut routing = SessionRouting::with_default_agent(AgentId::normalize("Home"));
        routing.main_key = " Desk ".to_owned();
        assert_eq!(routing.resolve(Some("main"), None).unwrap(), "agent:home:desk");
        assert_eq!(routing.resolve(None, None).unwrap(), "agent:home:desk");
        routing.scope = SessionScope::Global;
        assert_eq!(routing.resolve(Some("main"), Some("x")).unwrap(), "global");
        assert_eq!(routing.resolve(Some("work"), None).unwrap(), "agent:home:work");
        assert_eq!(routing.resolve(Some("Global"), None).unwrap(), "global");
        assert_eq!(routing.agent_of("global").as_str(), "home");
        assert_eq!(routing.agent_of("agent:x:y").as_str(), "x");
    }

    #[test]
    fn bad_request_keys_are_refused() {
        let routing = SessionRouting::default();
        let long = "k".repeat(MAX_SESSION_KEY_LEN + 1);
        assert_eq!(
            routing.resolve(Some(&long), None),
            Err(SessionKeyError::TooLong { len: 513 })
        );
        assert!(routing.resolve(Some(&"k".repeat(MAX_SESSION_KEY_LEN)), None).is_ok());
        assert_eq!(
            routing.resolve(Some("a\nb"), None),
            Err(SessionKeyError::ControlCharacter)
        );
        assert_eq!(routing.resolve(Some(" : :"), None), Err(SessionKeyError::NoName));
        assert!(SessionKeyError::TooLong { len: 513 }
            .to_string()
            .contains("at most 512"));
    }
}
