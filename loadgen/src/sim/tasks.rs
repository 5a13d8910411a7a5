//! A simulated agent's tasks: pretend to run what is assigned and keep every update until the
//! coordinator acknowledges it, like the real agent's runner and outbox (`agent/src/tasks/`).
//!
//! Behaviour per `Exec` argv (nothing is ever executed):
//! - `sleep S`: `started` now, `finished` SUCCEEDED exit 0 after S seconds (or CANCELLED on
//!   `CancelTask`), also while disconnected (the update waits for the next session);
//! - `echo ARGS…`: `started`, one stdout chunk `ARGS joined by spaces + "\n"`, `finished`; an
//!   argument `{now_us}` becomes the Unix time in microseconds when the chunk is made;
//! - anything else: `started`, `finished` SUCCEEDED exit 0.
//!
//! The environment variable `LAB_LOADGEN_DELAY_MS` in the task delays everything after
//! `started`. Config and container tasks finish FAILED at once. A task id is never started twice:
//! an `Assign` for a task still known here only re-sends its unacknowledged updates.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lab_proto::v1::task_update::Body;
use lab_proto::v1::{
    task_spec, Ack, Assign, CancelTask, OutputStream, TaskChunk, TaskFinished, TaskStarted,
    TaskState, TaskUpdate,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Stats;

/// Unix time in microseconds.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn now_ms() -> i64 {
    now_us() / 1000
}

/// One task known to this agent.
#[derive(Default)]
struct Entry {
    /// Unacknowledged updates in seq order.
    updates: Vec<TaskUpdate>,
    /// How many of `updates` went out in this session.
    sent: usize,
    /// Seq of the last update made (acknowledged ones are gone from `updates`).
    last_seq: u64,
    /// Seq of the final update once made.
    final_seq: Option<u64>,
    /// Cancel of a task still "running".
    running: Option<CancellationToken>,
}

/// The task state of one simulated agent; cheap to clone, lives across sessions.
#[derive(Clone)]
pub struct SimTasks {
    state: Arc<Mutex<HashMap<String, Entry>>>,
    changed: Arc<Notify>,
    stats: Arc<Stats>,
}

/// What an assigned task does.
enum Plan {
    Sleep(Duration),
    Echo(Vec<String>),
    True,
}

impl SimTasks {
    /// Empty state reporting into `stats`.
    pub fn new(stats: Arc<Stats>) -> Self {
        SimTasks {
            state: Default::default(),
            changed: Default::default(),
            stats,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, task_id: &str, body: Body) {
        let mut st = self.lock();
        let e = st.entry(task_id.to_owned()).or_default();
        e.last_seq += 1;
        let seq = e.last_seq;
        if matches!(body, Body::Finished(_)) {
            e.final_seq = Some(seq);
            e.running = None;
        }
        e.updates.push(TaskUpdate {
            task_id: task_id.to_owned(),
            seq,
            body: Some(body),
        });
        drop(st);
        self.changed.notify_one();
    }

    fn finish(&self, task_id: &str, state: TaskState, exit_code: i32, error: &str) {
        self.push(
            task_id,
            Body::Finished(TaskFinished {
                state: state as i32,
                exit_code,
                error: error.to_owned(),
                unix_ms: now_ms(),
                result: None,
                output_dropped_bytes: 0,
            }),
        );
        self.stats.note_finished();
    }

    /// Handles `Assign`.
    pub fn on_assign(&self, assign: Assign, tracker: &TaskTracker, shutdown: &CancellationToken) {
        let Assign {
            task_id,
            spec,
            job_id: _,
            timeout_ms: _,
        } = assign;
        {
            let mut st = self.lock();
            if let Some(e) = st.get_mut(&task_id) {
                // Known: never start it again; re-send the final update if it was made.
                if e.final_seq.is_some() {
                    e.sent = e.sent.min(e.updates.len().saturating_sub(1));
                    drop(st);
                    self.changed.notify_one();
                }
                return;
            }
            st.insert(task_id.clone(), Entry::default());
        }
        self.stats.note_assign();
        let exec = match spec.and_then(|s| s.kind) {
            Some(task_spec::Kind::Exec(e)) => e,
            _ => {
                self.finish(
                    &task_id,
                    TaskState::Failed,
                    -1,
                    "lab-loadgen simulates exec tasks only",
                );
                return;
            }
        };
        let delay = exec
            .env
            .get("LAB_LOADGEN_DELAY_MS")
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or_default();
        let plan = match exec.argv.first().map(String::as_str) {
            Some("sleep") => Plan::Sleep(
                exec.argv
                    .get(1)
                    .and_then(|s| s.parse::<f64>().ok())
                    .map(|s| Duration::from_secs_f64(s.clamp(0.0, 3600.0)))
                    .unwrap_or_default(),
            ),
            Some("echo") => Plan::Echo(exec.argv[1..].to_vec()),
            _ => Plan::True,
        };
        self.push(&task_id, Body::Started(TaskStarted { unix_ms: now_ms() }));
        if delay.is_zero() && !matches!(plan, Plan::Sleep(_)) {
            self.complete(&task_id, &plan);
            return;
        }
        let cancel = shutdown.child_token();
        if let Some(e) = self.lock().get_mut(&task_id) {
            e.running = Some(cancel.clone());
        }
        let this = self.clone();
        tracker.spawn(async move {
            let wait = delay
                + match plan {
                    Plan::Sleep(d) => d,
                    _ => Duration::ZERO,
                };
            tokio::select! {
                _ = tokio::time::sleep(wait) => this.complete(&task_id, &plan),
                _ = cancel.cancelled() => {
                    this.finish(&task_id, TaskState::Cancelled, -1, "cancelled");
                }
            }
        });
    }

    fn complete(&self, task_id: &str, plan: &Plan) {
        if let Plan::Echo(args) = plan {
            let stamp = now_us().to_string();
            let line: Vec<&str> = args
                .iter()
                .map(|a| {
                    if a == "{now_us}" {
                        stamp.as_str()
                    } else {
                        a.as_str()
                    }
                })
                .collect();
            self.push(
                task_id,
                Body::Output(TaskChunk {
                    stream: OutputStream::Stdout as i32,
                    data: format!("{}\n", line.join(" ")).into_bytes(),
                }),
            );
        }
        self.finish(task_id, TaskState::Succeeded, 0, "");
    }

    /// Handles `CancelTask`: a task still "running" finishes CANCELLED.
    pub fn on_cancel(&self, cancel: CancelTask) {
        if let Some(token) = self
            .lock()
            .get(&cancel.task_id)
            .and_then(|e| e.running.clone())
        {
            token.cancel();
        }
    }

    /// Handles `Ack`: forgets acknowledged updates, and the task once its final one is.
    pub fn on_ack(&self, ack: Ack) {
        let mut st = self.lock();
        let Some(e) = st.get_mut(&ack.task_id) else {
            return;
        };
        let before = e.updates.len();
        e.updates.retain(|u| u.seq > ack.through_seq);
        let dropped = before - e.updates.len();
        e.sent = e.sent.saturating_sub(dropped);
        if e.final_seq.is_some_and(|f| f <= ack.through_seq) {
            st.remove(&ack.task_id);
            drop(st);
            self.stats.note_result_acked();
        }
    }

    /// Ids of tasks with unacknowledged updates (for `Hello`).
    pub fn unacked_task_ids(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, e)| !e.updates.is_empty())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Marks every unacknowledged update unsent (a new session sends them all again).
    pub fn rewind(&self) {
        let mut any = false;
        for e in self.lock().values_mut() {
            e.sent = 0;
            any |= !e.updates.is_empty();
        }
        if any {
            self.changed.notify_one();
        }
    }

    /// Up to `max` updates not sent in this session yet; they now count as sent.
    pub fn take_unsent(&self, max: usize) -> Vec<TaskUpdate> {
        let mut out = Vec::new();
        let mut more = false;
        for e in self.lock().values_mut() {
            while e.sent < e.updates.len() {
                if out.len() == max {
                    more = true;
                    break;
                }
                out.push(e.updates[e.sent].clone());
                e.sent += 1;
            }
        }
        if more {
            self.changed.notify_one();
        }
        out
    }

    /// Completes when there may be unsent updates.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_proto::v1::{ExecTask, TaskSpec};

    fn assign(id: &str, argv: &[&str]) -> Assign {
        Assign {
            task_id: id.into(),
            job_id: "j".into(),
            spec: Some(TaskSpec {
                kind: Some(task_spec::Kind::Exec(ExecTask {
                    argv: argv.iter().map(|s| s.to_string()).collect(),
                    ..Default::default()
                })),
            }),
            timeout_ms: 0,
        }
    }

    #[tokio::test]
    async fn echo_sends_started_output_finished_and_forgets_on_ack() {
        let t = SimTasks::new(Arc::new(Stats::default()));
        let (tracker, stop) = (TaskTracker::new(), CancellationToken::new());
        t.on_assign(assign("t1", &["echo", "hi", "{now_us}"]), &tracker, &stop);
        let ups = t.take_unsent(64);
        assert_eq!(ups.iter().map(|u| u.seq).collect::<Vec<_>>(), [1, 2, 3]);
        match &ups[1].body {
            Some(Body::Output(c)) => {
                let text = String::from_utf8(c.data.clone()).unwrap();
                assert!(text.starts_with("hi ") && text.ends_with('\n'), "{text}");
            }
            other => panic!("expected output, got {other:?}"),
        }
        // Re-assigned while unacknowledged: not started again.
        t.on_assign(assign("t1", &["echo", "hi"]), &tracker, &stop);
        assert_eq!(t.take_unsent(64).len(), 1);
        t.rewind();
        assert_eq!(t.take_unsent(2).len(), 2);
        assert_eq!(t.take_unsent(64).len(), 1);
        t.on_ack(Ack {
            task_id: "t1".into(),
            through_seq: 3,
        });
        assert!(t.unacked_task_ids().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn seq_keeps_growing_after_an_ack() {
        let t = SimTasks::new(Arc::new(Stats::default()));
        let (tracker, stop) = (TaskTracker::new(), CancellationToken::new());
        t.on_assign(assign("s", &["sleep", "1"]), &tracker, &stop);
        assert_eq!(t.take_unsent(64)[0].seq, 1);
        t.on_ack(Ack {
            task_id: "s".into(),
            through_seq: 1,
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(t.take_unsent(64)[0].seq, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_finishes_later_and_cancel_stops_it() {
        let t = SimTasks::new(Arc::new(Stats::default()));
        let (tracker, stop) = (TaskTracker::new(), CancellationToken::new());
        t.on_assign(assign("a", &["sleep", "5"]), &tracker, &stop);
        t.on_assign(assign("b", &["sleep", "5"]), &tracker, &stop);
        assert_eq!(t.take_unsent(64).len(), 2);
        t.on_cancel(CancelTask {
            task_id: "b".into(),
        });
        tokio::time::sleep(Duration::from_secs(6)).await;
        let mut ups = t.take_unsent(64);
        ups.sort_by(|x, y| x.task_id.cmp(&y.task_id));
        let states: Vec<i32> = ups
            .iter()
            .map(|u| match &u.body {
                Some(Body::Finished(f)) => f.state,
                _ => 0,
            })
            .collect();
        assert_eq!(
            states,
            [TaskState::Succeeded as i32, TaskState::Cancelled as i32]
        );
    }
}
