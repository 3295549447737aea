//! What the tests of the `clawgate` binary share: the binary, ports for the gateways they start,
//! and waiting for a condition.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_clawgate"))
}

/// A port for a gateway a test starts. Ports the kernel hands out for port 0 can be handed to
/// another test's gateway before this one binds it, and the test would then talk to the wrong
/// gateway. So each test of this process takes its own port below the kernel's ephemeral range
/// (from 32768 on Linux), from a counter starting in `first`'s block of 4,000 ports, skipping
/// ports something else holds. Test binaries run one after another, but each needs its own block.
pub fn free_port(first: u16) -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = first + (std::process::id() % 100) as u16 * 20;
    loop {
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed) % 2_000;
        // The gateway listens on both loopbacks; a host without IPv6 only has the first.
        let v6_free = match TcpListener::bind(("::1", port)) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::AddrNotAvailable,
        };
        if v6_free && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Waits until `f` holds, failing the test with `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A process a test started, killed when the test lets go of it.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `clawgate gateway run` on the state directory `state` (its configuration file names `port`),
/// with `env` besides; its log is appended to `<state>/gateway.log`. Returns once it listens.
pub fn start_gateway(state: &std::path::Path, port: u16, env: &[(&str, &std::path::Path)]) -> Killed {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(state.join("gateway.log"))
        .unwrap();
    let mut cmd = bin();
    cmd.args(["gateway", "run"])
        .env("OPENCLAW_STATE_DIR", state)
        .env_remove("OPENCLAW_GATEWAY_TOKEN")
        .stdout(std::process::Stdio::null())
        .stderr(log);
    for (name, value) in env {
        cmd.env(name, value);
    }
    let child = Killed(cmd.spawn().unwrap());
    wait_until("the gateway to listen", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    child
}

/// An echo worker for agent `main` on the gateway at `port`, `delay_ms` between its words.
pub fn start_echo_worker(port: u16, token: &str, delay_ms: u64) -> Killed {
    let child = bin()
        .args(["agent", "--backend", "echo", "--delay-ms", &delay_ms.to_string()])
        .args(["--url", &format!("ws://127.0.0.1:{port}"), "--token", token])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    Killed(child)
}
