//! The rules both ends apply to fact documents: the digest, and JSON merge patches (RFC 7386)
//! by which an agent reports only what changed.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// SHA-256 (hex) of the canonical JSON of `doc` (serde_json's maps are sorted by key).
pub fn digest(doc: &Value) -> String {
    hex::encode(Sha256::digest(doc.to_string().as_bytes()))
}

/// Applies an RFC 7386 merge patch to `target`.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    if let Value::Object(map) = target {
        for (key, value) in patch_map {
            if value.is_null() {
                map.remove(key);
            } else {
                merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// The merge patch that turns `old` into `new` (`None` when they are equal).
pub fn diff(old: &Value, new: &Value) -> Option<Value> {
    if identical(old, new) {
        return None;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut patch = serde_json::Map::new();
            for key in a.keys() {
                if !b.contains_key(key) {
                    patch.insert(key.clone(), Value::Null);
                }
            }
            for (key, value) in b {
                let changed = match a.get(key) {
                    Some(old_value) => diff(old_value, value),
                    None => Some(value.clone()),
                };
                if let Some(change) = changed {
                    patch.insert(key.clone(), change);
                }
            }
            Some(Value::Object(patch))
        }
        _ => Some(new.clone()),
    }
}

/// Equal as the digest sees them: numbers by their JSON text, so `0.0` and `-0.0` (equal as
/// floats, different in the serialized document the digest is computed from) differ.
fn identical(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.to_string() == y.to_string(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| identical(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| identical(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Found by the facts_merge fuzz target: `0.0` and `-0.0` are equal as values, so no patch
    /// was made, but their digests differ.
    #[test]
    fn a_sign_change_of_zero_is_a_change() {
        let old: Value = serde_json::from_str(r#"{"load": 0.0, "x": 4e-1111100002}"#).unwrap();
        let new: Value = serde_json::from_str(r#"{"load": -0.0, "x": -0}"#).unwrap();
        let patch = diff(&old, &new).expect("a patch");
        let mut doc = old.clone();
        merge_patch(&mut doc, &patch);
        assert_eq!(digest(&doc), digest(&new));
        assert_eq!(diff(&new, &new.clone()), None);
    }

    #[test]
    fn rfc7386_examples() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}}));
        let mut doc = json!({"a": [1]});
        merge_patch(&mut doc, &json!({"a": {"b": "c"}}));
        assert_eq!(doc, json!({"a": {"b": "c"}}));
    }

    #[test]
    fn diff_then_patch_gives_the_new_document() {
        let old = json!({"mem": {"total": 1, "free": 2}, "gone": true, "list": [1, 2]});
        let new = json!({"mem": {"total": 1, "free": 3}, "list": [2], "added": {"x": 1}});
        let patch = diff(&old, &new).unwrap();
        assert_eq!(
            patch,
            json!({"mem": {"free": 3}, "gone": null, "list": [2], "added": {"x": 1}})
        );
        let mut doc = old.clone();
        merge_patch(&mut doc, &patch);
        assert_eq!(doc, new);
        assert_eq!(digest(&doc), digest(&new));
        assert!(diff(&new, &new).is_none());
    }

    #[test]
    fn digest_ignores_key_order_in_source_text() {
        let a: Value = serde_json::from_str(r#"{"a":1,"b":2}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"b":2,"a":1}"#).unwrap();
        assert_eq!(digest(&a), digest(&b));
    }
}
