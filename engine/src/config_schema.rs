//! `config.schema` and `config.schema.lookup`: a JSON Schema (draft-07) of the keys Clawgate
//! reads, and the form hints the Control UI's settings pages draw from it.
//!
//! The keys of OpenClaw's schema that Clawgate accepts but does not read are in the schema too,
//! as open objects marked `"x-clawgate": "ignored"`, so that a settings page shows them for what
//! they are instead of hiding a file's contents.

use crate::reload::reload_kind;
use clawgate_proto::frame::{ErrorCode, ErrorShape, RequestFrame};
use serde_json::{json, Map, Value};

/// The schema's version: it changes when the table below does.
const SCHEMA_VERSION: &str = "clawgate-1";

/// The type of a key, as the schema gives it.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    /// A secret: the settings pages mask it, and `config.get` redacts it.
    Secret,
    Port,
    Count,
    Switch,
    /// A duration such as `30m`, or milliseconds.
    Duration,
    Texts,
    OneOf(&'static [&'static str]),
    /// An object whose keys are names the user chooses (providers, agents).
    Named,
    /// A list of objects.
    Entries,
}

/// A key Clawgate reads: its path, type, label and help (and whether the forms fold it away).
struct Key {
    path: &'static str,
    kind: Kind,
    label: &'static str,
    help: &'static str,
    advanced: bool,
}

const fn key(path: &'static str, kind: Kind, label: &'static str, help: &'static str) -> Key {
    Key {
        path,
        kind,
        label,
        help,
        advanced: false,
    }
}

const fn advanced(path: &'static str, kind: Kind, label: &'static str, help: &'static str) -> Key {
    Key {
        path,
        kind,
        label,
        help,
        advanced: true,
    }
}

/// Top-level sections: label, group and order on the settings pages.
const SECTIONS: &[(&str, &str, &str, u32)] = &[
    ("gateway", "Gateway", "Gateway", 30),
    ("agents", "Agents", "Agents", 40),
    ("tools", "Tools", "Tools", 50),
    ("models", "Models", "Models", 70),
    ("session", "Session", "Session", 90),
    ("cron", "Automations", "Automations", 100),
    ("hooks", "Webhooks", "Automations", 110),
];

const KEYS: &[Key] = &[
    key("gateway.port", Kind::Port, "Port", "The one TCP port for WebSocket RPC, the HTTP API and the Control UI. A restart applies a change."),
    key("gateway.mode", Kind::OneOf(&["local", "remote"]), "Mode", "local: this machine runs the gateway. Clawgate always runs it; remote is accepted for files shared with a client."),
    key("gateway.bind", Kind::OneOf(&["loopback", "lan", "tailnet", "auto", "custom"]), "Bind", "Which addresses the port listens on. loopback keeps the gateway to this machine."),
    advanced("gateway.customBindHost", Kind::Text, "Custom bind host", "The address to listen on when bind is custom."),
    key("gateway.auth.mode", Kind::OneOf(&["token", "password", "none", "trusted-proxy"]), "Auth mode", "How callers prove who they are: a shared token, a password, a trusted reverse proxy, or nothing (loopback only)."),
    key("gateway.auth.token", Kind::Secret, "Token", "The shared token. A change applies at once; sockets that used the old one close at their next request."),
    key("gateway.auth.password", Kind::Secret, "Password", "The shared password, for auth mode password."),
    advanced("gateway.auth.rateLimit", Kind::Named, "Failed-auth limit", "How many failed attempts an address may make in a window before it is locked out for a while."),
    advanced("gateway.auth.trustedProxy", Kind::Named, "Trusted proxy", "For auth mode trusted-proxy: the header that names the user, headers that must be present, and the users allowed."),
    advanced("gateway.trustedProxies", Kind::Texts, "Trusted proxies", "Addresses of reverse proxies whose forwarding headers are believed."),
    key("gateway.controlUi.enabled", Kind::Switch, "Control UI", "Serve the Control UI on the gateway port."),
    advanced("gateway.controlUi.root", Kind::Text, "Control UI folder", "A folder with a Control UI build to serve instead of the one found next to the binary."),
    advanced("gateway.controlUi.basePath", Kind::Text, "Control UI path", "The URL path the Control UI is served under."),
    advanced("gateway.controlUi.allowedOrigins", Kind::Texts, "Allowed origins", "Browser origins besides the gateway's own that may open the WebSocket."),
    key("gateway.reload.mode", Kind::OneOf(&["hybrid", "hot", "restart", "off"]), "Reload mode", "What an edit of this file does: hybrid applies what it can live and restarts for the rest; hot never restarts; restart always does; off ignores edits."),
    advanced("gateway.reload.debounceMs", Kind::Count, "Reload debounce (ms)", "How long the file must stay unchanged before it is read."),
    advanced("gateway.http.endpoints", Kind::Named, "HTTP endpoints", "Switches for the optional HTTP APIs, such as chatCompletions."),
    advanced("gateway.nodes.pairing.autoApproveLocal", Kind::Switch, "Approve local devices", "Pair devices that connect from this machine without asking."),
    advanced("gateway.tools.allow", Kind::Texts, "HTTP tools allowed", "Tools that POST /tools/invoke may run."),
    advanced("gateway.tools.deny", Kind::Texts, "HTTP tools denied", "Tools that POST /tools/invoke may never run."),
    key("tools.allow", Kind::Texts, "Tools allowed", "The tools agents may call; empty means every tool Clawgate has."),
    key("tools.deny", Kind::Texts, "Tools denied", "Tools agents may never call. A denial wins over an allowance."),
    key("tools.exec.host", Kind::OneOf(&["sandbox", "gateway", "node"]), "Exec host", "Where exec runs commands."),
    key("tools.exec.mode", Kind::OneOf(&["ask", "allowlist", "full", "deny"]), "Exec mode", "Whether exec asks an operator, runs only allowlisted commands, runs anything, or nothing."),
    advanced("tools.exec.security", Kind::OneOf(&["deny", "allowlist", "full"]), "Exec security", "Which commands exec may run without asking."),
    advanced("tools.exec.ask", Kind::OneOf(&["off", "on-miss", "always"]), "Exec ask", "When exec asks an operator first."),
    advanced("tools.exec.askFallback", Kind::OneOf(&["deny", "allowlist", "full"]), "Exec ask fallback", "What happens when nobody answers an approval in time."),
    key("agents.defaults.workspace", Kind::Text, "Workspace", "The folder agents work in; their bootstrap files (AGENTS.md, SOUL.md, ...) are read from it."),
    key("agents.defaults.model", Kind::Named, "Model", "The model agents use, as provider/model in primary."),
    advanced("agents.defaults.systemAgent.agentId", Kind::Text, "Default agent", "The agent that answers when a request names none."),
    advanced("agents.defaults.sandbox.mode", Kind::OneOf(&["off", "non-main", "all"]), "Sandbox", "Which sessions run their tools confined."),
    advanced("agents.defaults.sandbox.scope", Kind::OneOf(&["session", "agent", "shared"]), "Sandbox scope", "What one sandbox is shared by."),
    advanced("agents.defaults.sandbox.workspaceAccess", Kind::OneOf(&["none", "ro", "rw"]), "Workspace access", "What a sandboxed tool may do with the workspace."),
    key("agents.defaults.heartbeat.every", Kind::Duration, "Heartbeat every", "How often each agent gets a heartbeat turn (for example 30m); 0 turns heartbeats off."),
    advanced("agents.defaults.heartbeat.prompt", Kind::Text, "Heartbeat prompt", "What a heartbeat turn asks the agent."),
    key("agents.list", Kind::Entries, "Agents", "The agents, each with an id and what it overrides of the defaults."),
    key("models.providers", Kind::Named, "Providers", "Model providers by id: baseUrl, apiKey (or ${ENV}), api, and their models."),
    key("session.mainKey", Kind::Text, "Main session", "The key of each agent's main session."),
    key("session.scope", Kind::OneOf(&["per-sender", "global"]), "Session scope", "Whether each sender gets a session or everybody shares one."),
    advanced("session.maintenance.pruneAfter", Kind::Duration, "Prune idle sessions after", "Sessions idle for longer than this (for example 30d) are removed, transcripts and all."),
    key("cron.enabled", Kind::Switch, "Automations", "Run scheduled jobs and heartbeats. Off keeps the jobs and runs none."),
    key("cron.skipMissedJobs", Kind::Switch, "Skip missed runs", "After the gateway was down, skip the runs it missed instead of making each up once."),
    advanced("cron.maxConcurrentRuns", Kind::Count, "Runs at once", "How many jobs may run at the same time."),
    key("hooks.enabled", Kind::Switch, "Webhooks", "Serve POST /hooks/wake and /hooks/agent. Needs a token. A restart applies a change."),
    key("hooks.token", Kind::Secret, "Hook token", "The webhooks' own secret, sent as a Bearer or x-openclaw-token header; not the gateway token."),
    advanced("hooks.path", Kind::Text, "Hook path", "The base path of the webhooks (default /hooks; / is refused)."),
    advanced("hooks.allowedAgentIds", Kind::Texts, "Agents hooks may reach", "Agent ids a hook may run; * or no list allows all, an empty list none."),
    advanced("hooks.allowRequestSessionKey", Kind::Switch, "Caller session keys", "Let a request name its session key (held to the prefixes below)."),
    advanced("hooks.allowedSessionKeyPrefixes", Kind::Texts, "Session key prefixes", "Prefixes a caller's session key must start with."),
];

/// What Clawgate does when a key is not in the file (JSON text), for the forms to show.
const DEFAULTS: &[(&str, &str)] = &[
    ("gateway.port", "18789"),
    ("gateway.mode", "\"local\""),
    ("gateway.bind", "\"loopback\""),
    ("gateway.auth.mode", "\"token\""),
    ("gateway.controlUi.enabled", "true"),
    ("gateway.reload.mode", "\"hybrid\""),
    ("gateway.reload.debounceMs", "300"),
    ("gateway.nodes.pairing.autoApproveLocal", "true"),
    ("agents.defaults.heartbeat.every", "\"30m\""),
    ("agents.defaults.sandbox.mode", "\"off\""),
    ("session.mainKey", "\"main\""),
    ("session.scope", "\"per-sender\""),
    ("session.maintenance.pruneAfter", "\"30d\""),
    ("cron.enabled", "true"),
    ("cron.skipMissedJobs", "false"),
    ("cron.maxConcurrentRuns", "1"),
];

fn kind_schema(kind: Kind) -> Value {
    match kind {
        Kind::Text => json!({"type": "string"}),
        Kind::Secret => json!({"type": "string", "writeOnly": true}),
        Kind::Port => json!({"type": "integer", "minimum": 1, "maximum": 65535}),
        Kind::Count => json!({"type": "integer", "minimum": 0}),
        Kind::Switch => json!({"type": "boolean"}),
        Kind::Duration => json!({"type": ["string", "number"]}),
        Kind::Texts => json!({"type": "array", "items": {"type": "string"}}),
        Kind::OneOf(values) => json!({"type": "string", "enum": values}),
        Kind::Named => json!({"type": "object", "additionalProperties": true}),
        Kind::Entries => json!({"type": "array", "items": {"type": "object", "additionalProperties": true}}),
    }
}

fn ignored() -> Value {
    json!({
        "type": "object",
        "additionalProperties": true,
        "description": "Accepted as OpenClaw writes it; Clawgate does not read it.",
        "x-clawgate": "ignored",
    })
}

fn object() -> Value {
    json!({"type": "object", "properties": {}, "additionalProperties": true})
}

/// The schema of the object at `parents` (dotted parts), made on the way down: a part that is
/// missing becomes an open object, and one marked ignored that holds a key Clawgate reads
/// becomes a plain object.
fn place<'a>(root: &'a mut Value, parents: &[&str]) -> &'a mut Value {
    let mut at = root;
    for part in parents {
        if !at["properties"].is_object() {
            at["properties"] = json!({});
        }
        let child = &mut at["properties"][*part];
        if child.is_null() || child.get("x-clawgate").is_some() {
            *child = object();
        }
        at = child;
    }
    if !at["properties"].is_object() {
        at["properties"] = json!({});
    }
    at
}

fn build_schema() -> Value {
    let mut root = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {},
        "additionalProperties": false,
    });
    for section in crate::settings::OPENCLAW_SECTIONS {
        root["properties"][*section] = ignored();
    }
    for (section, label, _, _) in SECTIONS {
        let mut s = object();
        s["title"] = json!(label);
        root["properties"][*section] = s;
    }
    for gateway_key in crate::settings::OPENCLAW_GATEWAY_KEYS {
        root["properties"]["gateway"]["properties"][*gateway_key] = ignored();
    }
    for k in KEYS {
        let parts: Vec<&str> = k.path.split('.').collect();
        let (leaf, parents) = match parts.split_last() {
            Some(split) => split,
            None => continue,
        };
        let mut schema = kind_schema(k.kind);
        schema["title"] = json!(k.label);
        schema["description"] = json!(k.help);
        if let Some(default) = DEFAULTS
            .iter()
            .find(|(path, _)| *path == k.path)
            .and_then(|(_, text)| serde_json::from_str::<Value>(text).ok())
        {
            schema["default"] = default;
        }
        place(&mut root, parents)["properties"][*leaf] = schema;
    }
    root
}

fn ui_hints() -> Value {
    let mut hints = Map::new();
    for (section, label, group, order) in SECTIONS {
        hints.insert(
            (*section).to_owned(),
            json!({"label": label, "group": group, "order": order, "advanced": false}),
        );
    }
    for k in KEYS {
        let mut hint = json!({"label": k.label, "help": k.help, "advanced": k.advanced});
        if matches!(k.kind, Kind::Secret) {
            hint["sensitive"] = json!(true);
        }
        hints.insert(k.path.to_owned(), hint);
    }
    Value::Object(hints)
}

/// `config.schema`.
pub(crate) fn schema(now_ms: u64) -> Value {
    json!({
        "schema": build_schema(),
        "uiHints": ui_hints(),
        "version": SCHEMA_VERSION,
        "generatedAt": crate::scheduler::iso(now_ms),
    })
}

/// `config.schema.lookup {path}`: the schema at a dotted path, its hint, how a change applies,
/// and its children.
pub(crate) fn lookup(request: &RequestFrame) -> Result<Value, ErrorShape> {
    let invalid = |why: &str| {
        ErrorShape::new(
            ErrorCode::InvalidRequest,
            format!("invalid config.schema.lookup params: {why}"),
        )
    };
    let p: Value = serde_json::from_str(request.params_text()).map_err(|e| invalid(&e.to_string()))?;
    let path = p
        .get("path")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("path is required"))?;
    let root = build_schema();
    let mut at = &root;
    for part in path.split('.') {
        // Below a key Clawgate accepts and ignores, anything is accepted and ignored the same way.
        if at.get("x-clawgate").is_some() {
            break;
        }
        at = at.get("properties").and_then(|props| props.get(part)).ok_or_else(|| {
            ErrorShape::new(
                ErrorCode::InvalidRequest,
                format!("config schema path not found: {path}"),
            )
        })?;
    }
    let hints = ui_hints();
    let hint = hints.get(path).cloned();
    let children: Vec<Value> = at
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .map(|(name, child)| {
                    let child_path = format!("{path}.{name}");
                    json!({
                        "key": name,
                        "path": child_path,
                        "type": child.get("type"),
                        "required": false,
                        "hasChildren": child.get("properties").and_then(Value::as_object).is_some_and(|m| !m.is_empty()),
                        "hint": hints.get(&child_path),
                        "hintPath": hints.get(&child_path).map(|_| child_path.clone()),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(json!({
        "path": path,
        "schema": at,
        "reloadKind": reload_kind(path),
        "hint": hint,
        "hintPath": hint.as_ref().map(|_| path),
        "children": children,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_clawgate_reads_is_in_the_schema() {
        let root = build_schema();
        for k in KEYS {
            let mut at = &root;
            for part in k.path.split('.') {
                at = &at["properties"][part];
            }
            assert_eq!(at["title"], k.label, "{}", k.path);
        }
    }

    #[test]
    fn every_default_is_json_of_a_key_clawgate_reads() {
        for (path, text) in DEFAULTS {
            assert!(KEYS.iter().any(|k| k.path == *path), "{path}");
            assert!(serde_json::from_str::<Value>(text).is_ok(), "{path}");
        }
    }

    #[test]
    fn a_path_below_an_ignored_section_is_ignored_too() {
        let request = RequestFrame::new(
            "l",
            "config.schema.lookup",
            &json!({"path": "plugins.entries.memory-core.config"}),
        );
        let found = lookup(&request).unwrap();
        assert_eq!(found["schema"]["x-clawgate"], "ignored");
        assert_eq!(found["reloadKind"], "restart");
    }

    #[test]
    fn a_section_clawgate_does_not_read_is_marked_ignored() {
        let root = build_schema();
        assert_eq!(root["properties"]["channels"]["x-clawgate"], "ignored");
        assert_eq!(
            root["properties"]["gateway"]["properties"]["tls"]["x-clawgate"],
            "ignored"
        );
        assert!(root["properties"]["gateway"].get("x-clawgate").is_none());
    }
}
