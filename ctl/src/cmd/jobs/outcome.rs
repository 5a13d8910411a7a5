//! How a followed job ends and which exit status that gives. Pure; the commands turn the
//! result into messages.

use lab_proto::v1::JobDone;

/// Exit status after Ctrl-C (128 + SIGINT); the job keeps running on the coordinator.
pub const EXIT_INTERRUPTED: u8 = 130;

/// What the tasks of a finished job add up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every task succeeded (and there was at least one).
    Succeeded,
    /// The selector matched no node, so the job has no tasks.
    NoTasks,
    /// At least one task failed, timed out, was lost, expired or was cancelled.
    NotAllSucceeded,
}

/// Judges a job from its `JobDone` event.
pub fn verdict(done: &JobDone) -> Verdict {
    match (done.succeeded, done.failed, done.other) {
        (0, 0, 0) => Verdict::NoTasks,
        (_, 0, 0) => Verdict::Succeeded,
        _ => Verdict::NotAllSucceeded,
    }
}

/// How following a job's events stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The `JobDone` event arrived.
    Done(JobDone),
    /// Ctrl-C; the job keeps running.
    Interrupted,
    /// Only stored events were wanted and the stream went quiet (the job is still running).
    Caught,
    /// The stream broke and could not be resumed; why.
    Unreachable(String),
}

/// The exit status of `labctl run` and `labctl job logs -f` for an ending: 0 every task
/// succeeded, 1 anything else or no task at all, 3 unreachable, 130 interrupted.
pub fn exit_code(ending: &Ending) -> u8 {
    match ending {
        Ending::Done(done) => match verdict(done) {
            Verdict::Succeeded => 0,
            Verdict::NoTasks | Verdict::NotAllSucceeded => 1,
        },
        Ending::Caught => 0,
        Ending::Unreachable(_) => 3,
        Ending::Interrupted => EXIT_INTERRUPTED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(succeeded: u32, failed: u32, other: u32) -> Ending {
        Ending::Done(JobDone {
            succeeded,
            failed,
            other,
        })
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(&done(3, 0, 0)), 0);
        assert_eq!(exit_code(&done(3, 1, 0)), 1);
        assert_eq!(exit_code(&done(3, 0, 1)), 1);
        assert_eq!(exit_code(&done(0, 0, 2)), 1);
        assert_eq!(exit_code(&done(0, 0, 0)), 1);
        assert_eq!(exit_code(&Ending::Caught), 0);
        assert_eq!(exit_code(&Ending::Unreachable("reset".into())), 3);
        assert_eq!(exit_code(&Ending::Interrupted), 130);
    }

    #[test]
    fn verdicts() {
        let v = |s, f, o| {
            verdict(&JobDone {
                succeeded: s,
                failed: f,
                other: o,
            })
        };
        assert_eq!(v(0, 0, 0), Verdict::NoTasks);
        assert_eq!(v(1, 0, 0), Verdict::Succeeded);
        assert_eq!(v(1, 1, 0), Verdict::NotAllSucceeded);
        assert_eq!(v(0, 0, 1), Verdict::NotAllSucceeded);
    }
}
