//! Starts a gateway binary and reports: time from spawn to the first successful `hello-ok`, idle
//! RSS, and RSS with N idle authenticated connections (from `/proc/PID/status`).
//!
//!   cargo run --release -p clawgate-benches --bin gateway-footprint -- \[BINARY\] \[N\]

use clawgate_benches::rss_kib;
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let binary = args.get(1).map_or("target/release/clawgate", String::as_str);
    let conns: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(100);
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().map_err(std::io::Error::other)?;
    let token = "footprint-token";

    let started = Instant::now();
    let mut child = Command::new(binary)
        .args(["gateway", "run", "--port", &port.to_string(), "--token", token])
        .env(
            "OPENCLAW_STATE_DIR",
            std::env::temp_dir().join(format!("clawgate-footprint-{port}")),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let first_hello = loop {
        if let Ok(_c) = clawgate_benches::connect(addr, token, &["operator.read"], None, 1) {
            break started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            return Err(std::io::Error::other("no hello-ok within 60 s"));
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    std::thread::sleep(Duration::from_millis(300));
    let idle = rss_kib(child.id())?;
    let mut held = Vec::with_capacity(conns);
    for i in 0..conns {
        held.push(clawgate_benches::connect(
            addr,
            token,
            &["operator.read"],
            None,
            i as u64 + 2,
        )?);
    }
    std::thread::sleep(Duration::from_millis(500));
    let loaded = rss_kib(child.id())?;
    println!("spawn -> first hello-ok: {:.2} ms", first_hello.as_secs_f64() * 1000.0);
    println!("idle RSS: {idle} KiB");
    println!("RSS with {conns} idle authenticated connections: {loaded} KiB");
    if conns > 0 {
        println!(
            "per connection: {:.2} KiB",
            (loaded.saturating_sub(idle)) as f64 / conns as f64
        );
    }
    drop(held);
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    Ok(())
}
