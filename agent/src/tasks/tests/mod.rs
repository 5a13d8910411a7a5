//! Tests of the task runner with real processes and a real journal in a temp dir: helpers
//! here, running programs in `exec`, config and container dispatch in `config`,
//! effectively-once delivery in `delivery`.

mod config;
mod delivery;
mod exec;

use std::path::Path;
use std::time::Duration;

use lab_proto::limits::FINAL_SEQ_UNKNOWN;
use lab_proto::v1::task_spec::Kind;
use lab_proto::v1::task_update::Body;
use lab_proto::v1::{
    Ack, Assign, CancelTask, ExecTask, OutputStream, TaskFinished, TaskSpec, TaskState, TaskUpdate,
};
use tokio::time::{timeout_at, Instant};

use super::{Tasks, TasksOptions};

const WAIT: Duration = Duration::from_secs(15);

async fn open(dir: &Path, opts: TasksOptions) -> Tasks {
    Tasks::open(dir.join("tasks"), opts).await.unwrap()
}

fn assign_kind(id: &str, kind: Kind) -> Assign {
    Assign {
        task_id: id.into(),
        job_id: "job1".into(),
        spec: Some(TaskSpec { kind: Some(kind) }),
        timeout_ms: 0,
    }
}

fn assign(id: &str, argv: &[&str]) -> Assign {
    Assign {
        task_id: id.into(),
        job_id: "job1".into(),
        spec: Some(TaskSpec {
            kind: Some(Kind::Exec(ExecTask {
                argv: argv.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            })),
        }),
        timeout_ms: 0,
    }
}

/// Everything the runner sent, as a session would see it.
struct Seen {
    tasks: Tasks,
    updates: Vec<TaskUpdate>,
}

impl Seen {
    fn new(tasks: &Tasks) -> Self {
        Seen {
            tasks: tasks.clone(),
            updates: vec![],
        }
    }

    /// Waits until `cond` holds on the updates of `id`, failing after a deadline with `what`.
    async fn until(&mut self, id: &str, what: &str, cond: impl Fn(&[TaskUpdate]) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            self.updates.extend(self.tasks.take_unsent(1000));
            if cond(&self.of(id)) {
                return;
            }
            timeout_at(deadline, self.tasks.changed())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}: {:?}", self.of(id)));
        }
    }

    fn of(&self, id: &str) -> Vec<TaskUpdate> {
        self.updates
            .iter()
            .filter(|u| u.task_id == id)
            .cloned()
            .collect()
    }

    /// Waits for the final update of `id` and returns it with its seq.
    async fn finished(&mut self, id: &str) -> (u64, TaskFinished) {
        self.until(id, "the final update", |u| u.iter().any(is_final))
            .await;
        let ups = self.of(id);
        let last = ups.iter().rfind(|u| is_final(u)).unwrap();
        match &last.body {
            Some(Body::Finished(f)) => (last.seq, f.clone()),
            _ => unreachable!(),
        }
    }

    fn output(&self, id: &str, stream: OutputStream) -> String {
        let mut s = Vec::new();
        for u in self.of(id) {
            if let Some(Body::Output(c)) = &u.body {
                if c.stream == stream as i32 {
                    s.extend_from_slice(&c.data);
                }
            }
        }
        String::from_utf8(s).unwrap()
    }
}

fn is_final(u: &TaskUpdate) -> bool {
    matches!(u.body, Some(Body::Finished(_)))
}

fn has_output(u: &[TaskUpdate]) -> bool {
    u.iter().any(|u| matches!(u.body, Some(Body::Output(_))))
}

fn state(f: &TaskFinished) -> TaskState {
    TaskState::try_from(f.state).unwrap()
}

/// Whether any live (non-zombie) process is in process group `pgid`.
fn group_alive(pgid: i32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten().any(|e| {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            return false;
        };
        // "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after the last ')'.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        f.len() > 2 && f[0] != "Z" && f[0] != "X" && f[2].parse() == Ok(pgid)
    })
}

async fn wait_group_gone(pgid: i32) {
    let deadline = Instant::now() + WAIT;
    while group_alive(pgid) {
        assert!(
            Instant::now() < deadline,
            "process group {pgid} still alive"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
