//! The configuration over RPC (`config.get`, `config.schema`, `config.schema.lookup`,
//! `config.set`, `config.patch`, `config.apply`), checked against the real gateway's captures in
//! `proto/tests/golden/agent-tools/operator-methods/` and against the file the gateway writes.

// The captures are read from disk by the test; the engine itself never reads a file.
#![allow(clippy::disallowed_methods)]

mod captures;

use captures::{golden, has_captured_keys, no_env, read};
use clawgate_engine::testkit::*;
use clawgate_engine::{ConnId, Gateway, GatewayConfig};
use serde_json::{json, Value};

const PATH: &str = "/state/openclaw.json";

/// A gateway started from the captured phase-2 file (a provider with an API key).
fn bench() -> Bench {
    bench_from(&read("config/openclaw.phase2-approvals.json"))
}

fn bench_from(text: &str) -> Bench {
    let (settings, _) = clawgate_engine::settings::parse(text, &no_env).unwrap();
    let mut config = GatewayConfig::with_token(TOKEN);
    config.config_path = PATH.into();
    config.state_dir = "/state".into();
    config.apply_file(&settings);
    let gw = Gateway::new(config, Box::new(FakeEntropy(9)), START).with_config_file(settings.document, settings.text);
    Bench::with_gateway(gw)
}

fn admin(b: &mut Bench) -> ConnId {
    let op = b.operator(&["operator.admin", "operator.read"]);
    b.take_texts(op);
    op
}

fn watcher(b: &mut Bench) -> ConnId {
    let op = b.operator(&["operator.read"]);
    b.take_texts(op);
    op
}

fn get(b: &mut Bench, op: ConnId) -> Value {
    let res = b.request(op, "get", "config.get", json!({}));
    assert!(res.ok, "{res:?}");
    payload(&res)
}

fn error_message(res: &clawgate_proto::frame::ResponseFrame) -> String {
    res.error.as_ref().expect("an error").message.clone()
}

#[test]
fn config_get_has_the_captured_shape_and_an_hmac_hash() {
    let mut b = bench();
    let op = admin(&mut b);
    let ours = get(&mut b, op);
    has_captured_keys(&ours, &golden("config.get.res.json")["payload"], &[]);
    assert_eq!(ours["path"], PATH);
    assert_eq!(ours["exists"], true);
    let hash = ours["hash"].as_str().unwrap();
    assert!(hash.starts_with("hmac-sha256:v1:"), "{hash}");
    assert_eq!(ours["hash"], get(&mut b, op)["hash"], "the same file, the same hash");
}

#[test]
fn config_get_redacts_secrets_in_every_form_of_the_file() {
    let mut b = bench();
    let op = admin(&mut b);
    let ours = get(&mut b, op);
    assert!(!ours.to_string().contains("sk-local"), "{ours}");
    let key = "__OPENCLAW_REDACTED__";
    assert_eq!(ours["parsed"]["models"]["providers"]["fakeai"]["apiKey"], key);
    assert!(ours["raw"].as_str().unwrap().contains(key));
}

#[test]
fn config_get_without_a_file_says_it_does_not_exist() {
    let mut config = GatewayConfig::with_token(TOKEN);
    config.config_path = PATH.into();
    // As the runtime starts a gateway without a file.
    let none = clawgate_engine::settings::FileSettings::default();
    let mut b = Bench::with_gateway(
        Gateway::new(config, Box::new(FakeEntropy(3)), START).with_config_file(none.document, none.text),
    );
    let op = admin(&mut b);
    let ours = get(&mut b, op);
    assert_eq!(ours["exists"], false);
    assert!(ours["hash"].as_str().unwrap().starts_with("hmac-sha256:v1:"));
    // The first file is written against that hash.
    let res = b.request(
        op,
        "p",
        "config.patch",
        json!({"raw": "{cron: {skipMissedJobs: true}}", "baseHash": ours["hash"]}),
    );
    assert!(res.ok, "{res:?}");
    let written: Value = serde_json::from_str(b.config_file.as_deref().unwrap()).unwrap();
    assert_eq!(written, json!({"cron": {"skipMissedJobs": true}}));
    assert_eq!(get(&mut b, op)["exists"], true);
}

#[test]
fn config_patch_writes_the_file_and_answers_as_captured_once_it_is_applied() {
    let mut b = bench();
    let op = admin(&mut b);
    let watch = watcher(&mut b);
    let base = get(&mut b, op)["hash"].clone();
    let mut params = golden("config.patch.req.json")["params"].clone();
    params["baseHash"] = base.clone();
    let res = b.request(op, "patch", "config.patch", params);
    assert!(res.ok, "{res:?}");
    let ours = payload(&res);
    let captured = golden("config.patch.res.json")["payload"].clone();
    has_captured_keys(&ours, &captured, &[]);
    has_captured_keys(&ours["sentinel"]["payload"], &captured["sentinel"]["payload"], &[]);
    assert_eq!(ours["changedPaths"], captured["changedPaths"]);
    assert_eq!(ours["sentinel"]["payload"]["kind"], "config-patch");
    assert_eq!(ours["sentinel"]["payload"]["stats"]["requiresRestart"], false);
    assert!(
        ours.get("restart").is_none(),
        "no restart follows, so none is announced"
    );
    assert_ne!(ours["hash"], base);
    // On disk: the patch merged into what the user wrote, the API key kept.
    let written: Value = serde_json::from_str(b.config_file.as_deref().unwrap()).unwrap();
    assert_eq!(written["session"]["maintenance"]["pruneAfter"], "45d");
    assert_eq!(written["models"]["providers"]["fakeai"]["apiKey"], "sk-local");
    assert_eq!(written["tools"]["exec"]["mode"], "ask");
    // In force: config.get shows the new file under the hash the answer gave.
    let after = get(&mut b, op);
    assert_eq!(after["hash"], ours["hash"]);
    assert_eq!(after["resolved"]["session"]["maintenance"]["pruneAfter"], "45d");
    let changed: Vec<_> = b
        .events(watch)
        .into_iter()
        .filter(|e| e.event == "config.changed")
        .collect();
    assert_eq!(changed.len(), 1);
    let event: Value = changed[0].parse_payload().unwrap();
    has_captured_keys(&event, &json!({"path": 1, "hash": 1, "ts": 1}), &[]);
    assert_eq!(event["hash"], ours["hash"]);
}

#[test]
fn a_patch_without_a_base_hash_is_refused_with_the_captured_message() {
    let mut b = bench();
    let op = admin(&mut b);
    let params = golden("config.patch.no-hash.req.json")["params"].clone();
    let res = b.request(op, "patch", "config.patch", params);
    assert_eq!(
        res.error.as_ref().map(|e| e.code.as_str()),
        Some(
            golden("config.patch.no-hash.res.json")["error"]["code"]
                .as_str()
                .unwrap()
        )
    );
    assert_eq!(
        error_message(&res),
        golden("config.patch.no-hash.res.json")["error"]["message"]
            .as_str()
            .unwrap()
    );
    assert!(b.config_file.is_none(), "nothing written");
}

#[test]
fn a_stale_base_hash_is_refused_for_patch_and_set() {
    let mut b = bench();
    let op = admin(&mut b);
    for name in ["config.patch.stale-hash", "config.set.stale-hash"] {
        let req = golden(&format!("{name}.req.json"));
        let res = b.request(op, "w", req["method"].as_str().unwrap(), req["params"].clone());
        assert_eq!(
            error_message(&res),
            golden(&format!("{name}.res.json"))["error"]["message"]
                .as_str()
                .unwrap()
        );
    }
    assert!(b.config_file.is_none(), "nothing written");
}

#[test]
fn a_second_write_with_the_first_ones_base_is_stale() {
    let mut b = bench();
    let op = admin(&mut b);
    let base = get(&mut b, op)["hash"].clone();
    let first = json!({"raw": "{session: {mainKey: 'home'}}", "baseHash": base});
    assert!(b.request(op, "1", "config.patch", first).ok);
    let second = json!({"raw": "{session: {mainKey: 'work'}}", "baseHash": base});
    let res = b.request(op, "2", "config.patch", second);
    assert_eq!(
        error_message(&res),
        "config changed since last load; re-run config.get and retry"
    );
    let written: Value = serde_json::from_str(b.config_file.as_deref().unwrap()).unwrap();
    assert_eq!(written["session"]["mainKey"], "home");
}

#[test]
fn config_set_takes_the_shown_text_back_with_its_secrets_in_place() {
    let mut b = bench();
    let op = admin(&mut b);
    let shown = get(&mut b, op);
    let mut doc: Value = serde_json::from_str(shown["raw"].as_str().unwrap()).unwrap();
    doc["session"] = json!({"mainKey": "home"});
    let res = b.request(
        op,
        "set",
        "config.set",
        json!({"raw": doc.to_string(), "baseHash": shown["hash"]}),
    );
    assert!(res.ok, "{res:?}");
    let written: Value = serde_json::from_str(b.config_file.as_deref().unwrap()).unwrap();
    assert_eq!(written["models"]["providers"]["fakeai"]["apiKey"], "sk-local");
    assert_eq!(written["session"]["mainKey"], "home");
    assert_eq!(payload(&res)["changedPaths"], json!(["session.mainKey"]));
}

#[test]
fn a_write_that_does_not_validate_is_refused_and_nothing_is_written() {
    let mut b = bench();
    let op = admin(&mut b);
    let base = get(&mut b, op)["hash"].clone();
    let res = b.request(
        op,
        "p",
        "config.patch",
        json!({"raw": "{gateway: {port: 'high'}}", "baseHash": base}),
    );
    assert!(error_message(&res).contains("gateway.port"), "{res:?}");
    let res = b.request(op, "p", "config.patch", json!({"raw": "{gateway: ", "baseHash": base}));
    assert!(error_message(&res).contains("raw is not JSON5"), "{res:?}");
    assert!(b.config_file.is_none());
    assert_eq!(get(&mut b, op)["hash"], base);
}

#[test]
fn a_failed_write_is_an_error_and_changes_nothing() {
    let mut b = bench();
    let op = admin(&mut b);
    let base = get(&mut b, op)["hash"].clone();
    b.fail_config_writes = true;
    let res = b.request(
        op,
        "p",
        "config.patch",
        json!({"raw": "{session: {mainKey: 'home'}}", "baseHash": base}),
    );
    let error = res.error.as_ref().expect("an error");
    assert_eq!(error.code.as_str(), "UNAVAILABLE");
    assert!(error.message.contains("read-only file system"), "{error:?}");
    assert_eq!(get(&mut b, op)["hash"], base, "the file in force is unchanged");
}

#[test]
fn a_write_needs_the_admin_scope() {
    let mut b = bench();
    let op = b.operator(&["operator.read", "operator.write"]);
    b.take_texts(op);
    let base = get(&mut b, op)["hash"].clone();
    let res = b.request(
        op,
        "p",
        "config.patch",
        json!({"raw": "{session: {mainKey: 'x'}}", "baseHash": base}),
    );
    assert!(!res.ok);
    assert!(b.config_file.is_none());
}

#[test]
fn a_write_that_changes_nothing_writes_nothing() {
    let mut b = bench();
    let op = admin(&mut b);
    let base = get(&mut b, op)["hash"].clone();
    let res = b.request(
        op,
        "p",
        "config.patch",
        json!({"raw": "{tools: {exec: {mode: 'ask'}}}", "baseHash": base}),
    );
    assert!(res.ok, "{res:?}");
    assert_eq!(payload(&res)["changedPaths"], json!([]));
    assert!(b.config_file.is_none());
}

#[test]
fn each_write_is_in_the_control_plane_audit_log_without_its_secrets() {
    let mut b = bench();
    let op = admin(&mut b);
    let base = get(&mut b, op)["hash"].clone();
    let raw = "{models: {providers: {fakeai: {apiKey: 'sk-rotated'}}}}";
    assert!(
        b.request(op, "p", "config.patch", json!({"raw": raw, "baseHash": base}))
            .ok
    );
    assert_eq!(b.control_audit.len(), 1);
    let line: Value = serde_json::from_str(&b.control_audit[0]).unwrap();
    assert_eq!(line["action"], "config.patch");
    assert_eq!(line["paths"], json!(["models.providers.fakeai.apiKey"]));
    assert_eq!(line["actor"]["clientId"], "cli");
    assert!(!b.control_audit[0].contains("sk-"), "{}", b.control_audit[0]);
}

#[test]
fn a_change_that_needs_a_restart_is_answered_then_the_gateway_restarts() {
    let mut b = bench();
    let op = admin(&mut b);
    let base = get(&mut b, op)["hash"].clone();
    b.send_text(
        op,
        &json!({"type": "req", "id": "p", "method": "config.patch", "params": {"raw": "{gateway: {port: 18800}}", "baseHash": base}}).to_string(),
    );
    let frames = b.frames(op);
    let answer = frames
        .iter()
        .position(|f| matches!(f, clawgate_proto::frame::Frame::Response(r) if r.id == "p"))
        .expect("answered");
    let shutdown = frames
        .iter()
        .position(|f| matches!(f, clawgate_proto::frame::Frame::Event(e) if e.event == "shutdown"))
        .expect("the gateway restarts for a new port");
    assert!(answer < shutdown);
    let clawgate_proto::frame::Frame::Response(res) = &frames[answer] else {
        unreachable!()
    };
    let stats = &payload(res)["sentinel"]["payload"]["stats"];
    assert_eq!(stats["requiresRestart"], true);
    assert_eq!(stats["restartPaths"], json!(["gateway.port"]));
    assert_eq!(payload(res)["restart"]["reason"], "config.patch");
}

#[test]
fn config_schema_describes_what_clawgate_reads_and_marks_what_it_ignores() {
    let mut b = bench();
    let op = admin(&mut b);
    let res = b.request(op, "s", "config.schema", json!({}));
    let ours = payload(&res);
    has_captured_keys(
        &ours,
        &json!({"schema": 1, "uiHints": 1, "version": 1, "generatedAt": 1}),
        &[],
    );
    assert_eq!(ours["schema"]["$schema"], "http://json-schema.org/draft-07/schema#");
    let port = &ours["schema"]["properties"]["gateway"]["properties"]["port"];
    assert_eq!(port["type"], "integer");
    assert_eq!(ours["schema"]["properties"]["channels"]["x-clawgate"], "ignored");
    assert_eq!(ours["uiHints"]["gateway.auth.token"]["sensitive"], true);
}

#[test]
fn config_schema_lookup_has_the_captured_shape() {
    let mut b = bench();
    let op = admin(&mut b);
    let req = golden("config.schema.lookup.req.json");
    let res = b.request(op, "l", "config.schema.lookup", req["params"].clone());
    let ours = payload(&res);
    let captured = golden("config.schema.lookup.res.json")["payload"].clone();
    has_captured_keys(&ours, &captured, &[]);
    has_captured_keys(&ours["hint"], &captured["hint"], &[]);
    assert_eq!(ours["schema"]["type"], captured["schema"]["type"]);
    // Deliberate difference: Clawgate applies a new prune period live.
    assert_eq!(ours["reloadKind"], "hot");
    let section = payload(&b.request(op, "l", "config.schema.lookup", json!({"path": "cron"})));
    assert!(section["children"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["key"] == "skipMissedJobs"));
    let res = b.request(op, "l", "config.schema.lookup", json!({"path": "gateway.nope"}));
    assert!(error_message(&res).contains("gateway.nope"));
}

#[test]
fn other_control_plane_changes_are_audited_by_their_ids_only() {
    let mut b = bench();
    let op = admin(&mut b);
    assert!(b.request(op, "h", "set-heartbeats", json!({"enabled": false})).ok);
    let refused = b.request(
        op,
        "u",
        "cron.update",
        json!({"id": "no-such-job", "patch": {"enabled": false}}),
    );
    assert!(!refused.ok);
    assert_eq!(
        b.control_audit.len(),
        1,
        "a refused change is no change: {:?}",
        b.control_audit
    );
    let line: Value = serde_json::from_str(&b.control_audit[0]).unwrap();
    assert_eq!(line["action"], "set-heartbeats");
    assert_eq!(line["target"], json!({"enabled": false}));
    assert_eq!(line["ts"], START);
}

#[test]
fn agents_create_writes_an_entry_and_answers_as_captured() {
    let mut b = bench();
    let op = admin(&mut b);
    let watch = watcher(&mut b);
    let res = b.request(
        op,
        "c",
        "agents.create",
        golden("agents.create.req.json")["params"].clone(),
    );
    assert!(res.ok, "{res:?}");
    let ours = payload(&res);
    let captured = golden("agents.create.res.json")["payload"].clone();
    has_captured_keys(&ours, &captured, &[]);
    assert_eq!(ours["agentId"], captured["agentId"]);
    assert_eq!(
        ours["workspace"], captured["workspace"],
        "under agents.defaults.workspace"
    );
    let written: Value = serde_json::from_str(b.config_file.as_deref().unwrap()).unwrap();
    assert_eq!(written["agents"]["entries"]["golden-helper"]["name"], "Golden Helper");
    assert_eq!(
        written["models"]["providers"]["fakeai"]["apiKey"], "sk-local",
        "the rest of the file stays"
    );
    let listed = payload(&b.request(op, "l", "agents.list", json!({})));
    assert!(
        listed["agents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == "golden-helper"),
        "{listed}"
    );
    // As captured: chats are told to read agents again, then the file change is announced.
    let told: Vec<String> = b
        .events(watch)
        .into_iter()
        .map(|e| e.event)
        .filter(|e| e.ends_with(".changed"))
        .collect();
    assert_eq!(told, ["chat.metadata.changed", "config.changed"]);
    let again = b.request(op, "c", "agents.create", json!({"name": "golden helper"}));
    assert!(error_message(&again).contains("already exists"));
}

#[test]
fn agents_update_and_delete_edit_the_entry_the_file_has() {
    let mut b = bench();
    let op = admin(&mut b);
    assert!(b.request(op, "c", "agents.create", json!({"name": "Golden Helper"})).ok);
    let res = b.request(
        op,
        "u",
        "agents.update",
        golden("agents.update.req.json")["params"].clone(),
    );
    assert_eq!(payload(&res), golden("agents.update.res.json")["payload"]);
    let written: Value = serde_json::from_str(b.config_file.as_deref().unwrap()).unwrap();
    assert_eq!(
        written["agents"]["entries"]["golden-helper"]["name"],
        "Golden Helper Two"
    );
    let res = b.request(
        op,
        "d",
        "agents.delete",
        golden("agents.delete.req.json")["params"].clone(),
    );
    let ours = payload(&res);
    has_captured_keys(&ours, &golden("agents.delete.res.json")["payload"], &[]);
    assert_eq!(ours["kept"][0]["path"], "/home/user/.openclaw/workspace/golden-helper");
    let written: Value = serde_json::from_str(b.config_file.as_deref().unwrap()).unwrap();
    assert!(written["agents"]["entries"].get("golden-helper").is_none());
    let unknown = b.request(op, "d", "agents.delete", json!({"agentId": "golden-helper"}));
    assert!(error_message(&unknown).contains("unknown agent id"));
    let default = b.request(op, "d", "agents.delete", json!({"agentId": "main"}));
    assert!(error_message(&default).contains("default agent"));
}

#[test]
fn a_restart_request_is_answered_then_the_gateway_stops_to_start_again() {
    let mut b = bench();
    let op = admin(&mut b);
    b.send_text(
        op,
        &json!({"type": "req", "id": "r", "method": "gateway.restart.request", "params": {"reason": "new binary"}})
            .to_string(),
    );
    let frames = b.frames(op);
    let answer = frames
        .iter()
        .position(|f| matches!(f, clawgate_proto::frame::Frame::Response(r) if r.id == "r" && r.ok));
    let shutdown = frames
        .iter()
        .position(|f| matches!(f, clawgate_proto::frame::Frame::Event(e) if e.event == "shutdown"));
    assert!(answer.expect("answered") < shutdown.expect("stopping"));
    assert!(b.gw.restart_requested());
    let line: Value = serde_json::from_str(b.control_audit.last().unwrap()).unwrap();
    assert_eq!(line["action"], "gateway.restart.request");
}

#[test]
fn agents_files_read_and_write_the_workspace_bootstrap_files_as_captured() {
    let mut b = bench();
    let op = admin(&mut b);
    assert!(b.request(op, "c", "agents.create", json!({"name": "Golden Helper"})).ok);
    let list = payload(&b.request(
        op,
        "l",
        "agents.files.list",
        golden("agents.files.list.req.json")["params"].clone(),
    ));
    let captured = golden("agents.files.list.res.json")["payload"].clone();
    has_captured_keys(&list, &captured, &[]);
    assert_eq!(list["workspace"], captured["workspace"]);
    let memory = list["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "MEMORY.md")
        .cloned()
        .unwrap();
    assert_eq!(memory, captured["files"][4]);
    // A first write of a file that is not there yet needs no hash.
    let seed = json!({"agentId": "golden-helper", "name": "AGENTS.md", "content": "# Seed\n"});
    assert!(b.request(op, "s", "agents.files.set", seed).ok);
    let got = payload(&b.request(
        op,
        "g",
        "agents.files.get",
        golden("agents.files.get.req.json")["params"].clone(),
    ));
    has_captured_keys(
        &got["file"],
        &golden("agents.files.get.res.json")["payload"]["file"],
        &[],
    );
    assert_eq!(got["file"]["content"], "# Seed\n");
    let mut set = golden("agents.files.set.req.json")["params"].clone();
    set["expectedHash"] = got["file"]["hash"].clone();
    let res = b.request(op, "s", "agents.files.set", set);
    let written = payload(&res);
    let captured_set = golden("agents.files.set.res.json")["payload"].clone();
    has_captured_keys(&written, &captured_set, &[]);
    assert_eq!(
        written["file"]["hash"], captured_set["file"]["hash"],
        "the hash is the text's SHA-256"
    );
    assert_eq!(
        b.workspace_files["/home/user/.openclaw/workspace/golden-helper/AGENTS.md"].0,
        captured_set["file"]["content"]
    );
    let stale = b.request(
        op,
        "s",
        "agents.files.set",
        golden("agents.files.set.stale-hash.req.json")["params"].clone(),
    );
    let expected = golden("agents.files.set.stale-hash.res.json")["error"].clone();
    let error = stale.error.expect("a conflict");
    assert_eq!(error.message, expected["message"].as_str().unwrap());
    assert_eq!(error.details, Some(expected["details"].clone()));
    let other = b.request(
        op,
        "s",
        "agents.files.set",
        json!({"agentId": "golden-helper", "name": "../etc/passwd", "content": "x"}),
    );
    assert!(error_message(&other).contains("not a workspace file"));
}

#[test]
fn config_apply_replaces_the_whole_file_keeps_redacted_secrets_and_restarts_only_when_needed() {
    let mut b = bench();
    let op = admin(&mut b);
    let current = get(&mut b, op);
    let mut document = current["parsed"].clone();
    document["session"] = json!({"maintenance": {"pruneAfter": "10d"}});
    document.as_object_mut().unwrap().remove("tools");
    let res = b.request(
        op,
        "apply",
        "config.apply",
        json!({"raw": document.to_string(), "baseHash": current["hash"]}),
    );
    assert!(res.ok, "{res:?}");
    let ours = payload(&res);
    assert_eq!(ours["sentinel"]["payload"]["kind"], "config-apply");
    assert!(ours.get("restart").is_none(), "nothing restart-class changed");
    let written: Value = serde_json::from_str(b.config_file.as_deref().unwrap()).unwrap();
    assert_eq!(written["session"]["maintenance"]["pruneAfter"], "10d");
    assert!(written.get("tools").is_none(), "apply replaces; it does not merge");
    assert_eq!(written["models"]["providers"]["fakeai"]["apiKey"], "sk-local");
}
