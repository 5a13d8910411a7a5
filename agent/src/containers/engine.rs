//! The connection to a Docker or Podman engine: which socket to use, connecting with a negotiated
//! API version, turning bollard's errors into one readable line, and listing running containers
//! (for the facts).
//!
//! It does not decide anything about tasks; the actions live in `ensure.rs` and `actions.rs`.

use std::path::{Path, PathBuf};

use bollard::errors::Error as BollardError;
use bollard::query_parameters::ListContainersOptionsBuilder;
use bollard::Docker;

/// Per-request timeout of the HTTP client, in seconds. Long enough for a large image pull
/// response to start; the task's own timeout bounds the whole action.
const REQUEST_TIMEOUT_SECS: u64 = 300;

/// System-wide engine sockets, in the order they are tried.
pub const SYSTEM_SOCKETS: &[&str] = &[
    "/run/docker.sock",
    "/var/run/docker.sock",
    "/run/podman/podman.sock",
];

/// Where to look for an engine socket: [`SYSTEM_SOCKETS`], then rootless Podman's
/// `$XDG_RUNTIME_DIR/podman/podman.sock`.
pub fn default_candidates() -> Vec<PathBuf> {
    let mut candidates: Vec<PathBuf> = SYSTEM_SOCKETS.iter().map(PathBuf::from).collect();
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        candidates.push(Path::new(&dir).join("podman/podman.sock"));
    }
    candidates
}

/// The socket to use: `explicit` (with or without `unix://`) when set, else the first existing
/// candidate. The error is the task's message.
pub fn resolve_socket(explicit: &str, candidates: &[PathBuf]) -> Result<PathBuf, String> {
    let explicit = explicit.trim();
    if !explicit.is_empty() {
        return Ok(PathBuf::from(
            explicit.strip_prefix("unix://").unwrap_or(explicit),
        ));
    }
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .ok_or_else(|| {
            let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            format!(
                "no Docker or Podman socket found (looked at {}); set socket in the task",
                looked.join(", ")
            )
        })
}

/// Connects to the engine at `socket` and negotiates the API version (older engines such as
/// Docker 20.10 reject newer clients). The error names the socket.
pub async fn connect(socket: &Path) -> Result<Docker, String> {
    let shown = socket.display();
    if !socket.exists() {
        return Err(format!(
            "container engine socket {shown} does not exist; start Docker or Podman, or set socket in the task"
        ));
    }
    let docker = Docker::connect_with_unix(
        &socket.to_string_lossy(),
        REQUEST_TIMEOUT_SECS,
        bollard::API_DEFAULT_VERSION,
    )
    .map_err(|e| {
        format!(
            "cannot use container engine socket {shown}: {}",
            describe(&e)
        )
    })?;
    docker.negotiate_version().await.map_err(|e| {
        format!(
            "cannot reach the container engine at {shown}: {}",
            describe(&e)
        )
    })
}

/// One line for a bollard error: the engine's own message for API errors, else the whole
/// cause chain (hyper's outer errors alone say little, e.g. "client error (Connect)").
pub fn describe(err: &BollardError) -> String {
    match err {
        BollardError::DockerResponseServerError { message, .. } => message.trim().to_owned(),
        BollardError::DockerStreamError { error } => error.trim().to_owned(),
        BollardError::RequestTimeoutError => "the engine did not answer in time".to_owned(),
        // transport errors: hyper's outer layers say little ("client error (Connect)"); the
        // root cause says what happened ("Connection refused (os error 111)")
        BollardError::HyperLegacyError { .. }
        | BollardError::HyperResponseError { .. }
        | BollardError::IOError { .. } => {
            let mut root: &dyn std::error::Error = err;
            while let Some(cause) = root.source() {
                root = cause;
            }
            root.to_string()
        }
        other => {
            let mut parts = vec![other.to_string()];
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                let text = cause.to_string();
                if !parts.iter().any(|p| p.contains(&text)) {
                    parts.push(text);
                }
                source = cause.source();
            }
            parts.join(": ")
        }
    }
}

/// True when the engine answered 404 (no such container or image).
pub fn is_not_found(err: &BollardError) -> bool {
    matches!(
        err,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// A running container as the facts show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    /// Name without the leading `/`.
    pub name: String,
    /// Image as the container was created with it.
    pub image: String,
    /// `running`, `paused`, `restarting`.
    pub state: Option<String>,
    /// Human status, e.g. `Up 5 minutes`.
    pub status: Option<String>,
    /// First 12 hex digits of the id.
    pub id: String,
}

/// The running containers of the engine, sorted by name.
pub async fn list_running(docker: &Docker) -> Result<Vec<Running>, String> {
    let options = ListContainersOptionsBuilder::new().all(false).build();
    let summaries = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| format!("cannot list containers: {}", describe(&e)))?;
    let mut running: Vec<Running> = summaries
        .into_iter()
        .map(|c| Running {
            name: c
                .names
                .and_then(|names| names.into_iter().next())
                .map(|n| n.trim_start_matches('/').to_owned())
                .unwrap_or_default(),
            image: c.image.unwrap_or_default(),
            state: c.state.map(|s| s.to_string()).filter(|s| !s.is_empty()),
            status: c.status.filter(|s| !s.is_empty()),
            id: short_id(c.id.as_deref().unwrap_or_default()),
        })
        .collect();
    running.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(running)
}

/// First 12 characters of an id, without a `sha256:` prefix.
pub fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn explicit_socket_wins_and_loses_its_scheme() {
        let got = resolve_socket("unix:///tmp/x.sock", &[]).unwrap();
        assert_eq!(got, PathBuf::from("/tmp/x.sock"));
    }

    #[test]
    fn first_existing_candidate() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("absent.sock");
        let present = dir.path().join("present.sock");
        std::fs::write(&present, "").unwrap();
        let got = resolve_socket("", &[absent.clone(), present.clone()]).unwrap();
        assert_eq!(got, present);
        let err = resolve_socket("", std::slice::from_ref(&absent)).unwrap_err();
        assert_eq!(
            err,
            format!(
                "no Docker or Podman socket found (looked at {}); set socket in the task",
                absent.display()
            )
        );
    }

    #[test]
    fn short_ids() {
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(short_id("abc"), "abc");
    }
}
