//! Container runtime facts: Docker and Podman presence, k3s presence and role.
//!
//! Only files are looked at: sockets and binaries for the engines, the k3s binary, config
//! directory and systemd units for k3s. Listing running containers (Docker/Podman API over the
//! socket) and the k3s version (`k3s --version`) belong to a later issue; they will join these
//! structs as new optional fields.

use std::path::Path;

use serde::Serialize;

use super::rootfs::exists;

/// Directories searched for binaries; NixOS's system profile included.
const BIN_DIRS: &[&str] = &["usr/bin", "usr/local/bin", "run/current-system/sw/bin"];

/// Container runtime facts.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Containers {
    /// Docker; absent when neither its binary nor its socket exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker: Option<Engine>,
    /// Podman; absent when neither its binary nor its socket exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub podman: Option<Engine>,
    /// k3s; absent when neither its binary nor `etc/rancher/k3s` exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k3s: Option<K3s>,
}

/// A container engine.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Engine {
    /// The CLI is installed.
    pub binary: bool,
    /// The system API socket exists (the daemon or its socket unit is set up).
    pub socket: bool,
}

/// k3s.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct K3s {
    /// The `k3s` binary is installed (`usr/local/bin/k3s` from the installer, or a package).
    pub binary: bool,
    /// Server or agent, from the installer's systemd unit; absent when there is none (NixOS
    /// module, manual setup).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<K3sRole>,
}

/// k3s node role.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum K3sRole {
    /// Control plane (`k3s.service`).
    Server,
    /// Worker (`k3s-agent.service`).
    Agent,
}

/// Collects container runtime facts; `None` when nothing is present.
pub fn collect(root: &Path) -> Option<Containers> {
    let containers = Containers {
        docker: engine(root, "docker", &["run/docker.sock", "var/run/docker.sock"]),
        podman: engine(
            root,
            "podman",
            &["run/podman/podman.sock", "var/run/podman/podman.sock"],
        ),
        k3s: k3s(root),
    };
    (containers != Containers::default()).then_some(containers)
}

fn has_binary(root: &Path, name: &str) -> bool {
    BIN_DIRS
        .iter()
        .any(|dir| exists(root, &format!("{dir}/{name}")))
}

fn engine(root: &Path, binary: &str, sockets: &[&str]) -> Option<Engine> {
    let engine = Engine {
        binary: has_binary(root, binary),
        socket: sockets.iter().any(|s| exists(root, s)),
    };
    (engine.binary || engine.socket).then_some(engine)
}

fn k3s(root: &Path) -> Option<K3s> {
    let binary = has_binary(root, "k3s");
    if !binary && !exists(root, "etc/rancher/k3s") {
        return None;
    }
    let unit = |name: &str| exists(root, &format!("etc/systemd/system/{name}"));
    let role = if unit("k3s.service") {
        Some(K3sRole::Server)
    } else if unit("k3s-agent.service") {
        Some(K3sRole::Agent)
    } else {
        None
    };
    Some(K3s { binary, role })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::facts::testutil::{mkdir, symlink, write};

    #[test]
    fn docker_host_with_k3s_agent() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "usr/bin/docker", "");
        // a real socket is not needed: presence of the path is what counts
        write(root, "run/docker.sock", "");
        write(root, "usr/local/bin/k3s", "");
        write(
            root,
            "etc/systemd/system/k3s-agent.service",
            "[Service]\nExecStart=/usr/local/bin/k3s agent\n",
        );
        write(root, "etc/rancher/k3s/registries.yaml", "");
        let containers = collect(root).unwrap();
        assert_eq!(
            containers.docker,
            Some(Engine {
                binary: true,
                socket: true
            })
        );
        assert_eq!(containers.podman, None);
        assert_eq!(
            containers.k3s,
            Some(K3s {
                binary: true,
                role: Some(K3sRole::Agent)
            })
        );
        let json = serde_json::to_value(&containers).unwrap();
        assert_eq!(json["k3s"]["role"], "agent");
    }

    #[test]
    fn podman_socket_through_var_run_link_and_k3s_server() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        symlink(root, "var/run", "/run");
        write(root, "run/podman/podman.sock", "");
        mkdir(root, "etc/rancher/k3s");
        write(root, "etc/systemd/system/k3s.service", "");
        let containers = collect(root).unwrap();
        assert_eq!(
            containers.podman,
            Some(Engine {
                binary: false,
                socket: true
            })
        );
        assert_eq!(
            containers.k3s,
            Some(K3s {
                binary: false,
                role: Some(K3sRole::Server)
            })
        );
    }

    #[test]
    fn nothing_present() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(collect(dir.path()), None);
    }

    #[test]
    fn this_machine() {
        let containers = collect(Path::new("/"));
        if Path::new("/usr/bin/docker").exists() {
            assert!(containers.and_then(|c| c.docker).is_some());
        }
    }
}
