//! Task states and the one function that moves a task from one to the next (DESIGN §5):
//! `pending → assigned → running → succeeded | failed | cancelled | timed_out | expired | lost`.

use lab_proto::v1::TaskState as WireState;

/// Where a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// Waiting for its turn or for its node to connect.
    Pending,
    /// Sent to the agent, not started yet.
    Assigned,
    /// The agent started it.
    Running,
    /// Exit code 0.
    Succeeded,
    /// Non-zero exit, or it could not start.
    Failed,
    /// Cancelled by an operator or by a stopped rollout.
    Cancelled,
    /// Killed at its timeout.
    TimedOut,
    /// Its node did not connect before the job's deadline.
    Expired,
    /// Its agent restarted while it ran.
    Lost,
}

/// Something that happens to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskEvent {
    /// The coordinator sends it to the agent.
    Assign,
    /// The agent reports it started.
    Start,
    /// The agent reports a final state.
    Finish(TaskState),
    /// Cancelled before it reached an agent (or while the agent was offline).
    Cancel,
    /// The deadline passed before it was assigned.
    Expire,
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task cannot go from {from:?} on {event:?}")]
pub struct IllegalTransition {
    /// State before.
    pub from: TaskState,
    /// What happened.
    pub event: TaskEvent,
}

impl TaskState {
    /// Whether nothing more will happen to the task.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            TaskState::Pending | TaskState::Assigned | TaskState::Running
        )
    }

    /// Whether the task counts against `--max-failures`.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            TaskState::Failed | TaskState::TimedOut | TaskState::Lost
        )
    }

    /// The state after `event`.
    pub fn on(self, event: TaskEvent) -> Result<TaskState, IllegalTransition> {
        use TaskEvent as E;
        use TaskState as S;
        let next = match (self, event) {
            (S::Pending, E::Assign) => S::Assigned,
            (S::Pending | S::Assigned | S::Running, E::Cancel) => S::Cancelled,
            (S::Pending, E::Expire) => S::Expired,
            (S::Assigned, E::Start) => S::Running,
            (
                S::Assigned | S::Running,
                E::Finish(to @ (S::Succeeded | S::Failed | S::Cancelled | S::TimedOut | S::Lost)),
            ) => to,
            (from, event) => return Err(IllegalTransition { from, event }),
        };
        Ok(next)
    }

    /// From the wire enum number.
    pub fn from_wire(value: i32) -> Option<TaskState> {
        Some(match WireState::try_from(value).ok()? {
            WireState::Pending => TaskState::Pending,
            WireState::Assigned => TaskState::Assigned,
            WireState::Running => TaskState::Running,
            WireState::Succeeded => TaskState::Succeeded,
            WireState::Failed => TaskState::Failed,
            WireState::Cancelled => TaskState::Cancelled,
            WireState::TimedOut => TaskState::TimedOut,
            WireState::Expired => TaskState::Expired,
            WireState::Lost => TaskState::Lost,
            WireState::Unspecified => return None,
        })
    }

    /// To the wire enum.
    pub fn to_wire(self) -> WireState {
        match self {
            TaskState::Pending => WireState::Pending,
            TaskState::Assigned => WireState::Assigned,
            TaskState::Running => WireState::Running,
            TaskState::Succeeded => WireState::Succeeded,
            TaskState::Failed => WireState::Failed,
            TaskState::Cancelled => WireState::Cancelled,
            TaskState::TimedOut => WireState::TimedOut,
            TaskState::Expired => WireState::Expired,
            TaskState::Lost => WireState::Lost,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TaskEvent as E;
    use super::TaskState as S;
    use super::*;

    const ALL: [TaskState; 9] = [
        S::Pending,
        S::Assigned,
        S::Running,
        S::Succeeded,
        S::Failed,
        S::Cancelled,
        S::TimedOut,
        S::Expired,
        S::Lost,
    ];

    #[test]
    fn legal_edges() {
        assert_eq!(S::Pending.on(E::Assign), Ok(S::Assigned));
        assert_eq!(S::Pending.on(E::Cancel), Ok(S::Cancelled));
        assert_eq!(S::Pending.on(E::Expire), Ok(S::Expired));
        assert_eq!(S::Assigned.on(E::Start), Ok(S::Running));
        assert_eq!(S::Assigned.on(E::Cancel), Ok(S::Cancelled));
        assert_eq!(S::Running.on(E::Cancel), Ok(S::Cancelled));
        for to in [S::Succeeded, S::Failed, S::Cancelled, S::TimedOut, S::Lost] {
            assert_eq!(S::Running.on(E::Finish(to)), Ok(to));
            assert_eq!(
                S::Assigned.on(E::Finish(to)),
                Ok(to),
                "spawn failure or lost before start"
            );
        }
    }

    #[test]
    fn final_states_never_move() {
        for from in ALL.into_iter().filter(|s| s.is_final()) {
            for event in [
                E::Assign,
                E::Start,
                E::Cancel,
                E::Expire,
                E::Finish(S::Succeeded),
            ] {
                assert!(from.on(event).is_err(), "{from:?} on {event:?}");
            }
        }
    }

    #[test]
    fn illegal_edges_from_live_states() {
        assert!(S::Pending.on(E::Start).is_err());
        assert!(S::Pending.on(E::Finish(S::Succeeded)).is_err());
        assert!(S::Assigned.on(E::Assign).is_err());
        assert!(S::Assigned.on(E::Expire).is_err());
        assert!(S::Running.on(E::Start).is_err());
        assert!(S::Running.on(E::Assign).is_err());
        assert!(S::Running.on(E::Expire).is_err());
        // A finish must name a final state an agent can report.
        for bad in [S::Pending, S::Assigned, S::Running, S::Expired] {
            assert!(S::Running.on(E::Finish(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn wire_round_trip_and_failure_classes() {
        for s in ALL {
            assert_eq!(TaskState::from_wire(s.to_wire() as i32), Some(s));
        }
        assert_eq!(TaskState::from_wire(0), None);
        assert!(S::Failed.is_failure() && S::TimedOut.is_failure() && S::Lost.is_failure());
        assert!(!S::Cancelled.is_failure() && !S::Expired.is_failure());
    }
}
