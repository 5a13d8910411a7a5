//! While `labctl run` follows a job, says what it waits for when tasks sit pending because their
//! node is offline (`waiting for 1 offline node: n2 (deadline in 59m; Ctrl-C detaches)`), so a
//! run with a node down does not look hung. The line is printed again whenever it changes (other
//! nodes, or the deadline a minute closer). The decision is the pure [`line`]; [`watch`] polls.

use std::collections::BTreeSet;
use std::time::Duration;

use lab_proto::pages;
use lab_proto::v1::operator_service_client::OperatorServiceClient;
use lab_proto::v1::{JobInfo, TaskState};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::output;

/// First look after submitting (a node that is only reconnecting gets a moment).
const FIRST_LOOK: Duration = Duration::from_secs(2);

/// Between looks.
const INTERVAL: Duration = Duration::from_secs(5);

/// Deadline of a job whose spec says 0 (the coordinator's default).
const DEFAULT_DEADLINE_MS: u64 = 3_600_000;

/// Nodes named in the line; more are counted.
const NAMED: usize = 5;

/// The line for `job` given the nodes online now; `None` when no pending task waits for an
/// offline node. Pure.
pub fn line(job: &JobInfo, online: &BTreeSet<String>, now_ms: i64) -> Option<String> {
    let waiting: Vec<&str> = job
        .tasks
        .iter()
        .filter(|t| t.state() == TaskState::Pending && !online.contains(&t.node))
        .map(|t| t.node.as_str())
        .collect();
    if waiting.is_empty() {
        return None;
    }
    let deadline_ms = match job.spec.as_ref().map_or(0, |s| s.deadline_ms) {
        0 => DEFAULT_DEADLINE_MS,
        ms => ms,
    };
    let left_ms = (job.submitted_unix_ms + deadline_ms as i64 - now_ms).max(0);
    // Whole minutes left (59m just after submitting with the 1 h default), seconds in the last.
    let left = if left_ms >= 60_000 {
        format!("{}m", left_ms / 60_000)
    } else {
        format!("{}s", (left_ms + 999) / 1000)
    };
    let mut names = waiting
        .iter()
        .take(NAMED)
        .map(|n| output::escape(n).into_owned())
        .collect::<Vec<_>>()
        .join(", ");
    if waiting.len() > NAMED {
        names += &format!(" and {} more", waiting.len() - NAMED);
    }
    Some(format!(
        "waiting for {} offline node{}: {names} (deadline in {left}; Ctrl-C detaches)",
        waiting.len(),
        if waiting.len() == 1 { "" } else { "s" },
    ))
}

/// Polls the job and the nodes until `stop`, printing [`line`] to stderr whenever it changes.
/// Errors are ignored: the event stream that runs beside this reports a lost coordinator.
pub async fn watch(
    mut client: OperatorServiceClient<Channel>,
    job_id: String,
    stop: CancellationToken,
) {
    let mut last: Option<String> = None;
    let mut wait = FIRST_LOOK;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = INTERVAL;
        let Ok(job) = pages::whole_job(&mut client, &job_id).await else {
            continue;
        };
        if job.done {
            return;
        }
        let Ok(nodes) = pages::all_nodes(&mut client, "").await else {
            continue;
        };
        let online: BTreeSet<String> = nodes
            .into_iter()
            .filter(|n| n.online)
            .map(|n| n.name)
            .collect();
        let now = line(&job, &online, output::now_ms());
        if now.is_some() && now != last && !stop.is_cancelled() {
            crate::errln!("{}", now.as_deref().unwrap_or_default());
        }
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use lab_proto::v1::{JobSpec, TaskInfo};

    use super::*;

    fn job(states: &[(&str, TaskState)], deadline_ms: u64) -> JobInfo {
        JobInfo {
            submitted_unix_ms: 1_000_000,
            spec: Some(JobSpec {
                deadline_ms,
                ..Default::default()
            }),
            tasks: states
                .iter()
                .map(|(node, state)| TaskInfo {
                    node: (*node).into(),
                    state: *state as i32,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn names_offline_nodes_with_pending_tasks_and_the_deadline() {
        let online: BTreeSet<String> = ["n1".to_owned(), "n3".to_owned()].into();
        let j = job(
            &[
                ("n1", TaskState::Succeeded),
                ("n2", TaskState::Pending),
                ("n3", TaskState::Pending), // online: held by the rollout, not waiting
            ],
            0,
        );
        assert_eq!(
            line(&j, &online, 1_000_000 + 30_000).as_deref(),
            Some("waiting for 1 offline node: n2 (deadline in 59m; Ctrl-C detaches)")
        );
        assert_eq!(
            line(&j, &online, 1_000_000 + 61_000).as_deref(),
            Some("waiting for 1 offline node: n2 (deadline in 58m; Ctrl-C detaches)")
        );
        let j = job(
            &[("n2", TaskState::Pending), ("n4", TaskState::Pending)],
            20_000,
        );
        assert_eq!(
            line(&j, &online, 1_000_000 + 5_500).as_deref(),
            Some("waiting for 2 offline nodes: n2, n4 (deadline in 15s; Ctrl-C detaches)")
        );
        let j = job(&[("n2", TaskState::Running)], 0);
        assert_eq!(line(&j, &BTreeSet::new(), 1_000_000), None);
    }

    #[test]
    fn long_lists_are_counted() {
        let nodes: Vec<String> = (1..=8).map(|i| format!("n{i}")).collect();
        let states: Vec<(&str, TaskState)> = nodes
            .iter()
            .map(|n| (n.as_str(), TaskState::Pending))
            .collect();
        let text = line(&job(&states, 0), &BTreeSet::new(), 1_000_000).unwrap_or_default();
        assert!(
            text.starts_with("waiting for 8 offline nodes: n1, n2, n3, n4, n5 and 3 more"),
            "{text}"
        );
    }
}
