//! What one session used, read from its transcript's messages as they are appended (and again
//! when a transcript is read back at start): tokens and cost per model and per UTC day, message
//! counts, and tool calls by name. `sessions.usage` answers from these, in OpenClaw's shapes.

use crate::usage::{civil_date, Tokens, DAY_MS};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Tool names kept per session; calls to further names are counted under `other`.
const MAX_TOOL_NAMES: usize = 64;
/// Days kept per session; the oldest goes first.
const MAX_DAYS: usize = 400;

/// Messages by kind, as OpenClaw counts them.
#[derive(Debug, Clone, Copy, Default)]
struct MessageCounts {
    total: u64,
    user: u64,
    assistant: u64,
    tool_calls: u64,
    tool_results: u64,
    errors: u64,
}

impl MessageCounts {
    fn add(&mut self, other: &MessageCounts) {
        self.total += other.total;
        self.user += other.user;
        self.assistant += other.assistant;
        self.tool_calls += other.tool_calls;
        self.tool_results += other.tool_results;
        self.errors += other.errors;
    }

    fn to_json(self) -> Value {
        json!({"total": self.total, "user": self.user, "assistant": self.assistant, "toolCalls": self.tool_calls,
               "toolResults": self.tool_results, "errors": self.errors})
    }
}

/// One model's share: how many replies it gave, and their tokens.
#[derive(Debug, Clone, Copy, Default)]
struct ModelShare {
    count: u64,
    tokens: Tokens,
}

impl ModelShare {
    fn add(&mut self, other: &ModelShare) {
        self.count += other.count;
        self.tokens.add(other.tokens);
    }
}

/// One day of a session.
#[derive(Debug, Clone, Default)]
struct Day {
    tokens: Tokens,
    counts: MessageCounts,
    models: BTreeMap<(String, String), ModelShare>,
}

/// The usage of one session.
#[derive(Debug, Default)]
pub struct SessionUsage {
    totals: Tokens,
    counts: MessageCounts,
    models: BTreeMap<(String, String), ModelShare>,
    tools: BTreeMap<String, u64>,
    days: BTreeMap<u64, Day>,
    first_ms: Option<u64>,
    last_ms: Option<u64>,
}

impl SessionUsage {
    /// Counts one transcript message (`role`, `content`, `usage`, `provider`, `model`,
    /// `stopReason`, `timestamp`, as OpenClaw's transcript lines hold them).
    pub fn record(&mut self, message: &Value) {
        let at_ms = message["timestamp"].as_u64().unwrap_or(0);
        self.first_ms = Some(self.first_ms.map_or(at_ms, |f| f.min(at_ms)));
        self.last_ms = Some(self.last_ms.map_or(at_ms, |l| l.max(at_ms)));
        let mut counts = MessageCounts {
            total: 1,
            ..MessageCounts::default()
        };
        match message["role"].as_str() {
            Some("user") => counts.user = 1,
            Some("assistant") => counts.assistant = 1,
            Some("toolResult") => counts.tool_results = 1,
            _ => {}
        }
        if matches!(message["stopReason"].as_str(), Some("error" | "aborted" | "timeout")) || message["isError"] == true
        {
            counts.errors = 1;
        }
        for call in message["content"].as_array().into_iter().flatten() {
            if call["type"] != "toolCall" {
                continue;
            }
            counts.tool_calls += 1;
            let name = call["name"].as_str().unwrap_or("unknown");
            let name = if self.tools.contains_key(name) || self.tools.len() < MAX_TOOL_NAMES {
                name
            } else {
                "other"
            };
            *self.tools.entry(name.to_owned()).or_default() += 1;
        }
        let usage = &message["usage"];
        let tokens = Tokens {
            input: usage["input"].as_u64().unwrap_or(0),
            output: usage["output"].as_u64().unwrap_or(0),
            input_cost: usage["cost"]["input"].as_f64().unwrap_or(0.0),
            output_cost: usage["cost"]["output"].as_f64().unwrap_or(0.0),
        };
        let day = self.days.entry(at_ms / DAY_MS).or_default();
        day.counts.add(&counts);
        self.counts.add(&counts);
        if tokens.input + tokens.output > 0 {
            let model = (
                message["provider"].as_str().unwrap_or("unknown").to_owned(),
                message["model"].as_str().unwrap_or("unknown").to_owned(),
            );
            let share = ModelShare { count: 1, tokens };
            day.tokens.add(tokens);
            day.models.entry(model.clone()).or_default().add(&share);
            self.models.entry(model).or_default().add(&share);
            self.totals.add(tokens);
        }
        while self.days.len() > MAX_DAYS {
            self.days.pop_first();
        }
    }

    /// Input and output tokens.
    pub fn tokens(&self) -> (u64, u64) {
        (self.totals.input, self.totals.output)
    }

    /// Whether the session had activity on a day in `first..=last` (epoch days).
    pub fn active_within(&self, first: u64, last: u64) -> bool {
        self.days.range(first..=last).next().is_some()
    }

    /// The session row's `usage` for the days `first..=last`.
    pub fn row(&self, first: u64, last: u64) -> Value {
        let mut row = totals_json(self.totals);
        row["messageCounts"] = self.counts.to_json();
        row["toolUsage"] = tools_json(&self.tools);
        row["modelUsage"] = models_json(&self.models);
        let days: Vec<(&u64, &Day)> = self.days.range(first..=last).collect();
        row["dailyBreakdown"] = days
            .iter()
            .map(|(d, day)| json!({"date": date(**d), "tokens": day.tokens.input + day.tokens.output, "cost": cost(day.tokens)}))
            .collect();
        row["dailyMessageCounts"] = days
            .iter()
            .map(|(d, day)| {
                let mut c = day.counts.to_json();
                c["date"] = json!(date(**d));
                c
            })
            .collect();
        row["dailyModelUsage"] = days
            .iter()
            .flat_map(|(d, day)| {
                day.models.iter().map(move |((provider, model), s)| {
                    json!({"date": date(**d), "provider": provider, "model": model,
                           "tokens": s.tokens.input + s.tokens.output, "cost": cost(s.tokens), "count": s.count})
                })
            })
            .collect();
        row["activityDates"] = days.iter().map(|(d, _)| json!(date(**d))).collect();
        if let (Some(f), Some(l)) = (self.first_ms, self.last_ms) {
            row["firstActivity"] = json!(f);
            row["lastActivity"] = json!(l);
            row["durationMs"] = json!(l - f);
        }
        row
    }
}

/// The sum over sessions that `sessions.usage` reports as `aggregates`.
#[derive(Debug, Default)]
pub struct UsageAggregate {
    counts: MessageCounts,
    sessions: u64,
    tools: BTreeMap<String, u64>,
    models: BTreeMap<(String, String), ModelShare>,
    days: BTreeMap<u64, Day>,
    agents: BTreeMap<String, Tokens>,
    totals: Tokens,
}

impl UsageAggregate {
    /// Adds a session of `agent_id`, counting only its days in `first..=last`.
    pub fn add(&mut self, agent_id: &str, usage: &SessionUsage, first: u64, last: u64) {
        self.sessions += 1;
        for (d, day) in usage.days.range(first..=last) {
            self.counts.add(&day.counts);
            self.totals.add(day.tokens);
            self.agents.entry(agent_id.to_owned()).or_default().add(day.tokens);
            let into = self.days.entry(*d).or_default();
            into.tokens.add(day.tokens);
            into.counts.add(&day.counts);
            for (model, share) in &day.models {
                into.models.entry(model.clone()).or_default().add(share);
                self.models.entry(model.clone()).or_default().add(share);
            }
        }
        for (name, count) in &usage.tools {
            *self.tools.entry(name.clone()).or_default() += count;
        }
    }

    /// The totals over the range.
    pub fn totals(&self) -> Value {
        totals_json(self.totals)
    }

    /// `aggregates`, in OpenClaw's shape.
    pub fn to_json(&self) -> Value {
        let mut providers: BTreeMap<&str, ModelShare> = BTreeMap::new();
        for ((provider, _), share) in &self.models {
            providers.entry(provider).or_default().add(share);
        }
        let mut by_provider: Vec<Value> = providers
            .iter()
            .map(|(p, s)| json!({"provider": p, "count": s.count, "totals": totals_json(s.tokens)}))
            .collect();
        sort_by_cost(&mut by_provider);
        let mut tools = tools_json(&self.tools);
        tools["totalCalls"] = json!(self.tools.values().sum::<u64>());
        tools["uniqueTools"] = json!(self.tools.len());
        json!({
            "sessionCount": self.sessions,
            "messages": self.counts.to_json(),
            "tools": tools,
            "byModel": models_json(&self.models),
            "byProvider": by_provider,
            "byAgent": self.agents.iter().map(|(a, t)| json!({"agentId": a, "totals": totals_json(*t)})).collect::<Vec<_>>(),
            "byChannel": [],
            "byCreator": [],
            "costDaily": self.days.iter().map(|(d, day)| {
                let mut t = totals_json(day.tokens);
                t["date"] = json!(date(*d));
                t
            }).collect::<Vec<_>>(),
            "dailyLatency": [],
            "modelDaily": self.days.iter().flat_map(|(d, day)| day.models.iter().map(move |((provider, model), s)| {
                json!({"date": date(*d), "provider": provider, "model": model,
                       "tokens": s.tokens.input + s.tokens.output, "cost": cost(s.tokens), "count": s.count})
            })).collect::<Vec<_>>(),
            "daily": self.days.iter().map(|(d, day)| json!({
                "date": date(*d), "tokens": day.tokens.input + day.tokens.output, "cost": cost(day.tokens),
                "messages": day.counts.total, "toolCalls": day.counts.tool_calls, "errors": day.counts.errors,
            })).collect::<Vec<_>>(),
        })
    }
}

/// `YYYY-MM-DD` of an epoch day.
pub fn date(day: u64) -> String {
    let (y, m, d) = civil_date(day);
    format!("{y:04}-{m:02}-{d:02}")
}

fn cost(t: Tokens) -> f64 {
    t.input_cost + t.output_cost
}

/// Tokens and cost in OpenClaw's totals shape (Clawgate's providers report no cache tokens).
pub fn totals_json(t: Tokens) -> Value {
    json!({
        "input": t.input, "output": t.output, "cacheRead": 0, "cacheWrite": 0, "totalTokens": t.input + t.output,
        "totalCost": cost(t), "inputCost": t.input_cost, "outputCost": t.output_cost, "cacheReadCost": 0,
        "cacheWriteCost": 0, "missingCostEntries": 0,
    })
}

fn tools_json(tools: &BTreeMap<String, u64>) -> Value {
    let mut entries: Vec<(&String, &u64)> = tools.iter().collect();
    entries.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    json!({"tools": entries.iter().map(|(name, count)| json!({"name": name, "count": count})).collect::<Vec<_>>()})
}

fn models_json(models: &BTreeMap<(String, String), ModelShare>) -> Value {
    let mut v: Vec<Value> = models
        .iter()
        .map(|((provider, model), s)| {
            json!({"provider": provider, "model": model, "count": s.count, "totals": totals_json(s.tokens)})
        })
        .collect();
    sort_by_cost(&mut v);
    Value::Array(v)
}

/// Most expensive first, then most tokens, as OpenClaw orders its breakdowns.
fn sort_by_cost(v: &mut [Value]) {
    v.sort_by(|a, b| {
        let key = |x: &Value| {
            (
                x["totals"]["totalCost"].as_f64().unwrap_or(0.0),
                x["totals"]["totalTokens"].as_u64().unwrap_or(0),
            )
        };
        let (ka, kb) = (key(a), key(b));
        kb.0.total_cmp(&ka.0).then(kb.1.cmp(&ka.1))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(at_ms: u64, model: &str, input: u64, output: u64) -> Value {
        json!({"role": "assistant", "provider": "local", "model": model, "timestamp": at_ms, "stopReason": "stop",
               "usage": {"input": input, "output": output, "cost": {"input": 0.5, "output": 0.25}},
               "content": [{"type": "text", "text": "hi"}]})
    }

    #[test]
    fn replies_are_summed_per_model_and_per_day() {
        let mut s = SessionUsage::default();
        s.record(&json!({"role": "user", "timestamp": 10, "content": "hi"}));
        s.record(&reply(20, "small", 100, 10));
        s.record(&reply(DAY_MS + 5, "small", 50, 5));
        s.record(&reply(DAY_MS + 6, "large", 1, 1));
        assert_eq!(s.tokens(), (151, 16));
        let row = s.row(0, 1);
        assert_eq!(row["modelUsage"][0]["model"], "small", "most expensive first");
        assert_eq!(row["modelUsage"][0]["count"], 2);
        assert_eq!(row["dailyBreakdown"][1]["tokens"], 57);
        assert_eq!(row["messageCounts"]["user"], 1);
        assert_eq!(row["activityDates"], json!(["1970-01-01", "1970-01-02"]));
        // A range of one day leaves the other out.
        assert_eq!(s.row(1, 1)["dailyBreakdown"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn tool_calls_are_counted_by_name_and_errors_by_stop_reason() {
        let mut s = SessionUsage::default();
        s.record(
            &json!({"role": "assistant", "timestamp": 1, "stopReason": "toolUse", "content": [
            {"type": "toolCall", "id": "a", "name": "read"}, {"type": "toolCall", "id": "b", "name": "exec"},
            {"type": "toolCall", "id": "c", "name": "read"}]}),
        );
        s.record(&json!({"role": "toolResult", "timestamp": 2, "isError": true, "content": []}));
        let mut all = UsageAggregate::default();
        all.add("main", &s, 0, 0);
        let a = all.to_json();
        assert_eq!(a["tools"]["totalCalls"], 3);
        assert_eq!(a["tools"]["uniqueTools"], 2);
        assert_eq!(a["tools"]["tools"][0], json!({"name": "read", "count": 2}));
        assert_eq!(a["messages"]["errors"], 1);
        assert_eq!(a["messages"]["toolResults"], 1);
    }

    #[test]
    fn tool_names_past_the_bound_are_counted_as_other() {
        let mut s = SessionUsage::default();
        let calls: Vec<Value> = (0..MAX_TOOL_NAMES + 3)
            .map(|i| json!({"type": "toolCall", "name": format!("t{i}")}))
            .collect();
        s.record(&json!({"role": "assistant", "timestamp": 1, "content": calls}));
        assert_eq!(s.tools.len(), MAX_TOOL_NAMES + 1);
        assert_eq!(s.tools["other"], 3);
    }
}
