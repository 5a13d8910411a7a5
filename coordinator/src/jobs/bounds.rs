//! Bounds on what a node's task updates can make the coordinator keep, applied before anything
//! is stored: an output chunk over the per-chunk limit keeps only its tail, progress text is
//! cut, and a result over the limit is cut down (long diffs and messages) or dropped, with the
//! reason in the task's error. (Only the latest progress event of a task is stored, and output
//! is trimmed to the per-task limit: see the engine.) Pure functions.

use lab_proto::v1::{task_result, TaskProgress, TaskResult};
use prost::Message;

/// Largest structured result kept per task (encoded).
pub const MAX_RESULT_BYTES: usize = 1024 * 1024;
/// Longest diff or message of one config resource kept in a result that is over the limit.
const MAX_RESOURCE_TEXT: usize = 16 * 1024;
/// Longest `current` text of a progress report (a path).
const MAX_PROGRESS_TEXT: usize = 4096;
/// Longest task error kept.
pub const MAX_ERROR_CHARS: usize = 4096;

/// Keeps the last `limit` bytes of `data`; returns how many bytes were dropped.
pub fn keep_tail(data: &mut Vec<u8>, limit: usize) -> u64 {
    let over = data.len().saturating_sub(limit);
    data.drain(..over);
    over as u64
}

/// `text` cut to at most `max` bytes on a character boundary, with a note when cut.
fn cut(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(&format!("\n… cut at {max} bytes"));
}

/// Cuts the progress text to its limit.
pub fn bound_progress(progress: &mut TaskProgress) {
    cut(&mut progress.current, MAX_PROGRESS_TEXT);
}

/// Keeps `result` within [`MAX_RESULT_BYTES`]: cuts long config diffs and messages first, then
/// drops what is still over. Returns what was done, for the task's error; `None` when the
/// result fit.
pub fn bound_result(result: &mut Option<TaskResult>) -> Option<String> {
    let size = result.as_ref().map_or(0, Message::encoded_len);
    if size <= MAX_RESULT_BYTES {
        return None;
    }
    if let Some(TaskResult {
        kind: Some(task_result::Kind::Config(config)),
    }) = result.as_mut()
    {
        for r in &mut config.resources {
            cut(&mut r.diff, MAX_RESOURCE_TEXT);
            cut(&mut r.message, MAX_RESOURCE_TEXT);
        }
    }
    let cut_size = result.as_ref().map_or(0, Message::encoded_len);
    if cut_size <= MAX_RESULT_BYTES {
        return Some(format!(
            "the result was {size} bytes, over the limit of {MAX_RESULT_BYTES}; long diffs and messages were cut"
        ));
    }
    *result = None;
    Some(format!(
        "the result was {size} bytes, over the limit of {MAX_RESULT_BYTES}, and was dropped"
    ))
}

/// The task error from the agent's `error` and the coordinator's `note`, within
/// [`MAX_ERROR_CHARS`].
pub fn task_error(error: &str, note: Option<&str>) -> String {
    let joined = match note {
        Some(note) if error.is_empty() => note.to_owned(),
        Some(note) => format!("{error}; {note}"),
        None => error.to_owned(),
    };
    joined.chars().take(MAX_ERROR_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_proto::v1::{BackupResult, ConfigResult, ResourceResult};

    #[test]
    fn keep_tail_keeps_the_last_bytes() {
        let mut data = b"0123456789".to_vec();
        assert_eq!(keep_tail(&mut data, 4), 6);
        assert_eq!(data, b"6789");
        assert_eq!(keep_tail(&mut data, 10), 0);
        assert_eq!(data, b"6789");
    }

    #[test]
    fn cut_respects_character_boundaries() {
        let mut text = "ééé".to_owned(); // 6 bytes
        cut(&mut text, 3);
        assert!(text.starts_with("é\n… cut at 3 bytes"), "{text}");
        let mut short = "abc".to_owned();
        cut(&mut short, 3);
        assert_eq!(short, "abc");
    }

    #[test]
    fn progress_text_is_cut() {
        let mut p = TaskProgress {
            current: "/".repeat(1_000_000),
            ..Default::default()
        };
        bound_progress(&mut p);
        assert!(p.current.len() < MAX_PROGRESS_TEXT + 64);
    }

    fn config(diff_bytes: usize, resources: usize) -> Option<TaskResult> {
        Some(TaskResult {
            kind: Some(task_result::Kind::Config(ConfigResult {
                check: true,
                resources: (0..resources)
                    .map(|i| ResourceResult {
                        resource: format!("file /etc/f{i}"),
                        diff: "d".repeat(diff_bytes),
                        ..Default::default()
                    })
                    .collect(),
            })),
        })
    }

    #[test]
    fn small_results_are_kept_as_they_are() {
        let mut r = config(100, 3);
        let before = r.clone();
        assert_eq!(bound_result(&mut r), None);
        assert_eq!(r, before);
    }

    #[test]
    fn long_config_diffs_are_cut_and_the_statuses_kept() {
        let mut r = config(3_000_000, 2);
        let note = bound_result(&mut r).unwrap();
        assert!(note.contains("were cut"), "{note}");
        let size = r.as_ref().unwrap().encoded_len();
        assert!(size <= MAX_RESULT_BYTES, "{size}");
        let Some(task_result::Kind::Config(c)) = r.and_then(|r| r.kind) else {
            panic!("the config result stays");
        };
        assert_eq!(c.resources.len(), 2);
    }

    #[test]
    fn results_that_stay_over_the_limit_are_dropped() {
        let mut r = config(100, 20_000); // many small resources
        assert!(bound_result(&mut r).unwrap().contains("was dropped"));
        assert!(r.is_none());
        let mut r = Some(TaskResult {
            kind: Some(task_result::Kind::Backup(BackupResult {
                name: "x".repeat(2_000_000),
                ..Default::default()
            })),
        });
        assert!(bound_result(&mut r).is_some());
        assert!(r.is_none());
    }

    #[test]
    fn task_error_joins_and_bounds() {
        assert_eq!(task_error("", None), "");
        assert_eq!(task_error("exit 1", None), "exit 1");
        assert_eq!(task_error("", Some("cut")), "cut");
        assert_eq!(task_error("exit 1", Some("cut")), "exit 1; cut");
        assert_eq!(task_error(&"e".repeat(10_000), None).len(), MAX_ERROR_CHARS);
    }
}
