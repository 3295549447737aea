//! A year of mixed cron jobs in simulated time, with a gateway restart every simulated week:
//! every slot while the gateway is up runs exactly once, on time; a job whose slots fell into a
//! downtime runs exactly once after the start (the missed-run policy), and nothing runs twice
//! or while the gateway is down.

use clawgate_engine::scheduler::{
    CronJob, CronSettings, JobState, RunOutcome, Schedule, Scheduler, CATCHUP_DELAY_MS, CATCHUP_SPACING_MS,
};
use clawgate_engine::testkit::BundledZones;
use serde_json::{json, Map};
use std::collections::BTreeMap;

const MIN: u64 = 60_000;
const HOUR: u64 = 60 * MIN;
const DAY: u64 = 24 * HOUR;
// 2027-01-01T00:00:00Z
const START: u64 = 1_798_761_600_000;

fn job(id: &str, schedule: serde_json::Value) -> CronJob {
    CronJob {
        id: id.into(),
        name: id.into(),
        enabled: true,
        created_at_ms: START,
        updated_at_ms: START,
        schedule: Schedule::parse(&schedule, START, "UTC", &BundledZones).unwrap(),
        session_target: "main".into(),
        wake_mode: "now".into(),
        payload: json!({"kind": "systemEvent", "text": id}),
        state: JobState::default(),
        extra: Map::new(),
    }
}

fn ok() -> RunOutcome {
    RunOutcome::ok(None, None)
}

/// The gateway is down for three hours once a week, at a different hour each week.
fn downtimes() -> Vec<(u64, u64)> {
    (1..52)
        .map(|w| {
            let down = START + w * 7 * DAY + (w * 5 % 24) * HOUR + 17 * MIN;
            (down, down + 3 * HOUR)
        })
        .collect()
}

fn mixed_jobs() -> Vec<CronJob> {
    vec![
        job("every-37m", json!({"kind": "every", "everyMs": 37 * MIN})),
        job("every-6h", json!({"kind": "every", "everyMs": 6 * HOUR})),
        job(
            "weekdays-9-vienna",
            json!({"kind": "cron", "expr": "0 9 * * 1-5", "tz": "Europe/Vienna"}),
        ),
        // 02:30 does not exist on the spring-forward day in New York.
        job(
            "nightly-ny",
            json!({"kind": "cron", "expr": "30 2 * * *", "tz": "America/New_York"}),
        ),
        job("monthly", json!({"kind": "cron", "expr": "0 0 1 * *"})),
        job("hourly-staggered", json!({"kind": "cron", "expr": "0 * * * *"})),
        job("once-up", json!({"kind": "at", "at": "2027-03-10T12:00:00Z"})),
        // Inside the downtime of week 1 (2027-01-08 05:17 to 08:17 UTC).
        job("once-down", json!({"kind": "at", "at": "2027-01-08T06:00:00Z"})),
    ]
}

#[test]
fn a_year_with_a_restart_every_week_runs_each_slot_once_and_each_missed_job_once() {
    let settings = CronSettings::default();
    let mut sched = Scheduler::default();
    for j in mixed_jobs() {
        sched.add(j, START).unwrap();
    }
    let downs = downtimes();
    let end = START + 365 * DAY;
    let mut now = START;
    let mut ran: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut next_down = 0;
    loop {
        let wake = sched.next_wake().unwrap_or(u64::MAX);
        if next_down < downs.len() && wake >= downs[next_down].0 {
            // The gateway stops before its next due run and starts again three hours later.
            let (_, up) = downs[next_down];
            next_down += 1;
            let jobs = sched.jobs_file();
            let runs: Vec<(String, String)> = sched
                .jobs()
                .iter()
                .map(|j| (j.id.clone(), sched.runs_file(&j.id)))
                .collect();
            sched = Scheduler::restore(Some(&jobs), &runs, up, &settings, "UTC", &BundledZones, &|_| false)
                .unwrap()
                .0;
            now = up;
            continue;
        }
        if wake >= end {
            break;
        }
        now = now.max(wake);
        for run in sched.take_due(now, 64) {
            ran.entry(run.job_id.clone()).or_default().push(now);
            sched.finish(&run, ok(), now).unwrap();
        }
    }

    // What should have run: each slot outside the downtimes, plus one catch-up per downtime in
    // which a job had a slot, after the start delay (catch-ups after one start are spaced).
    let is_down = |t: u64| downs.iter().any(|(d, u)| t >= *d && t < *u);
    for original in mixed_jobs() {
        let id = original.id.clone();
        let runs = ran.remove(&id).unwrap_or_default();
        let mut sorted = runs.clone();
        sorted.dedup();
        assert_eq!(sorted.len(), runs.len(), "{id}: a run happened twice");
        assert!(
            runs.iter().all(|t| !is_down(*t)),
            "{id}: ran while the gateway was down"
        );
        let mut slots = Vec::new();
        let mut t = START;
        while let Some(next) = original.schedule.next_after(t, &id) {
            if next >= end {
                break;
            }
            slots.push(next);
            t = next;
        }
        let window = CATCHUP_DELAY_MS + 10 * CATCHUP_SPACING_MS;
        let missed: Vec<(u64, u64)> = downs
            .iter()
            .copied()
            .filter(|(d, u)| slots.iter().any(|s| s >= d && s < u))
            .collect();
        // The one run that makes up for a downtime: the delayed catch-up, or the job's own slot
        // when that came first.
        let makes_up = |s: u64| missed.iter().any(|(_, up)| s >= *up && s < up + window);
        let on_time: Vec<u64> = slots.iter().copied().filter(|s| !is_down(*s)).collect();
        for s in &on_time {
            assert!(
                runs.contains(s) || makes_up(*s),
                "{id}: the slot at {s} did not run on time"
            );
        }
        let catch_ups: Vec<u64> = runs.iter().copied().filter(|t| !on_time.contains(t)).collect();
        for (_, up) in &missed {
            let after: Vec<u64> = runs.iter().copied().filter(|t| *t >= *up && *t < up + window).collect();
            assert_eq!(
                after.len(),
                1,
                "{id}: exactly one run makes up for the downtime ending at {up}"
            );
        }
        assert!(
            catch_ups.len() <= missed.len(),
            "{id}: a catch-up without a missed slot"
        );
        for c in &catch_ups {
            assert!(makes_up(*c), "{id}: a run at {c} off its schedule");
        }
    }
    assert!(ran.is_empty());
}

#[test]
fn with_skip_missed_jobs_a_year_of_restarts_runs_only_the_slots_while_up() {
    let settings = CronSettings {
        skip_missed_jobs: true,
        ..CronSettings::default()
    };
    let mut sched = Scheduler::default();
    sched
        .add(job("every-37m", json!({"kind": "every", "everyMs": 37 * MIN})), START)
        .unwrap();
    let downs = downtimes();
    let end = START + 365 * DAY;
    let (mut now, mut next_down, mut runs) = (START, 0, Vec::new());
    while let Some(wake) = sched.next_wake().filter(|w| *w < end) {
        if next_down < downs.len() && wake >= downs[next_down].0 {
            let up = downs[next_down].1;
            next_down += 1;
            let jobs = sched.jobs_file();
            sched = Scheduler::restore(Some(&jobs), &[], up, &settings, "UTC", &BundledZones, &|_| false)
                .unwrap()
                .0;
            now = up;
            continue;
        }
        now = now.max(wake);
        for run in sched.take_due(now, 1) {
            runs.push(now);
            sched.finish(&run, ok(), now).unwrap();
        }
    }
    let is_down = |t: u64| downs.iter().any(|(d, u)| t >= *d && t < *u);
    let expected = (1..)
        .map(|k| START + k * 37 * MIN)
        .take_while(|t| *t < end)
        .filter(|t| !is_down(*t))
        .count();
    assert_eq!(runs.len(), expected);
    assert!(
        runs.iter().all(|t| (t - START) % (37 * MIN) == 0),
        "every run is on a slot"
    );
}
