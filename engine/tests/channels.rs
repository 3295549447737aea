//! Chat channels in simulated time: an adapter connects as a node, hands in inbound messages
//! (acknowledged only once durable), gets replies to deliver, and failed deliveries are retried,
//! then dead-lettered, without holding up the ones behind them. Pairing, routing, `send`,
//! `channels.status` and a restart on the same state.

use clawgate_engine::testkit::*;
use clawgate_engine::{ConnId, Gateway, GatewayConfig};
use clawgate_proto::frame::{EventFrame, Frame, RequestFrame, ResponseFrame};
use serde_json::{json, Value};

const STATE: &str = "channels/state.json";

fn config_with(channels: Value) -> GatewayConfig {
    let doc = json!({"channels": channels});
    let (settings, _) = clawgate_engine::settings::parse(&doc.to_string(), &|_: &str| None).unwrap();
    let mut config = GatewayConfig::with_token(TOKEN);
    config.apply_file(&settings);
    config
}

fn irc(dm_policy: &str) -> Value {
    json!({"irc": {"host": "127.0.0.1", "nick": "clawbot", "tls": false, "dmPolicy": dm_policy,
                   "allowFrom": ["carol!c@host"], "groupPolicy": "open",
                   "groupAllowFrom": ["*"]}})
}

fn bench(dm_policy: &str) -> Bench {
    Bench::with_gateway(Gateway::new(
        config_with(irc(dm_policy)),
        Box::new(FakeEntropy(9)),
        START,
    ))
}

/// Sends `method` and returns its one response with the events that came with it.
fn exchange(b: &mut Bench, conn: ConnId, method: &str, params: Value) -> (ResponseFrame, Vec<EventFrame>) {
    b.send_text(conn, &RequestFrame::new("x", method, &params).encode());
    let (mut responses, mut events) = (Vec::new(), Vec::new());
    for frame in b.frames(conn) {
        match frame {
            Frame::Response(r) => responses.push(r),
            Frame::Event(e) => events.push(e),
            _ => {}
        }
    }
    assert_eq!(responses.len(), 1, "one answer to {method}");
    (responses.remove(0), events)
}

fn named(events: &[EventFrame], name: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e.event == name)
        .map(|e| e.parse_payload().unwrap())
        .collect()
}

/// An IRC adapter that connected and reports its network connected, with the deliveries it
/// was handed on the way.
fn adapter_with_deliveries(b: &mut Bench) -> (ConnId, Vec<Value>) {
    let conn = b.ws(loopback(), &[]);
    let mut params = worker_params(&[]);
    params["caps"] = json!(["channel:irc:default"]);
    params["commands"] = json!(["channel.send"]);
    let (res, events) = exchange(b, conn, "connect", params);
    assert!(res.ok);
    assert_eq!(named(&events, "channel.control"), vec![json!({"run": true})]);
    let (res, events) = exchange(b, conn, "channel.state", json!({"running": true, "connected": true}));
    assert!(res.ok);
    (conn, named(&events, "channel.deliver"))
}

fn adapter(b: &mut Bench) -> ConnId {
    adapter_with_deliveries(b).0
}

/// A worker of agent `main`, with the runs it was handed as it connected.
fn worker_with_runs(b: &mut Bench) -> (ConnId, Vec<(Value, Value)>) {
    let node = b.ws(loopback(), &[]);
    let (res, events) = exchange(b, node, "connect", worker_params(&["main"]));
    assert!(res.ok);
    (
        node,
        named(&events, "node.invoke.request").into_iter().map(run_of).collect(),
    )
}

fn worker(b: &mut Bench) -> ConnId {
    worker_with_runs(b).0
}

fn run_of(p: Value) -> (Value, Value) {
    let params: Value = serde_json::from_str(p["paramsJSON"].as_str().unwrap()).unwrap();
    (p, params)
}

fn events_named(b: &mut Bench, conn: ConnId, name: &str) -> Vec<Value> {
    b.events(conn)
        .into_iter()
        .filter(|e| e.event == name)
        .map(|e| e.parse_payload().unwrap())
        .collect()
}

fn dm(from: &str, id: &str, text: &str) -> Value {
    let nick = from.split('!').next().unwrap();
    json!({"messageId": id, "chatType": "direct", "peerId": nick, "senderId": from, "text": text})
}

fn inbound(b: &mut Bench, conn: ConnId, message: Value) -> Value {
    let res = b.request(conn, "in", "channel.inbound", message);
    assert!(res.ok, "{:?}", res.error);
    payload(&res)
}

/// The worker's pending run: its invoke payload and its params.
fn runs(b: &mut Bench, node: ConnId) -> Vec<(Value, Value)> {
    events_named(b, node, "node.invoke.request")
        .into_iter()
        .map(run_of)
        .collect()
}

fn finish(b: &mut Bench, node: ConnId, invoke: &Value, text: &str) {
    let res = b.request(
        node,
        "r",
        "node.invoke.result",
        json!({"id": invoke["id"], "nodeId": invoke["nodeId"], "ok": true,
               "payloadJSON": json!({"text": text}).to_string()}),
    );
    assert!(res.ok);
}

fn delivered(b: &mut Bench, conn: ConnId, id: &Value, ok: bool) {
    let mut params = json!({"id": id, "ok": ok});
    if !ok {
        params["error"] = json!("server said no");
    }
    assert!(b.request(conn, "d", "channel.delivered", params).ok);
}

#[test]
fn an_inbound_message_is_acknowledged_only_once_it_is_durable() {
    let mut b = bench("allowlist");
    let a = adapter(&mut b);
    b.hold_persists = true;
    b.send_text(
        a,
        &RequestFrame::new("in", "channel.inbound", &dm("carol!c@host", "m1", "hi")).encode(),
    );
    assert!(b.responses(a).is_empty(), "the answer waits for the write");
    b.ack_persists();
    let res = b.responses(a);
    assert_eq!(res.len(), 1);
    assert_eq!(payload(&res[0])["accepted"], true);
    assert!(b.disk[STATE].contains("\"m1\""), "the message is in the state file");
}

#[test]
fn an_allowed_dm_goes_to_the_main_session_and_its_reply_is_delivered() {
    let mut b = bench("allowlist");
    let a = adapter(&mut b);
    let node = worker(&mut b);
    let answer = inbound(&mut b, a, dm("carol!c@host", "m1", "hello there"));
    assert_eq!(answer["sessionKey"], "agent:main:main");
    let (invoke, params) = runs(&mut b, node).remove(0);
    assert_eq!(params["message"], "hello there");
    finish(&mut b, node, &invoke, "hi carol");
    let out = events_named(&mut b, a, "channel.deliver");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["target"], "carol");
    assert_eq!(out[0]["text"], "hi carol");
    delivered(&mut b, a, &out[0]["id"], true);
    let state: Value = serde_json::from_str(&b.disk[STATE]).unwrap();
    assert_eq!(state["outbox"], json!([]));
    assert_eq!(state["inbox"], json!([]));
}

#[test]
fn a_repeated_message_id_is_taken_once() {
    let mut b = bench("allowlist");
    let a = adapter(&mut b);
    let node = worker(&mut b);
    inbound(&mut b, a, dm("carol!c@host", "m1", "once"));
    let again = inbound(&mut b, a, dm("carol!c@host", "m1", "once"));
    assert_eq!(again["duplicate"], true);
    assert_eq!(runs(&mut b, node).len(), 1);
}

#[test]
fn an_unknown_sender_gets_a_pairing_code_and_is_let_in_once_approved() {
    let mut b = bench("pairing");
    let a = adapter(&mut b);
    let node = worker(&mut b);
    let (res, events) = exchange(&mut b, a, "channel.inbound", dm("dave!d@host", "m1", "let me in"));
    let answer = payload(&res);
    assert_eq!(answer["accepted"], false);
    assert_eq!(answer["reason"], "pairing-requested");
    assert!(runs(&mut b, node).is_empty(), "the message is not processed");
    let out = named(&events, "channel.deliver");
    assert_eq!(out[0]["target"], "dave");
    let text = out[0]["text"].as_str().unwrap().to_owned();
    assert!(text.contains("openclaw pairing approve irc"), "{text}");
    delivered(&mut b, a, &out[0]["id"], true);
    // A second message while the request waits gets nothing more.
    let (res, events) = exchange(&mut b, a, "channel.inbound", dm("dave!d@host", "m2", "hello?"));
    assert_eq!(payload(&res)["reason"], "pairing-pending");
    assert!(named(&events, "channel.deliver").is_empty());

    let op = b.operator(&["operator.pairing", "operator.read"]);
    let list = payload(&b.request(op, "l", "channels.pairing.list", json!({"channel": "irc"})));
    let code = list["requests"][0]["requestId"].as_str().unwrap().to_owned();
    assert!(text.contains(&code));
    assert_eq!(list["requests"][0]["senderId"], "dave!d@host");
    let approved = b.request(
        op,
        "a",
        "channels.pairing.approve",
        json!({"channel": "irc", "accountId": "default", "requestId": code}),
    );
    assert_eq!(payload(&approved)["notification"], "sent");
    let note = events_named(&mut b, a, "channel.deliver");
    assert_eq!(note[0]["target"], "dave");
    inbound(&mut b, a, dm("dave!d@host", "m3", "now?"));
    assert_eq!(runs(&mut b, node).len(), 1, "an approved sender reaches the agent");
}

#[test]
fn a_group_message_needs_a_mention() {
    let mut b = bench("pairing");
    let a = adapter(&mut b);
    let node = worker(&mut b);
    let msg = |id: &str, mentioned: bool| {
        json!({"messageId": id, "chatType": "group", "peerId": "#room", "senderId": "eve!e@h",
               "text": "what time is it", "mentioned": mentioned})
    };
    assert_eq!(inbound(&mut b, a, msg("g1", false))["reason"], "not-mentioned");
    let answer = inbound(&mut b, a, msg("g2", true));
    assert_eq!(answer["sessionKey"], "agent:main:irc:group:#room");
    let (invoke, _) = runs(&mut b, node).remove(0);
    finish(&mut b, node, &invoke, "noon");
    assert_eq!(events_named(&mut b, a, "channel.deliver")[0]["target"], "#room");
}

#[test]
fn a_failing_delivery_is_retried_with_backoff_then_dead_lettered_without_blocking_others() {
    let mut b = bench("pairing");
    let a = adapter(&mut b);
    let op = b.operator(&["operator.write", "operator.read", "operator.admin"]);
    let send = |b: &mut Bench, to: &str, key: &str| {
        let res = b.request(
            op,
            "s",
            "send",
            json!({"channel": "irc", "to": to, "message": "note", "idempotencyKey": key}),
        );
        assert!(res.ok, "{:?}", res.error);
    };
    send(&mut b, "#poison", "k1");
    let first = events_named(&mut b, a, "channel.deliver");
    let poison = first[0]["id"].clone();
    let mut waits = Vec::new();
    for attempt in 1..=8 {
        delivered(&mut b, a, &poison, false);
        if attempt == 8 {
            break;
        }
        // Nothing goes out again before the pause is over.
        let mut waited = 0;
        loop {
            b.advance(250);
            waited += 250;
            let again = events_named(&mut b, a, "channel.deliver");
            if !again.is_empty() {
                assert_eq!(again[0]["attempt"], attempt + 1);
                break;
            }
            assert!(waited <= 61_000, "no retry after {waited} ms");
        }
        waits.push(waited);
        if attempt == 2 {
            // Meanwhile a healthy message is delivered at once.
            send(&mut b, "#fine", "k2");
            let fine = events_named(&mut b, a, "channel.deliver");
            assert_eq!(fine[0]["target"], "#fine");
            delivered(&mut b, a, &fine[0]["id"], true);
        }
    }
    assert_eq!(waits[..4], [1000, 2000, 4000, 8000]);
    let dead = payload(&b.request(op, "l", "channels.deadLetters.list", json!({})));
    assert_eq!(dead["count"], 1);
    assert_eq!(dead["deadLetters"][0]["target"], "#poison");
    assert!(dead["deadLetters"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("server said no"));
    let status = payload(&b.request(op, "st", "channels.status", json!({})));
    assert_eq!(status["channelAccounts"]["irc"][0]["deadLetters"], 1);
    // A retry hands it over again, from its first attempt.
    assert!(
        b.request(op, "r", "channels.deadLetters.retry", json!({"id": poison}))
            .ok
    );
    let again = events_named(&mut b, a, "channel.deliver");
    assert_eq!(again[0]["id"], poison);
    assert_eq!(again[0]["attempt"], 1);
}

#[test]
fn a_delivery_the_adapter_never_answers_is_handed_over_again() {
    let mut b = bench("pairing");
    let a = adapter(&mut b);
    let op = b.operator(&["operator.write"]);
    let res = b.request(
        op,
        "s",
        "send",
        json!({"channel": "irc", "to": "#x", "message": "m", "idempotencyKey": "k"}),
    );
    assert!(res.ok);
    assert_eq!(events_named(&mut b, a, "channel.deliver").len(), 1);
    b.advance(60_000);
    b.advance(1000);
    let again = events_named(&mut b, a, "channel.deliver");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["attempt"], 2);
}

#[test]
fn send_refuses_an_unknown_channel_and_an_empty_message() {
    let mut b = bench("pairing");
    let op = b.operator(&["operator.write"]);
    let res = b.request(
        op,
        "s",
        "send",
        json!({"channel": "smoke-signals", "to": "x", "message": "m", "idempotencyKey": "k"}),
    );
    assert_eq!(error_code(&res).1, "unsupported channel: smoke-signals");
    let res = b.request(
        op,
        "s",
        "send",
        json!({"channel": "irc", "to": "x", "idempotencyKey": "k"}),
    );
    assert_eq!(error_code(&res).1, "invalid send params: text or media is required");
}

#[test]
fn channels_status_shows_the_accounts_and_their_adapter() {
    let mut b = bench("pairing");
    let op = b.operator(&["operator.read"]);
    let before = payload(&b.request(op, "1", "channels.status", json!({})));
    assert_eq!(before["channelOrder"], json!(["irc"]));
    assert_eq!(before["channelAccounts"]["irc"][0]["connected"], false);
    assert_eq!(before["channelAccounts"]["irc"][0]["dmPolicy"], "pairing");
    let _a = adapter(&mut b);
    let after = payload(&b.request(op, "2", "channels.status", json!({})));
    assert_eq!(after["channelAccounts"]["irc"][0]["connected"], true);
    assert_eq!(after["channelAccounts"]["irc"][0]["healthState"], "healthy");
    assert_eq!(after["channels"]["irc"]["connected"], true, "the channel's own summary");
    let res = b.request(op, "3", "channels.status", json!({"channel": "fax"}));
    assert_eq!(error_code(&res).1, "unknown channel: fax");
}

#[test]
fn stop_tells_the_adapter_to_leave_and_start_to_come_back() {
    let mut b = bench("pairing");
    let a = adapter(&mut b);
    let op = b.operator(&["operator.admin"]);
    let res = b.request(op, "1", "channels.stop", json!({"channel": "irc"}));
    assert_eq!(payload(&res)["stopped"], true);
    assert_eq!(events_named(&mut b, a, "channel.control"), vec![json!({"run": false})]);
    let res = b.request(op, "2", "channels.start", json!({"channel": "irc"}));
    assert_eq!(payload(&res)["started"], true);
    assert_eq!(events_named(&mut b, a, "channel.control"), vec![json!({"run": true})]);
    let res = b.request(op, "3", "channels.logout", json!({"channel": "irc"}));
    assert_eq!(error_code(&res).1, "channel irc does not support logout");
}

#[test]
fn an_operator_cannot_pose_as_an_adapter() {
    let mut b = bench("pairing");
    let op = b.operator(&["operator.admin"]);
    let res = b.request(op, "1", "channel.inbound", dm("carol!c@host", "m1", "x"));
    assert!(!res.ok);
}

#[test]
fn a_message_accepted_before_a_crash_runs_again_and_is_answered_once() {
    let mut b = bench("allowlist");
    let a = adapter(&mut b);
    let node = worker(&mut b);
    inbound(&mut b, a, dm("carol!c@host", "m1", "survive this"));
    assert_eq!(runs(&mut b, node).len(), 1);
    // The process dies with the run on the worker: only the files are left.
    let state = b.disk[STATE].clone();
    let gw = Gateway::new(config_with(irc("allowlist")), Box::new(FakeEntropy(10)), START + 5000)
        .with_channels(Some(&state))
        .unwrap();
    let mut b = Bench::with_gateway(gw);
    b.now = START + 5000;
    let (node, mut again) = worker_with_runs(&mut b);
    let a = adapter(&mut b);
    assert_eq!(again.len(), 1);
    let (invoke, params) = again.remove(0);
    assert_eq!(params["message"], "survive this");
    finish(&mut b, node, &invoke, "survived");
    let out = events_named(&mut b, a, "channel.deliver");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["text"], "survived");
    delivered(&mut b, a, &out[0]["id"], true);
    // A second restart has nothing left to run or deliver.
    let state = b.disk[STATE].clone();
    let gw = Gateway::new(config_with(irc("allowlist")), Box::new(FakeEntropy(11)), START + 9000)
        .with_channels(Some(&state))
        .unwrap();
    let mut b = Bench::with_gateway(gw);
    let (_node, runs) = worker_with_runs(&mut b);
    let (_a, deliveries) = adapter_with_deliveries(&mut b);
    assert!(runs.is_empty());
    assert!(deliveries.is_empty());
}

#[test]
fn a_reply_waiting_at_a_crash_is_delivered_after_it() {
    let mut b = bench("allowlist");
    let op = b.operator(&["operator.write"]);
    let res = b.request(
        op,
        "s",
        "send",
        json!({"channel": "irc", "to": "#later", "message": "kept", "idempotencyKey": "k"}),
    );
    assert!(res.ok);
    let state = b.disk[STATE].clone();
    let gw = Gateway::new(config_with(irc("allowlist")), Box::new(FakeEntropy(10)), START)
        .with_channels(Some(&state))
        .unwrap();
    let mut b = Bench::with_gateway(gw);
    let (_a, out) = adapter_with_deliveries(&mut b);
    assert_eq!(out[0]["text"], "kept");
}

#[test]
fn a_corrupt_state_file_is_an_error() {
    let gw = Gateway::new(config_with(irc("allowlist")), Box::new(FakeEntropy(10)), START);
    assert!(gw.with_channels(Some("{not json")).is_err());
}

#[test]
fn a_reply_goes_to_the_adapter_only_once_it_is_durable() {
    let mut b = bench("allowlist");
    let a = adapter(&mut b);
    let node = worker(&mut b);
    inbound(&mut b, a, dm("carol!c@host", "m1", "hold on"));
    let (invoke, _) = runs(&mut b, node).remove(0);
    b.hold_persists = true;
    finish(&mut b, node, &invoke, "held");
    assert!(
        events_named(&mut b, a, "channel.deliver").is_empty(),
        "handed over before the write"
    );
    b.ack_persists();
    assert_eq!(events_named(&mut b, a, "channel.deliver")[0]["text"], "held");
}

fn telegram_adapter(b: &mut Bench) -> ConnId {
    let conn = b.ws(loopback(), &[]);
    let mut params = worker_params(&[]);
    params["caps"] = json!(["channel:telegram:default"]);
    let (res, _) = exchange(b, conn, "connect", params);
    assert!(res.ok);
    let (res, _) = exchange(b, conn, "channel.state", json!({"running": true, "connected": true}));
    assert!(res.ok);
    conn
}

#[test]
fn a_growing_reply_is_previewed_to_telegram_at_most_once_a_second() {
    let config = config_with(json!({"telegram": {"botToken": "1:x", "dmPolicy": "allowlist", "allowFrom": ["42"]}}));
    let mut b = Bench::with_gateway(Gateway::new(config, Box::new(FakeEntropy(9)), START));
    let a = telegram_adapter(&mut b);
    let node = worker(&mut b);
    let msg = json!({"messageId": "7", "chatType": "direct", "peerId": "42", "senderId": "42", "text": "tell me"});
    inbound(&mut b, a, msg);
    let (invoke, params) = runs(&mut b, node).remove(0);
    let run_id = params["runId"].as_str().unwrap().to_owned();
    let delta = |b: &mut Bench, text: &str| {
        let payload = json!({"runId": run_id, "delta": text}).to_string();
        let res = b.request(
            node,
            "d",
            "node.event",
            json!({"event": "agent.delta", "payloadJSON": payload}),
        );
        assert!(res.ok);
    };
    delta(&mut b, "one");
    assert!(
        events_named(&mut b, a, "channel.preview").is_empty(),
        "a short reply is not previewed"
    );
    b.advance(1000);
    delta(&mut b, " two");
    let first = events_named(&mut b, a, "channel.preview");
    assert_eq!(first, vec![json!({"runId": run_id, "target": "42", "text": "one two"})]);
    delta(&mut b, " three");
    assert!(
        events_named(&mut b, a, "channel.preview").is_empty(),
        "a second preview within a second"
    );
    b.advance(1000);
    delta(&mut b, " four");
    assert_eq!(
        events_named(&mut b, a, "channel.preview")[0]["text"],
        "one two three four"
    );
    finish(&mut b, node, &invoke, "one two three four five");
    let out = events_named(&mut b, a, "channel.deliver");
    assert_eq!(
        out[0]["runId"],
        run_id.as_str(),
        "the final delivery names the run its preview belongs to"
    );
    assert_eq!(out[0]["text"], "one two three four five");
}

const HOOK_TOKEN: &str = "hook-secret-0123456789";

fn hooks_bench() -> Bench {
    let doc = json!({"channels": irc("allowlist"), "hooks": {"enabled": true, "token": HOOK_TOKEN,
        "mappings": [{"match": {"path": "ci"}, "messageTemplate": "build {{status}}"}]}});
    let (settings, _) = clawgate_engine::settings::parse(&doc.to_string(), &|_: &str| None).unwrap();
    let mut config = GatewayConfig::with_token(TOKEN);
    config.apply_file(&settings);
    Bench::with_gateway(Gateway::new(config, Box::new(FakeEntropy(9)), START))
}

fn hook(b: &mut Bench, path: &str, body: Value) -> String {
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {HOOK_TOKEN}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    b.http(loopback(), &request).1
}

#[test]
fn a_hook_with_a_channel_and_a_target_delivers_the_reply_there() {
    let mut b = hooks_bench();
    let a = adapter(&mut b);
    let node = worker(&mut b);
    let raw = hook(
        &mut b,
        "/hooks/agent",
        json!({"message": "nightly report", "channel": "irc", "to": "carol"}),
    );
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    let (invoke, _) = runs(&mut b, node).remove(0);
    finish(&mut b, node, &invoke, "all green");
    let out = events_named(&mut b, a, "channel.deliver");
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0]["target"].as_str(), out[0]["text"].as_str()),
        (Some("carol"), Some("all green"))
    );
    let raw = hook(
        &mut b,
        "/hooks/agent",
        json!({"message": "x", "channel": "discord", "to": "carol"}),
    );
    assert!(raw.starts_with("HTTP/1.1 400"), "an unknown channel: {raw}");
}

#[test]
fn a_mapped_hook_delivers_to_where_the_agent_last_heard_from_someone() {
    let mut b = hooks_bench();
    let a = adapter(&mut b);
    let node = worker(&mut b);
    inbound(&mut b, a, dm("carol!c@host", "m1", "hello"));
    let (invoke, _) = runs(&mut b, node).remove(0);
    finish(&mut b, node, &invoke, "hi carol");
    let first = events_named(&mut b, a, "channel.deliver");
    delivered(&mut b, a, &first[0]["id"], true);
    hook(&mut b, "/hooks/ci", json!({"status": "failed"}));
    let (invoke, params) = runs(&mut b, node).remove(0);
    assert_eq!(params["message"], "build failed");
    finish(&mut b, node, &invoke, "the build failed");
    let out = events_named(&mut b, a, "channel.deliver");
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0]["target"].as_str(), out[0]["text"].as_str()),
        (Some("carol"), Some("the build failed"))
    );
}

#[test]
fn a_hook_reply_handed_over_again_after_a_restart_is_delivered_once() {
    let mut b = hooks_bench();
    let a = adapter(&mut b);
    let node = worker(&mut b);
    hook(
        &mut b,
        "/hooks/agent",
        json!({"message": "once", "channel": "irc", "to": "carol"}),
    );
    let (invoke, _) = runs(&mut b, node).remove(0);
    // The process dies after the delivery was written but before the hook state was.
    let hooks_before = b.disk["hooks/state.json"].clone();
    finish(&mut b, node, &invoke, "only once");
    assert_eq!(events_named(&mut b, a, "channel.deliver").len(), 1);
    let files: Vec<String> = b.transcripts.values().map(|lines| lines.join("\n")).collect();
    let gw = Gateway::new(b.gw.config().clone(), Box::new(FakeEntropy(10)), START + 5000)
        .with_transcripts(files)
        .with_channels(Some(&b.disk[STATE]))
        .unwrap()
        .with_hooks(Some(&hooks_before))
        .unwrap();
    let mut b = Bench::with_gateway(gw);
    let (_node, again) = worker_with_runs(&mut b);
    assert!(again.is_empty(), "the reply is in the transcript: nothing runs again");
    let (_a, deliveries) = adapter_with_deliveries(&mut b);
    assert_eq!(deliveries.len(), 1, "the one delivery, not two");
    assert_eq!(deliveries[0]["text"], "only once");
}
