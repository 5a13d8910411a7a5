//! Failed tasks counted by job name and final state, for the coordinator's metrics
//! (`labfleet_tasks_failed_total{job_name, state}`).
//!
//! The engine counts a task when the batch that moved it to a failure state (failed, timed out,
//! lost: [`TaskState::is_failure`], as in the job's own `failed` count) is durable. Counts live
//! in memory only and start at zero with the process, as Prometheus counters may.
//!
//! Cardinality stays bounded whatever operators name their jobs: a job name is its spec's
//! `metadata.name` or the schedule that fired it (so a schedule's jobs share one series), cut
//! to [`MAX_NAME_LEN`] characters of `A-Za-z0-9._-` (others become `_`); a job without a name
//! (`labctl run`) counts as [`UNNAMED`]; and once [`MAX_NAMES`] names are tracked, further names
//! count as [`OTHER`]. There is never a series per job id or per task.

use std::collections::BTreeMap;
use std::sync::Mutex;

use lab_proto::v1::job_event;

use super::state::TaskState;
use crate::store::JobBatch;

/// Most distinct job names tracked; later names are counted under [`OTHER`].
pub const MAX_NAMES: usize = 100;
/// Longest job name kept in a label value (longer names are cut).
pub const MAX_NAME_LEN: usize = 63;
/// The `job_name` of jobs without a name (`labctl run`).
pub const UNNAMED: &str = "_unnamed";
/// The `job_name` of every name past the first [`MAX_NAMES`].
pub const OTHER: &str = "_other";

/// Failed tasks by (job name, state), bounded as the module says.
#[derive(Debug, Default)]
pub struct FailedTasks {
    counts: Mutex<BTreeMap<(String, &'static str), u64>>,
}

impl FailedTasks {
    /// Counts one failed task of a job named `job_name` that ended in `state`.
    pub fn record(&self, job_name: &str, state: TaskState) {
        let Some(state) = state_label(state) else {
            return;
        };
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mut name = label_value(job_name);
        let known = counts.keys().any(|(n, _)| *n == name);
        if !known && name != OTHER && distinct_names(&counts) >= MAX_NAMES {
            name = OTHER.to_owned();
        }
        *counts.entry((name, state)).or_default() += 1;
    }

    /// Every (job name, state) with its count, sorted.
    pub fn snapshot(&self) -> Vec<(String, &'static str, u64)> {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts
            .iter()
            .map(|((name, state), n)| (name.clone(), *state, *n))
            .collect()
    }
}

fn distinct_names(counts: &BTreeMap<(String, &'static str), u64>) -> usize {
    let mut names: Vec<&str> = counts.keys().map(|(n, _)| n.as_str()).collect();
    names.dedup(); // keys are sorted by name first
    names.len()
}

/// The `state` label of a failure state; `None` for states that are not failures.
pub fn state_label(state: TaskState) -> Option<&'static str> {
    match state {
        TaskState::Failed => Some("failed"),
        TaskState::TimedOut => Some("timed_out"),
        TaskState::Lost => Some("lost"),
        _ => None,
    }
}

/// The `job_name` label value of a job named `name` (before the cap on distinct names). Pure.
pub fn label_value(name: &str) -> String {
    if name.is_empty() {
        return UNNAMED.to_owned();
    }
    name.chars()
        .take(MAX_NAME_LEN)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The failed tasks `batch` records: for each task event whose state is a failure, the name of
/// its job (from the batch's job records) and the state. Pure.
pub fn in_batch(batch: &JobBatch) -> Vec<(String, TaskState)> {
    batch
        .events
        .iter()
        .filter_map(|(job_id, event)| {
            let Some(job_event::Body::Task(info)) = event.body.as_ref() else {
                return None;
            };
            let state = TaskState::from_wire(info.state).filter(|s| s.is_failure())?;
            let name = batch
                .jobs
                .iter()
                .find(|j| &j.job_id == job_id)
                .and_then(|j| j.spec.as_ref())
                .map(|s| s.name.clone())
                .unwrap_or_default();
            Some((name, state))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use lab_proto::store::v1::JobRecord;
    use lab_proto::v1::{JobEvent, JobSpec, TaskInfo};

    use super::*;

    #[test]
    fn names_are_cut_and_limited_to_safe_characters() {
        assert_eq!(label_value(""), UNNAMED);
        assert_eq!(label_value("nightly-backup.v2"), "nightly-backup.v2");
        assert_eq!(label_value("Nightly backup \"x\"\n"), "Nightly_backup__x__");
        assert_eq!(label_value(&"a".repeat(200)).len(), MAX_NAME_LEN);
        assert_eq!(label_value("héllo"), "h_llo");
    }

    #[test]
    fn only_failure_states_count() {
        let f = FailedTasks::default();
        f.record("a", TaskState::Succeeded);
        f.record("a", TaskState::Cancelled);
        f.record("a", TaskState::Expired);
        f.record("a", TaskState::Failed);
        f.record("a", TaskState::Failed);
        f.record("a", TaskState::TimedOut);
        f.record("", TaskState::Lost);
        assert_eq!(
            f.snapshot(),
            vec![
                (UNNAMED.to_owned(), "lost", 1),
                ("a".to_owned(), "failed", 2),
                ("a".to_owned(), "timed_out", 1),
            ]
        );
    }

    #[test]
    fn names_past_the_cap_count_as_other() {
        let f = FailedTasks::default();
        for i in 0..MAX_NAMES + 50 {
            f.record(&format!("job-{i}"), TaskState::Failed);
        }
        // A name already tracked keeps its own series, also in another state.
        f.record("job-0", TaskState::TimedOut);
        let snap = f.snapshot();
        let names: std::collections::BTreeSet<&str> =
            snap.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names.len(), MAX_NAMES + 1, "{names:?}");
        assert!(snap.contains(&(OTHER.to_owned(), "failed", 50)), "{snap:?}");
        assert!(snap.contains(&("job-0".to_owned(), "timed_out", 1)));
    }

    #[test]
    fn a_batch_yields_its_failed_tasks_with_their_job_names() {
        let task = |state: TaskState| JobEvent {
            body: Some(job_event::Body::Task(TaskInfo {
                state: state.to_wire() as i32,
                ..Default::default()
            })),
            ..Default::default()
        };
        let batch = JobBatch {
            jobs: vec![JobRecord {
                job_id: "j1".into(),
                spec: Some(JobSpec {
                    name: "nightly".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            events: vec![
                ("j1".into(), task(TaskState::Running)),
                ("j1".into(), task(TaskState::Failed)),
                ("j1".into(), task(TaskState::Succeeded)),
                ("j2".into(), task(TaskState::Lost)),
            ],
            ..Default::default()
        };
        assert_eq!(
            in_batch(&batch),
            vec![
                ("nightly".to_owned(), TaskState::Failed),
                (String::new(), TaskState::Lost)
            ]
        );
    }
}
