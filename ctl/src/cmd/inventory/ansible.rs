//! The fleet in Ansible's dynamic inventory script format (pure: nodes in, JSON out).
//!
//! `--list` prints every group with its hosts and, under `_meta.hostvars`, every host's
//! variables, so Ansible never calls the script once per host; `--host NAME` prints one host's
//! variables. Groups come from labels: `key=value` becomes group `key_value`, every character
//! outside `A-Za-z0-9_` replaced by `_` and a leading digit preceded by `_` (Ansible's rule for
//! group names), so `role=k3s` is `role_k3s` and `os-version=12` is `os_version_12`. Labels that
//! would make a group of one host (`node`, `hostname`) make none: the host's name is its own
//! pattern. Two labels that differ only in replaced characters share a group. `all` lists every
//! host and every group; `ungrouped` holds hosts in no other group (Ansible's convention).
//!
//! Host variables: `ansible_host` (see [`AddressFrom`]), `labfleet_online`,
//! `labfleet_last_seen` (RFC 3339, null when never), `labfleet_os`, `labfleet_os_version`,
//! `labfleet_arch` (when known), `labfleet_labels` (every effective label),
//! `labfleet_session_address` (when known), and `labfleet_facts`: the chosen fact paths, nested
//! as in the fact document (`--facts hardware.memory.total_bytes` gives
//! `labfleet_facts.hardware.memory.total_bytes`); a path a node does not have is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use lab_proto::selector::{Operator, Requirement, Selector, FACTS_PREFIX};
use lab_proto::v1::Node;
use serde_json::{json, Map, Value};

/// Labels that name one host each, so they make no group.
const NO_GROUP: [&str; 2] = [lab_proto::labels::NODE, lab_proto::labels::HOSTNAME];

/// Where `ansible_host` comes from; the other source is the fallback when the first has no
/// address for a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AddressFrom {
    /// The address the node's agent last connected to the coordinator from, as the coordinator
    /// saw it: proven to reach the coordinator's network. Wrong when a NAT or proxy sits between
    /// the nodes and the coordinator (every node would show the NAT's address).
    Session,
    /// The node's own address on the interface of its default route, from its facts (IPv4
    /// first, then a global IPv6): right behind a NAT, wrong when that interface is not the one
    /// the operator reaches (a public uplink, a VPN).
    Facts,
}

/// A fact path from `--facts`, as the selector's `facts.` paths are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactPath(Vec<String>);

/// Parses `--facts` paths (`hardware.memory.total_bytes`, with or without `facts.` in front)
/// with the selector's path rule; the error says which one is bad.
pub fn parse_fact_paths(paths: &[String]) -> Result<Vec<FactPath>, String> {
    paths
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .map(|p| {
            let full = if p.starts_with(FACTS_PREFIX) {
                p.to_owned()
            } else {
                format!("{FACTS_PREFIX}{p}")
            };
            let bad = |why: String| {
                format!("--facts: '{p}' is not a fact path ({why}); write paths like hardware.memory.total_bytes, separated by ','")
            };
            let selector: Selector = full.parse().map_err(|e| bad(format!("{e}")))?;
            match selector.requirements() {
                [Requirement::Fact {
                    path,
                    op: Operator::Exists,
                }] => Ok(FactPath(path.clone())),
                _ => Err(bad("only letters, digits, '-', '_' and '/' between dots".into())),
            }
        })
        .collect()
}

/// What goes into the inventory besides each node's name and labels.
#[derive(Debug, Clone)]
pub struct Options {
    /// Fact paths for `labfleet_facts`.
    pub facts: Vec<FactPath>,
    /// Where `ansible_host` comes from.
    pub address: AddressFrom,
}

/// The Ansible group of label `key=value`.
pub fn group_name(key: &str, value: &str) -> String {
    let mut name: String = format!("{key}_{value}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

/// The `--list` document for `nodes`.
pub fn list(nodes: &[Node], options: &Options) -> Value {
    let mut groups: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    let mut ungrouped = Vec::new();
    let mut hostvars = Map::new();
    for node in nodes {
        let mut grouped = false;
        for (key, value) in &node.labels {
            if !NO_GROUP.contains(&key.as_str()) {
                groups
                    .entry(group_name(key, value))
                    .or_default()
                    .insert(&node.name);
                grouped = true;
            }
        }
        if !grouped {
            ungrouped.push(node.name.as_str());
        }
        hostvars.insert(node.name.clone(), Value::Object(host(node, options)));
    }
    let mut doc = Map::new();
    doc.insert("_meta".into(), json!({ "hostvars": hostvars }));
    let mut children: Vec<&str> = groups.keys().map(String::as_str).collect();
    if !ungrouped.is_empty() {
        children.push("ungrouped");
        doc.insert("ungrouped".into(), json!({ "hosts": ungrouped }));
    }
    let all: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    doc.insert("all".into(), json!({ "hosts": all, "children": children }));
    for (name, hosts) in &groups {
        doc.insert(name.clone(), json!({ "hosts": hosts }));
    }
    Value::Object(doc)
}

/// The host variables of `node` (the `--host` document).
pub fn host(node: &Node, options: &Options) -> Map<String, Value> {
    let facts: Value = serde_json::from_str(&node.facts_json).unwrap_or(Value::Null);
    let mut vars = Map::new();
    if let Some(address) = address(node, &facts, options.address) {
        vars.insert("ansible_host".into(), address.to_string().into());
    }
    vars.insert("labfleet_online".into(), node.online.into());
    vars.insert(
        "labfleet_last_seen".into(),
        crate::output::time(node.last_seen_unix_ms).into(),
    );
    for (var, label) in [
        ("labfleet_os", lab_proto::labels::OS),
        ("labfleet_os_version", lab_proto::labels::OS_VERSION),
        ("labfleet_arch", lab_proto::labels::ARCH),
    ] {
        if let Some(value) = node.labels.get(label) {
            vars.insert(var.into(), value.clone().into());
        }
    }
    let labels: BTreeMap<&String, &String> = node.labels.iter().collect();
    vars.insert("labfleet_labels".into(), json!(labels));
    if let Ok(ip) = node.address.parse::<IpAddr>() {
        vars.insert("labfleet_session_address".into(), ip.to_string().into());
    }
    if !options.facts.is_empty() {
        vars.insert(
            "labfleet_facts".into(),
            Value::Object(chosen_facts(&facts, &options.facts)),
        );
    }
    vars
}

/// The values at `paths` of `facts`, nested as in the document; absent paths are left out.
fn chosen_facts(facts: &Value, paths: &[FactPath]) -> Map<String, Value> {
    let mut out = Map::new();
    for FactPath(path) in paths {
        if let Some(value) = lab_proto::selector::lookup(facts, path) {
            insert_at(&mut out, path, value.clone());
        }
    }
    out
}

/// Puts `value` at `path` below `map`, creating objects on the way; when a shorter path already
/// put a whole value there (not an object), that value holds this one and nothing changes.
fn insert_at(map: &mut Map<String, Value>, path: &[String], value: Value) {
    match path {
        [] => {}
        [last] => {
            map.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let next = map
                .entry(first.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(inner) = next {
                insert_at(inner, rest, value);
            }
        }
    }
}

/// The address for `ansible_host`: from the source `from`, else from the other one.
pub fn address(node: &Node, facts: &Value, from: AddressFrom) -> Option<IpAddr> {
    let session = || node.address.parse::<IpAddr>().ok();
    let own = || default_route_address(facts);
    match from {
        AddressFrom::Session => session().or_else(own),
        AddressFrom::Facts => own().or_else(session),
    }
}

/// The node's address on the interface of its default route (`hardware.nics[]` with
/// `default_route`): its first IPv4 address, else its first global IPv6 address (not
/// link-local, which needs an interface to be dialled).
pub fn default_route_address(facts: &Value) -> Option<IpAddr> {
    let nics = facts.pointer("/hardware/nics")?.as_array()?;
    let addresses: Vec<IpAddr> = nics
        .iter()
        .filter(|nic| nic.get("default_route") == Some(&Value::Bool(true)))
        .filter_map(|nic| nic.get("addresses")?.as_array())
        .flatten()
        .filter_map(|a| a.as_str()?.split('/').next()?.parse().ok())
        .collect();
    let v4 = addresses
        .iter()
        .find(|a| matches!(a, IpAddr::V4(v4) if !v4.is_loopback() && !v4.is_link_local()));
    let v6 = addresses
        .iter()
        .find(|a| matches!(a, IpAddr::V6(v6) if !v6.is_loopback() && !v6.is_unicast_link_local()));
    v4.or(v6).copied()
}

#[cfg(test)]
mod tests;
