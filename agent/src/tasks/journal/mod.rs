//! The durable task journal: one append-only file, `<data-dir>/tasks/journal`, with one line
//! per state change of a task, each made durable with one `fdatasync` before the change takes
//! effect.
//!
//! It records that a task was started (before its process is spawned), how it finished (before
//! the `finished` update is sent) and that the coordinator acknowledged that result. It is what
//! makes delivery effectively-once across agent restarts. It does not decide anything: the
//! `tasks` module reads the records it loads and writes the ones it wants.
//!
//! Format: lines `<checksum> <json>\n` (see [`frame`]); each `<json>` is the task's whole
//! [`Record`] after the change, e.g.
//! `{"version":1,"task_id":"t1","job_id":"j1","started_unix_ms":1700000000000,
//!   "finished":{"state":"succeeded","exit_code":0,"error":"","unix_ms":1700000001000,"seq":4},
//!   "acked":true}` — `started_unix_ms` and `finished` are null when not (yet) reached;
//! `finished.result` (config and container tasks only) is the structured `TaskResult`, protobuf
//! encoded in base64. On load the last valid line of each task wins.
//!
//! Durability: a `started` or `finished` line is appended and fdatasynced before
//! [`Journal::write`] returns; the caller spawns the process or queues the final update only
//! after that. An `acked` line is appended without a sync of its own (the next sync or
//! compaction makes it durable): losing it in a power cut only makes the agent re-send a result
//! the coordinator already has, which it acknowledges again.
//!
//! Damaged lines: each append is durable before the next one starts, so a crash can damage only
//! the last line, and that line's change never took effect (its process was not spawned, its
//! update not sent). A damaged line is still read conservatively: if its task id is legible and
//! no valid line of that task exists, the task is loaded as "started, never finished", so it is
//! reported lost rather than run — it never runs twice. Other damaged lines are skipped.
//!
//! Compaction: the file is rewritten with only the live records (`write_atomic`: temp file,
//! fsync, rename, directory fsync) when it is opened holding superseded or damaged lines, when
//! it grows past twice the live records (and at least [`COMPACT_MIN_LINES`] lines), and after
//! an append failed; the file itself is only ever created this way. Records of finished,
//! acknowledged tasks that ended more than the retention ago are dropped then.
//!
//! Upgrade: the per-task files of earlier agents (`<task_id>.json`, [`legacy`]) are merged in
//! when the journal is opened and deleted once the rewritten journal file is durable.

mod frame;
mod legacy;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lab_proto::files::{create_private_dir, write_atomic, PRIVATE};
use serde::{Deserialize, Serialize};

use super::model::{Finished, TaskId};

/// Version of the record format.
const RECORD_VERSION: u32 = 1;

/// Name of the journal file in its directory.
pub const FILE_NAME: &str = "journal";

/// The file is compacted once it holds at least this many lines and twice the live records.
pub const COMPACT_MIN_LINES: usize = 1024;

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

    /// The record of a task known only from a damaged record: started (at time 0), never
    /// finished, so that it is reported lost rather than run.
    fn lost(task_id: &TaskId) -> Self {
        let mut r = Record::new(task_id, "");
        r.started_unix_ms = Some(0);
        r
    }

    /// How far the task got: 0 nothing, 1 started, 2 finished, 3 acknowledged.
    fn progress(&self) -> u8 {
        match (&self.finished, self.acked, self.started_unix_ms) {
            (Some(_), true, _) => 3,
            (Some(_), false, _) => 2,
            (None, _, Some(_)) => 1,
            (None, _, None) => 0,
        }
    }

    /// A finished, acknowledged task that ended before `cutoff_ms`: it may be forgotten.
    fn expired(&self, cutoff_ms: i64) -> bool {
        self.acked
            && self
                .finished
                .as_ref()
                .is_some_and(|f| f.unix_ms < cutoff_ms)
    }
}

/// Errors of the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The directory cannot be created or listed, or the journal file cannot be read.
    #[error("cannot open the task journal {}: {source}", path.display())]
    Open {
        /// The journal directory or file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A record cannot be written.
    #[error("cannot write the task journal {}: {source}", path.display())]
    Write {
        /// The journal file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The blocking writer went away (runtime shutting down).
    #[error("the task journal writer stopped: {0}")]
    Join(String),
}

/// The journal file. Cheap to clone; writes are serialized.
#[derive(Debug, Clone)]
pub struct Journal {
    writer: Arc<Mutex<Writer>>,
}

/// The file and the live records, behind the journal's lock.
#[derive(Debug)]
struct Writer {
    /// The journal file.
    path: PathBuf,
    retention_ms: i64,
    /// Open for appending; `None` when the next write must rewrite the file (it does not
    /// exist yet, or an append failed and may have left part of a line).
    file: Option<File>,
    /// The last record of each task, as in the file.
    live: HashMap<TaskId, Record>,
    /// Lines in the file.
    lines: usize,
    /// Compact once the file holds this many lines (and twice the live records).
    compact_min_lines: usize,
    /// Files of the old journal to delete after the next rewrite.
    legacy_files: Vec<PathBuf>,
}

impl Journal {
    /// Opens (creating) `dir` and loads its journal file and any old per-task records; records
    /// of finished, acknowledged tasks that ended more than `retention` before `now_ms` are
    /// dropped. Compacts the file when it holds more than the live records. Blocking.
    pub fn open(
        dir: &Path,
        retention: Duration,
        now_ms: i64,
    ) -> Result<(Journal, HashMap<TaskId, Record>), JournalError> {
        let open_err = |path: &Path| {
            let path = path.to_owned();
            move |source| JournalError::Open { path, source }
        };
        create_private_dir(dir).map_err(open_err(dir))?;
        let legacy = legacy::load(dir).map_err(open_err(dir))?;
        let path = dir.join(FILE_NAME);
        let (bytes, exists) = match std::fs::read(&path) {
            Ok(b) => (b, true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), false),
            Err(e) => return Err(open_err(&path)(e)),
        };
        let decoded = frame::decode(&bytes);
        let lines = decoded.records.len() + decoded.invalid.len();
        let decoded_invalid = decoded.invalid.len();
        let mut live = HashMap::new();
        for record in decoded.records {
            if let Ok(id) = record.task_id.parse::<TaskId>() {
                live.insert(id, record);
            }
        }
        for id in &decoded.invalid {
            tracing::warn!(path = %path.display(), task = ?id.as_ref().map(TaskId::as_str), "damaged task journal record skipped");
        }
        for id in decoded.invalid.into_iter().flatten() {
            if !live.contains_key(&id) && !legacy.records.contains_key(&id) {
                tracing::warn!(task = %id, "a damaged task journal record names a task known nowhere else; it will be reported lost if assigned again");
                live.insert(id.clone(), Record::lost(&id));
            }
        }
        for (id, old) in legacy.records {
            if live.get(&id).is_none_or(|r| old.progress() > r.progress()) {
                live.insert(id, old);
            }
        }
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now_ms.saturating_sub(retention_ms);
        live.retain(|_, r| !r.expired(cutoff));
        let mut writer = Writer {
            path,
            retention_ms,
            file: None,
            live,
            lines,
            compact_min_lines: COMPACT_MIN_LINES,
            legacy_files: legacy.files,
        };
        let clean = decoded.ends_clean && decoded_invalid == 0 && lines == writer.live.len();
        if exists && clean && writer.legacy_files.is_empty() {
            match OpenOptions::new().append(true).open(&writer.path) {
                Ok(f) => writer.file = Some(f),
                Err(e) => {
                    tracing::warn!(path = %writer.path.display(), error = %e, "cannot open the task journal for appending; rewriting it on the next write")
                }
            }
        } else if exists || !writer.live.is_empty() || !writer.legacy_files.is_empty() {
            if let Err(e) = writer.rewrite(now_ms) {
                tracing::warn!(error = %e, "cannot compact the task journal; trying again on the next write");
            }
        }
        let records = writer.live.clone();
        let journal = Journal {
            writer: Arc::new(Mutex::new(writer)),
        };
        Ok((journal, records))
    }

    /// Writes `record` durably (on a blocking thread): see the module doc for when it is
    /// synced. On error the journal is as before the call.
    pub async fn write(&self, record: Record) -> Result<(), JournalError> {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            writer
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .write(record, super::now_ms())
        })
        .await
        .map_err(|e| JournalError::Join(e.to_string()))?
    }

    /// Sets the line count from which the file is compacted (tests).
    #[cfg(test)]
    fn set_compact_min_lines(&self, n: usize) {
        self.writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .compact_min_lines = n;
    }
}

impl Writer {
    fn write_err(&self, source: std::io::Error) -> JournalError {
        JournalError::Write {
            path: self.path.clone(),
            source,
        }
    }

    /// Makes `record` the task's live record in the file.
    fn write(&mut self, record: Record, now_ms: i64) -> Result<(), JournalError> {
        let id = record
            .task_id
            .parse::<TaskId>()
            .map_err(|e| self.write_err(std::io::Error::other(e)))?;
        // Only the acknowledgement may wait for a later sync (module doc).
        let sync = !record.acked;
        let line = frame::encode(&record).map_err(|e| self.write_err(std::io::Error::other(e)))?;
        let previous = self.live.insert(id.clone(), record);
        let compact = self.lines >= self.compact_min_lines.max(2 * self.live.len());
        let result = match self.file.as_mut() {
            Some(file) if !compact => append(file, &line, sync).map(|()| self.lines += 1),
            _ => self.rewrite(now_ms),
        };
        if let Err(e) = result {
            match previous {
                Some(p) => self.live.insert(id, p),
                None => self.live.remove(&id),
            };
            // Part of the line may be in the file: rewrite it whole next time.
            self.file = None;
            return Err(self.write_err(e));
        }
        Ok(())
    }

    /// Rewrites the file with the live records (dropping expired ones) and reopens it for
    /// appending; then deletes the old journal's files.
    fn rewrite(&mut self, now_ms: i64) -> std::io::Result<()> {
        self.file = None;
        let cutoff = now_ms.saturating_sub(self.retention_ms);
        self.live.retain(|_, r| !r.expired(cutoff));
        let mut ids: Vec<&TaskId> = self.live.keys().collect();
        ids.sort();
        let mut bytes = Vec::new();
        for id in ids {
            bytes.extend(frame::encode(&self.live[id]).map_err(std::io::Error::other)?);
        }
        write_atomic(&self.path, &bytes, PRIVATE)?;
        self.lines = self.live.len();
        self.file = Some(OpenOptions::new().append(true).open(&self.path)?);
        for path in std::mem::take(&mut self.legacy_files) {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot delete an old task journal file");
            }
        }
        Ok(())
    }
}

/// Appends one line and, if `sync`, fdatasyncs it.
fn append(file: &mut File, line: &[u8], sync: bool) -> std::io::Result<()> {
    file.write_all(line)?;
    if sync {
        file.sync_data()?;
    }
    Ok(())
}
