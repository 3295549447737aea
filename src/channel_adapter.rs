//! The gateway side of a channel adapter process, the same for every chat network: it connects
//! to the gateway as a node with the cap `channel:<channel>:<account>`, reports the network's
//! state (`channel.state`), hands inbound messages over (`channel.inbound`, again until the
//! gateway has them durably), sends what the gateway delivers (`channel.deliver`, answered with
//! `channel.delivered`), and connects to or leaves its network as the gateway says
//! (`channel.control`). A network is a [`Network`]; the adapter owns the retries.

use clawgate_client::{Error as CallError, Session, Target};
use clawgate_engine::channels::{ADAPTER_CAP_PREFIX, CONTROL_EVENT, DELIVER_EVENT, PREVIEW_EVENT};
use clawgate_proto::ErrorCode;
use serde_json::{json, Value};
use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A message from the network, for the gateway.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    pub message_id: String,
    pub chat_type: &'static str,
    pub peer_id: String,
    pub sender_id: String,
    pub sender_name: String,
    pub text: String,
    pub mentioned: bool,
}

/// A message the gateway hands over for the network.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub target: String,
    pub text: String,
    /// The run whose reply it is, if it is one (its preview, if any, becomes the reply).
    pub run_id: Option<String>,
}

/// What a network reports from one poll.
#[derive(Default)]
pub struct AdapterIo {
    pub connected: bool,
    pub error: Option<String>,
    pub inbound: Vec<InboundMessage>,
}

/// A chat network as the adapter drives it.
pub trait Network {
    /// Starts connecting (the outcome comes through [`Network::poll`]).
    fn connect(&mut self) -> Result<(), String>;
    /// Leaves the network.
    fn disconnect(&mut self);
    /// Waits up to `wait` for something from the network; `io` holds the state so far.
    fn poll(&mut self, wait: Duration, io: &mut AdapterIo);
    /// Sends a delivery; the error says why, and whether trying again is pointless.
    fn send(&mut self, delivery: &Delivery) -> Result<(), (String, bool)>;
    /// The gateway holds the message durably: a network that confirms receipt (an update offset,
    /// a sync token) may confirm it now.
    fn acknowledged(&mut self, _message_id: &str) {}
    /// The reply of run `run_id` so far, for a network that can edit a message as it grows.
    fn preview(&mut self, _run_id: &str, _target: &str, _text: &str) {}
}

/// An adapter: which account it serves, its settings, and where the gateway is.
pub struct Adapter {
    pub channel: String,
    pub account: String,
    pub settings: Value,
    pub target: Target,
    pub state_dir: PathBuf,
}

/// Delivery ids already sent, kept in a file so a delivery handed over again after a gateway
/// crash is not sent twice.
struct SentIds {
    path: PathBuf,
    order: VecDeque<String>,
    set: HashSet<String>,
}

const SENT_KEPT: usize = 4000;

impl SentIds {
    fn load(path: PathBuf) -> SentIds {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let mut ids = SentIds {
            path,
            order: VecDeque::new(),
            set: HashSet::new(),
        };
        for line in text.lines().filter(|l| !l.is_empty()) {
            ids.remember(line.to_owned());
        }
        ids
    }

    fn remember(&mut self, id: String) {
        if self.set.insert(id.clone()) {
            self.order.push_back(id);
        }
        while self.order.len() > SENT_KEPT {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    fn record(&mut self, id: &str) {
        self.remember(id.to_owned());
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        // The file is rewritten when it has grown to twice what is kept.
        let lines = std::fs::read_to_string(&self.path).map_or(0, |t| t.lines().count());
        if lines >= 2 * SENT_KEPT {
            let text: String = self.order.iter().map(|i| format!("{i}\n")).collect();
            let _ = std::fs::write(&self.path, text);
            return;
        }
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&self.path) {
            let _ = writeln!(f, "{id}");
        }
    }
}

fn payload_of(event: &clawgate_proto::frame::EventFrame) -> Value {
    event
        .payload
        .as_deref()
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .unwrap_or(Value::Null)
}

impl Adapter {
    /// Serves the account until the process is stopped.
    pub fn serve(mut self, mut network: impl Network) -> Result<(), String> {
        let name = format!("{}/{}", self.channel, self.account);
        self.target.node = Some((
            vec![format!("{ADAPTER_CAP_PREFIX}{}:{}", self.channel, self.account)],
            vec!["channel.send".to_owned()],
        ));
        self.target.display_name = Some(format!("channel adapter: {name}"));
        let files = self.state_dir.join("channels");
        let _ = std::fs::create_dir_all(&files);
        // One adapter per account at a time: the adapter of a gateway that died finishes the
        // delivery it was sending (and writes it down) before the next one reads what was sent,
        // so a delivery is not sent by both. The lock goes with the process.
        let lock = std::fs::File::create(files.join(format!("{}-{}.lock", self.channel, self.account)))
            .map_err(|e| format!("cannot create the adapter's lock file: {e}"))?;
        // An adapter whose gateway died while it waited is not needed: the gateway that
        // replaced it started its own, which is the one to take over.
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    if crate::workers::supervisor_gone() {
                        eprintln!("clawgate channel {name}: the gateway that started this adapter is gone; stopping");
                        std::process::exit(0);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(format!("cannot lock the adapter's lock file: {e}"));
                }
            }
        }
        let mut sent = SentIds::load(files.join(format!("{}-{}.delivered", self.channel, self.account)));
        let mut pending: VecDeque<InboundMessage> = VecDeque::new();
        let mut io = AdapterIo::default();
        let mut want_run = false;
        let mut net_up = false;
        let mut next_net_try = Instant::now();
        let mut net_pause = Duration::from_secs(1);
        let mut gateway_pause = Duration::from_secs(1);
        loop {
            if crate::workers::supervisor_gone() {
                // Never serve the gateway that replaced ours: it has an adapter of its own.
                network.disconnect();
                eprintln!("clawgate channel {name}: the gateway that started this adapter is gone; stopping");
                std::process::exit(0);
            }
            let mut session = match Session::connect(&self.target) {
                Ok(s) => s,
                Err(CallError::Gateway(e)) if e.code == ErrorCode::InvalidRequest || e.code == ErrorCode::NotPaired => {
                    return Err(format!("the gateway refused the adapter: {}", e.message));
                }
                Err(e) => {
                    eprintln!("clawgate channel {name}: cannot reach the gateway: {e}");
                    std::thread::sleep(gateway_pause);
                    gateway_pause = (gateway_pause * 2).min(Duration::from_secs(30));
                    continue;
                }
            };
            gateway_pause = Duration::from_secs(1);
            eprintln!("clawgate channel {name}: connected to the gateway");
            let mut reported: Option<(bool, bool, Option<String>)> = None;
            let outcome: Result<(), CallError> = (|| loop {
                if crate::workers::supervisor_gone() {
                    // Between two deliveries: the stop below leaves nothing half sent.
                    return Ok(());
                }
                while let Some(event) = session.try_event()? {
                    let p = payload_of(&event);
                    if event.event == CONTROL_EVENT {
                        want_run = p["run"].as_bool().unwrap_or(true);
                        if !want_run && net_up {
                            network.disconnect();
                            net_up = false;
                            io.connected = false;
                        }
                        if want_run && !net_up {
                            next_net_try = Instant::now();
                        }
                    } else if event.event == PREVIEW_EVENT {
                        if io.connected {
                            network.preview(
                                p["runId"].as_str().unwrap_or_default(),
                                p["target"].as_str().unwrap_or_default(),
                                p["text"].as_str().unwrap_or_default(),
                            );
                        }
                    } else if event.event == DELIVER_EVENT {
                        let delivery = Delivery {
                            id: p["id"].as_str().unwrap_or_default().to_owned(),
                            target: p["target"].as_str().unwrap_or_default().to_owned(),
                            text: p["text"].as_str().unwrap_or_default().to_owned(),
                            run_id: p["runId"].as_str().map(str::to_owned),
                        };
                        let answer = if sent.set.contains(&delivery.id) {
                            json!({"id": delivery.id, "ok": true, "repeat": true})
                        } else {
                            match network.send(&delivery) {
                                Ok(()) => {
                                    sent.record(&delivery.id);
                                    json!({"id": delivery.id, "ok": true})
                                }
                                Err((why, permanent)) => {
                                    json!({"id": delivery.id, "ok": false, "error": why, "permanent": permanent})
                                }
                            }
                        };
                        session.call("channel.delivered", &answer)?;
                    }
                }
                if want_run && !net_up && Instant::now() >= next_net_try {
                    match network.connect() {
                        Ok(()) => {
                            net_up = true;
                            io.error = None;
                        }
                        Err(why) => {
                            io.error = Some(why);
                            next_net_try = Instant::now() + net_pause;
                            net_pause = (net_pause * 2).min(Duration::from_secs(30));
                        }
                    }
                }
                network.poll(Duration::from_millis(20), &mut io);
                if net_up && !io.connected && io.error.is_some() {
                    // The network dropped us: try again after a pause.
                    net_up = false;
                    next_net_try = Instant::now() + net_pause;
                    net_pause = (net_pause * 2).min(Duration::from_secs(30));
                }
                if io.connected {
                    net_pause = Duration::from_secs(1);
                }
                pending.extend(io.inbound.drain(..));
                let now_state = (want_run && net_up, io.connected, io.error.clone());
                if reported.as_ref() != Some(&now_state) {
                    let mut state = json!({"running": now_state.0, "connected": now_state.1});
                    if let Some(e) = &now_state.2 {
                        state["error"] = json!(e);
                    }
                    session.call("channel.state", &state)?;
                    reported = Some(now_state);
                }
                while let Some(m) = pending.front() {
                    let params = json!({
                        "messageId": m.message_id, "chatType": m.chat_type, "peerId": m.peer_id,
                        "senderId": m.sender_id, "senderName": m.sender_name, "text": m.text,
                        "mentioned": m.mentioned,
                    });
                    match session.call("channel.inbound", &params) {
                        Ok(_) => {
                            network.acknowledged(&m.message_id);
                            pending.pop_front();
                        }
                        Err(CallError::Gateway(e)) if e.code == ErrorCode::Unavailable => {
                            // The gateway is full for now: the message waits here.
                            break;
                        }
                        Err(CallError::Gateway(e)) => {
                            // Refused for good (malformed): confirmed, so it does not come back.
                            eprintln!("clawgate channel {name}: the gateway refused a message: {}", e.message);
                            network.acknowledged(&m.message_id);
                            pending.pop_front();
                        }
                        Err(e) => return Err(e),
                    }
                }
            })();
            if let Err(e) = outcome {
                eprintln!("clawgate channel {name}: lost the gateway: {e}");
            }
            // A gateway that died starts a new adapter at once: this one leaves the network now,
            // so that the new one gets the bot's name.
            for _ in 0..10 {
                if crate::workers::supervisor_gone() {
                    network.disconnect();
                    std::thread::sleep(Duration::from_millis(100));
                    eprintln!("clawgate channel {name}: the gateway that started this adapter is gone; stopping");
                    std::process::exit(0);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            std::thread::sleep(gateway_pause);
        }
    }
}
