//! Tests of the Ansible inventory built from nodes: groups, host variables and names.

use serde_json::json;

use super::*;

fn node(name: &str, labels: &[(&str, &str)], address: &str, facts: Value) -> Node {
    Node {
        name: name.into(),
        online: true,
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        last_seen_unix_ms: 1_700_000_000_000,
        address: address.into(),
        facts_json: if facts.is_null() {
            String::new()
        } else {
            facts.to_string()
        },
        ..Default::default()
    }
}

fn options(facts: &[&str], address: AddressFrom) -> Options {
    let paths: Vec<String> = facts.iter().map(|p| (*p).to_owned()).collect();
    Options {
        facts: parse_fact_paths(&paths).unwrap(),
        address,
    }
}

fn nic_facts() -> Value {
    json!({
        "platform": {"os": "debian", "cpus": 4},
        "hardware": {
            "memory": {"total_bytes": 17179869184u64},
            "nics": [
                {"name": "docker0", "addresses": ["172.17.0.1/16"]},
                {"name": "eth0", "default_route": true,
                 "addresses": ["2001:db8::5/64", "fe80::1/64", "192.168.1.5/24"]}
            ]
        }
    })
}

#[test]
fn group_names_follow_ansibles_rule() {
    assert_eq!(group_name("role", "k3s"), "role_k3s");
    assert_eq!(group_name("os", "debian"), "os_debian");
    assert_eq!(group_name("hypervisor", "pve1"), "hypervisor_pve1");
    assert_eq!(group_name("os-version", "12"), "os_version_12");
    assert_eq!(
        group_name("kubernetes.io/arch", "amd64"),
        "kubernetes_io_arch_amd64"
    );
    assert_eq!(group_name("site", "Zürich 2"), "site_Z_rich_2");
    assert_eq!(group_name("3d", "yes"), "_3d_yes");
    assert_eq!(group_name("flag", ""), "flag_");
}

#[test]
fn list_groups_hosts_by_label_with_all_and_hostvars_under_meta() {
    let nodes = vec![
        node(
            "n1",
            &[
                ("node", "n1"),
                ("hostname", "h1"),
                ("role", "k3s"),
                ("os", "debian"),
                ("status", "online"),
            ],
            "10.0.0.1",
            Value::Null,
        ),
        node(
            "n2",
            &[
                ("node", "n2"),
                ("role", "k3s"),
                ("os", "nixos"),
                ("status", "offline"),
            ],
            "",
            Value::Null,
        ),
        node("n3", &[("node", "n3")], "", Value::Null),
    ];
    let doc = list(&nodes, &options(&[], AddressFrom::Session));
    assert_eq!(doc["role_k3s"], json!({"hosts": ["n1", "n2"]}));
    assert_eq!(doc["os_debian"], json!({"hosts": ["n1"]}));
    assert_eq!(doc["os_nixos"], json!({"hosts": ["n2"]}));
    assert_eq!(doc["status_offline"], json!({"hosts": ["n2"]}));
    assert!(doc.get("node_n1").is_none() && doc.get("hostname_h1").is_none());
    assert_eq!(doc["ungrouped"], json!({"hosts": ["n3"]}));
    assert_eq!(
        doc["all"],
        json!({
            "hosts": ["n1", "n2", "n3"],
            "children": ["os_debian", "os_nixos", "role_k3s", "status_offline", "status_online", "ungrouped"]
        })
    );
    let hostvars = &doc["_meta"]["hostvars"];
    assert_eq!(hostvars["n1"]["ansible_host"], "10.0.0.1");
    assert_eq!(hostvars["n1"]["labfleet_os"], "debian");
    assert_eq!(hostvars["n1"]["labfleet_labels"]["role"], "k3s");
    assert_eq!(hostvars["n1"]["labfleet_last_seen"], "2023-11-14T22:13:20Z");
    assert!(
        hostvars["n2"].get("ansible_host").is_none(),
        "no address known: Ansible uses the host name"
    );
    assert_eq!(hostvars.as_object().unwrap().len(), 3);
}

#[test]
fn no_nodes_make_an_empty_all() {
    let doc = list(&[], &options(&[], AddressFrom::Session));
    assert_eq!(
        doc,
        json!({"_meta": {"hostvars": {}}, "all": {"hosts": [], "children": []}})
    );
}

#[test]
fn the_address_comes_from_the_session_or_the_default_route_interface() {
    let with_both = node("n1", &[], "10.9.9.9", nic_facts());
    let only_facts = node("n2", &[], "", nic_facts());
    let only_session = node("n3", &[], "10.9.9.9", Value::Null);
    let addr = |n: &Node, from| {
        let facts = serde_json::from_str(&n.facts_json).unwrap_or(Value::Null);
        address(n, &facts, from).map(|a| a.to_string())
    };
    assert_eq!(
        addr(&with_both, AddressFrom::Session).as_deref(),
        Some("10.9.9.9")
    );
    assert_eq!(
        addr(&with_both, AddressFrom::Facts).as_deref(),
        Some("192.168.1.5")
    );
    assert_eq!(
        addr(&only_facts, AddressFrom::Session).as_deref(),
        Some("192.168.1.5")
    );
    assert_eq!(
        addr(&only_session, AddressFrom::Facts).as_deref(),
        Some("10.9.9.9")
    );
    let v6_only = json!({"hardware": {"nics": [
        {"name": "eth0", "default_route": true, "addresses": ["fe80::1/64", "2001:db8::5/64"]}
    ]}});
    assert_eq!(
        default_route_address(&v6_only)
            .map(|a| a.to_string())
            .as_deref(),
        Some("2001:db8::5")
    );
    assert_eq!(default_route_address(&json!({"hardware": {}})), None);
}

#[test]
fn chosen_facts_are_nested_as_in_the_document_and_absent_ones_left_out() {
    let n = node("n1", &[], "", nic_facts());
    let o = options(
        &[
            "platform.cpus",
            "facts.hardware.memory.total_bytes",
            "platform.missing",
            "hardware.nics.1.name",
        ],
        AddressFrom::Session,
    );
    let vars = host(&n, &o);
    assert_eq!(
        vars["labfleet_facts"],
        json!({
            "platform": {"cpus": 4},
            "hardware": {"memory": {"total_bytes": 17179869184u64}, "nics": {"1": {"name": "eth0"}}}
        })
    );
    // A shorter path holds the longer one's value whichever comes first.
    for paths in [["platform", "platform.cpus"], ["platform.cpus", "platform"]] {
        let vars = host(&n, &options(&paths, AddressFrom::Session));
        assert_eq!(
            vars["labfleet_facts"],
            json!({"platform": {"os": "debian", "cpus": 4}})
        );
    }
    let without = host(&n, &options(&[], AddressFrom::Session));
    assert!(without.get("labfleet_facts").is_none());
}

#[test]
fn bad_fact_paths_are_refused_naming_the_path() {
    for bad in ["hardware..memory", "facts.", "a=b", "cpus>4", "a,b"] {
        let err = parse_fact_paths(&[bad.to_owned()]).unwrap_err();
        assert!(
            err.contains(&format!("'{bad}'")) && err.contains("--facts"),
            "{bad}: {err}"
        );
    }
    assert_eq!(
        parse_fact_paths(&[" platform.cpus ".into(), String::new()]).unwrap(),
        vec![FactPath(vec!["platform".into(), "cpus".into()])]
    );
}
