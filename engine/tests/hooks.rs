//! The inbound webhooks (`hooks.*`): the token in a header only, OpenClaw's status codes, the
//! session-key policy, wakes, and agent turns answered once the message is durable.

use clawgate_engine::testkit::*;
use clawgate_engine::{ConnId, Gateway, GatewayConfig};
use serde_json::{json, Value};

const HOOK_TOKEN: &str = "hook-secret-0123456789";

fn bench_with(hooks: Value) -> Bench {
    let doc = json!({"hooks": hooks});
    let (settings, _) = clawgate_engine::settings::parse(&doc.to_string(), &|_: &str| None).unwrap();
    let mut config = GatewayConfig::with_token(TOKEN);
    config.apply_file(&settings);
    Bench::with_gateway(Gateway::new(config, Box::new(FakeEntropy(5)), START))
}

fn bench() -> Bench {
    bench_with(json!({"enabled": true, "token": HOOK_TOKEN}))
}

fn worker(b: &mut Bench) -> ConnId {
    let node = b.ws(loopback(), &[]);
    assert!(b.connect(node, worker_params(&["main"])).ok);
    b.take_texts(node);
    node
}

fn post(path: &str, headers: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn bearer() -> String {
    format!("Authorization: Bearer {HOOK_TOKEN}\r\n")
}

fn status(raw: &str) -> u16 {
    raw.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn body(raw: &str) -> Value {
    serde_json::from_str(raw.split("\r\n\r\n").nth(1).unwrap_or_default()).unwrap_or(Value::Null)
}

fn invocations(b: &mut Bench, node: ConnId) -> Vec<Value> {
    b.events(node)
        .into_iter()
        .filter(|e| e.event == "node.invoke.request")
        .map(|e| {
            let p: Value = e.parse_payload().unwrap();
            let params: Value = serde_json::from_str(p["paramsJSON"].as_str().unwrap()).unwrap();
            json!({"invoke": p, "params": params})
        })
        .collect()
}

#[test]
fn the_token_comes_in_a_header_and_never_in_the_query_string() {
    let mut b = bench();
    let (_, raw) = b.http(loopback(), &post("/hooks/wake", "", r#"{"text":"x"}"#));
    assert_eq!(status(&raw), 401, "{raw}");
    let wrong = "Authorization: Bearer nope\r\n";
    assert_eq!(
        status(&b.http(loopback(), &post("/hooks/wake", wrong, r#"{"text":"x"}"#)).1),
        401
    );
    let query = post(&format!("/hooks/wake?token={HOOK_TOKEN}"), &bearer(), r#"{"text":"x"}"#);
    assert_eq!(
        status(&b.http(loopback(), &query).1),
        400,
        "a query token is refused even beside a good header"
    );
    let header = format!("x-openclaw-token: {HOOK_TOKEN}\r\n");
    assert_eq!(
        status(&b.http(loopback(), &post("/hooks/wake", &header, r#"{"text":"x"}"#)).1),
        200
    );
    let gateway_token = format!("Authorization: Bearer {TOKEN}\r\n");
    assert_eq!(
        status(
            &b.http(loopback(), &post("/hooks/wake", &gateway_token, r#"{"text":"x"}"#))
                .1
        ),
        401,
        "the gateway's own token is not the hook token"
    );
}

#[test]
fn repeated_failures_are_throttled_loopback_included() {
    let mut b = bench();
    let wrong = "Authorization: Bearer nope\r\n";
    for _ in 0..20 {
        b.http(loopback(), &post("/hooks/wake", wrong, r#"{"text":"x"}"#));
    }
    let (_, raw) = b.http(loopback(), &post("/hooks/wake", &bearer(), r#"{"text":"x"}"#));
    assert_eq!(status(&raw), 429, "{raw}");
    assert!(raw.contains("Retry-After:"), "{raw}");
}

#[test]
fn methods_paths_and_bodies_get_openclaws_status_codes() {
    let mut b = bench();
    let get = format!("GET /hooks/wake HTTP/1.1\r\nHost: x\r\n{}\r\n", bearer());
    let (_, raw) = b.http(loopback(), &get);
    assert_eq!(status(&raw), 405);
    assert!(raw.contains("Allow: POST"), "{raw}");
    assert_eq!(
        status(&b.http(loopback(), &post("/hooks/gmail", &bearer(), "{}")).1),
        404
    );
    assert_eq!(
        status(&b.http(loopback(), &post("/hooks/wake", &bearer(), "{oops")).1),
        400
    );
    assert_eq!(
        status(&b.http(loopback(), &post("/hooks/wake", &bearer(), "{}")).1),
        400,
        "text is required"
    );
    let big = format!(r#"{{"text":"{}"}}"#, "x".repeat(300 * 1024));
    assert_eq!(
        status(&b.http(loopback(), &post("/hooks/wake", &bearer(), &big)).1),
        413
    );
}

#[test]
fn disabled_hooks_fall_through_to_the_rest_of_the_gateway() {
    let mut b = bench_with(json!({"enabled": false, "token": HOOK_TOKEN}));
    let (_, raw) = b.http(loopback(), &post("/hooks/wake", &bearer(), r#"{"text":"x"}"#));
    assert_eq!(status(&raw), 404, "{raw}");
}

#[test]
fn a_wake_queues_its_text_once_and_says_when_it_coalesced() {
    let mut b = bench();
    let wake = |b: &mut Bench| {
        body(
            &b.http(
                loopback(),
                &post(
                    "/hooks/wake",
                    &bearer(),
                    r#"{"text":"import done","mode":"next-heartbeat"}"#,
                ),
            )
            .1,
        )
    };
    assert_eq!(
        wake(&mut b),
        json!({"ok": true, "mode": "next-heartbeat", "eventOutcome": "queued"})
    );
    assert_eq!(wake(&mut b)["eventOutcome"], "coalesced");
    let (_, raw) = b.http(
        loopback(),
        &post("/hooks/wake", &bearer(), r#"{"text":"x","agentId":"nobody"}"#),
    );
    assert_eq!(status(&raw), 400, "an agent that does not exist: {raw}");
}

#[test]
fn an_agent_hook_for_an_offline_agent_is_admitted_once_its_queue_is_durable() {
    let mut b = bench();
    b.hold_persists = true;
    let request = post(
        "/hooks/agent",
        &format!("{}Idempotency-Key: once-1\r\n", bearer()),
        r#"{"message":"summarize the import","name":"Import"}"#,
    );
    let (conn, raw) = b.http(loopback(), &request);
    assert!(raw.is_empty(), "not admitted before the queue is durable: {raw}");
    b.ack_persists();
    b.hold_persists = false;
    let raw = b.raw_text(conn);
    assert_eq!(status(&raw), 200, "{raw}");
    let run_id = body(&raw)["runId"].as_str().unwrap().to_owned();
    // The worker that connects later runs it, in a fresh hook session.
    let node = b.ws(loopback(), &[]);
    let connect = json!({"type": "req", "id": "c", "method": "connect", "params": worker_params(&["main"])});
    b.send_text(node, &connect.to_string());
    let runs = invocations(&mut b, node);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["params"]["message"], "summarize the import");
    let key = runs[0]["params"]["sessionKey"].as_str().unwrap();
    assert!(key.starts_with("agent:main:hook:"), "{key}");
    // The same request again replays the run; nothing runs twice.
    let (_, again) = b.http(loopback(), &request);
    assert_eq!(body(&again)["runId"], run_id.as_str());
    assert!(invocations(&mut b, node).is_empty());
}

#[test]
fn an_agent_hook_goes_straight_to_an_online_worker() {
    let mut b = bench();
    let node = worker(&mut b);
    let (_, raw) = b.http(
        loopback(),
        &post("/hooks/agent", &bearer(), r#"{"message":"now please"}"#),
    );
    assert_eq!(status(&raw), 200, "{raw}");
    assert_eq!(invocations(&mut b, node)[0]["params"]["message"], "now please");
}

#[test]
fn waiting_for_completion_answers_with_the_outcome_and_no_text() {
    let mut b = bench();
    let node = worker(&mut b);
    let (conn, raw) = b.http(
        loopback(),
        &post(
            "/hooks/agent",
            &bearer(),
            r#"{"message":"hello","waitForCompletion":true}"#,
        ),
    );
    assert!(raw.is_empty(), "the answer waits for the run: {raw}");
    let run = invocations(&mut b, node).remove(0);
    let res = b.request(
        node,
        "r",
        "node.invoke.result",
        json!({"id": run["invoke"]["id"], "nodeId": run["invoke"]["nodeId"], "ok": true,
               "payloadJSON": json!({"text": "the secret reply"}).to_string()}),
    );
    assert!(res.ok);
    let raw = b.raw_text(conn);
    let answer = body(&raw);
    assert_eq!(answer["completion"]["status"], "ok", "{raw}");
    assert_eq!(answer["completion"]["replyDisposition"], "visible");
    assert!(!raw.contains("secret reply"), "the reply's text is never in the answer");
}

#[test]
fn session_keys_follow_the_policy() {
    let mut b = bench();
    let _node = worker(&mut b);
    let (_, raw) = b.http(
        loopback(),
        &post("/hooks/agent", &bearer(), r#"{"message":"x","sessionKey":"hook:mine"}"#),
    );
    assert_eq!(status(&raw), 400, "caller keys are off by default: {raw}");
    let mut b = bench_with(
        json!({"enabled": true, "token": HOOK_TOKEN, "allowRequestSessionKey": true,
                                  "allowedSessionKeyPrefixes": ["hook:"]}),
    );
    let node = worker(&mut b);
    let persistent = r#"{"message":"x","sessionKey":"hook:orders","sessionMode":"persistent"}"#;
    let (_, raw) = b.http(loopback(), &post("/hooks/agent", &bearer(), persistent));
    assert_eq!(status(&raw), 200, "{raw}");
    assert_eq!(
        invocations(&mut b, node)[0]["params"]["sessionKey"],
        "agent:main:hook:orders"
    );
    let outside = r#"{"message":"x","sessionKey":"agent:main:main","sessionMode":"persistent"}"#;
    assert_eq!(
        status(&b.http(loopback(), &post("/hooks/agent", &bearer(), outside)).1),
        400
    );
    let denied = bench_with(json!({"enabled": true, "token": HOOK_TOKEN, "allowedAgentIds": []}));
    let mut denied = denied;
    let (_, raw) = denied.http(loopback(), &post("/hooks/agent", &bearer(), r#"{"message":"x"}"#));
    assert_eq!(status(&raw), 400, "no agent is allowed: {raw}");
}

#[test]
fn settings_that_cannot_work_stop_the_start() {
    for hooks in [
        json!({"enabled": true}),
        json!({"enabled": true, "token": "t", "path": "/"}),
    ] {
        let doc = json!({"hooks": hooks}).to_string();
        assert!(
            clawgate_engine::settings::parse(&doc, &|_: &str| None).is_err(),
            "{doc}"
        );
    }
}

const HOOK_STATE: &str = "hooks/state.json";

fn mapped_bench(extra: Value) -> Bench {
    let mut hooks = json!({"enabled": true, "token": HOOK_TOKEN});
    for (k, v) in extra.as_object().unwrap() {
        hooks[k] = v.clone();
    }
    bench_with(hooks)
}

fn github() -> Value {
    json!({"mappings": [
        {"id": "gh", "match": {"path": "github", "source": "github"},
         "messageTemplate": "{{headers.x-event-type}} on {{repo.name}} by {{sender.login}}"},
        {"match": {"path": "alerts"}, "action": "wake", "textTemplate": "{{title}}"},
        {"match": {"path": "batch"}, "forEach": "items", "messageTemplate": "item {{items[0].n}}"},
        {"match": {"path": "scripted"}, "transform": {"module": "scripted.js"}},
    ]})
}

#[test]
fn a_mapped_hook_renders_its_template_into_an_agent_turn() {
    let mut b = mapped_bench(github());
    let node = worker(&mut b);
    let headers = format!("{}X-Event-Type: push\r\n", bearer());
    let payload = r#"{"source":"github","repo":{"name":"claw"},"sender":{"login":"ana"}}"#;
    let (_, raw) = b.http(loopback(), &post("/hooks/github", &headers, payload));
    assert_eq!(status(&raw), 200, "{raw}");
    assert!(body(&raw)["runId"].is_string(), "{raw}");
    let runs = invocations(&mut b, node);
    assert_eq!(runs[0]["params"]["message"], "push on claw by ana");
    assert!(runs[0]["params"]["sessionKey"]
        .as_str()
        .unwrap()
        .starts_with("agent:main:hook:"));
}

#[test]
fn a_mapping_matches_on_path_and_source_or_the_hook_is_not_found() {
    let mut b = mapped_bench(github());
    let _node = worker(&mut b);
    let other_source = r#"{"source":"gitlab","repo":{"name":"claw"}}"#;
    let (_, raw) = b.http(loopback(), &post("/hooks/github", &bearer(), other_source));
    assert_eq!(status(&raw), 404, "{raw}");
    assert_eq!(
        status(&b.http(loopback(), &post("/hooks/nothing", &bearer(), "{}")).1),
        404
    );
    assert_eq!(
        status(&b.http(loopback(), &post("/hooks", &bearer(), "{}")).1),
        404,
        "the base path has no action"
    );
}

#[test]
fn a_wake_mapping_queues_its_rendered_text() {
    let mut b = mapped_bench(github());
    let (_, raw) = b.http(
        loopback(),
        &post("/hooks/alerts", &bearer(), r#"{"title":"disk full"}"#),
    );
    assert_eq!(
        body(&raw),
        json!({"ok": true, "mode": "now", "eventOutcome": "queued"}),
        "{raw}"
    );
    let (_, raw) = b.http(loopback(), &post("/hooks/alerts", &bearer(), r#"{}"#));
    assert_eq!(status(&raw), 400, "an empty text is refused: {raw}");
}

#[test]
fn for_each_starts_one_turn_per_item_and_nothing_for_no_items() {
    let mut b = mapped_bench(github());
    let node = worker(&mut b);
    let batch = r#"{"items":[{"n":1},{"n":2},{"n":3}]}"#;
    let (_, raw) = b.http(loopback(), &post("/hooks/batch", &bearer(), batch));
    let answer = body(&raw);
    assert_eq!(answer["dispatched"], 3, "{raw}");
    assert_eq!(answer["runIds"].as_array().unwrap().len(), 3);
    assert_eq!(answer["runId"], answer["runIds"][0]);
    let messages: Vec<Value> = invocations(&mut b, node)
        .into_iter()
        .map(|r| r["params"]["message"].clone())
        .collect();
    assert_eq!(messages, vec![json!("item 1"), json!("item 2"), json!("item 3")]);
    // The sender retries the same batch: each item is recognised, nothing runs again.
    let (_, again) = b.http(loopback(), &post("/hooks/batch", &bearer(), batch));
    assert_eq!(body(&again)["runIds"], answer["runIds"]);
    assert!(invocations(&mut b, node).is_empty());
    let (_, raw) = b.http(loopback(), &post("/hooks/batch", &bearer(), r#"{"items":[]}"#));
    assert_eq!(status(&raw), 204, "{raw}");
}

#[test]
fn a_mapping_that_needs_a_javascript_transform_answers_500() {
    let mut b = mapped_bench(github());
    let (_, raw) = b.http(loopback(), &post("/hooks/scripted", &bearer(), "{}"));
    assert_eq!(status(&raw), 500, "{raw}");
    assert!(
        body(&raw)["error"].as_str().unwrap().starts_with("hook mapping failed"),
        "{raw}"
    );
}

#[test]
fn a_templated_mapping_key_needs_callers_keys_allowed() {
    let mapping = json!({"match": {"path": "orders"}, "sessionKey": "hook:orders:{{id}}",
                         "sessionMode": "persistent", "messageTemplate": "order {{id}}"});
    let mut b = mapped_bench(json!({"allowedSessionKeyPrefixes": ["hook:"], "mappings": [mapping.clone()]}));
    let (_, raw) = b.http(loopback(), &post("/hooks/orders", &bearer(), r#"{"id":"7"}"#));
    assert_eq!(status(&raw), 400, "allowRequestSessionKey is off: {raw}");
    let mut b = mapped_bench(
        json!({"allowedSessionKeyPrefixes": ["hook:"], "allowRequestSessionKey": true,
                                    "mappings": [mapping]}),
    );
    let node = worker(&mut b);
    let (_, raw) = b.http(loopback(), &post("/hooks/orders", &bearer(), r#"{"id":"7"}"#));
    assert_eq!(status(&raw), 200, "{raw}");
    assert_eq!(
        invocations(&mut b, node)[0]["params"]["sessionKey"],
        "agent:main:hook:orders:7"
    );
}

#[test]
fn a_direct_delivery_needs_a_channel_and_a_target_together() {
    let mut b = bench();
    for payload in [
        r#"{"message":"x","channel":"irc"}"#,
        r#"{"message":"x","to":"carol"}"#,
        r#"{"message":"x","accountId":"work"}"#,
        r#"{"message":"x","channel":"last","to":"carol"}"#,
        r#"{"message":"x","channel":"irc","to":"carol"}"#,
    ] {
        let (_, raw) = b.http(loopback(), &post("/hooks/agent", &bearer(), payload));
        assert_eq!(status(&raw), 400, "{payload}: {raw}");
    }
    let (_, raw) = b.http(
        loopback(),
        &post(
            "/hooks/agent",
            &bearer(),
            r#"{"message":"x","channel":"irc","to":"carol","deliver":false}"#,
        ),
    );
    assert_eq!(status(&raw), 200, "deliver false ignores the destination: {raw}");
}

/// The gateway again on the files a stopped one left: its transcripts and hook state.
fn restarted(b: &Bench, seed: u64) -> Bench {
    let files: Vec<String> = b.transcripts.values().map(|lines| lines.join("\n")).collect();
    let state = b.disk.get(HOOK_STATE).cloned();
    let gw = Gateway::new(b.gw.config().clone(), Box::new(FakeEntropy(seed)), START + 5000)
        .with_transcripts(files)
        .with_hooks(state.as_deref())
        .unwrap();
    let mut after = Bench::with_gateway(gw);
    after.now = START + 5000;
    after
}

fn worker_runs(b: &mut Bench) -> (ConnId, Vec<Value>) {
    let node = b.ws(loopback(), &[]);
    let connect = json!({"type": "req", "id": "c", "method": "connect", "params": worker_params(&["main"])});
    b.send_text(node, &connect.to_string());
    let runs = invocations(b, node);
    (node, runs)
}

fn answer_run(b: &mut Bench, node: ConnId, run: &Value, text: &str) {
    let res = b.request(
        node,
        "r",
        "node.invoke.result",
        json!({"id": run["invoke"]["id"], "nodeId": run["invoke"]["nodeId"], "ok": true,
               "payloadJSON": json!({"text": text}).to_string()}),
    );
    assert!(res.ok);
}

#[test]
fn a_turn_under_way_when_the_gateway_dies_runs_again_after_the_restart() {
    let mut b = bench();
    let node = worker(&mut b);
    let (_, raw) = b.http(
        loopback(),
        &post("/hooks/agent", &bearer(), r#"{"message":"do not lose me"}"#),
    );
    let run_id = body(&raw)["runId"].clone();
    assert_eq!(invocations(&mut b, node).len(), 1);
    let mut after = restarted(&b, 20);
    let (node, runs) = worker_runs(&mut after);
    assert_eq!(runs.len(), 1, "the lost run runs again");
    assert_eq!(runs[0]["params"]["message"], "do not lose me");
    assert_eq!(
        runs[0]["invoke"]["runId"]
            .as_str()
            .or(runs[0]["params"]["runId"].as_str()),
        run_id.as_str()
    );
    answer_run(&mut after, node, &runs[0], "kept");
    // Once answered, a further restart has nothing to run.
    let mut again = restarted(&after, 21);
    assert!(worker_runs(&mut again).1.is_empty());
}

#[test]
fn a_turn_whose_reply_was_written_is_not_run_again() {
    let mut b = bench();
    let node = worker(&mut b);
    b.http(loopback(), &post("/hooks/agent", &bearer(), r#"{"message":"once"}"#));
    let run = invocations(&mut b, node).remove(0);
    // The reply reaches the transcript, and the process dies before the hook state says so.
    let before_end = b.disk[HOOK_STATE].clone();
    answer_run(&mut b, node, &run, "the one reply");
    b.disk.insert(HOOK_STATE.into(), before_end);
    let mut after = restarted(&b, 22);
    assert!(worker_runs(&mut after).1.is_empty());
    assert!(
        !after.disk[HOOK_STATE].contains("once"),
        "the turn is done: {}",
        after.disk[HOOK_STATE]
    );
}

#[test]
fn a_retry_after_a_restart_gets_the_run_the_first_attempt_started() {
    let mut b = bench();
    let request = post(
        "/hooks/agent",
        &format!("{}Idempotency-Key: import-42\r\n", bearer()),
        r#"{"message":"import 42"}"#,
    );
    let (_, raw) = b.http(loopback(), &request);
    let run_id = body(&raw)["runId"].clone();
    let mut after = restarted(&b, 23);
    let (_, again) = after.http(loopback(), &request);
    assert_eq!(body(&again)["runId"], run_id, "{again}");
    let (_node, runs) = worker_runs(&mut after);
    assert_eq!(runs.len(), 1, "one run, not two");
}
