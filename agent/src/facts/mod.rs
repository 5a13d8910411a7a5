//! Fact collection: each area is its own collector returning typed facts; the set is reported as
//! one JSON object (areas that do not apply are absent, never errors).
//!
//! Collectors read files relative to a root directory (normally `/`), so a mounted disk image or a
//! fixture tree can be inspected the same way; symlinks are resolved inside that root
//! ([`rootfs`]). Programs (`systemctl`, `k3s --version`, `ceph status`, `psql`) run only when the
//! root is `/`, each with its own deadline ([`probe`]).
//!
//! Something a collector could not read or understand (a malformed config file, a `ceph` that
//! hangs, a PostgreSQL that refuses the connection, an area past its deadline) is reported under
//! `collector_errors` ([`CollectorError`]) and the rest of the facts still arrive; software that
//! is simply not installed is absent, never an error.
//!
//! Architecture invariant: the JSON never contains `null`. Facts travel as JSON merge patches
//! (RFC 7386), where `null` means "delete this key", so an unknown value is an absent key
//! (`skip_serializing_if`), and floats (which serialize NaN as `null`) are not used.

pub mod ceph;
pub mod containers;
pub mod debian;
pub mod fsusage;
pub mod hardware;
pub mod k3s;
pub mod netaddr;
pub mod nixos;
pub mod platform;
pub mod postgres;
pub mod probe;
pub mod proxmox;
pub mod rootfs;
pub mod services;
pub mod storage;
pub mod virt;

mod control;
mod debversion;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod testutil;

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use probe::Probe;

/// All facts of this machine. `platform` and `hardware` are always present; the other areas
/// only where they apply.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FactSet {
    /// OS, kernel, architecture, memory, CPU count, virtualization.
    pub platform: platform::Platform,
    /// CPU, memory, disks, filesystems, NICs, DMI.
    pub hardware: hardware::Hardware,
    /// NixOS generations; only on NixOS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nixos: Option<nixos::NixOs>,
    /// dpkg packages, upgrades, reboot-required; only where dpkg is installed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub debian: Option<debian::Debian>,
    /// Proxmox VE node, cluster and guests; only on PVE hosts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxmox: Option<proxmox::Proxmox>,
    /// systemd units and listening ports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub services: Option<services::Services>,
    /// Docker, Podman, k3s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub containers: Option<containers::Containers>,
    /// mergerfs, SnapRAID, Ceph.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<storage::Storage>,
    /// PostgreSQL clusters on this host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgresql: Option<postgres::Postgresql>,
    /// What collectors could not read or understand, sorted; absent when nothing went wrong.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub collector_errors: Vec<CollectorError>,
}

/// One problem a collector met. The facts it could collect are still reported.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct CollectorError {
    /// The collector: an area (`storage`) or a part of one (`ceph`, `k3s`, `postgresql`).
    pub collector: String,
    /// What went wrong and, where it helps, what to do; stable from one collection to the next
    /// (no times or process ids), so an unchanged problem sends no facts patch.
    pub message: String,
}

/// Where a collector reports its problems.
#[derive(Debug, Default)]
pub struct Problems(Vec<CollectorError>);

impl Problems {
    /// Records that `collector` met a problem.
    pub fn add(&mut self, collector: &str, message: impl Into<String>) {
        self.0.push(CollectorError {
            collector: collector.to_owned(),
            message: message.into(),
        });
    }

    /// The problems recorded so far.
    pub fn list(&self) -> &[CollectorError] {
        &self.0
    }
}

/// How long one area may take before this collection goes on without it (a hung NFS mount or
/// `systemctl` must not stall the whole report).
pub const AREA_TIMEOUT: Duration = Duration::from_secs(10);

/// Collects every area under `root` (programs only when it is `/`); see [`collect_with`].
pub fn collect(root: &Path) -> FactSet {
    collect_with(&Probe::new(root))
}

/// Collects every area, each in its own thread with [`AREA_TIMEOUT`]; an area that does not
/// finish in time is left out of this collection (platform and hardware: empty) and named in
/// `collector_errors`.
pub fn collect_with(probe: &Probe) -> FactSet {
    let platform = bounded("platform", probe, |p, _| platform::collect(p.root()));
    let hardware = bounded("hardware", probe, hardware::collect);
    let nixos = bounded("nixos", probe, |p, _| nixos::collect(p.root()));
    let debian = bounded("debian", probe, |p, _| debian::collect(p.root()));
    let proxmox = bounded("proxmox", probe, proxmox::collect);
    let services = bounded("services", probe, services::collect);
    let containers = bounded("containers", probe, containers::collect);
    let storage = bounded("storage", probe, storage::collect);
    let postgresql = bounded("postgresql", probe, postgres::collect);
    let mut problems = Problems::default();
    let mut facts = FactSet {
        platform: platform.wait(&mut problems).unwrap_or_default(),
        hardware: hardware.wait(&mut problems).unwrap_or_default(),
        nixos: nixos.wait(&mut problems).flatten(),
        debian: debian.wait(&mut problems).flatten(),
        proxmox: proxmox.wait(&mut problems).flatten(),
        services: services.wait(&mut problems).flatten(),
        containers: containers.wait(&mut problems).flatten(),
        storage: storage.wait(&mut problems).flatten(),
        postgresql: postgresql.wait(&mut problems).flatten(),
        collector_errors: Vec::new(),
    };
    let mut errors = problems.0;
    errors.sort();
    errors.dedup();
    facts.collector_errors = errors;
    facts
}

/// One area being collected on its own thread.
struct Pending<T> {
    area: &'static str,
    started: Instant,
    rx: Option<mpsc::Receiver<(T, Problems)>>,
}

impl<T> Pending<T> {
    /// The area's result, or `None` if it failed or ran past the deadline (said in `problems`).
    fn wait(self, problems: &mut Problems) -> Option<T> {
        let Some(rx) = self.rx else {
            problems.add(self.area, "cannot start a thread for this collector");
            return None;
        };
        let left = AREA_TIMEOUT.saturating_sub(self.started.elapsed());
        match rx.recv_timeout(left) {
            Ok((value, found)) => {
                problems.0.extend(found.0);
                Some(value)
            }
            Err(_) => {
                tracing::warn!(area = self.area, timeout = ?AREA_TIMEOUT, "fact collector did not finish; left out");
                problems.add(
                    self.area,
                    format!(
                        "did not finish within {}; left out of this report",
                        humantime::format_duration(AREA_TIMEOUT)
                    ),
                );
                None
            }
        }
    }
}

fn bounded<T, F>(area: &'static str, probe: &Probe, f: F) -> Pending<T>
where
    T: Send + 'static,
    F: FnOnce(&Probe, &mut Problems) -> T + Send + 'static,
{
    let probe = probe.clone();
    let (tx, rx) = mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name(format!("facts-{area}"))
        .spawn(move || {
            let mut problems = Problems::default();
            let value = f(&probe, &mut problems);
            let _ = tx.send((value, problems));
        });
    Pending {
        area,
        started: Instant::now(),
        rx: spawned.ok().map(|_| rx),
    }
}

/// The fact set as the JSON document sent to the coordinator.
pub fn to_json(facts: &FactSet) -> serde_json::Value {
    serde_json::to_value(facts).unwrap_or_else(|_| serde_json::json!({}))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use serde_json::Value;

    use super::testutil::{mkdir, symlink, write};
    use super::*;

    /// Paths of every `null` in `value`.
    fn nulls(value: &Value, path: &str, found: &mut Vec<String>) {
        match value {
            Value::Null => found.push(path.to_owned()),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    nulls(item, &format!("{path}[{i}]"), found);
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    nulls(item, &format!("{path}.{key}"), found);
                }
            }
            Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
        }
    }

    fn assert_no_nulls(doc: &Value) {
        let mut found = Vec::new();
        nulls(doc, "", &mut found);
        assert!(found.is_empty(), "null at {found:?} in {doc:#}");
    }

    #[test]
    fn this_machine_has_no_nulls() {
        let facts = collect(Path::new("/"));
        let doc = to_json(&facts);
        assert_no_nulls(&doc);
        assert!(doc["platform"]["os"].is_string());
        assert!(doc["hardware"]["memory"]["total_bytes"].is_u64());
        // the build machine is Debian 12 with dpkg
        assert!(doc["debian"]["packages_installed"].is_u64());
    }

    #[test]
    fn empty_and_busy_trees_have_no_nulls() {
        let empty = tempfile::tempdir().unwrap();
        let doc = to_json(&collect(empty.path()));
        assert_no_nulls(&doc);
        let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
        assert_eq!(keys, vec!["hardware", "platform"]);

        // every area present, with values missing here and there
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "etc/os-release", "ID=nixos\n");
        symlink(root, "run/current-system", "/nix/store/abc-nixos-system");
        write(
            root,
            "var/lib/dpkg/status",
            "Package: pve-manager\nStatus: install ok installed\nVersion: 8.2.4\n",
        );
        write(
            root,
            "var/lib/apt/lists/x_dists_y_main_binary-amd64_Packages",
            "Package: pve-manager\nVersion: 8.2.5\n",
        );
        mkdir(root, "usr/share/perl5/PVE");
        write(root, "etc/pve/qemu-server/100.conf", "smbios1: base64=1\n");
        write(
            root,
            "proc/net/tcp",
            "header\n 0: 00000000:0016 00000000:0000 0A\n",
        );
        write(root, "usr/bin/podman", "");
        write(root, "etc/snapraid.conf", "parity\n");
        write(root, "etc/ceph/ceph.conf", "[global]\nfsid =\n");
        write(root, "proc/cpuinfo", "processor : 0\n");
        write(root, "sys/block/sda/size", "x\n");
        write(root, "sys/class/net/eth0/speed", "-1\n");
        let doc = to_json(&collect(root));
        assert_no_nulls(&doc);
        for area in [
            "platform",
            "hardware",
            "nixos",
            "debian",
            "proxmox",
            "services",
            "containers",
            "storage",
        ] {
            assert!(doc.get(area).is_some(), "{area} missing in {doc:#}");
        }
        assert_eq!(doc["debian"]["upgradable"]["count"], 1);
        assert_eq!(
            doc["proxmox"]["guests"][0],
            serde_json::json!({"vmid": 100, "type": "qemu"})
        );
    }
}
