//! The decisions of a health-gated switch and of a rollback, as pure functions: what to do
//! after the switch, after each health attempt and after the rollback, which generation a
//! rollback goes to, and what the resource then reports. [`super`] runs the programs and
//! feeds their results in; nothing here does I/O.
//!
//! Architecture invariant: only a generation the switch made is rolled back. A switch that
//! made none (the configuration was already built) is never rolled back, whatever the health
//! check says: `--rollback` would then leave the generation that ran before the switch.

use std::time::Duration;

use crate::resources::Status;

/// What the switch did to the system profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    /// The profile's generation before the switch.
    pub before: Option<u64>,
    /// After it.
    pub after: Option<u64>,
    /// `/run/current-system` changed (also without a new generation, e.g. `test`).
    pub system_changed: bool,
}

impl Moved {
    /// The switch made a new generation (the one a rollback would undo).
    pub fn new_generation(&self) -> bool {
        self.after.is_some() && self.before != self.after
    }

    fn changed(&self) -> bool {
        self.new_generation() || self.system_changed
    }
}

/// What the decisions need of the health gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    /// The check as shown ("curl -fsS http://localhost/").
    pub what: String,
    /// How long one attempt may run.
    pub timeout: Duration,
    /// Further attempts after a failed one.
    pub retries: u32,
}

/// How one health attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Exit code 0.
    Passed,
    /// Another exit code, or it could not start; `detail` says how ("exit code 7: …").
    Failed {
        /// Why, for messages.
        detail: String,
    },
    /// Killed after the gate's timeout.
    TimedOut,
    /// The task was cancelled or timed out meanwhile.
    Stopped,
}

/// The next step of a switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Run health attempt `attempt` (1-based); wait the interval first when `wait`.
    Check {
        /// 1-based.
        attempt: u32,
        /// Wait the gate's interval first.
        wait: bool,
    },
    /// Go back to the generation that ran before the switch, because of `reason`.
    Rollback {
        /// Why, for the result.
        reason: String,
    },
    /// Finished.
    Done(Verdict),
}

/// How a switch (or rollback) ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing changed (and the health check, if any, passed).
    Unchanged,
    /// A new generation or system is active (and passed the health check, if any).
    Switched,
    /// `nixos-rebuild` failed; nothing was rolled back.
    SwitchFailed {
        /// Its failure.
        error: String,
    },
    /// The health check failed but the switch made no new generation, so nothing was rolled
    /// back.
    Unhealthy {
        /// The health check's failure.
        reason: String,
    },
    /// The new generation was rolled back because of `reason`.
    RolledBack {
        /// Why.
        reason: String,
    },
    /// The rollback was needed because of `reason` and failed with `error`.
    RollbackFailed {
        /// Why it was needed.
        reason: String,
        /// How it failed.
        error: String,
    },
    /// The task was stopped during the health check; the new generation stays.
    Stopped,
}

/// After `nixos-rebuild switch` ended (`Err` = its failure).
pub fn after_switch(switch: Result<(), String>, moved: Moved, gate: Option<&Gate>) -> Step {
    match (switch, gate) {
        // Activation can fail after the profile moved: with a gate, go back.
        (Err(error), Some(_)) if moved.new_generation() => Step::Rollback {
            reason: format!(
                "the switch failed after making generation {}: {error}",
                shown(moved.after)
            ),
        },
        (Err(error), _) => Step::Done(Verdict::SwitchFailed { error }),
        (Ok(()), Some(_)) => Step::Check {
            attempt: 1,
            wait: false,
        },
        (Ok(()), None) => Step::Done(kept(moved)),
    }
}

/// After health attempt `attempt` ended with `probe`.
pub fn after_probe(attempt: u32, probe: &Probe, gate: &Gate, moved: Moved) -> Step {
    let failure = match probe {
        Probe::Passed => return Step::Done(kept(moved)),
        Probe::Stopped => return Step::Done(Verdict::Stopped),
        Probe::Failed { detail } => format!("failed ({detail})"),
        Probe::TimedOut => format!(
            "timed out after {}",
            humantime::format_duration(gate.timeout)
        ),
    };
    if attempt <= gate.retries {
        return Step::Check {
            attempt: attempt + 1,
            wait: true,
        };
    }
    let tries = if attempt > 1 {
        format!(" on all {attempt} attempts, the last")
    } else {
        String::new()
    };
    let reason = format!("health check '{}'{tries} {failure}", gate.what);
    if moved.new_generation() {
        Step::Rollback { reason }
    } else {
        Step::Done(Verdict::Unhealthy { reason })
    }
}

/// After the rollback that `reason` asked for ended (`Err` = its failure).
pub fn after_rollback(reason: String, rollback: Result<(), String>) -> Verdict {
    match rollback {
        Ok(()) => Verdict::RolledBack { reason },
        Err(error) => Verdict::RollbackFailed { reason, error },
    }
}

fn kept(moved: Moved) -> Verdict {
    if moved.changed() {
        Verdict::Switched
    } else {
        Verdict::Unchanged
    }
}

/// "42", or "unknown".
pub fn shown(generation: Option<u64>) -> String {
    generation.map_or_else(|| "unknown".to_owned(), |g| g.to_string())
}

impl Verdict {
    /// The resource's status.
    pub fn status(&self) -> Status {
        match self {
            Verdict::Unchanged => Status::Unchanged,
            Verdict::Switched => Status::Changed,
            _ => Status::Failed,
        }
    }

    /// The resource's message; `active` is the profile's generation at the end.
    pub fn message(&self, active: Option<u64>, gated: bool) -> String {
        let active = shown(active);
        let health = if gated { ", health check passed" } else { "" };
        match self {
            Verdict::Unchanged => format!("generation {active} (unchanged){health}"),
            Verdict::Switched => format!("generation {active}{health}"),
            Verdict::SwitchFailed { error } => {
                format!("{error}; generation {active} is still active")
            }
            Verdict::Unhealthy { reason } => format!(
                "{reason}; the switch made no new generation, so nothing was rolled back \
                 (generation {active} is active)"
            ),
            Verdict::RolledBack { reason } => {
                format!("{reason}; rolled back to generation {active}")
            }
            Verdict::RollbackFailed { reason, error } => {
                format!("{reason}; the rollback failed too: {error}; generation {active} is active")
            }
            Verdict::Stopped => format!(
                "stopped during the health check; generation {active} stays active (roll back \
                 with action rollback)"
            ),
        }
    }
}

/// Where an explicit rollback goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackPlan {
    /// The asked-for generation is already the profile's.
    AlreadyCurrent(u64),
    /// The previous generation, `to` (`nixos-rebuild switch --rollback`).
    Previous {
        /// The generation it goes to.
        to: u64,
    },
    /// A named generation (`nix-env --switch-generation`, then `switch-to-configuration`).
    To(u64),
}

/// Plans a rollback to `requested` (`None` = the previous generation) from the profile's
/// `current` generation, given the `existing` ones (ascending).
pub fn rollback_plan(
    requested: Option<u64>,
    current: Option<u64>,
    existing: &[u64],
) -> Result<RollbackPlan, String> {
    let listed = || {
        let shown: Vec<String> = existing
            .iter()
            .rev()
            .take(10)
            .rev()
            .map(u64::to_string)
            .collect();
        if shown.is_empty() {
            "none".to_owned()
        } else {
            shown.join(", ")
        }
    };
    match requested {
        Some(n) if !existing.contains(&n) => Err(format!(
            "generation {n} does not exist; the system profile has generations {} \
             (see the node's nixos.generations fact)",
            listed()
        )),
        Some(n) if current == Some(n) => Ok(RollbackPlan::AlreadyCurrent(n)),
        Some(n) => Ok(RollbackPlan::To(n)),
        None => {
            let Some(current) = current else {
                return Err(
                    "the system profile points to no generation, so there is no previous one; \
                     name a generation"
                        .to_owned(),
                );
            };
            existing
                .iter()
                .rev()
                .find(|&&g| g < current)
                .map(|&to| RollbackPlan::Previous { to })
                .ok_or_else(|| {
                    format!(
                        "no generation older than the current one ({current}) exists; \
                         generations: {}",
                        listed()
                    )
                })
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "decide_tests.rs"]
mod tests;
