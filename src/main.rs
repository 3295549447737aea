//! `clawgate`: the gateway daemon and a small command-line client for it.
#![forbid(unsafe_code)]

mod client;

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
  clawgate call <method> [--params JSON] [--url ws://HOST:PORT] [--token T | --password P]
  clawgate status [--url ...] [--token T]
  clawgate logs [--follow] [--url ...] [--token T]
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

fn gateway_run(args: &Args) -> Result<(), (u8, String)> {
    let usage = |m: String| (2u8, m);
    let port = resolve_port(args).map_err(usage)?;
    let runtime = args.value("--runtime").unwrap_or("smol");
    if !matches!(runtime, "smol" | "mio") {
        return Err(usage(format!("invalid --runtime {runtime} (smol or mio)")));
    }
    let bind_mode = args.value("--bind").unwrap_or("loopback");
    let addrs: Vec<SocketAddr> = match bind_mode {
        "loopback" => vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
        ],
        "lan" => vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)],
        other => match other.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => {
                return Err(usage(format!(
                    "invalid --bind {other} (loopback, lan or an IP address)"
                )))
            }
        },
    };
    let token = args
        .value("--token")
        .map(str::to_owned)
        .or_else(|| env_nonempty("OPENCLAW_GATEWAY_TOKEN"));
    let password = args
        .value("--password")
        .map(str::to_owned)
        .or_else(|| env_nonempty("OPENCLAW_GATEWAY_PASSWORD"));
    let explicit_mode = match args.value("--auth") {
        None => None,
        Some(m) => Some(
            AuthMode::parse(m)
                .filter(|m| *m != AuthMode::TrustedProxy)
                .ok_or_else(|| usage(format!("invalid --auth {m} (none, token or password)")))?,
        ),
    };
    let mut generated = None;
    let auth = match (explicit_mode, token, password) {
        (Some(AuthMode::None), _, _) => SharedSecretConfig {
            mode: AuthMode::None,
            token: None,
            password: None,
        },
        (Some(AuthMode::Password), _, None) => {
            return Err(usage(
                "--auth password needs --password or OPENCLAW_GATEWAY_PASSWORD".into(),
            ))
        }
        (Some(AuthMode::Password) | None, _, Some(p)) if explicit_mode != Some(AuthMode::Token) => SharedSecretConfig {
            mode: AuthMode::Password,
            token: None,
            password: Some(p),
        },
        (_, Some(t), _) => SharedSecretConfig {
            mode: AuthMode::Token,
            token: Some(t),
            password: None,
        },
        (_, None, _) => {
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
    let loopback_only = addrs.iter().all(|a| a.ip().is_loopback());
    if !loopback_only && auth.mode == AuthMode::None {
        return Err((
            1,
            "refusing to listen beyond loopback without a token or password (drop --auth none or use --bind loopback)"
                .into(),
        ));
    }
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
    let state_dir = state_dir(args);
    let store = load_pairing(&state_dir)?;
    let mut config = GatewayConfig::new(auth);
    config.auto_approve_local = !args.has("--no-auto-approve-local");
    config.state_dir = state_dir.display().to_string();
    config.host_name = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    let gateway = Gateway::new(config, Box::new(OsEntropy), now_ms()).with_pairing(store);
    let signals = |e: std::io::Error| (1, format!("cannot install signal handlers: {e}"));
    if runtime == "mio" {
        let rt = clawgate_runtime_mio::MioRuntime::new(listeners)
            .map_err(|e| (1, e.to_string()))?
            .with_state_dir(Some(state_dir));
        clawgate_runtime_mio::stop_on_signals(rt.stop_handle()).map_err(signals)?;
        return rt.run(gateway).map_err(|e| (1, e.to_string()));
    }
    let (stop, stop_rx) = stop_channel();
    stop_on_signals(stop).map_err(signals)?;
    run(gateway, listeners, stop_rx, Some(state_dir)).map_err(|e| (1, e.to_string()))
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
