//! What the official OpenClaw Control UI needs: its files over HTTP (read by the runtime from a
//! folder), `/control-ui-config.json`, and the methods it calls at start and around a chat.

use crate::admission::Admission;
use crate::agents::AgentHub;
use crate::config::GatewayConfig;
use crate::context::Ctx;
use crate::output::{ConnId, Output};
use crate::reply::HttpReply;
use clawgate_proto::frame::{ErrorCode, ErrorShape, RequestFrame};
use clawgate_proto::http::{Request, Response};
use serde_json::{json, Value};

pub use crate::output::StaticRequest;

/// The model name shown for agents served by workers.
const WORKER_PROVIDER: &str = "clawgate";

/// A request path made relative to the bundle, or `None` when it names something that cannot be
/// in it (`..`, `.`, backslashes, NUL, a bad escape).
pub fn bundle_path(path: &str) -> Option<String> {
    let decoded = percent_decode(path)?;
    let trimmed = decoded.trim_start_matches('/');
    if trimmed.is_empty() {
        return Some("index.html".to_owned());
    }
    let mut parts = Vec::new();
    for part in trimmed.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.contains(['\\', '\0']) {
            return None;
        }
        parts.push(part);
    }
    // The bundle refers to its files relatively (`./assets/app.js`), so a page opened at a deep
    // route (`/settings/general`) asks for `/settings/assets/app.js`: the file is the one from
    // the bundle's own folder on, and a file named below a route is the root's.
    if let Some(at) = parts.iter().position(|p| BUNDLE_FOLDERS.contains(p)) {
        return Some(parts[at..].join("/"));
    }
    if parts.len() > 1 && parts.last().is_some_and(|p| p.contains('.')) {
        return parts.last().map(|p| (*p).to_owned());
    }
    Some(parts.join("/"))
}

/// The Control UI bundle's folders.
const BUNDLE_FOLDERS: &[&str] = &[
    "assets",
    "themes",
    "fonts",
    "provider-icons",
    "cloud-provider-icons",
    "file-icons",
    "app-art",
    "community-art",
];

/// `%XX` decoding of a path; `None` for a bad escape or bytes that are not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: u8| (b as char).to_digit(16);
            let hi = hex(*bytes.get(i + 1)?)?;
            let lo = hex(*bytes.get(i + 2)?)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The content type of a bundle file, by extension.
pub fn content_type(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rsplit_once('.').map_or("", |(_, ext)| ext) {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json; charset=utf-8",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "wasm" => "application/wasm",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The caching of a bundle file: hashed assets for a year, the page and its service worker
/// revalidated every time, the rest for an hour.
pub fn cache_control(path: &str) -> &'static str {
    if path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else if path == "index.html" || path == "sw.js" {
        "no-cache"
    } else {
        "public, max-age=3600"
    }
}

/// The page shown at `/` when no bundle is configured.
const NO_BUNDLE_PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>Clawgate</title></head><body>\
<h1>Clawgate</h1><p>This gateway serves no Control UI. Point it at a bundle, for example the one inside the \
<code>openclaw</code> npm package:</p>\
<pre>clawgate gateway run --control-ui \"$(npm root -g)/openclaw/dist/control-ui\"</pre>\
<p>or set <code>gateway.controlUi.root</code> in <code>openclaw.json</code>. Then open \
<code>http://127.0.0.1:18789/#token=&lt;your token&gt;</code>.</p></body></html>";

/// The themes of the Control UI bundle (its `themes/` folder and the default), by id and name.
const UI_THEMES: &[(&str, &str)] = &[
    ("claw", "Claw"),
    ("knot", "Knot"),
    ("dash", "Dash"),
    ("absolutely", "Absolutely"),
    ("tide", "Tide"),
    ("beacon", "Beacon"),
    ("phosphor", "Phosphor"),
    ("crt", "CRT"),
    ("manuscript", "Manuscript"),
    ("miami", "Miami"),
    ("rose", "Rose"),
];

/// The host as the runtime measured it for `system.info`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostSample {
    /// The machine's name.
    pub hostname: String,
    /// The kernel's release.
    pub os_release: String,
    /// CPUs the gateway may use.
    pub cpu_count: usize,
    /// The first CPU's model name.
    pub cpu_model: Option<String>,
    /// The 1, 5 and 15 minute load averages.
    pub load_average: [f64; 3],
    pub memory_total_bytes: u64,
    /// Memory available to new work (`MemAvailable`).
    pub memory_free_bytes: u64,
    /// The gateway process's resident set.
    pub rss_bytes: u64,
    /// The file system of the state directory: total and available bytes.
    pub disk: Option<(u64, u64)>,
    pub pid: u32,
}

/// `system.info` from a host sample.
pub(crate) fn system_info(
    config: &GatewayConfig,
    instance_id: &str,
    started_at: u64,
    now_ms: u64,
    host: &HostSample,
) -> Value {
    let mut info = json!({
        "machineName": host.hostname,
        "hostname": host.hostname,
        "platform": std::env::consts::OS,
        "release": host.os_release,
        "arch": std::env::consts::ARCH,
        "osLabel": format!("{} {}", std::env::consts::OS, host.os_release),
        "port": config.port,
        "pid": host.pid,
        "processInstanceId": instance_id,
        "uptimeMs": now_ms.saturating_sub(started_at),
        "cpuCount": host.cpu_count,
        "memoryTotalBytes": host.memory_total_bytes,
        "memoryFreeBytes": host.memory_free_bytes,
        "processMemory": {"rssBytes": host.rss_bytes},
        "defaultAgentUtilityModel": {"status": "unavailable"},
    });
    if let Some(model) = &host.cpu_model {
        info["cpuModel"] = json!(model);
    }
    if host.load_average.iter().any(|l| *l != 0.0) {
        info["loadAverage"] = json!(host.load_average);
    }
    if let Some((total, available)) = host.disk {
        info["disks"] = json!([{"path": config.state_dir, "totalBytes": total, "availableBytes": available}]);
        info["diskTotalBytes"] = json!(total);
        info["diskAvailableBytes"] = json!(available);
        info["diskPath"] = json!(config.state_dir);
    }
    info
}

/// Whether a worker serves an agent or the configuration names one: what the UI calls "a
/// model is configured".
pub(crate) fn model_configured(config: &GatewayConfig, agents: &AgentHub) -> bool {
    !config.tool_policy.agents.is_empty() || config.models.default_model.is_some() || agents.any_worker()
}

/// What checks the bearer of `/control-ui-config.json`: the shared secret (with the failed-auth
/// limiter) or a paired device's token.
pub(crate) struct UiGate<'a> {
    pub admission: &'a mut Admission,
    pub pairing: &'a crate::pairing::PairingStore,
}

/// The Control UI's HTTP paths (a bundle file answers later, once read); `None` when `path`
/// is not one of them (another route or 404).
pub(crate) fn route(
    cx: &mut Ctx<'_>,
    gate: UiGate<'_>,
    now_ms: u64,
    conn: ConnId,
    peer: std::net::SocketAddr,
    request: &Request,
    keep_alive: bool,
) -> Option<HttpReply> {
    let base = cx.config.control_ui_base_path.clone();
    let path = request.path();
    let rest = if base.is_empty() {
        path
    } else if path == base {
        "/"
    } else {
        path.strip_prefix(base.as_str()).filter(|r| r.starts_with('/'))?
    };
    let get_like = request.method == "GET" || request.method == "HEAD";
    if rest == "/control-ui-config.json" {
        if !get_like {
            return Some(HttpReply::Now(
                Response::text(405, "Method Not Allowed").header("Allow", "GET, HEAD"),
            ));
        }
        // The UI asks with the device token it was given as well as with the shared secret.
        let device_token = request
            .header("authorization")
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .is_some_and(|(_, token)| gate.pairing.holds_operator_token(token.trim()));
        if !device_token
            && gate
                .admission
                .check_http_bearer(cx.config, now_ms, peer, request)
                .is_err()
        {
            return Some(HttpReply::Now(
                Response::json(
                    401,
                    &json!({"error": {"message": "Unauthorized", "type": "unauthorized"}}),
                )
                .header("Cache-Control", "no-store"),
            ));
        }
        return Some(HttpReply::Now(
            Response::json(200, &control_ui_config(cx.config)).header("Cache-Control", "no-store"),
        ));
    }
    if !get_like {
        return None;
    }
    let Some(root) = cx.config.control_ui_root.clone() else {
        return (rest == "/").then(|| {
            HttpReply::Now(
                Response::new(200)
                    .header("Content-Type", "text/html; charset=utf-8")
                    .header("Cache-Control", "no-store")
                    .body(NO_BUNDLE_PAGE.as_bytes().to_vec()),
            )
        });
    };
    let Some(file) = bundle_path(rest) else {
        return Some(HttpReply::Now(Response::text(404, "Not Found")));
    };
    // A path whose last segment has no extension is a route of the single-page app.
    let spa_fallback = !file.rsplit('/').next().unwrap_or("").contains('.');
    let encodings = request.header("accept-encoding").unwrap_or("").to_ascii_lowercase();
    cx.net.push_output(Output::ServeStatic(StaticRequest {
        conn,
        root,
        path: file,
        spa_fallback,
        accepts_br: encodings.contains("br"),
        accepts_gzip: encodings.contains("gzip"),
        head_only: request.method == "HEAD",
        keep_alive,
    }));
    Some(HttpReply::Later)
}

fn control_ui_config(config: &GatewayConfig) -> Value {
    let agent = config.session_routing().default_agent.as_str().to_owned();
    json!({
        "basePath": config.control_ui_base_path,
        "assistantName": "Assistant",
        "assistantAvatar": "A",
        "assistantAvatarSource": null,
        "assistantAvatarStatus": null,
        "assistantAvatarReason": null,
        "assistantAgentId": agent,
        "serverVersion": config.server_version,
        "serverBuildId": format!("clawgate-{}", config.server_version),
        "embedSandbox": "scripts",
        "allowExternalEmbedUrls": false,
        "automaticallyFetchFavicons": false,
        "communityInvite": false,
        "terminalEnabled": false,
        "cliAgentsEnabled": false,
        "pluginAssetsRequireAuth": true,
        "pluginFrameGrants": [],
    })
}

fn model_entry(agents: &AgentHub, agent: &str) -> Value {
    json!({
        "id": agent,
        "name": format!("Agent worker ({agent})"),
        "provider": WORKER_PROVIDER,
        "contextWindow": null,
        "reasoning": false,
        "tags": ["default"],
        "thinkingLevels": [{"id": "off", "label": "off"}],
        "thinkingDefault": "off",
        "manualSelectionAllowed": true,
        "available": agents.serves(agent),
    })
}

/// The Control UI's methods.
pub(crate) fn call(
    config: &GatewayConfig,
    agents: &AgentHub,
    stability: &crate::stability::StabilityRecorder,
    now_ms: u64,
    request: &RequestFrame,
) -> Result<Value, ErrorShape> {
    let params: Value = request.parse_params().unwrap_or(Value::Null);
    let method = request.method.as_str();
    let agent_param = params["agentId"].as_str();
    Ok(match method {
        "agent.identity.get" => {
            let agent = agents.known_agent(config, agent_param)?;
            json!({"agentId": agent.as_str(), "name": "Assistant", "nameSource": "default", "avatar": "A"})
        }
        "question.list" => json!({"questions": []}),
        // Clawgate updates with its package manager, not by itself: no update is ever offered.
        "update.status" => json!({
            "sentinel": null, "updateAvailable": false, "effectiveChannel": "stable",
            "schedule": {"channel": "stable", "autoEnabled": false},
        }),
        "users.prefs.get" => json!({"status": "ok", "entries": {}}),
        "tasks.list" => {
            let limit = params["limit"].as_u64().unwrap_or(100).clamp(1, 1000) as usize;
            let mut tasks = agents.task_rows();
            tasks.truncate(limit);
            json!({"tasks": tasks})
        }
        // One lane: the agent runs (under way, and waiting for a worker).
        "diagnostics.lanes" => {
            let (active, queued) = agents.run_counts();
            json!({
                "ts": now_ms,
                "lanes": [{"lane": "main", "queuedCount": queued, "activeCount": active,
                           "maxConcurrent": active.max(1), "draining": false, "generation": 0, "blockedBy": null}],
                "dynamic": null,
            })
        }
        // The gateway is the one place agents' sessions live; workers run the turns.
        "environments.list" => json!({
            "environments": [{
                "id": "gateway", "type": "local", "label": "Gateway local", "status": "available",
                "platform": std::env::consts::OS, "sessionHost": true, "trust": "persistent",
                "capabilities": ["agent.run", "sessions", "tools", "workspace"],
            }],
        }),
        // Clawgate keeps no artifacts, progress cards or session branches: empty, as the real
        // gateway answers for a session that has none.
        "artifacts.list" => json!({"artifacts": []}),
        "progressCard.get" => json!({"card": null}),
        "sessions.branches.list" => json!({"branches": []}),
        // No plugin system: an empty catalog.
        "plugins.list" => json!({"plugins": [], "generation": 0}),
        // The themes the Control UI bundle ships; Clawgate keeps no per-profile theme of its own,
        // so the gateway's default is the one in force.
        "themes.list" => {
            let themes: Vec<Value> = UI_THEMES
                .iter()
                .map(|(id, name)| {
                    json!({"id": id, "name": name, "description": "A theme of the Control UI bundle.",
                           "source": "builtin", "modes": ["light", "dark"]})
                })
                .collect();
            json!({
                "current": {"id": "claw", "mode": "system", "scope": "gateway", "overrides": {}},
                "theme": themes[0],
                "themes": themes,
            })
        }
        // Product features Clawgate does not have (skills, the skill library, memory search,
        // talk): the empty states OpenClaw itself answers when none is set up.
        "skills.status" => {
            let agent = agents.known_agent(config, agent_param)?;
            json!({"workspaceDir": null, "managedSkillsDir": null, "agentId": agent.as_str(), "skills": []})
        }
        "skills.library.list" => json!({"entries": [], "defaultSelectionLimit": 64}),
        // Clawgate keeps no stability recorder (event-loop stalls, memory pressure), so there
        // are no records to give.
        "diagnostics.stability" => stability.snapshot(crate::scheduler::iso(now_ms), &params)?,
        // Clawgate runs no internal agent hooks.
        "hooks.status" => {
            let agent = agents.known_agent(config, agent_param)?;
            let workspace = config
                .tool_policy
                .workspace_of(&agent)
                .map_or_else(|| format!("{}/workspace", config.state_dir), str::to_owned);
            json!({"workspaceDir": workspace, "managedHooksDir": format!("{}/hooks", config.state_dir), "hooks": []})
        }
        // Chat messages go to the agent as they are: Clawgate has no slash commands of its own.
        "commands.list" => json!({"commands": []}),
        // No plugin marketplace to browse.
        "plugins.catalog.browse" => json!({"items": [], "categories": []}),
        // No web search tool: the route OpenClaw reports when search is off.
        "webSearch.status" => {
            let agent = agents.known_agent(config, agent_param)?;
            let model = config.models.model_of(agent.as_str());
            json!({
                "enabled": false, "provider": null, "agentId": agent.as_str(),
                "model": {"provider": model.map(|m| m.provider.clone()), "id": model.map(|m| m.model.clone()),
                          "runtime": "unknown", "runtimeLabel": "Not resolved"},
                "providers": [],
                "route": {"kind": "disabled", "label": "Search disabled", "testable": false,
                          "reason": "Clawgate has no web search tool."},
            })
        }
        // No GitHub identity for tools: none configured, none detected.
        "tools.github.status" => {
            let agent = agents.known_agent(config, agent_param)?;
            let scope = params["selectedScope"].as_str().unwrap_or("agent");
            json!({
                "agentId": agent.as_str(), "selectedScope": scope,
                "selected": {"scope": scope, "configured": false, "identity": null},
                "effective": {
                    "source": "system-detected", "credentialKind": "native", "credentialState": "unavailable",
                    "account": null, "gitAuthor": null, "evidence": "none", "accessExpiresAtMs": null,
                    "refreshState": "not_applicable", "oauthScopes": [], "repositoryGrants": "unknown",
                },
            })
        }
        "doctor.memory.status" => {
            let agent = agents.known_agent(config, agent_param)?;
            json!({"agentId": agent.as_str(), "searchRuntimeRegistered": false,
                   "embedding": {"ok": false, "error": "memory search unavailable"}})
        }
        "talk.catalog" => json!({
            "modes": [], "transports": [], "brains": [],
            "speech": {"providers": []},
            "transcription": {"ready": false, "providers": []},
            "realtime": {"ready": false, "providers": []},
        }),
        // Side chat is OpenClaw's product feature: answered as OpenClaw answers without it.
        "sessions.companion.state" => {
            return Err(ErrorShape::new(ErrorCode::Unavailable, "Side chat is unavailable."));
        }
        "sessions.observer.visibility" => json!({"ok": true}),
        "sessions.viewers.set" => {
            json!({"sessionKeys": params["sessionKeys"].as_array().cloned().unwrap_or_default()})
        }
        "models.list" if !config.models.providers.is_empty() => {
            let mut list = config.models.list_payload();
            list["accountSelection"] = json!({"kind": "automatic", "label": "Automatic account selection"});
            list
        }
        "models.list" => {
            let agent = agents.known_agent(config, agent_param)?;
            json!({
                "models": [model_entry(agents, agent.as_str())],
                "accountSelection": {"kind": "automatic", "label": "Automatic account selection"},
            })
        }
        "models.authStatus" => config.models.auth_status_payload(now_ms),
        "chat.metadata" => {
            let agent = agents.known_agent(config, agent_param)?;
            json!({
                "models": [model_entry(agents, agent.as_str())],
                "commands": [],
                "swarmEnabled": false,
                "accountSelection": {"kind": "automatic", "label": "Automatic account selection"},
                "runtimeSelectionLocked": true,
            })
        }
        "sessions.describe" => {
            let key = params["key"].as_str().or(params["sessionKey"].as_str());
            let session = match key {
                Some(k) => agents.session_info(config, now_ms, k)?,
                None => {
                    return Err(ErrorShape::new(
                        ErrorCode::InvalidRequest,
                        "invalid sessions.describe params: key is required",
                    ))
                }
            };
            json!({"session": session})
        }
        "chat.startup" => {
            let Some(raw_key) = params["sessionKey"].as_str() else {
                return Err(ErrorShape::new(
                    ErrorCode::InvalidRequest,
                    "invalid chat.startup params: sessionKey is required",
                ));
            };
            let limit = params["limit"].as_u64().unwrap_or(80).clamp(1, 1000) as usize;
            let crate::agents::StartupHistory {
                key,
                agent,
                messages,
                total,
                session_id,
            } = agents.startup_history(config, raw_key, limit)?;
            let info = agents.session_info(config, now_ms, &key)?.unwrap_or_else(|| {
                json!({"key": key, "kind": "direct", "agentId": agent, "isMain": true, "updatedAt": null,
                       "hasActiveRun": false, "activeRunIds": [], "activeLeafEntryId": null,
                       "modelProvider": WORKER_PROVIDER, "model": agent})
            });
            json!({
                "sessionKey": key,
                "sessionId": session_id,
                "messages": messages,
                "pendingInputs": {"items": [], "total": 0},
                "hasMore": total > messages.len() as u64,
                "totalMessages": total,
                "defaults": {
                    "modelProvider": WORKER_PROVIDER, "model": agent, "contextTokens": null,
                    "agentRuntime": {"id": "clawgate-worker", "cloudPlacementSupported": false, "devicePlacementSupported": false, "source": "implicit"},
                    "modelSelectionTarget": "session",
                },
                "sessionInfo": info,
                "thinkingLevel": "off",
                "metadata": {},
            })
        }
        other => return Err(ErrorShape::unknown_method(other)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_paths_stay_inside_the_bundle() {
        assert_eq!(bundle_path("/").as_deref(), Some("index.html"));
        assert_eq!(bundle_path("/assets/app.js").as_deref(), Some("assets/app.js"));
        assert_eq!(bundle_path("/chat").as_deref(), Some("chat"));
        assert_eq!(bundle_path("/settings/general").as_deref(), Some("settings/general"));
        assert_eq!(bundle_path("/settings/assets/app.js").as_deref(), Some("assets/app.js"));
        assert_eq!(bundle_path("/settings/fonts/a.woff2").as_deref(), Some("fonts/a.woff2"));
        assert_eq!(bundle_path("/settings/favicon.svg").as_deref(), Some("favicon.svg"));
        assert_eq!(bundle_path("/a%20b.css").as_deref(), Some("a b.css"));
        assert_eq!(
            percent_decode("agent%3Amain%3Amain").as_deref(),
            Some("agent:main:main")
        );
        assert_eq!(percent_decode("a%2"), None);
        for bad in [
            "/../etc/passwd",
            "/assets/../../x",
            "/%2e%2e/x",
            "/a//b",
            "/./a",
            "/a\\b",
            "/a%00b",
            "/%zz",
        ] {
            assert_eq!(bundle_path(bad), None, "{bad}");
        }
    }
}
