//! Exec approvals, as OpenClaw does them: `tools.exec` (`security`, `ask`, `askFallback`, or
//! `mode: "ask"`) and the approvals file (`exec-approvals.json` under the state directory:
//! defaults and, per agent, an allowlist of programs) decide whether an `exec` runs, is refused,
//! or waits for an operator's decision. The effective policy is the stricter of the two.
//!
//! This part owns the approvals file and the approvals that wait; tool dispatch asks it and
//! holds the call meanwhile.

use serde_json::{json, Value};
use std::collections::BTreeMap;

/// How long an approval waits for a decision.
pub const APPROVAL_TTL_MS: u64 = 30 * 60 * 1000;
/// The approvals file, under the state directory.
pub const APPROVALS_FILE: &str = "exec-approvals.json";

/// `security`: which commands may run at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Security {
    /// None.
    Deny,
    /// The allowlisted ones.
    Allowlist,
    /// All.
    Full,
}

/// `ask`: when an operator is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ask {
    Off,
    /// When the command is not allowlisted.
    OnMiss,
    Always,
}

impl Security {
    pub fn parse(s: &str) -> Option<Security> {
        Some(match s {
            "deny" => Security::Deny,
            "allowlist" => Security::Allowlist,
            "full" => Security::Full,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Security::Deny => "deny",
            Security::Allowlist => "allowlist",
            Security::Full => "full",
        }
    }
}

impl Ask {
    pub fn parse(s: &str) -> Option<Ask> {
        Some(match s {
            "off" => Ask::Off,
            "on-miss" => Ask::OnMiss,
            "always" => Ask::Always,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Ask::Off => "off",
            Ask::OnMiss => "on-miss",
            Ask::Always => "always",
        }
    }
}

/// The exec policy of `tools.exec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecPolicy {
    pub security: Security,
    pub ask: Ask,
    /// What happens to a call that needs a decision nobody can give: refused (`deny`), run when
    /// allowlisted (`allowlist`), or run (`full`).
    pub ask_fallback: Security,
}

impl Default for ExecPolicy {
    /// Without `tools.exec`, every command runs, as with OpenClaw's default.
    fn default() -> Self {
        ExecPolicy {
            security: Security::Full,
            ask: Ask::Off,
            ask_fallback: Security::Deny,
        }
    }
}

impl ExecPolicy {
    /// Reads `tools.exec`; `Err` is the dotted path of a bad value and what was expected.
    pub fn from_document(doc: &Value) -> Result<ExecPolicy, (String, &'static str)> {
        let mut policy = ExecPolicy::default();
        if let Some(exec) = doc.pointer("/tools/exec").filter(|v| !v.is_null()) {
            policy.apply(exec, "tools.exec")?;
        }
        Ok(policy)
    }

    /// Applies what an exec section (`tools.exec`, or an agent's own) sets; `at` is its path.
    pub fn apply(&mut self, exec: &Value, at: &str) -> Result<(), (String, &'static str)> {
        let text = |key: &str| exec.get(key).and_then(Value::as_str);
        match text("mode") {
            None => {}
            Some("ask") => {
                self.security = Security::Allowlist;
                self.ask = Ask::OnMiss;
            }
            Some("full") => {
                self.security = Security::Full;
                self.ask = Ask::Off;
            }
            Some("deny") => self.security = Security::Deny,
            Some(_) => return Err((format!("{at}.mode"), "ask, full or deny")),
        }
        if let Some(s) = text("security") {
            self.security = Security::parse(s).ok_or((format!("{at}.security"), "deny, allowlist or full"))?;
        }
        if let Some(a) = text("ask") {
            self.ask = Ask::parse(a).ok_or((format!("{at}.ask"), "off, on-miss or always"))?;
        }
        if let Some(f) = text("askFallback") {
            self.ask_fallback = Security::parse(f).ok_or((format!("{at}.askFallback"), "deny, allowlist or full"))?;
        }
        Ok(())
    }

    /// The gateway-wide policy and each agent's own (`agents.list[].tools.exec`,
    /// `agents.entries.<id>.tools.exec`, over the gateway-wide one).
    pub fn per_agent(doc: &Value) -> Result<(ExecPolicy, AgentPolicies), (String, &'static str)> {
        let global = ExecPolicy::from_document(doc)?;
        let mut agents = BTreeMap::new();
        let normalize = crate::models::normalize;
        if let Some(Value::Array(list)) = doc.pointer("/agents/list") {
            for (i, entry) in list.iter().enumerate() {
                let (Some(id), Some(exec)) = (entry.get("id").and_then(Value::as_str), entry.pointer("/tools/exec"))
                else {
                    continue;
                };
                let mut own = global;
                own.apply(exec, &format!("agents.list[{i}].tools.exec"))?;
                agents.insert(normalize(id), own);
            }
        }
        if let Some(Value::Object(entries)) = doc.pointer("/agents/entries") {
            for (id, entry) in entries {
                let Some(exec) = entry.pointer("/tools/exec") else {
                    continue;
                };
                let mut own = global;
                own.apply(exec, &format!("agents.entries.{id}.tools.exec"))?;
                agents.insert(normalize(id), own);
            }
        }
        Ok((global, agents))
    }

    /// `security=… ask=… askFallback=…`, as OpenClaw's messages name the policy.
    pub fn describe(self) -> String {
        format!(
            "security={} ask={} askFallback={}",
            self.security.as_str(),
            self.ask.as_str(),
            self.ask_fallback.as_str()
        )
    }
}

/// Agents' own exec policies, by agent id.
pub type AgentPolicies = BTreeMap<String, ExecPolicy>;

/// What becomes of an exec call.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecGate {
    Run,
    /// An operator decides; the policy in force.
    Ask(ExecPolicy),
    /// Refused, with the reason.
    Deny(String),
}

/// The program a call runs: the first word of a shell line, else the command.
pub fn program_of(args: &serde_json::Map<String, Value>) -> String {
    let command = args.get("command").and_then(Value::as_str).unwrap_or_default().trim();
    let shell = args.get("shell").and_then(Value::as_bool).unwrap_or(false);
    if shell {
        command.split_whitespace().next().unwrap_or_default().to_owned()
    } else {
        command.to_owned()
    }
}

/// The command line a call runs, for people.
pub fn command_line(args: &serde_json::Map<String, Value>) -> String {
    let mut line = args
        .get("command")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    for a in args.get("args").and_then(Value::as_array).into_iter().flatten() {
        line.push(' ');
        line.push_str(a.as_str().unwrap_or_default());
    }
    line
}

/// Whether an allowlist pattern covers `program`: a pattern with a `/` is a glob over the path
/// (`*` within a segment, `**` across them) and needs the program named by path; one without
/// names the program itself, wherever it is.
pub fn pattern_matches(pattern: &str, program: &str) -> bool {
    if !pattern.contains('/') {
        return program.rsplit('/').next() == Some(pattern);
    }
    fn glob(p: &[u8], s: &[u8]) -> bool {
        match p {
            [] => s.is_empty(),
            [b'*', b'*', rest @ ..] => (0..=s.len()).any(|i| glob(rest, &s[i..])),
            [b'*', rest @ ..] => (0..=s.len())
                .take_while(|&i| i == 0 || s[i - 1] != b'/')
                .any(|i| glob(rest, &s[i..])),
            [c, rest @ ..] => s.first() == Some(c) && glob(rest, &s[1..]),
        }
    }
    glob(pattern.as_bytes(), program.as_bytes())
}

/// Where the host finds a program: the runtime's lookup along its `PATH`, handed to the engine
/// as a small trait (as the clock and randomness are) so the engine reads no file itself.
pub trait ExecutableLookup {
    /// The real path of the executable `program` names (a bare name is looked up along `PATH`,
    /// a path is resolved as it is); `None` when there is none.
    fn resolve(&self, program: &str) -> Option<String>;
}

/// Programs as they are named, with nothing looked up: for gateways without a host lookup.
#[derive(Debug, Default)]
pub struct NoLookup;

impl ExecutableLookup for NoLookup {
    fn resolve(&self, _program: &str) -> Option<String> {
        None
    }
}

/// An approval that waits for its decision.
#[derive(Debug, Clone)]
pub struct PendingApproval {
    pub id: String,
    /// `exec.approval.requested`'s `request`.
    pub request: Value,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    /// The tool call waiting for it.
    pub call: u64,
}

/// How an approval was decided, kept for `approval.get` and repeated resolves.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub decision: String,
    /// The client id of who decided (`gateway` for an expiry or a withdrawal).
    pub resolver: String,
    pub request: Value,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
}

/// Decided approvals remembered.
const RESOLVED_KEPT: usize = 256;

/// The approvals file and the approvals that wait.
#[derive(Debug, Default)]
pub struct Approvals {
    /// The approvals file as read (or as `exec.approvals.set` wrote it).
    file: Value,
    pending: BTreeMap<String, PendingApproval>,
    resolved: BTreeMap<String, Resolved>,
    resolved_order: std::collections::VecDeque<String>,
}

impl Approvals {
    /// The approvals file's text, read at start; a file that is not a JSON object is an error
    /// (it holds what operators decided).
    pub fn load(&mut self, text: &str) -> Result<(), String> {
        let file: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if !file.is_object() {
            return Err("not a JSON object".into());
        }
        self.file = file;
        Ok(())
    }

    /// Whether an approvals file was read or written.
    pub fn exists(&self) -> bool {
        self.file.is_object()
    }

    /// The file as `exec.approvals.get` shows it.
    pub fn file(&self) -> Value {
        if self.file.is_object() {
            self.file.clone()
        } else {
            json!({"version": 1, "defaults": {}, "agents": {}})
        }
    }

    /// The file's hash, as `exec.approvals.get` reports it and `exec.approvals.set` expects it
    /// back (`baseHash`): SHA-256 of its JSON text, in hex.
    pub fn file_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        Sha256::digest(self.file().to_string().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Remembers how an approval was decided.
    pub fn record_resolved(&mut self, id: &str, resolved: Resolved) {
        self.resolved.insert(id.to_owned(), resolved);
        self.resolved_order.push_back(id.to_owned());
        while self.resolved_order.len() > RESOLVED_KEPT {
            if let Some(old) = self.resolved_order.pop_front() {
                self.resolved.remove(&old);
            }
        }
    }

    /// How approval `id` was decided, if it was, lately.
    /// The decided approvals still kept, newest first.
    pub fn resolved_newest_first(&self) -> impl Iterator<Item = (&str, &Resolved)> {
        self.resolved_order
            .iter()
            .rev()
            .filter_map(|id| self.resolved.get(id).map(|r| (id.as_str(), r)))
    }

    pub fn get_resolved(&self, id: &str) -> Option<&Resolved> {
        self.resolved.get(id)
    }

    /// Replaces the file (`exec.approvals.set`); returns its new text for the runtime to write.
    pub fn set_file(&mut self, file: Value) -> Result<String, String> {
        if !file.is_object() {
            return Err("the approvals file must be an object".into());
        }
        self.file = file;
        Ok(self.file().to_string())
    }

    /// `config_policy` made stricter by what the file sets (its defaults, then the agent's).
    fn effective(&self, config_policy: ExecPolicy, agent: &str) -> ExecPolicy {
        let mut policy = config_policy;
        for scope in [
            self.file.pointer("/defaults"),
            self.file.pointer(&format!("/agents/{agent}")),
        ]
        .into_iter()
        .flatten()
        {
            if let Some(s) = scope.get("security").and_then(Value::as_str).and_then(Security::parse) {
                policy.security = policy.security.min(s);
            }
            if let Some(a) = scope.get("ask").and_then(Value::as_str).and_then(Ask::parse) {
                policy.ask = policy.ask.max(a);
            }
            if let Some(f) = scope
                .get("askFallback")
                .and_then(Value::as_str)
                .and_then(Security::parse)
            {
                policy.ask_fallback = policy.ask_fallback.min(f);
            }
        }
        policy
    }

    fn allowlisted(&self, agent: &str, program: &str) -> bool {
        self.file
            .pointer(&format!("/agents/{agent}/allowlist"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| e.get("pattern").and_then(Value::as_str).or_else(|| e.as_str()))
            .any(|p| pattern_matches(p, program))
    }

    /// The gate for `program` run by `agent` under `config_policy`.
    pub fn gate(&self, config_policy: ExecPolicy, agent: &str, program: &str) -> ExecGate {
        let policy = self.effective(config_policy, agent);
        let listed = self.allowlisted(agent, program);
        match (policy.security, policy.ask) {
            (Security::Deny, _) => ExecGate::Deny(format!("exec denied: host exec is off ({})", policy.describe())),
            (_, Ask::Always) => ExecGate::Ask(policy),
            (Security::Full, _) => ExecGate::Run,
            (Security::Allowlist, _) if listed => ExecGate::Run,
            (Security::Allowlist, Ask::OnMiss) => ExecGate::Ask(policy),
            (Security::Allowlist, Ask::Off) => ExecGate::Deny(format!(
                "exec denied: {program} is not on the allowlist ({})",
                policy.describe()
            )),
        }
    }

    /// What a call that needs a decision nobody can give becomes.
    pub fn fallback(&self, policy: ExecPolicy, agent: &str, program: &str) -> ExecGate {
        match policy.ask_fallback {
            Security::Full => ExecGate::Run,
            Security::Allowlist if self.allowlisted(agent, program) => ExecGate::Run,
            _ => ExecGate::Deny(format!(
                "exec denied: Headless runs cannot wait for interactive exec approval.\nEffective host exec policy: {}",
                policy.describe()
            )),
        }
    }

    /// Adds `program` to `agent`'s allowlist (`allow-always`); returns the file's new text.
    pub fn allow_always(&mut self, agent: &str, program: &str, id: &str, now_ms: u64) -> String {
        let mut file = self.file();
        if !file["agents"].is_object() {
            file["agents"] = json!({});
        }
        if !file["agents"][agent].is_object() {
            file["agents"][agent] = json!({});
        }
        if !file["agents"][agent]["allowlist"].is_array() {
            file["agents"][agent]["allowlist"] = json!([]);
        }
        if let Some(list) = file["agents"][agent]["allowlist"].as_array_mut() {
            list.push(json!({"id": id, "pattern": program, "createdAtMs": now_ms}));
        }
        self.file = file;
        self.file().to_string()
    }

    pub fn add_pending(&mut self, pending: PendingApproval) {
        self.pending.insert(pending.id.clone(), pending);
    }

    pub fn take_pending(&mut self, id: &str) -> Option<PendingApproval> {
        self.pending.remove(id)
    }

    /// Takes the approval that holds tool call `call`, if one does.
    pub fn take_pending_of_call(&mut self, call: u64) -> Option<PendingApproval> {
        let id = self.pending.values().find(|p| p.call == call)?.id.clone();
        self.pending.remove(&id)
    }

    pub fn get_pending(&self, id: &str) -> Option<&PendingApproval> {
        self.pending.get(id)
    }

    /// `exec.approval.list`: a bare array.
    pub fn list_payload(&self) -> Value {
        Value::Array(
            self.pending
                .values()
                .map(|p| {
                    json!({"id": p.id, "request": p.request, "createdAtMs": p.created_at_ms,
                           "expiresAtMs": p.expires_at_ms, "approvalKind": "exec"})
                })
                .collect(),
        )
    }

    /// The approvals whose time is up.
    pub fn take_expired(&mut self, now_ms: u64) -> Vec<PendingApproval> {
        let ids: Vec<String> = self
            .pending
            .values()
            .filter(|p| p.expires_at_ms <= now_ms)
            .map(|p| p.id.clone())
            .collect();
        ids.iter().filter_map(|id| self.pending.remove(id)).collect()
    }

    /// When the next approval expires.
    pub fn next_expiry(&self) -> Option<u64> {
        self.pending.values().map(|p| p.expires_at_ms).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(doc: Value) -> ExecPolicy {
        ExecPolicy::from_document(&doc).unwrap()
    }

    #[test]
    fn mode_ask_means_allowlist_on_miss_with_a_deny_fallback() {
        let p = policy(json!({"tools": {"exec": {"host": "gateway", "mode": "ask"}}}));
        assert_eq!(p.describe(), "security=allowlist ask=on-miss askFallback=deny");
        assert_eq!(policy(json!({})), ExecPolicy::default());
        assert!(ExecPolicy::from_document(&json!({"tools": {"exec": {"ask": "sometimes"}}})).is_err());
    }

    #[test]
    fn an_agent_may_have_its_own_exec_policy_over_the_gateways() {
        let doc = json!({
            "tools": {"exec": {"mode": "ask"}},
            "agents": {"entries": {"ops": {"tools": {"exec": {"security": "deny"}}}}},
        });
        let (global, agents) = ExecPolicy::per_agent(&doc).unwrap();
        assert_eq!(global.describe(), "security=allowlist ask=on-miss askFallback=deny");
        assert_eq!(agents["ops"].describe(), "security=deny ask=on-miss askFallback=deny");
        let bad = json!({"agents": {"list": [{"id": "a", "tools": {"exec": {"ask": "maybe"}}}]}});
        assert_eq!(
            ExecPolicy::per_agent(&bad).unwrap_err().0,
            "agents.list[0].tools.exec.ask"
        );
    }

    #[test]
    fn an_allowlisted_program_runs_and_others_ask_or_are_refused() {
        let mut a = Approvals::default();
        a.load(r#"{"version":1,"agents":{"main":{"allowlist":[{"pattern":"ls"},{"pattern":"/opt/**/bin/rg"}]}}}"#)
            .unwrap();
        let ask = policy(json!({"tools": {"exec": {"mode": "ask"}}}));
        assert_eq!(a.gate(ask, "main", "ls"), ExecGate::Run);
        assert_eq!(a.gate(ask, "main", "/usr/bin/ls"), ExecGate::Run);
        assert_eq!(a.gate(ask, "main", "/opt/tools/x/bin/rg"), ExecGate::Run);
        assert!(matches!(a.gate(ask, "main", "echo"), ExecGate::Ask(_)));
        assert!(
            matches!(a.gate(ask, "ops", "ls"), ExecGate::Ask(_)),
            "the allowlist is per agent"
        );
        let off = ExecPolicy { ask: Ask::Off, ..ask };
        assert!(matches!(a.gate(off, "main", "echo"), ExecGate::Deny(_)));
        assert_eq!(a.gate(ExecPolicy::default(), "main", "echo"), ExecGate::Run);
    }

    #[test]
    fn the_file_can_only_make_the_policy_stricter() {
        let mut a = Approvals::default();
        a.load(r#"{"defaults":{"security":"deny"}}"#).unwrap();
        assert!(matches!(a.gate(ExecPolicy::default(), "main", "ls"), ExecGate::Deny(_)));
        let mut b = Approvals::default();
        b.load(r#"{"defaults":{"security":"full","ask":"off"}}"#).unwrap();
        let ask = policy(json!({"tools": {"exec": {"mode": "ask"}}}));
        assert!(matches!(b.gate(ask, "main", "echo"), ExecGate::Ask(_)));
    }

    #[test]
    fn allow_always_adds_the_program_to_the_agents_allowlist() {
        let mut a = Approvals::default();
        let ask = policy(json!({"tools": {"exec": {"mode": "ask"}}}));
        let text = a.allow_always("main", "echo", "id-1", 5);
        assert!(text.contains("\"pattern\":\"echo\""));
        assert_eq!(a.gate(ask, "main", "echo"), ExecGate::Run);
    }

    #[test]
    fn without_an_approver_the_fallback_decides() {
        let a = Approvals::default();
        let ask = policy(json!({"tools": {"exec": {"mode": "ask"}}}));
        let ExecGate::Deny(text) = a.fallback(ask, "main", "echo") else {
            panic!()
        };
        assert!(text.starts_with("exec denied: Headless runs cannot wait for interactive exec approval."));
        assert!(text.ends_with("security=allowlist ask=on-miss askFallback=deny"));
    }
}
