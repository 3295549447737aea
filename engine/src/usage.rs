//! Token usage: what each model turn used, as the worker reports it, summed per day for
//! `usage.cost` (with the cost the model's `cost` configuration gives, in dollars per million
//! tokens) and per session for its row.

use serde_json::{json, Value};
use std::collections::BTreeMap;

pub(crate) const DAY_MS: u64 = 86_400_000;

/// Tokens, and what they cost.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub input_cost: f64,
    pub output_cost: f64,
}

impl Tokens {
    pub(crate) fn add(&mut self, other: Tokens) {
        self.input += other.input;
        self.output += other.output;
        self.input_cost += other.input_cost;
        self.output_cost += other.output_cost;
    }
}

/// Usage per UTC day.
#[derive(Debug, Default)]
pub struct UsageLedger {
    daily: BTreeMap<u64, Tokens>,
}

/// The UTC calendar date of a day since the Unix epoch (the civil-from-days algorithm).
pub fn civil_date(epoch_day: u64) -> (i64, u32, u32) {
    let z = epoch_day as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The day since the Unix epoch of a `YYYY-MM-DD` date (days-from-civil); `None` for text that
/// is no date on or after 1970-01-01.
pub fn epoch_day(text: &str) -> Option<u64> {
    let mut parts = text.trim().splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let year = y;
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let day = era * 146_097 + doe - 719_468;
    let day = u64::try_from(day).ok()?;
    // A day that does not exist (February 30) does not come back as itself.
    (civil_date(day) == (year, m as u32, d as u32)).then_some(day)
}

impl UsageLedger {
    /// Records a turn's tokens at `at_ms`.
    pub fn record(&mut self, at_ms: u64, tokens: Tokens) {
        self.daily.entry(at_ms / DAY_MS).or_default().add(tokens);
    }

    /// `usage.cost`: the last `days` days up to today, one entry each (zeros included).
    pub fn cost_payload(&self, now_ms: u64, days: u64) -> Value {
        let today = now_ms / DAY_MS;
        let first = today.saturating_sub(days.saturating_sub(1));
        let daily: Vec<Value> = (first..=today)
            .map(|day| {
                let t = self.daily.get(&day).copied().unwrap_or_default();
                let (y, m, d) = civil_date(day);
                json!({
                    "date": format!("{y:04}-{m:02}-{d:02}"),
                    "input": t.input, "output": t.output, "cacheRead": 0, "cacheWrite": 0,
                    "totalTokens": t.input + t.output,
                    "totalCost": t.input_cost + t.output_cost, "inputCost": t.input_cost, "outputCost": t.output_cost,
                    "cacheReadCost": 0, "cacheWriteCost": 0, "missingCostEntries": 0,
                })
            })
            .collect();
        json!({"updatedAt": now_ms, "days": days, "daily": daily})
    }
}

/// `usage.status`: provider quota windows. Clawgate reads none from providers.
pub fn status_payload(now_ms: u64) -> Value {
    json!({"updatedAt": now_ms, "providers": []})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_read_back_as_their_epoch_days() {
        assert_eq!(epoch_day("1970-01-01"), Some(0));
        assert_eq!(epoch_day("2026-12-02"), Some(20_789));
        assert_eq!(epoch_day("2024-02-29").map(civil_date), Some((2024, 2, 29)));
        for bad in ["2026-02-30", "2026-13-01", "1969-12-31", "yesterday", "2026-1"] {
            assert_eq!(epoch_day(bad), None, "{bad}");
        }
    }

    #[test]
    fn epoch_days_are_calendar_dates() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(20_789), (2026, 12, 2));
    }

    #[test]
    fn the_cost_report_has_one_entry_per_day_with_todays_usage_last() {
        let mut ledger = UsageLedger::default();
        let now = 20_789 * DAY_MS + 5_000;
        ledger.record(
            now,
            Tokens {
                input: 50,
                output: 7,
                input_cost: 0.1,
                output_cost: 0.2,
            },
        );
        ledger.record(
            now - DAY_MS,
            Tokens {
                input: 1,
                output: 1,
                ..Tokens::default()
            },
        );
        let report = ledger.cost_payload(now, 30);
        let daily = report["daily"].as_array().unwrap();
        assert_eq!(daily.len(), 30);
        assert_eq!(daily[29]["date"], "2026-12-02");
        assert_eq!(daily[29]["totalTokens"], 57);
        assert!((daily[29]["totalCost"].as_f64().unwrap() - 0.3).abs() < 1e-9);
        assert_eq!(daily[28]["input"], 1);
        assert_eq!(daily[0]["date"], "2026-11-03");
    }
}
