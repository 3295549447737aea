//! The cron scheduler's own state: jobs, their schedules, when each is due, and what their runs
//! did. It is pure: time comes in as milliseconds, and what must be stored comes out as file
//! contents. [`crate::cron`] connects it to the gateway (methods, events, agent runs).
//!
//! What happens to runs missed while the gateway was down follows OpenClaw:
//! - a job that was due while the gateway was down runs **once** after the start, however many of
//!   its slots were missed, and only after [`CATCHUP_DELAY_MS`] (spaced by
//!   [`CATCHUP_SPACING_MS`]), so that a start does not begin with a burst of model calls; when
//!   the job's own next slot comes sooner, that slot is the catch-up run;
//! - with `cron.skipMissedJobs: true`, recurring jobs skip to their next slot instead; one-shot
//!   (`at`) jobs always catch up;
//! - a run that was in progress when the gateway stopped is recorded as an error
//!   ([`INTERRUPTED`]); a recurring job goes on with its next slot (the run is not replayed, its
//!   side effects may have happened), a one-shot job that never finished runs again.
//!
//! Failures are never silent: recurring jobs back off after consecutive errors (30 s, 1 min,
//! 5 min, 15 min, 60 min, as OpenClaw does) and reset after a success; a one-shot job is retried
//! three times on a transient error and then disabled with its last error kept.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{HashMap, VecDeque};

/// Where the jobs are kept, relative to the state directory (OpenClaw's file layout).
pub const JOBS_FILE: &str = "cron/jobs.json";
/// The folder of the per-job run histories (`<jobId>.jsonl`).
pub const RUNS_DIR: &str = "cron/runs";
/// Delay of the first catch-up run after a start.
pub const CATCHUP_DELAY_MS: u64 = 120_000;
/// Spacing of further catch-up runs.
pub const CATCHUP_SPACING_MS: u64 = 5_000;
/// Run history kept per job: the newest entries, at most this many and none older than
/// [`RUNS_KEPT_MS`]. (OpenClaw keeps up to 2,000 rows in SQLite; the file is rewritten whole on
/// every run here, so it is kept smaller.)
pub const RUNS_KEPT: usize = 200;
/// See [`RUNS_KEPT`]: seven days.
pub const RUNS_KEPT_MS: u64 = 7 * 24 * 3_600_000;
/// The error of a run that the gateway's stop interrupted.
pub const INTERRUPTED: &str = "interrupted: the gateway stopped while the run was in progress";
/// Back-off after consecutive errors of a recurring job.
const ERROR_BACKOFF_MS: [u64; 5] = [30_000, 60_000, 300_000, 900_000, 3_600_000];
/// Retries of a one-shot job after transient errors.
const ONE_SHOT_RETRIES: u32 = 3;
/// The smallest interval of an `every` schedule.
const MIN_EVERY_MS: u64 = 1_000;
/// Most jobs a gateway keeps.
pub const MAX_JOBS: usize = 10_000;
/// Window of the automatic stagger of top-of-hour cron expressions.
const TOP_OF_HOUR_STAGGER_MS: u64 = 300_000;

/// `cron.*` and heartbeat settings of the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSettings {
    /// `cron.enabled` (default true): whether jobs fire.
    pub enabled: bool,
    /// `cron.skipMissedJobs`: recurring jobs skip the slots missed while the gateway was down.
    pub skip_missed_jobs: bool,
    /// `cron.maxConcurrentRuns` (default 1).
    pub max_concurrent_runs: usize,
    /// `agents.defaults.heartbeat`: for the default agent.
    pub heartbeat_defaults: HeartbeatSettings,
    /// `agents.list[].heartbeat` / `agents.entries.<id>.heartbeat`, over the defaults.
    pub heartbeat_agents: Vec<(String, HeartbeatSettings)>,
}

impl Default for CronSettings {
    fn default() -> Self {
        CronSettings {
            enabled: true,
            skip_missed_jobs: false,
            max_concurrent_runs: 1,
            heartbeat_defaults: HeartbeatSettings::default(),
            heartbeat_agents: Vec::new(),
        }
    }
}

/// One agent's heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatSettings {
    /// `every` (default `30m`); 0 turns heartbeats off.
    pub every_ms: u64,
    /// `prompt`: the message of a heartbeat turn.
    pub prompt: Option<String>,
}

impl Default for HeartbeatSettings {
    fn default() -> Self {
        HeartbeatSettings {
            every_ms: 30 * 60_000,
            prompt: None,
        }
    }
}

/// The message of a heartbeat turn when the config gives none.
pub const DEFAULT_HEARTBEAT_PROMPT: &str = "This is a heartbeat check. If HEARTBEAT.md exists in the workspace, read it and do what it asks; do not pick up tasks from earlier conversations. When nothing needs attention, answer only HEARTBEAT_OK.";

impl CronSettings {
    /// Reads `cron.*` and the heartbeat settings; an error names the first bad key.
    pub fn from_document(doc: &Value) -> Result<CronSettings, (String, &'static str)> {
        let mut out = CronSettings::default();
        let cron = doc.get("cron");
        let flag = |key: &str| -> Result<Option<bool>, (String, &'static str)> {
            match cron.and_then(|c| c.get(key)) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Bool(b)) => Ok(Some(*b)),
                Some(_) => Err((format!("cron.{key}"), "true or false")),
            }
        };
        if let Some(b) = flag("enabled")? {
            out.enabled = b;
        }
        if let Some(b) = flag("skipMissedJobs")? {
            out.skip_missed_jobs = b;
        }
        match cron.and_then(|c| c.get("maxConcurrentRuns")) {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_u64() {
                Some(n) if (1..=64).contains(&n) => out.max_concurrent_runs = n as usize,
                _ => return Err(("cron.maxConcurrentRuns".into(), "a whole number from 1 to 64")),
            },
        }
        let heartbeat = |v: Option<&Value>, path: String, base: &HeartbeatSettings| {
            let mut h = base.clone();
            match v {
                None | Some(Value::Null) => return Ok(None),
                Some(Value::Object(m)) => {
                    match m.get("every") {
                        None | Some(Value::Null) => {}
                        Some(Value::String(s)) => {
                            h.every_ms = crate::duration::parse_duration_ms(s)
                                .ok_or((format!("{path}.every"), "a duration such as 30m or 0m"))?;
                        }
                        Some(_) => return Err((format!("{path}.every"), "a duration such as 30m or 0m")),
                    }
                    match m.get("prompt") {
                        None | Some(Value::Null) => {}
                        Some(Value::String(s)) => h.prompt = Some(s.clone()),
                        Some(_) => return Err((format!("{path}.prompt"), "a string")),
                    }
                }
                Some(_) => return Err((path, "an object")),
            }
            Ok(Some(h))
        };
        if let Some(h) = heartbeat(
            doc.pointer("/agents/defaults/heartbeat"),
            "agents.defaults.heartbeat".into(),
            &HeartbeatSettings::default(),
        )? {
            out.heartbeat_defaults = h;
        }
        let defaults = out.heartbeat_defaults.clone();
        if let Some(Value::Array(list)) = doc.pointer("/agents/list") {
            for entry in list {
                let Some(id) = entry.get("id").and_then(Value::as_str) else {
                    continue;
                };
                if let Some(h) = heartbeat(entry.get("heartbeat"), "agents.list[].heartbeat".into(), &defaults)? {
                    out.heartbeat_agents.push((id.trim().to_ascii_lowercase(), h));
                }
            }
        }
        if let Some(Value::Object(map)) = doc.pointer("/agents/entries") {
            for (id, entry) in map {
                let path = format!("agents.entries.{id}.heartbeat");
                if let Some(h) = heartbeat(entry.get("heartbeat"), path, &defaults)? {
                    let id = id.trim().to_ascii_lowercase();
                    out.heartbeat_agents.retain(|(a, _)| *a != id);
                    out.heartbeat_agents.push((id, h));
                }
            }
        }
        Ok(out)
    }

    /// The heartbeat of `agent` (the default agent has the defaults; others only their own).
    pub fn heartbeat_of(&self, agent: &str, default_agent: &str) -> Option<&HeartbeatSettings> {
        let own = self.heartbeat_agents.iter().find(|(a, _)| a == agent).map(|(_, h)| h);
        let h = own.or((agent == default_agent).then_some(&self.heartbeat_defaults))?;
        (h.every_ms > 0).then_some(h)
    }
}

/// When a job fires.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Once, at `at_ms` (`at` is the text the caller gave, kept for the answer).
    At { at: Value, at_ms: u64 },
    /// Every `every_ms`, counted from `anchor_ms`.
    Every { every_ms: u64, anchor_ms: u64 },
    /// A cron expression (5 or 6 fields) in a time zone (the gateway host's when `tz` is none).
    Cron {
        expr: String,
        tz: Option<String>,
        stagger_ms: Option<u64>,
        compiled: Box<croner::Cron>,
        zone: jiff::tz::TimeZone,
    },
}

/// The rules of named time zones. The engine reads no files: the runtime hands it the host's
/// zone database (its zoneinfo files), and tests hand it one they bring.
pub trait TimeZones {
    /// The zone an IANA name (`Europe/Vienna`) stands for; `None` when the name is unknown.
    fn get(&self, name: &str) -> Option<jiff::tz::TimeZone>;
}

/// No database: UTC and nothing else, the engine's zones until the runtime gives it the host's.
#[derive(Debug, Default, Clone, Copy)]
pub struct UtcOnly;

impl TimeZones for UtcOnly {
    fn get(&self, _name: &str) -> Option<jiff::tz::TimeZone> {
        None
    }
}

/// Whether `name` has the form of an IANA zone name (`Area/Location`, letters, digits, `_+-`),
/// so that a lookup by name can never walk outside a zone database's directory.
pub fn is_zone_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'))
        })
}

/// The time zone of a name: UTC by itself, anything else from `zones`.
pub fn time_zone(name: &str, zones: &dyn TimeZones) -> Option<jiff::tz::TimeZone> {
    if name.eq_ignore_ascii_case("utc") || name == "Etc/UTC" {
        return Some(jiff::tz::TimeZone::UTC);
    }
    if !is_zone_name(name) {
        return None;
    }
    zones.get(name)
}

impl Schedule {
    /// Reads a schedule as `cron.add` takes it; `now_ms` anchors an `every` without an anchor.
    pub fn parse(v: &Value, now_ms: u64, host_zone: &str, zones: &dyn TimeZones) -> Result<Schedule, String> {
        let kind = v
            .get("kind")
            .and_then(Value::as_str)
            .ok_or("schedule.kind is required")?;
        match kind {
            "at" => {
                let (at, at_ms) = match (v.get("at"), v.get("atMs")) {
                    (Some(Value::String(s)), _) => {
                        let ts: jiff::Timestamp = s
                            .parse()
                            .map_err(|_| format!("schedule.at is not an ISO 8601 time with an offset: {s}"))?;
                        (json!(s), millis(ts))
                    }
                    (_, Some(n)) => {
                        let ms = n.as_u64().ok_or("schedule.atMs must be milliseconds since 1970")?;
                        (json!(iso(ms)), ms)
                    }
                    _ => return Err("schedule.at is required for an at schedule".into()),
                };
                Ok(Schedule::At { at, at_ms })
            }
            "every" => {
                let every_ms = v
                    .get("everyMs")
                    .and_then(Value::as_u64)
                    .filter(|ms| *ms >= MIN_EVERY_MS)
                    .ok_or("schedule.everyMs must be at least 1000")?;
                let anchor_ms = match v.get("anchorMs") {
                    None | Some(Value::Null) => now_ms,
                    Some(a) => a.as_u64().ok_or("schedule.anchorMs must be milliseconds since 1970")?,
                };
                Ok(Schedule::Every { every_ms, anchor_ms })
            }
            "cron" => {
                let expr = v
                    .get("expr")
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .ok_or("schedule.expr is required for a cron schedule")?;
                let compiled = croner::parser::CronParser::builder()
                    .seconds(croner::parser::Seconds::Optional)
                    .build()
                    .parse(expr)
                    .map_err(|e| format!("schedule.expr {expr:?} is not a cron expression: {e}"))?;
                let tz = match v.get("tz") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
                    Some(_) => return Err("schedule.tz must be an IANA time zone name".into()),
                };
                let zone_name = tz.as_deref().unwrap_or(host_zone);
                let zone = time_zone(zone_name, zones).ok_or_else(|| format!("unknown time zone: {zone_name}"))?;
                let stagger_ms = match v.get("staggerMs") {
                    None | Some(Value::Null) => None,
                    Some(s) => Some(s.as_u64().ok_or("schedule.staggerMs must be milliseconds")?),
                };
                Ok(Schedule::Cron {
                    expr: expr.to_owned(),
                    tz,
                    stagger_ms,
                    compiled: Box::new(compiled),
                    zone,
                })
            }
            "on-exit" | "stream" => Err(format!(
                "schedule kind {kind} is not supported by Clawgate (use at, every or cron)"
            )),
            other => Err(format!("unknown schedule kind: {other}")),
        }
    }

    /// The schedule as OpenClaw shows it.
    pub fn to_value(&self) -> Value {
        match self {
            Schedule::At { at, .. } => json!({"kind": "at", "at": at}),
            Schedule::Every { every_ms, anchor_ms } => {
                json!({"kind": "every", "everyMs": every_ms, "anchorMs": anchor_ms})
            }
            Schedule::Cron {
                expr, tz, stagger_ms, ..
            } => {
                let mut v = json!({"kind": "cron", "expr": expr});
                if let Some(tz) = tz {
                    v["tz"] = json!(tz);
                }
                if let Some(s) = stagger_ms {
                    v["staggerMs"] = json!(s);
                }
                v
            }
        }
    }

    fn is_one_shot(&self) -> bool {
        matches!(self, Schedule::At { .. })
    }

    /// The first slot strictly after `after_ms`; `job_id` picks a job's place in the automatic
    /// stagger of top-of-hour expressions.
    pub fn next_after(&self, after_ms: u64, job_id: &str) -> Option<u64> {
        match self {
            Schedule::At { at_ms, .. } => (*at_ms > after_ms).then_some(*at_ms),
            Schedule::Every { every_ms, anchor_ms } => {
                if after_ms < *anchor_ms {
                    return Some(*anchor_ms);
                }
                let k = (after_ms - anchor_ms) / every_ms + 1;
                anchor_ms.checked_add(k.checked_mul(*every_ms)?)
            }
            Schedule::Cron {
                expr,
                stagger_ms,
                compiled,
                zone,
                ..
            } => {
                let offset = match stagger_ms {
                    Some(s) => stable_offset(job_id, *s),
                    None if is_top_of_hour(expr) => stable_offset(job_id, TOP_OF_HOUR_STAGGER_MS),
                    None => 0,
                };
                // The slot is found unshifted, then shifted: a slot whose shifted time is not
                // after `after_ms` is skipped.
                let mut from = after_ms.saturating_sub(offset);
                for _ in 0..4 {
                    let start = jiff::Timestamp::from_millisecond(i64::try_from(from).ok()?).ok()?;
                    let next = compiled
                        .find_next_occurrence(&start.to_zoned(zone.clone()), false)
                        .ok()?;
                    let slot = millis(next.timestamp()) + offset;
                    if slot > after_ms {
                        return Some(slot);
                    }
                    from = slot - offset;
                }
                None
            }
        }
    }
}

/// A cron expression whose minute is `0` and hour a wildcard: OpenClaw spreads these over five
/// minutes so that hourly jobs do not all start at once.
fn is_top_of_hour(expr: &str) -> bool {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let (minute, hour) = match fields.len() {
        5 => (fields[0], fields[1]),
        6 => (fields[1], fields[2]),
        _ => return false,
    };
    minute == "0" && hour == "*"
}

/// A job's fixed place in a window: the same id always gets the same offset.
fn stable_offset(job_id: &str, window_ms: u64) -> u64 {
    if window_ms == 0 {
        return 0;
    }
    // FNV-1a: stable across builds and platforms, unlike the standard hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in job_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % (window_ms / 1000).max(1)) * 1000
}

fn millis(ts: jiff::Timestamp) -> u64 {
    u64::try_from(ts.as_millisecond()).unwrap_or(0)
}

/// Milliseconds since 1970 as an ISO 8601 UTC time.
pub fn iso(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(i64::try_from(ms).unwrap_or(i64::MAX))
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// What a job keeps between runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_at_ms: Option<u64>,
    /// The run in progress (so that a restart can tell an interrupted run from a queued one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivery_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_errors: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_skipped: Option<u32>,
    /// Set while the slot is a catch-up after a start (shown, and kept across another restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up: Option<bool>,
}

/// A job: OpenClaw's fields, plus any others the caller sent (kept as they are).
#[derive(Debug, Clone)]
pub struct CronJob {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    pub schedule: Schedule,
    pub session_target: String,
    pub wake_mode: String,
    pub payload: Value,
    pub state: JobState,
    /// `agentId`, `description`, `delivery`, `deleteAfterRun`, `declarationKey`, ...
    pub extra: Map<String, Value>,
}

/// Fields of a job that [`CronJob::extra`] does not hold.
const OWN_FIELDS: &[&str] = &[
    "id",
    "name",
    "enabled",
    "createdAtMs",
    "updatedAtMs",
    "schedule",
    "sessionTarget",
    "wakeMode",
    "payload",
    "state",
    "nextRunAtMs",
    "effectiveAgentId",
    "deliveryPreview",
    "configRevision",
];

impl CronJob {
    /// The job as `cron.get` shows it.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("name".into(), json!(self.name));
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        m.insert("enabled".into(), json!(self.enabled));
        m.insert("createdAtMs".into(), json!(self.created_at_ms));
        m.insert("updatedAtMs".into(), json!(self.updated_at_ms));
        m.insert("schedule".into(), self.schedule.to_value());
        m.insert("sessionTarget".into(), json!(self.session_target));
        m.insert("wakeMode".into(), json!(self.wake_mode));
        m.insert("payload".into(), self.payload.clone());
        m.insert("state".into(), serde_json::to_value(&self.state).unwrap_or(Value::Null));
        if let Some(next) = self.state.next_run_at_ms {
            m.insert("nextRunAtMs".into(), json!(next));
        }
        Value::Object(m)
    }

    /// The agent the job runs for, if it names one.
    pub fn agent_id(&self) -> Option<&str> {
        self.extra.get("agentId").and_then(Value::as_str)
    }

    /// The key that marks a job declared by the config (e.g. `heartbeat:main`).
    pub fn declaration_key(&self) -> Option<&str> {
        self.extra.get("declarationKey").and_then(Value::as_str)
    }

    fn delete_after_run(&self) -> bool {
        self.extra
            .get("deleteAfterRun")
            .and_then(Value::as_bool)
            .unwrap_or(self.schedule.is_one_shot())
    }

    /// Reads a job back from the jobs file.
    fn from_stored(v: &Value, host_zone: &str, zones: &dyn TimeZones) -> Result<CronJob, String> {
        let id = v.get("id").and_then(Value::as_str).ok_or("a job without an id")?;
        let schedule = Schedule::parse(v.get("schedule").unwrap_or(&Value::Null), 0, host_zone, zones)
            .map_err(|e| format!("job {id}: {e}"))?;
        let state: JobState = serde_json::from_value(v.get("state").cloned().unwrap_or(json!({})))
            .map_err(|e| format!("job {id}: state: {e}"))?;
        let extra = v
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| !OWN_FIELDS.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(CronJob {
            id: id.to_owned(),
            name: v.get("name").and_then(Value::as_str).unwrap_or(id).to_owned(),
            enabled: v.get("enabled").and_then(Value::as_bool).unwrap_or(true),
            created_at_ms: v.get("createdAtMs").and_then(Value::as_u64).unwrap_or(0),
            updated_at_ms: v.get("updatedAtMs").and_then(Value::as_u64).unwrap_or(0),
            schedule,
            session_target: v
                .get("sessionTarget")
                .and_then(Value::as_str)
                .unwrap_or("main")
                .to_owned(),
            wake_mode: v.get("wakeMode").and_then(Value::as_str).unwrap_or("now").to_owned(),
            payload: v
                .get("payload")
                .cloned()
                .unwrap_or(json!({"kind": "systemEvent", "text": ""})),
            state,
            extra,
        })
    }
}

/// Checks the parts of a job that `cron.add` and `cron.update` share; returns the session
/// target (inferred from the payload when none is given, as the CLI does).
pub fn check_job_shape(payload: &Value, session_target: Option<&str>, wake_mode: &str) -> Result<String, String> {
    let kind = payload
        .get("kind")
        .and_then(Value::as_str)
        .ok_or("payload.kind is required")?;
    let nonblank = |key: &str| {
        payload
            .get(key)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.trim().is_empty())
    };
    match kind {
        "systemEvent" if !nonblank("text") => return Err("payload.text is required for a systemEvent".into()),
        "agentTurn" if !nonblank("message") => return Err("payload.message is required for an agentTurn".into()),
        "systemEvent" | "agentTurn" => {}
        "command" | "script" => {
            return Err(format!(
                "payload kind {kind} is not supported by Clawgate (use systemEvent or agentTurn)"
            ))
        }
        other => return Err(format!("unknown payload kind: {other}")),
    }
    let target = match session_target.map(str::trim) {
        None | Some("") => if kind == "systemEvent" { "main" } else { "isolated" }.to_owned(),
        Some(t) => t.to_owned(),
    };
    let custom = target.strip_prefix("session:").is_some_and(|k| !k.trim().is_empty());
    match target.as_str() {
        "main" if kind != "systemEvent" => return Err("main jobs require a systemEvent payload".into()),
        "isolated" | "current" if kind != "agentTurn" => {
            return Err("isolated jobs require an agentTurn payload".into())
        }
        "main" | "isolated" | "current" => {}
        _ if custom && kind == "agentTurn" => {}
        _ if custom => return Err("session jobs require an agentTurn payload".into()),
        _ => return Err("sessionTarget must be main, isolated, current, or session:<key>".into()),
    }
    if wake_mode != "now" && wake_mode != "next-heartbeat" {
        return Err("wakeMode must be now or next-heartbeat".into());
    }
    Ok(target)
}

/// One line of a job's run history (`cron.runs`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunEntry {
    pub ts: u64,
    pub job_id: String,
    pub action: String,
    pub status: String,
    pub completion_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    pub run_id: String,
    pub run_at_ms: u64,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_at_ms: Option<u64>,
    pub delivery_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    pub job_name: String,
}

/// A run the scheduler started: the caller carries out the job's payload and reports back with
/// [`Scheduler::finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedRun {
    pub job_id: String,
    pub run_id: String,
    pub run_at_ms: u64,
    /// Started by `cron.run` out of schedule: the job's next slot stays as it was.
    pub manual: bool,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Ok,
    Error,
    /// Nothing was done (e.g. no worker serves the agent); not counted as an error.
    Skipped,
}

impl RunStatus {
    fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Error => "error",
            RunStatus::Skipped => "skipped",
        }
    }
}

/// What the caller reports at the end of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub status: RunStatus,
    pub error: Option<String>,
    pub summary: Option<String>,
    pub delivery_status: String,
    pub session_key: Option<String>,
}

impl RunOutcome {
    /// A run that did its work; nothing was to be delivered.
    pub fn ok(summary: Option<String>, session_key: Option<String>) -> RunOutcome {
        RunOutcome {
            status: RunStatus::Ok,
            error: None,
            summary,
            delivery_status: "not-requested".into(),
            session_key,
        }
    }

    /// A run that failed, or (`Skipped`) did nothing, for `reason`.
    pub fn not_done(status: RunStatus, reason: &str) -> RunOutcome {
        RunOutcome {
            status,
            error: Some(reason.to_owned()),
            ..RunOutcome::ok(None, None)
        }
    }
}

/// What a finished run changed.
#[derive(Debug, Clone)]
pub struct FinishedRun {
    pub entry: RunEntry,
    /// The job after the run (`None` when a one-shot job was deleted).
    pub job: Option<CronJob>,
    /// The job as it was, when it was deleted.
    pub removed: Option<CronJob>,
}

/// The scheduler.
#[derive(Debug, Default)]
pub struct Scheduler {
    jobs: Vec<CronJob>,
    runs: HashMap<String, VecDeque<RunEntry>>,
    /// Each job's text in the jobs file, kept until the job changes: a run rewrites the file,
    /// and re-serializing a thousand unchanged jobs would cost milliseconds each time.
    rendered: HashMap<String, String>,
    /// Runs started per job, for unique run ids.
    run_counter: u64,
}

/// An error of a method, as the caller is to be told.
pub type Refusal = String;

impl Scheduler {
    /// Reads the jobs file and the run histories back at start, and applies the missed-run
    /// policy. `still_pending` says whether a run id is still waiting to be carried out (e.g. in
    /// the agents' queue): such a run was not interrupted. Returns the scheduler and the history
    /// entries it added for interrupted runs.
    pub fn restore(
        jobs_text: Option<&str>,
        runs: &[(String, String)],
        now_ms: u64,
        settings: &CronSettings,
        host_zone: &str,
        zones: &dyn TimeZones,
        still_pending: &dyn Fn(&str) -> bool,
    ) -> Result<(Scheduler, Vec<RunEntry>), String> {
        let mut s = Scheduler::default();
        if let Some(text) = jobs_text {
            let doc: Value = serde_json::from_str(text).map_err(|e| format!("{JOBS_FILE}: {e}"))?;
            let list = doc
                .get("jobs")
                .and_then(Value::as_array)
                .ok_or_else(|| format!("{JOBS_FILE}: no jobs list"))?;
            for v in list {
                s.jobs
                    .push(CronJob::from_stored(v, host_zone, zones).map_err(|e| format!("{JOBS_FILE}: {e}"))?);
            }
        }
        for (job_id, text) in runs {
            let entries: VecDeque<RunEntry> = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            if s.jobs.iter().any(|j| j.id == *job_id) {
                s.runs.insert(job_id.clone(), entries);
            }
        }
        let mut interrupted = Vec::new();
        let mut catch_ups = 0u64;
        for i in 0..s.jobs.len() {
            let job = &mut s.jobs[i];
            if let Some(started) = job.state.running_at_ms {
                let run_id = job.state.running_run_id.clone().unwrap_or_default();
                if !run_id.is_empty() && still_pending(&run_id) {
                    continue;
                }
                job.state.running_at_ms = None;
                job.state.running_run_id = None;
                job.state.last_run_at_ms = Some(started);
                job.state.last_status = Some("error".into());
                job.state.last_run_status = Some("error".into());
                job.state.last_error = Some(INTERRUPTED.into());
                job.state.consecutive_errors = Some(job.state.consecutive_errors.unwrap_or(0) + 1);
                if !job.schedule.is_one_shot() {
                    job.state.next_run_at_ms = job.schedule.next_after(now_ms, &job.id);
                }
                let entry = RunEntry {
                    ts: now_ms,
                    job_id: job.id.clone(),
                    action: "finished".into(),
                    status: "error".into(),
                    completion_status: "unknown".into(),
                    error: Some(INTERRUPTED.into()),
                    summary: None,
                    run_id,
                    run_at_ms: started,
                    duration_ms: now_ms.saturating_sub(started),
                    next_run_at_ms: job.state.next_run_at_ms,
                    delivery_status: "unknown".into(),
                    session_key: None,
                    job_name: job.name.clone(),
                };
                interrupted.push(entry.clone());
                let id = job.id.clone();
                s.push_entry(&id, entry, now_ms);
            }
            let job = &mut s.jobs[i];
            if !job.enabled {
                continue;
            }
            let Some(next) = job.state.next_run_at_ms else { continue };
            if next > now_ms {
                continue;
            }
            // The job's own next slot from now on (a slot at this very moment counts).
            let natural = job.schedule.next_after(now_ms.saturating_sub(1), &job.id);
            if settings.skip_missed_jobs && !job.schedule.is_one_shot() {
                job.state.next_run_at_ms = natural;
                job.state.catch_up = None;
            } else {
                // One run makes up for what was missed; a slot that comes sooner than the
                // catch-up delay is that run.
                let delayed = now_ms + CATCHUP_DELAY_MS + catch_ups * CATCHUP_SPACING_MS;
                job.state.next_run_at_ms = Some(natural.map_or(delayed, |n| n.min(delayed)));
                job.state.catch_up = Some(true);
                catch_ups += 1;
            }
        }
        Ok((s, interrupted))
    }

    /// The jobs, in the order they were added.
    pub fn jobs(&self) -> &[CronJob] {
        &self.jobs
    }

    /// The job `id`.
    pub fn get(&self, id: &str) -> Option<&CronJob> {
        self.jobs.iter().find(|j| j.id == id)
    }

    /// A job's run history, newest last.
    pub fn runs_of(&self, id: &str) -> impl Iterator<Item = &RunEntry> {
        self.runs.get(id).into_iter().flatten()
    }

    /// Runs in progress.
    pub fn running(&self) -> usize {
        self.jobs.iter().filter(|j| j.state.running_at_ms.is_some()).count()
    }

    /// When the next job is due (of the enabled ones that are not running).
    pub fn next_wake(&self) -> Option<u64> {
        self.jobs
            .iter()
            .filter(|j| j.enabled && j.state.running_at_ms.is_none())
            .filter_map(|j| j.state.next_run_at_ms)
            .min()
    }

    /// Adds a job built by the caller (its schedule parsed); its first slot is computed here.
    pub fn add(&mut self, mut job: CronJob, now_ms: u64) -> Result<&CronJob, Refusal> {
        if self.jobs.len() >= MAX_JOBS {
            return Err(format!("too many jobs (at most {MAX_JOBS})"));
        }
        if self.jobs.iter().any(|j| j.id == job.id) {
            return Err(format!("a job with id {} exists", job.id));
        }
        job.state.next_run_at_ms = if job.enabled {
            job.schedule.next_after(now_ms, &job.id)
        } else {
            None
        };
        if job.schedule.is_one_shot() && job.state.next_run_at_ms.is_none() && job.enabled {
            // A one-shot time already past runs now, as OpenClaw's `--at` with a past time does.
            if let Schedule::At { at_ms, .. } = job.schedule {
                job.state.next_run_at_ms = Some(at_ms.max(now_ms));
            }
        }
        self.jobs.push(job);
        Ok(self.jobs.last().expect("just pushed"))
    }

    /// Replaces what `edit` changes; the next slot is computed again when the schedule or the
    /// enabled flag changed.
    pub fn update(
        &mut self,
        id: &str,
        now_ms: u64,
        edit: impl FnOnce(&mut CronJob) -> Result<bool, Refusal>,
    ) -> Result<&CronJob, Refusal> {
        self.rendered.remove(id);
        let job = self
            .jobs
            .iter_mut()
            .find(|j| j.id == id)
            .ok_or_else(|| format!("cron job not found: {id}"))?;
        let mut edited = job.clone();
        let reschedule = edit(&mut edited)?;
        edited.updated_at_ms = now_ms;
        if reschedule || edited.enabled != job.enabled {
            edited.state.catch_up = None;
            edited.state.next_run_at_ms = if edited.enabled {
                edited
                    .schedule
                    .next_after(now_ms, &edited.id)
                    .or(match edited.schedule {
                        Schedule::At { at_ms, .. } if edited.state.last_status.as_deref() != Some("ok") => {
                            Some(at_ms.max(now_ms))
                        }
                        _ => None,
                    })
            } else {
                None
            };
            if reschedule {
                edited.state.consecutive_errors = None;
            }
        }
        *job = edited;
        Ok(job)
    }

    /// Removes a job and its history.
    pub fn remove(&mut self, id: &str) -> Option<CronJob> {
        let i = self.jobs.iter().position(|j| j.id == id)?;
        self.runs.remove(id);
        self.rendered.remove(id);
        Some(self.jobs.remove(i))
    }

    fn new_run_id(&mut self, job_id: &str, now_ms: u64, manual: bool) -> String {
        self.run_counter += 1;
        let kind = if manual { "manual" } else { "cron" };
        format!("{kind}:{job_id}:{now_ms}:{}", self.run_counter)
    }

    /// Claims the jobs that are due at `now_ms`, as many as `max_concurrent` allows besides the
    /// runs in progress, earliest first.
    pub fn take_due(&mut self, now_ms: u64, max_concurrent: usize) -> Vec<StartedRun> {
        let mut free = max_concurrent.saturating_sub(self.running());
        if free == 0 {
            return Vec::new();
        }
        let mut due: Vec<(u64, usize)> = self
            .jobs
            .iter()
            .enumerate()
            .filter(|(_, j)| j.enabled && j.state.running_at_ms.is_none())
            .filter_map(|(i, j)| j.state.next_run_at_ms.filter(|n| *n <= now_ms).map(|n| (n, i)))
            .collect();
        due.sort_unstable();
        let mut started = Vec::new();
        for (_, i) in due {
            if free == 0 {
                break;
            }
            free -= 1;
            let job_id = self.jobs[i].id.clone();
            let run_id = self.new_run_id(&job_id, now_ms, false);
            self.rendered.remove(&job_id);
            let job = &mut self.jobs[i];
            job.state.running_at_ms = Some(now_ms);
            job.state.running_run_id = Some(run_id.clone());
            started.push(StartedRun {
                job_id,
                run_id,
                run_at_ms: now_ms,
                manual: false,
            });
        }
        started
    }

    /// `cron.run`: starts the job now (`force`), or only if it is due. `Ok(None)`: not due.
    pub fn run_now(&mut self, id: &str, now_ms: u64, force: bool) -> Result<Option<StartedRun>, Refusal> {
        let i = self
            .jobs
            .iter()
            .position(|j| j.id == id)
            .ok_or_else(|| format!("cron job not found: {id}"))?;
        let job = &self.jobs[i];
        if job.state.running_at_ms.is_some() {
            return Err(format!("cron job {id} is already running"));
        }
        let due = job.enabled && job.state.next_run_at_ms.is_some_and(|n| n <= now_ms);
        if !force && !due {
            return Ok(None);
        }
        let run_id = self.new_run_id(id, now_ms, !due);
        self.rendered.remove(id);
        let job = &mut self.jobs[i];
        job.state.running_at_ms = Some(now_ms);
        job.state.running_run_id = Some(run_id.clone());
        Ok(Some(StartedRun {
            job_id: id.to_owned(),
            run_id,
            run_at_ms: now_ms,
            manual: !due,
        }))
    }

    fn push_entry(&mut self, job_id: &str, entry: RunEntry, now_ms: u64) {
        let list = self.runs.entry(job_id.to_owned()).or_default();
        list.push_back(entry);
        while list.len() > RUNS_KEPT || list.front().is_some_and(|e| e.ts + RUNS_KEPT_MS < now_ms) {
            list.pop_front();
        }
    }

    /// The end of a run: the history gets an entry, the job's state and next slot are updated,
    /// and a one-shot job that succeeded is deleted (or disabled when it is to be kept).
    pub fn finish(&mut self, run: &StartedRun, outcome: RunOutcome, now_ms: u64) -> Option<FinishedRun> {
        let i = self.jobs.iter().position(|j| j.id == run.job_id)?;
        let job = &mut self.jobs[i];
        if job.state.running_run_id.as_deref() != Some(run.run_id.as_str()) {
            return None;
        }
        self.rendered.remove(&run.job_id);
        let job = &mut self.jobs[i];
        let st = &mut job.state;
        st.running_at_ms = None;
        st.running_run_id = None;
        st.catch_up = None;
        st.last_run_at_ms = Some(run.run_at_ms);
        st.last_status = Some(outcome.status.as_str().into());
        st.last_run_status = Some(outcome.status.as_str().into());
        st.last_duration_ms = Some(now_ms.saturating_sub(run.run_at_ms));
        st.last_delivery_status = Some(outcome.delivery_status.clone());
        st.last_error = outcome.error.clone();
        let errors = match outcome.status {
            RunStatus::Error => st.consecutive_errors.unwrap_or(0) + 1,
            _ => 0,
        };
        st.consecutive_errors = Some(errors);
        st.consecutive_skipped = Some(match outcome.status {
            RunStatus::Skipped => st.consecutive_skipped.unwrap_or(0) + 1,
            _ => 0,
        });
        let mut delete = false;
        if job.schedule.is_one_shot() {
            match outcome.status {
                RunStatus::Ok => {
                    if job.delete_after_run() {
                        delete = true;
                    } else {
                        job.enabled = false;
                        job.state.next_run_at_ms = None;
                    }
                }
                RunStatus::Error if errors <= ONE_SHOT_RETRIES && is_transient(outcome.error.as_deref()) => {
                    job.state.next_run_at_ms = Some(now_ms + ERROR_BACKOFF_MS[(errors as usize - 1).min(4)]);
                }
                RunStatus::Error => {
                    job.enabled = false;
                    job.state.next_run_at_ms = None;
                }
                RunStatus::Skipped => {
                    job.state.next_run_at_ms = Some(now_ms + ERROR_BACKOFF_MS[0]);
                }
            }
        } else if !run.manual {
            let natural = job.schedule.next_after(now_ms, &job.id);
            job.state.next_run_at_ms = match (outcome.status, natural) {
                (RunStatus::Error, Some(n)) => Some(n.max(now_ms + ERROR_BACKOFF_MS[(errors as usize - 1).min(4)])),
                (_, n) => n,
            };
        }
        job.updated_at_ms = now_ms;
        let entry = RunEntry {
            ts: now_ms,
            job_id: job.id.clone(),
            action: "finished".into(),
            status: outcome.status.as_str().into(),
            completion_status: match outcome.status {
                RunStatus::Ok if outcome.delivery_status == "not-delivered" => "failed",
                RunStatus::Ok => "succeeded",
                RunStatus::Error => "failed",
                RunStatus::Skipped => "skipped",
            }
            .into(),
            error: outcome.error,
            summary: outcome.summary,
            run_id: run.run_id.clone(),
            run_at_ms: run.run_at_ms,
            duration_ms: now_ms.saturating_sub(run.run_at_ms),
            next_run_at_ms: job.state.next_run_at_ms,
            delivery_status: outcome.delivery_status,
            session_key: outcome.session_key,
            job_name: job.name.clone(),
        };
        if delete {
            let removed = self.remove(&run.job_id);
            return Some(FinishedRun {
                entry,
                job: None,
                removed,
            });
        }
        let id = run.job_id.clone();
        self.push_entry(&id, entry.clone(), now_ms);
        Some(FinishedRun {
            entry,
            job: self.get(&id).cloned(),
            removed: None,
        })
    }

    /// The jobs file.
    pub fn jobs_file(&mut self) -> String {
        let mut out = String::from("{\"version\":1,\"jobs\":[");
        for (i, job) in self.jobs.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let text = self
                .rendered
                .entry(job.id.clone())
                .or_insert_with(|| serde_json::to_string(&job.to_value()).unwrap_or_else(|_| "null".into()));
            out.push_str(text);
        }
        out.push_str("]}");
        out
    }

    /// The run history file of a job (JSON lines).
    pub fn runs_file(&self, id: &str) -> String {
        let mut out = String::new();
        for e in self.runs_of(id) {
            if let Ok(line) = serde_json::to_string(e) {
                out.push_str(&line);
                out.push('\n');
            }
        }
        out
    }
}

/// Errors worth retrying a one-shot job for: rate limits, overload, the network, time-outs and
/// server errors (as OpenClaw sorts them).
fn is_transient(error: Option<&str>) -> bool {
    let Some(e) = error.map(str::to_ascii_lowercase) else {
        return false;
    };
    [
        "rate limit",
        "429",
        "overload",
        "timeout",
        "timed out",
        "network",
        "connection",
        "unavailable",
        "no worker",
        "500",
        "502",
        "503",
        "504",
        "interrupted",
    ]
    .iter()
    .any(|w| e.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// jiff's bundled database (the `testkit` feature, on for the engine's tests).
    struct BundledZones;

    impl TimeZones for BundledZones {
        fn get(&self, name: &str) -> Option<jiff::tz::TimeZone> {
            jiff::tz::TimeZone::get(name).ok()
        }
    }

    const HOUR: u64 = 3_600_000;
    // 2026-12-01T00:00:00Z
    const DEC_1: u64 = 1_796_083_200_000;

    fn cron(expr: &str, tz: Option<&str>) -> Schedule {
        Schedule::parse(
            &json!({"kind": "cron", "expr": expr, "tz": tz}),
            0,
            "UTC",
            &BundledZones,
        )
        .unwrap()
    }

    #[test]
    fn an_every_schedule_counts_from_its_anchor() {
        let s = Schedule::parse(
            &json!({"kind": "every", "everyMs": 600_000}),
            1_000,
            "UTC",
            &BundledZones,
        )
        .unwrap();
        assert_eq!(s.next_after(1_000, "j"), Some(601_000));
        assert_eq!(s.next_after(601_000, "j"), Some(1_201_000));
        assert_eq!(s.next_after(700_000, "j"), Some(1_201_000));
    }

    #[test]
    fn a_zone_name_cannot_name_a_path_outside_the_zone_database() {
        assert!(is_zone_name("Europe/Vienna"));
        assert!(is_zone_name("America/Argentina/Buenos_Aires"));
        assert!(is_zone_name("Etc/GMT+5"));
        for bad in ["", "../etc/passwd", "/etc/passwd", "Europe//Vienna", "Europe/..", "a b"] {
            assert!(!is_zone_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn without_a_zone_database_only_utc_is_known() {
        let parse = |tz: &str| {
            Schedule::parse(
                &json!({"kind": "cron", "expr": "0 9 * * *", "tz": tz}),
                0,
                "UTC",
                &UtcOnly,
            )
        };
        assert!(parse("UTC").is_ok());
        assert_eq!(parse("Europe/Vienna").unwrap_err(), "unknown time zone: Europe/Vienna");
    }

    #[test]
    fn a_cron_expression_is_read_in_its_time_zone() {
        // 09:00 in Vienna is 08:00 UTC in winter.
        let s = cron("0 9 * * *", Some("Europe/Vienna"));
        assert_eq!(s.next_after(DEC_1, "j"), Some(DEC_1 + 8 * HOUR));
        let utc = cron("0 9 * * *", None);
        assert_eq!(utc.next_after(DEC_1, "j"), Some(DEC_1 + 9 * HOUR));
    }

    #[test]
    fn a_daily_time_zone_schedule_follows_daylight_saving_time() {
        // 2027-03-28 is the EU's spring change: 09:00 Vienna is then 07:00 UTC.
        let s = cron("0 9 * * *", Some("Europe/Vienna"));
        let mar_27 = DEC_1 + 116 * 24 * HOUR;
        assert_eq!(s.next_after(mar_27, "j"), Some(mar_27 + 8 * HOUR));
        assert_eq!(
            s.next_after(mar_27 + 9 * HOUR, "j"),
            Some(mar_27 + 24 * HOUR + 7 * HOUR)
        );
    }

    #[test]
    fn top_of_hour_expressions_are_staggered_within_five_minutes_and_exact_ones_are_not() {
        let s = cron("0 * * * *", None);
        let next = s.next_after(DEC_1, "some-job").unwrap();
        assert!(
            next > DEC_1 && next < DEC_1 + 300_000,
            "the midnight slot, shifted: {next}"
        );
        assert_eq!(s.next_after(next, "some-job"), Some(next + HOUR));
        assert_eq!(
            s.next_after(DEC_1, "some-job"),
            Some(next),
            "the same job keeps its place"
        );
        let exact = Schedule::parse(
            &json!({"kind": "cron", "expr": "0 * * * *", "staggerMs": 0}),
            0,
            "UTC",
            &BundledZones,
        )
        .unwrap();
        assert_eq!(exact.next_after(DEC_1, "some-job"), Some(DEC_1 + HOUR));
    }

    #[test]
    fn bad_schedules_are_refused_with_the_reason() {
        let bad = |v: Value| Schedule::parse(&v, 0, "UTC", &BundledZones).unwrap_err();
        assert!(bad(json!({"kind": "cron", "expr": "61 * * * *"})).contains("not a cron expression"));
        assert!(bad(json!({"kind": "cron", "expr": "0 9 * * *", "tz": "Mars/Olympus"})).contains("unknown time zone"));
        assert!(bad(json!({"kind": "every", "everyMs": 5})).contains("at least 1000"));
        assert!(bad(json!({"kind": "at", "at": "tomorrow"})).contains("ISO 8601"));
        assert!(bad(json!({"kind": "stream"})).contains("not supported"));
    }

    fn job(id: &str, schedule: Schedule) -> CronJob {
        CronJob {
            id: id.into(),
            name: id.into(),
            enabled: true,
            created_at_ms: 0,
            updated_at_ms: 0,
            schedule,
            session_target: "main".into(),
            wake_mode: "now".into(),
            payload: json!({"kind": "systemEvent", "text": "ping"}),
            state: JobState::default(),
            extra: Map::new(),
        }
    }

    fn ok() -> RunOutcome {
        RunOutcome {
            status: RunStatus::Ok,
            error: None,
            summary: Some("ping".into()),
            delivery_status: "not-requested".into(),
            session_key: None,
        }
    }

    fn failed(error: &str) -> RunOutcome {
        RunOutcome {
            status: RunStatus::Error,
            error: Some(error.into()),
            ..ok()
        }
    }

    fn every(ms: u64, anchor: u64) -> Schedule {
        Schedule::Every {
            every_ms: ms,
            anchor_ms: anchor,
        }
    }

    #[test]
    fn a_job_runs_once_per_slot_and_one_at_a_time() {
        let mut s = Scheduler::default();
        s.add(job("a", every(60_000, 0)), 0).unwrap();
        assert_eq!(s.next_wake(), Some(60_000));
        assert!(s.take_due(59_999, 1).is_empty());
        let runs = s.take_due(60_000, 1);
        assert_eq!(runs.len(), 1);
        assert!(s.take_due(200_000, 1).is_empty(), "the job is still running");
        s.finish(&runs[0], ok(), 61_000).unwrap();
        assert_eq!(s.get("a").unwrap().state.next_run_at_ms, Some(120_000));
        assert_eq!(s.runs_of("a").count(), 1);
    }

    #[test]
    fn consecutive_errors_back_off_and_a_success_resets_them() {
        let mut s = Scheduler::default();
        s.add(job("a", every(1_000, 0)), 0).unwrap();
        let mut now = 1_000;
        let mut waits = Vec::new();
        for _ in 0..6 {
            let run = s.take_due(now, 1).pop().unwrap();
            s.finish(&run, failed("boom"), now).unwrap();
            let next = s.get("a").unwrap().state.next_run_at_ms.unwrap();
            waits.push(next - now);
            now = next;
        }
        assert_eq!(waits, [30_000, 60_000, 300_000, 900_000, 3_600_000, 3_600_000]);
        let run = s.take_due(now, 1).pop().unwrap();
        s.finish(&run, ok(), now).unwrap();
        assert_eq!(s.get("a").unwrap().state.next_run_at_ms, Some(now + 1_000));
        assert_eq!(s.get("a").unwrap().state.consecutive_errors, Some(0));
    }

    #[test]
    fn a_one_shot_job_is_deleted_after_success_and_disabled_after_a_permanent_error() {
        let mut s = Scheduler::default();
        let at = |ms: u64| Schedule::At {
            at: json!(iso(ms)),
            at_ms: ms,
        };
        s.add(job("once", at(5_000)), 0).unwrap();
        let run = s.take_due(5_000, 1).pop().unwrap();
        let done = s.finish(&run, ok(), 5_100).unwrap();
        assert!(done.removed.is_some() && s.get("once").is_none());

        s.add(job("bad", at(5_000)), 0).unwrap();
        let run = s.take_due(5_000, 1).pop().unwrap();
        s.finish(&run, failed("invalid model id"), 5_100).unwrap();
        let bad = s.get("bad").unwrap();
        assert!(!bad.enabled, "a permanent error is not retried");
        assert_eq!(bad.state.last_error.as_deref(), Some("invalid model id"));
    }

    #[test]
    fn a_one_shot_job_retries_transient_errors_three_times() {
        let mut s = Scheduler::default();
        s.add(
            job(
                "once",
                Schedule::At {
                    at: json!(""),
                    at_ms: 1_000,
                },
            ),
            0,
        )
        .unwrap();
        let mut now = 1_000;
        for _ in 0..3 {
            let run = s.take_due(now, 1).pop().unwrap();
            s.finish(&run, failed("429 rate limit"), now).unwrap();
            now = s.get("once").unwrap().state.next_run_at_ms.unwrap();
        }
        let run = s.take_due(now, 1).pop().unwrap();
        s.finish(&run, failed("429 rate limit"), now).unwrap();
        assert!(!s.get("once").unwrap().enabled);
        assert_eq!(s.runs_of("once").count(), 4, "every attempt is in the history");
    }

    #[test]
    fn a_forced_run_keeps_the_next_slot() {
        let mut s = Scheduler::default();
        s.add(job("a", every(600_000, 0)), 0).unwrap();
        assert_eq!(s.run_now("a", 10_000, false).unwrap(), None, "not due");
        let run = s.run_now("a", 10_000, true).unwrap().unwrap();
        assert!(run.run_id.starts_with("manual:a:10000:"));
        s.finish(&run, ok(), 20_000).unwrap();
        assert_eq!(s.get("a").unwrap().state.next_run_at_ms, Some(600_000));
    }

    fn restart(s: &mut Scheduler, now: u64, settings: &CronSettings) -> (Scheduler, Vec<RunEntry>) {
        let runs: Vec<(String, String)> = s.jobs().iter().map(|j| (j.id.clone(), s.runs_file(&j.id))).collect();
        Scheduler::restore(
            Some(&s.jobs_file()),
            &runs,
            now,
            settings,
            "UTC",
            &BundledZones,
            &|_| false,
        )
        .unwrap()
    }

    #[test]
    fn a_job_missed_while_down_runs_once_after_the_catch_up_delay() {
        let mut s = Scheduler::default();
        s.add(job("a", every(600_000, 0)), 0).unwrap();
        // Down from before the first slot to one hour and a minute: six slots missed.
        let down_until = HOUR + 60_000;
        let (mut s, _) = restart(&mut s, down_until, &CronSettings::default());
        let catch_up = down_until + CATCHUP_DELAY_MS;
        assert_eq!(s.get("a").unwrap().state.next_run_at_ms, Some(catch_up));
        let run = s.take_due(catch_up, 1).pop().unwrap();
        s.finish(&run, ok(), catch_up).unwrap();
        assert_eq!(s.get("a").unwrap().state.next_run_at_ms, Some(HOUR + 600_000));
    }

    #[test]
    fn a_slot_sooner_than_the_catch_up_delay_is_the_catch_up() {
        let mut s = Scheduler::default();
        s.add(job("a", every(60_000, 0)), 0).unwrap();
        let (s, _) = restart(&mut s, HOUR + 1, &CronSettings::default());
        assert_eq!(s.get("a").unwrap().state.next_run_at_ms, Some(HOUR + 60_000));
    }

    #[test]
    fn skip_missed_jobs_moves_recurring_jobs_to_their_next_slot() {
        let mut s = Scheduler::default();
        s.add(job("a", every(60_000, 0)), 0).unwrap();
        let settings = CronSettings {
            skip_missed_jobs: true,
            ..CronSettings::default()
        };
        let (s, _) = restart(&mut s, HOUR + 1, &settings);
        assert_eq!(s.get("a").unwrap().state.next_run_at_ms, Some(HOUR + 60_000));
    }

    #[test]
    fn a_run_interrupted_by_a_stop_is_recorded_as_an_error_and_not_replayed() {
        let mut s = Scheduler::default();
        s.add(job("a", every(60_000, 0)), 0).unwrap();
        s.take_due(60_000, 1).pop().unwrap();
        let (s, interrupted) = restart(&mut s, 90_000, &CronSettings::default());
        assert_eq!(interrupted.len(), 1);
        let a = s.get("a").unwrap();
        assert_eq!(a.state.running_at_ms, None);
        assert_eq!(a.state.last_error.as_deref(), Some(INTERRUPTED));
        assert_eq!(a.state.next_run_at_ms, Some(120_000));
        assert_eq!(s.runs_of("a").last().unwrap().status, "error");
    }

    #[test]
    fn a_run_still_queued_at_the_stop_is_not_interrupted() {
        let mut s = Scheduler::default();
        s.add(job("a", every(60_000, 0)), 0).unwrap();
        let run = s.take_due(60_000, 1).pop().unwrap();
        let runs: Vec<(String, String)> = vec![];
        let (mut s, interrupted) = Scheduler::restore(
            Some(&s.jobs_file()),
            &runs,
            90_000,
            &CronSettings::default(),
            "UTC",
            &BundledZones,
            &|id| id == run.run_id,
        )
        .unwrap();
        assert!(interrupted.is_empty());
        assert!(s.finish(&run, ok(), 95_000).is_some(), "its end is still taken");
    }

    #[test]
    fn the_jobs_file_shows_every_change_after_it_was_written() {
        let mut s = Scheduler::default();
        s.add(job("a", every(60_000, 0)), 0).unwrap();
        s.add(job("b", every(60_000, 0)), 0).unwrap();
        let before = s.jobs_file();
        let run = s.take_due(60_000, 1).pop().unwrap();
        assert!(s.jobs_file().contains("runningAtMs"), "a claimed run is written");
        s.finish(&run, ok(), 61_000).unwrap();
        let after = s.jobs_file();
        assert_ne!(before, after);
        let (back, _) = Scheduler::restore(
            Some(&after),
            &[],
            61_000,
            &CronSettings::default(),
            "UTC",
            &BundledZones,
            &|_| false,
        )
        .unwrap();
        assert_eq!(back.get("a").unwrap().state, s.get("a").unwrap().state);
        s.remove("b");
        assert!(!s.jobs_file().contains("\"b\""));
    }

    #[test]
    fn history_is_bounded() {
        let mut s = Scheduler::default();
        s.add(job("a", every(1_000, 0)), 0).unwrap();
        let mut now = 1_000;
        for _ in 0..(RUNS_KEPT + 50) {
            let run = s.take_due(now, 1).pop().unwrap();
            s.finish(&run, ok(), now).unwrap();
            now += 1_000;
        }
        assert_eq!(s.runs_of("a").count(), RUNS_KEPT);
        // A week later the old entries are gone with the next one.
        let run = s.take_due(now + RUNS_KEPT_MS + 1, 1).pop().unwrap();
        s.finish(&run, ok(), now + RUNS_KEPT_MS + 1).unwrap();
        assert_eq!(s.runs_of("a").count(), 1);
    }

    #[test]
    fn settings_are_read_with_openclaw_defaults() {
        let s = CronSettings::from_document(&json!({})).unwrap();
        assert_eq!(s.heartbeat_of("main", "main").map(|h| h.every_ms), Some(1_800_000));
        assert_eq!(
            s.heartbeat_of("ops", "main"),
            None,
            "only the default agent beats by default"
        );
        let s = CronSettings::from_document(&json!({
            "cron": {"skipMissedJobs": true, "maxConcurrentRuns": 2},
            "agents": {"defaults": {"heartbeat": {"every": "0m"}}, "list": [{"id": "ops", "heartbeat": {"every": "1h"}}]}
        }))
        .unwrap();
        assert!(s.skip_missed_jobs);
        assert_eq!(s.max_concurrent_runs, 2);
        assert_eq!(s.heartbeat_of("main", "main"), None);
        assert_eq!(s.heartbeat_of("ops", "main").map(|h| h.every_ms), Some(HOUR));
        assert_eq!(
            CronSettings::from_document(&json!({"cron": {"enabled": "yes"}}))
                .unwrap_err()
                .0,
            "cron.enabled"
        );
    }
}
