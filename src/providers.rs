//! The model providers the worker talks to: one streamed turn of the OpenAI chat-completions API
//! or of the Anthropic Messages API, with the tools the run may call. A turn yields the reply
//! text (streamed to the gateway as it comes), the tool calls the model asked for, and the token
//! usage the provider reported.

use clawgate_engine::models::ProviderApi;
use serde_json::{json, Value};
use std::io::Read;
use std::time::Duration;

/// Where a turn goes.
pub struct Endpoint {
    /// The provider's id in the configuration (for the run's events).
    pub provider: String,
    pub api: ProviderApi,
    pub base_url: String,
    pub api_key: Option<String>,
    pub model: String,
    /// The most output tokens a turn may produce (the model's `maxTokens`).
    pub max_tokens: Option<u64>,
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The provider's id of the call.
    pub id: String,
    pub name: String,
    /// The arguments, parsed; `Err` holds text that was not a JSON object.
    pub arguments: Result<serde_json::Map<String, Value>, String>,
}

impl ToolCall {
    /// The arguments as compact JSON (what goes back to the provider).
    pub fn arguments_text(&self) -> String {
        match &self.arguments {
            Ok(map) => Value::Object(map.clone()).to_string(),
            Err(raw) => raw.clone(),
        }
    }
}

/// One turn of a conversation, in no provider's shape.
#[derive(Debug, Clone)]
pub enum Item {
    User(String),
    Assistant {
        text: String,
        calls: Vec<ToolCall>,
    },
    ToolResult {
        call_id: String,
        content: String,
        is_error: bool,
    },
}

/// Tokens a turn used, as the provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
}

/// What a turn produced.
#[derive(Debug, Default)]
pub struct Turn {
    pub text: String,
    pub calls: Vec<ToolCall>,
    pub usage: Usage,
}

/// Why a turn failed.
pub enum TurnError {
    /// The provider failed, or could not be reached; the message says which and why.
    Provider(String),
    /// Sending text to the gateway failed.
    Gateway(clawgate_client::Error),
    /// The run was cancelled while the model streamed; the stream was dropped.
    Cancelled,
}

/// Why the receiver of streamed text wants the turn to stop.
pub enum Stop {
    Gateway(clawgate_client::Error),
    Cancelled,
}

impl From<Stop> for TurnError {
    fn from(stop: Stop) -> Self {
        match stop {
            Stop::Gateway(e) => TurnError::Gateway(e),
            Stop::Cancelled => TurnError::Cancelled,
        }
    }
}

/// Where streamed text goes.
pub type Sink<'a> = dyn FnMut(&str) -> Result<(), Stop> + 'a;

/// The certificates the system trusts (`SSL_CERT_FILE` / `SSL_CERT_DIR` first, then the
/// distribution's bundle); Mozilla's list where the system has none.
fn system_roots() -> ureq::tls::RootCerts {
    let found = rustls_native_certs::load_native_certs();
    let certs: Vec<ureq::tls::Certificate<'static>> = found
        .certs
        .iter()
        .map(|der| ureq::tls::Certificate::from_der(der.as_ref()).to_owned())
        .collect();
    if certs.is_empty() {
        ureq::tls::RootCerts::WebPki
    } else {
        ureq::tls::RootCerts::new_with_certs(&certs)
    }
}

/// An HTTP client for a chat network's API: the system's trust store, a 15 s connection timeout,
/// `global` for a whole call (a long poll included), and failed statuses read like any answer.
pub fn network_agent(global: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .tls_config(ureq::tls::TlsConfig::builder().root_certs(system_roots()).build())
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_global(Some(global))
        .http_status_as_error(false)
        .build()
        .into()
}

/// The HTTP client of the model servers: TLS with the system's trust store (so `https://`
/// providers work), connection and first-byte timeouts, and a stream body read as it arrives.
/// Made once per worker: loading the trust store and the connection pool serve every run.
fn http_agent() -> &'static ureq::Agent {
    static AGENT: std::sync::OnceLock<ureq::Agent> = std::sync::OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::Agent::config_builder()
            .tls_config(ureq::tls::TlsConfig::builder().root_certs(system_roots()).build())
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_recv_response(Some(Duration::from_secs(300)))
            // A failed status is read like any answer, for its message.
            .http_status_as_error(false)
            .build()
            .into()
    })
}

/// Longest line of a model server's event stream (a chunk of a few tokens is far shorter).
const MAX_SSE_LINE: usize = 1024 * 1024;

/// Output tokens asked for when the model's `maxTokens` is not configured (the Messages API
/// requires a number).
const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Tries made for a request the provider answers with 429 or a 5xx; the pause between them
/// follows `Retry-After`, else doubles from one second, and is at most 30 seconds.
const ATTEMPTS: u32 = 3;

/// One streamed turn: `system` and `items` are the conversation, `tools` the function schemas
/// (`{name, description, parameters}`) the model may call.
pub fn turn(
    endpoint: &Endpoint,
    system: Option<&str>,
    items: &[Item],
    tools: &[Value],
    sink: &mut Sink<'_>,
) -> Result<Turn, TurnError> {
    let (url, body) = match endpoint.api {
        ProviderApi::OpenAiCompletions => (
            format!("{}/chat/completions", endpoint.base_url.trim_end_matches('/')),
            openai_body(endpoint, system, items, tools),
        ),
        ProviderApi::AnthropicMessages => {
            let base = endpoint.base_url.trim_end_matches('/');
            let url = if base.ends_with("/v1") {
                format!("{base}/messages")
            } else {
                format!("{base}/v1/messages")
            };
            (url, anthropic_body(endpoint, system, items, tools))
        }
    };
    let body = body.to_string();
    let failed = |e: &dyn std::fmt::Display| TurnError::Provider(format!("model server {url}: {e}"));
    let mut pause = Duration::from_secs(1);
    let mut attempt = 1;
    let mut response = loop {
        let mut request = http_agent()
            .post(&url)
            .header("Content-Type", "application/json")
            .header("Accept", "text/event-stream");
        match (endpoint.api, &endpoint.api_key) {
            (ProviderApi::OpenAiCompletions, Some(key)) => {
                request = request.header("Authorization", &format!("Bearer {key}"));
            }
            (ProviderApi::AnthropicMessages, key) => {
                request = request.header("anthropic-version", "2023-06-01");
                if let Some(key) = key {
                    request = request.header("x-api-key", key);
                }
            }
            (ProviderApi::OpenAiCompletions, None) => {}
        }
        let response = request.send(body.as_bytes()).map_err(|e| failed(&e))?;
        let status = response.status().as_u16();
        let retryable = status == 429 || (500..600).contains(&status);
        if !retryable || attempt >= ATTEMPTS {
            break response;
        }
        let wait = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(pause, Duration::from_secs)
            .min(Duration::from_secs(30));
        std::thread::sleep(wait);
        pause = (pause * 2).min(Duration::from_secs(30));
        attempt += 1;
    };
    let status = response.status().as_u16();
    let mut reader = response.body_mut().as_reader();
    if status != 200 {
        let mut text = Vec::new();
        let _ = reader.by_ref().take(4096).read_to_end(&mut text);
        let text = String::from_utf8_lossy(&text);
        // Both APIs put a readable message at error.message.
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| text.trim().to_owned());
        return Err(TurnError::Provider(format!(
            "model server answered {status}: {message}"
        )));
    }
    let mut decoder = clawgate_proto::http::sse::Decoder::with_max_line(MAX_SSE_LINE);
    let mut state = match endpoint.api {
        ProviderApi::OpenAiCompletions => Stream::OpenAi(OpenAiStream::default()),
        ProviderApi::AnthropicMessages => Stream::Anthropic(AnthropicStream::default()),
    };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = reader.read(&mut buf).map_err(|e| failed(&e))?;
        if n == 0 {
            break;
        }
        let mut done = false;
        for event in decoder.feed(&buf[..n]).map_err(|e| failed(&e))? {
            let data = event.data.trim();
            if data == "[DONE]" {
                done = true;
                break;
            }
            let Ok(chunk) = serde_json::from_str::<Value>(data) else {
                continue;
            };
            if let Some(message) = chunk["error"]["message"].as_str() {
                return Err(TurnError::Provider(format!("model server: {message}")));
            }
            let delta = match &mut state {
                Stream::OpenAi(s) => s.feed(&chunk),
                Stream::Anthropic(s) => {
                    let (delta, end) = s.feed(&chunk);
                    done |= end;
                    delta
                }
            };
            if let Some(delta) = delta.filter(|d| !d.is_empty()) {
                sink(&delta)?;
            }
        }
        if done {
            break;
        }
    }
    Ok(match state {
        Stream::OpenAi(s) => s.finish(),
        Stream::Anthropic(s) => s.finish(),
    })
}

enum Stream {
    OpenAi(OpenAiStream),
    Anthropic(AnthropicStream),
}

fn parse_arguments(text: &str) -> Result<serde_json::Map<String, Value>, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_str::<Value>(trimmed) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(text.to_owned()),
    }
}

// ----- OpenAI chat completions ---------------------------------------------------------------

/// OpenAI-compatible servers want call ids of letters and digits only (some reject others), so
/// the id goes back without them, as OpenClaw sends it.
fn openai_call_id(id: &str) -> String {
    id.chars().filter(char::is_ascii_alphanumeric).collect()
}

fn openai_body(endpoint: &Endpoint, system: Option<&str>, items: &[Item], tools: &[Value]) -> Value {
    let mut messages: Vec<Value> = system
        .map(|s| json!({"role": "system", "content": s}))
        .into_iter()
        .collect();
    for item in items {
        messages.push(match item {
            Item::User(text) => json!({"role": "user", "content": text}),
            Item::Assistant { text, calls } if calls.is_empty() => json!({"role": "assistant", "content": text}),
            Item::Assistant { text, calls } => json!({
                "role": "assistant",
                "content": if text.is_empty() { Value::Null } else { json!(text) },
                "tool_calls": calls.iter().map(|c| json!({
                    "id": openai_call_id(&c.id), "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments_text()},
                })).collect::<Vec<_>>(),
            }),
            Item::ToolResult { call_id, content, .. } => {
                json!({"role": "tool", "content": content, "tool_call_id": openai_call_id(call_id)})
            }
        });
    }
    let mut body = json!({
        "model": endpoint.model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if !tools.is_empty() {
        body["tools"] = json!(tools
            .iter()
            .map(|t| json!({"type": "function", "function": t}))
            .collect::<Vec<_>>());
        body["tool_choice"] = json!("auto");
    }
    if let Some(max) = endpoint.max_tokens {
        body["max_completion_tokens"] = json!(max);
    }
    body
}

/// Tool calls arrive in pieces: the first piece of a call has its index, id and name, later ones
/// add to its arguments by index.
#[derive(Default)]
struct OpenAiStream {
    text: String,
    calls: Vec<(u64, String, String, String)>,
    usage: Usage,
}

impl OpenAiStream {
    fn feed(&mut self, chunk: &Value) -> Option<String> {
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Usage {
                input: u["prompt_tokens"].as_u64().unwrap_or(0),
                output: u["completion_tokens"].as_u64().unwrap_or(0),
            };
        }
        let delta = &chunk["choices"][0]["delta"];
        if let Some(pieces) = delta["tool_calls"].as_array() {
            for piece in pieces {
                let index = piece["index"].as_u64().unwrap_or(self.calls.len() as u64);
                let at = match self.calls.iter().position(|c| c.0 == index) {
                    Some(at) => at,
                    None => {
                        self.calls.push((index, String::new(), String::new(), String::new()));
                        self.calls.len() - 1
                    }
                };
                let call = &mut self.calls[at];
                if let Some(id) = piece["id"].as_str() {
                    call.1 = id.to_owned();
                }
                if let Some(name) = piece["function"]["name"].as_str() {
                    call.2.push_str(name);
                }
                if let Some(args) = piece["function"]["arguments"].as_str() {
                    call.3.push_str(args);
                }
            }
        }
        let text = delta["content"].as_str()?;
        self.text.push_str(text);
        Some(text.to_owned())
    }

    fn finish(self) -> Turn {
        let calls = self
            .calls
            .into_iter()
            .enumerate()
            .map(|(i, (_, id, name, args))| ToolCall {
                id: if id.is_empty() { format!("call_{i}") } else { id },
                name,
                arguments: parse_arguments(&args),
            })
            .collect();
        Turn {
            text: self.text,
            calls,
            usage: self.usage,
        }
    }
}

// ----- Anthropic Messages --------------------------------------------------------------------

fn anthropic_body(endpoint: &Endpoint, system: Option<&str>, items: &[Item], tools: &[Value]) -> Value {
    let mut messages: Vec<Value> = Vec::new();
    for item in items {
        let (role, block) = match item {
            Item::User(text) => ("user", vec![json!({"type": "text", "text": text})]),
            Item::Assistant { text, calls } => {
                let mut blocks = Vec::new();
                if !text.is_empty() {
                    blocks.push(json!({"type": "text", "text": text}));
                }
                for c in calls {
                    let input = c.arguments.clone().unwrap_or_default();
                    blocks.push(json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}));
                }
                ("assistant", blocks)
            }
            Item::ToolResult {
                call_id,
                content,
                is_error,
            } => (
                "user",
                vec![json!({"type": "tool_result", "tool_use_id": call_id, "content": content, "is_error": is_error})],
            ),
        };
        // Consecutive turns of one role are one message (tool results of one turn go together).
        match messages.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(content) = last["content"].as_array_mut() {
                    content.extend(block);
                }
            }
            _ => messages.push(json!({"role": role, "content": block})),
        }
    }
    let mut body = json!({
        "model": endpoint.model,
        "max_tokens": endpoint.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        "messages": messages,
        "stream": true,
    });
    if let Some(system) = system {
        body["system"] = json!(system);
    }
    if !tools.is_empty() {
        body["tools"] = json!(tools
            .iter()
            .map(|t| json!({"name": t["name"], "description": t["description"], "input_schema": t["parameters"]}))
            .collect::<Vec<_>>());
    }
    body
}

/// Content blocks arrive as start, deltas and stop, by index: text, or a `tool_use` whose input
/// comes as pieces of JSON.
#[derive(Default)]
struct AnthropicStream {
    text: String,
    blocks: Vec<Block>,
    usage: Usage,
}

/// A content block being received: its index, `(id, name)` when it is a `tool_use`, and the
/// pieces of its input so far.
type Block = (u64, Option<(String, String)>, String);

impl AnthropicStream {
    /// The text delta in `chunk`, and whether the message ended.
    fn feed(&mut self, chunk: &Value) -> (Option<String>, bool) {
        match chunk["type"].as_str().unwrap_or_default() {
            "message_start" => {
                let u = &chunk["message"]["usage"];
                self.usage.input = u["input_tokens"].as_u64().unwrap_or(0);
                self.usage.output = u["output_tokens"].as_u64().unwrap_or(0);
            }
            "content_block_start" => {
                let block = &chunk["content_block"];
                let index = chunk["index"].as_u64().unwrap_or(0);
                let tool = (block["type"] == "tool_use").then(|| {
                    (
                        block["id"].as_str().unwrap_or_default().to_owned(),
                        block["name"].as_str().unwrap_or_default().to_owned(),
                    )
                });
                self.blocks.push((index, tool, String::new()));
            }
            "content_block_delta" => {
                let index = chunk["index"].as_u64().unwrap_or(0);
                let delta = &chunk["delta"];
                match delta["type"].as_str().unwrap_or_default() {
                    "text_delta" => {
                        let text = delta["text"].as_str().unwrap_or_default();
                        self.text.push_str(text);
                        return (Some(text.to_owned()), false);
                    }
                    "input_json_delta" => {
                        if let Some(b) = self.blocks.iter_mut().rev().find(|b| b.0 == index) {
                            b.2.push_str(delta["partial_json"].as_str().unwrap_or_default());
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(out) = chunk["usage"]["output_tokens"].as_u64() {
                    self.usage.output = out;
                }
            }
            "message_stop" => return (None, true),
            _ => {}
        }
        (None, false)
    }

    fn finish(self) -> Turn {
        let calls = self
            .blocks
            .into_iter()
            .filter_map(|(_, tool, input)| {
                tool.map(|(id, name)| ToolCall {
                    id,
                    name,
                    arguments: parse_arguments(&input),
                })
            })
            .collect();
        Turn {
            text: self.text,
            calls,
            usage: self.usage,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_tool_calls_are_put_together_from_their_pieces() {
        let mut s = OpenAiStream::default();
        let pieces = [
            json!({"choices": [{"delta": {"role": "assistant", "content": ""}}]}),
            json!({"choices": [{"delta": {"content": "Checking both."}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "call_ab12", "type": "function", "function": {"name": "read", "arguments": ""}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"path\": "}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"index": 1, "id": "call_cd34", "function": {"name": "exec", "arguments": "{\"command\":"}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "\"note.txt\"}"}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"index": 1, "function": {"arguments": "\"echo two\"}"}}]}}]}),
            json!({"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}),
            json!({"choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 12}}),
        ];
        for p in &pieces {
            s.feed(p);
        }
        let turn = s.finish();
        assert_eq!(turn.text, "Checking both.");
        assert_eq!(turn.usage, Usage { input: 40, output: 12 });
        assert_eq!(turn.calls.len(), 2);
        assert_eq!(
            (turn.calls[0].id.as_str(), turn.calls[0].name.as_str()),
            ("call_ab12", "read")
        );
        assert_eq!(turn.calls[0].arguments_text(), r#"{"path":"note.txt"}"#);
        assert_eq!(turn.calls[1].arguments_text(), r#"{"command":"echo two"}"#);
    }

    #[test]
    fn openai_follow_ups_carry_the_calls_and_their_results_with_plain_ids() {
        let endpoint = Endpoint {
            provider: "p".into(),
            api: ProviderApi::OpenAiCompletions,
            base_url: String::new(),
            api_key: None,
            model: "m".into(),
            max_tokens: None,
        };
        let call = ToolCall {
            id: "call_75_58".into(),
            name: "read".into(),
            arguments: parse_arguments(r#"{"path": "note.txt"}"#),
        };
        let items = [
            Item::User("please read note.txt".into()),
            Item::Assistant {
                text: String::new(),
                calls: vec![call],
            },
            Item::ToolResult {
                call_id: "call_75_58".into(),
                content: "Golden note".into(),
                is_error: false,
            },
        ];
        let body = openai_body(&endpoint, None, &items, &[]);
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": "please read note.txt"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call7558", "type": "function", "function": {"name": "read", "arguments": "{\"path\":\"note.txt\"}"}}]},
                {"role": "tool", "content": "Golden note", "tool_call_id": "call7558"},
            ])
        );
    }

    #[test]
    fn anthropic_tool_use_blocks_are_put_together_and_results_go_back_in_one_user_turn() {
        let mut s = AnthropicStream::default();
        let events = [
            json!({"type": "message_start", "message": {"usage": {"input_tokens": 30, "output_tokens": 1}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me look."}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "read", "input": {}}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"path\":"}}),
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"a.txt\"}"}}),
            json!({"type": "content_block_stop", "index": 1}),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 20}}),
        ];
        for e in &events {
            assert!(!s.feed(e).1);
        }
        assert!(s.feed(&json!({"type": "message_stop"})).1);
        let turn = s.finish();
        assert_eq!(turn.text, "Let me look.");
        assert_eq!(turn.usage, Usage { input: 30, output: 20 });
        assert_eq!(turn.calls[0].arguments_text(), r#"{"path":"a.txt"}"#);
        let endpoint = Endpoint {
            provider: "p".into(),
            api: ProviderApi::AnthropicMessages,
            base_url: String::new(),
            api_key: None,
            model: "claude".into(),
            max_tokens: None,
        };
        let items = [
            Item::User("hi".into()),
            Item::Assistant {
                text: turn.text.clone(),
                calls: turn.calls.clone(),
            },
            Item::ToolResult {
                call_id: "toolu_1".into(),
                content: "A".into(),
                is_error: false,
            },
        ];
        let body = anthropic_body(&endpoint, Some("be brief"), &items, &[]);
        assert_eq!(body["system"], "be brief");
        assert_eq!(body["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(
            body["messages"][1]["content"][1],
            json!({"type": "tool_use", "id": "toolu_1", "name": "read", "input": {"path": "a.txt"}})
        );
        assert_eq!(
            body["messages"][2],
            json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "A", "is_error": false}]})
        );
    }
}
