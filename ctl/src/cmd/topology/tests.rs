//! Tests of `labctl topology` output: tree text, DOT and Mermaid.

#![allow(clippy::unwrap_used)]

use lab_proto::topology::{
    CephCluster, Guest, GuestKind, Hypervisor, K3sCluster, NodeRef, Topology,
};

use super::graph::{dot, mermaid};
use super::tree;

fn node(name: &str, online: bool, role: Option<&str>) -> NodeRef {
    NodeRef {
        name: name.into(),
        online,
        k3s_role: role.map(str::to_owned),
    }
}

fn sample() -> Topology {
    Topology {
        hypervisors: vec![Hypervisor {
            node: node("pve1", true, None),
            pve_node: "pve1".into(),
            cluster: Some("homelab".into()),
            version: Some("8.2.4".into()),
            guests: vec![
                Guest {
                    vmid: 100,
                    kind: GuestKind::Qemu,
                    name: Some("vm1".into()),
                    uuid: Some("u".into()),
                    node: Some(node("vm1", true, Some("server"))),
                    ..Default::default()
                },
                Guest {
                    vmid: 101,
                    kind: GuestKind::Lxc,
                    name: Some("evil\u{1b}[31m\"<x>".into()),
                    uuid: Some("v".into()),
                    ..Default::default()
                },
            ],
        }],
        standalone: vec![node("nas", false, None)],
        k3s: vec![K3sCluster {
            id: "abc".into(),
            servers: vec![node("vm1", true, Some("server"))],
            ..Default::default()
        }],
        ceph: vec![CephCluster {
            fsid: "f1".into(),
            health: Some("HEALTH_WARN".into()),
            hosts: vec![node("pve1", true, None)],
            ..Default::default()
        }],
        alerts: vec!["ceph cluster f1 is HEALTH_WARN (hosts 'pve1')".into()],
        ..Default::default()
    }
}

#[test]
fn tree_shows_hosts_guests_nodes_and_alerts_without_terminal_escapes() {
    let text = tree::render(&sample(), false);
    assert!(!text.contains('\u{1b}'), "{text}");
    let want = [
        "pve1 (online) [pve node pve1, cluster homelab, pve 8.2.4]",
        "├─ 100 qemu vm1  → vm1 (online, k3s server)",
        "└─ 101 lxc ",
        "  nas (offline)",
        "k3s cluster abc: servers vm1; agents -",
        "ceph f1: HEALTH_WARN; hosts pve1",
        "! ceph cluster f1 is HEALTH_WARN (hosts 'pve1')",
    ];
    for line in want {
        assert!(text.contains(line), "{line:?} missing in\n{text}");
    }
    assert!(text.contains("no enrolled node\n"), "{text}");
    assert_eq!(
        tree::render(&Topology::default(), false),
        "no nodes have reported facts yet\n"
    );
}

#[test]
fn dot_quotes_names_and_draws_every_link() {
    let text = dot(&sample());
    assert!(text.starts_with("digraph lab {"), "{text}");
    assert!(text.contains(r#""n:pve1" -> "g:pve1:100";"#), "{text}");
    assert!(text.contains(r#""g:pve1:100" -> "n:vm1";"#), "{text}");
    assert!(
        text.contains(r#""n:vm1" -> "k3s:abc" [label="server"];"#),
        "{text}"
    );
    assert!(text.contains(r#"evil [31m\"<x>"#), "{text}");
    assert!(text.contains("color=red"), "the unhealthy ceph: {text}");
    assert!(!text.contains('\u{1b}'));
}

#[test]
fn mermaid_uses_plain_ids_and_escapes_labels() {
    let text = mermaid(&sample());
    assert!(text.starts_with("flowchart TB\n"), "{text}");
    assert!(text.contains("#quot;#lt;x#gt;"), "{text}");
    assert!(text.contains("-->|\"server\"|"), "{text}");
    assert!(text.contains("class "), "faint and alert classes: {text}");
    assert!(!text.contains('\u{1b}'));
}

#[test]
fn own_svg_escapes_text_and_places_every_box() {
    let text = super::svg::own(&sample());
    assert!(text.starts_with("<?xml"), "{text}");
    assert!(text.contains("&quot;&lt;x&gt;"), "{text}");
    assert!(!text.contains('\u{1b}'));
    assert_eq!(text.matches("<rect x=").count(), 7, "{text}");
    assert_eq!(text.matches("<line ").count(), 5, "{text}");
    let empty = super::svg::own(&Topology::default());
    assert!(empty.contains("</svg>"));
}

#[test]
fn under_a_non_hypervisor_is_a_usage_error() {
    let e = super::limit(sample(), Some("nas")).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("'nas' is not a hypervisor"), "{e}");
    assert_eq!(
        super::limit(sample(), Some("pve1"))
            .unwrap()
            .hypervisors
            .len(),
        1
    );
}
