//! The client commands (`call`, `status`, `logs`, `reload`, `devices`, `agent`) and `config`.

use crate::cli::{AgentArgs, BackendKind, ClientArgs, ConfigAction, ConfigCommand, DevicesAction, DevicesCommand};
use crate::config_file::{self, env_nonempty};
use crate::exit::{print_line, Failure};
use crate::gateway_cmd::resolve_port;
use clawgate_client as client;
use serde_json::{json, Value};

pub const ALL_SCOPES: &[&str] = &[
    "operator.admin",
    "operator.read",
    "operator.write",
    "operator.approvals",
    "operator.pairing",
    "operator.talk.secrets",
];

/// Where the gateway is and which secret to show it. Flags first; then what the gateway on this
/// state directory would use: the port from OPENCLAW_GATEWAY_PORT or the file, the secret from the
/// file or the environment (the gateway's own order); OPENCLAW_GATEWAY_URL names another gateway.
/// The token of `--token-file`: the file's first line, which must not be empty.
pub fn read_token_file(path: &std::path::Path) -> Result<String, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::config(format!("cannot read the token file {}: {e}", path.display())))?;
    let token = text.lines().next().unwrap_or_default().trim().to_owned();
    if token.is_empty() {
        return Err(Failure::config(format!("the token file {} is empty", path.display())));
    }
    Ok(token)
}

pub fn client_target(args: &ClientArgs, scopes: &[&str]) -> Result<client::Target, Failure> {
    let mut args = args.clone();
    if let Some(path) = &args.token_file {
        args.token = Some(read_token_file(path)?);
    }
    let args = &args;
    // The file is read only for what the flags leave open.
    let file = if args.url.is_some() && (args.token.is_some() || args.password.is_some()) {
        clawgate_engine::settings::FileSettings::default()
    } else {
        let state_dir = config_file::state_dir(args.state_dir.as_deref());
        config_file::load(&config_file::config_path(&state_dir), false)?
    };
    let url = match args.url.clone().or_else(|| env_nonempty("OPENCLAW_GATEWAY_URL")) {
        Some(u) => u,
        None => format!("ws://127.0.0.1:{}", resolve_port(None, &file)?),
    };
    let overrides = clawgate_engine::config::Overrides {
        token: args.token.clone(),
        password: args.password.clone(),
        env_token: env_nonempty("OPENCLAW_GATEWAY_TOKEN"),
        env_password: env_nonempty("OPENCLAW_GATEWAY_PASSWORD"),
        ..Default::default()
    };
    let (token, password) = match overrides.effective_auth(&file) {
        // A flag chooses the secret it names; otherwise both are offered where both are known.
        Some(auth) if args.password.is_some() => (None, auth.password),
        Some(auth) if args.token.is_some() => (auth.token, None),
        Some(auth) => (auth.token, auth.password),
        None => (None, None),
    };
    Ok(client::Target {
        url,
        token,
        password,
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        ..client::Target::default()
    })
}

/// What a failed call tells the user, with a hint where the gateway's own words point elsewhere.
pub fn describe(e: client::Error) -> Failure {
    match e {
        client::Error::Io(m) => Failure::failed(m),
        client::Error::Gateway(e) => {
            let code = e.details.as_ref().and_then(|d| d["code"].as_str()).unwrap_or_default();
            let hint = match code {
                "AUTH_TOKEN_MISSING" | "AUTH_PASSWORD_MISSING" => {
                    "\nclawgate: give the gateway's secret with --token (or --password), OPENCLAW_GATEWAY_TOKEN, \
                     or gateway.auth.token in the configuration file (`clawgate config get gateway.auth.token` \
                     on the gateway's host prints it)"
                }
                "AUTH_TOKEN_MISMATCH" | "AUTH_PASSWORD_MISMATCH" => {
                    "\nclawgate: the secret given is not this gateway's (flags win over gateway.auth.token, \
                     which wins over OPENCLAW_GATEWAY_TOKEN)"
                }
                _ => "",
            };
            Failure::failed(format!("{}: {}{hint}", e.code, e.message))
        }
    }
}

fn connect(args: &ClientArgs, scopes: &[&str]) -> Result<client::Session, Failure> {
    let target = client_target(args, scopes)?;
    client::Session::connect(&target).map_err(describe)
}

fn call_value(args: &ClientArgs, method: &str, params: &Value, scopes: &[&str]) -> Result<Value, Failure> {
    let mut session = connect(args, scopes)?;
    let payload = session.call(method, params).map_err(describe)?;
    Ok(payload
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .unwrap_or(Value::Null))
}

/// Calls `method` and prints its answer as indented JSON.
pub fn call(args: &ClientArgs, method: &str, params: &Value, scopes: &[&str]) -> Result<(), Failure> {
    let value = call_value(args, method, params, scopes)?;
    print_line(&serde_json::to_string_pretty(&value).unwrap_or_default())
}

/// `clawgate call METHOD --params JSON`.
pub fn call_command(args: &crate::cli::CallArgs) -> Result<(), Failure> {
    let params: Value =
        serde_json::from_str(&args.params).map_err(|e| Failure::usage(format!("invalid --params JSON: {e}")))?;
    if !params.is_object() {
        return Err(Failure::usage("--params must be a JSON object"));
    }
    call(&args.client, &args.method, &params, ALL_SCOPES)
}

/// A `logs.tail` line as `openclaw logs` shows it: `time [level] message`; a line that is not in
/// the JSON layout is shown as it is.
pub fn readable_log_line(line: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(line) else {
        return line.to_owned();
    };
    match (v["time"].as_str(), v["message"].as_str()) {
        (Some(time), Some(message)) => {
            let level = v["_meta"]["logLevelName"]
                .as_str()
                .unwrap_or("info")
                .to_ascii_lowercase();
            format!("{time} [{level}] {message}")
        }
        _ => line.to_owned(),
    }
}

/// `clawgate logs [--follow] [--json]`.
pub fn logs(args: &crate::cli::LogsArgs) -> Result<(), Failure> {
    let mut session = connect(&args.client, &["operator.read"])?;
    let mut cursor: Option<u64> = None;
    loop {
        let params = match cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let payload = session.call("logs.tail", &params).map_err(describe)?;
        let value: Value = payload
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_default();
        for line in value["lines"].as_array().into_iter().flatten() {
            let line = line.as_str().unwrap_or_default();
            if args.json {
                print_line(line)?;
            } else {
                print_line(&readable_log_line(line))?;
            }
        }
        cursor = value["cursor"].as_u64().or(cursor);
        if !args.follow {
            return Ok(());
        }
        // Every event (a tick at the latest) is a cue to look for new lines.
        session.next_event().map_err(describe)?;
    }
}

/// `clawgate config ...`: works on the file directly (the gateway picks changes up by itself).
pub fn config(args: &ConfigCommand) -> Result<(), Failure> {
    let path = config_file::config_path(&config_file::state_dir(args.state_dir.as_deref()));
    match &args.action {
        ConfigAction::Validate => {
            if config_file::read(&path)?.is_none() {
                return print_line(&format!(
                    "{}: no configuration file; the gateway runs on its defaults (port 18789 on loopback, \
                     token auth with a token generated at first start and saved there as gateway.auth.token)",
                    path.display()
                ));
            }
            config_file::load(&path, true)?;
            print_line(&format!("{}: valid", path.display()))
        }
        ConfigAction::Get { path: key } => {
            let file = config_file::load(&path, false)?;
            match clawgate_engine::settings::get_path(&file.document, key) {
                Some(v) => print_line(&serde_json::to_string_pretty(v).unwrap_or_default()),
                None => Err(Failure::failed(format!("{key} is not set in {}", path.display()))),
            }
        }
        ConfigAction::Set { path: key, value } => {
            // The value is JSON5 when it parses as such (numbers, booleans, lists), else a string.
            let new: Value = json5::from_str(value).unwrap_or_else(|_| Value::String(value.clone()));
            config_file::set(&path, key, new)
        }
    }
}

/// `clawgate devices ...`: pairing administration over RPC.
pub fn devices(args: &DevicesCommand) -> Result<(), Failure> {
    let (method, params) = match args.action.as_ref().unwrap_or(&DevicesAction::List) {
        DevicesAction::List => ("device.pair.list", json!({})),
        DevicesAction::Approve { request_id } => ("device.pair.approve", json!({"requestId": request_id})),
        DevicesAction::Reject { request_id } => ("device.pair.reject", json!({"requestId": request_id})),
        DevicesAction::Remove { device_id } => ("device.pair.remove", json!({"deviceId": device_id})),
        DevicesAction::Rename { device_id, label } => {
            ("device.pair.rename", json!({"deviceId": device_id, "label": label}))
        }
        DevicesAction::Rotate { device_id, role } => {
            ("device.token.rotate", json!({"deviceId": device_id, "role": role}))
        }
        DevicesAction::Revoke { device_id, role } => {
            ("device.token.revoke", json!({"deviceId": device_id, "role": role}))
        }
    };
    if args.json || method != "device.pair.list" {
        return call(&args.client, method, &params, ALL_SCOPES);
    }
    let list = call_value(&args.client, method, &params, ALL_SCOPES)?;
    let joined = |v: &Value| {
        v.as_array()
            .map(|s| s.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","))
            .unwrap_or_default()
    };
    let pending = list["pending"].as_array().cloned().unwrap_or_default();
    let paired = list["paired"].as_array().cloned().unwrap_or_default();
    print_line(&format!("Pending ({})", pending.len()))?;
    for p in &pending {
        print_line(&format!(
            "  {}  device {}  role {}  scopes {}",
            p["requestId"].as_str().unwrap_or(""),
            p["deviceId"].as_str().unwrap_or(""),
            p["role"].as_str().unwrap_or(""),
            joined(&p["scopes"])
        ))?;
    }
    print_line(&format!("Paired ({})", paired.len()))?;
    for d in &paired {
        let name = d["operatorLabel"]
            .as_str()
            .or(d["displayName"].as_str())
            .or(d["clientId"].as_str())
            .unwrap_or("");
        print_line(&format!(
            "  {}  {}  roles {}  scopes {}",
            d["deviceId"].as_str().unwrap_or(""),
            name,
            joined(&d["roles"]),
            joined(&d["scopes"])
        ))?;
    }
    Ok(())
}

/// `clawgate agent`: serves one agent until stopped.
pub fn agent_worker(args: &AgentArgs) -> Result<(), Failure> {
    if !clawgate_proto::session::AgentId::is_valid(&args.agent) {
        return Err(Failure::usage(format!("invalid --agent {}", args.agent)));
    }
    let agent = clawgate_proto::session::AgentId::normalize(&args.agent);
    let backend = match args.backend {
        BackendKind::Echo => crate::worker::Backend::Echo {
            delay: std::time::Duration::from_millis(args.delay_ms),
            tool: args.tool.clone(),
        },
        BackendKind::Openai => crate::worker::Backend::OpenAi {
            base_url: args
                .base_url
                .clone()
                .or_else(|| env_nonempty("OPENAI_BASE_URL"))
                .unwrap_or_else(|| "http://127.0.0.1:11434/v1".to_owned()),
            model: args
                .model
                .clone()
                .or_else(|| env_nonempty("OPENAI_MODEL"))
                .unwrap_or_else(|| "llama3.2".to_owned()),
            api_key: args.api_key.clone().or_else(|| env_nonempty("OPENAI_API_KEY")),
        },
    };
    if let Some(pid) = std::env::var(crate::workers::SUPERVISOR_PID_ENV)
        .ok()
        .and_then(|p| p.parse().ok())
    {
        crate::workers::exit_with_supervisor(pid, std::time::Duration::ZERO);
    }
    let target = client_target(&args.client, &[])?;
    // The providers of the models runs name are read from the gateway's configuration file.
    let state_dir = crate::config_file::state_dir(args.client.state_dir.as_deref());
    let config = crate::worker::Config {
        path: crate::config_file::config_path(&state_dir),
        default_workspace: state_dir.join("workspace"),
    };
    crate::worker::run(target, agent.as_str(), &backend, &config).map_err(Failure::failed)
}

/// `clawgate pairing list|approve|dismiss`: the channels' DM pairing, through the gateway.
pub fn pairing(args: &crate::cli::PairingCommand) -> Result<(), Failure> {
    use crate::cli::PairingAction;
    let (method, params) = match &args.action {
        PairingAction::List { channel, json } => {
            let params = match channel {
                Some(c) => json!({"channel": c}),
                None => json!({}),
            };
            if *json {
                return call(&args.client, "channels.pairing.list", &params, ALL_SCOPES);
            }
            let list = call_value(&args.client, "channels.pairing.list", &params, ALL_SCOPES)?;
            let requests = list["requests"].as_array().cloned().unwrap_or_default();
            if requests.is_empty() {
                return print_line("No pending pairing requests.");
            }
            for r in requests {
                print_line(&format!(
                    "{}  {}/{}  {}  (expires {})",
                    r["requestId"].as_str().unwrap_or_default(),
                    r["channel"].as_str().unwrap_or_default(),
                    r["accountId"].as_str().unwrap_or_default(),
                    r["senderId"].as_str().unwrap_or_default(),
                    r["expiresAt"].as_str().unwrap_or_default(),
                ))?;
            }
            return Ok(());
        }
        PairingAction::Approve {
            channel,
            code,
            account,
            no_notify,
        } => (
            "channels.pairing.approve",
            json!({"channel": channel, "accountId": account, "requestId": code, "notify": !no_notify}),
        ),
        PairingAction::Dismiss { channel, code, account } => (
            "channels.pairing.dismiss",
            json!({"channel": channel, "accountId": account, "requestId": code}),
        ),
    };
    let answer = call_value(&args.client, method, &params, ALL_SCOPES)?;
    let verb = if method.ends_with("approve") {
        "Approved"
    } else {
        "Dismissed"
    };
    print_line(&format!("{verb} {}.", answer["senderId"].as_str().unwrap_or_default()))
}

/// `clawgate channels status|dead-letters|retry|start|stop`.
pub fn channels(args: &crate::cli::ChannelsCommand) -> Result<(), Failure> {
    use crate::cli::ChannelsAction;
    let action = args.action.as_ref().unwrap_or(&ChannelsAction::Status { json: false });
    let (method, params) = match action {
        ChannelsAction::Status { json: true } => return call(&args.client, "channels.status", &json!({}), ALL_SCOPES),
        ChannelsAction::Status { json: false } => {
            let status = call_value(&args.client, "channels.status", &json!({}), ALL_SCOPES)?;
            let order = status["channelOrder"].as_array().cloned().unwrap_or_default();
            if order.is_empty() {
                return print_line("No channels are configured.");
            }
            for id in order.iter().filter_map(Value::as_str) {
                for a in status["channelAccounts"][id].as_array().into_iter().flatten() {
                    let mut line = format!(
                        "{id}/{}: {}, {}, {}, dm:{}",
                        a["accountId"].as_str().unwrap_or_default(),
                        if a["enabled"] == true { "enabled" } else { "disabled" },
                        if a["running"] == true { "running" } else { "stopped" },
                        if a["connected"] == true {
                            "connected"
                        } else {
                            "disconnected"
                        },
                        a["dmPolicy"].as_str().unwrap_or_default(),
                    );
                    line.push_str(&format!(
                        ", waiting:{}, dead:{}",
                        a["pendingDeliveries"], a["deadLetters"]
                    ));
                    if let Some(e) = a["lastError"].as_str() {
                        line.push_str(&format!(", error: {e}"));
                    }
                    print_line(&line)?;
                }
            }
            return Ok(());
        }
        ChannelsAction::DeadLetters => ("channels.deadLetters.list", json!({})),
        ChannelsAction::Retry { id: Some(id), .. } => ("channels.deadLetters.retry", json!({"id": id})),
        ChannelsAction::Retry { id: None, all: true } => ("channels.deadLetters.retry", json!({"all": true})),
        ChannelsAction::Retry { id: None, all: false } => {
            return Err(Failure::usage("retry needs a dead letter's id, or --all"))
        }
        ChannelsAction::Start { channel, account } => {
            ("channels.start", json!({"channel": channel, "accountId": account}))
        }
        ChannelsAction::Stop { channel, account } => {
            ("channels.stop", json!({"channel": channel, "accountId": account}))
        }
    };
    call(&args.client, method, &params, ALL_SCOPES)
}

/// `clawgate sandbox-exec --workspace W --access A -- command...`: the last step into the
/// sandbox of a tool call. This process already runs in the call's namespaces; it restricts
/// itself with Landlock and becomes the command, which keeps the restriction.
pub fn sandbox_exec(args: &crate::cli::SandboxExecArgs) -> Result<(), Failure> {
    use std::os::unix::process::CommandExt;
    let access = clawgate_tools::sandbox::access_named(&args.access)
        .ok_or_else(|| Failure::usage(format!("--access is rw, ro or none, not {}", args.access)))?;
    clawgate_tools::sandbox::confine_current_thread(&args.workspace, access)
        .map_err(|e| Failure::failed(e.to_string()))?;
    let error = std::process::Command::new(&args.command[0])
        .args(&args.command[1..])
        .exec();
    Err(Failure::failed(format!("cannot run {}: {error}", args.command[0])))
}

/// `clawgate openclaw-pairing`: keeps OpenClaw's local pairing store in step with the gateway,
/// as the gateway starts it.
pub fn openclaw_pairing(args: &ClientArgs) -> Result<(), Failure> {
    if let Some(pid) = std::env::var(crate::workers::SUPERVISOR_PID_ENV)
        .ok()
        .and_then(|p| p.parse().ok())
    {
        crate::workers::exit_with_supervisor(pid, std::time::Duration::ZERO);
    }
    let state_dir = config_file::state_dir(args.state_dir.as_deref());
    let target = client_target(args, ALL_SCOPES)?;
    crate::openclaw_pairing::run(&target, &state_dir).map_err(Failure::failed)
}

/// `clawgate channel --channel <id> --account <id>`: one account's adapter, as the gateway
/// starts it.
pub fn channel_adapter(args: &crate::cli::ChannelArgs) -> Result<(), Failure> {
    if let Some(pid) = std::env::var(crate::workers::SUPERVISOR_PID_ENV)
        .ok()
        .and_then(|p| p.parse().ok())
    {
        crate::workers::exit_with_supervisor(pid, std::time::Duration::from_secs(40));
    }
    let state_dir = config_file::state_dir(args.client.state_dir.as_deref());
    let file = config_file::load(&config_file::config_path(&state_dir), false)?;
    let (channel, account) = (args.channel.to_lowercase(), args.account.to_lowercase());
    let spec = file.channels.account(&channel, &account).ok_or_else(|| {
        Failure::usage(format!(
            "channels.{channel} has no account {account} in the configuration"
        ))
    })?;
    if let Some(problem) = &spec.problem {
        return Err(Failure::usage(problem.clone()));
    }
    let adapter = crate::channel_adapter::Adapter {
        channel: channel.clone(),
        account: account.clone(),
        settings: spec.settings.clone(),
        target: client_target(&args.client, &[])?,
        state_dir,
    };
    match channel.as_str() {
        "irc" => crate::channel_irc::run(adapter).map_err(Failure::failed),
        "telegram" => crate::channel_telegram::run(adapter).map_err(Failure::failed),
        "matrix" => crate::channel_matrix::run(adapter).map_err(Failure::failed),
        other => Err(Failure::usage(format!(
            "Clawgate has no adapter for channel {other} yet"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::readable_log_line;

    #[test]
    fn log_lines_in_the_json_layout_are_shown_as_time_level_message() {
        let line = r#"{"time":"2026-12-01T10:00:00.000Z","_meta":{"logLevelName":"WARN","name":"clawgate"},"message":"closed slow consumer 3"}"#;
        assert_eq!(
            readable_log_line(line),
            "2026-12-01T10:00:00.000Z [warn] closed slow consumer 3"
        );
        assert_eq!(readable_log_line("plain text"), "plain text");
    }
}
