//! The lab's topology as the coordinator joins it from facts and `labctl topology` shows it:
//! Proxmox hosts → guests → the enrolled node inside each guest, the nodes on no hypervisor,
//! k3s clusters, Ceph clusters, PostgreSQL clusters and storage pools, plus the problems and
//! alerts the join found.
//!
//! It travels as one JSON document (like facts), not as a protobuf tree: the model grows with
//! the facts, and scripts read `labctl topology -o json` as it is. Unknown fields are ignored
//! and missing ones take their default, so an older labctl reads a newer coordinator's answer.

use serde::{Deserialize, Serialize};

/// The whole picture.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Topology {
    /// Enrolled Proxmox hosts, by node name, each with its guests.
    pub hypervisors: Vec<Hypervisor>,
    /// Enrolled nodes that are neither a hypervisor nor matched to a guest, by name.
    pub standalone: Vec<NodeRef>,
    /// k3s clusters, by id.
    pub k3s: Vec<K3sCluster>,
    /// Ceph clusters, by fsid.
    pub ceph: Vec<CephCluster>,
    /// PostgreSQL clusters (a primary and its standbys), by primary.
    pub postgresql: Vec<PgCluster>,
    /// Storage pools (MergerFS, SnapRAID), by node.
    pub storage: Vec<StoragePool>,
    /// What the graph makes obvious and an operator should look at.
    pub alerts: Vec<String>,
    /// What the join could not decide (two guests or two nodes with one UUID, …).
    pub problems: Vec<String>,
}

/// An enrolled node as the topology shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeRef {
    /// Enrolled node name.
    pub name: String,
    /// Has a live session now.
    pub online: bool,
    /// Its k3s role (`server` or `agent`), when it runs k3s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k3s_role: Option<String>,
}

/// A Proxmox VE host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Hypervisor {
    /// The enrolled node.
    pub node: NodeRef,
    /// The PVE node name (what `hypervisor=` selects).
    pub pve_node: String,
    /// The PVE cluster, when the host is in one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// pve-manager version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Its guests, by VMID.
    pub guests: Vec<Guest>,
}

/// What kind of guest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestKind {
    /// A QEMU/KVM virtual machine.
    #[default]
    Qemu,
    /// An LXC container.
    Lxc,
}

impl GuestKind {
    /// `qemu` or `lxc`.
    pub fn as_str(self) -> &'static str {
        match self {
            GuestKind::Qemu => "qemu",
            GuestKind::Lxc => "lxc",
        }
    }
}

/// One guest of a hypervisor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Guest {
    /// VMID.
    pub vmid: u32,
    /// VM or container.
    pub kind: GuestKind,
    /// Its name in PVE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A template, not a guest that runs.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub template: bool,
    /// Its `smbios1` UUID (lower case), when it has a valid one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// The enrolled node running inside it (DMI product UUID = `uuid`); `None` when no enrolled
    /// node matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeRef>,
}

/// A k3s cluster: nodes sharing a token (or, without one, a server URL).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct K3sCluster {
    /// The first 12 hex digits of the token hash, else the server URL, else the node's name.
    pub id: String,
    /// Server URLs its agents and joining servers name.
    pub server_urls: Vec<String>,
    /// Control-plane nodes, by name.
    pub servers: Vec<NodeRef>,
    /// Workers, by name.
    pub agents: Vec<NodeRef>,
}

/// A Ceph cluster and the nodes configured as its clients or hosts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CephCluster {
    /// `fsid`.
    pub fsid: String,
    /// `HEALTH_OK`, `HEALTH_WARN`, `HEALTH_ERR`, as a node's `ceph status` last said; absent when
    /// no node could ask.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// Monitors, OSDs up/in/total, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Nodes with this cluster's `ceph.conf`, by name.
    pub hosts: Vec<NodeRef>,
}

/// A PostgreSQL cluster: a primary and the standbys streaming from it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PgCluster {
    /// The primary; `None` when standbys stream from a server that is not an enrolled node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<PgInstance>,
    /// Where the standbys stream from when the primary is not known (`host:port`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Its standbys.
    pub standbys: Vec<PgInstance>,
}

/// One PostgreSQL server (one data directory on one node).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PgInstance {
    /// The node it runs on.
    pub node: NodeRef,
    /// Debian's `<version>/<name>`, else the data directory.
    pub cluster: String,
    /// TCP port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Replay lag behind the primary in bytes, for a standby that reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_bytes: Option<u64>,
}

/// A storage pool on one node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoragePool {
    /// The node.
    pub node: String,
    /// `mergerfs` or `snapraid`.
    pub kind: String,
    /// The pool's mount point (MergerFS) or `snapraid`.
    pub name: String,
    /// Its branches (MergerFS) or data and parity disks (SnapRAID).
    pub members: Vec<String>,
    /// Whether it is mounted (MergerFS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mounted: Option<bool>,
}

/// A `--under` name that is not a hypervisor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{name}' is not a hypervisor in the topology; hypervisors: {known}")]
pub struct NotAHypervisor {
    /// The name asked for.
    pub name: String,
    /// The hypervisors there are, comma-separated (or `none`).
    pub known: String,
}

impl Hypervisor {
    /// Whether `name` names this host: its enrolled node name or its PVE node name.
    pub fn is_named(&self, name: &str) -> bool {
        self.node.name == name || self.pve_node == name
    }

    /// Enrolled nodes in its guests, by VMID.
    pub fn guest_nodes(&self) -> impl Iterator<Item = &NodeRef> {
        self.guests.iter().filter_map(|g| g.node.as_ref())
    }
}

impl Topology {
    /// The PVE node names of the hypervisors, in order.
    pub fn hypervisor_names(&self) -> Vec<&str> {
        self.hypervisors
            .iter()
            .map(|h| h.pve_node.as_str())
            .collect()
    }

    /// The subtree of one hypervisor (by enrolled or PVE node name): the host, its guests, and
    /// the clusters, pools, alerts and problems that involve the host or a node in its guests.
    pub fn under(&self, host: &str) -> Result<Topology, NotAHypervisor> {
        let Some(hv) = self.hypervisors.iter().find(|h| h.is_named(host)) else {
            let names = self.hypervisor_names();
            return Err(NotAHypervisor {
                name: host.chars().take(80).collect(),
                known: if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                },
            });
        };
        let mut inside: std::collections::BTreeSet<&str> =
            hv.guest_nodes().map(|n| n.name.as_str()).collect();
        inside.insert(hv.node.name.as_str());
        let has = |n: &NodeRef| inside.contains(n.name.as_str());
        let mentions = |text: &String| {
            inside.iter().any(|n| text.contains(&format!("'{n}'")))
                || text.contains(&format!("'{}'", hv.pve_node))
        };
        Ok(Topology {
            hypervisors: vec![hv.clone()],
            standalone: Vec::new(),
            k3s: self
                .k3s
                .iter()
                .filter(|c| c.servers.iter().chain(&c.agents).any(has))
                .cloned()
                .collect(),
            ceph: self
                .ceph
                .iter()
                .filter(|c| c.hosts.iter().any(has))
                .cloned()
                .collect(),
            postgresql: self
                .postgresql
                .iter()
                .filter(|c| c.primary.iter().chain(&c.standbys).any(|i| has(&i.node)))
                .cloned()
                .collect(),
            storage: self
                .storage
                .iter()
                .filter(|p| inside.contains(p.node.as_str()))
                .cloned()
                .collect(),
            alerts: self
                .alerts
                .iter()
                .filter(|a| mentions(a))
                .cloned()
                .collect(),
            problems: self
                .problems
                .iter()
                .filter(|p| mentions(p))
                .cloned()
                .collect(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn node(name: &str) -> NodeRef {
        NodeRef {
            name: name.into(),
            online: true,
            k3s_role: None,
        }
    }

    fn sample() -> Topology {
        let guest = |vmid, n: Option<&str>| Guest {
            vmid,
            node: n.map(node),
            ..Default::default()
        };
        Topology {
            hypervisors: vec![
                Hypervisor {
                    node: node("pve1.lab"),
                    pve_node: "pve1".into(),
                    guests: vec![guest(100, Some("vm1")), guest(101, None)],
                    ..Default::default()
                },
                Hypervisor {
                    node: node("pve2"),
                    pve_node: "pve2".into(),
                    guests: vec![guest(200, Some("vm2"))],
                    ..Default::default()
                },
            ],
            standalone: vec![node("nas")],
            k3s: vec![
                K3sCluster {
                    id: "a".into(),
                    servers: vec![node("vm1")],
                    ..Default::default()
                },
                K3sCluster {
                    id: "b".into(),
                    servers: vec![node("vm2")],
                    ..Default::default()
                },
            ],
            storage: vec![StoragePool {
                node: "nas".into(),
                ..Default::default()
            }],
            alerts: vec!["'pve1' carries every control-plane node".into()],
            problems: vec!["guests of 'pve2' share a uuid".into()],
            ..Default::default()
        }
    }

    #[test]
    fn under_keeps_one_host_and_what_involves_it() {
        let t = sample();
        for name in ["pve1", "pve1.lab"] {
            let sub = t.under(name).unwrap();
            assert_eq!(sub.hypervisor_names(), ["pve1"]);
            assert!(sub.standalone.is_empty() && sub.storage.is_empty());
            assert_eq!(sub.k3s.len(), 1);
            assert_eq!(sub.k3s[0].id, "a");
            assert_eq!(sub.alerts.len(), 1);
            assert!(sub.problems.is_empty());
        }
    }

    #[test]
    fn under_a_name_that_is_no_hypervisor_says_which_there_are() {
        let e = sample().under("nas").unwrap_err();
        assert_eq!(
            e.to_string(),
            "'nas' is not a hypervisor in the topology; hypervisors: pve1, pve2"
        );
        let e = Topology::default().under("x").unwrap_err();
        assert!(e.to_string().ends_with("hypervisors: none"), "{e}");
    }

    #[test]
    fn json_round_trips_and_tolerates_unknown_and_missing_fields() {
        let t = sample();
        let text = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Topology>(&text).unwrap(), t);
        let old: Topology =
            serde_json::from_str(r#"{"hypervisors":[{"pve_node":"p","future":1}]}"#).unwrap();
        assert_eq!(old.hypervisors[0].pve_node, "p");
    }
}
