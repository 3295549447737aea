//! A scratch directory for the tool tests.

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory holding `workspace/` (with `sub/` and `notes.txt` = `notes`) and, beside
/// it, `outside/secret.txt`. Returns the workspace and the outside folder.
pub fn scratch(notes: &str) -> (PathBuf, PathBuf) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let base = std::env::temp_dir().join(format!(
        "clawgate-tools-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&base);
    fs::create_dir_all(base.join("workspace/sub")).unwrap();
    fs::create_dir_all(base.join("outside")).unwrap();
    fs::write(base.join("outside/secret.txt"), "secret").unwrap();
    fs::write(base.join("workspace/notes.txt"), notes).unwrap();
    (base.join("workspace"), base.join("outside"))
}
