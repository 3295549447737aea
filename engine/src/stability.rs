//! The stability recorder behind `diagnostics.stability`: a bounded ring of payload-free records
//! of what went on (runs, model usage, tool executions, queued messages, refused payloads, slow
//! consumers), in OpenClaw's record shape, so `openclaw gateway stability` and the Control UI can
//! show what happened before a problem. Records carry kinds, sizes, durations and outcomes; never
//! message text, arguments or secrets.

use clawgate_proto::frame::{ErrorCode, ErrorShape};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, VecDeque};

/// Records kept, as OpenClaw keeps them; the oldest goes first.
pub const CAPACITY: usize = 1000;
/// Records answered when the request names no limit.
const DEFAULT_LIMIT: usize = 50;

/// The ring.
#[derive(Debug, Default)]
pub struct StabilityRecorder {
    records: VecDeque<Value>,
    next_seq: u64,
    dropped: u64,
}

impl StabilityRecorder {
    /// Records one event of `kind` at `now_ms`; `fields` is an object of its details.
    pub fn record(&mut self, now_ms: u64, kind: &str, fields: Value) {
        self.next_seq += 1;
        let mut record = Map::new();
        record.insert("seq".into(), json!(self.next_seq));
        record.insert("ts".into(), json!(now_ms));
        record.insert("type".into(), json!(kind));
        if let Value::Object(extra) = fields {
            record.extend(extra.into_iter().filter(|(_, v)| !v.is_null()));
        }
        self.records.push_back(Value::Object(record));
        if self.records.len() > CAPACITY {
            self.records.pop_front();
            self.dropped += 1;
        }
    }

    /// `diagnostics.stability {limit?, type?, sinceSeq?}`, answered at `generated_at` (ISO time).
    pub fn snapshot(&self, generated_at: String, params: &Value) -> Result<Value, ErrorShape> {
        let invalid = |m: &str| ErrorShape::new(ErrorCode::InvalidRequest, m.to_owned());
        let limit = match &params["limit"] {
            Value::Null => DEFAULT_LIMIT,
            v => match v.as_u64() {
                Some(n) if (1..=CAPACITY as u64).contains(&n) => n as usize,
                _ => return Err(invalid("limit must be an integer between 1 and 1000")),
            },
        };
        let kind = match &params["type"] {
            Value::Null => None,
            Value::String(t) if !t.trim().is_empty() => Some(t.trim()),
            _ => return Err(invalid("type must be a non-empty string")),
        };
        let since = match &params["sinceSeq"] {
            Value::Null => None,
            v => Some(
                v.as_u64()
                    .ok_or_else(|| invalid("sinceSeq must be a non-negative integer"))?,
            ),
        };
        let filtered: Vec<&Value> = self
            .records
            .iter()
            .filter(|r| kind.is_none_or(|k| r["type"] == k))
            .filter(|r| since.is_none_or(|s| r["seq"].as_u64().unwrap_or(0) > s))
            .collect();
        let mut by_type: BTreeMap<&str, u64> = BTreeMap::new();
        for r in &filtered {
            *by_type.entry(r["type"].as_str().unwrap_or("unknown")).or_default() += 1;
        }
        let events: Vec<&Value> = filtered[filtered.len().saturating_sub(limit)..].to_vec();
        let mut snapshot = json!({
            "generatedAt": generated_at,
            "capacity": CAPACITY,
            "count": filtered.len(),
            "dropped": self.dropped,
            "events": events,
            "summary": {"byType": by_type},
        });
        if let (Some(first), Some(last)) = (filtered.first(), filtered.last()) {
            snapshot["firstSeq"] = first["seq"].clone();
            snapshot["lastSeq"] = last["seq"].clone();
        }
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(r: &StabilityRecorder, params: Value) -> Value {
        r.snapshot("2026-12-02T00:00:00.000Z".into(), &params).unwrap()
    }

    #[test]
    fn records_are_numbered_and_summed_by_type() {
        let mut r = StabilityRecorder::default();
        r.record(1, "run.started", json!({}));
        r.record(
            2,
            "run.completed",
            json!({"outcome": "completed", "durationMs": 1, "none": null}),
        );
        r.record(3, "run.started", json!({}));
        let s = at(&r, json!({}));
        assert_eq!(s["count"], 3);
        assert_eq!((s["firstSeq"].as_u64(), s["lastSeq"].as_u64()), (Some(1), Some(3)));
        assert_eq!(s["summary"]["byType"], json!({"run.completed": 1, "run.started": 2}));
        assert!(s["events"][1].get("none").is_none(), "empty details are left out");
    }

    #[test]
    fn a_query_filters_by_type_and_sequence_and_keeps_the_newest_within_its_limit() {
        let mut r = StabilityRecorder::default();
        for i in 0..10 {
            r.record(i, if i % 2 == 0 { "a" } else { "b" }, json!({}));
        }
        let s = at(&r, json!({"type": "a", "sinceSeq": 2, "limit": 2}));
        assert_eq!(s["count"], 4, "seqs 3, 5, 7, 9");
        let seqs: Vec<u64> = s["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["seq"].as_u64())
            .collect();
        assert_eq!(seqs, [7, 9]);
    }

    #[test]
    fn the_ring_is_bounded_and_counts_what_it_dropped() {
        let mut r = StabilityRecorder::default();
        for i in 0..(CAPACITY as u64 + 5) {
            r.record(i, "a", json!({}));
        }
        let s = at(&r, json!({"limit": 1000}));
        assert_eq!(
            (s["count"].as_u64(), s["dropped"].as_u64()),
            (Some(CAPACITY as u64), Some(5))
        );
        assert_eq!(s["firstSeq"], 6);
    }

    #[test]
    fn bad_queries_are_refused() {
        let r = StabilityRecorder::default();
        for bad in [
            json!({"limit": 0}),
            json!({"limit": "x"}),
            json!({"sinceSeq": -1}),
            json!({"type": 3}),
        ] {
            assert!(r.snapshot(String::new(), &bad).is_err(), "{bad}");
        }
    }
}
