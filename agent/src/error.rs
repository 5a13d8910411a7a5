//! The agent's top-level errors, each with its exit code (0 ok, 1 failed, 2 usage, 3 unreachable,
//! 4 refused by the coordinator: systemd must not restart the agent then).

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
    /// The coordinator refuses this node's certificate (revoked or removed): restarting
    /// cannot help (`RestartPreventExitStatus=4` in the systemd unit).
    #[error("{0}")]
    Refused(String),
}

/// Exit code of [`AgentError::Refused`]; deploy/systemd/lab-agent.service names it.
pub const EXIT_REFUSED: u8 = 4;

impl AgentError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            AgentError::Failed(_) => 1,
            AgentError::Usage(_) => 2,
            AgentError::Unreachable(_) => 3,
            AgentError::Refused(_) => EXIT_REFUSED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_does_not_restart_a_refused_agent() {
        let unit = include_str!("../../deploy/systemd/lab-agent.service");
        let line = format!("\nRestartPreventExitStatus={EXIT_REFUSED}\n");
        assert!(unit.contains(&line), "{unit}");
        assert_eq!(AgentError::Refused(String::new()).exit_code(), 4);
    }
}
