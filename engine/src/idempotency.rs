//! The idempotency cache: a side-effecting request retried with the same `idempotencyKey` gets the
//! first answer again instead of running twice.

use crate::config::{IDEMPOTENCY_MAX_ENTRIES, IDEMPOTENCY_TTL_MS};
use clawgate_proto::frame::ErrorShape;
use serde_json::value::RawValue;
use std::collections::{HashMap, VecDeque};

/// What was answered the first time.
#[derive(Debug, Clone)]
pub enum CachedAnswer {
    /// A successful payload.
    Ok(Box<RawValue>),
    /// An error.
    Err(ErrorShape),
}

/// Bounded in time and in size: entries live 5 minutes, at most 1000 are kept (oldest dropped).
// Answers compare by their JSON text.
impl PartialEq for CachedAnswer {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (CachedAnswer::Ok(a), CachedAnswer::Ok(b)) => a.get() == b.get(),
            (CachedAnswer::Err(a), CachedAnswer::Err(b)) => a == b,
            _ => false,
        }
    }
}

#[derive(Debug, Default)]
pub struct IdempotencyCache {
    entries: HashMap<String, (u64, CachedAnswer)>,
    order: VecDeque<(u64, String)>,
}

impl IdempotencyCache {
    /// The cache key of a request, when its method is side-effecting and it carries a key.
    pub fn key_for(method: &str, params_json: &str) -> Option<String> {
        if !clawgate_proto::methods::lookup(method).is_some_and(|m| m.side_effecting) {
            return None;
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct KeyOnly {
            idempotency_key: Option<String>,
        }
        let key = serde_json::from_str::<KeyOnly>(params_json).ok()?.idempotency_key?;
        (!key.is_empty()).then(|| format!("{method}:{key}"))
    }

    fn expire(&mut self, now_ms: u64) {
        while let Some((at, key)) = self.order.front() {
            let stale = now_ms.saturating_sub(*at) > IDEMPOTENCY_TTL_MS;
            let replaced = self.entries.get(key).is_none_or(|(stored_at, _)| stored_at != at);
            if !(stale || replaced) {
                break;
            }
            if stale && !replaced {
                self.entries.remove(key);
            }
            self.order.pop_front();
        }
    }

    /// The earlier answer for `key`, if it is still fresh.
    pub fn get(&mut self, key: &str, now_ms: u64) -> Option<&CachedAnswer> {
        self.expire(now_ms);
        self.entries.get(key).map(|(_, a)| a)
    }

    /// Remembers the answer for `key`.
    pub fn insert(&mut self, key: String, answer: CachedAnswer, now_ms: u64) {
        self.expire(now_ms);
        while self.entries.len() >= IDEMPOTENCY_MAX_ENTRIES {
            let Some((at, oldest)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&oldest).is_some_and(|(stored_at, _)| *stored_at == at) {
                self.entries.remove(&oldest);
            }
        }
        self.order.push_back((now_ms, key.clone()));
        self.entries.insert(key, (now_ms, answer));
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawgate_proto::frame::to_raw;

    fn ok(n: u64) -> CachedAnswer {
        CachedAnswer::Ok(to_raw(&n))
    }

    #[test]
    fn only_side_effecting_methods_with_a_key_are_cached() {
        assert_eq!(
            IdempotencyCache::key_for("chat.send", r#"{"idempotencyKey":"k"}"#).as_deref(),
            Some("chat.send:k")
        );
        assert_eq!(IdempotencyCache::key_for("chat.send", r#"{"message":"x"}"#), None);
        assert_eq!(IdempotencyCache::key_for("chat.send", r#"{"idempotencyKey":""}"#), None);
        assert_eq!(IdempotencyCache::key_for("status", r#"{"idempotencyKey":"k"}"#), None);
    }

    #[test]
    fn answers_replay_for_five_minutes() {
        let mut c = IdempotencyCache::default();
        c.insert("a".into(), ok(1), 0);
        assert_eq!(c.get("a", IDEMPOTENCY_TTL_MS), Some(&ok(1)));
        assert_eq!(c.get("a", IDEMPOTENCY_TTL_MS + 1), None);
        assert!(c.is_empty());
    }

    #[test]
    fn the_oldest_entry_goes_when_the_cache_is_full() {
        let mut c = IdempotencyCache::default();
        for i in 0..=IDEMPOTENCY_MAX_ENTRIES as u64 {
            c.insert(format!("k{i}"), ok(i), i);
        }
        assert_eq!(c.len(), IDEMPOTENCY_MAX_ENTRIES);
        assert_eq!(c.get("k0", 2000), None);
        assert_eq!(c.get("k1", 2000), Some(&ok(1)));
    }

    #[test]
    fn reinserting_a_key_keeps_one_entry() {
        let mut c = IdempotencyCache::default();
        c.insert("a".into(), ok(1), 0);
        c.insert("a".into(), ok(2), 10);
        assert_eq!(c.len(), 1);
        assert_eq!(c.get("a", IDEMPOTENCY_TTL_MS + 5), Some(&ok(2)));
    }
}
