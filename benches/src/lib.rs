//! Benchmarks and measurement tools for Clawgate. The client here is built on `clawgate-proto`
//! alone, so it measures any gateway that speaks the protocol, the real OpenClaw included.
#![forbid(unsafe_code)]

use clawgate_proto::client::{ClientConnection, ClientEvent, ClientOptions};
use clawgate_proto::connect::{ClientId, ClientInfo, ClientMode};
use clawgate_proto::device::DeviceIdentity;
use clawgate_proto::ws::{ClientUpgrade, Message, SeededMasks, WsCodec};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// A blocking, authenticated gateway connection.
pub struct BlockingClient {
    /// The device token the gateway issued in `hello-ok`, if any.
    pub device_token: Option<String>,
    stream: TcpStream,
    ws: WsCodec,
    client: ClientConnection,
    buf: Vec<u8>,
}

impl BlockingClient {
    /// Connects as the CLI does (`cli`/`cli`, the given scopes), with an optional device proof.
    pub fn connect(
        addr: SocketAddr,
        token: &str,
        scopes: &[&str],
        device: Option<DeviceIdentity>,
        seed: u64,
    ) -> io::Result<BlockingClient> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut options = ClientOptions::new(ClientInfo::new(
            ClientId::Cli,
            ClientMode::Cli,
            "clawgate-bench",
            "linux",
        ));
        options.scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
        options.auth.token = Some(token.to_owned());
        options.device = device;
        let mut c = BlockingClient {
            device_token: None,
            stream,
            ws: WsCodec::client(64 << 20, Box::new(SeededMasks::new(seed.to_le_bytes()))),
            client: ClientConnection::new(options, now_ms()),
            buf: vec![0; 64 * 1024],
        };
        let upgrade = ClientUpgrade::new(((seed as u128) << 64 | seed as u128).to_le_bytes());
        c.stream.write_all(&upgrade.request(&addr.to_string(), "/", &[]))?;
        let mut head = Vec::new();
        let n = loop {
            let r = c.stream.read(&mut c.buf)?;
            if r == 0 {
                return Err(other("closed during upgrade"));
            }
            head.extend_from_slice(&c.buf[..r]);
            if let Some(n) = upgrade.parse_response(&head).map_err(other)? {
                break n;
            }
        };
        c.ws.feed(&head[n..]);
        loop {
            c.flush()?;
            match c.client.poll_event() {
                Some(ClientEvent::Connected(hello)) => {
                    c.device_token = hello.auth.device_token.clone();
                    return Ok(c);
                }
                Some(ClientEvent::ConnectFailed(e)) => return Err(other(format!("{} {}", e.code, e.message))),
                Some(ClientEvent::Close(f)) => return Err(other(f.reason)),
                Some(_) => continue,
                None => c.read_once()?,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut out = Vec::new();
        while let Some(text) = self.client.poll_transmit() {
            self.ws.encode_text(&text, &mut out);
        }
        if !out.is_empty() {
            self.stream.write_all(&out)?;
        }
        Ok(())
    }

    fn read_once(&mut self) -> io::Result<()> {
        loop {
            match self.ws.poll_message().map_err(other)? {
                Some(Message::Text(t)) => {
                    self.client.handle_text(now_ms(), &t).map_err(other)?;
                    return Ok(());
                }
                Some(Message::Close(_)) => return Err(other("gateway closed the connection")),
                Some(_) => {}
                None => {
                    let n = self.stream.read(&mut self.buf)?;
                    if n == 0 {
                        return Err(other("connection closed"));
                    }
                    self.ws.feed(&self.buf[..n]);
                }
            }
        }
    }

    /// Sends `count` requests of `method` keeping at most `window` in flight; returns when all
    /// are answered, or the first error.
    pub fn pipeline(&mut self, method: &str, count: usize, window: usize) -> io::Result<()> {
        let params = serde_json::json!({});
        self.pipeline_with(method, count, window, |_| params.clone(), false)
    }

    /// As [`BlockingClient::pipeline`], with the params of request `i` from `params`; with
    /// `expect_final`, a request counts as done at its final answer (an `accepted` one is not).
    pub fn pipeline_with(
        &mut self,
        method: &str,
        count: usize,
        window: usize,
        mut params: impl FnMut(usize) -> serde_json::Value,
        expect_final: bool,
    ) -> io::Result<()> {
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
                if let ClientEvent::Response {
                    result, is_final: true, ..
                } = event
                {
                    result.map_err(|e| other(format!("{} {}", e.code, e.message)))?;
                    done += 1;
                }
            }
            if done < count {
                self.read_once()?;
            }
        }
        Ok(())
    }
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
