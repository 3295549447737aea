//! The configuration over RPC: `config.get`, `config.schema`, `config.schema.lookup`, and the
//! writes `config.set`, `config.patch` and `config.apply`.
//!
//! A write names the file it was computed against by its `baseHash` (an HMAC of the file's
//! text, as OpenClaw's), so that two editors cannot overwrite each other. The new text is checked
//! exactly as a file edit is, then handed to the runtime to write atomically
//! ([`Output::WriteConfig`]); when the runtime reports the write, the gateway applies the text
//! through the reload planner and only then answers, with the paths that changed and whether they
//! need a restart.
//!
//! The HMAC key is drawn at start, so a hash does not survive a restart: a client holding one
//! from before gets "config changed since last load" and reads the file again. Keyed, the hash
//! tells nothing about the secrets in the file.

use crate::config::GatewayConfig;
use crate::output::{ConnId, Output};
use crate::reload::changed_paths;
use crate::settings::{redacted, REDACTED};
use clawgate_proto::device::base64url_encode;
use clawgate_proto::frame::{ErrorCode, ErrorShape, RequestFrame};
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

type HmacSha256 = Hmac<sha2::Sha256>;

/// What a `config.*` request needs to see of the file in force (owned by the gateway's life).
pub(crate) struct FileInForce<'a> {
    /// The file's text; `None` when there is no file.
    pub text: Option<&'a str>,
    /// The document after `${ENV}` substitution.
    pub resolved: &'a Value,
    /// `health.configReload`: the last reload's outcome.
    pub reload_status: &'a Value,
}

/// A write handed to the runtime, answered when it reports back.
pub(crate) struct PendingWrite {
    pub write: u64,
    pub conn: ConnId,
    pub request_id: String,
    pub method: String,
    pub text: String,
    /// The new document as written (before `${ENV}` substitution).
    pub document: Value,
    /// The paths that change, as the answer reports them.
    pub changed: Vec<String>,
    /// Every leaf path that changes, for the audit log.
    pub leaves: Vec<String>,
    /// Paths among them that need a restart.
    pub restart_paths: Vec<String>,
    /// The answer, for a write made by another method than the `config.*` ones
    /// (`agents.create` answers with the agent it made).
    pub answer: Option<Value>,
}

/// What a write request came to.
pub(crate) enum WriteStart {
    /// Nothing to write: the answer.
    Unchanged(Value),
    /// The runtime writes the file; the answer waits for it.
    Writing(Output),
}

/// The configuration writes' own state.
pub(crate) struct ConfigRpc {
    hash_key: [u8; 32],
    /// The environment `${NAME}` references are checked against (read by the runtime at start).
    env: BTreeMap<String, String>,
    pending: Vec<PendingWrite>,
    next_write: u64,
}

fn invalid(method: &str, reason: impl std::fmt::Display) -> ErrorShape {
    ErrorShape::new(ErrorCode::InvalidRequest, format!("invalid {method} params: {reason}"))
}

fn stale() -> ErrorShape {
    ErrorShape::new(
        ErrorCode::InvalidRequest,
        "config changed since last load; re-run config.get and retry",
    )
}

/// Paths that change from `old` to `new` as OpenClaw's answer lists them: cut to a section and
/// its key (`session.maintenance`), each once.
pub(crate) fn changed_sections(old: &Value, new: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for path in changed_paths(old, new) {
        let short: String = path.splitn(3, '.').take(2).collect::<Vec<_>>().join(".");
        if !out.contains(&short) {
            out.push(short);
        }
    }
    out
}

/// RFC 7386 merge patch: objects merge key by key, `null` deletes, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (k, v) in patch {
            if v.is_null() {
                map.remove(k);
            } else {
                merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// Puts the secrets back where a client sent the redaction placeholder it was shown: the value
/// at the same path in the file in force. A placeholder with nothing to restore is an error.
fn restore_secrets(new: &mut Value, old: &Value, path: &str) -> Result<(), String> {
    match new {
        Value::String(s) if s == REDACTED => {
            let original = crate::settings::get_path(old, path)
                .filter(|v| v.is_string())
                .ok_or_else(|| format!("{path} holds the redaction placeholder and there is no value to keep"))?;
            *new = original.clone();
            Ok(())
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                restore_secrets(v, old, &p)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The file as `config.get` shows it: its own text when it holds no secret, else the redacted
/// document (the secrets' places keep the placeholder, which a write puts back).
fn shown_text(text: &str, source: &Value) -> String {
    let hidden = redacted(source);
    if &hidden == source {
        text.to_owned()
    } else {
        serde_json::to_string_pretty(&hidden).unwrap_or_default()
    }
}

impl ConfigRpc {
    pub fn new(hash_key: [u8; 32]) -> Self {
        ConfigRpc {
            hash_key,
            env: BTreeMap::new(),
            pending: Vec::new(),
            next_write: 1,
        }
    }

    pub fn set_environment(&mut self, vars: impl IntoIterator<Item = (String, String)>) {
        self.env = vars.into_iter().collect();
    }

    /// The environment for checking a file (`${NAME}` substitution).
    pub fn environment(&self) -> &BTreeMap<String, String> {
        &self.env
    }

    /// `hmac-sha256:v1:<base64url>` of a file's text.
    pub fn hash(&self, text: &str) -> String {
        let mut mac = match HmacSha256::new_from_slice(&self.hash_key) {
            Ok(m) => m,
            // Any key length is accepted by HMAC.
            Err(_) => return String::new(),
        };
        mac.update(text.as_bytes());
        format!("hmac-sha256:v1:{}", base64url_encode(&mac.finalize().into_bytes()))
    }

    /// The text the next write is computed against: a write in flight, else the file in force.
    fn base_text<'a>(&'a self, file: &FileInForce<'a>) -> Option<&'a str> {
        self.pending.last().map(|p| p.text.as_str()).or(file.text)
    }

    /// `config.get`.
    pub fn get(&self, config: &GatewayConfig, file: &FileInForce<'_>) -> Value {
        let source: Value = file
            .text
            .and_then(|t| json5::from_str(t).ok())
            .unwrap_or_else(crate::settings::empty_document);
        let mut in_force = redacted(file.resolved);
        if in_force.get("gateway").is_none() {
            in_force["gateway"] = json!({"mode": "local"});
        }
        in_force["gateway"]["auth"] = match config.auth.mode {
            clawgate_proto::auth::AuthMode::Token => json!({"mode": "token", "token": REDACTED}),
            clawgate_proto::auth::AuthMode::Password => json!({"mode": "password", "password": REDACTED}),
            other => json!({"mode": other.as_str()}),
        };
        // Without a file the hash is the empty text's, so that a client can write the first one.
        let hash = Some(self.hash(file.text.unwrap_or("")));
        let warnings: Vec<Value> = file
            .reload_status
            .get("lastError")
            .map(|e| json!({"path": "", "message": format!("the last edit was not applied: {}", e.as_str().unwrap_or_default())}))
            .into_iter()
            .collect();
        json!({
            "path": config.config_path,
            "includedPaths": [],
            "includeProvenance": [],
            "agentRosterIncludeOwned": false,
            "bindingsIncludeOwned": false,
            "exists": file.text.is_some(),
            "raw": file.text.map(|t| shown_text(t, &source)),
            "parsed": redacted(&source),
            "sourceConfig": redacted(&source),
            "resolved": redacted(file.resolved),
            "valid": true,
            "runtimeConfig": in_force,
            "config": in_force,
            "hash": hash,
            "issues": [],
            "warnings": warnings,
            "legacyIssues": [],
            "configRevisionHash": hash,
            "appliedConfigHash": hash,
        })
    }

    /// `config.set` (the whole file), `config.patch` (a merge patch) and `config.apply` (the
    /// whole file; restart-class changes restart the gateway, as with any edit).
    pub fn write(
        &mut self,
        config: &GatewayConfig,
        file: &FileInForce<'_>,
        conn: ConnId,
        request: &RequestFrame,
    ) -> Result<WriteStart, ErrorShape> {
        let m = request.method.as_str();
        let p: Value = serde_json::from_str(request.params_text()).map_err(|e| invalid(m, e))?;
        let raw = p.get("raw").and_then(Value::as_str).ok_or_else(|| {
            invalid(
                m,
                "raw (the file's text, or for config.patch a JSON5 merge patch) is required",
            )
        })?;
        let (base_text, old) = self.base(m, file)?;
        let given: Value = json5::from_str(raw).map_err(|e| invalid(m, format!("raw is not JSON5: {e}")))?;
        if !given.is_object() {
            return Err(invalid(m, "raw must be an object"));
        }
        let mut new = if m == "config.patch" {
            let mut merged = old.clone();
            merge_patch(&mut merged, &given);
            merged
        } else {
            given
        };
        restore_secrets(&mut new, &old, "").map_err(|e| invalid(m, e))?;
        // The base hash is asked for only when there is a file to have read.
        if let Some(current) = &base_text {
            match p.get("baseHash").and_then(Value::as_str).filter(|h| !h.is_empty()) {
                None => {
                    let first = changed_paths(&old, &new)
                        .into_iter()
                        .next()
                        .unwrap_or_else(|| "<root>".into());
                    return Err(ErrorShape::new(
                        ErrorCode::InvalidRequest,
                        format!("config base hash required for {first}; re-run config.get and retry with baseHash"),
                    ));
                }
                Some(h) if h != self.hash(current) => return Err(stale()),
                Some(_) => {}
            }
        }
        self.stage(config, file, conn, request, &old, new, None)
    }

    /// The leaf paths a write in flight changes.
    pub fn changed_paths(&self, write: u64) -> Vec<String> {
        self.pending
            .iter()
            .find(|p| p.write == write)
            .map(|p| p.leaves.clone())
            .unwrap_or_default()
    }

    /// The write the runtime reports on, no longer pending.
    pub fn take(&mut self, write: u64) -> Option<PendingWrite> {
        let at = self.pending.iter().position(|p| p.write == write)?;
        Some(self.pending.remove(at))
    }

    /// `agents.create`, `agents.update` and `agents.delete`: the agent list in the file changed
    /// as a file edit would change it, against the file in force (no `baseHash`: the gateway
    /// computes the edit itself, from the latest text).
    pub fn write_agents(
        &mut self,
        config: &GatewayConfig,
        file: &FileInForce<'_>,
        conn: ConnId,
        request: &RequestFrame,
    ) -> Result<WriteStart, ErrorShape> {
        let m = request.method.as_str();
        let p: Value = serde_json::from_str(request.params_text()).map_err(|e| invalid(m, e))?;
        let (_, old) = self.base(m, file)?;
        let mut new = old.clone();
        let answer = crate::agent_entries::edit(m, &p, &mut new, config)?;
        self.stage(config, file, conn, request, &old, new, Some(answer))
    }

    /// The text writes are computed against (see [`ConfigRpc::base_text`]) and its document.
    fn base(&self, m: &str, file: &FileInForce<'_>) -> Result<(Option<String>, Value), ErrorShape> {
        let text = self.base_text(file).map(str::to_owned);
        let doc = match &text {
            Some(t) => json5::from_str(t).map_err(|e| invalid(m, format!("the file in force does not parse: {e}")))?,
            None => crate::settings::empty_document(),
        };
        Ok((text, doc))
    }

    /// An edit from `old` to `new`, checked as a file edit is, then handed to the runtime to
    /// write, or answered at once when nothing changes. `answer` is the answer of a method other
    /// than the `config.*` writes.
    #[allow(clippy::too_many_arguments)]
    fn stage(
        &mut self,
        config: &GatewayConfig,
        file: &FileInForce<'_>,
        conn: ConnId,
        request: &RequestFrame,
        old: &Value,
        new: Value,
        answer: Option<Value>,
    ) -> Result<WriteStart, ErrorShape> {
        let text = serde_json::to_string_pretty(&new).unwrap_or_default() + "\n";
        let env = |name: &str| self.env.get(name).cloned();
        let (checked, _warnings) = crate::settings::parse(&text, &env)
            .map_err(|e| ErrorShape::new(ErrorCode::InvalidRequest, format!("invalid config: {}", e.message)))?;
        let changed = changed_sections(old, &new);
        if changed.is_empty() {
            let hash = self.base_text(file).map(|t| self.hash(t));
            return Ok(WriteStart::Unchanged(answer.unwrap_or_else(|| {
                json!({
                    "ok": true,
                    "noop": true,
                    "path": config.config_path,
                    "hash": hash,
                    "config": redacted(&new),
                    "changedPaths": [],
                })
            })));
        }
        let restart_paths =
            crate::reload::plan(crate::reload::ReloadMode::Hot, file.resolved, &checked.document).ignored;
        let write = self.next_write;
        self.next_write += 1;
        self.pending.push(PendingWrite {
            write,
            conn,
            request_id: request.id.clone(),
            method: request.method.clone(),
            text: text.clone(),
            changed,
            leaves: changed_paths(old, &new),
            document: new,
            restart_paths,
            answer,
        });
        Ok(WriteStart::Writing(Output::WriteConfig {
            write,
            path: config.config_path.clone(),
            text,
        }))
    }

    /// The answer to a write that is on disk and applied.
    pub fn written(&self, config: &GatewayConfig, write: &PendingWrite, now_ms: u64) -> Value {
        if let Some(answer) = &write.answer {
            return answer.clone();
        }
        let kind = write.method.replace('.', "-");
        // As OpenClaw: `restart` is there only when the change restarts the gateway, which it
        // does right after this answer, in-process and without a signal.
        let restart = (!write.restart_paths.is_empty()).then(
            || json!({"ok": true, "reason": write.method, "mode": "in-process", "delayMs": 0, "coalesced": false}),
        );
        let mut answer = json!({
            "ok": true,
            "path": config.config_path,
            "hash": self.hash(&write.text),
            "config": redacted(&write.document),
            "changedPaths": write.changed,
            "sentinel": {
                "persisted": true,
                "payload": {
                    "kind": kind,
                    "status": "ok",
                    "ts": now_ms,
                    "message": null,
                    "doctorHint": "Recommended follow-up: run clawgate doctor to check the gateway.",
                    "stats": {
                        "mode": write.method,
                        "root": config.config_path,
                        "requiresRestart": !write.restart_paths.is_empty(),
                        "restartPaths": write.restart_paths,
                    },
                },
            },
        });
        if let Some(restart) = restart {
            answer["restart"] = restart;
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merge_patch_merges_objects_deletes_nulls_and_replaces_the_rest() {
        let mut doc = json!({"a": {"b": 1, "c": [1, 2]}, "d": "x"});
        merge_patch(
            &mut doc,
            &json!({"a": {"b": null, "c": [3], "e": {"f": true}}, "d": null}),
        );
        assert_eq!(doc, json!({"a": {"c": [3], "e": {"f": true}}}));
    }

    #[test]
    fn changed_paths_are_cut_to_a_section_and_its_key() {
        let old = json!({"gateway": {"port": 1}});
        let new = json!({"gateway": {"port": 2, "auth": {"mode": "token", "token": "t"}}, "session": {"maintenance": {"pruneAfter": "45d"}}});
        assert_eq!(
            changed_sections(&old, &new),
            ["gateway.auth", "gateway.port", "session.maintenance"]
        );
    }

    #[test]
    fn the_redaction_placeholder_keeps_the_secret_of_the_file_in_force() {
        let old = json!({"gateway": {"auth": {"token": "s3cret"}}});
        let mut new = json!({"gateway": {"auth": {"token": REDACTED}, "port": 1}});
        restore_secrets(&mut new, &old, "").unwrap();
        assert_eq!(new["gateway"]["auth"]["token"], "s3cret");
        let mut orphan = json!({"models": {"providers": {"x": {"apiKey": REDACTED}}}});
        assert!(restore_secrets(&mut orphan, &old, "").is_err());
    }

    #[test]
    fn the_hash_depends_on_the_key_and_the_text() {
        let a = ConfigRpc::new([1; 32]);
        let b = ConfigRpc::new([2; 32]);
        assert!(a.hash("{}").starts_with("hmac-sha256:v1:"));
        assert_eq!(a.hash("{}"), a.hash("{}"));
        assert_ne!(a.hash("{}"), a.hash("{ }"));
        assert_ne!(a.hash("{}"), b.hash("{}"));
    }
}
