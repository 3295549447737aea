//! A blocking client of an OpenClaw gateway on std sockets, built on `clawgate-proto`'s client
//! state machine. One client serves the command line, the agent worker, the load tool and the
//! tests: it connects (WebSocket upgrade, `connect` with a token or password, optionally as a
//! `node` or with a device proof), calls methods, pipelines them, and reads events.
#![forbid(unsafe_code)]

use clawgate_proto::client::{ClientConnection, ClientEvent, ClientOptions};
use clawgate_proto::connect::{ClientId, ClientInfo, ClientMode};
use clawgate_proto::device::DeviceIdentity;
use clawgate_proto::frame::{ErrorShape, EventFrame};
use clawgate_proto::ws::{ClientUpgrade, Message, SeededMasks, WsCodec};
use serde_json::value::RawValue;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where and how to connect.
#[derive(Clone, Default)]
pub struct Target {
    /// `ws://host:port[/path]`.
    pub url: String,
    /// The gateway token.
    pub token: Option<String>,
    /// The gateway password.
    pub password: Option<String>,
    /// Operator scopes to ask for.
    pub scopes: Vec<String>,
    /// Connect as a `node` with these caps and commands instead of as an operator.
    pub node: Option<(Vec<String>, Vec<String>)>,
    /// Sign the connect with this device identity.
    pub device: Option<DeviceIdentity>,
    /// The `client.displayName` to report, which the Control UI lists the client by.
    pub display_name: Option<String>,
    /// The `client.version` to report (the crate's version when empty).
    pub client_version: String,
    /// Seed of the WebSocket masks and upgrade key, for reproducible load; drawn from the OS
    /// when unset.
    pub seed: Option<u64>,
}

impl Target {
    /// An operator connection to `url` with `token` and `scopes`.
    pub fn operator(url: impl Into<String>, token: &str, scopes: &[&str]) -> Target {
        Target {
            url: url.into(),
            token: Some(token.to_owned()),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            ..Target::default()
        }
    }
}

/// Why a call failed.
#[derive(Debug)]
pub enum Error {
    /// The connection or the protocol failed.
    Io(String),
    /// The gateway answered with an error.
    Gateway(ErrorShape),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io(m) => f.write_str(m),
            Error::Gateway(e) => write!(f, "{}: {}", e.code, e.message),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        std::io::Error::other(e.to_string())
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // Masks only need to be unpredictable to intermediaries; a failed OS source leaves zeros,
    // which the protocol still accepts.
    let _ = getrandom::fill(&mut b);
    b
}

fn host_and_path(url: &str) -> Result<(String, String), Error> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| Error::Io(format!("unsupported URL {url} (expected ws://host:port)")))?;
    Ok(match rest.find('/') {
        Some(i) => (rest[..i].to_owned(), rest[i..].to_owned()),
        None => (rest.to_owned(), "/".to_owned()),
    })
}

/// An open, authenticated connection.
pub struct Session {
    /// The device token the gateway issued in `hello-ok`, if any.
    pub device_token: Option<String>,
    stream: TcpStream,
    ws: WsCodec,
    client: ClientConnection,
    buf: Vec<u8>,
    /// Events that arrived while a call waited for its answer.
    events: VecDeque<EventFrame>,
}

/// What `pump` reports when a non-blocking socket has nothing more now.
const WOULD_BLOCK: &str = "would block";

impl Session {
    /// Connects, upgrades and completes the handshake.
    pub fn connect(target: &Target) -> Result<Session, Error> {
        let (authority, path) = host_and_path(&target.url)?;
        let stream =
            TcpStream::connect(&authority).map_err(|e| Error::Io(format!("cannot connect to {authority}: {e}")))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_nodelay(true)?;
        let (mask_seed, key) = match target.seed {
            Some(seed) => (seed.to_le_bytes(), ((seed as u128) << 64 | seed as u128).to_le_bytes()),
            None => (random(), random()),
        };
        let mut s = Session {
            device_token: None,
            ws: WsCodec::client(
                clawgate_proto::limits::MAX_PAYLOAD_BYTES,
                Box::new(SeededMasks::new(mask_seed)),
            ),
            client: ClientConnection::new(Self::options(target), now_ms()),
            stream,
            buf: vec![0; 64 * 1024],
            events: VecDeque::new(),
        };
        let upgrade = ClientUpgrade::new(key);
        s.stream.write_all(&upgrade.request(&authority, &path, &[]))?;
        let mut head = Vec::new();
        let head_len = loop {
            let n = s.stream.read(&mut s.buf)?;
            if n == 0 {
                return Err(Error::Io("connection closed during the WebSocket upgrade".into()));
            }
            head.extend_from_slice(&s.buf[..n]);
            match upgrade.parse_response(&head) {
                Ok(Some(n)) => break n,
                Ok(None) => {}
                Err(e) => return Err(Error::Io(e.to_string())),
            }
        };
        s.ws.feed(&head[head_len..]);
        loop {
            s.flush()?;
            if let Some(event) = s.client.poll_event() {
                match event {
                    ClientEvent::Connected(hello) => {
                        s.device_token = hello.auth.device_token.clone();
                        return Ok(s);
                    }
                    ClientEvent::ConnectFailed(e) => return Err(Error::Gateway(e)),
                    ClientEvent::Close(f) => return Err(Error::Io(format!("closing: {} {}", f.code, f.reason))),
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
        let version = if target.client_version.is_empty() {
            env!("CARGO_PKG_VERSION")
        } else {
            &target.client_version
        };
        let mut info = ClientInfo::new(id, mode, version, std::env::consts::OS);
        info.display_name = target.display_name.clone();
        let mut o = ClientOptions::new(info);
        o.scopes = target.scopes.clone();
        if let Some((caps, commands)) = &target.node {
            o.role = clawgate_proto::Role::Node;
            o.caps = caps.clone();
            o.commands = commands.clone();
        }
        o.auth.token = target.token.clone();
        o.auth.password = target.password.clone();
        o.device = target.device.clone();
        o
    }

    fn flush(&mut self) -> Result<(), Error> {
        let mut out = Vec::new();
        while let Some(text) = self.client.poll_transmit() {
            self.ws.encode_text(&text, &mut out);
        }
        if !out.is_empty() {
            self.stream.write_all(&out)?;
        }
        Ok(())
    }

    /// Reads until one text message reached the protocol client.
    fn pump(&mut self) -> Result<(), Error> {
        loop {
            match self.ws.poll_message() {
                Ok(Some(Message::Text(t))) => {
                    self.client
                        .handle_text(now_ms(), &t)
                        .map_err(|e| Error::Io(e.to_string()))?;
                    return Ok(());
                }
                Ok(Some(Message::Ping(p))) => {
                    let mut out = Vec::new();
                    self.ws.encode_pong(&p, &mut out);
                    self.stream.write_all(&out)?;
                }
                Ok(Some(Message::Close(f))) => {
                    let why = f.map_or("no reason".to_owned(), |f| format!("{} {}", f.code, f.reason));
                    return Err(Error::Io(format!("gateway closed the connection: {why}")));
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    let n = match self.stream.read(&mut self.buf) {
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            return Err(Error::Io(WOULD_BLOCK.to_owned()))
                        }
                        Err(e) => return Err(e.into()),
                    };
                    if n == 0 {
                        return Err(Error::Io("gateway closed the connection".into()));
                    }
                    self.ws.feed(&self.buf[..n]);
                }
                Err(e) => return Err(Error::Io(e.to_string())),
            }
        }
    }

    /// Calls a method and waits for its final answer.
    pub fn call(&mut self, method: &str, params: &serde_json::Value) -> Result<Option<Box<RawValue>>, Error> {
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
                    } if rid == id => return result.map_err(Error::Gateway),
                    ClientEvent::Close(f) => return Err(Error::Io(format!("closing: {} {}", f.code, f.reason))),
                    ClientEvent::Event(e) => self.events.push_back(e),
                    _ => {}
                }
            }
            self.pump()?;
        }
    }

    /// Sends a request without waiting for its answer (answers are read and dropped).
    pub fn send(&mut self, method: &str, params: &serde_json::Value) -> Result<(), Error> {
        self.client.request(method, params);
        self.flush()
    }

    /// The next event if one has arrived, without waiting for one.
    pub fn try_event(&mut self) -> Result<Option<EventFrame>, Error> {
        if let Some(e) = self.events.pop_front() {
            return Ok(Some(e));
        }
        self.stream.set_nonblocking(true)?;
        let found = self.read_available();
        self.stream.set_nonblocking(false)?;
        found
    }

    /// Reads what the socket holds now (it is non-blocking) until an event comes out of it.
    fn read_available(&mut self) -> Result<Option<EventFrame>, Error> {
        loop {
            self.flush()?;
            while let Some(event) = self.client.poll_event() {
                match event {
                    ClientEvent::Event(e) => return Ok(Some(e)),
                    ClientEvent::Close(f) => return Err(Error::Io(format!("closing: {} {}", f.code, f.reason))),
                    _ => {}
                }
            }
            match self.pump() {
                Ok(()) => {}
                Err(Error::Io(m)) if m == WOULD_BLOCK => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    /// Puts an event back, to be the next one read.
    pub fn unread_event(&mut self, event: EventFrame) {
        self.events.push_front(event);
    }

    /// Waits for the next event (ticks included), without a read timeout.
    pub fn next_event(&mut self) -> Result<EventFrame, Error> {
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

    /// Sends `count` requests of `method` keeping at most `window` in flight; returns when all
    /// are answered, or at the first error.
    pub fn pipeline(&mut self, method: &str, count: usize, window: usize) -> Result<(), Error> {
        let params = serde_json::json!({});
        self.pipeline_with(method, count, window, |_| params.clone(), false)
    }

    /// As [`Session::pipeline`], with the params of request `i` from `params`; with
    /// `expect_final`, a request counts as done at its final answer (an `accepted` one is not).
    pub fn pipeline_with(
        &mut self,
        method: &str,
        count: usize,
        window: usize,
        mut params: impl FnMut(usize) -> serde_json::Value,
        expect_final: bool,
    ) -> Result<(), Error> {
        let (mut sent, mut done) = (0, 0);
        while done < count {
            while sent < count && sent - done < window.max(1) {
                if expect_final {
                    self.client.request_expect_final(method, &params(sent));
                } else {
                    self.client.request(method, &params(sent));
                }
                sent += 1;
            }
            self.flush()?;
            while let Some(event) = self.client.poll_event() {
                match event {
                    ClientEvent::Response {
                        result, is_final: true, ..
                    } => {
                        result.map_err(Error::Gateway)?;
                        done += 1;
                    }
                    ClientEvent::Close(f) => return Err(Error::Io(format!("closing: {} {}", f.code, f.reason))),
                    _ => {}
                }
            }
            if done < count {
                self.pump()?;
            }
        }
        Ok(())
    }
}
