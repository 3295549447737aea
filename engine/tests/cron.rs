//! Cron jobs and heartbeats in the sans-IO engine, on a controlled clock, and the other methods
//! the Control UI's Automations page calls, checked against the real gateway's captures in
//! `proto/tests/golden/agent-tools/operator-methods/`.

// The captures are read from disk by the test; the engine itself never reads a file.
#![allow(clippy::disallowed_methods)]

mod captures;

use captures::{golden, has_captured_keys};
use clawgate_engine::testkit::*;
use clawgate_engine::{ConnId, Gateway, GatewayConfig};
use clawgate_proto::frame::EventFrame;
use serde_json::{json, Value};

fn config() -> GatewayConfig {
    let mut config = GatewayConfig::with_token(TOKEN);
    config.state_dir = "/state".into();
    config
}

/// Connects a worker without reading what it is sent (queued runs come with its hello).
fn hello_worker(b: &mut Bench) -> ConnId {
    let node = b.ws(loopback(), &[]);
    let connect = json!({"type": "req", "id": "c", "method": "connect", "params": worker_params(&["main"])});
    b.send_text(node, &connect.to_string());
    node
}

fn bench() -> Bench {
    Bench::with_gateway(
        Gateway::new(config(), Box::new(FakeEntropy(7)), START)
            .with_cron(None, &[], Box::new(BundledZones))
            .unwrap(),
    )
}

fn admin(b: &mut Bench) -> ConnId {
    let op = b.operator(&["operator.admin", "operator.read", "operator.write"]);
    b.take_texts(op);
    op
}

fn worker(b: &mut Bench) -> ConnId {
    let node = b.ws(loopback(), &[]);
    assert!(b.connect(node, worker_params(&["main"])).ok);
    b.take_texts(node);
    node
}

fn events_named(b: &mut Bench, conn: ConnId, name: &str) -> Vec<Value> {
    b.events(conn)
        .into_iter()
        .filter(|e: &EventFrame| e.event == name)
        .map(|e| e.parse_payload().unwrap())
        .collect()
}

fn invocations(b: &mut Bench, node: ConnId) -> Vec<(Value, Value)> {
    b.events(node)
        .into_iter()
        .filter(|e| e.event == "node.invoke.request")
        .map(|e| {
            let p: Value = e.parse_payload().unwrap();
            let params: Value = serde_json::from_str(p["paramsJSON"].as_str().unwrap()).unwrap();
            (p, params)
        })
        .collect()
}

fn answer_run(b: &mut Bench, node: ConnId, invoke: &Value, text: &str) {
    let res = b.request(
        node,
        "r",
        "node.invoke.result",
        json!({"id": invoke["id"], "nodeId": invoke["nodeId"], "ok": true, "payloadJSON": json!({"text": text}).to_string()}),
    );
    assert!(res.ok, "{res:?}");
}

fn add_every_10m(b: &mut Bench, op: ConnId) -> Value {
    let params = golden("cron.add.req.json")["params"].clone();
    let res = b.request(op, "add", "cron.add", params);
    assert!(res.ok, "{res:?}");
    payload(&res)
}

#[test]
fn cron_status_answers_the_captured_keys_and_names_its_json_store() {
    let mut b = bench();
    let op = admin(&mut b);
    let ours = payload(&b.request(op, "1", "cron.status", json!({})));
    let captured = &golden("cron.status.res.json")["payload"];
    // Clawgate keeps OpenClaw's older file layout instead of its SQLite database.
    has_captured_keys(&ours, captured, &["sqlitePath"]);
    assert_eq!(ours["storage"], "json");
    assert_eq!(ours["storePath"], "/state/cron/jobs.json");
    assert_eq!(ours["jobs"], 1, "the default agent's heartbeat job");
}

#[test]
fn cron_add_answers_the_job_as_captured_and_broadcasts_added() {
    let mut b = bench();
    let op = admin(&mut b);
    let watcher = b.operator(&["operator.read"]);
    b.take_texts(watcher);
    let job = add_every_10m(&mut b, op);
    let captured = &golden("cron.add.res.json")["payload"];
    // `configRevision` ties a job to OpenClaw's config snapshots, which Clawgate does not keep.
    has_captured_keys(&job, captured, &["configRevision"]);
    assert_eq!(
        job["schedule"],
        json!({"kind": "every", "everyMs": 600_000, "anchorMs": START})
    );
    assert_eq!(job["nextRunAtMs"], START + 600_000);
    assert_eq!(job["state"]["nextRunAtMs"], START + 600_000);
    assert_eq!(
        job["deliveryPreview"],
        json!({"label": "not requested", "detail": "not requested"})
    );
    let added = events_named(&mut b, watcher, "cron");
    assert_eq!(added.len(), 1);
    assert_eq!(added[0]["action"], "added");
    assert_eq!(added[0]["jobId"], job["id"]);
    assert!(
        b.disk["cron/jobs.json"].contains("golden-every-10m"),
        "the job is on disk"
    );
}

#[test]
fn cron_list_pages_through_one_snapshot_revision() {
    let mut b = bench();
    let op = admin(&mut b);
    add_every_10m(&mut b, op);
    add_every_10m(&mut b, op);
    let first = payload(&b.request(op, "1", "cron.list", json!({"limit": 2, "offset": 0})));
    has_captured_keys(&first, &golden("cron.list.after-add.res.json")["payload"], &[]);
    assert_eq!(
        (first["total"].as_u64(), first["hasMore"].as_bool()),
        (Some(3), Some(true))
    );
    assert_eq!(first["nextOffset"], 2);
    let second = payload(&b.request(op, "2", "cron.list", json!({"limit": 2, "offset": 2})));
    assert_eq!(second["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(
        (second["hasMore"].as_bool(), &second["nextOffset"]),
        (Some(false), &Value::Null)
    );
    assert_eq!(first["snapshotRevision"], second["snapshotRevision"]);
    let heartbeat = &first["jobs"][0];
    assert_eq!(heartbeat["declarationKey"], "heartbeat:main");
    assert_eq!(heartbeat["payload"], json!({"kind": "heartbeat"}));
    assert_eq!(heartbeat["effectiveAgentId"], "main");
}

#[test]
fn disabled_jobs_are_hidden_when_the_cli_asks_without_all() {
    let mut b = bench();
    let op = admin(&mut b);
    let job = add_every_10m(&mut b, op);
    let res = b.request(
        op,
        "u",
        "cron.update",
        json!({"id": job["id"], "patch": {"enabled": false}}),
    );
    assert_eq!(payload(&res)["enabled"], false);
    assert_eq!(payload(&res)["nextRunAtMs"], Value::Null);
    let listed = payload(&b.request(op, "1", "cron.list", json!({"includeDisabled": false})));
    assert_eq!(listed["total"], 1);
    let all = payload(&b.request(op, "2", "cron.list", json!({"includeDisabled": true})));
    assert_eq!(all["total"], 2);
}

#[test]
fn an_unknown_job_is_an_invalid_request_with_the_job_id() {
    let mut b = bench();
    let op = admin(&mut b);
    let (code, message, details) = error_code(&b.request(op, "1", "cron.get", json!({"id": "nope"})));
    assert_eq!(code, "INVALID_REQUEST");
    assert!(message.starts_with("cron job not found: nope."), "{message}");
    assert_eq!(details, json!({"code": "CRON_JOB_NOT_FOUND", "jobId": "nope"}));
}

#[test]
fn bad_jobs_are_refused_with_the_reason() {
    let mut b = bench();
    let op = admin(&mut b);
    let base = golden("cron.add.req.json")["params"].clone();
    let mut cases = Vec::new();
    let mut no_name = base.clone();
    no_name.as_object_mut().unwrap().remove("name");
    cases.push((no_name, "name is required"));
    let mut bad_expr = base.clone();
    bad_expr["schedule"] = json!({"kind": "cron", "expr": "every day"});
    cases.push((bad_expr, "not a cron expression"));
    let mut command = base.clone();
    command["sessionTarget"] = json!("isolated");
    command["payload"] = json!({"kind": "command", "argv": ["true"]});
    cases.push((command, "not supported by Clawgate"));
    let mut main_turn = base.clone();
    main_turn["payload"] = json!({"kind": "agentTurn", "message": "hi"});
    cases.push((main_turn, "main jobs require a systemEvent payload"));
    for (params, reason) in cases {
        let (code, message, _) = error_code(&b.request(op, "1", "cron.add", params));
        assert_eq!(code, "INVALID_REQUEST");
        assert!(
            message.starts_with("invalid cron.add params: ") && message.contains(reason),
            "{message}"
        );
    }
}

#[test]
fn changing_jobs_takes_the_admin_scope() {
    let mut b = bench();
    let reader = b.operator(&["operator.read"]);
    let params = golden("cron.add.req.json")["params"].clone();
    let (_, message, _) = error_code(&b.request(reader, "1", "cron.add", params));
    assert!(message.contains("operator.admin"), "{message}");
    assert!(b.request(reader, "2", "cron.list", json!({})).ok, "reading takes read");
}

#[test]
fn a_forced_system_event_job_wakes_a_quiet_heartbeat_turn_and_records_the_run() {
    let mut b = bench();
    let op = admin(&mut b);
    let node = worker(&mut b);
    let job = add_every_10m(&mut b, op);
    b.take_texts(op);
    let res = b.request(op, "run", "cron.run", json!({"id": job["id"], "mode": "force"}));
    let answer = payload(&res);
    has_captured_keys(&answer, &golden("cron.run.res.json")["payload"], &[]);
    assert!(answer["runId"].as_str().unwrap().starts_with("manual:"));
    b.advance(0);
    let runs = invocations(&mut b, node);
    assert_eq!(runs.len(), 1, "one heartbeat turn");
    let (invoke, params) = &runs[0];
    assert_eq!(params["sessionKey"], "agent:main:main");
    assert!(params["message"]
        .as_str()
        .unwrap()
        .contains("golden cron ping for the main session"));
    answer_run(&mut b, node, invoke, "The ping is noted.");
    let events = b.events(op);
    assert!(
        !events.iter().any(|e| e.event == "agent" || e.event == "chat"),
        "a heartbeat turn is not streamed to operators"
    );
    let cron: Vec<Value> = events
        .iter()
        .filter(|e| e.event == "cron")
        .map(|e| e.parse_payload().unwrap())
        .collect();
    assert_eq!(
        cron.iter().map(|c| c["action"].as_str().unwrap()).collect::<Vec<_>>(),
        ["started", "finished"]
    );
    for key in [
        "jobId",
        "job",
        "status",
        "completionStatus",
        "summary",
        "deliveryStatus",
        "runAtMs",
        "durationMs",
        "nextRunAtMs",
        "runId",
    ] {
        assert!(cron[1].get(key).is_some(), "finished event without {key}");
    }
    assert_eq!(cron[1]["status"], "ok");
    assert_eq!(cron[1]["summary"], "golden cron ping for the main session");
    assert_eq!(
        cron[1]["nextRunAtMs"],
        START + 600_000,
        "a forced run keeps the next slot"
    );
    let heartbeat: Vec<Value> = events
        .iter()
        .filter(|e| e.event == "heartbeat")
        .map(|e| e.parse_payload().unwrap())
        .collect();
    assert_eq!(heartbeat.len(), 1);
    assert_eq!(
        (heartbeat[0]["status"].as_str(), heartbeat[0]["reason"].as_str()),
        (Some("skipped"), Some("no-route"))
    );
    let last = payload(&b.request(op, "h", "last-heartbeat", Value::Null));
    has_captured_keys(&last, &golden("last-heartbeat.after-wake.res.json")["payload"], &[]);
    let history = payload(&b.request(op, "runs", "cron.runs", json!({"id": job["id"], "limit": 50})));
    has_captured_keys(&history, &golden("cron.runs.res.json")["payload"], &[]);
    let entry = &history["entries"][0];
    has_captured_keys(entry, &golden("cron.runs.res.json")["payload"]["entries"][0], &[]);
    assert_eq!(entry["completionStatus"], "succeeded");
    assert!(b.disk[&format!("cron/runs/{}.jsonl", job["id"].as_str().unwrap())].contains("\"finished\""));
}

#[test]
fn a_due_job_fires_on_its_slot_and_not_before() {
    let mut b = bench();
    let op = admin(&mut b);
    let node = worker(&mut b);
    add_every_10m(&mut b, op);
    b.advance(599_999);
    assert!(invocations(&mut b, node).is_empty());
    b.advance(1);
    assert_eq!(invocations(&mut b, node).len(), 1);
}

#[test]
fn an_agent_turn_runs_in_its_own_session_and_its_reply_is_announced_in_the_main_session() {
    let mut b = bench();
    let op = admin(&mut b);
    let node = worker(&mut b);
    let res = b.request(
        op,
        "add",
        "cron.add",
        json!({"name": "digest", "schedule": {"kind": "every", "everyMs": 3_600_000}, "sessionTarget": "isolated",
               "payload": {"kind": "agentTurn", "message": "write the digest"}, "delivery": {"mode": "announce"}}),
    );
    let job = payload(&res);
    assert_eq!(job["deliveryPreview"]["label"], "main session");
    b.request(op, "run", "cron.run", json!({"id": job["id"]}));
    b.advance(0);
    let runs = invocations(&mut b, node);
    let (invoke, params) = &runs[0];
    assert_eq!(
        params["sessionKey"],
        format!("agent:main:cron:{}", job["id"].as_str().unwrap())
    );
    assert_eq!(params["message"], "write the digest");
    answer_run(&mut b, node, invoke, "Digest: all quiet.");
    let history = payload(&b.request(op, "runs", "cron.runs", json!({"id": job["id"]})));
    assert_eq!(history["entries"][0]["deliveryStatus"], "delivered");
    let chat = payload(&b.request(op, "h", "chat.history", json!({"sessionKey": "agent:main:main"})));
    let texts: Vec<String> = chat["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"][0]["text"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(texts.iter().any(|t| t == "Digest: all quiet."), "{texts:?}");
}

#[test]
fn a_delivery_to_a_channel_clawgate_lacks_is_reported_not_delivered() {
    let mut b = bench();
    let op = admin(&mut b);
    let node = worker(&mut b);
    let job = payload(&b.request(
        op,
        "add",
        "cron.add",
        json!({"name": "tg", "schedule": {"kind": "every", "everyMs": 3_600_000}, "sessionTarget": "isolated",
               "payload": {"kind": "agentTurn", "message": "hello"}, "delivery": {"mode": "announce", "channel": "telegram", "to": "123"}}),
    ));
    b.request(op, "run", "cron.run", json!({"id": job["id"]}));
    b.advance(0);
    let (invoke, _) = invocations(&mut b, node).remove(0);
    answer_run(&mut b, node, &invoke, "hi");
    let entry = &payload(&b.request(op, "runs", "cron.runs", json!({"id": job["id"]})))["entries"][0];
    assert_eq!(
        (entry["deliveryStatus"].as_str(), entry["completionStatus"].as_str()),
        (Some("not-delivered"), Some("failed"))
    );
    assert!(entry["error"].as_str().unwrap().contains("telegram"));
}

#[test]
fn a_job_without_a_worker_online_is_recorded_not_lost() {
    let mut b = bench();
    let op = admin(&mut b);
    let job = payload(&b.request(
        op,
        "add",
        "cron.add",
        json!({"name": "turn", "schedule": {"kind": "every", "everyMs": 60_000}, "sessionTarget": "isolated",
               "payload": {"kind": "agentTurn", "message": "hello"}}),
    ));
    b.advance(60_000);
    // The run waits in the agents' queue (on disk) and runs when a worker connects.
    assert!(b.disk["agents/queue.json"].contains("hello"));
    // What waited is handed over with the worker's hello.
    let node = hello_worker(&mut b);
    let (invoke, _) = invocations(&mut b, node).remove(0);
    answer_run(&mut b, node, &invoke, "done");
    let history = payload(&b.request(op, "runs", "cron.runs", json!({"id": job["id"]})));
    assert_eq!(history["entries"][0]["status"], "ok");
}

#[test]
fn wake_without_a_worker_reports_a_skipped_heartbeat() {
    let mut b = bench();
    let op = admin(&mut b);
    let watcher = b.operator(&["operator.read"]);
    b.take_texts(watcher);
    let res = b.request(op, "w", "wake", json!({"mode": "now", "text": "check the mail"}));
    assert_eq!(payload(&res), golden("wake.res.json")["payload"]);
    let beat = &events_named(&mut b, watcher, "heartbeat")[0];
    assert_eq!(
        (beat["status"].as_str(), beat["reason"].as_str()),
        (Some("skipped"), Some("agent-offline"))
    );
    // The text waits for the next heartbeat turn.
    let node = worker(&mut b);
    b.request(op, "w2", "wake", json!({"mode": "now"}));
    let (_, params) = invocations(&mut b, node).remove(0);
    assert!(params["message"].as_str().unwrap().contains("check the mail"));
}

#[test]
fn set_heartbeats_answers_as_captured_and_stops_heartbeat_turns() {
    let mut b = bench();
    let op = admin(&mut b);
    let node = worker(&mut b);
    let off = b.request(op, "1", "set-heartbeats", json!({"enabled": false}));
    assert_eq!(payload(&off), golden("set-heartbeats.off.res.json")["payload"]);
    b.advance(30 * 60_000);
    assert!(invocations(&mut b, node).is_empty(), "no heartbeat turn while off");
    let on = b.request(op, "2", "set-heartbeats", json!({"enabled": true}));
    assert_eq!(payload(&on), golden("set-heartbeats.on.res.json")["payload"]);
    b.advance(30 * 60_000);
    assert_eq!(invocations(&mut b, node).len(), 1, "the next slot beats");
}

#[test]
fn system_event_shows_its_text_in_presence() {
    let mut b = bench();
    let op = admin(&mut b);
    let watcher = b.operator(&["operator.read"]);
    b.take_texts(watcher);
    let res = b.request(op, "1", "system-event", json!({"text": "golden system event"}));
    assert_eq!(payload(&res), golden("system-event.res.json")["payload"]);
    let presence = events_named(&mut b, watcher, "presence");
    let entries = presence.last().unwrap()["presence"].as_array().unwrap().clone();
    assert!(
        entries.iter().any(|e| e["text"] == "golden system event"),
        "{entries:?}"
    );
}

#[test]
fn jobs_come_back_after_a_restart_and_the_heartbeat_job_is_not_duplicated() {
    let mut b = bench();
    let op = admin(&mut b);
    let job = add_every_10m(&mut b, op);
    let jobs = b.disk["cron/jobs.json"].clone();
    let gw = Gateway::new(config(), Box::new(FakeEntropy(8)), START + 60_000)
        .with_cron(Some(&jobs), &[], Box::new(BundledZones))
        .unwrap();
    assert_eq!(gw.cron_job_count(), 2);
    let mut b = Bench::with_gateway(gw);
    let op = admin(&mut b);
    let back = payload(&b.request(op, "1", "cron.get", json!({"id": job["id"]})));
    assert_eq!(back["name"], "golden-every-10m");
    assert_eq!(back["nextRunAtMs"], START + 600_000, "not yet due: its slot stands");
}

#[test]
fn a_removed_job_is_gone_with_its_history() {
    let mut b = bench();
    let op = admin(&mut b);
    let node = worker(&mut b);
    let job = add_every_10m(&mut b, op);
    b.request(op, "run", "cron.run", json!({"id": job["id"]}));
    b.advance(0);
    let (invoke, _) = invocations(&mut b, node).remove(0);
    answer_run(&mut b, node, &invoke, "ok");
    let runs_file = format!("cron/runs/{}.jsonl", job["id"].as_str().unwrap());
    assert!(b.disk.contains_key(&runs_file));
    let everything = payload(&b.request(op, "all", "cron.runs", json!({})));
    assert_eq!(everything["total"], 1, "without an id: the runs of every job");
    let res = b.request(op, "rm", "cron.remove", json!({"id": job["id"]}));
    assert_eq!(payload(&res), golden("cron.remove.res.json")["payload"]);
    assert!(!b.disk.contains_key(&runs_file));
    let after = payload(&b.request(op, "l", "cron.list", json!({})));
    assert_eq!(after["total"], 1);
}

#[test]
fn the_heartbeat_job_follows_the_config() {
    let mut b = bench();
    let op = admin(&mut b);
    let text = r#"{"agents": {"defaults": {"heartbeat": {"every": "0m"}}}}"#;
    b.gw.handle_config_text(b.now, Ok(text), &|_| None);
    b.pump();
    let listed = payload(&b.request(op, "1", "cron.list", json!({})));
    assert_eq!(listed["total"], 0, "heartbeats turned off remove the declared job");
    let text = r#"{"agents": {"defaults": {"heartbeat": {"every": "1h"}}}}"#;
    b.gw.handle_config_text(b.now, Ok(text), &|_| None);
    b.pump();
    let listed = payload(&b.request(op, "2", "cron.list", json!({})));
    assert_eq!(listed["jobs"][0]["schedule"]["everyMs"], 3_600_000);
}

#[test]
fn update_status_says_no_update_is_available_in_the_captured_shape() {
    let mut b = bench();
    let op = admin(&mut b);
    let ours = payload(&b.request(op, "1", "update.status", json!({})));
    has_captured_keys(&ours, &golden("update.status.res.json")["payload"], &[]);
    assert_eq!(ours["updateAvailable"], false, "Clawgate does not update itself");
}

#[test]
fn channels_status_answers_with_no_channels_in_the_captured_shape() {
    let mut b = bench();
    let reader = b.operator(&["operator.read"]);
    let ours = payload(&b.request(reader, "1", "channels.status", json!({})));
    has_captured_keys(&ours, &golden("channels.status.res.json")["payload"], &[]);
    assert_eq!((&ours["channels"], &ours["channelOrder"]), (&json!({}), &json!([])));
}

#[test]
fn a_run_queued_for_a_worker_across_a_restart_still_ends_its_job_run() {
    let mut b = bench();
    let op = admin(&mut b);
    let job = payload(&b.request(
        op,
        "add",
        "cron.add",
        json!({"name": "turn", "schedule": {"kind": "every", "everyMs": 60_000}, "sessionTarget": "isolated",
               "payload": {"kind": "agentTurn", "message": "hello"}}),
    ));
    b.advance(60_000);
    let (jobs, queue) = (b.disk["cron/jobs.json"].clone(), b.disk["agents/queue.json"].clone());
    let gw = Gateway::new(config(), Box::new(FakeEntropy(9)), START + 90_000)
        .with_agent_queue(&queue)
        .unwrap()
        .with_cron(Some(&jobs), &[], Box::new(BundledZones))
        .unwrap();
    let mut b = Bench::with_gateway(gw);
    let op = admin(&mut b);
    let node = hello_worker(&mut b);
    let (invoke, _) = invocations(&mut b, node).remove(0);
    answer_run(&mut b, node, &invoke, "done after the restart");
    let back = payload(&b.request(op, "g", "cron.get", json!({"id": job["id"]})));
    assert_eq!(back["state"]["runningAtMs"], Value::Null, "the job is not left running");
    assert_eq!(back["state"]["lastStatus"], "ok");
    let history = payload(&b.request(op, "runs", "cron.runs", json!({"id": job["id"]})));
    assert_eq!(history["entries"][0]["summary"], "done after the restart");
}
