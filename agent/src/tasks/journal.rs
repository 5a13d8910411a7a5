//! The durable task journal: one JSON file per task id under `<data-dir>/tasks/`, written
//! atomically and fsynced (file and directory) with `lab_proto::files::write_atomic`.
//!
//! It records that a task was started (before its process is spawned), how it finished (before
//! the `finished` update is sent) and whether the coordinator acknowledged that result. It is
//! what makes delivery effectively-once across agent restarts. It does not decide anything: the
//! `tasks` module reads the records it loads and writes the ones it wants.
//!
//! Record format (`<task_id>.json`, mode 0600):
//! `{"version":1,"task_id":"t1","job_id":"j1","started_unix_ms":1700000000000,
//!   "finished":{"state":"succeeded","exit_code":0,"error":"","unix_ms":1700000001000,"seq":4},
//!   "acked":true}` — `started_unix_ms` and `finished` are null when not (yet) reached.
//! `finished.result` (config and container tasks only) is the structured `TaskResult`, protobuf
//! encoded in base64; records written before it existed have no such key and still load.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lab_proto::files::{create_private_dir, write_atomic, PRIVATE};
use serde::{Deserialize, Serialize};

use super::model::{Finished, TaskId};

/// Version of the record format.
const RECORD_VERSION: u32 = 1;

/// What the journal knows about one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Format version, [`RECORD_VERSION`].
    pub version: u32,
    /// The task.
    pub task_id: String,
    /// Its job, for people reading the file.
    #[serde(default)]
    pub job_id: String,
    /// When its process was about to be spawned; `None` if it never was.
    pub started_unix_ms: Option<i64>,
    /// How it ended, once it did.
    pub finished: Option<Finished>,
    /// The coordinator acknowledged the final update.
    #[serde(default)]
    pub acked: bool,
}

impl Record {
    /// A fresh record of `task_id`.
    pub fn new(task_id: &TaskId, job_id: &str) -> Self {
        Record {
            version: RECORD_VERSION,
            task_id: task_id.to_string(),
            job_id: job_id.to_owned(),
            started_unix_ms: None,
            finished: None,
            acked: false,
        }
    }
}

/// Errors of the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The directory cannot be created or listed.
    #[error("cannot open the task journal {}: {source}", path.display())]
    Open {
        /// The journal directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A record cannot be written.
    #[error("cannot write the task journal record {}: {source}", path.display())]
    Write {
        /// The record's file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The blocking writer went away (runtime shutting down).
    #[error("the task journal writer stopped: {0}")]
    Join(String),
}

/// The journal directory. Cheap to clone; writes are serialized.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
    /// Serializes writes: two writes of one record must not share a temp file.
    write_lock: Arc<Mutex<()>>,
}

impl Journal {
    /// Opens (creating) `dir`, loads every record and deletes those of finished, acknowledged
    /// tasks that ended more than `retention` before `now_ms`. Blocking.
    ///
    /// A file that cannot be parsed is kept and loaded as "started, never finished", so that its
    /// task is reported lost rather than run a second time.
    pub fn open(
        dir: &Path,
        retention: Duration,
        now_ms: i64,
    ) -> Result<(Journal, HashMap<TaskId, Record>), JournalError> {
        let open_err = |source| JournalError::Open {
            path: dir.to_owned(),
            source,
        };
        create_private_dir(dir).map_err(open_err)?;
        let cutoff =
            now_ms.saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
        let mut records = HashMap::new();
        for entry in std::fs::read_dir(dir).map_err(open_err)? {
            let entry = entry.map_err(open_err)?;
            let path = entry.path();
            let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<TaskId>().ok())
            else {
                continue; // temp files of interrupted writes, strangers
            };
            let record = match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Record>(&b).map_err(|e| e.to_string()))
            {
                Ok(r) if r.task_id == id.as_str() => r,
                Ok(_) | Err(_) => {
                    tracing::warn!(path = %path.display(), "unreadable task journal record; the task will be reported lost if assigned again");
                    let mut r = Record::new(&id, "");
                    r.started_unix_ms = Some(0);
                    r
                }
            };
            let expired =
                record.acked && record.finished.as_ref().is_some_and(|f| f.unix_ms < cutoff);
            if expired {
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot prune task journal record");
                }
                continue;
            }
            records.insert(id, record);
        }
        let journal = Journal {
            dir: dir.to_owned(),
            write_lock: Arc::new(Mutex::new(())),
        };
        Ok((journal, records))
    }

    /// The file of `task_id`.
    pub fn path(&self, task_id: &str) -> PathBuf {
        self.dir.join(format!("{task_id}.json"))
    }

    /// Writes `record` durably (on a blocking thread).
    pub async fn write(&self, record: Record) -> Result<(), JournalError> {
        let path = self.path(&record.task_id);
        let lock = self.write_lock.clone();
        tokio::task::spawn_blocking(move || {
            let bytes = serde_json::to_vec(&record).map_err(|e| JournalError::Write {
                path: path.clone(),
                source: std::io::Error::other(e),
            })?;
            let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
            write_atomic(&path, &bytes, PRIVATE).map_err(|source| JournalError::Write {
                path: path.clone(),
                source,
            })
        })
        .await
        .map_err(|e| JournalError::Join(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::FinalState;

    const DAY_MS: i64 = 24 * 3600 * 1000;

    fn finished(unix_ms: i64) -> Finished {
        Finished {
            state: FinalState::Succeeded,
            exit_code: 0,
            error: String::new(),
            unix_ms,
            seq: 3,
            result: None,
        }
    }

    #[tokio::test]
    async fn writes_loads_and_prunes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tasks");
        let week = Duration::from_secs(7 * 24 * 3600);
        let now = 100 * DAY_MS;
        let (journal, records) = Journal::open(&dir, week, now).unwrap();
        assert!(records.is_empty());

        let id = |s: &str| s.parse::<TaskId>().unwrap();
        let mut old_acked = Record::new(&id("old-acked"), "j");
        old_acked.finished = Some(finished(now - 8 * DAY_MS));
        old_acked.acked = true;
        let mut old_unacked = old_acked.clone();
        old_unacked.task_id = "old-unacked".into();
        old_unacked.acked = false;
        let mut recent = old_acked.clone();
        recent.task_id = "recent".into();
        recent.finished = Some(finished(now - DAY_MS));
        let mut started = Record::new(&id("started"), "j");
        started.started_unix_ms = Some(now);
        for r in [&old_acked, &old_unacked, &recent, &started] {
            journal.write(r.clone()).await.unwrap();
        }
        std::fs::write(dir.join("broken.json"), b"{not json").unwrap();
        std::fs::write(dir.join(".x.json.tmp.1"), b"").unwrap();

        let (_, records) = Journal::open(&dir, week, now).unwrap();
        assert!(!records.contains_key(&id("old-acked")));
        assert!(!journal.path("old-acked").exists());
        assert_eq!(records[&id("old-unacked")], old_unacked);
        assert_eq!(records[&id("recent")], recent);
        assert_eq!(records[&id("started")], started);
        let broken = &records[&id("broken")];
        assert!(broken.started_unix_ms.is_some() && broken.finished.is_none());
        assert_eq!(records.len(), 4);
    }
}
