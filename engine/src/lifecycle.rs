//! The gateway's life: the configuration document in force and its reloads (which changes apply
//! live, which need a restart), the shared-secret generation, and the one report that the gateway
//! stopped. Stopping itself is the connection table's drain.

use crate::config::GatewayConfig;
use crate::conns::Connections;
use crate::log_ring::LogLevel;
use crate::reload::{plan, HotAction, ReloadMode};
use serde_json::{json, Value};

/// What a reload changed that other parts of the gateway must hear about.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reloaded {
    /// `gateway.auth.rateLimit` changed.
    pub rate_limit: bool,
    /// Agents, session routing or tool policy changed (what `hello-ok` derives from them).
    pub routing: bool,
    /// `cron.*` or a heartbeat setting changed (the scheduler's declared jobs follow).
    pub cron: bool,
    /// The change needs a restart: the gateway stops and the runtime starts it again.
    pub restart: bool,
    /// The file's text changed and was taken (`config.changed` is told).
    pub changed: bool,
    /// The agents or the model providers changed: what chats show of agents and models
    /// (`chat.metadata.changed` is told).
    pub chat_metadata: bool,
}

pub(crate) struct Lifecycle {
    /// The configuration document in force, for diffing on reload.
    document: Value,
    /// The text of the file in force (`None`: there is no file).
    text: Option<String>,
    /// `health.configReload`.
    reload_status: Value,
    /// Incremented whenever the shared secret changes.
    secret_generation: u64,
    restart_requested: bool,
    stopped_reported: bool,
}

impl Lifecycle {
    pub fn new() -> Self {
        Lifecycle {
            document: crate::settings::empty_document(),
            text: None,
            reload_status: json!({"hotReloadStatus": "active"}),
            secret_generation: 1,
            restart_requested: false,
            stopped_reported: false,
        }
    }

    pub fn set_file(&mut self, document: Value, text: Option<String>) {
        // No file is an empty document: a first file written later changes only its own keys.
        self.document = if document.is_null() {
            crate::settings::empty_document()
        } else {
            document
        };
        self.text = text;
    }

    pub fn document(&self) -> &Value {
        &self.document
    }

    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }

    pub fn reload_status(&self) -> &Value {
        &self.reload_status
    }

    pub fn secret_generation(&self) -> u64 {
        self.secret_generation
    }

    /// An operator asked for a restart (`gateway.restart.request`).
    pub fn request_restart(&mut self) {
        self.restart_requested = true;
    }

    pub fn restart_requested(&self) -> bool {
        self.restart_requested
    }

    /// Whether `Stopped` is to be reported now: once, when the gateway is `stopping` and no
    /// connection is left.
    pub fn take_stopped(&mut self, stopping: bool, connections_left: usize) -> bool {
        if stopping && !self.stopped_reported && connections_left == 0 {
            self.stopped_reported = true;
            return true;
        }
        false
    }

    /// Applies the configuration file's new text to `config`: what may change live does, what
    /// needs a restart asks for one. A file that does not parse or validate changes nothing and is
    /// reported in `health.configReload`.
    pub fn reload(
        &mut self,
        net: &mut Connections,
        config: &mut GatewayConfig,
        now_ms: u64,
        text: Result<&str, &str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Reloaded {
        let mut done = Reloaded::default();
        let parsed = match text {
            Err(e) => Err(e.to_owned()),
            Ok(t) => crate::settings::parse(t, env).map_err(|e| e.to_string()),
        };
        let (settings, warnings) = match parsed {
            Ok(ok) => ok,
            Err(e) => {
                net.log(
                    now_ms,
                    LogLevel::Error,
                    format!("config reload skipped (invalid config): {e}"),
                );
                self.reload_status = json!({"hotReloadStatus": "error", "lastError": e, "lastAttemptAtMs": now_ms});
                net.health_changed();
                return done;
            }
        };
        for w in warnings {
            net.log(now_ms, LogLevel::Warn, w);
        }
        // What the whole file means; the plan decides which of it applies now.
        let mut next = config.clone();
        next.apply_file(&settings);
        let mode: ReloadMode = next.reload_mode;
        let plan = plan(mode, &self.document, &settings.document);
        done.changed = self.text != settings.text;
        self.text = settings.text.clone();
        if plan.changed.is_empty() {
            return done;
        }
        net.log(
            now_ms,
            LogLevel::Info,
            format!("config changed: {}", plan.changed.join(", ")),
        );
        if !plan.ignored.is_empty() {
            net.log(
                now_ms,
                LogLevel::Warn,
                format!(
                    "config changes NOT applied (reload mode {mode:?} needs a restart for them): {}",
                    plan.ignored.join(", ")
                ),
            );
        }
        config.reload_mode = mode;
        self.reload_status = json!({"hotReloadStatus": "active", "lastReloadAtMs": now_ms, "changed": plan.changed});
        net.health_changed();
        self.document = settings.document;
        if plan.restart {
            self.restart_requested = true;
            done.restart = true;
            return done;
        }
        for action in &plan.hot {
            match action {
                HotAction::AuthSecret => {
                    if next.auth != config.auth {
                        config.auth = next.auth.clone();
                        self.secret_generation += 1;
                        net.log(
                            now_ms,
                            LogLevel::Info,
                            "shared secret changed; sockets that used the old one close at their next request".into(),
                        );
                    }
                }
                HotAction::RateLimit => {
                    config.rate_limit = next.rate_limit;
                    done.rate_limit = true;
                }
                HotAction::AllowedOrigins => config.allowed_origins = next.allowed_origins.clone(),
                HotAction::PairingPolicy => config.auto_approve_local = next.auto_approve_local,
                HotAction::TrustedProxies => {
                    config.trusted_proxies = next.trusted_proxies.clone();
                    config.trusted_proxy = next.trusted_proxy.clone();
                }
                HotAction::Agents | HotAction::SessionRouting => {
                    config.tool_policy = next.tool_policy.clone();
                    config.main_key = next.main_key.clone();
                    config.session_scope = next.session_scope;
                    config.session_prune_after_ms = next.session_prune_after_ms;
                    config.models = next.models.clone();
                    config.agent_exec_policies = next.agent_exec_policies.clone();
                    config.cron = next.cron.clone();
                    done.routing = true;
                    done.cron = true;
                    done.chat_metadata |= matches!(action, HotAction::Agents);
                }
                HotAction::Cron => {
                    config.cron = next.cron.clone();
                    done.cron = true;
                }
                HotAction::ToolPolicy => {
                    config.tool_policy = next.tool_policy.clone();
                    config.exec_policy = next.exec_policy;
                    config.agent_exec_policies = next.agent_exec_policies.clone();
                    done.routing = true;
                }
                // Read by parts of the gateway that are not built yet; nothing to refresh.
                HotAction::HttpEndpoints => {}
            }
        }
        done
    }
}
