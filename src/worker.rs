//! `clawgate agent`: the reference agent worker. It connects as a `node` serving one agent,
//! takes runs from `node.invoke.request` events, streams the reply with `node.event`
//! (`agent.delta`) and ends each run with `node.invoke.result`.
//!
//! Backends: `echo` sends the message back word by word; `openai` streams a completion from an
//! OpenAI-compatible `/v1/chat/completions` (`http://` or `https://`, trusting the system's
//! certificate store), with the session's history as context.

use clawgate_client::{Error as CallError, Session, Target};
use clawgate_engine::agents::{DELTA_EVENT, WORKER_CAP_PREFIX, WORKER_COMMAND};
use clawgate_proto::ErrorCode;
use serde_json::{json, Value};
use std::io::Read;
use std::time::Duration;

/// Where replies come from.
pub enum Backend {
    /// The message back, one word per delta, `delay` between words; with `tool`, each run first
    /// calls that tool (with no arguments but `path: "."`) through the gateway.
    Echo { delay: Duration, tool: Option<String> },
    /// An OpenAI-compatible server.
    OpenAi {
        base_url: String,
        model: String,
        api_key: Option<String>,
    },
}

/// A run as the gateway hands it over.
struct Job {
    invoke_id: String,
    node_id: String,
    run_id: String,
    message: String,
    history: Vec<Value>,
    /// The caller's system prompt, put before the conversation.
    extra_system_prompt: Option<String>,
    /// The upstream model the caller asked for, instead of the worker's own.
    model: Option<String>,
}

fn job_of(payload: &Value) -> Result<Job, (String, String, String)> {
    let invoke_id = payload["id"].as_str().unwrap_or_default().to_owned();
    let node_id = payload["nodeId"].as_str().unwrap_or_default().to_owned();
    let fail = |why: String| (invoke_id.clone(), node_id.clone(), why);
    if payload["command"] != WORKER_COMMAND {
        return Err(fail(format!("unsupported command {}", payload["command"])));
    }
    let params: Value = payload["paramsJSON"]
        .as_str()
        .and_then(|t| serde_json::from_str(t).ok())
        .ok_or_else(|| fail("paramsJSON is missing or not JSON".to_owned()))?;
    Ok(Job {
        run_id: params["runId"].as_str().unwrap_or(&invoke_id).to_owned(),
        message: params["message"].as_str().unwrap_or_default().to_owned(),
        history: params["history"].as_array().cloned().unwrap_or_default(),
        extra_system_prompt: params["extraSystemPrompt"].as_str().map(str::to_owned),
        model: params["model"].as_str().map(str::to_owned),
        invoke_id,
        node_id,
    })
}

/// Serves `agent` until the process is stopped, reconnecting with a growing pause (1 s to 30 s)
/// when the gateway goes away.
pub fn run(mut target: Target, agent: &str, backend: &Backend) -> Result<(), String> {
    target.node = Some((
        vec![format!("{WORKER_CAP_PREFIX}{agent}")],
        vec![WORKER_COMMAND.to_owned()],
    ));
    let mut pause = Duration::from_secs(1);
    loop {
        match Session::connect(&target) {
            Ok(mut session) => {
                eprintln!("clawgate agent: serving agent {agent} at {}", target.url);
                pause = Duration::from_secs(1);
                match serve(&mut session, backend) {
                    Ok(()) => return Ok(()),
                    Err(e) => eprintln!("clawgate agent: connection lost: {}", describe(&e)),
                }
            }
            Err(CallError::Gateway(e)) if e.code == ErrorCode::InvalidRequest || e.code == ErrorCode::NotPaired => {
                return Err(format!("the gateway refused the worker: {}", e.message));
            }
            Err(e) => eprintln!("clawgate agent: cannot connect: {}", describe(&e)),
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

fn describe(e: &CallError) -> String {
    match e {
        CallError::Io(m) => m.clone(),
        CallError::Gateway(e) => format!("{}: {}", e.code, e.message),
    }
}

fn serve(session: &mut Session, backend: &Backend) -> Result<(), CallError> {
    loop {
        let event = session.next_event()?;
        if event.event != "node.invoke.request" {
            continue;
        }
        let payload: Value = event
            .payload
            .as_deref()
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or(Value::Null);
        let job = match job_of(&payload) {
            Ok(job) => job,
            Err((id, node_id, why)) => {
                session.send(
                    "node.invoke.result",
                    &json!({"id": id, "nodeId": node_id, "ok": false, "error": {"code": "UNSUPPORTED", "message": why}}),
                )?;
                continue;
            }
        };
        if let Backend::Echo { tool: Some(tool), .. } = backend {
            // The gateway decides and runs it under the run's policy; the requester sees `tool`
            // events. A refusal is part of the answer, not a failure of the run.
            let params = json!({"name": tool, "args": {"path": "."}, "runId": job.run_id});
            if let Err(e) = session.call("tools.invoke", &params) {
                match e {
                    CallError::Io(_) => return Err(e),
                    CallError::Gateway(g) => eprintln!("clawgate agent: tool {tool}: {}", g.message),
                }
            }
        }
        let mut sink = |delta: &str| -> Result<(), CallError> {
            let payload = json!({"runId": job.run_id, "delta": delta});
            session.send(
                "node.event",
                &json!({"event": DELTA_EVENT, "payloadJSON": payload.to_string()}),
            )
        };
        let outcome = match backend {
            Backend::Echo { delay, .. } => echo(&job.message, *delay, &mut sink),
            Backend::OpenAi {
                base_url,
                model,
                api_key,
            } => openai(base_url, model, api_key.as_deref(), &job, &mut sink),
        };
        let result = match outcome {
            Ok(text) => json!({
                "id": job.invoke_id, "nodeId": job.node_id, "ok": true,
                "payloadJSON": json!({"text": text}).to_string(),
            }),
            Err(Failure::Backend(why)) => json!({
                "id": job.invoke_id, "nodeId": job.node_id, "ok": false,
                "error": {"code": "BACKEND_FAILED", "message": why},
            }),
            Err(Failure::Gateway(e)) => return Err(e),
        };
        session.send("node.invoke.result", &result)?;
    }
}

/// Why a run failed.
enum Failure {
    /// The model backend failed: the run ends with this error.
    Backend(String),
    /// The gateway connection failed.
    Gateway(CallError),
}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Self {
        Failure::Gateway(e)
    }
}

fn echo(
    message: &str,
    delay: Duration,
    sink: &mut dyn FnMut(&str) -> Result<(), CallError>,
) -> Result<String, Failure> {
    let mut text = String::new();
    for (i, word) in message.split_whitespace().enumerate() {
        if i > 0 && !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let delta = if i == 0 { word.to_owned() } else { format!(" {word}") };
        sink(&delta)?;
        text.push_str(&delta);
    }
    Ok(text)
}

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

/// The HTTP client of the model server: TLS with the system's trust store (so `https://`
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

fn openai(
    base_url: &str,
    model: &str,
    api_key: Option<&str>,
    job: &Job,
    sink: &mut dyn FnMut(&str) -> Result<(), CallError>,
) -> Result<String, Failure> {
    let mut messages: Vec<Value> = job
        .extra_system_prompt
        .iter()
        .map(|p| json!({"role": "system", "content": p}))
        .collect();
    messages.extend(
        job.history
            .iter()
            .filter(|m| m["role"] == "user" || m["role"] == "assistant")
            .filter(|m| m["content"].as_str().is_some_and(|c| !c.is_empty()))
            .map(|m| json!({"role": m["role"], "content": m["content"]})),
    );
    messages.push(json!({"role": "user", "content": job.message}));
    let model = job.model.as_deref().unwrap_or(model);
    let body = json!({"model": model, "messages": messages, "stream": true}).to_string();
    let url = format!("{}/chat/completions", base_url.trim_end_matches('/'));
    let backend = |e: &dyn std::fmt::Display| Failure::Backend(format!("model server {url}: {e}"));
    let mut request = http_agent()
        .post(&url)
        .header("Content-Type", "application/json")
        .header("Accept", "text/event-stream");
    if let Some(key) = api_key {
        request = request.header("Authorization", &format!("Bearer {key}"));
    }
    let mut response = request.send(body.as_bytes()).map_err(|e| backend(&e))?;
    let status = response.status().as_u16();
    let mut reader = response.body_mut().as_reader();
    if status != 200 {
        let mut text = Vec::new();
        let _ = reader.by_ref().take(4096).read_to_end(&mut text);
        return Err(Failure::Backend(format!(
            "model server answered {status}: {}",
            String::from_utf8_lossy(&text).trim()
        )));
    }
    let mut decoder = clawgate_proto::http::sse::Decoder::with_max_line(MAX_SSE_LINE);
    let mut text = String::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = reader.read(&mut buf).map_err(|e| backend(&e))?;
        if n == 0 {
            return Ok(text);
        }
        for event in decoder.feed(&buf[..n]).map_err(|e| backend(&e))? {
            let data = event.data.trim();
            if data == "[DONE]" {
                return Ok(text);
            }
            let Ok(chunk) = serde_json::from_str::<Value>(data) else {
                continue;
            };
            if let Some(message) = chunk["error"]["message"].as_str() {
                return Err(Failure::Backend(format!("model server: {message}")));
            }
            if let Some(delta) = chunk["choices"][0]["delta"]["content"].as_str() {
                if !delta.is_empty() {
                    sink(delta)?;
                    text.push_str(delta);
                }
            }
        }
    }
}
