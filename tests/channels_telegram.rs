//! The Telegram channel against a Bot API stand-in (`scripts/telegram-bot-api-standin.py`, which
//! follows the published Bot API; Telegram's servers cannot be reached from here) over HTTPS with
//! a certificate the test makes: the gateway starts the Telegram adapter itself, an echo worker
//! answers. A DM from an allowed user is answered, a long message goes out as several messages
//! within 4096 characters, a 429 from the API is retried, and the update offset is confirmed only
//! after the gateway holds the message, so a gateway killed in between gets it again and answers
//! it once.

mod common;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const TOKEN: &str = "tg-test-gateway-token-0123";
const BOT_TOKEN: &str = "123456:TEST-bot-token";
const USER: i64 = 4242;

struct StandIn {
    _process: common::Killed,
    base: String,
    agent: ureq::Agent,
}

impl StandIn {
    fn start(dir: &Path) -> (StandIn, PathBuf) {
        let certified =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
        let port = common::free_port(12_000);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/telegram-bot-api-standin.py");
        let child = Command::new("python3")
            .arg(script)
            .args(["--port", &port.to_string(), "--token", BOT_TOKEN])
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the Bot API stand-in");
        let root = ureq::tls::Certificate::from_pem(certified.cert.pem().as_bytes())
            .unwrap()
            .to_owned();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&[root]))
                    .build(),
            )
            .http_status_as_error(false)
            .build()
            .into();
        let standin = StandIn {
            _process: common::Killed(child),
            base: format!("https://127.0.0.1:{port}"),
            agent,
        };
        common::wait_until("the stand-in to answer", Duration::from_secs(10), || {
            standin.agent.get(format!("{}/_test/sent", standin.base)).call().is_ok()
        });
        (standin, cert)
    }

    fn get(&self, path: &str) -> Value {
        let mut r = self.agent.get(format!("{}{path}", self.base)).call().unwrap();
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
    }

    fn post(&self, path: &str, body: Value) -> Value {
        let mut r = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes())
            .unwrap();
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
    }

    /// A person writes to the bot in a private chat.
    fn dm(&self, text: &str) -> i64 {
        let chat = json!({"id": USER, "type": "private", "first_name": "Ann"});
        let from = json!({"id": USER, "is_bot": false, "first_name": "Ann", "username": "ann"});
        self.post("/_test/message", json!({"chat": chat, "from": from, "text": text}))["update_id"]
            .as_i64()
            .unwrap()
    }

    fn sent_to(&self, chat: i64) -> Vec<String> {
        self.get("/_test/sent")
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["chat_id"] == chat && s["method"] == "sendMessage")
            .map(|s| s["text"].as_str().unwrap().to_owned())
            .collect()
    }

    fn wait_for_messages(&self, chat: i64, count: usize) -> Vec<String> {
        common::wait_until("the bot's messages", Duration::from_secs(30), || {
            self.sent_to(chat).len() >= count
        });
        self.sent_to(chat)
    }
}

fn setup(name: &str) -> (PathBuf, StandIn, PathBuf, u16) {
    let dir = std::env::temp_dir().join(format!("clawgate-telegram-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("state")).unwrap();
    let (standin, cert) = StandIn::start(&dir);
    let port = common::free_port(12_000);
    let config = json!({
        "gateway": {"port": port, "auth": {"token": TOKEN}},
        "channels": {"telegram": {"botToken": BOT_TOKEN, "apiRoot": standin.base,
                                  "dmPolicy": "allowlist", "allowFrom": [USER.to_string()]}},
    });
    std::fs::write(dir.join("state/openclaw.json"), config.to_string()).unwrap();
    (dir, standin, cert, port)
}

#[test]
fn a_dm_is_answered_a_long_message_is_split_and_a_429_is_retried() {
    let (dir, standin, cert, port) = setup("talk");
    let state = dir.join("state");
    let _gateway = common::start_gateway(&state, port, &[("SSL_CERT_FILE", &cert)]);
    let _worker = common::start_echo_worker(port, TOKEN, 0);
    standin.dm("hello over telegram");
    assert_eq!(standin.wait_for_messages(USER, 1), vec!["hello over telegram"]);

    // An operator's send of 9,000 characters arrives as three messages within the limit.
    let long: String = (0..1500).map(|i| format!("{i:05} ")).collect();
    let params = json!({"channel": "telegram", "to": USER.to_string(), "message": long, "idempotencyKey": "tg-long"});
    let out = common::bin()
        .args(["call", "send", "--params", &params.to_string()])
        .env("OPENCLAW_STATE_DIR", &state)
        .env_remove("OPENCLAW_GATEWAY_TOKEN")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sent = standin.wait_for_messages(USER, 4);
    let pieces = &sent[1..];
    assert!(
        pieces.iter().all(|p| p.chars().count() <= 4096),
        "a message over the limit"
    );
    assert_eq!(
        pieces.join(" ").split_whitespace().collect::<Vec<_>>(),
        long.split_whitespace().collect::<Vec<_>>()
    );

    // The API says 429 once: the delivery is retried and arrives.
    standin.post("/_test/fail", json!({"method": "sendMessage", "count": 1, "code": 429}));
    standin.dm("after a rate limit");
    let sent = standin.wait_for_messages(USER, 5);
    assert_eq!(sent[4], "after a rate limit");
}

#[test]
fn an_update_is_confirmed_only_once_the_gateway_holds_it_and_is_answered_once_across_a_kill() {
    let (dir, standin, cert, port) = setup("crash");
    let state = dir.join("state");
    let mut gateway = common::start_gateway(&state, port, &[("SSL_CERT_FILE", &cert)]);
    // Slow words: the run is still going when the gateway dies.
    let _worker = common::start_echo_worker(port, TOKEN, 300);
    let update = standin.dm("one two three four five");
    let file = state.join("channels/state.json");
    common::wait_until("the gateway to hold the message", Duration::from_secs(20), || {
        std::fs::read_to_string(&file).is_ok_and(|t| t.contains("one two three four five"))
    });
    let _ = gateway.0.kill();
    let _ = gateway.0.wait();
    drop(gateway);
    let _gateway = common::start_gateway(&state, port, &[("SSL_CERT_FILE", &cert)]);
    assert_eq!(standin.wait_for_messages(USER, 1), vec!["one two three four five"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(standin.sent_to(USER).len(), 1, "answered more than once");

    // Now the adapter dies while a message is under way; the gateway starts a new one.
    standin.dm("six seven eight nine");
    common::wait_until(
        "the gateway to hold the second message",
        Duration::from_secs(20),
        || std::fs::read_to_string(&file).is_ok_and(|t| t.contains("six seven eight nine")),
    );
    let killed = std::process::Command::new("pkill")
        .args([
            "-KILL",
            "-f",
            &format!("channel --channel telegram --account default --url ws://127.0.0.1:{port}"),
        ])
        .status()
        .unwrap();
    assert!(killed.success(), "no adapter process was found to kill");
    assert_eq!(standin.wait_for_messages(USER, 2)[1], "six seven eight nine");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        standin.sent_to(USER).len(),
        2,
        "answered more than once after the adapter's kill"
    );
    // The update was confirmed to the API (the offset past it asked for), so it does not come back.
    let offsets = standin.get("/_test/offsets");
    assert!(
        offsets
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o.as_i64() == Some(update + 1)),
        "{offsets}"
    );
}

#[test]
fn a_long_running_reply_streams_as_edits_of_one_message() {
    let (dir, standin, cert, port) = setup("stream");
    let state = dir.join("state");
    let _gateway = common::start_gateway(&state, port, &[("SSL_CERT_FILE", &cert)]);
    // One word every 400 ms: the reply takes about three seconds.
    let _worker = common::start_echo_worker(port, TOKEN, 400);
    let text = "alpha beta gamma delta epsilon zeta eta theta";
    standin.dm(text);
    let file = state.join("channels/state.json");
    common::wait_until("the reply to be delivered", Duration::from_secs(30), || {
        std::fs::read_to_string(&file).is_ok_and(|t| t.contains("\"outbox\":[]") && t.contains("\"delivered\":1"))
    });
    assert_eq!(
        standin.sent_to(USER),
        vec![text],
        "one message, ending as the whole reply"
    );
    let edits = standin
        .get("/_test/sent")
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["method"] == "editMessageText")
        .count();
    assert!(edits >= 2, "the message grew by edits ({edits})");
}
