//! The load tool: measures any gateway that speaks the OpenClaw protocol, over loopback only.
//!
//! ```text
//! clawgate-bench --url ws://127.0.0.1:PORT --token T [--pid PID] [--seconds S] [--json] [SCENARIO...]
//! clawgate-bench --spawn-hello --token T --port PORT -- COMMAND ARGS...
//! clawgate-bench --serve-model PORT
//! ```
//!
//! `--serve-model` is a fast scripted stand-in of an OpenAI-compatible model server (streamed
//! chat completions) for measuring agents: a message with `read` gets one `read` tool call of
//! `bench-note.txt`, tool results get `done`, anything else gets `ok`. `--message TEXT` sets what
//! the agent scenarios send.
//!
//! Scenarios (all by default): `handshake-seq`, `handshake-10`, `device-seq`, `device-10` (one
//! device identity per client thread: the first handshake pairs it, the rest reconnect it),
//! `health-1x1`, `health-1x32`, `health-10`, `health-100`, `rss` (needs `--pid`; idle RSS at 0,
//! 100, 1000 and 10000 authenticated connections, as far as the time budget allows),
//! `agent-1x1` (message round trips operator -> agent worker -> operator, one at a time) and
//! `agent-1x32` (32 messages in flight through one agent); the agent scenarios need a worker
//! serving `main`, e.g. `clawgate agent --backend echo`, and are run only when named. Every loop
//! is bounded by a count and by `--seconds`; only the given loopback address is contacted.

use clawgate_benches::{cpu_seconds, rss_kib};
use clawgate_proto::device::DeviceIdentity;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Opts {
    addr: SocketAddr,
    token: String,
    pid: Option<u32>,
    budget: Duration,
    message: String,
}

/// Serves the scripted model on `port` until the process is stopped.
fn serve_model(port: u16) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        std::thread::spawn(move || {
            let _ = stream.set_nodelay(true);
            let mut reader = BufReader::new(match stream.try_clone() {
                Ok(s) => s,
                Err(_) => return,
            });
            let mut writer = stream;
            loop {
                let mut length = 0usize;
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let messages = body["messages"].as_array().cloned().unwrap_or_default();
                let last = messages.last().cloned().unwrap_or(Value::Null);
                let chunk = |delta: Value, finish: Value| {
                    format!(
                        "data: {}\n\n",
                        json!({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
                    )
                };
                let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
                if last["role"] == "tool" {
                    events.push(chunk(json!({"content": "done"}), Value::Null));
                    events.push(chunk(json!({}), json!("stop")));
                } else if last["content"].as_str().is_some_and(|c| c.contains("read")) {
                    events.push(chunk(
                        json!({"tool_calls": [{"index": 0, "id": "call_bench", "type": "function",
                               "function": {"name": "read", "arguments": "{\"path\":\"bench-note.txt\"}"}}]}),
                        Value::Null,
                    ));
                    events.push(chunk(json!({}), json!("tool_calls")));
                } else {
                    events.push(chunk(json!({"content": "ok"}), Value::Null));
                    events.push(chunk(json!({}), json!("stop")));
                }
                events.push("data: [DONE]\n\n".to_owned());
                let payload: String = events.concat();
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {}\r\n\r\n",
                    payload.len()
                );
                if writer
                    .write_all(head.as_bytes())
                    .and_then(|()| writer.write_all(payload.as_bytes()))
                    .is_err()
                {
                    return;
                }
            }
        });
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn latency_summary(mut samples: Vec<Duration>) -> Value {
    samples.sort_unstable();
    json!({
        "p50_ms": percentile(&samples, 0.50),
        "p99_ms": percentile(&samples, 0.99),
        "max_ms": samples.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        "samples": samples.len(),
    })
}

fn seed() -> u64 {
    let mut b = [0u8; 8];
    use clawgate_engine::Entropy;
    clawgate_io::OsEntropy.fill(&mut b);
    u64::from_le_bytes(b)
}

/// Handshakes per second with `concurrency` threads, token or device-signed.
fn handshakes(o: &Opts, concurrency: usize, device: bool) -> Value {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + o.budget;
    let started = Instant::now();
    let run_seed = seed();
    let threads: Vec<_> = (0..concurrency)
        .map(|t| {
            let (done, failed) = (done.clone(), failed.clone());
            let (addr, token) = (o.addr, o.token.clone());
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                let mut n = 0u64;
                while Instant::now() < deadline && n < 1_000_000 {
                    n += 1;
                    // One device per thread: its first handshake pairs it (silently, on loopback),
                    // the following ones are reconnects of a paired device, the steady state.
                    let identity = device.then(|| {
                        let mut s = [0u8; 32];
                        s[..8].copy_from_slice(&run_seed.to_le_bytes());
                        s[8] = t as u8;
                        DeviceIdentity::from_seed(&s)
                    });
                    let begin = Instant::now();
                    match clawgate_benches::connect(addr, &token, &["operator.read"], identity, seed()) {
                        Ok(c) => {
                            latencies.push(begin.elapsed());
                            done.fetch_add(1, Ordering::Relaxed);
                            drop(c);
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                latencies
            })
        })
        .collect();
    let all = join_latencies(threads);
    let secs = started.elapsed().as_secs_f64();
    json!({
        "per_second": done.load(Ordering::Relaxed) as f64 / secs,
        "completed": done.load(Ordering::Relaxed),
        "failed": failed.load(Ordering::Relaxed),
        "latency": latency_summary(all),
    })
}

/// Waits for the load threads and gathers their latencies (a thread that panicked adds none).
fn join_latencies(threads: Vec<std::thread::JoinHandle<Vec<Duration>>>) -> Vec<Duration> {
    threads.into_iter().flat_map(|t| t.join().unwrap_or_default()).collect()
}

/// `health` requests per second over `conns` connections, `window` in flight on each.
fn health(o: &Opts, conns: usize, window: usize) -> Value {
    let mut clients = Vec::new();
    for _ in 0..conns {
        match clawgate_benches::connect(o.addr, &o.token, &["operator.read"], None, seed()) {
            Ok(c) => clients.push(c),
            Err(e) => return json!({"error": e.to_string()}),
        }
    }
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + o.budget;
    let started = Instant::now();
    let threads: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                let mut n = 0u64;
                while Instant::now() < deadline && n < 10_000_000 {
                    let batch = if window == 1 { 1 } else { window * 8 };
                    let begin = Instant::now();
                    if c.pipeline("health", batch, window).is_err() {
                        break;
                    }
                    if window == 1 {
                        latencies.push(begin.elapsed());
                    }
                    n += batch as u64;
                    done.fetch_add(batch as u64, Ordering::Relaxed);
                }
                latencies
            })
        })
        .collect();
    let all = join_latencies(threads);
    let secs = started.elapsed().as_secs_f64();
    let mut v =
        json!({"per_second": done.load(Ordering::Relaxed) as f64 / secs, "completed": done.load(Ordering::Relaxed)});
    if window == 1 {
        v["latency"] = latency_summary(all);
    }
    v
}

/// `agent` messages through one agent: `window` in flight on one connection; each counts when
/// its final answer (the worker's whole reply) is back.
fn agent_messages(o: &Opts, window: usize) -> Value {
    let mut c = match clawgate_benches::connect(o.addr, &o.token, &["operator.write"], None, seed()) {
        Ok(c) => c,
        Err(e) => return json!({"error": e.to_string()}),
    };
    let run = seed();
    let deadline = Instant::now() + o.budget;
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut done = 0usize;
    while Instant::now() < deadline && done < 1_000_000 {
        let batch = if window == 1 { 1 } else { window * 4 };
        let begin = Instant::now();
        let first = done;
        let params = |i: usize| {
            json!({
                "message": o.message,
                "agentId": "main",
                "sessionKey": format!("bench-{}", (first + i) % 8),
                "idempotencyKey": format!("bench-{run:x}-{}", first + i),
            })
        };
        if let Err(e) = c.pipeline_with("agent", batch, window, params, true) {
            return json!({"error": e.to_string(), "completed": done});
        }
        if window == 1 {
            latencies.push(begin.elapsed());
        }
        done += batch;
    }
    let secs = started.elapsed().as_secs_f64();
    let mut v = json!({"per_second": done as f64 / secs, "completed": done});
    if window == 1 {
        v["latency"] = latency_summary(latencies);
    }
    v
}

/// `tools.invoke` of `read` (a small file of the workspace, `bench-note.txt`) one at a time: the
/// round trip a tool call of a run makes through the gateway (policy, the tool thread, the audit
/// line, the answer).
fn tool_calls(o: &Opts) -> Value {
    let mut c = match clawgate_benches::connect(o.addr, &o.token, &["operator.write"], None, seed()) {
        Ok(c) => c,
        Err(e) => return json!({"error": e.to_string()}),
    };
    let deadline = Instant::now() + o.budget;
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut done = 0usize;
    let params = |_: usize| json!({"name": "read", "args": {"path": "bench-note.txt"}, "sessionKey": "main"});
    while Instant::now() < deadline && done < 1_000_000 {
        let begin = Instant::now();
        if let Err(e) = c.pipeline_with("tools.invoke", 1, 1, params, false) {
            return json!({"error": e.to_string(), "completed": done});
        }
        latencies.push(begin.elapsed());
        done += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    json!({"per_second": done as f64 / secs, "completed": done, "latency": latency_summary(latencies)})
}

/// RSS of the gateway with 0, 100, 1000 and 10000 idle authenticated connections.
fn rss(o: &Opts) -> Value {
    let Some(pid) = o.pid else {
        return json!({"error": "--pid is required"});
    };
    let deadline = Instant::now() + o.budget * 10;
    let mut held = Vec::new();
    let mut points = serde_json::Map::new();
    let read = |n: usize, points: &mut serde_json::Map<String, Value>| {
        std::thread::sleep(Duration::from_millis(500));
        if let Ok(kib) = rss_kib(pid) {
            points.insert(n.to_string(), json!(kib));
        }
    };
    read(0, &mut points);
    for target in [100usize, 1000, 10_000] {
        while held.len() < target && Instant::now() < deadline {
            match clawgate_benches::connect(o.addr, &o.token, &["operator.read"], None, seed()) {
                Ok(c) => held.push(c),
                Err(e) => {
                    points.insert("error".into(), json!(format!("after {} connections: {e}", held.len())));
                    return Value::Object(points);
                }
            }
        }
        if held.len() < target {
            points.insert("stopped_at".into(), json!(held.len()));
            read(held.len(), &mut points);
            break;
        }
        read(target, &mut points);
    }
    let base = points.get("0").and_then(Value::as_u64).unwrap_or(0);
    if let Some(top) = points.get("1000").and_then(Value::as_u64) {
        points.insert(
            "per_connection_kib_at_1000".into(),
            json!((top.saturating_sub(base)) as f64 / 1000.0),
        );
    }
    Value::Object(points)
}

/// Waits (within the time budget) until a connect succeeds.
fn wait_hello(o: &Opts) -> Value {
    let started = Instant::now();
    while started.elapsed() < o.budget {
        if clawgate_benches::connect(o.addr, &o.token, &["operator.read"], None, seed()).is_ok() {
            return json!({"waited_ms": started.elapsed().as_secs_f64() * 1000.0});
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    json!({"error": "no hello-ok within the time budget"})
}

/// Time from spawning `command` to its first successful `hello-ok` on `addr`.
fn spawn_hello(addr: SocketAddr, token: &str, command: &[String]) -> Value {
    let started = Instant::now();
    let Some((program, args)) = command.split_first() else {
        return json!({"error": "no command"});
    };
    let mut child = match Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return json!({"error": e.to_string()}),
    };
    let result = loop {
        if clawgate_benches::connect(addr, token, &["operator.read"], None, seed()).is_ok() {
            break json!({"spawn_to_hello_ms": started.elapsed().as_secs_f64() * 1000.0});
        }
        if started.elapsed() > Duration::from_secs(120) {
            break json!({"error": "no hello-ok within 120 s"});
        }
        std::thread::sleep(Duration::from_micros(500));
    };
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    result
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (args, command) = match args.iter().position(|a| a == "--") {
        Some(i) => (args[..i].to_vec(), args[i + 1..].to_vec()),
        None => (args, Vec::new()),
    };
    let value = |name: &str| args.windows(2).find(|w| w[0] == name).map(|w| w[1].clone());
    let token = value("--token").unwrap_or_default();
    if let Some(port) = value("--serve-model").and_then(|p| p.parse().ok()) {
        if let Err(e) = serve_model(port) {
            eprintln!("cannot serve the scripted model on port {port}: {e}");
            std::process::exit(1);
        }
        return;
    }
    if args.iter().any(|a| a == "--spawn-hello") {
        let port = value("--port").unwrap_or_default();
        let addr: SocketAddr = match format!("127.0.0.1:{port}").parse() {
            Ok(a) => a,
            Err(_) => {
                eprintln!("--spawn-hello needs --port");
                std::process::exit(2);
            }
        };
        println!("{}", spawn_hello(addr, &token, &command));
        return;
    }
    let url = value("--url").unwrap_or_else(|| "ws://127.0.0.1:18789".into());
    let addr: SocketAddr = match url.trim_start_matches("ws://").trim_end_matches('/').parse() {
        Ok(a) => a,
        Err(_) => {
            eprintln!("--url must be ws://IP:PORT on this machine");
            std::process::exit(2);
        }
    };
    if !addr.ip().is_loopback() {
        eprintln!("clawgate-bench only targets loopback addresses");
        std::process::exit(2);
    }
    let o = Opts {
        addr,
        token,
        pid: value("--pid").and_then(|p| p.parse().ok()),
        budget: Duration::from_secs_f64(value("--seconds").and_then(|s| s.parse().ok()).unwrap_or(3.0)),
        message: value("--message").unwrap_or_else(|| "the quick brown fox jumps over the lazy dog".into()),
    };
    let skip = ["--url", "--token", "--pid", "--seconds", "--message"];
    let mut scenarios: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        if skip.contains(&args[i].as_str()) {
            i += 2;
            continue;
        }
        if !args[i].starts_with("--") {
            scenarios.push(&args[i]);
        }
        i += 1;
    }
    if scenarios.is_empty() {
        // Memory first, while the gateway is fresh; then the load scenarios.
        if o.pid.is_some() {
            scenarios.push("rss");
        }
        scenarios.extend([
            "handshake-seq",
            "handshake-10",
            "device-seq",
            "device-10",
            "health-1x1",
            "health-1x32",
            "health-10",
            "health-100",
        ]);
    }
    let mut report = serde_json::Map::new();
    for s in scenarios {
        let cpu_before = o.pid.and_then(|p| cpu_seconds(p).ok());
        let wall = Instant::now();
        let mut r = match s {
            "handshake-seq" => handshakes(&o, 1, false),
            "handshake-10" => handshakes(&o, 10, false),
            "device-seq" => handshakes(&o, 1, true),
            "device-10" => handshakes(&o, 10, true),
            "health-1x1" => health(&o, 1, 1),
            "health-1x32" => health(&o, 1, 32),
            "health-10" => health(&o, 10, 1),
            "health-100" => health(&o, 100, 1),
            "rss" => rss(&o),
            "agent-1x1" => agent_messages(&o, 1),
            "agent-1x32" => agent_messages(&o, 32),
            "tool-1x1" => tool_calls(&o),
            "wait-hello" => wait_hello(&o),
            other => json!({"error": format!("unknown scenario {other}")}),
        };
        // With the load client on the same cores, the gateway's own CPU time tells its capacity:
        // work done per second of gateway CPU.
        if let (Some(before), Some(pid)) = (cpu_before, o.pid) {
            if let (Ok(after), Some(done)) = (cpu_seconds(pid), r.get("completed").and_then(Value::as_u64)) {
                let used = after - before;
                r["gateway_cpu_share"] = json!(used / wall.elapsed().as_secs_f64());
                if used > 0.0 {
                    r["per_gateway_cpu_second"] = json!(done as f64 / used);
                }
            }
        }
        eprintln!("{s}: {r}");
        report.insert(s.to_owned(), r);
    }
    println!("{}", Value::Object(report));
}
