//! Properties of channel routing and access: whatever a chat network sends, the decision is
//! total, lands in a session of a known agent, and never lets in more than the policy says.

use clawgate_engine::channel_routing::*;
use clawgate_proto::session::{AgentId, SessionRouting};
use proptest::prelude::*;
use serde_json::json;

fn kind() -> impl Strategy<Value = PeerKind> {
    prop_oneof![Just(PeerKind::Direct), Just(PeerKind::Group), Just(PeerKind::Channel)]
}

fn scope() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("main"),
        Just("per-peer"),
        Just("per-channel-peer"),
        Just("per-account-channel-peer")
    ]
}

fn routing(dm_scope: &str) -> ChannelRouting {
    let doc = json!({
        "session": {"dmScope": dm_scope},
        "bindings": [
            {"agentId": "ops", "match": {"channel": "irc", "peer": {"kind": "channel", "id": "#ops"}}},
            {"agentId": "work", "match": {"channel": "matrix", "accountId": "*"}},
        ],
    });
    ChannelRouting::from_document(&doc, SessionRouting::with_default_agent(AgentId::normalize("main"))).0
}

fn inbound<'a>(channel: &'a str, account: &'a str, kind: PeerKind, id: &str, thread: Option<&'a str>) -> Inbound<'a> {
    Inbound {
        channel,
        account_id: account,
        peer: Peer {
            kind,
            id: id.to_owned(),
        },
        parent_peer: None,
        thread_id: thread,
        guild_id: None,
        team_id: None,
    }
}

proptest! {
    #[test]
    fn every_message_lands_in_a_session_of_a_known_agent(
        channel in "[a-zA-Z]{0,8}|irc|matrix",
        account in "[a-z]{0,6}",
        k in kind(),
        id in any::<String>(),
        thread in proptest::option::of(any::<String>()),
        dm_scope in scope(),
    ) {
        let r = routing(dm_scope);
        let route = r.route(&inbound(&channel, &account, k, &id, thread.as_deref()));
        prop_assert!(["main", "ops", "work"].contains(&route.agent_id.as_str()));
        let prefix = format!("agent:{}:", route.agent_id);
        prop_assert!(route.session_key.starts_with(&prefix), "{}", route.session_key);
    }

    #[test]
    fn with_the_default_dm_scope_every_sender_shares_the_main_session(
        a in "[a-z0-9]{1,12}",
        b in "[a-z0-9]{1,12}",
        channel in "irc|telegram|slack",
    ) {
        let r = routing("main");
        let ka = r.route(&inbound(&channel, "default", PeerKind::Direct, &a, None)).session_key;
        let kb = r.route(&inbound(&channel, "default", PeerKind::Direct, &b, None)).session_key;
        prop_assert_eq!(&ka, "agent:main:main");
        prop_assert_eq!(ka, kb);
    }

    #[test]
    fn per_peer_scopes_keep_different_senders_apart(
        a in "[a-z0-9]{1,12}",
        b in "[a-z0-9]{1,12}",
        dm_scope in "per-peer|per-channel-peer|per-account-channel-peer",
    ) {
        prop_assume!(a != b);
        let r = routing(&dm_scope);
        let ka = r.route(&inbound("telegram", "default", PeerKind::Direct, &a, None)).session_key;
        let kb = r.route(&inbound("telegram", "default", PeerKind::Direct, &b, None)).session_key;
        prop_assert_ne!(ka, kb);
    }

    #[test]
    fn per_peer_follows_a_sender_across_channels_and_per_channel_peer_does_not(sender in "[a-z0-9]{1,12}") {
        let across = routing("per-peer");
        prop_assert_eq!(
            across.route(&inbound("telegram", "default", PeerKind::Direct, &sender, None)).session_key,
            across.route(&inbound("slack", "default", PeerKind::Direct, &sender, None)).session_key
        );
        let apart = routing("per-channel-peer");
        prop_assert_ne!(
            apart.route(&inbound("telegram", "default", PeerKind::Direct, &sender, None)).session_key,
            apart.route(&inbound("slack", "default", PeerKind::Direct, &sender, None)).session_key
        );
    }

    #[test]
    fn a_dm_is_let_in_only_as_its_policy_says(
        policy in "pairing|allowlist|open|disabled",
        allow in proptest::collection::vec("[a-z*]{1,4}", 0..4),
        paired in proptest::collection::vec("[a-z]{1,4}", 0..4),
        sender in "[a-z]{1,4}",
    ) {
        let access = Access::from_settings(&json!({"dmPolicy": policy, "allowFrom": allow}), &json!({}));
        let on_list = allow.iter().any(|e| e == "*" || *e == sender);
        let was_paired = paired.contains(&sender);
        let expected = match policy.as_str() {
            "disabled" => DmAdmission::Drop("dm-disabled"),
            "pairing" if on_list || was_paired => DmAdmission::Accept,
            "pairing" => DmAdmission::Pair,
            _ if on_list => DmAdmission::Accept,
            _ => DmAdmission::Drop("not-allowlisted"),
        };
        prop_assert_eq!(access.admit_dm(&sender, &paired), expected);
    }

    #[test]
    fn a_group_message_is_answered_only_when_the_group_and_sender_pass_and_it_is_addressed(
        policy in "open|allowlist|disabled",
        listed_group in any::<bool>(),
        require_mention in proptest::option::of(any::<bool>()),
        mentioned in any::<bool>(),
        sender_allowed in any::<bool>(),
    ) {
        let mut groups = serde_json::Map::new();
        if listed_group {
            let mut entry = json!({"allowFrom": if sender_allowed { json!(["*"]) } else { json!(["someone-else"]) }});
            if let Some(r) = require_mention {
                entry["requireMention"] = json!(r);
            }
            groups.insert("#room".into(), entry);
        }
        let access = Access::from_settings(
            &json!({"groupPolicy": policy, "groups": groups, "groupAllowFrom": if sender_allowed { json!(["ann"]) } else { json!([]) }}),
            &json!({}),
        );
        let admission = access.admit_group("#room", "ann", mentioned);
        if admission == GroupAdmission::Accept {
            prop_assert!(policy != "disabled");
            prop_assert!(policy == "open" || listed_group);
            prop_assert!(sender_allowed);
            prop_assert!(mentioned || require_mention == Some(false));
        }
    }

    #[test]
    fn pairing_codes_use_only_the_unambiguous_alphabet(random in any::<[u8; 8]>()) {
        let code = pairing_code(random);
        prop_assert_eq!(code.len(), PAIRING_CODE_LEN);
        prop_assert!(code.bytes().all(|c| PAIRING_ALPHABET.contains(&c)));
    }
}

#[derive(Debug, Clone)]
enum PairingStep {
    Ask { sender: u8, random: [u8; 8] },
    Approve { pick: usize },
    Dismiss { pick: usize },
    Wait { ms: u64 },
}

fn pairing_step() -> impl Strategy<Value = PairingStep> {
    prop_oneof![
        (0u8..6, any::<[u8; 8]>()).prop_map(|(sender, random)| PairingStep::Ask { sender, random }),
        (0usize..4).prop_map(|pick| PairingStep::Approve { pick }),
        (0usize..4).prop_map(|pick| PairingStep::Dismiss { pick }),
        (0u64..2_000_000).prop_map(|ms| PairingStep::Wait { ms }),
    ]
}

proptest! {
    #[test]
    fn pairing_stays_bounded_unique_and_approves_only_who_asked(steps in proptest::collection::vec(pairing_step(), 0..60)) {
        use clawgate_engine::channel_pairing::*;
        let mut p = ChannelPairings::default();
        let mut now = 0u64;
        let mut asked = std::collections::BTreeSet::new();
        let account = ("irc", "default");
        for step in steps {
            let pending: Vec<(String, u64)> = p
                .account("irc", "default")
                .map(|a| a.pending.iter().map(|r| (r.code.clone(), r.created_at_ms)).collect())
                .unwrap_or_default();
            match step {
                PairingStep::Ask { sender, random } => {
                    let who = format!("user{sender}");
                    asked.insert(who.clone());
                    p.ask(now, account, &who, Default::default(), random);
                }
                PairingStep::Approve { pick } => {
                    if let Some((code, created)) = pending.get(pick) {
                        let fresh = now - created < PAIRING_TTL_MS;
                        prop_assert_eq!(p.approve(now, account, code).is_some(), fresh, "an expired code approves nobody");
                    }
                }
                PairingStep::Dismiss { pick } => {
                    if let Some((code, _)) = pending.get(pick) {
                        p.dismiss(now, account, code);
                    }
                }
                PairingStep::Wait { ms } => now += ms,
            }
            let state = p.account("irc", "default").cloned().unwrap_or_default();
            prop_assert!(state.pending.len() <= PENDING_PER_ACCOUNT);
            let codes: std::collections::BTreeSet<_> = state.pending.iter().map(|r| &r.code).collect();
            prop_assert_eq!(codes.len(), state.pending.len(), "codes are unique");
            prop_assert!(state.approved.iter().all(|s| asked.contains(s)));
        }
    }
}
