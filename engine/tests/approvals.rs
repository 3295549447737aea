//! Exec approvals in the sans-IO engine: an exec the policy asks about waits for an operator's
//! decision, which runs it, refuses it, or puts its program on the allowlist.

use clawgate_engine::approvals::{ExecPolicy, ExecutableLookup};
use clawgate_engine::testkit::*;
use clawgate_engine::{ConnId, Gateway, GatewayConfig};
use clawgate_proto::frame::EventFrame;
use serde_json::{json, Value};

struct Setup {
    b: Bench,
    node: ConnId,
    op: ConnId,
}

/// A gateway with `tools.exec.mode: "ask"`, a worker serving `main` with a run of `op`'s in
/// progress, and the run's id `r1`.
fn setup() -> Setup {
    setup_with(|gw| gw)
}

/// [`setup`] with the gateway `build` makes of it.
fn setup_with(build: impl FnOnce(Gateway) -> Gateway) -> Setup {
    let mut config = GatewayConfig::with_token(TOKEN);
    config.exec_policy =
        ExecPolicy::from_document(&json!({"tools": {"exec": {"host": "gateway", "mode": "ask"}}})).unwrap();
    let mut b = Bench::with_gateway(build(Gateway::new(
        config,
        Box::new(FakeEntropy(0x1234_5678_9abc_def1)),
        START,
    )));
    let node = b.ws(loopback(), &[]);
    assert!(b.connect(node, worker_params(&["main"])).ok);
    let op = b.operator_with_caps(&["operator.write"], &["tool-events"]);
    b.request(
        op,
        "s",
        "chat.send",
        json!({"sessionKey": "agent:main:work", "message": "run echo hi", "idempotencyKey": "r1"}),
    );
    b.take_texts(node);
    Setup { b, node, op }
}

fn approver(b: &mut Bench) -> ConnId {
    b.operator_with_caps(&["operator.admin", "operator.approvals"], &["approvals"])
}

/// The worker calls `exec {command: "echo hi", shell: true}` for run `r1`.
fn call_exec(b: &mut Bench, node: ConnId, id: &str) {
    b.send_text(
        node,
        &json!({"type": "req", "id": id, "method": "tools.invoke", "params": {
            "name": "exec", "args": {"command": "echo hi", "shell": true}, "runId": "r1", "toolCallId": "call_x",
        }})
        .to_string(),
    );
}

/// The id of the one approval `approver` was asked for.
fn requested_id(b: &mut Bench, approver: ConnId) -> String {
    let asked = named(&b.events(approver), "exec.approval.requested");
    assert_eq!(asked.len(), 1, "{asked:?}");
    asked[0]["id"].as_str().unwrap().to_owned()
}

/// Sends a decision; the answer, if it came at once.
fn decide(b: &mut Bench, approver: ConnId, method: &str, id: &str, decision: &str) -> Option<Value> {
    let request = json!({"type": "req", "id": "decide", "method": method, "params": {"id": id, "kind": "exec", "decision": decision}});
    b.send_text(approver, &request.to_string());
    b.responses(approver).first().map(payload)
}

/// The exec that runs ends with `hi`.
fn end_the_exec(b: &mut Bench) {
    let run = b.tool_runs.pop().expect("the exec runs");
    b.gw.handle_tool_result(b.now, run.call, Ok(json!({"exitCode": 0, "stdout": "hi\n"})));
    b.pump();
}

fn named(events: &[EventFrame], name: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e.event == name)
        .map(|e| e.parse_payload::<Value>().unwrap())
        .collect()
}

fn lifecycle_phases(events: &[EventFrame]) -> Vec<String> {
    named(events, "agent")
        .iter()
        .filter(|p| p["stream"] == "lifecycle")
        .filter_map(|p| p["data"]["phase"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn an_exec_that_needs_approval_waits_and_runs_once_allowed() {
    let Setup { mut b, node, op } = setup();
    let approver = approver(&mut b);
    call_exec(&mut b, node, "t1");
    assert!(b.tool_runs.is_empty(), "nothing runs before the decision");
    assert!(b.responses(node).is_empty(), "the call waits");
    let asked = named(&b.events(approver), "exec.approval.requested");
    assert_eq!(asked.len(), 1);
    let id = asked[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (
            asked[0]["request"]["command"].as_str(),
            asked[0]["request"]["runId"].as_str()
        ),
        (Some("echo hi"), Some("r1"))
    );
    assert_eq!(
        asked[0]["expiresAtMs"].as_u64().unwrap() - asked[0]["createdAtMs"].as_u64().unwrap(),
        30 * 60 * 1000
    );
    let op_events = b.events(op);
    assert!(
        named(&op_events, "exec.approval.requested").is_empty(),
        "the requester is no approver"
    );
    assert!(lifecycle_phases(&op_events).contains(&"waiting-approval".to_owned()));

    let listed = b.request(approver, "l", "exec.approval.list", json!({}));
    assert_eq!(payload(&listed)[0]["id"], id.as_str());
    let got = b.request(approver, "g", "exec.approval.get", json!({"id": id}));
    assert_eq!(payload(&got)["commandText"], "echo hi");

    // As captured, the resolver hears back once the command it let run has ended.
    assert_eq!(
        decide(&mut b, approver, "exec.approval.resolve", &id, "allow-once"),
        None
    );
    assert_eq!(
        b.tool_runs.last().map(|r| r.tool),
        Some("exec"),
        "the exec runs once allowed"
    );
    assert!(lifecycle_phases(&b.events(op)).contains(&"approval-resolved".to_owned()));
    let listed = b.request(approver, "l2", "exec.approval.list", json!({}));
    assert_eq!(payload(&listed), json!([]));
    end_the_exec(&mut b);
    assert_eq!(b.responses(approver).first().map(payload), Some(json!({"ok": true})));
    let answer = payload(&b.responses(node)[0]);
    assert_eq!(answer["ok"], true);
}

#[test]
fn a_denied_exec_comes_back_to_the_worker_as_openclaws_denial() {
    let Setup { mut b, node, op } = setup();
    let approver = approver(&mut b);
    call_exec(&mut b, node, "t1");
    let id = requested_id(&mut b, approver);
    b.take_texts(op);
    b.request(
        approver,
        "r",
        "exec.approval.resolve",
        json!({"id": id, "decision": "deny"}),
    );
    assert!(b.tool_runs.is_empty(), "a denied command never runs");
    let answer = payload(&b.responses(node)[0]);
    assert_eq!(answer["ok"], false);
    assert_eq!(
        answer["error"]["message"],
        format!("Exec denied (gateway id={id}, user-denied): echo hi").as_str()
    );
    let approvals: Vec<Value> = named(&b.events(op), "agent")
        .into_iter()
        .filter(|p| p["stream"] == "approval")
        .collect();
    assert_eq!(approvals[0]["data"]["status"], "denied");
}

#[test]
fn without_an_approver_the_exec_is_refused_at_once() {
    let Setup { mut b, node, .. } = setup();
    // An operator with the scope but neither an app's client id nor the approvals cap is no approver.
    let _reader = b.operator(&["operator.admin", "operator.approvals"]);
    call_exec(&mut b, node, "t1");
    assert!(b.tool_runs.is_empty());
    let answer = payload(&b.responses(node)[0]);
    assert_eq!(answer["ok"], false);
    assert_eq!(answer["error"]["code"], "EXEC_DENIED");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("exec denied: Headless runs cannot wait for interactive exec approval."),
        "{message}"
    );
}

#[test]
fn allow_always_puts_the_program_on_the_allowlist_and_the_next_call_runs_without_asking() {
    let Setup { mut b, node, .. } = setup();
    let approver = approver(&mut b);
    call_exec(&mut b, node, "t1");
    let id = requested_id(&mut b, approver);
    decide(&mut b, approver, "exec.approval.resolve", &id, "allow-always");
    assert_eq!(b.tool_runs.len(), 1);
    let file: Value = serde_json::from_str(&b.disk["exec-approvals.json"]).unwrap();
    assert_eq!(file["agents"]["main"]["allowlist"][0]["pattern"], "echo");
    call_exec(&mut b, node, "t2");
    assert_eq!(b.tool_runs.len(), 2, "allowlisted now");
    assert!(named(&b.events(approver), "exec.approval.requested").is_empty());
}

#[test]
fn an_unknown_id_and_a_bad_decision_are_refused() {
    let Setup { mut b, .. } = setup();
    let approver = approver(&mut b);
    let res = b.request(
        approver,
        "r",
        "exec.approval.resolve",
        json!({"id": "nope", "decision": "deny"}),
    );
    let (_, message, details) = error_code(&res);
    assert_eq!(message, "unknown or expired approval id");
    assert_eq!(details["reason"], "APPROVAL_NOT_FOUND");
    let res = b.request(
        approver,
        "r2",
        "exec.approval.resolve",
        json!({"id": "nope", "decision": "maybe"}),
    );
    assert_eq!(error_code(&res).1, "invalid decision");
}

#[test]
fn an_approval_nobody_decides_expires_after_thirty_minutes_as_a_denial() {
    let Setup { mut b, node, .. } = setup();
    let approver = approver(&mut b);
    call_exec(&mut b, node, "t1");
    b.take_texts(approver);
    b.advance(30 * 60 * 1000 + 1);
    let answer = payload(&b.responses(node)[0]);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("approval-expired"),
        "{answer}"
    );
    assert!(b.tool_runs.is_empty());
}

#[test]
fn an_approval_of_a_run_that_was_aborted_is_withdrawn_and_the_worker_is_answered() {
    let Setup { mut b, node, op } = setup();
    let approver = approver(&mut b);
    call_exec(&mut b, node, "t1");
    b.take_texts(approver);
    b.request(op, "a", "chat.abort", json!({"sessionKey": "agent:main:work"}));
    let answers = b.responses(node);
    let answer = payload(
        answers
            .iter()
            .find(|r| r.id == "t1")
            .expect("the held call is answered"),
    );
    assert!(
        answer["error"]["message"].as_str().unwrap().contains("run-ended"),
        "{answer}"
    );
    let listed = b.request(approver, "l", "exec.approval.list", json!({}));
    assert_eq!(payload(&listed), json!([]));
    assert!(b.tool_runs.is_empty());
}

#[test]
fn an_agents_own_exec_policy_applies_to_its_runs() {
    let doc = json!({"agents": {"list": [{"id": "main", "tools": {"exec": {"security": "deny"}}}]}});
    let mut config = GatewayConfig::with_token(TOKEN);
    let (global, agents) = ExecPolicy::per_agent(&doc).unwrap();
    config.exec_policy = global;
    config.agent_exec_policies = agents;
    let mut b = Bench::new(config);
    let node = b.ws(loopback(), &[]);
    assert!(b.connect(node, worker_params(&["main"])).ok);
    let op = b.operator(&["operator.write"]);
    b.request(
        op,
        "s",
        "chat.send",
        json!({"sessionKey": "agent:main:work", "message": "run echo hi", "idempotencyKey": "r1"}),
    );
    b.take_texts(node);
    call_exec(&mut b, node, "t1");
    let answer = payload(&b.responses(node)[0]);
    assert_eq!(answer["error"]["code"], "EXEC_DENIED", "{answer}");
    assert!(b.tool_runs.is_empty());
}

#[test]
fn the_canonical_approval_methods_answer_as_the_openclaw_cli_reads_them() {
    let Setup { mut b, node, .. } = setup();
    let approver = approver(&mut b);
    call_exec(&mut b, node, "t1");
    let id = requested_id(&mut b, approver);
    let got = payload(&b.request(approver, "g", "approval.get", json!({"id": id})));
    assert_eq!(got["approval"]["status"], "pending");
    assert_eq!(got["approval"]["presentation"]["kind"], "exec");
    assert_eq!(decide(&mut b, approver, "approval.resolve", &id, "allow-once"), None);
    end_the_exec(&mut b);
    let res = payload(&b.responses(approver)[0]);
    assert_eq!(res["applied"], true);
    assert_eq!(res["approval"]["decision"], "allow-once");
    assert_eq!(res["approval"]["resolver"]["id"], "cli");
    let again = payload(&b.request(
        approver,
        "r2",
        "approval.resolve",
        json!({"id": id, "kind": "exec", "decision": "allow-once"}),
    ));
    assert_eq!(again["applied"], false, "a repeat is answered, not applied twice");
    assert!(b.tool_runs.is_empty(), "nothing ran twice");
    let gone = b.request(approver, "g2", "approval.get", json!({"id": "nope"}));
    assert_eq!(error_code(&gone).1, "approval not found");
    for list in ["plugin.approval.list", "openclaw.approval.list"] {
        assert_eq!(payload(&b.request(approver, "l", list, json!({}))), json!([]));
    }
}

#[test]
fn the_approvals_file_is_replaced_only_over_the_hash_it_was_read_with() {
    let Setup { mut b, .. } = setup();
    let admin = b.operator(&["operator.admin"]);
    let snapshot = payload(&b.request(admin, "g", "exec.approvals.get", json!({})));
    assert_eq!(snapshot["exists"], false);
    let hash = snapshot["hash"].as_str().unwrap().to_owned();
    let file = json!({"version": 1, "agents": {"main": {"allowlist": [{"pattern": "echo"}]}}});
    let stale = b.request(
        admin,
        "s0",
        "exec.approvals.set",
        json!({"file": file, "baseHash": "0000"}),
    );
    assert!(error_code(&stale).1.contains("changed since last load"));
    let set = payload(&b.request(
        admin,
        "s",
        "exec.approvals.set",
        json!({"file": file, "baseHash": hash}),
    ));
    assert_eq!(
        (
            set["exists"].as_bool(),
            set["file"]["agents"]["main"]["allowlist"][0]["pattern"].as_str()
        ),
        (Some(true), Some("echo"))
    );
    assert_ne!(set["hash"], snapshot["hash"]);
    let written: Value = serde_json::from_str(&b.disk["exec-approvals.json"]).unwrap();
    assert_eq!(written, file);
}

/// A host where `echo` is `/usr/bin/echo` and nothing else is found.
struct EchoInUsrBin;

impl ExecutableLookup for EchoInUsrBin {
    fn resolve(&self, program: &str) -> Option<String> {
        (program == "echo" || program == "/usr/bin/echo").then(|| "/usr/bin/echo".to_owned())
    }
}

#[test]
fn the_approval_names_the_resolved_path_and_allow_always_keeps_it() {
    let Setup { mut b, node, .. } = setup_with(|gw| gw.with_executables(Box::new(EchoInUsrBin)));
    let approver = approver(&mut b);
    call_exec(&mut b, node, "t1");
    let asked = named(&b.events(approver), "exec.approval.requested");
    assert_eq!(asked[0]["request"]["resolvedPath"], "/usr/bin/echo");
    let id = asked[0]["id"].as_str().unwrap().to_owned();
    decide(&mut b, approver, "exec.approval.resolve", &id, "allow-always");
    let file: Value = serde_json::from_str(&b.disk["exec-approvals.json"]).unwrap();
    assert_eq!(file["agents"]["main"]["allowlist"][0]["pattern"], "/usr/bin/echo");
    call_exec(&mut b, node, "t2");
    assert_eq!(b.tool_runs.len(), 2, "the resolved path is on the allowlist now");
}

#[test]
fn a_path_pattern_matches_where_the_program_resolves_not_what_it_is_called() {
    let allowlist =
        |pattern: &str| json!({"version": 1, "agents": {"main": {"allowlist": [{"pattern": pattern}]}}}).to_string();
    for (pattern, runs) in [
        ("/usr/bin/echo", true),
        ("/usr/local/bin/echo", false),
        ("echo", true),
        ("/usr/**", true),
    ] {
        let text = allowlist(pattern);
        let Setup { mut b, node, .. } = setup_with(|gw| {
            gw.with_executables(Box::new(EchoInUsrBin))
                .with_exec_approvals(&text)
                .unwrap()
        });
        // An approver is online, so a miss waits for it rather than being refused: only a match runs.
        let _approver = approver(&mut b);
        call_exec(&mut b, node, "t");
        assert_eq!(!b.tool_runs.is_empty(), runs, "{pattern}");
    }
}
