//! The `Config` task kind (DESIGN §5, issue 6): an ordered list of idempotent resources, each
//! applied (or, in check mode, only compared) in turn and reported unchanged, changed (with a
//! diff or a short description), failed or skipped.
//!
//! One file per resource kind ([`file`], [`package`], [`service`], [`nixos`], [`command`]);
//! each owns its domain spec, converted from the wire type with `TryFrom` (an invalid resource
//! is kept as an error and reported FAILED in its turn, so the result names it), and an
//! `apply` function. [`process`] runs their external programs through the task runner's exec
//! code (own process group, no shell, killed on stop); [`template`] renders `{{ facts.a.b }}`;
//! [`diff`] renders file diffs; [`atomic`] writes files.
//!
//! It knows nothing of sequence numbers, the journal or the coordinator: [`apply`] writes one
//! human line per resource to a callback and returns a [`ConfigReport`]. It never changes
//! anything in check mode (it may read, and run read-only queries such as `dpkg-query`,
//! `systemctl show` and a command resource's `unless` guard).
//!
//! Architecture invariant: a failed resource stops the rest (reported SKIPPED) unless it has
//! `continue_on_error` or the task runs in check mode (which changes nothing, so every resource
//! is still checked); once the stop token fires, the running resource's program is stopped
//! and no further resource starts.

pub mod command;
pub mod diff;
pub mod file;
pub mod metadata;
pub mod nixos;
pub mod package;
pub mod process;
pub mod service;
pub mod template;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

pub(crate) use crate::process::describe;
use std::path::PathBuf;
use std::time::Duration;

use lab_proto::v1::{
    resource, ConfigResult, ConfigTask, OutputStream, ResourceResult, ResourceStatus,
};
use tokio_util::sync::CancellationToken;

/// A `Config` task as the executor needs it.
#[derive(Debug, Clone)]
pub struct ConfigSpec {
    /// Report what would change; change nothing.
    pub check: bool,
    /// In order.
    pub resources: Vec<Resource>,
}

/// One resource of a config task.
#[derive(Debug, Clone)]
pub struct Resource {
    /// As shown in results: the given name, or "<kind> <target>".
    pub name: String,
    /// A failure does not stop the resources after this one.
    pub continue_on_error: bool,
    /// What to manage, or why the wire resource is invalid (reported FAILED in its turn).
    pub kind: Result<ResourceKind, String>,
}

/// What one resource manages.
#[derive(Debug, Clone)]
pub enum ResourceKind {
    /// A file's content, mode, owner and presence.
    File(file::FileSpec),
    /// A Debian package.
    Package(package::PackageSpec),
    /// A systemd unit's running and enabled state.
    Service(service::ServiceSpec),
    /// `nixos-rebuild` (health-gated switch) or a rollback.
    NixosRebuild(nixos::NixosSpec),
    /// A guarded command.
    Command(command::CommandSpec),
}

impl From<ConfigTask> for ConfigSpec {
    fn from(task: ConfigTask) -> Self {
        let ConfigTask { resources, check } = task;
        let resources = resources
            .into_iter()
            .enumerate()
            .map(|(i, r)| Resource::from_proto(i, r))
            .collect();
        ConfigSpec { check, resources }
    }
}

impl Resource {
    /// Converts the wire resource at `index` (0-based, for the default name of a resource
    /// without a kind).
    fn from_proto(index: usize, r: lab_proto::v1::Resource) -> Self {
        use resource::Kind;
        let lab_proto::v1::Resource {
            name,
            continue_on_error,
            kind,
        } = r;
        let (default_name, kind) = match kind {
            Some(Kind::File(f)) => (
                format!("file {}", f.path),
                file::FileSpec::try_from(f).map(ResourceKind::File),
            ),
            Some(Kind::Package(p)) => (
                format!("package {}", p.name),
                package::PackageSpec::try_from(p).map(ResourceKind::Package),
            ),
            Some(Kind::Service(s)) => (
                format!("service {}", s.unit),
                service::ServiceSpec::try_from(s).map(ResourceKind::Service),
            ),
            Some(Kind::NixosRebuild(n)) => (
                nixos::default_name(&n),
                nixos::NixosSpec::try_from(n).map(ResourceKind::NixosRebuild),
            ),
            Some(Kind::Command(c)) => (
                command::default_name(&c.argv),
                command::CommandSpec::try_from(c).map(ResourceKind::Command),
            ),
            None => (
                format!("resource #{}", index + 1),
                Err(
                    "the resource has no kind or one this agent does not know; upgrade the agent"
                        .to_owned(),
                ),
            ),
        };
        Resource {
            name: if name.is_empty() { default_name } else { name },
            continue_on_error,
            kind,
        }
    }
}

/// How one resource ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Already as desired.
    Unchanged,
    /// Changed, or in check mode: would change.
    Changed,
    /// Could not be brought to the desired state (or checked).
    Failed,
    /// Not run because an earlier resource failed or the task was stopped.
    Skipped,
}

impl Status {
    /// The wire status.
    pub fn to_proto(self) -> ResourceStatus {
        match self {
            Status::Unchanged => ResourceStatus::Unchanged,
            Status::Changed => ResourceStatus::Changed,
            Status::Failed => ResourceStatus::Failed,
            Status::Skipped => ResourceStatus::Skipped,
        }
    }

    fn word(self, check: bool) -> &'static str {
        match (self, check) {
            (Status::Unchanged, _) => "unchanged",
            (Status::Changed, false) => "changed",
            (Status::Changed, true) => "would change",
            (Status::Failed, _) => "failed",
            (Status::Skipped, _) => "skipped",
        }
    }
}

/// What applying one resource found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// How it ended.
    pub status: Status,
    /// Unified diff (files) or a short description of the change; empty when unchanged.
    pub diff: String,
    /// The error, or the state after (e.g. "active (running), enabled").
    pub message: String,
    /// nixosRebuild switch and rollback: generations, health gate, rollback.
    pub nixos: Option<nixos::Outcome>,
}

impl Report {
    /// Already as desired; `message` is the current state.
    pub fn unchanged(message: impl Into<String>) -> Self {
        Report {
            status: Status::Unchanged,
            diff: String::new(),
            message: message.into(),
            nixos: None,
        }
    }

    /// Changed (or would change) as `diff` says; `message` is the state after.
    pub fn changed(diff: impl Into<String>, message: impl Into<String>) -> Self {
        Report {
            status: Status::Changed,
            diff: diff.into(),
            message: message.into(),
            nixos: None,
        }
    }

    /// Failed with `message`.
    pub fn failed(message: impl Into<String>) -> Self {
        Report {
            status: Status::Failed,
            diff: String::new(),
            message: message.into(),
            nixos: None,
        }
    }
}

/// The result of one resource, named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceReport {
    /// The resource's name.
    pub resource: String,
    /// What happened.
    pub report: Report,
}

/// The result of a whole config task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigReport {
    /// It ran in check mode.
    pub check: bool,
    /// One per resource, in order.
    pub resources: Vec<ResourceReport>,
}

impl ConfigReport {
    /// The resources that failed.
    pub fn failures(&self) -> impl Iterator<Item = &ResourceReport> {
        self.resources
            .iter()
            .filter(|r| r.report.status == Status::Failed)
    }

    /// The wire result.
    pub fn to_proto(&self) -> ConfigResult {
        ConfigResult {
            check: self.check,
            resources: self
                .resources
                .iter()
                .map(|r| ResourceResult {
                    resource: r.resource.clone(),
                    status: r.report.status.to_proto() as i32,
                    diff: r.report.diff.clone(),
                    message: r.report.message.clone(),
                    nixos: r.report.nixos.as_ref().map(nixos::Outcome::to_proto),
                })
                .collect(),
        }
    }
}

/// Output sink of a running config task: (stream, bytes).
pub type Emit<'a> = &'a mut (dyn FnMut(OutputStream, Vec<u8>) + Send);

/// What every resource needs while it runs.
pub struct Cx<'a> {
    /// Check mode: change nothing.
    pub check: bool,
    /// Fired when the task is cancelled or timed out: the running program gets SIGTERM (then
    /// SIGKILL after `grace`) and no further resource starts.
    pub stop: CancellationToken,
    /// SIGTERM → SIGKILL delay for programs stopped by `stop`.
    pub grace: Duration,
    /// Root of the host's files for detection (`etc/NIXOS`, `run/systemd/system`, the NixOS
    /// system profile) and facts; `/` except in tests. Resource paths are always absolute.
    pub root: PathBuf,
    /// Where streamed output and the per-resource lines go.
    pub emit: Emit<'a>,
    /// The node's facts as JSON, collected on first use by a template.
    facts: Option<serde_json::Value>,
}

impl<'a> Cx<'a> {
    /// A context for one config task on this host (root `/`).
    pub fn new(check: bool, stop: CancellationToken, grace: Duration, emit: Emit<'a>) -> Self {
        Cx {
            check,
            stop,
            grace,
            root: PathBuf::from("/"),
            emit,
            facts: None,
        }
    }

    /// The node's facts (`crate::facts::collect` under `root`, as JSON), collected once.
    pub async fn facts(&mut self) -> Result<&serde_json::Value, String> {
        if self.facts.is_none() {
            let root = self.root.clone();
            let facts = tokio::task::spawn_blocking(move || {
                crate::facts::to_json(&crate::facts::collect(&root))
            })
            .await
            .map_err(|e| format!("cannot collect the node's facts: {e}"))?;
            self.facts = Some(facts);
        }
        Ok(self.facts.get_or_insert_with(|| serde_json::json!({})))
    }

    /// Writes `text` to the task's stdout.
    pub fn say(&mut self, text: &str) {
        (self.emit)(OutputStream::Stdout, text.as_bytes().to_vec());
    }
}

/// Checks a path from a resource: absolute, without NUL or `..`; `what` names it in errors.
pub(crate) fn absolute_path(value: &str, what: &str) -> Result<PathBuf, String> {
    let shown = value.escape_debug();
    if !value.starts_with('/') {
        return Err(format!(
            "{what} '{shown}' is not absolute; use a full path such as /etc/motd"
        ));
    }
    if value.contains('\0') {
        return Err(format!("{what} '{shown}' contains a NUL byte"));
    }
    let path = PathBuf::from(value);
    if path
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        return Err(format!("{what} '{shown}' must not contain '..'"));
    }
    Ok(path)
}

/// The first line of `message`, for the one-line progress output.
fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or("")
}

/// Applies `spec`'s resources in order (see the module doc), writing one line per resource
/// to stdout as it completes.
pub async fn apply(spec: &ConfigSpec, cx: &mut Cx<'_>) -> ConfigReport {
    cx.check = spec.check;
    let mut results = Vec::with_capacity(spec.resources.len());
    let mut skip_reason: Option<String> = None;
    for r in &spec.resources {
        if skip_reason.is_none() && cx.stop.is_cancelled() {
            skip_reason = Some("not run: the task was stopped".to_owned());
        }
        let report = match (&skip_reason, &r.kind) {
            (Some(reason), _) => Report {
                status: Status::Skipped,
                diff: String::new(),
                message: reason.clone(),
                nixos: None,
            },
            (None, Err(e)) => Report::failed(e.clone()),
            (None, Ok(kind)) => apply_one(kind, cx).await,
        };
        if skip_reason.is_none() {
            if cx.stop.is_cancelled() {
                skip_reason = Some("not run: the task was stopped".to_owned());
            } else if report.status == Status::Failed && !r.continue_on_error && !cx.check {
                // Check mode changes nothing, so a failure there cannot break what follows:
                // every resource is still checked and reported.
                skip_reason = Some(format!("not run: '{}' failed", r.name));
            }
        }
        let mut line = format!("{}: {}", r.name, report.status.word(cx.check));
        let detail = first_line(&report.message);
        if !detail.is_empty() {
            line.push_str(&format!(" ({detail})"));
        }
        line.push('\n');
        cx.say(&line);
        results.push(ResourceReport {
            resource: r.name.clone(),
            report,
        });
    }
    ConfigReport {
        check: spec.check,
        resources: results,
    }
}

async fn apply_one(kind: &ResourceKind, cx: &mut Cx<'_>) -> Report {
    match kind {
        ResourceKind::File(f) => file::apply(f, cx).await,
        ResourceKind::Package(p) => package::apply(p, cx).await,
        ResourceKind::Service(s) => service::apply(s, cx).await,
        ResourceKind::NixosRebuild(n) => nixos::apply(n, cx).await,
        ResourceKind::Command(c) => command::apply(c, cx).await,
    }
}
