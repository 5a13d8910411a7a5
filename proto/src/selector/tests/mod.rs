//! Tests of the selector grammar: parsing, matching and error positions.

use std::collections::BTreeMap;

use serde_json::Value;

use super::*;
use serde_json::json;

fn sel(s: &str) -> Selector {
    s.parse()
        .unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Matches `s` against labels only.
fn on_labels(s: &str, pairs: &[(&str, &str)]) -> bool {
    sel(s).matches(&labels(pairs), &Value::Null)
}

/// Matches `s` against facts only.
fn on_facts(s: &str, facts: &Value) -> bool {
    sel(s).matches(&BTreeMap::new(), facts)
}

/// The position and message of a syntax error.
fn syntax_error(s: &str) -> (usize, String) {
    match s.parse::<Selector>() {
        Err(SelectorError::Syntax {
            position, message, ..
        }) => (position, message),
        other => panic!("{s:?} should be a syntax error, got {other:?}"),
    }
}

fn assert_error(s: &str, position: usize, fragment: &str) {
    let (at, message) = syntax_error(s);
    assert_eq!(at, position, "position for {s:?} ({message})");
    assert!(
        message.contains(fragment),
        "message for {s:?} is {message:?}, expected it to contain {fragment:?}"
    );
    assert!(
        message.starts_with(|c: char| c.is_lowercase() || c == '\''),
        "{message}"
    );
    assert!(!message.ends_with('.'), "{message}");
}

fn facts() -> Value {
    json!({
        "platform": {"os": "debian", "os_version": "12", "arch": "x86_64", "cpus": 4},
        "memory": {"total_bytes": 17179869184u64, "swap_total_bytes": 0},
        "disks": [
            {"model": "ssd1", "rotational": false},
            {"model": "hdd2", "rotational": true},
        ],
        "load": 1.5,
        "temp": -3,
        "big": 18446744073709551615u64,
        "gone": null,
        "empty": "",
    })
}

mod matching;
mod parsing;
