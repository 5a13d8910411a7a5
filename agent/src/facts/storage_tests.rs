//! Unit tests of the storage collector against fixture trees and this machine.

use std::path::Path;

use super::*;
use crate::facts::testutil::{symlink, write};

const SNAPRAID_CONF: &str = "\
# Example configuration for snapraid
parity /mnt/parity1/snapraid.parity
2-parity /mnt/parity2/snapraid.2-parity,/mnt/parity3/snapraid.2-parity

content /var/snapraid/snapraid.content
content /mnt/disk1/snapraid.content

data d1 /mnt/disk1/
data d2 /mnt/disk2/
disk d3 /mnt/disk3/

exclude *.unrecoverable
exclude /tmp/
autosave 500
";

const CEPH_CONF: &str = "\
[global]
\t auth_client_required = cephx
\t cluster_network = 10.10.10.11/24
\t fsid = 4a1b2c3d-5e6f-4789-8abc-def012345678
\t mon host = 10.10.10.11 10.10.10.12 10.10.10.13
\t public_network = 10.10.10.11/24

[client]
\t keyring = /etc/pve/priv/$cluster.$name.keyring

[mon.pve1]
\t public_addr = 10.10.10.11
\t fsid = not-this-one
";

#[test]
fn snapraid_layout() {
    let (snapraid, errors) = parse_snapraid(SNAPRAID_CONF);
    assert_eq!(errors, Vec::<String>::new());
    assert_eq!(
        snapraid.content,
        vec![
            "/var/snapraid/snapraid.content",
            "/mnt/disk1/snapraid.content"
        ]
    );
    assert_eq!(
        snapraid.parity,
        vec![
            "/mnt/parity1/snapraid.parity",
            "/mnt/parity2/snapraid.2-parity,/mnt/parity3/snapraid.2-parity"
        ]
    );
    let names: Vec<(&str, &str)> = snapraid
        .data
        .iter()
        .map(|d| (d.name.as_str(), d.path.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("d1", "/mnt/disk1/"),
            ("d2", "/mnt/disk2/"),
            ("d3", "/mnt/disk3/")
        ]
    );
    assert_eq!(parity_level("6-parity"), Some(6));
    assert_eq!(parity_level("7-parity"), None);
}

#[test]
fn ceph_global_section() {
    let ceph = parse_ceph(CEPH_CONF);
    assert_eq!(
        ceph.fsid.as_deref(),
        Some("4a1b2c3d-5e6f-4789-8abc-def012345678")
    );
    assert_eq!(
        ceph.mon_host.as_deref(),
        Some("10.10.10.11 10.10.10.12 10.10.10.13")
    );
}

#[test]
fn fixture_tree() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "proc/mounts",
        "/dev/sdb1 /mnt/disk1 ext4 rw 0 0\n\
         /mnt/disk1:/mnt/disk2 /mnt/storage fuse.mergerfs rw,user_id=0,group_id=0,allow_other 0 0\n",
    );
    write(root, "etc/snapraid.conf", SNAPRAID_CONF);
    // like Proxmox: /etc/ceph/ceph.conf -> /etc/pve/ceph.conf
    write(root, "etc/pve/ceph.conf", CEPH_CONF);
    symlink(root, "etc/ceph/ceph.conf", "/etc/pve/ceph.conf");
    write(
        root,
        "etc/fstab",
        "# <file system> <mount point> <type> <options> <dump> <pass>\n\
         UUID=0a1b /mnt/disk1 ext4 defaults 0 2\n\
         /mnt/disk1:/mnt/disk2 /mnt/storage fuse.mergerfs allow_other,category.create=mfs 0 0\n\
         /mnt/disk* /mnt/media fuse.mergerfs defaults,allow_other,fsname=media 0 0\n\
         #/mnt/old1:/mnt/old2 /mnt/old fuse.mergerfs defaults 0 0\n",
    );
    let mut problems = Problems::default();
    let storage = collect(&Probe::new(root), &mut problems).unwrap();
    assert_eq!(problems.list(), []);
    assert_eq!(
        storage.mergerfs,
        vec![
            MergerfsMount {
                mount_point: "/mnt/media".into(),
                branches: vec!["/mnt/disk*".into()],
                mounted: false,
                in_fstab: true,
            },
            MergerfsMount {
                mount_point: "/mnt/storage".into(),
                branches: vec!["/mnt/disk1".into(), "/mnt/disk2".into()],
                mounted: true,
                in_fstab: true,
            }
        ]
    );
    assert_eq!(storage.snapraid.map(|s| s.data.len()), Some(3));
    let ceph = storage.ceph.unwrap();
    assert!(ceph.fsid.is_some());
    assert_eq!(ceph.status, None, "no programs under a fixture root");
}

#[test]
fn malformed_snapraid_conf_is_reported_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "etc/snapraid.conf",
        "parity\ndata d1\ndata d2 /mnt/disk2\ncontent\n\n# data d3\n",
    );
    write(
        root,
        "proc/mounts",
        "/mnt/a:/mnt/b /mnt/pool fuse.mergerfs rw 0 0\n",
    );
    let mut problems = Problems::default();
    let storage = collect(&Probe::new(root), &mut problems).unwrap();
    let snapraid = storage.snapraid.unwrap();
    assert_eq!(snapraid.data.len(), 1);
    let messages: Vec<String> = problems
        .list()
        .iter()
        .map(|p| format!("{}: {}", p.collector, p.message))
        .collect();
    assert_eq!(
        messages,
        vec![
            "snapraid: /etc/snapraid.conf line 1: 'parity' needs a parity file",
            "snapraid: /etc/snapraid.conf line 2: 'data' needs a disk name and a directory",
            "snapraid: /etc/snapraid.conf line 4: 'content' needs a file",
            "snapraid: /etc/snapraid.conf names no parity file; snapraid refuses to run without one",
        ]
    );
    assert_eq!(
        storage.mergerfs,
        vec![MergerfsMount {
            mount_point: "/mnt/pool".into(),
            branches: vec!["/mnt/a".into(), "/mnt/b".into()],
            mounted: true,
            in_fstab: false,
        }]
    );
}

#[test]
fn nothing_present() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "proc/mounts", "/dev/sda1 / ext4 rw 0 0\n");
    assert_eq!(
        collect(&Probe::new(dir.path()), &mut Problems::default()),
        None
    );
}

#[test]
fn this_machine() {
    let storage = collect(&Probe::new(Path::new("/")), &mut Problems::default());
    if !Path::new("/etc/snapraid.conf").exists() && !Path::new("/etc/ceph/ceph.conf").exists() {
        assert!(storage.is_none_or(|s| s.snapraid.is_none() && s.ceph.is_none()));
    }
}
