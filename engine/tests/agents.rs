//! Agent workers, runs and sessions in the sans-IO engine, on a controlled clock.

use clawgate_engine::testkit::*;
use clawgate_engine::GatewayConfig;
use clawgate_proto::frame::{EventFrame, Frame};
use serde_json::{json, Value};

/// Connects a worker serving `agents`.
fn worker(b: &mut Bench, agents: &[&str]) -> clawgate_engine::ConnId {
    let node = b.ws(loopback(), &[]);
    assert!(b.connect(node, worker_params(agents)).ok);
    b.take_texts(node);
    node
}

/// The `node.invoke.request` events a worker got, with their params parsed.
fn invocations(b: &mut Bench, node: clawgate_engine::ConnId) -> Vec<(Value, Value)> {
    b.events(node)
        .into_iter()
        .filter(|e| e.event == "node.invoke.request")
        .map(|e| {
            assert!(e.seq.is_none(), "aimed at one node: no seq");
            let p: Value = e.parse_payload().unwrap();
            let params: Value = serde_json::from_str(p["paramsJSON"].as_str().unwrap()).unwrap();
            (p, params)
        })
        .collect()
}

/// `op` sends a message on `agent:main:work` as run `run`, which `node` is given.
fn start_chat(b: &mut Bench, op: clawgate_engine::ConnId, node: clawgate_engine::ConnId, run: &str) {
    b.request(
        op,
        "s",
        "chat.send",
        json!({"sessionKey": "agent:main:work", "message": "x", "idempotencyKey": run}),
    );
    assert_eq!(invocations(b, node).len(), 1, "the worker gets the run");
}

fn delta(b: &mut Bench, node: clawgate_engine::ConnId, run: &str, text: &str) {
    let payload = json!({"runId": run, "delta": text}).to_string();
    let res = b.request(
        node,
        "d",
        "node.event",
        json!({"event": "agent.delta", "payloadJSON": payload}),
    );
    assert!(res.ok, "{res:?}");
}

fn finish(b: &mut Bench, node: clawgate_engine::ConnId, invoke: &Value, text: &str) {
    let res = b.request(
        node,
        "r",
        "node.invoke.result",
        json!({"id": invoke["id"], "nodeId": invoke["nodeId"], "ok": true, "payloadJSON": json!({"text": text}).to_string()}),
    );
    assert!(res.ok, "{res:?}");
}

fn chat(events: &[EventFrame]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e.event == "chat")
        .map(|e| e.parse_payload().unwrap())
        .collect()
}

/// A `POST /v1/chat/completions` with `headers` (each ending in CRLF) and a JSON `body`.
fn completion_post(headers: &str, body: &str) -> String {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn deltas_are_throttled_to_one_per_150_ms_and_flushed_before_the_final() {
    let mut b = Bench::with_token();
    let node = worker(&mut b, &["main"]);
    let op = b.operator(&["operator.write"]);
    let res = b.request(
        op,
        "s",
        "chat.send",
        json!({"sessionKey": "main", "message": "hi", "idempotencyKey": "r1"}),
    );
    assert_eq!(payload(&res), json!({"runId": "r1", "status": "started"}));
    let (invoke, params) = invocations(&mut b, node).remove(0);
    assert_eq!(
        (
            params["runId"].as_str(),
            params["sessionKey"].as_str(),
            params["message"].as_str()
        ),
        (Some("r1"), Some("agent:main:main"), Some("hi"))
    );
    b.take_texts(op);

    delta(&mut b, node, "r1", "a");
    b.advance(50);
    delta(&mut b, node, "r1", "b");
    b.advance(50);
    delta(&mut b, node, "r1", "c");
    let events = b.events(op);
    let chats = chat(&events);
    // The first delta goes out at once; the next two wait for the 150 ms window.
    assert_eq!(chats.len(), 1);
    assert_eq!(chats[0]["deltaText"], "a");
    let assistant: Vec<Value> = events
        .iter()
        .filter(|e| e.event == "agent")
        .map(|e| e.parse_payload::<Value>().unwrap())
        .filter(|p| p["stream"] == "assistant")
        .collect();
    assert_eq!(assistant.len(), 3, "assistant agent events are not throttled");
    b.advance(49);
    assert!(chat(&b.events(op)).is_empty());
    b.advance(1);
    let chats = chat(&b.events(op));
    assert_eq!(chats.len(), 1);
    assert_eq!(
        (
            chats[0]["deltaText"].as_str(),
            chats[0]["message"]["content"][0]["text"].as_str()
        ),
        (Some("bc"), Some("abc"))
    );
    // Text still held back when the result arrives goes out as a last delta, then the final.
    delta(&mut b, node, "r1", "d");
    finish(&mut b, node, &invoke, "abcd");
    let chats = chat(&b.events(op));
    assert_eq!(
        chats.iter().map(|c| c["state"].as_str().unwrap()).collect::<Vec<_>>(),
        ["delta", "final"]
    );
    assert_eq!(chats[0]["deltaText"], "d");
    assert_eq!(chats[1]["message"]["content"][0]["text"], "abcd");
    assert_eq!(
        chats[0]["seq"], chats[1]["seq"],
        "the last delta shares the final's seq"
    );
    // The transcript has the header, the user message and the reply.
    let lines: Vec<&Vec<String>> = b.transcripts.values().collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].len(), 3);
}

#[test]
fn events_reach_readers_only_and_tool_less_runs_end_for_agent_wait() {
    let mut b = Bench::with_token();
    let node = worker(&mut b, &["main"]);
    let writer = b.operator(&["operator.write"]);
    let reader = b.operator(&["operator.read"]);
    let pairing_only = b.operator(&["operator.pairing"]);
    b.send_text(
        writer,
        &json!({"type": "req", "id": "a", "method": "agent", "params": {"message": "x y", "idempotencyKey": "r2"}})
            .to_string(),
    );
    let (invoke, _) = invocations(&mut b, node).remove(0);
    finish(&mut b, node, &invoke, "x y");
    let frames = b.frames(writer);
    let answers: Vec<Value> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Response(r) if r.id == "a" => Some(payload(r)),
            _ => None,
        })
        .collect();
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0]["status"], "accepted");
    assert_eq!(answers[1]["result"]["payloads"][0]["text"], "x y");
    // accepted, then the run's events, then the final answer.
    assert!(matches!(&frames[0], Frame::Response(r) if r.id == "a"));
    assert!(matches!(frames.last(), Some(Frame::Response(r)) if r.id == "a"));
    assert!(chat(&b.events(reader)).iter().any(|c| c["state"] == "final"));
    let seen = b.events(pairing_only);
    assert!(seen.iter().all(|e| e.event != "chat" && e.event != "agent"), "{seen:?}");
    assert!(
        b.events(node).iter().all(|e| e.event != "chat"),
        "nodes get no chat events"
    );
    let waited = payload(&b.request(writer, "w", "agent.wait", json!({"runId": "r2"})));
    assert_eq!(waited["status"], "ok");
    // Waiting for a run that does not end times out.
    b.send_text(
        writer,
        &json!({"type": "req", "id": "w2", "method": "agent.wait", "params": {"runId": "nope", "timeoutMs": 500}})
            .to_string(),
    );
    assert!(b.responses(writer).is_empty());
    b.advance(500);
    assert_eq!(payload(&b.responses(writer)[0])["status"], "timeout");
}

#[test]
fn a_standby_worker_takes_over_and_a_lost_run_ends_with_an_error() {
    let mut b = Bench::with_token();
    let first = worker(&mut b, &["main"]);
    let standby = worker(&mut b, &["main"]);
    let op = b.operator(&["operator.write"]);
    let health = payload(&b.request(op, "h", "health", json!({})));
    let main = health["agents"].as_array().unwrap()[0].clone();
    assert_eq!(
        (
            main["state"].as_str(),
            main["workers"].as_u64(),
            main["standbyWorkers"].as_u64()
        ),
        (Some("online"), Some(2), Some(1))
    );
    b.request(
        op,
        "s",
        "chat.send",
        json!({"sessionKey": "main", "message": "one", "idempotencyKey": "r3"}),
    );
    assert_eq!(invocations(&mut b, first).len(), 1);
    assert!(
        invocations(&mut b, standby).is_empty(),
        "a standby gets nothing while the active one serves"
    );
    b.take_texts(op);
    b.gw.handle_closed(b.now, first);
    b.pump();
    let end = chat(&b.events(op)).pop().unwrap();
    assert_eq!(end["state"], "error");
    assert_eq!(end["errorMessage"], "the agent worker disconnected during the run");
    // The message is sent again and the standby serves it.
    b.request(
        op,
        "s2",
        "chat.send",
        json!({"sessionKey": "main", "message": "one", "idempotencyKey": "r4"}),
    );
    assert_eq!(invocations(&mut b, standby).len(), 1);
}

#[test]
fn the_queue_is_persisted_bounded_and_delivered_in_order() {
    let mut b = Bench::with_token();
    let op = b.operator(&["operator.write"]);
    b.hold_persists = true;
    b.send_text(
        op,
        &json!({"type": "req", "id": "q1", "method": "chat.send", "params": {"sessionKey": "main", "message": "first", "idempotencyKey": "q1"}})
            .to_string(),
    );
    assert!(
        b.responses(op).is_empty(),
        "not acknowledged before the queue is durable"
    );
    b.ack_persists();
    assert_eq!(payload(&b.responses(op)[0])["status"], "started");
    b.request(
        op,
        "q2",
        "chat.send",
        json!({"sessionKey": "agent:main:other", "message": "second", "idempotencyKey": "q2"}),
    );
    let queue: Value = serde_json::from_str(&b.disk["agents/queue.json"]).unwrap();
    let ids: Vec<&str> = queue["queue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["runId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["q1", "q2"]);

    // A gateway started on that file delivers the same runs in order to the first worker.
    let mut restarted = Bench::with_gateway(
        clawgate_engine::Gateway::new(GatewayConfig::with_token(TOKEN), Box::new(FakeEntropy(7)), START)
            .with_agent_queue(&b.disk["agents/queue.json"])
            .unwrap(),
    );
    // What waited is handed over right with the worker's hello.
    let node = restarted.ws(loopback(), &[]);
    let connect = json!({"type": "req", "id": "c", "method": "connect", "params": worker_params(&["main"])});
    restarted.send_text(node, &connect.to_string());
    let got: Vec<String> = invocations(&mut restarted, node)
        .iter()
        .map(|(_, p)| p["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, ["first", "second"]);
    let emptied: Value = serde_json::from_str(&restarted.disk["agents/queue.json"]).unwrap();
    assert_eq!(emptied["queue"], json!([]));

    // The queue is bounded: beyond its limit a message is refused, retryably.
    let mut full = Bench::with_token();
    let op = full.operator(&["operator.write"]);
    for i in 0..clawgate_engine::agents::QUEUE_LIMIT {
        let res = full.request(
            op,
            "f",
            "chat.send",
            json!({"sessionKey": "main", "message": "m", "idempotencyKey": format!("f{i}")}),
        );
        assert!(res.ok);
    }
    let res = full.request(
        op,
        "g",
        "chat.send",
        json!({"sessionKey": "main", "message": "m", "idempotencyKey": "over"}),
    );
    let (code, message, _) = error_code(&res);
    assert_eq!(code, "UNAVAILABLE");
    assert!(message.contains("no worker online"), "{message}");
    assert_eq!(res.error.unwrap().retryable, Some(true));
}

#[test]
fn transcripts_restore_history_and_idle_sessions_are_pruned() {
    let mut b = Bench::with_token();
    let node = worker(&mut b, &["main"]);
    let op = b.operator(&["operator.write", "operator.admin"]);
    b.request(
        op,
        "s",
        "chat.send",
        json!({"sessionKey": "main", "message": "remember me", "idempotencyKey": "t1"}),
    );
    let (invoke, _) = invocations(&mut b, node).remove(0);
    finish(&mut b, node, &invoke, "remembered");
    let files: Vec<String> = b.transcripts.values().map(|lines| lines.join("\n")).collect();

    let mut config = GatewayConfig::with_token(TOKEN);
    config.session_prune_after_ms = 3_600_000;
    let mut after = Bench::with_gateway(
        clawgate_engine::Gateway::new(config, Box::new(FakeEntropy(9)), START).with_transcripts(files),
    );
    let op = after.operator(&["operator.admin"]);
    let history = payload(&after.request(op, "h", "chat.history", json!({"sessionKey": "main"})));
    let texts: Vec<Value> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].clone())
        .collect();
    assert_eq!(
        texts,
        [json!("remember me"), json!([{"type": "text", "text": "remembered"}])]
    );
    let list = payload(&after.request(op, "l", "sessions.list", json!({})));
    assert_eq!(list["sessions"][0]["key"], "agent:main:main");
    assert_eq!(list["sessions"][0]["status"], "done");

    // sessions.reset starts a new transcript; sessions.delete removes it.
    let reset = payload(&after.request(op, "r", "sessions.reset", json!({"key": "main"})));
    assert_eq!(reset["ok"], true);
    let history = payload(&after.request(op, "h2", "chat.history", json!({"sessionKey": "main"})));
    assert_eq!(history["messages"], json!([]));
    let deleted = payload(&after.request(op, "d", "sessions.delete", json!({"key": "main"})));
    assert_eq!(deleted["deleted"], true);
    assert!(after.transcripts.is_empty(), "{:?}", after.transcripts.keys());
}

#[test]
fn idle_sessions_are_pruned_after_the_configured_time() {
    let mut config = GatewayConfig::with_token(TOKEN);
    config.session_prune_after_ms = 120_000;
    config.health_refresh_interval_ms = 60_000;
    let mut b = Bench::new(config);
    let op = b.operator(&["operator.write", "operator.read"]);
    b.request(
        op,
        "s",
        "chat.send",
        json!({"sessionKey": "main", "message": "x", "idempotencyKey": "p1"}),
    );
    // Queued (no worker), so the session is busy: it is kept however long it waits.
    b.advance(200_000);
    assert_eq!(payload(&b.request(op, "l", "sessions.list", json!({})))["count"], 1);
    b.request(op, "a", "chat.abort", json!({"sessionKey": "main"}));
    b.advance(121_000);
    b.advance(60_000);
    assert_eq!(payload(&b.request(op, "l2", "sessions.list", json!({})))["count"], 0);
    assert!(b.transcripts.is_empty());
    assert!(b.logs.iter().any(|l| l.contains("pruned idle session agent:main:main")));
}

#[test]
fn operators_invoke_node_commands_and_get_the_node_answer() {
    let mut b = Bench::with_token();
    let node = b.ws(loopback(), &[]);
    let mut params = cli_params(&[], Some(TOKEN));
    params["role"] = json!("node");
    params["client"] = json!({"id": "node-host", "version": "1", "platform": "linux", "mode": "node"});
    params["commands"] = json!(["system.which"]);
    assert!(b.connect(node, params).ok);
    b.take_texts(node);
    let op = b.operator(&["operator.write", "operator.read"]);
    let nodes = payload(&b.request(op, "l", "node.list", json!({})));
    let node_id = nodes["nodes"][0]["nodeId"].as_str().unwrap().to_owned();
    b.send_text(
        op,
        &json!({"type": "req", "id": "i", "method": "node.invoke", "params": {"nodeId": node_id, "command": "system.which", "params": {"bins": ["sh"]}, "idempotencyKey": "k"}}).to_string(),
    );
    let request: Value = b.events(node)[0].parse_payload().unwrap();
    assert_eq!(request["command"], "system.which");
    assert_eq!(request["paramsJSON"], "{\"bins\":[\"sh\"]}");
    let res = b.request(
        node,
        "r",
        "node.invoke.result",
        json!({"id": request["id"], "nodeId": node_id, "ok": true, "payloadJSON": "{\"bins\":{\"sh\":\"/bin/sh\"}}"}),
    );
    assert!(res.ok);
    let answer = payload(&b.responses(op)[0]);
    assert_eq!(answer["payload"]["bins"]["sh"], "/bin/sh");
    // A command the node did not declare is refused; a node that never answers times out.
    let res = b.request(
        op,
        "x",
        "node.invoke",
        json!({"nodeId": node_id, "command": "system.run", "idempotencyKey": "k2"}),
    );
    assert!(error_code(&res).1.starts_with("node command not allowed"));
    b.send_text(
        op,
        &json!({"type": "req", "id": "t", "method": "node.invoke", "params": {"nodeId": node_id, "command": "system.which", "timeoutMs": 1000, "idempotencyKey": "k3"}}).to_string(),
    );
    b.advance(1000);
    let (code, message, _) = error_code(&b.responses(op)[0]);
    assert_eq!(code, "UNAVAILABLE");
    assert!(message.contains("did not answer"), "{message}");
}

#[test]
fn http_completions_check_auth_model_and_messages_and_stream_sse() {
    let mut b = Bench::with_token();
    let node = worker(&mut b, &["main"]);
    let post = |body: &str, auth: &str| completion_post(auth, body);
    let bearer = format!("Authorization: Bearer {TOKEN}\r\n");
    let (_, raw) = b.http(remote(), &post("{}", ""));
    assert!(
        raw.starts_with("HTTP/1.1 401") && raw.contains("\"type\":\"unauthorized\""),
        "{raw}"
    );
    let (_, raw) = b.http(
        loopback(),
        &post(
            r#"{"model":"gpt-4","messages":[{"role":"user","content":"x"}]}"#,
            &bearer,
        ),
    );
    assert!(
        raw.starts_with("HTTP/1.1 400") && raw.contains("Invalid `model`"),
        "{raw}"
    );
    let (_, raw) = b.http(loopback(), &post(r#"{"model":"openclaw","messages":[]}"#, &bearer));
    assert!(raw.contains("Missing user message in `messages`."), "{raw}");
    let (_, raw) = b.http(loopback(), &post("{not json", &bearer));
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");

    let (conn, raw) = b.http(
        loopback(),
        &post(
            r#"{"model":"openclaw/main","stream":true,"messages":[{"role":"user","content":"hey you"}]}"#,
            &bearer,
        ),
    );
    assert!(
        raw.starts_with("HTTP/1.1 200") && raw.contains("text/event-stream"),
        "{raw}"
    );
    assert!(raw.contains("\"delta\":{\"role\":\"assistant\"}"), "{raw}");
    let (invoke, params) = invocations(&mut b, node).remove(0);
    assert!(params["sessionKey"].as_str().unwrap().starts_with("agent:main:openai:"));
    delta(&mut b, node, params["runId"].as_str().unwrap(), "hey");
    finish(&mut b, node, &invoke, "hey you");
    let raw = b.raw_text(conn);
    let contents: String = raw
        .lines()
        .filter_map(|l| l.strip_prefix("data: {"))
        .map(|l| serde_json::from_str::<Value>(&format!("{{{l}")).unwrap())
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        contents, "hey you",
        "the result's unstreamed rest is sent before the end"
    );
    assert!(raw.contains("\"finish_reason\":\"stop\"") && raw.contains("data: [DONE]") && raw.ends_with("0\r\n\r\n"));

    // Eleven wrong secrets from one remote address lock it out with 429.
    let wrong = "Authorization: Bearer nope\r\n";
    let mut last = String::new();
    for _ in 0..11 {
        last = b.http(remote(), &post("{}", wrong)).1;
    }
    assert!(
        last.starts_with("HTTP/1.1 429") && last.contains("Retry-After"),
        "{last}"
    );
}

#[test]
fn a_worker_calls_tools_only_for_its_own_runs_and_only_a_requester_with_tool_events_sees_them() {
    let mut config = GatewayConfig::with_token(TOKEN);
    config.sandbox = Some("Landlock".to_owned());
    let mut b = Bench::new(config);
    let node = worker(&mut b, &["main"]);
    let intruder = worker(&mut b, &["ops"]);
    let op = b.operator_with_caps(&["operator.write"], &["tool-events"]);
    let reader = b.operator_with_caps(&["operator.read"], &["tool-events"]);
    start_chat(&mut b, op, node, "tr");
    let res = b.request(node, "t0", "tools.invoke", json!({"name": "ls", "args": {}}));
    assert!(error_code(&res).1.contains("runId is required"));
    let res = b.request(
        intruder,
        "t1",
        "tools.invoke",
        json!({"name": "ls", "args": {}, "runId": "tr"}),
    );
    assert!(error_code(&res).1.contains("not an active run of this node"));
    b.take_texts(op);
    b.take_texts(reader);
    b.send_text(
        node,
        &json!({"type": "req", "id": "t2", "method": "tools.invoke", "params": {"name": "ls", "args": {"path": "."}, "runId": "tr", "toolCallId": "call_9", "sessionKey": "agent:main:main"}}).to_string(),
    );
    let run = b.tool_runs.pop().expect("the tool runs");
    assert_eq!(run.tool, "ls");
    b.gw.handle_tool_result(b.now, run.call, Ok(json!({"entries": ["a.txt"]})));
    b.pump();
    let answer = payload(&b.responses(node)[0]);
    assert_eq!(answer["output"]["entries"][0], "a.txt");
    let streams = |events: Vec<clawgate_proto::frame::EventFrame>, stream: &str| -> Vec<Value> {
        events
            .iter()
            .filter(|e| e.event == "agent")
            .map(|e| e.parse_payload::<Value>().unwrap())
            .filter(|p| p["stream"] == stream)
            .map(|p| p["data"].clone())
            .collect()
    };
    let op_events = b.events(op);
    // As OpenClaw's, a tool event carries the session's row, whole and copied to the top level.
    let tool_event = op_events
        .iter()
        .filter(|e| e.event == "agent")
        .map(|e| e.parse_payload::<Value>().unwrap())
        .find(|p| p["stream"] == "tool")
        .unwrap();
    assert_eq!(tool_event["session"]["key"], "agent:main:work");
    assert_eq!(tool_event["hasActiveRun"], true);
    assert_eq!(tool_event["stream"], "tool", "the event's own keys win");
    let tools = streams(op_events.clone(), "tool");
    assert_eq!(tools.len(), 2);
    assert_eq!(
        (tools[0]["phase"].as_str(), tools[0]["toolCallId"].as_str()),
        (Some("start"), Some("call_9"))
    );
    assert_eq!(tools[1]["result"]["details"]["entries"][0], "a.txt");
    assert_eq!(tools[1]["result"]["content"][0]["type"], "text");
    let items = streams(op_events, "item");
    assert_eq!(
        items
            .iter()
            .map(|i| (i["phase"].as_str().unwrap(), i["itemId"].as_str().unwrap()))
            .collect::<Vec<_>>(),
        [("start", "tool:call_9"), ("end", "tool:call_9")]
    );
    assert_eq!(items[1]["status"], "completed");
    let reader_events = b.events(reader);
    assert!(
        streams(reader_events.clone(), "tool").is_empty(),
        "tool events go to the requester only"
    );
    assert_eq!(
        streams(reader_events, "item").len(),
        2,
        "everyone sees the call as an item"
    );
    let line: Value = serde_json::from_str(b.audit.last().unwrap()).unwrap();
    assert_eq!(
        line["sessionKey"], "agent:main:work",
        "the run's session, not the one the worker named"
    );
}

#[test]
fn a_repeated_agent_request_gets_the_first_outcome_and_runs_nothing_again() {
    let mut b = Bench::with_token();
    let node = worker(&mut b, &["main"]);
    let op = b.operator(&["operator.write"]);
    let send = |b: &mut Bench, id: &str| {
        let text =
            json!({"type": "req", "id": id, "method": "agent", "params": {"message": "m", "idempotencyKey": "same"}});
        b.send_text(op, &text.to_string());
    };
    send(&mut b, "a1");
    let (invoke, _) = invocations(&mut b, node).remove(0);
    let res = b.request(
        node,
        "r",
        "node.invoke.result",
        json!({"id": invoke["id"], "nodeId": invoke["nodeId"], "ok": false, "error": {"code": "X", "message": "model down"}}),
    );
    assert!(res.ok);
    b.take_texts(op);
    send(&mut b, "a2");
    let answers = b.responses(op);
    assert_eq!(answers.len(), 1);
    let (code, message, details) = error_code(&answers[0]);
    assert_eq!((code.as_str(), message.as_str()), ("UNAVAILABLE", "model down"));
    assert_eq!(details["status"], "error");
    assert!(invocations(&mut b, node).is_empty(), "no second run");
}

#[test]
fn the_http_endpoints_check_method_auth_and_path() {
    let mut b = Bench::with_token();
    let bearer = format!("Authorization: Bearer {TOKEN}\r\n");
    let get = |b: &mut Bench, method: &str, path: &str, auth: &str| {
        b.http(
            loopback(),
            &format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\n\r\n"),
        )
        .1
    };
    let models = get(&mut b, "GET", "/v1/models", &bearer);
    assert!(
        models.starts_with("HTTP/1.1 200") && models.contains("\"openclaw/main\""),
        "{models}"
    );
    assert!(get(&mut b, "GET", "/v1/models/openclaw/main", &bearer).starts_with("HTTP/1.1 200"));
    assert!(get(&mut b, "GET", "/v1/models/gpt-4", &bearer).starts_with("HTTP/1.1 404"));
    assert!(get(&mut b, "GET", "/v1/models", "").starts_with("HTTP/1.1 401"));
    let wrong = get(&mut b, "GET", "/api/sessions/main/messages", &bearer);
    assert!(
        wrong.starts_with("HTTP/1.1 405") && wrong.contains("Allow: POST"),
        "{wrong}"
    );
    let wrong = get(&mut b, "POST", "/sessions/main/history", &bearer);
    assert!(
        wrong.starts_with("HTTP/1.1 405") && wrong.contains("Allow: GET, HEAD"),
        "{wrong}"
    );
    assert!(get(&mut b, "GET", "/sessions/agent%3Zmain/history", &bearer).starts_with("HTTP/1.1 404"));
    let history = get(&mut b, "GET", "/sessions/agent%3Amain%3Amain/history?limit=5", &bearer);
    assert!(history.contains("\"sessionKey\":\"agent:main:main\""), "{history}");
    assert!(get(&mut b, "GET", "/sessions/main", &bearer).starts_with("HTTP/1.1 404"));
}

#[test]
fn an_http_completion_for_an_agent_without_a_worker_is_refused_at_once_with_retry_after() {
    let mut b = Bench::with_token();
    let body = r#"{"model":"openclaw","messages":[{"role":"user","content":"anyone there?"}]}"#;
    let request = completion_post(&format!("Authorization: Bearer {TOKEN}\r\n"), body);
    let (_, raw) = b.http(loopback(), &request);
    assert!(raw.starts_with("HTTP/1.1 503"), "{raw}");
    assert!(raw.contains("Retry-After: 5"), "{raw}");
    assert!(raw.contains("agent main has no worker connected"), "{raw}");
    assert!(!b.disk.contains_key("agents/queue.json"), "nothing was queued");
    // Once a worker serves the agent, the same request runs.
    let node = worker(&mut b, &["main"]);
    let (_, raw) = b.http(loopback(), &request);
    assert!(raw.is_empty(), "the answer waits for the worker: {raw}");
    assert_eq!(invocations(&mut b, node).len(), 1);
}

#[test]
fn a_chat_message_for_an_offline_agent_is_queued_and_the_sender_is_told_so() {
    let mut b = Bench::with_token();
    let op = b.operator(&["operator.write", "operator.read"]);
    b.send_text(
        op,
        &json!({"type": "req", "id": "s", "method": "chat.send", "params": {"sessionKey": "main", "message": "hello?", "idempotencyKey": "offline-1"}})
            .to_string(),
    );
    let frames = b.frames(op);
    let answer = frames
        .iter()
        .position(|f| matches!(f, Frame::Response(_)))
        .expect("an answer");
    let Frame::Response(res) = &frames[answer] else {
        unreachable!()
    };
    assert_eq!(payload(res)["status"], "started");
    let events: Vec<EventFrame> = frames[answer..]
        .iter()
        .filter_map(|f| match f {
            Frame::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect();
    let status = chat(&events)
        .into_iter()
        .find(|c| c["state"] == "status")
        .expect("a chat status event");
    assert_eq!(status["phase"], "queued");
    assert_eq!(status["reason"], "agent_offline");
    assert_eq!(status["runId"], "offline-1");
    assert!(status["message"].as_str().unwrap().contains("no worker connected"));
    let run_status = events
        .iter()
        .filter(|e| e.event == "agent")
        .map(|e| e.parse_payload::<Value>().unwrap())
        .find(|a| a["stream"] == "run_status")
        .expect("an agent run_status event");
    assert_eq!(run_status["data"]["phase"], "queued");
}

#[test]
fn an_http_conversation_reaches_the_worker_as_openclaw_shapes_it() {
    let mut b = Bench::with_token();
    let node = worker(&mut b, &["main"]);
    let body = json!({
        "model": "openclaw:main",
        "messages": [
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "And 3+3?"},
        ],
    })
    .to_string();
    let request = completion_post(
        &format!("Authorization: Bearer {TOKEN}\r\nx-openclaw-model: tiny-model\r\n"),
        &body,
    );
    b.http(loopback(), &request);
    let (_, params) = invocations(&mut b, node).remove(0);
    assert_eq!(params["extraSystemPrompt"], "Answer in French.");
    assert_eq!(params["model"], "tiny-model");
    assert_eq!(
        params["message"],
        "[Chat messages since your last reply - for context]\nUser: What is 2+2?\nAssistant: 4\n\n[Current message - respond to this]\nUser: And 3+3?"
    );
    // A single user message goes as it is, with no system prompt and the worker's own model.
    let body = json!({"model": "openclaw", "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let request = completion_post(&format!("Authorization: Bearer {TOKEN}\r\n"), &body);
    b.http(loopback(), &request);
    let (_, params) = invocations(&mut b, node).remove(0);
    assert_eq!(params["message"], "hi");
    assert!(
        params.get("extraSystemPrompt").is_none() && params.get("model").is_none(),
        "{params}"
    );
}

#[test]
fn sessions_abort_stops_the_active_run_of_a_session_or_says_there_is_none() {
    let mut b = Bench::with_token();
    let node = worker(&mut b, &["main"]);
    let op = b.operator(&["operator.write"]);
    let res = b.request(op, "a0", "sessions.abort", json!({"key": "agent:main:work"}));
    assert_eq!(
        payload(&res),
        json!({"ok": true, "abortedRunId": null, "status": "no-active-run"})
    );
    start_chat(&mut b, op, node, "ab1");
    let res = b.request(op, "a1", "sessions.abort", json!({"key": "agent:main:work"}));
    assert_eq!(
        payload(&res),
        json!({"ok": true, "abortedRunId": "ab1", "status": "aborted"})
    );
    // The worker is told to stop the run it was given.
    let cancels: Vec<Value> = b
        .events(node)
        .iter()
        .filter(|e| e.event == "node.invoke.cancel")
        .map(|e| e.parse_payload::<Value>().unwrap())
        .collect();
    assert_eq!(cancels, [json!({"id": "ab1", "runId": "ab1"})]);
}

#[test]
fn aborting_a_run_stops_its_running_tool_calls() {
    let mut b = Bench::with_token();
    let node = worker(&mut b, &["main"]);
    let op = b.operator(&["operator.write"]);
    start_chat(&mut b, op, node, "tk");
    b.send_text(
        node,
        &json!({"type": "req", "id": "t", "method": "tools.invoke", "params": {"name": "exec", "args": {"command": "sleep", "args": ["30"]}, "runId": "tk"}}).to_string(),
    );
    let run = b.tool_runs.pop().expect("the exec runs");
    assert!(b.cancelled_tools.is_empty());
    b.request(op, "a", "chat.abort", json!({"sessionKey": "agent:main:work"}));
    assert_eq!(b.cancelled_tools, [run.call], "the aborted run's tool call is stopped");
}

#[test]
fn a_turn_that_calls_tools_is_kept_in_the_history_and_its_preamble_is_an_item() {
    let mut b = Bench::with_token();
    let node = worker(&mut b, &["main"]);
    let op = b.operator(&["operator.write"]);
    start_chat(&mut b, op, node, "pre");
    b.take_texts(op);
    let calls = json!({"runId": "pre", "text": "Checking both.", "calls": [{"id": "call_1", "name": "read", "arguments": {"path": "a"}}]});
    let res = b.request(
        node,
        "e",
        "node.event",
        json!({"event": "agent.toolCalls", "payloadJSON": calls.to_string()}),
    );
    assert!(res.ok, "{res:?}");
    let items: Vec<Value> = b
        .events(op)
        .iter()
        .filter(|e| e.event == "agent")
        .map(|e| e.parse_payload::<Value>().unwrap())
        .filter(|p| p["stream"] == "item")
        .map(|p| p["data"].clone())
        .collect();
    assert_eq!(items.len(), 1);
    assert_eq!(
        (items[0]["kind"].as_str(), items[0]["progressText"].as_str()),
        (Some("preamble"), Some("Checking both."))
    );
    let history = payload(&b.request(op, "h", "chat.history", json!({"sessionKey": "agent:main:work"})));
    let last = history["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last["content"][0],
        json!({"type": "toolCall", "id": "call_1", "name": "read", "arguments": {"path": "a"}})
    );
    assert_eq!(last["stopReason"], "toolUse");
}

#[test]
fn what_a_command_prints_reaches_the_runs_watchers_as_it_comes() {
    let mut b = Bench::with_token();
    let node = worker(&mut b, &["main"]);
    let op = b.operator_with_caps(&["operator.write"], &["tool-events"]);
    let reader = b.operator(&["operator.read"]);
    start_chat(&mut b, op, node, "out");
    b.send_text(
        node,
        &json!({"type": "req", "id": "t", "method": "tools.invoke", "params": {"name": "exec", "args": {"command": "ls"}, "runId": "out", "toolCallId": "call_o"}}).to_string(),
    );
    let run = b.tool_runs.pop().expect("the exec runs");
    b.take_texts(op);
    b.take_texts(reader);
    b.gw.handle_tool_output(b.now, run.call, "hi\n");
    b.pump();
    let streams = |events: Vec<EventFrame>| -> Vec<(String, String)> {
        events
            .iter()
            .filter(|e| e.event == "agent")
            .map(|e| e.parse_payload::<Value>().unwrap())
            .map(|p| {
                (
                    p["stream"].as_str().unwrap().to_owned(),
                    p["data"]["phase"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    };
    let seen = |s: &str, p: &str| (s.to_owned(), p.to_owned());
    assert_eq!(
        streams(b.events(op)),
        [
            seen("tool", "update"),
            seen("item", "update"),
            seen("command_output", "delta")
        ]
    );
    assert_eq!(
        streams(b.events(reader)),
        [seen("item", "update"), seen("command_output", "delta")]
    );
}

#[test]
fn an_http_completion_whose_run_fails_gets_502_with_one_cache_header() {
    let mut b = Bench::with_token();
    let node = worker(&mut b, &["main"]);
    let bearer = format!("Authorization: Bearer {TOKEN}\r\n");
    let (conn, _) = b.http(
        loopback(),
        &completion_post(
            &bearer,
            r#"{"model":"openclaw","messages":[{"role":"user","content":"x"}]}"#,
        ),
    );
    let (invoke, _) = invocations(&mut b, node).remove(0);
    let res = b.request(
        node,
        "r",
        "node.invoke.result",
        json!({"id": invoke["id"], "nodeId": invoke["nodeId"], "ok": false, "error": {"message": "model down"}}),
    );
    assert!(res.ok, "{res:?}");
    let raw = b.raw_text(conn);
    assert!(raw.starts_with("HTTP/1.1 502") && raw.contains("model down"), "{raw}");
    assert_eq!(raw.matches("Cache-Control").count(), 1, "{raw}");
}

#[test]
fn a_run_is_announced_as_a_task_when_it_runs_and_when_it_ends() {
    let mut b = Bench::with_token();
    let node = worker(&mut b, &["main"]);
    let writer = b.operator(&["operator.write", "operator.read"]);
    b.take_texts(writer);
    b.send_text(
        writer,
        &json!({"type": "req", "id": "a", "method": "agent", "params": {"message": "hi", "idempotencyKey": "t1"}})
            .to_string(),
    );
    let (invoke, _) = invocations(&mut b, node).remove(0);
    finish(&mut b, node, &invoke, "hi");
    let frames = b.frames(writer);
    let tasks: Vec<(usize, Value)> = frames
        .iter()
        .enumerate()
        .filter_map(|(i, f)| match f {
            Frame::Event(e) if e.event == "task" => Some((i, e.parse_payload::<Value>().unwrap())),
            _ => None,
        })
        .collect();
    let states: Vec<&str> = tasks.iter().filter_map(|(_, t)| t["task"]["status"].as_str()).collect();
    assert_eq!(states, ["running", "completed"]);
    assert!(tasks
        .iter()
        .all(|(_, t)| t["action"] == "upserted" && t["task"]["runId"] == "t1"));
    let answered = frames
        .iter()
        .rposition(|f| matches!(f, Frame::Response(r) if r.id == "a"))
        .unwrap();
    assert!(
        tasks[1].0 < answered,
        "the task ends before the final answer, as captured"
    );
}

#[test]
fn a_run_waiting_for_a_worker_is_announced_as_a_queued_task() {
    let mut b = Bench::with_token();
    let writer = b.operator(&["operator.write", "operator.read"]);
    b.take_texts(writer);
    b.send_text(
        writer,
        &json!({"type": "req", "id": "a", "method": "agent", "params": {"message": "hi", "idempotencyKey": "t2"}})
            .to_string(),
    );
    let queued: Vec<Value> = b
        .events(writer)
        .into_iter()
        .filter(|e| e.event == "task")
        .map(|e| e.parse_payload::<Value>().unwrap())
        .collect();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0]["task"]["status"], "queued");
}

#[test]
fn diagnostics_stability_records_runs_and_queued_messages_without_their_text() {
    let mut b = Bench::with_token();
    let admin = b.operator(&["operator.admin", "operator.write", "operator.read"]);
    b.take_texts(admin);
    b.send_text(
        admin,
        &json!({"type": "req", "id": "a", "method": "chat.send", "params": {"sessionKey": "main", "message": "secret words", "idempotencyKey": "s1"}})
            .to_string(),
    );
    // The worker comes after the message; its run is handed over on connect.
    let node = b.ws(loopback(), &[]);
    let connect = json!({"type": "req", "id": "c", "method": "connect", "params": worker_params(&["main"])});
    b.send_text(node, &connect.to_string());
    let (invoke, _) = invocations(&mut b, node).remove(0);
    finish(&mut b, node, &invoke, "secret words");
    b.take_texts(admin);
    let stability = payload(&b.request(admin, "d", "diagnostics.stability", json!({})));
    let kinds: Vec<&str> = stability["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(kinds, ["message.queued", "run.started", "run.completed"]);
    assert_eq!(stability["events"][2]["outcome"], "completed");
    assert_eq!(stability["summary"]["byType"]["run.started"], 1);
    assert!(!stability.to_string().contains("secret"), "{stability}");
    let only = payload(&b.request(admin, "e", "diagnostics.stability", json!({"type": "run.completed"})));
    assert_eq!(only["count"], 1);
    let bad = b.request(admin, "f", "diagnostics.stability", json!({"limit": 0}));
    assert!(!bad.ok);
}
