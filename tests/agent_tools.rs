//! Tool-calling runs end to end: a gateway and a worker started from the same `openclaw.json`,
//! whose provider is a scripted model server the test runs (the OpenAI chat-completions API and
//! the Anthropic Messages API, as they are published, streamed). The model asks for tools; the
//! worker runs them through the gateway and sends the results back; the test checks the answer
//! and the exact follow-up requests.

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "tools-token";
const NOTE: &str = "Golden note: the capybara sleeps at noon.\nSecond line of note.txt.\n";

mod common;
use common::{bin, wait_until};

/// Ports of this binary's gateways: 24,000 to 27,999.
fn free_port() -> u16 {
    common::free_port(24_000)
}

type Recorded = Arc<Mutex<Vec<Value>>>;

/// Set once the scripted model answered 429 to a message asking it to be busy once.
static BUSY_SENT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Set when the scripted model could not write part of a reply: its reader went away.
static STREAM_DROPPED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The scripted model: a call is chosen by a marker in the last user text, and once tool
/// results are the last thing in the conversation it answers `Tool results: <contents> Done.`.
/// Tool calls stream the way OpenAI-compatible servers and Anthropic send them: the call's head
/// first, then its arguments in 7-character pieces.
#[derive(Clone, Copy, PartialEq)]
enum Api {
    OpenAi,
    Anthropic,
}

fn script(marker_text: &str) -> Vec<(&'static str, Value)> {
    if marker_text.contains("read note.txt and run echo two") {
        vec![
            ("read", json!({"path": "note.txt"})),
            ("exec", json!({"command": "echo two", "shell": true})),
        ]
    } else if marker_text.contains("read note.txt") || marker_text.contains("keep reading") {
        vec![("read", json!({"path": "note.txt"}))]
    } else if marker_text.contains("run echo hi") {
        vec![("exec", json!({"command": "echo hi", "shell": true}))]
    } else {
        vec![]
    }
}

/// What the conversation of `body` ends with: tool results (their texts), or the last user text.
fn last_turn(api: Api, body: &Value) -> (Vec<String>, String) {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let mut results = Vec::new();
    let mut user_text = String::new();
    match api {
        Api::OpenAi => {
            for m in messages.iter().rev() {
                if m["role"] == "tool" {
                    results.insert(0, m["content"].as_str().unwrap_or_default().to_owned());
                } else {
                    if m["role"] == "user" && results.is_empty() {
                        user_text = m["content"].as_str().unwrap_or_default().to_owned();
                    }
                    break;
                }
            }
        }
        Api::Anthropic => {
            if let Some(last) = messages.last() {
                for block in last["content"].as_array().into_iter().flatten() {
                    match block["type"].as_str() {
                        Some("tool_result") => results.push(block["content"].as_str().unwrap_or_default().to_owned()),
                        Some("text") => user_text = block["text"].as_str().unwrap_or_default().to_owned(),
                        _ => {}
                    }
                }
            }
        }
    }
    (results, user_text)
}

fn model_server(api: Api) -> (u16, Recorded) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Recorded::default();
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let record = record.clone();
            std::thread::spawn(move || answer(api, &mut stream, &record));
        }
    });
    (port, seen)
}

fn answer(api: Api, stream: &mut TcpStream, record: &Recorded) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0; length];
    if stream.read_exact(&mut body).is_err() {
        return;
    }
    let body: Value = serde_json::from_slice(&body).unwrap();
    let mut with_head = body.clone();
    with_head["_path"] = json!(head.lines().next().unwrap_or_default());
    with_head["_auth"] = json!(head
        .lines()
        .find_map(|l| l
            .strip_prefix("authorization:")
            .or_else(|| l.strip_prefix("x-api-key:")))
        .map(str::trim));
    record.lock().unwrap().push(with_head);
    if body.to_string().contains("busy once") && !BUSY_SENT.swap(true, std::sync::atomic::Ordering::SeqCst) {
        let error = r#"{"error":{"message":"rate limited","type":"rate_limit_error"}}"#;
        let _ = write!(
            stream,
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{error}",
            error.len()
        );
        return;
    }
    let (results, user_text) = last_turn(api, &body);
    let keeps_calling = body.to_string().contains("keep reading");
    let (text, calls) = if keeps_calling {
        (String::new(), script("keep reading"))
    } else if user_text.contains("reply slowly") {
        ("word ".repeat(200), vec![])
    } else if !results.is_empty() {
        (format!("Tool results: {} Done.", results.join(" | ")), vec![])
    } else {
        let calls = script(&user_text);
        let preamble = if calls.len() > 1 { "Checking both." } else { "" };
        (preamble.to_owned(), calls)
    };
    let _ =
        stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
    let slow = user_text.contains("reply slowly");
    let mut send = |event: &str| {
        let written = write!(stream, "{:x}\r\n{event}\r\n", event.len()).and_then(|()| stream.flush());
        if written.is_err() {
            STREAM_DROPPED.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        if slow {
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let pieces = |args: &Value| -> Vec<String> {
        let text = serde_json::to_string_pretty(args).unwrap();
        text.chars()
            .collect::<Vec<_>>()
            .chunks(7)
            .map(|c| c.iter().collect())
            .collect()
    };
    match api {
        Api::OpenAi => {
            let chunk = |delta: Value, finish: Option<&str>| {
                format!(
                    "data: {}\n\n",
                    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
                )
            };
            send(&chunk(json!({"role": "assistant", "content": ""}), None));
            for word in text.split_inclusive(' ') {
                send(&chunk(json!({"content": word}), None));
            }
            for (i, (name, args)) in calls.iter().enumerate() {
                let id = format!("call_{i:02}ab_cd{}", record.lock().unwrap().len());
                send(&chunk(
                    json!({"tool_calls": [{"index": i, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
                    None,
                ));
                for piece in pieces(args) {
                    send(&chunk(
                        json!({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}),
                        None,
                    ));
                }
            }
            let finish = if calls.is_empty() { "stop" } else { "tool_calls" };
            send(&chunk(json!({}), Some(finish)));
            send(&format!(
                "data: {}\n\n",
                json!({"choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 7, "total_tokens": 57}})
            ));
            send("data: [DONE]\n\n");
        }
        Api::Anthropic => {
            let event = |kind: &str, data: Value| format!("event: {kind}\ndata: {data}\n\n");
            send(&event(
                "message_start",
                json!({"type": "message_start", "message": {"id": "msg_1", "role": "assistant", "content": [], "usage": {"input_tokens": 50, "output_tokens": 1}}}),
            ));
            let mut index = 0;
            if !text.is_empty() {
                send(&event(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
                ));
                for word in text.split_inclusive(' ') {
                    send(&event(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": word}}),
                    ));
                }
                send(&event(
                    "content_block_stop",
                    json!({"type": "content_block_stop", "index": index}),
                ));
                index += 1;
            }
            for (i, (name, args)) in calls.iter().enumerate() {
                send(&event(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": format!("toolu_{i}"), "name": name, "input": {}}}),
                ));
                for piece in pieces(args) {
                    send(&event(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": piece}}),
                    ));
                }
                send(&event(
                    "content_block_stop",
                    json!({"type": "content_block_stop", "index": index}),
                ));
                index += 1;
            }
            let stop = if calls.is_empty() { "end_turn" } else { "tool_use" };
            send(&event(
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": 7}}),
            ));
            send(&event("message_stop", json!({"type": "message_stop"})));
        }
    }
    let _ = write!(stream, "0\r\n\r\n");
    let _ = stream.flush();
}

/// A gateway and a worker on `config` (written to the state directory's `openclaw.json`), with a
/// workspace holding `note.txt`.
struct Setup {
    gateway: Child,
    worker: Option<Child>,
    port: u16,
    state: PathBuf,
}

impl Setup {
    fn start(name: &str, config: impl FnOnce(&Path) -> Value) -> Setup {
        Setup::start_with(name, true, config)
    }

    /// With `own_worker`, a worker is started by hand beside the gateway's own.
    fn start_with(name: &str, own_worker: bool, config: impl FnOnce(&Path) -> Value) -> Setup {
        let state = std::env::temp_dir().join(format!("clawgate-agent-tools-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state);
        let workspace = state.join("workspace");
        std::fs::create_dir_all(&workspace).unwrap();
        std::fs::write(workspace.join("note.txt"), NOTE).unwrap();
        let doc = config(&workspace);
        std::fs::write(state.join("openclaw.json"), doc.to_string()).unwrap();
        let port = free_port();
        let gateway = bin()
            .args(["gateway", "run", "--port", &port.to_string(), "--token", TOKEN])
            .env("OPENCLAW_STATE_DIR", &state)
            .env_remove("OPENCLAW_CONFIG_PATH")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the gateway did not listen"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let worker = own_worker.then(|| {
            bin()
                .args(["agent", "--agent", "main", "--token", TOKEN])
                .arg("--url")
                .arg(format!("ws://127.0.0.1:{port}"))
                .env("OPENCLAW_STATE_DIR", &state)
                .env_remove("OPENCLAW_CONFIG_PATH")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        });
        let setup = Setup {
            gateway,
            worker,
            port,
            state,
        };
        let started = Instant::now();
        while !String::from_utf8_lossy(&setup.call("health", &json!({})).stdout).contains("\"online\"") {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the worker did not register"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        setup
    }

    fn call(&self, method: &str, params: &Value) -> Output {
        bin()
            .args(["call", method, "--params", &params.to_string()])
            .args(["--url", &format!("ws://127.0.0.1:{}", self.port), "--token", TOKEN])
            .output()
            .unwrap()
    }

    /// An `agent` run; the reply text or the error text.
    fn ask(&self, message: &str, run: &str) -> Result<String, String> {
        let out = self.call(
            "agent",
            &json!({"message": message, "agentId": "main", "idempotencyKey": run, "timeout": 60}),
        );
        if out.status.success() {
            let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
            Ok(reply["result"]["payloads"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        for child in self.worker.iter_mut().chain([&mut self.gateway]) {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

fn openai_config(model_port: u16, workspace: &Path, tools: Value) -> Value {
    json!({
        "agents": {"defaults": {"workspace": workspace, "model": {"primary": "fakeai/fake-golden"}}},
        "models": {"providers": {"fakeai": {
            "baseUrl": format!("http://127.0.0.1:{model_port}/v1"), "apiKey": "sk-local", "api": "openai-completions",
            "models": [{"id": "fake-golden", "name": "Fake Golden", "contextWindow": 128000, "maxTokens": 4096}],
        }}},
        "tools": tools,
    })
}

#[test]
fn a_read_the_model_asks_for_runs_in_the_workspace_and_its_result_goes_back_to_the_model() {
    let (model_port, seen) = model_server(Api::OpenAi);
    let setup = Setup::start("openai-read", |ws| openai_config(model_port, ws, json!({})));
    let reply = setup.ask("please read note.txt", "r1").unwrap();
    assert_eq!(reply, format!("Tool results: {NOTE} Done."));
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "one call, one follow-up");
    let first = &requests[0];
    assert_eq!(first["_auth"], "bearer sk-local");
    assert_eq!(
        (first["model"].as_str(), first["stream"].as_bool()),
        (Some("fake-golden"), Some(true))
    );
    assert_eq!(first["max_completion_tokens"], 4096);
    assert_eq!(first["tool_choice"], "auto");
    let offered: Vec<&str> = first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert!(offered.contains(&"read") && offered.contains(&"exec"), "{offered:?}");
    // The follow-up: the call with its id made plain and its arguments compact, then the result.
    let messages = requests[1]["messages"].as_array().unwrap();
    let n = messages.len();
    assert_eq!(
        messages[n - 2..],
        [
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call00abcd1", "type": "function", "function": {"name": "read", "arguments": "{\"path\":\"note.txt\"}"}}]}),
            json!({"role": "tool", "content": NOTE, "tool_call_id": "call00abcd1"}),
        ]
    );
    assert_eq!(
        messages[n - 3],
        json!({"role": "user", "content": "please read note.txt"})
    );
}

#[test]
fn two_calls_in_one_turn_run_in_order_and_the_preamble_is_kept_before_them() {
    let (model_port, seen) = model_server(Api::OpenAi);
    let setup = Setup::start("openai-two", |ws| openai_config(model_port, ws, json!({})));
    let reply = setup.ask("please read note.txt and run echo two", "r2").unwrap();
    assert_eq!(reply, format!("Checking both.\n\nTool results: {NOTE} | two Done."));
    let requests = seen.lock().unwrap().clone();
    let messages = requests[1]["messages"].as_array().unwrap();
    let n = messages.len();
    assert_eq!(messages[n - 3]["content"], "Checking both.");
    let calls: Vec<&str> = messages[n - 3]["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["function"]["name"].as_str())
        .collect();
    assert_eq!(calls, ["read", "exec"]);
    assert_eq!(
        (messages[n - 2]["role"].as_str(), messages[n - 1]["content"].as_str()),
        (Some("tool"), Some("two"))
    );
    // The history keeps the preamble as a message of its own, before the calls, as OpenClaw's
    // does (chat-two-calls/sender.chat.history.res.json); the last message is the rest.
    let sessions: Value = serde_json::from_slice(&setup.call("sessions.list", &json!({})).stdout).unwrap();
    let key = sessions["sessions"][0]["key"].as_str().unwrap().to_owned();
    let history: Value =
        serde_json::from_slice(&setup.call("chat.history", &json!({"sessionKey": key})).stdout).unwrap();
    let shape: Vec<(String, String)> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let first = &m["content"][0];
            let what = m["content"]
                .as_str()
                .or(first["text"].as_str())
                .or(first["name"].as_str())
                .unwrap_or_default();
            (
                m["role"].as_str().unwrap_or_default().to_owned(),
                what.chars().take(14).collect(),
            )
        })
        .collect();
    let expected = [
        ("user", "please read no"),
        ("assistant", "Checking both."),
        ("assistant", "read"),
        ("toolResult", "Golden note: t"),
        ("toolResult", "two"),
        ("assistant", "Tool results: "),
    ];
    let expected: Vec<(String, String)> = expected.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    assert_eq!(shape, expected);
}

#[test]
fn a_refused_tool_comes_back_to_the_model_as_an_error_and_the_run_goes_on() {
    let (model_port, seen) = model_server(Api::OpenAi);
    let setup = Setup::start("openai-refused", |ws| {
        openai_config(model_port, ws, json!({"deny": ["exec"]}))
    });
    let reply = setup.ask("please run echo hi", "r3").unwrap();
    let requests = seen.lock().unwrap().clone();
    let offered: Vec<&str> = requests[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert!(!offered.contains(&"exec"), "a denied tool is not offered: {offered:?}");
    let result = requests[1]["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(result["role"], "tool");
    let text = result["content"].as_str().unwrap();
    assert!(text.contains("exec") && text.contains("deny"), "{text}");
    assert!(reply.starts_with("Tool results: exec"), "{reply}");
}

#[test]
fn a_model_that_keeps_calling_tools_is_stopped_after_the_round_limit() {
    let (model_port, seen) = model_server(Api::OpenAi);
    let setup = Setup::start("openai-rounds", |ws| openai_config(model_port, ws, json!({})));
    let error = setup.ask("keep reading note.txt", "r4").unwrap_err();
    assert!(error.contains("still called tools after 12 rounds"), "{error}");
    assert_eq!(seen.lock().unwrap().len(), 13, "the first turn and twelve follow-ups");
}

#[test]
fn the_anthropic_messages_api_runs_tools_the_same_way() {
    let (model_port, seen) = model_server(Api::Anthropic);
    let setup = Setup::start("anthropic", |ws| {
        json!({
            "agents": {"defaults": {"workspace": ws, "model": "claude/claude-test"}},
            "models": {"providers": {"claude": {
                "baseUrl": format!("http://127.0.0.1:{model_port}"), "apiKey": "sk-ant-test", "api": "anthropic-messages",
                "models": [{"id": "claude-test"}],
            }}},
        })
    });
    let reply = setup.ask("please read note.txt and run echo two", "a1").unwrap();
    assert_eq!(reply, format!("Checking both.\n\nTool results: {NOTE} | two Done."));
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0]["_path"], "post /v1/messages http/1.1");
    assert_eq!(requests[0]["_auth"], "sk-ant-test");
    assert_eq!(requests[0]["max_tokens"], 4096);
    let tools: Vec<&str> = requests[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(tools.contains(&"read"), "{tools:?}");
    assert!(requests[0]["tools"][0]["input_schema"].is_object());
    let messages = requests[1]["messages"].as_array().unwrap();
    let n = messages.len();
    assert_eq!(messages[n - 2]["role"], "assistant");
    assert_eq!(
        messages[n - 2]["content"],
        json!([
            {"type": "text", "text": "Checking both."},
            {"type": "tool_use", "id": "toolu_0", "name": "read", "input": {"path": "note.txt"}},
            {"type": "tool_use", "id": "toolu_1", "name": "exec", "input": {"command": "echo two", "shell": true}},
        ])
    );
    assert_eq!(
        messages[n - 1],
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_0", "content": NOTE, "is_error": false},
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "two", "is_error": false},
        ]})
    );
}

#[test]
fn the_workspace_bootstrap_files_open_the_system_prompt_in_openclaws_order() {
    let (model_port, seen) = model_server(Api::OpenAi);
    let setup = Setup::start("bootstrap", |ws| {
        std::fs::write(ws.join("SOUL.md"), "You are Capy, calm and brief.\n").unwrap();
        std::fs::write(ws.join("AGENTS.md"), "Answer in one sentence.\n").unwrap();
        std::fs::write(ws.join("USER.md"), "  \n").unwrap();
        openai_config(model_port, ws, json!({}))
    });
    setup.ask("hello", "b1").unwrap();
    let requests = seen.lock().unwrap().clone();
    let system = &requests[0]["messages"][0];
    assert_eq!(system["role"], "system");
    let text = system["content"].as_str().unwrap();
    let agents = text.find("## AGENTS.md\n\nAnswer in one sentence.").expect(text);
    let soul = text.find("## SOUL.md\n\nYou are Capy, calm and brief.").expect(text);
    assert!(agents < soul, "AGENTS.md comes before SOUL.md: {text}");
    assert!(!text.contains("USER.md"), "a blank file is left out: {text}");
    assert_eq!(requests[0]["messages"][1], json!({"role": "user", "content": "hello"}));
}

/// The processes the gateway started.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(text.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
    }
    out
}

fn alive(pid: u32) -> bool {
    // A zombie (exited, not yet reaped) counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.split_whitespace().nth(2).is_none_or(|state| state != "Z"))
        .unwrap_or(false)
}

#[test]
fn the_gateway_runs_the_worker_of_an_agent_with_a_model_restarts_it_and_stops_it() {
    let (model_port, seen) = model_server(Api::OpenAi);
    let mut setup = Setup::start_with("managed", false, |ws| openai_config(model_port, ws, json!({})));
    assert_eq!(
        setup.ask("please read note.txt", "m1").unwrap(),
        format!("Tool results: {NOTE} Done.")
    );
    let workers = children_of(setup.gateway.id());
    assert_eq!(
        workers.len(),
        1,
        "one worker for the one agent with a model: {workers:?}"
    );
    let first = workers[0];
    let cmdline = std::fs::read_to_string(format!("/proc/{first}/cmdline")).unwrap();
    assert!(
        !cmdline.contains(TOKEN),
        "the token is not on the worker's command line"
    );

    // A worker that dies is started again, and runs go on.
    Command::new("kill")
        .args(["-KILL", &first.to_string()])
        .status()
        .unwrap();
    wait_until("a new worker", Duration::from_secs(10), || {
        let now = children_of(setup.gateway.id());
        now.len() == 1 && now[0] != first && alive(now[0])
    });
    let second = children_of(setup.gateway.id())[0];
    wait_until("the new worker to register", Duration::from_secs(10), || {
        String::from_utf8_lossy(&setup.call("health", &json!({})).stdout).contains("\"online\"")
    });
    assert_eq!(setup.ask("hello again", "m2").unwrap(), "");
    assert_eq!(seen.lock().unwrap().len(), 3);

    // At shutdown the gateway stops its worker.
    Command::new("kill")
        .args(["-TERM", &setup.gateway.id().to_string()])
        .status()
        .unwrap();
    let _ = setup.gateway.wait();
    wait_until("the worker to stop", Duration::from_secs(5), || !alive(second));
}

#[test]
fn a_worker_started_by_hand_stands_by_beside_the_gateways_own() {
    let (model_port, _seen) = model_server(Api::OpenAi);
    let setup = Setup::start_with("both", true, |ws| openai_config(model_port, ws, json!({})));
    wait_until("two workers", Duration::from_secs(10), || {
        let out = setup.call("health", &json!({}));
        let health: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        health["agents"][0]["workers"] == 2
    });
    let health: Value = serde_json::from_slice(&setup.call("health", &json!({})).stdout).unwrap();
    assert_eq!(health["agents"][0]["standbyWorkers"], 1);
    assert_eq!(
        setup.ask("please read note.txt", "h1").unwrap(),
        format!("Tool results: {NOTE} Done.")
    );
}

#[test]
fn the_tokens_a_run_used_are_counted_for_its_reply_its_session_and_the_day() {
    let (model_port, _seen) = model_server(Api::OpenAi);
    let setup = Setup::start("usage", |ws| {
        let mut config = openai_config(model_port, ws, json!({}));
        config["models"]["providers"]["fakeai"]["models"][0]["cost"] = json!({"input": 3.0, "output": 15.0});
        config
    });
    setup.ask("please read note.txt", "u1").unwrap();
    let payload = |out: Output| -> Value { serde_json::from_slice(&out.stdout).unwrap() };
    // Two turns of 50 input and 7 output tokens each, as the scripted model reports them.
    let cost = payload(setup.call("usage.cost", &json!({})));
    let today = cost["daily"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (today["input"].as_u64(), today["output"].as_u64()),
        (Some(100), Some(14))
    );
    let expected = (100.0 * 3.0 + 14.0 * 15.0) / 1e6;
    assert!(
        (today["totalCost"].as_f64().unwrap() - expected).abs() < 1e-12,
        "{today}"
    );
    let sessions = payload(setup.call("sessions.list", &json!({})));
    assert_eq!(sessions["sessions"][0]["totalTokens"], 114);
    let key = sessions["sessions"][0]["key"].as_str().unwrap().to_owned();
    let history = payload(setup.call("chat.history", &json!({"sessionKey": key})));
    let messages = history["messages"].as_array().unwrap().clone();
    let reply = messages.last().unwrap().clone();
    assert_eq!(reply["usage"]["output"], 14, "{reply}");
    // The history keeps the call and its result, as OpenClaw's does.
    let roles: Vec<&str> = messages.iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(roles, ["user", "assistant", "toolResult", "assistant"]);
    assert_eq!(
        messages[1]["content"][0],
        json!({"type": "toolCall", "id": "call_00ab_cd1", "name": "read", "arguments": {"path": "note.txt"}})
    );
    assert_eq!(
        (
            messages[2]["toolCallId"].as_str(),
            messages[2]["content"][0]["text"].as_str()
        ),
        (Some("call_00ab_cd1"), Some(NOTE))
    );
    // sessions.usage breaks the same run down by model, by tool and by day.
    let usage = payload(setup.call("sessions.usage", &json!({})));
    let aggregates = &usage["aggregates"];
    assert_eq!(aggregates["byModel"][0]["provider"], "fakeai", "{aggregates}");
    assert_eq!(aggregates["byModel"][0]["totals"]["totalTokens"], 114);
    assert_eq!(aggregates["tools"]["tools"], json!([{"name": "read", "count": 1}]));
    assert_eq!(aggregates["daily"][0]["tokens"], 114);
    assert_eq!(aggregates["messages"]["toolResults"], 1);
    assert_eq!(usage["sessions"][0]["usage"]["modelUsage"][0]["count"], 1);
}

#[test]
fn an_aborted_run_stops_the_model_stream_and_the_worker_takes_the_next_run() {
    let (model_port, _seen) = model_server(Api::OpenAi);
    let setup = Setup::start_with("abort", false, |ws| openai_config(model_port, ws, json!({})));
    let payload = |out: Output| -> Value { serde_json::from_slice(&out.stdout).unwrap_or(Value::Null) };
    let started = payload(setup.call(
        "chat.send",
        &json!({"sessionKey": "agent:main:slow", "message": "please reply slowly", "idempotencyKey": "slow-1"}),
    ));
    assert_eq!(started["status"], "started", "{started}");
    std::thread::sleep(Duration::from_millis(600));
    let aborted = payload(setup.call("chat.abort", &json!({"sessionKey": "agent:main:slow"})));
    assert_eq!(aborted["aborted"], true, "{aborted}");
    // Two hundred words at 50 ms would take ten seconds: the worker dropped the stream long before.
    wait_until("the model's stream to be dropped", Duration::from_secs(5), || {
        STREAM_DROPPED.load(std::sync::atomic::Ordering::SeqCst)
    });
    let t0 = Instant::now();
    assert_eq!(
        setup.ask("please read note.txt", "after-abort").unwrap(),
        format!("Tool results: {NOTE} Done.")
    );
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "the worker was free for the next run"
    );
}

#[test]
fn a_provider_that_answers_429_is_asked_again_after_its_retry_after() {
    let (model_port, seen) = model_server(Api::OpenAi);
    let setup = Setup::start_with("busy", false, |ws| openai_config(model_port, ws, json!({})));
    setup.ask("please be busy once, then read note.txt", "busy-1").unwrap();
    assert!(BUSY_SENT.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(
        seen.lock().unwrap().len(),
        3,
        "the refused request, its retry, and the follow-up"
    );
}
