//! The README renders as written: code fences are balanced, every heading in the source is a
//! heading once rendered (an unclosed fence turns the rest of the file into code), and the
//! metrics table lists every metric family the metrics endpoint defines. (That the endpoint
//! serves exactly these is checked against a running instance in the lab's `observe` test.)

use std::collections::BTreeSet;
use std::path::Path;

use pulldown_cmark::{Event, Parser, Tag, TagEnd};

fn repo_file(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Headings of the source, found line by line outside fenced blocks; panics on an unbalanced
/// fence, naming the line.
fn source_headings(text: &str) -> Vec<String> {
    let mut open: Option<usize> = None;
    let mut headings = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let fence = line.trim_start().starts_with("```");
        match (open, fence) {
            (None, true) => open = Some(n + 1),
            (Some(at), true) => {
                let info = line.trim_start().trim_start_matches('`').trim();
                assert!(
                    info.is_empty(),
                    "line {}: a fence with an info string ({info}) inside the block opened on \
                     line {at}: a closing fence is missing",
                    n + 1
                );
                open = None;
            }
            (None, false) if line.starts_with('#') => {
                headings.push(line.trim_start_matches('#').trim().to_string());
            }
            _ => {}
        }
    }
    assert!(
        open.is_none(),
        "the fence opened on line {} is never closed",
        open.unwrap()
    );
    headings
}

/// Headings as rendered, and the text of every table cell.
fn rendered(text: &str) -> (Vec<String>, Vec<String>) {
    let (mut headings, mut cells) = (Vec::new(), Vec::new());
    let mut current: Option<String> = None;
    for event in Parser::new_ext(text, pulldown_cmark::Options::ENABLE_TABLES) {
        match event {
            Event::Start(Tag::Heading { .. } | Tag::TableCell) => current = Some(String::new()),
            Event::Text(t) | Event::Code(t) => {
                if let Some(c) = current.as_mut() {
                    c.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => headings.extend(current.take()),
            Event::End(TagEnd::TableCell) => cells.extend(current.take()),
            _ => {}
        }
    }
    (headings, cells)
}

#[test]
fn fences_are_balanced_and_every_heading_renders_as_one() {
    let text = repo_file("README.md");
    let source = source_headings(&text);
    let (headings, _) = rendered(&text);
    assert!(source.len() > 10, "{source:?}");
    assert_eq!(headings, source, "headings in the source vs. as rendered");
}

#[test]
fn every_metric_family_is_in_the_metrics_table() {
    let (_, cells) = rendered(&repo_file("README.md"));
    let table: BTreeSet<&str> = cells.iter().map(|c| c.trim()).collect();
    let code = repo_file("synguard/src/daemon/exposition.rs");
    let mut families = BTreeSet::new();
    for piece in code.split('"').skip(1).step_by(2) {
        if piece.starts_with("synguard_")
            && piece.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            families.insert(piece);
        }
    }
    assert!(families.len() > 10, "{families:?}");
    for f in &families {
        assert!(table.contains(f), "the README's metrics table misses {f}");
    }
}

#[test]
fn an_unclosed_fence_is_caught() {
    let text = "# a\n```sh\nx\n```\n```\ncode\n## b\n";
    let r = std::panic::catch_unwind(|| source_headings(text));
    assert!(r.is_err());
    let (headings, _) = rendered(text);
    assert_eq!(headings, ["a"], "## b renders as code");
}
