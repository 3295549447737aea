//! The engine's modules depend on each other without cycles, and none but the shell and the test
//! bench sees the gateway itself. A module depends on another when its code names it
//! (`use crate::x`, `crate::{x, y}`, or a path `crate::x::...`); comments do not count.
// The engine never touches files; this test reads its source tree, from outside it.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The module names a Rust source mentions as `crate::<name>`, outside comments.
fn dependencies(source: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in source.lines() {
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `crate::{a, b::C}`: every top-level name of the group.
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    found.insert(name);
                }
                continue;
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.insert(name);
        }
    }
    found.retain(|n| !n.is_empty());
    found
}

/// The module graph of the sources in `dir` (one file per module), restricted to its modules.
fn module_graph(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("engine/src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let name = path.file_stem().expect("a file name").to_string_lossy().into_owned();
        let source = std::fs::read_to_string(&path).expect("a source file is readable");
        graph.insert(name, dependencies(&source));
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for (name, deps) in graph.iter_mut() {
        deps.retain(|d| modules.contains(d) && d != name);
    }
    graph
}

/// A cycle of the graph, if it has one, as the modules along it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = path.iter().position(|n| n == node).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_owned(), Mark::Open);
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut marks, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}

fn engine_graph() -> BTreeMap<String, BTreeSet<String>> {
    module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

#[test]
fn engine_modules_form_no_cycle() {
    let graph = engine_graph();
    assert!(graph.len() > 20, "the engine's modules were not found: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "engine modules depend on each other in a circle: {}",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn only_the_shell_and_the_test_bench_name_the_gateway() {
    // `lib` re-exports the shell; the test bench drives it from outside.
    let graph = engine_graph();
    let users: Vec<&String> = graph
        .iter()
        .filter(|(name, deps)| deps.contains("gateway") && !["lib", "testkit"].contains(&name.as_str()))
        .map(|(name, _)| name)
        .collect();
    assert!(users.is_empty(), "these parts reach into the gateway: {users:?}");
}

#[test]
fn the_checker_finds_a_cycle_and_reads_grouped_imports() {
    let deps = dependencies("use crate::{alpha, beta::Gamma};\n// crate::comment\nlet x = crate::delta::f();");
    assert_eq!(deps, ["alpha", "beta", "delta"].map(String::from).into_iter().collect());
    let graph: BTreeMap<String, BTreeSet<String>> =
        [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"]), ("d", vec![])]
            .into_iter()
            .map(|(n, d)| (n.to_owned(), d.into_iter().map(String::from).collect()))
            .collect();
    assert_eq!(
        find_cycle(&graph),
        Some(["a", "b", "c", "a"].map(String::from).to_vec())
    );
}
