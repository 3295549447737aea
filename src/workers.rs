//! The workers `gateway run` starts itself: one `clawgate agent` process for every configured
//! agent that runs on a model, so that a configuration with a model is a working assistant with
//! one command. A worker that exits is started again after a pause that doubles from one second
//! to thirty (and starts over once a worker has run for a minute); a change of the file starts
//! and stops workers as agents gain or lose a model; at shutdown they are stopped.
//!
//! The same supervisor runs the adapter of each chat channel account that is enabled and
//! configured (`clawgate channel`, one process per account, so that a channel's crash, hang or
//! bad credentials never touch the gateway or another channel); an account whose settings change
//! gets a new adapter.
//!
//! A worker started by hand for the same agent is welcome: the gateway makes the first worker of
//! an agent its active one and the others standbys, so a hand-started worker and the managed
//! one back each other up.

use clawgate_proto::auth::{AuthMode, SharedSecretConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How often the supervisor looks at its workers and the configuration file.
const CHECK: Duration = Duration::from_millis(250);
/// First and longest pause before a worker that exited is started again.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const LONGEST_PAUSE: Duration = Duration::from_secs(30);
/// A worker that ran this long had a good start: the pause starts over.
const STEADY: Duration = Duration::from_secs(60);

/// Set for the workers the gateway starts: the gateway's process id. Such a worker ends when its
/// parent is no longer that gateway (killed without a chance to stop it).
pub const SUPERVISOR_PID_ENV: &str = "CLAWGATE_SUPERVISOR_PID";

/// Ends this process once its parent has not been `supervisor` for `grace` (for a worker the
/// gateway started). A process that stops by itself when its gateway goes (a channel adapter,
/// which first finishes the delivery under way) takes a grace period; this is the backstop for
/// one that hangs.
pub fn exit_with_supervisor(supervisor: u32, grace: Duration) {
    std::thread::spawn(move || {
        let mut gone_since: Option<Instant> = None;
        loop {
            std::thread::sleep(Duration::from_millis(500));
            if std::os::unix::process::parent_id() == supervisor {
                continue;
            }
            let since = *gone_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= grace {
                eprintln!("clawgate: the gateway that started this process is gone; stopping");
                std::process::exit(0);
            }
        }
    });
}

/// Whether this process was started by a gateway that is no longer its parent (it died).
pub fn supervisor_gone() -> bool {
    std::env::var(SUPERVISOR_PID_ENV)
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|pid| std::os::unix::process::parent_id() != pid)
}

/// What a worker needs to reach the gateway.
pub struct WorkerTarget {
    pub url: String,
    pub auth: SharedSecretConfig,
    pub state_dir: PathBuf,
    pub config_file: PathBuf,
}

/// The running supervisor; dropping it stops the workers.
pub struct Supervisor {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Worker {
    /// What the process is, for the log: `the worker of agent main`.
    what: String,
    /// The settings it was started with; a change starts it again.
    fingerprint: String,
    child: Option<Child>,
    started: Instant,
    pause: Duration,
    /// When a worker that exited is started again.
    restart_at: Option<Instant>,
}

/// Starts supervising the workers of `target`'s configuration.
pub fn start(target: WorkerTarget) -> Supervisor {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("workers".into())
        .spawn(move || supervise(&target, &flag))
        .ok();
    Supervisor { stop, thread }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// A process the file asks for: its key, its arguments, what it is, and its settings.
struct Wanted {
    key: String,
    args: Vec<String>,
    what: String,
    fingerprint: String,
}

/// The agents of the file that run on a model, and the channel accounts to serve; an unreadable
/// or invalid file changes nothing (the gateway reports it), so `None`.
fn wanted(config_file: &Path) -> Option<Vec<Wanted>> {
    let text = match std::fs::read_to_string(config_file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(Vec::new()),
        Err(_) => return None,
    };
    let env = |name: &str| std::env::var(name).ok();
    let (settings, _) = clawgate_engine::settings::parse(&text, &env).ok()?;
    let agents = settings
        .models
        .agents_with_models(&settings.tool_policy)
        .into_iter()
        .map(|agent| Wanted {
            key: format!("agent:{agent}"),
            args: vec!["agent".into(), "--agent".into(), agent.clone()],
            what: format!("the worker of agent {agent}"),
            fingerprint: String::new(),
        });
    let channels = clawgate_engine::channel_config::adapters_to_run(&settings.channels)
        .into_iter()
        .map(|(channel, account, fingerprint)| Wanted {
            key: format!("channel:{channel}:{account}"),
            args: vec![
                "channel".into(),
                "--channel".into(),
                channel.clone(),
                "--account".into(),
                account.clone(),
            ],
            what: format!("the {channel} adapter of account {account}"),
            fingerprint,
        });
    let mut wanted: Vec<Wanted> = agents.chain(channels).collect();
    if wanted.iter().any(|w| w.key.starts_with("channel:")) {
        // Where there are channels there are DM pairings, which `openclaw pairing` reads from
        // OpenClaw's own store.
        wanted.push(Wanted {
            key: "openclaw-pairing".into(),
            args: vec!["openclaw-pairing".into()],
            what: "the keeper of OpenClaw's pairing store".into(),
            fingerprint: String::new(),
        });
    }
    Some(wanted)
}

fn spawn(target: &WorkerTarget, wanted: &Wanted) -> std::io::Result<Child> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args(&wanted.args)
        .args(["--url", &target.url])
        .arg("--state-dir")
        .arg(&target.state_dir)
        .env("OPENCLAW_CONFIG_PATH", &target.config_file)
        .env(SUPERVISOR_PID_ENV, std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    // The secret goes by environment, never on the command line where `ps` shows it.
    cmd.env_remove("OPENCLAW_GATEWAY_TOKEN")
        .env_remove("OPENCLAW_GATEWAY_PASSWORD");
    match target.auth.mode {
        AuthMode::Token => {
            if let Some(t) = &target.auth.token {
                cmd.env("OPENCLAW_GATEWAY_TOKEN", t);
            }
        }
        AuthMode::Password => {
            if let Some(p) = &target.auth.password {
                cmd.env("OPENCLAW_GATEWAY_PASSWORD", p);
            }
        }
        _ => {}
    }
    cmd.spawn()
}

fn stop_worker(worker: &mut Worker) {
    if let Some(mut child) = worker.child.take() {
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        eprintln!("clawgate: {} did not stop in time and was killed", worker.what);
    }
}

fn supervise(target: &WorkerTarget, stop: &AtomicBool) {
    let mut workers: BTreeMap<String, Worker> = BTreeMap::new();
    let mut seen_file: Option<Option<SystemTime>> = None;
    let mut processes: Vec<Wanted> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let stamp = modified(&target.config_file);
        if seen_file != Some(stamp) {
            seen_file = Some(stamp);
            if let Some(now_wanted) = wanted(&target.config_file) {
                processes = now_wanted;
            }
        }
        workers.retain(|key, worker| {
            let keep = processes
                .iter()
                .any(|w| &w.key == key && w.fingerprint == worker.fingerprint);
            if !keep {
                eprintln!("clawgate: the configuration changed; {} stops", worker.what);
                stop_worker(worker);
            }
            keep
        });
        let now = Instant::now();
        for wanted in &processes {
            let worker = workers.entry(wanted.key.clone()).or_insert(Worker {
                what: wanted.what.clone(),
                fingerprint: wanted.fingerprint.clone(),
                child: None,
                started: now,
                pause: FIRST_PAUSE,
                restart_at: Some(now),
            });
            if let Some(child) = worker.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    worker.child = None;
                    if now.duration_since(worker.started) >= STEADY {
                        worker.pause = FIRST_PAUSE;
                    }
                    eprintln!(
                        "clawgate: {} exited ({status}); starting it again in {} s",
                        worker.what,
                        worker.pause.as_secs()
                    );
                    worker.restart_at = Some(now + worker.pause);
                    worker.pause = (worker.pause * 2).min(LONGEST_PAUSE);
                }
            }
            if worker.child.is_none() && worker.restart_at.is_some_and(|at| at <= now) {
                match spawn(target, wanted) {
                    Ok(child) => {
                        worker.child = Some(child);
                        worker.started = now;
                        worker.restart_at = None;
                    }
                    Err(e) => {
                        eprintln!("clawgate: cannot start {}: {e}", worker.what);
                        worker.restart_at = Some(now + worker.pause);
                        worker.pause = (worker.pause * 2).min(LONGEST_PAUSE);
                    }
                }
            }
        }
        std::thread::sleep(CHECK);
    }
    for worker in workers.values_mut() {
        stop_worker(worker);
    }
}
