//! `clawgate channel --channel irc`: the IRC adapter. One process per account, started and
//! restarted by the gateway. It connects to the gateway as a node with the cap
//! `channel:irc:<account>` and to the IRC server named by `channels.irc` (plain TCP or TLS),
//! registers, joins the configured channels, and then:
//!
//! - every `PRIVMSG` to the bot (a DM) or in a joined channel goes to the gateway as
//!   `channel.inbound`, again until the gateway answers (the gateway drops repeats by message id);
//! - every `channel.deliver` is sent as `PRIVMSG` lines cut to IRC's 512 bytes and answered with
//!   `channel.delivered` once the server has processed them: the lines are followed by a `PING`
//!   and the delivery counts as sent when its `PONG` comes back (a server handles a client's
//!   commands in order, and drops what it had not handled yet when the client goes). The ids it
//!   delivered are kept in a file under the state directory, so a delivery handed over again
//!   after a crash of the gateway is not sent twice.
//!
//! IRC has no message ids and no replay: a message that reaches a disconnected bot is not seen.
//! The adapter numbers messages itself (its start time and a counter).

use crate::channel_adapter::{Adapter, AdapterIo, Delivery, InboundMessage, Network};
use clawgate_engine::channel_text::{irc_text_budget, split_irc};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a delivery waits for the server to confirm it.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// Deliveries waiting for the `PONG` that follows their lines, by the `PING` token.
type AwaitingPong = Arc<Mutex<HashMap<String, mpsc::Sender<()>>>>;

/// Drops the waiting deliveries when the IRC thread ends, so that they fail at once.
struct ClearOnExit(AwaitingPong);

impl Drop for ClearOnExit {
    fn drop(&mut self) {
        if let Ok(mut waiting) = self.0.lock() {
            waiting.clear();
        }
    }
}

/// Lines sent in a burst before the adapter paces itself (IRC servers disconnect floods).
const BURST: u32 = 4;
const PACE: Duration = Duration::from_millis(600);

/// What the IRC thread reports to the adapter loop.
enum IrcEvent {
    Registered(String),
    Message(InboundMessage),
    Lost(String),
}

/// The IRC side of the adapter: a thread that owns the socket.
pub struct Irc {
    settings: Value,
    account: String,
    events: Option<mpsc::Receiver<IrcEvent>>,
    lines: Option<mpsc::Sender<String>>,
    awaiting_pong: AwaitingPong,
    next_token: u64,
    /// Registered with the server: before that, a server refuses messages.
    registered: bool,
    nick: String,
    user: String,
}

impl Irc {
    pub fn new(settings: Value, account: &str) -> Irc {
        let nick = settings["nick"].as_str().unwrap_or("clawgate").to_owned();
        let user = settings["username"].as_str().unwrap_or(&nick).to_owned();
        Irc {
            settings,
            account: account.to_owned(),
            events: None,
            lines: None,
            awaiting_pong: AwaitingPong::default(),
            next_token: 0,
            registered: false,
            nick,
            user,
        }
    }
}

type Stream = Box<dyn ReadWrite + Send>;
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn connect_stream(settings: &Value) -> Result<(Stream, TcpStream), String> {
    let host = settings["host"].as_str().unwrap_or_default().to_owned();
    let tls = settings["tls"].as_bool().unwrap_or(true);
    let port = settings["port"].as_u64().unwrap_or(if tls { 6697 } else { 6667 });
    let tcp = TcpStream::connect((host.as_str(), port as u16))
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_millis(20)))
        .map_err(|e| e.to_string())?;
    let handle = tcp.try_clone().map_err(|e| e.to_string())?;
    if !tls {
        return Ok((Box::new(tcp), handle));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| format!("{host}: {e}"))?;
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).map_err(|e| e.to_string())?;
    Ok((Box::new(rustls::StreamOwned::new(conn, tcp)), handle))
}

/// One parsed IRC line: prefix, command, parameters (the trailing one included).
fn parse_line(line: &str) -> Option<(Option<&str>, &str, Vec<&str>)> {
    let mut rest = line.trim_end_matches(['\r', '\n']);
    let prefix = if let Some(r) = rest.strip_prefix(':') {
        let (p, r) = r.split_once(' ')?;
        rest = r;
        Some(p)
    } else {
        None
    };
    let (head, trailing) = match rest.split_once(" :") {
        Some((h, t)) => (h, Some(t)),
        None => (rest, None),
    };
    let mut words = head.split(' ').filter(|w| !w.is_empty());
    let command = words.next()?;
    let mut params: Vec<&str> = words.collect();
    if let Some(t) = trailing {
        params.push(t);
    }
    Some((prefix, command, params))
}

/// Whether `text` addresses `nick` (`nick: ...`, `nick, ...`, or the nick as a word), and the
/// text without a leading address.
fn mention(text: &str, nick: &str) -> (bool, String) {
    let lower = text.to_lowercase();
    let nick_l = nick.to_lowercase();
    for sep in [":", ","] {
        let lead = format!("{nick_l}{sep}");
        if lower.starts_with(&lead) {
            return (true, text[lead.len()..].trim().to_owned());
        }
    }
    let word = lower
        .split(|c: char| !(c.is_alphanumeric() || "-_[]\\`^{}|".contains(c)))
        .any(|w| w == nick_l);
    (word, text.to_owned())
}

fn irc_thread(
    mut stream: Stream,
    settings: Value,
    nick: String,
    user: String,
    events: mpsc::Sender<IrcEvent>,
    lines: mpsc::Receiver<String>,
    awaiting_pong: AwaitingPong,
) {
    let _clear = ClearOnExit(awaiting_pong.clone());
    let send = |stream: &mut Stream, line: &str| -> std::io::Result<()> {
        stream.write_all(line.as_bytes())?;
        stream.write_all(b"\r\n")?;
        stream.flush()
    };
    let realname = settings["realname"].as_str().unwrap_or("Clawgate");
    let mut hello = Vec::new();
    if let Some(p) = settings["password"].as_str() {
        hello.push(format!("PASS {p}"));
    }
    hello.push(format!("NICK {nick}"));
    hello.push(format!("USER {user} 0 * :{realname}"));
    for line in &hello {
        if let Err(e) = send(&mut stream, line) {
            let _ = events.send(IrcEvent::Lost(format!("cannot register: {e}")));
            return;
        }
    }
    let channels: Vec<String> = settings["channels"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect();
    let epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut counter = 0u64;
    let mut my_nick = nick.clone();
    let mut registered = false;
    // With the configured nick taken (an adapter of a gateway that just died still holding it),
    // the bot runs under another and asks for its own again now and then.
    let mut next_regain = Instant::now();
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    let mut sent_in_burst = 0u32;
    let mut last_sent = Instant::now();
    loop {
        if registered && my_nick != nick && Instant::now() >= next_regain {
            next_regain = Instant::now() + Duration::from_secs(5);
            let _ = send(reader.get_mut(), &format!("NICK {nick}"));
        }
        // Outgoing lines first, paced after a short burst.
        while let Ok(line) = lines.try_recv() {
            // The PING that confirms a delivery is not a message: it goes out unpaced.
            let paced = !line.starts_with("PING ");
            if paced && sent_in_burst >= BURST {
                let since = last_sent.elapsed();
                if since < PACE {
                    std::thread::sleep(PACE - since);
                }
            }
            if last_sent.elapsed() > PACE * BURST {
                sent_in_burst = 0;
            }
            if let Err(e) = send(reader.get_mut(), &line) {
                let _ = events.send(IrcEvent::Lost(format!("write failed: {e}")));
                return;
            }
            if paced {
                sent_in_burst += 1;
                last_sent = Instant::now();
            }
        }
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => {
                let _ = events.send(IrcEvent::Lost("the server closed the connection".into()));
                return;
            }
            Ok(_) if buf.ends_with(b"\n") => {}
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(e) => {
                let _ = events.send(IrcEvent::Lost(format!("read failed: {e}")));
                return;
            }
        }
        let line = String::from_utf8_lossy(&buf).into_owned();
        buf.clear();
        let Some((prefix, command, params)) = parse_line(&line) else {
            continue;
        };
        match command {
            "PING" => {
                let token = params.first().copied().unwrap_or_default();
                let _ = send(reader.get_mut(), &format!("PONG :{token}"));
            }
            "PONG" => {
                let token = params.last().copied().unwrap_or_default();
                if let Some(confirmed) = awaiting_pong.lock().ok().and_then(|mut w| w.remove(token)) {
                    let _ = confirmed.send(());
                }
            }
            "001" => {
                if let Some(n) = params.first() {
                    my_nick = (*n).to_owned();
                }
                for c in &channels {
                    let _ = send(reader.get_mut(), &format!("JOIN {c}"));
                }
                registered = true;
                next_regain = Instant::now() + Duration::from_secs(5);
                let _ = events.send(IrcEvent::Registered(my_nick.clone()));
            }
            // The nick is taken: while registering, try it with an underscore.
            "433" if !registered => {
                my_nick.push('_');
                let _ = send(reader.get_mut(), &format!("NICK {my_nick}"));
            }
            "NICK" if prefix.is_some_and(|p| p.split('!').next() == Some(my_nick.as_str())) => {
                if let Some(new) = params.first() {
                    my_nick = (*new).to_owned();
                    let _ = events.send(IrcEvent::Registered(my_nick.clone()));
                }
            }
            // Whoever held the configured nick left: take it.
            "QUIT" | "NICK"
                if my_nick != nick && prefix.is_some_and(|p| p.split('!').next() == Some(nick.as_str())) =>
            {
                let _ = send(reader.get_mut(), &format!("NICK {nick}"));
            }
            "ERROR" => {
                let why = params.last().copied().unwrap_or("error").to_owned();
                let _ = events.send(IrcEvent::Lost(format!("server error: {why}")));
                return;
            }
            "PRIVMSG" if params.len() >= 2 => {
                let Some(from) = prefix else { continue };
                let sender_nick = from.split('!').next().unwrap_or(from).to_owned();
                let (target, text) = (params[0], params[1]);
                // CTCP (ACTION aside) is not a message to the agent.
                if text.starts_with('\u{1}') && !text.starts_with("\u{1}ACTION") {
                    continue;
                }
                counter += 1;
                let direct = target.eq_ignore_ascii_case(&my_nick);
                let (mentioned, body) = if direct {
                    (true, text.to_owned())
                } else {
                    mention(text, &my_nick)
                };
                let message = InboundMessage {
                    message_id: format!("{epoch}-{counter}"),
                    chat_type: if direct { "direct" } else { "group" },
                    peer_id: if direct {
                        sender_nick.clone()
                    } else {
                        target.to_lowercase()
                    },
                    sender_id: from.to_owned(),
                    sender_name: sender_nick,
                    text: body,
                    mentioned,
                };
                if events.send(IrcEvent::Message(message)).is_err() {
                    return;
                }
            }
            _ => {}
        }
    }
}

impl Network for Irc {
    fn connect(&mut self) -> Result<(), String> {
        let (stream, _handle) = connect_stream(&self.settings)?;
        let (event_tx, event_rx) = mpsc::channel();
        let (line_tx, line_rx) = mpsc::channel();
        let (settings, nick, user) = (self.settings.clone(), self.nick.clone(), self.user.clone());
        let awaiting = self.awaiting_pong.clone();
        std::thread::Builder::new()
            .name(format!("irc-{}", self.account))
            .spawn(move || irc_thread(stream, settings, nick, user, event_tx, line_rx, awaiting))
            .map_err(|e| e.to_string())?;
        self.events = Some(event_rx);
        self.lines = Some(line_tx);
        Ok(())
    }

    fn disconnect(&mut self) {
        if let Some(lines) = self.lines.take() {
            let _ = lines.send("QUIT :stopping".into());
        }
        self.events = None;
    }

    fn poll(&mut self, wait: Duration, io: &mut AdapterIo) {
        let Some(events) = &self.events else {
            std::thread::sleep(wait);
            return;
        };
        match events.recv_timeout(wait) {
            Ok(IrcEvent::Registered(nick)) => {
                self.nick = nick;
                self.registered = true;
                io.connected = true;
                io.error = None;
            }
            Ok(IrcEvent::Message(m)) => io.inbound.push(m),
            Ok(IrcEvent::Lost(why)) => {
                self.registered = false;
                io.connected = false;
                io.error = Some(why);
                self.events = None;
                self.lines = None;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                self.registered = false;
                io.connected = false;
                self.events = None;
                self.lines = None;
            }
        }
    }

    fn send(&mut self, delivery: &Delivery) -> Result<(), (String, bool)> {
        let Some(lines) = self.lines.as_ref().filter(|_| self.registered) else {
            return Err(("not connected to the IRC server".into(), false));
        };
        let target = delivery.target.trim();
        if target.is_empty() || target.contains([' ', '\r', '\n', ',']) {
            return Err((format!("{target:?} is not an IRC nick or channel"), true));
        }
        let budget = irc_text_budget(&self.nick, &self.user, target);
        let pieces = split_irc(&delivery.text, budget);
        if pieces.is_empty() {
            return Err(("the text is empty once made fit for IRC".into(), true));
        }
        self.next_token += 1;
        let token = format!("clawgate-{}-{}", delivery.id, self.next_token);
        let (confirmed_tx, confirmed) = mpsc::channel();
        if let Ok(mut waiting) = self.awaiting_pong.lock() {
            waiting.insert(token.clone(), confirmed_tx);
        }
        let gone = || ("the connection to the IRC server is gone".to_owned(), false);
        for piece in pieces {
            lines.send(format!("PRIVMSG {target} :{piece}")).map_err(|_| gone())?;
        }
        lines.send(format!("PING :{token}")).map_err(|_| gone())?;
        // Even when the gateway died meanwhile: what the server confirms is written down as sent,
        // so the next adapter does not send it again.
        let outcome = confirmed.recv_timeout(CONFIRM_TIMEOUT);
        if let Ok(mut waiting) = self.awaiting_pong.lock() {
            waiting.remove(&token);
        }
        match outcome {
            Ok(()) => Ok(()),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                Err(("the IRC server did not confirm the message in time".to_owned(), false))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(gone()),
        }
    }
}

/// Runs the IRC adapter of `account` until the process is stopped.
pub fn run(adapter: Adapter) -> Result<(), String> {
    let irc = Irc::new(adapter.settings.clone(), &adapter.account);
    adapter.serve(irc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_privmsg_line_parses_into_prefix_command_and_text() {
        let (prefix, command, params) = parse_line(":alice!a@host PRIVMSG #room :hello: there\r\n").unwrap();
        assert_eq!(prefix, Some("alice!a@host"));
        assert_eq!(command, "PRIVMSG");
        assert_eq!(params, vec!["#room", "hello: there"]);
    }

    #[test]
    fn a_leading_address_is_a_mention_and_is_taken_off() {
        assert_eq!(mention("ClawBot: hi", "clawbot"), (true, "hi".to_owned()));
        assert!(mention("hey clawbot how are you", "clawbot").0);
        assert!(!mention("clawbots are fun", "clawbot").0);
    }
}
