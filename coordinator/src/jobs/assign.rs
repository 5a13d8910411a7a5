//! The `Assign` message that sends a task to its node, and the one size rule for it: an Assign
//! must fit the gRPC message limit, because one that does not ends the agent's session while it
//! is encoded, on every reconnect. Submit (and every schedule firing) refuses a spec whose
//! Assign cannot fit on any node; a stored task whose Assign does not fit (a job stored before
//! this rule) is failed with the reason instead of being sent.

use lab_proto::limits::{MAX_MESSAGE_BYTES, MAX_NAME_LEN};
use lab_proto::store::v1::JobRecord;
use lab_proto::v1::coordinator_message::Msg as CoordMsg;
use lab_proto::v1::{task_spec, Assign, JobSpec, TaskSpec};
use prost::Message;

use super::secrets::SecretContent;
use crate::error::ApiError;

/// Longest job id: a schedule firing's `<due time, 13 hex digits>-<schedule name>`.
const LONGEST_JOB_ID: usize = 14 + MAX_NAME_LEN;
/// Digits of the longest task index (task ids are `<job id>-<index>`); covers any fleet.
const LONGEST_TASK_INDEX: usize = 10;

/// The Assign of task `task_id` of `job` for `node`. Exec tasks get `LAB_NODE`, `LAB_JOB_ID`
/// and `LAB_TASK_ID` in their environment, so one command can behave per node. Secret file
/// content, kept out of the stored spec, is put back from `secret`.
fn assign(job: &JobRecord, task_id: &str, node: &str, secret: Option<&SecretContent>) -> Assign {
    let spec = job.spec.clone().unwrap_or_default();
    let mut task = spec.task;
    if let (Some(task), Some(secret)) = (task.as_mut(), secret) {
        super::secrets::restore(task, secret);
    }
    if let Some(TaskSpec {
        kind: Some(task_spec::Kind::Exec(exec)),
    }) = task.as_mut()
    {
        exec.env.insert("LAB_NODE".into(), node.to_owned());
        exec.env.insert("LAB_JOB_ID".into(), job.job_id.clone());
        exec.env.insert("LAB_TASK_ID".into(), task_id.to_owned());
    }
    Assign {
        task_id: task_id.to_owned(),
        job_id: job.job_id.clone(),
        spec: task,
        timeout_ms: spec.timeout_ms,
    }
}

/// Bytes of the `CoordinatorMessage` carrying `a`, as encoded on the agent's stream (computed
/// without building it: an Assign can be megabytes, and a job sends one per node).
fn encoded_size(a: &Assign) -> usize {
    let inner = a.encoded_len();
    // The oneof field's key (field 5, one byte) and the length prefix.
    1 + prost::encoding::encoded_len_varint(inner as u64) + inner
}

/// The Assign of a task, or why it cannot be sent (it is over the message limit).
pub fn sendable(
    job: &JobRecord,
    task_id: &str,
    node: &str,
    secret: Option<&SecretContent>,
) -> Result<CoordMsg, String> {
    let a = assign(job, task_id, node, secret);
    let size = encoded_size(&a);
    if size > MAX_MESSAGE_BYTES {
        return Err(format!(
            "the task is {size} bytes as sent to its node, over the message limit of \
             {MAX_MESSAGE_BYTES} bytes; it was not sent (submit a smaller spec)"
        ));
    }
    Ok(CoordMsg::Assign(a))
}

/// Refuses `spec` when its Assign would not fit the message limit on some node (checked with
/// the longest job id, task id and node name there can be).
pub fn check_fits(spec: &JobSpec) -> Result<(), ApiError> {
    let job = JobRecord {
        job_id: "j".repeat(LONGEST_JOB_ID),
        spec: Some(spec.clone()),
        ..Default::default()
    };
    let task_id = format!("{}-{}", job.job_id, "9".repeat(LONGEST_TASK_INDEX));
    // The spec at submit still holds any secret content, so nothing needs restoring.
    let size = encoded_size(&assign(&job, &task_id, &"n".repeat(MAX_NAME_LEN), None));
    if size > MAX_MESSAGE_BYTES {
        return Err(ApiError::InvalidArgument(format!(
            "the task is {size} bytes as sent to a node, over the message limit of \
             {MAX_MESSAGE_BYTES} bytes; make it smaller (file contents, environment, arguments)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_proto::v1::{CoordinatorMessage, ExecTask};

    fn exec_with_env(bytes: usize) -> JobSpec {
        let mut exec = ExecTask {
            argv: vec!["true".into()],
            ..Default::default()
        };
        exec.env.insert("BIG".into(), "x".repeat(bytes));
        JobSpec {
            task: Some(TaskSpec {
                kind: Some(task_spec::Kind::Exec(exec)),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_spec_that_fits_a_request_but_not_an_assign_is_refused() {
        // The request carrying this spec is under the limit; its Assign is not.
        let spec = exec_with_env(MAX_MESSAGE_BYTES - 100);
        let request = lab_proto::v1::SubmitJobRequest {
            spec: Some(spec.clone()),
        };
        assert!(request.encoded_len() <= MAX_MESSAGE_BYTES);
        let err = check_fits(&spec).unwrap_err().to_string();
        assert!(err.contains("over the message limit"), "{err}");
        assert!(check_fits(&exec_with_env(MAX_MESSAGE_BYTES - 1024)).is_ok());
    }

    #[test]
    fn whatever_check_fits_accepts_can_be_sent_to_any_node() {
        let spec = exec_with_env(MAX_MESSAGE_BYTES - 1024);
        check_fits(&spec).unwrap();
        let job = JobRecord {
            job_id: format!("{:013x}-{}", i64::MAX, "s".repeat(MAX_NAME_LEN)),
            spec: Some(spec),
            ..Default::default()
        };
        let task_id = format!("{}-{:04}", job.job_id, 123_456);
        assert!(sendable(&job, &task_id, &"n".repeat(MAX_NAME_LEN), None).is_ok());
    }

    #[test]
    fn the_computed_size_is_the_encoded_size() {
        let job = JobRecord {
            job_id: "j1".into(),
            spec: Some(exec_with_env(300)),
            ..Default::default()
        };
        let real = CoordinatorMessage {
            msg: Some(CoordMsg::Assign(assign(&job, "j1-0000", "n1", None))),
        }
        .encoded_len();
        assert_eq!(encoded_size(&assign(&job, "j1-0000", "n1", None)), real);
    }

    #[test]
    fn an_assign_over_the_limit_is_not_sendable() {
        let job = JobRecord {
            job_id: "j1".into(),
            spec: Some(exec_with_env(MAX_MESSAGE_BYTES)),
            ..Default::default()
        };
        let err = sendable(&job, "j1-0000", "n1", None).unwrap_err();
        assert!(err.contains("over the message limit"), "{err}");
    }
}
