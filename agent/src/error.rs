//! The agent's top-level errors, each with its exit code (0 ok, 1 failed, 2 usage, 3 unreachable).

/// A failure of an agent command.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Bad arguments or input (malformed token, bad name, already enrolled).
    #[error("{0}")]
    Usage(String),
    /// Cannot reach the coordinator.
    #[error("{0}")]
    Unreachable(String),
    /// The coordinator refused, or a local step failed.
    #[error("{0}")]
    Failed(String),
}

impl AgentError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            AgentError::Failed(_) => 1,
            AgentError::Usage(_) => 2,
            AgentError::Unreachable(_) => 3,
        }
    }
}
