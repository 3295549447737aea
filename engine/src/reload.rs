//! The reload planner: which changes of the configuration apply live and which need a restart.
//!
//! The old and new documents are diffed into dotted leaf paths (arrays compared whole), each path
//! is matched against a rule table (the longest matching prefix wins; no rule means restart), and
//! the reload mode turns the result into a plan.

use serde_json::Value;

/// `gateway.reload.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadMode {
    /// Never act on changes.
    Off,
    /// Apply what is hot; ignore (loudly) what would need a restart.
    Hot,
    /// Restart on any change.
    Restart,
    /// Apply hot changes live, restart when anything needs it (the default).
    Hybrid,
}

impl ReloadMode {
    pub fn parse(s: &str) -> Option<ReloadMode> {
        Some(match s {
            "off" => ReloadMode::Off,
            "hot" => ReloadMode::Hot,
            "restart" => ReloadMode::Restart,
            "hybrid" => ReloadMode::Hybrid,
            _ => return None,
        })
    }
}

/// Something the running gateway can change without restarting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HotAction {
    /// New shared token or password: new connects use it, old shared-secret sockets close 4001.
    AuthSecret,
    RateLimit,
    TrustedProxies,
    AllowedOrigins,
    ToolPolicy,
    /// The agent list: the default agent may change.
    Agents,
    /// `session.mainKey` / `session.scope`: where `main` points.
    SessionRouting,
    HttpEndpoints,
    PairingPolicy,
    /// `cron.*` and heartbeats.
    Cron,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Nothing,
    Hot(HotAction),
    Restart,
}

/// Longest prefix wins; a path not covered needs a restart.
const RULES: &[(&str, Rule)] = &[
    ("$schema", Rule::Nothing),
    ("gateway.reload", Rule::Nothing),
    ("gateway.remote", Rule::Nothing),
    ("gateway.auth.token", Rule::Hot(HotAction::AuthSecret)),
    ("gateway.auth.password", Rule::Hot(HotAction::AuthSecret)),
    ("gateway.auth.rateLimit", Rule::Hot(HotAction::RateLimit)),
    ("gateway.auth.trustedProxy", Rule::Hot(HotAction::TrustedProxies)),
    ("gateway.trustedProxies", Rule::Hot(HotAction::TrustedProxies)),
    ("gateway.controlUi.allowedOrigins", Rule::Hot(HotAction::AllowedOrigins)),
    ("gateway.http.endpoints", Rule::Hot(HotAction::HttpEndpoints)),
    ("gateway.nodes.pairing", Rule::Hot(HotAction::PairingPolicy)),
    ("gateway.tools", Rule::Hot(HotAction::ToolPolicy)),
    ("gateway", Rule::Restart),
    ("tools", Rule::Hot(HotAction::ToolPolicy)),
    ("agents.list", Rule::Hot(HotAction::Agents)),
    ("agents.entries", Rule::Hot(HotAction::Agents)),
    ("agents.defaults.systemAgent", Rule::Hot(HotAction::Agents)),
    ("agents.defaults.sandbox", Rule::Hot(HotAction::ToolPolicy)),
    ("agents.defaults.workspace", Rule::Hot(HotAction::ToolPolicy)),
    ("agents.defaults.model", Rule::Hot(HotAction::Agents)),
    ("agents.defaults.heartbeat", Rule::Hot(HotAction::Cron)),
    ("cron", Rule::Hot(HotAction::Cron)),
    ("meta", Rule::Nothing),
    // Chat commands are not served; `openclaw pairing approve` writes `commands.ownerAllowFrom`.
    ("commands", Rule::Nothing),
    ("identity", Rule::Nothing),
    ("wizard", Rule::Nothing),
    ("logging", Rule::Nothing),
    ("agents", Rule::Nothing),
    ("bindings", Rule::Nothing),
    ("audio", Rule::Nothing),
    ("agent", Rule::Nothing),
    ("routing", Rule::Nothing),
    ("messages", Rule::Nothing),
    ("session.mainKey", Rule::Hot(HotAction::SessionRouting)),
    ("session.scope", Rule::Hot(HotAction::SessionRouting)),
    ("session.maintenance.pruneAfter", Rule::Hot(HotAction::SessionRouting)),
    ("session", Rule::Nothing),
    ("talk", Rule::Nothing),
    ("skills", Rule::Nothing),
    ("secrets", Rule::Nothing),
    ("ui", Rule::Nothing),
    ("models.providers", Rule::Hot(HotAction::Agents)),
    ("models", Rule::Nothing),
    ("plugins", Rule::Restart),
    ("discovery", Rule::Restart),
    ("canvasHost", Rule::Restart),
];

fn rule_for(path: &str) -> Rule {
    RULES
        .iter()
        .filter(|(prefix, _)| path == *prefix || path.starts_with(&format!("{prefix}.")))
        .max_by_key(|(prefix, _)| prefix.len())
        .map_or(Rule::Restart, |(_, rule)| *rule)
}

/// How a change at `path` takes effect: `hot` (applied live), `restart`, or `none` (nothing
/// reads it), as `config.schema.lookup` reports it.
pub fn reload_kind(path: &str) -> &'static str {
    match rule_for(path) {
        Rule::Nothing => "none",
        Rule::Hot(_) => "hot",
        Rule::Restart => "restart",
    }
}

/// Dotted paths whose values differ (objects recursed, arrays and scalars compared whole).
pub fn changed_paths(old: &Value, new: &Value) -> Vec<String> {
    fn walk(old: Option<&Value>, new: Option<&Value>, path: &str, out: &mut Vec<String>) {
        let empty = Value::Object(serde_json::Map::new());
        // A section that appears or disappears changes each of its leaves, not the section as a
        // whole: `gateway.controlUi.allowedOrigins` added is hot even if `gateway.controlUi` was absent.
        let (old, new) = match (old, new) {
            (None, Some(b @ Value::Object(_))) => (Some(&empty), Some(b)),
            (Some(a @ Value::Object(_)), None) => (Some(a), Some(&empty)),
            other => other,
        };
        match (old, new) {
            (Some(Value::Object(a)), Some(Value::Object(b))) => {
                let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(a.get(k), b.get(k), &p, out);
                }
            }
            (a, b) if a == b => {}
            _ => out.push(if path.is_empty() {
                "<root>".to_owned()
            } else {
                path.to_owned()
            }),
        }
    }
    let mut out = Vec::new();
    walk(Some(old), Some(new), "", &mut out);
    out
}

/// What to do about a change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadPlan {
    /// Every changed path.
    pub changed: Vec<String>,
    /// Hot actions to apply now (each once).
    pub hot: Vec<HotAction>,
    /// Whether the gateway must restart.
    pub restart: bool,
    /// Paths that need a restart but were not acted on (mode `hot` or `off`), to say loudly.
    pub ignored: Vec<String>,
}

/// The plan for going from `old` to `new` under `mode`.
pub fn plan(mode: ReloadMode, old: &Value, new: &Value) -> ReloadPlan {
    let changed = changed_paths(old, new);
    let mut hot = Vec::new();
    let mut needs_restart = Vec::new();
    for path in &changed {
        match rule_for(path) {
            Rule::Nothing => {}
            Rule::Hot(a) => hot.push(a),
            Rule::Restart => needs_restart.push(path.clone()),
        }
    }
    hot.sort();
    hot.dedup();
    match mode {
        ReloadMode::Off => ReloadPlan {
            ignored: changed.clone(),
            changed,
            ..Default::default()
        },
        ReloadMode::Restart => ReloadPlan {
            restart: !changed.is_empty(),
            changed,
            ..Default::default()
        },
        ReloadMode::Hot => ReloadPlan {
            changed,
            hot,
            restart: false,
            ignored: needs_restart,
        },
        ReloadMode::Hybrid if !needs_restart.is_empty() => ReloadPlan {
            changed,
            hot: Vec::new(),
            restart: true,
            ignored: Vec::new(),
        },
        ReloadMode::Hybrid => ReloadPlan {
            changed,
            hot,
            restart: false,
            ignored: Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({"gateway": {"port": 18789, "auth": {"mode": "token", "token": "a"}, "reload": {"mode": "hybrid"}},
               "agents": {"list": [{"id": "main"}], "defaults": {"model": "m"}}, "tools": {"allow": ["read"]}})
    }

    fn with(path: &str, v: Value) -> Value {
        let mut doc = base();
        let mut cur = &mut doc;
        let parts: Vec<&str> = path.split('.').collect();
        for p in &parts[..parts.len() - 1] {
            cur = cur.as_object_mut().unwrap().entry(p.to_string()).or_insert(json!({}));
        }
        cur[parts[parts.len() - 1]] = v;
        doc
    }

    #[test]
    fn a_token_change_is_hot() {
        let p = plan(ReloadMode::Hybrid, &base(), &with("gateway.auth.token", json!("b")));
        assert_eq!(p.changed, vec!["gateway.auth.token"]);
        assert_eq!(p.hot, vec![HotAction::AuthSecret]);
        assert!(!p.restart);
    }

    #[test]
    fn port_bind_and_auth_mode_need_a_restart_in_hybrid() {
        for (path, v) in [
            ("gateway.port", json!(1)),
            ("gateway.bind", json!("lan")),
            ("gateway.auth.mode", json!("password")),
            ("gateway.tls.enabled", json!(true)),
        ] {
            let p = plan(ReloadMode::Hybrid, &base(), &with(path, v));
            assert!(p.restart, "{path}");
            assert!(p.hot.is_empty());
        }
    }

    #[test]
    fn what_openclaw_pairing_approve_writes_restarts_nothing() {
        let mut new = with("commands.ownerAllowFrom", json!(["irc:dave"]));
        new["meta"] = json!({"lastTouchedVersion": "2026.9.6"});
        let p = plan(ReloadMode::Hybrid, &base(), &new);
        assert!(!p.restart && p.hot.is_empty(), "{p:?}");
    }

    #[test]
    fn hot_mode_applies_what_it_can_and_names_what_it_ignored() {
        let mut new = with("gateway.port", json!(1));
        new["gateway"]["auth"]["token"] = json!("b");
        let p = plan(ReloadMode::Hot, &base(), &new);
        assert!(!p.restart);
        assert_eq!(p.hot, vec![HotAction::AuthSecret]);
        assert_eq!(p.ignored, vec!["gateway.port"]);
    }

    #[test]
    fn restart_mode_restarts_on_anything_and_off_does_nothing() {
        let new = with("gateway.auth.token", json!("b"));
        assert!(plan(ReloadMode::Restart, &base(), &new).restart);
        let off = plan(ReloadMode::Off, &base(), &new);
        assert!(!off.restart && off.hot.is_empty());
        assert_eq!(off.ignored, vec!["gateway.auth.token"]);
    }

    #[test]
    fn the_longest_prefix_wins() {
        assert_eq!(rule_for("agents.list"), Rule::Hot(HotAction::Agents));
        assert_eq!(rule_for("agents.defaults.model"), Rule::Hot(HotAction::Agents));
        assert_eq!(
            rule_for("models.providers.fakeai.baseUrl"),
            Rule::Hot(HotAction::Agents)
        );
        assert_eq!(rule_for("agents.entries.ops.tools.deny"), Rule::Hot(HotAction::Agents));
        assert_eq!(
            rule_for("agents.defaults.systemAgent.agentId"),
            Rule::Hot(HotAction::Agents)
        );
        assert_eq!(rule_for("session.scope"), Rule::Hot(HotAction::SessionRouting));
        assert_eq!(rule_for("session.dmScope"), Rule::Nothing);
        assert_eq!(
            rule_for("agents.defaults.sandbox.mode"),
            Rule::Hot(HotAction::ToolPolicy)
        );
        assert_eq!(rule_for("gateway.reload.mode"), Rule::Nothing);
        assert_eq!(
            rule_for("gateway.auth.rateLimit.maxAttempts"),
            Rule::Hot(HotAction::RateLimit)
        );
        assert_eq!(rule_for("gateway.auth.modeX"), Rule::Restart);
        assert_eq!(rule_for("browser.enabled"), Rule::Restart, "no rule means restart");
    }

    #[test]
    fn an_added_section_is_judged_by_its_leaves() {
        let mut new = base();
        new["gateway"]["controlUi"] = json!({"allowedOrigins": ["https://x"]});
        let p = plan(ReloadMode::Hybrid, &base(), &new);
        assert_eq!(p.changed, vec!["gateway.controlUi.allowedOrigins"]);
        assert_eq!(p.hot, vec![HotAction::AllowedOrigins]);
        assert!(!p.restart);
    }

    #[test]
    fn arrays_change_as_a_whole_and_unchanged_documents_plan_nothing() {
        let p = plan(
            ReloadMode::Hybrid,
            &base(),
            &with("agents.list", json!([{"id": "main"}, {"id": "b"}])),
        );
        assert_eq!(p.changed, vec!["agents.list"]);
        assert_eq!(p.hot, vec![HotAction::Agents]);
        assert_eq!(plan(ReloadMode::Hybrid, &base(), &base()), ReloadPlan::default());
        let p = plan(ReloadMode::Hybrid, &base(), &with("gateway.reload.mode", json!("hot")));
        assert!(!p.restart && p.hot.is_empty());
    }
}
