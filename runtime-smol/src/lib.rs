//! Drives the Clawgate engine with smol on a single thread.
//!
//! One local executor owns the [`Gateway`]. Every accepted socket gets a reader task and a writer
//! task; readers feed bytes into the engine, the outputs are dispatched to the writers, and one
//! timer task arms the engine's next timeout. The runtime holds no gateway logic.
//!
//! Memory per idle connection is kept small: reads go through one buffer shared by all
//! connections, and writers hold bytes only while they are being sent.

use clawgate_engine::{ConnId, Entropy, Gateway, LogLevel, Output};
use smol::channel::{Receiver, Sender};
use smol::io::AsyncWriteExt;
use smol::{Async, LocalExecutor, Timer};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Size of the read buffer shared by all connections.
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// Reads handled for one connection before yielding to the others.
const READS_PER_TURN: usize = 16;
/// Time a closing connection gets to flush what is queued before it is cut.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Time the gateway waits for clients to take their close frames at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

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
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let target = state_dir.join(relative);
    let dir = target.parent().unwrap_or(state_dir).to_path_buf();
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("state");
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
    std::fs::rename(&temp, &target)?;
    std::fs::File::open(&dir)?.sync_all()
}

/// Reads `state_dir/relative`; `Ok(None)` when it does not exist.
pub fn read_state_file(state_dir: &Path, relative: &str) -> io::Result<Option<String>> {
    match std::fs::read_to_string(state_dir.join(relative)) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Carries out a `persist` output: with a state directory the file is written durably first;
/// without one (tests, ephemeral gateways) the state lives in memory only.
pub fn persist(gateway: &mut Gateway, state_dir: Option<&Path>, path: &str, contents: &str, seq: u64) {
    match state_dir.map(|dir| write_atomically(dir, path, contents)) {
        None | Some(Ok(())) => gateway.handle_persisted(now_ms(), seq),
        Some(Err(e)) => gateway.handle_persist_failed(now_ms(), seq, &format!("{path}: {e}")),
    }
}

/// What another thread can ask of a running gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Shut down gracefully.
    Stop,
    /// Read the configuration file again.
    Reload,
}

/// How [`run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Stopped on request.
    Stopped,
    /// A configuration change needs a restart: start the gateway again with the same arguments.
    Restart,
}

/// Where the runtime keeps state and finds its configuration.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// State files (pairings); without it they live in memory only.
    pub state_dir: Option<PathBuf>,
    /// The configuration file to watch (polled every 300 ms) and to read on reload.
    pub config_file: Option<PathBuf>,
    /// How long the file must stay unchanged before it is read (`gateway.reload.debounceMs`;
    /// 300 ms when unset).
    pub config_debounce: Option<Duration>,
}

/// A way to stop or reload a running gateway from another thread.
#[derive(Debug, Clone)]
pub struct StopHandle(Sender<Control>);

impl StopHandle {
    /// Asks the gateway to shut down gracefully.
    pub fn stop(&self) {
        let _ = self.0.try_send(Control::Stop);
    }

    /// Asks the gateway to read its configuration file again.
    pub fn reload(&self) {
        let _ = self.0.try_send(Control::Reload);
    }
}

/// A stop handle and the receiver [`run`] listens on.
pub fn stop_channel() -> (StopHandle, Receiver<Control>) {
    let (tx, rx) = smol::channel::bounded(16);
    (StopHandle(tx), rx)
}

/// How often the configuration file is checked for changes, and how long it must stay unchanged.
const CONFIG_POLL: Duration = Duration::from_millis(300);

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

/// Stops on SIGINT and SIGTERM, reloads on SIGHUP.
pub fn stop_on_signals(handle: StopHandle) -> io::Result<()> {
    on_signals(move |stop| if stop { handle.stop() } else { handle.reload() })
}

enum WriteCmd {
    Bytes(Vec<u8>),
    Close,
}

struct Writer {
    tx: Sender<WriteCmd>,
    queued: Rc<Cell<usize>>,
    stream: Rc<Async<TcpStream>>,
}

struct Shared {
    gateway: RefCell<Gateway>,
    writers: RefCell<HashMap<ConnId, Writer>>,
    read_buf: RefCell<Vec<u8>>,
    timer_wake: Sender<()>,
    stopped: Sender<()>,
    state_dir: Option<PathBuf>,
    config_file: Option<PathBuf>,
    tools: clawgate_tools::ToolRunner,
    tool_results: Sender<ToolResult>,
    transcripts: RefCell<Transcripts>,
}

/// A finished tool run: its call number and outcome.
pub type ToolResult = (u64, clawgate_tools::ToolOutcome);

/// Starts `run` on its own thread (tools block); the result comes back through `results`.
pub fn start_tool(
    runner: &clawgate_tools::ToolRunner,
    run: clawgate_engine::tool_calls::ToolRun,
    results: impl FnOnce(ToolResult) + Send + 'static,
) {
    let runner = runner.clone();
    std::thread::spawn(move || results((run.call, runner.run(&run))));
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

async fn watch_config(path: PathBuf, debounce: Duration, control: Sender<Control>) {
    let mut seen = file_stamp(&path);
    loop {
        Timer::after(CONFIG_POLL).await;
        let now = file_stamp(&path);
        if now == seen {
            continue;
        }
        // Debounce: wait until the file stays the same for the debounce period.
        let mut last = now;
        loop {
            Timer::after(debounce).await;
            let again = file_stamp(&path);
            if again == last {
                break;
            }
            last = again;
        }
        seen = last;
        let _ = control.send(Control::Reload).await;
    }
}

impl Shared {
    /// Carries out every pending output of the engine.
    fn drain(self: &Rc<Self>, ex: &LocalExecutor<'_>) {
        loop {
            let output = self.gateway.borrow_mut().poll_output();
            let Some(output) = output else { break };
            match output {
                Output::Transmit { conn, bytes } => {
                    if let Some(w) = self.writers.borrow().get(&conn) {
                        w.queued.set(w.queued.get() + bytes.len());
                        let _ = w.tx.try_send(WriteCmd::Bytes(bytes));
                    }
                }
                Output::Close { conn } => {
                    if let Some(w) = self.writers.borrow().get(&conn) {
                        let _ = w.tx.try_send(WriteCmd::Close);
                        // A peer that does not read must not keep the socket open forever.
                        let stream = w.stream.clone();
                        ex.spawn(async move {
                            Timer::after(CLOSE_GRACE).await;
                            let _ = stream.get_ref().shutdown(Shutdown::Both);
                        })
                        .detach();
                    }
                }
                Output::Log(line) => eprintln!("{}", line.render()),
                Output::Stopped => {
                    let _ = self.stopped.try_send(());
                }
                // Small, rare writes (pairing changes): done in place, so that nothing is
                // acknowledged before it is durable.
                Output::ReloadConfig => {
                    if let Some(path) = &self.config_file {
                        reload_config(&mut self.gateway.borrow_mut(), path);
                    }
                }
                Output::RunTool(run) => {
                    let tx = self.tool_results.clone();
                    start_tool(&self.tools, run, move |result| {
                        let _ = tx.send_blocking(result);
                    });
                }
                Output::AppendAudit { line } => audit(self.state_dir.as_deref(), &line),
                Output::AppendTranscript { file, line } => {
                    self.transcripts
                        .borrow_mut()
                        .append(self.state_dir.as_deref(), &file, &line)
                }
                Output::RemoveTranscript { file } => {
                    self.transcripts.borrow_mut().remove(self.state_dir.as_deref(), &file)
                }
                // Bundle files are small and cached by the browser: read in place.
                Output::ServeStatic(request) => {
                    let response = static_file(&request);
                    self.gateway
                        .borrow_mut()
                        .handle_static_response(now_ms(), &request, &response);
                }
                Output::Persist { path, contents, seq } => {
                    persist(
                        &mut self.gateway.borrow_mut(),
                        self.state_dir.as_deref(),
                        path,
                        &contents,
                        seq,
                    );
                }
            }
        }
        self.transcripts.borrow_mut().sync();
        let _ = self.timer_wake.try_send(());
    }
}

async fn write_loop(
    shared: Rc<Shared>,
    conn: ConnId,
    stream: Rc<Async<TcpStream>>,
    rx: Receiver<WriteCmd>,
    queued: Rc<Cell<usize>>,
) {
    let mut batch = Vec::new();
    while let Ok(cmd) = rx.recv().await {
        let mut close = matches!(cmd, WriteCmd::Close);
        if let WriteCmd::Bytes(b) = cmd {
            batch = b;
        }
        // Coalesce everything already queued into one write.
        while let Ok(more) = rx.try_recv() {
            match more {
                WriteCmd::Bytes(b) => batch.extend_from_slice(&b),
                WriteCmd::Close => close = true,
            }
        }
        if !batch.is_empty() {
            let len = batch.len();
            let result = (&*stream).write_all(&batch).await;
            batch = Vec::new();
            queued.set(queued.get().saturating_sub(len));
            shared.gateway.borrow_mut().handle_buffered(conn, queued.get());
            if result.is_err() {
                break;
            }
        }
        if close {
            break;
        }
    }
    let _ = stream.get_ref().shutdown(Shutdown::Both);
}

async fn read_loop(shared: Rc<Shared>, ex: Rc<LocalExecutor<'static>>, conn: ConnId, stream: Rc<Async<TcpStream>>) {
    'outer: loop {
        if stream.readable().await.is_err() {
            break;
        }
        for _ in 0..READS_PER_TURN {
            let read = {
                let mut buf = shared.read_buf.borrow_mut();
                stream.get_ref().read(&mut buf)
            };
            match read {
                Ok(0) => break 'outer,
                Ok(n) => {
                    let turn = std::time::Instant::now();
                    let buf = shared.read_buf.borrow();
                    shared.gateway.borrow_mut().handle_bytes(now_ms(), conn, &buf[..n]);
                    drop(buf);
                    shared.drain(&ex);
                    let micros = turn.elapsed().as_micros() as u64;
                    shared.gateway.borrow_mut().handle_loop_turn(micros);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue 'outer,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break 'outer,
            }
        }
        // A chatty client yields after its budget so that the others get their turn.
        smol::future::yield_now().await;
    }
    shared.writers.borrow_mut().remove(&conn);
    shared.gateway.borrow_mut().handle_closed(now_ms(), conn);
    shared.drain(&ex);
}

async fn accept_loop(shared: Rc<Shared>, ex: Rc<LocalExecutor<'static>>, listener: Async<TcpListener>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(ok) => ok,
            Err(e) => {
                shared
                    .gateway
                    .borrow_mut()
                    .handle_log(now_ms(), LogLevel::Error, format!("accept failed: {e}"));
                shared.drain(&ex);
                // Usually out of file descriptors: back off instead of spinning.
                Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.get_ref().set_nodelay(true);
        let stream = Rc::new(stream);
        let local = stream.get_ref().local_addr().unwrap_or(peer);
        let conn = shared.gateway.borrow_mut().handle_connection(now_ms(), peer, local);
        let (tx, rx) = smol::channel::unbounded();
        let queued = Rc::new(Cell::new(0));
        shared.writers.borrow_mut().insert(
            conn,
            Writer {
                tx,
                queued: queued.clone(),
                stream: stream.clone(),
            },
        );
        ex.spawn(write_loop(shared.clone(), conn, stream.clone(), rx, queued))
            .detach();
        ex.spawn(read_loop(shared.clone(), ex.clone(), conn, stream)).detach();
        shared.drain(&ex);
    }
}

async fn timer_loop(shared: Rc<Shared>, ex: Rc<LocalExecutor<'static>>, wake: Receiver<()>) {
    loop {
        let deadline = shared.gateway.borrow().poll_timeout();
        let sleep = async {
            match deadline {
                Some(at) => {
                    Timer::after(Duration::from_millis(at.saturating_sub(now_ms()))).await;
                }
                None => {
                    Timer::never().await;
                }
            }
            true
        };
        let woken = async {
            let _ = wake.recv().await;
            false
        };
        if smol::future::or(sleep, woken).await {
            shared.gateway.borrow_mut().handle_timeout(now_ms());
            shared.drain(&ex);
        }
    }
}

/// Waits until the engine reports it stopped, or the shutdown grace has passed.
async fn stopped_or_grace(stopped: &Receiver<()>) {
    smol::future::or(
        async {
            let _ = stopped.recv().await;
        },
        async {
            Timer::after(SHUTDOWN_GRACE).await;
        },
    )
    .await;
}

/// Runs the gateway on the bound listeners until a [`Control::Stop`] arrives (or every sender is
/// gone), or until a configuration change needs a restart.
pub fn run(
    gateway: Gateway,
    listeners: Vec<TcpListener>,
    control: Receiver<Control>,
    options: Options,
) -> io::Result<Exit> {
    let state_dir = options.state_dir.clone();
    let ex = Rc::new(LocalExecutor::new());
    let (timer_wake, wake_rx) = smol::channel::bounded(1);
    let (stopped_tx, stopped_rx) = smol::channel::bounded(1);
    let (tool_tx, tool_rx) = smol::channel::unbounded::<ToolResult>();
    let tools = clawgate_tools::ToolRunner::new(default_workspace(options.state_dir.as_deref()));
    let shared = Rc::new(Shared {
        gateway: RefCell::new(gateway),
        writers: RefCell::new(HashMap::new()),
        read_buf: RefCell::new(vec![0; READ_BUFFER_BYTES]),
        timer_wake,
        stopped: stopped_tx,
        state_dir,
        config_file: options.config_file.clone(),
        tools,
        tool_results: tool_tx,
        transcripts: RefCell::new(Transcripts::default()),
    });
    {
        let shared = shared.clone();
        let ex2 = ex.clone();
        ex.spawn(async move {
            while let Ok((call, result)) = tool_rx.recv().await {
                shared.gateway.borrow_mut().handle_tool_result(now_ms(), call, result);
                shared.drain(&ex2);
            }
        })
        .detach();
    }
    let mut urls = Vec::new();
    for listener in listeners {
        urls.push(format!("ws://{}", listener.local_addr()?));
        let listener = Async::new(listener)?;
        ex.spawn(accept_loop(shared.clone(), ex.clone(), listener)).detach();
    }
    shared
        .gateway
        .borrow_mut()
        .handle_log(now_ms(), LogLevel::Info, format!("listening on {}", urls.join(", ")));
    shared.drain(&ex);
    ex.spawn(timer_loop(shared.clone(), ex.clone(), wake_rx)).detach();
    // One channel for the main loop: external controls (forwarded; a closed channel means stop)
    // and reloads from the configuration file watcher.
    let (control_tx, control_rx) = smol::channel::unbounded::<Control>();
    {
        let tx = control_tx.clone();
        ex.spawn(async move {
            loop {
                match control.recv().await {
                    Ok(c) => {
                        let _ = tx.send(c).await;
                    }
                    Err(_) => {
                        let _ = tx.send(Control::Stop).await;
                        return;
                    }
                }
            }
        })
        .detach();
    }
    if let Some(path) = options.config_file.clone() {
        let debounce = options.config_debounce.unwrap_or(CONFIG_POLL);
        ex.spawn(watch_config(path, debounce, control_tx.clone())).detach();
    }
    let control = control_rx;
    let main = async {
        enum Next {
            Control(Option<Control>),
            Stopped,
        }
        loop {
            let next = smol::future::or(async { Next::Control(control.recv().await.ok()) }, async {
                let _ = stopped_rx.recv().await;
                Next::Stopped
            })
            .await;
            match next {
                Next::Stopped => {
                    let restart = shared.gateway.borrow().restart_requested();
                    return if restart { Exit::Restart } else { Exit::Stopped };
                }
                Next::Control(Some(Control::Reload)) => {
                    if let Some(path) = &options.config_file {
                        reload_config(&mut shared.gateway.borrow_mut(), path);
                        shared.drain(&ex);
                    }
                    if shared.gateway.borrow().restart_requested() {
                        stopped_or_grace(&stopped_rx).await;
                        return Exit::Restart;
                    }
                }
                Next::Control(Some(Control::Stop) | None) => {
                    shared
                        .gateway
                        .borrow_mut()
                        .handle_shutdown(now_ms(), "gateway stopping", None);
                    shared.drain(&ex);
                    stopped_or_grace(&stopped_rx).await;
                    return Exit::Stopped;
                }
            }
        }
    };
    Ok(smol::block_on(ex.run(main)))
}
