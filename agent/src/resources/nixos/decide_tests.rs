//! Unit tests of the switch/rollback decisions: a failed switch skips the health gate, a failed
//! gate rolls back to the generation that ran before, timeouts and failed rollbacks are reported.

use super::*;

fn gate(retries: u32) -> Gate {
    Gate {
        what: "check-web".into(),
        timeout: Duration::from_secs(30),
        retries,
    }
}

const NEW: Moved = Moved {
    before: Some(41),
    after: Some(42),
    system_changed: true,
};

const SAME: Moved = Moved {
    before: Some(42),
    after: Some(42),
    system_changed: false,
};

fn failed(detail: &str) -> Probe {
    Probe::Failed {
        detail: detail.into(),
    }
}

#[test]
fn a_failed_switch_runs_no_health_check() {
    let step = after_switch(
        Err("'nixos-rebuild' failed (exit code 1)".into()),
        SAME,
        Some(&gate(2)),
    );
    assert_eq!(
        step,
        Step::Done(Verdict::SwitchFailed {
            error: "'nixos-rebuild' failed (exit code 1)".into()
        })
    );
    assert_eq!(
        after_switch(Err("x".into()), NEW, None),
        Step::Done(Verdict::SwitchFailed { error: "x".into() })
    );
}

#[test]
fn a_switch_that_failed_after_making_a_generation_is_rolled_back_when_gated() {
    let Step::Rollback { reason } =
        after_switch(Err("activation failed".into()), NEW, Some(&gate(0)))
    else {
        panic!("expected a rollback");
    };
    assert_eq!(
        reason,
        "the switch failed after making generation 42: activation failed"
    );
}

#[test]
fn without_a_gate_the_switch_decides() {
    assert_eq!(
        after_switch(Ok(()), NEW, None),
        Step::Done(Verdict::Switched)
    );
    assert_eq!(
        after_switch(Ok(()), SAME, None),
        Step::Done(Verdict::Unchanged)
    );
    let test_action = Moved {
        system_changed: true,
        ..SAME
    };
    assert_eq!(
        after_switch(Ok(()), test_action, None),
        Step::Done(Verdict::Switched)
    );
}

#[test]
fn a_gated_switch_checks_health_first() {
    assert_eq!(
        after_switch(Ok(()), NEW, Some(&gate(0))),
        Step::Check {
            attempt: 1,
            wait: false
        }
    );
}

#[test]
fn healthy_keeps_the_new_generation() {
    assert_eq!(
        after_probe(1, &Probe::Passed, &gate(0), NEW),
        Step::Done(Verdict::Switched)
    );
    assert_eq!(
        after_probe(3, &Probe::Passed, &gate(5), SAME),
        Step::Done(Verdict::Unchanged)
    );
}

#[test]
fn unhealthy_rolls_back_after_the_last_attempt() {
    assert_eq!(
        after_probe(1, &failed("exit code 7"), &gate(2), NEW),
        Step::Check {
            attempt: 2,
            wait: true
        }
    );
    assert_eq!(
        after_probe(2, &Probe::TimedOut, &gate(2), NEW),
        Step::Check {
            attempt: 3,
            wait: true
        }
    );
    assert_eq!(
        after_probe(3, &failed("exit code 7: down"), &gate(2), NEW),
        Step::Rollback {
            reason:
                "health check 'check-web' on all 3 attempts, the last failed (exit code 7: down)"
                    .into()
        }
    );
}

#[test]
fn a_timeout_is_a_failure() {
    assert_eq!(
        after_probe(1, &Probe::TimedOut, &gate(0), NEW),
        Step::Rollback {
            reason: "health check 'check-web' timed out after 30s".into()
        }
    );
}

#[test]
fn no_new_generation_is_never_rolled_back() {
    let step = after_probe(1, &failed("exit code 1"), &gate(0), SAME);
    let Step::Done(verdict) = step else {
        panic!("expected no rollback");
    };
    assert_eq!(
        verdict,
        Verdict::Unhealthy {
            reason: "health check 'check-web' failed (exit code 1)".into()
        }
    );
    assert_eq!(verdict.status(), Status::Failed);
    assert!(verdict
        .message(Some(42), true)
        .contains("nothing was rolled back (generation 42 is active)"));
}

#[test]
fn stopped_during_the_check_keeps_the_generation() {
    let step = after_probe(1, &Probe::Stopped, &gate(3), NEW);
    assert_eq!(step, Step::Done(Verdict::Stopped));
    assert!(Verdict::Stopped
        .message(Some(42), true)
        .contains("generation 42 stays active"));
}

#[test]
fn rollback_outcomes_report_both_causes() {
    let ok = after_rollback("health check 'x' failed".into(), Ok(()));
    assert_eq!(ok.status(), Status::Failed);
    assert_eq!(
        ok.message(Some(41), true),
        "health check 'x' failed; rolled back to generation 41"
    );
    let bad = after_rollback(
        "health check 'x' failed".into(),
        Err("'nixos-rebuild switch --rollback' failed (exit code 1)".into()),
    );
    assert_eq!(
        bad.message(Some(42), true),
        "health check 'x' failed; the rollback failed too: 'nixos-rebuild switch --rollback' \
         failed (exit code 1); generation 42 is active"
    );
}

#[test]
fn messages_and_statuses() {
    assert_eq!(Verdict::Switched.status(), Status::Changed);
    assert_eq!(Verdict::Unchanged.status(), Status::Unchanged);
    assert_eq!(
        Verdict::Switched.message(Some(42), true),
        "generation 42, health check passed"
    );
    assert_eq!(
        Verdict::Unchanged.message(None, false),
        "generation unknown (unchanged)"
    );
    assert_eq!(
        Verdict::SwitchFailed { error: "e".into() }.message(Some(41), false),
        "e; generation 41 is still active"
    );
}

#[test]
fn rollback_plans() {
    let existing = [38, 40, 41, 42];
    assert_eq!(
        rollback_plan(None, Some(42), &existing),
        Ok(RollbackPlan::Previous { to: 41 })
    );
    assert_eq!(
        rollback_plan(None, Some(40), &existing),
        Ok(RollbackPlan::Previous { to: 38 })
    );
    assert_eq!(
        rollback_plan(Some(38), Some(42), &existing),
        Ok(RollbackPlan::To(38))
    );
    assert_eq!(
        rollback_plan(Some(42), Some(42), &existing),
        Ok(RollbackPlan::AlreadyCurrent(42))
    );
    let missing = rollback_plan(Some(39), Some(42), &existing).unwrap_err();
    assert!(
        missing.contains("generation 39 does not exist"),
        "{missing}"
    );
    assert!(missing.contains("38, 40, 41, 42"), "{missing}");
    let oldest = rollback_plan(None, Some(38), &existing).unwrap_err();
    assert!(
        oldest.contains("no generation older than the current one (38)"),
        "{oldest}"
    );
    let none = rollback_plan(None, None, &[]).unwrap_err();
    assert!(none.contains("points to no generation"), "{none}");
}
