//! `clawgate agent`: the reference agent worker. It connects as a `node` serving one agent,
//! takes runs from `node.invoke.request` events, streams the reply with `node.event`
//! (`agent.delta`) and ends each run with `node.invoke.result`.
//!
//! A run that names a model (`modelRef`, the agent's `provider/model` from the configuration)
//! goes to that provider, read from the same configuration file: the OpenAI chat-completions API
//! or the Anthropic Messages API, over `http://` or `https://` (trusting the system's certificate
//! store). The model is offered the tools the gateway allows for the session; each call it makes
//! runs through the gateway (`tools.invoke` with the run's id, so policy, sandbox and audit
//! apply) and its result goes back to the model, until it answers without calling a tool.
//!
//! Without a model in the run, the `--backend` decides: `echo` sends the message back word by
//! word; `openai` uses one OpenAI-compatible server given by flags.

use crate::providers::{Endpoint, Item, Stop, ToolCall, TurnError, Usage};
use clawgate_client::{Error as CallError, Session, Target};
use clawgate_engine::agents::{
    CANCEL_EVENT, DELTA_EVENT, MODEL_EVENT, TOOL_CALLS_EVENT, USAGE_EVENT, WORKER_CAP_PREFIX, WORKER_COMMAND,
};
use clawgate_engine::models::{ModelRef, ProviderApi};
use clawgate_proto::frame::EventFrame;
use clawgate_proto::ErrorCode;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// Model turns a run may take that end in tool calls; a model that still calls tools after
/// this many ends its run with an error instead of looping until the run's timeout.
pub const MAX_TOOL_ROUNDS: usize = 12;

/// How often a streaming run looks for its cancellation.
const CANCEL_CHECK: Duration = Duration::from_millis(50);

/// Where replies of runs that name no model come from.
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
    /// The run's `provider/model`, from the configuration.
    model_ref: Option<String>,
    /// The tools the model may call, as function schemas.
    tools: Vec<Value>,
    agent_id: String,
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
        model_ref: params["modelRef"].as_str().map(str::to_owned),
        tools: params["tools"].as_array().cloned().unwrap_or_default(),
        agent_id: params["agentId"].as_str().unwrap_or("main").to_owned(),
        invoke_id,
        node_id,
    })
}

/// Serves `agent` until the process is stopped, reconnecting with a growing pause (1 s to 30 s)
/// when the gateway goes away.
pub fn run(mut target: Target, agent: &str, backend: &Backend, config: &Config) -> Result<(), String> {
    target.node = Some((
        vec![format!("{WORKER_CAP_PREFIX}{agent}")],
        vec![WORKER_COMMAND.to_owned()],
    ));
    // One name per agent: the Control UI groups clients by name, so two workers must differ.
    target.display_name = Some(format!("agent worker: {agent}"));
    let mut pause = Duration::from_secs(1);
    loop {
        match Session::connect(&target) {
            Ok(mut session) => {
                eprintln!("clawgate agent: serving agent {agent} at {}", target.url);
                pause = Duration::from_secs(1);
                match serve(&mut session, backend, config) {
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

fn serve(session: &mut Session, backend: &Backend, config: &Config) -> Result<(), CallError> {
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
        // Events that arrive while the run streams (other runs' requests), read once it is over.
        let mut held = Vec::new();
        let outcome = match endpoint_for(&job, backend, config) {
            Ok(Some(endpoint)) => {
                let system = system_prompt(&job, config);
                model_run(session, &endpoint, &job, system.as_deref(), &mut held)
            }
            Ok(None) => {
                let delay = match backend {
                    Backend::Echo { delay, .. } => *delay,
                    Backend::OpenAi { .. } => Duration::ZERO,
                };
                let mut sink = |delta: &str| send_delta(session, &job.run_id, delta);
                echo(&job.message, delay, &mut sink).map(|text| (text, Usage::default()))
            }
            Err(why) => Err(Failure::Backend(why)),
        };
        let result = match outcome {
            Ok((text, usage)) => json!({
                "id": job.invoke_id, "nodeId": job.node_id, "ok": true,
                "payloadJSON": json!({"text": text, "usage": {"input": usage.input, "output": usage.output}}).to_string(),
            }),
            Err(Failure::Backend(why)) => json!({
                "id": job.invoke_id, "nodeId": job.node_id, "ok": false,
                "error": {"code": "BACKEND_FAILED", "message": why},
            }),
            Err(Failure::Cancelled) => json!({
                "id": job.invoke_id, "nodeId": job.node_id, "ok": false,
                "error": {"code": "CANCELLED", "message": "the run was cancelled"},
            }),
            Err(Failure::Gateway(e)) => return Err(e),
        };
        for event in held.drain(..).rev() {
            session.unread_event(event);
        }
        session.send("node.invoke.result", &result)?;
    }
}

/// Why a run failed.
enum Failure {
    /// The model backend failed: the run ends with this error.
    Backend(String),
    /// The gateway cancelled the run (aborted, timed out): no more text or tool calls for it; its
    /// result says so (the gateway has ended the run already and drops it).
    Cancelled,
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

/// Whether the gateway cancelled `run_id` (`node.invoke.cancel`), looking at what has arrived
/// without waiting. Other events are kept for after the run.
fn cancelled(session: &mut Session, run_id: &str, held: &mut Vec<EventFrame>) -> Result<bool, CallError> {
    while let Some(event) = session.try_event()? {
        if event.event == CANCEL_EVENT {
            let payload: Value = event
                .payload
                .as_deref()
                .and_then(|p| serde_json::from_str(p.get()).ok())
                .unwrap_or(Value::Null);
            if payload["runId"] == run_id {
                return Ok(true);
            }
            continue;
        }
        held.push(event);
    }
    Ok(false)
}

/// Tells the gateway something about the run (`node.event`).
fn send_run_event(session: &mut Session, event: &str, payload: Value) -> Result<(), CallError> {
    session.send(
        "node.event",
        &json!({"event": event, "payloadJSON": payload.to_string()}),
    )
}

fn send_delta(session: &mut Session, run_id: &str, delta: &str) -> Result<(), CallError> {
    let payload = json!({"runId": run_id, "delta": delta});
    session.send(
        "node.event",
        &json!({"event": DELTA_EVENT, "payloadJSON": payload.to_string()}),
    )
}

/// Where the worker reads the providers of the models runs name.
pub struct Config {
    pub path: PathBuf,
    /// The workspace of agents the file gives none (`<state dir>/workspace`, as the gateway's).
    pub default_workspace: PathBuf,
}

pub use clawgate_engine::agent_files::BOOTSTRAP_FILES;

/// Characters of one bootstrap file put in the prompt (OpenClaw's `bootstrapMaxChars` default).
const BOOTSTRAP_MAX_CHARS: usize = 20_000;

/// The run's system prompt: the caller's own (`extraSystemPrompt`), then the agent workspace's
/// bootstrap files that exist and are not blank, each cut at [`BOOTSTRAP_MAX_CHARS`]. `None`
/// when there is neither.
fn system_prompt(job: &Job, config: &Config) -> Option<String> {
    let workspace = std::fs::read_to_string(&config.path)
        .ok()
        .and_then(|text| clawgate_engine::settings::parse(&text, &|n: &str| std::env::var(n).ok()).ok())
        .and_then(|(settings, _)| {
            let agent = clawgate_proto::session::AgentId::normalize(&job.agent_id);
            settings.tool_policy.workspace_of(&agent).map(PathBuf::from)
        })
        .unwrap_or_else(|| config.default_workspace.clone());
    let mut files = Vec::new();
    for name in BOOTSTRAP_FILES {
        let Ok(text) = std::fs::read_to_string(workspace.join(name)) else {
            continue;
        };
        if text.trim().is_empty() {
            continue;
        }
        let cut: String = text.chars().take(BOOTSTRAP_MAX_CHARS).collect();
        let note = if cut.len() < text.len() {
            "\n[cut at 20000 characters]"
        } else {
            ""
        };
        files.push(format!("## {name}\n\n{}{note}", cut.trim_end()));
    }
    let mut parts: Vec<String> = job.extra_system_prompt.iter().cloned().collect();
    if !files.is_empty() {
        parts.push(format!(
            "# Project Context\n\nThe agent's workspace is {}. Its files below say who you are, how to work and who you work with; follow them.\n\n{}",
            workspace.display(),
            files.join("\n\n")
        ));
    }
    (!parts.is_empty()).then(|| parts.join("\n\n"))
}

/// The model server a run goes to: the provider of the run's model from the configuration, else
/// the `openai` backend's flags; `None` for the echo backend.
fn endpoint_for(job: &Job, backend: &Backend, config: &Config) -> Result<Option<Endpoint>, String> {
    if let Backend::OpenAi {
        base_url,
        model,
        api_key,
    } = backend
    {
        return Ok(Some(Endpoint {
            provider: "openai".to_owned(),
            api: ProviderApi::OpenAiCompletions,
            base_url: base_url.clone(),
            api_key: api_key.clone(),
            model: job.model.clone().unwrap_or_else(|| model.clone()),
            max_tokens: None,
        }));
    }
    let Some(model_ref) = &job.model_ref else {
        return Ok(None);
    };
    let path = config.path.display();
    let model =
        ModelRef::parse(model_ref).ok_or_else(|| format!("the run's model {model_ref} is not provider/model"))?;
    let text = std::fs::read_to_string(&config.path)
        .map_err(|e| format!("cannot read {path} for the provider of {model_ref}: {e}"))?;
    let env = |name: &str| std::env::var(name).ok();
    let (settings, _) = clawgate_engine::settings::parse(&text, &env)
        .map_err(|e| format!("{path}:{}:{}: {}", e.line, e.column, e.message))?;
    let provider = settings.models.providers.get(&model.provider).ok_or_else(|| {
        format!(
            "model {model_ref}: provider {} is not in models.providers of {path}",
            model.provider
        )
    })?;
    let api = provider.api().ok_or_else(|| {
        format!(
            "model {model_ref}: provider {} speaks {}, which this worker does not (openai-completions, anthropic-messages)",
            provider.id, provider.api_name
        )
    })?;
    // As OpenClaw does for a provider without a key in the file: `<PROVIDER>_API_KEY`.
    let env_key = format!("{}_API_KEY", provider.id.to_ascii_uppercase().replace('-', "_"));
    Ok(Some(Endpoint {
        provider: provider.id.clone(),
        api,
        base_url: provider.base_url.clone(),
        api_key: provider
            .api_key
            .clone()
            .or_else(|| std::env::var(env_key).ok().filter(|k| !k.is_empty())),
        max_tokens: provider
            .models
            .iter()
            .find(|m| m.id == model.model)
            .and_then(|m| m.max_tokens),
        model: model.model,
    }))
}

/// A run on a model: turns until the model answers without calling a tool. The reply is every
/// turn's text, joined by a blank line, as it streamed.
fn model_run(
    session: &mut Session,
    endpoint: &Endpoint,
    job: &Job,
    system: Option<&str>,
    held: &mut Vec<EventFrame>,
) -> Result<(String, Usage), Failure> {
    let mut items: Vec<Item> = job
        .history
        .iter()
        .filter_map(|m| {
            let text = m["content"].as_str().filter(|c| !c.is_empty())?.to_owned();
            match m["role"].as_str()? {
                "user" => Some(Item::User(text)),
                "assistant" => Some(Item::Assistant {
                    text,
                    calls: Vec::new(),
                }),
                _ => None,
            }
        })
        .collect();
    items.push(Item::User(job.message.clone()));
    let mut reply = String::new();
    let mut usage = Usage::default();
    for round in 0..=MAX_TOOL_ROUNDS {
        send_run_event(
            session,
            MODEL_EVENT,
            json!({"runId": job.run_id, "provider": endpoint.provider, "model": endpoint.model}),
        )?;
        let mut first_piece = true;
        let mut checked = std::time::Instant::now();
        let turn = {
            let reply = &mut reply;
            let mut sink = |delta: &str| -> Result<(), Stop> {
                // A look at the socket costs syscalls: once per CANCEL_CHECK, not per token.
                if checked.elapsed() >= CANCEL_CHECK {
                    checked = std::time::Instant::now();
                    if cancelled(session, &job.run_id, held).map_err(Stop::Gateway)? {
                        return Err(Stop::Cancelled);
                    }
                }
                if first_piece && !reply.is_empty() {
                    send_delta(session, &job.run_id, "\n\n").map_err(Stop::Gateway)?;
                    reply.push_str("\n\n");
                }
                first_piece = false;
                reply.push_str(delta);
                send_delta(session, &job.run_id, delta).map_err(Stop::Gateway)
            };
            crate::providers::turn(endpoint, system, &items, &job.tools, &mut sink)
        };
        let turn = match turn {
            Ok(t) => t,
            Err(TurnError::Provider(why)) => return Err(Failure::Backend(why)),
            Err(TurnError::Gateway(e)) => return Err(Failure::Gateway(e)),
            Err(TurnError::Cancelled) => return Err(Failure::Cancelled),
        };
        usage.input += turn.usage.input;
        usage.output += turn.usage.output;
        send_run_event(
            session,
            USAGE_EVENT,
            json!({"runId": job.run_id, "input": turn.usage.input, "output": turn.usage.output}),
        )?;
        if turn.calls.is_empty() {
            return Ok((reply, usage));
        }
        if round == MAX_TOOL_ROUNDS {
            return Err(Failure::Backend(format!(
                "the model still called tools after {MAX_TOOL_ROUNDS} rounds; the run was stopped"
            )));
        }
        let calls: Vec<Value> = turn
            .calls
            .iter()
            .map(|c| {
                let arguments = c.arguments.clone().map(Value::Object).unwrap_or_else(Value::String);
                json!({"id": c.id, "name": c.name, "arguments": arguments})
            })
            .collect();
        send_run_event(
            session,
            TOOL_CALLS_EVENT,
            json!({"runId": job.run_id, "calls": calls, "text": turn.text}),
        )?;
        items.push(Item::Assistant {
            text: turn.text,
            calls: turn.calls.clone(),
        });
        for call in &turn.calls {
            if cancelled(session, &job.run_id, held)? {
                return Err(Failure::Cancelled);
            }
            let (content, is_error) = invoke(session, job, call)?;
            items.push(Item::ToolResult {
                call_id: call.id.clone(),
                content,
                is_error,
            });
        }
    }
    Err(Failure::Backend("the tool rounds ended without an answer".to_owned()))
}

/// Runs one call through the gateway: the text the model gets back, and whether it is an error.
/// A refusal or a failed tool is an answer for the model, not a failure of the run.
fn invoke(session: &mut Session, job: &Job, call: &ToolCall) -> Result<(String, bool), Failure> {
    let args = match &call.arguments {
        Ok(args) => args.clone(),
        Err(raw) => {
            return Ok((
                format!("the arguments of {} are not a JSON object: {raw}", call.name),
                true,
            ))
        }
    };
    let params = json!({"name": call.name, "args": args, "runId": job.run_id, "toolCallId": call.id});
    let answer = session.call("tools.invoke", &params).map(|payload| {
        payload
            .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
            .unwrap_or(Value::Null)
    });
    match answer {
        Ok(answer) if answer["ok"] == true => Ok((
            clawgate_engine::tool_calls::result_text(&call.name, &answer["output"]),
            false,
        )),
        Ok(answer) => {
            let message = answer["error"]["message"].as_str().unwrap_or("the tool failed");
            Ok((message.to_owned(), true))
        }
        Err(CallError::Gateway(e)) => Ok((e.message, true)),
        Err(e) => Err(Failure::Gateway(e)),
    }
}
