//! DM pairing for chat channels, as OpenClaw documents it: an unknown sender under
//! `dmPolicy: "pairing"` gets an 8-character code; the request waits at most an hour; at most
//! three wait per channel account (further senders are ignored until one goes); the owner
//! approves a code (the sender may then write) or dismisses it (the sender may ask again).
//! Pure state, kept per channel and account, and written as one JSON document by the runtime.

use crate::channel_routing::{pairing_code, PAIRING_CODE_LEN};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// How long a request waits, as OpenClaw's.
pub const PAIRING_TTL_MS: u64 = 60 * 60 * 1000;
/// Requests that wait per channel account, as OpenClaw's.
pub const PENDING_PER_ACCOUNT: usize = 3;
/// Approved senders kept per channel account; the oldest approval goes first past it.
pub const APPROVED_PER_ACCOUNT: usize = 10_000;

/// One request that waits for the owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairingRequest {
    pub code: String,
    pub sender_id: String,
    /// What the channel knows of the sender (a display name, say); no message text.
    #[serde(default)]
    pub meta: Map<String, Value>,
    pub created_at_ms: u64,
    pub last_seen_at_ms: u64,
}

/// The requests and approvals of one channel account.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AccountPairing {
    #[serde(default)]
    pub pending: Vec<PairingRequest>,
    #[serde(default)]
    pub approved: Vec<String>,
}

/// What an unknown sender's message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairingAsk {
    /// A new request: the sender is told this code (once; repeats get nothing).
    Created(String),
    /// The sender's request already waits; nothing is sent again.
    Waiting,
    /// Three requests wait already: the message is ignored until one goes.
    Full,
}

/// Every channel account's pairing state, keyed `channel:account`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelPairings {
    #[serde(default)]
    accounts: BTreeMap<String, AccountPairing>,
}

fn key(channel: &str, account: &str) -> String {
    format!("{}:{}", channel.trim().to_lowercase(), account.trim().to_lowercase())
}

fn same(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

impl ChannelPairings {
    /// Reads the persisted document; a document that does not parse is an error.
    pub fn from_json(text: &str) -> Result<ChannelPairings, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    /// The document to persist.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// The account's state.
    pub fn account(&self, channel: &str, account: &str) -> Option<&AccountPairing> {
        self.accounts.get(&key(channel, account))
    }

    /// The senders approved on the account.
    pub fn approved(&self, channel: &str, account: &str) -> &[String] {
        self.account(channel, account).map_or(&[], |a| a.approved.as_slice())
    }

    /// Drops requests older than the TTL; whether anything changed.
    pub fn expire(&mut self, now_ms: u64) -> bool {
        let mut changed = false;
        for account in self.accounts.values_mut() {
            let before = account.pending.len();
            account
                .pending
                .retain(|r| now_ms.saturating_sub(r.created_at_ms) < PAIRING_TTL_MS);
            changed |= account.pending.len() != before;
        }
        changed
    }

    /// An unknown sender wrote; `random` draws the code of a new request.
    pub fn ask(
        &mut self,
        now_ms: u64,
        (channel, account): (&str, &str),
        sender: &str,
        meta: Map<String, Value>,
        random: [u8; PAIRING_CODE_LEN],
    ) -> PairingAsk {
        self.expire(now_ms);
        let state = self.accounts.entry(key(channel, account)).or_default();
        if let Some(waiting) = state.pending.iter_mut().find(|r| same(&r.sender_id, sender)) {
            waiting.last_seen_at_ms = now_ms;
            return PairingAsk::Waiting;
        }
        if state.pending.len() >= PENDING_PER_ACCOUNT {
            return PairingAsk::Full;
        }
        // Codes are unique per account: a clash (about one in 32^8) steps a character onwards.
        let mut random = random;
        let mut code = pairing_code(random);
        let mut step = 0usize;
        while state.pending.iter().any(|r| r.code == code) {
            random[step % PAIRING_CODE_LEN] = random[step % PAIRING_CODE_LEN].wrapping_add(1);
            step += 1;
            code = pairing_code(random);
        }
        state.pending.push(PairingRequest {
            code: code.clone(),
            sender_id: sender.trim().to_owned(),
            meta,
            created_at_ms: now_ms,
            last_seen_at_ms: now_ms,
        });
        PairingAsk::Created(code)
    }

    /// Approves the request with `code` (case-insensitive): its sender may write from now on.
    /// `None` when no such request waits.
    pub fn approve(&mut self, now_ms: u64, at: (&str, &str), code: &str) -> Option<PairingRequest> {
        let (state, request) = self.take(now_ms, at, code)?;
        if !state.approved.iter().any(|s| same(s, &request.sender_id)) {
            state.approved.push(request.sender_id.clone());
            if state.approved.len() > APPROVED_PER_ACCOUNT {
                state.approved.remove(0);
            }
        }
        Some(request)
    }

    /// Dismisses the request with `code`; the sender may ask again later.
    pub fn dismiss(&mut self, now_ms: u64, at: (&str, &str), code: &str) -> Option<PairingRequest> {
        self.take(now_ms, at, code).map(|(_, request)| request)
    }

    /// Takes the live request with `code` off the account's list, with the account's state.
    fn take(
        &mut self,
        now_ms: u64,
        (channel, account): (&str, &str),
        code: &str,
    ) -> Option<(&mut AccountPairing, PairingRequest)> {
        self.expire(now_ms);
        let state = self.accounts.get_mut(&key(channel, account))?;
        let at = state.pending.iter().position(|r| same(&r.code, code))?;
        let request = state.pending.remove(at);
        Some((state, request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IRC: (&str, &str) = ("irc", "default");

    #[test]
    fn an_unknown_sender_gets_one_code_and_repeats_get_nothing() {
        let mut p = ChannelPairings::default();
        let PairingAsk::Created(code) = p.ask(0, IRC, "alice!a@host", Map::new(), [1; 8]) else {
            panic!("a new request");
        };
        assert_eq!(p.ask(10, IRC, "ALICE!a@host", Map::new(), [2; 8]), PairingAsk::Waiting);
        assert_eq!(p.account("irc", "default").unwrap().pending[0].last_seen_at_ms, 10);
        assert_eq!(
            p.approve(20, IRC, &code.to_lowercase()).unwrap().sender_id,
            "alice!a@host"
        );
        assert_eq!(p.approved("IRC", "default"), ["alice!a@host"]);
        assert!(p.account("irc", "default").unwrap().pending.is_empty());
    }

    #[test]
    fn at_most_three_wait_per_account_and_an_hour_frees_a_place() {
        let mut p = ChannelPairings::default();
        for (i, who) in ["a", "b", "c"].iter().enumerate() {
            assert!(matches!(
                p.ask(i as u64, IRC, who, Map::new(), [i as u8; 8]),
                PairingAsk::Created(_)
            ));
        }
        assert_eq!(p.ask(5, IRC, "d", Map::new(), [9; 8]), PairingAsk::Full);
        assert!(
            matches!(
                p.ask(5, ("irc", "work"), "d", Map::new(), [9; 8]),
                PairingAsk::Created(_)
            ),
            "per account"
        );
        assert!(matches!(
            p.ask(PAIRING_TTL_MS + 1, IRC, "d", Map::new(), [9; 8]),
            PairingAsk::Created(_)
        ));
    }

    #[test]
    fn a_dismissed_sender_may_ask_again_and_unknown_codes_change_nothing() {
        let mut p = ChannelPairings::default();
        let PairingAsk::Created(code) = p.ask(0, IRC, "bob", Map::new(), [3; 8]) else {
            panic!()
        };
        assert!(p.approve(1, IRC, "ZZZZZZZZ").is_none());
        assert_eq!(p.dismiss(1, IRC, &code).unwrap().sender_id, "bob");
        assert!(p.approved("irc", "default").is_empty());
        assert!(matches!(
            p.ask(2, IRC, "bob", Map::new(), [4; 8]),
            PairingAsk::Created(_)
        ));
    }

    #[test]
    fn codes_are_unique_within_an_account() {
        let mut p = ChannelPairings::default();
        let PairingAsk::Created(a) = p.ask(0, IRC, "a", Map::new(), [5; 8]) else {
            panic!()
        };
        let PairingAsk::Created(b) = p.ask(0, IRC, "b", Map::new(), [5; 8]) else {
            panic!()
        };
        assert_ne!(a, b);
    }

    #[test]
    fn the_state_reads_back_from_what_it_wrote() {
        let mut p = ChannelPairings::default();
        let PairingAsk::Created(code) = p.ask(0, IRC, "a", Map::new(), [6; 8]) else {
            panic!()
        };
        p.ask(0, IRC, "b", Map::new(), [7; 8]);
        p.approve(1, IRC, &code);
        assert_eq!(ChannelPairings::from_json(&p.to_json()).unwrap(), p);
        assert!(ChannelPairings::from_json("{\"accounts\": 3}").is_err());
    }
}
