//! Hardware facts: CPU, memory and swap, block devices, mounted filesystems, network interfaces
//! and DMI identity, read from procfs and sysfs under `root`.
//!
//! Two things only the running system can say are collected only when `root` is `/`:
//! filesystem usage ([`super::fsusage`]: `statvfs(2)` with a deadline; not for network
//! filesystems, where an unreachable server would hang the call) and interface addresses
//! ([`super::netaddr`]).

use std::path::Path;

use serde::Serialize;

use super::fsusage::usage_of;
use super::rootfs::{dir_names, is_dir, read_raw, read_trimmed};
use super::{Probe, Problems};

/// Filesystem types whose usage is not collected: `statvfs` on them can hang for as long as
/// their server is unreachable.
const NETWORK_FS_TYPES: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "ceph",
    "glusterfs",
    "fuse.sshfs",
];

/// Block device name prefixes that are not disks.
const SKIPPED_DISKS: &[&str] = &["loop", "ram", "zram"];

/// Interface name prefixes that are skipped: loopback, and the host ends of container veth
/// pairs, which come and go with every container and would make facts churn.
const SKIPPED_NICS: &[&str] = &["lo", "veth"];

/// Filesystem types reported under `filesystems`: ones that store data, local or network.
/// Everything else in `/proc/mounts` (proc, sysfs, tmpfs, cgroup, overlay, ...) is left out.
const REAL_FS_TYPES: &[&str] = &[
    "ext2",
    "ext3",
    "ext4",
    "xfs",
    "btrfs",
    "zfs",
    "bcachefs",
    "f2fs",
    "jfs",
    "reiserfs",
    "vfat",
    "exfat",
    "ntfs",
    "ntfs3",
    "fuseblk",
    "iso9660",
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "ceph",
    "glusterfs",
    "fuse.mergerfs",
    "fuse.sshfs",
];

/// What the machine is built from.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Hardware {
    /// Processor model and topology (`/proc/cpuinfo`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,
    /// Memory and swap (`/proc/meminfo`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    /// Block devices (`/sys/block`), without loop, ram and zram devices.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<Disk>,
    /// Mounted data filesystems (`/proc/mounts`), in mount order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filesystems: Vec<Filesystem>,
    /// Network interfaces (`/sys/class/net`), without `lo` and `veth*`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nics: Vec<Nic>,
    /// Firmware identity (`/sys/class/dmi/id`); absent on machines without DMI (most ARM boards).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dmi: Option<Dmi>,
}

/// Processor facts.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Cpu {
    /// `model name` of the first processor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Physical packages (distinct `physical id`); absent where cpuinfo has no topology (ARM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sockets: Option<u64>,
    /// Physical cores (distinct `physical id`/`core id` pairs); absent without topology.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cores: Option<u64>,
    /// Logical processors (`processor` entries).
    pub threads: u64,
}

/// Memory and swap sizes in bytes. Only sizes, not usage: usage changes on every collection and
/// would turn every refresh into a facts patch (metrics are the place for it).
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Memory {
    /// `MemTotal`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_bytes: Option<u64>,
    /// `SwapTotal`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap_total_bytes: Option<u64>,
}

/// One block device.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Disk {
    /// Kernel name (`sda`, `nvme0n1`, `vda`).
    pub name: String,
    /// `device/model`; absent for virtio and most virtual disks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Size in bytes (`size` is in 512-byte sectors whatever the real sector size).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// `queue/rotational`: spinning disk (or a virtual disk that claims to be one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotational: Option<bool>,
}

/// One mounted filesystem. Usage (`size_bytes`, `used_bytes`, `available_bytes`, as `df`
/// shows them; rounded down to 16 MiB) is present only on the running system (root `/`) and
/// not for network filesystems.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Filesystem {
    /// Mount source (`/dev/sda1`, `tank/data`, `server:/export`).
    pub source: String,
    /// Mount point.
    pub mount_point: String,
    /// Filesystem type.
    pub fs_type: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// Total size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// In use (size minus free blocks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
    /// Available to unprivileged users.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
}

/// One network interface.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Nic {
    /// Interface name.
    pub name: String,
    /// Hardware address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// MTU in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u64>,
    /// `operstate` (up, down, unknown, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operstate: Option<String>,
    /// Link speed in Mbit/s; absent when the link is down or the driver does not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed_mbps: Option<u64>,
    /// Backed by a device (`device` link present), not a bridge, bond, tunnel or other virtual
    /// interface.
    pub physical: bool,
    /// IPv4 and IPv6 addresses with prefix length (`192.168.1.10/24`, `fe80::1/64`), sorted;
    /// absent when it has none or the root is not `/`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// The default route (IPv4 or IPv6) goes through this interface; absent otherwise.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub default_route: bool,
}

/// DMI (SMBIOS) identity. Serial and UUID are readable by root only, so they are absent when
/// the agent runs unprivileged.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Dmi {
    /// `sys_vendor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sys_vendor: Option<String>,
    /// `product_name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    /// `product_serial` (root only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_serial: Option<String>,
    /// `product_uuid` (root only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_uuid: Option<String>,
    /// `board_vendor`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub board_vendor: Option<String>,
    /// `bios_version`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bios_version: Option<String>,
}

/// One line of `/proc/mounts`, octal escapes (`\040` for a space) decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct MountEntry {
    /// First field.
    pub source: String,
    /// Second field.
    pub mount_point: String,
    /// Third field.
    pub fs_type: String,
    /// Fourth field, split at commas.
    pub options: Vec<String>,
}

/// Collects hardware facts under the probe's root; a filesystem whose `statvfs` does not answer
/// in time is reported to `problems` (collector `filesystems`).
pub fn collect(probe: &Probe, problems: &mut Problems) -> Hardware {
    let root = probe.root();
    Hardware {
        cpu: read_raw(root, "proc/cpuinfo").and_then(|t| parse_cpuinfo(&t)),
        memory: read_raw(root, "proc/meminfo").and_then(|t| parse_meminfo(&t)),
        disks: disks(root),
        filesystems: read_raw(root, "proc/mounts")
            .map(|t| filesystems(&parse_mounts(&t), probe.live(), problems))
            .unwrap_or_default(),
        nics: nics(root),
        dmi: dmi(root),
    }
}

/// Parses `/proc/cpuinfo`; `None` when it lists no processor.
pub fn parse_cpuinfo(text: &str) -> Option<Cpu> {
    let mut cpu = Cpu::default();
    let mut packages = std::collections::BTreeSet::new();
    let mut cores = std::collections::BTreeSet::new();
    let mut package: Option<&str> = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "processor" => {
                cpu.threads += 1;
                package = None;
            }
            "model name" if cpu.model.is_none() && !value.is_empty() => {
                cpu.model = Some(value.to_owned());
            }
            "physical id" => {
                package = Some(value);
                packages.insert(value);
            }
            "core id" => {
                cores.insert((package, value));
            }
            _ => {}
        }
    }
    if cpu.threads == 0 {
        return None;
    }
    cpu.sockets = Some(packages.len() as u64).filter(|&n| n > 0);
    cpu.cores = Some(cores.len() as u64).filter(|&n| n > 0);
    Some(cpu)
}

/// Parses `/proc/meminfo`; `None` when it has none of the fields.
pub fn parse_meminfo(text: &str) -> Option<Memory> {
    let field = |name: &str| {
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            let kib: u64 = rest.split_whitespace().next()?.parse().ok()?;
            kib.checked_mul(1024)
        })
    };
    let memory = Memory {
        total_bytes: field("MemTotal"),
        swap_total_bytes: field("SwapTotal"),
    };
    (memory != Memory::default()).then_some(memory)
}

fn disks(root: &Path) -> Vec<Disk> {
    dir_names(root, "sys/block")
        .into_iter()
        .filter(|name| !SKIPPED_DISKS.iter().any(|p| name.starts_with(p)))
        .map(|name| {
            let base = format!("sys/block/{name}");
            Disk {
                model: read_trimmed(root, &format!("{base}/device/model")),
                size_bytes: read_trimmed(root, &format!("{base}/size"))
                    .and_then(|s| s.parse::<u64>().ok())
                    .and_then(|sectors| sectors.checked_mul(512)),
                rotational: read_trimmed(root, &format!("{base}/queue/rotational"))
                    .map(|s| s == "1"),
                name,
            }
        })
        .collect()
}

/// Parses `/proc/mounts` (fstab format); malformed lines are skipped.
pub fn parse_mounts(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            Some(MountEntry {
                source: unescape_octal(fields.next()?),
                mount_point: unescape_octal(fields.next()?),
                fs_type: unescape_octal(fields.next()?),
                options: fields
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .filter(|o| !o.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect()
}

/// Decodes the `\ooo` escapes the kernel writes for space, tab, newline and backslash.
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let digits = bytes.get(i + 1..i + 4);
        let code = digits
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)))
            .and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok());
        match code {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `root` is the running system (then `statvfs` and `getifaddrs` describe it).
fn live(root: &Path) -> bool {
    root == Path::new("/")
}

/// The data filesystems of `mounts`; with `live`, their usage too (local filesystems only).
fn filesystems(mounts: &[MountEntry], live: bool, problems: &mut Problems) -> Vec<Filesystem> {
    let data: Vec<&MountEntry> = mounts
        .iter()
        .filter(|m| REAL_FS_TYPES.contains(&m.fs_type.as_str()))
        .collect();
    let measured: Vec<usize> = (0..data.len())
        .filter(|&i| live && !NETWORK_FS_TYPES.contains(&data[i].fs_type.as_str()))
        .collect();
    let points: Vec<String> = measured
        .iter()
        .map(|&i| data[i].mount_point.clone())
        .collect();
    let (answers, late) = if points.is_empty() {
        Default::default()
    } else {
        usage_of(&points)
    };
    for message in late {
        problems.add("filesystems", message);
    }
    let mut usage = vec![None; data.len()];
    for (&i, answer) in measured.iter().zip(answers) {
        usage[i] = answer;
    }
    data.iter()
        .zip(usage)
        .map(|(m, usage)| Filesystem {
            source: m.source.clone(),
            mount_point: m.mount_point.clone(),
            fs_type: m.fs_type.clone(),
            read_only: m.options.iter().any(|o| o == "ro"),
            size_bytes: usage.map(|u| u.0),
            used_bytes: usage.map(|u| u.1),
            available_bytes: usage.map(|u| u.2),
        })
        .collect()
}

fn nics(root: &Path) -> Vec<Nic> {
    let defaults = super::netaddr::default_route_interfaces(root);
    let mut addresses = if live(root) {
        super::netaddr::addresses()
    } else {
        Default::default()
    };
    dir_names(root, "sys/class/net")
        .into_iter()
        .filter(|name| !SKIPPED_NICS.iter().any(|p| name.starts_with(p)))
        .map(|name| {
            let base = format!("sys/class/net/{name}");
            let number = |file: &str| {
                read_trimmed(root, &format!("{base}/{file}")).and_then(|s| s.parse::<i64>().ok())
            };
            Nic {
                mac: read_trimmed(root, &format!("{base}/address")),
                mtu: number("mtu").and_then(|n| u64::try_from(n).ok()),
                operstate: read_trimmed(root, &format!("{base}/operstate")),
                // the kernel reports -1 (or fails the read) when the speed is unknown
                speed_mbps: number("speed")
                    .and_then(|n| u64::try_from(n).ok())
                    .filter(|&n| n > 0),
                physical: is_dir(root, &format!("{base}/device")),
                addresses: addresses.remove(&name).unwrap_or_default(),
                default_route: defaults.contains(&name),
                name,
            }
        })
        .collect()
}

fn dmi(root: &Path) -> Option<Dmi> {
    let field = |name: &str| read_trimmed(root, &format!("sys/class/dmi/id/{name}"));
    let dmi = Dmi {
        sys_vendor: field("sys_vendor"),
        product_name: field("product_name"),
        product_serial: field("product_serial"),
        product_uuid: field("product_uuid"),
        board_vendor: field("board_vendor"),
        bios_version: field("bios_version"),
    };
    (dmi != Dmi::default()).then_some(dmi)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "hardware_tests.rs"]
mod tests;
