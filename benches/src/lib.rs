//! Benchmarks and measurement tools for Clawgate. The client here is built on `clawgate-proto`
//! alone, so it measures any gateway that speaks the protocol, the real OpenClaw included.
#![forbid(unsafe_code)]

use clawgate_proto::device::DeviceIdentity;
use std::io;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// A blocking, authenticated gateway connection (the project's one blocking client).
pub type BlockingClient = clawgate_client::Session;

/// Connects as the CLI does (`cli`/`cli`, the given scopes), with an optional device proof and
/// the masks drawn from `seed`, so that load runs are reproducible.
pub fn connect(
    addr: SocketAddr,
    token: &str,
    scopes: &[&str],
    device: Option<DeviceIdentity>,
    seed: u64,
) -> io::Result<BlockingClient> {
    let mut target = clawgate_client::Target::operator(format!("ws://{addr}"), token, scopes);
    target.device = device;
    target.seed = Some(seed);
    target.client_version = "clawgate-bench".to_owned();
    Ok(clawgate_client::Session::connect(&target)?)
}

/// `VmRSS` of a process in KiB, from `/proc/<pid>/status`.
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| other("no VmRSS"))
}

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32) -> io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesized command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or_else(|| other("bad stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| other("bad stat"))
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(total as f64 / clock_ticks_per_second() as f64)
}

fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}
