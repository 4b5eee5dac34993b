//! The layers of `synguard/src`, checked: a module imports only from its own layer or the ones
//! below, and the modules never import each other in a circle.
//!
//! ```text
//! cmd -> daemon -> datapath -> state -> host -> config
//! ```
//!
//! Read from the source text: every `crate::` path (in `use` trees and in expressions) of every
//! file, tests included.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// Top to bottom.
const LAYERS: [&str; 6] = ["cmd", "daemon", "datapath", "state", "host", "config"];

fn rank(layer: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == layer)
}

/// The source without comments and string literals (a doc comment may name any path).
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_str = false;
        let mut prev = '\0';
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if !in_str && c == '/' && chars.peek() == Some(&'/') {
                break;
            }
            if c == '"' && prev != '\\' {
                in_str = !in_str;
            } else if !in_str {
                out.push(c);
            }
            prev = c;
        }
        out.push('\n');
    }
    out
}

/// Parses a use-tree after `crate::`: `a::b`, `a::{b, c::{d}}`, `{a, b}`; returns the paths.
fn parse_tree(s: &[char], i: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
    skip_ws(s, i);
    if *i < s.len() && s[*i] == '{' {
        *i += 1;
        loop {
            skip_ws(s, i);
            if *i >= s.len() || s[*i] == '}' {
                *i += 1;
                return;
            }
            parse_tree(s, i, prefix, out);
            skip_ws(s, i);
            if *i < s.len() && s[*i] == ',' {
                *i += 1;
            }
        }
    }
    let start = *i;
    while *i < s.len() && (s[*i].is_alphanumeric() || s[*i] == '_') {
        *i += 1;
    }
    let ident: String = s[start..*i].iter().collect();
    let mut path = prefix.to_vec();
    if !ident.is_empty() && ident != "self" {
        path.push(ident);
    }
    if s[*i..].starts_with(&[':', ':']) {
        *i += 2;
        parse_tree(s, i, &path, out);
    } else {
        out.push(path);
    }
}

fn skip_ws(s: &[char], i: &mut usize) {
    while *i < s.len() && s[*i].is_whitespace() {
        *i += 1;
    }
}

/// Every `crate::...` path in a file's code.
fn crate_paths(text: &str) -> Vec<Vec<String>> {
    let code: Vec<char> = code_only(text).chars().collect();
    let needle: Vec<char> = "crate::".chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i + needle.len() <= code.len() {
        let boundary = i == 0 || !(code[i - 1].is_alphanumeric() || code[i - 1] == '_');
        if boundary && code[i..i + needle.len()] == needle[..] {
            i += needle.len();
            parse_tree(&code, &mut i, &[], &mut out);
        } else {
            i += 1;
        }
    }
    out
}

/// `src/<layer>/<module>.rs` or `src/<layer>/<module>/...` as "layer::module"; the layer's own
/// `mod.rs` as "layer".
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    match parts.as_slice() {
        [layer] => Some(layer.clone()),
        [layer, m] if m == "mod" => Some(layer.clone()),
        [layer, m, ..] => Some(format!("{layer}::{m}")),
        _ => None,
    }
}

/// The module a path names: "layer::module" when the layer has such a module, else "layer".
fn target_of(src: &Path, path: &[String]) -> Option<String> {
    let layer = path.first()?;
    rank(layer)?;
    if let Some(m) = path.get(1) {
        let dir = src.join(layer);
        if dir.join(format!("{m}.rs")).exists() || dir.join(m).join("mod.rs").exists() {
            return Some(format!("{layer}::{m}"));
        }
    }
    Some(layer.clone())
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The import graph between modules, and every import that runs up a layer.
fn check(src: &Path) -> (BTreeMap<String, BTreeSet<String>>, Vec<String>) {
    let mut all = Vec::new();
    files(src, &mut all);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut upward = Vec::new();
    for file in all {
        let Some(from) = module_of(src, &file) else {
            continue;
        };
        let from_layer = from.split("::").next().unwrap().to_string();
        let Some(from_rank) = rank(&from_layer) else {
            continue; // lib.rs, main.rs: they wire, and may name every layer.
        };
        for path in crate_paths(&fs::read_to_string(&file).unwrap()) {
            let Some(to) = target_of(src, &path) else {
                continue;
            };
            let to_rank = rank(to.split("::").next().unwrap()).unwrap();
            if to_rank < from_rank {
                upward.push(format!(
                    "{} imports crate::{} ({} is above {from_layer})",
                    file.display(),
                    path.join("::"),
                    LAYERS[to_rank]
                ));
            }
            if to != from {
                graph.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    (graph, upward)
}

/// A circle in the graph, as the modules on it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in graph.get(n).into_iter().flatten() {
            match state.get(m.as_str()) {
                Some(1) => {
                    let at = stack.iter().position(|s| s == m).unwrap();
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, graph, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if !state.contains_key(n.as_str())
            && let Some(c) = visit(n, graph, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn imports_run_down_the_layers_only() {
    let (_, upward) = check(&src());
    assert!(
        upward.is_empty(),
        "imports up a layer:\n{}",
        upward.join("\n")
    );
}

#[test]
fn no_module_imports_in_a_circle() {
    let (graph, _) = check(&src());
    assert!(graph.len() > 20, "the graph was read: {graph:?}");
    if let Some(c) = find_cycle(&graph) {
        panic!("modules import each other in a circle: {}", c.join(" -> "));
    }
}

/// The checker itself: it sees paths in `use` trees and expressions, skips comments and
/// strings, flags an upward import and finds a circle.
#[test]
fn the_checker_sees_what_it_must() {
    let text = "use crate::{\n    config::{self, RunConfig},\n    host::sysctl::Sysctls,\n};\n\
                // crate::cmd::x in a comment\nlet s = \"crate::daemon\";\n\
                let x = crate::state::paths::lock(a, b);\n";
    let paths: Vec<String> = crate_paths(text).iter().map(|p| p.join("::")).collect();
    assert_eq!(
        paths,
        [
            "config",
            "config::RunConfig",
            "host::sysctl::Sysctls",
            "state::paths::lock"
        ]
    );
    let dir = std::env::temp_dir().join(format!("sg-layers-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    for (file, text) in [
        ("host/a.rs", "use crate::daemon::b::X;\n"),
        ("daemon/b.rs", "use crate::daemon::c::Y;\n"),
        ("daemon/c.rs", "use crate::daemon::b::Z;\n"),
    ] {
        let p = dir.join(file);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    let (graph, upward) = check(&dir);
    assert_eq!(upward.len(), 1, "{upward:?}");
    assert!(upward[0].contains("crate::daemon::b::X"), "{upward:?}");
    let cycle = find_cycle(&graph).expect("b and c import each other");
    assert!(cycle.contains(&"daemon::b".to_string()) && cycle.contains(&"daemon::c".to_string()));
    fs::remove_dir_all(&dir).unwrap();
}
