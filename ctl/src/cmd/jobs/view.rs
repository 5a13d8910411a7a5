//! Jobs and tasks as labctl prints them: the stable JSON/YAML views, the state names and the
//! tables of `labctl jobs` and `labctl job show`. Pure; converts wire types at this one edge.

use std::collections::{BTreeMap, BTreeSet};

use lab_proto::v1::{
    backup_task, container_task, task_spec, BackupTask, JobInfo, JobSpec, SnapraidOperation,
    TaskInfo, TaskState,
};
use serde::Serialize;

use super::result::{self, ResultView};
use crate::output::{self, Format};

/// The lowercase name of a task state (`timed_out`, ...), as in JSON output.
pub fn state_name(state: TaskState) -> &'static str {
    match state {
        TaskState::Unspecified => "unknown",
        TaskState::Pending => "pending",
        TaskState::Assigned => "assigned",
        TaskState::Running => "running",
        TaskState::Succeeded => "succeeded",
        TaskState::Failed => "failed",
        TaskState::Cancelled => "cancelled",
        TaskState::TimedOut => "timed_out",
        TaskState::Expired => "expired",
        TaskState::Lost => "lost",
    }
}

/// The state labctl shows for a task: its [`state_name`], except that a task cancelled before
/// it started (a cancelled job's or a stopped rollout's untouched tasks) is "skipped": nothing ran.
pub fn task_state_name(t: &TaskInfo) -> &'static str {
    match t.state() {
        TaskState::Cancelled if t.started_unix_ms <= 0 => "skipped",
        state => state_name(state),
    }
}

/// Whether a task in `state` will not change any more.
pub fn is_final(state: TaskState) -> bool {
    match state {
        TaskState::Unspecified | TaskState::Pending | TaskState::Assigned | TaskState::Running => {
            false
        }
        TaskState::Succeeded
        | TaskState::Failed
        | TaskState::Cancelled
        | TaskState::TimedOut
        | TaskState::Expired
        | TaskState::Lost => true,
    }
}

/// A task as labctl prints it (JSON field names are stable).
#[derive(Debug, Clone, Serialize)]
pub struct TaskView {
    /// Task id.
    pub task_id: String,
    /// Node it runs on.
    pub node: String,
    /// pending, assigned, running, succeeded, failed, cancelled, skipped (cancelled before it
    /// started), timed_out, expired, lost.
    pub state: &'static str,
    /// Exit code once the process exited; null while running or when killed by a signal.
    pub exit_code: Option<i32>,
    /// Why it did not succeed; null when there is nothing to say.
    pub error: Option<String>,
    /// Start time (RFC 3339), null if not started.
    pub started: Option<String>,
    /// End time (RFC 3339), null if not finished.
    pub finished: Option<String>,
    /// Run time in milliseconds, null unless started and finished.
    pub duration_ms: Option<i64>,
    /// Output bytes produced.
    pub output_bytes: u64,
    /// Output bytes dropped from the head of the stored tail.
    pub output_dropped_bytes: u64,
    /// Structured result of a config or container task (see `result`); null otherwise.
    pub result: Option<ResultView>,
}

impl From<&TaskInfo> for TaskView {
    fn from(t: &TaskInfo) -> Self {
        let state = t.state();
        let duration_ms = (t.started_unix_ms > 0 && t.finished_unix_ms >= t.started_unix_ms)
            .then(|| t.finished_unix_ms - t.started_unix_ms);
        TaskView {
            task_id: t.task_id.clone(),
            node: t.node.clone(),
            state: task_state_name(t),
            exit_code: (is_final(state) && t.exit_code >= 0).then_some(t.exit_code),
            error: (!t.error.is_empty()).then(|| t.error.clone()),
            started: output::time(t.started_unix_ms),
            finished: output::time(t.finished_unix_ms),
            duration_ms,
            output_bytes: t.output_bytes,
            output_dropped_bytes: t.output_dropped_bytes,
            result: result::view(t.result.as_ref()),
        }
    }
}

/// A job as labctl prints it (JSON field names are stable).
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    /// Job id.
    pub id: String,
    /// Submission time (RFC 3339).
    pub submitted: Option<String>,
    /// Who submitted it.
    pub submitted_by: String,
    /// When its last task reached a final state.
    pub finished: Option<String>,
    /// running, cancelling, succeeded, failed, cancelled, no_nodes.
    pub state: &'static str,
    /// All tasks are final.
    pub done: bool,
    /// Someone asked to cancel it.
    pub cancel_requested: bool,
    /// Target selector (empty = every node).
    pub selector: String,
    /// Task kind: exec, config, container (unknown if absent).
    pub kind: &'static str,
    /// The task in one line: the command line of an exec task, else e.g.
    /// "config: 3 resource(s), check mode" or "container ensure web".
    pub description: String,
    /// Config task in check mode: nothing is changed.
    pub check: bool,
    /// argv of the exec task (empty for other task kinds).
    pub command: Vec<String>,
    /// Environment of the exec task.
    pub env: BTreeMap<String, String>,
    /// Working directory of the exec task (empty = agent default).
    pub cwd: String,
    /// User of the exec task (empty = agent's user).
    pub user: String,
    /// Tasks in flight at once (0 = all).
    pub batch_size: u32,
    /// Batch size in percent (used when batch_size is 0).
    pub batch_percent: u32,
    /// Stop starting tasks after this many failed (0 = never).
    pub max_failures: u32,
    /// Canary tasks run first.
    pub canary: u32,
    /// Per-task timeout in ms (0 = none).
    pub timeout_ms: u64,
    /// Offline deadline in ms (0 = default).
    pub deadline_ms: u64,
    /// Tasks that succeeded.
    pub succeeded: usize,
    /// Tasks that reached any other final state.
    pub failed: usize,
    /// One entry per matched node.
    pub tasks: Vec<TaskView>,
}

/// The overall state of a job.
pub fn job_state(job: &JobInfo) -> &'static str {
    let (ok, bad) = counts(&job.tasks);
    match (job.done, job.cancel_requested) {
        (false, false) => "running",
        (false, true) => "cancelling",
        (true, _) if job.tasks.is_empty() => "no_nodes",
        (true, _) if bad == 0 && ok == job.tasks.len() => "succeeded",
        (true, true) => "cancelled",
        (true, false) => "failed",
    }
}

/// (succeeded, other final) task counts.
fn counts(tasks: &[TaskInfo]) -> (usize, usize) {
    let ok = tasks
        .iter()
        .filter(|t| t.state() == TaskState::Succeeded)
        .count();
    let finished = tasks.iter().filter(|t| is_final(t.state())).count();
    (ok, finished - ok)
}

impl From<&JobInfo> for JobView {
    fn from(job: &JobInfo) -> Self {
        let spec = job.spec.clone().unwrap_or_default();
        let (kind, description) = describe(&spec);
        let check = is_check(&spec);
        let rollout = spec.rollout.unwrap_or_default();
        let exec = match spec.task.and_then(|t| t.kind) {
            Some(task_spec::Kind::Exec(exec)) => exec,
            Some(
                task_spec::Kind::Config(_)
                | task_spec::Kind::Container(_)
                | task_spec::Kind::Backup(_),
            )
            | None => Default::default(),
        };
        let (succeeded, failed) = counts(&job.tasks);
        JobView {
            id: job.job_id.clone(),
            submitted: output::time(job.submitted_unix_ms),
            submitted_by: job.submitted_by.clone(),
            finished: output::time(job.finished_unix_ms),
            state: job_state(job),
            done: job.done,
            cancel_requested: job.cancel_requested,
            selector: spec.selector,
            kind,
            description,
            check,
            command: exec.argv,
            env: exec.env.into_iter().collect(),
            cwd: exec.cwd,
            user: exec.user,
            batch_size: rollout.batch_size,
            batch_percent: rollout.batch_percent,
            max_failures: rollout.max_failures,
            canary: rollout.canary,
            timeout_ms: spec.timeout_ms,
            deadline_ms: spec.deadline_ms,
            succeeded,
            failed,
            tasks: job.tasks.iter().map(TaskView::from).collect(),
        }
    }
}

/// Whether `spec` is a config task in check mode.
pub fn is_check(spec: &JobSpec) -> bool {
    matches!(
        spec.task.as_ref().and_then(|t| t.kind.as_ref()),
        Some(task_spec::Kind::Config(c)) if c.check
    )
}

/// The kind name and a one-line description of a job's task.
pub fn describe(spec: &JobSpec) -> (&'static str, String) {
    use container_task::Action;
    match spec.task.as_ref().and_then(|t| t.kind.as_ref()) {
        None => ("unknown", String::new()),
        Some(task_spec::Kind::Exec(e)) => ("exec", command_line(&e.argv)),
        Some(task_spec::Kind::Config(c)) => {
            let check = if c.check { ", check mode" } else { "" };
            let n = c.resources.len();
            ("config", format!("config: {n} resource(s){check}"))
        }
        Some(task_spec::Kind::Container(c)) => {
            let what = match &c.action {
                None => "container".to_owned(),
                Some(Action::Ensure(e)) => format!("container ensure {}", e.name),
                Some(Action::Stop(r)) => format!("container stop {}", r.name),
                Some(Action::Remove(r)) => format!("container remove {}", r.name),
                Some(Action::Restart(r)) => format!("container restart {}", r.name),
                Some(Action::Pull(i)) => format!("container pull {}", i.image),
                Some(Action::Logs(l)) => format!("container logs {}", l.name),
            };
            ("container", what)
        }
        Some(task_spec::Kind::Backup(b)) => ("backup", backup_description(b)),
    }
}

/// "backup NAME: restic backup /home" and the like.
fn backup_description(b: &BackupTask) -> String {
    use backup_task::Action;
    let what = match &b.action {
        None => "backup".to_owned(),
        Some(Action::Restic(r)) => format!("restic backup {}", r.paths.join(" ")),
        Some(Action::Forget(_)) => "restic forget".to_owned(),
        Some(Action::Check(_)) => "restic check".to_owned(),
        Some(Action::Snapshots(_)) => "restic snapshots".to_owned(),
        Some(Action::Restore(r)) => format!("restic restore to {}", r.target),
        Some(Action::Postgres(p)) if p.database.is_empty() => "pg_dumpall into restic".to_owned(),
        Some(Action::Postgres(p)) => format!("pg_dump {} into restic", p.database),
        Some(Action::PostgresRestore(p)) => format!("restore database {}", p.database),
        Some(Action::Snapraid(s)) => format!("snapraid {}", snapraid_verb(s.operation())),
        Some(Action::Drill(_)) => "restore drill".to_owned(),
    };
    if b.name.is_empty() {
        what
    } else {
        format!("{}: {what}", b.name)
    }
}

fn snapraid_verb(op: SnapraidOperation) -> &'static str {
    match op {
        SnapraidOperation::Unspecified => "?",
        SnapraidOperation::Sync => "sync",
        SnapraidOperation::Scrub => "scrub",
        SnapraidOperation::Status => "status",
        SnapraidOperation::Diff => "diff",
    }
}

/// argv as one line a shell would accept (arguments with spaces or quotes are single-quoted).
pub fn command_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
            if plain {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The jobs with at least one task on one of `nodes` (`labctl jobs -l`: the nodes a selector
/// matches now), in the same order. Pure.
pub fn on_nodes(jobs: Vec<JobView>, nodes: &BTreeSet<String>) -> Vec<JobView> {
    jobs.into_iter()
        .filter(|j| j.tasks.iter().any(|t| nodes.contains(&t.node)))
        .collect()
}

/// The `labctl jobs` table: fitted to 80 columns (a long command ends in `…`), or with `-o
/// wide` also who submitted it and its selector, and the whole command. STATE is coloured
/// when `color`. Pure.
pub fn jobs_table(jobs: &[JobView], now_ms: i64, format: Format, color: bool) -> String {
    if format.is_wide() {
        let mut t = output::table([
            "ID",
            "SUBMITTED",
            "BY",
            "STATE",
            "TASKS",
            "OK",
            "FAILED",
            "SELECTOR",
            "COMMAND",
        ]);
        for j in jobs {
            let mut styles = [""; 9];
            styles[3] = output::state_style(j.state);
            let selector = if j.selector.is_empty() {
                "*".to_owned()
            } else {
                j.selector.clone()
            };
            let cells = [
                j.id.clone(),
                output::age(ms_of(j.submitted.as_deref()), now_ms),
                j.submitted_by.clone(),
                j.state.to_owned(),
                j.tasks.len().to_string(),
                j.succeeded.to_string(),
                j.failed.to_string(),
                selector,
                j.description.clone(),
            ];
            t.row_styled(cells, styles, color);
        }
        return t.to_string();
    }
    let mut t = output::table([
        "ID",
        "SUBMITTED",
        "STATE",
        "TASKS",
        "OK",
        "FAILED",
        "COMMAND",
    ]);
    for j in jobs {
        let mut styles = [""; 7];
        styles[2] = output::state_style(j.state);
        let cells = [
            j.id.clone(),
            output::age(ms_of(j.submitted.as_deref()), now_ms),
            j.state.to_owned(),
            j.tasks.len().to_string(),
            j.succeeded.to_string(),
            j.failed.to_string(),
            j.description.clone(),
        ];
        t.row_styled(cells, styles, color);
    }
    t.fit(format.fit()).to_string()
}

/// "NODE: 958.0 MiB of 959.0 MiB output dropped (only the last 1.0 MiB is kept)" for a task
/// whose output was not all kept; `None` when nothing was dropped.
pub fn dropped_output_note(node: &str, output_bytes: u64, dropped_bytes: u64) -> Option<String> {
    if dropped_bytes == 0 {
        return None;
    }
    Some(format!(
        "{node}: {} of {} output dropped (only the last {} is kept)",
        output::bytes(dropped_bytes),
        output::bytes(output_bytes),
        output::bytes(output_bytes.saturating_sub(dropped_bytes)),
    ))
}

/// Unix ms of an RFC 3339 time; 0 when absent or unparsable.
fn ms_of(time: Option<&str>) -> i64 {
    time.and_then(|t| humantime::parse_rfc3339(t).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The header lines and per-task table of `labctl job show`.
pub fn job_text(job: &JobView) -> String {
    let mut text = format!(
        "job:       {}\nstate:     {}\n{}{}\nselector:  {}\nsubmitted: {} by {}\n",
        job.id,
        job.state,
        if job.kind == "exec" {
            "command:   "
        } else {
            "task:      "
        },
        job.description,
        if job.selector.is_empty() {
            "(every node)"
        } else {
            &job.selector
        },
        job.submitted.as_deref().unwrap_or("-"),
        job.submitted_by,
    );
    if let Some(finished) = &job.finished {
        text += &format!("finished:  {finished}\n");
    }
    text += "\n";
    text += &tasks_table(&job.tasks, false).to_string();
    for t in &job.tasks {
        if let Some(note) = dropped_output_note(&t.node, t.output_bytes, t.output_dropped_bytes) {
            text += "\n";
            text += &note;
        }
    }
    let results: String = job
        .tasks
        .iter()
        .filter_map(|t| {
            let succeeded = t.state == "succeeded";
            t.result
                .as_ref()
                .map(|r| result::render(&t.node, r, succeeded, false))
        })
        .collect();
    if !results.is_empty() {
        if job.check {
            text += "\n\ncheck mode: nothing was changed";
        }
        text += "\n\n";
        text += results.trim_end();
    }
    output::escape_text(&text).into_owned()
}

/// The per-task table of `labctl job show`; STATE coloured when `color`. Pure.
pub fn tasks_table(tasks: &[TaskView], color: bool) -> output::Table<6> {
    let mut table = output::table(["NODE", "STATE", "EXIT", "STARTED", "DURATION", "ERROR"]);
    for t in tasks {
        let mut styles = [""; 6];
        styles[1] = output::state_style(t.state);
        table.row_styled(
            [
                t.node.clone(),
                t.state.to_owned(),
                t.exit_code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "-".into()),
                t.started.clone().unwrap_or_else(|| "-".into()),
                t.duration_ms
                    .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
                    .unwrap_or_else(|| "-".into()),
                t.error.clone().unwrap_or_default(),
            ],
            styles,
            color,
        );
    }
    table
}

#[cfg(test)]
mod tests {
    use lab_proto::v1::{ExecTask, JobSpec, TaskSpec};

    use super::*;

    #[test]
    fn tasks_cancelled_before_they_started_are_skipped() {
        let mut t = task("n1", TaskState::Cancelled, -1);
        assert_eq!(TaskView::from(&t).state, "cancelled");
        t.started_unix_ms = 0;
        assert_eq!(TaskView::from(&t).state, "skipped");
        assert_eq!(
            crate::cmd::jobs::events::final_state_line(&t).as_deref(),
            Some("n1: skipped")
        );
    }

    fn task(node: &str, state: TaskState, exit: i32) -> TaskInfo {
        TaskInfo {
            task_id: format!("{node}-t"),
            node: node.into(),
            state: state as i32,
            exit_code: exit,
            started_unix_ms: 1_000,
            finished_unix_ms: if is_final(state) { 2_500 } else { 0 },
            ..Default::default()
        }
    }

    fn job(tasks: Vec<TaskInfo>, done: bool) -> JobInfo {
        JobInfo {
            job_id: "j1".into(),
            submitted_by: "alice".into(),
            submitted_unix_ms: 1_000,
            done,
            tasks,
            spec: Some(JobSpec {
                task: Some(TaskSpec {
                    kind: Some(task_spec::Kind::Exec(ExecTask {
                        argv: vec!["sh".into(), "-c".into(), "echo 'hi' there".into()],
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn task_view_fields() {
        let v = TaskView::from(&task("n1", TaskState::Failed, 2));
        assert_eq!(
            (v.state, v.exit_code, v.duration_ms),
            ("failed", Some(2), Some(1_500))
        );
        let v = TaskView::from(&task("n1", TaskState::Running, 0));
        assert_eq!((v.exit_code, v.duration_ms, v.finished), (None, None, None));
        let v = TaskView::from(&task("n1", TaskState::Lost, -1));
        assert_eq!((v.state, v.exit_code), ("lost", None));
    }

    #[test]
    fn job_states() {
        use TaskState::*;
        assert_eq!(
            job_state(&job(vec![task("a", Running, 0)], false)),
            "running"
        );
        assert_eq!(job_state(&job(vec![], true)), "no_nodes");
        assert_eq!(
            job_state(&job(vec![task("a", Succeeded, 0)], true)),
            "succeeded"
        );
        let mixed = vec![task("a", Succeeded, 0), task("b", Expired, -1)];
        assert_eq!(job_state(&job(mixed.clone(), true)), "failed");
        let mut cancelled = job(mixed, true);
        cancelled.cancel_requested = true;
        assert_eq!(job_state(&cancelled), "cancelled");
        let v = JobView::from(&cancelled);
        assert_eq!((v.succeeded, v.failed, v.tasks.len()), (1, 1, 2));
    }

    #[test]
    fn command_lines() {
        let argv: Vec<String> = ["sh", "-c", "echo 'hi' there", ""].map(String::from).into();
        assert_eq!(command_line(&argv), r"sh -c 'echo '\''hi'\'' there' ''");
    }

    #[test]
    fn tables() {
        let v = JobView::from(&job(vec![task("n1", TaskState::Failed, 2)], true));
        let list = jobs_table(std::slice::from_ref(&v), 61_000, Format::Table, false);
        assert!(list.contains("1m ago"), "{list}");
        assert!(list.contains("failed"), "{list}");
        let red = jobs_table(std::slice::from_ref(&v), 61_000, Format::Table, true);
        assert!(red.contains("\x1b[31mfailed\x1b[0m"), "{red}");
        // -l: only the jobs with a task on one of the matching nodes.
        let nodes = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
        assert_eq!(on_nodes(vec![v.clone()], &nodes(&["n2", "n1"])).len(), 1);
        assert!(on_nodes(vec![v.clone()], &nodes(&["n2"])).is_empty());
        let show = job_text(&v);
        assert!(show.contains("state:     failed"), "{show}");
        assert!(show.contains("1.5s"), "{show}");
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["tasks"][0]["exit_code"], 2);
        assert_eq!(json["command"][0], "sh");
        assert_eq!(json["kind"], "exec");
        assert_eq!(json["tasks"][0]["result"], serde_json::Value::Null);
    }

    #[test]
    fn config_jobs_show_their_results() {
        use lab_proto::v1::{
            task_result, ConfigResult, ConfigTask, ResourceResult, ResourceStatus, TaskResult,
        };
        let mut j = job(vec![task("n1", TaskState::Succeeded, 0)], true);
        j.spec = Some(JobSpec {
            task: Some(TaskSpec {
                kind: Some(task_spec::Kind::Config(ConfigTask {
                    resources: vec![Default::default(); 2],
                    check: true,
                })),
            }),
            ..Default::default()
        });
        j.tasks[0].result = Some(TaskResult {
            kind: Some(task_result::Kind::Config(ConfigResult {
                check: true,
                resources: vec![ResourceResult {
                    resource: "package htop".into(),
                    status: ResourceStatus::Changed as i32,
                    diff: "install htop".into(),
                    message: String::new(),
                    nixos: None,
                }],
            })),
        });
        let v = JobView::from(&j);
        assert_eq!((v.kind, v.check), ("config", true));
        assert_eq!(v.description, "config: 2 resource(s), check mode");
        let show = job_text(&v);
        assert!(
            show.contains("task:      config: 2 resource(s), check mode"),
            "{show}"
        );
        assert!(
            show.ends_with(
                "check mode: nothing was changed\n\nn1: package htop: would change\n    install htop"
            ),
            "{show}"
        );
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(
            json["tasks"][0]["result"]["config"]["resources"][0]["status"],
            "changed"
        );
        let yaml = serde_yaml_ng::to_string(&v).unwrap();
        assert!(yaml.contains("result:"), "{yaml}");
    }

    #[test]
    fn dropped_output_is_shown_per_task() {
        assert_eq!(dropped_output_note("n1", 10, 0), None);
        let gib = 1024 * 1024 * 1024;
        let kept = 1024 * 1024;
        assert_eq!(
            dropped_output_note("n1", gib, gib - kept).as_deref(),
            Some("n1: 1023.0MiB of 1.0GiB output dropped (only the last 1.0MiB is kept)")
        );
        let mut t = task("n1", TaskState::Succeeded, 0);
        t.output_bytes = gib;
        t.output_dropped_bytes = gib - kept;
        let text = job_text(&JobView::from(&job(vec![t], true)));
        assert!(
            text.contains("n1: 1023.0MiB of 1.0GiB output dropped"),
            "{text}"
        );
    }
}
