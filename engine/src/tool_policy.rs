//! Which tools an agent may run, and whether in a sandbox: a pure function of the config.
//!
//! The policy is read from the same keys OpenClaw writes: `tools.allow` / `tools.deny` for the
//! whole gateway, and per agent in `agents.entries.<id>` (or the older `agents.list[]`):
//! `tools.allow` / `tools.deny`, `workspace` and
//! `sandbox.{mode, scope, workspaceAccess}` (with `agents.defaults` for what an agent leaves out).
//!
//! A call is allowed only when every layer (global, then the agent's) lets it through: a layer's
//! `deny` always wins, and a non-empty `allow` blocks everything it does not name. Entries are tool
//! names, `group:<name>` shorthands or `*` patterns, compared without regard to case. A tool
//! Clawgate does not ship is refused whatever the lists say.
//!
//! Sandboxed calls are confined to the agent's workspace with the configured access. Choices
//! written down here because OpenClaw's own sandbox is a container and Clawgate's is not:
//! with `workspaceAccess: "ro"` the tools that change files (`write`, `edit`) are refused inside the
//! sandbox, and with `"none"` every tool that touches the workspace is refused (`exec` and `process`
//! still run, in an empty confinement).

use clawgate_proto::session::{AgentId, SessionRouting};
use serde_json::{json, Value};
use std::fmt;

/// How much harm a tool can do, which decides how it is treated over HTTP and in a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RiskClass {
    /// Reads the workspace.
    Read,
    /// Changes files in the workspace.
    Write,
    /// Runs or controls programs.
    Execute,
}

impl RiskClass {
    /// The class as it appears in `tools.catalog`.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskClass::Read => "read",
            RiskClass::Write => "write",
            RiskClass::Execute => "execute",
        }
    }
}

/// A tool Clawgate ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolSpec {
    /// The name agents call it by.
    pub name: &'static str,
    /// What it can do.
    pub risk: RiskClass,
    /// Whether it touches the agent's workspace (and so needs workspace access in a sandbox).
    pub uses_workspace: bool,
    /// One line for `tools.catalog`.
    pub summary: &'static str,
}

/// Every tool Clawgate ships, in catalog order.
pub const TOOLS: &[ToolSpec] = &[
    ToolSpec {
        name: "read",
        risk: RiskClass::Read,
        uses_workspace: true,
        summary: "Read a file of the workspace",
    },
    ToolSpec {
        name: "ls",
        risk: RiskClass::Read,
        uses_workspace: true,
        summary: "List a directory of the workspace",
    },
    ToolSpec {
        name: "write",
        risk: RiskClass::Write,
        uses_workspace: true,
        summary: "Create or replace a file of the workspace",
    },
    ToolSpec {
        name: "edit",
        risk: RiskClass::Write,
        uses_workspace: true,
        summary: "Replace one exact string in a file of the workspace",
    },
    ToolSpec {
        name: "exec",
        risk: RiskClass::Execute,
        uses_workspace: false,
        summary: "Run a command with arguments (no shell unless asked)",
    },
    ToolSpec {
        name: "process",
        risk: RiskClass::Execute,
        uses_workspace: false,
        summary: "List or stop processes started by exec",
    },
];

impl ToolSpec {
    /// The spec of the tool called `name` (any case).
    pub fn find(name: &str) -> Option<&'static ToolSpec> {
        TOOLS.iter().find(|t| t.name.eq_ignore_ascii_case(name.trim()))
    }

    /// The JSON schema of the tool's arguments.
    pub fn schema(&self) -> Value {
        let path = json!({"type": "string", "minLength": 1, "description": "a path relative to the workspace"});
        let (properties, required) = match self.name {
            "read" => (
                json!({"path": path, "offset": {"type": "integer", "minimum": 0}, "limit": {"type": "integer", "minimum": 1}}),
                json!(["path"]),
            ),
            "ls" => (json!({"path": path}), json!([])),
            "write" => (
                json!({"path": path, "content": {"type": "string"}}),
                json!(["path", "content"]),
            ),
            "edit" => (
                json!({"path": path, "oldText": {"type": "string", "minLength": 1}, "newText": {"type": "string"}}),
                json!(["path", "oldText", "newText"]),
            ),
            "exec" => (
                json!({
                    "command": {"type": "string", "minLength": 1},
                    "args": {"type": "array", "items": {"type": "string"}},
                    "shell": {"type": "boolean", "description": "run command through /bin/sh -c"},
                    "timeoutMs": {"type": "integer", "minimum": 1},
                }),
                json!(["command"]),
            ),
            _ => (
                json!({"action": {"enum": ["list", "kill"]}, "pid": {"type": "integer"}}),
                json!(["action"]),
            ),
        };
        json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
    }
}

/// The tools a `group:<name>` entry stands for. Groups name OpenClaw tools too, so that a list
/// written for OpenClaw means the same here; the ones Clawgate does not ship simply match nothing.
/// `ls` is Clawgate's own and belongs with the file tools.
fn group(name: &str) -> Option<&'static [&'static str]> {
    Some(match name {
        "runtime" => &["exec", "bash", "process"],
        "fs" => &["read", "write", "edit", "apply_patch", "ls"],
        "sessions" => &[
            "sessions_list",
            "sessions_history",
            "sessions_send",
            "sessions_spawn",
            "session_status",
        ],
        "memory" => &["memory_search", "memory_get"],
        "ui" => &["browser", "canvas"],
        "automation" => &["cron", "gateway"],
        "messaging" => &["message"],
        "nodes" => &["nodes"],
        _ => return None,
    })
}

/// One entry of an allow or deny list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolPattern {
    /// A tool name, lower case.
    Name(String),
    /// `group:<name>`.
    Group(String),
    /// A pattern with `*` standing for any run of characters, lower case.
    Glob(String),
}

impl ToolPattern {
    /// Parses one list entry; `None` for an empty one. A group this gateway does not know (one of
    /// OpenClaw's plugin groups, say) is kept and matches none of Clawgate's tools.
    pub fn parse(raw: &str) -> Option<ToolPattern> {
        let entry = raw.trim().to_ascii_lowercase();
        if entry.is_empty() {
            return None;
        }
        if let Some(name) = entry.strip_prefix("group:") {
            return Some(ToolPattern::Group(name.to_owned()));
        }
        if entry.contains('*') {
            return Some(ToolPattern::Glob(entry));
        }
        Some(ToolPattern::Name(entry))
    }

    /// Whether the entry names `tool` (a lower-case name).
    pub fn matches(&self, tool: &str) -> bool {
        match self {
            ToolPattern::Name(name) => name == tool,
            ToolPattern::Group(name) => group(name).is_some_and(|tools| tools.contains(&tool)),
            ToolPattern::Glob(pattern) => glob_matches(pattern, tool),
        }
    }

    /// The entry as written in config.
    pub fn as_config(&self) -> String {
        match self {
            ToolPattern::Name(s) | ToolPattern::Glob(s) => s.clone(),
            ToolPattern::Group(name) => format!("group:{name}"),
        }
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let tail: Vec<&str> = parts.collect();
    let Some((last, middle)) = tail.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// An allow list and a deny list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ToolLists {
    /// When not empty, only tools it names get through.
    pub allow: Vec<ToolPattern>,
    /// Tools that never get through.
    pub deny: Vec<ToolPattern>,
}

/// Where sandboxing applies (`sandbox.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SandboxMode {
    /// Everything runs unconfined.
    #[default]
    Off,
    /// Every session but the agent's main one is sandboxed.
    NonMain,
    /// Everything is sandboxed.
    All,
}

/// What a sandbox shares (`sandbox.scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SandboxScope {
    /// One sandbox per session.
    #[default]
    Session,
    /// One per agent.
    Agent,
    /// One for the whole gateway.
    Shared,
}

/// What a sandboxed tool may do to the agent's workspace (`sandbox.workspaceAccess`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
pub enum WorkspaceAccess {
    /// No access to the workspace.
    #[default]
    None,
    /// Read only.
    ReadOnly,
    /// Read and write.
    ReadWrite,
}

/// The sandbox settings of an agent; `None` fields fall back to `agents.defaults.sandbox`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SandboxSettings {
    /// `mode`.
    pub mode: Option<SandboxMode>,
    /// `scope`.
    pub scope: Option<SandboxScope>,
    /// `workspaceAccess`.
    pub workspace_access: Option<WorkspaceAccess>,
}

/// One agent's part of the policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentToolPolicy {
    /// The agent, normalised.
    pub id: AgentId,
    /// Its workspace directory, if the config names one.
    pub workspace: Option<String>,
    /// Its own lists, applied after the global ones.
    pub tools: ToolLists,
    /// Its sandbox settings.
    pub sandbox: SandboxSettings,
}

/// The whole tool policy of a gateway.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ToolPolicy {
    /// `tools.allow` / `tools.deny`.
    pub global: ToolLists,
    /// `agents.defaults.workspace`.
    pub default_workspace: Option<String>,
    /// `agents.defaults.sandbox`.
    pub default_sandbox: SandboxSettings,
    /// `agents.entries` and `agents.list[]`.
    pub agents: Vec<AgentToolPolicy>,
    /// `gateway.tools.allow` / `gateway.tools.deny`: extra lists for `POST /tools/invoke`.
    pub http: ToolLists,
    /// The default agent the config names: `agents.defaults.systemAgent.agentId` (OpenClaw
    /// 2026.9), else the `agents.list` entry marked `default`, else its first entry.
    pub default_agent: Option<AgentId>,
}

/// Which list refused a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyLayer {
    /// `tools.*`.
    Global,
    /// The agent's own `tools.*`.
    Agent,
    /// `gateway.tools.*`, for calls over HTTP.
    Http,
}

/// Why a tool call is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolDenial {
    /// Clawgate ships no tool of that name.
    UnknownTool,
    /// A deny entry names the tool.
    Denied {
        /// The list's layer.
        layer: PolicyLayer,
        /// The entry that matched, as written.
        entry: String,
    },
    /// The layer has an allow list that does not name the tool.
    NotAllowed {
        /// The list's layer.
        layer: PolicyLayer,
    },
    /// Over HTTP, tools that run programs need naming in `gateway.tools.allow`.
    ExecOverHttp,
    /// The call would be sandboxed and the sandbox's workspace access does not permit the tool.
    WorkspaceAccess {
        /// The access the sandbox grants.
        access: WorkspaceAccess,
    },
}

impl fmt::Display for ToolDenial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let layer = |l: &PolicyLayer| match l {
            PolicyLayer::Global => "tools",
            PolicyLayer::Agent => "the agent's tools",
            PolicyLayer::Http => "gateway.tools",
        };
        match self {
            ToolDenial::UnknownTool => f.write_str("unknown tool"),
            ToolDenial::ExecOverHttp => {
                f.write_str("tools that run programs are not served over HTTP unless gateway.tools.allow names them")
            }
            ToolDenial::Denied { layer: l, entry } => write!(f, "denied by {}.deny entry {entry:?}", layer(l)),
            ToolDenial::NotAllowed { layer: l } => write!(f, "not in {}.allow", layer(l)),
            ToolDenial::WorkspaceAccess { access } => write!(
                f,
                "the sandbox grants {} workspace access",
                match access {
                    WorkspaceAccess::None => "no",
                    WorkspaceAccess::ReadOnly => "read-only",
                    WorkspaceAccess::ReadWrite => "read-write",
                }
            ),
        }
    }
}

/// How an allowed call is to be confined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxPlan {
    /// What the sandbox shares.
    pub scope: SandboxScope,
    /// The access to the workspace.
    pub access: WorkspaceAccess,
}

/// What the policy says about one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolDecision {
    /// The call may run.
    Allowed {
        /// The tool.
        tool: &'static ToolSpec,
        /// The workspace the call runs in, if the config names one.
        workspace: Option<String>,
        /// `Some` when the call must run sandboxed.
        sandbox: Option<SandboxPlan>,
    },
    /// The call is refused, and why.
    Denied(ToolDenial),
}

impl ToolLists {
    /// `Err` when this layer stops `tool` (a lower-case name).
    fn check(&self, tool: &str, layer: PolicyLayer) -> Result<(), ToolDenial> {
        if let Some(entry) = self.deny.iter().find(|p| p.matches(tool)) {
            return Err(ToolDenial::Denied {
                layer,
                entry: entry.as_config(),
            });
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|p| p.matches(tool)) {
            return Err(ToolDenial::NotAllowed { layer });
        }
        Ok(())
    }
}

impl ToolPolicy {
    /// The ids of the agents the configuration lists.
    pub fn agent_ids(&self) -> impl Iterator<Item = String> + '_ {
        self.agents.iter().map(|a| a.id.as_str().to_owned())
    }

    /// The policy entry of `agent`, if the configuration has one.
    pub fn agent(&self, agent: &AgentId) -> Option<&AgentToolPolicy> {
        self.agents.iter().find(|a| &a.id == agent)
    }

    /// Whether a call of `tool` by `agent` in session `session_key` (a stored key) may run, and
    /// how. `routing` tells which session is the agent's main one.
    pub fn decide(&self, routing: &SessionRouting, agent: &AgentId, session_key: &str, tool: &str) -> ToolDecision {
        let Some(spec) = ToolSpec::find(tool) else {
            return ToolDecision::Denied(ToolDenial::UnknownTool);
        };
        let own = self.agent(agent);
        let checks = self
            .global
            .check(spec.name, PolicyLayer::Global)
            .and_then(|()| match own {
                Some(a) => a.tools.check(spec.name, PolicyLayer::Agent),
                None => Ok(()),
            });
        if let Err(denial) = checks {
            return ToolDecision::Denied(denial);
        }
        let sandbox = own.map(|a| &a.sandbox);
        let mode = sandbox
            .and_then(|s| s.mode)
            .or(self.default_sandbox.mode)
            .unwrap_or_default();
        let sandboxed = match mode {
            SandboxMode::Off => false,
            SandboxMode::All => true,
            SandboxMode::NonMain => session_key != routing.main_session(Some(agent)),
        };
        let plan = sandboxed.then(|| SandboxPlan {
            scope: sandbox
                .and_then(|s| s.scope)
                .or(self.default_sandbox.scope)
                .unwrap_or_default(),
            access: sandbox
                .and_then(|s| s.workspace_access)
                .or(self.default_sandbox.workspace_access)
                .unwrap_or_default(),
        });
        if let Some(plan) = &plan {
            let needed = match (spec.uses_workspace, spec.risk) {
                (false, _) => WorkspaceAccess::None,
                (true, RiskClass::Read) => WorkspaceAccess::ReadOnly,
                (true, _) => WorkspaceAccess::ReadWrite,
            };
            if plan.access < needed {
                return ToolDecision::Denied(ToolDenial::WorkspaceAccess { access: plan.access });
            }
        }
        ToolDecision::Allowed {
            tool: spec,
            workspace: own
                .and_then(|a| a.workspace.clone())
                .or_else(|| self.default_workspace.clone()),
            sandbox: plan,
        }
    }

    /// The workspace `agent` works in per the configuration (its own, else the default one);
    /// `None` when the file names none (the runtime's default applies).
    pub fn workspace_of(&self, agent: &AgentId) -> Option<&str> {
        self.agent(agent)
            .and_then(|a| a.workspace.as_deref())
            .or(self.default_workspace.as_deref())
    }

    /// Reads the policy from a configuration document. `Err((path, expected))` names the first
    /// key with a wrong type or value.
    pub fn from_document(doc: &Value) -> Checked<ToolPolicy> {
        let (agents, list_default) = agents(doc)?;
        let system_agent = opt_string(
            doc.pointer("/agents/defaults/systemAgent/agentId"),
            "agents.defaults.systemAgent.agentId",
        )?;
        Ok(ToolPolicy {
            global: lists(doc.get("tools"), "tools")?,
            default_workspace: opt_string(doc.pointer("/agents/defaults/workspace"), "agents.defaults.workspace")?,
            default_sandbox: sandbox_settings(doc.pointer("/agents/defaults/sandbox"), "agents.defaults.sandbox")?,
            agents,
            http: lists(doc.pointer("/gateway/tools"), "gateway.tools")?,
            default_agent: system_agent.map(|id| AgentId::normalize(&id)).or(list_default),
        })
    }

    /// The extra check of calls over HTTP: `gateway.tools.deny` refuses, and tools that run
    /// programs need `gateway.tools.allow` to name them.
    pub fn check_http(&self, tool: &ToolSpec) -> Result<(), ToolDenial> {
        if let Some(entry) = self.http.deny.iter().find(|p| p.matches(tool.name)) {
            return Err(ToolDenial::Denied {
                layer: PolicyLayer::Http,
                entry: entry.as_config(),
            });
        }
        if tool.risk == RiskClass::Execute && !self.http.allow.iter().any(|p| p.matches(tool.name)) {
            return Err(ToolDenial::ExecOverHttp);
        }
        Ok(())
    }
}

/// The agents of `agents.list[]` and of `agents.entries.<id>` (OpenClaw 2026.9 rewrites the list
/// into the map); an agent in both takes the map's settings. Also the list's default agent: the
/// entry marked `default`, else the first.
fn agents(doc: &Value) -> Checked<(Vec<AgentToolPolicy>, Option<AgentId>)> {
    let one = |id: &str, entry: &Value, path: &str| -> Checked<AgentToolPolicy> {
        Ok(AgentToolPolicy {
            id: AgentId::normalize(id),
            workspace: opt_string(entry.get("workspace"), &format!("{path}.workspace"))?,
            tools: lists(entry.get("tools"), &format!("{path}.tools"))?,
            sandbox: sandbox_settings(entry.get("sandbox"), &format!("{path}.sandbox"))?,
        })
    };
    let mut out: Vec<AgentToolPolicy> = Vec::new();
    let mut list_default = None;
    match doc.pointer("/agents/list") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for entry in list {
                let id = entry
                    .get("id")
                    .and_then(Value::as_str)
                    .filter(|id| !id.trim().is_empty())
                    .ok_or((
                        "agents.list".to_owned(),
                        "a list of agents, each with a non-empty string id",
                    ))?;
                let agent = one(id, entry, "agents.list[]")?;
                if entry.get("default").and_then(Value::as_bool) == Some(true) && list_default.is_none() {
                    list_default = Some(agent.id.clone());
                }
                out.push(agent);
            }
            list_default = list_default.or_else(|| out.first().map(|a| a.id.clone()));
        }
        Some(_) => return Err(("agents.list".to_owned(), "a list of agents")),
    }
    match doc.pointer("/agents/entries") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (id, entry) in map {
                let path = format!("agents.entries.{id}");
                if !entry.is_object() {
                    return Err((path, "an object of agent settings"));
                }
                let agent = one(id, entry, &path)?;
                out.retain(|a| a.id != agent.id);
                out.push(agent);
            }
        }
        Some(_) => return Err(("agents.entries".to_owned(), "an object of agents by id")),
    }
    Ok((out, list_default))
}

/// A value read from the config, or the dotted path of the first bad key and what it should be.
pub type Checked<T> = Result<T, (String, &'static str)>;

fn opt_string(v: Option<&Value>, path: &str) -> Checked<Option<String>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err((path.to_owned(), "a string")),
    }
}

fn lists(section: Option<&Value>, path: &str) -> Checked<ToolLists> {
    let list = |key: &str| -> Checked<Vec<ToolPattern>> {
        match section.and_then(|s| s.get(key)) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    let text = item.as_str().ok_or((format!("{path}.{key}"), "a list of tool names"))?;
                    ToolPattern::parse(text).ok_or((
                        format!("{path}.{key}"),
                        "non-empty tool names, \"*\" patterns or group:<name> entries",
                    ))
                })
                .collect(),
            Some(_) => Err((format!("{path}.{key}"), "a list of tool names")),
        }
    };
    Ok(ToolLists {
        allow: list("allow")?,
        deny: list("deny")?,
    })
}

fn sandbox_settings(section: Option<&Value>, path: &str) -> Checked<SandboxSettings> {
    let field = |key: &str| -> Checked<Option<&str>> {
        match section.and_then(|s| s.get(key)) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err((format!("{path}.{key}"), "a string")),
        }
    };
    let mode = match field("mode")? {
        None => None,
        Some("off") => Some(SandboxMode::Off),
        Some("non-main") => Some(SandboxMode::NonMain),
        Some("all") => Some(SandboxMode::All),
        Some(_) => return Err((format!("{path}.mode"), "off, non-main or all")),
    };
    let scope = match field("scope")? {
        None => None,
        Some("session") => Some(SandboxScope::Session),
        Some("agent") => Some(SandboxScope::Agent),
        Some("shared") => Some(SandboxScope::Shared),
        Some(_) => return Err((format!("{path}.scope"), "session, agent or shared")),
    };
    let workspace_access = match field("workspaceAccess")? {
        None => None,
        Some("none") => Some(WorkspaceAccess::None),
        Some("ro") => Some(WorkspaceAccess::ReadOnly),
        Some("rw") => Some(WorkspaceAccess::ReadWrite),
        Some(_) => return Err((format!("{path}.workspaceAccess"), "none, ro or rw")),
    };
    Ok(SandboxSettings {
        mode,
        scope,
        workspace_access,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(doc: Value) -> ToolPolicy {
        ToolPolicy::from_document(&doc).unwrap()
    }

    fn decide(p: &ToolPolicy, agent: &str, session: &str, tool: &str) -> ToolDecision {
        p.decide(&SessionRouting::default(), &AgentId::normalize(agent), session, tool)
    }

    fn denial(d: ToolDecision) -> String {
        match d {
            ToolDecision::Denied(why) => why.to_string(),
            ToolDecision::Allowed { tool, .. } => panic!("{} was allowed", tool.name),
        }
    }

    #[test]
    fn patterns_match_names_groups_and_globs() {
        let m = |entry: &str, tool: &str| ToolPattern::parse(entry).unwrap().matches(tool);
        assert!(m("READ", "read"));
        assert!(!m("read", "readme"));
        assert!(m("group:fs", "edit"));
        assert!(m("group:fs", "ls"));
        assert!(!m("group:fs", "exec"));
        assert!(m("group:runtime", "process"));
        assert!(!m("group:plugins", "read"));
        assert!(m("*", "exec"));
        assert!(m("e*", "exec") && m("e*", "edit") && !m("e*", "read"));
        assert!(m("*c", "exec") && !m("*c", "edit"));
        assert!(m("p*c*s", "process") && !m("p*c*s", "proc"));
        assert!(m("ex*ec", "exec") && !m("exe*xec", "exec"));
        assert!(ToolPattern::parse("  ").is_none());
    }

    #[test]
    fn deny_wins_and_allow_lists_block_the_rest() {
        let p = policy(json!({
            "tools": {"allow": ["group:fs", "exec"], "deny": ["write"]},
            "agents": {"list": [
                {"id": "main"},
                {"id": "reader", "tools": {"deny": ["group:runtime"], "allow": ["read", "ls", "exec"]}},
            ]},
        }));
        assert!(matches!(
            decide(&p, "main", "agent:main:main", "read"),
            ToolDecision::Allowed { sandbox: None, .. }
        ));
        assert!(matches!(
            decide(&p, "main", "agent:main:main", "exec"),
            ToolDecision::Allowed { .. }
        ));
        assert_eq!(
            denial(decide(&p, "main", "agent:main:main", "write")),
            "denied by tools.deny entry \"write\""
        );
        assert_eq!(
            denial(decide(&p, "main", "agent:main:main", "process")),
            "not in tools.allow"
        );
        assert_eq!(
            denial(decide(&p, "reader", "agent:reader:main", "exec")),
            "denied by the agent's tools.deny entry \"group:runtime\""
        );
        assert_eq!(
            denial(decide(&p, "reader", "agent:reader:main", "edit")),
            "not in the agent's tools.allow"
        );
        assert!(matches!(
            decide(&p, "Reader", "agent:reader:main", "LS"),
            ToolDecision::Allowed { .. }
        ));
        assert_eq!(denial(decide(&p, "main", "agent:main:main", "browser")), "unknown tool");
        // An agent the config does not list gets the global lists only.
        assert!(matches!(
            decide(&p, "other", "agent:other:main", "edit"),
            ToolDecision::Allowed { .. }
        ));
    }

    #[test]
    fn sandbox_modes_and_workspace_access() {
        let p = policy(json!({
            "agents": {
                "defaults": {"workspace": "/srv/agents/default", "sandbox": {"mode": "non-main", "workspaceAccess": "ro"}},
                "list": [
                    {"id": "main"},
                    {"id": "ops", "workspace": "/srv/ops", "sandbox": {"mode": "all", "scope": "agent", "workspaceAccess": "rw"}},
                    {"id": "jail", "sandbox": {"mode": "all", "workspaceAccess": "none"}},
                    {"id": "open", "sandbox": {"mode": "off"}},
                ],
            },
        }));
        // non-main: the main session runs unconfined, any other session is sandboxed read-only.
        match decide(&p, "main", "agent:main:main", "write") {
            ToolDecision::Allowed { sandbox, workspace, .. } => {
                assert_eq!(sandbox, None);
                assert_eq!(workspace.as_deref(), Some("/srv/agents/default"));
            }
            d => panic!("{d:?}"),
        }
        assert_eq!(
            denial(decide(&p, "main", "agent:main:telegram:group:1", "write")),
            "the sandbox grants read-only workspace access"
        );
        match decide(&p, "main", "agent:main:telegram:group:1", "read") {
            ToolDecision::Allowed {
                sandbox: Some(plan), ..
            } => {
                assert_eq!(
                    plan,
                    SandboxPlan {
                        scope: SandboxScope::Session,
                        access: WorkspaceAccess::ReadOnly
                    }
                )
            }
            d => panic!("{d:?}"),
        }
        match decide(&p, "ops", "agent:ops:main", "edit") {
            ToolDecision::Allowed {
                sandbox: Some(plan),
                workspace,
                ..
            } => {
                assert_eq!(
                    plan,
                    SandboxPlan {
                        scope: SandboxScope::Agent,
                        access: WorkspaceAccess::ReadWrite
                    }
                );
                assert_eq!(workspace.as_deref(), Some("/srv/ops"));
            }
            d => panic!("{d:?}"),
        }
        assert_eq!(
            denial(decide(&p, "jail", "agent:jail:main", "read")),
            "the sandbox grants no workspace access"
        );
        assert!(matches!(
            decide(&p, "jail", "agent:jail:main", "exec"),
            ToolDecision::Allowed {
                sandbox: Some(SandboxPlan {
                    access: WorkspaceAccess::None,
                    ..
                }),
                ..
            }
        ));
        assert!(matches!(
            decide(&p, "open", "agent:open:x", "write"),
            ToolDecision::Allowed { sandbox: None, .. }
        ));
        // With the main key changed, the main session is a different key.
        let routing = SessionRouting {
            main_key: "desk".into(),
            ..SessionRouting::default()
        };
        let main = AgentId::normalize("main");
        assert!(matches!(
            p.decide(&routing, &main, "agent:main:desk", "write"),
            ToolDecision::Allowed { sandbox: None, .. }
        ));
        assert!(matches!(
            p.decide(&routing, &main, "agent:main:main", "write"),
            ToolDecision::Denied(_)
        ));
    }

    #[test]
    fn bad_policy_values_are_named() {
        let err = |doc: Value| ToolPolicy::from_document(&doc).unwrap_err();
        assert_eq!(err(json!({"tools": {"allow": "read"}})).0, "tools.allow");
        assert_eq!(err(json!({"tools": {"deny": [1]}})).0, "tools.deny");
        assert_eq!(err(json!({"tools": {"deny": [""]}})).0, "tools.deny");
        assert_eq!(
            err(json!({"agents": {"list": [{"id": "a", "sandbox": {"mode": "sometimes"}}]}})),
            ("agents.list[].sandbox.mode".to_owned(), "off, non-main or all")
        );
        assert_eq!(
            err(json!({"agents": {"defaults": {"sandbox": {"workspaceAccess": "rwx"}}}})).0,
            "agents.defaults.sandbox.workspaceAccess"
        );
        assert_eq!(
            err(json!({"agents": {"list": [{"id": "a", "workspace": 3}]}})).0,
            "agents.list[].workspace"
        );
        assert_eq!(policy(json!({})), ToolPolicy::default());
    }

    #[test]
    fn every_tool_has_an_object_schema() {
        for tool in TOOLS {
            let schema = tool.schema();
            assert_eq!(schema["type"], "object", "{}", tool.name);
            for required in schema["required"].as_array().unwrap() {
                assert!(
                    schema["properties"].get(required.as_str().unwrap()).is_some(),
                    "{}",
                    tool.name
                );
            }
            assert_eq!(ToolSpec::find(&tool.name.to_uppercase()), Some(tool));
        }
    }
}
