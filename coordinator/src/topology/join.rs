//! The join: from every node's [`Summary`] to the [`Topology`] and the `hypervisor` label of
//! each guest node. A pure function; ambiguities (two guests or two nodes with one UUID, a
//! standby whose primary could be either of two nodes) leave the link out and are said in
//! `problems`, never a panic.
//!
//! A guest matches the enrolled node whose DMI product UUID equals the guest's `smbios1` UUID
//! (both lower case by now), unless more than one running guest claims that UUID, more than one
//! node reports it, or the node is the host itself. Templates never match: they do not run.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use lab_proto::topology::{
    CephCluster, Guest, Hypervisor, K3sCluster, NodeRef, PgCluster, PgInstance, StoragePool,
    Topology,
};

use super::summary::{Pg, Summary};

/// The join's result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Joined {
    /// The topology, every node shown offline (the reader marks who is online, see
    /// [`mark_online`]).
    pub topology: Topology,
    /// Node name → PVE node name of the host it runs on as a guest.
    pub hypervisor_of: HashMap<String, String>,
}

/// Joins the summaries of all nodes (by name). `own_uuid` is the coordinator's own DMI product
/// UUID, when it could read it: the host carrying that guest is an alert.
pub fn join(nodes: &BTreeMap<String, Summary>, own_uuid: Option<&str>) -> Joined {
    let mut out = Joined::default();
    let t = &mut out.topology;
    let node_ref = |name: &str| NodeRef {
        name: name.to_owned(),
        online: false,
        k3s_role: nodes
            .get(name)
            .and_then(|s| s.k3s.as_ref())
            .map(|k| k.role.clone()),
    };

    let mut by_uuid: HashMap<&str, Vec<&str>> = HashMap::new();
    for (name, s) in nodes {
        if let Some(u) = &s.product_uuid {
            by_uuid.entry(u.as_str()).or_default().push(name);
        }
    }
    let mut claims: HashMap<&str, Vec<(&str, u32)>> = HashMap::new();
    for (name, s) in nodes {
        for g in s.proxmox.iter().flat_map(|p| &p.guests) {
            if let (Some(u), false) = (&g.uuid, g.template) {
                claims.entry(u.as_str()).or_default().push((name, g.vmid));
            }
        }
    }

    let mut matched = BTreeSet::new();
    for (name, s) in nodes {
        let Some(pve) = &s.proxmox else { continue };
        let pve_node = pve.node.clone().unwrap_or_else(|| name.clone());
        let mut guests = Vec::new();
        for g in &pve.guests {
            let mut node = None;
            if let (Some(uuid), false) = (&g.uuid, g.template) {
                let claimants = &claims[uuid.as_str()];
                let inside = by_uuid.get(uuid.as_str()).map_or(&[][..], Vec::as_slice);
                if claimants.len() > 1 {
                    if claimants[0] == (name.as_str(), g.vmid) {
                        let list: Vec<String> = claimants
                            .iter()
                            .map(|(h, id)| format!("guest {id} of '{h}'"))
                            .collect();
                        t.problems.push(format!(
                            "{} have the same smbios1 uuid {uuid}; a node inside cannot be told \
                             apart, so none is matched (give each guest its own uuid)",
                            list.join(" and ")
                        ));
                    }
                } else if inside.len() > 1 {
                    let list: Vec<String> = inside.iter().map(|n| format!("'{n}'")).collect();
                    t.problems.push(format!(
                        "nodes {} report the same DMI product UUID {uuid}, the smbios1 uuid of \
                         guest {} of '{name}'; none is matched to it",
                        list.join(" and "),
                        g.vmid
                    ));
                } else if let Some(inner) = inside.first().filter(|n| **n != name.as_str()) {
                    matched.insert(*inner);
                    out.hypervisor_of
                        .insert((*inner).to_owned(), pve_node.clone());
                    node = Some(node_ref(inner));
                }
                if own_uuid == Some(uuid.as_str()) {
                    t.alerts.push(format!(
                        "'{pve_node}' carries the coordinator's own VM (guest {}); when that \
                         host goes down, the fleet loses its coordinator",
                        g.vmid
                    ));
                }
            }
            guests.push(Guest {
                vmid: g.vmid,
                kind: g.kind,
                name: g.name.clone(),
                template: g.template,
                uuid: g.uuid.clone(),
                node,
            });
        }
        t.hypervisors.push(Hypervisor {
            node: node_ref(name),
            pve_node,
            cluster: pve.cluster.clone(),
            version: pve.version.clone(),
            guests,
        });
    }
    out.hypervisor_of
        .retain(|_, hv| lab_proto::labels::check_value(lab_proto::labels::HYPERVISOR, hv).is_ok());
    t.standalone = nodes
        .iter()
        .filter(|(n, s)| s.proxmox.is_none() && !matched.contains(n.as_str()))
        .map(|(n, _)| node_ref(n))
        .collect();

    t.k3s = k3s_clusters(nodes, &node_ref);
    for c in &t.k3s {
        let hosts: BTreeSet<Option<&String>> = c
            .servers
            .iter()
            .map(|n| out.hypervisor_of.get(&n.name))
            .collect();
        if let [Some(hv)] = hosts.into_iter().collect::<Vec<_>>()[..] {
            let names: Vec<String> = c.servers.iter().map(|n| format!("'{}'", n.name)).collect();
            t.alerts.push(format!(
                "k3s cluster {}: every control-plane node ({}) runs on '{hv}'; when that host \
                 goes down, the cluster has no control plane",
                c.id,
                names.join(", ")
            ));
        }
    }
    t.ceph = ceph_clusters(nodes, &node_ref);
    for c in &t.ceph {
        if let Some(health) = c.health.as_deref().filter(|h| *h != "HEALTH_OK") {
            let names: Vec<String> = c.hosts.iter().map(|n| format!("'{}'", n.name)).collect();
            t.alerts.push(format!(
                "ceph cluster {} is {health} (hosts {})",
                c.fsid,
                names.join(", ")
            ));
        }
    }
    t.postgresql = pg_clusters(nodes, &node_ref, &mut t.problems);
    t.storage = nodes
        .iter()
        .flat_map(|(n, s)| {
            s.pools.iter().map(move |p| StoragePool {
                node: n.clone(),
                kind: p.kind.to_owned(),
                name: p.name.clone(),
                members: p.members.clone(),
                mounted: p.mounted,
            })
        })
        .collect();
    out
}

/// k3s nodes grouped by token hash, else by the server URL they join, else alone.
fn k3s_clusters(
    nodes: &BTreeMap<String, Summary>,
    node_ref: &dyn Fn(&str) -> NodeRef,
) -> Vec<K3sCluster> {
    let mut by_key: BTreeMap<String, K3sCluster> = BTreeMap::new();
    for (name, s) in nodes {
        let Some(k) = &s.k3s else { continue };
        let id = match (&k.token_sha256, &k.server_url) {
            (Some(hash), _) => hash.chars().take(12).collect(),
            (None, Some(url)) => url.clone(),
            (None, None) => name.clone(),
        };
        let c = by_key.entry(id.clone()).or_insert_with(|| K3sCluster {
            id,
            ..Default::default()
        });
        if let Some(url) = &k.server_url {
            if !c.server_urls.contains(url) {
                c.server_urls.push(url.clone());
            }
        }
        match k.role.as_str() {
            "server" => c.servers.push(node_ref(name)),
            _ => c.agents.push(node_ref(name)),
        }
    }
    by_key.into_values().collect()
}

/// Ceph clusters by fsid; the health is the first one a host reported.
fn ceph_clusters(
    nodes: &BTreeMap<String, Summary>,
    node_ref: &dyn Fn(&str) -> NodeRef,
) -> Vec<CephCluster> {
    let mut by_fsid: BTreeMap<&str, CephCluster> = BTreeMap::new();
    for (name, s) in nodes {
        let Some(ceph) = &s.ceph else { continue };
        let c = by_fsid
            .entry(ceph.fsid.as_str())
            .or_insert_with(|| CephCluster {
                fsid: ceph.fsid.clone(),
                ..Default::default()
            });
        if c.health.is_none() {
            c.health = ceph.health.clone();
            c.summary = ceph.summary.clone();
        }
        c.hosts.push(node_ref(name));
    }
    by_fsid.into_values().collect()
}

/// Primaries with the standbys whose upstream (host and port) names them; standbys whose
/// upstream is no enrolled primary are grouped by that upstream.
fn pg_clusters(
    nodes: &BTreeMap<String, Summary>,
    node_ref: &dyn Fn(&str) -> NodeRef,
    problems: &mut Vec<String>,
) -> Vec<PgCluster> {
    let instance = |name: &str, pg: &Pg| PgInstance {
        node: node_ref(name),
        cluster: pg.cluster.clone(),
        port: pg.port,
        lag_bytes: pg.lag_bytes,
    };
    let mut primaries: Vec<(&str, &Summary, &Pg, PgCluster)> = Vec::new();
    for (name, s) in nodes {
        for pg in s.postgres.iter().filter(|p| p.primary) {
            let c = PgCluster {
                primary: Some(instance(name, pg)),
                ..Default::default()
            };
            primaries.push((name, s, pg, c));
        }
    }
    let mut orphans: BTreeMap<String, PgCluster> = BTreeMap::new();
    for (name, s) in nodes {
        for pg in s.postgres.iter().filter(|p| !p.primary) {
            let Some((host, port)) = &pg.upstream else {
                continue;
            };
            let port = port.unwrap_or(5432);
            let local =
                host.starts_with('/') || ["localhost", "127.0.0.1", "::1"].contains(&host.as_str());
            let candidates: Vec<usize> = primaries
                .iter()
                .enumerate()
                .filter(|(_, (pname, ps, ppg, _))| {
                    ppg.port.unwrap_or(5432) == port
                        && if local {
                            *pname == name.as_str()
                        } else {
                            *pname == host.as_str()
                                || ps.hostname.as_deref() == Some(host.as_str())
                                || ps.addresses.iter().any(|a| a == host)
                        }
                })
                .map(|(i, _)| i)
                .collect();
            if candidates.len() > 1 {
                problems.push(format!(
                    "the upstream {host}:{port} of standby {} on '{name}' matches more than one \
                     primary; it is shown without one",
                    pg.cluster
                ));
            }
            match candidates[..] {
                [i] => primaries[i].3.standbys.push(instance(name, pg)),
                _ => {
                    let key = format!("{host}:{port}");
                    orphans
                        .entry(key.clone())
                        .or_insert_with(|| PgCluster {
                            upstream: Some(key),
                            ..Default::default()
                        })
                        .standbys
                        .push(instance(name, pg));
                }
            }
        }
    }
    primaries
        .into_iter()
        .map(|(.., c)| c)
        .chain(orphans.into_values())
        .collect()
}

/// Marks the nodes `online` says have a live session.
pub fn mark_online(t: &mut Topology, online: &dyn Fn(&str) -> bool) {
    let mut mark = |n: &mut NodeRef| n.online = online(&n.name);
    for h in &mut t.hypervisors {
        mark(&mut h.node);
        h.guests
            .iter_mut()
            .filter_map(|g| g.node.as_mut())
            .for_each(&mut mark);
    }
    t.standalone.iter_mut().for_each(&mut mark);
    for c in &mut t.k3s {
        c.servers
            .iter_mut()
            .chain(&mut c.agents)
            .for_each(&mut mark);
    }
    for c in &mut t.ceph {
        c.hosts.iter_mut().for_each(&mut mark);
    }
    for c in &mut t.postgresql {
        c.primary
            .iter_mut()
            .chain(&mut c.standbys)
            .for_each(|i| mark(&mut i.node));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "join_tests.rs"]
mod tests;
