//! `clawgate agent`: the reference agent worker. It connects as a `node` serving one agent,
//! takes runs from `node.invoke.request` events, streams the reply with `node.event`
//! (`agent.delta`) and ends each run with `node.invoke.result`.
//!
//! Backends: `echo` sends the message back word by word; `openai` streams a completion from an
//! OpenAI-compatible `/v1/chat/completions` (plain `http://` only), with the session's history
//! as context.

use crate::client::{CallError, Session, Target};
use clawgate_engine::agents::{DELTA_EVENT, WORKER_CAP_PREFIX, WORKER_COMMAND};
use clawgate_proto::ErrorCode;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
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

/// `http://host[:port]/path` split into the address to dial, the Host header and the path.
fn split_http_url(url: &str) -> Result<(String, String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("unsupported base URL {url} (expected http://host:port/...)"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let dial = if authority.contains(':') && !authority.ends_with(']') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((dial, authority.to_owned(), path.trim_end_matches('/').to_owned()))
}

fn openai(
    base_url: &str,
    model: &str,
    api_key: Option<&str>,
    job: &Job,
    sink: &mut dyn FnMut(&str) -> Result<(), CallError>,
) -> Result<String, Failure> {
    let (dial, host, base_path) = split_http_url(base_url).map_err(Failure::Backend)?;
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
    let backend = |e: std::io::Error| Failure::Backend(format!("model server {host}: {e}"));
    let mut stream = TcpStream::connect(&dial).map_err(backend)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(300)))
        .map_err(backend)?;
    let auth = api_key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
    let head = format!(
        "POST {base_path}/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Accept: text/event-stream\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).map_err(backend)?;
    stream.write_all(body.as_bytes()).map_err(backend)?;

    let mut reader = HttpBody::new(stream);
    let (status, chunked) = reader.read_head().map_err(Failure::Backend)?;
    reader.chunked = chunked;
    if status != 200 {
        let mut text = Vec::new();
        while let Some(part) = reader.next_bytes().map_err(Failure::Backend)? {
            text.extend(part);
            if text.len() > 4096 {
                break;
            }
        }
        return Err(Failure::Backend(format!(
            "model server answered {status}: {}",
            String::from_utf8_lossy(&text).trim()
        )));
    }
    let mut text = String::new();
    let mut pending = Vec::new();
    while let Some(part) = reader.next_bytes().map_err(Failure::Backend)? {
        pending.extend(part);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let Some(data) = line.trim_end().strip_prefix("data:") else {
                continue;
            };
            let data = data.trim();
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
    Ok(text)
}

/// A response body read as it arrives, plain or chunked.
struct HttpBody {
    stream: TcpStream,
    buf: Vec<u8>,
    chunked: bool,
    /// Bytes left in the current chunk.
    left: usize,
    /// The CRLF that ends a chunk is still to be read.
    crlf_due: bool,
    done: bool,
}

impl HttpBody {
    fn new(stream: TcpStream) -> Self {
        HttpBody {
            stream,
            buf: Vec::new(),
            chunked: false,
            left: 0,
            crlf_due: false,
            done: false,
        }
    }

    fn fill(&mut self) -> Result<bool, String> {
        let mut tmp = [0u8; 16 * 1024];
        let n = self.stream.read(&mut tmp).map_err(|e| format!("model server: {e}"))?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n > 0)
    }

    /// The status and whether the body is chunked.
    fn read_head(&mut self) -> Result<(u16, bool), String> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&self.buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = response.code.unwrap_or(0);
                    let chunked = response.headers.iter().any(|h| {
                        h.name.eq_ignore_ascii_case("transfer-encoding")
                            && String::from_utf8_lossy(h.value)
                                .to_ascii_lowercase()
                                .contains("chunked")
                    });
                    self.buf.drain(..len);
                    return Ok((status, chunked));
                }
                Ok(httparse::Status::Partial) => {
                    if self.buf.len() > 64 * 1024 {
                        return Err("model server: response head too large".into());
                    }
                    if !self.fill()? {
                        return Err("model server closed the connection before answering".into());
                    }
                }
                Err(e) => return Err(format!("model server: bad response: {e}")),
            }
        }
    }

    /// The next bytes of the body; `None` at its end.
    fn next_bytes(&mut self) -> Result<Option<Vec<u8>>, String> {
        if self.done {
            return Ok(None);
        }
        if !self.chunked {
            if self.buf.is_empty() && !self.fill()? {
                self.done = true;
                return Ok(None);
            }
            return Ok(Some(std::mem::take(&mut self.buf)));
        }
        loop {
            if self.left > 0 {
                if self.buf.is_empty() && !self.fill()? {
                    return Err("model server closed the connection mid-chunk".into());
                }
                let n = self.left.min(self.buf.len());
                self.left -= n;
                let part: Vec<u8> = self.buf.drain(..n).collect();
                // The CRLF after the chunk is read with the next size line.
                self.crlf_due = self.left == 0;
                return Ok(Some(part));
            }
            if self.crlf_due {
                while self.buf.len() < 2 {
                    if !self.fill()? {
                        return Err("model server closed the connection mid-chunk".into());
                    }
                }
                self.buf.drain(..2);
                self.crlf_due = false;
            }
            let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") else {
                if !self.fill()? {
                    return Err("model server closed the connection mid-chunk".into());
                }
                continue;
            };
            let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
            self.buf.drain(..end + 2);
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| format!("model server: bad chunk size {line:?}"))?;
            if size == 0 {
                self.done = true;
                return Ok(None);
            }
            self.left = size;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_split() {
        assert_eq!(
            split_http_url("http://127.0.0.1:11434/v1").unwrap(),
            ("127.0.0.1:11434".into(), "127.0.0.1:11434".into(), "/v1".into())
        );
        assert_eq!(
            split_http_url("http://models.lan/").unwrap(),
            ("models.lan:80".into(), "models.lan".into(), "".into())
        );
        assert!(split_http_url("https://x").is_err());
    }
}
