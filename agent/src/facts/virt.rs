//! Virtualization detection: is this machine a container, a virtual machine, or bare metal.
//!
//! The result is `platform.virtualization` (not an area of its own): it is one word that
//! describes the platform, and DESIGN §4 derives the `virt` label from it next to `os` and
//! `arch`. Containers are checked first, as `systemd-detect-virt` does, because a container
//! inside a VM sees the VM's DMI and CPU flags too.
//!
//! Under a root other than `/` that is not a running system (a mounted disk image), `proc` and
//! `sys` are empty and the answer is `none` from lack of evidence.

use std::path::Path;

use serde::Serialize;

use super::rootfs::{exists, read_raw, read_trimmed};

/// Where this machine runs; serialized as one lowercase word.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Virtualization {
    /// QEMU with KVM acceleration (Proxmox VMs, libvirt), or a cloud KVM that says so in DMI.
    Kvm,
    /// QEMU without evidence of KVM (pure emulation).
    Qemu,
    /// VMware.
    Vmware,
    /// VirtualBox.
    Virtualbox,
    /// Microsoft Hyper-V.
    Hyperv,
    /// Xen.
    Xen,
    /// Another hypervisor (the CPU says `hypervisor`, DMI does not say which).
    Vm,
    /// LXC container (Proxmox CT, Incus/LXD).
    Lxc,
    /// Docker container.
    Docker,
    /// Podman container.
    Podman,
    /// Another container manager (systemd-nspawn, ...).
    Container,
    /// Bare metal, or no evidence of anything else.
    #[serde(rename = "none")]
    #[default]
    BareMetal,
}

impl Virtualization {
    /// Whether this is a container (shares the host's kernel).
    pub fn is_container(self) -> bool {
        matches!(
            self,
            Self::Lxc | Self::Docker | Self::Podman | Self::Container
        )
    }
}

/// Detects the virtualization of the machine under `root`.
pub fn detect(root: &Path) -> Virtualization {
    detect_container(root)
        .or_else(|| detect_vm(root))
        .unwrap_or(Virtualization::BareMetal)
}

/// Maps a container manager's name (the `container=` variable systemd documents) to a kind.
fn container_kind(name: &str) -> Virtualization {
    match name.trim() {
        "lxc" | "lxc-libvirt" => Virtualization::Lxc,
        "docker" => Virtualization::Docker,
        "podman" => Virtualization::Podman,
        _ => Virtualization::Container,
    }
}

fn detect_container(root: &Path) -> Option<Virtualization> {
    // written by systemd (and by LXC/podman for it) inside containers
    if let Some(name) = read_trimmed(root, "run/systemd/container") {
        return Some(container_kind(&name));
    }
    // readable by root only; silently skipped otherwise
    if let Some(environ) = read_raw(root, "proc/1/environ") {
        let value = environ
            .split('\0')
            .find_map(|var| var.strip_prefix("container="));
        if let Some(name) = value.filter(|v| !v.is_empty()) {
            return Some(container_kind(name));
        }
    }
    if exists(root, ".dockerenv") {
        return Some(Virtualization::Docker);
    }
    if exists(root, "run/.containerenv") {
        return Some(Virtualization::Podman);
    }
    read_raw(root, "proc/1/cgroup").and_then(|text| cgroup_container(&text))
}

/// Container evidence in `/proc/1/cgroup` (cgroup v1 hosts; under cgroup v2 namespaces PID 1
/// sees `0::/`).
fn cgroup_container(text: &str) -> Option<Virtualization> {
    text.lines()
        .filter_map(|line| line.splitn(3, ':').nth(2))
        .find_map(|path| {
            if path.contains("/docker/") || path.contains("/docker-") {
                Some(Virtualization::Docker)
            } else if path.contains("libpod") {
                Some(Virtualization::Podman)
            } else if path.starts_with("/lxc/") || path.contains("/lxc.payload") {
                Some(Virtualization::Lxc)
            } else {
                None
            }
        })
}

fn detect_vm(root: &Path) -> Option<Virtualization> {
    let dmi = |name: &str| read_trimmed(root, &format!("sys/class/dmi/id/{name}"));
    let identity = [dmi("sys_vendor"), dmi("product_name"), dmi("bios_vendor")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let hypervisor_flag = read_raw(root, "proc/cpuinfo").is_some_and(|t| {
        t.lines()
            .filter(|l| l.starts_with("flags"))
            .any(|l| l.split_whitespace().any(|f| f == "hypervisor"))
    });
    let kvm_clock = read_raw(
        root,
        "sys/devices/system/clocksource/clocksource0/available_clocksource",
    )
    .is_some_and(|t| t.split_whitespace().any(|c| c == "kvm-clock"));
    let xen = read_trimmed(root, "sys/hypervisor/type").is_some_and(|t| t == "xen");
    vm_kind(&identity, hypervisor_flag, kvm_clock, xen)
}

/// Decides the VM kind from the DMI vendor/product/BIOS text and CPU and clock evidence.
fn vm_kind(
    identity: &str,
    hypervisor_flag: bool,
    kvm_clock: bool,
    xen: bool,
) -> Option<Virtualization> {
    let has = |needle: &str| identity.contains(needle);
    let kind = if has("QEMU") {
        // the hypervisor CPU flag is set by KVM; kvm-clock is conclusive
        if kvm_clock || hypervisor_flag {
            Virtualization::Kvm
        } else {
            Virtualization::Qemu
        }
    } else if has("KVM") {
        Virtualization::Kvm
    } else if has("VMware") {
        Virtualization::Vmware
    } else if has("VirtualBox") || has("innotek") {
        Virtualization::Virtualbox
    } else if has("Microsoft Corporation") && has("Virtual Machine") {
        Virtualization::Hyperv
    } else if xen || has("Xen") {
        Virtualization::Xen
    } else if kvm_clock {
        Virtualization::Kvm
    } else if hypervisor_flag {
        Virtualization::Vm
    } else {
        return None;
    };
    Some(kind)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::facts::testutil::write;

    #[test]
    fn vm_kinds() {
        let qemu = "QEMU Standard PC (i440FX + PIIX, 1996) SeaBIOS";
        assert_eq!(vm_kind(qemu, true, false, false), Some(Virtualization::Kvm));
        assert_eq!(vm_kind(qemu, false, true, false), Some(Virtualization::Kvm));
        assert_eq!(
            vm_kind(qemu, false, false, false),
            Some(Virtualization::Qemu)
        );
        let vmware = "VMware, Inc. VMware Virtual Platform Phoenix Technologies LTD";
        assert_eq!(
            vm_kind(vmware, true, false, false),
            Some(Virtualization::Vmware)
        );
        let vbox = "innotek GmbH VirtualBox innotek GmbH";
        assert_eq!(
            vm_kind(vbox, true, false, false),
            Some(Virtualization::Virtualbox)
        );
        let hyperv = "Microsoft Corporation Virtual Machine Microsoft Corporation";
        assert_eq!(
            vm_kind(hyperv, true, false, false),
            Some(Virtualization::Hyperv)
        );
        assert_eq!(vm_kind("", true, false, true), Some(Virtualization::Xen));
        assert_eq!(vm_kind("", true, false, false), Some(Virtualization::Vm));
        assert_eq!(vm_kind("", false, true, false), Some(Virtualization::Kvm));
        let laptop = "LENOVO 20XW0055GE LENOVO";
        assert_eq!(vm_kind(laptop, false, false, false), None);
    }

    #[test]
    fn cgroup_v1_paths() {
        let docker = "12:pids:/docker/3f1c2a\n0::/docker/3f1c2a\n";
        assert_eq!(cgroup_container(docker), Some(Virtualization::Docker));
        let lxc = "0::/lxc.payload.ct101/init.scope\n";
        assert_eq!(cgroup_container(lxc), Some(Virtualization::Lxc));
        assert_eq!(cgroup_container("0::/init.scope\n"), None);
    }

    #[test]
    fn fixture_trees() {
        let detect_with = |files: &[(&str, &str)]| {
            let dir = tempfile::tempdir().unwrap();
            for (rel, content) in files {
                write(dir.path(), rel, content);
            }
            detect(dir.path())
        };
        assert_eq!(detect_with(&[]), Virtualization::BareMetal);
        let proxmox_vm = [
            ("sys/class/dmi/id/sys_vendor", "QEMU\n"),
            (
                "sys/class/dmi/id/product_name",
                "Standard PC (Q35 + ICH9, 2009)\n",
            ),
            (
                "proc/cpuinfo",
                "processor\t: 0\nflags\t\t: fpu sse2 hypervisor lahf_lm\n",
            ),
        ];
        assert_eq!(detect_with(&proxmox_vm), Virtualization::Kvm);
        let proxmox_ct = [
            (
                "proc/1/environ",
                "PATH=/usr/bin\0container=lxc\0TERM=linux\0",
            ),
            (
                "proc/cpuinfo",
                "processor\t: 0\nflags\t\t: fpu hypervisor\n",
            ),
        ];
        assert_eq!(detect_with(&proxmox_ct), Virtualization::Lxc);
        assert_eq!(
            detect_with(&[("run/systemd/container", "systemd-nspawn\n")]),
            Virtualization::Container
        );
        assert_eq!(detect_with(&[(".dockerenv", "")]), Virtualization::Docker);
        assert_eq!(
            detect_with(&[("run/.containerenv", "engine=\"podman-4.9\"\n")]),
            Virtualization::Podman
        );
    }

    #[test]
    fn serialized_as_one_word() {
        let words: Vec<String> = [
            Virtualization::Kvm,
            Virtualization::BareMetal,
            Virtualization::Lxc,
        ]
        .iter()
        .map(|v| serde_json::to_string(v).unwrap())
        .collect();
        assert_eq!(words, vec!["\"kvm\"", "\"none\"", "\"lxc\""]);
        assert!(Virtualization::Lxc.is_container());
        assert!(!Virtualization::Kvm.is_container());
    }

    #[test]
    fn this_machine() {
        let virt = detect(Path::new("/"));
        // this build machine is a Docker container; elsewhere any answer is fine
        if Path::new("/.dockerenv").exists() {
            assert_eq!(virt, Virtualization::Docker);
        }
    }
}
