//! Storage stack facts: mergerfs pools, SnapRAID configuration, Ceph client configuration and,
//! where this node can ask, the Ceph cluster's status ([`super::ceph`]).
//!
//! mergerfs pools come from the mount table and `etc/fstab` (a pool in fstab that is not
//! mounted is shown as such). SnapRAID's layout comes from `etc/snapraid.conf`; a directive
//! SnapRAID would refuse is reported as a collector error. SnapRAID's sync/scrub state comes
//! from backup tasks (`snapraid status`), not from facts.

use serde::Serialize;

use super::ceph::CephStatus;
use super::hardware::{parse_mounts, MountEntry};
use super::rootfs::read_raw;
use super::{Probe, Problems};

/// Storage facts.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Storage {
    /// mergerfs pools, mounted (`proc/mounts`) or set up in `etc/fstab`, by mount point.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mergerfs: Vec<MergerfsMount>,
    /// SnapRAID configuration (`etc/snapraid.conf`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapraid: Option<Snapraid>,
    /// Ceph client configuration (`etc/ceph/ceph.conf`, on Proxmox a link into `/etc/pve`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ceph: Option<Ceph>,
}

/// One mergerfs pool.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MergerfsMount {
    /// Where the pool is (or would be) mounted.
    pub mount_point: String,
    /// Branches as `etc/fstab` lists them (globs such as `/mnt/disk*` and `=RO` modes kept);
    /// for a pool not in fstab, the mount source split at `:` (mergerfs's default `fsname`;
    /// with a custom `fsname=` option this is that one name).
    pub branches: Vec<String>,
    /// The pool is mounted now.
    pub mounted: bool,
    /// The pool is in `etc/fstab`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub in_fstab: bool,
}

/// SnapRAID array layout.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Snapraid {
    /// Parity files in level order (`parity`, `2-parity` ... `6-parity`, `z-parity`); a
    /// split parity level lists its comma-separated files.
    pub parity: Vec<String>,
    /// Data disks (`data NAME DIR`, or the older `disk NAME DIR`).
    pub data: Vec<SnapraidDisk>,
    /// Content files (`content FILE`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<String>,
}

/// One SnapRAID data disk.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SnapraidDisk {
    /// Disk name in the array.
    pub name: String,
    /// Mount directory.
    pub path: String,
}

/// Ceph client configuration.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Ceph {
    /// Cluster id (`fsid` in `[global]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fsid: Option<String>,
    /// Monitor addresses (`mon_host`/`mon host`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mon_host: Option<String>,
    /// The cluster's status from `ceph status`; absent where this node has no `ceph` CLI or
    /// no readable keyring, or when it failed (then a collector error says why).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<CephStatus>,
}

/// Collects storage facts; `None` when none of the three is present.
pub fn collect(probe: &Probe, problems: &mut Problems) -> Option<Storage> {
    let root = probe.root();
    let mounted = read_raw(root, "proc/mounts")
        .map(|t| parse_mounts(&t))
        .unwrap_or_default();
    let fstab = read_raw(root, "etc/fstab")
        .map(|t| parse_mounts(&t))
        .unwrap_or_default();
    let storage = Storage {
        mergerfs: mergerfs_pools(&mounted, &fstab),
        snapraid: read_raw(root, "etc/snapraid.conf").map(|t| {
            let (snapraid, errors) = parse_snapraid(&t);
            for e in errors {
                problems.add("snapraid", format!("/etc/snapraid.conf {e}"));
            }
            snapraid
        }),
        ceph: read_raw(root, "etc/ceph/ceph.conf").map(|t| Ceph {
            status: super::ceph::status(probe, &t, problems),
            ..parse_ceph(&t)
        }),
    };
    (storage != Storage::default()).then_some(storage)
}

fn is_mergerfs(m: &MountEntry) -> bool {
    m.fs_type == "fuse.mergerfs" || m.fs_type == "mergerfs"
}

fn split_branches(source: &str) -> Vec<String> {
    source
        .split(':')
        .filter(|b| !b.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The pools of the mount table and fstab, merged by mount point, sorted.
fn mergerfs_pools(mounted: &[MountEntry], fstab: &[MountEntry]) -> Vec<MergerfsMount> {
    let mut pools: Vec<MergerfsMount> = fstab
        .iter()
        .filter(|m| is_mergerfs(m) && !m.source.starts_with('#'))
        .map(|m| MergerfsMount {
            mount_point: m.mount_point.clone(),
            branches: split_branches(&m.source),
            mounted: false,
            in_fstab: true,
        })
        .collect();
    for m in mounted.iter().filter(|m| is_mergerfs(m)) {
        match pools.iter_mut().find(|p| p.mount_point == m.mount_point) {
            Some(pool) => pool.mounted = true,
            None => pools.push(MergerfsMount {
                mount_point: m.mount_point.clone(),
                branches: split_branches(&m.source),
                mounted: true,
                in_fstab: false,
            }),
        }
    }
    pools.sort_by(|a, b| a.mount_point.cmp(&b.mount_point));
    pools.dedup_by(|a, b| a.mount_point == b.mount_point);
    pools
}

/// Parses `snapraid.conf` (`directive args...`, `#` comments), with what SnapRAID would refuse
/// (`line 7: 'data' needs a disk name and a directory`).
pub fn parse_snapraid(text: &str) -> (Snapraid, Vec<String>) {
    let mut parity: Vec<(u8, String)> = Vec::new();
    let mut snapraid = Snapraid::default();
    let mut errors = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (directive, args) = line
            .split_once(char::is_whitespace)
            .map_or((line, ""), |(d, a)| (d, a.trim()));
        if let Some(level) = parity_level(directive) {
            if args.is_empty() {
                errors.push(format!("line {}: '{directive}' needs a parity file", n + 1));
            } else {
                parity.push((level, args.to_owned()));
            }
        } else if directive == "data" || directive == "disk" {
            match args.split_once(char::is_whitespace) {
                Some((name, path)) => snapraid.data.push(SnapraidDisk {
                    name: name.to_owned(),
                    path: path.trim().to_owned(),
                }),
                None => errors.push(format!(
                    "line {}: '{directive}' needs a disk name and a directory",
                    n + 1
                )),
            }
        } else if directive == "content" {
            if args.is_empty() {
                errors.push(format!("line {}: 'content' needs a file", n + 1));
            } else {
                snapraid.content.push(args.to_owned());
            }
        }
    }
    parity.sort_by_key(|(level, _)| *level);
    snapraid.parity = parity.into_iter().map(|(_, path)| path).collect();
    if snapraid.parity.is_empty() {
        errors.push("names no parity file; snapraid refuses to run without one".to_owned());
    }
    if snapraid.data.is_empty() {
        errors.push("names no data disk; snapraid refuses to run without one".to_owned());
    }
    (snapraid, errors)
}

/// The level of a parity directive: `parity` is 1, `N-parity` is N, `z-parity` is 2 (an
/// alternative second level).
fn parity_level(directive: &str) -> Option<u8> {
    match directive {
        "parity" => Some(1),
        "z-parity" => Some(2),
        _ => directive
            .strip_suffix("-parity")?
            .parse()
            .ok()
            .filter(|n| (2..=6).contains(n)),
    }
}

/// Parses the `[global]` section of `ceph.conf` (INI; keys may use spaces or underscores).
pub fn parse_ceph(text: &str) -> Ceph {
    let mut ceph = Ceph::default();
    let mut in_global = true;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(section) = line.strip_prefix('[') {
            in_global = section.trim_end_matches(']').trim() == "global";
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if !in_global {
            continue;
        }
        let key = key.trim().replace(' ', "_");
        let value = Some(value.trim().to_owned()).filter(|v| !v.is_empty());
        match key.as_str() {
            "fsid" => ceph.fsid = value,
            "mon_host" => ceph.mon_host = value,
            _ => {}
        }
    }
    ceph
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "storage_tests.rs"]
mod tests;
