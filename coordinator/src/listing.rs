//! What node listings read and send of fact documents, and node counts. A listing of many
//! nodes reads only each document's `platform` object (stored beside the document when facts
//! arrive, see [`platform_json`]) when that is enough — the derived labels come from it — and
//! sends only the fact paths a caller asks for; [`Counts`] tallies nodes for `CountNodes`.
//!
//! Pure functions over documents and entries; it must not read the store itself (the
//! inventory does).

use std::collections::BTreeMap;

use lab_proto::selector::{Requirement, Selector};
use lab_proto::v1::{CountNodesResponse, NodeGroup, NodeGroups};
use serde_json::{Map, Value};

/// The top-level key of the facts the derived labels and the node tables read.
const PLATFORM: &str = "platform";
/// Most `fact_paths` in one `ListNodes` request.
pub const MAX_FACT_PATHS: usize = 32;
/// Longest `fact_paths` entry, bytes.
pub const MAX_FACT_PATH_BYTES: usize = 256;
/// Most `group_by` entries in one `CountNodes` request.
pub const MAX_GROUPINGS: usize = 8;
/// Most label keys in one grouping.
pub const MAX_GROUP_KEYS: usize = 4;
/// Most combinations one grouping answers (the rest are summed in `other_nodes`).
pub const MAX_GROUPS: usize = 100;

/// How much of a node's fact document an answer needs read and parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactsNeed {
    /// The whole document.
    Whole,
    /// Its `platform` object only: enough for the derived labels, `facts.platform.*` terms and
    /// `/platform…` paths.
    Platform,
}

/// The stored form of `doc`'s `platform` object (`null` when it has none), kept beside the
/// document so listings parse a few hundred bytes instead of the whole document.
pub fn platform_json(doc: &Value) -> String {
    doc.get(PLATFORM).unwrap_or(&Value::Null).to_string()
}

/// The document a listing works on: `{"platform": …}` from the stored platform part when
/// `need` allows and the record has one (records written before it existed do not), else the
/// whole document. `Null` when the JSON does not parse.
pub fn facts_doc(json: &str, platform_json: &str, need: FactsNeed) -> Value {
    if need == FactsNeed::Platform && !platform_json.is_empty() {
        if let Ok(platform) = serde_json::from_str::<Value>(platform_json) {
            let mut doc = Map::new();
            if !platform.is_null() {
                doc.insert(PLATFORM.into(), platform);
            }
            return Value::Object(doc);
        }
    }
    serde_json::from_str(json).unwrap_or(Value::Null)
}

/// Whether the JSON pointer `path` stays inside the platform object.
fn in_platform(path: &str) -> bool {
    path.strip_prefix("/platform")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// What a listing by `selector` that sends the facts at `keep` (`None`: whole documents)
/// needs: the platform part alone unless a `facts.*` term or a kept path lies outside it.
pub fn facts_need(selector: &Selector, keep: Option<&[String]>) -> FactsNeed {
    let terms_in_platform = selector.requirements().iter().all(|r| match r {
        Requirement::Fact { path, .. } => path.first().is_some_and(|p| p == PLATFORM),
        Requirement::Label { .. } => true,
    });
    let kept_in_platform = keep.is_some_and(|paths| paths.iter().all(|p| in_platform(p)));
    if terms_in_platform && kept_in_platform {
        FactsNeed::Platform
    } else {
        FactsNeed::Whole
    }
}

/// Refuses fact paths that are not JSON pointers or are too many or too long.
pub fn check_fact_paths(paths: &[String]) -> Result<(), String> {
    if paths.len() > MAX_FACT_PATHS {
        return Err(format!(
            "{} fact paths asked for; at most {MAX_FACT_PATHS}",
            paths.len()
        ));
    }
    for p in paths {
        if p.len() > MAX_FACT_PATH_BYTES {
            return Err(format!(
                "fact path '{}…' is longer than {MAX_FACT_PATH_BYTES} bytes",
                p.chars().take(40).collect::<String>()
            ));
        }
        if !p.starts_with('/') {
            return Err(format!(
                "fact path '{p}' is not a JSON pointer; write it like '/platform/cpus'"
            ));
        }
    }
    Ok(())
}

/// The facts of `doc` at the JSON pointers `paths`, each at its place in an otherwise empty
/// object (arrays along a path become objects keyed by index). Pure.
pub fn keep_facts(doc: &Value, paths: &[String]) -> Value {
    let mut out = Value::Object(Map::new());
    for path in paths {
        if let Some(value) = doc.pointer(path) {
            let tokens: Vec<String> = path
                .get(1..)
                .unwrap_or_default()
                .split('/')
                .map(|t| t.replace("~1", "/").replace("~0", "~"))
                .collect();
            put(&mut out, &tokens, value.clone());
        }
    }
    out
}

/// Sets `value` at `tokens` under `at`, making objects along the way.
fn put(at: &mut Value, tokens: &[String], value: Value) {
    let Some((first, rest)) = tokens.split_first() else {
        *at = value;
        return;
    };
    if !at.is_object() {
        *at = Value::Object(Map::new());
    }
    if let Value::Object(map) = at {
        put(map.entry(first.clone()).or_insert(Value::Null), rest, value);
    }
}

/// Splits and checks `CountNodes` groupings ("os,os-version" → ["os", "os-version"]).
pub fn parse_groupings(group_by: &[String]) -> Result<Vec<Vec<String>>, String> {
    if group_by.len() > MAX_GROUPINGS {
        return Err(format!(
            "{} groupings asked for; at most {MAX_GROUPINGS}",
            group_by.len()
        ));
    }
    group_by
        .iter()
        .map(|g| {
            let keys: Vec<String> = g.split(',').map(|k| k.trim().to_owned()).collect();
            if keys.len() > MAX_GROUP_KEYS {
                return Err(format!(
                    "grouping '{g}' has {} keys; at most {MAX_GROUP_KEYS}",
                    keys.len()
                ));
            }
            for k in &keys {
                lab_proto::labels::check_key(k).map_err(|e| format!("grouping '{g}': {e}"))?;
            }
            Ok(keys)
        })
        .collect()
}

/// Nodes counted by status, by label value combinations and by agent version.
#[derive(Debug, Default)]
pub struct Counts {
    groupings: Vec<Vec<String>>,
    total: u32,
    online: u32,
    offline: u32,
    revoked: u32,
    groups: Vec<BTreeMap<Vec<String>, u32>>,
    agent_versions: BTreeMap<String, u32>,
}

impl Counts {
    /// Empty counts for these groupings.
    pub fn new(groupings: Vec<Vec<String>>) -> Self {
        Counts {
            groups: vec![BTreeMap::new(); groupings.len()],
            groupings,
            ..Default::default()
        }
    }

    /// Counts one node with its effective labels and `status` (a derived label value).
    pub fn add(&mut self, labels: &BTreeMap<String, String>, agent_version: &str) {
        self.total += 1;
        match labels.get(lab_proto::labels::STATUS).map(String::as_str) {
            Some(lab_proto::labels::STATUS_ONLINE) => self.online += 1,
            Some(lab_proto::labels::STATUS_REVOKED) => self.revoked += 1,
            _ => self.offline += 1,
        }
        for (keys, counts) in self.groupings.iter().zip(&mut self.groups) {
            let values = keys
                .iter()
                .map(|k| labels.get(k).cloned().unwrap_or_default())
                .collect();
            *counts.entry(values).or_insert(0) += 1;
        }
        *self
            .agent_versions
            .entry(agent_version.to_owned())
            .or_insert(0) += 1;
    }

    /// The answer: combinations most nodes first (ties by values), at most [`MAX_GROUPS`]
    /// each.
    pub fn into_response(self) -> CountNodesResponse {
        let groups = self
            .groupings
            .into_iter()
            .zip(self.groups)
            .map(|(keys, counts)| {
                let mut all: Vec<(Vec<String>, u32)> = counts.into_iter().collect();
                all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                let other_nodes = all.iter().skip(MAX_GROUPS).map(|(_, n)| n).sum();
                all.truncate(MAX_GROUPS);
                NodeGroups {
                    keys,
                    groups: all
                        .into_iter()
                        .map(|(values, nodes)| NodeGroup { values, nodes })
                        .collect(),
                    other_nodes,
                }
            })
            .collect();
        CountNodesResponse {
            total: self.total,
            online: self.online,
            offline: self.offline,
            revoked: self.revoked,
            groups,
            agent_versions: self.agent_versions.into_iter().collect(),
        }
    }
}

pub mod order;

#[cfg(test)]
mod tests;
