//! Small helpers on generated `lab.v1` types that more than one binary needs.

use crate::v1::backup_task::Action;
use crate::v1::ResticRepository;

impl Action {
    /// The restic repository of a backup operation; `None` for SnapRAID (and an operation
    /// without one).
    pub fn repo_mut(&mut self) -> Option<&mut ResticRepository> {
        match self {
            Action::Restic(a) => a.repo.as_mut(),
            Action::Forget(a) => a.repo.as_mut(),
            Action::Check(a) => a.repo.as_mut(),
            Action::Snapshots(a) => a.repo.as_mut(),
            Action::Restore(a) => a.repo.as_mut(),
            Action::Postgres(a) => a.repo.as_mut(),
            Action::PostgresRestore(a) => a.repo.as_mut(),
            Action::Drill(a) => a.repo.as_mut(),
            Action::Snapraid(_) => None,
        }
    }

    /// The operation's key in spec files (`restic`, `postgresRestore`, …).
    pub fn spec_name(&self) -> &'static str {
        match self {
            Action::Restic(_) => "restic",
            Action::Forget(_) => "forget",
            Action::Check(_) => "check",
            Action::Snapshots(_) => "snapshots",
            Action::Restore(_) => "restore",
            Action::Postgres(_) => "postgres",
            Action::PostgresRestore(_) => "postgresRestore",
            Action::Drill(_) => "drill",
            Action::Snapraid(_) => "snapraid",
        }
    }
}
