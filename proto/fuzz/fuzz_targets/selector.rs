//! Fuzzes the selector grammar: any UTF-8 input either fails to parse with an error, never a
//! panic, or parses to a selector whose canonical form parses back to an equal selector (and is
//! its own canonical form). Matching a parsed selector must not panic either.

#![no_main]

use std::collections::BTreeMap;

use lab_proto::selector::Selector;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let selector = match text.parse::<Selector>() {
        Ok(selector) => selector,
        Err(err) => {
            // Rendering the error must not panic, whatever the input.
            let _ = err.to_string();
            let _ = err.caret();
            return;
        }
    };
    let canonical = selector.to_string();
    let reparsed = match canonical.parse::<Selector>() {
        Ok(reparsed) => reparsed,
        Err(err) => panic!("{text:?} displays as {canonical:?}, which does not parse: {err}"),
    };
    assert_eq!(reparsed, selector, "{text:?} displays as {canonical:?}");
    assert_eq!(
        reparsed.to_string(),
        canonical,
        "display of {text:?} is not a fixed point"
    );

    let labels: BTreeMap<String, String> = [("role", "db"), ("os", "debian"), ("in", "")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let facts = json!({
        "platform": {"os": "debian", "os_version": "12", "cpus": 4},
        "memory": {"total_bytes": 17179869184u64},
        "disks": [{"model": "ssd1", "rotational": false}],
        "load": 1.5,
        "gone": null,
    });
    let _ = selector.matches(&labels, &facts);
    let _ = selector.matches(&BTreeMap::new(), &Value::Null);
});
