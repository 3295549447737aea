//! Mapped hooks (`hooks.mappings`, `hooks.presets`): a request to `POST <hooks.path>/<name>`
//! is matched against the mappings in order (the first match owns it), and the mapping's
//! templates turn the payload into wake or agent actions, one per item with `forEach`.
//!
//! Templates take `{{payload.a.b}}` or `{{a.b}}`, array indexes (`{{messages[0].subject}}`),
//! `{{headers.x-event-type}}`, `{{query.kind}}`, `{{path}}` and `{{now}}`; a missing value is
//! empty, an object or array is its JSON. JavaScript transforms (`transform.module`) cannot run
//! in Clawgate: a mapping that names one is kept and answers 500, as a failing transform does
//! in OpenClaw, so a configuration that has one still starts.

use serde_json::Value;

/// Items of a `forEach` array that become actions; the rest are dropped.
pub const FOR_EACH_LIMIT: usize = 200;

/// What a mapping does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MappingAction {
    Agent,
    Wake,
}

/// One entry of `hooks.mappings` (or a preset's).
#[derive(Debug, Clone, PartialEq)]
pub struct HookMapping {
    pub id: String,
    /// The subpath after `hooks.path`, without slashes; `None` matches every path.
    pub match_path: Option<String>,
    /// The payload's `source` must equal it.
    pub match_source: Option<String>,
    pub action: MappingAction,
    pub wake_now: bool,
    pub name: Option<String>,
    pub agent_id: Option<String>,
    pub session_key: Option<String>,
    pub persistent: bool,
    pub message_template: String,
    pub text_template: String,
    pub for_each: Option<String>,
    pub deliver: bool,
    /// A channel id or `last` (the default).
    pub channel: String,
    pub to: Option<String>,
    pub model: Option<String>,
    pub timeout_ms: Option<u64>,
    /// The mapping names a JavaScript transform, which Clawgate cannot run.
    pub transform: Option<String>,
}

type Problem = (String, &'static str);

impl HookMapping {
    /// Whether a session-key template takes values from the request.
    pub fn templated_key(&self) -> bool {
        self.session_key.as_deref().is_some_and(|k| k.contains("{{"))
    }

    /// Reads one mapping; `at` is its path in the document.
    fn parse(value: &Value, at: &str, index: usize) -> Result<HookMapping, Problem> {
        if !value.is_object() {
            return Err((at.to_owned(), "an object"));
        }
        let text = |key: &str| -> Result<Option<String>, Problem> {
            match &value[key] {
                Value::Null => Ok(None),
                Value::String(s) => Ok(Some(s.trim().to_owned()).filter(|s| !s.is_empty())),
                _ => Err((format!("{at}.{key}"), "a string")),
            }
        };
        let matcher = &value["match"];
        let match_text = |key: &str| -> Result<Option<String>, Problem> {
            match &matcher[key] {
                Value::Null => Ok(None),
                Value::String(s) => Ok(Some(s.trim().trim_matches('/').to_owned()).filter(|s| !s.is_empty())),
                _ => Err((format!("{at}.match.{key}"), "a string")),
            }
        };
        let action = match text("action")?.as_deref() {
            None | Some("agent") => MappingAction::Agent,
            Some("wake") => MappingAction::Wake,
            Some(_) => return Err((format!("{at}.action"), "agent or wake")),
        };
        let wake_now = match text("wakeMode")?.as_deref() {
            None | Some("now") => true,
            Some("next-heartbeat") => false,
            Some(_) => return Err((format!("{at}.wakeMode"), "now or next-heartbeat")),
        };
        let persistent = match text("sessionMode")?.as_deref() {
            None | Some("isolated") => false,
            Some("persistent") => true,
            Some(_) => return Err((format!("{at}.sessionMode"), "isolated or persistent")),
        };
        let deliver = match &value["deliver"] {
            Value::Null => true,
            Value::Bool(b) => *b,
            _ => return Err((format!("{at}.deliver"), "true or false")),
        };
        let timeout_ms = match &value["timeoutSeconds"] {
            Value::Null => None,
            v => match v.as_u64().filter(|s| *s > 0) {
                Some(s) => Some(s.saturating_mul(1000)),
                None => return Err((format!("{at}.timeoutSeconds"), "a positive whole number of seconds")),
            },
        };
        let for_each = text("forEach")?;
        if for_each
            .as_deref()
            .is_some_and(|k| k.contains(['.', '[', ']']) || k == "__proto__" || k == "constructor")
        {
            return Err((format!("{at}.forEach"), "a top-level key of the payload"));
        }
        let transform = match &value["transform"] {
            Value::Null => None,
            t => Some(t["module"].as_str().unwrap_or("(unnamed)").to_owned()),
        };
        Ok(HookMapping {
            id: text("id")?.unwrap_or_else(|| format!("mapping-{index}")),
            match_path: match_text("path")?,
            match_source: match_text("source")?,
            action,
            wake_now,
            name: text("name")?,
            agent_id: text("agentId")?,
            session_key: text("sessionKey")?,
            persistent,
            message_template: text("messageTemplate")?.unwrap_or_default(),
            text_template: text("textTemplate")?.unwrap_or_default(),
            for_each,
            deliver,
            channel: text("channel")?
                .map(|c| c.to_lowercase())
                .unwrap_or_else(|| "last".into()),
            to: text("to")?,
            model: text("model")?,
            timeout_ms,
            transform,
        })
    }

    /// Whether this mapping owns a request to `subpath` carrying `payload`.
    pub fn matches(&self, subpath: &str, payload: &Value) -> bool {
        self.match_path.as_deref().is_none_or(|p| p == subpath)
            && self
                .match_source
                .as_deref()
                .is_none_or(|s| payload["source"].as_str() == Some(s))
    }
}

/// The built-in Gmail mapping (`hooks.presets: ["gmail"]`): one isolated agent turn per message
/// of the watcher's batch.
fn gmail_preset() -> HookMapping {
    HookMapping {
        id: "gmail".into(),
        match_path: Some("gmail".into()),
        match_source: None,
        action: MappingAction::Agent,
        wake_now: true,
        name: Some("Gmail".into()),
        agent_id: None,
        session_key: Some("hook:gmail:{{messages[0].id}}".into()),
        persistent: false,
        message_template: "New email from {{messages[0].from}}\nSubject: {{messages[0].subject}}\n\n{{messages[0].snippet}}\n{{messages[0].body}}".into(),
        text_template: String::new(),
        for_each: Some("messages".into()),
        deliver: true,
        channel: "last".into(),
        to: None,
        model: None,
        timeout_ms: None,
        transform: None,
    }
}

/// Reads `hooks.mappings` then `hooks.presets` (appended after). `session_policy` is
/// `(allowedSessionKeyPrefixes is non-empty, defaultSessionKey is set)`.
pub fn parse_mappings(hooks: &Value, session_policy: (bool, bool)) -> Result<Vec<HookMapping>, Problem> {
    let mut mappings = Vec::new();
    match &hooks["mappings"] {
        Value::Null => {}
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                mappings.push(HookMapping::parse(item, &format!("hooks.mappings[{i}]"), i)?);
            }
        }
        _ => return Err(("hooks.mappings".into(), "a list of mappings")),
    }
    match &hooks["presets"] {
        Value::Null => {}
        Value::Array(items) => {
            for item in items {
                // An unknown preset adds nothing, as in OpenClaw.
                if item.as_str() == Some("gmail") {
                    mappings.push(gmail_preset());
                }
            }
        }
        _ => return Err(("hooks.presets".into(), "a list of preset names")),
    }
    let (prefixes, default_key) = session_policy;
    for (i, m) in mappings.iter().enumerate() {
        let at = format!("hooks.mappings[{i}].sessionKey");
        if m.templated_key() && !prefixes {
            return Err((
                at,
                "a static key unless hooks.allowedSessionKeyPrefixes is set (it comes from the request)",
            ));
        }
        if m.persistent && m.session_key.is_none() && !default_key {
            return Err((at, "a key (or hooks.defaultSessionKey) for sessionMode persistent"));
        }
    }
    Ok(mappings)
}

/// What templates read: the payload, the request's headers and query, the subpath and the time.
pub struct TemplateInput<'a> {
    pub payload: &'a Value,
    pub headers: &'a [(String, String)],
    pub query: &'a str,
    pub path: &'a str,
    pub now_iso: &'a str,
}

/// Follows `a.b[0].c` through a JSON value.
fn lookup<'v>(root: &'v Value, path: &str) -> Option<&'v Value> {
    let mut at = root;
    for segment in path.split('.') {
        let (name, mut rest) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        if !name.is_empty() {
            at = at.get(name)?;
        }
        while let Some(inner) = rest.strip_prefix('[') {
            let close = inner.find(']')?;
            let index: usize = inner[..close].trim().parse().ok()?;
            at = at.get(index)?;
            rest = &inner[close + 1..];
        }
        if !rest.is_empty() {
            return None;
        }
    }
    Some(at)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn value_text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

impl TemplateInput<'_> {
    fn resolve(&self, expr: &str) -> String {
        let expr = expr.trim();
        match expr {
            "now" => return self.now_iso.to_owned(),
            "path" => return self.path.to_owned(),
            _ => {}
        }
        if let Some(name) = expr.strip_prefix("headers.") {
            let name = name.to_ascii_lowercase();
            return self
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(&name))
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
        }
        if let Some(name) = expr.strip_prefix("query.") {
            return self
                .query
                .split('&')
                .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
                .find(|(k, _)| percent_decode(k) == name)
                .map(|(_, v)| percent_decode(v))
                .unwrap_or_default();
        }
        let path = expr.strip_prefix("payload.").unwrap_or(expr);
        value_text(lookup(self.payload, path))
    }

    /// The template with each `{{...}}` replaced by its value.
    pub fn render(&self, template: &str) -> String {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(open) = rest.find("{{") {
            out.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            match after.find("}}") {
                Some(close) => {
                    out.push_str(&self.resolve(&after[..close]));
                    rest = &after[close + 2..];
                }
                None => {
                    out.push_str(&rest[open..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// The payloads a mapping's templates see: the payload itself, or with `forEach` one copy per
/// item (at most [`FOR_EACH_LIMIT`]) with the array replaced by `[item]`. Also how many were
/// dropped beyond the limit.
pub fn payloads_of(mapping: &HookMapping, payload: &Value) -> (Vec<Value>, usize) {
    let Some(key) = &mapping.for_each else {
        return (vec![payload.clone()], 0);
    };
    let Some(items) = payload.get(key).and_then(Value::as_array) else {
        return (Vec::new(), 0);
    };
    let dropped = items.len().saturating_sub(FOR_EACH_LIMIT);
    let each = items
        .iter()
        .take(FOR_EACH_LIMIT)
        .map(|item| {
            let mut one = payload.clone();
            one[key.as_str()] = Value::Array(vec![item.clone()]);
            one
        })
        .collect();
    (each, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input<'a>(payload: &'a Value, headers: &'a [(String, String)]) -> TemplateInput<'a> {
        TemplateInput {
            payload,
            headers,
            query: "kind=push%20event&x",
            path: "github",
            now_iso: "2026-12-03T10:00:00.000Z",
        }
    }

    #[test]
    fn templates_read_the_payload_headers_query_path_and_time() {
        let payload = json!({"repo": {"name": "claw"}, "messages": [{"subject": "hi"}], "n": 3, "o": {"a": 1}});
        let headers = vec![("X-Event-Type".to_owned(), "push".to_owned())];
        let t = input(&payload, &headers);
        assert_eq!(t.render("{{payload.repo.name}}/{{repo.name}}"), "claw/claw");
        assert_eq!(t.render("{{ messages[0].subject }}"), "hi");
        assert_eq!(
            t.render("{{headers.x-event-type}} {{query.kind}} {{path}}"),
            "push push event github"
        );
        assert_eq!(t.render("{{now}}"), "2026-12-03T10:00:00.000Z");
        assert_eq!(
            t.render("{{n}} {{o}} [{{missing.deep}}] [{{messages[9].x}}]"),
            "3 {\"a\":1} [] []"
        );
        assert_eq!(t.render("left {{ open"), "left {{ open");
    }

    #[test]
    fn for_each_makes_one_payload_per_item_up_to_the_limit() {
        let mut m = gmail_preset();
        let payload = json!({"messages": [{"id": "a"}, {"id": "b"}], "account": "me"});
        let (each, dropped) = payloads_of(&m, &payload);
        assert_eq!((each.len(), dropped), (2, 0));
        assert_eq!(each[1], json!({"messages": [{"id": "b"}], "account": "me"}));
        let many = json!({"messages": vec![json!({}); FOR_EACH_LIMIT + 3]});
        assert_eq!(payloads_of(&m, &many).1, 3);
        assert!(payloads_of(&m, &json!({"messages": "no"})).0.is_empty());
        m.for_each = None;
        assert_eq!(payloads_of(&m, &payload).0, vec![payload]);
    }

    #[test]
    fn a_templated_session_key_needs_a_prefix_allowlist() {
        let hooks = json!({"mappings": [{"match": {"path": "x"}, "sessionKey": "hook:x:{{id}}"}]});
        assert!(parse_mappings(&hooks, (false, false)).is_err());
        assert!(parse_mappings(&hooks, (true, false)).is_ok());
        let persistent = json!({"mappings": [{"sessionMode": "persistent"}]});
        assert!(parse_mappings(&persistent, (false, false)).is_err());
        assert!(parse_mappings(&persistent, (false, true)).is_ok());
        let gmail = parse_mappings(&json!({"presets": ["gmail", "unknown"]}), (true, false)).unwrap();
        assert_eq!(gmail.len(), 1);
    }
}
