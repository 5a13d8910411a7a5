//! Rendering the event stream of a job (`labctl run`, `labctl apply`, `labctl job logs`): text
//! lines prefixed with the node, or NDJSON with one object per event. In text mode, a config,
//! container or backup task that reached a final state also prints its result (per resource,
//! with diffs) on stdout, and progress events show as bars or throttled lines on stderr
//! ([`super::progress`]). Pure apart from the writers it is given and the progress bars.
//!
//! NDJSON objects (field names are stable):
//! - `{"seq": 7, "time": "2026-01-02T03:04:05.678Z", "task": {TaskView}}` — a task changed state
//!   (`task_id`, `node`, `state`, `exit_code`, `error`, `started`, `finished`, `duration_ms`,
//!   `output_bytes`, `output_dropped_bytes`, `result`: the structured result of a config or
//!   container task, see [`super::result`], else null);
//! - `{"seq": 8, "time": ..., "output": {"node", "task_id", "stream": "stdout"|"stderr", "data"}}`
//!   — one chunk as sent (not split into lines; `data` is lossy UTF-8);
//! - `{"seq": 9, "time": ..., "progress": {"node", "task_id", "percent", "bytes_done",
//!   "bytes_total", "files_done", "files_total", "seconds_remaining", "current"}}` — progress of
//!   long work (restic);
//! - `{"seq": 9, "time": ..., "done": {"succeeded", "failed", "other"}}` — the last event.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use lab_proto::v1::{
    job_event, JobDone, JobEvent, OutputStream, TaskInfo, TaskProgressEvent, TaskState,
};
use serde::Serialize;

use super::frame::{Framer, Line, Stream};
use super::progress::{self, Progress};
use super::result;
use super::view::{dropped_output_note, is_final, task_state_name, TaskView};
use super::RunFormat;
use crate::output::{escape, escape_line};

/// One NDJSON line.
#[derive(Debug, Serialize)]
struct EventView {
    seq: u64,
    time: Option<String>,
    #[serde(flatten)]
    body: BodyView,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
enum BodyView {
    Task(TaskView),
    Output(OutputView),
    Progress(ProgressView),
    Done(DoneView),
}

/// Progress of long work (restic) as one NDJSON object.
#[derive(Debug, Serialize)]
struct ProgressView {
    node: String,
    task_id: String,
    percent: f64,
    bytes_done: u64,
    bytes_total: u64,
    files_done: u64,
    files_total: u64,
    seconds_remaining: u64,
    current: String,
}

impl From<&TaskProgressEvent> for ProgressView {
    fn from(e: &TaskProgressEvent) -> Self {
        let p = e.progress.clone().unwrap_or_default();
        ProgressView {
            node: e.node.clone(),
            task_id: e.task_id.clone(),
            percent: p.percent,
            bytes_done: p.bytes_done,
            bytes_total: p.bytes_total,
            files_done: p.files_done,
            files_total: p.files_total,
            seconds_remaining: p.seconds_remaining,
            current: p.current,
        }
    }
}

#[derive(Debug, Serialize)]
struct OutputView {
    node: String,
    task_id: String,
    stream: &'static str,
    data: String,
}

#[derive(Debug, Serialize)]
struct DoneView {
    succeeded: u32,
    failed: u32,
    other: u32,
}

fn stream_of(stream: OutputStream) -> Stream {
    match stream {
        OutputStream::Stderr => Stream::Stderr,
        OutputStream::Stdout | OutputStream::Unspecified => Stream::Stdout,
    }
}

fn stream_name(stream: OutputStream) -> &'static str {
    match stream {
        OutputStream::Stdout => "stdout",
        OutputStream::Stderr => "stderr",
        OutputStream::Unspecified => "unspecified",
    }
}

/// RFC 3339 UTC time with milliseconds; `None` for 0.
fn time_ms(unix_ms: i64) -> Option<String> {
    let ms = u64::try_from(unix_ms).ok().filter(|ms| *ms > 0)?;
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms);
    Some(humantime::format_rfc3339_millis(t).to_string())
}

/// "NODE: failed (exit 2): reason" for a task in a final state; `None` otherwise.
pub fn final_state_line(task: &TaskInfo) -> Option<String> {
    let state = task.state();
    if !is_final(state) {
        return None;
    }
    let mut line = format!(
        "{}: {}",
        escape(&task.node),
        task_state_name(task).replace('_', " ")
    );
    if state != TaskState::Succeeded && task.exit_code >= 0 && task.started_unix_ms > 0 {
        line += &format!(" (exit {})", task.exit_code);
    }
    if !task.error.is_empty() {
        line += &format!(": {}", escape_line(&task.error));
    }
    Some(line)
}

/// "3 succeeded, 1 failed, 0 other in 1.2s; job ID".
pub fn summary(done: &JobDone, elapsed: Duration, job_id: &str) -> String {
    format!(
        "{} succeeded, {} failed, {} other in {:.1}s; job {job_id}",
        done.succeeded,
        done.failed,
        done.other,
        elapsed.as_secs_f64()
    )
}

/// [`summary`], prefixed with "check mode: nothing was changed; " for a job in check mode.
pub fn summary_line(done: &JobDone, elapsed: Duration, job_id: &str, check: bool) -> String {
    let prefix = if check {
        "check mode: nothing was changed; "
    } else {
        ""
    };
    prefix.to_owned() + &summary(done, elapsed, job_id)
}

/// Renders events in order, skipping replays, and remembers where the stream is.
#[derive(Debug)]
pub struct Printer {
    format: RunFormat,
    color: bool,
    color_err: bool,
    framer: Framer,
    last_seq: u64,
    done: Option<JobDone>,
    results_only: bool,
    progress: Progress,
}

impl Printer {
    /// A printer for `format`.
    pub fn new(format: RunFormat) -> Self {
        Printer {
            format,
            color: false,
            color_err: false,
            framer: Framer::default(),
            last_seq: 0,
            done: None,
            results_only: false,
            progress: Progress::new(progress::Mode::Off),
        }
    }

    /// How text mode shows progress events (default: not at all).
    pub fn with_progress(mut self, mode: progress::Mode) -> Self {
        self.progress = Progress::new(mode);
        self
    }

    /// In text mode, leaves out the tasks' stdout (a config task's per-resource lines, which the
    /// structured results repeat with their diffs); stderr is still shown.
    pub fn with_results_only(mut self, results_only: bool) -> Self {
        self.results_only = results_only;
        self
    }

    /// Colors task results in text mode (see [`result::use_color`]).
    pub fn with_color(mut self, color: bool) -> Self {
        self.color = color;
        self
    }

    /// Colors the final state line of each task on stderr in text mode (green succeeded, red
    /// failed, ...; see [`crate::output::state_style`]).
    pub fn with_stderr_color(mut self, color: bool) -> Self {
        self.color_err = color;
        self
    }

    /// The highest seq rendered so far (0 before the first); resume from this + 1.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The `JobDone` event, once seen.
    pub fn done(&self) -> Option<&JobDone> {
        self.done.as_ref()
    }

    /// Renders one event: in text mode output lines go to `out` (stdout) or `err` (stderr),
    /// task results to `out` and final task states to `err`; in JSON mode one line to `out`. An event whose seq is not
    /// above the last one (a replay after a reconnect) is skipped.
    pub fn event(
        &mut self,
        ev: &JobEvent,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> io::Result<()> {
        if ev.seq <= self.last_seq {
            return Ok(());
        }
        self.last_seq = ev.seq;
        let Some(body) = &ev.body else {
            return Ok(());
        };
        if let job_event::Body::Done(done) = body {
            self.done = Some(*done);
        }
        match self.format {
            RunFormat::Json => self.json(ev.seq, ev.unix_ms, body, out),
            RunFormat::Text => {
                match body {
                    job_event::Body::Progress(p) => {
                        return self.progress.update(p, Instant::now(), err)
                    }
                    job_event::Body::Task(t) if is_final(t.state()) => {
                        self.progress.finish_task(&t.task_id)
                    }
                    job_event::Body::Done(_) => self.progress.clear(),
                    _ => {}
                }
                // Lines are printed with the bars hidden, so they do not tear them.
                match self.progress.active().cloned() {
                    Some(bars) => bars.suspend(|| self.text(body, out, err)),
                    None => self.text(body, out, err),
                }
            }
        }
    }

    fn json(
        &self,
        seq: u64,
        unix_ms: i64,
        body: &job_event::Body,
        out: &mut dyn Write,
    ) -> io::Result<()> {
        let body = match body {
            job_event::Body::Task(t) => BodyView::Task(TaskView::from(t)),
            job_event::Body::Output(o) => BodyView::Output(OutputView {
                node: o.node.clone(),
                task_id: o.task_id.clone(),
                stream: stream_name(o.stream()),
                data: String::from_utf8_lossy(&o.data).into_owned(),
            }),
            job_event::Body::Progress(p) => BodyView::Progress(ProgressView::from(p)),
            job_event::Body::Done(d) => BodyView::Done(DoneView {
                succeeded: d.succeeded,
                failed: d.failed,
                other: d.other,
            }),
        };
        let view = EventView {
            seq,
            time: time_ms(unix_ms),
            body,
        };
        serde_json::to_writer(&mut *out, &view)?;
        writeln!(out)
    }

    fn text(
        &mut self,
        body: &job_event::Body,
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> io::Result<()> {
        match body {
            job_event::Body::Output(o)
                if self.results_only && stream_of(o.stream()) == Stream::Stdout =>
            {
                Ok(())
            }
            job_event::Body::Output(o) => {
                let lines = self
                    .framer
                    .push(&o.task_id, &o.node, stream_of(o.stream()), &o.data);
                print_lines(&lines, out, err)
            }
            job_event::Body::Task(t) => {
                let Some(state_line) = final_state_line(t) else {
                    return Ok(());
                };
                print_lines(&self.framer.flush_task(&t.task_id), out, err)?;
                if let Some(view) = result::view(t.result.as_ref()) {
                    out.write_all(
                        result::render(
                            &t.node,
                            &view,
                            t.state() == TaskState::Succeeded,
                            self.color,
                        )
                        .as_bytes(),
                    )?;
                }
                if let Some(note) =
                    dropped_output_note(&t.node, t.output_bytes, t.output_dropped_bytes)
                {
                    writeln!(err, "{note}")?;
                }
                let style = crate::output::state_style(task_state_name(t));
                writeln!(err, "{}", result::paint(&state_line, style, self.color_err))
            }
            // Shown by `self.progress` before this is called.
            job_event::Body::Progress(_) => Ok(()),
            job_event::Body::Done(_) => print_lines(&self.framer.flush_all(), out, err),
        }
    }

    /// Prints unterminated lines still buffered (text mode); call when the stream stops.
    pub fn finish(&mut self, out: &mut dyn Write, err: &mut dyn Write) -> io::Result<()> {
        self.progress.clear();
        print_lines(&self.framer.flush_all(), out, err)
    }
}

fn print_lines(lines: &[Line], out: &mut dyn Write, err: &mut dyn Write) -> io::Result<()> {
    for line in lines {
        match line.stream {
            Stream::Stdout => {
                writeln!(out, "{}: {}", escape(&line.node), escape_line(&line.text()))?
            }
            Stream::Stderr => writeln!(
                err,
                "{} [stderr]: {}",
                escape(&line.node),
                escape_line(&line.text())
            )?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
