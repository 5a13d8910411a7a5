//! The `Backup` task kind (DESIGN §5, issue 5), run with the real tools: restic (backup, forget,
//! check, snapshots, restore), PostgreSQL dumps streamed into restic and restored from it
//! ([`postgres`]), SnapRAID ([`snapraid`]) and restore drills ([`drill`]).
//!
//! [`run_task`] dispatches on the operation and returns a [`Report`]: the structured
//! `BackupResult` and, when the operation failed, why. restic's JSON is parsed by [`progress`]
//! (status → progress updates, at most one a second; summary → the result) and [`restic`]
//! (listings); everything else restic says goes to the task's output. Programs run through
//! [`proc`] (own process groups, killed on stop).
//!
//! Architecture invariant: secrets never reach arguments, output or results. The repository
//! password is only ever a file path (`RESTIC_PASSWORD_FILE`); the values of the env file go
//! into the environment only and are redacted from every output line.
//!
//! Architecture invariant: a failed check before running (missing path, unreadable password
//! file, existing database) changes nothing; a failed dump never becomes a snapshot.

pub mod drill;
pub mod ops;
pub mod postgres;
pub mod proc;
pub mod progress;
pub mod restic;
pub mod snapraid;

pub(crate) use crate::process::describe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lab_proto::v1::backup_task::Action;
use lab_proto::v1::{BackupResult, BackupTask, OutputStream, TaskProgress};
use tokio_util::sync::CancellationToken;

/// Something a running backup task reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    /// Output for the task's log.
    Output(OutputStream, Vec<u8>),
    /// Progress (already throttled).
    Progress(TaskProgress),
}

/// Sink of a running backup task's output and progress.
pub type Emit<'a> = &'a mut (dyn FnMut(Out) + Send);

/// What a running backup operation needs.
pub struct Cx<'a> {
    /// Fired when the task is cancelled or timed out: the running program is stopped.
    pub stop: CancellationToken,
    /// SIGTERM → SIGKILL delay for programs stopped by `stop`.
    pub grace: Duration,
    /// Where output lines and progress go.
    pub emit: Emit<'a>,
    /// Strings never to show (values of the repository's env file).
    secrets: Vec<String>,
    throttle: progress::Throttle,
    /// The newest progress the throttle held back, sent by [`Cx::flush_progress`].
    held: Option<TaskProgress>,
}

impl<'a> Cx<'a> {
    /// A context for one backup task.
    pub fn new(stop: CancellationToken, grace: Duration, emit: Emit<'a>) -> Self {
        Cx {
            stop,
            grace,
            emit,
            secrets: Vec::new(),
            throttle: progress::Throttle::new(Duration::from_secs(1)),
            held: None,
        }
    }

    /// Adds strings to redact from output from now on.
    pub fn add_secrets(&mut self, secrets: &[String]) {
        self.secrets.extend(secrets.iter().cloned());
    }

    /// `text` with every secret replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.secrets {
            if !s.is_empty() && out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }

    /// One line of output (stdout), redacted.
    pub fn line(&mut self, text: &str) {
        let shown = self.redact(text);
        (self.emit)(Out::Output(
            OutputStream::Stdout,
            format!("{shown}\n").into_bytes(),
        ));
    }

    /// Progress, sent when the last one is at least a second old (else held back).
    pub fn progress(&mut self, mut p: TaskProgress) {
        p.current = self.redact(&p.current);
        if self.throttle.allow(Instant::now()) {
            self.held = None;
            (self.emit)(Out::Progress(p));
        } else {
            self.held = Some(p);
        }
    }

    /// Sends the progress held back by the throttle, if any: the last state of work that just
    /// ended, so that watchers see where it got to.
    pub fn flush_progress(&mut self) {
        if let Some(p) = self.held.take() {
            (self.emit)(Out::Progress(p));
        }
    }
}

/// The end of a backup task.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// What was done, as far as it got.
    pub result: BackupResult,
    /// Why it failed; `None` when it succeeded.
    pub error: Option<String>,
}

/// Runs one backup task to its end (or until `cx.stop` fires).
pub async fn run_task(task: &BackupTask, cx: &mut Cx<'_>) -> Report {
    let mut result = BackupResult {
        name: task.name.clone(),
        ..Default::default()
    };
    let outcome = match &task.action {
        None => Err("the backup task has no operation (restic, forget, check, snapshots, restore, postgres, postgresRestore, snapraid or drill)".to_owned()),
        Some(Action::Restic(b)) => ops::backup(cx, b, task.retention.as_ref(), &mut result).await,
        Some(Action::Forget(f)) => ops::forget(cx, f, task.retention.as_ref(), &mut result).await,
        Some(Action::Check(c)) => ops::check(cx, c, &mut result).await,
        Some(Action::Snapshots(s)) => ops::snapshots(cx, s, &mut result).await,
        Some(Action::Restore(r)) => ops::restore(cx, r, &mut result).await,
        Some(Action::Postgres(p)) => {
            postgres::dump(cx, p, task.retention.as_ref(), &mut result).await
        }
        Some(Action::PostgresRestore(p)) => postgres::restore(cx, p, &mut result).await,
        Some(Action::Snapraid(s)) => snapraid::run(cx, s, &mut result).await,
        Some(Action::Drill(d)) => drill::run(cx, d, &mut result).await,
    };
    Report {
        result,
        error: outcome.err(),
    }
}

/// Resolves (creating what is missing) a directory a restore writes into as root; refuses one
/// that a user other than root could redirect (see [`crate::safepath`]). `what` names it in
/// errors ("restore target"). Returns the real path and whether the directory was created.
pub(crate) async fn prepare_dir(dir: &str, what: &str) -> Result<(PathBuf, bool), String> {
    use crate::safepath::{ensure_dir, DirError};
    if !Path::new(dir).is_absolute() {
        return Err(format!("{what} '{dir}' is not an absolute path"));
    }
    let path = PathBuf::from(dir);
    let done = tokio::task::spawn_blocking(move || ensure_dir(&path))
        .await
        .map_err(|e| format!("cannot prepare {what} {dir}: {e}"))?;
    done.map_err(|e| match e {
        DirError::Unsafe(why) => format!(
            "refusing {what} {dir}: {why}, so another user could redirect what is restored \
             there; use a directory only root can write"
        ),
        DirError::Missing(p) => format!("cannot create {what} {dir}: {} vanished", p.display()),
        DirError::Other(message) => format!("cannot use {what} {dir}: {message}"),
    })
}

/// `snapshot`, or "latest" when empty.
pub(crate) fn snapshot_or_latest(snapshot: &str) -> &str {
    if snapshot.is_empty() {
        "latest"
    } else {
        snapshot
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_from_lines_and_progress() {
        let mut seen = Vec::new();
        let mut emit = |o: Out| seen.push(o);
        let mut cx = Cx::new(CancellationToken::new(), Duration::from_secs(1), &mut emit);
        cx.add_secrets(&["hunter22".to_owned()]);
        cx.line("key hunter22 rejected");
        cx.progress(TaskProgress {
            current: "/x/hunter22".into(),
            ..Default::default()
        });
        cx.progress(TaskProgress::default()); // throttled: held back
        cx.progress(TaskProgress {
            percent: 50.0,
            ..Default::default()
        }); // replaces the held one
        cx.flush_progress();
        cx.flush_progress(); // nothing held any more
        drop(cx);
        assert_eq!(
            seen,
            [
                Out::Output(OutputStream::Stdout, b"key *** rejected\n".to_vec()),
                Out::Progress(TaskProgress {
                    current: "/x/***".into(),
                    ..Default::default()
                }),
                Out::Progress(TaskProgress {
                    percent: 50.0,
                    ..Default::default()
                }),
            ]
        );
    }

    #[tokio::test]
    async fn a_task_without_operation_fails_clearly() {
        let mut emit = |_: Out| {};
        let mut cx = Cx::new(CancellationToken::new(), Duration::from_secs(1), &mut emit);
        let report = run_task(&BackupTask::default(), &mut cx).await;
        assert!(report.error.unwrap().contains("no operation"));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod restic_tests;
