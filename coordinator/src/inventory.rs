//! The inventory as operators see it: a node's effective labels and selection of nodes by a
//! selector. Jobs resolve their targets through the same [`select`].
//!
//! Effective labels are the agent's config labels, then token and operator labels (later ones
//! winning), then the labels the coordinator derives: `node=<name>` from the certificate,
//! `status=online|offline|revoked` from the record and whether the node has a live session now
//! (the caller says, see [`Live`]), `os`, `hostname`, … from the facts, and `hypervisor=<pve node>`
//! from the lab's topology (the caller says, see [`Live`]). Derived labels always win, and reserved keys
//! ([`lab_proto::labels::RESERVED_KEYS`]) from any other source are left out, so a node cannot
//! claim another node's identity label.

use std::collections::BTreeMap;

use lab_proto::labels;
use lab_proto::selector::{Requirement, Selector};
use lab_proto::store::v1::{FactsRecord, NodeRecord};
use serde_json::Value;

use crate::listing::order::{self, OrderBy};
use crate::listing::{self, FactsNeed};
use crate::store::{Store, StoreError};

/// Labels derived from facts, and the fact path each comes from.
pub const DERIVED_LABELS: [(&str, &str); 5] = [
    (labels::OS, "/platform/os"),
    (labels::OS_VERSION, "/platform/os_version"),
    (labels::ARCH, "/platform/arch"),
    (labels::VIRT, "/platform/virtualization"),
    (labels::HOSTNAME, "/platform/hostname"),
];

/// What the coordinator knows of a node now, beyond its records: whether it has a live session
/// (the derived `status` label) and which Proxmox host it runs on as a guest (the derived
/// `hypervisor` label). The coordinator answers from its sessions and topology index; tests
/// pass a closure saying who is online (on no hypervisor).
pub trait Live: Sync {
    /// Whether `node` has a live session now.
    fn online(&self, node: &str) -> bool;
    /// The PVE node name of the host `node` runs on as a guest, if any.
    fn hypervisor(&self, node: &str) -> Option<String>;
}

impl<F: Fn(&str) -> bool + Sync> Live for F {
    fn online(&self, node: &str) -> bool {
        self(node)
    }

    fn hypervisor(&self, _node: &str) -> Option<String> {
        None
    }
}

/// A [`Live`] lent to the inventory's functions.
pub type Online<'a> = &'a dyn Live;

/// The derived `status` label of a node: revoked, else online or offline.
pub fn status(record: &NodeRecord, online: bool) -> &'static str {
    if record.revoked {
        labels::STATUS_REVOKED
    } else if online {
        labels::STATUS_ONLINE
    } else {
        labels::STATUS_OFFLINE
    }
}

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

/// The derived labels of a fact document, each with its value or why it is left out (a value
/// that is not a scalar is not a label; one that breaks the value rule is refused).
fn derived_values(
    facts: &Value,
) -> impl Iterator<Item = (&'static str, Result<String, String>)> + '_ {
    DERIVED_LABELS.iter().filter_map(|(label, path)| {
        let text = match facts.pointer(path)? {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return None,
        };
        let checked = labels::check_value(label, &text)
            .map(|()| text)
            .map_err(|e| e.to_string());
        Some((*label, checked))
    })
}

/// Labels derived from a fact document. A value with control, direction-changing or invisible
/// characters, or too long for a label, is left out (see [`invalid_derived_labels`]).
pub fn derived_labels(facts: &Value) -> BTreeMap<String, String> {
    derived_values(facts)
        .filter_map(|(label, v)| Some((label.to_owned(), v.ok()?)))
        .collect()
}

/// The derived labels [`derived_labels`] leaves out of `facts`, with the reason, for logging
/// when facts arrive.
pub fn invalid_derived_labels(facts: &Value) -> Vec<String> {
    derived_values(facts).filter_map(|(_, v)| v.err()).collect()
}

/// Agent-config, then token/operator labels (later sources win), without reserved keys; then
/// the derived labels (`node`, the node's name; `status` and `hypervisor` from `live`; those
/// from facts), which always win.
pub fn effective_labels(
    record: &NodeRecord,
    facts: &Value,
    live: Online,
) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = record
        .agent_labels
        .iter()
        .chain(record.labels.iter())
        .filter(|(k, _)| !labels::is_reserved(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.extend(derived_labels(facts));
    out.insert(labels::NODE.into(), record.name.clone());
    out.insert(
        labels::STATUS.into(),
        status(record, live.online(&record.name)).into(),
    );
    if let Some(hv) = live.hypervisor(&record.name) {
        out.insert(labels::HYPERVISOR.into(), hv);
    }
    out
}

/// Builds the entry of one stored node, with its whole fact document.
pub fn entry(store: &Store, record: NodeRecord, online: Online) -> Result<NodeEntry, StoreError> {
    entry_with(store, record, online, FactsNeed::Whole)
}

/// Builds the entry of one stored node, reading as much of its facts as `need` says
/// (`facts_doc` is then only the platform part; the labels are the same either way).
pub fn entry_with(
    store: &Store,
    record: NodeRecord,
    online: Online,
    need: FactsNeed,
) -> Result<NodeEntry, StoreError> {
    let facts = store.facts(&record.name)?;
    let facts_doc = facts
        .as_ref()
        .map(|f| listing::facts_doc(&f.json, &f.platform_json, need))
        .unwrap_or(Value::Null);
    let labels = effective_labels(&record, &facts_doc, online);
    Ok(NodeEntry {
        record,
        facts,
        facts_doc,
        labels,
    })
}

/// Every node the selector matches, by name.
pub fn select(
    store: &Store,
    selector: &Selector,
    online: Online,
) -> Result<Vec<NodeEntry>, StoreError> {
    select_from(store, selector, "", online, FactsNeed::Whole)?.collect()
}

/// The nodes the selector matches, by name, from the name `start` on (inclusive); each entry is
/// built (facts read and parsed, as much as `need` says) only when the iterator reaches it, so
/// a page reads no more node records and fact documents than it needs. `need` must cover the
/// selector's `facts.*` terms (see [`listing::facts_need`]).
pub fn select_from<'a>(
    store: &'a Store,
    selector: &'a Selector,
    start: &str,
    online: Online<'a>,
    need: FactsNeed,
) -> Result<impl Iterator<Item = Result<NodeEntry, StoreError>> + 'a, StoreError> {
    Ok(store
        .nodes_from(start, usize::MAX)?
        .into_iter()
        .filter_map(
            move |record| match entry_with(store, record, online, need) {
                Ok(e) => selector.matches(&e.labels, &e.facts_doc).then_some(Ok(e)),
                Err(err) => Some(Err(err)),
            },
        ))
}

/// One page of a sorted listing and the counts of the whole listing.
#[derive(Debug)]
pub struct SortedPage {
    /// The page's nodes, in order, built as [`entry_with`] builds them.
    pub entries: Vec<NodeEntry>,
    /// Nodes the selector matches.
    pub total: u32,
    /// Of those, the ones with a live session now.
    pub online: u32,
}

/// How a sorted listing reads and orders: by what, reversed or not, and which rows.
#[derive(Debug, Clone)]
pub struct SortedRequest<'a> {
    /// What the rows are sorted by.
    pub order: &'a OrderBy,
    /// Reverse order.
    pub descending: bool,
    /// Matches skipped before the page.
    pub offset: usize,
    /// Most rows in the page.
    pub limit: usize,
    /// How much of the facts the page's entries read (see [`listing::facts_need`]).
    pub need: FactsNeed,
}

/// The page `request` asks for of the nodes `selector` matches, sorted, with the counts of all
/// matches. Every node's record is read, its facts only when the selector or the order need
/// them and then only the stored platform part when that is enough; full entries are built for
/// the page's rows alone. `last_seen` gives a node's last contact.
pub fn select_sorted(
    store: &Store,
    selector: &Selector,
    online: Online,
    last_seen: &dyn Fn(&NodeRecord) -> i64,
    request: &SortedRequest,
) -> Result<SortedPage, StoreError> {
    let derived: Vec<&str> = DERIVED_LABELS.iter().map(|(label, _)| *label).collect();
    let with_facts = needs_facts(selector) || request.order.needs_facts(&derived);
    let scan_need = listing::facts_need(selector, Some(&[]));
    let (mut total, mut live) = (0u32, 0u32);
    let mut rows = Vec::new();
    for record in store.nodes()? {
        let facts = if with_facts {
            scan_facts(store, &record.name, scan_need)?
        } else {
            Value::Null
        };
        let labels = effective_labels(&record, &facts, online);
        if !selector.is_empty() && !selector.matches(&labels, &facts) {
            continue;
        }
        total += 1;
        if labels.get(labels::STATUS).map(String::as_str) == Some(labels::STATUS_ONLINE) {
            live += 1;
        }
        let value = request
            .order
            .value(&record, &labels, &facts, last_seen(&record));
        rows.push((value, record.name.clone(), record));
    }
    let page = order::page_of(rows, request.descending, request.offset, request.limit);
    let entries = page
        .into_iter()
        .map(|record| entry_with(store, record, online, request.need))
        .collect::<Result<_, _>>()?;
    Ok(SortedPage {
        entries,
        total,
        online: live,
    })
}

/// A node's facts for a scan of every node: the stored platform part alone when `need` allows
/// and the record has it (the document is not even copied), else the whole document.
fn scan_facts(store: &Store, node: &str, need: FactsNeed) -> Result<Value, StoreError> {
    if need == FactsNeed::Platform {
        match store.facts_brief(node)? {
            None => return Ok(Value::Null),
            Some(brief) if !brief.platform_json.is_empty() => {
                return Ok(listing::facts_doc("", &brief.platform_json, need));
            }
            Some(_) => {}
        }
    }
    Ok(store
        .facts(node)?
        .map(|f| listing::facts_doc(&f.json, &f.platform_json, need))
        .unwrap_or(Value::Null))
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
pub fn select_names(
    store: &Store,
    selector: &Selector,
    online: Online,
) -> Result<Vec<String>, StoreError> {
    let with_facts = needs_facts(selector);
    let need = listing::facts_need(selector, Some(&[]));
    let mut out = Vec::new();
    for record in store.nodes()? {
        if record.revoked {
            continue;
        }
        let matched = if with_facts {
            let e = entry_with(store, record, online, need)?;
            selector
                .matches(&e.labels, &e.facts_doc)
                .then_some(e.record.name)
        } else {
            let labels = || effective_labels(&record, &Value::Null, online);
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
                ("tier".into(), "gold".into()),
            ]
            .into(),
            labels: [("role".into(), "k3s".into())].into(),
            ..Default::default()
        };
        let labels = effective_labels(&record, &facts, &|_: &str| true);
        assert_eq!(labels["status"], "online");
        assert_eq!(
            effective_labels(&record, &facts, &|_: &str| false)["status"],
            "offline"
        );
        assert!(!labels.contains_key("hypervisor"));
        assert_eq!(labels["os"], "debian");
        assert_eq!(labels["os-version"], "12");
        assert_eq!(labels["virt"], "kvm");
        assert_eq!(labels["role"], "k3s");
        assert_eq!(labels["tier"], "gold");
        assert_eq!(labels["hostname"], "nas");
        assert_eq!(labels["node"], "nas");
    }

    #[test]
    fn reserved_keys_from_agent_token_or_operator_never_take_effect() {
        // A rogue agent (or a record written before the keys were reserved) naming another
        // node's identity, and facts that lack some derived labels.
        let record = NodeRecord {
            name: "n1".into(),
            agent_labels: [
                ("node".into(), "n2".into()),
                ("os".into(), "custom".into()),
                ("hostname".into(), "n2".into()),
            ]
            .into(),
            labels: [
                ("node".into(), "n3".into()),
                ("arch".into(), "arm".into()),
                ("status".into(), "online".into()),
            ]
            .into(),
            ..Default::default()
        };
        for facts in [Value::Null, json!({"platform": {"os": "debian"}})] {
            let labels = effective_labels(&record, &facts, &|_: &str| false);
            assert_eq!(labels["node"], "n1", "{facts}");
            assert_eq!(labels["status"], "offline", "{facts}");
            assert!(!labels.contains_key("hostname"), "{labels:?}");
            assert!(!labels.contains_key("arch"), "{labels:?}");
            assert_ne!(labels.get("os").map(String::as_str), Some("custom"));
        }
        let sel: Selector = "node=n2".parse().unwrap();
        assert!(!sel.matches(
            &effective_labels(&record, &Value::Null, &|_: &str| false),
            &Value::Null
        ));
        let sel: Selector = "status=online".parse().unwrap();
        assert!(!sel.matches(
            &effective_labels(&record, &Value::Null, &|_: &str| false),
            &Value::Null
        ));
    }

    #[test]
    fn every_reserved_key_is_derived_and_every_derived_key_reserved() {
        let mut derived: Vec<&str> = DERIVED_LABELS.iter().map(|(k, _)| *k).collect();
        derived.push(labels::NODE);
        derived.push(labels::STATUS);
        derived.push(labels::HYPERVISOR);
        derived.sort_unstable();
        let mut reserved = labels::RESERVED_KEYS.to_vec();
        reserved.sort_unstable();
        assert_eq!(derived, reserved);
    }

    #[test]
    fn derived_values_with_terminal_or_invisible_characters_are_left_out() {
        let facts = json!({"platform": {"hostname": "evil\u{1b}]0;pwned\u{7}",
                           "os": "debian\u{202E}", "os_version": "12\u{200B}",
                           "arch": "x86_64", "virtualization": "kvm"}});
        let labels = derived_labels(&facts);
        assert_eq!(labels.keys().collect::<Vec<_>>(), ["arch", "virt"]);
        let why = invalid_derived_labels(&facts);
        assert_eq!(why.len(), 3, "{why:?}");
        assert!(why.iter().any(|w| w.contains("'hostname'")), "{why:?}");
        assert!(invalid_derived_labels(&json!({"platform": {"os": "debian"}})).is_empty());
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
        let online = |name: &str| name == "a";
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
            ("status=online", vec!["a"]),
            ("status!=online", vec!["b"]),
            ("role=db,status=offline", vec![]),
        ] {
            let selector: Selector = text.parse().unwrap();
            let names = select_names(&store, &selector, &online).unwrap();
            let full: Vec<String> = select(&store, &selector, &online)
                .unwrap()
                .into_iter()
                .filter(|e| !e.record.revoked)
                .map(|e| e.record.name)
                .collect();
            assert_eq!(names, want, "{text}");
            assert_eq!(names, full, "{text}");
        }
    }

    /// Node `b` runs on pve1; nobody is online.
    struct OnPve1;

    impl Live for OnPve1 {
        fn online(&self, _node: &str) -> bool {
            false
        }

        fn hypervisor(&self, node: &str) -> Option<String> {
            (node == "b").then(|| "pve1".into())
        }
    }

    #[tokio::test]
    async fn the_hypervisor_label_selects_without_facts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for name in ["a", "b"] {
            let mut record = NodeRecord {
                name: name.into(),
                ..Default::default()
            };
            // a label someone set before the key was reserved never takes effect
            record.labels.insert("hypervisor".into(), "pve9".into());
            store.put_node(record).await.unwrap();
        }
        let selector: Selector = "hypervisor=pve1".parse().unwrap();
        assert!(!needs_facts(&selector));
        assert_eq!(select_names(&store, &selector, &OnPve1).unwrap(), ["b"]);
        let all = select(&store, &Selector::everything(), &OnPve1).unwrap();
        assert_eq!(all[0].labels.get("hypervisor"), None);
        assert_eq!(all[1].labels["hypervisor"], "pve1");
        let selector: Selector = "!hypervisor".parse().unwrap();
        assert_eq!(select_names(&store, &selector, &OnPve1).unwrap(), ["a"]);
    }

    #[test]
    fn no_facts_no_derived_labels() {
        assert!(derived_labels(&Value::Null).is_empty());
    }
}
