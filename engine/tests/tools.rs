//! `tools.invoke` in the engine: decided by policy, run by the runtime, answered afterwards.

use clawgate_engine::testkit::*;
use clawgate_engine::tool_calls::ToolFailure;
use clawgate_engine::tool_policy::ToolPolicy;
use clawgate_engine::GatewayConfig;
use serde_json::{json, Value};

fn bench(policy: Value) -> Bench {
    let mut config = GatewayConfig::with_token(TOKEN);
    config.tool_policy = ToolPolicy::from_document(&policy).unwrap();
    Bench::new(config)
}

fn answer(b: &mut Bench, conn: clawgate_engine::ConnId, id: &str) -> Option<Value> {
    b.responses(conn).into_iter().find(|r| r.id == id).map(|r| payload(&r))
}

#[test]
fn an_allowed_call_is_answered_when_the_runtime_reports_back() {
    let mut b = bench(json!({}));
    let op = b.operator(&["operator.write"]);
    let req = clawgate_proto::frame::RequestFrame::new(
        "t1",
        "tools.invoke",
        &json!({"name": "LS", "args": {"path": "."}, "idempotencyKey": "k1"}),
    );
    b.send_text(op, &req.encode());
    b.pump();
    assert!(b.responses(op).is_empty(), "answered before the tool ran");
    let run = b.tool_runs.pop().expect("a tool run");
    assert_eq!(
        (run.tool, run.agent.as_str(), &run.args),
        ("ls", "main", &json!({"path": "."}))
    );
    b.advance(40);
    b.gw.handle_tool_result(b.now, run.call, Ok(json!({"entries": []})));
    b.pump();
    let out = answer(&mut b, op, "t1").unwrap();
    assert_eq!(
        out,
        json!({"ok": true, "toolName": "ls", "output": {"entries": []}, "source": "core"})
    );
    let audit: Value = serde_json::from_str(b.audit.last().unwrap()).unwrap();
    assert_eq!(
        (audit["tool"].as_str(), audit["status"].as_str()),
        (Some("ls"), Some("ok"))
    );
    assert_eq!(audit["durationMs"], 40);

    // The same idempotency key replays the answer without running the tool again.
    b.send_text(op, &req.encode());
    b.pump();
    assert!(b.tool_runs.is_empty());
    assert_eq!(answer(&mut b, op, "t1").unwrap()["output"], json!({"entries": []}));
    // A result nobody waits for is ignored.
    b.gw.handle_tool_result(b.now, 999, Ok(json!({})));
    b.pump();
}

#[test]
fn failures_and_refusals_are_answers_not_frame_errors() {
    let mut b = bench(json!({"tools": {"allow": ["group:fs"]}}));
    let op = b.operator(&["operator.write"]);
    let out = payload(&b.request(
        op,
        "d",
        "tools.invoke",
        json!({"name": "exec", "args": {"command": "id"}}),
    ));
    assert_eq!(
        out["error"],
        json!({"code": "TOOL_DENIED", "message": "exec: not in tools.allow"})
    );
    assert!(b.tool_runs.is_empty());
    assert!(b.audit.last().unwrap().contains("\"decision\":\"denied\""));

    b.send_text(
        op,
        &clawgate_proto::frame::RequestFrame::new("r", "tools.invoke", &json!({"name": "read", "args": {"path": "x"}}))
            .encode(),
    );
    b.pump();
    let run = b.tool_runs.pop().unwrap();
    b.gw.handle_tool_result(
        b.now,
        run.call,
        Err(ToolFailure {
            kind: clawgate_engine::tool_calls::ToolFailureKind::NotFound,
            message: "No such file or directory".into(),
        }),
    );
    b.pump();
    let out = answer(&mut b, op, "r").unwrap();
    assert_eq!(
        (out["ok"].as_bool(), out["error"]["code"].as_str()),
        (Some(false), Some("NOT_FOUND"))
    );

    for (params, want) in [
        (json!({}), "missing field `name`"),
        (json!({"name": "read", "bogus": 1}), "unknown field"),
        (
            json!({"name": "read", "sessionKey": "main", "agentId": "nobody"}),
            "unknown agent id",
        ),
    ] {
        let (code, message, _) = error_code(&b.request(op, "bad", "tools.invoke", params));
        assert_eq!(code, "INVALID_REQUEST");
        assert!(message.contains(want), "{message}");
    }
}

#[test]
fn a_caller_that_left_still_gets_its_call_audited() {
    let mut b = bench(json!({}));
    let op = b.operator(&["operator.write"]);
    b.send_text(
        op,
        &clawgate_proto::frame::RequestFrame::new(
            "t",
            "tools.invoke",
            &json!({"name": "exec", "args": {"command": "true"}}),
        )
        .encode(),
    );
    b.pump();
    let run = b.tool_runs.pop().unwrap();
    b.gw.handle_closed(b.now, op);
    b.gw.handle_tool_result(b.now, run.call, Ok(json!({"exitCode": 0})));
    b.pump();
    let audit: Value = serde_json::from_str(b.audit.last().unwrap()).unwrap();
    assert_eq!(
        (audit["tool"].as_str(), audit["detail"].as_i64()),
        (Some("exec"), Some(0))
    );
}

#[test]
fn sandboxed_calls_run_only_when_the_runtime_has_a_sandbox() {
    let policy = json!({"agents": {"list": [{"id": "main"}, {"id": "boxed", "sandbox": {"mode": "all", "workspaceAccess": "ro"}}]}});
    let mut b = bench(policy.clone());
    let op = b.operator(&["operator.write"]);
    let params = json!({"name": "read", "args": {"path": "a"}, "sessionKey": "agent:boxed:main"});
    let out = payload(&b.request(op, "n", "tools.invoke", params.clone()));
    assert_eq!(out["error"]["code"], "SANDBOX_UNAVAILABLE");
    assert!(b.tool_runs.is_empty());

    let mut config = GatewayConfig::with_token(TOKEN);
    config.tool_policy = ToolPolicy::from_document(&policy).unwrap();
    config.sandbox = Some("Landlock".into());
    let mut b = Bench::new(config);
    let op = b.operator(&["operator.write"]);
    b.send_text(
        op,
        &clawgate_proto::frame::RequestFrame::new("y", "tools.invoke", &params).encode(),
    );
    b.pump();
    let run = b.tool_runs.pop().expect("the call runs");
    assert!(run.sandboxed);
    assert_eq!(run.access, clawgate_engine::tool_policy::WorkspaceAccess::ReadOnly);
    // The main agent's calls are not sandboxed and get full access.
    b.send_text(
        op,
        &clawgate_proto::frame::RequestFrame::new("z", "tools.invoke", &json!({"name": "read", "args": {"path": "a"}}))
            .encode(),
    );
    b.pump();
    let run = b.tool_runs.pop().unwrap();
    assert!(!run.sandboxed);
    assert_eq!(run.access, clawgate_engine::tool_policy::WorkspaceAccess::ReadWrite);
}

fn post(body: &str, auth: Option<&str>) -> String {
    let auth = auth
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!(
        "POST /tools/invoke HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn status_and_body(raw: &str) -> (u16, Value) {
    let status = raw.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = raw.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[test]
fn tools_over_http_follow_section_1_3() {
    let mut b = bench(json!({"gateway": {"tools": {"deny": ["write"]}}}));
    let (_, raw) = b.http(loopback(), "GET /tools/invoke HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(raw.starts_with("HTTP/1.1 405") && raw.contains("Allow: POST"), "{raw}");
    let (_, raw) = b.http(loopback(), &post(r#"{"tool":"ls"}"#, None));
    assert_eq!(status_and_body(&raw).0, 401);
    let (_, raw) = b.http(loopback(), &post(r#"{"tool":"ls"}"#, Some("wrong")));
    assert_eq!(status_and_body(&raw).0, 401);
    let (_, raw) = b.http(loopback(), &post("{not json", Some(TOKEN)));
    assert_eq!(status_and_body(&raw), (400, status_and_body(&raw).1.clone()));
    assert_eq!(status_and_body(&raw).1["error"]["type"], "invalid_request");
    let (_, raw) = b.http(loopback(), &post(r#"{"tool":"teleport"}"#, Some(TOKEN)));
    assert_eq!(status_and_body(&raw).0, 404);
    assert_eq!(status_and_body(&raw).1["error"]["type"], "not_found");
    // Tools that run programs are not served over HTTP unless gateway.tools.allow names them.
    let (_, raw) = b.http(
        loopback(),
        &post(r#"{"tool":"exec","args":{"command":"id"}}"#, Some(TOKEN)),
    );
    let (status, body) = status_and_body(&raw);
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (403, Some("tool_call_blocked"))
    );
    let (_, raw) = b.http(
        loopback(),
        &post(r#"{"tool":"write","args":{"path":"a","content":""}}"#, Some(TOKEN)),
    );
    let (status, body) = status_and_body(&raw);
    assert_eq!(status, 403);
    assert_eq!(
        body["error"]["message"],
        "write: denied by gateway.tools.deny entry \"write\""
    );
    assert!(b.tool_runs.is_empty());

    // An allowed call waits for the tool; `action` joins the arguments.
    let (conn, raw) = b.http(
        loopback(),
        &post(
            r#"{"tool":"ls","action":"x","args":{"path":"."},"sessionKey":"main"}"#,
            Some(TOKEN),
        ),
    );
    assert_eq!(raw, "", "answered before the tool ran");
    let run = b.tool_runs.pop().unwrap();
    assert_eq!(run.args, json!({"path": ".", "action": "x"}));
    b.gw.handle_tool_result(b.now, run.call, Ok(json!({"entries": []})));
    b.pump();
    let (status, body) = status_and_body(&b.raw_text(conn));
    assert_eq!((status, body), (200, json!({"ok": true, "result": {"entries": []}})));
    assert!(b
        .audit
        .iter()
        .any(|l| l.contains("\"http\":true") && l.contains("\"status\":\"ok\"")));
}

#[test]
fn exec_over_http_runs_once_allowed_and_pipelined_requests_wait_their_turn() {
    let mut b = bench(json!({"gateway": {"tools": {"allow": ["exec"]}}}));
    let two = format!(
        "{}{}",
        post(r#"{"tool":"exec","args":{"command":"true"}}"#, Some(TOKEN)),
        "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    );
    let (conn, raw) = b.http(loopback(), &two);
    assert_eq!(raw, "", "the health answer must not overtake the tool's");
    let run = b.tool_runs.pop().unwrap();
    assert_eq!(run.tool, "exec");
    b.gw.handle_tool_result(
        b.now,
        run.call,
        Err(ToolFailure {
            kind: clawgate_engine::tool_calls::ToolFailureKind::Io,
            message: "boom".into(),
        }),
    );
    b.pump();
    let raw = b.raw_text(conn);
    let first = raw.find("HTTP/1.1 500").expect("tool error first");
    let second = raw.find("HTTP/1.1 200").expect("then the health answer");
    assert!(first < second, "{raw}");
    assert!(raw.contains("\"type\":\"tool_error\""));
}
