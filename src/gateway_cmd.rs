//! `clawgate gateway run`: first everything is resolved (addresses, auth, state), then the gateway
//! runs on the chosen event loop.

use crate::cli::{AuthArg, RunArgs, RuntimeKind};
use crate::config_file::{self, env_nonempty};
use crate::exit::{print_line, Failure};
use clawgate_engine::settings::FileSettings;
use clawgate_engine::{Entropy, Gateway, GatewayConfig};
use clawgate_io::{bind, now_ms, OsEntropy};
use clawgate_proto::auth::{AuthMode, SharedSecretConfig};
use clawgate_runtime_smol::{run, stop_channel, stop_on_signals};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

pub const DEFAULT_PORT: u16 = 18789;

/// `OPENCLAW_GATEWAY_PORT` accepts `18789`, `127.0.0.1:18789` and `[::1]:18789`.
pub fn parse_port(text: &str) -> Option<u16> {
    let t = text.trim();
    t.parse::<u16>()
        .ok()
        .or_else(|| t.parse::<SocketAddr>().ok().map(|a| a.port()))
}

/// The port: flag, environment, file, default.
pub fn resolve_port(flag: Option<u16>, file: &FileSettings) -> Result<u16, Failure> {
    if let Some(p) = flag {
        return Ok(p);
    }
    if let Some(p) = env_nonempty("OPENCLAW_GATEWAY_PORT") {
        return parse_port(&p).ok_or_else(|| Failure::usage(format!("invalid OPENCLAW_GATEWAY_PORT {p}")));
    }
    Ok(file.port.unwrap_or(DEFAULT_PORT))
}

/// Everything the gateway needs, resolved before anything is bound.
struct Plan {
    runtime: RuntimeKind,
    state_dir: PathBuf,
    config_file: PathBuf,
    file: FileSettings,
    port: u16,
    addrs: Vec<SocketAddr>,
    auth: SharedSecretConfig,
    overrides: clawgate_engine::config::Overrides,
}

pub fn gateway_run(args: &RunArgs) -> Result<(), Failure> {
    let mut plan = resolve(args)?;
    let mut lock = StateLock::take(&plan.state_dir, plan.port)?;
    let (listeners, bound_port) = listen(&plan.addrs, plan.port)?;
    if bound_port != plan.port {
        lock.record(bound_port).map_err(|e| {
            Failure::failed(format!(
                "cannot write {}: {e}",
                plan.state_dir.join("gateway.lock").display()
            ))
        })?;
    }
    plan.port = bound_port;
    let gateway = build_gateway(&plan)?;
    // Workers reach the gateway on its first address (its loopback for wildcard binds).
    let supervisor = (!args.no_workers).then(|| {
        let first = listeners.first().and_then(|l| l.local_addr().ok());
        let host = match first {
            Some(a) if !a.ip().is_unspecified() => a.ip(),
            Some(a) if a.is_ipv6() => std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            _ => std::net::IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        crate::workers::start(crate::workers::WorkerTarget {
            url: format!("ws://{}", SocketAddr::new(host, bound_port)),
            auth: plan.auth.clone(),
            state_dir: plan.state_dir.clone(),
            config_file: plan.config_file.clone(),
        })
    });
    serve(plan, gateway, listeners, supervisor)
}

fn resolve(args: &RunArgs) -> Result<Plan, Failure> {
    let explicit_mode = args.auth.map(|a| match a {
        AuthArg::None => AuthMode::None,
        AuthArg::Token => AuthMode::Token,
        AuthArg::Password => AuthMode::Password,
    });
    let state_dir = config_file::state_dir(args.state_dir.as_deref());
    let config_file = config_file::config_path(&state_dir);
    let mut file = config_file::load(&config_file, true)?;
    let port = resolve_port(args.port, &file)?;
    let bind_mode = args
        .bind
        .clone()
        .or(file.bind.clone())
        .unwrap_or_else(|| "loopback".into());
    let addrs = addresses(&bind_mode, port, &file)?;

    // Secrets: command line, then file, then environment.
    let overrides = clawgate_engine::config::Overrides {
        auth_mode: explicit_mode,
        token: match &args.token_file {
            Some(path) => Some(crate::commands::read_token_file(path)?),
            None => args.token.clone(),
        },
        password: args.password.clone(),
        auto_approve_local: args.no_auto_approve_local.then_some(false),
        control_ui_root: args.control_ui.clone(),
        env_token: env_nonempty("OPENCLAW_GATEWAY_TOKEN"),
        env_password: env_nonempty("OPENCLAW_GATEWAY_PASSWORD"),
    };
    let auth = match overrides.effective_auth(&file) {
        Some(a) if a.mode == AuthMode::Password && a.password.is_none() => {
            return Err(Failure::usage(
                "--auth password needs --password, gateway.auth.password or OPENCLAW_GATEWAY_PASSWORD",
            ))
        }
        Some(a) if a.mode != AuthMode::Token || a.token.is_some() => a,
        _ => {
            // No secret anywhere: one is made once and kept in the configuration file, as
            // OpenClaw does, so that clients and workers still get in after a restart.
            let token = generate_token();
            config_file::set(
                &config_file,
                "gateway.auth.token",
                serde_json::Value::String(token.clone()),
            )?;
            file = config_file::load(&config_file, false)?;
            // Printed once, at the start that made it; later starts read it from the file.
            let _ = print_line(&format!(
                "clawgate: generated a gateway token and saved it as gateway.auth.token in {} \
                 (clients on this host read it from there): {token}",
                config_file.display()
            ));
            SharedSecretConfig {
                mode: AuthMode::Token,
                token: Some(token),
                password: None,
            }
        }
    };
    if auth.mode == AuthMode::TrustedProxy
        && (file.trusted_proxy.user_header.is_none() || file.trusted_proxies.is_empty())
    {
        return Err(Failure::config(
            "auth mode trusted-proxy needs gateway.auth.trustedProxy.userHeader and gateway.trustedProxies",
        ));
    }
    if !addrs.iter().all(|a| a.ip().is_loopback()) && auth.mode == AuthMode::None {
        return Err(Failure::failed(
            "refusing to listen beyond loopback without a token or password (drop --auth none or use --bind loopback)",
        ));
    }
    if let Some(root) = args.control_ui.as_ref().or(file.control_ui_root.as_ref()) {
        if !Path::new(root).join("index.html").is_file() {
            return Err(Failure::failed(format!(
                "no index.html in the Control UI folder {root}"
            )));
        }
    }
    Ok(Plan {
        runtime: args.runtime,
        state_dir,
        config_file,
        file,
        port,
        addrs,
        auth,
        overrides,
    })
}

/// 24 random bytes as 48 hex digits: nothing a shell or an argument parser reads specially (a
/// base64url token may start with `-`, which `--token` would take for a flag).
fn generate_token() -> String {
    let mut bytes = [0u8; 24];
    OsEntropy.fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The addresses a bind mode means.
fn addresses(bind_mode: &str, port: u16, file: &FileSettings) -> Result<Vec<SocketAddr>, Failure> {
    Ok(match bind_mode {
        "loopback" | "auto" => vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
        ],
        "lan" => vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)],
        "custom" => match file.custom_bind_host.as_deref().map(str::parse::<Ipv4Addr>) {
            Some(Ok(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
            _ => {
                return Err(Failure::config(
                    "gateway.bind is custom but gateway.customBindHost is not an IPv4 address",
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
                return Err(Failure::usage(format!(
                    "invalid --bind {other} (loopback, lan, tailnet, custom, auto or an IP address)"
                )))
            }
        },
    })
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

/// Binds the first address (its failure is fatal), then the others on the same port.
fn listen(addrs: &[SocketAddr], port: u16) -> Result<(Vec<TcpListener>, u16), Failure> {
    let mut listeners = match bind(&addrs[..1]) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            return Err(Failure::failed(format!(
                "port {port} is already in use ({e}); choose another with --port"
            )))
        }
        Err(e) => return Err(Failure::failed(e.to_string())),
    };
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
    Ok((listeners, bound_port))
}

/// Reads the pairing files back; a file that cannot be read or parsed stops the start (it is
/// left untouched).
fn load_pairing(dir: &Path) -> Result<clawgate_engine::pairing::PairingStore, Failure> {
    let read = |rel: &str| {
        clawgate_io::read_state_file(dir, rel)
            .map_err(|e| Failure::failed(format!("cannot read {}: {e}", dir.join(rel).display())))
    };
    let paired = read("devices/paired.json")?;
    let pending = read("devices/pending.json")?;
    clawgate_engine::pairing::PairingStore::load(paired.as_deref(), pending.as_deref())
        .map_err(|(file, problem)| Failure::failed(format!("{} is corrupt: {problem}", dir.join(file).display())))
}

/// The engine, configured from the plan and the state read back from disk.
fn build_gateway(plan: &Plan) -> Result<Gateway, Failure> {
    let file = &plan.file;
    let state_dir = &plan.state_dir;
    let store = load_pairing(state_dir)?;
    let transcripts = clawgate_io::load_transcripts(state_dir)
        .map_err(|e| Failure::failed(format!("cannot read the session transcripts: {e}")))?;
    let queue = clawgate_io::read_state_file(state_dir, clawgate_engine::agents::QUEUE_FILE)
        .map_err(|e| Failure::failed(format!("cannot read {}: {e}", clawgate_engine::agents::QUEUE_FILE)))?;
    let channel_state = clawgate_io::read_state_file(state_dir, clawgate_engine::channels::STATE_FILE)
        .map_err(|e| Failure::failed(format!("cannot read {}: {e}", clawgate_engine::channels::STATE_FILE)))?;
    let hook_state = clawgate_io::read_state_file(state_dir, clawgate_engine::hooks::STATE_FILE)
        .map_err(|e| Failure::failed(format!("cannot read {}: {e}", clawgate_engine::hooks::STATE_FILE)))?;
    let approvals_file = clawgate_engine::approvals::APPROVALS_FILE;
    let approvals = clawgate_io::read_state_file(state_dir, approvals_file)
        .map_err(|e| Failure::failed(format!("cannot read {approvals_file}: {e}")))?;
    let (cron_jobs, cron_runs) =
        clawgate_io::load_cron(state_dir).map_err(|e| Failure::failed(format!("cannot read the cron jobs: {e}")))?;
    let mut config = GatewayConfig::new(plan.auth.clone());
    let zones = clawgate_io::SystemTimeZones::default();
    config.host_time_zone = clawgate_io::host_time_zone(&zones);
    config.overrides = plan.overrides.clone();
    config.apply_file(file);
    config.state_dir = state_dir.display().to_string();
    config.config_path = plan.config_file.display().to_string();
    config.port = plan.port;
    config.host_name = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    if let Some(root) = &config.control_ui_root {
        eprintln!("clawgate: serving the Control UI from {root}");
    }
    let namespaces = std::env::current_exe()
        .map_err(|e| e.to_string())
        .and_then(|exe| clawgate_tools::sandbox::ExecSandbox::new(exe).probe());
    config.sandbox = match clawgate_tools::sandbox::probe().and_then(|kind| {
        namespaces.map(|()| format!("{kind}, and commands in user, network, process and mount namespaces of their own"))
    }) {
        Ok(kind) => {
            eprintln!("clawgate: sandboxed tool calls are confined with {kind}");
            Some(kind)
        }
        Err(why) => {
            eprintln!("clawgate: {why}; tool calls the policy wants sandboxed are refused");
            None
        }
    };
    let gateway = Gateway::new(config, Box::new(OsEntropy), now_ms())
        .with_pairing(store)
        .with_transcripts(transcripts)
        .with_agent_queue(queue.as_deref().unwrap_or("{}"))
        .map_err(|problem| {
            let path = state_dir.join(clawgate_engine::agents::QUEUE_FILE);
            Failure::failed(format!("{} is corrupt: {problem}", path.display()))
        })?
        .with_config_file(file.document.clone(), file.text.clone())
        .with_environment(std::env::vars())
        .with_executables(Box::new(clawgate_io::SystemExecutables::default()))
        .with_cron(cron_jobs.as_deref(), &cron_runs, Box::new(zones))
        .map_err(|problem| {
            let path = state_dir.join(clawgate_engine::scheduler::JOBS_FILE);
            Failure::failed(format!("{} is corrupt: {problem}", path.display()))
        })?
        .with_channels(channel_state.as_deref())
        .map_err(|problem| {
            let path = state_dir.join(clawgate_engine::channels::STATE_FILE);
            Failure::failed(format!("{} is corrupt: {problem}", path.display()))
        })?
        .with_hooks(hook_state.as_deref())
        .map_err(|problem| {
            let path = state_dir.join(clawgate_engine::hooks::STATE_FILE);
            Failure::failed(format!("{} is corrupt: {problem}", path.display()))
        })?;
    match approvals {
        None => Ok(gateway),
        Some(text) => gateway.with_exec_approvals(&text).map_err(|problem| {
            let path = state_dir.join(approvals_file);
            Failure::failed(format!("{} is corrupt: {problem}", path.display()))
        }),
    }
}

/// Runs the gateway until it stops; a restart-class configuration change starts the program again.
fn serve(
    plan: Plan,
    gateway: Gateway,
    listeners: Vec<TcpListener>,
    supervisor: Option<crate::workers::Supervisor>,
) -> Result<(), Failure> {
    let debounce = plan.file.reload_debounce_ms.map(std::time::Duration::from_millis);
    let signals = |e: std::io::Error| Failure::failed(format!("cannot install signal handlers: {e}"));
    let exit = match plan.runtime {
        RuntimeKind::Mio => {
            let rt = clawgate_runtime_mio::MioRuntime::new(listeners)
                .map_err(|e| Failure::failed(e.to_string()))?
                .with_state_dir(Some(plan.state_dir))
                .with_config_file(Some(plan.config_file))
                .with_config_debounce(debounce);
            clawgate_runtime_mio::stop_on_signals(rt.stop_handle()).map_err(signals)?;
            rt.run(gateway).map_err(|e| Failure::failed(e.to_string()))?
        }
        RuntimeKind::Smol => {
            let (stop, stop_rx) = stop_channel();
            stop_on_signals(stop).map_err(signals)?;
            let options = clawgate_runtime_smol::Options {
                state_dir: Some(plan.state_dir),
                config_file: Some(plan.config_file),
                config_debounce: debounce,
            };
            run(gateway, listeners, stop_rx, options).map_err(|e| Failure::failed(e.to_string()))?
        }
    };
    // The workers stop with the gateway (and before a restart starts new ones).
    drop(supervisor);
    if exit == clawgate_io::Exit::Restart {
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
    fn take(state_dir: &Path, port: u16) -> Result<StateLock, Failure> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let path = state_dir.join("gateway.lock");
        let cannot = |e: std::io::Error| Failure::failed(format!("cannot use {}: {e}", path.display()));
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
                return Err(Failure::failed(format!(
                    "{who} uses the state directory {}",
                    state_dir.display()
                )));
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
fn restart_in_place() -> Result<(), Failure> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|e| Failure::failed(format!("cannot restart: {e}")))?;
    eprintln!("clawgate: restarting (a configuration change or an operator asked for it)");
    let err = std::process::Command::new(exe).args(std::env::args_os().skip(1)).exec();
    Err(Failure::failed(format!("cannot restart: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_hex_so_that_no_argument_parser_takes_one_for_a_flag() {
        for _ in 0..200 {
            let token = super::generate_token();
            assert_eq!(token.len(), 48);
            assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
        }
    }

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
