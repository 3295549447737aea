//! How an agent run answers an HTTP caller (`POST /v1/chat/completions`, `POST
//! /api/sessions/<key>/messages`): the response when it waits for the whole answer, or the
//! server-sent events when it streams. Pure functions of the run; the agents send what they return.

use crate::output::ConnId;
use crate::reply::json_response;
use clawgate_proto::http::{encode_chunk, encode_chunked_head, encode_last_chunk, Response};
use serde_json::{json, Value};

/// An HTTP request answered by a run.
pub(crate) struct HttpRun {
    pub conn: ConnId,
    pub keep_alive: bool,
    pub shape: HttpShape,
    /// Whether the answer streams as server-sent events (the head is already sent).
    pub stream: bool,
}

/// What the HTTP answer looks like.
pub(crate) enum HttpShape {
    /// `POST /v1/chat/completions`.
    Completion {
        id: String,
        model: String,
        created: u64,
        include_usage: bool,
        prompt_chars: usize,
    },
    /// `POST /api/sessions/<key>/messages`.
    SessionMessage,
    /// `POST /hooks/agent` with `waitForCompletion`.
    Hook,
}

pub(crate) fn openai_error(status: u16, kind: &str, message: &str) -> Response {
    json_response(status, &json!({"error": {"message": message, "type": kind}}))
}

pub(crate) fn sse_head() -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let headers = vec![
        ("Content-Type".to_owned(), "text/event-stream; charset=utf-8".to_owned()),
        ("Cache-Control".to_owned(), "no-cache".to_owned()),
        ("X-Content-Type-Options".to_owned(), "nosniff".to_owned()),
        ("Referrer-Policy".to_owned(), "no-referrer".to_owned()),
        (
            "Permissions-Policy".to_owned(),
            "camera=(), microphone=(), geolocation=()".to_owned(),
        ),
    ];
    encode_chunked_head(200, &headers, &mut out);
    out
}

/// One `data:` event as a chunk of the chunked body.
pub(crate) fn sse_chunk(data: &str) -> Vec<u8> {
    let mut event = Vec::with_capacity(data.len() + 8);
    clawgate_proto::http::sse::encode_event(None, data, &mut event);
    let mut out = Vec::with_capacity(event.len() + 16);
    encode_chunk(&event, &mut out);
    out
}

pub(crate) fn completion_chunk(id: &str, model: &str, created: u64, delta: Value, finish: Option<&str>) -> String {
    json!({
        "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    })
    .to_string()
}

/// A rough token count (four characters a token), for the `usage` OpenAI clients expect.
fn tokens(chars: usize) -> usize {
    chars.div_ceil(4)
}

/// How a run ended, as its HTTP answer needs it.
pub(crate) struct RunEnd<'a> {
    pub ok: bool,
    /// Why it failed (when not `ok`).
    pub error: &'a str,
    /// The whole reply text.
    pub text: &'a str,
    pub session_key: &'a str,
}

/// The end of an HTTP caller's answer.
pub(crate) enum HttpEnd {
    /// The last events and the end of the chunked body of a stream.
    Stream(Vec<u8>),
    /// The whole response of a caller that waited.
    Whole(Response),
}

/// The bytes a streaming caller gets for a piece of reply text; `None` when the caller does not
/// stream (or the piece is empty).
pub(crate) fn delta_bytes(http: &HttpRun, run_id: &str, delta: &str) -> Option<Vec<u8>> {
    if delta.is_empty() || !http.stream {
        return None;
    }
    let data = match &http.shape {
        HttpShape::Completion { id, model, created, .. } => {
            completion_chunk(id, model, *created, json!({"content": delta}), None)
        }
        HttpShape::SessionMessage | HttpShape::Hook => {
            json!({"type": "delta", "runId": run_id, "delta": delta}).to_string()
        }
    };
    Some(sse_chunk(&data))
}

/// The end of the answer of a run started over HTTP.
pub(crate) fn end_of_run(http: &HttpRun, run_id: &str, done: &RunEnd<'_>) -> HttpEnd {
    let ok = done.ok;
    let error = done.error;
    if http.stream {
        let mut out = Vec::new();
        match &http.shape {
            HttpShape::Completion {
                id,
                model,
                created,
                include_usage,
                prompt_chars,
            } => {
                if ok {
                    out.extend(sse_chunk(&completion_chunk(
                        id,
                        model,
                        *created,
                        json!({}),
                        Some("stop"),
                    )));
                    if *include_usage {
                        let usage = json!({
                            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                            "choices": [], "usage": usage(*prompt_chars, done.text.len()),
                        });
                        out.extend(sse_chunk(&usage.to_string()));
                    }
                } else {
                    out.extend(sse_chunk(
                        &json!({"error": {"message": error, "type": "server_error"}}).to_string(),
                    ));
                }
                out.extend(sse_chunk("[DONE]"));
            }
            HttpShape::SessionMessage | HttpShape::Hook => {
                let end = if ok {
                    json!({"type": "final", "runId": run_id, "text": done.text})
                } else {
                    json!({"type": "error", "runId": run_id, "error": error})
                };
                out.extend(sse_chunk(&end.to_string()));
            }
        }
        encode_last_chunk(&mut out);
        return HttpEnd::Stream(out);
    }
    let response = match (&http.shape, ok) {
        (
            HttpShape::Completion {
                id,
                model,
                created,
                prompt_chars,
                ..
            },
            true,
        ) => json_response(
            200,
            &json!({
                "id": id, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": done.text}, "finish_reason": "stop"}],
                "usage": usage(*prompt_chars, done.text.len()),
            }),
        ),
        // As OpenClaw's: the outcome and whether there was a reply, never its text; a failed run
        // is terminal data in a 200, not a retryable error.
        (HttpShape::Hook, _) => json_response(
            200,
            &json!({"ok": true, "runId": run_id, "completion": {
                "status": if ok { "ok" } else { "error" },
                "replyDisposition": if done.text.trim().is_empty() { "empty" } else { "visible" },
                "delivered": false, "deliveryAttempted": false,
            }}),
        ),
        (HttpShape::SessionMessage, true) => json_response(
            200,
            &json!({"ok": true, "runId": run_id, "sessionKey": done.session_key, "text": done.text}),
        ),
        (_, false) => openai_error(502, "server_error", error),
    };
    HttpEnd::Whole(response)
}

fn usage(prompt_chars: usize, completion_chars: usize) -> Value {
    let (p, c) = (tokens(prompt_chars), tokens(completion_chars));
    json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c})
}
