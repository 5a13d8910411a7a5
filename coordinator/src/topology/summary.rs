//! What the topology needs of one node's fact document, read once when its facts arrive: the
//! DMI product UUID, Proxmox node and guests, k3s, Ceph, PostgreSQL and storage pools. UUIDs are
//! lower-cased here (PVE keeps what the operator typed; the kernel reports lower case).
//!
//! Reading is lenient: a missing or odd-typed field is an absent value, never an error (the
//! agent already reports what it could not read in `collector_errors`).

use lab_proto::topology::GuestKind;
use serde_json::Value;

/// The topology-relevant part of one node's facts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// `hardware.dmi.product_uuid`, lower case, when it looks like a UUID.
    pub product_uuid: Option<String>,
    /// `platform.hostname`.
    pub hostname: Option<String>,
    /// IP addresses of its interfaces, without prefix length.
    pub addresses: Vec<String>,
    /// Proxmox VE, when the node is a PVE host.
    pub proxmox: Option<Pve>,
    /// k3s, when it has a role.
    pub k3s: Option<K3s>,
    /// Ceph client configuration.
    pub ceph: Option<Ceph>,
    /// PostgreSQL clusters that know their role.
    pub postgres: Vec<Pg>,
    /// MergerFS pools and SnapRAID arrays.
    pub pools: Vec<Pool>,
}

/// A PVE host's facts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pve {
    /// PVE node name.
    pub node: Option<String>,
    /// PVE cluster name.
    pub cluster: Option<String>,
    /// pve-manager version.
    pub version: Option<String>,
    /// Guests, by VMID.
    pub guests: Vec<GuestFacts>,
}

/// One guest in a PVE host's facts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GuestFacts {
    /// VMID.
    pub vmid: u32,
    /// VM or container.
    pub kind: GuestKind,
    /// Its name.
    pub name: Option<String>,
    /// `smbios1` UUID, lower case.
    pub uuid: Option<String>,
    /// A template.
    pub template: bool,
}

/// k3s facts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct K3s {
    /// `server` or `agent`.
    pub role: String,
    /// The server it joins.
    pub server_url: Option<String>,
    /// SHA-256 of the token's secret part.
    pub token_sha256: Option<String>,
}

/// Ceph facts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ceph {
    /// Cluster id.
    pub fsid: String,
    /// Health from `ceph status`.
    pub health: Option<String>,
    /// Monitors and OSDs, when `ceph status` answered.
    pub summary: Option<String>,
}

/// A PostgreSQL cluster that answered with its role.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pg {
    /// `<version>/<name>` or the data directory.
    pub cluster: String,
    /// Port.
    pub port: Option<u16>,
    /// A primary (else a standby).
    pub primary: bool,
    /// A standby's upstream host and port.
    pub upstream: Option<(String, Option<u16>)>,
    /// A standby's replay lag in bytes.
    pub lag_bytes: Option<u64>,
}

/// A storage pool.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pool {
    /// `mergerfs` or `snapraid`.
    pub kind: &'static str,
    /// Mount point or `snapraid`.
    pub name: String,
    /// Branches or disks.
    pub members: Vec<String>,
    /// Mounted (MergerFS).
    pub mounted: Option<bool>,
}

fn text(v: &Value, path: &str) -> Option<String> {
    v.pointer(path)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn items<'a>(v: &'a Value, path: &str) -> impl Iterator<Item = &'a Value> {
    v.pointer(path)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// A UUID in lower case, when `text` is one (`8-4-4-4-12` hex digits).
pub fn normalise_uuid(text: &str) -> Option<String> {
    let ok = text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    ok.then(|| text.to_ascii_lowercase())
}

impl Summary {
    /// Reads the summary from a fact document (`Null` gives the empty summary).
    pub fn from_facts(facts: &Value) -> Summary {
        Summary {
            product_uuid: text(facts, "/hardware/dmi/product_uuid")
                .and_then(|u| normalise_uuid(&u)),
            hostname: text(facts, "/platform/hostname"),
            addresses: items(facts, "/hardware/nics")
                .flat_map(|n| items(n, "/addresses"))
                .filter_map(Value::as_str)
                .map(|a| a.split('/').next().unwrap_or(a).to_owned())
                .collect(),
            proxmox: facts.get("proxmox").filter(|p| p.is_object()).map(pve),
            k3s: facts.pointer("/containers/k3s").and_then(k3s),
            ceph: text(facts, "/storage/ceph/fsid").map(|fsid| Ceph {
                fsid,
                health: text(facts, "/storage/ceph/status/health"),
                summary: facts.pointer("/storage/ceph/status").map(ceph_summary),
            }),
            postgres: items(facts, "/postgresql/clusters")
                .filter_map(pg)
                .collect(),
            pools: pools(facts),
        }
    }
}

fn pve(p: &Value) -> Pve {
    Pve {
        node: text(p, "/node"),
        cluster: text(p, "/cluster"),
        version: text(p, "/version"),
        guests: items(p, "/guests")
            .filter_map(|g| {
                Some(GuestFacts {
                    vmid: u32::try_from(g.get("vmid")?.as_u64()?).ok()?,
                    kind: match g.get("type").and_then(Value::as_str) {
                        Some("lxc") => GuestKind::Lxc,
                        _ => GuestKind::Qemu,
                    },
                    name: text(g, "/name"),
                    uuid: text(g, "/smbios_uuid").and_then(|u| normalise_uuid(&u)),
                    template: g.get("template").and_then(Value::as_bool) == Some(true),
                })
            })
            .collect(),
    }
}

fn k3s(k: &Value) -> Option<K3s> {
    Some(K3s {
        role: text(k, "/role")?,
        server_url: text(k, "/server_url"),
        token_sha256: text(k, "/token_sha256"),
    })
}

fn ceph_summary(s: &Value) -> String {
    let n = |key: &str| s.get(key).and_then(Value::as_u64).unwrap_or(0);
    format!(
        "{} mons, {}/{}/{} OSDs up/in/total",
        n("mons"),
        n("osds_up"),
        n("osds_in"),
        n("osds")
    )
}

fn pg(c: &Value) -> Option<Pg> {
    let role = text(c, "/role")?;
    let upstream = c.get("upstream").filter(|u| u.is_object());
    Some(Pg {
        cluster: text(c, "/name").or_else(|| text(c, "/data_dir"))?,
        port: port(c.get("port")),
        primary: role == "primary",
        upstream: upstream.and_then(|u| Some((text(u, "/host")?, port(u.get("port"))))),
        lag_bytes: upstream
            .and_then(|u| u.get("replay_lag_bytes"))
            .and_then(Value::as_u64),
    })
}

fn port(v: Option<&Value>) -> Option<u16> {
    v.and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
}

fn pools(facts: &Value) -> Vec<Pool> {
    let strings = |v: &Value, path: &str| -> Vec<String> {
        items(v, path)
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    let mut out: Vec<Pool> = items(facts, "/storage/mergerfs")
        .filter_map(|m| {
            Some(Pool {
                kind: "mergerfs",
                name: text(m, "/mount_point")?,
                members: strings(m, "/branches"),
                mounted: m.get("mounted").and_then(Value::as_bool),
            })
        })
        .collect();
    if let Some(s) = facts.pointer("/storage/snapraid").filter(|s| s.is_object()) {
        let mut members: Vec<String> = items(s, "/data").filter_map(|d| text(d, "/name")).collect();
        members.extend(
            strings(s, "/parity")
                .into_iter()
                .map(|p| format!("parity {p}")),
        );
        out.push(Pool {
            kind: "snapraid",
            name: "snapraid".into(),
            members,
            mounted: None,
        });
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_what_the_agent_reports() {
        let facts = json!({
            "platform": {"hostname": "pve1"},
            "hardware": {"dmi": {"product_uuid": "0A0B0C0D-0000-4000-8000-000000000001"},
                         "nics": [{"name": "eth0", "addresses": ["10.0.0.5/24", "fe80::1/64"]}]},
            "proxmox": {"node": "pve1", "cluster": "homelab", "version": "8.2.4", "guests": [
                {"vmid": 100, "type": "qemu", "name": "vm1",
                 "smbios_uuid": "5C1D7E2A-8B3F-4A6C-9D0E-1F2A3B4C5D6E"},
                {"vmid": 101, "type": "lxc", "template": true},
                {"vmid": -1, "type": "qemu"},
                {"vmid": 102, "type": "qemu", "smbios_uuid": "1234"}]},
            "containers": {"k3s": {"binary": true, "role": "server", "token_sha256": "ab"}},
            "storage": {"ceph": {"fsid": "f", "status": {"health": "HEALTH_WARN", "mons": 3,
                                 "osds": 4, "osds_up": 3, "osds_in": 4}},
                        "mergerfs": [{"mount_point": "/mnt/pool", "branches": ["/mnt/d1"],
                                      "mounted": false}],
                        "snapraid": {"parity": ["/p/snapraid.parity"],
                                     "data": [{"name": "d1", "path": "/mnt/d1"}]}},
            "postgresql": {"clusters": [
                {"data_dir": "/d", "name": "15/main", "port": 5432, "running": true,
                 "role": "standby", "upstream": {"host": "10.0.0.6", "port": 5432,
                                                 "replay_lag_bytes": 7}},
                {"data_dir": "/e", "running": false}]}
        });
        let s = Summary::from_facts(&facts);
        assert_eq!(
            s.product_uuid.as_deref(),
            Some("0a0b0c0d-0000-4000-8000-000000000001")
        );
        assert_eq!(s.addresses, ["10.0.0.5", "fe80::1"]);
        let pve = s.proxmox.unwrap();
        assert_eq!(pve.node.as_deref(), Some("pve1"));
        assert_eq!(pve.guests.len(), 3, "{:?}", pve.guests);
        assert_eq!(
            pve.guests[0].uuid.as_deref(),
            Some("5c1d7e2a-8b3f-4a6c-9d0e-1f2a3b4c5d6e")
        );
        assert_eq!(pve.guests[1].kind, GuestKind::Lxc);
        assert!(pve.guests[1].template);
        assert_eq!(pve.guests[2].uuid, None);
        assert_eq!(s.k3s.unwrap().role, "server");
        let ceph = s.ceph.unwrap();
        assert_eq!(ceph.health.as_deref(), Some("HEALTH_WARN"));
        assert_eq!(
            ceph.summary.as_deref(),
            Some("3 mons, 3/4/4 OSDs up/in/total")
        );
        assert_eq!(s.postgres.len(), 1);
        assert_eq!(
            s.postgres[0].upstream,
            Some(("10.0.0.6".into(), Some(5432)))
        );
        assert_eq!(s.postgres[0].lag_bytes, Some(7));
        assert_eq!(s.pools.len(), 2);
        assert_eq!(s.pools[1].members, ["d1", "parity /p/snapraid.parity"]);
    }

    #[test]
    fn odd_documents_give_an_empty_summary() {
        for doc in [
            Value::Null,
            json!([]),
            json!({"proxmox": 3, "containers": {"k3s": {}}, "hardware": {"dmi": {"product_uuid": 5}}}),
        ] {
            assert_eq!(Summary::from_facts(&doc), Summary::default(), "{doc}");
        }
    }
}
