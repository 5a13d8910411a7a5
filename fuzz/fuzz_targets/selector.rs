//! Selectors (`labctl nodes -l`, job specs): parsing never panics; a parsed selector prints in
//! a canonical form that parses to the same selector, and matching it never panics.
#![no_main]

use std::collections::BTreeMap;

use lab_proto::selector::Selector;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(selector) = text.parse::<Selector>() else {
        return;
    };
    let canonical = selector.to_string();
    let again: Selector = canonical
        .parse()
        .unwrap_or_else(|e| panic!("canonical form {canonical:?} of {text:?} does not parse: {e}"));
    assert_eq!(again, selector, "canonical form {canonical:?} of {text:?}");
    let labels = BTreeMap::from([
        ("os".to_owned(), "debian".to_owned()),
        ("role".to_owned(), "storage".to_owned()),
        ("node".to_owned(), "n1".to_owned()),
    ]);
    let facts = serde_json::json!({
        "hardware": {"memory": {"total_bytes": 16e9}, "cpus": 4},
        "os": {"name": "debian", "version": "12"},
        "list": [1, "a"],
    });
    selector.matches(&labels, &facts);
    selector.matches(&BTreeMap::new(), &serde_json::Value::Null);
});
