//! Property tests: round trips under arbitrary content and chunking, and the security properties of
//! device proofs and scope grants.
#![allow(clippy::disallowed_methods)]

use clawgate_proto::connect::{ClientId, ClientMode, ConnectParams, DeviceProof};
use clawgate_proto::device::DeviceIdentity;
use clawgate_proto::frame::{ErrorShape, EventFrame, Frame, RequestFrame, ResponseFrame, StateVersion};
use clawgate_proto::handshake::{verify_device_proof, ChallengeNonceOnly, DeviceProofFailure};
use clawgate_proto::http::{HttpLimits, RequestParser};
use clawgate_proto::limits::DEVICE_SIGNATURE_SKEW_MS;
use clawgate_proto::scopes::{authorize, Scope, ScopeSet};
use clawgate_proto::session::{
    AgentId, SessionKey, SessionRouting, SessionScope, MAX_AGENT_ID_LEN, MAX_SESSION_KEY_LEN,
};
use clawgate_proto::ws::{apply_mask, encode_frame, Message, OpCode, SeededMasks, WsCodec};
use clawgate_proto::Role;
use proptest::prelude::*;
use serde_json::{json, Value};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        (-1e12f64..1e12).prop_map(|f| json!(f)),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn non_empty() -> impl Strategy<Value = String> {
    ".{1,24}"
}

fn frame() -> impl Strategy<Value = Frame> {
    let params = prop::option::of(json_value()).boxed();
    let request = (non_empty(), non_empty(), params.clone()).prop_map(|(id, method, params)| {
        Frame::Request(match params {
            Some(p) => RequestFrame::new(id, method, &p),
            None => RequestFrame {
                id,
                method,
                params: None,
                traceparent: None,
            },
        })
    });
    let error = (
        non_empty(),
        non_empty(),
        prop::option::of(json_value()),
        prop::option::of(any::<u64>()),
    )
        .prop_map(|(code, message, details, retry)| ErrorShape {
            code: code.as_str().into(),
            message,
            details: details.filter(|d| !d.is_null()),
            retryable: retry.map(|_| true),
            retry_after_ms: retry,
        });
    let response = (non_empty(), params.clone(), prop::option::of(error)).prop_map(|(id, payload, error)| {
        let mut r = match payload {
            Some(p) => ResponseFrame::ok(id, &p),
            None => ResponseFrame::ok_raw(id, serde_json::value::to_raw_value(&json!({})).unwrap()),
        };
        if let Some(e) = error {
            r.ok = false;
            r.payload = None;
            r.error = Some(e);
        }
        Frame::Response(r)
    });
    let event = (
        non_empty(),
        params,
        prop::option::of(any::<u64>()),
        prop::option::of((any::<u64>(), any::<u64>())),
    )
        .prop_map(|(name, payload, seq, sv)| {
            let mut e = EventFrame::new(name, &payload.unwrap_or(Value::Null));
            e.seq = seq;
            e.state_version = sv.map(|(presence, health)| StateVersion { presence, health });
            Frame::Event(e)
        });
    prop_oneof![request, response, event]
}

/// Splits `bytes` at the given cut points (taken modulo the length).
fn chunks(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    points.dedup();
    points.windows(2).map(|w| bytes[w[0]..w[1]].to_vec()).collect()
}

#[derive(Debug, Clone)]
enum Msg {
    Text(String),
    Binary(Vec<u8>),
}

fn ws_message() -> impl Strategy<Value = (Msg, Vec<usize>)> {
    let msg = prop_oneof![
        ".{0,300}".prop_map(Msg::Text),
        prop::collection::vec(any::<u8>(), 0..70_000).prop_map(Msg::Binary),
    ];
    // Fragment boundaries inside the message.
    (msg, prop::collection::vec(any::<usize>(), 0..4))
}

/// Encodes a message as one or more masked fragments.
fn encode_fragmented(msg: &Msg, splits: &[usize], masks: &mut SeededMasks, out: &mut Vec<u8>) {
    use clawgate_proto::ws::MaskSource;
    let (opcode, data): (u8, &[u8]) = match msg {
        Msg::Text(t) => (0x1, t.as_bytes()),
        Msg::Binary(b) => (0x2, b),
    };
    let parts = chunks(data, splits);
    let parts: Vec<&[u8]> = if parts.is_empty() {
        vec![&[][..]]
    } else {
        parts.iter().map(Vec::as_slice).collect()
    };
    for (i, part) in parts.iter().enumerate() {
        let fin = i + 1 == parts.len();
        let op = if i == 0 { opcode } else { 0 };
        out.push(if fin { 0x80 | op } else { op });
        let len = part.len();
        if len < 126 {
            out.push(0x80 | len as u8);
        } else if len <= u16::MAX as usize {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        let mask = masks.next_mask();
        out.extend_from_slice(&mask);
        let start = out.len();
        out.extend_from_slice(part);
        apply_mask(&mut out[start..], mask);
    }
}

fn base_params(scopes: Vec<String>) -> Value {
    json!({
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": "cli", "version": "1", "platform": "Linux", "deviceFamily": "Desktop", "mode": "cli"},
        "role": "operator", "scopes": scopes, "auth": {"token": "tok"},
    })
}

fn sign(identity: &DeviceIdentity, params: &Value, nonce: &str, signed_at: u64) -> Value {
    let parsed = ConnectParams::parse(&params.to_string()).unwrap();
    let mut p = params.clone();
    p["device"] = serde_json::to_value(DeviceProof::sign(identity, &parsed, nonce, signed_at)).unwrap();
    p
}

fn check(params: &Value, nonce: &str, now: u64) -> Result<(), DeviceProofFailure> {
    let parsed = ConnectParams::parse(&params.to_string()).unwrap();
    let device = parsed.device.clone().unwrap();
    verify_device_proof(&parsed, &device, nonce, now, &mut ChallengeNonceOnly).map(|_| ())
}

/// A change to one signed field that changes the signed payload.
#[derive(Debug, Clone)]
enum Tamper {
    ClientId(usize),
    ClientMode(usize),
    Role,
    AddScope(String),
    DropScope,
    ReverseScopes,
    Token(String),
    Platform(String),
    DeviceFamily(String),
    SignedAt(u64),
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        (0..ClientId::ALL.len()).prop_map(Tamper::ClientId),
        (0..ClientMode::ALL.len()).prop_map(Tamper::ClientMode),
        Just(Tamper::Role),
        "[a-z.]{1,12}".prop_map(Tamper::AddScope),
        Just(Tamper::DropScope),
        Just(Tamper::ReverseScopes),
        "[ -~]{0,12}".prop_map(Tamper::Token),
        "[a-z0-9 ]{1,12}".prop_map(Tamper::Platform),
        "[a-z0-9 ]{1,12}".prop_map(Tamper::DeviceFamily),
        (1..DEVICE_SIGNATURE_SKEW_MS).prop_map(Tamper::SignedAt),
    ]
}

/// Applies the tamper; returns false when it would not change the signed payload (then it is no
/// tampering at all and the property does not apply).
fn apply_tamper(p: &mut Value, t: &Tamper) -> bool {
    let before = p.clone();
    match t {
        Tamper::ClientId(i) => p["client"]["id"] = ClientId::ALL[*i].as_str().into(),
        Tamper::ClientMode(i) => p["client"]["mode"] = ClientMode::ALL[*i].as_str().into(),
        Tamper::Role => p["role"] = "node".into(),
        Tamper::AddScope(s) => p["scopes"].as_array_mut().unwrap().push(s.clone().into()),
        Tamper::DropScope => {
            p["scopes"].as_array_mut().unwrap().pop();
        }
        Tamper::ReverseScopes => p["scopes"].as_array_mut().unwrap().reverse(),
        Tamper::Token(s) => p["auth"]["token"] = s.clone().into(),
        Tamper::Platform(s) => p["client"]["platform"] = s.clone().into(),
        Tamper::DeviceFamily(s) => p["client"]["deviceFamily"] = s.clone().into(),
        Tamper::SignedAt(d) => {
            let v = p["device"]["signedAt"].as_u64().unwrap();
            p["device"]["signedAt"] = (v + d).into();
        }
    }
    // The v3 payload lowercases and trims platform and family; v2 leaves them out entirely, so a
    // change there must survive normalization to count.
    let norm = |v: &Value| v.as_str().map(|s| s.trim().to_ascii_lowercase());
    let meaningful = match t {
        Tamper::Platform(_) => norm(&p["client"]["platform"]) != norm(&before["client"]["platform"]),
        Tamper::DeviceFamily(_) => norm(&p["client"]["deviceFamily"]) != norm(&before["client"]["deviceFamily"]),
        _ => *p != before,
    };
    meaningful && ConnectParams::parse(&p.to_string()).is_ok()
}

fn scope_set() -> impl Strategy<Value = ScopeSet> {
    prop::collection::vec(prop::sample::select(Scope::ALL.to_vec()), 0..6).prop_map(|v| v.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn frames_round_trip(f in frame()) {
        let text = f.encode();
        let back = Frame::decode(&text).unwrap();
        prop_assert_eq!(&back, &f);
        let v1: Value = serde_json::from_str(&text).unwrap();
        let v2: Value = serde_json::from_str(&back.encode()).unwrap();
        prop_assert_eq!(v1, v2);
    }

    #[test]
    fn arbitrary_text_never_panics_the_frame_decoder(s in ".{0,200}") {
        let _ = Frame::decode(&s);
    }

    #[test]
    fn websocket_messages_survive_fragmentation_and_chunking(
        msgs in prop::collection::vec(ws_message(), 1..5),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
        seed in any::<[u8; 8]>(),
    ) {
        let mut masks = SeededMasks::new(seed);
        let mut wire = Vec::new();
        for (m, splits) in &msgs {
            encode_fragmented(m, splits, &mut masks, &mut wire);
        }
        let mut server = WsCodec::server(1 << 20);
        let mut got = Vec::new();
        for chunk in chunks(&wire, &cuts) {
            server.feed(&chunk);
            while let Some(m) = server.poll_message().unwrap() {
                got.push(m);
            }
        }
        let expected: Vec<Message> = msgs.iter().map(|(m, _)| match m {
            Msg::Text(t) => Message::Text(t.clone()),
            Msg::Binary(b) => Message::Binary(b.clone()),
        }).collect();
        prop_assert_eq!(got, expected);
        prop_assert_eq!(server.heap_bytes(), 0);
    }

    #[test]
    fn server_to_client_text_round_trips(texts in prop::collection::vec(".{0,2000}", 1..6), cuts in prop::collection::vec(any::<usize>(), 0..10)) {
        let mut server = WsCodec::server(1 << 20);
        let mut client = WsCodec::client(1 << 20, Box::new(SeededMasks::new([5; 8])));
        let mut wire = Vec::new();
        for t in &texts {
            server.encode_text(t, &mut wire);
        }
        let mut got = Vec::new();
        for chunk in chunks(&wire, &cuts) {
            client.feed(&chunk);
            while let Some(Message::Text(t)) = client.poll_message().unwrap() {
                got.push(t);
            }
        }
        prop_assert_eq!(got, texts);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_websocket_decoder(bytes in prop::collection::vec(any::<u8>(), 0..512), limit in 0usize..2048) {
        let mut codec = WsCodec::server(limit);
        codec.feed(&bytes);
        while let Ok(Some(_)) = codec.poll_message() {}
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_http_parser(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        let mut p = RequestParser::new(HttpLimits { max_head_bytes: 512, max_headers: 8, max_body_bytes: 64 });
        p.feed(&bytes);
        while let Ok(Some(_)) = p.poll_request() {}
    }

    #[test]
    fn changing_any_signed_field_invalidates_the_signature(seed in any::<[u8; 32]>(), t in tamper()) {
        let identity = DeviceIdentity::from_seed(&seed);
        let now = 1_800_000_000_000;
        let signed = sign(&identity, &base_params(vec!["operator.read".into(), "operator.write".into()]), "nonce-a", now);
        prop_assert_eq!(check(&signed, "nonce-a", now), Ok(()));
        let mut tampered = signed.clone();
        prop_assume!(apply_tamper(&mut tampered, &t));
        prop_assert_eq!(check(&tampered, "nonce-a", now), Err(DeviceProofFailure::SignatureInvalid));
    }

    #[test]
    fn a_nonce_from_another_socket_is_a_mismatch(seed in any::<[u8; 32]>(), other in "[a-f0-9-]{1,36}") {
        prop_assume!(other != "nonce-a");
        let identity = DeviceIdentity::from_seed(&seed);
        let now = 1_800_000_000_000;
        let signed = sign(&identity, &base_params(vec![]), &other, now);
        prop_assert_eq!(check(&signed, "nonce-a", now), Err(DeviceProofFailure::NonceMismatch));
    }

    #[test]
    fn skew_beyond_the_limit_expires_and_within_it_never_does(seed in any::<[u8; 32]>(), skew in 0u64..400_000, ahead in any::<bool>()) {
        let identity = DeviceIdentity::from_seed(&seed);
        let signed_at = 1_800_000_000_000;
        let now = if ahead { signed_at + skew } else { signed_at - skew };
        let signed = sign(&identity, &base_params(vec![]), "nonce-a", signed_at);
        let result = check(&signed, "nonce-a", now);
        if skew > DEVICE_SIGNATURE_SKEW_MS {
            prop_assert_eq!(result, Err(DeviceProofFailure::SignatureExpired));
        } else {
            prop_assert_eq!(result, Ok(()));
        }
    }

    #[test]
    fn granted_scopes_are_never_wider_than_allowed(requested in scope_set(), allowed in scope_set(), method_idx in 0usize..6) {
        let granted = requested.restrict_to(allowed);
        for s in granted.iter() {
            prop_assert!(allowed.allows(s));
            prop_assert!(requested.contains(s));
        }
        let methods = ["status", "chat.send", "device.pair.approve", "config.set", "exec.approval.list", "no.such.method"];
        let m = methods[method_idx];
        if authorize(Role::Operator, granted, m).is_ok() {
            prop_assert!(authorize(Role::Operator, allowed, m).is_ok());
            prop_assert!(authorize(Role::Operator, requested, m).is_ok());
        }
    }
}

#[test]
fn encode_frame_lengths_at_the_edges_decode() {
    for len in [0usize, 125, 126, 65_535, 65_536] {
        let data = vec![b'a'; len];
        let mut wire = Vec::new();
        encode_frame(OpCode::Binary, &data, Some([9, 8, 7, 6]), &mut wire);
        let mut s = WsCodec::server(1 << 20);
        s.feed(&wire);
        assert_eq!(s.poll_message().unwrap(), Some(Message::Binary(data)), "{len}");
    }
}

#[test]
fn the_message_limit_holds_at_its_edge() {
    for (len, ok) in [(64 * 1024, true), (64 * 1024 + 1, false)] {
        let mut wire = Vec::new();
        encode_frame(OpCode::Text, &vec![b'a'; len], Some([1, 1, 1, 1]), &mut wire);
        let mut s = WsCodec::server(64 * 1024);
        s.feed(&wire);
        assert_eq!(s.poll_message().is_ok(), ok, "{len}");
    }
}

/// Request keys: mostly key-like text, sometimes anything.
fn request_key() -> impl Strategy<Value = String> {
    prop_oneof![
        "(agent|AGENT|main|Main|global|x|)(:{0,2}[A-Za-z0-9 _-]{0,12}){0,4}",
        ".{0,60}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn agent_ids_normalise_to_safe_stable_ids(raw in ".{0,80}") {
        let id = AgentId::normalize(&raw);
        let text = id.as_str();
        prop_assert!(!text.is_empty() && text.len() <= MAX_AGENT_ID_LEN);
        prop_assert!(text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'));
        prop_assert_eq!(&AgentId::normalize(text), &id);
        if AgentId::is_valid(&raw) {
            prop_assert_eq!(text, raw.trim().to_ascii_lowercase());
        }
    }

    #[test]
    fn resolved_session_keys_are_stable(
        key in request_key(),
        agent in prop::option::of("[A-Za-z !_-]{0,10}"),
        global in any::<bool>(),
    ) {
        let routing = SessionRouting {
            scope: if global { SessionScope::Global } else { SessionScope::PerSender },
            ..SessionRouting::default()
        };
        let Ok(resolved) = routing.resolve(Some(&key), agent.as_deref()) else {
            let only_separators = key.chars().all(|c| c == ':' || c.is_whitespace());
            prop_assert!(
                key.len() > MAX_SESSION_KEY_LEN || key.chars().any(char::is_control) || only_separators
            );
            return Ok(());
        };
        // Resolving a stored key again names the same session.
        prop_assert_eq!(routing.resolve(Some(&resolved), None), Ok(resolved.clone()));
        prop_assert_eq!(routing.resolve(Some(&resolved), Some("other")), Ok(resolved.clone()));
        // Keys are case-insensitive.
        prop_assert_eq!(routing.resolve(Some(&key.to_ascii_uppercase()), agent.as_deref()).map(|k| k.to_lowercase()), Ok(resolved.to_lowercase()));
        // A key that was not already agent-scoped lands in the request's agent.
        let lowered = key.trim().to_lowercase();
        if !lowered.starts_with("agent:") && !(global && (lowered.is_empty() || lowered == "main" || lowered == "global")) {
            let parsed = SessionKey::parse(&resolved);
            prop_assert!(parsed.is_some(), "{} -> {}", key, resolved);
            let want = agent.as_deref().filter(|a| !a.trim().is_empty()).map(AgentId::normalize).unwrap_or_default();
            prop_assert_eq!(parsed.map(|p| p.agent_id().to_owned()), Some(want.as_str().to_owned()));
        }
    }
}
