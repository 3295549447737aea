//! The configuration file (`openclaw.json`, JSON5) as Clawgate reads it: the keys it uses, typed;
//! the keys of OpenClaw's schema it does not use, accepted with one warning; anything else
//! refused with the file position. Pure: the caller reads the file and supplies the environment.

use serde_json::{Map, Value};

/// A configuration error, with the position in the file when it is known (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

/// The settings Clawgate takes from the file. `None` means "not set in the file".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileSettings {
    pub port: Option<u16>,
    pub bind: Option<String>,
    pub custom_bind_host: Option<String>,
    pub auth_mode: Option<String>,
    pub auth_token: Option<String>,
    pub auth_password: Option<String>,
    pub rate_limit: Option<crate::rate_limit::RateLimitConfig>,
    pub trusted_proxies: Vec<String>,
    pub trusted_proxy: TrustedProxyConfig,
    pub allowed_origins: Vec<String>,
    /// `gateway.controlUi.root`: the folder of a Control UI bundle to serve.
    pub control_ui_root: Option<String>,
    /// `gateway.controlUi.basePath`: where it is served (`""` = the root).
    pub control_ui_base_path: Option<String>,
    pub reload_mode: Option<String>,
    pub reload_debounce_ms: Option<u64>,
    pub auto_approve_local: Option<bool>,
    pub main_key: Option<String>,
    /// `session.scope`: `per-sender` or `global`.
    pub session_scope: Option<clawgate_proto::session::SessionScope>,
    /// `session.maintenance.pruneAfter` in milliseconds (`"30d"`, `"12h"`, `"90m"`, or a number
    /// of milliseconds).
    pub session_prune_after_ms: Option<u64>,
    /// Which tools agents may run, and where (`tools.*`, `agents.*`).
    pub tool_policy: crate::tool_policy::ToolPolicy,
    /// Model providers and the model of each agent (`models.providers`, `agents.*.model`).
    pub models: crate::models::ModelCatalog,
    /// Whether commands run, wait for approval or are refused (`tools.exec`), and each agent's
    /// own policy where it sets one.
    pub exec_policy: crate::approvals::ExecPolicy,
    pub agent_exec_policies: std::collections::BTreeMap<String, crate::approvals::ExecPolicy>,
    /// `cron.*` and heartbeats.
    pub cron: crate::scheduler::CronSettings,
    /// `hooks.*`: the inbound webhooks.
    pub hooks: crate::hooks::HooksConfig,
    /// `channels.*`, `bindings` and the DM and group scopes.
    pub channels: crate::channel_config::ChannelsConfig,
    /// The whole document after `${ENV}` substitution, for `config get` and for diffing on reload.
    pub document: Value,
    /// The file's text as read (before `${ENV}` substitution), for `config.get` and the writes
    /// over RPC, which edit what the user wrote, not what it resolved to.
    pub text: Option<String>,
}

/// Top-level sections of OpenClaw's schema. Keys under them that Clawgate does not read are
/// accepted (with a warning) so that a real `openclaw.json` works.
pub(crate) const OPENCLAW_SECTIONS: &[&str] = &[
    "$schema",
    "meta",
    "identity",
    "wizard",
    "logging",
    "agents",
    "tools",
    "bindings",
    "audio",
    "agent",
    "routing",
    "messages",
    "session",
    "talk",
    "skills",
    "secrets",
    "ui",
    "plugins",
    "gateway",
    "discovery",
    "canvasHost",
    "browser",
    "web",
    "models",
    "hooks",
    "cron",
    "channels",
    "diagnostics",
    "update",
    "env",
    "commands",
    "approvals",
    "memory",
    "auth",
    "media",
    "mcp",
    "nodeHost",
    "broadcast",
];

/// Keys of OpenClaw's `gateway` section (current and recent releases).
pub(crate) const OPENCLAW_GATEWAY_KEYS: &[&str] = &[
    "port",
    "mode",
    "bind",
    "customBindHost",
    "controlUi",
    "auth",
    "tailscale",
    "remote",
    "reload",
    "tls",
    "http",
    "push",
    "nodes",
    "trustedProxies",
    "allowRealIpFallback",
    "tools",
    "webchat",
    "channelHealthCheckMinutes",
    "channelStaleEventThresholdMinutes",
    "channelMaxRestartsPerHour",
    "publicOrigin",
    "roles",
    "terminal",
    "cliAgents",
];

/// Dotted paths Clawgate reads (a path is "used" when it equals one of these or lies below one).
const USED: &[&str] = &[
    "gateway.port",
    "gateway.mode",
    "gateway.bind",
    "gateway.customBindHost",
    "gateway.auth.mode",
    "gateway.auth.token",
    "gateway.auth.password",
    "gateway.auth.rateLimit",
    "gateway.auth.trustedProxy",
    "gateway.trustedProxies",
    "gateway.controlUi.enabled",
    "gateway.controlUi.root",
    "gateway.controlUi.basePath",
    "gateway.controlUi.allowedOrigins",
    "gateway.reload.mode",
    "gateway.reload.debounceMs",
    "gateway.http.endpoints",
    "gateway.nodes.pairing.autoApproveLocal",
    "gateway.tools.allow",
    "gateway.tools.deny",
    "tools.allow",
    "tools.deny",
    "tools.exec.host",
    "tools.exec.mode",
    "tools.exec.security",
    "tools.exec.ask",
    "tools.exec.askFallback",
    "agents.list",
    "agents.defaults.workspace",
    "agents.defaults.model",
    "models.providers",
    "agents.defaults.systemAgent.agentId",
    "agents.defaults.sandbox.mode",
    "agents.defaults.sandbox.scope",
    "agents.defaults.sandbox.workspaceAccess",
    "session.mainKey",
    "session.scope",
    "session.maintenance.pruneAfter",
    "session.dmScope",
    "session.groupScope",
    "bindings",
    "channels.irc",
    "channels.telegram",
    "channels.matrix",
    "hooks.enabled",
    "hooks.token",
    "hooks.path",
    "hooks.allowedAgentIds",
    "hooks.defaultSessionKey",
    "hooks.allowRequestSessionKey",
    "hooks.allowedSessionKeyPrefixes",
    "hooks.mappings",
    "hooks.presets",
    "cron.enabled",
    "cron.skipMissedJobs",
    "cron.maxConcurrentRuns",
    "agents.defaults.heartbeat.every",
    "agents.defaults.heartbeat.prompt",
    "$schema",
];

/// Settings of OpenClaw's schema that promise a protection Clawgate does not provide yet. Accepting
/// them with a warning would leave a user believing they are protected, so a file that asks for
/// one of them is refused (exit 78) with what to do instead. Each entry: the dotted path, whether
/// the value asks for the protection, and the advice.
type Protection = (&'static str, fn(&Value) -> bool, &'static str);

const UNHONORED_PROTECTIONS: &[Protection] = &[
    (
        "gateway.tls.enabled",
        |v| v == &Value::Bool(true),
        "TLS is not implemented yet, so the gateway would serve plaintext; put a TLS-terminating \
         reverse proxy in front of it and set gateway.tls.enabled to false",
    ),
    (
        "tools.profile",
        |v| v.as_str().is_some_and(|s| s != "full"),
        "tool profiles are not implemented yet, so every tool would be offered; list the tools \
         with tools.allow instead",
    ),
    (
        "tools.byProvider",
        |v| v.as_object().is_some_and(|m| !m.is_empty()),
        "per-provider tool policies are not implemented yet; use tools.allow and tools.deny",
    ),
    (
        "tools.sandbox.tools",
        |v| v.as_object().is_some_and(|m| !m.is_empty()),
        "a separate tool policy for sandboxed sessions is not implemented yet; use tools.allow \
         and tools.deny (they apply in sandboxes too)",
    ),
];

/// The first setting of [`UNHONORED_PROTECTIONS`] the document asks for (globally or in an agent
/// entry), as its path and the advice.
fn unhonored_protection(doc: &Value) -> Option<(String, &'static str)> {
    let mut prefixes = vec![String::new()];
    for (id, _) in doc
        .get("agents")
        .and_then(|a| a.get("entries"))
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        prefixes.push(format!("agents.entries.{id}."));
    }
    UNHONORED_PROTECTIONS.iter().find_map(|(path, asks, advice)| {
        prefixes.iter().find_map(|prefix| {
            let full = format!("{prefix}{path}");
            // Agent entries carry tool settings only.
            if !prefix.is_empty() && !path.starts_with("tools.") {
                return None;
            }
            get(doc, &full).filter(|v| asks(v)).map(|_| (full, *advice))
        })
    })
}

/// `gateway.auth.trustedProxy`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxyConfig {
    /// The header carrying the authenticated user (e.g. `x-forwarded-user`).
    pub user_header: Option<String>,
    /// Headers that must be present and non-empty.
    pub required_headers: Vec<String>,
    /// When non-empty, only these users are let in.
    pub allow_users: Vec<String>,
    /// Whether a proxy on loopback may vouch for users.
    pub allow_loopback: bool,
}

/// Placeholder the reference gateway puts where a secret would be.
pub const REDACTED: &str = "__OPENCLAW_REDACTED__";

pub use crate::duration::parse_duration_ms;

/// Where `needle` (a key) first appears in `text`, as 1-based line and column.
fn locate(text: &str, needle: &str) -> (usize, usize) {
    position(text, find_key(text, needle).unwrap_or(0))
}

/// The byte offset of `key` written as a key (quoted or bare) in `text`.
fn find_key(text: &str, key: &str) -> Option<usize> {
    let candidates = [format!("\"{key}\""), format!("'{key}'"), key.to_owned()];
    candidates.iter().find_map(|c| text.find(c.as_str()))
}

/// Line and column (1-based) of a byte offset.
fn position(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = at - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// The offset of the innermost `{` or `[` that is never closed, skipping strings and comments.
fn unclosed_bracket(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut open = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' => open.push(i),
            b'}' | b']' => {
                open.pop();
            }
            quote @ (b'"' | b'\'') => {
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    open.pop()
}

fn bracket_name(text: &str, at: usize) -> &'static str {
    if text.as_bytes().get(at) == Some(&b'[') {
        "list"
    } else {
        "object"
    }
}

/// Where a dotted path's last key appears, looking for each key after the one before it, so that
/// `agents.list[].sandbox.mode` is not found at `gateway.mode`.
fn locate_path(text: &str, path: &str) -> (usize, usize) {
    let mut at = 0;
    for key in path.split('.').map(|k| k.trim_end_matches("[]")) {
        match find_key(&text[at..], key) {
            Some(offset) => at += offset,
            None => break,
        }
    }
    position(text, at)
}

/// Replaces `${NAME}` in every string with the variable's value; a missing variable is an error.
/// `$${NAME}` stays literal as `${NAME}`.
fn substitute(value: &mut Value, env: &dyn Fn(&str) -> Option<String>, path: &str) -> Result<(), String> {
    match value {
        Value::String(s) if s.contains("${") => {
            let mut out = String::with_capacity(s.len());
            let mut rest = s.as_str();
            while let Some(i) = rest.find("${") {
                let escaped = i > 0 && rest.as_bytes()[i - 1] == b'$';
                let Some(end) = rest[i..].find('}') else { break };
                let name = &rest[i + 2..i + end];
                if escaped {
                    out.push_str(&rest[..i - 1]);
                    out.push_str(&rest[i..i + end + 1]);
                } else {
                    out.push_str(&rest[..i]);
                    let v = env(name).ok_or_else(|| format!("{path}: environment variable {name} is not set"))?;
                    out.push_str(&v);
                }
                rest = &rest[i + end + 1..];
            }
            out.push_str(rest);
            *s = out;
            Ok(())
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute(item, env, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                substitute(
                    v,
                    env,
                    &if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    },
                )?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Every leaf path of the document (objects recursed, arrays as one leaf).
pub fn leaf_paths(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaf_paths(v, &path, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

/// Keys Clawgate reads inside each `agents.entries.<id>` (OpenClaw 2026.9's form of `agents.list`).
const USED_IN_AGENT_ENTRY: &[&str] = &[
    "workspace",
    "model",
    "tools.exec.host",
    "tools.exec.mode",
    "tools.exec.security",
    "tools.exec.ask",
    "tools.exec.askFallback",
    "tools.allow",
    "tools.deny",
    "sandbox.mode",
    "sandbox.scope",
    "sandbox.workspaceAccess",
    "heartbeat.every",
    "heartbeat.prompt",
];

fn used(path: &str) -> bool {
    let under = |list: &[&str], path: &str| list.iter().any(|u| path == *u || path.starts_with(&format!("{u}.")));
    if let Some((_, inside)) = path
        .strip_prefix("agents.entries.")
        .and_then(|rest| rest.split_once('.'))
    {
        return under(USED_IN_AGENT_ENTRY, inside);
    }
    under(USED, path)
}

fn get<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |v, k| v.get(k))
}

/// The value at a dotted path, for `config get`.
pub fn get_path<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    get(doc, path)
}

/// Parses and checks a configuration file. Returns the settings and the warnings to print.
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<(FileSettings, Vec<String>), ConfigError> {
    let mut doc: Value = json5::from_str(text).map_err(|e| {
        let msg = e.to_string();
        // json5 reports "... at line L column C" (1-based).
        let pos = msg
            .rsplit_once(" at line ")
            .and_then(|(_, rest)| rest.split_once(" column "))
            .and_then(|(l, c)| Some((l.trim().parse().ok()?, c.trim().parse().ok()?)));
        let mut message = format!("invalid JSON5: {}", msg.split(" at line ").next().unwrap_or(&msg));
        // At the end of the text the parser reports 1:1, which is no position.
        let pos = pos.filter(|_| !msg.contains("EOF"));
        let (line, column) = match pos {
            Some(p) => p,
            // The parser gives no position for a text that ends too early: the end is where it
            // went wrong, and the bracket left open is what the user has to find.
            None => {
                if let Some(open) = unclosed_bracket(text) {
                    let (l, c) = position(text, open);
                    message.push_str(&format!(
                        " (the {} opened at {l}:{c} is not closed)",
                        bracket_name(text, open)
                    ));
                }
                position(text, text.trim_end().len())
            }
        };
        ConfigError { line, column, message }
    })?;
    let Some(root) = doc.as_object() else {
        return Err(ConfigError {
            line: 1,
            column: 1,
            message: "the configuration must be an object".into(),
        });
    };
    for key in root.keys() {
        if !OPENCLAW_SECTIONS.contains(&key.as_str()) {
            let (line, column) = locate(text, key);
            return Err(ConfigError {
                line,
                column,
                message: format!("unknown key: {key}"),
            });
        }
    }
    if let Some(gateway) = root.get("gateway").and_then(Value::as_object) {
        for key in gateway.keys() {
            if !OPENCLAW_GATEWAY_KEYS.contains(&key.as_str()) {
                let (line, column) = locate(text, key);
                return Err(ConfigError {
                    line,
                    column,
                    message: format!("unknown key: gateway.{key}"),
                });
            }
        }
    }
    substitute(&mut doc, env, "").map_err(|message| ConfigError {
        line: 1,
        column: 1,
        message,
    })?;

    let type_error = |path: &str, expected: &str| {
        let (line, column) = locate_path(text, path);
        ConfigError {
            line,
            column,
            message: format!("{path}: expected {expected}"),
        }
    };
    let string = |path: &str| -> Result<Option<String>, ConfigError> {
        match get(&doc, path) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(type_error(path, "a string")),
        }
    };
    let uint = |path: &str| -> Result<Option<u64>, ConfigError> {
        match get(&doc, path) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| type_error(path, "a non-negative integer")),
        }
    };
    let boolean = |path: &str| -> Result<Option<bool>, ConfigError> {
        match get(&doc, path) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_bool().map(Some).ok_or_else(|| type_error(path, "true or false")),
        }
    };
    let strings = |path: &str| -> Result<Vec<String>, ConfigError> {
        match get(&doc, path) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| type_error(path, "a list of strings"))
                })
                .collect(),
            Some(_) => Err(type_error(path, "a list of strings")),
        }
    };

    let port = match uint("gateway.port")? {
        None => None,
        Some(p) if (1..=65535).contains(&p) => Some(p as u16),
        Some(_) => return Err(type_error("gateway.port", "a port between 1 and 65535")),
    };
    let bind = string("gateway.bind")?;
    if let Some(b) = &bind {
        if !matches!(b.as_str(), "loopback" | "lan" | "tailnet" | "auto" | "custom") {
            return Err(type_error("gateway.bind", "loopback, lan, tailnet, auto or custom"));
        }
    }
    let auth_mode = string("gateway.auth.mode")?;
    if let Some(m) = &auth_mode {
        if clawgate_proto::auth::AuthMode::parse(m).is_none() {
            return Err(type_error(
                "gateway.auth.mode",
                "none, token, password or trusted-proxy",
            ));
        }
    }
    let reload_mode = string("gateway.reload.mode")?;
    if let Some(m) = &reload_mode {
        if !matches!(m.as_str(), "off" | "hot" | "restart" | "hybrid") {
            return Err(type_error("gateway.reload.mode", "off, hot, restart or hybrid"));
        }
    }
    let session_scope = match string("session.scope")?.as_deref() {
        None => None,
        Some("per-sender") => Some(clawgate_proto::session::SessionScope::PerSender),
        Some("global") => Some(clawgate_proto::session::SessionScope::Global),
        Some(_) => return Err(type_error("session.scope", "per-sender or global")),
    };
    let session_prune_after_ms = match get(&doc, "session.maintenance.pruneAfter") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .ok_or_else(|| type_error("session.maintenance.pruneAfter", "a duration such as \"30d\""))?,
        ),
        Some(Value::String(text)) => Some(
            parse_duration_ms(text)
                .ok_or_else(|| type_error("session.maintenance.pruneAfter", "a duration such as \"30d\""))?,
        ),
        Some(_) => {
            return Err(type_error(
                "session.maintenance.pruneAfter",
                "a duration such as \"30d\"",
            ))
        }
    };
    if let Some((path, advice)) = unhonored_protection(&doc) {
        let (line, column) = locate_path(text, &path);
        return Err(ConfigError {
            line,
            column,
            message: format!("{path}: {advice}"),
        });
    }
    let tool_policy =
        crate::tool_policy::ToolPolicy::from_document(&doc).map_err(|(path, expected)| type_error(&path, expected))?;
    let models =
        crate::models::ModelCatalog::from_document(&doc).map_err(|(path, expected)| type_error(&path, expected))?;
    let (exec_policy, agent_exec_policies) =
        crate::approvals::ExecPolicy::per_agent(&doc).map_err(|(path, expected)| type_error(&path, expected))?;
    let cron =
        crate::scheduler::CronSettings::from_document(&doc).map_err(|(path, expected)| type_error(&path, expected))?;
    let hooks =
        crate::hooks::HooksConfig::from_document(&doc).map_err(|(path, expected)| type_error(&path, expected))?;
    let channels = crate::channel_config::ChannelsConfig::from_document(&doc)
        .map_err(|(path, expected)| type_error(&path, expected))?;
    let rate_limit = match get(&doc, "gateway.auth.rateLimit") {
        None | Some(Value::Null) => None,
        Some(Value::Object(_)) => {
            let defaults = crate::rate_limit::RateLimitConfig::default();
            Some(crate::rate_limit::RateLimitConfig {
                max_attempts: uint("gateway.auth.rateLimit.maxAttempts")?.map_or(defaults.max_attempts, |v| v as usize),
                window_ms: uint("gateway.auth.rateLimit.windowMs")?.unwrap_or(defaults.window_ms),
                lockout_ms: uint("gateway.auth.rateLimit.lockoutMs")?.unwrap_or(defaults.lockout_ms),
                exempt_loopback: boolean("gateway.auth.rateLimit.exemptLoopback")?.unwrap_or(defaults.exempt_loopback),
            })
        }
        Some(_) => return Err(type_error("gateway.auth.rateLimit", "an object")),
    };
    let settings = FileSettings {
        port,
        bind,
        custom_bind_host: string("gateway.customBindHost")?,
        auth_mode,
        auth_token: string("gateway.auth.token")?,
        auth_password: string("gateway.auth.password")?,
        rate_limit,
        trusted_proxies: strings("gateway.trustedProxies")?,
        trusted_proxy: TrustedProxyConfig {
            user_header: string("gateway.auth.trustedProxy.userHeader")?.map(|h| h.to_ascii_lowercase()),
            required_headers: strings("gateway.auth.trustedProxy.requiredHeaders")?
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            allow_users: strings("gateway.auth.trustedProxy.allowUsers")?,
            allow_loopback: boolean("gateway.auth.trustedProxy.allowLoopback")?.unwrap_or(false),
        },
        allowed_origins: strings("gateway.controlUi.allowedOrigins")?,
        control_ui_root: string("gateway.controlUi.root")?,
        control_ui_base_path: string("gateway.controlUi.basePath")?,
        reload_mode,
        reload_debounce_ms: uint("gateway.reload.debounceMs")?,
        auto_approve_local: boolean("gateway.nodes.pairing.autoApproveLocal")?,
        main_key: string("session.mainKey")?,
        session_scope,
        session_prune_after_ms,
        tool_policy,
        models,
        exec_policy,
        agent_exec_policies,
        cron,
        hooks,
        channels,
        document: doc.clone(),
        text: Some(text.to_owned()),
    };
    let mut paths = Vec::new();
    leaf_paths(&doc, "", &mut paths);
    let unused: Vec<String> = paths.into_iter().filter(|p| !p.is_empty() && !used(p)).collect();
    let mut warnings = if unused.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "keys of OpenClaw's schema that Clawgate does not use (accepted, ignored): {}",
            unused.join(", ")
        )]
    };
    warnings.extend(settings.models.warnings());
    Ok((settings, warnings))
}

/// A copy of the document with secrets replaced, for `config get` and `config.get`.
pub fn redacted(doc: &Value) -> Value {
    fn walk(v: &mut Value) {
        if let Value::Object(map) = v {
            for (k, val) in map.iter_mut() {
                let secret = matches!(k.as_str(), "token" | "password" | "apiKey" | "secret");
                if secret && val.is_string() {
                    *val = Value::String(REDACTED.to_owned());
                } else {
                    walk(val);
                }
            }
        }
    }
    let mut copy = doc.clone();
    walk(&mut copy);
    copy
}

/// An empty document, for a gateway started without a file.
pub fn empty_document() -> Value {
    Value::Object(Map::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_realistic_openclaw_file_is_accepted_with_one_warning() {
        let text = r#"{
          // written by openclaw config set
          gateway: { mode: "local", port: 18853, auth: { mode: "token", token: "t" },
                     http: { endpoints: { chatCompletions: { enabled: true } } } },
          agents: { defaults: { model: { primary: "fakeai/fake-golden" } } },
          models: { mode: "merge", providers: {} },
        }"#;
        let (s, warnings) = parse(text, &no_env).unwrap();
        assert_eq!(s.port, Some(18853));
        assert_eq!(s.auth_token.as_deref(), Some("t"));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(!warnings[0].contains("agents.defaults.model.primary"));
        assert!(warnings[0].contains("models.mode"));
        assert!(warnings[1].contains("names provider fakeai"), "{warnings:?}");
        assert!(!warnings[0].contains("gateway.port"));
    }

    #[test]
    fn unknown_keys_wrong_types_and_bad_json5_carry_positions() {
        let e = parse("{\n  gateway: {},\n  frobnicate: 1\n}", &no_env).unwrap_err();
        assert_eq!((e.line, e.column), (3, 3));
        assert!(e.message.contains("unknown key: frobnicate"));
        let e = parse("{\n  gateway: { warp: 1 }\n}", &no_env).unwrap_err();
        assert!(e.message.contains("gateway.warp"));
        let e = parse("{\n gateway: {\n   port: \"x\" } }", &no_env).unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("gateway.port"));
        let e = parse("{\n  gateway: { port: 1,\n", &no_env).unwrap_err();
        assert!(e.message.starts_with("invalid JSON5"));
        assert!(e.line >= 2);
    }

    #[test]
    fn a_missing_closing_brace_is_reported_where_the_object_opened() {
        let text = "{\n  \"gateway\": {\n    \"port\": 18789\n  }\n";
        let e = parse(text, &no_env).unwrap_err();
        assert_ne!((e.line, e.column), (1, 1), "{}", e.message);
        assert!(
            e.message.contains("1:1"),
            "the message names where the open object started: {}",
            e.message
        );
    }

    #[test]
    fn a_protection_that_is_not_implemented_stops_the_start() {
        for (text, path) in [
            (r#"{ gateway: { tls: { enabled: true } } }"#, "gateway.tls.enabled"),
            (r#"{ tools: { profile: "minimal" } }"#, "tools.profile"),
            (
                r#"{ agents: { entries: { ops: { tools: { profile: "minimal" } } } } }"#,
                "agents.entries.ops.tools.profile",
            ),
        ] {
            let e = parse(text, &no_env).unwrap_err();
            assert!(e.message.starts_with(&format!("{path}: ")), "{text}: {}", e.message);
            assert!(e.message.contains("not implemented"), "{}", e.message);
        }
        // Asking for nothing, or for what Clawgate does, is accepted: the gateway-wide exec
        // policy is honored with approvals.
        for text in [
            r#"{ gateway: { tls: { enabled: false } } }"#,
            r#"{ tools: { exec: { ask: "off", security: "full" }, profile: "full" } }"#,
            r#"{ tools: { exec: { host: "gateway", mode: "ask" } } }"#,
            r#"{ tools: { exec: { security: "allowlist", ask: "always" } } }"#,
            r#"{ agents: { entries: { ops: { tools: { exec: { ask: "on-miss" } } } } } }"#,
        ] {
            assert!(parse(text, &no_env).is_ok(), "{text}");
        }
    }

    #[test]
    fn environment_variables_are_substituted() {
        let env = |n: &str| (n == "GW_TOKEN").then(|| "from-env".to_owned());
        let (s, _) = parse(r#"{ gateway: { auth: { token: "${GW_TOKEN}" } } }"#, &env).unwrap();
        assert_eq!(s.auth_token.as_deref(), Some("from-env"));
        let (s, _) = parse(r#"{ gateway: { auth: { token: "a$${GW_TOKEN}b" } } }"#, &env).unwrap();
        assert_eq!(s.auth_token.as_deref(), Some("a${GW_TOKEN}b"));
        assert!(parse(r#"{ gateway: { auth: { token: "${MISSING}" } } }"#, &env).is_err());
    }

    #[test]
    fn session_scope_and_the_default_agent_are_read() {
        let (s, warnings) = parse(
            r#"{ session: { scope: "global", mainKey: "desk" },
                 agents: { list: [{ id: "home", workspace: "/w" }, { id: "Ops", default: true }] } }"#,
            &no_env,
        )
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(s.session_scope, Some(clawgate_proto::session::SessionScope::Global));
        assert_eq!(s.tool_policy.default_agent.as_ref().map(|a| a.as_str()), Some("ops"));
        let (s, _) = parse(r#"{ agents: { list: [{ id: "first" }, { id: "second" }] } }"#, &no_env).unwrap();
        assert_eq!(s.tool_policy.default_agent.as_ref().map(|a| a.as_str()), Some("first"));
        let (s, _) = parse("{}", &no_env).unwrap();
        assert_eq!((s.session_scope, s.tool_policy.default_agent), (None, None));

        let (s, warnings) = parse(r#"{ session: { maintenance: { pruneAfter: "12h" } } }"#, &no_env).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(s.session_prune_after_ms, Some(12 * 3_600_000));
        assert_eq!(parse_duration_ms("30d"), Some(30 * 86_400_000));
        assert_eq!(parse_duration_ms("90m"), Some(5_400_000));
        assert_eq!(parse_duration_ms("soon"), None);
        let e = parse("{ session: { maintenance: { pruneAfter: \"later\" } } }", &no_env).unwrap_err();
        assert!(e.message.contains("session.maintenance.pruneAfter"), "{}", e.message);
        let e = parse("{\n  session: { scope: \"per-planet\" } }", &no_env).unwrap_err();
        assert!(e.message.contains("session.scope") && e.message.contains("per-sender or global"));
        assert_eq!(e.line, 2);
        let e = parse("{ agents: { list: [{ default: true }] } }", &no_env).unwrap_err();
        assert!(e.message.contains("agents.list"), "{}", e.message);
        assert!(parse("{ agents: { list: { id: \"x\" } } }", &no_env).is_err());
    }

    #[test]
    fn tool_policy_errors_point_at_the_offending_key() {
        let text = "{\n  gateway: { mode: \"local\" },\n  agents: { list: [\n    { id: \"a\", sandbox: { mode: \"sometimes\" } } ] } }";
        let e = parse(text, &no_env).unwrap_err();
        assert!(
            e.message
                .contains("agents.list[].sandbox.mode: expected off, non-main or all"),
            "{}",
            e.message
        );
        assert_eq!((e.line, e.column), (4, 27));
        let (s, warnings) = parse(
            r#"{ tools: { deny: ["exec"] }, agents: { defaults: { sandbox: { mode: "all", docker: { image: "x" } } } } }"#,
            &no_env,
        )
        .unwrap();
        assert_eq!(s.tool_policy.global.deny.len(), 1);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("agents.defaults.sandbox.docker.image") && !warnings[0].contains("sandbox.mode"));
    }

    #[test]
    fn the_agents_entries_form_written_by_openclaw_2026_9_is_read() {
        // As `openclaw config set agents.list ...` leaves the file.
        let text = r#"{
          agents: {
            ownership: "explicit",
            defaults: { heartbeat: { agentId: "ops" }, systemAgent: { agentId: "Ops" } },
            entries: {
              main: { workspace: "/srv/main" },
              ops: { tools: { allow: ["group:fs"] }, sandbox: { mode: "all", workspaceAccess: "ro" }, model: { primary: "m" } },
            },
          },
          tools: { deny: ["exec"] },
        }"#;
        let (s, warnings) = parse(text, &no_env).unwrap();
        assert_eq!(s.tool_policy.default_agent.as_ref().map(|a| a.as_str()), Some("ops"));
        let ops = s
            .tool_policy
            .agent(&clawgate_proto::session::AgentId::normalize("ops"))
            .unwrap();
        assert_eq!(ops.tools.allow.len(), 1);
        assert_eq!(ops.sandbox.mode, Some(crate::tool_policy::SandboxMode::All));
        assert_eq!(
            s.tool_policy
                .agent(&clawgate_proto::session::AgentId::normalize("main"))
                .unwrap()
                .workspace
                .as_deref(),
            Some("/srv/main")
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        let w = &warnings[0];
        assert!(
            !w.contains("agents.entries.ops.model") && w.contains("agents.ownership"),
            "{w}"
        );
        assert!(
            warnings[1].contains("agents.entries.ops.model: m is not provider/model"),
            "{warnings:?}"
        );
        assert!(
            !w.contains("sandbox") && !w.contains("tools.") && !w.contains("systemAgent"),
            "{w}"
        );

        let e = parse(
            r#"{ agents: { entries: { ops: { sandbox: { scope: "planet" } } } } }"#,
            &no_env,
        )
        .unwrap_err();
        assert!(e
            .message
            .starts_with("agents.entries.ops.sandbox.scope: expected session, agent or shared"));
        assert!(parse(r#"{ agents: { entries: { ops: 3 } } }"#, &no_env).is_err());
        assert!(parse(r#"{ agents: { entries: [] } }"#, &no_env).is_err());
    }

    #[test]
    fn redaction_hides_secrets() {
        let (s, _) = parse(r#"{ gateway: { auth: { token: "sekrit" } } }"#, &no_env).unwrap();
        assert!(!redacted(&s.document).to_string().contains("sekrit"));
    }
}
