//! The operator methods of sessions, tasks and the host that the Control UI and the CLI call,
//! checked against the real gateway's captures in `proto/tests/golden/agent-tools/operator-methods/`.

// The captures are read from disk by the test; the engine itself never reads a file.
#![allow(clippy::disallowed_methods)]

mod captures;

use captures::{golden, has_captured_keys, no_env, read};
use clawgate_engine::testkit::*;
use clawgate_engine::{ConnId, Gateway, GatewayConfig};
use serde_json::{json, Value};

/// A gateway from the captured file: the main agent's model is `fakeai/fake-golden`.
fn bench() -> Bench {
    let (settings, _) =
        clawgate_engine::settings::parse(&read("config/openclaw.phase2-approvals.json"), &no_env).unwrap();
    let mut config = GatewayConfig::with_token(TOKEN);
    config.state_dir = "/state".into();
    config.apply_file(&settings);
    Bench::with_gateway(
        Gateway::new(config, Box::new(FakeEntropy(11)), START).with_config_file(settings.document, settings.text),
    )
}

fn operator(b: &mut Bench) -> ConnId {
    let op = b.operator(&[
        "operator.admin",
        "operator.read",
        "operator.write",
        "operator.approvals",
    ]);
    b.take_texts(op);
    op
}

fn ok(b: &mut Bench, op: ConnId, method: &str, params: Value) -> Value {
    let res = b.request(op, "r", method, params);
    assert!(res.ok, "{method}: {res:?}");
    payload(&res)
}

/// Entry fields of OpenClaw's session store that Clawgate has no counterpart for.
const ENTRY_EXTRAS: &[&str] = &["lifecycleRevision", "sessionRoot"];

#[test]
fn sessions_create_answers_in_the_captured_shape() {
    let mut b = bench();
    let op = operator(&mut b);
    let req = golden("sessions.create.req.json");
    let ours = ok(&mut b, op, "sessions.create", req["params"].clone());
    let captured = golden("sessions.create.res.json")["payload"].clone();
    has_captured_keys(&ours, &captured, &[]);
    has_captured_keys(&ours["entry"], &captured["entry"], ENTRY_EXTRAS);
    assert_eq!(ours["key"], captured["key"]);
    assert_eq!(ours["entry"]["label"], "Golden Created");
    assert_eq!(ours["entry"]["parentSessionKey"], "agent:main:main");
    assert_eq!(
        ours["resolved"],
        json!({"modelProvider": "fakeai", "model": "fake-golden", "agentRuntime": {"id": "clawgate-worker", "source": "implicit"}, "runtimeSelectionLocked": false})
    );
    let again = b.request(op, "r", "sessions.create", req["params"].clone());
    assert!(!again.ok, "a session is created once");
}

#[test]
fn sessions_patch_sets_a_label_in_the_captured_shape_and_lists_it() {
    let mut b = bench();
    let op = operator(&mut b);
    ok(
        &mut b,
        op,
        "sessions.create",
        golden("sessions.create.req.json")["params"].clone(),
    );
    let ours = ok(
        &mut b,
        op,
        "sessions.patch",
        golden("sessions.patch.label.req.json")["params"].clone(),
    );
    let captured = golden("sessions.patch.label.res.json")["payload"].clone();
    has_captured_keys(&ours, &captured, &[]);
    has_captured_keys(&ours["entry"], &captured["entry"], ENTRY_EXTRAS);
    has_captured_keys(&ours["resolved"], &captured["resolved"], &[]);
    assert_eq!(ours["entry"]["label"], "Golden Renamed");
    let list = ok(&mut b, op, "sessions.list", json!({}));
    let row = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "agent:main:golden-created")
        .cloned();
    assert_eq!(row.unwrap()["label"], "Golden Renamed");
}

#[test]
fn unread_marks_a_session_and_reading_it_clears_the_mark() {
    let mut b = bench();
    let op = operator(&mut b);
    let key = "agent:main:tool-read";
    let marked = ok(
        &mut b,
        op,
        "sessions.patch",
        golden("sessions.patch.unread-true.req.json")["params"].clone(),
    );
    assert_eq!(marked["entry"]["markedUnreadAt"], START);
    let unread = |b: &mut Bench| {
        let list = ok(b, op, "sessions.list", json!({}));
        list["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["key"] == key)
            .unwrap()["unread"]
            .clone()
    };
    assert_eq!(unread(&mut b), true);
    // A reader that saw an older mark does not clear a newer one.
    b.advance(1000);
    ok(
        &mut b,
        op,
        "sessions.patch",
        json!({"key": key, "unread": false, "expectedMarkedUnreadAt": START - 5}),
    );
    assert_eq!(unread(&mut b), true);
    let read = ok(
        &mut b,
        op,
        "sessions.patch",
        golden("sessions.patch.unread-false.req.json")["params"].clone(),
    );
    assert_eq!(read["entry"]["lastReadAt"], START + 1000);
    assert_eq!(unread(&mut b), false);
}

#[test]
fn retired_exec_fields_are_refused_with_the_captured_message() {
    let mut b = bench();
    let op = operator(&mut b);
    let res = b.request(
        op,
        "r",
        "sessions.patch",
        golden("sessions.patch.retired-execSecurity.req.json")["params"].clone(),
    );
    let captured = golden("sessions.patch.retired-execSecurity.res.json")["error"].clone();
    let error = res.error.expect("an error");
    assert_eq!(error.code.as_str(), captured["code"].as_str().unwrap());
    assert_eq!(error.message, captured["message"].as_str().unwrap());
}

#[test]
fn fields_clawgate_does_not_keep_are_refused_by_name() {
    let mut b = bench();
    let op = operator(&mut b);
    for (params, named) in [
        (json!({"key": "main", "permissionMode": "full"}), "permissionMode"),
        (json!({"key": "main", "model": "nowhere/model"}), "nowhere/model"),
        (json!({"key": "main", "thinkingLevel": "high"}), "thinking"),
        (json!({"key": "main", "label": ""}), "label"),
    ] {
        let res = b.request(op, "r", "sessions.patch", params);
        assert!(res.error.as_ref().unwrap().message.contains(named), "{res:?}");
    }
}

#[test]
fn a_sessions_model_override_is_the_model_its_runs_use() {
    let mut b = bench();
    let op = operator(&mut b);
    let node = b.ws(loopback(), &[]);
    assert!(b.connect(node, worker_params(&["main"])).ok);
    b.take_texts(node);
    let patched = ok(
        &mut b,
        op,
        "sessions.patch",
        json!({"key": "main", "model": "fakeai/fake-large"}),
    );
    assert_eq!(patched["resolved"]["model"], "fake-large");
    assert_eq!(patched["entry"]["modelOverrideSource"], "session");
    ok(
        &mut b,
        op,
        "chat.send",
        json!({"sessionKey": "main", "message": "hi", "idempotencyKey": "k1"}),
    );
    let invoke = b
        .events(node)
        .into_iter()
        .find(|e| e.event == "node.invoke.request")
        .map(|e| e.parse_payload::<Value>().unwrap())
        .expect("the run went to the worker");
    let params: Value = serde_json::from_str(invoke["paramsJSON"].as_str().unwrap()).unwrap();
    assert_eq!(params["modelRef"], "fakeai/fake-large");
}

#[test]
fn a_patch_survives_a_restart_in_the_transcript() {
    let mut b = bench();
    let op = operator(&mut b);
    ok(
        &mut b,
        op,
        "sessions.patch",
        json!({"key": "main", "label": "Home", "pinned": true}),
    );
    let files: Vec<String> = b.transcripts.values().map(|lines| lines.join("\n")).collect();
    let mut again = Bench::with_gateway(
        Gateway::new(b.gw.config().clone(), Box::new(FakeEntropy(12)), START).with_transcripts(files),
    );
    let op = operator(&mut again);
    let list = ok(&mut again, op, "sessions.list", json!({}));
    assert_eq!(list["sessions"][0]["label"], "Home");
    assert_eq!(list["sessions"][0]["pinned"], true);
}

#[test]
fn tasks_list_shows_runs_in_the_captured_shape() {
    let mut b = bench();
    let op = operator(&mut b);
    ok(
        &mut b,
        op,
        "chat.send",
        json!({"sessionKey": "main", "message": "queued for a worker", "idempotencyKey": "k2"}),
    );
    let ours = ok(&mut b, op, "tasks.list", json!({}));
    let captured = golden("tasks.list.res.json")["payload"]["tasks"][0].clone();
    let task = &ours["tasks"][0];
    has_captured_keys(task, &captured, &[]);
    assert_eq!(task["status"], "queued");
    assert_eq!(task["sessionKey"], "agent:main:main");
}

#[test]
fn system_info_reports_the_host_the_runtime_measured() {
    let mut b = bench();
    let op = operator(&mut b);
    let info = ok(&mut b, op, "system.info", json!({}));
    assert_eq!(info["cpuCount"], 2);
    assert_eq!(info["loadAverage"], json!([0.5, 0.25, 0.1]));
    assert_eq!(info["memoryTotalBytes"], 24u64 << 30);
    assert_eq!(info["disks"][0]["path"], "/state");
    assert_eq!(info["processMemory"]["rssBytes"], 5u64 << 20);
    assert_eq!(info["port"], 18789);
}

#[test]
fn diagnostics_lanes_count_runs_under_way_and_waiting() {
    let mut b = bench();
    let op = operator(&mut b);
    let idle = ok(&mut b, op, "diagnostics.lanes", json!({}));
    assert_eq!(idle["lanes"][0]["activeCount"], 0);
    assert_eq!(idle["lanes"][0]["queuedCount"], 0);
    ok(
        &mut b,
        op,
        "chat.send",
        json!({"sessionKey": "main", "message": "wait", "idempotencyKey": "k3"}),
    );
    let busy = ok(&mut b, op, "diagnostics.lanes", json!({}));
    assert_eq!(busy["lanes"][0]["queuedCount"], 1);
    assert_eq!(busy["lanes"][0]["activeCount"], 0, "no worker has the run yet");
}

#[test]
fn sessions_usage_counts_each_sessions_messages_in_the_range() {
    let mut b = bench();
    let op = operator(&mut b);
    ok(
        &mut b,
        op,
        "chat.send",
        json!({"sessionKey": "main", "message": "count me", "idempotencyKey": "k4"}),
    );
    let usage = ok(&mut b, op, "sessions.usage", json!({}));
    has_captured_keys(
        &usage,
        &json!({"updatedAt": 1, "startDate": 1, "endDate": 1, "sessions": 1, "totals": 1, "aggregates": 1}),
        &[],
    );
    assert_eq!(usage["aggregates"]["sessionCount"], 1);
    assert_eq!(usage["sessions"][0]["usage"]["messageCounts"]["total"], 1);
    let before = ok(
        &mut b,
        op,
        "sessions.usage",
        json!({"startDate": "2020-01-01", "endDate": "2020-01-31"}),
    );
    assert_eq!(before["sessions"], json!([]));
    let bad = b.request(op, "r", "sessions.usage", json!({"startDate": "last week"}));
    assert!(!bad.ok);
}

#[test]
fn product_features_clawgate_lacks_answer_empty_states() {
    let mut b = bench();
    let op = operator(&mut b);
    for (method, key) in [
        ("skills.status", "skills"),
        ("skills.library.list", "entries"),
        ("plugins.list", "plugins"),
        ("plugins.catalog.browse", "items"),
        ("artifacts.list", "artifacts"),
        ("sessions.branches.list", "branches"),
        ("channels.pairing.list", "requests"),
        ("exec.approval.grants.list", "grants"),
        ("approval.history", "items"),
        ("talk.catalog", "modes"),
    ] {
        let answer = ok(&mut b, op, method, json!({"sessionKey": "main"}));
        assert_eq!(answer[key], json!([]), "{method}");
    }
    assert_eq!(
        ok(&mut b, op, "doctor.memory.status", json!({}))["embedding"]["ok"],
        false
    );
    assert_eq!(
        ok(&mut b, op, "webSearch.status", json!({}))["route"]["kind"],
        "disabled"
    );
    assert_eq!(
        ok(&mut b, op, "tools.github.status", json!({}))["selected"]["configured"],
        false
    );
    assert_eq!(
        ok(&mut b, op, "progressCard.get", json!({"sessionKey": "main"}))["card"],
        Value::Null
    );
    let themes = ok(&mut b, op, "themes.list", json!({}));
    assert_eq!(themes["current"]["id"], "claw");
    assert!(themes["themes"].as_array().unwrap().iter().any(|t| t["id"] == "tide"));
}

#[test]
fn commands_cli_reads_answer_what_clawgate_has() {
    let mut b = bench();
    let op = b.operator(&["operator.admin", "operator.read", "operator.pairing"]);
    b.take_texts(op);
    let captured = golden("commands.list.res.json")["payload"].clone();
    let commands = ok(&mut b, op, "commands.list", json!({}));
    has_captured_keys(&commands, &captured, &[]);
    assert_eq!(
        commands["commands"],
        json!([]),
        "Clawgate passes chat messages to the agent as they are"
    );
    let stability = ok(&mut b, op, "diagnostics.stability", json!({}));
    assert_eq!(stability["events"], json!([]));
    let hooks = ok(&mut b, op, "hooks.status", json!({}));
    assert_eq!(hooks["hooks"], json!([]));
    let nodes = ok(&mut b, op, "node.pair.list", json!({}));
    assert_eq!(nodes, json!({"pending": [], "paired": []}));
    let before = b.reload_requests;
    assert_eq!(ok(&mut b, op, "secrets.reload", json!({}))["ok"], true);
    assert_eq!(b.reload_requests, before + 1, "the file is read again");
}

#[test]
fn a_worker_waiting_for_pairing_is_a_pending_node() {
    let mut b = bench();
    let op = b.operator(&["operator.admin", "operator.read", "operator.pairing"]);
    b.take_texts(op);
    let node = b.ws(remote(), &[]);
    let identity = clawgate_proto::device::DeviceIdentity::from_seed(&[9; 32]);
    let nonce = b.nonce(node);
    let params = with_device(&worker_params(&["main"]), &identity, &nonce, b.now);
    let res = b.connect(node, params);
    assert!(!res.ok, "a device from another host waits for approval");
    let nodes = ok(&mut b, op, "node.pair.list", json!({}));
    assert_eq!(nodes["pending"][0]["nodeId"], identity.device_id());
}

fn worker(b: &mut Bench) -> ConnId {
    let node = b.ws(loopback(), &[]);
    assert!(b.connect(node, worker_params(&["main"])).ok);
    b.take_texts(node);
    node
}

/// Answers every run the worker was asked for with `text`; returns the runs' params.
fn answer_runs(b: &mut Bench, node: ConnId, text: &str) -> Vec<Value> {
    let invokes: Vec<Value> = b
        .events(node)
        .into_iter()
        .filter(|e| e.event == "node.invoke.request")
        .map(|e| e.parse_payload().unwrap())
        .collect();
    let mut asked = Vec::new();
    for invoke in invokes {
        asked.push(serde_json::from_str(invoke["paramsJSON"].as_str().unwrap()).unwrap());
        let result = json!({"id": invoke["id"], "nodeId": invoke["nodeId"], "ok": true, "payloadJSON": json!({"text": text}).to_string()});
        assert!(b.request(node, "res", "node.invoke.result", result).ok);
    }
    asked
}

/// A session with `turns` exchanges answered by the worker.
fn chatted(b: &mut Bench, op: ConnId, node: ConnId, turns: usize) {
    for i in 0..turns {
        ok(
            b,
            op,
            "chat.send",
            json!({"sessionKey": "main", "message": format!("question {i}"), "idempotencyKey": format!("q{i}")}),
        );
        answer_runs(b, node, &format!("answer {i}"));
    }
}

fn history(b: &mut Bench, op: ConnId) -> Vec<Value> {
    ok(b, op, "chat.history", json!({"sessionKey": "main"}))["messages"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn compacting_to_max_lines_keeps_the_last_lines_in_memory_and_on_disk() {
    let mut b = bench();
    let op = operator(&mut b);
    let node = worker(&mut b);
    chatted(&mut b, op, node, 3);
    let req = golden("sessions.compact.maxLines.req.json");
    let mut params = req["params"].clone();
    params["key"] = json!("main");
    let ours = ok(&mut b, op, "sessions.compact", params);
    let captured = golden("sessions.compact.maxLines.res.json")["payload"].clone();
    has_captured_keys(&ours, &captured, &[]);
    assert_eq!(ours["kept"], 2);
    let kept = history(&mut b, op);
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[1]["content"][0]["text"], "answer 2");
    let file = b.transcripts.values().next().unwrap().clone();
    assert_eq!(file.len(), 3, "the header and two messages: {file:?}");
    assert!(file[2].contains("answer 2"));
}

#[test]
fn a_session_too_small_has_nothing_to_compact() {
    let mut b = bench();
    let op = operator(&mut b);
    ok(
        &mut b,
        op,
        "sessions.create",
        golden("sessions.create.req.json")["params"].clone(),
    );
    let ours = ok(
        &mut b,
        op,
        "sessions.compact",
        golden("sessions.compact.no-transcript.req.json")["params"].clone(),
    );
    assert_eq!(ours, golden("sessions.compact.no-transcript.res.json")["payload"]);
}

#[test]
fn compacting_without_max_lines_replaces_the_history_with_the_agents_summary() {
    let mut b = bench();
    let op = operator(&mut b);
    let node = worker(&mut b);
    chatted(&mut b, op, node, 3);
    b.send_text(
        op,
        &json!({"type": "req", "id": "compact", "method": "sessions.compact", "params": {"key": "main"}}).to_string(),
    );
    assert!(b.responses(op).is_empty(), "the answer waits for the summary");
    let asked = answer_runs(&mut b, node, "The user asked three questions.");
    assert_eq!(asked.len(), 1, "one summary turn");
    assert_eq!(
        asked[0]["history"].as_array().unwrap().len(),
        6,
        "it reads the whole session"
    );
    let res = b
        .responses(op)
        .into_iter()
        .find(|r| r.id == "compact")
        .expect("answered");
    let ours = payload(&res);
    let captured = golden("sessions.compact.res.json")["payload"].clone();
    has_captured_keys(&ours, &captured, &[]);
    has_captured_keys(&ours["result"], &captured["result"], &[]);
    assert_eq!(ours["result"]["summary"], "The user asked three questions.");
    let now = history(&mut b, op);
    assert_eq!(now.len(), 3, "the summary and the latest exchange: {now:?}");
    assert!(now[0]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("three questions"));
    assert_eq!(now[2]["content"][0]["text"], "answer 2");
    assert_eq!(ours["result"]["firstKeptEntryId"], now[1]["__openclaw"]["id"]);
}

#[test]
fn sessions_preview_gives_the_last_texts_of_each_session_cut_to_max_chars() {
    let mut b = bench();
    let op = operator(&mut b);
    let node = worker(&mut b);
    chatted(&mut b, op, node, 2);
    let previews = ok(
        &mut b,
        op,
        "sessions.preview",
        json!({"keys": ["main", "agent:main:nothing"], "limit": 3, "maxChars": 6}),
    );
    let main = &previews["previews"][0];
    assert_eq!(main["status"], "ok");
    assert_eq!(
        main["items"],
        json!([
            {"role": "assistant", "text": "ans..."},
            {"role": "user", "text": "que..."},
            {"role": "assistant", "text": "ans..."},
        ])
    );
    assert_eq!(previews["previews"][1]["status"], "missing");
}

#[test]
fn sessions_send_is_chat_send_to_a_session_that_exists() {
    let mut b = bench();
    let op = operator(&mut b);
    let sent = ok(&mut b, op, "sessions.send", json!({"key": "main", "message": "hello"}));
    assert!(sent["runId"].is_string(), "{sent}");
    let missing = b.request(
        op,
        "r",
        "sessions.send",
        json!({"key": "agent:main:nowhere", "message": "hello"}),
    );
    assert_eq!(missing.error.unwrap().message, "session not found: agent:main:nowhere");
}

#[test]
fn sessions_cleanup_prunes_sessions_idle_past_the_configured_time() {
    let mut config = GatewayConfig::with_token(TOKEN);
    config.session_prune_after_ms = 60_000;
    let mut b = Bench::new(config);
    let op = operator(&mut b);
    ok(&mut b, op, "sessions.patch", json!({"key": "main", "label": "old"}));
    assert_eq!(ok(&mut b, op, "sessions.cleanup", json!({}))["removed"], 0);
    b.now += 61_000;
    assert_eq!(ok(&mut b, op, "sessions.cleanup", json!({}))["removed"], 1);
    assert_eq!(ok(&mut b, op, "sessions.list", json!({}))["sessions"], json!([]));
}
