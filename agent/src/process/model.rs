//! What the process module speaks: a program to run ([`ExecSpec`]), how a run ended
//! ([`FinalState`], [`Outcome`]). No I/O.

use std::collections::BTreeMap;

use lab_proto::v1::{TaskResult, TaskState};
use serde::{Deserialize, Serialize};

/// How a task ended, as journaled and reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinalState {
    /// Exit code 0.
    Succeeded,
    /// Non-zero exit, or the task could not be started.
    Failed,
    /// Cancelled by the coordinator.
    Cancelled,
    /// Killed after its timeout.
    TimedOut,
    /// The agent restarted while the task was running.
    Lost,
}

impl FinalState {
    /// The wire state.
    pub fn to_proto(self) -> TaskState {
        match self {
            FinalState::Succeeded => TaskState::Succeeded,
            FinalState::Failed => TaskState::Failed,
            FinalState::Cancelled => TaskState::Cancelled,
            FinalState::TimedOut => TaskState::TimedOut,
            FinalState::Lost => TaskState::Lost,
        }
    }
}

/// The end of a task, without its sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Final state.
    pub state: FinalState,
    /// Exit code; -1 when killed by a signal or never started.
    pub exit_code: i32,
    /// Why it failed, empty otherwise.
    pub error: String,
    /// Structured result of config, container and backup tasks.
    pub result: Option<TaskResult>,
}

impl Outcome {
    /// A failure before or instead of running the program.
    pub fn failed(error: impl Into<String>) -> Self {
        Outcome {
            state: FinalState::Failed,
            exit_code: -1,
            error: error.into(),
            result: None,
        }
    }

    /// Cancelled before it ran.
    pub fn cancelled_before_start() -> Self {
        Outcome {
            state: FinalState::Cancelled,
            exit_code: -1,
            error: String::new(),
            result: None,
        }
    }

    /// What the journal reports for a task that was running when the agent went away.
    pub fn lost() -> Self {
        Outcome {
            state: FinalState::Lost,
            exit_code: -1,
            error: "the agent restarted while the task was running".to_owned(),
            result: None,
        }
    }
}

/// An `Exec` task, as the runner needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSpec {
    /// Program (looked up in PATH) and arguments.
    pub argv: Vec<String>,
    /// Added to the agent's environment.
    pub env: BTreeMap<String, String>,
    /// Working directory; empty means `/`.
    pub cwd: String,
    /// Run as this user; empty means the agent's user.
    pub user: String,
}
