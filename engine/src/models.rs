//! Model providers and the model each agent uses, read from the configuration as OpenClaw writes
//! them: `models.providers.<id>` (`baseUrl`, `apiKey`, `api`, `models[]`), and
//! `agents.defaults.model` / an agent's own `model` as `"provider/model"` (a string, or
//! `{primary: "provider/model"}`). The gateway names the model of each run; the worker that runs
//! it reads the provider (and its key) from the same file, so no key crosses the wire.

use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The wire API a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderApi {
    /// `POST {baseUrl}/chat/completions`, streamed (OpenAI, Ollama, llama.cpp, vLLM, LM Studio,
    /// OpenRouter): `openai-completions`.
    OpenAiCompletions,
    /// `POST {baseUrl}/v1/messages`, streamed (Anthropic): `anthropic-messages`.
    AnthropicMessages,
}

impl ProviderApi {
    /// The API named `name` in the configuration; `None` for one Clawgate does not speak.
    pub fn parse(name: &str) -> Option<ProviderApi> {
        match name {
            "openai-completions" | "openai" => Some(ProviderApi::OpenAiCompletions),
            "anthropic-messages" | "anthropic" => Some(ProviderApi::AnthropicMessages),
            _ => None,
        }
    }

    /// The configuration's name of the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderApi::OpenAiCompletions => "openai-completions",
            ProviderApi::AnthropicMessages => "anthropic-messages",
        }
    }
}

/// One model a provider offers.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub id: String,
    pub name: String,
    pub context_window: Option<u64>,
    pub max_tokens: Option<u64>,
    pub reasoning: bool,
    /// Dollars per million input and output tokens (`cost.input`, `cost.output`).
    pub cost: (f64, f64),
}

/// One provider of `models.providers`.
#[derive(Debug, Clone, PartialEq)]
pub struct Provider {
    pub id: String,
    pub base_url: String,
    /// After `${ENV}` substitution; `None` when the file gives none (the worker then looks for
    /// `<PROVIDER>_API_KEY` in its environment, and a local server may need none).
    pub api_key: Option<String>,
    /// The API as written; [`Provider::api`] says whether Clawgate speaks it.
    pub api_name: String,
    pub models: Vec<ModelSpec>,
}

impl Provider {
    /// The API, if Clawgate speaks it.
    pub fn api(&self) -> Option<ProviderApi> {
        ProviderApi::parse(&self.api_name)
    }
}

/// A `"provider/model"` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    pub provider: String,
    pub model: String,
}

impl ModelRef {
    /// `provider/model` (the model may itself contain `/`, as OpenRouter's ids do).
    pub fn parse(text: &str) -> Option<ModelRef> {
        let (provider, model) = text.trim().split_once('/')?;
        (!provider.is_empty() && !model.is_empty()).then(|| ModelRef {
            provider: provider.to_owned(),
            model: model.to_owned(),
        })
    }

    pub fn as_string(&self) -> String {
        format!("{}/{}", self.provider, self.model)
    }
}

/// The providers, the default model and each agent's own.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelCatalog {
    pub providers: BTreeMap<String, Provider>,
    pub default_model: Option<ModelRef>,
    /// Agent id (normalized) -> its model.
    pub agent_models: BTreeMap<String, ModelRef>,
    /// Model settings that name no `provider/model` (an alias, say): `(path, text)`.
    pub unresolved: Vec<(String, String)>,
}

/// `"provider/model"` or `{primary: "provider/model"}`; `Err` names what was expected. Text that
/// is not `provider/model` is kept in `unresolved` under `path`.
fn model_ref_of(
    value: &Value,
    path: &str,
    unresolved: &mut Vec<(String, String)>,
) -> Result<Option<ModelRef>, &'static str> {
    let text = match value {
        Value::Null => return Ok(None),
        Value::String(s) => s.as_str(),
        Value::Object(map) => match map.get("primary") {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err("\"provider/model\" or {primary: \"provider/model\"}"),
        },
        _ => return Err("\"provider/model\" or {primary: \"provider/model\"}"),
    };
    let parsed = ModelRef::parse(text);
    if parsed.is_none() {
        unresolved.push((path.to_owned(), text.to_owned()));
    }
    Ok(parsed)
}

impl ModelCatalog {
    /// Reads the catalog from a configuration document; `Err` is the dotted path of a value of
    /// the wrong shape and what was expected there.
    pub fn from_document(doc: &Value) -> Result<ModelCatalog, (String, &'static str)> {
        let mut catalog = ModelCatalog::default();
        match doc.pointer("/models/providers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(providers)) => {
                for (id, p) in providers {
                    let path = format!("models.providers.{id}");
                    let text = |key: &str| -> Result<Option<String>, (String, &'static str)> {
                        match p.get(key) {
                            None | Some(Value::Null) => Ok(None),
                            Some(Value::String(s)) => Ok(Some(s.clone())),
                            Some(_) => Err((format!("{path}.{key}"), "a string")),
                        }
                    };
                    if !p.is_object() {
                        return Err((path, "an object"));
                    }
                    let base_url = text("baseUrl")?.ok_or((format!("{path}.baseUrl"), "a URL"))?;
                    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
                        return Err((format!("{path}.baseUrl"), "an http:// or https:// URL"));
                    }
                    let mut models = Vec::new();
                    match p.get("models") {
                        None | Some(Value::Null) => {}
                        Some(Value::Array(items)) => {
                            for (i, m) in items.iter().enumerate() {
                                let Some(model_id) = m.get("id").and_then(Value::as_str) else {
                                    return Err((format!("{path}.models[{i}].id"), "a string"));
                                };
                                models.push(ModelSpec {
                                    id: model_id.to_owned(),
                                    name: m.get("name").and_then(Value::as_str).unwrap_or(model_id).to_owned(),
                                    context_window: m.get("contextWindow").and_then(Value::as_u64),
                                    max_tokens: m.get("maxTokens").and_then(Value::as_u64),
                                    reasoning: m.get("reasoning").and_then(Value::as_bool).unwrap_or(false),
                                    cost: (
                                        m.pointer("/cost/input").and_then(Value::as_f64).unwrap_or(0.0),
                                        m.pointer("/cost/output").and_then(Value::as_f64).unwrap_or(0.0),
                                    ),
                                });
                            }
                        }
                        Some(_) => return Err((format!("{path}.models"), "a list of models")),
                    }
                    catalog.providers.insert(
                        id.clone(),
                        Provider {
                            id: id.clone(),
                            base_url,
                            api_key: text("apiKey")?.filter(|k| !k.is_empty()),
                            api_name: text("api")?.unwrap_or_else(|| "openai-completions".to_owned()),
                            models,
                        },
                    );
                }
            }
            Some(_) => return Err(("models.providers".to_owned(), "an object")),
        }
        if let Some(v) = doc.pointer("/agents/defaults/model") {
            let path = "agents.defaults.model";
            catalog.default_model = model_ref_of(v, path, &mut catalog.unresolved).map_err(|e| (path.to_owned(), e))?;
        }
        if let Some(Value::Array(list)) = doc.pointer("/agents/list") {
            for (i, entry) in list.iter().enumerate() {
                let (Some(id), Some(model)) = (entry.get("id").and_then(Value::as_str), entry.get("model")) else {
                    continue;
                };
                let path = format!("agents.list[{i}].model");
                if let Some(r) = model_ref_of(model, &path, &mut catalog.unresolved).map_err(|e| (path.clone(), e))? {
                    catalog.agent_models.insert(normalize(id), r);
                }
            }
        }
        if let Some(Value::Object(entries)) = doc.pointer("/agents/entries") {
            for (id, entry) in entries {
                let Some(model) = entry.get("model") else { continue };
                let path = format!("agents.entries.{id}.model");
                if let Some(r) = model_ref_of(model, &path, &mut catalog.unresolved).map_err(|e| (path.clone(), e))? {
                    catalog.agent_models.insert(normalize(id), r);
                }
            }
        }
        Ok(catalog)
    }

    /// Whether a provider of this id is configured.
    pub fn has_provider(&self, id: &str) -> bool {
        self.providers.contains_key(id)
    }

    /// The model `agent` runs on: its own, else the default.
    pub fn model_of(&self, agent: &str) -> Option<&ModelRef> {
        self.agent_models.get(agent).or(self.default_model.as_ref())
    }

    /// The model a run uses: `requested` (a caller's `x-openclaw-model`: `provider/model`, or a
    /// model of the agent's own provider) when given, else the agent's.
    pub fn model_for_run(&self, agent: &str, requested: Option<&str>) -> Option<ModelRef> {
        let own = self.model_of(agent);
        match requested.map(str::trim).filter(|r| !r.is_empty()) {
            None => own.cloned(),
            Some(r) => match ModelRef::parse(r) {
                Some(full) if self.providers.contains_key(&full.provider) => Some(full),
                _ => own.map(|o| ModelRef {
                    provider: o.provider.clone(),
                    model: r.to_owned(),
                }),
            },
        }
    }

    /// What `input` and `output` tokens of `model` cost, by its configuration.
    pub fn cost_of(&self, model: &ModelRef, input: u64, output: u64) -> (f64, f64) {
        let per_million = self
            .providers
            .get(&model.provider)
            .and_then(|p| p.models.iter().find(|m| m.id == model.model))
            .map_or((0.0, 0.0), |m| m.cost);
        (per_million.0 * input as f64 / 1e6, per_million.1 * output as f64 / 1e6)
    }

    /// The agents that run on a model (and so need a worker): the default agent and every
    /// configured one, when they have a model of a configured provider. Sorted.
    pub fn agents_with_models(&self, policy: &crate::tool_policy::ToolPolicy) -> Vec<String> {
        let default = policy.default_agent.clone().unwrap_or_default();
        let mut ids: Vec<String> = policy.agent_ids().collect();
        ids.push(default.as_str().to_owned());
        ids.sort();
        ids.dedup();
        ids.retain(|id| {
            self.model_of(id)
                .is_some_and(|m| self.providers.contains_key(&m.provider))
        });
        ids
    }

    /// Warnings about the catalog: providers whose API Clawgate does not speak, and agent models
    /// naming a provider that is not configured.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in self.providers.values() {
            if p.api().is_none() {
                out.push(format!(
                    "models.providers.{}.api: {} is not supported (use openai-completions or anthropic-messages); runs on this provider fail",
                    p.id, p.api_name
                ));
            }
        }
        for (path, text) in &self.unresolved {
            out.push(format!(
                "{path}: {text} is not provider/model (model aliases are not supported); the agent runs without a model"
            ));
        }
        let refs = self.default_model.iter().chain(self.agent_models.values());
        for r in refs {
            if !self.providers.contains_key(&r.provider) {
                out.push(format!(
                    "model {} names provider {}, which models.providers does not configure",
                    r.as_string(),
                    r.provider
                ));
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// `models.list`: every configured model, the default one tagged so.
    pub fn list_payload(&self) -> Value {
        let default = self.default_model.as_ref();
        let models: Vec<Value> = self
            .providers
            .values()
            .flat_map(|p| {
                p.models.iter().map(move |m| {
                    let is_default = default.is_some_and(|d| d.provider == p.id && d.model == m.id);
                    json!({
                        "id": m.id,
                        "name": m.name,
                        "provider": p.id,
                        "contextWindow": m.context_window,
                        "reasoning": m.reasoning,
                        "tags": if is_default { vec!["default"] } else { vec![] },
                        "thinkingLevels": [{"id": "off", "label": "off"}],
                        "thinkingDefault": "off",
                        "available": p.api().is_some(),
                    })
                })
            })
            .collect();
        json!({"models": models})
    }

    /// `models.authStatus`: how each provider authenticates. A key in the file is `static`; a
    /// provider with none is `missing` (the worker may still find one in its environment, and a
    /// local server may need none).
    pub fn auth_status_payload(&self, now_ms: u64) -> Value {
        let providers: Vec<Value> = self
            .providers
            .values()
            .map(|p| {
                let (status, key) = match &p.api_key {
                    Some(_) => ("static", json!({"source": "config"})),
                    None => ("missing", json!({"source": "none"})),
                };
                json!({
                    "provider": p.id, "authProvider": p.id, "displayName": p.id,
                    "status": status, "profiles": [], "apiKey": key,
                })
            })
            .collect();
        let capabilities = [
            ("anthropic", true),
            ("openai", true),
            ("ollama", false),
            ("lmstudio", false),
        ]
        .map(|(provider, key)| json!({"provider": provider, "apiKeySupported": key, "quickApiKeySetup": false}));
        json!({"ts": now_ms, "providers": providers, "providerCapabilities": capabilities})
    }
}

/// An agent id as the configuration's lists key it: normalized.
pub(crate) fn normalize(id: &str) -> String {
    clawgate_proto::session::AgentId::normalize(id).as_str().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden_config() -> Value {
        json!({
            "agents": {"defaults": {"model": {"primary": "fakeai/fake-golden"}},
                       "list": [{"id": "Ops", "model": "claude/claude-sonnet-4"}]},
            "models": {"mode": "merge", "providers": {
                "fakeai": {"baseUrl": "http://127.0.0.1:18961/v1", "apiKey": "sk-local", "api": "openai-completions",
                           "models": [{"id": "fake-golden", "name": "Fake Golden", "contextWindow": 128000, "maxTokens": 4096}]},
                "claude": {"baseUrl": "https://api.anthropic.com", "api": "anthropic-messages",
                           "models": [{"id": "claude-sonnet-4"}]},
            }},
        })
    }

    #[test]
    fn agents_run_on_their_own_model_or_the_default() {
        let c = ModelCatalog::from_document(&golden_config()).unwrap();
        assert_eq!(
            c.model_of("main").map(ModelRef::as_string).as_deref(),
            Some("fakeai/fake-golden")
        );
        assert_eq!(
            c.model_of("ops").map(ModelRef::as_string).as_deref(),
            Some("claude/claude-sonnet-4")
        );
        assert_eq!(c.providers["claude"].api(), Some(ProviderApi::AnthropicMessages));
        assert_eq!(c.providers["fakeai"].api_key.as_deref(), Some("sk-local"));
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    }

    #[test]
    fn a_caller_may_pick_another_model_of_the_agents_provider_or_a_configured_one() {
        let c = ModelCatalog::from_document(&golden_config()).unwrap();
        let pick = |r: Option<&str>| c.model_for_run("main", r).map(|m| m.as_string());
        assert_eq!(pick(None).as_deref(), Some("fakeai/fake-golden"));
        assert_eq!(pick(Some("bigger")).as_deref(), Some("fakeai/bigger"));
        assert_eq!(
            pick(Some("claude/claude-sonnet-4")).as_deref(),
            Some("claude/claude-sonnet-4")
        );
        // `org/model` of no configured provider is a model id of the agent's provider.
        assert_eq!(pick(Some("meta/llama-3")).as_deref(), Some("fakeai/meta/llama-3"));
    }

    #[test]
    fn the_agents_that_need_a_worker_are_those_with_a_model_of_a_configured_provider() {
        let doc = golden_config();
        let policy = crate::tool_policy::ToolPolicy::from_document(&doc).unwrap();
        let c = ModelCatalog::from_document(&doc).unwrap();
        // With a list, its first agent is the default one; `main` is not an agent then.
        assert_eq!(c.agents_with_models(&policy), ["ops"]);
        let mut no_list = golden_config();
        no_list["agents"]["list"] = json!([]);
        let policy = crate::tool_policy::ToolPolicy::from_document(&no_list).unwrap();
        let c = ModelCatalog::from_document(&no_list).unwrap();
        assert_eq!(c.agents_with_models(&policy), ["main"]);
        let none = ModelCatalog::from_document(&json!({})).unwrap();
        assert!(none.agents_with_models(&policy).is_empty());
    }

    #[test]
    fn misshapen_entries_name_their_path() {
        let bad = json!({"models": {"providers": {"x": {"baseUrl": 5}}}});
        assert_eq!(
            ModelCatalog::from_document(&bad).unwrap_err().0,
            "models.providers.x.baseUrl"
        );
        let bad = json!({"agents": {"defaults": {"model": 7}}});
        assert_eq!(
            ModelCatalog::from_document(&bad).unwrap_err().0,
            "agents.defaults.model"
        );
        // An alias is no error (OpenClaw has them); it is warned about and leaves no model.
        let alias = ModelCatalog::from_document(&json!({"agents": {"defaults": {"model": "opus"}}})).unwrap();
        assert_eq!(alias.default_model, None);
        assert!(alias.warnings()[0].contains("opus is not provider/model"));
    }

    #[test]
    fn unsupported_apis_and_unknown_providers_are_warned_about() {
        let doc = json!({
            "agents": {"defaults": {"model": "nowhere/m"}},
            "models": {"providers": {"g": {"baseUrl": "https://x", "api": "google-generative-ai"}}},
        });
        let w = ModelCatalog::from_document(&doc).unwrap().warnings();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w.iter().any(|l| l.contains("google-generative-ai")));
        assert!(w.iter().any(|l| l.contains("nowhere")));
    }

    #[test]
    fn models_list_has_the_golden_shape() {
        let c = ModelCatalog::from_document(&golden_config()).unwrap();
        let list = c.list_payload();
        let fake = list["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == "fake-golden")
            .unwrap();
        assert_eq!(
            fake,
            &json!({"id": "fake-golden", "name": "Fake Golden", "provider": "fakeai", "contextWindow": 128000,
                    "reasoning": false, "tags": ["default"], "thinkingLevels": [{"id": "off", "label": "off"}],
                    "thinkingDefault": "off", "available": true})
        );
    }
}
