//! The inventory as operators see it: a node's effective labels (derived from its facts, then
//! its agent's config, then token and operator labels, later ones winning) and selection of
//! nodes by a selector. Jobs resolve their targets through the same [`select`].

use std::collections::BTreeMap;

use lab_proto::selector::Selector;
use lab_proto::store::v1::{FactsRecord, NodeRecord};
use serde_json::Value;

use crate::store::{Store, StoreError};

/// Labels derived from facts, and the fact path each comes from.
pub const DERIVED_LABELS: [(&str, &str); 5] = [
    ("os", "/platform/os"),
    ("os-version", "/platform/os_version"),
    ("arch", "/platform/arch"),
    ("virt", "/platform/virtualization"),
    ("hostname", "/platform/hostname"),
];

/// One node with its facts and effective labels.
#[derive(Debug, Clone)]
pub struct NodeEntry {
    /// The stored node.
    pub record: NodeRecord,
    /// Its latest facts, if any.
    pub facts: Option<FactsRecord>,
    /// The facts as a JSON document (`Null` when none).
    pub facts_doc: Value,
    /// Effective labels.
    pub labels: BTreeMap<String, String>,
}

/// Labels derived from a fact document.
pub fn derived_labels(facts: &Value) -> BTreeMap<String, String> {
    DERIVED_LABELS
        .iter()
        .filter_map(|(label, path)| {
            let v = facts.pointer(path)?;
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some(((*label).to_owned(), text))
        })
        .collect()
}

/// Derived (including `node`, the node's name), then agent-config, then token/operator labels;
/// later sources win.
pub fn effective_labels(record: &NodeRecord, facts: &Value) -> BTreeMap<String, String> {
    let mut labels = derived_labels(facts);
    labels.insert("node".into(), record.name.clone());
    labels.extend(record.agent_labels.clone());
    labels.extend(record.labels.clone());
    labels
}

/// Builds the entry of one stored node.
pub fn entry(store: &Store, record: NodeRecord) -> Result<NodeEntry, StoreError> {
    let facts = store.facts(&record.name)?;
    let facts_doc = facts
        .as_ref()
        .and_then(|f| serde_json::from_str(&f.json).ok())
        .unwrap_or(Value::Null);
    let labels = effective_labels(&record, &facts_doc);
    Ok(NodeEntry {
        record,
        facts,
        facts_doc,
        labels,
    })
}

/// Every node the selector matches, by name.
pub fn select(store: &Store, selector: &Selector) -> Result<Vec<NodeEntry>, StoreError> {
    let mut out = Vec::new();
    for record in store.nodes()? {
        let e = entry(store, record)?;
        if selector.matches(&e.labels, &e.facts_doc) {
            out.push(e);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn later_sources_win_and_derived_labels_come_from_facts() {
        let facts = json!({"platform": {"os": "debian", "os_version": "12", "arch": "x86_64",
                           "virtualization": "kvm", "hostname": "nas", "cpus": 4}});
        let record = NodeRecord {
            name: "nas".into(),
            agent_labels: [
                ("role".into(), "storage".into()),
                ("os".into(), "custom".into()),
            ]
            .into(),
            labels: [("role".into(), "k3s".into())].into(),
            ..Default::default()
        };
        let labels = effective_labels(&record, &facts);
        assert_eq!(labels["os"], "custom");
        assert_eq!(labels["os-version"], "12");
        assert_eq!(labels["virt"], "kvm");
        assert_eq!(labels["role"], "k3s");
        assert_eq!(labels["hostname"], "nas");
        assert_eq!(labels["node"], "nas");
    }

    #[test]
    fn no_facts_no_derived_labels() {
        assert!(derived_labels(&Value::Null).is_empty());
    }
}
