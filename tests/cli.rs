//! The `clawgate` binary from the outside: flags, environment, errors, signals and its client
//! commands.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::bin;

/// Ports of this binary's gateways: 20,000 to 23,999.
fn free_port() -> u16 {
    common::free_port(20_000)
}

/// Runs a command that is expected to exit by itself; a gateway that wrongly keeps running is
/// killed after a while so that the test fails instead of hanging.
fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} still ran after {limit:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// Runs a `clawgate` command to its end, failing the test if it has not ended within 30 s.
trait RunToEnd {
    fn run_to_end(&mut self) -> Output;
}

impl RunToEnd for Command {
    fn run_to_end(&mut self) -> Output {
        output_within(self, Duration::from_secs(30))
    }
}

struct Running {
    child: Child,
    port: u16,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Running {
    fn start(args: &[&str], envs: &[(&str, String)]) -> Running {
        let port = free_port();
        let state = std::env::temp_dir().join(format!("clawgate-cli-test-{}-{port}", std::process::id()));
        Running::start_in(args, envs, port, &state)
    }

    fn start_in(args: &[&str], envs: &[(&str, String)], port: u16, state: &std::path::Path) -> Running {
        let mut cmd = bin();
        cmd.args(["gateway", "run"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        cmd.env_remove("OPENCLAW_GATEWAY_TOKEN")
            .env_remove("OPENCLAW_GATEWAY_PASSWORD");
        cmd.env("OPENCLAW_STATE_DIR", state);
        if !envs.iter().any(|(k, _)| *k == "OPENCLAW_GATEWAY_PORT") && !args.contains(&"--port") {
            cmd.env("OPENCLAW_GATEWAY_PORT", port.to_string());
        }
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let port = args
            .windows(2)
            .find(|w| w[0] == "--port")
            .map(|w| w[1].parse().unwrap())
            .or_else(|| {
                envs.iter()
                    .find(|(k, _)| *k == "OPENCLAW_GATEWAY_PORT")
                    .map(|(_, v)| v.parse().unwrap())
            })
            .unwrap_or(port);
        let r = Running { child, port, stdout };
        r.wait_ready();
        r
    }

    fn wait_ready(&self) {
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "gateway did not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn client(&self, args: &[&str], token: &str) -> Output {
        let url = format!("ws://127.0.0.1:{}", self.port);
        bin().args(args).args(["--url", &url, "--token", token]).run_to_end()
    }

    fn sigterm(&mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn without_flags_a_token_is_generated_once_saved_in_the_config_file_and_kept_across_restarts() {
    use std::os::unix::fs::PermissionsExt;
    let state = config_state("generated-token");
    let port = free_port();
    let mut gw = Running::start_in(&[], &[], port, &state);
    let mut line = String::new();
    gw.stdout.read_line(&mut line).unwrap();
    assert!(line.contains("generated a gateway token"), "{line}");
    assert!(
        line.contains("gateway.auth.token"),
        "the line says where it is kept: {line}"
    );
    let token = line.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(token.len() >= 32, "{token}");
    let file = state.join("openclaw.json");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&file).unwrap().contains(&token));
    let ok = gw.client(&["call", "health"], &token);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let bad = gw.client(&["call", "health"], "wrong");
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("token mismatch"));
    assert!(gw.sigterm().success());
    let mut rest = String::new();
    gw.stdout.read_to_string(&mut rest).unwrap();
    assert!(!rest.contains(&token), "the token was printed twice");
    drop(gw);

    // The next start serves with the same token and does not print it again.
    let mut again = Running::start_in(&[], &[], port, &state);
    let ok = again.client(&["call", "health"], &token);
    assert!(
        ok.status.success(),
        "the token changed across a restart: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // A client on this host finds the port and the token in the file.
    let local = bin()
        .args(["call", "health"])
        .env("OPENCLAW_STATE_DIR", &state)
        .env("OPENCLAW_GATEWAY_PORT", port.to_string())
        .env_remove("OPENCLAW_GATEWAY_TOKEN")
        .run_to_end();
    assert!(local.status.success(), "{}", String::from_utf8_lossy(&local.stderr));
    assert!(again.sigterm().success());
    let mut printed = String::new();
    again.stdout.read_to_string(&mut printed).unwrap();
    assert!(!printed.contains(&token), "the kept token was printed again");
}

#[test]
fn clients_read_the_port_and_token_from_the_config_file_and_flags_override_them() {
    let state = config_state("client-config");
    let port = free_port();
    let cfg = |args: &[&str]| {
        bin()
            .arg("config")
            .args(args)
            .env("OPENCLAW_STATE_DIR", &state)
            .run_to_end()
    };
    assert!(cfg(&["set", "gateway.port", &port.to_string()]).status.success());
    assert!(cfg(&["set", "gateway.auth.token", "from-file"]).status.success());
    let gw = Running::start_in(&[], &[("OPENCLAW_GATEWAY_PORT", port.to_string())], port, &state);
    let client = |extra: &[&str], env_token: Option<&str>| {
        let mut cmd = bin();
        cmd.args(["call", "health"])
            .args(extra)
            .env("OPENCLAW_STATE_DIR", &state);
        cmd.env_remove("OPENCLAW_GATEWAY_PORT")
            .env_remove("OPENCLAW_GATEWAY_URL");
        match env_token {
            Some(t) => cmd.env("OPENCLAW_GATEWAY_TOKEN", t),
            None => cmd.env_remove("OPENCLAW_GATEWAY_TOKEN"),
        };
        cmd.run_to_end()
    };
    let out = client(&[], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The file's token wins over the environment's, as it does for the gateway.
    assert!(client(&[], Some("stale")).status.success());
    let out = client(&["--token", "wrong"], None);
    assert_eq!(out.status.code(), Some(1), "a flag overrides the file");
    let url = format!("ws://127.0.0.1:{}", gw.port);
    let out = bin()
        .args(["call", "health", "--url", &url])
        .env("OPENCLAW_STATE_DIR", config_state("client-config-empty"))
        .env_remove("OPENCLAW_GATEWAY_TOKEN")
        .run_to_end();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("--token") && err.contains("OPENCLAW_GATEWAY_TOKEN"),
        "{err}"
    );
}

#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    let gw = Running::start(&["--token", "pipe"], &[]);
    let url = format!("ws://127.0.0.1:{}", gw.port);
    let mut child = bin()
        .args(["call", "health", "--url", &url, "--token", "pipe"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before the answer is printed.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}

#[test]
fn every_command_has_its_own_flags_help_and_version() {
    let out = bin().arg("--version").run_to_end();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    for command in [
        &["gateway", "run"][..],
        &["call"],
        &["logs"],
        &["agent"],
        &["devices"],
        &["config"],
    ] {
        let out = bin().args(command).arg("--help").run_to_end();
        assert!(out.status.success(), "{command:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage: clawgate"),
            "{command:?}"
        );
    }
    let out = bin().args(["status", "--model", "x"]).run_to_end();
    assert_eq!(out.status.code(), Some(2), "a flag of another command is refused");
    let gateway_help =
        String::from_utf8_lossy(&bin().args(["gateway", "run", "--help"]).run_to_end().stdout).into_owned();
    assert!(gateway_help.contains("--control-ui"));
    assert!(!gateway_help.contains("--delay-ms"));
}

#[test]
fn config_validate_without_a_file_says_so_and_names_the_defaults() {
    let state = config_state("no-file");
    let out = bin()
        .args(["config", "validate"])
        .env("OPENCLAW_STATE_DIR", &state)
        .run_to_end();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("no configuration file"), "{text}");
    assert!(text.contains("18789"), "{text}");
}

#[test]
fn a_rejected_config_set_names_the_key_once() {
    let state = config_state("set-message");
    let out = bin()
        .args(["config", "set", "gateway.port", "\"x\""])
        .env("OPENCLAW_STATE_DIR", &state)
        .run_to_end();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("gateway.port").count(), 1, "{err}");
}

#[test]
fn tls_asked_for_in_the_file_stops_the_start_until_it_is_implemented() {
    let state = config_state("tls");
    std::fs::write(state.join("openclaw.json"), "{ gateway: { tls: { enabled: true } } }").unwrap();
    let out = bin()
        .args(["gateway", "run", "--token", "x", "--port", "0"])
        .env("OPENCLAW_STATE_DIR", &state)
        .run_to_end();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("gateway.tls.enabled") && err.contains("plaintext"),
        "{err}"
    );
}

#[test]
fn logs_are_readable_lines_by_default_and_raw_json_with_a_flag() {
    let gw = Running::start(&["--token", "lg"], &[]);
    let text = String::from_utf8_lossy(&gw.client(&["logs"], "lg").stdout).into_owned();
    let first = text.lines().next().unwrap_or_default().to_owned();
    assert!(first.contains(" [info] "), "{first}");
    assert!(!first.starts_with('{'), "{first}");
    let raw = String::from_utf8_lossy(&gw.client(&["logs", "--json"], "lg").stdout).into_owned();
    let line: serde_json::Value = serde_json::from_str(raw.lines().next().unwrap_or_default()).unwrap();
    assert!(line["message"].is_string());
}

#[test]
fn the_token_and_port_come_from_the_environment() {
    let port = free_port();
    let gw = Running::start(
        &[],
        &[
            ("OPENCLAW_GATEWAY_PORT", port.to_string()),
            ("OPENCLAW_GATEWAY_TOKEN", "envtok".into()),
        ],
    );
    assert_eq!(gw.port, port);
    let out = gw.client(&["status"], "envtok");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("runtimeVersion"));
}

#[test]
fn the_token_can_come_from_a_file_for_the_gateway_and_its_clients() {
    let dir = std::env::temp_dir().join(format!("clawgate-token-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "from-a-file-0123456789\n").unwrap();
    let path = file.to_str().unwrap();
    let gw = Running::start(&["--token-file", path], &[]);
    let url = format!("ws://127.0.0.1:{}", gw.port);
    let out = bin().args(["status", "--url", &url, "--token-file", path]).run_to_end();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The token is the file's first line, not the file's name.
    assert!(gw.client(&["status"], "from-a-file-0123456789").status.success());
    assert!(!gw.client(&["status"], path).status.success());
    let ps = std::fs::read(format!("/proc/{}/cmdline", gw.child.id())).unwrap();
    assert!(!String::from_utf8_lossy(&ps).contains("from-a-file-0123456789"));
}

#[test]
fn an_empty_or_missing_token_file_stops_the_start_with_78() {
    let dir = std::env::temp_dir().join(format!("clawgate-token-file-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty");
    std::fs::write(&empty, "\n").unwrap();
    for (file, says) in [(empty, "is empty"), (dir.join("missing"), "cannot read the token file")] {
        let out = bin()
            .args(["gateway", "run", "--port", &free_port().to_string(), "--token-file"])
            .arg(&file)
            .env("OPENCLAW_STATE_DIR", &dir)
            .run_to_end();
        assert_eq!(out.status.code(), Some(78), "{file:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn call_status_and_logs_work() {
    let gw = Running::start(&["--token", "t1"], &[]);
    let out = gw.client(&["call", "system-presence"], "t1");
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"mode\": \"gateway\""));
    let out = gw.client(&["logs"], "t1");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("listening on ws://127.0.0.1"));
    let out = gw.client(&["call", "no.such.method"], "t1");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown method: no.such.method"));
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let out = bin()
        .args(["gateway", "run", "--port", &port, "--token", "x"])
        .env("OPENCLAW_STATE_DIR", config_state("port-in-use"))
        .run_to_end();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already in use"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_flags_exit_with_2() {
    for args in [
        &["gateway", "run", "--nope"][..],
        &["gateway", "run", "--port", "x"],
        &["gateway", "run", "--bind", "moon"],
        &["gateway", "run", "--runtime", "tokio", "--token", "x"],
        &["frobnicate"],
    ] {
        let out = bin().args(args).run_to_end();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
}

#[test]
fn auth_none_is_refused_beyond_loopback() {
    let out = bin()
        .args(["gateway", "run", "--bind", "lan", "--auth", "none", "--port", "0"])
        .run_to_end();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing"));
}

#[test]
fn sigterm_sends_shutdown_and_closes_clients_with_1012() {
    for runtime in ["smol", "mio"] {
        sigterm_on(runtime);
    }
}

fn sigterm_on(runtime: &str) {
    let mut gw = Running::start(&["--token", "t2", "--runtime", runtime], &[]);
    let mut s = TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").unwrap();
    let connect = r#"{"type":"req","id":"c","method":"connect","params":{"minProtocol":4,"maxProtocol":4,"client":{"id":"cli","version":"t","platform":"linux","mode":"cli"},"auth":{"token":"t2"}}}"#;
    let mut frame = vec![0x81, 0x80 | 126];
    frame.extend_from_slice(&(connect.len() as u16).to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(connect.as_bytes());
    s.write_all(&frame).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(gw.sigterm().success(), "clean exit after SIGTERM");
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let text = String::from_utf8_lossy(&all);
    assert!(text.contains("hello-ok"));
    assert!(text.contains(r#""event":"shutdown""#));
    // The close frame: opcode 0x88, then the code 1012 (0x03f4) and "service restart".
    let close = all
        .windows(2)
        .rposition(|w| w == [0x03, 0xf4])
        .expect("a 1012 close frame");
    assert!(text[close..].contains("service restart"));
}

fn device_client(port: u16, token: &str, seed: u8) -> std::io::Result<clawgate_benches::BlockingClient> {
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let identity = clawgate_proto::device::DeviceIdentity::from_seed(&[seed; 32]);
    clawgate_benches::connect(addr, token, &["operator.read"], Some(identity), seed as u64)
}

#[test]
fn pairing_is_approved_with_the_devices_command_survives_a_restart_and_revocation_locks_out() {
    use std::os::unix::fs::PermissionsExt;
    let state = std::env::temp_dir().join(format!("clawgate-pairing-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let port = free_port();
    let mut gw = Running::start_in(&["--token", "pt", "--no-auto-approve-local"], &[], port, &state);
    let refused = device_client(port, "pt", 21)
        .err()
        .expect("an unpaired device is refused")
        .to_string();
    assert!(refused.contains("pairing required"), "{refused}");

    let list = gw.client(&["devices", "list", "--json"], "pt");
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let request_id = list["pending"][0]["requestId"].as_str().unwrap().to_owned();
    let human = gw.client(&["devices", "list"], "pt");
    assert!(String::from_utf8_lossy(&human.stdout).contains(&request_id));
    let approved = gw.client(&["devices", "approve", &request_id], "pt");
    assert!(
        approved.status.success(),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    assert!(device_client(port, "pt", 21).is_ok(), "an approved device connects");

    let devices = state.join("devices");
    assert_eq!(std::fs::metadata(&devices).unwrap().permissions().mode() & 0o777, 0o700);
    let paired = devices.join("paired.json");
    assert_eq!(std::fs::metadata(&paired).unwrap().permissions().mode() & 0o777, 0o600);

    // Restart on the same state: the pairing is still there.
    assert!(gw.sigterm().success());
    drop(gw);
    let gw = Running::start_in(&["--token", "pt", "--no-auto-approve-local"], &[], port, &state);
    assert!(
        device_client(port, "pt", 21).is_ok(),
        "the pairing survived the restart"
    );
    let device_id = clawgate_proto::device::DeviceIdentity::from_seed(&[21; 32])
        .device_id()
        .to_owned();
    let revoked = gw.client(&["devices", "revoke", &device_id], "pt");
    assert!(revoked.status.success(), "{}", String::from_utf8_lossy(&revoked.stderr));
    assert!(device_client(port, "pt", 21).is_err(), "a revoked device is locked out");
}

fn wait_until(what: &str, f: impl FnMut() -> bool) {
    common::wait_until(what, Duration::from_secs(10), f);
}

fn config_state(name: &str) -> std::path::PathBuf {
    let state = std::env::temp_dir().join(format!("clawgate-config-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).unwrap();
    state
}

fn health_with(port: u16, token: &str) -> bool {
    bin()
        .args([
            "call",
            "health",
            "--url",
            &format!("ws://127.0.0.1:{port}"),
            "--token",
            token,
        ])
        .run_to_end()
        .status
        .success()
}

#[test]
fn a_token_edited_in_the_file_applies_within_a_second_and_bad_edits_are_ignored() {
    for runtime in ["smol", "mio"] {
        let state = config_state(&format!("token-{runtime}"));
        let port = free_port();
        let file = state.join("openclaw.json");
        std::fs::write(
            &file,
            format!("{{ gateway: {{ port: {port}, auth: {{ mode: 'token', token: 'first' }} }} }}"),
        )
        .unwrap();
        let gw = Running::start_in(
            &["--runtime", runtime],
            &[("OPENCLAW_GATEWAY_PORT", port.to_string())],
            port,
            &state,
        );
        assert!(health_with(port, "first"));
        let paired = device_client(port, "first", 41).unwrap();
        let device_token = paired.device_token.clone().expect("a device token");
        drop(paired);
        std::fs::write(
            &file,
            format!("{{ gateway: {{ port: {port}, auth: {{ mode: 'token', token: 'second' }} }} }}"),
        )
        .unwrap();
        let changed = Instant::now();
        wait_until("the new token", || health_with(port, "second"));
        assert!(
            changed.elapsed() < Duration::from_secs(2),
            "{runtime}: took {:?}",
            changed.elapsed()
        );
        assert!(!health_with(port, "first"), "{runtime}: the old token still works");
        // A device that authenticates with its own token is not affected by the change.
        assert!(
            device_client(port, &device_token, 41).is_ok(),
            "{runtime}: the device token stopped working"
        );
        // A file that does not parse leaves the gateway serving with what it had.
        std::fs::write(&file, "{ gateway: { auth: ").unwrap();
        std::thread::sleep(Duration::from_millis(1200));
        assert!(
            health_with(port, "second"),
            "{runtime}: an invalid file broke the running config"
        );
        let logs = gw.client(&["logs"], "second");
        assert!(String::from_utf8_lossy(&logs.stdout).contains("config reload skipped"));
    }
}

#[test]
fn a_port_change_restarts_the_gateway_on_the_new_port() {
    let state = config_state("port");
    let (first, second) = (free_port(), free_port());
    let file = state.join("openclaw.json");
    std::fs::write(
        &file,
        format!("{{ gateway: {{ port: {first}, auth: {{ token: 'pt' }} }} }}"),
    )
    .unwrap();
    let mut cmd = bin();
    cmd.args(["gateway", "run"])
        .env("OPENCLAW_STATE_DIR", &state)
        .env_remove("OPENCLAW_GATEWAY_PORT");
    cmd.env_remove("OPENCLAW_GATEWAY_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    wait_until("the first port", || health_with(first, "pt"));
    std::fs::write(
        &file,
        format!("{{ gateway: {{ port: {second}, auth: {{ token: 'pt' }} }} }}"),
    )
    .unwrap();
    wait_until("the new port", || health_with(second, "pt"));
    assert!(!health_with(first, "pt"), "the old port still answers");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn an_invalid_file_stops_the_start_with_exit_78_and_its_position() {
    let state = config_state("invalid");
    std::fs::write(
        state.join("openclaw.json"),
        "{\n  gateway: { port: 1 },\n  nonsense: true\n}",
    )
    .unwrap();
    let out = bin()
        .args(["gateway", "run"])
        .env("OPENCLAW_STATE_DIR", &state)
        .run_to_end();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("openclaw.json:3:3: unknown key: nonsense"), "{err}");
}

#[test]
fn a_realistic_openclaw_file_starts_with_one_warning() {
    let state = config_state("realistic");
    let port = free_port();
    std::fs::write(
        state.join("openclaw.json"),
        format!(
            r#"{{
  "gateway": {{ "mode": "local", "port": {port}, "auth": {{ "mode": "token", "token": "rt" }},
               "http": {{ "endpoints": {{ "chatCompletions": {{ "enabled": true }} }} }} }},
  "agents": {{ "defaults": {{ "model": {{ "primary": "fakeai/fake-golden" }} }} }},
  "models": {{ "mode": "merge", "providers": {{}} }}
}}"#
        ),
    )
    .unwrap();
    let child = bin()
        .args(["gateway", "run"])
        .env("OPENCLAW_STATE_DIR", &state)
        .env_remove("OPENCLAW_GATEWAY_PORT")
        .env_remove("OPENCLAW_GATEWAY_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the configured port", || health_with(port, "rt"));
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("does not use")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(warnings[0].contains("models.mode"), "{err}");
    assert!(
        !warnings[0].contains("agents.defaults.model"),
        "the agents' model is read: {err}"
    );
    assert!(
        err.contains("fakeai/fake-golden names provider fakeai, which models.providers does not configure"),
        "{err}"
    );
}

#[test]
fn a_second_gateway_on_the_same_state_directory_is_refused() {
    let state = config_state("lock");
    let port = free_port();
    let _first = Running::start_in(&["--token", "lk"], &[], port, &state);
    let out = bin()
        .args(["gateway", "run", "--port", &free_port().to_string(), "--token", "lk"])
        .env("OPENCLAW_STATE_DIR", &state)
        .run_to_end();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another gateway") && err.contains(&format!("port {port}")),
        "{err}"
    );
    // Another state directory and port: both run.
    let other = config_state("lock-other");
    let second = Running::start_in(&["--token", "lk"], &[], free_port(), &other);
    assert!(health_with(second.port, "lk"));
}

#[test]
fn config_commands_validate_get_and_set_the_file_the_gateway_watches() {
    let state = config_state("commands");
    let port = free_port();
    let file = state.join("openclaw.json");
    std::fs::write(
        &file,
        format!("{{\n  // ours\n  gateway: {{ port: {port}, auth: {{ token: 'one' }} }}\n}}"),
    )
    .unwrap();
    let cfg = |args: &[&str]| {
        bin()
            .arg("config")
            .args(args)
            .env("OPENCLAW_STATE_DIR", &state)
            .run_to_end()
    };
    let out = cfg(&["validate"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&cfg(&["get", "gateway.port"]).stdout).trim(),
        port.to_string()
    );
    let gw = Running::start_in(&[], &[("OPENCLAW_GATEWAY_PORT", port.to_string())], port, &state);
    assert!(health_with(port, "one"));
    let out = cfg(&["set", "gateway.auth.token", "two"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("comments were not kept"));
    wait_until("the token set with config set", || health_with(port, "two"));
    // A value the gateway would refuse is not written.
    let out = cfg(&["set", "gateway.port", "\"not a port\""]);
    assert_eq!(out.status.code(), Some(78));
    assert!(health_with(port, "two"));
    let out = gw.client(&["reload"], "two");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(&file, "{ broken").unwrap();
    assert_eq!(cfg(&["validate"]).status.code(), Some(78));
}

/// A small OpenAI-compatible server on loopback: it records each request body and streams a
/// canned reply word by word, or answers 500 to a message containing "fail".
fn fake_model_server() -> (u16, Recorded) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Recorded::default();
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            serve_model_request(&mut stream, &record);
        }
    });
    (port, seen)
}

type Recorded = std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>;

/// Answers one chat-completions request on `stream` as the fake model server does.
fn serve_model_request(stream: &mut (impl Read + Write), record: &Recorded) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0; length];
    if stream.read_exact(&mut body).is_err() {
        return;
    }
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let failing = body.to_string().contains("fail");
    record.lock().unwrap().push(body);
    if failing {
        let error = r#"{"error":{"message":"boom"}}"#;
        let _ = write!(
            stream,
            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: {}\r\n\r\n{error}",
            error.len()
        );
        return;
    }
    let _ =
        stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
    for word in ["Hi", " there,", " human."] {
        let event = format!(
            "data: {}\n\n",
            serde_json::json!({"choices": [{"index": 0, "delta": {"content": word}}]})
        );
        let _ = write!(stream, "{:x}\r\n{event}\r\n", event.len());
        let _ = stream.flush();
        std::thread::sleep(Duration::from_millis(5));
    }
    let done = "data: [DONE]\n\n";
    let _ = write!(stream, "{:x}\r\n{done}\r\n0\r\n\r\n", done.len());
    let _ = stream.flush();
}

/// The same fake model server behind TLS, with a self-signed certificate for `localhost`; the
/// certificate's PEM file is returned for the client to trust.
fn fake_tls_model_server(dir: &std::path::Path) -> (u16, Recorded, std::path::PathBuf) {
    use std::sync::Arc;
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let pem = dir.join("model-ca.pem");
    std::fs::write(&pem, certified.cert.pem()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Recorded::default();
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(tcp) = stream else { continue };
            let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                continue;
            };
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            serve_model_request(&mut tls, &record);
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    (port, seen, pem)
}

#[test]
fn the_openai_worker_speaks_https_to_a_server_the_system_trusts_and_refuses_one_it_does_not() {
    let dir = config_state("tls-model");
    let (model_port, seen, ca) = fake_tls_model_server(&dir);
    let gw = Running::start(&["--token", "tw"], &[]);
    let start_worker = |trust: Option<&std::path::Path>| {
        let mut cmd = bin();
        cmd.args(["agent", "--backend", "openai", "--model", "tiny"])
            .args(["--base-url", &format!("https://localhost:{model_port}/v1")])
            .args(["--url", &format!("ws://127.0.0.1:{}", gw.port), "--token", "tw"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match trust {
            Some(ca) => cmd.env("SSL_CERT_FILE", ca),
            None => cmd.env("SSL_CERT_FILE", dir.join("no-such-bundle.pem")),
        };
        cmd.spawn().unwrap()
    };
    let ask = |run: &str| {
        wait_until("the worker to register", || {
            let out = gw.client(&["call", "health"], "tw");
            String::from_utf8_lossy(&out.stdout).contains("\"online\"")
        });
        let params = serde_json::json!({"message": "over tls?", "agentId": "main", "idempotencyKey": run});
        gw.client(&["call", "agent", "--params", &params.to_string()], "tw")
    };
    let mut trusting = start_worker(Some(&ca));
    let out = ask("t1");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reply = String::from_utf8_lossy(&out.stdout);
    assert!(reply.contains("Hi there, human."), "{reply}");
    assert_eq!(seen.lock().unwrap().len(), 1);
    let _ = trusting.kill();
    let _ = trusting.wait();

    // Without the certificate in its trust store, the worker does not talk to the server.
    let mut distrusting = start_worker(None);
    let out = ask("t2");
    let answer = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!answer.contains("Hi there, human."), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("certificate") || answer.contains("UnknownIssuer"),
        "{answer}"
    );
    assert_eq!(seen.lock().unwrap().len(), 1, "no request reached the untrusted server");
    let _ = distrusting.kill();
    let _ = distrusting.wait();
}

#[test]
fn the_openai_worker_streams_from_a_compatible_server_with_the_session_history() {
    let (model_port, seen) = fake_model_server();
    let gw = Running::start(&["--token", "ow"], &[]);
    let mut worker = bin()
        .args(["agent", "--backend", "openai", "--model", "tiny"])
        .args(["--base-url", &format!("http://127.0.0.1:{model_port}/v1")])
        .args(["--url", &format!("ws://127.0.0.1:{}", gw.port), "--token", "ow"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the worker to register", || {
        let out = gw.client(&["call", "health"], "ow");
        String::from_utf8_lossy(&out.stdout).contains("\"online\"")
    });
    let agent = |message: &str, run: &str| {
        let params = serde_json::json!({"message": message, "agentId": "main", "idempotencyKey": run});
        gw.client(&["call", "agent", "--params", &params.to_string()], "ow")
    };
    let out = agent("first question", "o1");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["result"]["payloads"][0]["text"], "Hi there, human.");

    let out = agent("second question", "o2");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        (requests[1]["model"].as_str(), requests[1]["stream"].as_bool()),
        (Some("tiny"), Some(true))
    );
    assert_eq!(
        requests[1]["messages"],
        serde_json::json!([
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "Hi there, human."},
            {"role": "user", "content": "second question"},
        ]),
        "the session's history is the context"
    );

    let out = agent("please fail", "o3");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("model server answered 500") && err.contains("boom"),
        "{err}"
    );
    let _ = worker.kill();
    let _ = worker.wait();
}

#[test]
fn a_corrupt_state_file_stops_the_start_and_is_left_untouched() {
    // Both hold what was accepted (pairings, queued messages): the gateway must not start over them.
    for (name, file, text) in [
        ("pairing", "devices/paired.json", "{ this is not json"),
        ("queue", "agents/queue.json", "{\"queue\": [tru"),
    ] {
        let state = config_state(&format!("corrupt-{name}"));
        let path = state.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        let out = bin()
            .args(["gateway", "run", "--port", &free_port().to_string(), "--token", "x"])
            .env("OPENCLAW_STATE_DIR", &state)
            .run_to_end();
        assert_eq!(out.status.code(), Some(1), "{file}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&format!("{file} is corrupt")), "{stderr}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }
}
