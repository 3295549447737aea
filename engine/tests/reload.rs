//! Configuration reloads: what applies live, what restarts, what is refused.

use clawgate_engine::config::Overrides;
use clawgate_engine::testkit::*;
use clawgate_engine::GatewayConfig;
use clawgate_proto::close::CloseFrame;
use clawgate_proto::device::DeviceIdentity;
use serde_json::{json, Value};

fn no_env(_: &str) -> Option<String> {
    None
}

fn file(token: &str, extra: &str) -> String {
    format!(
        "{{ gateway: {{ mode: \"local\", port: 18789, auth: {{ mode: \"token\", token: \"{token}\" }} {extra} }} }}"
    )
}

/// A gateway started from `file(TOKEN, "")` with no command-line secrets.
fn bench_from_file() -> Bench {
    let text = file(TOKEN, "");
    let (settings, _) = clawgate_engine::settings::parse(&text, &no_env).unwrap();
    let mut config = GatewayConfig::with_token(TOKEN);
    config.overrides = Overrides::default();
    let mut b = Bench::new(config);
    b.gw = clawgate_engine::Gateway::new(b.gw.config().clone(), Box::new(FakeEntropy(5)), b.now)
        .with_config_file(settings.document, settings.text);
    b
}

fn reload(b: &mut Bench, text: &str) {
    b.gw.handle_config_text(b.now, Ok(text), &no_env);
    b.pump();
}

#[test]
fn a_new_token_in_the_file_applies_at_once_and_ends_sockets_of_the_old_one() {
    let mut b = bench_from_file();
    let old = b.operator(&["operator.read"]);
    let id = DeviceIdentity::from_seed(&[31; 32]);
    let dev = b.ws(loopback(), &[]);
    let nonce = b.nonce(dev);
    let hello = payload(&b.connect(
        dev,
        with_device(&cli_params(&["operator.read"], Some(TOKEN)), &id, &nonce, b.now),
    ));
    let device_token = hello["auth"]["deviceToken"].as_str().unwrap().to_owned();

    reload(&mut b, &file("rotated", ""));

    // The old socket is closed 4001 at its next request, without an answer.
    b.send_text(
        old,
        &clawgate_proto::frame::RequestFrame::new("x", "health", &json!({})).encode(),
    );
    assert!(b.responses(old).is_empty());
    assert_eq!(b.closed(old), Some(CloseFrame::new(4001, "gateway auth changed")));
    // New connects: the old token is refused, the new one works.
    let c = b.ws(loopback(), &[]);
    assert_eq!(
        error_code(&b.connect(c, cli_params(&[], Some(TOKEN)))).2["code"],
        "AUTH_TOKEN_MISMATCH"
    );
    let c = b.ws(loopback(), &[]);
    assert!(b.connect(c, cli_params(&[], Some("rotated"))).ok);
    // A device that authenticates with its own token is not affected.
    let c = b.ws(loopback(), &[]);
    let nonce = b.nonce(c);
    let mut p = cli_params(&["operator.read"], None);
    p["auth"] = json!({"deviceToken": device_token});
    assert_eq!(
        payload(&b.connect(c, with_device(&p, &id, &nonce, b.now)))["auth"]["method"],
        "device-token"
    );
}

#[test]
fn an_invalid_file_leaves_the_running_config_alone_and_says_so_in_health() {
    let mut b = bench_from_file();
    reload(&mut b, "{ gateway: { auth: { token: \"x\" }, ");
    let c = b.operator(&["operator.read"]);
    let health = payload(&b.request(c, "h", "health", json!({})));
    assert_eq!(health["configReload"]["hotReloadStatus"], "error");
    assert!(health["configReload"]["lastError"]
        .as_str()
        .unwrap()
        .contains("invalid JSON5"));
    assert!(b.logs.iter().any(|l| l.contains("config reload skipped")));
}

#[test]
fn a_port_change_restarts_with_a_shutdown_notice() {
    let mut b = bench_from_file();
    let c = b.operator(&[]);
    b.take_texts(c);
    reload(&mut b, &file(TOKEN, "").replace("18789", "18790"));
    let events = b.events(c);
    let shutdown: Value = events
        .iter()
        .find(|e| e.event == "shutdown")
        .unwrap()
        .parse_payload()
        .unwrap();
    assert_eq!(
        shutdown,
        json!({"reason": "gateway restarting", "restartExpectedMs": 1500})
    );
    assert_eq!(b.closed(c), Some(CloseFrame::new(1012, "service restart")));
    assert!(b.gw.restart_requested());
    assert!(b.stopped);
}

#[test]
fn hot_mode_applies_what_it_can_and_says_what_it_ignored() {
    let mut b = bench_from_file();
    let text = file("rotated", ", reload: { mode: \"hot\" }").replace("18789", "18790");
    reload(&mut b, &text);
    assert!(!b.gw.restart_requested());
    assert!(b
        .logs
        .iter()
        .any(|l| l.contains("NOT applied") && l.contains("gateway.port")));
    let c = b.ws(loopback(), &[]);
    assert!(
        b.connect(c, cli_params(&[], Some("rotated"))).ok,
        "the token change was applied"
    );
}

#[test]
fn allowed_origins_apply_live() {
    let mut b = bench_from_file();
    let origin = [("Origin", "https://ui.example")];
    assert!(b.upgrade_answer(remote(), &origin).starts_with("HTTP/1.1 403"));
    reload(
        &mut b,
        &file(TOKEN, ", controlUi: { allowedOrigins: [\"https://ui.example\"] }"),
    );
    let c = b.ws(remote(), &origin);
    assert!(b.connect(c, cli_params(&[], Some(TOKEN))).ok);
}

#[test]
fn a_token_given_on_the_command_line_wins_over_the_file() {
    let mut b = bench_from_file();
    let mut config = b.gw.config().clone();
    config.overrides.token = Some(TOKEN.into());
    b.gw = clawgate_engine::Gateway::new(config, Box::new(FakeEntropy(6)), b.now).with_config_file(
        clawgate_engine::settings::parse(&file(TOKEN, ""), &no_env)
            .unwrap()
            .0
            .document,
        Some(file(TOKEN, "")),
    );
    reload(&mut b, &file("from-file", ""));
    let c = b.ws(loopback(), &[]);
    assert!(b.connect(c, cli_params(&[], Some(TOKEN))).ok);
}

#[test]
fn config_reload_over_rpc_is_for_admins_and_asks_the_runtime_to_read_the_file() {
    let mut b = bench_from_file();
    let reader = b.operator(&["operator.read"]);
    assert_eq!(
        error_code(&b.request(reader, "r", "config.reload", json!({}))).0,
        "FORBIDDEN"
    );
    assert_eq!(b.reload_requests, 0);
    let admin = b.operator(&["operator.admin"]);
    assert!(b.request(admin, "a", "config.reload", json!({})).ok);
    assert_eq!(b.reload_requests, 1);
}

#[test]
fn the_main_session_follows_session_and_agent_settings_live() {
    let mut b = bench_from_file();
    let defaults = |b: &mut Bench| {
        let c = b.ws(loopback(), &[]);
        payload(&b.connect(c, cli_params(&[], Some(TOKEN))))["snapshot"]["sessionDefaults"].clone()
    };
    let before = defaults(&mut b);
    assert_eq!(before["mainSessionKey"], "agent:main:main");
    assert_eq!(before["scope"], "per-sender");

    let text = format!(
        "{{ gateway: {{ mode: \"local\", port: 18789, auth: {{ mode: \"token\", token: \"{TOKEN}\" }} }}, \
         session: {{ mainKey: \"Desk\" }}, agents: {{ list: [{{ id: \"home\" }}, {{ id: \"Ops Team\", default: true }}] }} }}"
    );
    reload(&mut b, &text);
    let after = defaults(&mut b);
    assert_eq!(after["defaultAgentId"], "ops-team");
    assert_eq!(after["mainSessionKey"], "agent:ops-team:desk");
    assert_eq!(after["mainKey"], "desk");

    reload(&mut b, &text.replace("mainKey: \"Desk\"", "scope: \"global\""));
    let global = defaults(&mut b);
    assert_eq!(global["mainSessionKey"], "global");
    assert_eq!(global["scope"], "global");

    // Back to a file without either: the defaults return.
    reload(&mut b, &file(TOKEN, ""));
    assert_eq!(defaults(&mut b), before);
}

#[test]
fn tool_catalog_and_effective_tools_follow_the_policy_live() {
    let mut b = bench_from_file();
    let op = b.operator(&["operator.read"]);

    let catalog = payload(&b.request(op, "c1", "tools.catalog", json!({})));
    assert_eq!(catalog["agentId"], "main");
    let ids: Vec<&str> = catalog["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["tools"].as_array().unwrap())
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["read", "ls", "write", "edit", "exec", "process"]);

    let effective = |b: &mut Bench, id: &str, params: Value| {
        let v = payload(&b.request(op, id, "tools.effective", params));
        let tools: Vec<String> = v["groups"][0]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect();
        let notices: Vec<String> = v["notices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["message"].as_str().unwrap().to_owned())
            .collect();
        (v["agentId"].as_str().unwrap().to_owned(), tools, notices)
    };
    let (_, tools, notices) = effective(&mut b, "e1", json!({"sessionKey": "main"}));
    assert_eq!(tools.len(), 6);
    assert!(notices.is_empty(), "{notices:?}");

    let policy = |deny: &str| {
        format!(
            "{{ gateway: {{ mode: \"local\", port: 18789, auth: {{ mode: \"token\", token: \"{TOKEN}\" }} }}, \
             tools: {{ deny: [{deny}] }}, \
             agents: {{ list: [{{ id: \"main\" }}, {{ id: \"ops\", tools: {{ allow: [\"group:fs\"] }}, \
             sandbox: {{ mode: \"non-main\", workspaceAccess: \"ro\" }} }}] }} }}"
        )
    };
    reload(&mut b, &policy("\"exec\""));
    let (_, tools, notices) = effective(&mut b, "e2", json!({"sessionKey": "main"}));
    assert!(!tools.contains(&"exec".to_owned()));
    assert_eq!(notices, ["exec: denied by tools.deny entry \"exec\""]);
    // The key names the agent: ops in a non-main session is sandboxed read-only.
    let (agent, tools, notices) = effective(&mut b, "e3", json!({"sessionKey": "agent:ops:cron:nightly"}));
    assert_eq!(agent, "ops");
    assert_eq!(tools, ["read", "ls"]);
    assert!(notices.contains(&"write: the sandbox grants read-only workspace access".to_owned()));
    assert!(notices.contains(&"process: not in the agent's tools.allow".to_owned()));
    assert!(notices.iter().any(|n| n.contains("run sandboxed with read-only")));
    // A bare key with an agent id lands in that agent's sessions; its main session is not sandboxed.
    let (_, tools, _) = effective(&mut b, "e4", json!({"sessionKey": "main", "agentId": "OPS"}));
    assert_eq!(tools, ["read", "ls", "write", "edit"]);

    // The next change applies to the next question.
    reload(&mut b, &policy(""));
    let (_, tools, _) = effective(&mut b, "e5", json!({"sessionKey": "main"}));
    assert!(tools.contains(&"exec".to_owned()));

    // Bad requests get INVALID_REQUEST with the reason.
    for (id, params, want) in [
        (
            "b1",
            json!({"sessionKey": "main", "agentId": "ghost"}),
            "unknown agent id: ghost",
        ),
        ("b2", json!({}), "missing field `sessionKey`"),
        ("b3", json!({"sessionKey": "x".repeat(600)}), "at most 512"),
        ("b4", json!({"sessionKey": "main", "extra": 1}), "unknown field"),
    ] {
        let (code, message, _) = error_code(&b.request(op, id, "tools.effective", params));
        assert_eq!(code, "INVALID_REQUEST");
        assert!(message.contains(want), "{message}");
    }
}
