//! Storage stack facts: mergerfs pools, SnapRAID configuration, Ceph client configuration.
//!
//! Only configuration and mount tables are read. SnapRAID sync/scrub state (`snapraid status`)
//! and Ceph health (`ceph -f json status`) need commands and come later.

use std::path::Path;

use serde::Serialize;

use super::hardware::parse_mounts;
use super::rootfs::read_raw;

/// Storage facts.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Storage {
    /// mergerfs pools mounted (`fuse.mergerfs` in `proc/mounts`).
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
    /// Where the pool is mounted.
    pub mount_point: String,
    /// Branches: the mount source split at `:` (mergerfs's default `fsname`; with a custom
    /// `fsname=` option this is that one name).
    pub branches: Vec<String>,
}

/// SnapRAID array layout.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Snapraid {
    /// Parity files in level order (`parity`, `2-parity` ... `6-parity`, `z-parity`); a
    /// split parity level lists its comma-separated files.
    pub parity: Vec<String>,
    /// Data disks (`data NAME DIR`, or the older `disk NAME DIR`).
    pub data: Vec<SnapraidDisk>,
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
}

/// Collects storage facts; `None` when none of the three is present.
pub fn collect(root: &Path) -> Option<Storage> {
    let storage = Storage {
        mergerfs: read_raw(root, "proc/mounts")
            .map(|t| mergerfs_mounts(&t))
            .unwrap_or_default(),
        snapraid: read_raw(root, "etc/snapraid.conf").map(|t| parse_snapraid(&t)),
        ceph: read_raw(root, "etc/ceph/ceph.conf").map(|t| parse_ceph(&t)),
    };
    (storage != Storage::default()).then_some(storage)
}

fn mergerfs_mounts(mounts: &str) -> Vec<MergerfsMount> {
    parse_mounts(mounts)
        .into_iter()
        .filter(|m| m.fs_type == "fuse.mergerfs")
        .map(|m| MergerfsMount {
            branches: m
                .source
                .split(':')
                .filter(|b| !b.is_empty())
                .map(str::to_owned)
                .collect(),
            mount_point: m.mount_point,
        })
        .collect()
}

/// Parses `snapraid.conf` (`directive args...`, `#` comments).
pub fn parse_snapraid(text: &str) -> Snapraid {
    let mut parity: Vec<(u8, String)> = Vec::new();
    let mut snapraid = Snapraid::default();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((directive, args)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        let args = args.trim();
        if let Some(level) = parity_level(directive) {
            parity.push((level, args.to_owned()));
        } else if directive == "data" || directive == "disk" {
            if let Some((name, path)) = args.split_once(char::is_whitespace) {
                snapraid.data.push(SnapraidDisk {
                    name: name.to_owned(),
                    path: path.trim().to_owned(),
                });
            }
        }
    }
    parity.sort_by_key(|(level, _)| *level);
    snapraid.parity = parity.into_iter().map(|(_, path)| path).collect();
    snapraid
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
