//! `clawgate channel --channel matrix`: the Matrix adapter, over the client-server API
//! (`/sync` long polling, `send`), unencrypted rooms only. It logs in with `accessToken`, or with
//! `userId` and `password`; joins the rooms it is invited to when `autoJoin` says so; hands every
//! text message of a joined room (a room of two members is a DM) to the gateway; and sends replies
//! with the delivery id as the transaction id, so a delivery handed over twice is one event on the
//! homeserver.
//!
//! The `next_batch` token of a sync is what acknowledges: it is written to a file under the state
//! directory only once the gateway holds every message of the batch, and the next start syncs
//! from it, so messages that came in while the adapter was down are handed over then. The first
//! start with no token skips the rooms' history. End-to-end encryption (`encryption: true`) is not
//! done: it needs the Olm/Megolm state machine (vodozemac), device keys and key sharing.

use crate::channel_adapter::{Adapter, AdapterIo, Delivery, InboundMessage, Network};
use clawgate_engine::channel_text::split_chars;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

const SYNC_TIMEOUT_MS: u64 = 25_000;
/// Characters per message (OpenClaw's `textChunkLimit` default for Matrix).
const CHUNK_CHARS: usize = 4000;

enum SyncEvent {
    Ready,
    Message(InboundMessage),
    Failed(String),
}

/// One client-server API call; the error says why and whether retrying is pointless (a 4xx
/// other than 429: forbidden, unknown room, refused content).
fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<Value, (String, bool)> {
    let auth = token.map(|t| format!("Bearer {t}"));
    let response = match (method, body) {
        ("GET", _) => {
            let mut r = agent.get(url);
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.call()
        }
        (m, body) => {
            let builder = if m == "PUT" { agent.put(url) } else { agent.post(url) };
            let mut r = builder.header("Content-Type", "application/json");
            if let Some(a) = &auth {
                r = r.header("Authorization", a);
            }
            r.send(body.map(Value::to_string).unwrap_or_else(|| "{}".into()).as_bytes())
        }
    };
    let mut response = response.map_err(|e| (format!("{url}: {e}"), false))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_string()
        .map_err(|e| (format!("{url}: {e}"), false))?;
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status == 200 {
        return Ok(value);
    }
    let why = format!(
        "{status} {} {}",
        value["errcode"].as_str().unwrap_or(""),
        value["error"].as_str().unwrap_or(&text)
    );
    Err((why, (400..500).contains(&status) && status != 429))
}

fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Session {
    base: String,
    token: String,
    user_id: String,
}

fn login(agent: &ureq::Agent, settings: &Value) -> Result<Session, String> {
    let base = settings["homeserver"]
        .as_str()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_owned();
    let fail = |(why, _): (String, bool)| why;
    if let Some(token) = settings["accessToken"].as_str().filter(|t| !t.is_empty()) {
        let me = call(
            agent,
            "GET",
            &format!("{base}/_matrix/client/v3/account/whoami"),
            Some(token),
            None,
        )
        .map_err(fail)?;
        return Ok(Session {
            user_id: me["user_id"].as_str().unwrap_or_default().to_owned(),
            token: token.to_owned(),
            base,
        });
    }
    let user = settings["userId"].as_str().unwrap_or_default();
    let body = json!({
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": settings["password"].as_str().unwrap_or_default(),
        "initial_device_display_name": settings["deviceName"].as_str().unwrap_or("Clawgate"),
        "device_id": settings["deviceId"],
    });
    let answer = call(
        agent,
        "POST",
        &format!("{base}/_matrix/client/v3/login"),
        None,
        Some(&body),
    )
    .map_err(fail)?;
    Ok(Session {
        token: answer["access_token"].as_str().unwrap_or_default().to_owned(),
        user_id: answer["user_id"].as_str().unwrap_or(user).to_owned(),
        base,
    })
}

/// Whether a room invite is taken (`autoJoin`: `always`, `allowlist` with `autoJoinAllowlist`,
/// or `off`, the default).
fn joins(settings: &Value, room: &str) -> bool {
    match settings["autoJoin"].as_str().unwrap_or("off") {
        "always" => true,
        "allowlist" => settings["autoJoinAllowlist"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r.as_str() == Some(room)),
        _ => false,
    }
}

struct Syncer {
    agent: ureq::Agent,
    settings: Value,
    token_file: PathBuf,
    events: mpsc::Sender<SyncEvent>,
    acks: mpsc::Receiver<String>,
}

impl Syncer {
    /// The events of `room` between the tokens `to` (older) and `from`, oldest first.
    fn gap(&self, session: &Session, room: &str, from: &str, to: &str) -> Vec<Value> {
        let mut found = Vec::new();
        let mut from = from.to_owned();
        // At most 20 pages of 100: a gap longer than that loses its oldest part.
        for _ in 0..20 {
            let url = format!(
                "{}/_matrix/client/v3/rooms/{}/messages?dir=b&limit=100&from={}&to={}",
                session.base,
                encode(room),
                encode(&from),
                encode(to)
            );
            let Ok(page) = call(&self.agent, "GET", &url, Some(&session.token), None) else {
                break;
            };
            let chunk = page["chunk"].as_array().cloned().unwrap_or_default();
            if chunk.is_empty() {
                break;
            }
            found.extend(chunk);
            match page["end"].as_str() {
                Some(end) => from = end.to_owned(),
                None => break,
            }
        }
        found.reverse();
        found
    }

    fn run(self, session: &Session) {
        let mut since = std::fs::read_to_string(&self.token_file)
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        let mut members: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut pause = Duration::from_secs(1);
        let mut ready = false;
        let localpart = session
            .user_id
            .trim_start_matches('@')
            .split(':')
            .next()
            .unwrap_or_default()
            .to_lowercase();
        loop {
            // Without a token, one sync with no wait finds the rooms and skips their history.
            let first = since.is_none();
            let mut url = format!(
                "{}/_matrix/client/v3/sync?timeout={}",
                session.base,
                if first { 0 } else { SYNC_TIMEOUT_MS }
            );
            if let Some(s) = &since {
                url.push_str(&format!("&since={}", encode(s)));
            }
            url.push_str(&format!("&filter={}", encode(r#"{"room":{"timeline":{"limit":100}}}"#)));
            let batch = match call(&self.agent, "GET", &url, Some(&session.token), None) {
                Ok(b) => {
                    pause = Duration::from_secs(1);
                    b
                }
                Err((why, _)) => {
                    ready = false;
                    if self.events.send(SyncEvent::Failed(why)).is_err() {
                        return;
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(30));
                    continue;
                }
            };
            for (room, _) in batch["rooms"]["invite"].as_object().into_iter().flatten() {
                if joins(&self.settings, room) {
                    let url = format!("{}/_matrix/client/v3/join/{}", session.base, encode(room));
                    if let Err((why, _)) = call(&self.agent, "POST", &url, Some(&session.token), Some(&json!({}))) {
                        let _ = self
                            .events
                            .send(SyncEvent::Failed(format!("cannot join {room}: {why}")));
                    }
                }
            }
            let mut waiting = BTreeSet::new();
            for (room, state) in batch["rooms"]["join"].as_object().into_iter().flatten() {
                // Who is in the room, from the membership events of its state and timeline.
                let joined = members.entry(room.clone()).or_default();
                let changes = state["state"]["events"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .chain(state["timeline"]["events"].as_array().into_iter().flatten())
                    .filter(|e| e["type"] == "m.room.member");
                for e in changes {
                    if let Some(user) = e["state_key"].as_str() {
                        if e["content"]["membership"] == "join" {
                            joined.insert(user.to_owned());
                        } else {
                            joined.remove(user);
                        }
                    }
                }
                if first {
                    continue;
                }
                // A limited timeline left events out (more came in than one sync carries, say
                // while the adapter was down): they are fetched back to the last token.
                let mut events: Vec<Value> = Vec::new();
                if state["timeline"]["limited"] == true {
                    if let (Some(from), Some(to)) = (state["timeline"]["prev_batch"].as_str(), since.as_deref()) {
                        events = self.gap(session, room, from, to);
                    }
                }
                events.extend(state["timeline"]["events"].as_array().cloned().unwrap_or_default());
                for event in &events {
                    let (Some(id), Some(sender)) = (event["event_id"].as_str(), event["sender"].as_str()) else {
                        continue;
                    };
                    if event["type"] != "m.room.message" || sender == session.user_id {
                        continue;
                    }
                    let body = event["content"]["body"].as_str().unwrap_or_default();
                    let direct = members.get(room).is_some_and(|m| m.len() <= 2);
                    let mentioned = direct
                        || event["content"]["m.mentions"]["user_ids"]
                            .as_array()
                            .is_some_and(|ids| ids.iter().any(|i| i.as_str() == Some(&session.user_id)))
                        || body.to_lowercase().contains(&localpart);
                    let message = InboundMessage {
                        message_id: id.to_owned(),
                        chat_type: if direct { "direct" } else { "group" },
                        peer_id: room.clone(),
                        sender_id: sender.to_owned(),
                        sender_name: sender.to_owned(),
                        text: body.to_owned(),
                        mentioned,
                    };
                    waiting.insert(id.to_owned());
                    if self.events.send(SyncEvent::Message(message)).is_err() {
                        return;
                    }
                }
            }
            // The token moves on (and is kept) only once the gateway holds the batch.
            while !waiting.is_empty() {
                match self.acks.recv() {
                    Ok(id) => {
                        waiting.remove(&id);
                    }
                    Err(_) => return,
                }
            }
            if let Some(next) = batch["next_batch"].as_str() {
                since = Some(next.to_owned());
                if let Some(dir) = self.token_file.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                let _ = std::fs::write(&self.token_file, next);
            }
            // Connected once a sync went through (and again after a failed one).
            if !ready {
                ready = true;
                if self.events.send(SyncEvent::Ready).is_err() {
                    return;
                }
            }
        }
    }
}

/// The Matrix side of the adapter.
pub struct Matrix {
    settings: Value,
    agent: ureq::Agent,
    token_file: PathBuf,
    session: Option<Session>,
    events: Option<mpsc::Receiver<SyncEvent>>,
    acks: Option<mpsc::Sender<String>>,
}

impl Network for Matrix {
    fn connect(&mut self) -> Result<(), String> {
        let session = login(&self.agent, &self.settings)?;
        let (event_tx, event_rx) = mpsc::channel();
        let (ack_tx, ack_rx) = mpsc::channel();
        let syncer = Syncer {
            agent: self.agent.clone(),
            settings: self.settings.clone(),
            token_file: self.token_file.clone(),
            events: event_tx,
            acks: ack_rx,
        };
        let thread_session = Session {
            base: session.base.clone(),
            token: session.token.clone(),
            user_id: session.user_id.clone(),
        };
        std::thread::Builder::new()
            .name("matrix-sync".into())
            .spawn(move || syncer.run(&thread_session))
            .map_err(|e| e.to_string())?;
        self.session = Some(session);
        self.events = Some(event_rx);
        self.acks = Some(ack_tx);
        Ok(())
    }

    fn disconnect(&mut self) {
        self.events = None;
        self.acks = None;
        self.session = None;
    }

    fn poll(&mut self, wait: Duration, io: &mut AdapterIo) {
        let Some(events) = &self.events else {
            std::thread::sleep(wait);
            return;
        };
        match events.recv_timeout(wait) {
            Ok(SyncEvent::Ready) => {
                io.connected = true;
                io.error = None;
            }
            Ok(SyncEvent::Message(m)) => io.inbound.push(m),
            Ok(SyncEvent::Failed(why)) => io.error = Some(why),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                io.connected = false;
                self.events = None;
                self.acks = None;
            }
        }
    }

    fn send(&mut self, delivery: &Delivery) -> Result<(), (String, bool)> {
        let Some(session) = &self.session else {
            return Err(("not logged in to the homeserver".into(), false));
        };
        let room = delivery.target.trim();
        if !room.starts_with('!') {
            return Err((format!("{room:?} is not a Matrix room id"), true));
        }
        let pieces = split_chars(&delivery.text, CHUNK_CHARS);
        if pieces.is_empty() {
            return Err(("the text is empty".into(), true));
        }
        for (i, piece) in pieces.iter().enumerate() {
            // The transaction id makes a repeat of the same piece one event on the homeserver.
            let url = format!(
                "{}/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
                session.base,
                encode(room),
                encode(&format!("{}-{i}", delivery.id))
            );
            let body = json!({"msgtype": "m.text", "body": piece});
            call(&self.agent, "PUT", &url, Some(&session.token), Some(&body))?;
        }
        Ok(())
    }

    fn acknowledged(&mut self, message_id: &str) {
        if let Some(acks) = &self.acks {
            let _ = acks.send(message_id.to_owned());
        }
    }
}

/// Runs the Matrix adapter of `account` until the process is stopped.
pub fn run(adapter: Adapter) -> Result<(), String> {
    let matrix = Matrix {
        settings: adapter.settings.clone(),
        agent: crate::providers::network_agent(Duration::from_millis(SYNC_TIMEOUT_MS + 15_000)),
        token_file: adapter
            .state_dir
            .join("channels")
            .join(format!("matrix-{}.sync", adapter.account)),
        session: None,
        events: None,
        acks: None,
    };
    adapter.serve(matrix)
}
