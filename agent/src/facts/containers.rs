//! Container runtime facts: Docker and Podman presence and running containers, and k3s
//! ([`super::k3s`]).
//!
//! Files are looked at for presence: sockets and binaries for the engines. When the root is `/`
//! and an engine's socket exists, its running containers are listed through the Engine API
//! ([`crate::containers::engine`]), within [`ENGINE_TIMEOUT`]; an engine that does not answer
//! leaves `running` out.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

pub use super::k3s::{K3s, K3sRole};
use super::rootfs::exists;
use super::{Probe, Problems};
use crate::containers::engine;

/// How long one engine may take to list its running containers.
pub const ENGINE_TIMEOUT: Duration = Duration::from_secs(3);

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
    /// Running containers, sorted by name; absent when not asked (root is not `/`, no socket)
    /// or when the engine did not answer, empty when none runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running: Option<Vec<RunningContainer>>,
}

/// A running container.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunningContainer {
    /// Name, without the leading `/`.
    pub name: String,
    /// Image as the container was created with it (`busybox:lab`).
    pub image: String,
    /// `running`, `paused` or `restarting`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The engine's human status, e.g. `Up 5 minutes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// First 12 hex digits of the container id.
    pub id: String,
}

/// Collects container runtime facts; `None` when nothing is present.
pub fn collect(probe: &Probe, problems: &mut Problems) -> Option<Containers> {
    let root = probe.root();
    let containers = Containers {
        docker: engine(root, "docker", &["run/docker.sock", "var/run/docker.sock"]),
        podman: engine(
            root,
            "podman",
            &["run/podman/podman.sock", "var/run/podman/podman.sock"],
        ),
        k3s: super::k3s::collect(probe, has_binary(root, "k3s"), problems),
    };
    (containers != Containers::default()).then_some(containers)
}

fn has_binary(root: &Path, name: &str) -> bool {
    BIN_DIRS
        .iter()
        .any(|dir| exists(root, &format!("{dir}/{name}")))
}

fn engine(root: &Path, binary: &str, sockets: &[&str]) -> Option<Engine> {
    let socket = sockets.iter().find(|s| exists(root, s));
    let running = match socket {
        // only the live system's engine can be asked; a mounted image's socket is just a file
        Some(socket) if root == Path::new("/") => list_running(root.join(socket)),
        _ => None,
    };
    let engine = Engine {
        binary: has_binary(root, binary),
        socket: socket.is_some(),
        running,
    };
    (engine.binary || engine.socket).then_some(engine)
}

/// The engine's running containers, or `None` when it cannot be asked within [`ENGINE_TIMEOUT`].
/// Collectors are synchronous, so this runs a small current-thread runtime; on a thread of its
/// own when called from inside a runtime (where `block_on` would panic).
fn list_running(socket: PathBuf) -> Option<Vec<RunningContainer>> {
    let query = move || -> Option<Vec<RunningContainer>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        // the timeout is made inside `block_on`: its timer needs the runtime's context
        let listed = rt.block_on(async {
            tokio::time::timeout(ENGINE_TIMEOUT, async {
                let docker = engine::connect(&socket).await?;
                engine::list_running(&docker).await
            })
            .await
        });
        match listed {
            Ok(Ok(running)) => Some(running.into_iter().map(RunningContainer::from).collect()),
            Ok(Err(e)) => {
                tracing::debug!(socket = %socket.display(), error = %e, "cannot list containers");
                None
            }
            Err(_) => {
                tracing::debug!(socket = %socket.display(), "container engine did not answer in time");
                None
            }
        }
    };
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| s.spawn(query).join().ok().flatten())
    } else {
        query()
    }
}

impl From<engine::Running> for RunningContainer {
    fn from(r: engine::Running) -> Self {
        let engine::Running {
            name,
            image,
            state,
            status,
            id,
        } = r;
        RunningContainer {
            name,
            image,
            state,
            status,
            id,
        }
    }
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
        let containers = collect(&Probe::new(root), &mut Problems::default()).unwrap();
        assert_eq!(
            containers.docker,
            Some(Engine {
                binary: true,
                socket: true,
                running: None
            })
        );
        assert_eq!(containers.podman, None);
        let k3s = containers.k3s.clone().unwrap();
        assert_eq!((k3s.binary, k3s.role), (true, Some(K3sRole::Agent)));
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
        let containers = collect(&Probe::new(root), &mut Problems::default()).unwrap();
        assert_eq!(
            containers.podman,
            Some(Engine {
                binary: false,
                socket: true,
                running: None
            })
        );
        let k3s = containers.k3s.unwrap();
        assert_eq!((k3s.binary, k3s.role), (false, Some(K3sRole::Server)));
    }

    #[test]
    fn nothing_present() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            collect(&Probe::new(dir.path()), &mut Problems::default()),
            None
        );
    }

    #[test]
    fn this_machine() {
        let containers = collect(&Probe::new(Path::new("/")), &mut Problems::default());
        if Path::new("/usr/bin/docker").exists() {
            assert!(containers.and_then(|c| c.docker).is_some());
        }
    }

    /// A running test container shows up in the node's facts (real Docker engine, see
    /// `crate::containers::testutil`).
    #[tokio::test]
    async fn this_machine_lists_a_running_container() {
        use crate::containers::testutil::{image, run, socket, unique_name, Cleanup};
        use lab_proto::v1::container_task::Action;
        use lab_proto::v1::{ContainerEnsure, ContainerTask, ResourceStatus};

        let name = unique_name("facts");
        let _cleanup = Cleanup(vec![name.clone()]);
        let image = image();
        let task = ContainerTask {
            socket: socket().to_owned(),
            action: Some(Action::Ensure(ContainerEnsure {
                name: name.clone(),
                image: image.clone(),
                command: vec!["sleep".into(), "3600".into()],
                ..Default::default()
            })),
        };
        let out = run(task).await;
        assert_eq!(
            out.result.status(),
            ResourceStatus::Changed,
            "{:?}",
            out.result
        );

        // called from inside a runtime on purpose: the collector must not panic there
        let docker = collect(&Probe::new(Path::new("/")), &mut Problems::default())
            .and_then(|c| c.docker)
            .unwrap();
        let running = docker
            .running
            .expect("the engine at /run/docker.sock answered");
        let ours = running.iter().find(|c| c.name == name).unwrap();
        assert_eq!(ours.image, image);
        assert_eq!(ours.state.as_deref(), Some("running"));
        assert!(ours.status.as_deref().unwrap_or("").starts_with("Up"));
        assert_eq!(ours.id, out.result.container_id[..12]);
        let json = serde_json::to_value(ours).unwrap();
        assert_eq!(json["state"], "running");
    }
}
