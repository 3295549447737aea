//! Criterion benchmarks of the wire hot paths, each beside a plain `serde_json` parse of the same
//! bytes as the yardstick.

use clawgate_proto::connect::ConnectChallenge;
use clawgate_proto::frame::{EventFrame, RequestFrame, ResponseFrame};
use clawgate_proto::handshake::{ChallengeNonceOnly, ServerHandshake};
use clawgate_proto::scopes::{authorize, ScopeSet};
use clawgate_proto::ws::{encode_frame, OpCode, WsCodec};
use clawgate_proto::Role;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::Value;

const HEALTH_REQ: &str =
    r#"{"type":"req","id":"2:c7c9226f-fcf4-4b67-92e4-2fd65b427f4b","method":"health","params":{}}"#;
const HEALTH_RES: &str = include_str!("../data/health.res.json");
const CHAT_DELTA: &str = include_str!("../data/chat-delta.event.json");
const DEVICE_CONNECT: &str = include_str!("../data/connect.device.req.json");
const DEVICE_CHALLENGE: &str = include_str!("../data/connect.challenge.device.event.json");

fn decode_health_request(c: &mut Criterion) {
    let mut g = c.benchmark_group("health_request");
    let scopes = ScopeSet::from_names(&["operator.read"]);
    g.bench_function("proto_decode_validate_authorize", |b| {
        b.iter(|| {
            let req = RequestFrame::decode(black_box(HEALTH_REQ)).unwrap();
            authorize(Role::Operator, scopes, &req.method).unwrap();
            req
        })
    });
    g.bench_function("serde_json_value_parse", |b| {
        b.iter(|| serde_json::from_str::<Value>(black_box(HEALTH_REQ)).unwrap())
    });
    g.finish();
}

fn encode_health_response(c: &mut Criterion) {
    let golden: Value = serde_json::from_str(HEALTH_RES).unwrap();
    let payload = serde_json::value::to_raw_value(&golden["payload"]).unwrap();
    let id = golden["id"].as_str().unwrap().to_owned();
    let mut g = c.benchmark_group("health_response");
    g.throughput(Throughput::Bytes(HEALTH_RES.len() as u64));
    let mut out = String::with_capacity(4096);
    g.bench_function("proto_encode", |b| {
        b.iter(|| {
            out.clear();
            ResponseFrame::ok_raw(id.clone(), payload.clone()).encode_into(&mut out);
            out.len()
        })
    });
    g.bench_function("serde_json_value_parse", |b| {
        b.iter(|| serde_json::from_str::<Value>(black_box(HEALTH_RES)).unwrap())
    });
    g.finish();
}

fn encode_chat_delta(c: &mut Criterion) {
    let golden: Value = serde_json::from_str(CHAT_DELTA).unwrap();
    let payload = golden["payload"].clone();
    let mut g = c.benchmark_group("chat_delta_event");
    let mut out = String::with_capacity(1024);
    g.bench_function("proto_encode_with_seq", |b| {
        b.iter(|| {
            out.clear();
            let mut e = EventFrame::new("chat", black_box(&payload));
            e.seq = Some(10);
            e.encode_into(&mut out);
            out.len()
        })
    });
    g.bench_function("serde_json_value_parse", |b| {
        b.iter(|| serde_json::from_str::<Value>(black_box(CHAT_DELTA)).unwrap())
    });
    g.finish();
}

fn websocket_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("websocket_unmask_decode");
    for (label, size, count) in [("100B_x1000", 100usize, 1000usize), ("64KiB_x16", 64 * 1024, 16)] {
        let text = "a".repeat(size);
        let mut wire = Vec::new();
        for _ in 0..count {
            encode_frame(OpCode::Text, text.as_bytes(), Some([0x11, 0x22, 0x33, 0x44]), &mut wire);
        }
        g.throughput(Throughput::Bytes(wire.len() as u64));
        g.bench_with_input(BenchmarkId::new("proto", label), &wire, |b, wire| {
            b.iter(|| {
                let mut codec = WsCodec::server(1 << 20);
                let mut n = 0;
                for piece in wire.chunks(64 * 1024) {
                    codec.feed(piece);
                    while let Some(m) = codec.poll_message().unwrap() {
                        black_box(&m);
                        n += 1;
                    }
                }
                assert_eq!(n, count);
            })
        });
        let json_equivalent = serde_json::to_string(&vec![text.clone(); count]).unwrap();
        g.throughput(Throughput::Bytes(json_equivalent.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("serde_json_value_parse", label),
            &json_equivalent,
            |b, s| b.iter(|| serde_json::from_str::<Value>(s).unwrap()),
        );
    }
    g.finish();
}

fn device_connect(c: &mut Criterion) {
    let challenge: Value = serde_json::from_str(DEVICE_CHALLENGE).unwrap();
    let challenge: ConnectChallenge = serde_json::from_value(challenge["payload"].clone()).unwrap();
    let req: Value = serde_json::from_str(DEVICE_CONNECT).unwrap();
    let now = req["params"]["device"]["signedAt"].as_u64().unwrap();
    let text = req.to_string();
    let mut g = c.benchmark_group("device_connect");
    g.bench_function("proto_handshake_with_ed25519_verify", |b| {
        b.iter(|| {
            ServerHandshake::new(challenge.nonce.clone(), now)
                .handle_first_frame(black_box(&text), now, &mut ChallengeNonceOnly)
                .unwrap()
        })
    });
    g.bench_function("serde_json_value_parse", |b| {
        b.iter(|| serde_json::from_str::<Value>(black_box(&text)).unwrap())
    });
    g.finish();
}

criterion_group!(
    benches,
    decode_health_request,
    encode_health_response,
    encode_chat_delta,
    websocket_decode,
    device_connect
);
criterion_main!(benches);
