//! Shared by the backup end-to-end tests: apply a backup spec with `labctl apply -f -o json`
//! and read back what happened (NDJSON events, and the task's structured `BackupResult`
//! through the operator API), check for the real tools, drive restic directly to inspect a
//! repository.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lab_proto::v1::{task_result, BackupResult, ListJobsRequest, TaskInfo};
use lab_tests::{stderr, Cluster};

/// What one `labctl apply -f SPEC -o json` did.
pub struct Applied {
    /// labctl's exit code.
    pub code: Option<i32>,
    /// Its NDJSON lines.
    pub events: Vec<serde_json::Value>,
    /// labctl's stderr.
    pub stderr: String,
    /// The job's one task, from the operator API.
    pub task: TaskInfo,
}

impl Applied {
    /// The task's structured backup result.
    pub fn result(&self) -> BackupResult {
        match self.task.result.as_ref().and_then(|r| r.kind.clone()) {
            Some(task_result::Kind::Backup(b)) => b,
            other => panic!("no backup result: {other:?}\n{}", self.describe()),
        }
    }

    /// The progress events labctl printed.
    pub fn progress(&self) -> Vec<&serde_json::Value> {
        self.events
            .iter()
            .filter_map(|e| e.get("progress"))
            .collect()
    }

    /// Everything, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "exit code {:?}, task state {:?}, error {:?}\nstderr: {}\nevents:\n{}",
            self.code,
            self.task.state(),
            self.task.error,
            self.stderr,
            self.events
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    }

    /// Asserts the job succeeded.
    pub fn assert_ok(&self) {
        assert_eq!(self.code, Some(0), "{}", self.describe());
        assert!(self.task.error.is_empty(), "{}", self.describe());
    }

    /// Asserts the job failed (exit code 1) and returns the task's error.
    pub fn assert_failed(&self) -> String {
        assert_eq!(self.code, Some(1), "{}", self.describe());
        assert_eq!(
            self.task.state(),
            lab_proto::v1::TaskState::Failed,
            "{}",
            self.describe()
        );
        assert!(!self.task.error.is_empty(), "{}", self.describe());
        self.task.error.clone()
    }
}

/// A Job spec for node n1 with `task` (YAML lines under `task:`, indented by 4).
pub fn job(name: &str, task: &str) -> String {
    format!(
        "apiVersion: labfleet/v1\nkind: Job\nmetadata: {{name: {name}}}\nspec:\n  selector: \"node=n1\"\n  task:\n{task}"
    )
}

/// Applies `spec` and waits for it (labctl follows the job to its end).
pub fn apply(c: &Cluster, spec: &str) -> Applied {
    let path = c.tmp.path().join(format!("spec-{}.yaml", nanos()));
    std::fs::write(&path, spec).unwrap();
    let out = c.labctl(&["apply", "-f", path.to_str().unwrap(), "-o", "json"]);
    let events = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let task = newest_task(c).unwrap_or_else(|| {
        panic!(
            "no job was submitted: exit {:?}\n{}\n{spec}",
            out.status.code(),
            stderr(&out)
        )
    });
    Applied {
        code: out.status.code(),
        events,
        stderr: stderr(&out),
        task,
    }
}

/// The one task of the newest job, through the operator API.
fn newest_task(c: &Cluster) -> Option<TaskInfo> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let jobs = c
            .coord
            .admin_client()
            .await
            .list_jobs(ListJobsRequest {
                limit: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .jobs;
        jobs.into_iter()
            .next()
            .and_then(|j| j.tasks.into_iter().next())
    })
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

pub use lab_tests::require;

/// A restic repository in `dir` with its password file.
pub struct Repo {
    pub path: PathBuf,
    pub password_file: PathBuf,
}

impl Repo {
    /// `restic init` in `dir/repo`.
    pub fn init(dir: &Path) -> Repo {
        require("restic", "restic");
        let repo = Repo {
            path: dir.join("repo"),
            password_file: dir.join("restic.pass"),
        };
        std::fs::write(&repo.password_file, "e2e-secret-password\n").unwrap();
        let out = repo.restic(&["init"]);
        assert!(out.status.success(), "restic init: {}", stderr(&out));
        repo
    }

    /// Runs restic against this repository.
    pub fn restic(&self, args: &[&str]) -> Output {
        Command::new("restic")
            .args(args)
            .env("RESTIC_REPOSITORY", &self.path)
            .env("RESTIC_PASSWORD_FILE", &self.password_file)
            .output()
            .unwrap()
    }

    /// `restic snapshots --json`.
    pub fn snapshots(&self) -> Vec<serde_json::Value> {
        let out = self.restic(&["snapshots", "--json"]);
        assert!(out.status.success(), "restic snapshots: {}", stderr(&out));
        serde_json::from_slice::<Option<Vec<serde_json::Value>>>(&out.stdout)
            .unwrap()
            .unwrap_or_default()
    }

    /// The repository fields of a spec operation (flow style, without braces).
    pub fn fields(&self) -> String {
        format!(
            "repository: {}, passwordFile: {}",
            self.path.display(),
            self.password_file.display()
        )
    }
}

/// `size` random bytes in `path`.
pub fn random_file(path: &Path, size: u64) {
    use std::io::Read;
    let mut data = Vec::new();
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .take(size)
        .read_to_end(&mut data)
        .unwrap();
    std::fs::write(path, data).unwrap();
}
