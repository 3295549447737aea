//! The server handshake driven by an arbitrary sequence of operations: bytes, frames, pings,
//! closes, well-formed or damaged `connect` requests (with and without device proofs) and the
//! passing of time, all through the WebSocket codec as a real socket would deliver them.
#![no_main]

use arbitrary::Arbitrary;
use clawgate_proto::close::CloseFrame;
use clawgate_proto::connect::{ClientId, ClientMode};
use clawgate_proto::device::{DeviceIdentity, SignaturePayload, SignatureVersion};
use clawgate_proto::frame::RequestFrame;
use clawgate_proto::handshake::{ChallengeNonceOnly, ConnectRejection, ServerHandshake};
use clawgate_proto::limits::{DEVICE_SIGNATURE_SKEW_MS, HANDSHAKE_TIMEOUT_MS, MAX_PREAUTH_PAYLOAD_BYTES};
use clawgate_proto::scopes::{authorize, Scope, ScopeSet};
use clawgate_proto::ws::{encode_frame, Message, OpCode, WsCodec};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

#[derive(Arbitrary, Debug)]
struct DeviceSpec {
    seed: [u8; 32],
    use_challenge_nonce: bool,
    skew_ms: i32,
    corrupt_signature: bool,
    wrong_id: bool,
    sign_v2: bool,
}

#[derive(Arbitrary, Debug)]
struct ConnectSpec {
    min_protocol: u8,
    max_protocol: u8,
    client: u8,
    mode: u8,
    node_role: bool,
    scopes: Vec<u8>,
    token: Option<String>,
    device: Option<DeviceSpec>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Advance(u16),
    RawBytes(Vec<u8>),
    Text(String),
    Ping(Vec<u8>),
    Close(u16),
    Connect(ConnectSpec),
    Request { method: u8, id: String },
    ChunkSize(u8),
}

const METHODS: &[&str] = &["health", "status", "chat.send", "config.set", "node.event", "device.pair.list", "x.y"];

fn masked(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(opcode, payload, Some([0x12, 0x34, 0x56, 0x78]), &mut out);
    out
}

/// Builds the connect text; returns it and whether every check of the handshake must pass.
fn connect_text(spec: &ConnectSpec, nonce: &str, now: u64) -> (String, bool) {
    let client = ClientId::ALL[spec.client as usize % ClientId::ALL.len()];
    let mode = ClientMode::ALL[spec.mode as usize % ClientMode::ALL.len()];
    let role = if spec.node_role { "node" } else { "operator" };
    let scopes: Vec<String> = spec.scopes.iter().take(8).map(|s| Scope::ALL[*s as usize % Scope::ALL.len()].as_str().to_owned()).collect();
    let mut params = json!({
        "minProtocol": spec.min_protocol.max(1), "maxProtocol": spec.max_protocol.max(1),
        "client": {"id": client.as_str(), "version": "1", "platform": "Linux", "deviceFamily": "Box", "mode": mode.as_str()},
        "role": role, "scopes": scopes,
    });
    if let Some(t) = &spec.token {
        params["auth"] = json!({"token": t});
    }
    let proto_ok = (spec.min_protocol.max(1)..=spec.max_protocol.max(1)).contains(&4);
    let mut all_valid = proto_ok;
    if let Some(d) = &spec.device {
        let identity = DeviceIdentity::from_seed(&d.seed);
        let signed_at = (now as i64 + d.skew_ms as i64).max(0) as u64;
        let device_nonce = if d.use_challenge_nonce { nonce.to_owned() } else { format!("{nonce}-other") };
        let payload = SignaturePayload {
            device_id: identity.device_id(),
            client_id: client.as_str(),
            client_mode: mode.as_str(),
            role,
            scopes: &scopes,
            signed_at_ms: signed_at,
            token: spec.token.as_deref().unwrap_or(""),
            nonce: &device_nonce,
            platform: "Linux",
            device_family: "Box",
        };
        let version = if d.sign_v2 { SignatureVersion::V2 } else { SignatureVersion::V3 };
        let mut signature = identity.sign(&payload.render(version));
        if d.corrupt_signature {
            signature = identity.sign("something else");
        }
        let id = if d.wrong_id { "0".repeat(64) } else { identity.device_id().to_owned() };
        params["device"] = json!({"id": id, "publicKey": identity.public_key_b64url(), "signature": signature, "signedAt": signed_at, "nonce": device_nonce});
        all_valid &= d.use_challenge_nonce
            && !d.corrupt_signature
            && !d.wrong_id
            && (d.skew_ms.unsigned_abs() as u64) <= DEVICE_SIGNATURE_SKEW_MS;
    }
    let text = json!({"type": "req", "id": "c", "method": "connect", "params": params}).to_string();
    (text, all_valid)
}

enum State {
    Handshaking(ServerHandshake),
    Open { role: clawgate_proto::Role, scopes: ScopeSet },
    Closed,
}

fuzz_target!(|ops: Vec<Op>| {
    let start = 1_800_000_000_000u64;
    let mut now = start;
    let mut codec = WsCodec::server(MAX_PREAUTH_PAYLOAD_BYTES);
    let mut state = State::Handshaking(ServerHandshake::new("nonce-1", now));
    let mut chunk = 64usize;
    let mut expect_accept = None;
    let mut out = Vec::new();
    for op in ops {
        if matches!(state, State::Closed) {
            break;
        }
        let bytes = match op {
            Op::Advance(ms) => {
                now += ms as u64;
                if matches!(state, State::Handshaking(_)) && now - start > HANDSHAKE_TIMEOUT_MS {
                    let close = ConnectRejection::HandshakeTimeout.close();
                    codec.encode_close(Some(&close), &mut out);
                    state = State::Closed;
                }
                continue;
            }
            Op::ChunkSize(c) => {
                chunk = c as usize + 1;
                continue;
            }
            Op::RawBytes(b) => b,
            Op::Text(t) => masked(OpCode::Text, t.as_bytes()),
            Op::Ping(p) => masked(OpCode::Ping, &p[..p.len().min(125)]),
            Op::Close(c) => masked(OpCode::Close, &c.to_be_bytes()),
            Op::Connect(spec) => {
                let nonce = match &state {
                    State::Handshaking(h) => h.nonce().to_owned(),
                    _ => "nonce-1".to_owned(),
                };
                let (text, valid) = connect_text(&spec, &nonce, now);
                expect_accept = Some(valid);
                masked(OpCode::Text, text.as_bytes())
            }
            Op::Request { method, id } => {
                let m = METHODS[method as usize % METHODS.len()];
                masked(OpCode::Text, RequestFrame::new(id, m, &json!({})).encode().as_bytes())
            }
        };
        for piece in bytes.chunks(chunk) {
            codec.feed(piece);
            loop {
                let message = match codec.poll_message() {
                    Ok(Some(m)) => m,
                    Ok(None) => break,
                    Err(e) => {
                        codec.encode_close(Some(&e.close_frame()), &mut out);
                        state = State::Closed;
                        break;
                    }
                };
                match (message, std::mem::replace(&mut state, State::Closed)) {
                    (Message::Text(t), State::Handshaking(hs)) => match hs.handle_first_frame(&t, now, &mut ChallengeNonceOnly) {
                        Ok(accepted) => {
                            let scopes = ScopeSet::from_names(accepted.params.scopes());
                            codec.set_max_message_size(clawgate_proto::limits::MAX_PAYLOAD_BYTES);
                            state = State::Open { role: accepted.role, scopes };
                            expect_accept = None;
                        }
                        Err(rejection) => {
                            assert_ne!(expect_accept.take(), Some(true), "a fully valid connect was rejected: {rejection:?}");
                            assert!(rejection.close.reason.len() <= 120);
                            if let Some(res) = &rejection.response {
                                assert!(!res.ok && res.error.is_some());
                            }
                            codec.encode_close(Some(&rejection.close), &mut out);
                        }
                    },
                    (Message::Text(t), State::Open { role, scopes }) => {
                        if let Ok(req) = RequestFrame::decode(&t) {
                            if authorize(role, scopes, &req.method).is_ok() && req.method != "health" {
                                // Whatever passes the gate for these scopes passes for the full set.
                                assert!(authorize(role, ScopeSet::all(), &req.method).is_ok());
                            }
                        }
                        state = State::Open { role, scopes };
                    }
                    (Message::Ping(p), s) => {
                        codec.encode_pong(&p, &mut out);
                        state = s;
                    }
                    (Message::Close(_), _) => {
                        codec.encode_close(Some(&CloseFrame::new(1000, "")), &mut out);
                    }
                    (_, s) => state = s,
                }
                if matches!(state, State::Closed) {
                    break;
                }
            }
            if matches!(state, State::Closed) {
                break;
            }
        }
        out.clear();
    }
});
