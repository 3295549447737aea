//! The real gateway's captures under `proto/tests/golden/agent-tools/`, read by the operator
//! method tests, and the shape comparison they use.
#![allow(dead_code, clippy::disallowed_methods)]

use serde_json::Value;

/// A file under `proto/tests/golden/agent-tools/`.
pub fn read(relative: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../proto/tests/golden/agent-tools")
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A captured frame of `operator-methods/`.
pub fn golden(name: &str) -> Value {
    serde_json::from_str(&read(&format!("operator-methods/{name}"))).unwrap()
}

/// Every key of the captured object is in ours, except the ones named (deliberate differences).
pub fn has_captured_keys(ours: &Value, captured: &Value, except: &[&str]) {
    for key in captured.as_object().expect("a captured object").keys() {
        if !except.contains(&key.as_str()) {
            assert!(ours.get(key).is_some(), "missing {key} in {ours}");
        }
    }
}

/// No environment variables.
pub fn no_env(_: &str) -> Option<String> {
    None
}
