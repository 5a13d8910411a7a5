//! Unit tests of the topology join: guests matched to nodes by SMBIOS UUID (case-insensitive),
//! ambiguous UUIDs reported as problems, k3s/Ceph/PostgreSQL grouping and the alerts.

use super::*;
use crate::topology::summary::{Ceph, GuestFacts, K3s, Pool, Pve};
use lab_proto::topology::GuestKind;

const U1: &str = "5c1d7e2a-8b3f-4a6c-9d0e-1f2a3b4c5d6e";
const U2: &str = "6d2e8f3b-9c4a-4b7d-8e1f-2a3b4c5d6e7f";
const U3: &str = "7e3f9a4c-0d5b-4c8e-9f2a-3b4c5d6e7f80";

fn guest(vmid: u32, uuid: Option<&str>) -> GuestFacts {
    GuestFacts {
        vmid,
        kind: GuestKind::Qemu,
        name: Some(format!("g{vmid}")),
        uuid: uuid.map(str::to_owned),
        template: false,
    }
}

fn host(node: &str, guests: Vec<GuestFacts>) -> Summary {
    Summary {
        proxmox: Some(Pve {
            node: Some(node.into()),
            guests,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn vm(uuid: &str) -> Summary {
    Summary {
        product_uuid: Some(uuid.into()),
        ..Default::default()
    }
}

fn k3s(role: &str, token: &str) -> Option<K3s> {
    Some(K3s {
        role: role.into(),
        server_url: (role == "agent").then(|| "https://vm1:6443".into()),
        token_sha256: Some(token.into()),
    })
}

fn lab() -> BTreeMap<String, Summary> {
    let mut nodes = BTreeMap::new();
    nodes.insert(
        "pve1.lab".into(),
        host(
            "pve1",
            vec![guest(100, Some(U1)), guest(101, Some(U2)), guest(102, None)],
        ),
    );
    nodes.insert(
        "vm1".into(),
        Summary {
            k3s: k3s("server", "abcdef0123456789"),
            ..vm(U1)
        },
    );
    nodes.insert(
        "nas".into(),
        Summary {
            k3s: k3s("agent", "abcdef0123456789"),
            pools: vec![Pool {
                kind: "mergerfs",
                name: "/mnt/pool".into(),
                ..Default::default()
            }],
            ..vm(U3)
        },
    );
    nodes
}

#[test]
fn guests_match_nodes_by_uuid_and_the_rest_is_standalone() {
    let j = join(&lab(), None);
    let t = &j.topology;
    assert_eq!(t.hypervisor_names(), ["pve1"]);
    let guests: Vec<(u32, Option<&str>)> = t.hypervisors[0]
        .guests
        .iter()
        .map(|g| (g.vmid, g.node.as_ref().map(|n| n.name.as_str())))
        .collect();
    assert_eq!(guests, [(100, Some("vm1")), (101, None), (102, None)]);
    assert_eq!(
        t.hypervisors[0].guests[0]
            .node
            .as_ref()
            .unwrap()
            .k3s_role
            .as_deref(),
        Some("server")
    );
    assert_eq!(t.standalone.len(), 1);
    assert_eq!(t.standalone[0].name, "nas");
    assert_eq!(j.hypervisor_of.len(), 1);
    assert_eq!(j.hypervisor_of["vm1"], "pve1");
    assert!(t.problems.is_empty(), "{:?}", t.problems);
    assert_eq!(t.storage.len(), 1);
    assert_eq!(t.storage[0].node, "nas");
}

#[test]
fn k3s_nodes_group_by_token_and_a_control_plane_on_one_host_is_an_alert() {
    let t = join(&lab(), None).topology;
    assert_eq!(t.k3s.len(), 1);
    let c = &t.k3s[0];
    assert_eq!(c.id, "abcdef012345");
    assert_eq!(c.servers[0].name, "vm1");
    assert_eq!(c.agents[0].name, "nas");
    assert_eq!(c.server_urls, ["https://vm1:6443"]);
    assert_eq!(t.alerts.len(), 1, "{:?}", t.alerts);
    assert!(t.alerts[0].contains("runs on 'pve1'"), "{}", t.alerts[0]);

    // a second server on no known host: no alert
    let mut nodes = lab();
    nodes.get_mut("nas").unwrap().k3s = k3s("server", "abcdef0123456789");
    assert!(join(&nodes, None).topology.alerts.is_empty());
}

#[test]
fn two_guests_with_one_uuid_match_nothing_and_are_a_problem() {
    let mut nodes = lab();
    nodes.insert("pve2".into(), host("pve2", vec![guest(200, Some(U1))]));
    let j = join(&nodes, None);
    assert!(j.hypervisor_of.is_empty(), "{:?}", j.hypervisor_of);
    assert_eq!(j.topology.problems.len(), 1, "{:?}", j.topology.problems);
    let p = &j.topology.problems[0];
    assert!(
        p.contains("guest 100 of 'pve1.lab' and guest 200 of 'pve2'"),
        "{p}"
    );
    assert!(j.topology.standalone.iter().any(|n| n.name == "vm1"));
}

#[test]
fn two_nodes_with_one_uuid_match_nothing_and_are_a_problem() {
    let mut nodes = lab();
    nodes.insert("vm1-clone".into(), vm(U1));
    let j = join(&nodes, None);
    assert!(j.hypervisor_of.is_empty());
    let p = &j.topology.problems;
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("nodes 'vm1' and 'vm1-clone'"), "{}", p[0]);
}

#[test]
fn templates_and_the_host_itself_never_match() {
    let mut nodes = BTreeMap::new();
    let mut t = guest(100, Some(U1));
    t.template = true;
    nodes.insert(
        "pve1".into(),
        Summary {
            product_uuid: Some(U2.into()),
            ..host("pve1", vec![t, guest(101, Some(U2))])
        },
    );
    nodes.insert("vm1".into(), vm(U1));
    let j = join(&nodes, None);
    assert!(j.hypervisor_of.is_empty());
    assert!(j.topology.problems.is_empty());
}

#[test]
fn the_coordinators_own_vm_and_an_unhealthy_ceph_are_alerts() {
    let mut nodes = lab();
    for name in ["pve1.lab", "nas"] {
        nodes.get_mut(name).unwrap().ceph = Some(Ceph {
            fsid: "f1".into(),
            health: (name == "nas").then(|| "HEALTH_WARN".into()),
            summary: None,
        });
    }
    let t = join(&nodes, Some(U2)).topology;
    assert_eq!(t.ceph.len(), 1);
    assert_eq!(t.ceph[0].hosts.len(), 2);
    assert_eq!(t.ceph[0].health.as_deref(), Some("HEALTH_WARN"));
    let alerts = t.alerts.join("\n");
    assert!(
        alerts.contains("'pve1' carries the coordinator's own VM (guest 101)"),
        "{alerts}"
    );
    assert!(
        alerts.contains("ceph cluster f1 is HEALTH_WARN (hosts 'nas', 'pve1.lab')"),
        "{alerts}"
    );
}

#[test]
fn standbys_join_the_primary_their_upstream_names() {
    let pg = |primary: bool, upstream: Option<&str>| Pg {
        cluster: "15/main".into(),
        port: Some(5432),
        primary,
        upstream: upstream.map(|h| (h.to_owned(), Some(5432))),
        lag_bytes: None,
    };
    let mut nodes = BTreeMap::new();
    nodes.insert(
        "db1".into(),
        Summary {
            addresses: vec!["10.0.0.5".into()],
            postgres: vec![pg(true, None)],
            ..Default::default()
        },
    );
    nodes.insert(
        "db2".into(),
        Summary {
            postgres: vec![pg(false, Some("10.0.0.5"))],
            ..Default::default()
        },
    );
    nodes.insert(
        "db3".into(),
        Summary {
            postgres: vec![pg(false, Some("elsewhere"))],
            ..Default::default()
        },
    );
    let t = join(&nodes, None).topology;
    assert_eq!(t.postgresql.len(), 2, "{:?}", t.postgresql);
    assert_eq!(t.postgresql[0].primary.as_ref().unwrap().node.name, "db1");
    assert_eq!(t.postgresql[0].standbys[0].node.name, "db2");
    assert_eq!(t.postgresql[1].upstream.as_deref(), Some("elsewhere:5432"));
    assert_eq!(t.postgresql[1].standbys[0].node.name, "db3");
}

#[test]
fn mark_online_reaches_every_node() {
    let mut t = join(&lab(), None).topology;
    mark_online(&mut t, &|_| true);
    let text = serde_json::to_string(&t).unwrap();
    assert!(!text.contains("\"online\":false"), "{text}");
}
