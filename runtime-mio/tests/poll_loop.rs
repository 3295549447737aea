//! What the mio runtime does by itself, beside the engine: it reads a readable socket until the
//! kernel has nothing more (its readiness is edge-triggered), keeps what the kernel will not take
//! yet and writes it when the socket is writable again, and cuts a closing connection whose peer
//! does not read once the engine's close grace has passed.

use clawgate_engine::{Gateway, GatewayConfig};
use clawgate_io::{now_ms, OsEntropy};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn start(config: GatewayConfig) -> (SocketAddr, clawgate_runtime_mio::StopHandle) {
    let gateway = Gateway::new(config, Box::new(OsEntropy), now_ms());
    let loopback: SocketAddr = "127.0.0.1:0".parse().expect("an address");
    let (addrs, stop, _thread) = clawgate_runtime_mio::spawn(gateway, &[loopback]).expect("the runtime starts");
    (addrs[0], stop)
}

fn health_requests(n: usize, last_closes: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let connection = if last_closes && i + 1 == n {
            "close"
        } else {
            "keep-alive"
        };
        out.extend_from_slice(
            format!("GET /health HTTP/1.1\r\nHost: x\r\nConnection: {connection}\r\n\r\n").as_bytes(),
        );
    }
    out
}

/// Reads until the peer closes or `deadline` passes; returns what came and whether it closed.
fn read_to_close(stream: &mut TcpStream, deadline: Instant) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("a read timeout");
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return (got, true),
        }
    }
    (got, false)
}

fn answers(bytes: &[u8]) -> usize {
    bytes.windows(15).filter(|w| w == b"HTTP/1.1 200 OK").count()
}

#[test]
fn requests_pipelined_in_one_write_are_all_answered() {
    let (addr, stop) = start(GatewayConfig::with_token("t"));
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream
        .write_all(&health_requests(500, true))
        .expect("the requests are sent");
    let (bytes, closed) = read_to_close(&mut stream, Instant::now() + Duration::from_secs(20));
    stop.stop();
    assert!(closed, "the connection closes after the last request");
    assert_eq!(answers(&bytes), 500);
}

/// A Control UI folder whose page is `size` bytes, served by a gateway with `config`.
fn start_with_big_page(
    mut config: GatewayConfig,
    name: &str,
    size: usize,
) -> (SocketAddr, clawgate_runtime_mio::StopHandle, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("clawgate-poll-loop-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let page: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(dir.join("index.html"), page).expect("the page is written");
    config.control_ui_root = Some(dir.to_string_lossy().into_owned());
    let (addr, stop) = start(config);
    (addr, stop, dir)
}

/// Larger than what loopback's socket buffers hold (a receive buffer grows to 32 MiB here).
const BIG_PAGE: usize = 96 << 20;

fn content_length(head: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(head).ok()?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("Content-Length: ")
                .or_else(|| l.strip_prefix("content-length: "))
        })
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn an_answer_the_kernel_could_not_take_at_once_arrives_whole_when_the_client_reads() {
    let (addr, stop, dir) = start_with_big_page(GatewayConfig::with_token("t"), "whole", BIG_PAGE);
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("the request is sent");
    // Nothing is read for a while: the page fills the socket buffers and the rest waits in the
    // runtime until the socket is writable again.
    std::thread::sleep(Duration::from_millis(700));
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let deadline = Instant::now() + Duration::from_secs(60);
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("a read timeout");
    let mut expected = None;
    while Instant::now() < deadline {
        if let Some(head_end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let length = content_length(&got[..head_end]).expect("a Content-Length");
            expected = Some(head_end + 4 + length);
            if got.len() >= head_end + 4 + length {
                break;
            }
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("the connection failed: {e}"),
        }
    }
    stop.stop();
    let _ = std::fs::remove_dir_all(dir);
    assert!(got.starts_with(b"HTTP/1.1 200 OK"));
    assert_eq!(Some(got.len()), expected, "the whole page arrived, and nothing more");
    let body_start = got.len() - BIG_PAGE;
    assert!(got[body_start..]
        .iter()
        .enumerate()
        .all(|(i, b)| *b == b'a' + (i % 26) as u8));
}

#[test]
fn a_closing_connection_whose_peer_does_not_read_is_cut_after_the_close_grace() {
    let mut config = GatewayConfig::with_token("t");
    config.close_grace_ms = 100;
    let (addr, stop, dir) = start_with_big_page(config, "cut", BIG_PAGE);
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("the request is sent");
    // Longer than the grace: the runtime gives up on the unread rest and closes the socket.
    std::thread::sleep(Duration::from_millis(1_500));
    let (bytes, closed) = read_to_close(&mut stream, Instant::now() + Duration::from_secs(30));
    stop.stop();
    let _ = std::fs::remove_dir_all(dir);
    assert!(closed, "the connection was cut");
    assert!(bytes.starts_with(b"HTTP/1.1 200 OK"), "the answer began");
    assert!(
        bytes.len() < BIG_PAGE,
        "all of the page arrived: the connection was not cut"
    );
}
