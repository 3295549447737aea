//! The workers `gateway run` starts itself: one `clawgate agent` process for every configured
//! agent that runs on a model, so that a configuration with a model is a working assistant with
//! one command. A worker that exits is started again after a pause that doubles from one second
//! to thirty (and starts over once a worker has run for a minute); a change of the file starts
//! and stops workers as agents gain or lose a model; at shutdown they are stopped.
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

/// Ends this process once its parent is no longer `supervisor` (for a worker the gateway started).
pub fn exit_with_supervisor(supervisor: u32) {
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(500));
        if std::os::unix::process::parent_id() != supervisor {
            eprintln!("clawgate agent: the gateway that started this worker is gone; stopping");
            std::process::exit(0);
        }
    });
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

/// The agents of the file that run on a model; an unreadable or invalid file changes nothing
/// (the gateway reports it), so `None`.
fn wanted(config_file: &Path) -> Option<Vec<String>> {
    let text = match std::fs::read_to_string(config_file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(Vec::new()),
        Err(_) => return None,
    };
    let env = |name: &str| std::env::var(name).ok();
    let (settings, _) = clawgate_engine::settings::parse(&text, &env).ok()?;
    Some(settings.models.agents_with_models(&settings.tool_policy))
}

fn spawn(target: &WorkerTarget, agent: &str) -> std::io::Result<Child> {
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.args(["agent", "--agent", agent, "--url", &target.url])
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

fn stop_worker(agent: &str, worker: &mut Worker) {
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
        eprintln!("clawgate: the worker of agent {agent} did not stop in time and was killed");
    }
}

fn supervise(target: &WorkerTarget, stop: &AtomicBool) {
    let mut workers: BTreeMap<String, Worker> = BTreeMap::new();
    let mut seen_file: Option<Option<SystemTime>> = None;
    let mut agents: Vec<String> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let stamp = modified(&target.config_file);
        if seen_file != Some(stamp) {
            seen_file = Some(stamp);
            if let Some(now_wanted) = wanted(&target.config_file) {
                agents = now_wanted;
            }
        }
        workers.retain(|agent, worker| {
            let keep = agents.contains(agent);
            if !keep {
                eprintln!("clawgate: agent {agent} has no model any more; its worker stops");
                stop_worker(agent, worker);
            }
            keep
        });
        let now = Instant::now();
        for agent in &agents {
            let worker = workers.entry(agent.clone()).or_insert(Worker {
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
                        "clawgate: the worker of agent {agent} exited ({status}); starting it again in {} s",
                        worker.pause.as_secs()
                    );
                    worker.restart_at = Some(now + worker.pause);
                    worker.pause = (worker.pause * 2).min(LONGEST_PAUSE);
                }
            }
            if worker.child.is_none() && worker.restart_at.is_some_and(|at| at <= now) {
                match spawn(target, agent) {
                    Ok(child) => {
                        worker.child = Some(child);
                        worker.started = now;
                        worker.restart_at = None;
                    }
                    Err(e) => {
                        eprintln!("clawgate: cannot start the worker of agent {agent}: {e}");
                        worker.restart_at = Some(now + worker.pause);
                        worker.pause = (worker.pause * 2).min(LONGEST_PAUSE);
                    }
                }
            }
        }
        std::thread::sleep(CHECK);
    }
    for (agent, worker) in workers.iter_mut() {
        stop_worker(agent, worker);
    }
}
