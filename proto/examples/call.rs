//! A complete gateway client built on `clawgate-proto` alone, with blocking std sockets.
//!
//! ```text
//! cargo run -p clawgate-proto --example call -- ws://127.0.0.1:18789 TOKEN health
//! ```
//!
//! It opens a TCP connection, performs the WebSocket upgrade, answers the challenge with a signed
//! `connect` (a throwaway device identity, or the one whose seed is in `CLAWGATE_DEVICE_SEED`),
//! calls one method and prints the response payload. The same steps work against Clawgate and the real OpenClaw gateway.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use clawgate_proto::client::{ClientConnection, ClientEvent, ClientOptions};
use clawgate_proto::connect::{ClientId, ClientInfo, ClientMode};
use clawgate_proto::device::DeviceIdentity;
use clawgate_proto::ws::{ClientUpgrade, Message, SeededMasks, WsCodec};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Randomness for the upgrade key and frame masks; a real client would use the OS generator.
fn entropy<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut bytes);
    }
    bytes
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).map_or("ws://127.0.0.1:18789", String::as_str);
    let token = args.get(2).cloned();
    let method = args.get(3).map_or("health", String::as_str);
    let host = url.trim_start_matches("ws://").trim_end_matches('/');

    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;

    // 1. HTTP upgrade.
    let upgrade = ClientUpgrade::new(entropy());
    stream.write_all(&upgrade.request(host, "/", &[]))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_len = loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err("connection closed during upgrade".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(n) = upgrade.parse_response(&buf)? {
            break n;
        }
    };

    // 2. WebSocket codec and protocol client.
    let mut ws = WsCodec::client(25 * 1024 * 1024, Box::new(SeededMasks::new(entropy())));
    ws.feed(&buf[head_len..]);
    let mut options = ClientOptions::new(ClientInfo::new(
        ClientId::Cli,
        ClientMode::Cli,
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
    ));
    options.scopes = vec!["operator.read".into()];
    options.auth.token = token;
    // A fixed identity (64 hex digits in CLAWGATE_DEVICE_SEED) lets a device come back after pairing.
    let seed = std::env::var("CLAWGATE_DEVICE_SEED")
        .ok()
        .and_then(|hex| {
            (0..32)
                .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
                .collect::<Option<Vec<u8>>>()
        })
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .unwrap_or_else(entropy);
    options.device = Some(DeviceIdentity::from_seed(&seed));
    let mut client = ClientConnection::new(options, now_ms());
    let request_id = client.request(method, &serde_json::json!({}));

    // 3. Pump bytes until the answer arrives.
    loop {
        while let Some(text) = client.poll_transmit() {
            let mut out = Vec::new();
            ws.encode_text(&text, &mut out);
            stream.write_all(&out)?;
        }
        while let Some(event) = client.poll_event() {
            match event {
                ClientEvent::Connected(hello) => {
                    eprintln!("connected: protocol {}, scopes {:?}", hello.protocol, hello.auth.scopes)
                }
                ClientEvent::ConnectFailed(e) => return Err(format!("connect failed: {} {}", e.code, e.message).into()),
                ClientEvent::Response {
                    id,
                    result,
                    is_final: true,
                    ..
                } if id == request_id => {
                    match result {
                        Ok(payload) => println!("{}", payload.map_or("null".to_owned(), |p| p.get().to_owned())),
                        Err(e) => return Err(format!("{} {}", e.code, e.message).into()),
                    }
                    return Ok(());
                }
                ClientEvent::Close(frame) => return Err(format!("closing: {} {}", frame.code, frame.reason).into()),
                _ => {}
            }
        }
        let mut progressed = false;
        while let Some(message) = ws.poll_message()? {
            progressed = true;
            match message {
                Message::Text(text) => client.handle_text(now_ms(), &text)?,
                Message::Ping(data) => {
                    let mut out = Vec::new();
                    ws.encode_pong(&data, &mut out);
                    stream.write_all(&out)?;
                }
                Message::Close(frame) => return Err(format!("server closed: {frame:?}").into()),
                _ => {}
            }
        }
        if progressed {
            continue;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err("connection closed".into());
        }
        ws.feed(&chunk[..n]);
    }
}
