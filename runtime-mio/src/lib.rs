//! Drives the Clawgate engine with a raw, single-threaded `mio::Poll` loop.
//!
//! Listeners and sockets are non-blocking and edge-triggered: a readable socket is read until it
//! would block, or until its per-turn budget is spent (then it is served again on the next turn, so
//! one chatty client cannot starve the rest). Each connection keeps a write queue; its length is
//! reported to the engine as back-pressure. The engine's next timeout is the poll timeout, and a
//! `mio::Waker` carries stop requests from other threads (signal handlers, tests).

use clawgate_engine::{ConnId, Gateway, LogLevel};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// Binding, the clock and the OS random source are the same for both runtimes.
pub use clawgate_io::{bind, now_ms, Exit, OsEntropy};
use clawgate_io::{reload_config, ConfigWatch, Effects, SocketOutput, CONFIG_POLL};

/// Size of the read buffer shared by all connections.
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// Reads handled for one connection per loop turn before the others get theirs.
const READS_PER_TURN: usize = 16;
/// The waker's token; listeners come next, then connections.
const WAKER: Token = Token(0);
const FIRST_LISTENER: usize = 1;
const FIRST_CONN: usize = 1 << 20;

/// Stops a running gateway from any thread.
#[derive(Clone)]
pub struct StopHandle {
    flag: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl std::fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StopHandle").finish_non_exhaustive()
    }
}

impl StopHandle {
    /// Asks the gateway to shut down gracefully.
    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }

    /// Asks the gateway to read its configuration file again.
    pub fn reload(&self) {
        self.reload.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }
}

/// Stops on SIGINT and SIGTERM, reloads on SIGHUP.
pub fn stop_on_signals(handle: StopHandle) -> io::Result<()> {
    clawgate_io::on_signals(move |stop| if stop { handle.stop() } else { handle.reload() })
}

struct Connection {
    id: ConnId,
    stream: TcpStream,
    queue: VecDeque<Vec<u8>>,
    /// Bytes of the front buffer already written.
    offset: usize,
    queued: usize,
    writable_registered: bool,
    /// Set when the engine closed the connection: cut it at this instant even if unflushed.
    close_deadline: Option<Instant>,
}

/// The runtime: a poll, its listeners and connections, and the engine.
pub struct MioRuntime {
    poll: Poll,
    listeners: Vec<TcpListener>,
    conns: HashMap<usize, Connection>,
    by_id: HashMap<ConnId, usize>,
    next_slot: usize,
    stop: StopHandle,
    read_buf: Vec<u8>,
    /// Connections whose read budget ran out while data was still pending.
    pending_reads: Vec<usize>,
    state_dir: Option<PathBuf>,
    config_file: Option<PathBuf>,
    config_debounce: Duration,
    /// Tools run on threads of their own; results wait here for the event loop (woken by the waker).
    tool_results: Arc<std::sync::Mutex<Vec<clawgate_io::ToolResult>>>,
    /// Made when the run starts, once the state directory and configuration file are known.
    effects: Option<Effects>,
}

impl MioRuntime {
    /// A runtime serving the given bound listeners.
    pub fn new(listeners: Vec<std::net::TcpListener>) -> io::Result<MioRuntime> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let mut mio_listeners = Vec::new();
        for (i, l) in listeners.into_iter().enumerate() {
            l.set_nonblocking(true)?;
            let mut l = TcpListener::from_std(l);
            poll.registry()
                .register(&mut l, Token(FIRST_LISTENER + i), Interest::READABLE)?;
            mio_listeners.push(l);
        }
        Ok(MioRuntime {
            poll,
            listeners: mio_listeners,
            conns: HashMap::new(),
            by_id: HashMap::new(),
            next_slot: FIRST_CONN,
            stop: StopHandle {
                flag: Arc::new(AtomicBool::new(false)),
                reload: Arc::new(AtomicBool::new(false)),
                waker,
            },
            read_buf: vec![0; READ_BUFFER_BYTES],
            pending_reads: Vec::new(),
            state_dir: None,
            config_file: None,
            config_debounce: CONFIG_POLL,
            tool_results: Arc::new(std::sync::Mutex::new(Vec::new())),
            effects: None,
        })
    }

    /// Watches `file` (polled every 300 ms, debounced) and reads it again on SIGHUP.
    pub fn with_config_file(mut self, file: Option<PathBuf>) -> Self {
        self.config_file = file;
        self
    }

    /// How long the file must stay unchanged before it is read (default 300 ms).
    pub fn with_config_debounce(mut self, debounce: Option<Duration>) -> Self {
        self.config_debounce = debounce.unwrap_or(CONFIG_POLL);
        self
    }

    /// Keeps state files (pairings) under `dir`; without it they live in memory only.
    pub fn with_state_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.state_dir = dir;
        self
    }

    /// A handle that stops [`MioRuntime::run`].
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Runs until stopped, then shuts down gracefully.
    pub fn run(mut self, mut gateway: Gateway) -> io::Result<Exit> {
        let results = self.tool_results.clone();
        let waker = self.stop.waker.clone();
        self.effects = Some(Effects::new(
            self.state_dir.clone(),
            self.config_file.clone(),
            Arc::new(move |result| {
                results.lock().unwrap_or_else(|e| e.into_inner()).push(result);
                let _ = waker.wake();
            }),
        ));
        let urls: Vec<String> = self
            .listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .map(|a| format!("ws://{a}"))
            .collect();
        gateway.handle_log(now_ms(), LogLevel::Info, format!("listening on {}", urls.join(", ")));
        let mut events = Events::with_capacity(1024);
        let mut stopping_since: Option<Instant> = None;
        let mut stopped = false;
        let debounce = self.config_debounce;
        let mut watch = self
            .config_file
            .clone()
            .map(|path| ConfigWatch::new(path, Some(debounce), Instant::now()));
        let exit = |gateway: &Gateway| {
            if gateway.restart_requested() {
                Exit::Restart
            } else {
                Exit::Stopped
            }
        };
        loop {
            self.drain(&mut gateway, &mut stopped);
            if stopped && self.conns.is_empty() {
                return Ok(exit(&gateway));
            }
            if let Some(since) = stopping_since {
                if since.elapsed() > Duration::from_millis(gateway.config().shutdown_grace_ms) {
                    return Ok(exit(&gateway));
                }
            }
            let file_changed = watch.as_mut().is_some_and(|w| w.due(Instant::now()));
            if (self.stop.reload.swap(false, Ordering::SeqCst) || file_changed) && stopping_since.is_none() {
                if let Some(path) = &self.config_file {
                    reload_config(&mut gateway, path);
                    if gateway.restart_requested() {
                        stopping_since = Some(Instant::now());
                        for l in &mut self.listeners {
                            let _ = self.poll.registry().deregister(l);
                        }
                    }
                    continue;
                }
            }
            let timeout = self.poll_timeout(&gateway, stopping_since);
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if self.stop.flag.load(Ordering::SeqCst) && stopping_since.is_none() {
                stopping_since = Some(Instant::now());
                for l in &mut self.listeners {
                    let _ = self.poll.registry().deregister(l);
                }
                gateway.handle_shutdown(now_ms(), "gateway stopping", None);
            }
            let turn = Instant::now();
            let mut readable = std::mem::take(&mut self.pending_reads);
            for event in events.iter() {
                let token = event.token().0;
                if token == WAKER.0 {
                    continue;
                }
                if (FIRST_LISTENER..FIRST_CONN).contains(&token) {
                    self.accept(&mut gateway, token - FIRST_LISTENER);
                    continue;
                }
                if event.is_writable() {
                    self.flush(&mut gateway, token);
                }
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    readable.push(token);
                }
            }
            readable.sort_unstable();
            readable.dedup();
            for token in readable {
                self.read(&mut gateway, token);
                self.drain(&mut gateway, &mut stopped);
            }
            let finished = std::mem::take(&mut *self.tool_results.lock().unwrap_or_else(|e| e.into_inner()));
            for event in finished {
                clawgate_io::deliver_tool_event(&mut gateway, now_ms(), event);
                self.drain(&mut gateway, &mut stopped);
            }
            self.cut_overdue(&mut gateway);
            gateway.handle_timeout(now_ms());
            gateway.handle_loop_turn(turn.elapsed().as_micros() as u64);
        }
    }

    fn poll_timeout(&self, gateway: &Gateway, stopping_since: Option<Instant>) -> Option<Duration> {
        if !self.pending_reads.is_empty() {
            return Some(Duration::ZERO);
        }
        let mut timeout = gateway
            .poll_timeout()
            .map(|at| Duration::from_millis(at.saturating_sub(now_ms())));
        let now = Instant::now();
        for c in self.conns.values() {
            if let Some(deadline) = c.close_deadline {
                let d = deadline.saturating_duration_since(now);
                timeout = Some(timeout.map_or(d, |t| t.min(d)));
            }
        }
        if let Some(since) = stopping_since {
            let d = (since + Duration::from_millis(gateway.config().shutdown_grace_ms)).saturating_duration_since(now);
            timeout = Some(timeout.map_or(d, |t| t.min(d)));
        }
        if self.config_file.is_some() {
            timeout = Some(timeout.map_or(CONFIG_POLL, |t| t.min(CONFIG_POLL)));
        }
        timeout
    }

    fn accept(&mut self, gateway: &mut Gateway, index: usize) {
        loop {
            let Some(listener) = self.listeners.get(index) else {
                return;
            };
            let (mut stream, peer) = match listener.accept() {
                Ok(ok) => ok,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Usually out of file descriptors; the listener stays registered and is retried
                    // on its next readiness.
                    gateway.handle_log(now_ms(), LogLevel::Error, format!("accept failed: {e}"));
                    return;
                }
            };
            let _ = stream.set_nodelay(true);
            let slot = self.next_slot;
            self.next_slot += 1;
            if self
                .poll
                .registry()
                .register(&mut stream, Token(slot), Interest::READABLE)
                .is_err()
            {
                continue;
            }
            let local = stream.local_addr().unwrap_or(peer);
            let id = gateway.handle_connection(now_ms(), peer, local);
            self.by_id.insert(id, slot);
            self.conns.insert(
                slot,
                Connection {
                    id,
                    stream,
                    queue: VecDeque::new(),
                    offset: 0,
                    queued: 0,
                    writable_registered: false,
                    close_deadline: None,
                },
            );
            // The socket may already hold data (edge-triggered: no second notice would come).
            self.pending_reads.push(slot);
        }
    }

    fn read(&mut self, gateway: &mut Gateway, slot: usize) {
        for _ in 0..READS_PER_TURN {
            let Some(c) = self.conns.get_mut(&slot) else { return };
            if c.close_deadline.is_some() {
                return;
            }
            match c.stream.read(&mut self.read_buf) {
                Ok(0) => return self.remove(gateway, slot),
                Ok(n) => gateway.handle_bytes(now_ms(), c.id, &self.read_buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.remove(gateway, slot),
            }
        }
        // Budget spent with data possibly left: serve the others, then come back.
        self.pending_reads.push(slot);
    }

    fn remove(&mut self, gateway: &mut Gateway, slot: usize) {
        if let Some(mut c) = self.conns.remove(&slot) {
            let _ = self.poll.registry().deregister(&mut c.stream);
            let _ = c.stream.shutdown(Shutdown::Both);
            self.by_id.remove(&c.id);
            gateway.handle_closed(now_ms(), c.id);
        }
    }

    /// Writes what is queued; returns false if the connection failed.
    fn flush(&mut self, gateway: &mut Gateway, slot: usize) -> bool {
        let Some(c) = self.conns.get_mut(&slot) else {
            return false;
        };
        let before = c.queued;
        while let Some(front) = c.queue.front() {
            match c.stream.write(&front[c.offset..]) {
                Ok(n) => {
                    c.offset += n;
                    c.queued -= n;
                    if c.offset == front.len() {
                        c.queue.pop_front();
                        c.offset = 0;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.remove(gateway, slot);
                    return false;
                }
            }
        }
        let want_writable = !c.queue.is_empty();
        if want_writable != c.writable_registered {
            let interest = if want_writable {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let _ = self.poll.registry().reregister(&mut c.stream, Token(slot), interest);
            c.writable_registered = want_writable;
        }
        if c.queued != before {
            gateway.handle_buffered(c.id, c.queued);
        }
        if c.queue.is_empty() && c.close_deadline.is_some() {
            self.remove(gateway, slot);
            return false;
        }
        true
    }

    fn cut_overdue(&mut self, gateway: &mut Gateway) {
        let now = Instant::now();
        let overdue: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.close_deadline.is_some_and(|d| d <= now))
            .map(|(s, _)| *s)
            .collect();
        for slot in overdue {
            self.remove(gateway, slot);
        }
    }

    fn drain(&mut self, gateway: &mut Gateway, stopped: &mut bool) {
        while let Some(output) = gateway.poll_output() {
            let Some(effects) = self.effects.as_mut() else { return };
            match effects.execute(gateway, output) {
                None => {}
                Some(SocketOutput::Transmit { conn, bytes }) => {
                    let Some(&slot) = self.by_id.get(&conn) else { continue };
                    if let Some(c) = self.conns.get_mut(&slot) {
                        c.queued += bytes.len();
                        c.queue.push_back(bytes);
                    }
                    self.flush(gateway, slot);
                }
                Some(SocketOutput::Close { conn }) => {
                    let Some(&slot) = self.by_id.get(&conn) else { continue };
                    if let Some(c) = self.conns.get_mut(&slot) {
                        c.close_deadline =
                            Some(Instant::now() + Duration::from_millis(gateway.config().close_grace_ms));
                    }
                    self.flush(gateway, slot);
                }
                Some(SocketOutput::Stopped) => *stopped = true,
            }
        }
        if let Some(effects) = self.effects.as_mut() {
            effects.end_of_turn();
        }
    }
}

/// Binds `addrs` and serves them until `stop` is called; a convenience for tests and tools.
pub fn spawn(
    gateway: Gateway,
    addrs: &[SocketAddr],
) -> io::Result<(Vec<SocketAddr>, StopHandle, std::thread::JoinHandle<io::Result<Exit>>)> {
    let listeners = bind(addrs)?;
    let local: Vec<SocketAddr> = listeners.iter().filter_map(|l| l.local_addr().ok()).collect();
    let runtime = MioRuntime::new(listeners)?;
    let stop = runtime.stop_handle();
    let thread = std::thread::spawn(move || runtime.run(gateway));
    Ok((local, stop, thread))
}
