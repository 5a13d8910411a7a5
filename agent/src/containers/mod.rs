//! The `Container` task kind: Docker or Podman containers driven through the Engine API socket
//! (bollard), never through a CLI.
//!
//! [`run_task`] is the only entry point: it converts the wire task into an [`Action`] (the one
//! place where `lab_proto` types are read), finds the socket, connects, runs the action and
//! folds the outcome into a `ContainerResult`. Every failure becomes a `FAILED` result with a
//! message naming the container or image; nothing here panics or returns an error.
//!
//! Code map: `spec.rs` parses and hashes the desired container (pure); `engine.rs` finds the
//! socket, connects and formats engine errors (also used by the facts); `ensure.rs` is the
//! idempotent create/recreate/start; `actions.rs` is stop, restart, remove, pull and logs.
//!
//! Architecture invariant: the task never removes or changes a container other than the one it
//! names, and `ensure` recreates a container only when its config-hash label or image differs.

mod actions;
pub mod engine;
mod ensure;
pub mod spec;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod testutil;

use lab_proto::v1::container_task::Action as WireAction;
use lab_proto::v1::{
    ContainerLogs, ContainerRef, ContainerResult, ContainerTask, ImageRef, OutputStream,
    ResourceStatus,
};

use self::spec::Desired;

/// Where progress lines and logs go: `(stream, bytes)`, as the task runner forwards output.
pub type Emit<'a> = dyn FnMut(OutputStream, Vec<u8>) + Send + 'a;

/// One container action, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create, recreate or start so the container matches.
    Ensure(Desired),
    /// Stop a container.
    Stop(String),
    /// Remove a container (stopping it first).
    Remove(String),
    /// Restart a container.
    Restart(String),
    /// Pull an image.
    Pull(String),
    /// Send the last `tail` lines of a container's output (0 = all).
    Logs {
        /// Container name.
        name: String,
        /// Number of lines from the end; 0 = all.
        tail: u32,
    },
}

impl Action {
    /// Converts the wire action; the error is the task's message.
    pub fn from_wire(action: &WireAction) -> Result<Action, String> {
        let name = |r: &ContainerRef| non_empty(&r.name, "container name");
        Ok(match action {
            WireAction::Ensure(e) => Action::Ensure(
                Desired::try_from(e).map_err(|err| with_name(&e.name, &err.to_string()))?,
            ),
            WireAction::Stop(r) => Action::Stop(name(r)?),
            WireAction::Remove(r) => Action::Remove(name(r)?),
            WireAction::Restart(r) => Action::Restart(name(r)?),
            WireAction::Pull(ImageRef { image }) => Action::Pull(non_empty(image, "image")?),
            WireAction::Logs(ContainerLogs { name, tail }) => Action::Logs {
                name: non_empty(name, "container name")?,
                tail: *tail,
            },
        })
    }

    /// The container the action is about, for the result's `container` field ("" for pull).
    fn container(&self) -> &str {
        match self {
            Action::Ensure(d) => &d.name,
            Action::Stop(n) | Action::Remove(n) | Action::Restart(n) => n,
            Action::Logs { name, .. } => name,
            Action::Pull(_) => "",
        }
    }
}

fn non_empty(value: &str, what: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        Err(format!("{what} is empty; set it in the task"))
    } else {
        Ok(value.to_owned())
    }
}

fn with_name(name: &str, message: &str) -> String {
    if name.trim().is_empty() {
        message.to_owned()
    } else {
        format!("container '{}': {message}", name.trim())
    }
}

/// What a successful action did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Done {
    /// Container id, where there is one.
    pub id: String,
    /// Something changed on the engine.
    pub changed: bool,
    /// Short description ("created", "already absent", ...).
    pub message: String,
}

impl Done {
    pub(crate) fn changed(id: impl Into<String>, message: impl Into<String>) -> Self {
        Done {
            id: id.into(),
            changed: true,
            message: message.into(),
        }
    }

    pub(crate) fn unchanged(id: impl Into<String>, message: impl Into<String>) -> Self {
        Done {
            id: id.into(),
            changed: false,
            message: message.into(),
        }
    }
}

/// Writes one progress line to stdout.
pub(crate) fn progress(emit: &mut Emit<'_>, line: &str) {
    emit(OutputStream::Stdout, format!("{line}\n").into_bytes());
}

/// Runs one container task against the engine named in it (or found on this machine).
pub async fn run_task(
    task: &ContainerTask,
    emit: &mut (dyn FnMut(OutputStream, Vec<u8>) + Send),
) -> ContainerResult {
    let ContainerTask { socket, action } = task;
    let Some(wire) = action else {
        return failed(
            String::new(),
            "container task has no action; set one of ensure, stop, remove, pull, restart, logs",
        );
    };
    let action = match Action::from_wire(wire) {
        Ok(action) => action,
        Err(message) => return failed(wire_container(wire), message),
    };
    let container = action.container().to_owned();
    let outcome = async {
        let path = engine::resolve_socket(socket, &engine::default_candidates())?;
        let docker = engine::connect(&path).await?;
        match &action {
            Action::Ensure(desired) => ensure::ensure(&docker, desired, emit).await,
            Action::Stop(name) => actions::stop(&docker, name, emit).await,
            Action::Remove(name) => actions::remove(&docker, name, emit).await,
            Action::Restart(name) => actions::restart(&docker, name, emit).await,
            Action::Pull(image) => actions::pull(&docker, image, emit).await,
            Action::Logs { name, tail } => actions::logs(&docker, name, *tail, emit).await,
        }
    }
    .await;
    match outcome {
        Ok(done) => ContainerResult {
            container,
            container_id: done.id,
            status: if done.changed {
                ResourceStatus::Changed
            } else {
                ResourceStatus::Unchanged
            } as i32,
            message: done.message,
        },
        Err(message) => failed(container, message),
    }
}

fn wire_container(action: &WireAction) -> String {
    match action {
        WireAction::Ensure(e) => e.name.trim().to_owned(),
        WireAction::Stop(r) | WireAction::Remove(r) | WireAction::Restart(r) => {
            r.name.trim().to_owned()
        }
        WireAction::Logs(l) => l.name.trim().to_owned(),
        WireAction::Pull(_) => String::new(),
    }
}

fn failed(container: String, message: impl Into<String>) -> ContainerResult {
    ContainerResult {
        container,
        container_id: String::new(),
        status: ResourceStatus::Failed as i32,
        message: message.into(),
    }
}
