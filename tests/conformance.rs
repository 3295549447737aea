//! The conformance suite: the gateway over real loopback sockets, run once per runtime (smol and
//! mio) from this one source. Clients are made of `clawgate-proto` pieces and blocking std sockets.

use clawgate_engine::testkit::{cli_params, with_device};
use clawgate_engine::{Gateway, GatewayConfig};
use clawgate_io::{bind, now_ms, OsEntropy};
use clawgate_proto::auth::{AuthMode, SharedSecretConfig};
use clawgate_proto::close::CloseFrame;
use clawgate_proto::connect::ConnectChallenge;
use clawgate_proto::device::DeviceIdentity;
use clawgate_proto::frame::{Frame, RequestFrame};
use clawgate_proto::ws::{encode_frame, ClientUpgrade, Message, OpCode, SeededMasks, WsCodec};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const TOKEN: &str = "sock-token";

#[derive(Clone, Copy, Debug)]
enum Runtime {
    Smol,
    Mio,
}

struct Server {
    addr: SocketAddr,
    stop: Box<dyn Fn() + Send>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(runtime: Runtime, config: GatewayConfig) -> Server {
        Server::start_in(runtime, config, None)
    }

    /// A server keeping its state (and the default agent workspace) under `state_dir`.
    fn start_in(runtime: Runtime, config: GatewayConfig, state_dir: Option<std::path::PathBuf>) -> Server {
        let mut gateway = Gateway::new(config, Box::new(OsEntropy), now_ms());
        if let Some(dir) = &state_dir {
            // What the binary restores at start: transcripts and the runs waiting for a worker.
            let queue = clawgate_io::read_state_file(dir, clawgate_engine::agents::QUEUE_FILE).unwrap();
            gateway = gateway
                .with_transcripts(clawgate_io::load_transcripts(dir).unwrap())
                .with_agent_queue(queue.as_deref().unwrap_or("{}"))
                .unwrap();
        }
        match runtime {
            Runtime::Smol => {
                let listeners = bind(&["127.0.0.1:0".parse().unwrap()]).unwrap();
                let addr = listeners[0].local_addr().unwrap();
                let (stop, rx) = clawgate_runtime_smol::stop_channel();
                let options = clawgate_runtime_smol::Options {
                    state_dir,
                    ..Default::default()
                };
                let thread = std::thread::spawn(move || {
                    clawgate_runtime_smol::run(gateway, listeners, rx, options).unwrap();
                });
                Server {
                    addr,
                    stop: Box::new(move || stop.stop()),
                    thread: Some(thread),
                }
            }
            Runtime::Mio => {
                let listeners = bind(&["127.0.0.1:0".parse().unwrap()]).unwrap();
                let addr = listeners[0].local_addr().unwrap();
                let runtime = clawgate_runtime_mio::MioRuntime::new(listeners)
                    .unwrap()
                    .with_state_dir(state_dir);
                let stop = runtime.stop_handle();
                let thread = std::thread::spawn(move || runtime.run(gateway));
                Server {
                    addr,
                    stop: Box::new(move || stop.stop()),
                    thread: Some(std::thread::spawn(move || {
                        thread.join().unwrap().unwrap();
                    })),
                }
            }
        }
    }

    fn request_stop(&self) {
        (self.stop)();
    }

    fn stop(&mut self) {
        (self.stop)();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Client {
    stream: TcpStream,
    ws: WsCodec,
    buf: Vec<u8>,
}

impl Client {
    fn open(addr: SocketAddr) -> Client {
        Client::open_with(addr, &[])
    }

    fn open_with(addr: SocketAddr, headers: &[(&str, &str)]) -> Client {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let up = ClientUpgrade::new([9; 16]);
        stream.write_all(&up.request(&addr.to_string(), "/", headers)).unwrap();
        let mut head = Vec::new();
        let mut buf = vec![0; 65536];
        let n = loop {
            let r = stream.read(&mut buf).unwrap();
            assert!(r > 0, "closed during upgrade");
            head.extend_from_slice(&buf[..r]);
            if let Some(n) = up.parse_response(&head).unwrap() {
                break n;
            }
        };
        let mut ws = WsCodec::client(1 << 26, Box::new(SeededMasks::new([1; 8])));
        ws.feed(&head[n..]);
        Client { stream, ws, buf }
    }

    fn send(&mut self, text: &str) {
        let mut out = Vec::new();
        self.ws.encode_text(text, &mut out);
        self.stream.write_all(&out).unwrap();
    }

    /// The next message, or `None` when the connection ended.
    fn next(&mut self) -> Option<Message> {
        loop {
            if let Some(m) = self.ws.poll_message().unwrap() {
                return Some(m);
            }
            match self.stream.read(&mut self.buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.ws.feed(&self.buf[..n]),
            }
        }
    }

    fn next_frame(&mut self) -> Frame {
        loop {
            match self.next() {
                Some(Message::Text(t)) => return Frame::decode(&t).unwrap(),
                Some(Message::Close(f)) => panic!("closed: {f:?}"),
                Some(_) => {}
                None => panic!("connection ended"),
            }
        }
    }

    fn close_frame(&mut self) -> Option<CloseFrame> {
        loop {
            match self.next() {
                Some(Message::Close(f)) => return f,
                Some(_) => {}
                None => return None,
            }
        }
    }

    fn connect(&mut self, token: &str) -> Frame {
        self.connect_with(|_, _| cli_params(&["operator.read"], Some(token)))
    }

    /// Reads the challenge, sends the params `make(nonce, ts)` returns, returns the answer.
    fn connect_with(&mut self, make: impl FnOnce(&str, u64) -> Value) -> Frame {
        let challenge = match self.next_frame() {
            Frame::Event(e) if e.event == "connect.challenge" => e.parse_payload::<ConnectChallenge>().unwrap(),
            other => panic!("expected the challenge, got {other:?}"),
        };
        let params = make(&challenge.nonce, challenge.ts);
        self.send(&RequestFrame::new("c", "connect", &params).encode());
        self.next_frame()
    }
}

fn error_details(f: Frame) -> (String, Value) {
    match f {
        Frame::Response(r) if !r.ok => {
            let e = r.error.unwrap();
            (e.message, e.details.unwrap_or(Value::Null))
        }
        other => panic!("expected an error response, got {other:?}"),
    }
}

impl Client {
    fn call(&mut self, method: &str) -> Frame {
        self.send(&RequestFrame::new("m", method, &json!({})).encode());
        self.next_frame()
    }
}

fn ok_payload(f: Frame) -> Value {
    match f {
        Frame::Response(r) if r.ok => serde_json::from_str(r.payload.unwrap().get()).unwrap(),
        other => panic!("expected ok response, got {other:?}"),
    }
}

fn a_token_client_connects_and_calls_health(rt: Runtime) {
    let server = Server::start(rt, GatewayConfig::with_token(TOKEN));
    let mut c = Client::open(server.addr);
    assert_eq!(ok_payload(c.connect(TOKEN))["type"], "hello-ok");
    c.send(&RequestFrame::new("h", "health", &json!({})).encode());
    assert_eq!(ok_payload(c.next_frame())["ok"], true);
}

fn a_bad_token_gets_an_error_then_close_1008(rt: Runtime) {
    let server = Server::start(rt, GatewayConfig::with_token(TOKEN));
    let mut c = Client::open(server.addr);
    match c.connect("wrong") {
        Frame::Response(r) => assert_eq!(r.error.unwrap().details.unwrap()["code"], "AUTH_TOKEN_MISMATCH"),
        other => panic!("{other:?}"),
    }
    assert_eq!(c.close_frame().map(|f| f.code), Some(1008));
    assert_eq!(c.next(), None, "the socket is closed after the close frame");
}

fn the_handshake_timeout_closes_the_socket(rt: Runtime) {
    let mut config = GatewayConfig::with_token(TOKEN);
    config.handshake_timeout_ms = 200;
    let server = Server::start(rt, config);
    let mut c = Client::open(server.addr);
    let started = Instant::now();
    assert_eq!(c.close_frame(), Some(CloseFrame::new(1000, "handshake timeout")));
    assert!(started.elapsed() < Duration::from_secs(5));
}

fn an_oversized_preauth_frame_closes_with_1009(rt: Runtime) {
    let server = Server::start(rt, GatewayConfig::with_token(TOKEN));
    let mut c = Client::open(server.addr);
    let mut frame = Vec::new();
    encode_frame(OpCode::Text, &vec![b'x'; 70_000], Some([1, 2, 3, 4]), &mut frame);
    // Only the header is needed for the gateway to refuse the frame.
    c.stream.write_all(&frame[..14]).unwrap();
    let _challenge = c.next_frame();
    assert_eq!(
        c.close_frame(),
        Some(CloseFrame::new(1009, "preauth payload too large"))
    );
}

fn http_probes_answer_on_the_same_port(rt: Runtime) {
    let server = Server::start(rt, GatewayConfig::with_token(TOKEN));
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(body.ends_with(r#"{"ok":true,"status":"live"}"#));
}

fn stopping_sends_shutdown_then_close_1012(rt: Runtime) {
    let mut server = Server::start(rt, GatewayConfig::with_token(TOKEN));
    let mut c = Client::open(server.addr);
    ok_payload(c.connect(TOKEN));
    server.request_stop();
    match c.next_frame() {
        Frame::Event(e) => {
            assert_eq!(e.event, "shutdown");
            assert_eq!(e.parse_payload::<Value>().unwrap()["reason"], "gateway stopping");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.close_frame(), Some(CloseFrame::new(1012, "service restart")));
    server.stop();
}

fn many_clients_are_served_concurrently(rt: Runtime) {
    let server = Server::start(rt, GatewayConfig::with_token(TOKEN));
    let mut clients: Vec<Client> = (0..50)
        .map(|_| {
            let mut c = Client::open(server.addr);
            ok_payload(c.connect(TOKEN));
            c
        })
        .collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(&RequestFrame::new(format!("r{i}"), "health", &json!({})).encode());
    }
    for c in &mut clients {
        assert_eq!(ok_payload(c.next_frame())["ok"], true);
    }
}

fn the_33rd_unauthenticated_socket_from_one_address_is_refused(rt: Runtime) {
    let server = Server::start(rt, GatewayConfig::with_token(TOKEN));
    let _held: Vec<Client> = (0..32).map(|_| Client::open(server.addr)).collect();
    let mut s = TcpStream::connect(server.addr).unwrap();
    let up = ClientUpgrade::new([2; 16]);
    s.write_all(&up.request("x", "/", &[])).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.ends_with("Too many unauthenticated sockets"));
}

fn auth_none_admits_a_local_client_without_credentials(rt: Runtime) {
    let server = Server::start(
        rt,
        GatewayConfig::new(SharedSecretConfig {
            mode: AuthMode::None,
            token: None,
            password: None,
        }),
    );
    let mut c = Client::open(server.addr);
    let hello = ok_payload(c.connect_with(|_, _| cli_params(&["operator.read"], None)));
    assert_eq!(hello["auth"]["method"], "none");
}

fn a_good_device_proof_gets_a_device_token(rt: Runtime) {
    let server = Server::start(rt, GatewayConfig::with_token(TOKEN));
    let id = DeviceIdentity::from_seed(&[3; 32]);
    let mut c = Client::open(server.addr);
    let hello = ok_payload(
        c.connect_with(|nonce, ts| with_device(&cli_params(&["operator.read"], Some(TOKEN)), &id, nonce, ts)),
    );
    assert_eq!(hello["auth"]["deviceToken"].as_str().unwrap().len(), 43);
}

fn bad_stale_and_foreign_device_proofs_are_refused_with_1008(rt: Runtime) {
    let server = Server::start(rt, GatewayConfig::with_token(TOKEN));
    let id = DeviceIdentity::from_seed(&[3; 32]);
    type MakeParams<'a> = Box<dyn Fn(&str, u64) -> Value + 'a>;
    let cases: [(&str, MakeParams); 3] = [
        (
            "DEVICE_AUTH_SIGNATURE_INVALID",
            Box::new(|n, ts| {
                let mut p = with_device(&cli_params(&["operator.read"], Some(TOKEN)), &id, n, ts);
                p["scopes"] = json!(["operator.admin"]);
                p
            }),
        ),
        (
            "DEVICE_AUTH_SIGNATURE_EXPIRED",
            Box::new(|n, ts| with_device(&cli_params(&[], Some(TOKEN)), &id, n, ts - 130_000)),
        ),
        (
            "DEVICE_AUTH_NONCE_MISMATCH",
            Box::new(|_, ts| with_device(&cli_params(&[], Some(TOKEN)), &id, "someone-elses-nonce", ts)),
        ),
    ];
    for (expected, make) in cases {
        let mut c = Client::open(server.addr);
        let (_, details) = error_details(c.connect_with(|n, ts| make(n, ts)));
        assert_eq!(details["code"], expected);
        assert_eq!(c.close_frame().map(|f| f.code), Some(1008), "{expected}");
    }
}

fn protocol_mismatch_closes_with_1002(rt: Runtime) {
    let server = Server::start(rt, GatewayConfig::with_token(TOKEN));
    let mut c = Client::open(server.addr);
    let (message, details) = error_details(c.connect_with(|_, _| {
        let mut p = cli_params(&[], Some(TOKEN));
        p["minProtocol"] = 1.into();
        p["maxProtocol"] = 2.into();
        p
    }));
    assert_eq!(
        (message.as_str(), details["code"].as_str()),
        ("protocol mismatch", Some("PROTOCOL_MISMATCH"))
    );
    assert_eq!(c.close_frame(), Some(CloseFrame::new(1002, "protocol mismatch")));
}

fn a_first_frame_other_than_connect_is_refused(rt: Runtime) {
    let server = Server::start(rt, GatewayConfig::with_token(TOKEN));
    let mut c = Client::open(server.addr);
    let _challenge = c.next_frame();
    let (message, _) = error_details(c.call("health"));
    assert_eq!(message, "invalid handshake: first request must be connect");
    assert_eq!(c.close_frame().map(|f| f.code), Some(1008));
}

fn scope_errors_and_unknown_methods(rt: Runtime) {
    let server = Server::start(rt, GatewayConfig::with_token(TOKEN));
    let mut reader = Client::open(server.addr);
    ok_payload(reader.connect(TOKEN));
    let (message, details) = error_details(reader.call("chat.send"));
    assert_eq!(message, "missing scope: operator.write");
    assert_eq!(details["code"], "MISSING_SCOPE");
    let (message, _) = error_details(reader.call("no.such.method"));
    assert_eq!(message, "missing scope: operator.admin");
    let mut admin = Client::open(server.addr);
    ok_payload(admin.connect_with(|_, _| cli_params(&["operator.admin"], Some(TOKEN))));
    let (message, _) = error_details(admin.call("no.such.method"));
    assert_eq!(message, "unknown method: no.such.method");
}

fn a_slow_consumer_is_closed_without_slowing_the_others(rt: Runtime) {
    let mut config = GatewayConfig::with_token(TOKEN);
    config.max_buffered_bytes = 256 * 1024;
    config.health_refresh_interval_ms = 100;
    let server = Server::start(rt, config);
    let mut fast = Client::open(server.addr);
    ok_payload(fast.connect(TOKEN));
    let mut slow = Client::open(server.addr);
    ok_payload(slow.connect(TOKEN));

    // The slow client asks for a lot and reads nothing: its answers pile up in the gateway.
    let mut burst = Vec::new();
    for i in 0..30_000 {
        slow.ws.encode_text(
            &RequestFrame::new(format!("s{i}"), "status", &json!({})).encode(),
            &mut burst,
        );
    }
    slow.stream.write_all(&burst).unwrap();

    // Meanwhile the fast client keeps getting health snapshots on time.
    let started = Instant::now();
    let mut healths = 0;
    let mut last = Instant::now();
    let mut longest_gap = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(2) {
        if let Frame::Event(e) = fast.next_frame() {
            if e.event == "health" {
                healths += 1;
                longest_gap = longest_gap.max(last.elapsed());
                last = Instant::now();
            }
        }
    }
    // Health is due every 100 ms. The bounds leave room for a loaded test machine (other tests'
    // gateways and worker processes share its cores) and still catch a loop stuck on the slow one.
    assert!(healths >= 8, "only {healths} health events in 2 s");
    assert!(
        longest_gap < Duration::from_millis(1500),
        "health stalled for {longest_gap:?}"
    );

    // The gateway says why it cut the slow one, and the slow socket ends.
    fast.send(&RequestFrame::new("logs", "logs.tail", &json!({"limit": 1000})).encode());
    let logs = loop {
        if let Frame::Response(r) = fast.next_frame() {
            break r.payload.unwrap().get().to_owned();
        }
    };
    assert!(logs.contains("closed slow consumer"), "{logs}");
    slow.stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut sink = vec![0u8; 1 << 20];
    let ended = Instant::now();
    loop {
        match slow.stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => assert!(
                ended.elapsed() < Duration::from_secs(20),
                "the slow socket was never closed"
            ),
        }
    }
}

fn metrics_report_the_event_loop_and_traffic(rt: Runtime) {
    let server = Server::start(rt, GatewayConfig::with_token(TOKEN));
    let mut c = Client::open(server.addr);
    ok_payload(c.connect(TOKEN));
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.contains("clawgate_connections{state=\"open\"} 1"), "{text}");
    assert!(text.contains("clawgate_handshakes_total{outcome=\"ok\"} 1"));
    let turns = text
        .lines()
        .find_map(|l| l.strip_prefix("clawgate_event_loop_turn_seconds_count "))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap();
    assert!(turns > 0, "the runtime reports no loop turns");
}

fn a_cross_origin_upgrade_gets_403(rt: Runtime) {
    let server = Server::start(rt, GatewayConfig::with_token(TOKEN));
    let mut s = TcpStream::connect(server.addr).unwrap();
    let up = ClientUpgrade::new([4; 16]);
    s.write_all(&up.request("x", "/", &[("Origin", "https://evil.example")]))
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
}

fn eleven_bad_tokens_are_rate_limited_with_retry_after(rt: Runtime) {
    let server = Server::start(rt, GatewayConfig::with_token(TOKEN));
    // Forwarding headers make a loopback request not "clean", so it is counted.
    let headers = [("X-Forwarded-For", "198.51.100.4")];
    for _ in 0..10 {
        let mut c = Client::open_with(server.addr, &headers);
        let (_, details) = error_details(c.connect("wrong"));
        assert_eq!(details["code"], "AUTH_TOKEN_MISMATCH");
    }
    let mut c = Client::open_with(server.addr, &headers);
    match c.connect(TOKEN) {
        Frame::Response(r) => {
            let e = r.error.unwrap();
            assert_eq!(e.details.unwrap()["code"], "AUTH_RATE_LIMITED");
            assert!(e.retry_after_ms.is_some_and(|ms| ms > 290_000));
        }
        other => panic!("{other:?}"),
    }
}

fn a_forged_forwarded_user_from_an_untrusted_peer_is_refused(rt: Runtime) {
    let mut config = GatewayConfig::new(SharedSecretConfig {
        mode: AuthMode::TrustedProxy,
        token: None,
        password: None,
    });
    config.trusted_proxies = vec!["192.0.2.1".into()];
    config.trusted_proxy.user_header = Some("x-forwarded-user".into());
    let server = Server::start(rt, config);
    let mut c = Client::open_with(server.addr, &[("X-Forwarded-User", "admin")]);
    let (_, details) = error_details(c.connect_with(|_, _| cli_params(&["operator.admin"], None)));
    assert_eq!(details["authReason"], "trusted_proxy_untrusted_source");
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod smol {
            $(#[test] fn $name() { super::$name(super::Runtime::Smol) })*
        }
        mod mio {
            $(#[test] fn $name() { super::$name(super::Runtime::Mio) })*
        }
    };
}

fn tools_run_in_the_workspace_under_policy_and_are_audited(rt: Runtime) {
    let state = std::env::temp_dir().join(format!("clawgate-conf-tools-{}-{rt:?}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let mut config = GatewayConfig::with_token(TOKEN);
    config.tool_policy = clawgate_engine::tool_policy::ToolPolicy::from_document(&json!({
        "tools": {"deny": ["process"]},
        "agents": {"list": [{"id": "main"}, {"id": "boxed", "sandbox": {"mode": "all", "workspaceAccess": "rw"}}]},
    }))
    .unwrap();
    let server = Server::start_in(rt, config, Some(state.clone()));
    let mut c = Client::open(server.addr);
    ok_payload(c.connect_with(|_, _| cli_params(&["operator.write"], Some(TOKEN))));
    let mut invoke = |id: &str, params: Value| {
        c.send(&RequestFrame::new(id, "tools.invoke", &params).encode());
        loop {
            match c.next_frame() {
                Frame::Response(r) if r.id == id => {
                    break serde_json::from_str::<Value>(r.payload.expect("payload").get()).unwrap()
                }
                Frame::Response(r) => panic!("unexpected answer {r:?}"),
                _ => {}
            }
        }
    };
    let out = invoke(
        "w",
        json!({"name": "write", "args": {"path": "notes/hello.txt", "content": "hi there"}}),
    );
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(
        std::fs::read_to_string(state.join("workspace/notes/hello.txt")).unwrap(),
        "hi there"
    );
    let out = invoke(
        "x",
        json!({"name": "exec", "args": {"command": "cat", "args": ["notes/hello.txt"]}}),
    );
    assert_eq!(out["output"]["stdout"], "hi there", "{out}");
    let out = invoke("r", json!({"name": "read", "args": {"path": "../devices/paired.json"}}));
    assert_eq!(
        (out["ok"].as_bool(), out["error"]["code"].as_str()),
        (Some(false), Some("PATH_REFUSED"))
    );
    let out = invoke("p", json!({"name": "process", "args": {"action": "list"}}));
    assert_eq!(out["error"]["code"], "TOOL_DENIED");
    assert_eq!(
        out["error"]["message"],
        "process: denied by tools.deny entry \"process\""
    );
    let out = invoke("s", json!({"name": "ls", "args": {}, "sessionKey": "agent:boxed:main"}));
    assert_eq!(out["error"]["code"], "SANDBOX_UNAVAILABLE");
    let out = invoke("u", json!({"name": "teleport"}));
    assert_eq!(out["error"]["code"], "TOOL_NOT_FOUND");
    // Without operator.write, no tool runs.
    let mut reader = Client::open(server.addr);
    ok_payload(reader.connect(TOKEN));
    reader.send(&RequestFrame::new("q", "tools.invoke", &json!({"name": "ls"})).encode());
    let (message, _) = error_details(reader.next_frame());
    assert_eq!(message, "missing scope: operator.write");

    // The same over HTTP, as section 1.3 describes it.
    let body = r#"{"tool":"read","args":{"path":"notes/hello.txt"}}"#;
    let mut http = TcpStream::connect(server.addr).unwrap();
    write!(
        http,
        "POST /tools/invoke HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    http.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    http.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    let answer: Value = serde_json::from_str(raw.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(answer["result"]["content"], "hi there");

    // One audit line per call, without file contents or output.
    let audit = std::fs::read_to_string(state.join("logs/tool-audit.jsonl")).unwrap();
    let lines: Vec<Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let summary: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l["tool"].as_str().unwrap(), l["decision"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [
            ("write", "allowed"),
            ("exec", "allowed"),
            ("read", "allowed"),
            ("process", "denied"),
            ("ls", "denied"),
            ("teleport", "denied"),
            ("read", "allowed")
        ]
    );
    assert_eq!(lines[1]["detail"], 0);
    assert_eq!(lines[2]["status"], "error");
    assert!(!audit.contains("hi there"));
    drop(server);
    let _ = std::fs::remove_dir_all(&state);
}

/// A `clawgate agent` process (the reference echo worker) serving `main`; killed when dropped.
struct Worker(std::process::Child);

impl Worker {
    fn start(addr: SocketAddr, delay_ms: u64) -> Worker {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_clawgate"))
            .args(["agent", "--backend", "echo", "--delay-ms", &delay_ms.to_string()])
            .args(["--url", &format!("ws://{addr}"), "--token", TOKEN])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Worker(child)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn operator(addr: SocketAddr, scopes: &[&str]) -> Client {
    let mut c = Client::open(addr);
    ok_payload(c.connect_with(|_, _| cli_params(scopes, Some(TOKEN))));
    c
}

impl Client {
    /// Sends a request and returns the first answer to it, skipping events.
    fn request(&mut self, id: &str, method: &str, params: Value) -> Frame {
        self.send(&RequestFrame::new(id, method, &params).encode());
        loop {
            match self.next_frame() {
                Frame::Response(r) if r.id == id => return Frame::Response(r),
                _ => {}
            }
        }
    }

    /// Frames until a `chat` event in state `final`/`error`/`aborted` for `run`, inclusive.
    fn until_run_end(&mut self, run: &str) -> Vec<Frame> {
        let mut frames = Vec::new();
        loop {
            let f = self.next_frame();
            let end = match &f {
                Frame::Event(e) if e.event == "chat" => {
                    let p: Value = e.parse_payload().unwrap();
                    p["runId"] == run && matches!(p["state"].as_str(), Some("final" | "error" | "aborted"))
                }
                _ => false,
            };
            frames.push(f);
            if end {
                return frames;
            }
        }
    }
}

/// Waits until `health` shows agent `main` served by a worker.
fn wait_for_worker(op: &mut Client) {
    let started = Instant::now();
    loop {
        let health = ok_payload(op.request("w", "health", json!({})));
        let agents = health["agents"].as_array().cloned().unwrap_or_default();
        if agents.iter().any(|a| a["agentId"] == "main" && a["state"] != "offline") {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the worker did not register: {health}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn chat_payloads(frames: &[Frame], run: &str) -> Vec<Value> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Event(e) if e.event == "chat" => e.parse_payload::<Value>().ok(),
            _ => None,
        })
        .filter(|p| p["runId"] == run)
        .collect()
}

fn chat_streams_from_an_echo_worker_to_readers_only(rt: Runtime) {
    let server = Server::start(rt, GatewayConfig::with_token(TOKEN));
    let _worker = Worker::start(server.addr, 5);
    let mut writer = operator(server.addr, &["operator.write"]);
    let mut reader = operator(server.addr, &["operator.read"]);
    let mut outsider = operator(server.addr, &["operator.pairing"]);
    wait_for_worker(&mut writer);

    let text = "one two three four five six seven eight";
    writer.send(
        &RequestFrame::new(
            "s",
            "chat.send",
            &json!({"sessionKey": "main", "message": text, "idempotencyKey": "run-1"}),
        )
        .encode(),
    );
    let frames = writer.until_run_end("run-1");
    // The answer comes before any event of the run.
    let first_chat = frames
        .iter()
        .position(|f| matches!(f, Frame::Event(e) if e.event == "chat"))
        .unwrap();
    let answer = frames
        .iter()
        .position(|f| matches!(f, Frame::Response(r) if r.id == "s"))
        .unwrap();
    assert!(answer < first_chat, "{frames:?}");
    assert_eq!(
        ok_payload(frames[answer].clone()),
        json!({"runId": "run-1", "status": "started"})
    );
    for frames in [
        chat_payloads(&frames, "run-1"),
        chat_payloads(&reader.until_run_end("run-1"), "run-1"),
    ] {
        let (status, frames): (Vec<Value>, Vec<Value>) = frames.into_iter().partition(|c| c["state"] == "status");
        assert_eq!(status.len(), 1, "one status before the text");
        assert_eq!(status[0]["phase"], "starting_model");
        let (last, deltas) = frames.split_last().unwrap();
        assert_eq!(last["state"], "final");
        assert_eq!(last["message"]["content"][0]["text"], text);
        assert!(!deltas.is_empty() && deltas.iter().all(|d| d["state"] == "delta"));
        let joined: String = deltas.iter().map(|d| d["deltaText"].as_str().unwrap()).collect();
        assert_eq!(joined, text, "the deltas add up to the reply");
        assert_eq!(deltas.last().unwrap()["message"]["content"][0]["text"], text);
        // Words came 5 ms apart and deltas at most every 150 ms: several words share a delta.
        assert!(deltas.len() < 8, "{} deltas for 8 words", deltas.len());
    }
    // The connection without read scope saw none of it.
    outsider.send(&RequestFrame::new("h", "health", &json!({})).encode());
    loop {
        match outsider.next_frame() {
            Frame::Event(e) => assert!(e.event != "chat" && e.event != "agent", "{e:?}"),
            Frame::Response(r) if r.id == "h" => break,
            _ => {}
        }
    }
    let history = ok_payload(reader.request("hist", "chat.history", json!({"sessionKey": "agent:main:main"})));
    let messages = history["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(
        (messages[0]["role"].as_str(), messages[0]["content"].as_str()),
        (Some("user"), Some(text))
    );
    assert_eq!(messages[1]["content"][0]["text"], text);
}

fn agent_answers_twice_on_one_request_id(rt: Runtime) {
    let server = Server::start(rt, GatewayConfig::with_token(TOKEN));
    let _worker = Worker::start(server.addr, 0);
    let mut op = operator(server.addr, &["operator.write"]);
    wait_for_worker(&mut op);
    op.send(
        &RequestFrame::new(
            "a",
            "agent",
            &json!({"message": "hello agent", "agentId": "main", "idempotencyKey": "run-a"}),
        )
        .encode(),
    );
    let mut answers = Vec::new();
    while answers.len() < 2 {
        if let Frame::Response(r) = op.next_frame() {
            assert_eq!(r.id, "a");
            answers.push(ok_payload(Frame::Response(r)));
        }
    }
    assert_eq!(
        (answers[0]["status"].as_str(), answers[0]["sessionKey"].as_str()),
        (Some("accepted"), Some("agent:main:main"))
    );
    assert_eq!(answers[1]["status"], "ok");
    assert_eq!(answers[1]["result"]["payloads"][0]["text"], "hello agent");
    let waited = ok_payload(op.request("w2", "agent.wait", json!({"runId": "run-a", "timeoutMs": 1000})));
    assert_eq!(
        (waited["status"].as_str(), waited["terminalReply"]["text"].as_str()),
        (Some("ok"), Some("hello agent"))
    );
}

fn a_worker_killed_mid_run_ends_the_run_with_an_error(rt: Runtime) {
    let server = Server::start(rt, GatewayConfig::with_token(TOKEN));
    let mut worker = Worker::start(server.addr, 300);
    let mut op = operator(server.addr, &["operator.write"]);
    wait_for_worker(&mut op);
    op.send(
        &RequestFrame::new(
            "s",
            "chat.send",
            &json!({"sessionKey": "main", "message": "a b c d e f g h i j", "idempotencyKey": "run-k"}),
        )
        .encode(),
    );
    // The first words arrive, then the worker dies.
    loop {
        if let Frame::Event(e) = op.next_frame() {
            if e.event == "chat" && e.parse_payload::<Value>().unwrap()["state"] == "delta" {
                break;
            }
        }
    }
    worker.0.kill().unwrap();
    let frames = op.until_run_end("run-k");
    let end = chat_payloads(&frames, "run-k").pop().unwrap();
    assert_eq!(end["state"], "error");
    assert!(end["errorMessage"].as_str().unwrap().contains("disconnected"), "{end}");
    let lifecycle_error = frames.iter().any(|f| match f {
        Frame::Event(e) if e.event == "agent" => {
            let p: Value = e.parse_payload().unwrap();
            p["stream"] == "lifecycle" && p["data"]["phase"] == "error"
        }
        _ => false,
    });
    assert!(lifecycle_error);
    let waited = ok_payload(op.request("w", "agent.wait", json!({"runId": "run-k", "timeoutMs": 1000})));
    assert_eq!(waited["status"], "error");
    // The message can be sent again once a worker is back.
    let _again = Worker::start(server.addr, 0);
    wait_for_worker(&mut op);
    op.send(
        &RequestFrame::new(
            "s2",
            "chat.send",
            &json!({"sessionKey": "main", "message": "retry", "idempotencyKey": "run-k2"}),
        )
        .encode(),
    );
    assert_eq!(
        chat_payloads(&op.until_run_end("run-k2"), "run-k2").pop().unwrap()["state"],
        "final"
    );
}

fn the_offline_queue_survives_a_restart_and_delivers_in_order(rt: Runtime) {
    let state = std::env::temp_dir().join(format!("clawgate-conf-queue-{}-{rt:?}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let mut server = Server::start_in(rt, GatewayConfig::with_token(TOKEN), Some(state.clone()));
    let mut op = operator(server.addr, &["operator.write"]);
    for i in 1..=3 {
        let answer = op.request(
            &format!("q{i}"),
            "chat.send",
            json!({"sessionKey": "main", "message": format!("queued {i}"), "idempotencyKey": format!("run-q{i}")}),
        );
        assert_eq!(ok_payload(answer)["status"], "started");
    }
    let health = ok_payload(op.request("h", "health", json!({})));
    let main = health["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agentId"] == "main")
        .unwrap()
        .clone();
    assert_eq!(
        (main["state"].as_str(), main["queued"].as_u64()),
        (Some("offline"), Some(3))
    );
    drop(op);
    server.stop();

    let server = Server::start_in(rt, GatewayConfig::with_token(TOKEN), Some(state.clone()));
    let mut op = operator(server.addr, &["operator.read"]);
    let _worker = Worker::start(server.addr, 0);
    let mut finals = Vec::new();
    while finals.len() < 3 {
        if let Frame::Event(e) = op.next_frame() {
            let p: Value = e.parse_payload().unwrap();
            if e.event == "chat" && p["state"] == "final" {
                finals.push((
                    p["runId"].as_str().unwrap().to_owned(),
                    p["message"]["content"][0]["text"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    let want: Vec<(String, String)> = (1..=3).map(|i| (format!("run-q{i}"), format!("queued {i}"))).collect();
    assert_eq!(finals, want);
    let history = ok_payload(op.request("hist", "chat.history", json!({"sessionKey": "main"})));
    let texts: Vec<String> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| match &m["content"] {
            Value::String(s) => s.clone(),
            parts => parts[0]["text"].as_str().unwrap_or_default().to_owned(),
        })
        .collect();
    assert_eq!(
        texts,
        ["queued 1", "queued 2", "queued 3", "queued 1", "queued 2", "queued 3"]
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&state);
}

fn a_worker_runs_ls_in_a_sandboxed_session_and_the_requester_sees_tool_events(rt: Runtime) {
    let state = std::env::temp_dir().join(format!("clawgate-conf-worker-tool-{}-{rt:?}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(state.join("workspace")).unwrap();
    std::fs::write(state.join("workspace/hello.txt"), "hi").unwrap();
    let mut config = GatewayConfig::with_token(TOKEN);
    config.sandbox = Some(clawgate_tools::sandbox::probe().unwrap());
    config.tool_policy = clawgate_engine::tool_policy::ToolPolicy::from_document(&json!({
        "agents": {"list": [{"id": "main", "sandbox": {"mode": "all", "workspaceAccess": "ro"}}]},
    }))
    .unwrap();
    let server = Server::start_in(rt, config, Some(state.clone()));
    let worker = std::process::Command::new(env!("CARGO_BIN_EXE_clawgate"))
        .args(["agent", "--backend", "echo", "--tool", "ls"])
        .args(["--url", &format!("ws://{}", server.addr), "--token", TOKEN])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _worker = Worker(worker);
    // The requester declared `tool-events`, as the OpenClaw clients that show tool cards do.
    let mut op = Client::open(server.addr);
    ok_payload(op.connect_with(|_, _| {
        let mut params = cli_params(&["operator.write"], Some(TOKEN));
        params["caps"] = json!(["tool-events"]);
        params
    }));
    let mut other = operator(server.addr, &["operator.read"]);
    wait_for_worker(&mut op);
    op.send(
        &RequestFrame::new(
            "s",
            "chat.send",
            &json!({"sessionKey": "main", "message": "list it", "idempotencyKey": "run-t"}),
        )
        .encode(),
    );
    let frames = op.until_run_end("run-t");
    let tools: Vec<Value> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Event(e) if e.event == "agent" => e.parse_payload::<Value>().ok(),
            _ => None,
        })
        .filter(|p| p["stream"] == "tool")
        .map(|p| p["data"].clone())
        .collect();
    assert_eq!(tools.len(), 2, "{tools:?}");
    assert_eq!(
        (tools[0]["phase"].as_str(), tools[0]["name"].as_str()),
        (Some("start"), Some("ls"))
    );
    assert_eq!(
        (tools[1]["phase"].as_str(), tools[1]["isError"].as_bool()),
        (Some("result"), Some(false))
    );
    assert_eq!(tools[0]["toolCallId"], tools[1]["toolCallId"]);
    assert!(tools[1]["result"].to_string().contains("hello.txt"), "{}", tools[1]);
    assert_eq!(
        chat_payloads(&frames, "run-t").pop().unwrap()["message"]["content"][0]["text"],
        "list it"
    );
    // Another operator sees the run, not its tool calls.
    let seen = other.until_run_end("run-t");
    assert!(!seen.iter().any(|f| matches!(f, Frame::Event(e) if e.event == "agent" && e.parse_payload::<Value>().unwrap()["stream"] == "tool")));
    // The call is audited as the worker's, in the run's session.
    let audit = std::fs::read_to_string(state.join("logs/tool-audit.jsonl")).unwrap();
    let line: Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(
        (
            line["tool"].as_str(),
            line["sessionKey"].as_str(),
            line["status"].as_str()
        ),
        (Some("ls"), Some("agent:main:main"), Some("ok"))
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&state);
}

fn the_control_ui_bundle_is_served_in_order_on_one_connection(rt: Runtime) {
    let root = std::env::temp_dir().join(format!("clawgate-conf-ui-{}-{rt:?}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("assets")).unwrap();
    std::fs::write(root.join("index.html"), "<html>the app</html>").unwrap();
    std::fs::write(root.join("assets/app.js"), "let app = 1;").unwrap();
    let mut config = GatewayConfig::with_token(TOKEN);
    config.control_ui_root = Some(root.display().to_string());
    let server = Server::start(rt, config);
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Three pipelined requests: each file waits for the runtime, the answers keep their order.
    s.write_all(
        b"GET /assets/app.js HTTP/1.1\r\nHost: x\r\n\r\nGET /chat HTTP/1.1\r\nHost: x\r\n\r\nGET /../secret HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let js = raw.find("let app = 1;").expect("the asset");
    let app = raw.find("<html>the app</html>").expect("the app's route");
    let missing = raw.find("HTTP/1.1 404").expect("the escape refused");
    assert!(js < app && app < missing, "{raw}");
    assert!(raw.contains("text/javascript") && raw.contains("text/html"), "{raw}");
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
}

conformance!(
    the_control_ui_bundle_is_served_in_order_on_one_connection,
    a_worker_runs_ls_in_a_sandboxed_session_and_the_requester_sees_tool_events,
    chat_streams_from_an_echo_worker_to_readers_only,
    agent_answers_twice_on_one_request_id,
    a_worker_killed_mid_run_ends_the_run_with_an_error,
    the_offline_queue_survives_a_restart_and_delivers_in_order,
    tools_run_in_the_workspace_under_policy_and_are_audited,
    a_cross_origin_upgrade_gets_403,
    eleven_bad_tokens_are_rate_limited_with_retry_after,
    a_forged_forwarded_user_from_an_untrusted_peer_is_refused,
    metrics_report_the_event_loop_and_traffic,
    a_token_client_connects_and_calls_health,
    a_bad_token_gets_an_error_then_close_1008,
    the_handshake_timeout_closes_the_socket,
    an_oversized_preauth_frame_closes_with_1009,
    http_probes_answer_on_the_same_port,
    stopping_sends_shutdown_then_close_1012,
    many_clients_are_served_concurrently,
    the_33rd_unauthenticated_socket_from_one_address_is_refused,
    auth_none_admits_a_local_client_without_credentials,
    a_good_device_proof_gets_a_device_token,
    bad_stale_and_foreign_device_proofs_are_refused_with_1008,
    protocol_mismatch_closes_with_1002,
    a_first_frame_other_than_connect_is_refused,
    scope_errors_and_unknown_methods,
    a_slow_consumer_is_closed_without_slowing_the_others,
);
