//! The IRC channel against a real IRC server: ngIRCd (from Debian, made available by
//! `scripts/install-ngircd.sh`) on loopback, the gateway with `channels.irc` configured (it starts
//! the IRC adapter itself), an echo agent worker, and a person who is a raw IRC client. DM
//! pairing, a DM and a channel mention answered, a long reply cut to IRC's line limit, and the
//! gateway and then the adapter killed with SIGKILL while a message is under way: it is answered
//! exactly once.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TOKEN: &str = "irc-test-token-0123456789";

fn ngircd() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-ngircd.sh");
    let out = Command::new("bash")
        .arg(script)
        .output()
        .expect("run install-ngircd.sh");
    assert!(
        out.status.success(),
        "scripts/install-ngircd.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn start_ircd(dir: &Path, port: u16) -> common::Killed {
    let conf = dir.join("ngircd.conf");
    std::fs::write(
        &conf,
        format!(
            "[Global]\nName = irc.clawgate.test\nInfo = Clawgate test\nListen = 127.0.0.1\nPorts = {port}\n\
             MotdPhrase = test\n[Limits]\nMaxNickLength = 30\nMaxPenaltyTime = 0\n[Options]\nPAM = no\nIdent = no\nDNS = no\n\
             [Channel]\nName = #room\nModes = +n\n"
        ),
    )
    .unwrap();
    let child = Command::new(ngircd())
        .args(["-n", "-f"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ngircd");
    common::wait_until("ngircd to listen", Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    common::Killed(child)
}

fn write_config(state: &Path, port: u16, irc_port: u16) {
    std::fs::create_dir_all(state).unwrap();
    let config = serde_json::json!({
        "gateway": {"port": port, "auth": {"token": TOKEN}},
        "channels": {"irc": {
            "host": "127.0.0.1", "port": irc_port, "tls": false, "nick": "clawbot",
            "channels": ["#room"], "dmPolicy": "pairing",
            "groupPolicy": "allowlist", "groups": {"#room": {"allowFrom": ["*"]}},
        }},
    });
    std::fs::write(state.join("openclaw.json"), config.to_string()).unwrap();
}

/// A person on IRC: a raw client whose lines are read by a thread.
struct Person {
    nick: String,
    stream: TcpStream,
    lines: mpsc::Receiver<String>,
    /// Lines read but not yet matched.
    seen: Vec<String>,
}

impl Person {
    fn join(port: u16, nick: &str) -> Person {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let reader = stream.try_clone().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut p = Person {
            nick: nick.to_owned(),
            stream,
            lines: rx,
            seen: Vec::new(),
        };
        p.send(&format!("NICK {nick}"));
        p.send(&format!("USER {nick} 0 * :{nick}"));
        p.wait_line("registration", |l| l.contains(" 001 "));
        p.send("JOIN #room");
        p.wait_line("joining #room", |l| l.contains(" 366 "));
        p
    }

    fn send(&mut self, line: &str) {
        self.stream.write_all(format!("{line}\r\n").as_bytes()).unwrap();
    }

    fn say(&mut self, target: &str, text: &str) {
        self.send(&format!("PRIVMSG {target} :{text}"));
    }

    /// Waits for a line matching `f` (answering PINGs), keeping the others.
    fn wait_line(&mut self, what: &str, f: impl Fn(&str) -> bool) -> String {
        if let Some(i) = self.seen.iter().position(|l| f(l)) {
            return self.seen.remove(i);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{}: timed out waiting for {what}; saw {:?}",
                self.nick,
                self.seen
            );
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with("PING") => {
                    let token = line.trim_start_matches("PING").trim().to_owned();
                    self.send(&format!("PONG {token}"));
                }
                Ok(line) if f(&line) => return line,
                Ok(line) => self.seen.push(line),
                Err(_) => panic!(
                    "{}: nothing more while waiting for {what}; saw {:?}",
                    self.nick, self.seen
                ),
            }
        }
    }

    /// The text of the next PRIVMSG from the bot to `target`.
    fn reply(&mut self, target: &str) -> String {
        let needle = format!(" PRIVMSG {target} :");
        let line = self.wait_line(&format!("a message from clawbot to {target}"), |l| {
            from_bot(l) && l.contains(&needle)
        });
        line.split_once(&needle).map(|(_, t)| t.to_owned()).unwrap_or_default()
    }

    /// Every message from the bot to `target` that arrives within `quiet`.
    fn replies_within(&mut self, target: &str, quiet: Duration) -> Vec<String> {
        let needle = format!(" PRIVMSG {target} :");
        let deadline = Instant::now() + quiet;
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(line);
        }
        let (mine, rest): (Vec<String>, Vec<String>) = std::mem::take(&mut self.seen)
            .into_iter()
            .partition(|l| from_bot(l) && l.contains(&needle));
        self.seen = rest;
        mine.iter()
            .filter_map(|l| l.split_once(&needle).map(|(_, t)| t.to_owned()))
            .collect()
    }
}

/// Whether a line comes from the bot: `clawbot`, or `clawbot_` while another adapter of a
/// gateway that just died still held the name.
fn from_bot(line: &str) -> bool {
    line.strip_prefix(':')
        .and_then(|l| l.split_once('!'))
        .is_some_and(|(nick, _)| nick.trim_end_matches('_') == "clawbot")
}

fn clawgate(state: &Path, args: &[&str]) -> String {
    let out = common::bin()
        .args(args)
        .env("OPENCLAW_STATE_DIR", state)
        .env_remove("OPENCLAW_GATEWAY_TOKEN")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "clawgate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until the bot is in #room (asking the server for the channel's names).
fn wait_for_bot(person: &mut Person) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        person.send("NAMES #room");
        let names = person.wait_line("the names of #room", |l| l.contains(" 366 "));
        let listed = std::mem::take(&mut person.seen);
        let (names_lines, rest): (Vec<String>, Vec<String>) = listed.into_iter().partition(|l| l.contains(" 353 "));
        person.seen = rest;
        let present = names_lines.iter().any(|l| {
            let names = l.rsplit_once(" :").map_or("", |(_, n)| n);
            names
                .split(' ')
                .any(|n| n.trim_start_matches(['@', '+', '%', '~', '&']) == "clawbot")
        });
        if present {
            return;
        }
        assert!(Instant::now() < deadline, "the bot never joined #room ({names})");
        // Slowly: the server delays a client's commands when it sends many.
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// How many times an adapter connected to the gateways that wrote `state`'s log.
fn adapter_connections(state: &Path) -> usize {
    std::fs::read_to_string(state.join("gateway.log"))
        .unwrap_or_default()
        .matches("channel irc/default: adapter connected")
        .count()
}

/// Waits for the adapter of a gateway just started (`before` is the count from before it): the
/// adapter of the gateway that died has left by then (only one holds the account), so the bot
/// seen on IRC afterwards is the one that hands messages to the new gateway.
fn wait_for_new_adapter(state: &Path, before: usize, person: &mut Person) {
    common::wait_until("the new gateway's adapter", Duration::from_secs(30), || {
        adapter_connections(state) > before
    });
    wait_for_bot(person);
}

fn setup(name: &str) -> (PathBuf, u16, u16, common::Killed) {
    let dir = std::env::temp_dir().join(format!("clawgate-irc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let irc_port = common::free_port(28_000);
    let port = common::free_port(28_000);
    let ircd = start_ircd(&dir, irc_port);
    write_config(&dir.join("state"), port, irc_port);
    (dir, port, irc_port, ircd)
}

/// Waits until the gateway holds `text` as an accepted message waiting for its reply.
fn wait_until_accepted(state: &Path, text: &str) {
    let file = state.join("channels/state.json");
    let needle = format!("\"text\":\"{text}\"");
    common::wait_until("the message to be accepted", Duration::from_secs(20), || {
        std::fs::read_to_string(&file).is_ok_and(|t| t.contains(&needle))
    });
}

/// Pairs `person` through the pairing code the bot sends, with `clawgate pairing approve`.
fn pair(state: &Path, person: &mut Person) {
    person.say("clawbot", "hello, who are you?");
    let text = person.reply(&person.nick.clone());
    let code = text
        .split("Pairing code: ")
        .nth(1)
        .and_then(|t| t.split(['.', ' ']).next())
        .unwrap_or_else(|| panic!("no pairing code in {text:?}"))
        .to_owned();
    assert!(text.contains(&format!("openclaw pairing approve irc {code}")), "{text}");
    let listed = clawgate(state, &["pairing", "list", "irc"]);
    assert!(listed.contains(&code), "{listed}");
    let approved = clawgate(state, &["pairing", "approve", "irc", &code]);
    assert!(approved.contains(&person.nick), "{approved}");
    let note = person.reply(&person.nick.clone());
    assert!(note.contains("approved"), "{note}");
}

#[test]
fn a_person_on_irc_pairs_then_talks_to_the_agent_in_a_dm_and_in_a_channel() {
    let (dir, port, irc_port, _ircd) = setup("talk");
    let state = dir.join("state");
    let _gateway = common::start_gateway(&state, port, &[]);
    let _worker = common::start_echo_worker(port, TOKEN, 0);
    let mut alice = Person::join(irc_port, "alice");
    wait_for_bot(&mut alice);

    pair(&state, &mut alice);
    alice.say("clawbot", "ping number one");
    assert_eq!(alice.reply("alice"), "ping number one");

    // In the channel, only a message that names the bot is answered.
    alice.say("#room", "nobody is addressed here");
    alice.say("#room", "clawbot: what about now");
    assert_eq!(alice.reply("#room"), "what about now");
    assert!(alice.replies_within("#room", Duration::from_millis(500)).is_empty());

    // A message longer than one IRC line (an operator's `send`; a person cannot send one that
    // long) comes as several lines, each within 512 bytes once the server has prefixed it.
    let long: String = (0..300).map(|i| format!("w{i} ")).collect();
    let params = serde_json::json!({"channel": "irc", "to": "alice", "message": long, "idempotencyKey": "long-1"});
    let sent = clawgate(&state, &["call", "send", "--params", &params.to_string()]);
    assert!(sent.contains("\"queued\""), "{sent}");
    let mut words = Vec::new();
    while words.len() < 300 {
        let piece = alice.reply("alice");
        let line = format!(":clawbot!~clawbot@127.0.0.1 PRIVMSG alice :{piece}\r\n");
        assert!(line.len() <= 512, "a line of {} bytes", line.len());
        words.extend(piece.split_whitespace().map(str::to_owned));
    }
    let expected: Vec<String> = long.split_whitespace().map(str::to_owned).collect();
    assert_eq!(words, expected);

    let status: serde_json::Value = serde_json::from_str(&clawgate(&state, &["channels", "status", "--json"])).unwrap();
    let account = &status["channelAccounts"]["irc"][0];
    assert_eq!(account["connected"], true, "{status}");
    assert_eq!(account["deadLetters"], 0);
}

#[test]
fn a_message_under_way_is_answered_once_when_the_gateway_and_then_the_adapter_are_killed() {
    let (dir, port, irc_port, _ircd) = setup("crash");
    let state = dir.join("state");
    let mut gateway = common::start_gateway(&state, port, &[]);
    // Slow words: the run is still going when the gateway dies.
    let _worker = common::start_echo_worker(port, TOKEN, 300);
    let mut bob = Person::join(irc_port, "bob");
    wait_for_bot(&mut bob);
    pair(&state, &mut bob);

    bob.say("clawbot", "one two three four five six");
    wait_until_accepted(&state, "one two three four five six");
    let _ = gateway.0.kill();
    let _ = gateway.0.wait();
    drop(gateway);
    let _gateway = common::start_gateway(&state, port, &[]);
    assert_eq!(bob.reply("bob"), "one two three four five six");
    assert!(
        bob.replies_within("bob", Duration::from_secs(2)).is_empty(),
        "the message was answered more than once"
    );
    // The new adapter may have come up under another name while the old one still held the
    // bot's; it takes the name back once it is free.
    wait_for_bot(&mut bob);

    // Now the adapter dies while a message is under way; the gateway starts a new one.
    bob.say("clawbot", "seven eight nine ten");
    wait_until_accepted(&state, "seven eight nine ten");
    let adapters = Command::new("pkill")
        .args([
            "-KILL",
            "-f",
            &format!("channel --channel irc --account default --url ws://127.0.0.1:{port}"),
        ])
        .status()
        .unwrap();
    assert!(adapters.success(), "no adapter process was found to kill");
    wait_for_bot(&mut bob);
    assert_eq!(bob.reply("bob"), "seven eight nine ten");
    assert!(
        bob.replies_within("bob", Duration::from_secs(2)).is_empty(),
        "the message was answered more than once"
    );
}

/// The resident memory of `pid` and of its children, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let of = |p: &str| {
        std::fs::read_to_string(format!("/proc/{p}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
            })
            .unwrap_or(0)
    };
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    let kids: u64 = children.split_whitespace().map(of).sum();
    (of(&pid.to_string()), kids)
}

/// Figures, run by hand: `cargo test --release --test channels_irc -- --ignored --nocapture`.
/// A DM to the bot and its echo reply, one at a time: the time from the person's PRIVMSG to the
/// reply's arrival (ngIRCd, the adapter, the gateway and the echo worker), and the memory of the
/// gateway and of the processes it started.
#[test]
#[ignore]
fn figures_dm_round_trip_and_memory() {
    let (dir, port, irc_port, _ircd) = setup("figures");
    let state = dir.join("state");
    std::fs::write(
        state.join("openclaw.json"),
        serde_json::json!({
            "gateway": {"port": port, "auth": {"token": TOKEN}},
            "channels": {"irc": {"host": "127.0.0.1", "port": irc_port, "tls": false, "nick": "clawbot",
                                 "channels": ["#room"], "dmPolicy": "allowlist", "allowFrom": ["*"]}},
        })
        .to_string(),
    )
    .unwrap();
    let gateway = common::start_gateway(&state, port, &[]);
    let _worker = common::start_echo_worker(port, TOKEN, 0);
    let mut alice = Person::join(irc_port, "alice");
    wait_for_bot(&mut alice);
    alice.say("clawbot", "warm up");
    alice.reply("alice");
    let mut times = Vec::new();
    for i in 0..300 {
        let started = Instant::now();
        alice.say("clawbot", &format!("ping {i}"));
        assert_eq!(alice.reply("alice"), format!("ping {i}"));
        times.push(started.elapsed().as_micros() as u64);
        // Under ngIRCd's flood limit for one client.
        std::thread::sleep(Duration::from_millis(150));
    }
    times.sort_unstable();
    let at = |q: f64| times[((times.len() as f64 - 1.0) * q) as usize];
    let (gw, kids) = rss_kib(gateway.0.id());
    eprintln!(
        "irc round trip over {} DMs: p50 {} us, p99 {} us, max {} us; RSS gateway {gw} KiB, its adapter {kids} KiB",
        times.len(),
        at(0.5),
        at(0.99),
        times[times.len() - 1]
    );
}

/// Gateway kills for the crash tests: `CLAWGATE_CHANNEL_CRASH_CYCLES` (default 3).
fn crash_cycles() -> u32 {
    std::env::var("CLAWGATE_CHANNEL_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// A small xorshift for the moments of the kills, seeded from the process id (printed, so that
/// a failing run can be repeated).
fn random_source() -> impl FnMut(u64) -> u64 {
    let mut seed = std::process::id() as u64 | 1;
    eprintln!("crash test seed {seed}");
    move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    }
}

/// The user messages in the transcripts under `state`: what the gateway accepted for a run.
fn accepted_texts(state: &Path) -> std::collections::BTreeSet<String> {
    let mut found = std::collections::BTreeSet::new();
    let mut dirs = vec![state.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "jsonl") {
                for line in std::fs::read_to_string(&path).unwrap_or_default().lines() {
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                        continue;
                    };
                    if v["message"]["role"] == "user" {
                        if let Some(text) = v["message"]["content"].as_str() {
                            found.insert(text.to_owned());
                        }
                    }
                }
            }
        }
    }
    found
}

/// The IRC network keeps nothing for a bot that is away, and the adapter cannot hand back what
/// it read when the gateway died under it; so a message counts as accepted once the gateway
/// wrote it down (its transcripts hold it), and every accepted message must be answered exactly
/// once, none twice, and nothing answered that was not sent.
#[test]
fn every_accepted_irc_message_is_answered_exactly_once_across_random_gateway_kills() {
    let cycles = crash_cycles();
    let (dir, port, irc_port, _ircd) = setup("kills");
    let state = dir.join("state");
    let mut gateway = common::start_gateway(&state, port, &[]);
    let _worker = common::start_echo_worker(port, TOKEN, 20);
    let mut bob = Person::join(irc_port, "bob");
    wait_for_bot(&mut bob);
    pair(&state, &mut bob);
    let mut random = random_source();
    let mut sent = Vec::new();
    for cycle in 0..cycles {
        let burst = 4 + random(4);
        let kill_after = random(burst);
        for i in 0..burst {
            let text = format!("irc {cycle}-{i}");
            bob.say("clawbot", &text);
            sent.push(text);
            // Under ngIRCd's flood limit for one client.
            std::thread::sleep(Duration::from_millis(150 + random(250)));
            if i == kill_after {
                let _ = gateway.0.kill();
                let _ = gateway.0.wait();
            }
        }
        std::thread::sleep(Duration::from_millis(random(500)));
        let before = adapter_connections(&state);
        gateway = common::start_gateway(&state, port, &[]);
        wait_for_new_adapter(&state, before, &mut bob);
    }
    // The last words, with everyone up: these must all be answered.
    for i in 0..3 {
        let text = format!("irc final-{i}");
        bob.say("clawbot", &text);
        sent.push(text);
        std::thread::sleep(Duration::from_millis(200));
    }
    let accepted = accepted_texts(&state);
    let mut replies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        replies.extend(bob.replies_within("bob", Duration::from_millis(500)));
        let missing: Vec<String> = accepted_texts(&state)
            .into_iter()
            .filter(|t| !replies.contains(t))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing:?} never answered; replies {replies:?}; log: {}",
            std::fs::read_to_string(state.join("gateway.log")).unwrap_or_default()
        );
    }
    replies.extend(bob.replies_within("bob", Duration::from_secs(3)));
    let accepted_after = accepted_texts(&state);
    for text in &accepted_after {
        let count = replies.iter().filter(|r| *r == text).count();
        assert_eq!(count, 1, "{text:?} was answered {count} times; replies {replies:?}");
    }
    for reply in &replies {
        assert!(accepted_after.contains(reply), "{reply:?} answered but never accepted");
    }
    for i in 0..3 {
        assert!(accepted.contains(&format!("irc final-{i}")) || accepted_after.contains(&format!("irc final-{i}")));
    }
    eprintln!(
        "irc crash: {cycles} gateway kills, {} messages sent, {} accepted and each answered once, {} not accepted (sent while the gateway or its adapter was down; IRC keeps nothing)",
        sent.len(),
        accepted_after.len(),
        sent.len() - accepted_after.len()
    );
}

/// A webhook sender that retries until it gets its 200, with the same idempotency key.
fn post_hook(port: u16, body: &serde_json::Value, key: &str) -> Option<u16> {
    use std::io::Read;
    let body = body.to_string();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!(
        "POST /hooks/agent HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {HOOK_TOKEN}\r\n\
         Idempotency-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split(' ').nth(1)?.parse().ok()
}

const HOOK_TOKEN: &str = "irc-hook-token-0123456789";

/// Webhooks whose replies go to a person on IRC, while the gateway is killed at random moments:
/// the sender retries each hook until it is admitted (with its idempotency key), and every hook
/// is answered on IRC exactly once.
#[test]
fn every_admitted_hook_is_answered_once_on_irc_across_random_gateway_kills() {
    let cycles = crash_cycles();
    let (dir, port, irc_port, _ircd) = setup("hooks");
    let state = dir.join("state");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("openclaw.json")).unwrap()).unwrap();
    config["hooks"] = serde_json::json!({"enabled": true, "token": HOOK_TOKEN});
    std::fs::write(state.join("openclaw.json"), config.to_string()).unwrap();
    let mut gateway = common::start_gateway(&state, port, &[]);
    let _worker = common::start_echo_worker(port, TOKEN, 20);
    let mut carol = Person::join(irc_port, "carol");
    wait_for_bot(&mut carol);
    let mut random = random_source();
    let total = (cycles as usize + 1) * 6;
    let (done_tx, done_rx) = mpsc::channel();
    let sender = std::thread::spawn(move || {
        let mut admitted = 0;
        for i in 0..total {
            let text = format!("hook {i}");
            let body = serde_json::json!({"message": text, "channel": "irc", "to": "carol"});
            let mut attempts = 0;
            while post_hook(port, &body, &format!("key-{i}")) != Some(200) {
                attempts += 1;
                assert!(attempts < 200, "{text} was never admitted");
                std::thread::sleep(Duration::from_millis(100));
            }
            admitted += 1;
            let _ = done_tx.send(i);
            std::thread::sleep(Duration::from_millis(60));
        }
        admitted
    });
    for _ in 0..cycles {
        std::thread::sleep(Duration::from_millis(300 + random(900)));
        let _ = gateway.0.kill();
        let _ = gateway.0.wait();
        std::thread::sleep(Duration::from_millis(random(500)));
        gateway = common::start_gateway(&state, port, &[]);
    }
    let admitted = sender.join().unwrap();
    assert_eq!(admitted, total);
    assert_eq!(done_rx.try_iter().count(), total);
    let mut replies = Vec::new();
    // The runs end in a burst once a worker is back, and the adapter paces its lines as IRC
    // servers ask (0.6 s a message after a burst of 4): the backlog takes that long to go out.
    let deadline = Instant::now() + Duration::from_secs(60) + Duration::from_millis(700) * total as u32;
    loop {
        replies.extend(carol.replies_within("carol", Duration::from_millis(500)));
        let missing: Vec<usize> = (0..total).filter(|i| !replies.contains(&format!("hook {i}"))).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "hooks {missing:?} never answered; replies {replies:?}; log: {}",
            std::fs::read_to_string(state.join("gateway.log")).unwrap_or_default()
        );
    }
    replies.extend(carol.replies_within("carol", Duration::from_secs(3)));
    for i in 0..total {
        let text = format!("hook {i}");
        let count = replies.iter().filter(|r| **r == text).count();
        assert_eq!(count, 1, "{text:?} was answered {count} times; replies {replies:?}");
    }
    assert_eq!(replies.len(), total, "replies to nothing: {replies:?}");
    eprintln!("hooks crash: {cycles} gateway kills, {total} hooks admitted, each answered once on IRC");
    drop(gateway);
}
