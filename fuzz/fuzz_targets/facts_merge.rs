//! Fact documents and their merge patches (agent → coordinator): applying any patch to any
//! document never panics, and for documents without nulls (the agent never sends null) the patch
//! that `diff` computes turns the old document into the new one, with equal digests.
#![no_main]

use lab_proto::facts::{diff, digest, merge_patch};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn has_null_member(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.values().any(|x| x.is_null() || has_null_member(x)),
        Value::Array(a) => a.iter().any(has_null_member),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Two JSON documents separated by a NUL byte (or one: then it is patched onto `{}`).
    let (a, b) = text.split_once('\0').unwrap_or(("{}", text));
    let (Ok(old), Ok(new)) = (
        serde_json::from_str::<Value>(a),
        serde_json::from_str::<Value>(b),
    ) else {
        return;
    };
    let mut patched = old.clone();
    merge_patch(&mut patched, &new);
    digest(&patched);
    if has_null_member(&old) || has_null_member(&new) {
        return;
    }
    let mut doc = old.clone();
    if let Some(patch) = diff(&old, &new) {
        merge_patch(&mut doc, &patch);
    }
    assert_eq!(doc, new, "diff then merge_patch of {old} → {new}");
    assert_eq!(digest(&doc), digest(&new));
});
