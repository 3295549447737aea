//! `exec` and `process` with real child processes.

use clawgate_tools::ProcessTable;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("clawgate-exec-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.canonicalize().unwrap()
}

fn exec(args: Value) -> Value {
    ProcessTable::new().exec(&dir(), &args, 64 * 1024).unwrap()
}

#[test]
fn commands_run_in_the_workspace_with_a_scrubbed_environment() {
    let out = exec(json!({"command": "echo", "args": ["hello", "$HOME"]}));
    assert_eq!(out["stdout"], "hello $HOME\n");
    assert_eq!(
        (out["exitCode"].as_i64(), out["timedOut"].as_bool()),
        (Some(0), Some(false))
    );
    let out = exec(json!({"command": "pwd"}));
    assert_eq!(out["stdout"].as_str().unwrap().trim(), dir().to_str().unwrap());
    let out = exec(json!({"command": "env"}));
    let mut names: Vec<&str> = out["stdout"]
        .as_str()
        .unwrap()
        .lines()
        .filter_map(|l| l.split('=').next())
        .collect();
    names.sort();
    assert_eq!(names, ["HOME", "LANG", "PATH"]);
    // A shell only when asked; its arguments are positional.
    let out = exec(json!({"command": "echo \"$1-$HOME\"; exit 3", "args": ["x"], "shell": true}));
    assert_eq!(out["stdout"].as_str().unwrap().trim(), format!("x-{}", dir().display()));
    assert_eq!(out["exitCode"], 3);
    let out = exec(json!({"command": "sh", "args": ["-c", "echo oops >&2"]}));
    assert_eq!(out["stderr"], "oops\n");
}

#[test]
fn a_command_is_killed_at_its_timeout_with_what_it_started() {
    let out = exec(json!({"command": "sleep 30 & echo started; sleep 30", "shell": true, "timeoutMs": 200}));
    assert_eq!(out["timedOut"], true);
    // The output pipe closed, so the background sleep that held it open was stopped too.
    assert_eq!(out["stdout"], "started\n");
    assert_eq!(out["signal"], 9);
    assert!(out["durationMs"].as_u64().unwrap() < 30_000);
}

#[test]
fn output_is_capped_and_the_total_reported() {
    let out = ProcessTable::new()
        .exec(
            &dir(),
            &json!({"command": "head", "args": ["-c", "100000", "/dev/zero"]}),
            1000,
        )
        .unwrap();
    assert_eq!(out["stdout"].as_str().unwrap().len(), 1000);
    assert_eq!(
        (out["stdoutBytes"].as_u64(), out["stdoutTruncated"].as_bool()),
        (Some(100_000), Some(true))
    );
    assert_eq!(out["stderrTruncated"], false);
}

#[test]
fn bad_calls_are_refused() {
    let table = ProcessTable::new();
    for args in [json!({}), json!({"command": " "}), json!({"command": "ls", "extra": 1})] {
        assert_eq!(
            table.exec(&dir(), &args, 10).unwrap_err().code(),
            "INVALID_ARGUMENTS",
            "{args}"
        );
    }
    assert_eq!(
        table
            .exec(&dir(), &json!({"command": "/no/such/program"}), 10)
            .unwrap_err()
            .code(),
        "NOT_FOUND"
    );
    assert!(table.process(&json!({"action": "kill", "pid": 1})).is_err());
    assert!(table.process(&json!({"action": "explode"})).is_err());
}

#[test]
fn process_lists_and_kills_running_commands() {
    let table = ProcessTable::new();
    let runner = table.clone();
    let handle = std::thread::spawn(move || runner.exec(&dir(), &json!({"command": "sleep", "args": ["30"]}), 100));
    let pid = loop {
        let list = table.process(&json!({"action": "list"})).unwrap();
        if let Some(p) = list["processes"].as_array().unwrap().first() {
            assert_eq!(p["command"], "sleep");
            break p["pid"].as_u64().unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(
        table.process(&json!({"action": "kill", "pid": pid})).unwrap()["killed"],
        true
    );
    let out = handle.join().unwrap().unwrap();
    assert_eq!(
        (out["killed"].as_bool(), out["timedOut"].as_bool()),
        (Some(true), Some(false))
    );
    assert!(table.process(&json!({"action": "list"})).unwrap()["processes"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn a_command_line_without_shell_is_refused_with_how_to_ask_for_one() {
    let err = ProcessTable::new()
        .exec(&dir(), &json!({"command": "ls -l | wc -l"}), 1024)
        .unwrap_err()
        .to_string();
    assert!(err.contains("runs no shell"), "{err}");
    assert!(err.contains("\"shell\": true"), "{err}");
    let out = exec(json!({"command": "ls -l | wc -l", "shell": true}));
    assert_eq!(out["exitCode"], 0);
}

#[test]
fn the_command_of_a_cancelled_call_is_killed() {
    let table = ProcessTable::new();
    let worker = table.clone();
    let dir = dir();
    let started = std::time::Instant::now();
    let running = std::thread::spawn(move || {
        worker.exec_call(
            &dir,
            &json!({"command": "sleep", "args": ["30"]}),
            1024,
            false,
            Some(7),
            None,
        )
    });
    // Until the command is in the table there is nothing to stop.
    while !table.kill_call(7) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "the command never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let out = running.join().unwrap().unwrap();
    assert_eq!(out["killed"], true, "{out}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(!table.kill_call(8), "another call has no command");
}

#[test]
fn what_a_command_prints_reaches_the_live_sink_as_it_comes() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink_seen = seen.clone();
    let sink: clawgate_tools::OutputSink =
        std::sync::Arc::new(move |text: &str| sink_seen.lock().unwrap().push_str(text));
    let out = ProcessTable::new()
        .exec_call(
            &dir(),
            &json!({"command": "printf 'one\\n'; sleep 0.2; printf 'two\\n'", "shell": true}),
            1024,
            false,
            Some(1),
            Some(sink),
        )
        .unwrap();
    assert_eq!(out["stdout"], "one\ntwo\n");
    assert_eq!(*seen.lock().unwrap(), "one\ntwo\n");
}
