//! The Matrix channel against a real homeserver: Synapse from PyPI in a cached virtualenv
//! (`scripts/install-synapse.sh`), started by the test with open registration for its users. The
//! gateway starts the Matrix adapter itself, an echo worker answers, and a person is a Matrix
//! client over the client-server API: an invite is joined, a DM answered, a room message answered
//! only when it names the bot, and the gateway SIGKILLed with a run under way answers once.

mod common;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const TOKEN: &str = "mx-test-gateway-token-0123";
const PASSWORD: &str = "a-long-test-password-1";

fn synapse_python() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-synapse.sh");
    let out = Command::new("bash")
        .arg(script)
        .output()
        .expect("run install-synapse.sh");
    assert!(
        out.status.success(),
        "scripts/install-synapse.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

/// A client-server API call as a person's client makes it.
fn api(method: &str, url: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let agent = agent();
    let auth = token.map(|t| format!("Bearer {t}"));
    let response = if method == "GET" {
        let mut r = agent.get(url);
        if let Some(a) = &auth {
            r = r.header("Authorization", a);
        }
        r.call()
    } else {
        let b = if method == "PUT" {
            agent.put(url)
        } else {
            agent.post(url)
        };
        let mut r = b.header("Content-Type", "application/json");
        if let Some(a) = &auth {
            r = r.header("Authorization", a);
        }
        r.send(body.unwrap_or(json!({})).to_string().as_bytes())
    };
    let mut response = response.unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

struct Homeserver {
    _process: common::Killed,
    base: String,
}

impl Homeserver {
    fn start(dir: &Path) -> Homeserver {
        let python = synapse_python();
        let port = common::free_port(16_000);
        let data = dir.join("synapse");
        std::fs::create_dir_all(&data).unwrap();
        let config = data.join("homeserver.yaml");
        let made = Command::new(&python)
            .args([
                "-m",
                "synapse.app.homeserver",
                "--server-name",
                "localhost",
                "--config-path",
            ])
            .arg(&config)
            .arg("--data-directory")
            .arg(&data)
            .args(["--generate-config", "--report-stats=no"])
            .current_dir(&data)
            .output()
            .unwrap();
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        let generated = std::fs::read_to_string(&config).unwrap();
        let limit = "{per_second: 1000, burst_count: 1000}";
        let patched = generated.replace("port: 8008", &format!("port: {port}"))
            + &format!(
                "\nenable_registration: true\nenable_registration_without_verification: true\n\
                 trusted_key_servers: []\nsuppress_key_server_warning: true\n\
                 rc_message: {limit}\nrc_registration: {limit}\n\
                 rc_login: {{address: {limit}, account: {limit}, failed_attempts: {limit}}}\n\
                 rc_joins: {{local: {limit}, remote: {limit}}}\n\
                 rc_invites: {{per_room: {limit}, per_user: {limit}, per_issuer: {limit}}}\n"
            );
        std::fs::write(&config, patched).unwrap();
        let log = std::fs::File::create(dir.join("synapse.log")).unwrap();
        let child = Command::new(&python)
            .args(["-m", "synapse.app.homeserver", "-c"])
            .arg(&config)
            .current_dir(&data)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let hs = Homeserver {
            _process: common::Killed(child),
            base,
        };
        common::wait_until("Synapse to answer", Duration::from_secs(60), || {
            agent()
                .get(format!("{}/_matrix/client/versions", hs.base))
                .call()
                .is_ok_and(|r| r.status().as_u16() == 200)
        });
        hs
    }

    /// Registers `name` and returns its access token.
    fn register(&self, name: &str) -> String {
        let body = json!({"username": name, "password": PASSWORD, "auth": {"type": "m.login.dummy"},
                          "inhibit_login": false});
        let (status, answer) = api(
            "POST",
            &format!("{}/_matrix/client/v3/register", self.base),
            None,
            Some(body),
        );
        assert_eq!(status, 200, "register {name}: {answer}");
        answer["access_token"].as_str().unwrap().to_owned()
    }
}

/// A person with a Matrix client.
struct Person<'a> {
    hs: &'a Homeserver,
    token: String,
    txn: u64,
}

impl Person<'_> {
    fn create_room(&self, invite: &[&str], direct: bool) -> String {
        let body = json!({"invite": invite, "is_direct": direct, "preset": "private_chat"});
        let (status, answer) = api(
            "POST",
            &format!("{}/_matrix/client/v3/createRoom", self.hs.base),
            Some(&self.token),
            Some(body),
        );
        assert_eq!(status, 200, "{answer}");
        answer["room_id"].as_str().unwrap().to_owned()
    }

    fn join(&self, room: &str) {
        let (status, answer) = api(
            "POST",
            &format!("{}/_matrix/client/v3/join/{}", self.hs.base, room.replace('!', "%21")),
            Some(&self.token),
            None,
        );
        assert_eq!(status, 200, "{answer}");
    }

    fn say(&mut self, room: &str, text: &str) {
        self.txn += 1;
        let url = format!(
            "{}/_matrix/client/v3/rooms/{}/send/m.room.message/t{}",
            self.hs.base,
            room.replace('!', "%21"),
            self.txn
        );
        let (status, answer) = api(
            "PUT",
            &url,
            Some(&self.token),
            Some(json!({"msgtype": "m.text", "body": text})),
        );
        assert_eq!(status, 200, "{answer}");
    }

    /// The bodies of the bot's messages in `room`, oldest first.
    fn bot_messages(&self, room: &str) -> Vec<String> {
        let url = format!(
            "{}/_matrix/client/v3/rooms/{}/messages?dir=b&limit=1000",
            self.hs.base,
            room.replace('!', "%21")
        );
        let (_, answer) = api("GET", &url, Some(&self.token), None);
        let mut bodies: Vec<String> = answer["chunk"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["type"] == "m.room.message" && e["sender"] == "@bot:localhost")
            .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
            .collect();
        bodies.reverse();
        bodies
    }

    fn wait_for_bot_messages(&self, room: &str, count: usize) -> Vec<String> {
        common::wait_until("the bot's messages", Duration::from_secs(40), || {
            self.bot_messages(room).len() >= count
        });
        self.bot_messages(room)
    }

    fn wait_for_bot_in(&self, room: &str) {
        let url = format!(
            "{}/_matrix/client/v3/rooms/{}/joined_members",
            self.hs.base,
            room.replace('!', "%21")
        );
        common::wait_until("the bot to join", Duration::from_secs(40), || {
            api("GET", &url, Some(&self.token), None).1["joined"]
                .get("@bot:localhost")
                .is_some()
        });
    }
}

#[test]
fn a_person_on_matrix_is_answered_in_a_dm_and_when_named_in_a_room_and_once_across_a_kill() {
    let dir = std::env::temp_dir().join(format!("clawgate-matrix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("state")).unwrap();
    let hs = Homeserver::start(&dir);
    hs.register("bot");
    let mut carol = Person {
        hs: &hs,
        token: hs.register("carol"),
        txn: 0,
    };
    let dave = Person {
        hs: &hs,
        token: hs.register("dave"),
        txn: 0,
    };
    let port = common::free_port(16_000);
    let config = json!({
        "gateway": {"port": port, "auth": {"token": TOKEN}},
        "channels": {"matrix": {
            "homeserver": hs.base, "userId": "@bot:localhost", "password": PASSWORD,
            "autoJoin": "always", "dm": {"policy": "allowlist", "allowFrom": ["@carol:localhost"]},
            "groupPolicy": "open", "groupAllowFrom": ["*"],
        }},
    });
    let state = dir.join("state");
    std::fs::write(state.join("openclaw.json"), config.to_string()).unwrap();
    let mut gateway = common::start_gateway(&state, port, &[]);
    let _worker = common::start_echo_worker(port, TOKEN, 300);

    // A DM: the bot joins on the invite and answers.
    let dm = carol.create_room(&["@bot:localhost"], true);
    carol.wait_for_bot_in(&dm);
    carol.say(&dm, "hello over matrix");
    assert_eq!(carol.wait_for_bot_messages(&dm, 1), vec!["hello over matrix"]);

    // A room of three: only the message that names the bot is answered.
    let room = carol.create_room(&["@bot:localhost", "@dave:localhost"], false);
    dave.join(&room);
    carol.wait_for_bot_in(&room);
    carol.say(&room, "just between us");
    carol.say(&room, "bot: are you there");
    assert_eq!(carol.wait_for_bot_messages(&room, 1), vec!["bot: are you there"]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        carol.bot_messages(&room).len(),
        1,
        "a message without the bot's name was answered"
    );

    // The gateway dies with a run under way; after the restart the message is answered once.
    carol.say(&dm, "one two three four five");
    let file = state.join("channels/state.json");
    common::wait_until("the gateway to hold the message", Duration::from_secs(20), || {
        std::fs::read_to_string(&file).is_ok_and(|t| t.contains("one two three four five"))
    });
    let _ = gateway.0.kill();
    let _ = gateway.0.wait();
    drop(gateway);
    let _gateway = common::start_gateway(&state, port, &[]);
    let replies = carol.wait_for_bot_messages(&dm, 2);
    assert_eq!(replies[1], "one two three four five");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(carol.bot_messages(&dm).len(), 2, "answered more than once");

    // Now the adapter dies while a message is under way; the gateway starts a new one.
    carol.say(&dm, "six seven eight nine");
    common::wait_until(
        "the gateway to hold the second message",
        Duration::from_secs(20),
        || std::fs::read_to_string(&file).is_ok_and(|t| t.contains("six seven eight nine")),
    );
    let killed = std::process::Command::new("pkill")
        .args([
            "-KILL",
            "-f",
            &format!("channel --channel matrix --account default --url ws://127.0.0.1:{port}"),
        ])
        .status()
        .unwrap();
    assert!(killed.success(), "no adapter process was found to kill");
    let replies = carol.wait_for_bot_messages(&dm, 3);
    assert_eq!(replies[2], "six seven eight nine");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        carol.bot_messages(&dm).len(),
        3,
        "answered more than once after the adapter's kill"
    );
}

/// `CLAWGATE_CHANNEL_CRASH_CYCLES` gateway kills (default 3) at random moments while a person
/// keeps writing: every message is answered exactly once in the end (the homeserver keeps what
/// arrives while the bot is down, and the sync token hands it over after the restart).
#[test]
fn every_message_is_answered_exactly_once_across_random_gateway_kills() {
    let cycles: u32 = std::env::var("CLAWGATE_CHANNEL_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = std::env::temp_dir().join(format!("clawgate-matrix-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("state")).unwrap();
    let hs = Homeserver::start(&dir);
    hs.register("bot");
    let mut carol = Person {
        hs: &hs,
        token: hs.register("carol"),
        txn: 0,
    };
    let port = common::free_port(16_000);
    let config = json!({
        "gateway": {"port": port, "auth": {"token": TOKEN}},
        "channels": {"matrix": {
            "homeserver": hs.base, "userId": "@bot:localhost", "password": PASSWORD,
            "autoJoin": "always", "dm": {"policy": "allowlist", "allowFrom": ["@carol:localhost"]},
        }},
    });
    let state = dir.join("state");
    std::fs::write(state.join("openclaw.json"), config.to_string()).unwrap();
    let mut gateway = common::start_gateway(&state, port, &[]);
    let _worker = common::start_echo_worker(port, TOKEN, 50);
    let dm = carol.create_room(&["@bot:localhost"], true);
    carol.wait_for_bot_in(&dm);
    let mut seed = std::process::id() as u64 | 1;
    let mut random = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut sent = Vec::new();
    for cycle in 0..cycles {
        // A few messages, then a kill at a random moment among them.
        let burst = 3 + random(4);
        let kill_after = random(burst);
        for i in 0..burst {
            let text = format!("message {cycle}-{i}");
            carol.say(&dm, &text);
            sent.push(text);
            std::thread::sleep(Duration::from_millis(random(300)));
            if i == kill_after {
                let _ = gateway.0.kill();
                let _ = gateway.0.wait();
            }
        }
        std::thread::sleep(Duration::from_millis(random(500)));
        gateway = common::start_gateway(&state, port, &[]);
    }
    let replies = carol.wait_for_bot_messages(&dm, sent.len());
    std::thread::sleep(Duration::from_secs(3));
    let replies_after = carol.bot_messages(&dm);
    assert_eq!(replies, replies_after, "replies kept coming");
    for text in &sent {
        let count = replies.iter().filter(|r| *r == text).count();
        assert_eq!(count, 1, "{text:?} was answered {count} times; replies: {replies:?}");
    }
    assert_eq!(replies.len(), sent.len(), "replies to nothing: {replies:?}");
    eprintln!(
        "matrix crash: {cycles} kills, {} messages, each answered once",
        sent.len()
    );
    drop(gateway);
}
