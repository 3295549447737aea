//! The gateway engine, driven without sockets: each test is one behaviour of the protocol.

use clawgate_engine::testkit::*;
use clawgate_engine::GatewayConfig;
use clawgate_proto::auth::{AuthMode, SharedSecretConfig};
use clawgate_proto::close::CloseFrame;
use clawgate_proto::device::DeviceIdentity;
use clawgate_proto::frame::RequestFrame;
use clawgate_proto::ws::{encode_frame, OpCode};
use serde_json::{json, Value};

#[test]
fn the_challenge_is_the_first_frame() {
    let mut b = Bench::with_token();
    let c = b.ws(loopback(), &[]);
    let first = b.take_texts(c).remove(0);
    let v: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(v["event"], "connect.challenge");
    assert_eq!(v["payload"]["ts"], START);
    assert_eq!(v["payload"]["capabilities"], json!(["model-catalog-snapshot"]));
    assert_eq!(v["payload"]["nonce"].as_str().unwrap().len(), 36);
}

#[test]
fn a_good_token_gets_hello_ok_with_the_requested_scopes() {
    let mut b = Bench::with_token();
    let c = b.ws(loopback(), &[]);
    let res = b.connect(c, cli_params(&["operator.read"], Some(TOKEN)));
    let hello = payload(&res);
    assert_eq!(hello["type"], "hello-ok");
    assert_eq!(hello["protocol"], 4);
    assert_eq!(
        hello["auth"],
        json!({"method": "token", "role": "operator", "scopes": ["operator.read"]})
    );
    assert_eq!(hello["policy"]["maxPayload"], 26214400);
    assert_eq!(hello["policy"]["tickIntervalMs"], 30000);
    assert!(hello["features"]["methods"]
        .as_array()
        .unwrap()
        .contains(&json!("health")));
    assert!(
        hello["snapshot"].get("configPath").is_none(),
        "admin-only fields leaked"
    );
}

#[test]
fn admins_see_config_paths_in_the_snapshot() {
    let mut b = Bench::with_token();
    let c = b.ws(loopback(), &[]);
    let hello = payload(&b.connect(c, cli_params(&["operator.admin"], Some(TOKEN))));
    assert_eq!(hello["snapshot"]["authMode"], "token");
}

#[test]
fn a_bad_token_is_refused_and_closed() {
    let mut b = Bench::with_token();
    let c = b.ws(loopback(), &[]);
    let res = b.connect(c, cli_params(&["operator.read"], Some("nope")));
    let (code, message, details) = error_code(&res);
    assert_eq!(code, "INVALID_REQUEST");
    assert_eq!(details["code"], "AUTH_TOKEN_MISMATCH");
    assert_eq!(b.closed(c), Some(CloseFrame::new(1008, &message)));
}

#[test]
fn a_missing_token_is_refused() {
    let mut b = Bench::with_token();
    let c = b.ws(loopback(), &[]);
    let res = b.connect(c, cli_params(&["operator.read"], None));
    assert_eq!(error_code(&res).2["code"], "AUTH_TOKEN_MISSING");
}

#[test]
fn password_mode_checks_the_password() {
    let mut b = Bench::new(GatewayConfig::new(SharedSecretConfig {
        mode: AuthMode::Password,
        token: None,
        password: Some("pw".into()),
    }));
    let c = b.ws(loopback(), &[]);
    let mut p = cli_params(&["operator.read"], None);
    p["auth"] = json!({"password": "pw"});
    assert!(b.connect(c, p.clone()).ok);
    let c = b.ws(loopback(), &[]);
    p["auth"] = json!({"password": "wrong"});
    assert_eq!(error_code(&b.connect(c, p)).2["code"], "AUTH_PASSWORD_MISMATCH");
}

#[test]
fn auth_none_admits_local_clients_but_not_remote_deviceless_ones() {
    let config = GatewayConfig::new(SharedSecretConfig {
        mode: AuthMode::None,
        token: None,
        password: None,
    });
    let mut b = Bench::new(config);
    let c = b.ws(loopback(), &[]);
    let hello = payload(&b.connect(c, cli_params(&["operator.read"], None)));
    assert_eq!(hello["auth"]["method"], "none");
    let r = b.ws(remote(), &[]);
    let res = b.connect(r, cli_params(&["operator.read"], None));
    assert_eq!(error_code(&res).0, "NOT_PAIRED");
    assert_eq!(error_code(&res).2["code"], "DEVICE_IDENTITY_REQUIRED");
}

#[test]
fn probes_and_unknown_deviceless_clients_get_no_scopes() {
    let mut b = Bench::with_token();
    let c = b.ws(loopback(), &[]);
    let mut p = cli_params(&["operator.read"], Some(TOKEN));
    p["client"]["mode"] = "probe".into();
    p["minProtocol"] = 3.into();
    let hello = payload(&b.connect(c, p));
    assert_eq!(hello["auth"]["scopes"], json!([]));
    let res = b.request(c, "r1", "status", json!({}));
    assert_eq!(error_code(&res).0, "FORBIDDEN");
    // health needs no scope at all.
    assert!(b.request(c, "r2", "health", json!({})).ok);

    let c = b.ws(loopback(), &[]);
    let mut p = cli_params(&["operator.admin"], Some(TOKEN));
    p["client"]["id"] = "openclaw-macos".into();
    p["client"]["mode"] = "ui".into();
    assert_eq!(payload(&b.connect(c, p))["auth"]["scopes"], json!([]));
}

#[test]
fn backend_helpers_keep_their_scopes_only_on_direct_loopback() {
    let mut b = Bench::with_token();
    let mut p = cli_params(&["operator.read"], Some(TOKEN));
    p["client"]["id"] = "gateway-client".into();
    p["client"]["mode"] = "backend".into();
    let c = b.ws(loopback(), &[]);
    assert_eq!(
        payload(&b.connect(c, p.clone()))["auth"]["scopes"],
        json!(["operator.read"])
    );
    let c = b.ws(loopback(), &[("X-Forwarded-For", "198.51.100.1")]);
    assert_eq!(payload(&b.connect(c, p))["auth"]["scopes"], json!([]));
}

#[test]
fn a_local_device_is_paired_silently_and_gets_a_device_token() {
    let mut b = Bench::with_token();
    let id = DeviceIdentity::from_seed(&[4; 32]);
    let c = b.ws(loopback(), &[]);
    let nonce = b.nonce(c);
    let params = with_device(&cli_params(&["operator.read"], Some(TOKEN)), &id, &nonce, b.now);
    let hello = payload(&b.connect(c, params));
    let token = hello["auth"]["deviceToken"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 43);
    assert_eq!(hello["auth"]["scopes"], json!(["operator.read"]));
    // A second connect of the same device reuses its token.
    let c2 = b.ws(loopback(), &[]);
    let nonce = b.nonce(c2);
    let params = with_device(&cli_params(&["operator.read"], Some(TOKEN)), &id, &nonce, b.now);
    assert_eq!(payload(&b.connect(c2, params))["auth"]["deviceToken"], token);
}

#[test]
fn a_remote_device_needs_pairing() {
    let mut b = Bench::with_token();
    let id = DeviceIdentity::from_seed(&[4; 32]);
    let c = b.ws(remote(), &[]);
    let nonce = b.nonce(c);
    let res = b.connect(
        c,
        with_device(&cli_params(&["operator.read"], Some(TOKEN)), &id, &nonce, b.now),
    );
    let (code, message, details) = error_code(&res);
    assert_eq!((code.as_str(), message.as_str()), ("NOT_PAIRED", "pairing required"));
    assert_eq!(details["reason"], "not-paired");
    assert_eq!(b.closed(c), Some(CloseFrame::new(1008, "pairing required")));
}

fn device_error(b: &mut Bench, nonce_for: impl Fn(&str) -> String, signed_at: u64) -> String {
    let id = DeviceIdentity::from_seed(&[5; 32]);
    let c = b.ws(loopback(), &[]);
    let nonce = nonce_for(&b.nonce(c));
    let res = b.connect(
        c,
        with_device(&cli_params(&["operator.read"], Some(TOKEN)), &id, &nonce, signed_at),
    );
    assert!(b.closed(c).is_some_and(|f| f.code == 1008));
    error_code(&res).2["code"].as_str().unwrap().to_owned()
}

#[test]
fn device_proofs_that_are_stale_or_for_another_socket_are_refused() {
    let mut b = Bench::with_token();
    let now = b.now;
    assert_eq!(
        device_error(&mut b, |_| "other".into(), now),
        "DEVICE_AUTH_NONCE_MISMATCH"
    );
    assert_eq!(
        device_error(&mut b, |n| n.into(), now - 121_000),
        "DEVICE_AUTH_SIGNATURE_EXPIRED"
    );
    assert_eq!(
        device_error(&mut b, |n| n.into(), now + 121_000),
        "DEVICE_AUTH_SIGNATURE_EXPIRED"
    );
}

#[test]
fn a_tampered_device_proof_is_refused() {
    let mut b = Bench::with_token();
    let id = DeviceIdentity::from_seed(&[6; 32]);
    let c = b.ws(loopback(), &[]);
    let nonce = b.nonce(c);
    let mut p = with_device(&cli_params(&["operator.read"], Some(TOKEN)), &id, &nonce, b.now);
    p["scopes"] = json!(["operator.admin"]);
    assert_eq!(error_code(&b.connect(c, p)).2["code"], "DEVICE_AUTH_SIGNATURE_INVALID");
}

#[test]
fn an_http_nonce_can_be_signed_once_within_its_lifetime() {
    let mut b = Bench::with_token();
    let (_, raw) = b.http(loopback(), "GET /api/device/nonce HTTP/1.1\r\nHost: x\r\n\r\n");
    let body: Value = serde_json::from_str(raw.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let nonce = body["nonce"].as_str().unwrap().to_owned();
    assert_eq!(body["expiresAtMs"], b.now + 60_000);
    let id = DeviceIdentity::from_seed(&[8; 32]);
    let params = with_device(&cli_params(&["operator.read"], Some(TOKEN)), &id, &nonce, b.now);
    let c = b.ws(loopback(), &[]);
    assert!(b.connect(c, params.clone()).ok, "a fresh HTTP nonce is accepted");
    let c = b.ws(loopback(), &[]);
    assert_eq!(
        error_code(&b.connect(c, params)).2["code"],
        "DEVICE_AUTH_NONCE_MISMATCH",
        "reuse is refused"
    );

    let (_, raw) = b.http(loopback(), "GET /api/device/nonce HTTP/1.1\r\nHost: x\r\n\r\n");
    let body: Value = serde_json::from_str(raw.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let nonce = body["nonce"].as_str().unwrap().to_owned();
    b.advance(60_001);
    let params = with_device(&cli_params(&["operator.read"], Some(TOKEN)), &id, &nonce, b.now);
    let c = b.ws(loopback(), &[]);
    assert_eq!(
        error_code(&b.connect(c, params)).2["code"],
        "DEVICE_AUTH_NONCE_MISMATCH",
        "expired is refused"
    );
}

#[test]
fn protocol_mismatch_closes_with_1002() {
    let mut b = Bench::with_token();
    let c = b.ws(loopback(), &[]);
    let mut p = cli_params(&[], Some(TOKEN));
    p["minProtocol"] = 5.into();
    p["maxProtocol"] = 5.into();
    let res = b.connect(c, p);
    assert_eq!(error_code(&res).2["code"], "PROTOCOL_MISMATCH");
    assert_eq!(b.closed(c), Some(CloseFrame::new(1002, "protocol mismatch")));
}

#[test]
fn the_first_frame_must_be_connect() {
    let mut b = Bench::with_token();
    let c = b.ws(loopback(), &[]);
    let res = b.request(c, "x", "health", json!({}));
    assert_eq!(error_code(&res).1, "invalid handshake: first request must be connect");
    assert_eq!(b.closed(c).unwrap().code, 1008);
}

#[test]
fn an_oversized_preauth_frame_closes_with_1009() {
    let mut b = Bench::with_token();
    let c = b.ws(loopback(), &[]);
    let mut frame = Vec::new();
    encode_frame(OpCode::Text, &vec![b' '; 64 * 1024 + 1], Some([1, 2, 3, 4]), &mut frame);
    b.send_bytes(c, &frame[..20]);
    assert_eq!(b.closed(c), Some(CloseFrame::new(1009, "preauth payload too large")));
}

#[test]
fn a_64k_preauth_frame_is_still_read() {
    let mut b = Bench::with_token();
    let c = b.ws(loopback(), &[]);
    let mut text = cli_params(&["operator.read"], Some(TOKEN));
    text["userAgent"] = "x".into();
    let mut frame = json!({"type": "req", "id": "c1", "method": "connect", "params": text}).to_string();
    let pad = 64 * 1024 - frame.len();
    frame = frame.replace(
        "\"userAgent\":\"x\"",
        &format!("\"userAgent\":\"{}\"", "x".repeat(pad + 1)),
    );
    assert_eq!(frame.len(), 64 * 1024);
    b.send_text(c, &frame);
    assert!(b.responses(c)[0].ok);
}

#[test]
fn the_handshake_times_out_after_ten_seconds() {
    let mut b = Bench::with_token();
    let c = b.ws(loopback(), &[]);
    b.advance(9_999);
    assert!(!b.peers[&c].closed_by_gateway);
    b.advance(1);
    assert_eq!(b.closed(c), Some(CloseFrame::new(1000, "handshake timeout")));
}

#[test]
fn missing_scopes_are_forbidden_with_details() {
    let mut b = Bench::with_token();
    let c = b.operator(&["operator.read"]);
    let res = b.request(c, "1", "chat.send", json!({}));
    let (code, message, details) = error_code(&res);
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("FORBIDDEN", "missing scope: operator.write")
    );
    assert_eq!(details["missingScope"], "operator.write");
}

#[test]
fn unknown_methods_are_named_to_admins_only() {
    let mut b = Bench::with_token();
    let admin = b.operator(&["operator.admin"]);
    assert_eq!(
        error_code(&b.request(admin, "1", "no.such", json!({}))).1,
        "unknown method: no.such"
    );
    let reader = b.operator(&["operator.read"]);
    assert_eq!(error_code(&b.request(reader, "1", "no.such", json!({}))).0, "FORBIDDEN");
}

#[test]
fn invalid_frames_after_hello_get_an_error_and_keep_the_socket() {
    let mut b = Bench::with_token();
    let c = b.operator(&["operator.read"]);
    b.send_text(c, r#"{"type":"req","id":"q","method":"health","bogus":1}"#);
    let r = b.responses(c).remove(0);
    assert_eq!(r.id, "q");
    assert!(error_code(&r).1.starts_with("invalid request frame"));
    b.send_text(c, "not json");
    assert!(b.responses(c).is_empty());
    assert!(b.request(c, "h", "health", json!({})).ok);
}

#[test]
fn health_status_presence_identity_and_config_answer() {
    let mut b = Bench::with_token();
    let c = b.operator(&["operator.read"]);
    let health = payload(&b.request(c, "1", "health", json!({})));
    for key in [
        "ok",
        "ts",
        "durationMs",
        "defaultAgentId",
        "agents",
        "sessions",
        "configReload",
        "eventLoop",
        "channels",
    ] {
        assert!(health.get(key).is_some(), "health lacks {key}");
    }
    assert!(payload(&b.request(c, "2", "status", json!({})))
        .get("runtimeVersion")
        .is_some());
    let presence = payload(&b.request(c, "3", "system-presence", json!({})));
    assert_eq!(presence[0]["mode"], "gateway");
    let ident = payload(&b.request(c, "4", "gateway.identity.get", json!({})));
    assert_eq!(ident["deviceId"].as_str().unwrap().len(), 64);
    let config = payload(&b.request(c, "5", "config.get", json!({})));
    assert_eq!(config["config"]["gateway"]["auth"]["token"], "__OPENCLAW_REDACTED__");
    assert!(!config.to_string().contains(TOKEN), "the token leaked");
    assert_eq!(
        payload(&b.request(c, "6", "sessions.list", json!({})))["sessions"],
        json!([])
    );
}

#[test]
fn logs_tail_pages_with_a_cursor() {
    let mut b = Bench::with_token();
    let c = b.operator(&["operator.read"]);
    let first = payload(&b.request(c, "1", "logs.tail", json!({})));
    let cursor = first["cursor"].as_u64().unwrap();
    assert!(first["lines"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l.as_str().unwrap().contains("connected")));
    b.operator(&["operator.read"]);
    let next = payload(&b.request(c, "2", "logs.tail", json!({"cursor": cursor})));
    let lines = next["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1);
    assert!(lines[0].as_str().unwrap().contains("connected"));
    assert!(!next.to_string().contains(TOKEN));
}

#[test]
fn ticks_arrive_every_thirty_seconds_with_increasing_seq() {
    let mut b = Bench::with_token();
    let c = b.operator(&[]);
    b.advance(30_000);
    b.advance(30_000);
    let ticks: Vec<_> = b.events(c).into_iter().filter(|e| e.event == "tick").collect();
    assert_eq!(ticks.len(), 2);
    assert!(ticks[1].seq > ticks[0].seq);
    assert_eq!(ticks[1].parse_payload::<Value>().unwrap()["ts"], START + 60_000);
}

#[test]
fn presence_is_broadcast_when_a_non_cli_client_connects() {
    let mut b = Bench::with_token();
    let watcher = b.operator(&["operator.read"]);
    let c = b.ws(loopback(), &[]);
    let mut p = cli_params(&[], Some(TOKEN));
    p["client"]["id"] = "openclaw-macos".into();
    p["client"]["mode"] = "ui".into();
    p["client"]["instanceId"] = "inst-1".into();
    assert!(b.connect(c, p).ok);
    let ev = b
        .events(watcher)
        .into_iter()
        .find(|e| e.event == "presence")
        .expect("presence event");
    assert!(ev.state_version.is_some());
    let list: Value = ev.parse_payload().unwrap();
    assert!(list["presence"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["instanceId"] == "inst-1"));
}

#[test]
fn the_command_lines_backend_and_probe_connections_are_no_presence() {
    let mut b = Bench::with_token();
    for (id, mode) in [("gateway-client", "backend"), ("cli", "probe"), ("cli", "cli")] {
        let c = b.ws(loopback(), &[]);
        let mut p = cli_params(&[], Some(TOKEN));
        p["client"]["id"] = id.into();
        p["client"]["mode"] = mode.into();
        p["client"]["instanceId"] = format!("{id}-{mode}").into();
        assert!(b.connect(c, p).ok, "{id}/{mode}");
        b.gw.handle_closed(b.now, c);
        b.pump();
    }
    let op = b.operator(&["operator.read"]);
    b.take_texts(op);
    let list = payload(&b.request(op, "p", "system-presence", json!({})));
    let modes: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["mode"].as_str())
        .collect();
    assert_eq!(modes, ["gateway"], "only the gateway itself, as the real one lists");
}

#[test]
fn a_slow_consumer_skips_droppable_events_and_is_closed_for_others() {
    let mut config = GatewayConfig::with_token(TOKEN);
    config.max_buffered_bytes = 1000;
    config.health_refresh_interval_ms = 60_000;
    let mut b = Bench::new(config);
    let slow = b.operator(&["operator.read"]);
    let fast = b.operator(&["operator.read"]);
    b.take_texts(fast);
    b.pause(slow);
    b.gw.handle_buffered(slow, 5000);
    b.advance(30_000); // tick: droppable
    assert!(b.events(slow).is_empty());
    assert!(!b.peers[&slow].closed_by_gateway);
    assert_eq!(b.events(fast).len(), 1);
    b.advance(30_000); // tick and health: health is not droppable
    assert!(b.peers[&slow].closed_by_gateway, "the slow consumer was not closed");
    assert!(b.logs.iter().any(|l| l.contains("slow consumer")));
    assert!(b.events(fast).iter().any(|e| e.event == "health"));
    // The close is on the stability record an operator reads after the fact.
    let admin = b.operator(&["operator.admin"]);
    b.take_texts(admin);
    let stability = payload(&b.request(
        admin,
        "d",
        "diagnostics.stability",
        json!({"type": "gateway.slow_consumer"}),
    ));
    assert_eq!(stability["count"], 1);
    assert_eq!(stability["events"][0]["count"], 1);
}

#[test]
fn a_client_that_does_not_read_its_answers_is_closed_before_its_burst_is_served() {
    let mut config = GatewayConfig::with_token(TOKEN);
    config.max_buffered_bytes = 4000;
    let mut b = Bench::new(config);
    let slow = b.operator(&["operator.read"]);
    b.pause(slow);
    let mut burst = Vec::new();
    let ws = b.peers.get_mut(&slow).unwrap().ws.as_mut().unwrap();
    for i in 0..1000 {
        ws.encode_text(
            &RequestFrame::new(format!("s{i}"), "status", &json!({})).encode(),
            &mut burst,
        );
    }
    b.send_bytes(slow, &burst);
    assert!(b.peers[&slow].closed_by_gateway, "the slow consumer was not closed");
    assert!(b.logs.iter().any(|l| l.contains("closed slow consumer")));
    b.resume(slow);
    let answered = b.responses(slow).len();
    assert!(
        answered < 100,
        "{answered} of 1000 requests were served after the limit"
    );
    assert_eq!(b.peers[&slow].close.as_ref().map(|f| f.code), Some(1008));
}

#[test]
fn shutdown_tells_clients_then_closes_with_1012() {
    let mut b = Bench::with_token();
    let c = b.operator(&[]);
    b.take_texts(c);
    b.gw.handle_shutdown(b.now, "gateway stopping", None);
    b.pump();
    let events = b.events(c);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event, "shutdown");
    assert_eq!(
        events[0].parse_payload::<Value>().unwrap(),
        json!({"reason": "gateway stopping"})
    );
    assert_eq!(b.closed(c), Some(CloseFrame::new(1012, "service restart")));
    assert!(b.stopped);
}

#[test]
fn unauthenticated_sockets_are_limited_per_address() {
    let mut b = Bench::with_token();
    for _ in 0..32 {
        b.ws(remote(), &[]);
    }
    let (_, raw) = b.http(
        remote(),
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert!(raw.starts_with("HTTP/1.1 503"), "{raw}");
    assert!(raw.ends_with("Too many unauthenticated sockets"));
    // Another address is unaffected, and so is loopback.
    let c = b.ws(loopback(), &[]);
    assert!(b.peers[&c].challenge.is_some());
}

#[test]
fn http_probes_answer_with_security_headers() {
    let mut b = Bench::with_token();
    let (_, raw) = b.http(loopback(), "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(raw.starts_with("HTTP/1.1 200 OK"));
    assert!(raw.contains("X-Content-Type-Options: nosniff"));
    assert!(raw.contains("Referrer-Policy: no-referrer"));
    assert!(raw.ends_with(r#"{"ok":true,"status":"live"}"#));
    let (_, raw) = b.http(loopback(), "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(raw.ends_with("\r\n\r\n"), "HEAD has no body");
    let (_, raw) = b.http(loopback(), "POST /health HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(raw.starts_with("HTTP/1.1 405") && raw.contains("Allow: GET, HEAD"));
    let (_, raw) = b.http(loopback(), "GET /nowhere HTTP/1.1\r\n\r\n");
    assert!(raw.starts_with("HTTP/1.1 404"));
    let (_, raw) = b.http(loopback(), "GET /ready HTTP/1.1\r\n\r\n");
    assert!(raw.contains("\"uptimeMs\""));
    let (_, raw) = b.http(remote(), "GET /readyz HTTP/1.1\r\n\r\n");
    assert!(raw.ends_with(r#"{"ready":true}"#));
    let (_, raw) = b.http(loopback(), "BROKEN\r\n\r\n");
    assert!(raw.starts_with("HTTP/1.1 400"));
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let mut b = Bench::with_token();
    let (_, raw) = b.http(
        loopback(),
        "GET /health HTTP/1.1\r\n\r\nGET /ready HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(raw.matches("HTTP/1.1 200 OK").count(), 2);
}

#[test]
fn cross_origin_browsers_are_refused_before_the_upgrade() {
    let mut b = Bench::with_token();
    let answer = b.upgrade_answer(loopback(), &[("Origin", "https://evil.example")]);
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    let answer = b.upgrade_answer(loopback(), &[("Origin", "null")]);
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    let c = b.ws(loopback(), &[("Origin", "http://127.0.0.1:18789")]);
    assert!(b.connect(c, cli_params(&["operator.read"], Some(TOKEN))).ok);
    // A browser client that sends no Origin at all is refused at connect.
    let c = b.ws(loopback(), &[]);
    let mut p = cli_params(&[], Some(TOKEN));
    p["client"]["id"] = "openclaw-control-ui".into();
    p["client"]["mode"] = "webchat".into();
    assert_eq!(error_code(&b.connect(c, p)).2["reason"], "origin missing or invalid");
}

#[test]
fn the_gateways_own_origin_is_accepted_from_remote_browsers() {
    let mut b = Bench::with_token();
    let c = b.ws(remote(), &[("Origin", "http://192.0.2.10:18789")]);
    assert!(b.connect(c, cli_params(&[], Some(TOKEN))).ok);
    // A Host header that names the attacker's origin proves nothing.
    let answer = b.upgrade_answer(remote(), &[("Origin", "http://evil.example:18789")]);
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
}

#[test]
fn a_second_connect_is_refused_on_an_open_socket() {
    let mut b = Bench::with_token();
    let c = b.operator(&["operator.admin"]);
    let res = b.request(c, "again", "connect", cli_params(&[], Some(TOKEN)));
    assert_eq!(error_code(&res).1, "connect is only valid as the first request");
}

#[test]
fn pings_are_answered_and_closes_are_echoed() {
    let mut b = Bench::with_token();
    let c = b.operator(&[]);
    let mut ping = Vec::new();
    encode_frame(OpCode::Ping, b"hi", Some([1, 1, 1, 1]), &mut ping);
    b.send_bytes(c, &ping);
    let mut close = Vec::new();
    encode_frame(OpCode::Close, &[0x03, 0xe8], Some([1, 1, 1, 1]), &mut close);
    b.send_bytes(c, &close);
    assert_eq!(b.closed(c).map(|f| f.code), Some(1000));
    let _ = RequestFrame::new("x", "health", &json!({}));
}

#[test]
fn metrics_count_handshakes_requests_and_bytes_for_local_or_authorized_callers() {
    let mut b = Bench::with_token();
    let c = b.operator(&["operator.read"]);
    b.request(c, "1", "health", json!({}));
    b.request(c, "2", "poll", json!({}));
    b.request(c, "3", "zzz.unknown", json!({}));
    let bad = b.ws(loopback(), &[]);
    b.connect(bad, cli_params(&[], Some("wrong")));
    b.gw.handle_loop_turn(42);
    let (_, raw) = b.http(loopback(), "GET /metrics HTTP/1.1\r\n\r\n");
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    for line in [
        "clawgate_handshakes_total{outcome=\"ok\"} 1",
        "clawgate_handshakes_total{outcome=\"auth_failed\"} 1",
        "clawgate_requests_total{method=\"health\",outcome=\"ok\"} 1",
        "clawgate_requests_total{method=\"unknown\",outcome=\"error\"} 2",
        "clawgate_connections{state=\"open\"} 1",
        "clawgate_event_loop_turn_seconds_count 1",
    ] {
        assert!(raw.contains(line), "missing {line} in {raw}");
    }
    assert!(raw.contains("clawgate_bytes_total{direction=\"in\"}"));
    let (_, raw) = b.http(remote(), "GET /metrics HTTP/1.1\r\n\r\n");
    assert!(raw.starts_with("HTTP/1.1 401"));
    let (_, raw) = b.http(
        remote(),
        &format!("GET /metrics HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"),
    );
    assert!(raw.starts_with("HTTP/1.1 200"));
}

fn attempt(b: &mut Bench, peer: std::net::SocketAddr, headers: &[(&str, &str)], token: Option<&str>) -> Value {
    let c = b.ws(peer, headers);
    let res = b.connect(c, cli_params(&[], token));
    if res.ok {
        return json!("ok");
    }
    let e = res.error.unwrap();
    json!({"code": e.details.clone().unwrap_or_default()["code"], "retryAfterMs": e.retry_after_ms})
}

#[test]
fn ten_bad_tokens_from_one_address_lock_it_out_for_five_minutes() {
    let mut b = Bench::with_token();
    for _ in 0..10 {
        assert_eq!(
            attempt(&mut b, remote(), &[], Some("bad"))["code"],
            "AUTH_TOKEN_MISMATCH"
        );
    }
    let locked = attempt(&mut b, remote(), &[], Some(TOKEN));
    assert_eq!(
        locked["code"], "AUTH_RATE_LIMITED",
        "even the right token waits out the lock"
    );
    assert_eq!(locked["retryAfterMs"], 300_000);
    // Another address is not affected; the same one is again after the lock.
    let other: std::net::SocketAddr = "198.51.100.9:4000".parse().unwrap();
    assert_eq!(attempt(&mut b, other, &[], Some(TOKEN)), json!("ok"));
    b.advance(300_001);
    assert_eq!(attempt(&mut b, remote(), &[], Some(TOKEN)), json!("ok"));
}

#[test]
fn missing_tokens_do_not_count_and_clean_loopback_is_exempt() {
    let mut b = Bench::with_token();
    for _ in 0..15 {
        assert_eq!(attempt(&mut b, remote(), &[], None)["code"], "AUTH_TOKEN_MISSING");
        assert_eq!(
            attempt(&mut b, loopback(), &[], Some("bad"))["code"],
            "AUTH_TOKEN_MISMATCH"
        );
    }
    assert_eq!(attempt(&mut b, remote(), &[], Some(TOKEN)), json!("ok"));
    assert_eq!(attempt(&mut b, loopback(), &[], Some(TOKEN)), json!("ok"));
}

#[test]
fn browsers_are_never_exempt_and_are_counted_by_origin() {
    let mut b = Bench::with_token();
    let origin = [("Origin", "http://localhost:5173")];
    for _ in 0..10 {
        assert_eq!(
            attempt(&mut b, loopback(), &origin, Some("bad"))["code"],
            "AUTH_TOKEN_MISMATCH"
        );
    }
    assert_eq!(
        attempt(&mut b, loopback(), &origin, Some(TOKEN))["code"],
        "AUTH_RATE_LIMITED"
    );
    // The same host without that origin is a different key (and exempt).
    assert_eq!(attempt(&mut b, loopback(), &[], Some(TOKEN)), json!("ok"));
}

fn trusted_proxy_bench() -> Bench {
    let mut config = GatewayConfig::new(SharedSecretConfig {
        mode: AuthMode::TrustedProxy,
        token: None,
        password: None,
    });
    config.trusted_proxies = vec!["203.0.113.0/24".into(), "127.0.0.1".into()];
    config.trusted_proxy.user_header = Some("x-forwarded-user".into());
    config.trusted_proxy.allow_users = vec!["alice".into(), "bob".into()];
    Bench::new(config)
}

#[test]
fn trusted_proxy_identity_is_believed_only_from_a_trusted_proxy() {
    let mut b = trusted_proxy_bench();
    let from = |b: &mut Bench, peer: std::net::SocketAddr, headers: &[(&str, &str)]| {
        let c = b.ws(peer, headers);
        let res = b.connect(c, cli_params(&["operator.read"], None));
        if res.ok {
            json!("ok")
        } else {
            error_code(&res).2["authReason"].clone()
        }
    };
    assert_eq!(from(&mut b, remote(), &[("X-Forwarded-User", "alice")]), json!("ok"));
    let forged: std::net::SocketAddr = "198.51.100.50:1234".parse().unwrap();
    assert_eq!(
        from(&mut b, forged, &[("X-Forwarded-User", "alice")]),
        "trusted_proxy_untrusted_source"
    );
    assert_eq!(from(&mut b, remote(), &[]), "trusted_proxy_user_missing");
    assert_eq!(
        from(&mut b, remote(), &[("X-Forwarded-User", "mallory")]),
        "trusted_proxy_user_not_allowed"
    );
    assert_eq!(
        from(&mut b, loopback(), &[("X-Forwarded-User", "alice")]),
        "trusted_proxy_loopback_source"
    );
}

#[test]
fn forwarded_addresses_count_only_through_trusted_proxies() {
    let mut config = GatewayConfig::with_token(TOKEN);
    config.trusted_proxies = vec!["203.0.113.7".into()];
    let mut b = Bench::new(config);
    let via_proxy =
        |b: &mut Bench, client: &str, token: &str| attempt(b, remote(), &[("X-Forwarded-For", client)], Some(token));
    for _ in 0..10 {
        assert_eq!(via_proxy(&mut b, "198.51.100.1", "bad")["code"], "AUTH_TOKEN_MISMATCH");
    }
    assert_eq!(via_proxy(&mut b, "198.51.100.1", TOKEN)["code"], "AUTH_RATE_LIMITED");
    assert_eq!(
        via_proxy(&mut b, "198.51.100.2", TOKEN),
        json!("ok"),
        "another client behind the proxy"
    );
    // From an untrusted peer the header is ignored: the peer itself is counted.
    let other: std::net::SocketAddr = "198.51.100.77:1".parse().unwrap();
    for i in 0..10 {
        let claimed = format!("192.0.2.{i}");
        assert_eq!(
            attempt(&mut b, other, &[("X-Forwarded-For", &claimed)], Some("bad"))["code"],
            "AUTH_TOKEN_MISMATCH"
        );
    }
    assert_eq!(
        attempt(&mut b, other, &[("X-Forwarded-For", "192.0.2.99")], Some(TOKEN))["code"],
        "AUTH_RATE_LIMITED"
    );
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let mut b = Bench::with_token();
    let (conn, raw) = b.http(loopback(), "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    b.advance(59_999);
    assert!(!b.peers[&conn].closed_by_gateway, "closed before the idle timeout");
    b.advance(1);
    assert!(b.peers[&conn].closed_by_gateway, "still open after 60 s idle");
    assert!(
        !b.raw_text(conn).contains("408"),
        "an idle connection is closed without an answer"
    );
}

#[test]
fn each_answered_request_starts_the_idle_clock_again() {
    let mut b = Bench::with_token();
    let (conn, _) = b.http(loopback(), "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    b.advance(50_000);
    b.send_bytes(conn, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    b.advance(50_000);
    assert!(
        !b.peers[&conn].closed_by_gateway,
        "the second request did not restart the idle clock"
    );
    b.advance(10_000);
    assert!(b.peers[&conn].closed_by_gateway);
}

#[test]
fn headers_that_trickle_in_get_408_ten_seconds_after_their_first_byte() {
    let mut b = Bench::with_token();
    let (conn, _) = b.http(loopback(), "GET /health HTTP/1.1\r\n");
    for _ in 0..9 {
        b.advance(1_000);
        // More bytes of the same head do not buy more time.
        b.send_bytes(conn, b"X-Slow: 1\r\n");
    }
    b.advance(999);
    assert!(!b.peers[&conn].closed_by_gateway, "closed before the head timeout");
    b.advance(1);
    assert!(b.peers[&conn].closed_by_gateway, "a slow head was not cut off");
    assert!(b.raw_text(conn).starts_with("HTTP/1.1 408"), "{}", b.raw_text(conn));
}

#[test]
fn a_body_that_trickles_in_gets_408_thirty_seconds_after_its_headers() {
    let mut b = Bench::with_token();
    let (conn, _) = b.http(
        loopback(),
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"mo",
    );
    b.advance(29_999);
    assert!(!b.peers[&conn].closed_by_gateway, "closed before the body timeout");
    b.advance(1);
    assert!(b.peers[&conn].closed_by_gateway, "a slow body was not cut off");
    assert!(b.raw_text(conn).starts_with("HTTP/1.1 408"), "{}", b.raw_text(conn));
}

#[test]
fn a_slowloris_from_many_addresses_is_cleared_by_the_head_timeout() {
    let mut b = Bench::with_token();
    let conns: Vec<_> = (0..2000u32)
        .map(|i| {
            let peer = std::net::SocketAddr::from(([10, (i >> 8) as u8, i as u8, 1], 40000));
            b.http(peer, "GET / HTTP/1.1\r\nHost: x\r\n").0
        })
        .collect();
    b.advance(10_000);
    assert!(
        conns.iter().all(|c| b.peers[c].closed_by_gateway),
        "some slow connections stayed open"
    );
    // The gateway still serves a normal client.
    let (_, raw) = b.http(loopback(), "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
}

#[test]
fn an_oversized_body_gets_the_error_shape_of_its_endpoint_family() {
    let mut b = Bench::with_token();
    let big = 10 * 1024 * 1024;
    let (_, raw) = b.http(
        loopback(),
        &format!("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {big}\r\n\r\n"),
    );
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
    let body = &raw[raw.find("\r\n\r\n").unwrap() + 4..];
    let error: Value = serde_json::from_str(body).unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert_eq!(error["error"]["message"], "Payload too large");
    // Outside the JSON APIs the answer stays plain text.
    let (_, raw) = b.http(
        loopback(),
        &format!("POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: {big}\r\n\r\n"),
    );
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
    assert!(raw.ends_with("Payload Too Large"), "{raw}");
}
