//! `tools.catalog` and `tools.effective`: the tools this gateway ships, and what one session may use.

use crate::tool_policy::{RiskClass, ToolDecision, ToolPolicy, ToolSpec, WorkspaceAccess, TOOLS};
use clawgate_proto::session::{AgentId, SessionRouting};
use serde_json::{json, Value};

/// Catalog groups: id, label, and the tools in it.
const GROUPS: &[(&str, &str, &[&str])] = &[
    ("fs", "Files", &["read", "ls", "write", "edit"]),
    ("runtime", "Runtime", &["exec", "process"]),
];

fn risk(tool: &ToolSpec) -> &'static str {
    match tool.risk {
        RiskClass::Read => "low",
        RiskClass::Write => "medium",
        RiskClass::Execute => "high",
    }
}

fn entry(tool: &ToolSpec) -> Value {
    json!({
        "id": tool.name,
        "label": tool.name,
        "description": tool.summary,
        "source": "core",
        "risk": risk(tool),
        "defaultProfiles": ["coding", "full"],
    })
}

/// Every shipped tool, grouped as OpenClaw's catalog groups them.
pub(crate) fn catalog(agent: &AgentId) -> Value {
    let groups: Vec<Value> = GROUPS
        .iter()
        .map(|(id, label, names)| {
            let tools: Vec<Value> = names.iter().filter_map(|n| ToolSpec::find(n)).map(entry).collect();
            json!({"id": id, "label": label, "source": "core", "tools": tools})
        })
        .collect();
    json!({
        "agentId": agent.as_str(),
        "profiles": [
            {"id": "minimal", "label": "Minimal"},
            {"id": "coding", "label": "Coding"},
            {"id": "messaging", "label": "Messaging"},
            {"id": "full", "label": "Full"},
        ],
        "groups": groups,
    })
}

/// The tools `agent` may use in session `key`, with a notice for each one it may not and one
/// saying whether the session is sandboxed.
pub(crate) fn effective(policy: &ToolPolicy, routing: &SessionRouting, agent: &AgentId, key: &str) -> Value {
    let mut allowed = Vec::new();
    let mut notices = Vec::new();
    let mut sandbox_note = None;
    for tool in TOOLS {
        match policy.decide(routing, agent, key, tool.name) {
            ToolDecision::Allowed { sandbox, .. } => {
                if let Some(plan) = sandbox {
                    let access = match plan.access {
                        WorkspaceAccess::None => "no",
                        WorkspaceAccess::ReadOnly => "read-only",
                        WorkspaceAccess::ReadWrite => "read-write",
                    };
                    sandbox_note = Some(format!("tools in {key} run sandboxed with {access} workspace access"));
                }
                allowed.push(json!({
                    "id": tool.name,
                    "label": tool.name,
                    "description": tool.summary,
                    "rawDescription": tool.summary,
                    "source": "core",
                    "risk": risk(tool),
                }));
            }
            ToolDecision::Denied(why) => notices.push(json!({
                "id": format!("denied:{}", tool.name),
                "severity": "info",
                "message": format!("{}: {why}", tool.name),
            })),
        }
    }
    if let Some(message) = sandbox_note {
        notices.push(json!({"id": "sandbox", "severity": "info", "message": message}));
    }
    json!({
        "agentId": agent.as_str(),
        "profile": "full",
        "groups": [{"id": "core", "label": "Built-in tools", "source": "core", "tools": allowed}],
        "notices": notices,
    })
}

/// The tools a run of `agent` in session `key` is offered, as the function schemas the model
/// sees: the ones the policy allows there (a call still passes the policy again when it comes).
pub(crate) fn offered(policy: &ToolPolicy, routing: &SessionRouting, agent: &AgentId, key: &str) -> Vec<Value> {
    TOOLS
        .iter()
        .filter(|tool| {
            matches!(
                policy.decide(routing, agent, key, tool.name),
                ToolDecision::Allowed { .. }
            )
        })
        .map(|tool| json!({"name": tool.name, "description": tool.summary, "parameters": tool.schema()}))
        .collect()
}
