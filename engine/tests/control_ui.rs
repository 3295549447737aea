//! The Control UI's HTTP paths and methods in the sans-IO engine.

use clawgate_engine::testkit::*;
use clawgate_engine::GatewayConfig;
use serde_json::{json, Value};

fn get(b: &mut Bench, path: &str, extra: &str) -> String {
    b.http(loopback(), &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n"))
        .1
}

#[test]
fn without_a_bundle_the_root_explains_how_to_configure_one() {
    let mut b = Bench::with_token();
    let page = get(&mut b, "/", "");
    assert!(
        page.starts_with("HTTP/1.1 200") && page.contains("--control-ui"),
        "{page}"
    );
    assert!(get(&mut b, "/assets/app.js", "").starts_with("HTTP/1.1 404"));
    assert!(b.static_requests.is_empty());
}

#[test]
fn bundle_files_go_to_the_runtime_and_escapes_are_refused() {
    let mut config = GatewayConfig::with_token(TOKEN);
    config.control_ui_root = Some("/bundle".into());
    let mut b = Bench::new(config);
    // The runtime is asked for the file; the answer waits for it.
    let (conn, raw) = b.http(
        loopback(),
        "GET /assets/app.js?v=1 HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip, br\r\n\r\n",
    );
    assert!(raw.is_empty());
    let request = b.static_requests.pop().unwrap();
    assert_eq!(
        (
            request.root.as_str(),
            request.path.as_str(),
            request.spa_fallback,
            request.accepts_br
        ),
        ("/bundle", "assets/app.js", false, true)
    );
    b.gw.handle_static_response(b.now, &request, &clawgate_proto::http::Response::text(200, "js"));
    b.pump();
    assert!(b.raw_text(conn).starts_with("HTTP/1.1 200"));
    get(&mut b, "/settings/model-setup", "");
    let route = b.static_requests.pop().unwrap();
    assert_eq!(
        (route.path.as_str(), route.spa_fallback),
        ("settings/model-setup", true)
    );
    for bad in ["/../etc/passwd", "/assets/%2e%2e/%2e%2e/etc/passwd", "/a%5c..%5cb"] {
        let raw = get(&mut b, bad, "");
        assert!(raw.starts_with("HTTP/1.1 404"), "{bad}: {raw}");
    }
    assert!(b.static_requests.is_empty());
}

#[test]
fn the_ui_config_needs_the_bearer_and_names_the_agent() {
    let mut b = Bench::with_token();
    let raw = get(&mut b, "/control-ui-config.json", "");
    assert!(
        raw.starts_with("HTTP/1.1 401") && raw.contains("\"type\":\"unauthorized\""),
        "{raw}"
    );
    let raw = get(
        &mut b,
        "/control-ui-config.json",
        &format!("Authorization: Bearer {TOKEN}\r\n"),
    );
    let body: Value = serde_json::from_str(&raw[raw.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(
        (body["assistantAgentId"].as_str(), body["basePath"].as_str()),
        (Some("main"), Some(""))
    );
}

#[test]
fn model_configured_follows_workers_and_the_ui_methods_answer() {
    let mut b = Bench::with_token();
    let defaults = |b: &mut Bench| {
        let op = b.ws(loopback(), &[]);
        let hello = payload(&b.connect(op, cli_params(&["operator.admin"], Some(TOKEN))));
        hello["snapshot"]["sessionDefaults"].clone()
    };
    assert_eq!(defaults(&mut b)["modelConfigured"], false);
    let node = b.ws(loopback(), &[]);
    assert!(b.connect(node, worker_params(&["main"])).ok);
    let d = defaults(&mut b);
    assert_eq!(
        (d["modelConfigured"].as_bool(), d["mainSessionKey"].as_str()),
        (Some(true), Some("agent:main:main"))
    );
    let op = b.operator(&["operator.admin"]);
    let startup = payload(&b.request(
        op,
        "s",
        "chat.startup",
        json!({"sessionKey": "agent:main:main", "limit": 80}),
    ));
    assert_eq!(startup["sessionKey"], "agent:main:main");
    assert_eq!(startup["messages"], json!([]));
    assert_eq!(startup["sessionInfo"]["key"], "agent:main:main");
    let agents = payload(&b.request(op, "a", "agents.list", json!({})));
    assert_eq!(agents["agents"][0]["model"]["primary"], "clawgate/main");
    for (method, params, key) in [
        ("agent.identity.get", json!({"agentId": "main"}), "name"),
        ("sessions.describe", json!({"key": "agent:main:main"}), "session"),
        ("question.list", json!({}), "questions"),
        (
            "chat.metadata",
            json!({"agentId": "main", "sessionKey": "main"}),
            "models",
        ),
        (
            "models.list",
            json!({"view": "configured", "agentId": "main"}),
            "models",
        ),
        ("users.prefs.get", json!({"keys": ["ui.theme"]}), "entries"),
    ] {
        let res = b.request(op, "m", method, params);
        assert!(res.ok, "{method}: {res:?}");
        assert!(payload(&res).get(key).is_some(), "{method} lacks {key}");
    }
    // Methods the UI calls that Clawgate does not have get an error answer, never silence.
    let res = b.request(op, "u", "talk.mode", json!({}));
    assert_eq!(error_code(&res).1, "unknown method: talk.mode");
    b.gw.handle_closed(b.now, node);
    b.pump();
    assert_eq!(defaults(&mut b)["modelConfigured"], false);
}

#[test]
fn the_ui_config_also_takes_a_paired_devices_own_token() {
    let mut b = Bench::with_token();
    let id = clawgate_proto::device::DeviceIdentity::from_seed(&[6; 32]);
    let c = b.ws(loopback(), &[]);
    let nonce = b.nonce(c);
    let params = with_device(&cli_params(&["operator.read"], Some(TOKEN)), &id, &nonce, b.now);
    let hello = payload(&b.connect(c, params));
    let device_token = hello["auth"]["deviceToken"].as_str().unwrap().to_owned();
    let raw = get(
        &mut b,
        "/control-ui-config.json",
        &format!("Authorization: Bearer {device_token}\r\n"),
    );
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    let raw = get(
        &mut b,
        "/control-ui-config.json",
        "Authorization: Bearer not-a-device-token\r\n",
    );
    assert!(raw.starts_with("HTTP/1.1 401"), "{raw}");
}
