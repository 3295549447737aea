//! Sandboxed calls are confined by the kernel (Landlock, and namespaces for commands), not only
//! by path checks: each escape a hostile command would try fails, and works unconfined.

use clawgate_engine::tool_calls::ToolRun;
use clawgate_engine::tool_policy::WorkspaceAccess;
use clawgate_tools::sandbox::ExecSandbox;
use clawgate_tools::ToolRunner;
use serde_json::{json, Value};
use std::fs;
use std::path::PathBuf;

/// A fresh `workspace/` (with `notes.txt` = `notes`) and the secret file beside it.
fn scratch() -> (PathBuf, PathBuf) {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let base = std::env::temp_dir().join(format!(
        "clawgate-sandbox-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&base);
    fs::create_dir_all(base.join("workspace")).unwrap();
    fs::create_dir_all(base.join("outside")).unwrap();
    fs::write(base.join("outside/secret.txt"), "secret").unwrap();
    fs::write(base.join("workspace/notes.txt"), "notes").unwrap();
    (base.join("workspace"), base.join("outside/secret.txt"))
}

fn run(
    workspace: &std::path::Path,
    access: WorkspaceAccess,
    sandboxed: bool,
    tool: &'static str,
    args: Value,
) -> Value {
    let runner = ToolRunner::new(None).with_exec_sandbox(ExecSandbox::new(env!("CARGO_BIN_EXE_clawgate")));
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

fn confined(ws: &std::path::Path, script: &str) -> Value {
    run(ws, WorkspaceAccess::ReadWrite, true, "exec", sh(script))
}

fn unconfined(ws: &std::path::Path, script: &str) -> Value {
    run(ws, WorkspaceAccess::ReadWrite, false, "exec", sh(script))
}

/// A TCP connection from Python: prints `connected` or the error.
fn tcp(host: &str, port: u16) -> String {
    format!(
        "python3 -c \"import socket\ntry:\n socket.create_connection(('{host}', {port}), timeout=2); print('connected')\nexcept Exception as e: print('refused', e)\""
    )
}

#[test]
fn a_sandboxed_command_reaches_no_tcp_listener_v4_or_v6() {
    let (ws, _) = scratch();
    let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let v6 = std::net::TcpListener::bind("[::1]:0").unwrap();
    for (host, port) in [
        ("127.0.0.1", v4.local_addr().unwrap().port()),
        ("::1", v6.local_addr().unwrap().port()),
    ] {
        assert_eq!(unconfined(&ws, &tcp(host, port))["stdout"], "connected\n", "{host}");
        let boxed = confined(&ws, &tcp(host, port));
        assert!(
            boxed["stdout"].as_str().unwrap().starts_with("refused"),
            "{host}: {boxed}"
        );
    }
}

#[test]
fn a_sandboxed_command_sends_no_udp() {
    let (ws, _) = scratch();
    let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = receiver.local_addr().unwrap().port();
    let script = format!(
        "python3 -c \"import socket\ntry:\n socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', {port})); print('sent')\nexcept Exception as e: print('refused', e)\""
    );
    assert_eq!(unconfined(&ws, &script)["stdout"], "sent\n");
    let boxed = confined(&ws, &script);
    assert!(boxed["stdout"].as_str().unwrap().starts_with("refused"), "{boxed}");
}

#[test]
fn a_sandboxed_command_cannot_read_the_environment_or_command_line_of_the_process_that_runs_it() {
    let (ws, _) = scratch();
    let me = std::process::id();
    let script = format!("cat /proc/{me}/cmdline /proc/{me}/environ | tr '\\0' ' '");
    assert!(!unconfined(&ws, &script)["stdout"].as_str().unwrap().is_empty());
    let boxed = confined(&ws, &script);
    assert_eq!(boxed["stdout"], "", "{boxed}");
    // Its /proc is its own: the number names no process there.
    assert!(boxed["stderr"].as_str().unwrap().contains("No such file"), "{boxed}");
}

#[test]
fn a_sandboxed_command_sees_and_signals_only_its_own_processes() {
    let (ws, _) = scratch();
    let me = std::process::id();
    let count = "ls /proc | grep -c '^[0-9]'";
    let boxed = confined(&ws, count);
    let seen: u32 = boxed["stdout"].as_str().unwrap().trim().parse().unwrap();
    assert!(seen <= 4, "it sees {seen} processes: {boxed}");
    // The process that runs the tool (here, the test; in production, the gateway) is out of reach.
    let kill = confined(&ws, &format!("kill -9 {me}; echo $?"));
    assert_ne!(kill["stdout"], "0\n", "{kill}");
    assert_eq!(unconfined(&ws, &format!("kill -0 {me}; echo $?"))["stdout"], "0\n");
}

#[test]
fn a_sandboxed_command_has_no_capabilities_and_cannot_gain_any() {
    let (ws, _) = scratch();
    let boxed = confined(&ws, "grep -E '^(CapEff|CapPrm|NoNewPrivs)' /proc/self/status");
    let text = boxed["stdout"].as_str().unwrap();
    assert!(text.contains("CapPrm:\t0000000000000000"), "{boxed}");
    assert!(text.contains("CapEff:\t0000000000000000"), "{boxed}");
    assert!(text.contains("NoNewPrivs:\t1"), "{boxed}");
}

#[test]
fn a_file_past_the_size_limit_is_cut_off() {
    let (ws, _) = scratch();
    // 1 GiB is allowed, one block more is not.
    let boxed = confined(
        &ws,
        "head -c 1073741825 /dev/zero > big; echo $?; stat -c %s big; rm -f big",
    );
    let lines: Vec<&str> = boxed["stdout"].as_str().unwrap().lines().collect();
    assert_ne!(lines.first(), Some(&"0"), "{boxed}");
    assert_eq!(lines.get(1), Some(&"1073741824"), "{boxed}");
}

#[test]
fn nothing_a_sandboxed_command_started_outlives_its_timeout() {
    let (ws, _) = scratch();
    let marker = "clawgate-left-behind-4242";
    let script = format!("(setsid sh -c 'exec -a {marker} sleep 300' &) ; sleep 300");
    let boxed = run(
        &ws,
        WorkspaceAccess::ReadWrite,
        true,
        "exec",
        json!({"command": script, "shell": true, "timeoutMs": 1000}),
    );
    assert_ne!(boxed["exitCode"], 0, "{boxed}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let ps = std::process::Command::new("pgrep")
        .args(["-f", marker])
        .output()
        .unwrap();
    assert!(
        ps.stdout.is_empty(),
        "left behind: {}",
        String::from_utf8_lossy(&ps.stdout)
    );
}
