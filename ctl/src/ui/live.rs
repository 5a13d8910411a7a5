//! `GET /jobs/{id}/events`: a job's events as server-sent events for the job page, from the
//! coordinator's `WatchJob` — stored events first (so a late viewer sees the output so far),
//! then live ones, ending after the job's end.
//!
//! Each SSE event carries the job event's sequence number as its id. When the browser
//! reconnects (it does so by itself) it sends `Last-Event-ID`; the stream is read again from the
//! start, so task states and partial lines are rebuilt, and only what comes after that id is
//! sent. Events: `task` (a task's state, with the job's counts), `out` (one whole output line of
//! a task, terminal controls made visible as in labctl), `progress` (a backup task's progress),
//! `done` (the job's end), `note` (the stream broke; the browser will reconnect).
//!
//! Backpressure: events go through a channel of [`BUFFER`] to the HTTP response; when the
//! browser reads slowly the reader waits, and so does the gRPC stream behind it. The reader ends
//! when the browser goes away or labctl stops.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use lab_proto::v1::{job_event, JobEvent, OutputStream, WatchJobRequest};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use super::server::{PageError, Ui};
use crate::cmd::jobs::frame::{Framer, Line, Stream as OutStream};
use crate::cmd::jobs::progress::summary;
use crate::cmd::jobs::view::{is_final, task_state_name};
use crate::output;

/// SSE events buffered towards the browser.
pub const BUFFER: usize = 256;

/// One SSE event: name and JSON data.
pub type Out = (&'static str, Value);

/// Turns job events into SSE events, keeping task states (for the counts) and partial output
/// lines. Pure.
#[derive(Debug, Default)]
pub struct Translator {
    framer: Framer,
    states: HashMap<String, &'static str>,
}

impl Translator {
    /// The SSE events of one job event.
    pub fn event(&mut self, ev: &JobEvent) -> Vec<Out> {
        let mut out = Vec::new();
        match &ev.body {
            Some(job_event::Body::Task(t)) => {
                if is_final(t.state()) {
                    out.extend(
                        self.framer
                            .flush_task(&t.task_id)
                            .iter()
                            .map(|l| line(&t.task_id, l)),
                    );
                }
                let state = task_state_name(t);
                self.states.insert(t.task_id.clone(), state);
                out.push((
                    "task",
                    json!({
                        "task": t.task_id,
                        "node": t.node,
                        "state": state,
                        "class": super::html::state_class(state),
                        "exit": (is_final(t.state()) && t.exit_code >= 0).then_some(t.exit_code),
                        "error": t.error,
                        "started": output::time(t.started_unix_ms),
                        "took": super::pages::job::took(t),
                        "counts": self.counts(),
                    }),
                ));
            }
            Some(job_event::Body::Output(o)) => {
                let stream = match o.stream() {
                    OutputStream::Stderr => OutStream::Stderr,
                    OutputStream::Stdout | OutputStream::Unspecified => OutStream::Stdout,
                };
                let lines = self.framer.push(&o.task_id, &o.node, stream, &o.data);
                out.extend(lines.iter().map(|l| line(&o.task_id, l)));
            }
            Some(job_event::Body::Progress(p)) => {
                let progress = p.progress.clone().unwrap_or_default();
                out.push((
                    "progress",
                    json!({
                        "task": p.task_id,
                        "node": p.node,
                        "percent": progress.percent.clamp(0.0, 100.0),
                        "text": summary(&progress),
                    }),
                ));
            }
            Some(job_event::Body::Done(d)) => {
                out.extend(self.framer.flush_all().iter().map(|l| line("", l)));
                out.push((
                    "done",
                    json!({"succeeded": d.succeeded, "failed": d.failed, "other": d.other}),
                ));
            }
            None => {}
        }
        out
    }

    /// The job's counts from the task states seen.
    fn counts(&self) -> Value {
        let mut c = [0u32; 5];
        for state in self.states.values() {
            let i = match *state {
                "succeeded" => 0,
                "failed" | "timed_out" | "lost" => 1,
                "cancelled" | "skipped" | "expired" => 2,
                "assigned" | "running" => 3,
                _ => 4,
            };
            c[i] += 1;
        }
        json!({
            "total": self.states.len(),
            "succeeded": c[0], "failed": c[1], "other": c[2], "running": c[3], "pending": c[4],
        })
    }
}

fn line(task_id: &str, l: &Line) -> Out {
    (
        "out",
        json!({
            "task": task_id,
            "node": l.node,
            "err": l.stream == OutStream::Stderr,
            "line": output::escape_line(&l.text()),
        }),
    )
}

/// `GET /jobs/{id}/events`.
pub async fn get(
    State(ui): State<Arc<Ui>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, PageError> {
    let after: u64 = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let events = ui
        .client()
        .watch_job(WatchJobRequest {
            job_id: id,
            from_seq: 0,
            ..Default::default()
        })
        .await?
        .into_inner();
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(pump(events, tx, after, ui.shutdown.clone()));
    Ok(Sse::new(ReceiverStream::new(rx).map(Ok)).keep_alive(KeepAlive::default()))
}

/// Reads the job's events until its end, the browser leaving, or shutdown.
async fn pump(
    mut events: tonic::Streaming<JobEvent>,
    tx: mpsc::Sender<Event>,
    after: u64,
    shutdown: CancellationToken,
) {
    let mut translator = Translator::default();
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tx.closed() => return,
            next = events.message() => next,
        };
        let ev = match next {
            Ok(Some(ev)) => ev,
            Ok(None) => return,
            Err(status) => {
                let note = Event::default()
                    .event("note")
                    .data(json!({"message": status.message()}).to_string());
                let _ = tx.send(note).await;
                return;
            }
        };
        let send = ev.seq > after;
        for (kind, data) in translator.event(&ev) {
            if !send {
                continue;
            }
            let sse = Event::default()
                .event(kind)
                .id(ev.seq.to_string())
                .data(data.to_string());
            if tx.send(sse).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_proto::v1::{JobDone, TaskInfo, TaskOutput, TaskState};

    fn task(id: &str, state: TaskState) -> JobEvent {
        JobEvent {
            seq: 1,
            body: Some(job_event::Body::Task(TaskInfo {
                task_id: id.into(),
                node: format!("n-{id}"),
                state: state as i32,
                exit_code: 0,
                started_unix_ms: 1_000,
                finished_unix_ms: if is_final(state) { 3_000 } else { 0 },
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    fn output(id: &str, data: &[u8]) -> JobEvent {
        JobEvent {
            seq: 2,
            body: Some(job_event::Body::Output(TaskOutput {
                task_id: id.into(),
                node: format!("n-{id}"),
                stream: OutputStream::Stdout as i32,
                data: data.to_vec(),
            })),
            ..Default::default()
        }
    }

    #[test]
    fn lines_are_whole_and_flushed_when_the_task_ends() {
        let mut t = Translator::default();
        assert_eq!(
            t.event(&task("a", TaskState::Running))[0].1["counts"]["running"],
            1
        );
        let out = t.event(&output("a", b"one\ntw"));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1["line"], "one");
        assert!(t.event(&output("a", b"o\x1b[31m")).is_empty());
        let end = t.event(&task("a", TaskState::Succeeded));
        assert_eq!(end[0].0, "out");
        assert_eq!(end[0].1["line"], "two\\x1b[31m");
        assert_eq!(end[1].1["state"], "succeeded");
        assert_eq!(end[1].1["exit"], 0);
        assert_eq!(end[1].1["took"], "2s");
        assert_eq!(end[1].1["counts"]["succeeded"], 1);
    }

    #[test]
    fn counts_follow_every_task() {
        let mut t = Translator::default();
        t.event(&task("a", TaskState::Pending));
        t.event(&task("b", TaskState::Failed));
        let c = &t.event(&task("c", TaskState::Expired))[0].1["counts"];
        assert_eq!(
            (
                c["total"].as_u64(),
                c["failed"].as_u64(),
                c["other"].as_u64(),
                c["pending"].as_u64()
            ),
            (Some(3), Some(1), Some(1), Some(1))
        );
        let done = t.event(&JobEvent {
            seq: 9,
            body: Some(job_event::Body::Done(JobDone {
                succeeded: 0,
                failed: 1,
                other: 1,
            })),
            ..Default::default()
        });
        assert_eq!(done.last().map(|d| d.0), Some("done"));
    }
}
