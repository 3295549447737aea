//! Golden tests: frames captured from the real OpenClaw gateway and its official clients.
//!
//! The captures live in `proto/tests/golden/` (see the README there for where they came from), or
//! in `$CLAWGATE_GOLDEN_DIR` to check a fresh capture before it is copied in. Every captured frame must decode and re-encode to the same JSON, every
//! captured `connect` must be accepted by the schema, every captured device proof must verify, and
//! the server handshake fed the captured requests must answer as the real gateway did.

// The tests read the captures from disk; the library itself never does.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use clawgate_proto::auth::{AuthMode, SharedSecretConfig};
use clawgate_proto::connect::{
    ConnectChallenge, ConnectParams, HelloAuth, HelloFeatures, HelloOk, HelloPolicy, HelloServer,
};
use clawgate_proto::device::{parse_private_key_pem, DeviceIdentity, SignatureVersion};
use clawgate_proto::frame::{ErrorShape, Frame, ResponseFrame};
use clawgate_proto::handshake::{verify_device_proof, ChallengeNonceOnly, ServerHandshake};
use clawgate_proto::scopes::{authorize, ScopeSet};
use clawgate_proto::Role;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn golden_dir() -> PathBuf {
    let dir = std::env::var_os("CLAWGATE_GOLDEN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden"));
    assert!(
        dir.is_dir(),
        "golden captures not found at {} (set CLAWGATE_GOLDEN_DIR)",
        dir.display()
    );
    dir
}

fn read_json(name: &str) -> Value {
    let path = golden_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Every captured frame, with where it came from and its connection (for pairing challenges with
/// the connects that answer them).
fn captured_frames() -> Vec<(String, String, Value)> {
    let mut files = Vec::new();
    walk(&golden_dir(), &mut files);
    let mut frames = Vec::new();
    for path in files {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ext == "json" {
            let Ok(v) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if matches!(v.get("type").and_then(Value::as_str), Some("req" | "res" | "event")) {
                frames.push((name.clone(), String::new(), v));
            }
        } else if ext == "jsonl" {
            for (i, line) in text.lines().enumerate() {
                let Ok(v) = serde_json::from_str::<Value>(line) else {
                    continue;
                };
                if let Some(frame) = v.get("frame").filter(|f| f.get("type").is_some()) {
                    let conn = v.get("conn").map(|c| c.to_string()).unwrap_or_default();
                    frames.push((format!("{name}:{}", i + 1), format!("{name}#{conn}"), frame.clone()));
                }
            }
        }
    }
    frames
}

#[test]
fn every_captured_frame_decodes_and_reencodes_to_the_same_json() {
    let frames = captured_frames();
    assert!(
        frames.len() > 100,
        "expected many captured frames, found {}",
        frames.len()
    );
    for (origin, _, value) in &frames {
        let text = value.to_string();
        let frame = Frame::decode(&text).unwrap_or_else(|e| panic!("{origin}: {e}"));
        let again: Value = serde_json::from_str(&frame.encode()).unwrap();
        assert_eq!(&again, value, "{origin}");
    }
}

#[test]
fn every_captured_connect_gets_the_schema_verdict_of_the_real_gateway() {
    let frames = captured_frames();
    let answers: HashMap<(String, String), Value> = frames
        .iter()
        .filter(|(_, _, v)| v["type"] == "res")
        .map(|(_, conn, v)| ((conn.clone(), v["id"].as_str().unwrap_or("").to_owned()), v.clone()))
        .collect();
    let (mut accepted, mut refused) = (0, 0);
    for (origin, conn, value) in &frames {
        if value["type"] != "req" || value["method"] != "connect" {
            continue;
        }
        let answer = answers.get(&(conn.clone(), value["id"].as_str().unwrap_or("").to_owned()));
        let refused_by_schema = answer.is_some_and(|a| {
            a["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("invalid connect params"))
        });
        match ConnectParams::parse(&value["params"].to_string()) {
            Ok(params) => {
                assert!(!refused_by_schema, "{origin}: the real gateway refused these params");
                assert_eq!(serde_json::to_value(&params).unwrap(), value["params"], "{origin}");
                accepted += 1;
            }
            Err(e) => {
                let real = answer.map(|a| a["error"]["message"].clone());
                assert!(
                    refused_by_schema,
                    "{origin}: refused ({e}) but the real gateway answered {real:?}"
                );
                assert_eq!(real.unwrap(), format!("invalid connect params: {e}"), "{origin}");
                refused += 1;
            }
        }
    }
    assert!(accepted >= 10, "only {accepted} accepted connect requests found");
    assert!(refused >= 1, "the captured schema refusal was not found");
}

#[test]
fn every_captured_hello_ok_decodes_losslessly() {
    let mut seen = 0;
    for (origin, _, value) in captured_frames() {
        if value["type"] == "res" && value["payload"]["type"] == "hello-ok" {
            let hello: HelloOk =
                serde_json::from_value(value["payload"].clone()).unwrap_or_else(|e| panic!("{origin}: {e}"));
            assert_eq!(hello.protocol, 4);
            assert_eq!(serde_json::to_value(&hello).unwrap(), value["payload"], "{origin}");
            seen += 1;
        }
    }
    assert!(seen >= 3);
}

#[test]
fn every_captured_device_proof_verifies_against_its_challenge() {
    let mut challenges: HashMap<String, String> = HashMap::new();
    let mut verified = HashMap::new();
    for (origin, conn, value) in captured_frames() {
        if value["type"] == "event" && value["event"] == "connect.challenge" && !conn.is_empty() {
            let c: ConnectChallenge = serde_json::from_value(value["payload"].clone()).unwrap();
            challenges.insert(conn.clone(), c.nonce);
        }
        if value["type"] == "req" && value["method"] == "connect" && !value["params"]["device"].is_null() {
            let Some(nonce) = challenges.get(&conn) else { continue };
            let params = ConnectParams::parse(&value["params"].to_string()).unwrap();
            let device = params.device.clone().unwrap();
            let result = verify_device_proof(&params, &device, nonce, device.signed_at, &mut ChallengeNonceOnly);
            let v = result.unwrap_or_else(|e| panic!("{origin}: {e:?}"));
            *verified.entry(format!("{:?}", v.signature_version)).or_insert(0) += 1;
        }
    }
    // The CLI signs v3 and the Control UI signs v2; both must be seen and verified.
    assert!(verified.get("V3").copied().unwrap_or(0) > 0, "{verified:?}");
    assert!(verified.get("V2").copied().unwrap_or(0) > 0, "{verified:?}");
}

#[test]
fn the_captured_identity_signs_the_captured_payload() {
    let ident = read_json("device-identity.json");
    let seed = parse_private_key_pem(ident["privateKeyPem"].as_str().unwrap()).unwrap();
    let id = DeviceIdentity::from_seed(&seed);
    assert_eq!(id.device_id(), ident["deviceId"]);
    assert_eq!(id.public_key_b64url(), ident["publicKeyRawB64Url"]);
    let req = read_json("connect.device.req.json");
    // ed25519 signatures are deterministic: signing the captured payload must give the captured signature.
    assert_eq!(
        id.sign(ident["signedPayload"].as_str().unwrap()),
        req["params"]["device"]["signature"]
    );
}

fn handshake_for(challenge_file: Option<&str>, req: &Value) -> (ServerHandshake, u64) {
    let now = req["params"]["device"]["signedAt"]
        .as_u64()
        .unwrap_or(1_795_694_455_000);
    let nonce = match challenge_file {
        Some(f) => read_json(f)["payload"]["nonce"].as_str().unwrap().to_owned(),
        None => req["params"]["device"]["nonce"].as_str().unwrap_or("unused").to_owned(),
    };
    (ServerHandshake::new(nonce, now), now)
}

fn golden_close(name: &str) -> (u16, String) {
    let c = read_json(name);
    (
        c["code"].as_u64().unwrap() as u16,
        c["reason"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn bad_signature_gets_the_captured_answer_and_close() {
    let req = read_json("connect.bad-signature.req.json");
    let (hs, now) = handshake_for(None, &req);
    let rejection = hs
        .handle_first_frame(&req.to_string(), now, &mut ChallengeNonceOnly)
        .unwrap_err();
    let res: Value = serde_json::from_str(&rejection.response.unwrap().encode()).unwrap();
    assert_eq!(res, read_json("connect.bad-signature.error.res.json"));
    assert_eq!(
        (rejection.close.code, rejection.close.reason),
        golden_close("connect.bad-signature.close.json")
    );
}

fn token_config() -> SharedSecretConfig {
    SharedSecretConfig {
        mode: AuthMode::Token,
        token: Some("tok123".into()),
        password: None,
    }
}

#[test]
fn bad_token_gets_the_captured_answer_and_close() {
    let req = read_json("connect.bad-token.req.json");
    let (hs, now) = handshake_for(None, &req);
    let accepted = hs
        .handle_first_frame(&req.to_string(), now, &mut ChallengeNonceOnly)
        .unwrap();
    let failure = token_config().check(accepted.params.auth.as_ref()).unwrap_err();
    let rejection = accepted.reject(&accepted.unauthorized(failure));
    let res: Value = serde_json::from_str(&rejection.response.unwrap().encode()).unwrap();
    assert_eq!(res, read_json("connect.bad-token.error.res.json"));
    assert_eq!(
        (rejection.close.code, rejection.close.reason),
        golden_close("connect.bad-token.close.json")
    );
}

fn hello_for(auth: HelloAuth, conn_id: &str) -> HelloOk {
    HelloOk {
        ty: HelloOk::TYPE.into(),
        protocol: 4,
        server: HelloServer {
            version: "test".into(),
            conn_id: conn_id.into(),
            extra: Default::default(),
        },
        features: HelloFeatures {
            methods: vec!["health".into()],
            events: vec!["tick".into()],
            capabilities: None,
            extra: Default::default(),
        },
        snapshot: json!({"presence": [], "health": {}, "stateVersion": {"presence": 0, "health": 0}, "uptimeMs": 0}),
        auth,
        policy: HelloPolicy::default(),
        extra: Default::default(),
    }
}

fn assert_hello_matches(ours: &ResponseFrame, golden_name: &str) {
    let ours: Value = serde_json::from_str(&ours.encode()).unwrap();
    let golden = read_json(golden_name);
    assert_eq!(ours["id"], golden["id"]);
    assert_eq!(ours["ok"], true);
    for key in ["type", "protocol"] {
        assert_eq!(ours["payload"][key], golden["payload"][key], "{key}");
    }
    for key in ["method", "role", "scopes"] {
        assert_eq!(
            ours["payload"]["auth"][key], golden["payload"]["auth"][key],
            "auth.{key}"
        );
    }
    for key in ["maxPayload", "maxBufferedBytes", "tickIntervalMs"] {
        assert_eq!(
            ours["payload"]["policy"][key], golden["payload"]["policy"][key],
            "policy.{key}"
        );
    }
}

#[test]
fn token_connect_is_accepted_with_the_captured_auth() {
    let req = read_json("connect.token.req.json");
    let (hs, now) = handshake_for(None, &req);
    let accepted = hs
        .handle_first_frame(&req.to_string(), now, &mut ChallengeNonceOnly)
        .unwrap();
    let method = token_config().check(accepted.params.auth.as_ref()).unwrap();
    assert!(accepted.device.is_none());
    let auth = HelloAuth {
        method: Some(method.as_str().into()),
        role: accepted.role.as_str().into(),
        scopes: accepted.params.scopes().to_vec(),
        device_token: None,
        issued_at_ms: None,
        device_tokens: None,
        extra: Default::default(),
    };
    let res = accepted.accept(&hello_for(auth, "c1"));
    assert_hello_matches(&res, "hello-ok.token.res.json");
}

#[test]
fn device_connect_is_accepted_with_a_v3_proof() {
    let req = read_json("connect.device.req.json");
    let (hs, now) = handshake_for(Some("connect.challenge.device.event.json"), &req);
    assert_eq!(hs.nonce(), req["params"]["device"]["nonce"]);
    let accepted = hs
        .handle_first_frame(&req.to_string(), now, &mut ChallengeNonceOnly)
        .unwrap();
    let device = accepted.device.clone().unwrap();
    assert_eq!(device.id, read_json("device-identity.json")["deviceId"]);
    assert_eq!(device.signature_version, SignatureVersion::V3);
    let golden = read_json("hello-ok.device.res.json");
    let auth = HelloAuth {
        method: Some("token".into()),
        role: "operator".into(),
        scopes: accepted.params.scopes().to_vec(),
        device_token: Some("t".repeat(43)),
        issued_at_ms: Some(now),
        device_tokens: None,
        extra: Default::default(),
    };
    let res = accepted.accept(&hello_for(auth, "c2"));
    assert_hello_matches(&res, "hello-ok.device.res.json");
    assert_eq!(golden["payload"]["auth"]["deviceToken"].as_str().unwrap().len(), 43);
}

#[test]
fn probe_mode_connect_with_protocol_range_3_to_4_is_accepted() {
    let req = read_json("connect.cli-probe-mode.req.json");
    let (hs, now) = handshake_for(None, &req);
    let accepted = hs
        .handle_first_frame(&req.to_string(), now, &mut ChallengeNonceOnly)
        .unwrap();
    assert_eq!(accepted.params.min_protocol, 3);
    // The real gateway clears a device-less probe's scopes; the hello it sends says so.
    let auth = HelloAuth {
        method: Some("token".into()),
        role: "operator".into(),
        scopes: vec![],
        device_token: None,
        issued_at_ms: None,
        device_tokens: None,
        extra: Default::default(),
    };
    assert_hello_matches(
        &accepted.accept(&hello_for(auth, "c3")),
        "hello-ok.cli-probe-mode.res.json",
    );
}

#[test]
fn the_challenge_has_the_captured_shape() {
    let golden = read_json("connect.challenge.event.json");
    let nonce = golden["payload"]["nonce"].as_str().unwrap();
    let ts = golden["payload"]["ts"].as_u64().unwrap();
    let ours: Value = serde_json::from_str(&ServerHandshake::new(nonce, ts).challenge().encode()).unwrap();
    assert_eq!(ours, golden);
}

#[test]
fn unknown_methods_get_the_captured_errors() {
    let req = read_json("unknown-method.req.json");
    let method = req["method"].as_str().unwrap();
    let read_only = ScopeSet::from_names(&["operator.read"]);
    let denied = authorize(Role::Operator, read_only, method).unwrap_err();
    let res: Value =
        serde_json::from_str(&ResponseFrame::err(req["id"].as_str().unwrap(), denied.to_error()).encode()).unwrap();
    assert_eq!(res, read_json("unknown-method.read-scope.forbidden.res.json"));

    let admin = read_json("unknown-method.admin-scope.error.res.json");
    assert!(authorize(Role::Operator, ScopeSet::all(), method).is_ok());
    let res: Value = serde_json::from_str(
        &ResponseFrame::err(admin["id"].as_str().unwrap(), ErrorShape::unknown_method(method)).encode(),
    )
    .unwrap();
    assert_eq!(res, admin);
}

#[test]
fn startup_answer_matches_the_capture() {
    let golden = read_json("connect.startup-sidecars.error.json");
    let ours = clawgate_proto::handshake::ConnectRejection::Starting.error().unwrap();
    assert_eq!(serde_json::to_value(&ours).unwrap(), golden["error"]);
    assert_eq!(clawgate_proto::handshake::ConnectRejection::Starting.close().code, 1013);
}
