//! Proxmox VE facts: pve-manager version, node and cluster name, and the guests defined on this
//! node.
//!
//! Applies when `usr/share/perl5/PVE` is a directory (PVE's Perl code, installed with the
//! packages and present even while services are down) or `etc/pve` is one. `/etc/pve` is the
//! pmxcfs FUSE mount: it has content only while `pve-cluster` runs, so cluster name and guests
//! are absent when it is not mounted (or under a root that is a mounted disk image).
//!
//! Guests come from the local node's configs (`etc/pve/qemu-server`, `etc/pve/lxc`, links into
//! `etc/pve/nodes/<node>/`); other cluster nodes' guests are reported by their own agents. Only
//! the top section of a config counts: `[snapshot]` and `[PENDING]` sections describe other
//! states of the guest. Guest run state is only available from commands or the API (`qm`,
//! `pct`, `pvesh`), so it is deliberately absent here.

use std::path::Path;

use serde::Serialize;

use super::control::{field, stanzas};
use super::rootfs::{dir_names, is_dir, read_raw, read_trimmed};
use super::{Probe, Problems};

/// Proxmox VE facts.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Proxmox {
    /// Version of the installed `pve-manager` package.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Node name (first label of `etc/hostname`, as PVE uses it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// `cluster_name` from `etc/pve/corosync.conf`; absent on a standalone node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Guests defined on this node, by VMID.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guests: Vec<Guest>,
}

/// What kind of guest.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum GuestKind {
    /// A QEMU/KVM virtual machine (`qemu-server/<vmid>.conf`).
    Qemu,
    /// An LXC container (`lxc/<vmid>.conf`).
    Lxc,
}

/// One guest.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Guest {
    /// VMID (the config file's name).
    pub vmid: u32,
    /// VM or container.
    #[serde(rename = "type")]
    pub kind: GuestKind,
    /// `name:` of a VM, `hostname:` of a container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `uuid=` of a VM's `smbios1:` line: what the guest sees as its DMI `product_uuid`, so a
    /// guest's agent can be matched to its VMID. Absent (and a collector error) when it is not
    /// a UUID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smbios_uuid: Option<String>,
    /// The config is a template (`template: 1`), not a guest that runs.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub template: bool,
}

/// Collects Proxmox facts; `None` when PVE is not installed under the probe's root. A guest
/// whose `smbios1` uuid is not a UUID, or shares it with another guest, is reported.
pub fn collect(probe: &Probe, problems: &mut Problems) -> Option<Proxmox> {
    let root = probe.root();
    if !is_dir(root, "usr/share/perl5/PVE") && !is_dir(root, "etc/pve") {
        return None;
    }
    let mut guests = guest_configs(root, "etc/pve/qemu-server", GuestKind::Qemu);
    guests.extend(guest_configs(root, "etc/pve/lxc", GuestKind::Lxc));
    guests.sort_by_key(|g| (g.vmid, g.kind));
    check_uuids(&mut guests, problems);
    Some(Proxmox {
        version: read_raw(root, "var/lib/dpkg/status").and_then(|t| pve_manager_version(&t)),
        node: read_trimmed(root, "etc/hostname")
            .and_then(|h| h.split('.').next().map(str::to_owned)),
        cluster: read_raw(root, "etc/pve/corosync.conf").and_then(|t| cluster_name(&t)),
        guests,
    })
}

fn pve_manager_version(status: &str) -> Option<String> {
    stanzas(status, &["Package", "Status", "Version"])
        .iter()
        .filter(|s| field(s, "Package") == Some("pve-manager"))
        .filter(|s| field(s, "Status").is_some_and(|st| st.ends_with("ok installed")))
        .find_map(|s| field(s, "Version").map(str::to_owned))
}

/// `cluster_name:` in the `totem` section of corosync.conf.
fn cluster_name(corosync: &str) -> Option<String> {
    corosync.lines().find_map(|line| {
        let value = line.trim().strip_prefix("cluster_name:")?.trim();
        (!value.is_empty()).then(|| value.to_owned())
    })
}

fn guest_configs(root: &Path, dir: &str, kind: GuestKind) -> Vec<Guest> {
    dir_names(root, dir)
        .into_iter()
        .filter_map(|file| {
            let vmid: u32 = file.strip_suffix(".conf")?.parse().ok()?;
            let text = read_raw(root, &format!("{dir}/{file}"))?;
            Some(parse_guest(vmid, kind, &text))
        })
        .collect()
}

/// Drops `smbios1` uuids that are not UUIDs and reports them, and reports uuids two guests
/// share (a node inside either could not be told apart).
fn check_uuids(guests: &mut [Guest], problems: &mut Problems) {
    for guest in guests.iter_mut() {
        if let Some(uuid) = guest.smbios_uuid.take_if(|u| !is_uuid(u)) {
            problems.add(
                "proxmox",
                format!(
                    "guest {} has smbios1 uuid '{uuid}', which is not a UUID; its node cannot \
                     be matched to it (set a valid one in the VM's options)",
                    guest.vmid
                ),
            );
        }
    }
    for (i, a) in guests.iter().enumerate() {
        let Some(uuid) = &a.smbios_uuid else {
            continue;
        };
        for b in &guests[i + 1..] {
            if b.smbios_uuid
                .as_deref()
                .is_some_and(|other| other.eq_ignore_ascii_case(uuid))
            {
                problems.add(
                    "proxmox",
                    format!(
                        "guests {} and {} have the same smbios1 uuid {uuid}; a node inside \
                         either cannot be told apart (give one of them a new uuid)",
                        a.vmid, b.vmid
                    ),
                );
            }
        }
    }
}

/// Whether `text` is a UUID in its usual form (`8-4-4-4-12` hex digits, any case).
pub fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Parses the top section of a guest config (up to the first `[section]`).
pub fn parse_guest(vmid: u32, kind: GuestKind, config: &str) -> Guest {
    let mut guest = Guest {
        vmid,
        kind,
        name: None,
        smbios_uuid: None,
        template: false,
    };
    for line in config.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            break;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match (kind, key.trim()) {
            (GuestKind::Qemu, "name") | (GuestKind::Lxc, "hostname") => {
                guest.name = Some(value.to_owned()).filter(|v| !v.is_empty());
            }
            (GuestKind::Qemu, "smbios1") => {
                guest.smbios_uuid = value
                    .split(',')
                    .find_map(|opt| opt.strip_prefix("uuid="))
                    .map(str::to_owned);
            }
            (_, "template") => guest.template = value == "1",
            _ => {}
        }
    }
    guest
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "proxmox_tests.rs"]
mod tests;
