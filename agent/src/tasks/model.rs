//! Domain types of the task runner: validated task ids, the task kinds converted from the wire
//! ([`TaskKind`]), and the final result of a task. Conversion from and to `lab_proto::v1`
//! happens here and nowhere else in `tasks` (config resources are converted by
//! [`crate::resources`]); this module does no I/O.

use std::fmt;
use std::str::FromStr;

use lab_proto::v1::task_spec::Kind;
use lab_proto::v1::task_update::Body;
use lab_proto::v1::{
    BackupTask, ContainerTask, ExecTask, TaskFinished, TaskResult, TaskSpec, TaskUpdate,
};
use serde::{Deserialize, Serialize};

use crate::process::{ExecSpec, FinalState, Outcome};
use crate::resources::ConfigSpec;

/// Longest task id the agent accepts (it was a file name in the journal of earlier agents).
pub const MAX_TASK_ID_LEN: usize = 64;

/// A task id that is safe to use as a file name: `[A-Za-z0-9_-]{1,64}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(String);

/// A task id that does not match `[A-Za-z0-9_-]{1,64}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid task id")]
pub struct InvalidTaskId;

impl FromStr for TaskId {
    type Err = InvalidTaskId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= MAX_TASK_ID_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(TaskId(s.to_owned()))
        } else {
            Err(InvalidTaskId)
        }
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TaskId {
    /// The id as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A final result as journaled: the outcome, when, and the seq of its `finished` update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finished {
    /// Final state.
    pub state: FinalState,
    /// Exit code; -1 when killed by a signal or never started.
    pub exit_code: i32,
    /// Why it failed, empty otherwise.
    #[serde(default)]
    pub error: String,
    /// When it ended (unix ms).
    pub unix_ms: i64,
    /// Sequence number of the `finished` update.
    pub seq: u64,
    /// Structured result of config and container tasks: the protobuf encoding in base64, so
    /// that fields added to the contract later survive a journal round trip. Absent in
    /// records written before results existed.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "result_b64")]
    pub result: Option<TaskResult>,
}

/// (De)serializes an optional [`TaskResult`] as base64 of its protobuf encoding.
mod result_b64 {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use lab_proto::v1::TaskResult;
    use prost::Message;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(r: &Option<TaskResult>, s: S) -> Result<S::Ok, S::Error> {
        match r {
            Some(r) => s.serialize_str(&STANDARD.encode(r.encode_to_vec())),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<TaskResult>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        let bytes = STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)?;
        TaskResult::decode(bytes.as_slice())
            .map(Some)
            .map_err(serde::de::Error::custom)
    }
}

impl Finished {
    /// `outcome` as the update with sequence number `seq`, ended at `unix_ms`.
    pub fn new(outcome: Outcome, unix_ms: i64, seq: u64) -> Self {
        Finished {
            state: outcome.state,
            exit_code: outcome.exit_code,
            error: outcome.error,
            unix_ms,
            seq,
            result: outcome.result,
        }
    }

    /// The wire update of `task_id` reporting this result.
    pub fn to_update(&self, task_id: &str) -> TaskUpdate {
        TaskUpdate {
            task_id: task_id.to_owned(),
            seq: self.seq,
            body: Some(Body::Finished(TaskFinished {
                state: self.state.to_proto() as i32,
                exit_code: self.exit_code,
                error: self.error.clone(),
                unix_ms: self.unix_ms,
                result: self.result.clone(),
                // The outbox adds what it dropped of this task's output.
                output_dropped_bytes: 0,
            })),
        }
    }
}

/// What a task does, as the runner needs it: one case per `TaskSpec.kind`.
#[derive(Debug, Clone)]
pub enum TaskKind {
    /// Run a program.
    Exec(ExecSpec),
    /// Apply (or check) configuration resources; invalid resources are kept and fail when
    /// their turn comes, so the result names them.
    Config(ConfigSpec),
    /// Docker/Podman; handed as is to [`crate::containers::run_task`], whose signature takes
    /// the wire type.
    Container(ContainerTask),
    /// restic, database dumps, SnapRAID and restore drills; handed as is to
    /// [`crate::backup::run_task`], whose signature takes the wire type.
    Backup(BackupTask),
}

impl TaskKind {
    /// Short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            TaskKind::Exec(_) => "exec",
            TaskKind::Config(_) => "config",
            TaskKind::Container(_) => "container",
            TaskKind::Backup(_) => "backup",
        }
    }
}

impl TryFrom<Option<TaskSpec>> for TaskKind {
    type Error = String;
    fn try_from(spec: Option<TaskSpec>) -> Result<Self, String> {
        let kind = spec
            .and_then(|s| s.kind)
            .ok_or("the task has no spec or a kind this agent does not know; upgrade the agent")?;
        match kind {
            Kind::Exec(exec) => {
                let ExecTask {
                    argv,
                    env,
                    cwd,
                    user,
                    env_from,
                } = exec;
                if !env_from.is_empty() {
                    // crate::secrets::resolve puts the decrypted values into `env` first.
                    return Err(
                        "envFrom was not decrypted before the task ran (an agent bug)".into(),
                    );
                }
                if argv.first().is_none_or(|p| p.is_empty()) {
                    return Err("the exec task has no program (argv is empty)".to_owned());
                }
                Ok(TaskKind::Exec(ExecSpec {
                    argv,
                    env: env.into_iter().collect(),
                    cwd,
                    user,
                }))
            }
            Kind::Config(config) => Ok(TaskKind::Config(ConfigSpec::from(config))),
            Kind::Container(container) => Ok(TaskKind::Container(container)),
            Kind::Backup(backup) => Ok(TaskKind::Backup(backup)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids() {
        assert!("job-1_a".parse::<TaskId>().is_ok());
        assert!("a".repeat(64).parse::<TaskId>().is_ok());
        for bad in ["", "../x", "a/b", "a.json", "é", &"a".repeat(65), "a b"] {
            assert_eq!(bad.parse::<TaskId>(), Err(InvalidTaskId), "{bad:?}");
        }
    }

    #[test]
    fn spec_conversion() {
        assert!(TaskKind::try_from(None).is_err());
        assert!(TaskKind::try_from(Some(TaskSpec { kind: None })).is_err());
        let empty = TaskSpec {
            kind: Some(Kind::Exec(ExecTask::default())),
        };
        assert!(TaskKind::try_from(Some(empty)).is_err());
        let ok = TaskSpec {
            kind: Some(Kind::Exec(ExecTask {
                argv: vec!["true".into()],
                ..Default::default()
            })),
        };
        match TaskKind::try_from(Some(ok)) {
            Ok(TaskKind::Exec(e)) => assert_eq!(e.argv, ["true"]),
            other => panic!("{other:?}"),
        }
        let config = TaskSpec {
            kind: Some(Kind::Config(lab_proto::v1::ConfigTask {
                resources: vec![lab_proto::v1::Resource::default()],
                check: true,
            })),
        };
        match TaskKind::try_from(Some(config)) {
            Ok(TaskKind::Config(c)) => assert!(c.check && c.resources.len() == 1),
            other => panic!("{other:?}"),
        }
        let container = TaskSpec {
            kind: Some(Kind::Container(ContainerTask::default())),
        };
        assert_eq!(
            TaskKind::try_from(Some(container)).map(|k| k.name()),
            Ok("container")
        );
        let backup = TaskSpec {
            kind: Some(Kind::Backup(BackupTask::default())),
        };
        assert_eq!(
            TaskKind::try_from(Some(backup)).map(|k| k.name()),
            Ok("backup")
        );
    }

    #[test]
    fn finished_records_keep_the_result_and_read_old_ones() {
        use lab_proto::v1::task_result;
        let result = TaskResult {
            kind: Some(task_result::Kind::Config(lab_proto::v1::ConfigResult {
                check: true,
                resources: vec![lab_proto::v1::ResourceResult {
                    resource: "file /etc/motd".into(),
                    status: 2,
                    diff: "+hi\n".into(),
                    message: String::new(),
                    nixos: None,
                }],
            })),
        };
        let mut outcome = Outcome::failed("x");
        outcome.result = Some(result.clone());
        let f = Finished::new(outcome, 5, 3);
        let json = serde_json::to_string(&f).unwrap();
        let back: Finished = serde_json::from_str(&json).unwrap();
        assert_eq!(back, f);
        match back.to_update("t").body {
            Some(Body::Finished(tf)) => assert_eq!(tf.result, Some(result)),
            other => panic!("{other:?}"),
        }
        let old = r#"{"state":"succeeded","exit_code":0,"error":"","unix_ms":1,"seq":4}"#;
        let old: Finished = serde_json::from_str(old).unwrap();
        assert_eq!(old.result, None);
        assert!(!serde_json::to_string(&old).unwrap().contains("result"));
        let bad = r#"{"state":"failed","exit_code":0,"unix_ms":1,"seq":4,"result":"!!"}"#;
        assert!(serde_json::from_str::<Finished>(bad).is_err());
    }
}
