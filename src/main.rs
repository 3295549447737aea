//! `clawgate`: the gateway daemon and a small command-line client for it.
#![forbid(unsafe_code)]

mod client;
mod worker;

use clawgate_engine::{Entropy, Gateway, GatewayConfig};
use clawgate_proto::auth::{AuthMode, SharedSecretConfig};
use clawgate_proto::device::base64url_encode;
use clawgate_runtime_smol::{bind, now_ms, run, stop_channel, stop_on_signals, OsEntropy};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;

const DEFAULT_PORT: u16 = 18789;

const USAGE: &str = "\
clawgate - a small, fast OpenClaw-compatible gateway

USAGE:
  clawgate gateway run [--port P] [--bind loopback|lan|<ip>] [--token T | --password P | --auth none]
                       [--runtime smol|mio] [--state-dir DIR] [--no-auto-approve-local]
                       [--control-ui DIR]  (serve an OpenClaw Control UI bundle, e.g. the
                                            dist/control-ui folder of the openclaw npm package)
  clawgate call <method> [--params JSON] [--url ws://HOST:PORT] [--token T | --password P]
  clawgate status [--url ...] [--token T]
  clawgate logs [--follow] [--url ...] [--token T]
  clawgate reload [--url ...] [--token T]           (the gateway reads its configuration file again)
  clawgate config validate|get <path>|set <path> <value>   (the file at $OPENCLAW_CONFIG_PATH or <state dir>/openclaw.json)
  clawgate agent [--agent ID] [--backend echo|openai] [--delay-ms N] [--tool NAME] [--base-url URL] [--model M]
                 [--api-key K] [--url ws://HOST:PORT] [--token T | --password P]
                 (an agent worker: serves agent ID, default main; openai streams from
                  $OPENAI_BASE_URL, default http://127.0.0.1:11434/v1, model $OPENAI_MODEL)
  clawgate devices list|approve <requestId>|reject <requestId>|remove <deviceId>
                   |rename <deviceId> <label>|rotate <deviceId> [--role R]|revoke <deviceId> [--role R]
                   [--url ...] [--token T] [--json]

Environment: OPENCLAW_GATEWAY_PORT, OPENCLAW_GATEWAY_TOKEN, OPENCLAW_GATEWAY_PASSWORD,
OPENCLAW_STATE_DIR (pairings are kept there; default ~/.openclaw).
Without --token or --password, `gateway run` generates a token and prints it once.
";

struct Args {
    positional: Vec<String>,
    flags: Vec<(String, Option<String>)>,
}

const VALUE_FLAGS: &[&str] = &[
    "--port",
    "--runtime",
    "--role",
    "--state-dir",
    "--bind",
    "--token",
    "--password",
    "--auth",
    "--params",
    "--url",
    "--agent",
    "--backend",
    "--delay-ms",
    "--base-url",
    "--model",
    "--api-key",
    "--tool",
    "--control-ui",
];
const SWITCH_FLAGS: &[&str] = &["--follow", "--json", "--help", "-h", "--no-auto-approve-local"];

fn parse_args(raw: &[String]) -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut flags = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let a = &raw[i];
        if let Some((name, value)) = a.split_once('=').filter(|(n, _)| n.starts_with("--")) {
            if !VALUE_FLAGS.contains(&name) {
                return Err(format!("unknown flag {name}"));
            }
            flags.push((name.to_owned(), Some(value.to_owned())));
        } else if VALUE_FLAGS.contains(&a.as_str()) {
            let value = raw.get(i + 1).ok_or_else(|| format!("{a} needs a value"))?;
            flags.push((a.clone(), Some(value.clone())));
            i += 1;
        } else if SWITCH_FLAGS.contains(&a.as_str()) {
            flags.push((a.clone(), None));
        } else if a.starts_with('-') {
            return Err(format!("unknown flag {a}"));
        } else {
            positional.push(a.clone());
        }
        i += 1;
    }
    Ok(Args { positional, flags })
}

impl Args {
    fn value(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }
    fn has(&self, name: &str) -> bool {
        self.flags.iter().any(|(n, _)| n == name)
    }
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// `OPENCLAW_GATEWAY_PORT` accepts `18789`, `127.0.0.1:18789` and `[::1]:18789`.
fn parse_port(text: &str) -> Option<u16> {
    let t = text.trim();
    t.parse::<u16>()
        .ok()
        .or_else(|| t.parse::<SocketAddr>().ok().map(|a| a.port()))
}

fn resolve_port(args: &Args) -> Result<u16, String> {
    if let Some(p) = args.value("--port") {
        return p.parse::<u16>().map_err(|_| format!("invalid --port {p}"));
    }
    if let Some(p) = env_nonempty("OPENCLAW_GATEWAY_PORT") {
        return parse_port(&p).ok_or_else(|| format!("invalid OPENCLAW_GATEWAY_PORT {p}"));
    }
    Ok(DEFAULT_PORT)
}

/// `--state-dir`, else `$OPENCLAW_STATE_DIR`, else `~/.openclaw`.
fn state_dir(args: &Args) -> std::path::PathBuf {
    if let Some(d) = args.value("--state-dir") {
        return d.into();
    }
    if let Some(d) = env_nonempty("OPENCLAW_STATE_DIR") {
        return d.into();
    }
    let home = env_nonempty("HOME").unwrap_or_else(|| ".".into());
    std::path::Path::new(&home).join(".openclaw")
}

/// Reads the pairing files back; a file that cannot be read or parsed stops the start (it is
/// left untouched).
fn load_pairing(dir: &std::path::Path) -> Result<clawgate_engine::pairing::PairingStore, (u8, String)> {
    let read = |rel: &str| {
        clawgate_runtime_smol::read_state_file(dir, rel)
            .map_err(|e| (1u8, format!("cannot read {}: {e}", dir.join(rel).display())))
    };
    let paired = read("devices/paired.json")?;
    let pending = read("devices/pending.json")?;
    clawgate_engine::pairing::PairingStore::load(paired.as_deref(), pending.as_deref())
        .map_err(|(file, problem)| (1, format!("{} is corrupt: {problem}", dir.join(file).display())))
}

/// `$OPENCLAW_CONFIG_PATH`, else `<state dir>/openclaw.json`.
fn config_path(state_dir: &std::path::Path) -> std::path::PathBuf {
    env_nonempty("OPENCLAW_CONFIG_PATH").map_or_else(|| state_dir.join("openclaw.json"), Into::into)
}

/// The first local IPv4 address in 100.64.0.0/10 listed in `/proc/net/fib_trie` text.
fn tailnet_address(fib_trie: &str) -> Option<Ipv4Addr> {
    let mut last: Option<Ipv4Addr> = None;
    for line in fib_trie.lines() {
        let t = line.trim_start_matches([' ', '|', '-', '+']).trim();
        if let Ok(ip) = t.parse::<Ipv4Addr>() {
            last = Some(ip);
        } else if t.starts_with("/32 host LOCAL") {
            if let Some(ip) = last.filter(|ip| ip.octets()[0] == 100 && (ip.octets()[1] & 0xc0) == 64) {
                return Some(ip);
            }
        }
    }
    None
}

/// Reads and checks the configuration file (absent: an empty one). Invalid: exit 78 with the
/// file, line and column.
fn load_config(path: &std::path::Path) -> Result<clawgate_engine::settings::FileSettings, (u8, String)> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(e) => return Err((78, format!("{}: {e}", path.display()))),
    };
    let env = |name: &str| std::env::var(name).ok();
    let (settings, warnings) = clawgate_engine::settings::parse(&text, &env)
        .map_err(|e| (78, format!("{}:{}:{}: {}", path.display(), e.line, e.column, e.message)))?;
    for w in warnings {
        eprintln!("clawgate: {}: {w}", path.display());
    }
    Ok(settings)
}

fn gateway_run(args: &Args) -> Result<(), (u8, String)> {
    let usage = |m: String| (2u8, m);
    let runtime = args.value("--runtime").unwrap_or("smol");
    if !matches!(runtime, "smol" | "mio") {
        return Err(usage(format!("invalid --runtime {runtime} (smol or mio)")));
    }
    let explicit_mode = match args.value("--auth") {
        None => None,
        Some(m) => Some(
            AuthMode::parse(m)
                .filter(|m| *m != AuthMode::TrustedProxy)
                .ok_or_else(|| usage(format!("invalid --auth {m} (none, token or password)")))?,
        ),
    };
    if let Some(p) = args.value("--port") {
        p.parse::<u16>().map_err(|_| usage(format!("invalid --port {p}")))?;
    }
    let state_dir = state_dir(args);
    let config_file = config_path(&state_dir);
    let file = load_config(&config_file)?;

    // Port: flag, environment, file, default. Bind: flag, file, loopback.
    let port = match (args.value("--port"), env_nonempty("OPENCLAW_GATEWAY_PORT")) {
        (Some(_), _) | (None, Some(_)) => resolve_port(args).map_err(usage)?,
        (None, None) => file.port.unwrap_or(DEFAULT_PORT),
    };
    let bind_mode = args
        .value("--bind")
        .map(str::to_owned)
        .or(file.bind.clone())
        .unwrap_or_else(|| "loopback".into());
    let addrs: Vec<SocketAddr> = match bind_mode.as_str() {
        "loopback" | "auto" => vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
        ],
        "lan" => vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)],
        "custom" => match file.custom_bind_host.as_deref().map(str::parse::<Ipv4Addr>) {
            Some(Ok(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
            _ => {
                return Err((
                    78,
                    "gateway.bind is custom but gateway.customBindHost is not an IPv4 address".into(),
                ))
            }
        },
        "tailnet" => {
            // The host's Tailscale address (100.64.0.0/10), else loopback as the reference does.
            let fib = std::fs::read_to_string("/proc/net/fib_trie").unwrap_or_default();
            match tailnet_address(&fib) {
                Some(ip) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
                None => {
                    eprintln!("clawgate: no Tailscale (100.64.0.0/10) address on this host; binding loopback");
                    vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)]
                }
            }
        }
        other => match other.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => {
                return Err(usage(format!(
                    "invalid --bind {other} (loopback, lan or an IP address)"
                )))
            }
        },
    };

    // Secrets: command line, then file, then environment; none at all: a generated token.
    let overrides = clawgate_engine::config::Overrides {
        auth_mode: explicit_mode,
        token: args.value("--token").map(str::to_owned),
        password: args.value("--password").map(str::to_owned),
        auto_approve_local: args.has("--no-auto-approve-local").then_some(false),
        env_token: env_nonempty("OPENCLAW_GATEWAY_TOKEN"),
        env_password: env_nonempty("OPENCLAW_GATEWAY_PASSWORD"),
    };
    let mut generated = None;
    let auth = match overrides.effective_auth(&file) {
        Some(a) if a.mode == AuthMode::Password && a.password.is_none() => {
            return Err(usage(
                "--auth password needs --password, gateway.auth.password or OPENCLAW_GATEWAY_PASSWORD".into(),
            ))
        }
        Some(a) if a.mode != AuthMode::Token || a.token.is_some() => a,
        _ => {
            let mut bytes = [0u8; 24];
            OsEntropy.fill(&mut bytes);
            let t = base64url_encode(&bytes);
            generated = Some(t.clone());
            SharedSecretConfig {
                mode: AuthMode::Token,
                token: Some(t),
                password: None,
            }
        }
    };
    if auth.mode == AuthMode::TrustedProxy
        && (file.trusted_proxy.user_header.is_none() || file.trusted_proxies.is_empty())
    {
        return Err((
            78,
            "auth mode trusted-proxy needs gateway.auth.trustedProxy.userHeader and gateway.trustedProxies".into(),
        ));
    }
    let loopback_only = addrs.iter().all(|a| a.ip().is_loopback());
    if !loopback_only && auth.mode == AuthMode::None {
        return Err((
            1,
            "refusing to listen beyond loopback without a token or password (drop --auth none or use --bind loopback)"
                .into(),
        ));
    }
    let mut lock = StateLock::take(&state_dir, port)?;
    let listeners = match bind(&addrs[..1]) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            return Err((
                1,
                format!("port {port} is already in use ({e}); choose another with --port"),
            ))
        }
        Err(e) => return Err((1, e.to_string())),
    };
    let mut listeners = listeners;
    let bound_port = listeners[0].local_addr().map(|a| a.port()).unwrap_or(port);
    for extra in &addrs[1..] {
        // The IPv6 loopback is a convenience: a host without IPv6 still serves on 127.0.0.1.
        let mut addr = *extra;
        addr.set_port(bound_port);
        match bind(&[addr]) {
            Ok(mut l) => listeners.append(&mut l),
            Err(e) => eprintln!("clawgate: not listening on {addr}: {e}"),
        }
    }
    if let Some(t) = &generated {
        println!("clawgate: generated gateway token (pass --token to choose your own): {t}");
    }
    if bound_port != port {
        lock.record(bound_port).map_err(|e| {
            (
                1,
                format!("cannot write {}: {e}", state_dir.join("gateway.lock").display()),
            )
        })?;
    }
    let store = load_pairing(&state_dir)?;
    let transcripts = clawgate_runtime_smol::load_transcripts(&state_dir)
        .map_err(|e| (1, format!("cannot read the session transcripts: {e}")))?;
    let queue = clawgate_runtime_smol::read_state_file(&state_dir, clawgate_engine::agents::QUEUE_FILE)
        .map_err(|e| (1, format!("cannot read {}: {e}", clawgate_engine::agents::QUEUE_FILE)))?;
    let mut config = GatewayConfig::new(auth);
    config.auto_approve_local = overrides.auto_approve_local.or(file.auto_approve_local).unwrap_or(true);
    config.state_dir = state_dir.display().to_string();
    config.config_path = config_file.display().to_string();
    config.host_name = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    config.rate_limit = file.rate_limit.unwrap_or_default();
    config.allowed_origins = file.allowed_origins.clone();
    config.control_ui_root = args
        .value("--control-ui")
        .map(str::to_owned)
        .or_else(|| file.control_ui_root.clone());
    config.control_ui_base_path = file
        .control_ui_base_path
        .as_deref()
        .map(|p| p.trim_end_matches('/').to_owned())
        .filter(|p| p.is_empty() || p.starts_with('/'))
        .unwrap_or_default();
    if let Some(root) = &config.control_ui_root {
        if !std::path::Path::new(root).join("index.html").is_file() {
            return Err((1, format!("no index.html in the Control UI folder {root}")));
        }
        eprintln!("clawgate: serving the Control UI from {root}");
    }
    config.trusted_proxies = file.trusted_proxies.clone();
    config.trusted_proxy = file.trusted_proxy.clone();
    if let Some(mode) = file
        .reload_mode
        .as_deref()
        .and_then(clawgate_engine::reload::ReloadMode::parse)
    {
        config.reload_mode = mode;
    }
    if let Some(key) = &file.main_key {
        config.main_key = key.clone();
    }
    config.tool_policy = file.tool_policy.clone();
    config.sandbox = match clawgate_tools::sandbox::probe() {
        Ok(kind) => {
            eprintln!("clawgate: sandboxed tool calls are confined with {kind}");
            Some(kind)
        }
        Err(why) => {
            eprintln!("clawgate: {why}; tool calls the policy wants sandboxed are refused");
            None
        }
    };
    if let Some(scope) = file.session_scope {
        config.session_scope = scope;
    }
    if let Some(ms) = file.session_prune_after_ms {
        config.session_prune_after_ms = ms;
    }
    config.overrides = overrides;
    let gateway = Gateway::new(config, Box::new(OsEntropy), now_ms())
        .with_pairing(store)
        .with_transcripts(transcripts)
        .with_agent_queue(queue.as_deref().unwrap_or("{}"))
        .map_err(|problem| {
            let path = state_dir.join(clawgate_engine::agents::QUEUE_FILE);
            (1, format!("{} is corrupt: {problem}", path.display()))
        })?
        .with_config_document(file.document.clone());
    let debounce = file.reload_debounce_ms.map(std::time::Duration::from_millis);
    let signals = |e: std::io::Error| (1, format!("cannot install signal handlers: {e}"));
    let exit = if runtime == "mio" {
        let rt = clawgate_runtime_mio::MioRuntime::new(listeners)
            .map_err(|e| (1, e.to_string()))?
            .with_state_dir(Some(state_dir))
            .with_config_file(Some(config_file))
            .with_config_debounce(debounce);
        clawgate_runtime_mio::stop_on_signals(rt.stop_handle()).map_err(signals)?;
        rt.run(gateway).map_err(|e| (1, e.to_string()))?
    } else {
        let (stop, stop_rx) = stop_channel();
        stop_on_signals(stop).map_err(signals)?;
        let options = clawgate_runtime_smol::Options {
            state_dir: Some(state_dir),
            config_file: Some(config_file),
            config_debounce: debounce,
        };
        run(gateway, listeners, stop_rx, options).map_err(|e| (1, e.to_string()))?
    };
    if exit == clawgate_runtime_smol::Exit::Restart {
        restart_in_place()?;
    }
    Ok(())
}

/// `<state dir>/gateway.lock`: an advisory lock held by the gateway that uses the directory, and
/// the PID and port it serves on, so that a second gateway on the same state is refused with a
/// message naming the first. The kernel releases the lock when the process exits or re-executes
/// itself, so a crash never leaves the directory locked; the file itself stays (removing it would let
/// a gateway that opened the old file and one that creates a new one both hold "the" lock).
struct StateLock(std::fs::File);

impl StateLock {
    /// Takes the lock before the listeners are bound, so that a gateway answering on its port has
    /// always already written who it is.
    fn take(state_dir: &std::path::Path, port: u16) -> Result<StateLock, (u8, String)> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let path = state_dir.join("gateway.lock");
        let cannot = |e: std::io::Error| (1, format!("cannot use {}: {e}", path.display()));
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(state_dir)
                .map_err(cannot)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .mode(0o600)
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(cannot)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let held: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                let who = match (held["pid"].as_u64(), held["port"].as_u64()) {
                    (Some(pid), Some(port)) => format!("another gateway (pid {pid}, port {port})"),
                    _ => "another gateway".to_owned(),
                };
                return Err((1, format!("{who} uses the state directory {}", state_dir.display())));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(cannot(e)),
        }
        let mut lock = StateLock(file);
        lock.record(port).map_err(cannot)?;
        Ok(lock)
    }

    /// Writes this process's PID and port into the held lock file (again once an ephemeral port
    /// is known).
    fn record(&mut self, port: u16) -> std::io::Result<()> {
        use std::io::{Seek, Write};
        let body = serde_json::json!({"pid": std::process::id(), "port": port}).to_string();
        self.0.set_len(0)?;
        self.0.seek(std::io::SeekFrom::Start(0))?;
        self.0.write_all(body.as_bytes())?;
        self.0.sync_data()
    }
}

/// Starts this program again in this process, with the same arguments (after a configuration
/// change that cannot apply live). The listeners are closed on exec.
fn restart_in_place() -> Result<(), (u8, String)> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|e| (1, format!("cannot restart: {e}")))?;
    eprintln!("clawgate: restarting for a configuration change");
    let err = std::process::Command::new(exe).args(std::env::args_os().skip(1)).exec();
    Err((1, format!("cannot restart: {err}")))
}

/// `clawgate agent`: serves one agent until stopped.
fn agent_worker(args: &Args) -> Result<(), (u8, String)> {
    let agent = args.value("--agent").unwrap_or("main");
    if !clawgate_proto::session::AgentId::is_valid(agent) {
        return Err((2, format!("invalid --agent {agent}")));
    }
    let agent = clawgate_proto::session::AgentId::normalize(agent);
    let backend = match args.value("--backend").unwrap_or("echo") {
        "echo" => worker::Backend::Echo {
            delay: std::time::Duration::from_millis(match args.value("--delay-ms") {
                Some(v) => v.parse().map_err(|_| (2, format!("invalid --delay-ms {v}")))?,
                None => 0,
            }),
            tool: args.value("--tool").map(str::to_owned),
        },
        "openai" => worker::Backend::OpenAi {
            base_url: args
                .value("--base-url")
                .map(str::to_owned)
                .or_else(|| env_nonempty("OPENAI_BASE_URL"))
                .unwrap_or_else(|| "http://127.0.0.1:11434/v1".to_owned()),
            model: args
                .value("--model")
                .map(str::to_owned)
                .or_else(|| env_nonempty("OPENAI_MODEL"))
                .unwrap_or_else(|| "llama3.2".to_owned()),
            api_key: args
                .value("--api-key")
                .map(str::to_owned)
                .or_else(|| env_nonempty("OPENAI_API_KEY")),
        },
        other => return Err((2, format!("invalid --backend {other} (echo or openai)"))),
    };
    let target = client_target(args, &[]).map_err(|e| (2, e))?;
    worker::run(target, agent.as_str(), &backend).map_err(|e| (1, e))
}

fn client_target(args: &Args, scopes: &[&str]) -> Result<client::Target, String> {
    let url = match args.value("--url") {
        Some(u) => u.to_owned(),
        None => format!("ws://127.0.0.1:{}", resolve_port(args)?),
    };
    Ok(client::Target {
        url,
        token: args
            .value("--token")
            .map(str::to_owned)
            .or_else(|| env_nonempty("OPENCLAW_GATEWAY_TOKEN")),
        password: args
            .value("--password")
            .map(str::to_owned)
            .or_else(|| env_nonempty("OPENCLAW_GATEWAY_PASSWORD")),
        node: None,
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
    })
}

fn describe(e: client::CallError) -> (u8, String) {
    match e {
        client::CallError::Io(m) => (1, m),
        client::CallError::Gateway(e) => (1, format!("{}: {}", e.code, e.message)),
    }
}

fn call(args: &Args, method: &str, params: &serde_json::Value, scopes: &[&str]) -> Result<(), (u8, String)> {
    let target = client_target(args, scopes).map_err(|m| (2, m))?;
    let mut session = client::Session::connect(&target).map_err(describe)?;
    let payload = session.call(method, params).map_err(describe)?;
    let text = payload.map_or("null".to_owned(), |p| p.get().to_owned());
    let pretty = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(text);
    println!("{pretty}");
    Ok(())
}

const ALL_SCOPES: &[&str] = &[
    "operator.admin",
    "operator.read",
    "operator.write",
    "operator.approvals",
    "operator.pairing",
    "operator.talk.secrets",
];

fn logs(args: &Args) -> Result<(), (u8, String)> {
    let target = client_target(args, &["operator.read"]).map_err(|m| (2, m))?;
    let mut session = client::Session::connect(&target).map_err(describe)?;
    let mut cursor: Option<u64> = None;
    loop {
        let params = match cursor {
            Some(c) => serde_json::json!({"cursor": c}),
            None => serde_json::json!({}),
        };
        let payload = session.call("logs.tail", &params).map_err(describe)?;
        let value: serde_json::Value = payload
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_default();
        for line in value["lines"].as_array().into_iter().flatten() {
            println!("{}", line.as_str().unwrap_or_default());
        }
        cursor = value["cursor"].as_u64().or(cursor);
        if !args.has("--follow") {
            return Ok(());
        }
        // Every event (a tick at the latest) is a cue to look for new lines.
        session.next_event().map_err(describe)?;
    }
}

/// `clawgate config ...`: works on the file directly (the gateway picks changes up by itself).
fn config_command(args: &Args, words: &[&str]) -> Result<(), (u8, String)> {
    let path = config_path(&state_dir(args));
    match words {
        ["validate"] => {
            load_config(&path)?;
            println!("{}: valid", path.display());
            Ok(())
        }
        ["get", key] => {
            let file = load_config(&path)?;
            match clawgate_engine::settings::get_path(&file.document, key) {
                Some(v) => {
                    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
                    Ok(())
                }
                None => Err((1, format!("{key} is not set in {}", path.display()))),
            }
        }
        ["set", key, value] => {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|_| "{}".into());
            let mut doc: serde_json::Value =
                json5::from_str(&text).map_err(|e| (78, format!("{}: {e}", path.display())))?;
            // The value is JSON5 when it parses as such (numbers, booleans, lists), else a string.
            let new: serde_json::Value =
                json5::from_str(value).unwrap_or_else(|_| serde_json::Value::String((*value).into()));
            let mut cursor = &mut doc;
            let parts: Vec<&str> = key.split('.').collect();
            for part in &parts[..parts.len() - 1] {
                if !cursor.get(*part).is_some_and(serde_json::Value::is_object) {
                    cursor[*part] = serde_json::json!({});
                }
                cursor = &mut cursor[*part];
            }
            cursor[parts[parts.len() - 1]] = new;
            let rendered = serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
            // Check the result as the gateway will before replacing the file.
            let env = |name: &str| std::env::var(name).ok();
            clawgate_engine::settings::parse(&rendered, &env).map_err(|e| (78, format!("{key}: {}", e.message)))?;
            let dir = path.parent().unwrap_or(std::path::Path::new("."));
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("openclaw.json");
            clawgate_runtime_smol::write_atomically(dir, name, &rendered)
                .map_err(|e| (1, format!("cannot write {}: {e}", path.display())))?;
            if text.contains("//") || text.contains("/*") {
                eprintln!("clawgate: note: the file is rewritten as plain JSON; its comments were not kept");
            }
            Ok(())
        }
        _ => Err((2, format!("unknown config command: {}\n\n{USAGE}", words.join(" ")))),
    }
}

/// `clawgate devices ...`: pairing administration over RPC.
fn devices(args: &Args, words: &[&str]) -> Result<(), (u8, String)> {
    use serde_json::json;
    let role = args.value("--role").unwrap_or("operator");
    let (method, params) = match words {
        ["list"] | [] => ("device.pair.list", json!({})),
        ["approve", id] => ("device.pair.approve", json!({"requestId": id})),
        ["reject", id] => ("device.pair.reject", json!({"requestId": id})),
        ["remove", id] => ("device.pair.remove", json!({"deviceId": id})),
        ["rename", id, label] => ("device.pair.rename", json!({"deviceId": id, "label": label})),
        ["rotate", id] => ("device.token.rotate", json!({"deviceId": id, "role": role})),
        ["revoke", id] => ("device.token.revoke", json!({"deviceId": id, "role": role})),
        _ => return Err((2, format!("unknown devices command: {}\n\n{USAGE}", words.join(" ")))),
    };
    if args.has("--json") || method != "device.pair.list" {
        return call(args, method, &params, ALL_SCOPES);
    }
    let target = client_target(args, ALL_SCOPES).map_err(|m| (2, m))?;
    let mut session = client::Session::connect(&target).map_err(describe)?;
    let payload = session.call(method, &params).map_err(describe)?;
    let list: serde_json::Value = payload
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .unwrap_or_default();
    let pending = list["pending"].as_array().cloned().unwrap_or_default();
    let paired = list["paired"].as_array().cloned().unwrap_or_default();
    println!("Pending ({})", pending.len());
    for p in &pending {
        println!(
            "  {}  device {}  role {}  scopes {}",
            p["requestId"].as_str().unwrap_or(""),
            p["deviceId"].as_str().unwrap_or(""),
            p["role"].as_str().unwrap_or(""),
            p["scopes"]
                .as_array()
                .map(|s| s.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(","))
                .unwrap_or_default()
        );
    }
    println!("Paired ({})", paired.len());
    for d in &paired {
        let name = d["operatorLabel"]
            .as_str()
            .or(d["displayName"].as_str())
            .or(d["clientId"].as_str())
            .unwrap_or("");
        println!(
            "  {}  {}  roles {}  scopes {}",
            d["deviceId"].as_str().unwrap_or(""),
            name,
            d["roles"]
                .as_array()
                .map(|s| s.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(","))
                .unwrap_or_default(),
            d["scopes"]
                .as_array()
                .map(|s| s.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(","))
                .unwrap_or_default()
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&raw) {
        Ok(a) => a,
        Err(m) => {
            eprintln!("clawgate: {m}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.has("--help") || args.has("-h") || args.positional.is_empty() {
        print!("{USAGE}");
        return if args.positional.is_empty() && !args.has("--help") && !args.has("-h") {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let words: Vec<&str> = args.positional.iter().map(String::as_str).collect();
    let result = match words.as_slice() {
        ["gateway", "run"] | ["gateway"] => gateway_run(&args),
        ["call", method] => {
            let params = match args.value("--params") {
                Some(p) => match serde_json::from_str(p) {
                    Ok(v) => v,
                    Err(e) => {
                        eprintln!("clawgate: invalid --params JSON: {e}");
                        return ExitCode::from(2);
                    }
                },
                None => serde_json::json!({}),
            };
            call(&args, method, &params, ALL_SCOPES)
        }
        ["status"] => call(&args, "status", &serde_json::json!({}), &["operator.read"]),
        ["logs"] => logs(&args),
        ["devices", rest @ ..] => devices(&args, rest),
        ["agent"] => agent_worker(&args),
        ["reload"] => call(&args, "config.reload", &serde_json::json!({}), ALL_SCOPES),
        ["config", rest @ ..] => config_command(&args, rest),
        _ => Err((2, format!("unknown command: {}\n\n{USAGE}", words.join(" ")))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("clawgate: {message}");
            ExitCode::from(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tailnet_address_is_found_among_local_addresses() {
        let fib = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 100.64.0.0\n        /10 link UNICAST\n     |-- 100.101.102.103\n        /32 host LOCAL\n     |-- 127.0.0.1\n        /32 host LOCAL\n";
        assert_eq!(tailnet_address(fib), Some(Ipv4Addr::new(100, 101, 102, 103)));
        assert_eq!(tailnet_address("     |-- 127.0.0.1\n        /32 host LOCAL\n"), None);
        assert_eq!(
            tailnet_address("     |-- 100.128.0.1\n        /32 host LOCAL\n"),
            None,
            "outside 100.64.0.0/10"
        );
    }
}
