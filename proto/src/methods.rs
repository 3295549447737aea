//! The one table of methods: each method's name, what it requires of the caller, whether a retry
//! must not repeat its effects, and which part of the gateway answers it. Everything else is
//! derived from it: the role and scope gate ([`crate::scopes::authorize`]), the methods advertised
//! in `hello-ok`, the idempotency cache, the metrics' method label and the engine's dispatch.
//!
//! The table also lists methods of OpenClaw's that this gateway does not answer (their owner is
//! `None`): the gate must still ask for their scope first, so that a caller without it learns the
//! scope it lacks rather than whether the method exists, as the reference gateway answers.

use crate::scopes::{MethodAccess, Scope};
use std::collections::HashMap;
use std::sync::LazyLock;

/// The part of the gateway that answers a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    /// The gateway's own state: health, status, presence, logs, configuration, nodes, tool lists.
    Core,
    /// `tools.invoke`: answered once the tool has run.
    Tools,
    /// Device pairing and device tokens.
    Pairing,
    /// Agent runs, sessions and the workers that serve them.
    Agents,
    /// What the Control UI asks for beyond the rest.
    ControlUi,
    /// Exec approvals: the ones that wait, their decisions, the approvals file.
    Approvals,
    /// Cron jobs and heartbeats.
    Cron,
    /// The configuration file: reading it, its schema, and writing it.
    Config,
    /// Chat channels: their adapters, inbound messages, deliveries and DM pairing.
    Channels,
}

/// One method of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Method {
    /// The wire name, e.g. `chat.send`.
    pub name: &'static str,
    /// What the caller's role and scopes must allow.
    pub access: MethodAccess,
    /// A retry with the same `idempotencyKey` gets the first answer instead of running again.
    pub side_effecting: bool,
    /// Who answers it here; `None` for a method this gateway does not implement.
    pub owner: Option<Owner>,
}

const fn method(name: &'static str, access: MethodAccess, side_effecting: bool, owner: Option<Owner>) -> Method {
    Method {
        name,
        access,
        side_effecting,
        owner,
    }
}

use MethodAccess::{Anyone, NodeOnly, Operator};

/// Every method the gateway knows, implemented ones first, in the order `hello-ok` lists them.
pub const METHODS: &[Method] = &[
    method("health", Anyone, false, Some(Owner::Core)),
    method("status", Operator(Scope::Read), false, Some(Owner::Core)),
    method("system-presence", Operator(Scope::Read), false, Some(Owner::Core)),
    method("logs.tail", Operator(Scope::Read), false, Some(Owner::Core)),
    method("gateway.identity.get", Operator(Scope::Read), false, Some(Owner::Core)),
    method("config.get", Operator(Scope::Read), false, Some(Owner::Config)),
    method("config.schema", Operator(Scope::Read), false, Some(Owner::Config)),
    method(
        "config.schema.lookup",
        Operator(Scope::Read),
        false,
        Some(Owner::Config),
    ),
    method("config.set", Operator(Scope::Admin), false, Some(Owner::Config)),
    method("config.patch", Operator(Scope::Admin), false, Some(Owner::Config)),
    method("config.apply", Operator(Scope::Admin), false, Some(Owner::Config)),
    method(
        "gateway.restart.request",
        Operator(Scope::Admin),
        false,
        Some(Owner::Config),
    ),
    method("agents.create", Operator(Scope::Admin), false, Some(Owner::Config)),
    method("agents.update", Operator(Scope::Admin), false, Some(Owner::Config)),
    method("agents.delete", Operator(Scope::Admin), false, Some(Owner::Config)),
    method("agents.files.list", Operator(Scope::Read), false, Some(Owner::Config)),
    method("agents.files.get", Operator(Scope::Read), false, Some(Owner::Config)),
    method("agents.files.set", Operator(Scope::Admin), false, Some(Owner::Config)),
    method("sessions.list", Operator(Scope::Read), false, Some(Owner::Core)),
    method("config.reload", Operator(Scope::Admin), false, Some(Owner::Core)),
    method("secrets.reload", Operator(Scope::Admin), false, Some(Owner::Core)),
    method("hooks.status", Operator(Scope::Read), false, Some(Owner::ControlUi)),
    method("tools.catalog", Operator(Scope::Read), false, Some(Owner::Core)),
    method("tools.effective", Operator(Scope::Read), false, Some(Owner::Core)),
    method("tools.invoke", Operator(Scope::Write), true, Some(Owner::Tools)),
    method("node.list", Operator(Scope::Read), false, Some(Owner::Core)),
    method("node.describe", Operator(Scope::Read), false, Some(Owner::Core)),
    method(
        "device.pair.list",
        Operator(Scope::Pairing),
        false,
        Some(Owner::Pairing),
    ),
    method(
        "device.pair.approve",
        Operator(Scope::Pairing),
        false,
        Some(Owner::Pairing),
    ),
    method(
        "device.pair.reject",
        Operator(Scope::Pairing),
        false,
        Some(Owner::Pairing),
    ),
    method(
        "device.pair.remove",
        Operator(Scope::Pairing),
        false,
        Some(Owner::Pairing),
    ),
    method(
        "device.pair.rename",
        Operator(Scope::Pairing),
        false,
        Some(Owner::Pairing),
    ),
    method(
        "device.token.rotate",
        Operator(Scope::Pairing),
        false,
        Some(Owner::Pairing),
    ),
    method(
        "device.token.revoke",
        Operator(Scope::Pairing),
        false,
        Some(Owner::Pairing),
    ),
    method("chat.send", Operator(Scope::Write), true, Some(Owner::Agents)),
    method("chat.history", Operator(Scope::Read), false, Some(Owner::Agents)),
    method("chat.abort", Operator(Scope::Write), false, Some(Owner::Agents)),
    method("agent", Operator(Scope::Write), true, Some(Owner::Agents)),
    method("agent.wait", Operator(Scope::Write), false, Some(Owner::Agents)),
    method("agents.list", Operator(Scope::Read), false, Some(Owner::Agents)),
    method("sessions.patch", Operator(Scope::Write), false, Some(Owner::Agents)),
    method("sessions.compact", Operator(Scope::Admin), false, Some(Owner::Agents)),
    method("sessions.cleanup", Operator(Scope::Admin), false, Some(Owner::Agents)),
    method("sessions.get", Operator(Scope::Read), false, Some(Owner::Agents)),
    method("sessions.resolve", Operator(Scope::Read), false, Some(Owner::Agents)),
    method("sessions.reset", Operator(Scope::Admin), false, Some(Owner::Agents)),
    method("sessions.delete", Operator(Scope::Admin), false, Some(Owner::Agents)),
    method("sessions.subscribe", Operator(Scope::Read), false, Some(Owner::Agents)),
    method(
        "sessions.unsubscribe",
        Operator(Scope::Read),
        false,
        Some(Owner::Agents),
    ),
    method(
        "sessions.messages.subscribe",
        Operator(Scope::Read),
        false,
        Some(Owner::Agents),
    ),
    method(
        "sessions.messages.unsubscribe",
        Operator(Scope::Read),
        false,
        Some(Owner::Agents),
    ),
    method("node.invoke", Operator(Scope::Write), true, Some(Owner::Agents)),
    method("node.invoke.result", NodeOnly, false, Some(Owner::Agents)),
    method("node.event", NodeOnly, false, Some(Owner::Agents)),
    method("chat.startup", Operator(Scope::Read), false, Some(Owner::ControlUi)),
    method("chat.metadata", Operator(Scope::Read), false, Some(Owner::ControlUi)),
    method(
        "agent.identity.get",
        Operator(Scope::Read),
        false,
        Some(Owner::ControlUi),
    ),
    method(
        "sessions.describe",
        Operator(Scope::Read),
        false,
        Some(Owner::ControlUi),
    ),
    method(
        "question.list",
        Operator(Scope::Questions),
        false,
        Some(Owner::ControlUi),
    ),
    method("models.list", Operator(Scope::Read), false, Some(Owner::ControlUi)),
    method(
        "models.authStatus",
        Operator(Scope::Read),
        false,
        Some(Owner::ControlUi),
    ),
    method("users.prefs.get", Operator(Scope::Read), false, Some(Owner::ControlUi)),
    method("tasks.list", Operator(Scope::Read), false, Some(Owner::ControlUi)),
    method("system.info", Operator(Scope::Read), false, Some(Owner::ControlUi)),
    method(
        "diagnostics.lanes",
        Operator(Scope::Read),
        false,
        Some(Owner::ControlUi),
    ),
    method(
        "environments.list",
        Operator(Scope::Read),
        false,
        Some(Owner::ControlUi),
    ),
    method("artifacts.list", Operator(Scope::Read), false, Some(Owner::ControlUi)),
    method("progressCard.get", Operator(Scope::Read), false, Some(Owner::ControlUi)),
    method(
        "sessions.branches.list",
        Operator(Scope::Read),
        false,
        Some(Owner::ControlUi),
    ),
    method("plugins.list", Operator(Scope::Read), false, Some(Owner::ControlUi)),
    method(
        "sessions.companion.state",
        Operator(Scope::Read),
        false,
        Some(Owner::ControlUi),
    ),
    method("themes.list", Operator(Scope::Read), false, Some(Owner::ControlUi)),
    method(
        "channels.pairing.list",
        Operator(Scope::Pairing),
        false,
        Some(Owner::Channels),
    ),
    method(
        "channels.pairing.approve",
        Operator(Scope::Pairing),
        false,
        Some(Owner::Channels),
    ),
    method(
        "channels.pairing.dismiss",
        Operator(Scope::Pairing),
        false,
        Some(Owner::Channels),
    ),
    method("channels.start", Operator(Scope::Admin), false, Some(Owner::Channels)),
    method("channels.stop", Operator(Scope::Admin), false, Some(Owner::Channels)),
    method("channels.logout", Operator(Scope::Admin), false, Some(Owner::Channels)),
    method(
        "channels.deadLetters.list",
        Operator(Scope::Read),
        false,
        Some(Owner::Channels),
    ),
    method(
        "channels.deadLetters.retry",
        Operator(Scope::Admin),
        false,
        Some(Owner::Channels),
    ),
    method("channel.inbound", NodeOnly, false, Some(Owner::Channels)),
    method("channel.state", NodeOnly, false, Some(Owner::Channels)),
    method("channel.delivered", NodeOnly, false, Some(Owner::Channels)),
    method(
        "skills.library.list",
        Operator(Scope::Read),
        false,
        Some(Owner::ControlUi),
    ),
    method("talk.catalog", Operator(Scope::Read), false, Some(Owner::ControlUi)),
    method(
        "plugins.catalog.browse",
        Operator(Scope::Read),
        false,
        Some(Owner::ControlUi),
    ),
    method("webSearch.status", Operator(Scope::Read), false, Some(Owner::ControlUi)),
    method(
        "tools.github.status",
        Operator(Scope::Read),
        false,
        Some(Owner::ControlUi),
    ),
    method(
        "diagnostics.stability",
        Operator(Scope::Read),
        false,
        Some(Owner::ControlUi),
    ),
    method(
        "sessions.observer.visibility",
        Operator(Scope::Admin),
        false,
        Some(Owner::ControlUi),
    ),
    method(
        "sessions.viewers.set",
        Operator(Scope::Admin),
        false,
        Some(Owner::ControlUi),
    ),
    method(
        "doctor.memory.status",
        Operator(Scope::Read),
        false,
        Some(Owner::ControlUi),
    ),
    method("doctor.memory.dreamDiary", Operator(Scope::Read), false, None),
    method("channels.status", Operator(Scope::Read), false, Some(Owner::Channels)),
    method("update.status", Operator(Scope::Admin), false, Some(Owner::ControlUi)),
    method("usage.status", Operator(Scope::Read), false, Some(Owner::Agents)),
    method("usage.cost", Operator(Scope::Read), false, Some(Owner::Agents)),
    method("tts.status", Operator(Scope::Read), false, None),
    method("tts.providers", Operator(Scope::Read), false, None),
    method("commands.list", Operator(Scope::Read), false, Some(Owner::ControlUi)),
    method("skills.status", Operator(Scope::Read), false, Some(Owner::ControlUi)),
    method("skills.search", Operator(Scope::Read), false, None),
    method("skills.detail", Operator(Scope::Read), false, None),
    method("voicewake.get", Operator(Scope::Read), false, None),
    method("sessions.preview", Operator(Scope::Read), false, Some(Owner::Agents)),
    method("sessions.compaction.list", Operator(Scope::Read), false, None),
    method("sessions.compaction.get", Operator(Scope::Read), false, None),
    method("sessions.usage", Operator(Scope::Read), false, Some(Owner::Agents)),
    method("sessions.usage.timeseries", Operator(Scope::Read), false, None),
    method("sessions.usage.logs", Operator(Scope::Read), false, None),
    method("talk.config", Operator(Scope::Read), false, None),
    method("message.action", Operator(Scope::Write), true, Some(Owner::Channels)),
    method("send", Operator(Scope::Write), true, Some(Owner::Channels)),
    method("poll", Operator(Scope::Write), true, None),
    method("talk.mode", Operator(Scope::Write), false, None),
    method("talk.speak", Operator(Scope::Write), false, None),
    method("tts.enable", Operator(Scope::Write), false, None),
    method("tts.disable", Operator(Scope::Write), false, None),
    method("tts.convert", Operator(Scope::Write), false, None),
    method("tts.setProvider", Operator(Scope::Write), false, None),
    method("voicewake.set", Operator(Scope::Write), false, None),
    method("sessions.create", Operator(Scope::Write), false, Some(Owner::Agents)),
    method("sessions.send", Operator(Scope::Write), false, Some(Owner::Agents)),
    method("sessions.steer", Operator(Scope::Write), false, None),
    method("sessions.abort", Operator(Scope::Write), false, Some(Owner::Agents)),
    method("sessions.compaction.branch", Operator(Scope::Write), false, None),
    method("doctor.memory.backfillDreamDiary", Operator(Scope::Write), false, None),
    method("doctor.memory.resetDreamDiary", Operator(Scope::Write), false, None),
    method(
        "doctor.memory.resetGroundedShortTerm",
        Operator(Scope::Write),
        false,
        None,
    ),
    method(
        "doctor.memory.repairDreamingArtifacts",
        Operator(Scope::Write),
        false,
        None,
    ),
    method("doctor.memory.dedupeDreamDiary", Operator(Scope::Write), false, None),
    method("push.test", Operator(Scope::Write), false, None),
    method("node.pending.enqueue", Operator(Scope::Write), false, None),
    method("users.prefs.set", Operator(Scope::Write), false, None),
    method(
        "exec.approval.get",
        Operator(Scope::Approvals),
        false,
        Some(Owner::Approvals),
    ),
    method(
        "exec.approval.list",
        Operator(Scope::Approvals),
        false,
        Some(Owner::Approvals),
    ),
    method("exec.approval.request", Operator(Scope::Approvals), false, None),
    method("exec.approval.waitDecision", Operator(Scope::Approvals), false, None),
    method(
        "exec.approval.resolve",
        Operator(Scope::Approvals),
        false,
        Some(Owner::Approvals),
    ),
    method(
        "approval.resolve",
        Operator(Scope::Approvals),
        false,
        Some(Owner::Approvals),
    ),
    method(
        "exec.approvals.get",
        Operator(Scope::Admin),
        false,
        Some(Owner::Approvals),
    ),
    method(
        "exec.approvals.set",
        Operator(Scope::Admin),
        false,
        Some(Owner::Approvals),
    ),
    method(
        "plugin.approval.list",
        Operator(Scope::Approvals),
        false,
        Some(Owner::Approvals),
    ),
    method(
        "openclaw.approval.list",
        Operator(Scope::Approvals),
        false,
        Some(Owner::Approvals),
    ),
    method(
        "approval.get",
        Operator(Scope::Approvals),
        false,
        Some(Owner::Approvals),
    ),
    method(
        "exec.approval.grants.list",
        Operator(Scope::Approvals),
        false,
        Some(Owner::Approvals),
    ),
    method(
        "approval.history",
        Operator(Scope::Approvals),
        false,
        Some(Owner::Approvals),
    ),
    method("cron.status", Operator(Scope::Read), false, Some(Owner::Cron)),
    method("cron.list", Operator(Scope::Read), false, Some(Owner::Cron)),
    method("cron.get", Operator(Scope::Read), false, Some(Owner::Cron)),
    method("cron.runs", Operator(Scope::Read), false, Some(Owner::Cron)),
    method("cron.add", Operator(Scope::Admin), false, Some(Owner::Cron)),
    method("cron.update", Operator(Scope::Admin), false, Some(Owner::Cron)),
    method("cron.remove", Operator(Scope::Admin), false, Some(Owner::Cron)),
    method("cron.run", Operator(Scope::Admin), false, Some(Owner::Cron)),
    method("wake", Operator(Scope::Write), false, Some(Owner::Cron)),
    method("last-heartbeat", Operator(Scope::Read), false, Some(Owner::Cron)),
    method("set-heartbeats", Operator(Scope::Admin), false, Some(Owner::Cron)),
    method("system-event", Operator(Scope::Admin), false, Some(Owner::Cron)),
    method("plugin.approval.request", Operator(Scope::Approvals), false, None),
    method("plugin.approval.waitDecision", Operator(Scope::Approvals), false, None),
    method("plugin.approval.resolve", Operator(Scope::Approvals), false, None),
    method("node.pair.request", Operator(Scope::Pairing), false, None),
    method("node.pair.list", Operator(Scope::Pairing), false, Some(Owner::Core)),
    method("node.pair.reject", Operator(Scope::Pairing), false, None),
    method("node.pair.verify", Operator(Scope::Pairing), false, None),
    method("node.pair.approve", Operator(Scope::Pairing), false, None),
    method("node.rename", Operator(Scope::Pairing), false, None),
    method("question.get", Operator(Scope::Questions), false, None),
    method("question.request", Operator(Scope::Questions), false, None),
    method("question.waitAnswer", Operator(Scope::Questions), false, None),
    method("question.resolve", Operator(Scope::Questions), false, None),
    method("node.invoke.progress", NodeOnly, false, None),
    method("node.pending.drain", NodeOnly, false, None),
    method("node.pending.pull", NodeOnly, false, None),
    method("node.pending.ack", NodeOnly, false, None),
    method("node.pluginSurface.refresh", NodeOnly, false, None),
    method("node.pluginTools.update", NodeOnly, false, None),
    method("node.skills.update", NodeOnly, false, None),
    method("skills.bins", NodeOnly, false, None),
];

/// The entry of `name`, if the gateway knows the method.
pub fn lookup(name: &str) -> Option<&'static Method> {
    static BY_NAME: LazyLock<HashMap<&'static str, &'static Method>> =
        LazyLock::new(|| METHODS.iter().map(|m| (m.name, m)).collect());
    BY_NAME.get(name).copied()
}

/// The methods this gateway answers, in table order (`hello-ok.features.methods`).
pub fn implemented() -> impl Iterator<Item = &'static Method> {
    METHODS.iter().filter(|m| m.owner.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_listed_once() {
        let mut names: Vec<&str> = METHODS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }

    #[test]
    fn node_only_methods_are_answered_by_agents_channels_or_no_one() {
        for m in METHODS.iter().filter(|m| m.access == NodeOnly) {
            assert!(
                matches!(m.owner, None | Some(Owner::Agents | Owner::Channels)),
                "{}",
                m.name
            );
        }
    }
}
