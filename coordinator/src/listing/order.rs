//! Sorted node listings (`ListNodesRequest.order_by`): the accepted orders, each node's sort
//! value, and the page of a sorted listing. A table of 10,000 nodes asks for one page in the
//! order it shows; the coordinator sorts light keys of every match and builds the full node
//! only for the rows it sends.
//!
//! Pure; the inventory scans the store and hands the values in.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use lab_proto::labels;
use lab_proto::store::v1::NodeRecord;
use serde_json::Value;

/// The accepted `order_by` values, as an error message lists them.
pub const ORDERS: &str =
    "name, status, os, last_seen, agent_version, cpus, memory, label:KEY (any label key)";

/// The prefix of an order by a label's value.
const LABEL_PREFIX: &str = "label:";

/// What a sorted listing sorts by (ties always by name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderBy {
    /// Node name.
    Name,
    /// Revoked, then offline, then online: the nodes that need a look first.
    Status,
    /// The `os` label, then `os-version`; nodes without facts first.
    Os,
    /// Last contact (sessions' view, else the stored time); never seen first.
    LastSeen,
    /// Agent version from the last hello, as text.
    AgentVersion,
    /// Facts `/platform/cpus`.
    Cpus,
    /// Facts `/platform/memory_total_bytes`.
    Memory,
    /// The value of a label; nodes without it first.
    Label(String),
}

/// One node's place in a sorted listing; a missing value sorts before any value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SortValue {
    /// No value (or every node the same, as for [`OrderBy::Name`]).
    Missing,
    /// A number.
    Num(i64),
    /// A text.
    Text(String),
}

impl OrderBy {
    /// The order named `text` (empty: by name); an unknown one is an error naming the field
    /// and the accepted values.
    pub fn parse(text: &str) -> Result<OrderBy, String> {
        Ok(match text {
            "" | "name" => OrderBy::Name,
            "status" => OrderBy::Status,
            "os" => OrderBy::Os,
            "last_seen" => OrderBy::LastSeen,
            "agent_version" => OrderBy::AgentVersion,
            "cpus" => OrderBy::Cpus,
            "memory" => OrderBy::Memory,
            _ => match text.strip_prefix(LABEL_PREFIX) {
                Some(key) => {
                    labels::check_key(key).map_err(|e| format!("order_by '{text}': {e}"))?;
                    OrderBy::Label(key.to_owned())
                }
                None => {
                    return Err(format!(
                        "order_by '{text}' is not a known order; use one of: {ORDERS}"
                    ))
                }
            },
        })
    }

    /// Whether the sort values need the nodes' facts (derived labels or platform facts), given
    /// the label keys that are derived from facts.
    pub fn needs_facts(&self, derived: &[&str]) -> bool {
        match self {
            OrderBy::Os | OrderBy::Cpus | OrderBy::Memory => true,
            OrderBy::Label(key) => derived.contains(&key.as_str()),
            OrderBy::Name | OrderBy::Status | OrderBy::LastSeen | OrderBy::AgentVersion => false,
        }
    }

    /// A node's sort value from its record, effective labels, facts (`Null` when not read)
    /// and last contact.
    pub fn value(
        &self,
        record: &NodeRecord,
        labels: &BTreeMap<String, String>,
        facts: &Value,
        last_seen_ms: i64,
    ) -> SortValue {
        let number = |path: &str| {
            facts
                .pointer(path)
                .and_then(Value::as_i64)
                .map_or(SortValue::Missing, SortValue::Num)
        };
        match self {
            OrderBy::Name => SortValue::Missing,
            OrderBy::Status => {
                SortValue::Num(match labels.get(labels::STATUS).map(String::as_str) {
                    Some(labels::STATUS_REVOKED) => 0,
                    Some(labels::STATUS_ONLINE) => 2,
                    _ => 1,
                })
            }
            OrderBy::Os => match (labels.get(labels::OS), labels.get(labels::OS_VERSION)) {
                (Some(os), Some(version)) => SortValue::Text(format!("{os} {version}")),
                (Some(os), None) => SortValue::Text(os.clone()),
                _ => SortValue::Missing,
            },
            OrderBy::LastSeen => SortValue::Num(last_seen_ms),
            OrderBy::AgentVersion => SortValue::Text(record.agent_version.clone()),
            OrderBy::Cpus => number("/platform/cpus"),
            OrderBy::Memory => number("/platform/memory_total_bytes"),
            OrderBy::Label(key) => labels
                .get(key)
                .map_or(SortValue::Missing, |v| SortValue::Text(v.clone())),
        }
    }
}

/// The items from `offset` on, at most `limit`, of `rows` sorted by value then name (all of it
/// reversed when `descending`).
pub fn page_of<T>(
    mut rows: Vec<(SortValue, String, T)>,
    descending: bool,
    offset: usize,
    limit: usize,
) -> Vec<T> {
    let by = |a: &(SortValue, String, T), b: &(SortValue, String, T)| -> Ordering {
        let o = a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1));
        if descending {
            o.reverse()
        } else {
            o
        }
    };
    let end = offset.saturating_add(limit).min(rows.len());
    if offset >= end {
        return Vec::new();
    }
    // Only the rows up to the page's end need their final order.
    if end < rows.len() {
        rows.select_nth_unstable_by(end - 1, by);
        rows.truncate(end);
    }
    rows.sort_unstable_by(by);
    rows.drain(offset..).map(|(_, _, item)| item).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(
        name: &str,
        status: &str,
        cpus: Option<i64>,
    ) -> (NodeRecord, BTreeMap<String, String>, Value) {
        let record = NodeRecord {
            name: name.into(),
            ..Default::default()
        };
        let labels = [(labels::STATUS.to_owned(), status.to_owned())].into();
        let facts = match cpus {
            Some(n) => serde_json::json!({"platform": {"cpus": n}}),
            None => Value::Null,
        };
        (record, labels, facts)
    }

    fn sorted(order: &str, descending: bool, offset: usize, limit: usize) -> Vec<String> {
        let order = OrderBy::parse(order).unwrap();
        let nodes = [
            node("d", "online", Some(2)),
            node("b", "offline", Some(8)),
            node("a", "online", None),
            node("c", "revoked", Some(2)),
            node("e", "offline", Some(4)),
        ];
        let rows = nodes
            .iter()
            .map(|(r, l, f)| (order.value(r, l, f, 0), r.name.clone(), r.name.clone()))
            .collect();
        page_of(rows, descending, offset, limit)
    }

    #[test]
    fn orders_page_and_break_ties_by_name() {
        assert_eq!(sorted("name", false, 0, 10), ["a", "b", "c", "d", "e"]);
        assert_eq!(sorted("", false, 1, 2), ["b", "c"]);
        assert_eq!(sorted("name", true, 0, 2), ["e", "d"]);
        // Revoked, then offline, then online.
        assert_eq!(sorted("status", false, 0, 10), ["c", "b", "e", "a", "d"]);
        assert_eq!(sorted("status", false, 3, 10), ["a", "d"]);
        assert_eq!(sorted("status", true, 0, 1), ["d"]);
        // Missing first; equal values by name.
        assert_eq!(sorted("cpus", false, 0, 10), ["a", "c", "d", "e", "b"]);
        assert_eq!(sorted("label:status", false, 0, 2), ["b", "e"]);
        assert!(sorted("name", false, 5, 10).is_empty());
        assert!(sorted("name", false, usize::MAX, usize::MAX).is_empty());
    }

    #[test]
    fn unknown_orders_name_the_field_and_the_accepted_values() {
        let e = OrderBy::parse("nmae").unwrap_err();
        assert!(e.contains("order_by 'nmae'") && e.contains(ORDERS), "{e}");
        let e = OrderBy::parse("label:a b").unwrap_err();
        assert!(e.starts_with("order_by 'label:a b': "), "{e}");
        assert_eq!(
            OrderBy::parse("label:role"),
            Ok(OrderBy::Label("role".into()))
        );
        assert!(OrderBy::parse("label:os").unwrap().needs_facts(&["os"]));
        assert!(!OrderBy::parse("status").unwrap().needs_facts(&["os"]));
    }
}
