//! Properties of the tool policy: no combination of lists lets a denied tool through.

use clawgate_engine::tool_policy::{ToolDecision, ToolPolicy, TOOLS};
use clawgate_proto::session::{AgentId, SessionRouting};
use proptest::prelude::*;
use serde_json::{json, Value};

const NAMES: &[&str] = &[
    "read",
    "ls",
    "write",
    "edit",
    "exec",
    "process",
    "bash",
    "browser",
    "apply_patch",
];

fn entry() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(NAMES).prop_map(str::to_owned),
        prop::sample::select(NAMES).prop_map(|n| n.to_uppercase()),
        prop::sample::select(&["group:fs", "group:runtime", "group:ui", "group:nodes", "group:unknown"][..])
            .prop_map(str::to_owned),
        "[a-z]{0,2}\\*[a-z]{0,2}(\\*[a-z]{0,2})?",
    ]
}

fn list() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(entry(), 0..4)
}

/// An independent reading of an entry, to check the policy against.
fn names(entry: &str, tool: &str) -> bool {
    fn glob(p: &[u8], t: &[u8]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((b'*', rest)) => (0..=t.len()).any(|i| glob(rest, &t[i..])),
            Some((c, rest)) => t.first() == Some(c) && glob(rest, &t[1..]),
        }
    }
    let entry = entry.to_ascii_lowercase();
    match entry.strip_prefix("group:") {
        Some("fs") => ["read", "write", "edit", "ls"].contains(&tool),
        Some("runtime") => ["exec", "process"].contains(&tool),
        Some(_) => false,
        None => glob(entry.as_bytes(), tool.as_bytes()),
    }
}

fn lets_through(allow: &[String], deny: &[String], tool: &str) -> bool {
    !deny.iter().any(|e| names(e, tool)) && (allow.is_empty() || allow.iter().any(|e| names(e, tool)))
}

#[derive(Debug, Clone)]
struct Case {
    global_allow: Vec<String>,
    global_deny: Vec<String>,
    agent_allow: Vec<String>,
    agent_deny: Vec<String>,
    agent_listed: bool,
    mode: &'static str,
    access: &'static str,
    main_session: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        (list(), list(), list(), list()),
        any::<bool>(),
        prop::sample::select(&["off", "non-main", "all"][..]),
        prop::sample::select(&["none", "ro", "rw"][..]),
        any::<bool>(),
    )
        .prop_map(
            |((global_allow, global_deny, agent_allow, agent_deny), agent_listed, mode, access, main_session)| Case {
                global_allow,
                global_deny,
                agent_allow,
                agent_deny,
                agent_listed,
                mode,
                access,
                main_session,
            },
        )
}

fn document(c: &Case) -> Value {
    let mut agents = vec![json!({"id": "other", "tools": {"deny": ["*"]}})];
    if c.agent_listed {
        agents.push(json!({
            "id": "Worker",
            "tools": {"allow": c.agent_allow, "deny": c.agent_deny},
            "sandbox": {"mode": c.mode, "workspaceAccess": c.access},
        }));
    }
    json!({
        "tools": {"allow": c.global_allow, "deny": c.global_deny},
        "agents": {"list": agents},
    })
}

fn decide(c: &Case, tool: &str) -> ToolDecision {
    let policy = ToolPolicy::from_document(&document(c)).unwrap();
    let session = if c.main_session {
        "agent:worker:main"
    } else {
        "agent:worker:cron:job:run:1"
    };
    policy.decide(&SessionRouting::default(), &AgentId::normalize("worker"), session, tool)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, .. ProptestConfig::default() })]

    #[test]
    fn only_tools_every_layer_lets_through_are_allowed(c in case(), tool in prop::sample::select(NAMES)) {
        let shipped = TOOLS.iter().any(|t| t.name == tool);
        let global = lets_through(&c.global_allow, &c.global_deny, tool);
        let agent = !c.agent_listed || lets_through(&c.agent_allow, &c.agent_deny, tool);
        match decide(&c, tool) {
            ToolDecision::Allowed { tool: spec, sandbox, .. } => {
                prop_assert!(shipped && global && agent, "{tool} allowed: {c:?}");
                prop_assert_eq!(spec.name, tool);
                let sandboxed = c.agent_listed && (c.mode == "all" || (c.mode == "non-main" && !c.main_session));
                prop_assert_eq!(sandbox.is_some(), sandboxed);
            }
            ToolDecision::Denied(_) => {
                // Refused only for a reason: a list, an unknown tool or the sandbox's access.
                let sandbox_refuses = c.agent_listed
                    && (c.mode == "all" || (c.mode == "non-main" && !c.main_session))
                    && match c.access {
                        "none" => ["read", "ls", "write", "edit"].contains(&tool),
                        "ro" => ["write", "edit"].contains(&tool),
                        _ => false,
                    };
                prop_assert!(!shipped || !global || !agent || sandbox_refuses, "{tool} denied: {c:?}");
            }
        }
    }

    #[test]
    fn adding_a_deny_entry_never_grants_anything(c in case(), extra in entry(), to_agent in any::<bool>()) {
        let mut more = c.clone();
        if to_agent { more.agent_deny.push(extra.clone()) } else { more.global_deny.push(extra.clone()) }
        for tool in NAMES {
            let before = matches!(decide(&c, tool), ToolDecision::Allowed { .. });
            let after = matches!(decide(&more, tool), ToolDecision::Allowed { .. });
            prop_assert!(before || !after, "{tool} granted by denying {extra:?}");
            if names(&extra, tool) && (!to_agent || c.agent_listed) {
                prop_assert!(!after, "{tool} still allowed after denying {extra:?}");
            }
        }
    }
}
