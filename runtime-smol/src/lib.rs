//! Drives the Clawgate engine with smol on a single thread.
//!
//! One local executor owns the [`Gateway`]. Every accepted socket gets a reader task and a writer
//! task; readers feed bytes into the engine, the outputs are dispatched to the writers, and one
//! timer task arms the engine's next timeout. The runtime holds no gateway logic.
//!
//! Memory per idle connection is kept small: reads go through one buffer shared by all
//! connections, and writers hold bytes only while they are being sent.

use clawgate_engine::{ConnId, Gateway, LogLevel};
pub use clawgate_io::{bind, now_ms, Exit, OsEntropy};
use clawgate_io::{on_signals, reload_config, ConfigWatch, Effects, SocketOutput, ToolResult, CONFIG_POLL};
use smol::channel::{Receiver, Sender};
use smol::io::AsyncWriteExt;
use smol::{Async, LocalExecutor, Timer};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

/// Size of the read buffer shared by all connections.
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// Reads handled for one connection before yielding to the others.
const READS_PER_TURN: usize = 16;

/// What another thread can ask of a running gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Shut down gracefully.
    Stop,
    /// Read the configuration file again.
    Reload,
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
    effects: RefCell<Effects>,
}

async fn watch_config(path: PathBuf, debounce: Option<Duration>, control: Sender<Control>) {
    let mut watch = ConfigWatch::new(path, debounce, std::time::Instant::now());
    loop {
        Timer::after(CONFIG_POLL).await;
        if watch.due(std::time::Instant::now()) {
            let _ = control.send(Control::Reload).await;
        }
    }
}

impl Shared {
    /// Carries out every pending output of the engine.
    fn drain(self: &Rc<Self>, ex: &LocalExecutor<'_>) {
        loop {
            let output = self.gateway.borrow_mut().poll_output();
            let Some(output) = output else { break };
            let socket = self
                .effects
                .borrow_mut()
                .execute(&mut self.gateway.borrow_mut(), output);
            match socket {
                None => {}
                Some(SocketOutput::Transmit { conn, bytes }) => {
                    if let Some(w) = self.writers.borrow().get(&conn) {
                        w.queued.set(w.queued.get() + bytes.len());
                        let _ = w.tx.try_send(WriteCmd::Bytes(bytes));
                    }
                }
                Some(SocketOutput::Close { conn }) => {
                    if let Some(w) = self.writers.borrow().get(&conn) {
                        let _ = w.tx.try_send(WriteCmd::Close);
                        // A peer that does not read must not keep the socket open forever.
                        let stream = w.stream.clone();
                        let grace = Duration::from_millis(self.gateway.borrow().config().close_grace_ms);
                        ex.spawn(async move {
                            Timer::after(grace).await;
                            let _ = stream.get_ref().shutdown(Shutdown::Both);
                        })
                        .detach();
                    }
                }
                Some(SocketOutput::Stopped) => {
                    let _ = self.stopped.try_send(());
                }
            }
        }
        self.effects.borrow_mut().end_of_turn();
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

/// How long the engine gives clients to take their close frames at shutdown.
fn shutdown_grace(shared: &Shared) -> Duration {
    Duration::from_millis(shared.gateway.borrow().config().shutdown_grace_ms)
}

/// Waits until the engine reports it stopped, or the shutdown grace has passed.
async fn stopped_or_grace(stopped: &Receiver<()>, grace: Duration) {
    smol::future::or(
        async {
            let _ = stopped.recv().await;
        },
        async {
            Timer::after(grace).await;
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
    let ex = Rc::new(LocalExecutor::new());
    let (timer_wake, wake_rx) = smol::channel::bounded(1);
    let (stopped_tx, stopped_rx) = smol::channel::bounded(1);
    let (tool_tx, tool_rx) = smol::channel::unbounded::<ToolResult>();
    let effects = Effects::new(
        options.state_dir.clone(),
        options.config_file.clone(),
        std::sync::Arc::new(move |result| {
            let _ = tool_tx.send_blocking(result);
        }),
    );
    let shared = Rc::new(Shared {
        gateway: RefCell::new(gateway),
        writers: RefCell::new(HashMap::new()),
        read_buf: RefCell::new(vec![0; READ_BUFFER_BYTES]),
        timer_wake,
        stopped: stopped_tx,
        effects: RefCell::new(effects),
    });
    {
        let shared = shared.clone();
        let ex2 = ex.clone();
        ex.spawn(async move {
            while let Ok(event) = tool_rx.recv().await {
                clawgate_io::deliver_tool_event(&mut shared.gateway.borrow_mut(), now_ms(), event);
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
        ex.spawn(watch_config(path, options.config_debounce, control_tx.clone()))
            .detach();
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
                        stopped_or_grace(&stopped_rx, shutdown_grace(&shared)).await;
                        return Exit::Restart;
                    }
                }
                Next::Control(Some(Control::Stop) | None) => {
                    shared
                        .gateway
                        .borrow_mut()
                        .handle_shutdown(now_ms(), "gateway stopping", None);
                    shared.drain(&ex);
                    stopped_or_grace(&stopped_rx, shutdown_grace(&shared)).await;
                    return Exit::Stopped;
                }
            }
        }
    };
    Ok(smol::block_on(ex.run(main)))
}
