//! Unit tests of the proxmox collector against fixture trees and this machine.

use std::path::Path;

use super::*;
use crate::facts::testutil::{mkdir, symlink, write};

const VM_100: &str = "\
#Home Assistant OS
agent: 1
balloon: 2048
bios: ovmf
boot: order=scsi0;net0
cores: 2
cpu: host
efidisk0: local-lvm:vm-100-disk-0,efitype=4m,size=4M
machine: q35
memory: 4096
meta: creation-qemu=8.1.5,ctime=1712345678
name: haos
net0: virtio=BC:24:11:5A:6B:7C,bridge=vmbr0
numa: 0
onboot: 1
ostype: l26
parent: before-upgrade
scsi0: local-lvm:vm-100-disk-1,discard=on,size=32G,ssd=1
scsihw: virtio-scsi-single
smbios1: uuid=7c6e5d4a-3b2c-4d1e-9f8a-0b1c2d3e4f50,manufacturer=UUVNVQ==,base64=1
sockets: 1
vmgenid: 1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d

[before-upgrade]
bios: ovmf
cores: 2
memory: 2048
name: haos-old
smbios1: uuid=00000000-0000-0000-0000-000000000000
snaptime: 1712345999
vmstate: local-lvm:vm-100-state-before-upgrade
";

const CT_101: &str = "\
arch: amd64
cores: 1
features: nesting=1
hostname: pihole
memory: 512
net0: name=eth0,bridge=vmbr0,firewall=1,hwaddr=BC:24:11:00:11:22,ip=dhcp,type=veth
ostype: debian
rootfs: local-lvm:vm-101-disk-0,size=8G
swap: 512
unprivileged: 1

[vzdump]
hostname: pihole-backup
";

const COROSYNC: &str = "\
logging {
  debug: off
  to_syslog: yes
}

nodelist {
  node {
    name: pve1
    nodeid: 1
    quorum_votes: 1
    ring0_addr: 192.168.1.10
  }
}

totem {
  cluster_name: homelab
  config_version: 3
  interface {
    linknumber: 0
  }
  ip_version: ipv4-6
  secauth: on
  version: 2
}
";

const DPKG_STATUS: &str = "\
Package: pve-manager
Status: install ok installed
Architecture: amd64
Version: 8.2.4

Package: pve-cluster
Status: install ok installed
Architecture: amd64
Version: 8.0.7
";

fn pve_tree(root: &Path) {
    mkdir(root, "usr/share/perl5/PVE");
    write(root, "etc/hostname", "pve1.home.arpa\n");
    write(root, "var/lib/dpkg/status", DPKG_STATUS);
    write(root, "etc/pve/corosync.conf", COROSYNC);
    write(root, "etc/pve/nodes/pve1/qemu-server/100.conf", VM_100);
    write(
        root,
        "etc/pve/nodes/pve1/qemu-server/9000.conf",
        "name: debian-tmpl\ntemplate: 1\n",
    );
    write(
        root,
        "etc/pve/nodes/pve1/qemu-server/notes.txt",
        "not a config\n",
    );
    write(root, "etc/pve/nodes/pve1/lxc/101.conf", CT_101);
    write(
        root,
        "etc/pve/nodes/pve2/qemu-server/200.conf",
        "name: elsewhere\n",
    );
    // pmxcfs links these to the local node's directories
    symlink(root, "etc/pve/qemu-server", "nodes/pve1/qemu-server");
    symlink(root, "etc/pve/lxc", "nodes/pve1/lxc");
}

#[test]
fn snapshot_sections_do_not_count() {
    let vm = parse_guest(100, GuestKind::Qemu, VM_100);
    assert_eq!(vm.name.as_deref(), Some("haos"));
    assert_eq!(
        vm.smbios_uuid.as_deref(),
        Some("7c6e5d4a-3b2c-4d1e-9f8a-0b1c2d3e4f50")
    );
    let ct = parse_guest(101, GuestKind::Lxc, CT_101);
    assert_eq!(ct.name.as_deref(), Some("pihole"));
    assert_eq!(ct.smbios_uuid, None);
}

#[test]
fn fixture_tree() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    pve_tree(root);
    let pve = collect(&Probe::new(root), &mut Problems::default()).unwrap();
    assert_eq!(pve.version.as_deref(), Some("8.2.4"));
    assert_eq!(pve.node.as_deref(), Some("pve1"));
    assert_eq!(pve.cluster.as_deref(), Some("homelab"));
    let summary: Vec<(u32, GuestKind, Option<&str>, bool)> = pve
        .guests
        .iter()
        .map(|g| (g.vmid, g.kind, g.name.as_deref(), g.template))
        .collect();
    assert_eq!(
        summary,
        vec![
            (100, GuestKind::Qemu, Some("haos"), false),
            (101, GuestKind::Lxc, Some("pihole"), false),
            (9000, GuestKind::Qemu, Some("debian-tmpl"), true),
        ]
    );
    let json = serde_json::to_value(&pve.guests[1]).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"vmid": 101, "type": "lxc", "name": "pihole"})
    );
}

#[test]
fn installed_but_pmxcfs_not_mounted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    mkdir(root, "usr/share/perl5/PVE");
    mkdir(root, "etc/pve");
    write(root, "etc/hostname", "pve2\n");
    let pve = collect(&Probe::new(root), &mut Problems::default()).unwrap();
    assert_eq!(pve.node.as_deref(), Some("pve2"));
    assert_eq!((pve.version, pve.cluster), (None, None));
    assert!(pve.guests.is_empty());
}

#[test]
fn this_machine() {
    let pve = collect(&Probe::new(Path::new("/")), &mut Problems::default());
    if !Path::new("/usr/share/perl5/PVE").exists() && !Path::new("/etc/pve").exists() {
        assert_eq!(pve, None);
    }
}

#[test]
fn malformed_and_shared_smbios_uuids_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    pve_tree(root);
    write(
        root,
        "etc/pve/nodes/pve1/qemu-server/102.conf",
        "name: broken\nsmbios1: uuid=not-a-uuid,manufacturer=x\n",
    );
    write(
        root,
        "etc/pve/nodes/pve1/qemu-server/103.conf",
        "name: clone\nsmbios1: uuid=7C6E5D4A-3B2C-4D1E-9F8A-0B1C2D3E4F50\n",
    );
    let mut problems = Problems::default();
    let pve = collect(&Probe::new(root), &mut problems).unwrap();
    let uuids: Vec<(u32, Option<&str>)> = pve
        .guests
        .iter()
        .map(|g| (g.vmid, g.smbios_uuid.as_deref()))
        .collect();
    assert_eq!(
        uuids,
        vec![
            (100, Some("7c6e5d4a-3b2c-4d1e-9f8a-0b1c2d3e4f50")),
            (101, None),
            (102, None),
            (103, Some("7C6E5D4A-3B2C-4D1E-9F8A-0B1C2D3E4F50")),
            (9000, None),
        ]
    );
    let messages: Vec<&str> = problems.list().iter().map(|p| p.message.as_str()).collect();
    assert_eq!(
        messages,
        vec![
            "guest 102 has smbios1 uuid 'not-a-uuid', which is not a UUID; its node cannot be matched to it (set a valid one in the VM's options)",
            "guests 100 and 103 have the same smbios1 uuid 7c6e5d4a-3b2c-4d1e-9f8a-0b1c2d3e4f50; a node inside either cannot be told apart (give one of them a new uuid)",
        ]
    );
    assert!(is_uuid("00000000-0000-0000-0000-00000000000a"));
    assert!(!is_uuid("00000000-0000-0000-0000-00000000000g"));
    assert!(!is_uuid("0000000000000000000000000000000000-0"));
}
