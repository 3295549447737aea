//! Roles and operator scopes: the v4 scope set, implication rules, the method table and the event gate.
//!
//! Scope checks are default-deny: a method nobody classified needs `operator.admin`, and an event
//! nobody classified reaches nobody. Scopes that a client declares are only a request; what a
//! connection may do is the [`ScopeSet`] the server grants.

use crate::connect::Role;
use serde_json::json;
use std::fmt;

/// One operator scope of protocol v4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Scope {
    /// Everything.
    Admin = 0,
    /// Read-only methods.
    Read = 1,
    /// Side-effecting methods; implies read.
    Write = 2,
    /// Exec and plugin approvals.
    Approvals = 3,
    /// Device and node pairing.
    Pairing = 4,
    /// Talk secrets.
    TalkSecrets = 5,
    /// Talk mode; implied by write.
    Talk = 6,
    /// Questions asked by agents.
    Questions = 7,
    /// Session read surfaces; implied by read.
    SessionsRead = 8,
    /// Session write surfaces; implied by write.
    SessionsWrite = 9,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 10] = [
        Scope::Admin,
        Scope::Read,
        Scope::Write,
        Scope::Approvals,
        Scope::Pairing,
        Scope::TalkSecrets,
        Scope::Talk,
        Scope::Questions,
        Scope::SessionsRead,
        Scope::SessionsWrite,
    ];

    /// The wire spelling, e.g. `operator.read`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "operator.admin",
            Scope::Read => "operator.read",
            Scope::Write => "operator.write",
            Scope::Approvals => "operator.approvals",
            Scope::Pairing => "operator.pairing",
            Scope::TalkSecrets => "operator.talk.secrets",
            Scope::Talk => "operator.talk",
            Scope::Questions => "operator.questions",
            Scope::SessionsRead => "operator.sessions.read",
            Scope::SessionsWrite => "operator.sessions.write",
        }
    }

    /// Parses a wire spelling.
    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|sc| sc.as_str() == s)
    }

    const fn bit(self) -> u16 {
        1 << (self as u8)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes held by a connection, as a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ScopeSet(u16);

impl ScopeSet {
    /// No scopes.
    pub const EMPTY: ScopeSet = ScopeSet(0);

    /// Every scope.
    pub fn all() -> ScopeSet {
        Scope::ALL.into_iter().collect()
    }

    /// The scopes named in `names`; names that are not v4 scopes grant nothing and are ignored.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> ScopeSet {
        names.iter().filter_map(|n| Scope::parse(n.as_ref())).collect()
    }

    /// Whether the set literally contains `scope` (no implication).
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Adds a scope.
    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    /// Whether the set grants `scope` under the implication rules: admin grants everything,
    /// write grants read and talk, read grants session reads, write grants session writes.
    pub fn allows(self, scope: Scope) -> bool {
        if self.contains(Scope::Admin) || self.contains(scope) {
            return true;
        }
        match scope {
            Scope::Read | Scope::Talk | Scope::SessionsWrite => self.contains(Scope::Write),
            Scope::SessionsRead => self.contains(Scope::Read) || self.contains(Scope::Write),
            _ => false,
        }
    }

    /// Whether this set grants every scope of `other`.
    pub fn allows_all(self, other: ScopeSet) -> bool {
        other.iter().all(|s| self.allows(s))
    }

    /// The scopes of `self` that `limit` allows: what a server grants when a client asks for
    /// `self` and policy permits `limit`. Never wider than either.
    pub fn restrict_to(self, limit: ScopeSet) -> ScopeSet {
        self.iter().filter(|s| limit.allows(*s)).collect()
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes in the set, in [`Scope::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// Wire spellings of the scopes in the set.
    pub fn names(self) -> Vec<String> {
        self.iter().map(|s| s.as_str().to_owned()).collect()
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut set = ScopeSet::EMPTY;
        for s in iter {
            set.insert(s);
        }
        set
    }
}

/// Scopes the `openclaw` CLI asks for by default.
pub const CLI_DEFAULT_OPERATOR_SCOPES: &[Scope] = &[
    Scope::Admin,
    Scope::Read,
    Scope::Write,
    Scope::Approvals,
    Scope::Pairing,
    Scope::TalkSecrets,
];

/// Operator methods a `node` may call as well: an agent worker runs tools for its runs (the
/// gateway checks that the run is the node's).
pub const NODE_ALSO_METHODS: &[&str] = &["tools.invoke"];

/// Prefixes that always need `operator.admin`, whatever else is said about a method.
pub const ADMIN_METHOD_PREFIXES: &[&str] = &["config.", "exec.approvals.", "wizard.", "update."];

/// What a method requires of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodAccess {
    /// Any authenticated connection, whatever its role and scopes (`health`).
    Anyone,
    /// Only `node`-role connections.
    NodeOnly,
    /// An `operator` connection whose scopes allow this scope.
    Operator(Scope),
}

/// The access rule of `method`, from [`crate::methods::METHODS`]; a method the table does not
/// know needs admin (default deny).
pub fn method_access(method: &str) -> MethodAccess {
    crate::methods::lookup(method).map_or(MethodAccess::Operator(Scope::Admin), |m| m.access)
}

/// Why a call was refused by the role or scope gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessDenied {
    /// The role may not call this method: `INVALID_REQUEST "unauthorized role: <role>"`.
    UnauthorizedRole(Role),
    /// A scope is missing: `FORBIDDEN "missing scope: <scope>"` with `MISSING_SCOPE` details.
    MissingScope(Scope),
}

impl AccessDenied {
    /// The wire error for this refusal.
    pub fn to_error(&self) -> crate::frame::ErrorShape {
        use crate::frame::{ErrorCode, ErrorShape};
        match self {
            AccessDenied::UnauthorizedRole(role) => {
                ErrorShape::new(ErrorCode::InvalidRequest, format!("unauthorized role: {role}"))
            }
            AccessDenied::MissingScope(scope) => {
                ErrorShape::new(ErrorCode::Forbidden, format!("missing scope: {scope}")).with_details(json!({
                    "code": "MISSING_SCOPE",
                    "missingScope": scope.as_str(),
                    "requiredScopes": [scope.as_str()],
                }))
            }
        }
    }
}

/// The role gate, then the scope gate, for a call of `method` by a connection with `role` and
/// granted `scopes`. Runs before method lookup, so an unknown method from a non-admin reports the
/// missing admin scope rather than revealing that the method does not exist.
pub fn authorize(role: Role, scopes: ScopeSet, method: &str) -> Result<(), AccessDenied> {
    match (method_access(method), role) {
        (MethodAccess::Anyone, _) => Ok(()),
        (MethodAccess::NodeOnly, Role::Node) => Ok(()),
        (MethodAccess::NodeOnly, Role::Operator) => Err(AccessDenied::UnauthorizedRole(role)),
        (MethodAccess::Operator(_), Role::Node) if NODE_ALSO_METHODS.contains(&method) => Ok(()),
        (MethodAccess::Operator(_), Role::Node) => Err(AccessDenied::UnauthorizedRole(role)),
        (MethodAccess::Operator(scope), Role::Operator) => {
            if scopes.allows(scope) {
                Ok(())
            } else {
                Err(AccessDenied::MissingScope(scope))
            }
        }
    }
}

/// Who may receive an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventAudience {
    /// Every connection, nodes included.
    Everyone,
    /// Operators holding this scope (admin always passes). Nodes never.
    Operators(Scope),
    /// Nobody: an event this gateway does not classify is dropped (fail closed).
    Nobody,
}

/// The audience of a broadcast event.
pub fn event_audience(event: &str) -> EventAudience {
    match event {
        "tick" | "health" | "heartbeat" | "shutdown" | "update.available" | "gateway.suspension"
        | "connect.challenge" => EventAudience::Everyone,
        "agent" | "chat" | "chat.side_result" | "session.message" | "session.tool" | "session.observer"
        | "sessions.changed" => EventAudience::Operators(Scope::SessionsRead),
        "cron"
        | "presence"
        | "voicewake.changed"
        | "config.changed"
        | "skills.changed"
        | "node.presence"
        | "session.operation"
        | "models.snapshot"
        | "chat.metadata.changed"
        | "task" => EventAudience::Operators(Scope::Read),
        "exec.approval.requested"
        | "exec.approval.resolved"
        | "plugin.approval.requested"
        | "plugin.approval.resolved" => EventAudience::Operators(Scope::Approvals),
        "device.pair.requested" | "device.pair.resolved" | "node.pair.requested" | "node.pair.resolved" => {
            EventAudience::Operators(Scope::Pairing)
        }
        "question.requested" | "question.resolved" => EventAudience::Operators(Scope::Questions),
        "talk.mode" => EventAudience::Operators(Scope::Talk),
        "terminal.data" | "terminal.exit" => EventAudience::Operators(Scope::Admin),
        e if e.starts_with("plugin.") => EventAudience::Operators(Scope::Write),
        _ => EventAudience::Nobody,
    }
}

/// Whether a connection with `role` and `scopes` may receive `event`.
pub fn may_receive_event(role: Role, scopes: ScopeSet, event: &str) -> bool {
    match (event_audience(event), role) {
        (EventAudience::Everyone, _) => true,
        (EventAudience::Nobody, _) => false,
        // Node hosts get the unrestricted events and voice-wake changes only.
        (EventAudience::Operators(_), Role::Node) => matches!(event, "voicewake.changed" | "voicewake.routing.changed"),
        (EventAudience::Operators(scope), Role::Operator) => scopes.allows(scope),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &[Scope]) -> ScopeSet {
        s.iter().copied().collect()
    }

    #[test]
    fn admin_allows_everything() {
        let admin = set(&[Scope::Admin]);
        for s in Scope::ALL {
            assert!(admin.allows(s));
        }
    }

    #[test]
    fn write_implies_read_but_not_the_reverse() {
        assert!(set(&[Scope::Write]).allows(Scope::Read));
        assert!(!set(&[Scope::Read]).allows(Scope::Write));
        assert!(!set(&[Scope::Write]).allows(Scope::Pairing));
        assert!(!set(&[Scope::Write]).allows(Scope::Admin));
    }

    #[test]
    fn unknown_methods_need_admin() {
        assert_eq!(method_access("no.such.method"), MethodAccess::Operator(Scope::Admin));
        let err = authorize(Role::Operator, set(&[Scope::Read]), "no.such.method").unwrap_err();
        assert_eq!(err, AccessDenied::MissingScope(Scope::Admin));
    }

    #[test]
    fn reserved_prefixes_need_admin_unless_listed() {
        assert_eq!(method_access("config.set"), MethodAccess::Operator(Scope::Admin));
        assert_eq!(method_access("config.get"), MethodAccess::Operator(Scope::Read));
        assert_eq!(method_access("wizard.start"), MethodAccess::Operator(Scope::Admin));
    }

    #[test]
    fn health_needs_nothing_and_nodes_are_confined() {
        assert!(authorize(Role::Node, ScopeSet::EMPTY, "health").is_ok());
        assert!(authorize(Role::Operator, ScopeSet::EMPTY, "health").is_ok());
        assert!(authorize(Role::Node, ScopeSet::EMPTY, "node.event").is_ok());
        assert_eq!(
            authorize(Role::Node, ScopeSet::all(), "status"),
            Err(AccessDenied::UnauthorizedRole(Role::Node))
        );
        assert_eq!(
            authorize(Role::Operator, ScopeSet::all(), "node.event"),
            Err(AccessDenied::UnauthorizedRole(Role::Operator))
        );
    }

    #[test]
    fn missing_scope_error_matches_the_reference_shape() {
        let e = AccessDenied::MissingScope(Scope::Admin).to_error();
        assert_eq!(e.code, crate::frame::ErrorCode::Forbidden);
        assert_eq!(e.message, "missing scope: operator.admin");
        assert_eq!(
            e.details.unwrap(),
            json!({"code":"MISSING_SCOPE","missingScope":"operator.admin","requiredScopes":["operator.admin"]})
        );
    }

    #[test]
    fn events_are_gated_by_scope() {
        assert!(may_receive_event(Role::Node, ScopeSet::EMPTY, "tick"));
        assert!(!may_receive_event(Role::Operator, ScopeSet::EMPTY, "chat"));
        assert!(may_receive_event(Role::Operator, set(&[Scope::Read]), "chat"));
        assert!(!may_receive_event(
            Role::Operator,
            set(&[Scope::Read]),
            "device.pair.requested"
        ));
        assert!(may_receive_event(
            Role::Operator,
            set(&[Scope::Pairing]),
            "device.pair.requested"
        ));
        assert!(!may_receive_event(Role::Node, ScopeSet::all(), "chat"));
        assert!(!may_receive_event(Role::Operator, ScopeSet::all(), "never.heard.of"));
    }
}
