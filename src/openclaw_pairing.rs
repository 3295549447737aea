//! OpenClaw's own pairing store, kept in step with the gateway, so that `openclaw pairing list`
//! and `openclaw pairing approve` work against Clawgate.
//!
//! The `openclaw` CLI does not ask the gateway for DM pairing requests: it reads and writes its
//! local database, `<state dir>/state/openclaw.sqlite` (tables `channel_pairing_requests` and
//! `channel_pairing_allow_entries`). A process the gateway starts (`clawgate openclaw-pairing`)
//! copies the requests that wait in the gateway into that table once a second, and when the CLI
//! has approved one (the request is gone from the table and its sender is on the table's
//! allowlist of that account) it approves it in the gateway with `channels.pairing.approve`.
//! The gateway stays the one place that decides; this only carries requests and approvals.
//!
//! The database is OpenClaw's: this never creates it (nor its schema, which the CLI migrates),
//! and it only ever changes the request rows of the channels the gateway serves.

use rusqlite::{params, Connection, TransactionBehavior};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often the store is brought in step with the gateway.
const INTERVAL: Duration = Duration::from_secs(1);

/// A request that waits in the gateway, as OpenClaw's table holds it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PendingRequest {
    pub channel: String,
    pub account: String,
    /// OpenClaw's `request_id`: the sender's id, which an approval puts on the allowlist.
    pub sender_id: String,
    pub code: String,
    pub created_at: String,
    pub last_seen_at: String,
    pub meta_json: Option<String>,
}

/// A row of `channel_pairing_requests`: channel and account keys, request id (the sender), code,
/// creation and last-seen times, metadata.
type StoredRow = (String, String, String, String, String, String, Option<String>);

/// A request the CLI approved: the gateway is to approve it too.
#[derive(Debug, PartialEq, Eq)]
pub struct Approved {
    pub channel: String,
    pub account: String,
    pub code: String,
}

/// Where the CLI keeps its state database for a state directory.
pub fn database_path(state_dir: &Path) -> PathBuf {
    state_dir.join("state").join("openclaw.sqlite")
}

/// OpenClaw's channel and account keys: lower case, with the characters it cannot keep in a key
/// replaced.
fn store_key(value: &str) -> String {
    value
        .trim()
        .to_lowercase()
        .replace(['\\', '/', ':', '*', '?', '"', '<', '>', '|'], "_")
        .replace("..", "_")
}

/// Brings the request rows of `channels` in step with `pending` and returns the requests the
/// CLI approved meanwhile, in one write transaction (the CLI writes in its own, so neither sees
/// half of the other's change).
pub fn sync(
    db: &mut Connection,
    channels: &BTreeSet<String>,
    pending: &[PendingRequest],
) -> rusqlite::Result<Vec<Approved>> {
    let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut allowed: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let mut rows: BTreeSet<StoredRow> = BTreeSet::new();
    {
        let mut allow = tx.prepare("SELECT channel_key, account_id, entry FROM channel_pairing_allow_entries")?;
        let mut found = allow.query([])?;
        while let Some(row) = found.next()? {
            let key: (String, String) = (row.get(0)?, row.get(1)?);
            allowed.entry(key).or_default().insert(row.get(2)?);
        }
        let mut requests = tx.prepare(
            "SELECT channel_key, account_id, request_id, code, created_at, last_seen_at, meta_json \
             FROM channel_pairing_requests",
        )?;
        let mut found = requests.query([])?;
        while let Some(row) = found.next()? {
            let channel: String = row.get(0)?;
            if channels.contains(&channel) {
                rows.insert((
                    channel,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                ));
            }
        }
    }
    let mut approved = Vec::new();
    let mut wanted = BTreeSet::new();
    for p in pending {
        let (channel, account) = (store_key(&p.channel), store_key(&p.account));
        let listed = rows.iter().any(|r| r.0 == channel && r.1 == account && r.3 == p.code);
        let on_allowlist = allowed
            .get(&(channel.clone(), account.clone()))
            .is_some_and(|a| a.contains(&p.sender_id));
        if !listed && on_allowlist {
            approved.push(Approved {
                channel: p.channel.clone(),
                account: p.account.clone(),
                code: p.code.clone(),
            });
            continue;
        }
        wanted.insert((
            channel,
            account,
            p.sender_id.clone(),
            p.code.clone(),
            p.created_at.clone(),
            p.last_seen_at.clone(),
            p.meta_json.clone(),
        ));
    }
    if wanted != rows {
        for channel in channels {
            tx.execute(
                "DELETE FROM channel_pairing_requests WHERE channel_key = ?1",
                params![channel],
            )?;
        }
        for w in &wanted {
            tx.execute(
                "INSERT OR REPLACE INTO channel_pairing_requests \
                 (channel_key, account_id, request_id, code, created_at, last_seen_at, meta_json) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![w.0, w.1, w.2, w.3, w.4, w.5, w.6],
            )?;
        }
    }
    tx.commit()?;
    Ok(approved)
}

/// The requests of a `channels.pairing.list` answer, and the channels it covers.
pub fn pending_of(list: &Value) -> (BTreeSet<String>, Vec<PendingRequest>) {
    let channels = list["accounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["channel"].as_str().map(store_key))
        .collect();
    let pending = list["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let text = |k: &str| r[k].as_str().map(str::to_owned);
            let account = text("accountId").unwrap_or_else(|| "default".into());
            let mut meta = r["metadata"].as_object().cloned().unwrap_or_default();
            meta.insert("accountId".into(), json!(store_key(&account)));
            Some(PendingRequest {
                channel: text("channel")?,
                account,
                sender_id: text("senderId")?,
                code: text("requestId")?,
                created_at: text("createdAt")?,
                last_seen_at: text("lastSeenAt").or_else(|| text("createdAt"))?,
                meta_json: Some(Value::Object(meta).to_string()),
            })
        })
        .collect();
    (channels, pending)
}

/// Keeps the store in step until the gateway that started this process is gone.
pub fn run(target: &clawgate_client::Target, state_dir: &Path) -> Result<(), String> {
    let path = database_path(state_dir);
    let mut complained = None::<String>;
    let mut complain = |why: String| {
        if complained.as_deref() != Some(why.as_str()) {
            eprintln!("clawgate openclaw-pairing: {why}");
            complained = Some(why);
        }
    };
    let mut session = None::<clawgate_client::Session>;
    loop {
        std::thread::sleep(INTERVAL);
        if crate::workers::supervisor_gone() {
            return Ok(());
        }
        // OpenClaw's CLI creates (and migrates) its database; until it has, there is nothing
        // to keep in step.
        if !path.exists() {
            continue;
        }
        let live = match session.as_mut() {
            Some(s) => s,
            None => match clawgate_client::Session::connect(target) {
                Ok(s) => session.insert(s),
                Err(e) => {
                    complain(format!("cannot reach the gateway: {e}"));
                    continue;
                }
            },
        };
        let list = match live.call("channels.pairing.list", &json!({})) {
            Ok(answer) => answer
                .and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok())
                .unwrap_or(Value::Null),
            Err(e) => {
                complain(format!("channels.pairing.list failed: {e}"));
                session = None;
                continue;
            }
        };
        let (channels, pending) = pending_of(&list);
        let approved = Connection::open(&path)
            .and_then(|mut db| {
                db.busy_timeout(Duration::from_secs(5))?;
                sync(&mut db, &channels, &pending)
            })
            .map_err(|e| format!("cannot bring {} in step: {e}", path.display()));
        let approved = match approved {
            Ok(a) => a,
            Err(why) => {
                complain(why);
                continue;
            }
        };
        for a in approved {
            // The CLI tells the sender itself, as it does with OpenClaw's gateway.
            let params = json!({"channel": a.channel, "accountId": a.account, "requestId": a.code, "notify": false});
            if let Err(e) = live.call("channels.pairing.approve", &params) {
                complain(format!(
                    "approving {} of {}/{} failed: {e}",
                    a.code, a.channel, a.account
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two tables as OpenClaw's schema (version 18) declares them.
    fn store() -> Connection {
        let db = Connection::open_in_memory().unwrap();
        db.execute_batch(
            "CREATE TABLE channel_pairing_requests (channel_key TEXT NOT NULL, account_id TEXT NOT NULL,
               request_id TEXT NOT NULL, code TEXT NOT NULL, created_at TEXT NOT NULL,
               last_seen_at TEXT NOT NULL, meta_json TEXT,
               PRIMARY KEY (channel_key, account_id, request_id)) STRICT;
             CREATE TABLE channel_pairing_allow_entries (channel_key TEXT NOT NULL,
               account_id TEXT NOT NULL, entry TEXT NOT NULL, sort_order INTEGER NOT NULL,
               updated_at INTEGER NOT NULL, PRIMARY KEY (channel_key, account_id, entry)) STRICT;",
        )
        .unwrap();
        db
    }

    fn request(channel: &str, sender: &str, code: &str) -> PendingRequest {
        PendingRequest {
            channel: channel.into(),
            account: "default".into(),
            sender_id: sender.into(),
            code: code.into(),
            created_at: "2026-12-03T10:00:00.000Z".into(),
            last_seen_at: "2026-12-03T10:00:00.000Z".into(),
            meta_json: Some(r#"{"accountId":"default"}"#.into()),
        }
    }

    fn codes(db: &Connection) -> Vec<String> {
        let mut q = db
            .prepare("SELECT code FROM channel_pairing_requests ORDER BY code")
            .unwrap();
        q.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    }

    fn channels(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn waiting_requests_are_written_as_the_cli_reads_them() {
        let mut db = store();
        let approved = sync(
            &mut db,
            &channels(&["irc"]),
            &[request("irc", "bob!b@host", "ABCD2345")],
        )
        .unwrap();
        assert!(approved.is_empty());
        let row: (String, String, String) = db
            .query_row(
                "SELECT channel_key, account_id, request_id FROM channel_pairing_requests WHERE code = 'ABCD2345'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(row, ("irc".into(), "default".into(), "bob!b@host".into()));
    }

    #[test]
    fn a_request_the_gateway_no_longer_holds_leaves_the_table() {
        let mut db = store();
        sync(
            &mut db,
            &channels(&["irc"]),
            &[request("irc", "bob", "ABCD2345"), request("irc", "eve", "EFGH6789")],
        )
        .unwrap();
        sync(&mut db, &channels(&["irc"]), &[request("irc", "eve", "EFGH6789")]).unwrap();
        assert_eq!(codes(&db), vec!["EFGH6789".to_owned()]);
    }

    #[test]
    fn an_approval_by_the_cli_is_reported_once_the_request_is_gone_and_the_sender_allowed() {
        let mut db = store();
        let waiting = [request("irc", "bob", "ABCD2345")];
        sync(&mut db, &channels(&["irc"]), &waiting).unwrap();
        // What `openclaw pairing approve irc ABCD2345` writes.
        db.execute_batch(
            "DELETE FROM channel_pairing_requests WHERE code = 'ABCD2345';
             INSERT INTO channel_pairing_allow_entries VALUES ('irc', 'default', 'bob', 0, 0);",
        )
        .unwrap();
        let approved = sync(&mut db, &channels(&["irc"]), &waiting).unwrap();
        assert_eq!(
            approved,
            vec![Approved {
                channel: "irc".into(),
                account: "default".into(),
                code: "ABCD2345".into()
            }]
        );
        assert!(codes(&db).is_empty(), "an approved request is not written back");
    }

    #[test]
    fn a_request_removed_without_an_approval_is_written_again() {
        let mut db = store();
        let waiting = [request("irc", "bob", "ABCD2345")];
        sync(&mut db, &channels(&["irc"]), &waiting).unwrap();
        db.execute("DELETE FROM channel_pairing_requests", []).unwrap();
        assert!(sync(&mut db, &channels(&["irc"]), &waiting).unwrap().is_empty());
        assert_eq!(codes(&db), vec!["ABCD2345".to_owned()]);
    }

    #[test]
    fn rows_of_channels_the_gateway_does_not_serve_are_left_alone() {
        let mut db = store();
        db.execute(
            "INSERT INTO channel_pairing_requests VALUES ('discord', 'default', 'x', 'ZZZZ9999', 't', 't', NULL)",
            [],
        )
        .unwrap();
        sync(&mut db, &channels(&["irc"]), &[]).unwrap();
        assert_eq!(codes(&db), vec!["ZZZZ9999".to_owned()]);
    }

    #[test]
    fn the_gateway_list_becomes_rows_with_the_account_in_the_metadata() {
        let list = json!({
            "accounts": [{"channel": "irc", "accountId": "default"}, {"channel": "telegram", "accountId": "work"}],
            "requests": [{"requestId": "ABCD2345", "channel": "telegram", "accountId": "work", "senderId": "42",
                          "metadata": {"name": "Bob"}, "createdAt": "2026-12-03T10:00:00.000Z",
                          "lastSeenAt": "2026-12-03T10:05:00.000Z"}],
        });
        let (served, pending) = pending_of(&list);
        assert_eq!(served, channels(&["irc", "telegram"]));
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].sender_id, "42");
        let meta: Value = serde_json::from_str(pending[0].meta_json.as_deref().unwrap()).unwrap();
        assert_eq!(meta, json!({"name": "Bob", "accountId": "work"}));
    }
}
