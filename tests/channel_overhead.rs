//! The gateway's own share of a channel round trip, run by hand:
//! `cargo test --release --test channel_overhead -- --ignored --nocapture`.
//!
//! A stand-in adapter for each channel connects as the real ones do (a node with the cap
//! `channel:<channel>:default`; the accounts are disabled, so the gateway starts no adapter of
//! its own), hands in a direct message with `channel.inbound`, and times the wait until the
//! gateway hands the echo worker's reply back as `channel.deliver`: the durable write of the
//! inbox, the routing, the run on the worker and the delivery, with no chat network in the way.

mod common;

use clawgate_client::{Session, Target};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const TOKEN: &str = "overhead-token-0123456789";

fn adapter(port: u16, channel: &str) -> Session {
    let target = Target {
        url: format!("ws://127.0.0.1:{port}"),
        token: Some(TOKEN.to_owned()),
        node: Some((
            vec![format!("channel:{channel}:default")],
            vec!["channel.send".to_owned()],
        )),
        ..Target::default()
    };
    let mut session = Session::connect(&target).unwrap();
    session
        .call("channel.state", &json!({"running": true, "connected": true}))
        .unwrap();
    session
}

fn payload(event: &clawgate_proto::frame::EventFrame) -> Value {
    event
        .payload
        .as_ref()
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .unwrap_or(Value::Null)
}

/// Microseconds from `channel.inbound` to the `channel.deliver` of its reply, for each message
/// number (message ids are never reused: a repeated id is a duplicate the gateway drops).
fn round_trips(session: &mut Session, channel: &str, numbers: std::ops::Range<usize>) -> Vec<u64> {
    let mut times = Vec::with_capacity(numbers.len());
    for i in numbers {
        let text = format!("{channel} ping {i}");
        let started = Instant::now();
        let inbound = json!({"messageId": format!("m-{i}"), "chatType": "direct", "peerId": "carol",
                             "senderId": "carol", "senderName": "carol", "text": text});
        let answer = session.call("channel.inbound", &inbound).unwrap();
        let answer: Value = answer.map_or(Value::Null, |a| serde_json::from_str(a.get()).unwrap());
        assert_eq!(
            answer["accepted"], true,
            "{channel}: the message was not accepted: {answer}"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(Instant::now() < deadline, "{channel}: no reply to {text:?}");
            let Some(event) = session.try_event().unwrap() else {
                std::thread::yield_now();
                continue;
            };
            if event.event != "channel.deliver" {
                continue;
            }
            let p = payload(&event);
            if p["text"] == text.as_str() {
                times.push(started.elapsed().as_micros() as u64);
                session
                    .call("channel.delivered", &json!({"id": p["id"], "ok": true}))
                    .unwrap();
                break;
            }
        }
    }
    times
}

#[test]
#[ignore]
fn figures_gateway_share_of_a_channel_round_trip() {
    let dir = std::env::temp_dir().join(format!("clawgate-overhead-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let port = common::free_port(24_000);
    let config = json!({
        "gateway": {"port": port, "auth": {"token": TOKEN}},
        "channels": {
            "irc": {"enabled": false, "host": "127.0.0.1", "nick": "clawbot", "dmPolicy": "open", "allowFrom": ["*"]},
            "telegram": {"enabled": false, "botToken": "1:x", "dmPolicy": "open", "allowFrom": ["*"]},
            "matrix": {"enabled": false, "homeserver": "http://127.0.0.1:1", "userId": "@bot:localhost",
                       "accessToken": "x", "dm": {"policy": "open", "allowFrom": ["*"]}},
        },
    });
    std::fs::write(state.join("openclaw.json"), config.to_string()).unwrap();
    let _gateway = common::start_gateway(&state, port, &[]);
    let _worker = common::start_echo_worker(port, TOKEN, 0);
    std::thread::sleep(Duration::from_secs(1));
    for channel in ["irc", "telegram", "matrix"] {
        let mut session = adapter(port, channel);
        round_trips(&mut session, channel, 0..50);
        let mut times = round_trips(&mut session, channel, 50..1050);
        times.sort_unstable();
        let at = |q: f64| times[((times.len() as f64 - 1.0) * q) as usize];
        eprintln!(
            "{channel}: gateway share of a round trip over {} messages: p50 {} us, p99 {} us, max {} us",
            times.len(),
            at(0.5),
            at(0.99),
            times[times.len() - 1]
        );
    }
}
