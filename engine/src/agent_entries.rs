//! `agents.create`, `agents.update` and `agents.delete` as edits of the configuration document:
//! an agent is an entry of `agents.entries` (OpenClaw 2026.9's form) or of the older
//! `agents.list`, and the edit keeps the form the file already uses for that agent.

use crate::config::GatewayConfig;
use clawgate_proto::frame::{ErrorCode, ErrorShape};
use serde_json::{json, Map, Value};

fn invalid(method: &str, reason: impl std::fmt::Display) -> ErrorShape {
    ErrorShape::new(ErrorCode::InvalidRequest, format!("invalid {method} params: {reason}"))
}

/// An agent id from a display name, as OpenClaw makes it: lower case, runs of anything but
/// letters and digits turned into one `-`.
pub(crate) fn slug(name: &str) -> String {
    let mut id = String::new();
    for c in name.trim().chars() {
        if c.is_ascii_alphanumeric() {
            id.push(c.to_ascii_lowercase());
        } else if !id.ends_with('-') && !id.is_empty() {
            id.push('-');
        }
    }
    id.trim_end_matches('-').chars().take(64).collect()
}

/// Where an agent is declared in the document.
enum Place {
    Entries,
    List(usize),
}

fn place_of(doc: &Value, id: &str) -> Option<Place> {
    if doc.pointer(&format!("/agents/entries/{id}")).is_some() {
        return Some(Place::Entries);
    }
    doc.pointer("/agents/list")
        .and_then(Value::as_array)
        .and_then(|list| list.iter().position(|a| a["id"].as_str() == Some(id)))
        .map(Place::List)
}

fn object_at<'a>(doc: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !doc[key].is_object() {
        doc[key] = json!({});
    }
    match doc[key].as_object_mut() {
        Some(map) => map,
        None => unreachable!("made an object above"),
    }
}

fn text_param<'a>(method: &str, p: &'a Value, key: &str) -> Result<Option<&'a str>, ErrorShape> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= 200 => Ok(Some(s.trim())),
        Some(_) => Err(invalid(method, format!("{key} must be a text of 1 to 200 characters"))),
    }
}

/// Applies the method to `doc` and returns its answer.
pub(crate) fn edit(method: &str, p: &Value, doc: &mut Value, config: &GatewayConfig) -> Result<Value, ErrorShape> {
    if !doc.is_object() {
        return Err(invalid(method, "the configuration is not an object"));
    }
    let default_agent = config.session_routing().default_agent.as_str().to_owned();
    let workspace_of = |doc: &Value, id: &str| {
        let base = doc
            .pointer("/agents/defaults/workspace")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{}/workspace", config.state_dir));
        format!("{}/{id}", base.trim_end_matches('/'))
    };
    match method {
        "agents.create" => {
            let name = text_param(method, p, "name")?.ok_or_else(|| invalid(method, "name is required"))?;
            let id = slug(name);
            if id.is_empty() {
                return Err(invalid(method, "name must hold a letter or a digit"));
            }
            if id == default_agent || place_of(doc, &id).is_some() {
                return Err(ErrorShape::new(
                    ErrorCode::InvalidRequest,
                    format!("agent already exists: {id}"),
                ));
            }
            let workspace = text_param(method, p, "workspace")?
                .map(str::to_owned)
                .unwrap_or_else(|| workspace_of(doc, &id));
            let mut entry = json!({"name": name, "workspace": workspace});
            if let Some(model) = text_param(method, p, "model")? {
                entry["model"] = json!(model);
            }
            let agents = object_at(doc, "agents");
            let entries = agents.entry("entries").or_insert_with(|| json!({}));
            if !entries.is_object() {
                *entries = json!({});
            }
            entries[&id] = entry;
            Ok(json!({"ok": true, "agentId": id, "name": name, "workspace": workspace}))
        }
        "agents.update" => {
            let id = text_param(method, p, "agentId")?.ok_or_else(|| invalid(method, "agentId is required"))?;
            let mut fields = Map::new();
            for key in ["name", "workspace", "model"] {
                if let Some(v) = text_param(method, p, key)? {
                    fields.insert(key.to_owned(), json!(v));
                }
            }
            if let Some(other) = p
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k.as_str())
                .find(|k| !matches!(*k, "agentId" | "name" | "workspace" | "model"))
            {
                return Err(invalid(method, format!("{other} is not an agent field Clawgate keeps")));
            }
            let entry = match place_of(doc, id) {
                Some(Place::List(i)) => &mut doc["agents"]["list"][i],
                Some(Place::Entries) => &mut doc["agents"]["entries"][id],
                // The default agent exists without an entry: the update gives it one.
                None if id == default_agent => {
                    let agents = object_at(doc, "agents");
                    let entries = agents.entry("entries").or_insert_with(|| json!({}));
                    if !entries.is_object() {
                        *entries = json!({});
                    }
                    entries[id] = json!({});
                    &mut doc["agents"]["entries"][id]
                }
                None => {
                    return Err(ErrorShape::new(
                        ErrorCode::InvalidRequest,
                        format!("unknown agent id: {id}"),
                    ))
                }
            };
            for (k, v) in fields {
                entry[k] = v;
            }
            Ok(json!({"ok": true, "agentId": id}))
        }
        "agents.delete" => {
            let id = text_param(method, p, "agentId")?.ok_or_else(|| invalid(method, "agentId is required"))?;
            if id == default_agent {
                return Err(ErrorShape::new(
                    ErrorCode::InvalidRequest,
                    format!("{id} is the default agent; make another agent the default first"),
                ));
            }
            let workspace = match place_of(doc, id) {
                Some(Place::List(i)) => {
                    let removed = doc["agents"]["list"].as_array_mut().map(|l| l.remove(i));
                    removed.and_then(|a| a["workspace"].as_str().map(str::to_owned))
                }
                Some(Place::Entries) => {
                    let removed = doc["agents"]["entries"].as_object_mut().and_then(|m| m.remove(id));
                    removed.and_then(|a| a["workspace"].as_str().map(str::to_owned))
                }
                None => {
                    return Err(ErrorShape::new(
                        ErrorCode::InvalidRequest,
                        format!("unknown agent id: {id}"),
                    ))
                }
            }
            .unwrap_or_else(|| workspace_of(doc, id));
            let mut removed_bindings = 0;
            if let Some(bindings) = doc.get_mut("bindings").and_then(Value::as_array_mut) {
                let before = bindings.len();
                bindings.retain(|b| b["agentId"].as_str() != Some(id));
                removed_bindings = before - bindings.len();
            }
            let mut answer =
                json!({"ok": true, "agentId": id, "removedBindings": removed_bindings, "removed": [], "failed": []});
            // The engine touches no files: an agent's workspace and transcripts stay on disk.
            if p.get("deleteFiles").and_then(Value::as_bool) == Some(true) {
                answer["kept"] = json!([{"path": workspace, "reason": "Clawgate does not delete an agent's files; remove them by hand"}]);
            }
            Ok(answer)
        }
        other => Err(ErrorShape::unknown_method(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_id_is_the_slug_of_its_name() {
        assert_eq!(slug("Golden Helper"), "golden-helper");
        assert_eq!(slug("  Ops / Night Shift!! "), "ops-night-shift");
        assert_eq!(slug("???"), "");
    }
}
