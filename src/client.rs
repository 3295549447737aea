//! A blocking gateway client for the command line, built on `clawgate-proto`'s client state machine.

use clawgate_engine::Entropy;
use clawgate_io::{now_ms, OsEntropy};
use clawgate_proto::client::{ClientConnection, ClientEvent, ClientOptions};
use clawgate_proto::connect::{ClientId, ClientInfo, ClientMode};
use clawgate_proto::frame::{ErrorShape, EventFrame};
use clawgate_proto::ws::{ClientUpgrade, Message, SeededMasks, WsCodec};
use serde_json::value::RawValue;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Where and how to connect.
pub struct Target {
    pub url: String,
    pub token: Option<String>,
    pub password: Option<String>,
    pub scopes: Vec<String>,
    /// Connect as a `node` with these caps and commands instead of as an operator.
    pub node: Option<(Vec<String>, Vec<String>)>,
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    OsEntropy.fill(&mut b);
    b
}

/// An open, authenticated connection.
pub struct Session {
    stream: TcpStream,
    ws: WsCodec,
    client: ClientConnection,
    buf: Vec<u8>,
    /// Events that arrived while a call waited for its answer.
    events: std::collections::VecDeque<EventFrame>,
}

/// The outcome of a call.
pub enum CallError {
    /// Transport or protocol failure.
    Io(String),
    /// The gateway answered with an error.
    Gateway(ErrorShape),
}

impl From<std::io::Error> for CallError {
    fn from(e: std::io::Error) -> Self {
        CallError::Io(e.to_string())
    }
}

fn host_port(url: &str) -> Result<(String, String), CallError> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| CallError::Io(format!("unsupported URL {url} (expected ws://host:port)")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    Ok((authority.to_owned(), path.to_owned()))
}

impl Session {
    /// Connects, upgrades and completes the handshake.
    pub fn connect(target: &Target) -> Result<Session, CallError> {
        let (authority, path) = host_port(&target.url)?;
        let stream =
            TcpStream::connect(&authority).map_err(|e| CallError::Io(format!("cannot connect to {authority}: {e}")))?;
        stream.set_read_timeout(Some(Duration::from_secs(15)))?;
        stream.set_nodelay(true)?;
        let mut s = Session {
            ws: WsCodec::client(
                clawgate_proto::limits::MAX_PAYLOAD_BYTES,
                Box::new(SeededMasks::new(random())),
            ),
            client: ClientConnection::new(Self::options(target), now_ms()),
            stream,
            buf: vec![0; 64 * 1024],
            events: std::collections::VecDeque::new(),
        };
        let upgrade = ClientUpgrade::new(random());
        s.stream.write_all(&upgrade.request(&authority, &path, &[]))?;
        let mut head = Vec::new();
        let head_len = loop {
            let n = s.stream.read(&mut s.buf)?;
            if n == 0 {
                return Err(CallError::Io("connection closed during the WebSocket upgrade".into()));
            }
            head.extend_from_slice(&s.buf[..n]);
            match upgrade.parse_response(&head) {
                Ok(Some(n)) => break n,
                Ok(None) => {}
                Err(e) => return Err(CallError::Io(e.to_string())),
            }
        };
        s.ws.feed(&head[head_len..]);
        loop {
            s.flush()?;
            if let Some(event) = s.client.poll_event() {
                match event {
                    ClientEvent::Connected(_) => return Ok(s),
                    ClientEvent::ConnectFailed(e) => return Err(CallError::Gateway(e)),
                    ClientEvent::Close(f) => return Err(CallError::Io(format!("closing: {} {}", f.code, f.reason))),
                    _ => continue,
                }
            }
            s.pump()?;
        }
    }

    fn options(target: &Target) -> ClientOptions {
        let (id, mode) = match target.node {
            Some(_) => (ClientId::NodeHost, ClientMode::Node),
            None => (ClientId::Cli, ClientMode::Cli),
        };
        let mut o = ClientOptions::new(ClientInfo::new(
            id,
            mode,
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
        ));
        o.scopes = target.scopes.clone();
        if let Some((caps, commands)) = &target.node {
            o.role = clawgate_proto::Role::Node;
            o.caps = caps.clone();
            o.commands = commands.clone();
        }
        o.auth.token = target.token.clone();
        o.auth.password = target.password.clone();
        o
    }

    fn flush(&mut self) -> Result<(), CallError> {
        while let Some(text) = self.client.poll_transmit() {
            let mut out = Vec::new();
            self.ws.encode_text(&text, &mut out);
            self.stream.write_all(&out)?;
        }
        Ok(())
    }

    /// Reads once from the socket and feeds what arrived to the protocol client.
    fn pump(&mut self) -> Result<(), CallError> {
        loop {
            match self.ws.poll_message() {
                Ok(Some(Message::Text(t))) => {
                    self.client
                        .handle_text(now_ms(), &t)
                        .map_err(|e| CallError::Io(e.to_string()))?;
                    return Ok(());
                }
                Ok(Some(Message::Ping(p))) => {
                    let mut out = Vec::new();
                    self.ws.encode_pong(&p, &mut out);
                    self.stream.write_all(&out)?;
                }
                Ok(Some(Message::Close(f))) => {
                    let why = f.map_or("no reason".to_owned(), |f| format!("{} {}", f.code, f.reason));
                    return Err(CallError::Io(format!("gateway closed the connection: {why}")));
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    let n = self.stream.read(&mut self.buf)?;
                    if n == 0 {
                        return Err(CallError::Io("gateway closed the connection".into()));
                    }
                    self.ws.feed(&self.buf[..n]);
                }
                Err(e) => return Err(CallError::Io(e.to_string())),
            }
        }
    }

    /// Calls a method and waits for its final answer.
    pub fn call(&mut self, method: &str, params: &serde_json::Value) -> Result<Option<Box<RawValue>>, CallError> {
        let id = self.client.request_expect_final(method, params);
        loop {
            self.flush()?;
            while let Some(event) = self.client.poll_event() {
                match event {
                    ClientEvent::Response {
                        id: rid,
                        result,
                        is_final: true,
                        ..
                    } if rid == id => return result.map_err(CallError::Gateway),
                    ClientEvent::Close(f) => return Err(CallError::Io(format!("closing: {} {}", f.code, f.reason))),
                    ClientEvent::Event(e) => self.events.push_back(e),
                    _ => {}
                }
            }
            self.pump()?;
        }
    }

    /// Sends a request without waiting for its answer (answers are read and dropped).
    pub fn send(&mut self, method: &str, params: &serde_json::Value) -> Result<(), CallError> {
        self.client.request(method, params);
        self.flush()
    }

    /// Waits for the next event (ticks included).
    pub fn next_event(&mut self) -> Result<EventFrame, CallError> {
        self.stream.set_read_timeout(None)?;
        if let Some(e) = self.events.pop_front() {
            return Ok(e);
        }
        loop {
            self.flush()?;
            while let Some(event) = self.client.poll_event() {
                if let ClientEvent::Event(e) = event {
                    return Ok(e);
                }
            }
            self.pump()?;
        }
    }
}
