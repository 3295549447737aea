//! Where a chat network's inbound message goes, and whether it is let in: OpenClaw's channel
//! routing (`bindings` choose the agent; `session.dmScope` and `session.groupScope` shape the
//! session key) and its access policies (`dmPolicy`, `allowFrom`, `groupPolicy`, `groups`,
//! `groupAllowFrom`, mention gating). Pure decisions over the configuration: the channel adapters
//! do the network I/O and ask these functions what to do.

use clawgate_proto::session::{AgentId, SessionRouting};
use serde::Deserialize;
use serde_json::Value;

/// What kind of conversation a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerKind {
    /// One person writing to the bot.
    Direct,
    /// A group chat.
    Group,
    /// A channel or room.
    Channel,
}

impl PeerKind {
    fn as_str(self) -> &'static str {
        match self {
            PeerKind::Direct => "direct",
            PeerKind::Group => "group",
            PeerKind::Channel => "channel",
        }
    }
}

/// A conversation: its kind and its id on the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub kind: PeerKind,
    pub id: String,
}

/// How direct messages are kept apart (`session.dmScope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DmScope {
    /// Every DM goes to the agent's main session.
    #[default]
    Main,
    /// One session per sender, across channels.
    PerPeer,
    /// One session per channel and sender.
    PerChannelPeer,
    /// One session per channel, account and sender.
    PerAccountChannelPeer,
}

/// How groups and channels are kept apart (`session.groupScope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupScope {
    /// One session per group or channel.
    #[default]
    PerGroup,
    /// Every group and channel goes to the agent's main session.
    Main,
}

/// A peer a binding matches: a kind and an id, or `*` for every peer of the kind.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PeerMatch {
    pub kind: PeerKind,
    pub id: String,
}

/// Which accounts of a channel a binding covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountMatch {
    /// No `accountId`: the default account only, as OpenClaw reads it.
    Default,
    /// `accountId: "*"`: every account.
    Any,
    /// One account.
    Named(String),
}

/// A session override a binding carries (`bindings[].session`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionOverride {
    pub dm_scope: Option<DmScope>,
    pub group_scope: Option<GroupScope>,
}

/// One entry of `bindings`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub agent_id: AgentId,
    pub channel: String,
    pub account: AccountMatch,
    pub peer: Option<PeerMatch>,
    pub guild_id: Option<String>,
    pub team_id: Option<String>,
    pub session: SessionOverride,
}

/// The account id of a channel's default account.
pub const DEFAULT_ACCOUNT: &str = "default";

fn lower(s: &str) -> String {
    s.trim().to_lowercase()
}

impl Binding {
    /// Reads `bindings` as OpenClaw writes it; entries that name no agent or channel are left out,
    /// with the reason, so a typo is reported rather than routing somewhere unexpected.
    pub fn list_from(document: &Value) -> (Vec<Binding>, Vec<String>) {
        let (mut bindings, mut problems) = (Vec::new(), Vec::new());
        for (i, entry) in document["bindings"].as_array().into_iter().flatten().enumerate() {
            let agent = entry["agentId"]
                .as_str()
                .map(str::trim)
                .filter(|a| AgentId::is_valid(a));
            let m = &entry["match"];
            let channel = m["channel"].as_str().map(lower).filter(|c| !c.is_empty());
            let (Some(agent), Some(channel)) = (agent, channel) else {
                problems.push(format!(
                    "bindings[{i}] needs an agentId and a match.channel; it is ignored"
                ));
                continue;
            };
            let account = match m["accountId"].as_str().map(lower) {
                None => AccountMatch::Default,
                Some(a) if a == "*" => AccountMatch::Any,
                Some(a) => AccountMatch::Named(a),
            };
            let peer = match serde_json::from_value::<PeerMatch>(m["peer"].clone()) {
                Ok(p) => Some(PeerMatch {
                    kind: p.kind,
                    id: p.id.trim().to_owned(),
                }),
                Err(_) if m["peer"].is_null() => None,
                Err(e) => {
                    problems.push(format!("bindings[{i}].match.peer: {e}; the binding is ignored"));
                    continue;
                }
            };
            bindings.push(Binding {
                agent_id: AgentId::normalize(agent),
                channel,
                account,
                peer,
                guild_id: m["guildId"].as_str().map(|s| s.trim().to_owned()),
                team_id: m["teamId"].as_str().map(|s| s.trim().to_owned()),
                session: serde_json::from_value(entry["session"].clone()).unwrap_or_default(),
            });
        }
        (bindings, problems)
    }

    fn covers_account(&self, account: &str) -> bool {
        match &self.account {
            AccountMatch::Default => account == DEFAULT_ACCOUNT,
            AccountMatch::Any => true,
            AccountMatch::Named(a) => a == account,
        }
    }
}

/// An inbound message's coordinates.
#[derive(Debug, Clone)]
pub struct Inbound<'a> {
    pub channel: &'a str,
    pub account_id: &'a str,
    pub peer: Peer,
    /// The conversation a thread belongs to, for thread inheritance of bindings.
    pub parent_peer: Option<Peer>,
    pub thread_id: Option<&'a str>,
    pub guild_id: Option<&'a str>,
    pub team_id: Option<&'a str>,
}

/// How an agent was chosen, as OpenClaw names the tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy {
    Peer,
    ParentPeer,
    PeerWildcard,
    Guild,
    Team,
    Account,
    Channel,
    Default,
}

impl MatchedBy {
    /// OpenClaw's name of the tier.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchedBy::Peer => "binding.peer",
            MatchedBy::ParentPeer => "binding.peer.parent",
            MatchedBy::PeerWildcard => "binding.peer.wildcard",
            MatchedBy::Guild => "binding.guild",
            MatchedBy::Team => "binding.team",
            MatchedBy::Account => "binding.account",
            MatchedBy::Channel => "binding.channel",
            MatchedBy::Default => "default",
        }
    }
}

/// Whether a binding belongs to a routing tier.
type BindingTest<'a> = dyn Fn(&Binding) -> bool + 'a;

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub agent_id: AgentId,
    pub session_key: String,
    pub matched_by: MatchedBy,
}

/// The routing part of the configuration.
#[derive(Debug, Clone, Default)]
pub struct ChannelRouting {
    pub bindings: Vec<Binding>,
    pub dm_scope: DmScope,
    pub group_scope: GroupScope,
    pub sessions: SessionRouting,
}

impl ChannelRouting {
    /// Reads `bindings`, `session.dmScope` and `session.groupScope`; `sessions` gives the
    /// default agent and the main key.
    pub fn from_document(document: &Value, sessions: SessionRouting) -> (ChannelRouting, Vec<String>) {
        let (bindings, mut problems) = Binding::list_from(document);
        let scope = |key: &str| document["session"][key].clone();
        let dm_scope = match scope("dmScope") {
            Value::Null => DmScope::Main,
            v => serde_json::from_value(v).unwrap_or_else(|e| {
                problems.push(format!("session.dmScope: {e}; main is used"));
                DmScope::Main
            }),
        };
        let group_scope = match scope("groupScope") {
            Value::Null => GroupScope::PerGroup,
            v => serde_json::from_value(v).unwrap_or_else(|e| {
                problems.push(format!("session.groupScope: {e}; per-group is used"));
                GroupScope::PerGroup
            }),
        };
        (
            ChannelRouting {
                bindings,
                dm_scope,
                group_scope,
                sessions,
            },
            problems,
        )
    }

    /// The agent and session of an inbound message, by OpenClaw's tiers: the exact peer, the
    /// thread's parent peer, a peer wildcard, the guild, the team, the account, the channel,
    /// and last the default agent.
    pub fn route(&self, inbound: &Inbound<'_>) -> Route {
        let channel = lower(inbound.channel);
        let account = match lower(inbound.account_id) {
            a if a.is_empty() => DEFAULT_ACCOUNT.to_owned(),
            a => a,
        };
        let candidates: Vec<&Binding> = self
            .bindings
            .iter()
            .filter(|b| b.channel == channel && b.covers_account(&account))
            .collect();
        let peer_is = |b: &Binding, peer: &Peer| {
            b.peer
                .as_ref()
                .is_some_and(|p| p.kind == peer.kind && p.id != "*" && lower(&p.id) == lower(&peer.id))
        };
        // Every field a binding names must match; a tier only takes bindings that name its field.
        let rest_matches = |b: &Binding| {
            b.guild_id.as_deref().is_none_or(|g| Some(g) == inbound.guild_id)
                && b.team_id.as_deref().is_none_or(|t| Some(t) == inbound.team_id)
        };
        let first = |tier: &dyn Fn(&Binding) -> bool| candidates.iter().copied().find(|b| tier(b) && rest_matches(b));
        let tiers: [(MatchedBy, &BindingTest); 7] = [
            (MatchedBy::Peer, &|b| peer_is(b, &inbound.peer)),
            (MatchedBy::ParentPeer, &|b| {
                inbound.parent_peer.as_ref().is_some_and(|p| peer_is(b, p))
            }),
            (MatchedBy::PeerWildcard, &|b| {
                b.peer
                    .as_ref()
                    .is_some_and(|p| p.kind == inbound.peer.kind && p.id == "*")
            }),
            (MatchedBy::Guild, &|b| b.peer.is_none() && b.guild_id.is_some()),
            (MatchedBy::Team, &|b| {
                b.peer.is_none() && b.guild_id.is_none() && b.team_id.is_some()
            }),
            (MatchedBy::Account, &|b| {
                b.peer.is_none()
                    && b.guild_id.is_none()
                    && b.team_id.is_none()
                    && !matches!(b.account, AccountMatch::Any)
            }),
            (MatchedBy::Channel, &|b| {
                b.peer.is_none() && b.guild_id.is_none() && b.team_id.is_none() && b.account == AccountMatch::Any
            }),
        ];
        let chosen = tiers
            .iter()
            .find_map(|(tier, matches)| first(*matches).map(|b| (*tier, b)));
        let (matched_by, agent_id, session) = match chosen {
            Some((tier, b)) => (tier, b.agent_id.clone(), b.session),
            None => (
                MatchedBy::Default,
                self.sessions.default_agent.clone(),
                SessionOverride::default(),
            ),
        };
        let dm_scope = session.dm_scope.unwrap_or(self.dm_scope);
        let group_scope = session.group_scope.unwrap_or(self.group_scope);
        let base = self.session_key(&agent_id, &channel, &account, &inbound.peer, dm_scope, group_scope);
        let session_key = match inbound.thread_id.map(lower).filter(|t| !t.is_empty()) {
            Some(thread) => format!("{base}:thread:{thread}"),
            None => base,
        };
        Route {
            agent_id,
            session_key,
            matched_by,
        }
    }

    fn main_of(&self, agent: &AgentId) -> String {
        format!("agent:{agent}:{}", self.sessions.effective_main_key())
    }

    fn session_key(
        &self,
        agent: &AgentId,
        channel: &str,
        account: &str,
        peer: &Peer,
        dm_scope: DmScope,
        group_scope: GroupScope,
    ) -> String {
        let id = lower(&peer.id);
        if peer.kind == PeerKind::Direct {
            return match dm_scope {
                _ if id.is_empty() => self.main_of(agent),
                DmScope::Main => self.main_of(agent),
                DmScope::PerPeer => format!("agent:{agent}:direct:{id}"),
                DmScope::PerChannelPeer => format!("agent:{agent}:{channel}:direct:{id}"),
                DmScope::PerAccountChannelPeer => format!("agent:{agent}:{channel}:{account}:direct:{id}"),
            };
        }
        if group_scope == GroupScope::Main {
            return self.main_of(agent);
        }
        let id = if id.is_empty() { "unknown".to_owned() } else { id };
        format!("agent:{agent}:{channel}:{}:{id}", peer.kind.as_str())
    }
}

/// Who may write to the bot directly (`dmPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DmPolicy {
    /// An unknown sender gets a pairing code; the owner approves it.
    #[default]
    Pairing,
    /// Only `allowFrom`.
    Allowlist,
    /// Everyone, when `allowFrom` has `*`; otherwise only `allowFrom`.
    Open,
    /// Nobody.
    Disabled,
}

/// Which groups the bot listens in (`groupPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupPolicy {
    /// Every group (still mention-gated by default).
    Open,
    /// Only the groups listed in `groups`.
    #[default]
    Allowlist,
    /// None.
    Disabled,
}

/// What happens to a direct message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmAdmission {
    /// It goes to the agent.
    Accept,
    /// The sender is unknown: pair first (the message is not processed).
    Pair,
    /// It is dropped, for this reason.
    Drop(&'static str),
}

/// What happens to a group message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupAdmission {
    /// It goes to the agent.
    Accept,
    /// The bot was not mentioned: kept for context only, not answered.
    ContextOnly,
    /// It is dropped, for this reason.
    Drop(&'static str),
}

/// Whether `sender` is on `list` (`*` lets everyone in; entries compare case-insensitively).
pub fn listed(list: &[String], sender: &str) -> bool {
    let sender = lower(sender);
    list.iter().any(|e| e.trim() == "*" || lower(e) == sender)
}

/// The access settings of one channel account.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub dm_policy: DmPolicy,
    /// `allowFrom`: who may write directly.
    pub allow_from: Vec<String>,
    pub group_policy: GroupPolicy,
    /// `groupAllowFrom`: who may trigger the bot in any group.
    pub group_allow_from: Vec<String>,
    /// `groups`: per-group settings by group id (`*` for all).
    pub groups: serde_json::Map<String, Value>,
}

impl Access {
    /// Reads a channel's (or an account's) settings, falling back to `parent` for keys it lacks.
    pub fn from_settings(own: &Value, parent: &Value) -> Access {
        let pick = |key: &str| {
            if own.get(key).is_some_and(|v| !v.is_null()) {
                own[key].clone()
            } else {
                parent[key].clone()
            }
        };
        let strings = |v: Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| {
                    e.as_str()
                        .map(str::to_owned)
                        .or_else(|| e.as_i64().map(|n| n.to_string()))
                })
                .collect()
        };
        Access {
            dm_policy: serde_json::from_value(pick("dmPolicy")).unwrap_or_default(),
            allow_from: strings(pick("allowFrom")),
            group_policy: serde_json::from_value(pick("groupPolicy")).unwrap_or_default(),
            group_allow_from: strings(pick("groupAllowFrom")),
            groups: pick("groups").as_object().cloned().unwrap_or_default(),
        }
    }

    /// A direct message from `sender`; `paired` are the senders approved by pairing.
    pub fn admit_dm(&self, sender: &str, paired: &[String]) -> DmAdmission {
        match self.dm_policy {
            DmPolicy::Disabled => DmAdmission::Drop("dm-disabled"),
            // Pairing approvals do not widen `open` or `allowlist` access, as OpenClaw keeps it.
            DmPolicy::Open | DmPolicy::Allowlist if listed(&self.allow_from, sender) => DmAdmission::Accept,
            DmPolicy::Open | DmPolicy::Allowlist => DmAdmission::Drop("not-allowlisted"),
            DmPolicy::Pairing if listed(&self.allow_from, sender) || listed(paired, sender) => DmAdmission::Accept,
            DmPolicy::Pairing => DmAdmission::Pair,
        }
    }

    /// A message from `sender` in group `group`; `mentioned` says whether it names the bot.
    pub fn admit_group(&self, group: &str, sender: &str, mentioned: bool) -> GroupAdmission {
        let entry = self
            .groups
            .iter()
            .find(|(id, _)| lower(id) == lower(group))
            .map(|(_, v)| v)
            .or_else(|| self.groups.get("*"));
        match self.group_policy {
            GroupPolicy::Disabled => return GroupAdmission::Drop("groups-disabled"),
            GroupPolicy::Allowlist if entry.is_none() => return GroupAdmission::Drop("group-not-allowlisted"),
            _ => {}
        }
        if entry.is_some_and(|e| e["enabled"] == false) {
            return GroupAdmission::Drop("group-disabled");
        }
        let own_list: Option<Vec<String>> = entry
            .and_then(|e| e["allowFrom"].as_array())
            .map(|l| l.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect());
        let sender_ok = match &own_list {
            Some(list) => listed(list, sender),
            None => listed(&self.group_allow_from, sender),
        };
        if !sender_ok {
            return GroupAdmission::Drop("sender-not-allowlisted");
        }
        let require_mention = entry.and_then(|e| e["requireMention"].as_bool()).unwrap_or(true);
        if require_mention && !mentioned {
            return GroupAdmission::ContextOnly;
        }
        GroupAdmission::Accept
    }
}

/// The alphabet of pairing codes: upper-case letters and digits without the ambiguous `0O1I`.
pub const PAIRING_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Characters in a pairing code.
pub const PAIRING_CODE_LEN: usize = 8;

/// A pairing code from random bytes (one per character; 32 letters, so each byte maps evenly).
pub fn pairing_code(random: [u8; PAIRING_CODE_LEN]) -> String {
    random
        .iter()
        .map(|b| PAIRING_ALPHABET[usize::from(*b) % PAIRING_ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn routing(doc: Value) -> ChannelRouting {
        let (r, problems) =
            ChannelRouting::from_document(&doc, SessionRouting::with_default_agent(AgentId::normalize("main")));
        assert!(problems.is_empty(), "{problems:?}");
        r
    }

    fn dm(channel: &'static str, sender: &str) -> Inbound<'static> {
        Inbound {
            channel,
            account_id: "default",
            peer: Peer {
                kind: PeerKind::Direct,
                id: sender.to_owned(),
            },
            parent_peer: None,
            thread_id: None,
            guild_id: None,
            team_id: None,
        }
    }

    #[test]
    fn direct_messages_collapse_to_the_main_session_by_default() {
        let r = routing(json!({}));
        let route = r.route(&dm("irc", "Alice"));
        assert_eq!(route.session_key, "agent:main:main");
        assert_eq!(route.matched_by, MatchedBy::Default);
    }

    #[test]
    fn dm_scope_keeps_senders_apart_as_openclaw_names_the_keys() {
        for (scope, key) in [
            ("per-peer", "agent:main:direct:alice"),
            ("per-channel-peer", "agent:main:irc:direct:alice"),
            ("per-account-channel-peer", "agent:main:irc:default:direct:alice"),
        ] {
            let r = routing(json!({"session": {"dmScope": scope}}));
            assert_eq!(r.route(&dm("IRC", "Alice")).session_key, key, "{scope}");
        }
    }

    #[test]
    fn groups_channels_and_threads_have_their_own_sessions() {
        let r = routing(json!({}));
        let mut m = dm("telegram", "x");
        m.peer = Peer {
            kind: PeerKind::Group,
            id: "-100123".into(),
        };
        assert_eq!(r.route(&m).session_key, "agent:main:telegram:group:-100123");
        m.peer = Peer {
            kind: PeerKind::Channel,
            id: "#Ops".into(),
        };
        m.thread_id = Some("42");
        assert_eq!(r.route(&m).session_key, "agent:main:telegram:channel:#ops:thread:42");
        let main = routing(json!({"session": {"groupScope": "main"}}));
        m.thread_id = None;
        assert_eq!(main.route(&m).session_key, "agent:main:main");
    }

    #[test]
    fn bindings_pick_the_agent_by_tier_most_specific_first() {
        let r = routing(json!({"bindings": [
            {"agentId": "everyone", "match": {"channel": "irc", "accountId": "*"}},
            {"agentId": "home", "match": {"channel": "irc"}},
            {"agentId": "rooms", "match": {"channel": "irc", "peer": {"kind": "channel", "id": "*"}}},
            {"agentId": "ops", "match": {"channel": "irc", "peer": {"kind": "channel", "id": "#ops"}},
             "session": {"groupScope": "main"}},
        ]}));
        let mut m = dm("irc", "bob");
        assert_eq!(
            (r.route(&m).agent_id.as_str().to_owned(), r.route(&m).matched_by),
            ("home".into(), MatchedBy::Account)
        );
        m.account_id = "work";
        assert_eq!(
            r.route(&m).matched_by,
            MatchedBy::Channel,
            "a default-account binding does not cover others"
        );
        m.account_id = "default";
        m.peer = Peer {
            kind: PeerKind::Channel,
            id: "#OPS".into(),
        };
        let route = r.route(&m);
        assert_eq!((route.agent_id.as_str(), route.matched_by), ("ops", MatchedBy::Peer));
        assert_eq!(route.session_key, "agent:ops:main", "the binding's groupScope wins");
        m.peer.id = "#dev".into();
        assert_eq!(r.route(&m).matched_by, MatchedBy::PeerWildcard);
        m.peer = Peer {
            kind: PeerKind::Channel,
            id: "thread-9".into(),
        };
        m.parent_peer = Some(Peer {
            kind: PeerKind::Channel,
            id: "#ops".into(),
        });
        assert_eq!(r.route(&m).matched_by, MatchedBy::ParentPeer);
    }

    #[test]
    fn a_binding_without_agent_or_channel_is_reported_and_ignored() {
        let (r, problems) = ChannelRouting::from_document(
            &json!({"bindings": [{"match": {"channel": "irc"}}, {"agentId": "x", "match": {}}]}),
            SessionRouting::default(),
        );
        assert!(r.bindings.is_empty());
        assert_eq!(problems.len(), 2);
    }

    #[test]
    fn dm_policies_admit_as_openclaw_documents_them() {
        let access = |policy: &str, allow: Value| {
            Access::from_settings(&json!({"dmPolicy": policy, "allowFrom": allow}), &json!({}))
        };
        let paired = vec!["carol".to_owned()];
        assert_eq!(
            access("pairing", json!([])).admit_dm("dave", &paired),
            DmAdmission::Pair
        );
        assert_eq!(
            access("pairing", json!([])).admit_dm("Carol", &paired),
            DmAdmission::Accept
        );
        assert_eq!(
            access("allowlist", json!(["alice"])).admit_dm("alice", &[]),
            DmAdmission::Accept
        );
        assert_eq!(
            access("allowlist", json!(["alice"])).admit_dm("carol", &paired),
            DmAdmission::Drop("not-allowlisted"),
            "pairing approvals do not widen an allowlist"
        );
        assert_eq!(
            access("open", json!(["*"])).admit_dm("anyone", &[]),
            DmAdmission::Accept
        );
        assert_eq!(
            access("open", json!(["alice"])).admit_dm("bob", &[]),
            DmAdmission::Drop("not-allowlisted")
        );
        assert_eq!(
            access("disabled", json!(["*"])).admit_dm("alice", &[]),
            DmAdmission::Drop("dm-disabled")
        );
        assert_eq!(Access::default().dm_policy, DmPolicy::Pairing, "pairing is the default");
    }

    #[test]
    fn group_messages_pass_the_channel_gate_the_sender_gate_then_mention_gating() {
        let access = Access::from_settings(
            &json!({"groupPolicy": "allowlist", "groups": {
                "#home": {"allowFrom": ["*"]},
                "#quiet": {"allowFrom": ["*"], "requireMention": false},
                "#off": {"enabled": false},
            }}),
            &json!({}),
        );
        assert_eq!(
            access.admit_group("#elsewhere", "a", true),
            GroupAdmission::Drop("group-not-allowlisted")
        );
        assert_eq!(access.admit_group("#home", "a", false), GroupAdmission::ContextOnly);
        assert_eq!(access.admit_group("#HOME", "a", true), GroupAdmission::Accept);
        assert_eq!(access.admit_group("#quiet", "a", false), GroupAdmission::Accept);
        assert_eq!(
            access.admit_group("#off", "a", true),
            GroupAdmission::Drop("group-disabled")
        );
        let open = Access::from_settings(&json!({"groupPolicy": "open"}), &json!({"groupAllowFrom": ["ann"]}));
        assert_eq!(open.admit_group("#any", "ann", true), GroupAdmission::Accept);
        assert_eq!(
            open.admit_group("#any", "bob", true),
            GroupAdmission::Drop("sender-not-allowlisted")
        );
        assert_eq!(
            Access::default().admit_group("#any", "ann", true),
            GroupAdmission::Drop("group-not-allowlisted"),
            "groups are an allowlist by default"
        );
    }

    #[test]
    fn pairing_codes_are_eight_unambiguous_capitals() {
        let code = pairing_code([0, 31, 32, 200, 7, 8, 9, 255]);
        assert_eq!(code.len(), 8);
        assert!(code.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
        assert!(!code.contains(['0', 'O', '1', 'I']));
    }
}
