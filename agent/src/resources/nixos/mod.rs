//! `nixosRebuild` resources: `nixos-rebuild <action>` of a flake (`--flake REF`) or of the
//! channel configuration, an optional health gate after a switch with automatic rollback,
//! and an explicit rollback to the previous or a named generation.
//!
//! The system generation is read before and after with the NixOS facts code
//! ([`crate::facts::nixos`]: the `system -> system-N-link` profile), as is
//! `/run/current-system`; the resource is changed when either moved. All output is streamed.
//!
//! Health gate: after a switch, the check runs (each attempt killed after its timeout, up to
//! 1 + retries attempts, the interval apart); when no attempt passes and the switch made a new
//! generation, the system goes back to the generation that ran before and the resource fails
//! saying why. That is `nixos-rebuild switch --rollback` aimed at a number: `--rollback` itself
//! (`nix-env --rollback`) takes the highest generation below the current one, which after an
//! earlier rolled-back switch is that broken generation, not the one that ran before. (Only
//! when the generation before is unknown is `--rollback` used.) The decisions are pure
//! functions in [`decide`]. Explicit rollback: to the previous generation
//! with `nixos-rebuild switch --rollback`, to a named one with `nix-env --profile
//! /nix/var/nix/profiles/system --switch-generation N` and that profile's
//! `bin/switch-to-configuration switch` (what `nixos-rebuild --rollback` does inside).
//!
//! Check mode runs `nixos-rebuild dry-build` for a rebuild (it evaluates and lists what would
//! be built, changing nothing) and reports "would <action>"; a rollback only says where it
//! would go. Only on NixOS (per [`crate::facts::nixos::is_nixos`] under the context's root);
//! elsewhere the resource fails. The context's root (`lab-agent run --facts-root`, `/` in
//! production) is also where the profile is read and its `switch-to-configuration` found.

pub mod decide;
pub mod spec;

use lab_proto::v1::{NixosHealth, NixosOutcome};

use self::decide::{Gate, Moved, Probe, RollbackPlan, Step, Verdict};
pub use self::spec::{default_name, Health, NixosSpec, Source};
use super::process::{self, Cmd, Ran};
use super::{Cx, Report};
use crate::facts::nixos::{generation_numbers, is_nixos, profile_generation, SYSTEM_PROFILE};
use crate::facts::rootfs::link_text;
use crate::process::FinalState;

/// What the resource says off NixOS.
pub const NOT_NIXOS_MESSAGE: &str =
    "nixosRebuild needs NixOS, and this node is not NixOS (no /etc/NIXOS or ID=nixos in /etc/os-release)";

/// Most bytes of a health check's output kept in the result.
const HEALTH_OUTPUT_MAX: usize = 4096;

/// What a switch or rollback did to the generations, for the structured result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The profile's generation before.
    pub before: Option<u64>,
    /// After (after the rollback, when there was one).
    pub after: Option<u64>,
    /// The health gate's last verdict.
    pub health: NixosHealth,
    /// Health attempts run.
    pub health_attempts: u32,
    /// The tail of the last attempt's output.
    pub health_output: String,
    /// A generation was rolled back (automatically or as asked).
    pub rolled_back: bool,
    /// Why a rollback ran (or was needed, when it failed).
    pub rollback_reason: String,
    /// How the rollback failed.
    pub rollback_error: String,
}

impl Outcome {
    /// The wire form.
    pub fn to_proto(&self) -> NixosOutcome {
        NixosOutcome {
            generation_before: self.before.unwrap_or(0),
            generation_after: self.after.unwrap_or(0),
            health: self.health as i32,
            health_attempts: self.health_attempts,
            health_output: self.health_output.clone(),
            rolled_back: self.rolled_back,
            rollback_reason: self.rollback_reason.clone(),
            rollback_error: self.rollback_error.clone(),
        }
    }
}

/// Applies (or checks) `spec`.
pub async fn apply(spec: &NixosSpec, cx: &mut Cx<'_>) -> Report {
    if !is_nixos(&cx.root) {
        return Report::failed(NOT_NIXOS_MESSAGE);
    }
    match spec {
        NixosSpec::Rebuild {
            action,
            source,
            health,
        } => rebuild(action, source, health.as_ref(), cx).await,
        NixosSpec::Rollback { generation } => rollback(*generation, cx).await,
    }
}

/// `nixos-rebuild <action>`, then the health gate.
async fn rebuild(
    action: &str,
    source: &Source,
    health: Option<&Health>,
    cx: &mut Cx<'_>,
) -> Report {
    let before = profile_generation(&cx.root);
    let system_before = link_text(&cx.root, "run/current-system");
    let what = spec::rebuild_argv(action, source).join(" ");
    if cx.check {
        let ran = process::run(
            cx,
            Cmd::new(&spec::rebuild_argv("dry-build", source)).streamed(),
        )
        .await;
        if !ran.success() {
            return Report::failed(ran.failure());
        }
        let built = ran.tail();
        return Report::changed(
            format!("would run {what}"),
            if built.is_empty() {
                format!("generation {}", decide::shown(before))
            } else {
                built
            },
        );
    }
    let ran = process::run(cx, Cmd::new(&spec::rebuild_argv(action, source)).streamed()).await;
    let moved = Moved {
        before,
        after: profile_generation(&cx.root),
        system_changed: system_before != link_text(&cx.root, "run/current-system"),
    };
    let gate = health.map(|h| Gate {
        what: h.argv.join(" "),
        timeout: h.timeout,
        retries: h.retries,
    });
    let mut outcome = Outcome {
        before,
        after: moved.after,
        ..Outcome::default()
    };
    let switch = if ran.success() {
        Ok(())
    } else {
        Err(ran.failure())
    };
    let mut step = decide::after_switch(switch, moved, gate.as_ref());
    let verdict = loop {
        step = match step {
            Step::Done(verdict) => break verdict,
            Step::Check { attempt, wait } => {
                let (Some(h), Some(g)) = (health, &gate) else {
                    break Verdict::Switched; // unreachable: checks come only with a gate
                };
                let probe = probe(h, attempt, wait, cx, &mut outcome).await;
                decide::after_probe(attempt, &probe, g, moved)
            }
            Step::Rollback { reason } => {
                cx.say(&format!("rolling back: {reason}\n"));
                let ran = match before {
                    Some(to) => switch_generation(to, cx).await,
                    None => previous_generation(cx).await,
                };
                outcome.rollback_reason = reason.clone();
                let result = if ran.success() {
                    outcome.rolled_back = true;
                    Ok(())
                } else {
                    outcome.rollback_error = ran.failure();
                    Err(ran.failure())
                };
                Step::Done(decide::after_rollback(reason, result))
            }
        };
    };
    outcome.after = profile_generation(&cx.root);
    let mut report = Report::failed(verdict.message(outcome.after, gate.is_some()));
    report.status = verdict.status();
    if matches!(verdict, Verdict::Switched | Verdict::RolledBack { .. }) {
        report.diff = if moved.new_generation() {
            format!(
                "{what}: generation {} → {}",
                decide::shown(before),
                decide::shown(moved.after)
            )
        } else {
            format!("{what}: current system changed")
        };
    }
    report.nixos = Some(outcome);
    report
}

/// Runs health attempt `attempt` (after the interval when `wait`), recording it in `outcome`.
async fn probe(
    h: &Health,
    attempt: u32,
    wait: bool,
    cx: &mut Cx<'_>,
    outcome: &mut Outcome,
) -> Probe {
    if wait {
        tokio::select! {
            _ = tokio::time::sleep(h.interval) => {}
            _ = cx.stop.cancelled() => return Probe::Stopped,
        }
    }
    cx.say(&format!(
        "health check attempt {attempt}/{}: {}\n",
        h.retries.saturating_add(1),
        h.argv.join(" ")
    ));
    let ran = process::run(cx, Cmd::new(&h.argv).streamed().limit(h.timeout)).await;
    outcome.health_attempts = attempt;
    outcome.health_output = output_tail(&ran);
    let probe = match ran.state {
        FinalState::Succeeded => Probe::Passed,
        FinalState::TimedOut => Probe::TimedOut,
        FinalState::Cancelled => Probe::Stopped,
        _ if !ran.error.is_empty() => Probe::Failed {
            detail: ran.error.clone(),
        },
        _ => {
            let tail = ran.tail();
            Probe::Failed {
                detail: if tail.is_empty() {
                    format!("exit code {}", ran.exit_code)
                } else {
                    format!("exit code {}: {tail}", ran.exit_code)
                },
            }
        }
    };
    outcome.health = match probe {
        Probe::Passed => NixosHealth::Passed,
        Probe::TimedOut => NixosHealth::TimedOut,
        Probe::Failed { .. } => NixosHealth::Failed,
        Probe::Stopped => NixosHealth::Unspecified,
    };
    probe
}

/// The last [`HEALTH_OUTPUT_MAX`] bytes of a program's stdout and stderr, trimmed.
fn output_tail(ran: &Ran) -> String {
    let text = [
        ran.stdout_text(),
        String::from_utf8_lossy(&ran.stderr).trim().to_owned(),
    ]
    .into_iter()
    .filter(|t| !t.is_empty())
    .collect::<Vec<_>>()
    .join("\n");
    if text.len() <= HEALTH_OUTPUT_MAX {
        return text;
    }
    let mut start = text.len() - HEALTH_OUTPUT_MAX;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_owned()
}

/// `nixos-rebuild switch --rollback`: the highest generation below the current one.
async fn previous_generation(cx: &mut Cx<'_>) -> Ran {
    process::run(
        cx,
        Cmd::new(&["nixos-rebuild", "switch", "--rollback"]).streamed(),
    )
    .await
}

/// Generation `n`: `nix-env --profile P --switch-generation N`, then
/// `P/bin/switch-to-configuration switch` (what `nixos-rebuild --rollback` runs after its
/// `nix-env --rollback`).
async fn switch_generation(n: u64, cx: &mut Cx<'_>) -> Ran {
    let profile = cx.root.join(SYSTEM_PROFILE).display().to_string();
    let set = process::run(
        cx,
        Cmd::new(&[
            "nix-env",
            "--profile",
            &profile,
            "--switch-generation",
            &n.to_string(),
        ])
        .streamed(),
    )
    .await;
    if !set.success() {
        return set;
    }
    let activate = format!("{profile}/bin/switch-to-configuration");
    process::run(cx, Cmd::new(&[activate.as_str(), "switch"]).streamed()).await
}

/// Back to the previous or a named generation.
async fn rollback(generation: Option<u64>, cx: &mut Cx<'_>) -> Report {
    let before = profile_generation(&cx.root);
    let plan = match decide::rollback_plan(generation, before, &generation_numbers(&cx.root)) {
        Ok(plan) => plan,
        Err(e) => return Report::failed(e),
    };
    let to = match plan {
        RollbackPlan::AlreadyCurrent(n) => {
            return Report::unchanged(format!("generation {n} is already current"))
        }
        RollbackPlan::Previous { to } | RollbackPlan::To(to) => to,
    };
    let diff = format!("rollback: generation {} → {to}", decide::shown(before));
    if cx.check {
        return Report::changed(
            format!("would {diff}"),
            format!("generation {}", decide::shown(before)),
        );
    }
    let ran = match plan {
        RollbackPlan::To(n) => switch_generation(n, cx).await,
        _ => previous_generation(cx).await,
    };
    let after = profile_generation(&cx.root);
    let mut outcome = Outcome {
        before,
        after,
        rollback_reason: "asked for (action rollback)".to_owned(),
        ..Outcome::default()
    };
    let mut report = if ran.success() {
        outcome.rolled_back = true;
        Report::changed(diff, format!("generation {}", decide::shown(after)))
    } else {
        outcome.rollback_error = ran.failure();
        Report::failed(format!(
            "{}; the system profile is at generation {}",
            ran.failure(),
            decide::shown(after)
        ))
    };
    report.nixos = Some(outcome);
    report
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use lab_proto::v1::{NixosAction, NixosRebuildResource};

    use super::*;

    #[test]
    fn conversion_and_argv() {
        let flake = NixosSpec::try_from(NixosRebuildResource {
            flake: "/etc/nixos#nas".into(),
            ..Default::default()
        })
        .unwrap();
        let NixosSpec::Rebuild {
            action,
            source,
            health,
        } = flake
        else {
            panic!("a rebuild");
        };
        assert_eq!((action, health), ("switch", None));
        assert_eq!(
            spec::rebuild_argv(action, &source),
            ["nixos-rebuild", "switch", "--flake", "/etc/nixos#nas"]
        );
        let channel = Source::Channel { upgrade: true };
        assert_eq!(
            spec::rebuild_argv("boot", &channel),
            ["nixos-rebuild", "boot", "--upgrade"]
        );
        let back = NixosRebuildResource {
            action: NixosAction::Rollback as i32,
            generation: 7,
            ..Default::default()
        };
        assert_eq!(default_name(&back), "nixosRebuild rollback to 7");
        assert_eq!(
            NixosSpec::try_from(back).unwrap(),
            NixosSpec::Rollback {
                generation: Some(7)
            }
        );
        for flake in ["--impure", "a b", "x\u{7}"] {
            assert!(NixosSpec::try_from(NixosRebuildResource {
                flake: flake.into(),
                ..Default::default()
            })
            .is_err());
        }
    }

    #[test]
    fn health_output_keeps_the_tail() {
        let mut ran = Ran::new("check".into());
        ran.stdout = b"ok\n".to_vec();
        ran.stderr = "é".repeat(HEALTH_OUTPUT_MAX).into_bytes();
        let out = output_tail(&ran);
        assert!(out.len() <= HEALTH_OUTPUT_MAX && out.ends_with('é'));
        ran.stderr = b"warn\n".to_vec();
        assert_eq!(output_tail(&ran), "ok\nwarn");
    }
}
