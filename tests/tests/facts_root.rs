//! `lab-agent run --facts-root DIR` end to end: two agents report facts read from fixture trees
//! shaped like real systems, and the coordinator shows them: a Proxmox host (guests with
//! SMBIOS UUIDs, one of them malformed; Ceph client config; a mergerfs pool in fstab and
//! SnapRAID) and a NixOS VM inside it (DMI product UUID of one guest, k3s server,
//! generations). Malformed files arrive as collector errors beside the rest of the facts, and
//! fact selectors reach the new facts. A missing `--facts-root` is a usage error (exit 2).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use lab_tests::fixture_root::{pve_host, symlink, write};
use lab_tests::{bin, stderr, wait_until, Cluster};
use serde_json::Value;

const VM_UUID: &str = "5c1d7e2a-8b3f-4a6c-9d0e-1f2a3b4c5d6e";
const SYSTEM: &str =
    "/nix/store/8ilzc1l5n0qbbbm3lfr1m3m0k5jyh1ha-nixos-system-vm1-24.05.20240612.abcdef0";

/// A Proxmox VE host `pve1`: guests 100 (vm1), 101 (not enrolled), 102 (malformed smbios1).
fn proxmox_host(root: &Path) {
    write(root, "etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n");
    write(root, "etc/hostname", "pve1\n");
    write(root, "proc/sys/kernel/hostname", "pve1\n");
    write(root, "proc/meminfo", "MemTotal:       65536000 kB\n");
    write(
        root,
        "sys/class/dmi/id/product_uuid",
        "0a0b0c0d-0000-4000-8000-000000000001\n",
    );
    pve_host(root);
    let qemu = "etc/pve/nodes/pve1/qemu-server";
    write(
        root,
        &format!("{qemu}/100.conf"),
        &format!(
            "name: vm1\nsmbios1: uuid={}\nmemory: 8192\n",
            VM_UUID.to_uppercase()
        ),
    );
    write(
        root,
        &format!("{qemu}/101.conf"),
        "name: spare\nsmbios1: uuid=6d2e8f3b-9c4a-4b7d-8e1f-2a3b4c5d6e7f\n",
    );
    write(
        root,
        &format!("{qemu}/102.conf"),
        "name: odd\nsmbios1: uuid=1234\n",
    );
    symlink(root, "etc/pve/qemu-server", "nodes/pve1/qemu-server");
    write(
        root,
        "etc/pve/ceph.conf",
        "[global]\n\t fsid = 4a1b2c3d-5e6f-4789-8abc-def012345678\n\t mon_host = 10.0.0.11\n",
    );
    symlink(root, "etc/ceph/ceph.conf", "/etc/pve/ceph.conf");
    write(
        root,
        "etc/fstab",
        "/mnt/disk* /mnt/pool fuse.mergerfs allow_other,category.create=mfs 0 0\n",
    );
    write(
        root,
        "etc/snapraid.conf",
        "parity /mnt/parity1/snapraid.parity\ndata d1 /mnt/disk1/\ndata d2\n",
    );
}

/// A NixOS VM `vm1` (guest 100 of pve1) running a k3s server, on generation 2 of 2 but booted
/// into 1 with another kernel.
fn nixos_vm(root: &Path) {
    write(root, "etc/NIXOS", "");
    write(root, "etc/os-release", "ID=nixos\nVERSION_ID=\"24.05\"\n");
    write(root, "etc/hostname", "vm1\n");
    write(root, "proc/sys/kernel/hostname", "vm1\n");
    write(
        root,
        "sys/class/dmi/id/product_uuid",
        &format!("{VM_UUID}\n"),
    );
    let booted =
        "/nix/store/2m0aqy9w2a2xg7vh3h5r1m9ykd0p6x8c-nixos-system-vm1-24.05.20240601.1234567";
    for (system, version, kernel) in [
        (SYSTEM, "24.05.20240612.abcdef0 (Uakari)", "6.6.32"),
        (booted, "24.05.20240601.1234567 (Uakari)", "6.6.30"),
    ] {
        let at = &system[1..];
        write(
            root,
            &format!("{at}/nixos-version"),
            &format!("{version}\n"),
        );
        let modules = format!("/nix/store/{kernel}-linux-{kernel}-modules");
        write(
            root,
            &format!("{}/lib/modules/{kernel}/modules.dep", &modules[1..]),
            "",
        );
        symlink(root, &format!("{at}/kernel-modules"), &modules);
        symlink(
            root,
            &format!("{at}/kernel"),
            &format!("/nix/store/{kernel}-linux-{kernel}/bzImage"),
        );
    }
    symlink(root, "nix/var/nix/profiles/system-1-link", booted);
    symlink(root, "nix/var/nix/profiles/system-2-link", SYSTEM);
    symlink(root, "nix/var/nix/profiles/system", "system-2-link");
    symlink(root, "run/current-system", SYSTEM);
    symlink(root, "run/booted-system", booted);
    write(
        root,
        "etc/systemd/system/k3s.service",
        "[Service]\nExecStart=/nix/store/x-k3s/bin/k3s server --cluster-init --token-file /run/k3s-token\n",
    );
    write(root, "run/k3s-token", "s3cret-token\n");
}

fn node_facts(c: &Cluster, name: &str) -> Value {
    let out = c.labctl(&["node", "show", name, "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let node: Value = serde_json::from_slice(&out.stdout).unwrap();
    node["facts"].clone()
}

fn names(c: &Cluster, selector: &str) -> Vec<String> {
    c.node_names(selector)
}

#[test]
fn agents_report_facts_from_fixture_roots() {
    let mut c = Cluster::builder().agents(0).start();
    for (name, build) in [("pve1", proxmox_host as fn(&Path)), ("vm1", nixos_vm)] {
        let root = c.tmp.path().join(format!("root-{name}"));
        build(&root);
        c.add_agent_with_facts_root(name, &root);
    }
    wait_until(
        || {
            names(&c, "facts.platform.os=debian").len() + names(&c, "facts.platform.os=nixos").len()
                == 2
        },
        Duration::from_secs(30),
        &format!("both nodes with their fixture facts\n{}", c.logs()),
    );

    let pve = node_facts(&c, "pve1");
    let guests: Vec<(u64, Option<&str>)> = pve["proxmox"]["guests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["vmid"].as_u64().unwrap(), g["smbios_uuid"].as_str()))
        .collect();
    let upper = VM_UUID.to_uppercase();
    assert_eq!(
        guests,
        vec![
            (100, Some(upper.as_str())),
            (101, Some("6d2e8f3b-9c4a-4b7d-8e1f-2a3b4c5d6e7f")),
            (102, None)
        ],
        "{pve:#}"
    );
    assert_eq!(pve["proxmox"]["node"], "pve1");
    assert_eq!(
        pve["storage"]["ceph"]["fsid"],
        "4a1b2c3d-5e6f-4789-8abc-def012345678"
    );
    assert!(
        pve["storage"]["ceph"].get("status").is_none(),
        "no ceph run under a facts root"
    );
    assert_eq!(pve["storage"]["mergerfs"][0]["mount_point"], "/mnt/pool");
    assert_eq!(pve["storage"]["mergerfs"][0]["mounted"], false);
    assert_eq!(pve["storage"]["snapraid"]["data"][0]["name"], "d1");
    let errors: Vec<String> = pve["collector_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e["collector"].as_str().unwrap(),
                e["message"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        errors,
        vec![
            "proxmox: guest 102 has smbios1 uuid '1234', which is not a UUID; its node cannot be matched to it (set a valid one in the VM's options)",
            "snapraid: /etc/snapraid.conf line 3: 'data' needs a disk name and a directory",
        ]
    );
    assert!(
        pve["hardware"].get("filesystems").is_none(),
        "no /proc/mounts in the fixture"
    );

    let vm = node_facts(&c, "vm1");
    assert_eq!(vm["hardware"]["dmi"]["product_uuid"], VM_UUID);
    let k3s = &vm["containers"]["k3s"];
    assert_eq!(k3s["role"], "server", "{vm:#}");
    assert_eq!(k3s["cluster_init"], true);
    assert_eq!(k3s["node_name"], "vm1");
    assert_eq!(k3s["token_sha256"].as_str().unwrap().len(), 64);
    assert!(
        !vm.to_string().contains("s3cret-token"),
        "the k3s token leaked"
    );
    let nixos = &vm["nixos"];
    assert_eq!(nixos["reboot_needed"], true);
    assert_eq!(nixos["generation"], 2);
    assert_eq!(nixos["generations"][0]["booted"], true);
    assert_eq!(nixos["generations"][0]["kernel"], "6.6.30");
    assert_eq!(nixos["generations"][1]["current"], true);
    assert_eq!(
        nixos["generations"][1]["nixos_version"],
        "24.05.20240612.abcdef0 (Uakari)"
    );
    assert!(vm.get("collector_errors").is_none(), "{vm:#}");

    // the new facts are selectable like any other
    assert_eq!(names(&c, "facts.containers.k3s.role=server"), ["vm1"]);
    assert_eq!(names(&c, "facts.nixos.reboot_needed=true"), ["vm1"]);
    assert_eq!(names(&c, "facts.proxmox.node=pve1"), ["pve1"]);
}

#[test]
fn facts_root_must_be_a_directory() {
    let out = Command::new(bin("lab-agent"))
        .args([
            "run",
            "--data-dir",
            "/nonexistent-lab-agent",
            "--facts-root",
            "/nonexistent-lab-root",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--facts-root /nonexistent-lab-root is not a directory"),
        "{}",
        stderr(&out)
    );
    let out = Command::new(bin("lab-agent"))
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--facts-root <DIR>"), "{help}");
    assert!(help.contains("LAB_FACTS_ROOT"), "{help}");
}
