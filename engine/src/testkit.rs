//! A sans-IO test bench (feature `testkit`): a gateway, a fake clock, and clients built on
//! `clawgate-proto`, connected by moving bytes by hand. No sockets, no threads, no sleeping.
#![allow(missing_docs, clippy::unwrap_used)]

use crate::{ConnId, Entropy, Gateway, GatewayConfig, Output};
use clawgate_proto::close::CloseFrame;
use clawgate_proto::connect::{ConnectChallenge, ConnectParams, DeviceProof};
use clawgate_proto::device::DeviceIdentity;
use clawgate_proto::frame::{EventFrame, Frame, RequestFrame, ResponseFrame};
use clawgate_proto::ws::{ClientUpgrade, Message, SeededMasks, WsCodec};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;

pub const START: u64 = 1_800_000_000_000;
pub const TOKEN: &str = "tok123";

/// Deterministic randomness.
pub struct FakeEntropy(pub u64);

impl Entropy for FakeEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = self.0 as u8;
        }
    }
}

/// The time zone database built into jiff (the `testkit` feature bundles it), so that tests
/// read the same rules on every machine.
pub struct BundledZones;

impl crate::scheduler::TimeZones for BundledZones {
    fn get(&self, name: &str) -> Option<jiff::tz::TimeZone> {
        jiff::tz::TimeZone::get(name).ok()
    }
}

pub struct Peer {
    pub ws: Option<WsCodec>,
    pub upgrade: ClientUpgrade,
    pub raw: Vec<u8>,
    pub texts: Vec<String>,
    pub close: Option<CloseFrame>,
    pub closed_by_gateway: bool,
    pub challenge: Option<ConnectChallenge>,
    /// A paused peer reads nothing: its bytes stay queued and the gateway is told so.
    pub paused: bool,
    /// Bytes held for a paused peer.
    pub held: Vec<u8>,
}

impl Peer {
    fn new(upgrade: ClientUpgrade) -> Peer {
        Peer {
            ws: None,
            upgrade,
            raw: Vec::new(),
            texts: Vec::new(),
            close: None,
            closed_by_gateway: false,
            challenge: None,
            paused: false,
            held: Vec::new(),
        }
    }
}

pub struct Bench {
    pub gw: Gateway,
    pub now: u64,
    pub peers: HashMap<ConnId, Peer>,
    pub logs: Vec<String>,
    pub stopped: bool,
    /// Files the gateway asked to persist, by path.
    pub disk: HashMap<String, String>,
    /// While set, persists are not acknowledged (a slow disk).
    pub hold_persists: bool,
    pub unacked: Vec<u64>,
    /// `config.reload` requests the gateway passed on.
    pub reload_requests: usize,
    /// Tool runs the gateway asked for, not yet answered.
    pub tool_runs: Vec<crate::tool_calls::ToolRun>,
    /// Tool calls the gateway asked to stop.
    pub cancelled_tools: Vec<u64>,
    /// Lines appended to the tool audit log.
    pub audit: Vec<String>,
    /// Lines appended to the control-plane audit log.
    pub control_audit: Vec<String>,
    /// The configuration file as the gateway last wrote it.
    pub config_file: Option<String>,
    /// While set, writes of the configuration file fail (a read-only disk).
    pub fail_config_writes: bool,
    /// Files of agent workspaces by path: their text and when they last changed.
    pub workspace_files: HashMap<String, (String, u64)>,
    /// Transcript files and their lines.
    pub transcripts: HashMap<String, Vec<String>>,
    /// Bundle files the gateway asked the runtime to serve.
    pub static_requests: Vec<crate::control_ui::StaticRequest>,
}

pub fn loopback() -> SocketAddr {
    "127.0.0.1:50000".parse().unwrap()
}

pub fn gateway_addr() -> SocketAddr {
    "192.0.2.10:18789".parse().unwrap()
}

pub fn remote() -> SocketAddr {
    "203.0.113.7:50000".parse().unwrap()
}

impl Bench {
    pub fn new(config: GatewayConfig) -> Bench {
        Bench::with_gateway(Gateway::new(
            config,
            Box::new(FakeEntropy(0x1234_5678_9abc_def1)),
            START,
        ))
    }

    /// A bench around a gateway built by the test (restored state, say).
    pub fn with_gateway(gw: Gateway) -> Bench {
        let mut b = Bench {
            gw,
            now: START,
            peers: HashMap::new(),
            logs: Vec::new(),
            stopped: false,
            disk: HashMap::new(),
            hold_persists: false,
            unacked: Vec::new(),
            reload_requests: 0,
            tool_runs: Vec::new(),
            cancelled_tools: Vec::new(),
            audit: Vec::new(),
            control_audit: Vec::new(),
            config_file: None,
            fail_config_writes: false,
            workspace_files: HashMap::new(),
            transcripts: HashMap::new(),
            static_requests: Vec::new(),
        };
        b.pump();
        b
    }

    pub fn with_token() -> Bench {
        Bench::new(GatewayConfig::with_token(TOKEN))
    }

    /// Moves every output of the gateway to its destination.
    pub fn pump(&mut self) {
        while let Some(out) = self.gw.poll_output() {
            match out {
                Output::Transmit { conn, bytes } => {
                    if let Some(p) = self.peers.get_mut(&conn) {
                        if p.paused {
                            p.held.extend_from_slice(&bytes);
                            let held = p.held.len();
                            self.gw.handle_buffered(conn, held);
                            continue;
                        }
                        match &mut p.ws {
                            Some(ws) => ws.feed(&bytes),
                            None => p.raw.extend_from_slice(&bytes),
                        }
                        // As a runtime does once the bytes are written: nothing is queued.
                        self.gw.handle_buffered(conn, 0);
                    }
                }
                Output::Close { conn } => {
                    if let Some(p) = self.peers.get_mut(&conn) {
                        p.closed_by_gateway = true;
                    }
                    self.gw.handle_closed(self.now, conn);
                }
                Output::Log(line) => self.logs.push(line.render()),
                Output::Stopped => self.stopped = true,
                Output::ReloadConfig => self.reload_requests += 1,
                Output::RunTool(run) => self.tool_runs.push(run),
                Output::CancelTool { call } => self.cancelled_tools.push(call),
                Output::AppendAudit { line } => self.audit.push(line),
                Output::AppendControlAudit { line } => self.control_audit.push(line),
                Output::AgentFiles(request) => {
                    if let crate::agent_files::AgentFileStage::Write { content } = &request.stage {
                        for name in &request.names {
                            let path = format!("{}/{name}", request.workspace);
                            self.workspace_files.insert(path, (content.clone(), self.now));
                        }
                    }
                    let facts = request
                        .names
                        .iter()
                        .map(|name| {
                            let path = format!("{}/{name}", request.workspace);
                            let found = self.workspace_files.get(&path);
                            crate::agent_files::AgentFileFacts {
                                name: name.clone(),
                                path,
                                size: found.map(|(text, _)| text.len() as u64),
                                updated_at_ms: found.map(|(_, at)| *at),
                                content: found.filter(|_| request.wants_content()).map(|(text, _)| text.clone()),
                            }
                        })
                        .collect();
                    self.gw.handle_agent_files(self.now, request, Ok(facts));
                }
                Output::ReplaceTranscript { file, contents } => {
                    self.transcripts
                        .insert(file, contents.lines().map(str::to_owned).collect());
                }
                Output::SampleHost { conn, request_id } => {
                    let host = crate::control_ui::HostSample {
                        hostname: "bench".into(),
                        os_release: "6.1.0".into(),
                        cpu_count: 2,
                        cpu_model: Some("Bench CPU".into()),
                        load_average: [0.5, 0.25, 0.1],
                        memory_total_bytes: 24 << 30,
                        memory_free_bytes: 20 << 30,
                        rss_bytes: 5 << 20,
                        disk: Some((100 << 30, 60 << 30)),
                        pid: 4242,
                    };
                    self.gw.handle_host_sample(self.now, conn, &request_id, &host);
                }
                Output::WriteConfig { write, text, .. } => {
                    if self.fail_config_writes {
                        self.gw
                            .handle_config_written(self.now, write, Err("read-only file system".into()));
                    } else {
                        self.config_file = Some(text);
                        self.gw.handle_config_written(self.now, write, Ok(()));
                    }
                }
                Output::AppendTranscript { file, line } => self.transcripts.entry(file).or_default().push(line),
                Output::ServeStatic(request) => self.static_requests.push(request),
                Output::RemoveTranscript { file } => {
                    self.transcripts.remove(&file);
                }
                Output::RemoveStateFile { path } => {
                    self.disk.remove(&path);
                }
                Output::Persist { path, contents, seq } => {
                    self.disk.insert(path, contents);
                    if self.hold_persists {
                        self.unacked.push(seq);
                    } else {
                        self.gw.handle_persisted(self.now, seq);
                    }
                }
            }
        }
        for p in self.peers.values_mut() {
            let Some(ws) = &mut p.ws else { continue };
            while let Ok(Some(m)) = ws.poll_message() {
                match m {
                    Message::Text(t) => {
                        if p.challenge.is_none() && t.contains("connect.challenge") {
                            if let Ok(Frame::Event(e)) = Frame::decode(&t) {
                                p.challenge = e.parse_payload().ok();
                            }
                        }
                        p.texts.push(t);
                    }
                    Message::Close(f) => p.close = f,
                    _ => {}
                }
            }
        }
    }

    /// Opens a TCP connection and sends raw HTTP.
    pub fn http(&mut self, peer: SocketAddr, request: &str) -> (ConnId, String) {
        let conn = self.gw.handle_connection(self.now, peer, gateway_addr());
        self.peers.insert(conn, Peer::new(ClientUpgrade::new([0; 16])));
        self.gw.handle_bytes(self.now, conn, request.as_bytes());
        self.pump();
        let raw = String::from_utf8_lossy(&self.peers[&conn].raw).into_owned();
        (conn, raw)
    }

    /// Everything the gateway has sent on a plain HTTP connection so far.
    pub fn raw_text(&self, conn: ConnId) -> String {
        String::from_utf8_lossy(&self.peers[&conn].raw).into_owned()
    }

    /// Sends a WebSocket upgrade request and returns the raw HTTP answer.
    pub fn upgrade_answer(&mut self, peer: SocketAddr, extra_headers: &[(&str, &str)]) -> String {
        let request = ClientUpgrade::new([8; 16]).request("127.0.0.1:18789", "/", extra_headers);
        let (_, raw) = self.http(peer, &String::from_utf8(request).unwrap());
        raw
    }

    /// Opens a WebSocket; returns the connection and the upgrade response head.
    pub fn ws(&mut self, peer: SocketAddr, extra_headers: &[(&str, &str)]) -> ConnId {
        let conn = self.gw.handle_connection(self.now, peer, gateway_addr());
        let upgrade = ClientUpgrade::new([7; 16]);
        let request = upgrade.request("127.0.0.1:18789", "/", extra_headers);
        self.peers.insert(conn, Peer::new(upgrade));
        self.gw.handle_bytes(self.now, conn, &request);
        self.pump();
        let p = self.peers.get_mut(&conn).unwrap();
        if let Ok(Some(n)) = p.upgrade.parse_response(&p.raw) {
            let mut ws = WsCodec::client(1 << 26, Box::new(SeededMasks::new([3; 8])));
            ws.feed(&p.raw[n..]);
            p.ws = Some(ws);
            p.raw.clear();
        }
        self.pump();
        conn
    }

    pub fn send_bytes(&mut self, conn: ConnId, bytes: &[u8]) {
        self.gw.handle_bytes(self.now, conn, bytes);
        self.pump();
    }

    pub fn send_text(&mut self, conn: ConnId, text: &str) {
        let mut out = Vec::new();
        self.peers
            .get_mut(&conn)
            .unwrap()
            .ws
            .as_mut()
            .unwrap()
            .encode_text(text, &mut out);
        self.send_bytes(conn, &out);
    }

    pub fn take_texts(&mut self, conn: ConnId) -> Vec<String> {
        std::mem::take(&mut self.peers.get_mut(&conn).unwrap().texts)
    }

    /// Frames received, without the challenge.
    pub fn frames(&mut self, conn: ConnId) -> Vec<Frame> {
        self.take_texts(conn)
            .iter()
            .map(|t| Frame::decode(t).unwrap())
            .filter(|f| !matches!(f, Frame::Event(e) if e.event == "connect.challenge"))
            .collect()
    }

    pub fn responses(&mut self, conn: ConnId) -> Vec<ResponseFrame> {
        self.frames(conn)
            .into_iter()
            .filter_map(|f| match f {
                Frame::Response(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    pub fn events(&mut self, conn: ConnId) -> Vec<EventFrame> {
        self.frames(conn)
            .into_iter()
            .filter_map(|f| match f {
                Frame::Event(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    pub fn nonce(&self, conn: ConnId) -> String {
        self.peers[&conn].challenge.as_ref().unwrap().nonce.clone()
    }

    /// Acknowledges the persists held back by `hold_persists`.
    pub fn ack_persists(&mut self) {
        self.hold_persists = false;
        for seq in std::mem::take(&mut self.unacked) {
            self.gw.handle_persisted(self.now, seq);
        }
        self.pump();
    }

    /// Stops reading on `conn`: what the gateway sends piles up and counts as buffered.
    pub fn pause(&mut self, conn: ConnId) {
        if let Some(p) = self.peers.get_mut(&conn) {
            p.paused = true;
        }
    }

    /// Reads again: the held bytes are delivered.
    pub fn resume(&mut self, conn: ConnId) {
        if let Some(p) = self.peers.get_mut(&conn) {
            p.paused = false;
            let held = std::mem::take(&mut p.held);
            match &mut p.ws {
                Some(ws) => ws.feed(&held),
                None => p.raw.extend_from_slice(&held),
            }
            self.gw.handle_buffered(conn, 0);
        }
        self.pump();
    }

    pub fn advance(&mut self, ms: u64) {
        self.now += ms;
        self.gw.handle_timeout(self.now);
        self.pump();
    }

    pub fn closed(&self, conn: ConnId) -> Option<CloseFrame> {
        let p = &self.peers[&conn];
        assert!(p.closed_by_gateway, "the gateway did not close the connection");
        p.close.clone()
    }

    pub fn request(&mut self, conn: ConnId, id: &str, method: &str, params: Value) -> ResponseFrame {
        self.send_text(conn, &RequestFrame::new(id, method, &params).encode());
        let mut rs = self.responses(conn);
        assert_eq!(rs.len(), 1, "expected one response to {method}");
        rs.remove(0)
    }

    /// Connects with the given params (auth etc.) and returns the connect response.
    pub fn connect(&mut self, conn: ConnId, params: Value) -> ResponseFrame {
        let text = json!({"type": "req", "id": "c1", "method": "connect", "params": params}).to_string();
        self.send_text(conn, &text);
        let mut rs = self.responses(conn);
        assert_eq!(rs.len(), 1, "expected one connect response");
        rs.remove(0)
    }

    /// An operator that declared `caps` (e.g. `tool-events`).
    pub fn operator_with_caps(&mut self, scopes: &[&str], caps: &[&str]) -> ConnId {
        let conn = self.ws(loopback(), &[]);
        let mut params = cli_params(scopes, Some(TOKEN));
        params["caps"] = json!(caps);
        let res = self.connect(conn, params);
        assert!(res.ok, "connect failed: {:?}", res.error);
        conn
    }

    /// Opens a WebSocket from loopback and completes a token connect as the CLI does.
    pub fn operator(&mut self, scopes: &[&str]) -> ConnId {
        let conn = self.ws(loopback(), &[]);
        let res = self.connect(conn, cli_params(scopes, Some(TOKEN)));
        assert!(res.ok, "connect failed: {:?}", res.error);
        conn
    }
}

pub fn cli_params(scopes: &[&str], token: Option<&str>) -> Value {
    let mut p = json!({
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": "cli", "version": "test", "platform": "linux", "mode": "cli"},
        "role": "operator", "scopes": scopes,
    });
    if let Some(t) = token {
        p["auth"] = json!({"token": t});
    }
    p
}

/// The `connect` params of an agent worker serving `agents` (token auth).
pub fn worker_params(agents: &[&str]) -> Value {
    let mut params = cli_params(&[], Some(TOKEN));
    params["role"] = json!("node");
    params["client"] = json!({"id": "node-host", "version": "1", "platform": "linux", "mode": "node"});
    params["caps"] = json!(agents.iter().map(|a| format!("agent:{a}")).collect::<Vec<_>>());
    params["commands"] = json!(["agent.run"]);
    params
}

/// Adds a signed device proof to `params` for `nonce`, signed at `signed_at`.
pub fn with_device(params: &Value, identity: &DeviceIdentity, nonce: &str, signed_at: u64) -> Value {
    let parsed = ConnectParams::parse(&params.to_string()).unwrap();
    let mut p = params.clone();
    p["device"] = serde_json::to_value(DeviceProof::sign(identity, &parsed, nonce, signed_at)).unwrap();
    p
}

pub fn error_code(res: &ResponseFrame) -> (String, String, Value) {
    let e = res.error.as_ref().expect("an error response");
    (
        e.code.to_string(),
        e.message.clone(),
        e.details.clone().unwrap_or(Value::Null),
    )
}

pub fn payload(res: &ResponseFrame) -> Value {
    serde_json::from_str(res.payload.as_ref().expect("a payload").get()).unwrap()
}
