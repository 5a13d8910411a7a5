//! restic's `--json` messages (restic 0.14 and later): one JSON object per stdout line. `status`
//! lines become [`TaskProgress`] (throttled to about one a second by [`Throttle`]), the
//! `summary` line becomes the task's [`BackupSummary`], `error` lines are problems worth a line
//! of output. Anything else (or a line that is not JSON) is plain output. Pure: no I/O.

use std::time::{Duration, Instant};

use lab_proto::v1::{BackupSummary, TaskProgress};
use serde::Deserialize;

/// One line of `restic backup --json`.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Progress.
    Status(TaskProgress),
    /// The final summary.
    Summary(BackupSummary),
    /// An error restic carried on (e.g. a file it could not read), as text.
    Error(String),
    /// Not one of restic's messages (plain text, or a message type we do not use).
    Other,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Raw {
    message_type: String,
    // status
    percent_done: f64,
    seconds_remaining: u64,
    total_files: u64,
    files_done: u64,
    total_bytes: u64,
    bytes_done: u64,
    current_files: Vec<String>,
    // summary
    files_new: u64,
    files_changed: u64,
    files_unmodified: u64,
    dirs_new: u64,
    dirs_changed: u64,
    data_added: u64,
    total_files_processed: u64,
    total_bytes_processed: u64,
    total_duration: f64,
    snapshot_id: String,
    // error
    error: serde_json::Value,
    during: String,
    item: String,
}

/// Parses one stdout line of `restic backup --json`.
pub fn parse(line: &str) -> Message {
    let line = line.trim();
    if !line.starts_with('{') {
        return Message::Other;
    }
    let Ok(raw) = serde_json::from_str::<Raw>(line) else {
        return Message::Other;
    };
    match raw.message_type.as_str() {
        "status" => Message::Status(TaskProgress {
            percent: (raw.percent_done * 100.0).clamp(0.0, 100.0),
            bytes_done: raw.bytes_done,
            bytes_total: raw.total_bytes,
            files_done: raw.files_done,
            files_total: raw.total_files,
            seconds_remaining: raw.seconds_remaining,
            current: raw.current_files.into_iter().next().unwrap_or_default(),
        }),
        "summary" => Message::Summary(BackupSummary {
            snapshot_id: raw.snapshot_id,
            files_new: raw.files_new,
            files_changed: raw.files_changed,
            files_unmodified: raw.files_unmodified,
            dirs_new: raw.dirs_new,
            dirs_changed: raw.dirs_changed,
            data_added_bytes: raw.data_added,
            total_files_processed: raw.total_files_processed,
            total_bytes_processed: raw.total_bytes_processed,
            duration_seconds: raw.total_duration,
        }),
        "error" => {
            let what = match &raw.error {
                serde_json::Value::Object(o) => o
                    .get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_owned)
                    .unwrap_or_else(|| raw.error.to_string()),
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let mut text = format!("error during {}", raw.during);
            if !raw.item.is_empty() {
                text.push_str(&format!(" of {}", raw.item));
            }
            text.push_str(&format!(": {what}"));
            Message::Error(text)
        }
        _ => Message::Other,
    }
}

/// Lets through at most one progress update per `every` (the first one at once).
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
}

impl Throttle {
    /// At most one per `every`.
    pub fn new(every: Duration) -> Self {
        Throttle { every, last: None }
    }

    /// Whether an update at `now` may be sent (and if so, counts it as sent).
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.every => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // Captured from restic 0.14.0 (`RESTIC_PROGRESS_FPS=10 restic backup --json data`).
    const STATUS_START: &str =
        r#"{"message_type":"status","percent_done":0,"total_files":1,"total_bytes":30000000}"#;
    const STATUS: &str = r#"{"message_type":"status","percent_done":0.37303278073546964,"total_files":3,"files_done":2,"total_bytes":110000003,"bytes_done":41033607,"current_files":["/data/big2"]}"#;
    const SUMMARY: &str = r#"{"message_type":"summary","files_new":1,"files_changed":0,"files_unmodified":3,"dirs_new":1,"dirs_changed":1,"dirs_unmodified":1,"data_blobs":1,"tree_blobs":3,"data_added":6652,"total_files_processed":4,"total_bytes_processed":110000005,"total_duration":0.235105989,"snapshot_id":"622b0d62"}"#;
    const ERROR: &str = r#"{"message_type":"error","error":{"Op":"open","Path":"/data/x","Err":13},"during":"archival","item":"/data/x"}"#;

    #[test]
    fn status_lines_become_progress() {
        match parse(STATUS) {
            Message::Status(p) => {
                assert!((p.percent - 37.303_278).abs() < 1e-4);
                assert_eq!(p.bytes_done, 41033607);
                assert_eq!(p.bytes_total, 110000003);
                assert_eq!(p.files_done, 2);
                assert_eq!(p.files_total, 3);
                assert_eq!(p.current, "/data/big2");
            }
            other => panic!("{other:?}"),
        }
        match parse(STATUS_START) {
            Message::Status(p) => {
                assert_eq!(p.percent, 0.0);
                assert_eq!(p.bytes_total, 30000000);
                assert_eq!(p.current, "");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_summary_becomes_the_result() {
        match parse(SUMMARY) {
            Message::Summary(s) => {
                assert_eq!(s.snapshot_id, "622b0d62");
                assert_eq!(s.files_new, 1);
                assert_eq!(s.files_unmodified, 3);
                assert_eq!(s.dirs_changed, 1);
                assert_eq!(s.data_added_bytes, 6652);
                assert_eq!(s.total_files_processed, 4);
                assert_eq!(s.total_bytes_processed, 110000005);
                assert!((s.duration_seconds - 0.235105989).abs() < 1e-9);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_and_other_lines() {
        match parse(ERROR) {
            Message::Error(text) => {
                assert!(
                    text.starts_with("error during archival of /data/x"),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parse("/tmp/x does not exist, skipping"), Message::Other);
        assert_eq!(parse("{not json"), Message::Other);
        assert_eq!(
            parse(r#"{"message_type":"verbose_status"}"#),
            Message::Other
        );
        assert_eq!(parse(""), Message::Other);
    }

    #[test]
    fn throttle_lets_one_through_per_interval() {
        let mut t = Throttle::new(Duration::from_secs(1));
        let t0 = Instant::now();
        assert!(t.allow(t0));
        assert!(!t.allow(t0 + Duration::from_millis(500)));
        assert!(t.allow(t0 + Duration::from_millis(1000)));
        assert!(!t.allow(t0 + Duration::from_millis(1999)));
        assert!(t.allow(t0 + Duration::from_millis(2500)));
    }
}
