//! `clawgate channel --channel telegram`: the Telegram adapter, over the Bot API with long
//! polling (`getUpdates` with offsets, `sendMessage`), through the same HTTP client (ureq with
//! rustls and the system's trust store) that talks to the model providers.
//!
//! The offset is what acknowledges updates to Telegram: `getUpdates` with `offset` N confirms
//! every update below N, and Telegram hands unconfirmed updates over again. The poller therefore
//! moves the offset past an update only once the gateway holds it durably (the adapter reports
//! that through [`Network::acknowledged`]); an adapter or gateway that dies before gets the
//! update again, and the gateway drops the repeat by its update id.
//!
//! Replies longer than Telegram's 4096 characters go out as several messages. `apiRoot` points
//! the adapter at another Bot API server (a self-hosted one, or the tests' stand-in).

use crate::channel_adapter::{Adapter, AdapterIo, Delivery, InboundMessage, Network};
use clawgate_engine::channel_text::{split_chars, TELEGRAM_TEXT_CHARS};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::mpsc;
use std::time::Duration;

/// Seconds a `getUpdates` call waits for an update.
const POLL_SECONDS: u64 = 25;

enum PollEvent {
    Ready(String),
    Update(InboundMessage),
    Failed(String),
}

/// The Telegram side of the adapter.
pub struct Telegram {
    api: String,
    agent: ureq::Agent,
    events: Option<mpsc::Receiver<PollEvent>>,
    acks: Option<mpsc::Sender<i64>>,
    bot_username: String,
    /// The message each run's reply is previewed in: its chat, its id and its text.
    previews: std::collections::HashMap<String, (Value, i64, String)>,
}

/// Calls a Bot API method; the error says why and whether retrying is pointless (a 400 or 403:
/// the chat does not exist, the bot was blocked, the text is refused).
fn call(agent: &ureq::Agent, api: &str, method: &str, params: &Value) -> Result<Value, (String, bool)> {
    let url = format!("{api}/{method}");
    let mut response = agent
        .post(&url)
        .header("Content-Type", "application/json")
        .send(params.to_string().as_bytes())
        .map_err(|e| (format!("{method}: {e}"), false))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(16 * 1024 * 1024)
        .read_to_string()
        .map_err(|e| (format!("{method}: {e}"), false))?;
    let body: Value =
        serde_json::from_str(&text).map_err(|e| (format!("{method}: answer is not JSON ({status}): {e}"), false))?;
    if body["ok"] == true {
        return Ok(body["result"].clone());
    }
    let description = body["description"].as_str().unwrap_or("no description");
    let mut why = format!("{method}: {status} {description}");
    if let Some(after) = body["parameters"]["retry_after"].as_u64() {
        why.push_str(&format!(" (retry after {after} s)"));
    }
    Err((why, status == 400 || status == 403))
}

impl Telegram {
    pub fn new(settings: &Value) -> Result<Telegram, String> {
        let token = match (settings["botToken"].as_str(), settings["tokenFile"].as_str()) {
            (Some(t), _) if !t.trim().is_empty() => t.trim().to_owned(),
            (_, Some(file)) => std::fs::read_to_string(file)
                .map_err(|e| format!("channels.telegram.tokenFile {file}: {e}"))?
                .trim()
                .to_owned(),
            _ => return Err("channels.telegram.botToken is not set".into()),
        };
        let root = settings["apiRoot"]
            .as_str()
            .unwrap_or("https://api.telegram.org")
            .trim_end_matches('/');
        Ok(Telegram {
            api: format!("{root}/bot{token}"),
            agent: crate::providers::network_agent(Duration::from_secs(POLL_SECONDS + 15)),
            events: None,
            acks: None,
            bot_username: String::new(),
            previews: std::collections::HashMap::new(),
        })
    }
}

/// The inbound message of an update, if it carries one; `bot` is the bot's username.
fn message_of(update: &Value, bot: &str) -> Option<InboundMessage> {
    let id = update["update_id"].as_i64()?;
    let message = ["message", "channel_post"]
        .iter()
        .map(|k| &update[*k])
        .find(|m| m.is_object())?;
    let chat = &message["chat"];
    let chat_type = match chat["type"].as_str()? {
        "private" => "direct",
        "channel" => "channel",
        _ => "group",
    };
    let text = message["text"]
        .as_str()
        .or_else(|| message["caption"].as_str())
        .unwrap_or_default();
    let mention = format!("@{}", bot.to_lowercase());
    let lower = text.to_lowercase();
    let replied_to_bot = message["reply_to_message"]["from"]["username"]
        .as_str()
        .is_some_and(|u| u.eq_ignore_ascii_case(bot));
    let mentioned = chat_type == "direct" || replied_to_bot || (!bot.is_empty() && lower.contains(&mention));
    let text = match lower.find(&mention) {
        Some(at) if !bot.is_empty() => format!("{}{}", &text[..at], &text[at + mention.len()..])
            .trim()
            .to_owned(),
        _ => text.to_owned(),
    };
    let from = &message["from"];
    let sender_id = from["id"]
        .as_i64()
        .map(|i| i.to_string())
        .or_else(|| chat["id"].as_i64().map(|i| i.to_string()))?;
    let sender_name = from["username"]
        .as_str()
        .or_else(|| from["first_name"].as_str())
        .unwrap_or_default()
        .to_owned();
    Some(InboundMessage {
        message_id: id.to_string(),
        chat_type,
        peer_id: chat["id"].as_i64()?.to_string(),
        sender_id,
        sender_name,
        text,
        mentioned,
    })
}

fn poller(agent: ureq::Agent, api: String, events: mpsc::Sender<PollEvent>, acks: mpsc::Receiver<i64>) {
    let me = match call(&agent, &api, "getMe", &json!({})) {
        Ok(me) => me,
        Err((why, _)) => {
            let _ = events.send(PollEvent::Failed(why));
            return;
        }
    };
    let bot = me["username"].as_str().unwrap_or_default().to_owned();
    if events.send(PollEvent::Ready(bot.clone())).is_err() {
        return;
    }
    let mut offset: Option<i64> = None;
    let mut pause = Duration::from_secs(1);
    let mut failing = false;
    loop {
        let mut params = json!({"timeout": POLL_SECONDS, "allowed_updates": ["message", "channel_post"]});
        if let Some(o) = offset {
            params["offset"] = json!(o);
        }
        let updates = match call(&agent, &api, "getUpdates", &params) {
            Ok(u) => {
                pause = Duration::from_secs(1);
                if std::mem::take(&mut failing) && events.send(PollEvent::Ready(bot.clone())).is_err() {
                    return;
                }
                u
            }
            Err((why, _)) => {
                failing = true;
                if events.send(PollEvent::Failed(why)).is_err() {
                    return;
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        let mut waiting = BTreeSet::new();
        let mut last = None;
        for update in updates.as_array().into_iter().flatten() {
            let Some(id) = update["update_id"].as_i64() else {
                continue;
            };
            last = Some(last.map_or(id, |l: i64| l.max(id)));
            // An update without a message (an edit, a reaction) is confirmed as it is.
            if let Some(message) = message_of(update, &bot) {
                waiting.insert(id);
                if events.send(PollEvent::Update(message)).is_err() {
                    return;
                }
            }
        }
        // The offset moves only once the gateway holds every message of the batch.
        while !waiting.is_empty() {
            match acks.recv() {
                Ok(id) => {
                    waiting.remove(&id);
                }
                Err(_) => return,
            }
        }
        if let Some(l) = last {
            offset = Some(l + 1);
        }
    }
}

impl Network for Telegram {
    fn connect(&mut self) -> Result<(), String> {
        let (event_tx, event_rx) = mpsc::channel();
        let (ack_tx, ack_rx) = mpsc::channel();
        let (agent, api) = (self.agent.clone(), self.api.clone());
        std::thread::Builder::new()
            .name("telegram-poll".into())
            .spawn(move || poller(agent, api, event_tx, ack_rx))
            .map_err(|e| e.to_string())?;
        self.events = Some(event_rx);
        self.acks = Some(ack_tx);
        Ok(())
    }

    fn disconnect(&mut self) {
        // The poller ends at its next step, when it finds its channels closed.
        self.events = None;
        self.acks = None;
    }

    fn poll(&mut self, wait: Duration, io: &mut AdapterIo) {
        let Some(events) = &self.events else {
            std::thread::sleep(wait);
            return;
        };
        match events.recv_timeout(wait) {
            Ok(PollEvent::Ready(bot)) => {
                self.bot_username = bot;
                io.connected = true;
                io.error = None;
            }
            Ok(PollEvent::Update(m)) => io.inbound.push(m),
            // A failed poll is retried by the poller; the state shows the error meanwhile.
            Ok(PollEvent::Failed(why)) if !self.bot_username.is_empty() => io.error = Some(why),
            Ok(PollEvent::Failed(why)) => {
                io.connected = false;
                io.error = Some(why);
                self.events = None;
                self.acks = None;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                io.connected = false;
                self.events = None;
                self.acks = None;
            }
        }
    }

    fn send(&mut self, delivery: &Delivery) -> Result<(), (String, bool)> {
        let chat = chat_of(&delivery.target)?;
        let pieces = split_chars(&delivery.text, TELEGRAM_TEXT_CHARS);
        if pieces.is_empty() {
            return Err(("the text is empty".into(), true));
        }
        let mut rest = pieces.as_slice();
        // A reply that was previewed ends in its preview message: the first piece edits it.
        let preview = delivery.run_id.as_ref().and_then(|r| self.previews.remove(r));
        if let (Some((chat, message_id, shown)), Some(first)) = (preview, pieces.first()) {
            let edited = *first == shown
                || call(
                    &self.agent,
                    &self.api,
                    "editMessageText",
                    &json!({"chat_id": chat, "message_id": message_id, "text": first}),
                )
                .is_ok();
            if edited {
                rest = &pieces[1..];
            }
        }
        for piece in rest {
            call(
                &self.agent,
                &self.api,
                "sendMessage",
                &json!({"chat_id": chat, "text": piece}),
            )?;
        }
        Ok(())
    }

    fn preview(&mut self, run_id: &str, target: &str, text: &str) {
        let Ok(chat) = chat_of(target) else { return };
        // The first message's worth; the rest comes with the final reply.
        let shown: String = split_chars(text, TELEGRAM_TEXT_CHARS)
            .into_iter()
            .next()
            .unwrap_or_default();
        if shown.is_empty() {
            return;
        }
        match self.previews.get_mut(run_id) {
            None => {
                let sent = call(
                    &self.agent,
                    &self.api,
                    "sendMessage",
                    &json!({"chat_id": chat, "text": shown}),
                );
                if let Some(id) = sent.ok().and_then(|m| m["message_id"].as_i64()) {
                    self.previews.insert(run_id.to_owned(), (chat, id, shown));
                }
            }
            Some((chat, id, last)) if *last != shown => {
                let params = json!({"chat_id": chat, "message_id": id, "text": shown});
                if call(&self.agent, &self.api, "editMessageText", &params).is_ok() {
                    *last = shown;
                }
            }
            Some(_) => {}
        }
    }

    fn acknowledged(&mut self, message_id: &str) {
        if let (Some(acks), Ok(id)) = (&self.acks, message_id.parse::<i64>()) {
            let _ = acks.send(id);
        }
    }
}

/// A chat id (a number, or `@channelusername`).
fn chat_of(target: &str) -> Result<Value, (String, bool)> {
    let target = target.trim();
    match target.parse::<i64>() {
        Ok(id) => Ok(json!(id)),
        Err(_) if target.starts_with('@') => Ok(json!(target)),
        Err(_) => Err((format!("{target:?} is not a Telegram chat id"), true)),
    }
}

/// Runs the Telegram adapter of `account` until the process is stopped.
pub fn run(adapter: Adapter) -> Result<(), String> {
    let telegram = Telegram::new(&adapter.settings)?;
    adapter.serve(telegram)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_message_is_a_direct_message_from_its_sender() {
        let update = json!({"update_id": 7, "message": {"message_id": 1, "from": {"id": 42, "username": "ann"},
            "chat": {"id": 42, "type": "private"}, "text": "hi"}});
        let m = message_of(&update, "clawbot").unwrap();
        assert_eq!(
            (m.message_id.as_str(), m.chat_type, m.peer_id.as_str()),
            ("7", "direct", "42")
        );
        assert_eq!(m.sender_id, "42");
    }

    #[test]
    fn a_group_message_is_mentioned_by_the_bots_username_which_is_taken_off() {
        let update = json!({"update_id": 8, "message": {"message_id": 2, "from": {"id": 42},
            "chat": {"id": -100, "type": "supergroup"}, "text": "@ClawBot what now"}});
        let m = message_of(&update, "clawbot").unwrap();
        assert_eq!(m.chat_type, "group");
        assert!(m.mentioned);
        assert_eq!(m.text, "what now");
    }
}
