//! Where the state directory and the configuration file are, and reading and changing the file.

use crate::exit::Failure;
use clawgate_engine::settings::FileSettings;
use std::path::{Path, PathBuf};

pub fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// `--state-dir`, else `$OPENCLAW_STATE_DIR`, else `~/.openclaw`.
pub fn state_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(d) = flag {
        return d.to_path_buf();
    }
    if let Some(d) = env_nonempty("OPENCLAW_STATE_DIR") {
        return d.into();
    }
    let home = env_nonempty("HOME").unwrap_or_else(|| ".".into());
    Path::new(&home).join(".openclaw")
}

/// `$OPENCLAW_CONFIG_PATH`, else `<state dir>/openclaw.json`.
pub fn config_path(state_dir: &Path) -> PathBuf {
    env_nonempty("OPENCLAW_CONFIG_PATH").map_or_else(|| state_dir.join("openclaw.json"), Into::into)
}

/// The configuration file's text; `None` when there is no file.
pub fn read(path: &Path) -> Result<Option<String>, Failure> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Failure::config(format!("{}: {e}", path.display()))),
    }
}

/// Reads and checks the configuration file (absent: an empty one). Invalid: exit 78 with the
/// file, line and column. Warnings are printed when `warn` is set.
pub fn load(path: &Path, warn: bool) -> Result<FileSettings, Failure> {
    let Some(text) = read(path)? else {
        return Ok(FileSettings::default());
    };
    let env = |name: &str| std::env::var(name).ok();
    let (settings, warnings) = clawgate_engine::settings::parse(&text, &env)
        .map_err(|e| Failure::config(format!("{}:{}:{}: {}", path.display(), e.line, e.column, e.message)))?;
    if warn {
        for w in warnings {
            eprintln!("clawgate: {}: {w}", path.display());
        }
    }
    Ok(settings)
}

/// Sets `key` (a dotted path) to `value` in the file, creating it when absent. The result is
/// checked as the gateway will check it before the file is replaced (atomically, mode 0600).
pub fn set(path: &Path, key: &str, value: serde_json::Value) -> Result<(), Failure> {
    let text = read(path)?;
    let mut doc: serde_json::Value = match &text {
        Some(t) => json5::from_str(t).map_err(|e| Failure::config(format!("{}: {e}", path.display())))?,
        None => serde_json::json!({}),
    };
    if !doc.is_object() {
        return Err(Failure::config(format!(
            "{}: the configuration must be an object",
            path.display()
        )));
    }
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(Failure::usage(format!("invalid path {key}")));
    }
    let mut cursor = &mut doc;
    for part in &parts[..parts.len() - 1] {
        if !cursor.get(*part).is_some_and(serde_json::Value::is_object) {
            cursor[*part] = serde_json::json!({});
        }
        cursor = &mut cursor[*part];
    }
    cursor[parts[parts.len() - 1]] = value;
    let rendered = serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n";
    let env = |name: &str| std::env::var(name).ok();
    // The checker's message already names the path.
    clawgate_engine::settings::parse(&rendered, &env).map_err(|e| Failure::config(e.message))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("openclaw.json");
    clawgate_io::write_atomically(dir, name, &rendered)
        .map_err(|e| Failure::failed(format!("cannot write {}: {e}", path.display())))?;
    if text.is_some_and(|t| t.contains("//") || t.contains("/*")) {
        eprintln!(
            "clawgate: note: {} is rewritten as plain JSON; its comments were not kept",
            path.display()
        );
    }
    Ok(())
}
