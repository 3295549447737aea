//! The file tools against a real directory: confinement, access levels, caps and edits.

mod common;

use clawgate_engine::tool_policy::WorkspaceAccess;
use clawgate_tools::{ToolError, Workspace};
use serde_json::json;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

fn scratch() -> (PathBuf, PathBuf) {
    common::scratch("alpha beta gamma")
}

fn code(r: Result<serde_json::Value, ToolError>) -> &'static str {
    match r {
        Ok(v) => panic!("succeeded: {v}"),
        Err(e) => e.code(),
    }
}

#[test]
fn file_tools_work_inside_the_workspace() {
    let (root, _) = scratch();
    let ws = Workspace::open(&root, WorkspaceAccess::ReadWrite).unwrap();
    let out = ws
        .run("write", &json!({"path": "sub/new.txt", "content": "hello world"}))
        .unwrap();
    assert_eq!(out["bytes"], 11);
    assert_eq!(fs::read_to_string(root.join("sub/new.txt")).unwrap(), "hello world");
    let out = ws.run("read", &json!({"path": "./sub/new.txt"})).unwrap();
    assert_eq!(
        (out["content"].as_str(), out["truncated"].as_bool()),
        (Some("hello world"), Some(false))
    );
    let out = ws
        .run("read", &json!({"path": "sub/new.txt", "offset": 6, "limit": 3}))
        .unwrap();
    assert_eq!(
        (out["content"].as_str(), out["truncated"].as_bool()),
        (Some("wor"), Some(true))
    );
    ws.run(
        "edit",
        &json!({"path": "sub/new.txt", "oldText": "world", "newText": "there"}),
    )
    .unwrap();
    assert_eq!(fs::read_to_string(root.join("sub/new.txt")).unwrap(), "hello there");
    let out = ws.run("ls", &json!({})).unwrap();
    let names: Vec<(&str, &str)> = out["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(names, [("notes.txt", "file"), ("sub", "dir")]);
    // New directories on the way to a written file are created, still inside.
    ws.run("write", &json!({"path": "a/b/c.txt", "content": ""})).unwrap();
    assert!(root.join("a/b/c.txt").is_file());
    // No temporary file is left behind.
    assert!(!fs::read_dir(root.join("sub"))
        .unwrap()
        .any(|e| e.unwrap().file_name().to_string_lossy().contains("tmp")));
}

#[test]
fn paths_that_leave_the_workspace_are_refused() {
    let (root, outside) = scratch();
    let ws = Workspace::open(&root, WorkspaceAccess::ReadWrite).unwrap();
    let secret = outside.join("secret.txt");
    for path in [
        "../outside/secret.txt",
        "sub/../../outside/secret.txt",
        secret.to_str().unwrap(),
        "/etc/passwd",
    ] {
        assert_eq!(code(ws.run("read", &json!({"path": path}))), "PATH_REFUSED", "{path}");
        assert_eq!(
            code(ws.run("write", &json!({"path": path, "content": "x"}))),
            "PATH_REFUSED",
            "{path}"
        );
    }
    // Symlinks out of the workspace: to a directory and to a file.
    symlink(&outside, root.join("out-dir")).unwrap();
    symlink(&secret, root.join("out-file")).unwrap();
    for path in ["out-dir/secret.txt", "out-file", "out-dir"] {
        assert_eq!(code(ws.run("read", &json!({"path": path}))), "PATH_REFUSED", "{path}");
    }
    assert_eq!(code(ws.run("ls", &json!({"path": "out-dir"}))), "PATH_REFUSED");
    assert_eq!(
        code(ws.run("write", &json!({"path": "out-dir/new.txt", "content": "x"}))),
        "PATH_REFUSED"
    );
    assert_eq!(
        code(ws.run("write", &json!({"path": "out-file", "content": "x"}))),
        "PATH_REFUSED"
    );
    assert_eq!(
        code(ws.run("write", &json!({"path": "out-dir/deeper/new.txt", "content": "x"}))),
        "PATH_REFUSED"
    );
    assert!(!outside.join("new.txt").exists() && !outside.join("deeper").exists());
    assert_eq!(fs::read_to_string(&secret).unwrap(), "secret");
    // A symlink that stays inside may be read, but is not written through.
    symlink(root.join("notes.txt"), root.join("alias")).unwrap();
    assert_eq!(
        ws.run("read", &json!({"path": "alias"})).unwrap()["content"],
        "alpha beta gamma"
    );
    assert_eq!(
        code(ws.run("write", &json!({"path": "alias", "content": "x"}))),
        "PATH_REFUSED"
    );
    assert_eq!(code(ws.run("read", &json!({"path": "nul\u{0}byte"}))), "PATH_REFUSED");
}

#[test]
fn access_levels_are_enforced() {
    let (root, _) = scratch();
    let ro = Workspace::open(&root, WorkspaceAccess::ReadOnly).unwrap();
    assert!(ro.run("read", &json!({"path": "notes.txt"})).is_ok());
    assert_eq!(
        code(ro.run("write", &json!({"path": "x.txt", "content": "x"}))),
        "ACCESS_DENIED"
    );
    assert_eq!(
        code(ro.run(
            "edit",
            &json!({"path": "notes.txt", "oldText": "alpha", "newText": "x"})
        )),
        "ACCESS_DENIED"
    );
    assert_eq!(fs::read_to_string(root.join("notes.txt")).unwrap(), "alpha beta gamma");
    let none = Workspace::open(&root, WorkspaceAccess::None).unwrap();
    assert_eq!(code(none.run("read", &json!({"path": "notes.txt"}))), "ACCESS_DENIED");
    assert_eq!(code(none.run("ls", &json!({}))), "ACCESS_DENIED");
}

#[test]
fn output_is_capped_and_edits_must_be_unambiguous() {
    let (root, _) = scratch();
    fs::write(root.join("big.txt"), "x".repeat(10_000)).unwrap();
    let ws = Workspace::open(&root, WorkspaceAccess::ReadWrite)
        .unwrap()
        .with_output_cap(1000);
    let out = ws.run("read", &json!({"path": "big.txt"})).unwrap();
    assert_eq!(out["content"].as_str().unwrap().len(), 1000);
    assert_eq!(
        (out["truncated"].as_bool(), out["size"].as_u64()),
        (Some(true), Some(10_000))
    );

    fs::write(root.join("twice.txt"), "a a").unwrap();
    let e = ws
        .run("edit", &json!({"path": "twice.txt", "oldText": "a", "newText": "b"}))
        .unwrap_err();
    assert_eq!(e.code(), "EDIT_MISMATCH");
    assert!(e.to_string().contains("occurs 2 times"));
    let e = ws
        .run("edit", &json!({"path": "twice.txt", "oldText": "zzz", "newText": "b"}))
        .unwrap_err();
    assert!(e.to_string().contains("not found"));
    assert_eq!(fs::read_to_string(root.join("twice.txt")).unwrap(), "a a");

    assert_eq!(
        code(ws.run("read", &json!({"path": "big.txt", "extra": 1}))),
        "INVALID_ARGUMENTS"
    );
    assert_eq!(code(ws.run("write", &json!({"path": "x"}))), "INVALID_ARGUMENTS");
    assert_eq!(code(ws.run("read", &json!({"path": "missing.txt"}))), "NOT_FOUND");
    fs::write(root.join("bin"), [0xff, 0xfe, 0x00]).unwrap();
    assert_eq!(code(ws.run("read", &json!({"path": "bin"}))), "INVALID_ARGUMENTS");
}
