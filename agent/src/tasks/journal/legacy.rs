//! Reading the journal of agents before the single journal file: one JSON [`Record`] per task
//! id in `<dir>/<task_id>.json`, written with `write_atomic`. An agent upgraded while a task
//! ran finds its `started` record here; [`super::Journal::open`] merges these records into the
//! journal file and deletes them once that file is durable. Nothing writes this format any more.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::Record;
use crate::tasks::model::TaskId;

/// The old per-task records found in a directory.
#[derive(Debug, Default)]
pub struct Legacy {
    /// The records by task id. A file that cannot be parsed is loaded as "started, never
    /// finished", so that its task is reported lost rather than run a second time.
    pub records: HashMap<TaskId, Record>,
    /// Files to delete once the records are in the journal file: the records, and temp files
    /// of interrupted atomic writes (names starting with `.` and holding `.tmp.`).
    pub files: Vec<PathBuf>,
}

/// Loads the old records of `dir`. Blocking.
pub fn load(dir: &Path) -> std::io::Result<Legacy> {
    let mut out = Legacy::default();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.starts_with('.') && name.contains(".tmp.") {
            out.files.push(path);
            continue;
        }
        let Some(id) = name
            .strip_suffix(".json")
            .and_then(|n| n.parse::<TaskId>().ok())
        else {
            continue; // the journal file, strangers
        };
        let record = match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Record>(&b).map_err(|e| e.to_string()))
        {
            Ok(r) if r.task_id == id.as_str() => r,
            Ok(_) | Err(_) => {
                tracing::warn!(path = %path.display(), "unreadable task journal record; the task will be reported lost if assigned again");
                Record::lost(&id)
            }
        };
        out.records.insert(id, record);
        out.files.push(path);
    }
    Ok(out)
}
