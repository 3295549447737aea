//! Sandboxed calls are confined by the kernel (Landlock), not only by path checks.

mod common;

use clawgate_engine::tool_calls::ToolRun;
use clawgate_engine::tool_policy::WorkspaceAccess;
use clawgate_tools::ToolRunner;
use serde_json::{json, Value};
use std::fs;
use std::path::PathBuf;

/// The workspace and the secret file beside it.
fn scratch() -> (PathBuf, PathBuf) {
    let (ws, outside) = common::scratch("notes");
    (ws, outside.join("secret.txt"))
}

fn run(
    workspace: &std::path::Path,
    access: WorkspaceAccess,
    sandboxed: bool,
    tool: &'static str,
    args: Value,
) -> Value {
    let runner = ToolRunner::new(None);
    let call = ToolRun {
        call: 1,
        tool,
        args,
        workspace: Some(workspace.display().to_string()),
        agent: "main".into(),
        access,
        sandboxed,
    };
    match runner.run(&call) {
        Ok(v) => v,
        Err(e) => json!({"failure": e.kind.code(), "message": e.message}),
    }
}

fn sh(script: &str) -> Value {
    json!({"command": script, "shell": true})
}

#[test]
fn this_host_has_landlock() {
    assert_eq!(clawgate_tools::sandbox::probe().as_deref(), Ok("Landlock"));
}

#[test]
fn a_sandboxed_command_cannot_read_outside_the_workspace() {
    let (ws, secret) = scratch();
    let script = format!("cat {}", secret.display());
    // Unconfined, the absolute path works: the path checks of the file tools do not apply to exec.
    let open = run(&ws, WorkspaceAccess::ReadWrite, false, "exec", sh(&script));
    assert_eq!(open["stdout"], "secret");
    let boxed = run(&ws, WorkspaceAccess::ReadWrite, true, "exec", sh(&script));
    assert_ne!(boxed["exitCode"], 0, "{boxed}");
    assert!(
        boxed["stderr"].as_str().unwrap().contains("Permission denied"),
        "{boxed}"
    );
    // Inside the workspace it still works, and system programs still run.
    let inside = run(
        &ws,
        WorkspaceAccess::ReadWrite,
        true,
        "exec",
        sh("cat notes.txt && ls /usr/bin > /dev/null"),
    );
    assert_eq!(
        (inside["stdout"].as_str(), inside["exitCode"].as_i64()),
        (Some("notes"), Some(0)),
        "{inside}"
    );
    // The thread that asked is not confined.
    assert_eq!(fs::read_to_string(&secret).unwrap(), "secret");
}

#[test]
fn read_only_and_no_access_are_enforced_by_the_kernel() {
    let (ws, _) = scratch();
    let ro = run(
        &ws,
        WorkspaceAccess::ReadOnly,
        true,
        "exec",
        sh("cat notes.txt; echo x > made.txt"),
    );
    assert_eq!(ro["stdout"], "notes");
    assert_ne!(ro["exitCode"], 0);
    assert!(!ws.join("made.txt").exists());
    let rw = run(&ws, WorkspaceAccess::ReadWrite, true, "exec", sh("echo x > made.txt"));
    assert_eq!(rw["exitCode"], 0, "{rw}");
    assert!(ws.join("made.txt").exists());
    let none = run(&ws, WorkspaceAccess::None, true, "exec", sh("cat notes.txt"));
    assert_ne!(none["exitCode"], 0);
    assert_eq!(none["stdout"], "");
    // File tools run confined too.
    let read = run(
        &ws,
        WorkspaceAccess::ReadWrite,
        true,
        "read",
        json!({"path": "notes.txt"}),
    );
    assert_eq!(read["content"], "notes", "{read}");
}

#[test]
fn sandboxed_commands_run_under_resource_limits() {
    let (ws, _) = scratch();
    let script = "ulimit -n; ulimit -f; ulimit -c";
    let boxed = run(&ws, WorkspaceAccess::ReadWrite, true, "exec", sh(script));
    // `ulimit -f` counts 512-byte blocks.
    assert_eq!(boxed["stdout"], "256\n2097152\n0\n", "{boxed}");
    let open = run(&ws, WorkspaceAccess::ReadWrite, false, "exec", sh(script));
    assert_ne!(open["stdout"], boxed["stdout"]);
}
