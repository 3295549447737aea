//! `agents.files.list`, `agents.files.get` and `agents.files.set`: the bootstrap files of an
//! agent's workspace (`AGENTS.md`, `SOUL.md`, ...), which the worker puts in the system prompt.
//!
//! The engine touches no files: it asks the runtime for the files' facts ([`Output::AgentFiles`])
//! and decides on what comes back. A write names the hash of the text it was based on
//! (`expectedHash`); the runtime reads the file first, the engine compares, and only then asks
//! for the write.

use crate::agents::AgentHub;
use crate::config::GatewayConfig;
pub use crate::output::{AgentFileFacts, AgentFileRequest, AgentFileStage};
use crate::output::{ConnId, Output};
use clawgate_proto::frame::{ErrorCode, ErrorShape, RequestFrame};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The workspace files put in the system prompt, in the order OpenClaw reads them.
pub const BOOTSTRAP_FILES: &[&str] = &[
    "AGENTS.md",
    "SOUL.md",
    "TOOLS.md",
    "IDENTITY.md",
    "USER.md",
    "HEARTBEAT.md",
    "BOOTSTRAP.md",
    "MEMORY.md",
];

/// The largest file `agents.files.set` writes.
const MAX_FILE_BYTES: usize = 256 * 1024;

/// What the engine makes of the runtime's report.
pub(crate) enum Next {
    Answer(Result<Value, ErrorShape>),
    Again(AgentFileRequest),
}

fn invalid(method: &str, reason: impl std::fmt::Display) -> ErrorShape {
    ErrorShape::new(ErrorCode::InvalidRequest, format!("invalid {method} params: {reason}"))
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks a request and says which files to look at.
pub(crate) fn start(
    config: &GatewayConfig,
    agents: &AgentHub,
    conn: ConnId,
    request: &RequestFrame,
) -> Result<Output, ErrorShape> {
    let m = request.method.as_str();
    let p: Value = serde_json::from_str(request.params_text()).map_err(|e| invalid(m, e))?;
    let agent = agents.known_agent(config, p.get("agentId").and_then(Value::as_str))?;
    let workspace = config
        .tool_policy
        .workspace_of(&agent)
        .map_or_else(|| format!("{}/workspace", config.state_dir), str::to_owned);
    let name = || -> Result<String, ErrorShape> {
        let name = p
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(m, "name is required"))?;
        BOOTSTRAP_FILES
            .iter()
            .find(|f| **f == name)
            .map(|f| (*f).to_owned())
            .ok_or_else(|| {
                invalid(
                    m,
                    format!("{name} is not a workspace file ({})", BOOTSTRAP_FILES.join(", ")),
                )
            })
    };
    let (names, stage, expected_hash) = match m {
        "agents.files.list" => (
            BOOTSTRAP_FILES.iter().map(|f| (*f).to_owned()).collect(),
            AgentFileStage::Read,
            None,
        ),
        "agents.files.get" => (vec![name()?], AgentFileStage::Read, None),
        "agents.files.set" => {
            let content = p
                .get("content")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(m, "content is required"))?;
            if content.len() > MAX_FILE_BYTES {
                return Err(invalid(m, format!("content is larger than {MAX_FILE_BYTES} bytes")));
            }
            let expected = p.get("expectedHash").and_then(Value::as_str).map(str::to_owned);
            (
                vec![name()?],
                AgentFileStage::Check {
                    content: content.to_owned(),
                },
                expected,
            )
        }
        other => return Err(ErrorShape::unknown_method(other)),
    };
    Ok(Output::AgentFiles(AgentFileRequest {
        conn,
        request_id: request.id.clone(),
        method: m.to_owned(),
        agent: agent.as_str().to_owned(),
        workspace,
        names,
        stage,
        expected_hash,
    }))
}

fn file_value(f: &AgentFileFacts, with_content: bool) -> Value {
    match f.size {
        None => {
            let mut v = json!({"name": f.name, "path": f.path, "missing": true});
            // MEMORY.md is written by the agent when it has something to remember.
            if f.name == "MEMORY.md" {
                v["expectedAbsent"] = json!(true);
            }
            v
        }
        Some(size) => {
            let mut v =
                json!({"name": f.name, "path": f.path, "missing": false, "size": size, "updatedAtMs": f.updated_at_ms});
            if with_content {
                let text = f.content.as_deref().unwrap_or_default();
                v["hash"] = json!(sha256_hex(text));
                v["content"] = json!(text);
            }
            v
        }
    }
}

/// The runtime's report on `req`: the answer, or the write that follows a check.
pub(crate) fn finish(req: AgentFileRequest, facts: Result<Vec<AgentFileFacts>, String>) -> Next {
    let facts = match facts {
        Ok(f) => f,
        Err(why) => {
            return Next::Answer(Err(ErrorShape::new(
                ErrorCode::Unavailable,
                format!("the workspace of {} could not be read or written: {why}", req.agent),
            )))
        }
    };
    let base = json!({"agentId": req.agent, "workspace": req.workspace});
    let with = |mut v: Value, key: &str, item: Value| {
        v[key] = item;
        v
    };
    match (&req.stage, req.method.as_str()) {
        (AgentFileStage::Read, "agents.files.list") => Next::Answer(Ok(with(
            base,
            "files",
            facts.iter().map(|f| file_value(f, false)).collect(),
        ))),
        (AgentFileStage::Read, _) => match facts.first() {
            Some(f) => Next::Answer(Ok(with(base, "file", file_value(f, true)))),
            None => Next::Answer(Err(ErrorShape::new(ErrorCode::Unavailable, "no file was reported"))),
        },
        (AgentFileStage::Check { content }, _) => {
            let current = facts
                .first()
                .and_then(|f| f.size.map(|_| sha256_hex(f.content.as_deref().unwrap_or_default())));
            let name = req.names.first().cloned().unwrap_or_default();
            match (&req.expected_hash, &current) {
                (Some(expected), Some(now)) if expected != now => Next::Answer(Err(ErrorShape::new(
                    ErrorCode::InvalidRequest,
                    format!("agent file {name:?} changed since it was read"),
                )
                .with_details(json!({"type": "agent_file_conflict", "name": name, "currentHash": now})))),
                // A hash of a file that is not there: someone removed it since it was read.
                (Some(_), None) => Next::Answer(Err(ErrorShape::new(
                    ErrorCode::InvalidRequest,
                    format!("agent file {name:?} changed since it was read"),
                )
                .with_details(json!({"type": "agent_file_conflict", "name": name, "currentHash": null})))),
                _ => Next::Again(AgentFileRequest {
                    stage: AgentFileStage::Write {
                        content: content.clone(),
                    },
                    ..req.clone()
                }),
            }
        }
        (AgentFileStage::Write { .. }, _) => match facts.first() {
            Some(f) => {
                let mut answer = with(base, "file", file_value(f, true));
                answer["ok"] = json!(true);
                Next::Answer(Ok(answer))
            }
            None => Next::Answer(Err(ErrorShape::new(ErrorCode::Unavailable, "no file was reported"))),
        },
    }
}
