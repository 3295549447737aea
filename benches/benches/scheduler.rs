//! The cron scheduler's cost with 1,000 jobs: a timer turn with nothing due, a turn that runs
//! one job (claim, finish, next slot), and writing the jobs file that every run rewrites.
//!
//! `cargo bench -p clawgate-benches --bench scheduler`

use clawgate_engine::scheduler::{CronJob, JobState, RunOutcome, Schedule, Scheduler};
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Map};

// 2027-01-01T00:00:00Z
const START: u64 = 1_798_761_600_000;

/// 1,000 jobs: intervals, and cron expressions in a few time zones.
fn thousand_jobs() -> Scheduler {
    let zones = ["Europe/Vienna", "America/New_York", "Asia/Tokyo", "UTC"];
    let zones_db = clawgate_io::SystemTimeZones::default();
    let mut s = Scheduler::default();
    for i in 0..1000u64 {
        let schedule = if i % 2 == 0 {
            json!({"kind": "every", "everyMs": 60_000 * (5 + i % 120)})
        } else {
            json!({"kind": "cron", "expr": format!("{} {} * * *", i % 60, i % 24), "tz": zones[(i % 4) as usize]})
        };
        let job = CronJob {
            id: format!("job-{i:04}"),
            name: format!("job {i}"),
            enabled: true,
            created_at_ms: START,
            updated_at_ms: START,
            schedule: Schedule::parse(&schedule, START, "UTC", &zones_db).unwrap(),
            session_target: "main".into(),
            wake_mode: "now".into(),
            payload: json!({"kind": "systemEvent", "text": format!("reminder {i}")}),
            state: JobState::default(),
            extra: Map::new(),
        };
        s.add(job, START).unwrap();
    }
    s
}

fn scheduler(c: &mut Criterion) {
    let mut group = c.benchmark_group("scheduler (1,000 jobs)");
    let mut s = thousand_jobs();
    group.bench_function("timer turn, nothing due", |b| {
        b.iter(|| {
            let due = s.take_due(START + 1, 1);
            assert!(due.is_empty());
            s.next_wake()
        })
    });
    let mut now = START;
    group.bench_function("timer turn that runs one job", |b| {
        b.iter(|| {
            now = s.next_wake().unwrap();
            let run = s.take_due(now, 1).pop().unwrap();
            let outcome = RunOutcome::ok(None, None);
            s.finish(&run, outcome, now).unwrap();
        })
    });
    group.bench_function("jobs file (written after each run)", |b| b.iter(|| s.jobs_file().len()));
    group.finish();
}

criterion_group!(benches, scheduler);
criterion_main!(benches);
