//! `exec` and `process`: run a command in the workspace with a timeout and capped output, and
//! list or stop the commands that are running.

use crate::ToolError;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The timeout of a command that names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest timeout a call may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Resource limits of sandboxed commands: open files, address space (4 GiB), size of a written
/// file (1 GiB), no core dumps.
pub const SANDBOX_LIMITS: &[&str] = &["--nofile=256", "--as=4294967296", "--fsize=1073741824", "--core=0"];

const PRLIMIT: &str = "/usr/bin/prlimit";

/// The only variables a command sees: the gateway's own environment (tokens, keys) stays out.
const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ExecArgs {
    command: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    shell: bool,
    timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProcessArgs {
    action: String,
    pid: Option<u32>,
}

struct Running {
    command: String,
    started: Instant,
    stop: Arc<AtomicBool>,
    /// The gateway's number of the tool call that started it.
    call: Option<u64>,
}

/// The commands `exec` is running, shared by every call of one gateway.
#[derive(Clone, Default)]
pub struct ProcessTable {
    running: Arc<Mutex<BTreeMap<u32, Running>>>,
}

impl ProcessTable {
    /// An empty table.
    pub fn new() -> ProcessTable {
        ProcessTable::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, Running>> {
        // A panic while holding the lock leaves a table that is still consistent.
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `exec` in `dir` with at most `output_cap` bytes of each stream kept.
    pub fn exec(&self, dir: &Path, args: &Value, output_cap: usize) -> Result<Value, ToolError> {
        self.exec_limited(dir, args, output_cap, false)
    }

    /// Runs `exec`; with `limited`, under [`SANDBOX_LIMITS`] (through `prlimit`, which sets them
    /// on the command alone).
    pub fn exec_limited(&self, dir: &Path, args: &Value, output_cap: usize, limited: bool) -> Result<Value, ToolError> {
        self.exec_call(dir, args, output_cap, limited, None, None)
    }

    /// [`ProcessTable::exec_call`] with the command started through `wrapper` (a program and its
    /// arguments, ending where the command's own start: the sandbox's namespaces and Landlock).
    #[allow(clippy::too_many_arguments)]
    pub fn exec_wrapped(
        &self,
        dir: &Path,
        args: &Value,
        output_cap: usize,
        wrapper: &[String],
        call: Option<u64>,
        live: Option<OutputSink>,
    ) -> Result<Value, ToolError> {
        self.exec_inner(dir, args, output_cap, (true, wrapper), call, live)
    }

    /// Stops the command tool call `call` runs, if it runs one (its run was aborted); `true` when
    /// there was one.
    pub fn kill_call(&self, call: u64) -> bool {
        let table = self.lock();
        let mut found = false;
        for running in table.values().filter(|r| r.call == Some(call)) {
            running.stop.store(true, Ordering::Relaxed);
            found = true;
        }
        found
    }

    /// [`ProcessTable::exec_limited`] for tool call `call`, which [`ProcessTable::kill_call`] can
    /// stop; what the command prints also goes to `live` as it comes.
    pub fn exec_call(
        &self,
        dir: &Path,
        args: &Value,
        output_cap: usize,
        limited: bool,
        call: Option<u64>,
        live: Option<OutputSink>,
    ) -> Result<Value, ToolError> {
        self.exec_inner(dir, args, output_cap, (limited, &[]), call, live)
    }

    fn exec_inner(
        &self,
        dir: &Path,
        args: &Value,
        output_cap: usize,
        (limited, wrapper): (bool, &[String]),
        call: Option<u64>,
        live: Option<OutputSink>,
    ) -> Result<Value, ToolError> {
        let args: ExecArgs = crate::parse(args)?;
        if args.command.trim().is_empty() {
            return Err(ToolError::InvalidArguments("command must not be empty".into()));
        }
        let timeout = args
            .timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_TIMEOUT)
            .min(MAX_TIMEOUT);
        let mut argv: Vec<String> = if args.shell {
            let mut v = vec![
                "/bin/sh".to_owned(),
                "-c".to_owned(),
                args.command.clone(),
                "sh".to_owned(),
            ];
            v.extend(args.args.iter().cloned());
            v
        } else {
            let looks_like_a_command_line = args
                .command
                .contains(|c: char| c.is_whitespace() || "|&;<>$`*".contains(c));
            if looks_like_a_command_line && !dir.join(&args.command).exists() {
                return Err(ToolError::InvalidArguments(format!(
                    "`{}` looks like a command line, but exec runs no shell: put the program in \
                     command and its arguments in args (e.g. {{\"command\": \"ls\", \"args\": [\"-l\"]}}), \
                     or set \"shell\": true to run it with /bin/sh -c",
                    args.command
                )));
            }
            let mut v = vec![args.command.clone()];
            v.extend(args.args.iter().cloned());
            v
        };
        if limited {
            if !Path::new(PRLIMIT).exists() {
                return Err(ToolError::SandboxFailed(format!(
                    "{PRLIMIT} (util-linux) is needed to limit sandboxed commands"
                )));
            }
            let mut wrapped = vec![PRLIMIT.to_owned()];
            wrapped.extend(SANDBOX_LIMITS.iter().map(|l| (*l).to_owned()));
            wrapped.push("--".to_owned());
            wrapped.append(&mut argv);
            argv = wrapped;
        }
        if !wrapper.is_empty() {
            let mut wrapped = wrapper.to_vec();
            wrapped.append(&mut argv);
            argv = wrapped;
        }
        let mut command = Command::new(&argv[0]);
        command.args(&argv[1..]);
        command
            .current_dir(dir)
            .env_clear()
            .env("PATH", PATH)
            .env("HOME", dir)
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout stops what it started too.
            .process_group(0);
        let started = Instant::now();
        let mut child = command.spawn()?;
        let pid = child.id();
        let stop = Arc::new(AtomicBool::new(false));
        self.lock().insert(
            pid,
            Running {
                command: args.command.clone(),
                started,
                stop: stop.clone(),
                call,
            },
        );
        let (tx, rx) = mpsc::channel();
        for (stream, reader) in [
            (
                "stdout",
                child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
            ),
            (
                "stderr",
                child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
            ),
        ] {
            if let Some(reader) = reader {
                let tx = tx.clone();
                let live = live.clone();
                std::thread::spawn(move || {
                    let _ = tx.send((stream, read_capped(reader, output_cap, live)));
                });
            }
        }
        drop(tx);
        let mut ended_by = None;
        // Short commands are the common case: poll often at first, then back off.
        let mut pause = Duration::from_micros(50);
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if started.elapsed() >= timeout {
                ended_by = Some("timeout");
            } else if stop.load(Ordering::Relaxed) {
                ended_by = Some("killed");
            }
            if ended_by.is_some() {
                kill_group(pid);
                let _ = child.kill();
                break child.wait()?;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        };
        self.lock().remove(&pid);
        let mut out = json!({
            "exitCode": status.code(),
            "signal": status.signal(),
            "durationMs": started.elapsed().as_millis() as u64,
            "timedOut": ended_by == Some("timeout"),
            "killed": ended_by == Some("killed"),
        });
        // Something the command started may keep a pipe open; do not wait for it for long.
        let deadline = Instant::now() + Duration::from_millis(500);
        while let Ok((stream, (text, total))) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            out[stream] = json!(text);
            out[format!("{stream}Bytes")] = json!(total);
            out[format!("{stream}Truncated")] = json!(total > output_cap);
        }
        Ok(out)
    }

    /// Runs `process`: `list` what is running, or `kill` one by pid.
    pub fn process(&self, args: &Value) -> Result<Value, ToolError> {
        let args: ProcessArgs = crate::parse(args)?;
        match (args.action.as_str(), args.pid) {
            ("list", _) => {
                let list: Vec<Value> = self
                    .lock()
                    .iter()
                    .map(|(pid, r)| {
                        json!({"pid": pid, "command": r.command, "runningMs": r.started.elapsed().as_millis() as u64})
                    })
                    .collect();
                Ok(json!({"processes": list}))
            }
            ("kill", Some(pid)) => match self.lock().get(&pid) {
                Some(running) => {
                    running.stop.store(true, Ordering::Relaxed);
                    Ok(json!({"pid": pid, "killed": true}))
                }
                None => Err(ToolError::InvalidArguments(format!(
                    "no command started by exec has pid {pid}"
                ))),
            },
            ("kill", None) => Err(ToolError::InvalidArguments("kill needs a pid".into())),
            (other, _) => Err(ToolError::InvalidArguments(format!(
                "unknown action {other:?}; use list or kill"
            ))),
        }
    }
}

/// Reads everything, keeping the first `cap` bytes; returns the kept text and the total size.
/// Where a running command's output goes as it comes (the run's watchers see it).
pub type OutputSink = Arc<dyn Fn(&str) + Send + Sync>;

fn read_capped(mut reader: Box<dyn Read + Send>, cap: usize, live: Option<OutputSink>) -> (String, usize) {
    let mut kept = Vec::new();
    let mut total = 0;
    let mut buf = [0u8; 8192];
    loop {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                if let (Some(live), true) = (&live, room > 0) {
                    live(&String::from_utf8_lossy(&buf[..n.min(room)]));
                }
                total += n;
            }
        }
    }
    (String::from_utf8_lossy(&kept).into_owned(), total)
}

/// Stops every process of the group `pgid` (the command and what it started).
fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
