//! The cost of running a tool, unconfined and in the Landlock sandbox.
//!
//! `cargo bench -p clawgate-benches --bench tools`

use clawgate_engine::tool_calls::ToolRun;
use clawgate_engine::tool_policy::WorkspaceAccess;
use clawgate_tools::ToolRunner;
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;

fn tools(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("clawgate-bench-tools-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "a small file\n").unwrap();
    let runner = ToolRunner::new(None);
    let call = |tool: &'static str, args: serde_json::Value, sandboxed: bool| ToolRun {
        call: 1,
        tool,
        args,
        workspace: Some(dir.display().to_string()),
        agent: "main".into(),
        access: WorkspaceAccess::ReadWrite,
        sandboxed,
    };
    let mut group = c.benchmark_group("tools");
    for sandboxed in [false, true] {
        let label = if sandboxed { "sandboxed" } else { "unconfined" };
        let exec = call("exec", json!({"command": "true"}), sandboxed);
        group.bench_function(format!("exec true ({label})"), |b| {
            b.iter(|| assert_eq!(runner.run(&exec).unwrap()["exitCode"], 0))
        });
        let read = call("read", json!({"path": "notes.txt"}), sandboxed);
        group.bench_function(format!("read a small file ({label})"), |b| {
            b.iter(|| runner.run(&read).unwrap())
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, tools);
criterion_main!(benches);
