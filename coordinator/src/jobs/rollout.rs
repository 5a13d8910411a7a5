//! The rollout planner: a pure function from a job's tasks (in rollout order) to what to do next.
//! The engine calls it after every change and on every tick, so a restart only recomputes.
//!
//! Rules: a canary group runs first and alone, and any canary that does not succeed stops the
//! rollout; at most `window` tasks are in flight (assigned or running); once `max_failures`
//! tasks failed no further task starts; pending tasks of a cancelled job are cancelled, and of an
//! expired job (past its deadline) expire.

use super::state::TaskState;

/// The rollout settings of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rollout {
    /// Most tasks in flight; 0 = no limit.
    pub batch_size: u32,
    /// Batch as a percentage of the tasks, used when `batch_size` is 0; 0 = no limit.
    pub batch_percent: u32,
    /// Stop starting tasks once this many failed; 0 = never.
    pub max_failures: u32,
    /// Tasks that run first, alone.
    pub canary: u32,
}

impl Rollout {
    /// How many tasks may be in flight for a job of `total` tasks.
    pub fn window(&self, total: usize) -> usize {
        if self.batch_size > 0 {
            self.batch_size as usize
        } else if self.batch_percent > 0 {
            (total * self.batch_percent.min(100) as usize)
                .div_ceil(100)
                .max(1)
        } else {
            total.max(1)
        }
    }
}

/// What the planner sees of one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskView {
    /// Its state.
    pub state: TaskState,
    /// Whether its node has a live session.
    pub node_online: bool,
}

/// What to do with the task at an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send it to its agent.
    Assign(usize),
    /// Mark it cancelled without running it.
    Cancel(usize),
    /// Mark it expired.
    Expire(usize),
}

/// The job-level facts the planner needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobView {
    /// Rollout settings.
    pub rollout: Rollout,
    /// An operator asked to cancel.
    pub cancel_requested: bool,
    /// The deadline for unstarted tasks has passed.
    pub past_deadline: bool,
}

/// The next actions for `tasks`.
pub fn plan(job: JobView, tasks: &[TaskView]) -> Vec<Action> {
    let pending: Vec<usize> = (0..tasks.len())
        .filter(|&i| tasks[i].state == TaskState::Pending)
        .collect();
    if job.cancel_requested {
        return pending.into_iter().map(Action::Cancel).collect();
    }
    if job.past_deadline {
        return pending.into_iter().map(Action::Expire).collect();
    }
    let failures = tasks.iter().filter(|t| t.state.is_failure()).count();
    let rollout = job.rollout;
    if rollout.max_failures > 0 && failures >= rollout.max_failures as usize {
        return pending.into_iter().map(Action::Cancel).collect();
    }
    let canary = (rollout.canary as usize).min(tasks.len());
    let canaries = &tasks[..canary];
    if canaries
        .iter()
        .any(|t| t.state.is_final() && t.state != TaskState::Succeeded)
    {
        return pending.into_iter().map(Action::Cancel).collect();
    }
    let canaries_done = canaries.iter().all(|t| t.state == TaskState::Succeeded);
    let window = if canaries_done {
        rollout.window(tasks.len())
    } else {
        canary
    };
    let mut in_flight = tasks
        .iter()
        .filter(|t| matches!(t.state, TaskState::Assigned | TaskState::Running))
        .count();
    let eligible = if canaries_done { tasks.len() } else { canary };
    let mut actions = Vec::new();
    for i in pending.into_iter().filter(|&i| i < eligible) {
        if in_flight >= window {
            break;
        }
        if tasks[i].node_online {
            actions.push(Action::Assign(i));
            in_flight += 1;
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskState as S;

    fn views(states: &[TaskState]) -> Vec<TaskView> {
        states
            .iter()
            .map(|&state| TaskView {
                state,
                node_online: true,
            })
            .collect()
    }

    fn job(rollout: Rollout) -> JobView {
        JobView {
            rollout,
            cancel_requested: false,
            past_deadline: false,
        }
    }

    #[test]
    fn no_rollout_assigns_everything_online() {
        let mut t = views(&[S::Pending; 4]);
        t[2].node_online = false;
        assert_eq!(
            plan(job(Rollout::default()), &t),
            vec![Action::Assign(0), Action::Assign(1), Action::Assign(3)]
        );
    }

    #[test]
    fn batch_limits_tasks_in_flight() {
        let r = Rollout {
            batch_size: 2,
            ..Default::default()
        };
        assert_eq!(
            plan(job(r), &views(&[S::Pending; 5])),
            vec![Action::Assign(0), Action::Assign(1)]
        );
        let t = views(&[S::Succeeded, S::Running, S::Pending, S::Pending]);
        assert_eq!(plan(job(r), &t), vec![Action::Assign(2)]);
    }

    #[test]
    fn batch_percent_rounds_up() {
        let r = Rollout {
            batch_percent: 25,
            ..Default::default()
        };
        assert_eq!(r.window(5), 2);
        assert_eq!(r.window(1), 1);
        assert_eq!(Rollout::default().window(0), 1);
    }

    #[test]
    fn max_failures_stops_the_rollout() {
        let r = Rollout {
            batch_size: 1,
            max_failures: 1,
            ..Default::default()
        };
        let t = views(&[S::Failed, S::Pending, S::Pending, S::Pending]);
        assert_eq!(
            plan(job(r), &t),
            vec![Action::Cancel(1), Action::Cancel(2), Action::Cancel(3)]
        );
        let t = views(&[S::TimedOut, S::Running, S::Pending]);
        let r2 = Rollout {
            max_failures: 2,
            ..Default::default()
        };
        assert_eq!(plan(job(r2), &t), vec![Action::Assign(2)]);
    }

    #[test]
    fn canaries_run_first_and_alone() {
        let r = Rollout {
            canary: 1,
            ..Default::default()
        };
        assert_eq!(
            plan(job(r), &views(&[S::Pending; 3])),
            vec![Action::Assign(0)]
        );
        assert_eq!(
            plan(job(r), &views(&[S::Running, S::Pending, S::Pending])),
            vec![]
        );
        assert_eq!(
            plan(job(r), &views(&[S::Succeeded, S::Pending, S::Pending])),
            vec![Action::Assign(1), Action::Assign(2)]
        );
        assert_eq!(
            plan(job(r), &views(&[S::Failed, S::Pending, S::Pending])),
            vec![Action::Cancel(1), Action::Cancel(2)]
        );
    }

    #[test]
    fn cancel_and_deadline_settle_pending_tasks_only() {
        let t = views(&[S::Running, S::Pending, S::Succeeded, S::Pending]);
        let mut j = job(Rollout::default());
        j.cancel_requested = true;
        assert_eq!(plan(j, &t), vec![Action::Cancel(1), Action::Cancel(3)]);
        let mut j = job(Rollout::default());
        j.past_deadline = true;
        assert_eq!(plan(j, &t), vec![Action::Expire(1), Action::Expire(3)]);
    }

    #[test]
    fn offline_nodes_do_not_hold_a_slot() {
        let r = Rollout {
            batch_size: 1,
            ..Default::default()
        };
        let mut t = views(&[S::Pending, S::Pending]);
        t[0].node_online = false;
        assert_eq!(plan(job(r), &t), vec![Action::Assign(1)]);
    }
}
