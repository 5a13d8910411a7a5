//! The inventory as operators see it: a node's effective labels (derived from its facts, then
//! its agent's config, then token and operator labels, later ones winning) and selection of
//! nodes by a selector. Jobs resolve their targets through the same [`select`].

use std::collections::BTreeMap;

use lab_proto::selector::{Requirement, Selector};
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

/// Whether `selector` can depend on a node's facts: a `facts.*` term, or a label that may be
/// derived from facts (see [`DERIVED_LABELS`]).
pub fn needs_facts(selector: &Selector) -> bool {
    selector.requirements().iter().any(|r| match r {
        Requirement::Fact { .. } => true,
        Requirement::Label { key, .. } => DERIVED_LABELS.iter().any(|(label, _)| label == key),
    })
}

/// The names of the nodes `selector` matches that are not revoked, by name. Facts are read and
/// parsed only when the selector can depend on them ([`needs_facts`]); otherwise the node
/// records alone decide (a job to 10,000 nodes no longer parses 10,000 fact documents).
pub fn select_names(store: &Store, selector: &Selector) -> Result<Vec<String>, StoreError> {
    let with_facts = needs_facts(selector);
    let mut out = Vec::new();
    for record in store.nodes()? {
        if record.revoked {
            continue;
        }
        let matched = if with_facts {
            let e = entry(store, record)?;
            selector
                .matches(&e.labels, &e.facts_doc)
                .then_some(e.record.name)
        } else {
            let labels = || effective_labels(&record, &Value::Null);
            (selector.is_empty() || selector.matches(&labels(), &Value::Null))
                .then_some(record.name)
        };
        out.extend(matched);
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
    fn facts_are_needed_only_for_fact_terms_and_derived_labels() {
        let needs = |s: &str| needs_facts(&s.parse::<Selector>().unwrap());
        assert!(!needs(""));
        assert!(!needs("role=db,node in (a,b),!gpu"));
        assert!(needs("facts.memory.total_bytes>=16e9"));
        assert!(needs("os=debian"));
        assert!(needs("role=db,!arch"));
    }

    #[tokio::test]
    async fn select_names_agrees_with_select_on_every_kind_of_selector() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let node = |name: &str, role: &str, revoked: bool| NodeRecord {
            name: name.into(),
            labels: [("role".into(), role.into())].into(),
            revoked,
            ..Default::default()
        };
        store.put_node(node("a", "db", false)).await.unwrap();
        store.put_node(node("b", "web", false)).await.unwrap();
        store.put_node(node("c", "db", true)).await.unwrap();
        let facts = json!({"platform": {"os": "debian"}, "memory": {"total_bytes": 32}});
        let rec = FactsRecord {
            json: facts.to_string(),
            ..Default::default()
        };
        store.put_facts("a", rec).await.unwrap();
        for (text, want) in [
            ("", vec!["a", "b"]),
            ("role=db", vec!["a"]),
            ("role!=db", vec!["b"]),
            ("os=debian", vec!["a"]),
            ("!os", vec!["b"]),
            ("facts.memory.total_bytes>=16", vec!["a"]),
            ("node in (b,c)", vec!["b"]),
        ] {
            let selector: Selector = text.parse().unwrap();
            let names = select_names(&store, &selector).unwrap();
            let full: Vec<String> = select(&store, &selector)
                .unwrap()
                .into_iter()
                .filter(|e| !e.record.revoked)
                .map(|e| e.record.name)
                .collect();
            assert_eq!(names, want, "{text}");
            assert_eq!(names, full, "{text}");
        }
    }

    #[test]
    fn no_facts_no_derived_labels() {
        assert!(derived_labels(&Value::Null).is_empty());
    }
}
