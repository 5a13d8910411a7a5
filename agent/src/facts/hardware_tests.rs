//! Unit tests of the hardware collector against fixture trees and this machine.

use std::path::Path;

use super::*;
use crate::facts::testutil::{mkdir, symlink, write};

const CPUINFO_2S: &str = "\
processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) CPU E5-2640 v4 @ 2.40GHz
physical id\t: 0
siblings\t: 2
core id\t\t: 0
cpu cores\t: 1
flags\t\t: fpu vme sse2 ht

processor\t: 1
model name\t: Intel(R) Xeon(R) CPU E5-2640 v4 @ 2.40GHz
physical id\t: 0
core id\t\t: 0

processor\t: 2
model name\t: Intel(R) Xeon(R) CPU E5-2640 v4 @ 2.40GHz
physical id\t: 1
core id\t\t: 0

processor\t: 3
model name\t: Intel(R) Xeon(R) CPU E5-2640 v4 @ 2.40GHz
physical id\t: 1
core id\t\t: 0
";

#[test]
fn cpuinfo_topology() {
    let cpu = parse_cpuinfo(CPUINFO_2S).unwrap();
    assert_eq!(
        cpu.model.as_deref(),
        Some("Intel(R) Xeon(R) CPU E5-2640 v4 @ 2.40GHz")
    );
    assert_eq!(cpu.threads, 4);
    assert_eq!(cpu.sockets, Some(2));
    assert_eq!(cpu.cores, Some(2), "core id 0 on each of two sockets");
}

#[test]
fn cpuinfo_arm_without_topology() {
    let text = "processor\t: 0\nBogoMIPS\t: 108.00\nCPU part\t: 0xd08\n\nprocessor\t: 1\n";
    let cpu = parse_cpuinfo(text).unwrap();
    assert_eq!(cpu.threads, 2);
    assert_eq!((cpu.model, cpu.sockets, cpu.cores), (None, None, None));
    assert_eq!(parse_cpuinfo(""), None);
}

#[test]
fn meminfo_fields() {
    let text = "MemTotal:       32768000 kB\nMemFree:  100 kB\nMemAvailable:   16384000 kB\n\
                SwapCached: 0 kB\nSwapTotal:       2097148 kB\nSwapFree:        2097000 kB\n";
    let m = parse_meminfo(text).unwrap();
    assert_eq!(m.total_bytes, Some(32_768_000 * 1024));
    assert_eq!(m.swap_total_bytes, Some(2_097_148 * 1024));
    assert_eq!(parse_meminfo("garbage\n"), None);
}

#[test]
fn mounts_escapes_and_real_types() {
    let text = "\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
/dev/nvme0n1p2 / ext4 rw,relatime,errors=remount-ro 0 0
/dev/sdb1 /mnt/my\\040disk xfs ro,relatime 0 0
tmpfs /run tmpfs rw,nosuid,nodev,size=3274896k,mode=755 0 0
tank/data /tank/data zfs rw,xattr,noacl 0 0
/mnt/disk1:/mnt/disk2 /mnt/storage fuse.mergerfs rw,relatime,user_id=0 0 0
short line
";
    let mounts = parse_mounts(text);
    assert_eq!(mounts.len(), 7);
    let fs = filesystems(&mounts, false, &mut Problems::default());
    let points: Vec<&str> = fs.iter().map(|f| f.mount_point.as_str()).collect();
    assert_eq!(
        points,
        vec!["/", "/mnt/my disk", "/tank/data", "/mnt/storage"]
    );
    assert!(fs[1].read_only);
    assert!(!fs[0].read_only);
    assert_eq!(unescape_octal("a\\134b\\011c\\9"), "a\\b\tc\\9");
}

#[test]
fn fixture_tree() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "proc/cpuinfo", CPUINFO_2S);
    write(root, "proc/meminfo", "MemTotal: 1024 kB\n");
    write(root, "proc/mounts", "/dev/sda1 / ext4 rw 0 0\n");
    let zero = "00000000000000000000000000000000";
    write(
        root,
        "proc/net/route",
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n\
         vmbr0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n",
    );
    write(
        root,
        "proc/net/ipv6_route",
        &format!("{zero} 00 {zero} 00 {zero} ffffffff 00000001 00000000 00200200 lo\n"),
    );
    // disks: a SATA SSD, an NVMe disk, and devices that are skipped
    write(root, "sys/block/sda/size", "1953525168\n");
    write(root, "sys/block/sda/queue/rotational", "0\n");
    write(root, "sys/block/sda/device/model", "Samsung SSD 870  \n");
    write(root, "sys/block/sdb/size", "15628053168\n");
    write(root, "sys/block/sdb/queue/rotational", "1\n");
    write(root, "sys/block/loop0/size", "8\n");
    write(root, "sys/block/zram0/size", "8\n");
    write(root, "sys/block/ram0/size", "8\n");
    // nics: a physical one, a bridge, loopback and a veth pair end
    write(root, "sys/class/net/enp1s0/address", "52:54:00:12:34:56\n");
    write(root, "sys/class/net/enp1s0/mtu", "1500\n");
    write(root, "sys/class/net/enp1s0/operstate", "up\n");
    write(root, "sys/class/net/enp1s0/speed", "1000\n");
    mkdir(root, "sys/devices/pci0000:00/0000:01:00.0");
    symlink(
        root,
        "sys/class/net/enp1s0/device",
        "../../../devices/pci0000:00/0000:01:00.0",
    );
    write(root, "sys/class/net/vmbr0/address", "52:54:00:12:34:57\n");
    write(root, "sys/class/net/vmbr0/speed", "-1\n");
    write(root, "sys/class/net/lo/address", "00:00:00:00:00:00\n");
    write(
        root,
        "sys/class/net/veth1a2b/address",
        "aa:aa:aa:aa:aa:aa\n",
    );
    // DMI of a Proxmox VM, serial unreadable (absent)
    write(root, "sys/class/dmi/id/sys_vendor", "QEMU\n");
    write(
        root,
        "sys/class/dmi/id/product_name",
        "Standard PC (i440FX + PIIX, 1996)\n",
    );
    write(
        root,
        "sys/class/dmi/id/product_uuid",
        "5f3a9c1e-8f0b-4c55-9a61-2b7e0c4d1a22\n",
    );
    write(
        root,
        "sys/class/dmi/id/bios_version",
        "rel-1.16.3-0-ga6ed6b701f0a-prebuilt.qemu.org\n",
    );

    let hw = collect(&Probe::new(root), &mut Problems::default());
    assert_eq!(hw.cpu.as_ref().map(|c| c.threads), Some(4));
    assert_eq!(hw.memory.and_then(|m| m.total_bytes), Some(1024 * 1024));
    assert_eq!(
        hw.disks,
        vec![
            Disk {
                name: "sda".into(),
                model: Some("Samsung SSD 870".into()),
                size_bytes: Some(1_953_525_168 * 512),
                rotational: Some(false),
            },
            Disk {
                name: "sdb".into(),
                model: None,
                size_bytes: Some(15_628_053_168 * 512),
                rotational: Some(true),
            },
        ]
    );
    assert_eq!(hw.filesystems.len(), 1);
    // Usage and addresses describe only the running system, never a fixture or image.
    assert_eq!(hw.filesystems[0].size_bytes, None);
    let names: Vec<&str> = hw.nics.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, vec!["enp1s0", "vmbr0"]);
    assert!(hw.nics.iter().all(|n| n.addresses.is_empty()));
    assert_eq!(
        (hw.nics[0].default_route, hw.nics[1].default_route),
        (false, true)
    );
    let json = serde_json::to_value(&hw.nics).unwrap();
    assert_eq!(json[1]["default_route"], true);
    assert!(json[0].get("default_route").is_none() && json[0].get("addresses").is_none());
    assert_eq!(hw.nics[0].speed_mbps, Some(1000));
    assert!(hw.nics[0].physical);
    assert_eq!(hw.nics[1].speed_mbps, None);
    assert!(!hw.nics[1].physical);
    let dmi = hw.dmi.unwrap();
    assert_eq!(dmi.sys_vendor.as_deref(), Some("QEMU"));
    assert_eq!(dmi.product_serial, None);
    assert_eq!(
        dmi.product_uuid.as_deref(),
        Some("5f3a9c1e-8f0b-4c55-9a61-2b7e0c4d1a22")
    );
}

#[test]
fn empty_tree_is_empty_not_error() {
    let dir = tempfile::tempdir().unwrap();
    let hw = collect(&Probe::new(dir.path()), &mut Problems::default());
    assert_eq!(hw, Hardware::default());
    assert_eq!(serde_json::to_string(&hw).unwrap(), "{}");
}

#[test]
fn this_machine() {
    let hw = collect(&Probe::new(Path::new("/")), &mut Problems::default());
    assert!(hw.cpu.map(|c| c.threads).unwrap_or(0) > 0);
    assert!(hw.memory.and_then(|m| m.total_bytes).unwrap_or(0) > 0);
    assert!(hw.disks.iter().all(|d| !d.name.starts_with("loop")));
    assert!(hw.nics.iter().all(|n| n.name != "lo"));
    // `/` has its usage, consistent with itself.
    let root = hw.filesystems.iter().find(|f| f.mount_point == "/");
    if let Some(root) = root.filter(|f| f.fs_type != "nfs") {
        let (size, used, avail) = (
            root.size_bytes.unwrap(),
            root.used_bytes.unwrap(),
            root.available_bytes.unwrap(),
        );
        assert!(size > 0 && used <= size && avail <= size, "{root:?}");
        assert_eq!(size % (16 << 20), 0);
    }
}
