//! SnapRAID `sync`, `scrub`, `status` and `diff` with the real `snapraid`, its output parsed
//! into a [`SnapraidSummary`] by the pure [`parse`]. `sync` runs `diff` first, so that the
//! result says what the sync picked up (added, removed, updated … files).
//!
//! Exit codes: `diff` exits 2 when there are differences (not a failure); everything else
//! fails on a non-zero exit, and scrub and sync also fail when they report errors.
//!
//! Scrub plan: with neither `scrub_percent` nor `scrub_older_than_days`, snapraid's default
//! plan (8% of the array, blocks older than 10 days). A percentage is passed as `-p`; once a
//! plan is given, the age is passed as `-o` as it is, so `scrubPercent: 100` alone scrubs the
//! whole array now (`-o 0`) and `scrubOlderThanDays: 10` keeps snapraid's usual age limit.

use std::path::Path;

use lab_proto::v1::backup_result::Kind;
use lab_proto::v1::{BackupResult, SnapraidOperation, SnapraidSummary, SnapraidTask};

use super::proc::{self, Step};
use super::Cx;
use crate::process::FinalState;

/// Used when the task names no config file.
const DEFAULT_CONFIG: &str = "/etc/snapraid.conf";

/// Lines that sum up an operation, kept as the summary's message.
const VERDICTS: [&str; 8] = [
    "Everything OK",
    "No differences",
    "There are differences",
    "No error detected",
    "Nothing to do",
    "WARNING!",
    "DANGER!",
    "The array is",
];

/// Reads what snapraid printed for `op` (its stdout lines, in order).
pub fn parse(op: SnapraidOperation, lines: &[String]) -> SnapraidSummary {
    let mut s = SnapraidSummary {
        operation: op as i32,
        ..Default::default()
    };
    let mut verdicts = Vec::new();
    for raw in lines {
        // Progress lines are redrawn with '\r'; the last redraw counts.
        let line = raw.rsplit('\r').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        if let (Some(n), Some(what)) = (words.next(), words.next()) {
            if let Ok(n) = n.parse::<u64>() {
                let rest = words.next();
                match (what, rest) {
                    ("added", None) => s.added = n,
                    ("removed", None) => s.removed = n,
                    ("updated", None) => s.updated = n,
                    ("moved", None) => s.moved = n,
                    ("copied", None) => s.copied = n,
                    ("restored", None) => s.restored = n,
                    ("file" | "io" | "data", Some("errors")) => s.errors += n,
                    _ => {}
                }
            }
        }
        if let Some(rest) = line.strip_prefix("The ") {
            if let Some((pct, tail)) = rest.split_once("% of the array is not scrubbed") {
                let _ = tail;
                s.percent = pct.trim().parse().unwrap_or(0);
            }
        }
        if let Some(rest) = line.strip_prefix("DANGER! In the array there are ") {
            if let Some(n) = rest.split_whitespace().next().and_then(|n| n.parse().ok()) {
                s.errors = s.errors.max(n);
            }
        }
        if VERDICTS.iter().any(|v| line.starts_with(v)) {
            verdicts.push(line.to_owned());
        }
    }
    let changes = s.added + s.removed + s.updated + s.moved + s.copied + s.restored;
    s.in_sync = match op {
        SnapraidOperation::Diff => changes == 0 && verdicts.iter().any(|v| v == "No differences"),
        SnapraidOperation::Status => {
            s.errors == 0 && verdicts.iter().any(|v| v.starts_with("No error detected"))
        }
        _ => false,
    };
    s.message = verdicts.join("; ");
    s
}

/// Runs snapraid with `args`; its stdout lines when the exit code is one of `ok_codes`.
async fn snapraid(
    cx: &mut Cx<'_>,
    config: &str,
    args: &[String],
    ok_codes: &[i32],
) -> Result<Vec<String>, String> {
    let mut argv = vec!["snapraid".to_owned(), "-c".to_owned(), config.to_owned()];
    argv.extend(args.iter().cloned());
    let step = Step::new(&argv);
    let mut lines = Vec::new();
    let ran = proc::run(cx, &step, None, |cx, line| {
        cx.line(line);
        lines.push(line.to_owned());
    })
    .await;
    let exited_ok = ran.main.state != FinalState::Cancelled
        && ran.main.error.is_empty()
        && ok_codes.contains(&ran.main.exit_code);
    if exited_ok {
        Ok(lines)
    } else {
        Err(ran.failure())
    }
}

/// The arguments of `snapraid scrub` for the task's plan (see the module doc).
pub fn scrub_args(t: &SnapraidTask) -> Vec<String> {
    let mut args = Vec::new();
    if t.scrub_percent > 0 {
        args.extend(["-p".to_owned(), t.scrub_percent.to_string()]);
    }
    if t.scrub_older_than_days > 0 || t.scrub_percent > 0 {
        args.extend(["-o".to_owned(), t.scrub_older_than_days.to_string()]);
    }
    args.push("scrub".to_owned());
    args
}

/// Runs one SnapRAID operation.
pub async fn run(
    cx: &mut Cx<'_>,
    t: &SnapraidTask,
    result: &mut BackupResult,
) -> Result<(), String> {
    let op = SnapraidOperation::try_from(t.operation).unwrap_or(SnapraidOperation::Unspecified);
    let config = if t.config.is_empty() {
        DEFAULT_CONFIG
    } else {
        &t.config
    };
    if !Path::new(config).is_file() {
        return Err(format!(
            "snapraid config {config} does not exist on this node"
        ));
    }
    let summary = match op {
        SnapraidOperation::Unspecified => {
            return Err(
                "the snapraid task has no operation (sync, scrub, status or diff)".to_owned(),
            )
        }
        SnapraidOperation::Diff => {
            let lines = snapraid(cx, config, &["diff".to_owned()], &[0, 2]).await?;
            parse(op, &lines)
        }
        SnapraidOperation::Status => {
            let lines = snapraid(cx, config, &["status".to_owned()], &[0]).await?;
            parse(op, &lines)
        }
        SnapraidOperation::Sync => {
            let diff = snapraid(cx, config, &["diff".to_owned()], &[0, 2]).await?;
            let before = parse(SnapraidOperation::Diff, &diff);
            let lines = match snapraid(cx, config, &["sync".to_owned()], &[0]).await {
                Ok(lines) => lines,
                Err(e) => {
                    result.kind = Some(Kind::Snapraid(SnapraidSummary {
                        operation: op as i32,
                        ..before
                    }));
                    return Err(e);
                }
            };
            let after = parse(op, &lines);
            SnapraidSummary {
                errors: after.errors,
                in_sync: after.errors == 0,
                message: after.message,
                operation: op as i32,
                ..before
            }
        }
        SnapraidOperation::Scrub => {
            let lines = snapraid(cx, config, &scrub_args(t), &[0]).await;
            let lines = match lines {
                Ok(l) => l,
                Err(e) => {
                    result.kind = Some(Kind::Snapraid(SnapraidSummary {
                        operation: op as i32,
                        percent: t.scrub_percent,
                        ..Default::default()
                    }));
                    return Err(e);
                }
            };
            SnapraidSummary {
                percent: t.scrub_percent,
                ..parse(op, &lines)
            }
        }
    };
    let errors = summary.errors;
    cx.line(&format!(
        "snapraid {}: {} added, {} removed, {} updated, {} errors{}",
        op.as_str_name()
            .trim_start_matches("SNAPRAID_OPERATION_")
            .to_ascii_lowercase(),
        summary.added,
        summary.removed,
        summary.updated,
        summary.errors,
        if summary.message.is_empty() {
            String::new()
        } else {
            format!(" ({})", summary.message)
        }
    ));
    let message = summary.message.clone();
    result.kind = Some(Kind::Snapraid(summary));
    if errors > 0 {
        return Err(format!("snapraid reported {errors} errors: {message}"));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
