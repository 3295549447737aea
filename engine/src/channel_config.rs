//! `channels.*` as OpenClaw writes it: per channel, its shared settings and its accounts
//! (`accounts.<id>`, each inheriting the channel's settings), with their access policies and
//! whether each has what it needs to connect. Read by the settings and by the adapters.

use crate::channel_routing::{Access, ChannelRouting, DEFAULT_ACCOUNT};
use serde_json::{json, Map, Value};

/// Channels Clawgate knows, with their labels; only these have adapters or settings checks.
pub const CHANNELS: &[(&str, &str)] = &[("irc", "IRC"), ("telegram", "Telegram"), ("matrix", "Matrix")];
/// Channels that have an adapter in this build.
pub const ADAPTERS: &[&str] = &["irc", "telegram", "matrix"];

/// The label of a channel (`IRC`), or its id when Clawgate does not know it.
pub fn label_of(channel: &str) -> &str {
    CHANNELS
        .iter()
        .find(|(id, _)| *id == channel)
        .map_or(channel, |(_, label)| label)
}

// ----- configuration -----------------------------------------------------------------------

/// One account of one channel, as the configuration declares it.
#[derive(Debug, Clone)]
pub struct AccountSpec {
    pub channel: String,
    pub account: String,
    /// `enabled` of the channel and of the account.
    pub enabled: bool,
    /// The channel's settings with the account's own over them (`accounts` left out).
    pub settings: Value,
    pub access: Access,
    /// Why the account cannot run, when it cannot (a missing setting, no adapter).
    pub problem: Option<String>,
}

/// `channels.*` and the routing of channel messages (`bindings`, `session.dmScope`).
#[derive(Debug, Clone, Default)]
pub struct ChannelsConfig {
    pub accounts: Vec<AccountSpec>,
    pub routing: ChannelRouting,
    /// Channels named in the file, in its order, with their `enabled`.
    pub channels: Vec<(String, bool)>,
}

impl PartialEq for ChannelsConfig {
    fn eq(&self, other: &Self) -> bool {
        let key = |c: &ChannelsConfig| {
            c.accounts
                .iter()
                .map(|a| (a.channel.clone(), a.account.clone(), a.enabled, a.settings.clone()))
                .collect::<Vec<_>>()
        };
        key(self) == key(other) && self.channels == other.channels
    }
}

/// What an account of `channel` needs before it can connect.
fn missing_setting(channel: &str, settings: &Value) -> Option<String> {
    let has = |key: &str| settings[key].as_str().is_some_and(|s| !s.trim().is_empty());
    match channel {
        "irc" if !has("host") => Some("channels.irc.host is not set".into()),
        "irc" if !has("nick") => Some("channels.irc.nick is not set".into()),
        "telegram" if !has("botToken") && !has("tokenFile") => Some("channels.telegram.botToken is not set".into()),
        "matrix" if !has("homeserver") => Some("channels.matrix.homeserver is not set".into()),
        // Running unencrypted when encryption was asked for would mislead: refused instead.
        "matrix" if settings["encryption"] == true => {
            Some("channels.matrix.encryption is not supported yet; use unencrypted rooms".into())
        }
        "matrix" if !(has("accessToken") || (has("userId") && has("password"))) => {
            Some("channels.matrix.accessToken (or userId and password) is not set".into())
        }
        _ if !ADAPTERS.contains(&channel) => Some(format!("Clawgate has no {} adapter yet", label_of(channel))),
        _ => None,
    }
}

/// Matrix keeps its DM policy under `dm` (`dm.policy`, `dm.allowFrom`, `dm.enabled`) and a room's
/// senders under `groups.<room>.users`: read as the other channels' keys.
fn dm_keys(channel: &str, settings: &Value) -> Value {
    let mut s = settings.clone();
    if channel != "matrix" {
        return s;
    }
    let dm = settings["dm"].clone();
    if let Value::Object(map) = &mut s {
        if dm["enabled"] == false {
            map.insert("dmPolicy".into(), json!("disabled"));
        } else if let Some(p) = dm["policy"].as_str() {
            map.entry("dmPolicy").or_insert(json!(p));
        }
        if dm["allowFrom"].is_array() {
            map.entry("allowFrom").or_insert(dm["allowFrom"].clone());
        }
        if let Some(Value::Object(groups)) = map.get_mut("groups") {
            for room in groups.values_mut() {
                if let Value::Object(r) = room {
                    if let Some(users) = r.get("users").cloned() {
                        r.entry("allowFrom").or_insert(users);
                    }
                }
            }
        }
    }
    s
}

impl ChannelsConfig {
    /// Reads `channels` (and the routing keys) from the resolved document; a setting of the
    /// wrong type is an error with its path and what it needs.
    pub fn from_document(doc: &Value) -> Result<ChannelsConfig, (String, &'static str)> {
        let (routing, _) = ChannelRouting::from_document(doc, clawgate_proto::session::SessionRouting::default());
        let mut config = ChannelsConfig {
            routing,
            ..ChannelsConfig::default()
        };
        let Some(all) = doc["channels"].as_object() else {
            return match &doc["channels"] {
                Value::Null => Ok(config),
                _ => Err(("channels".into(), "an object")),
            };
        };
        for (id, section) in all {
            // `channels.defaults` and the like hold shared settings, not a channel.
            if id == "defaults" || id == "modelByChannel" {
                continue;
            }
            let Some(section) = section.as_object() else {
                return Err((format!("channels.{id}"), "an object"));
            };
            let flag = |v: &Value, path: String| match v {
                Value::Null => Ok(true),
                Value::Bool(b) => Ok(*b),
                _ => Err((path, "true or false")),
            };
            let enabled = flag(
                &section.get("enabled").cloned().unwrap_or(Value::Null),
                format!("channels.{id}.enabled"),
            )?;
            config.channels.push((id.clone(), enabled));
            let mut shared = section.clone();
            let accounts = shared.remove("accounts");
            shared.remove("defaultAccount");
            let shared = Value::Object(shared);
            let named = match accounts {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(m)) => m,
                Some(_) => return Err((format!("channels.{id}.accounts"), "an object of accounts")),
            };
            let mut list: Vec<(String, Value)> = named.into_iter().collect();
            if list.is_empty() {
                list.push((DEFAULT_ACCOUNT.to_owned(), json!({})));
            }
            for (account, own) in list {
                let Some(own) = own.as_object() else {
                    return Err((format!("channels.{id}.accounts.{account}"), "an object"));
                };
                let mut settings = shared.clone();
                if let Value::Object(map) = &mut settings {
                    for (k, v) in own {
                        map.insert(k.clone(), v.clone());
                    }
                }
                let account_enabled = flag(
                    &own.get("enabled").cloned().unwrap_or(Value::Null),
                    format!("channels.{id}.accounts.{account}.enabled"),
                )?;
                let access = Access::from_settings(&dm_keys(id, &Value::Object(own.clone())), &dm_keys(id, &shared));
                config.accounts.push(AccountSpec {
                    channel: id.clone(),
                    account: account.trim().to_lowercase(),
                    enabled: enabled && account_enabled,
                    problem: missing_setting(id, &settings),
                    settings,
                    access,
                });
            }
        }
        Ok(config)
    }

    /// The account `account` of `channel`.
    pub fn account(&self, channel: &str, account: &str) -> Option<&AccountSpec> {
        self.accounts
            .iter()
            .find(|a| a.channel == channel && a.account == account)
    }

    /// The accounts whose adapter should run: enabled, with what they need, with an adapter.
    pub fn runnable(&self) -> impl Iterator<Item = &AccountSpec> {
        self.accounts.iter().filter(|a| a.enabled && a.problem.is_none())
    }
}

/// The accounts whose adapters run, as `(channel, account)`, with the settings a change of
/// which restarts the adapter: for the process supervisor of the runtime.
pub fn adapters_to_run(config: &ChannelsConfig) -> Vec<(String, String, String)> {
    config
        .runnable()
        .map(|a| (a.channel.clone(), a.account.clone(), a.settings.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(channels: Value) -> ChannelsConfig {
        ChannelsConfig::from_document(&json!({"channels": channels})).unwrap()
    }

    #[test]
    fn a_channel_without_accounts_is_its_default_account() {
        let c = config(json!({"irc": {"host": "h", "nick": "n"}}));
        assert_eq!(c.accounts.len(), 1);
        assert_eq!(c.accounts[0].account, DEFAULT_ACCOUNT);
        assert!(c.accounts[0].problem.is_none());
        assert_eq!(adapters_to_run(&c).len(), 1);
    }

    #[test]
    fn named_accounts_inherit_the_channel_settings_and_override_them() {
        let c = config(json!({"irc": {"host": "h", "nick": "n", "dmPolicy": "open",
            "accounts": {"Work": {"nick": "w", "dmPolicy": "allowlist"}, "home": {"enabled": false}}}}));
        let work = c.account("irc", "work").unwrap();
        assert_eq!(work.settings["host"], "h");
        assert_eq!(work.settings["nick"], "w");
        assert_eq!(work.access.dm_policy, crate::channel_routing::DmPolicy::Allowlist);
        assert!(!c.account("irc", "home").unwrap().enabled);
        assert_eq!(adapters_to_run(&c).len(), 1);
    }

    #[test]
    fn an_account_missing_a_setting_or_an_adapter_says_what_is_missing() {
        let c = config(
            json!({"irc": {"host": "h"}, "matrix": {"homeserver": "https://m", "accessToken": "t", "encryption": true}}),
        );
        assert_eq!(
            c.account("irc", "default").unwrap().problem.as_deref(),
            Some("channels.irc.nick is not set")
        );
        assert!(c
            .account("matrix", "default")
            .unwrap()
            .problem
            .as_deref()
            .unwrap()
            .contains("encryption is not supported"));
        assert!(adapters_to_run(&c).is_empty());
    }

    #[test]
    fn a_setting_of_the_wrong_type_is_an_error_with_its_path() {
        let e = ChannelsConfig::from_document(&json!({"channels": {"irc": {"enabled": "yes"}}})).unwrap_err();
        assert_eq!(e.0, "channels.irc.enabled");
    }
}
