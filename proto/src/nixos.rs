//! Validation of `nixosRebuild` resources, shared by the coordinator (refused at submit) and
//! the agent (refused before anything runs): a flake reference is one argument (no
//! whitespace, control characters or leading '-'); a health gate belongs to `switch` and has
//! an argv and a timeout; a generation belongs to `rollback`.
//!
//! Errors name the field (`health.timeout`) and say what to give instead; the caller prefixes
//! where the resource is.

use crate::v1::{NixosAction, NixosHealthCheck, NixosRebuildResource};

/// Longest flake reference accepted.
pub const MAX_FLAKE_LEN: usize = 4096;

/// Longest health check attempt, retry interval, and most retries accepted.
pub const MAX_HEALTH_TIMEOUT_MS: u64 = 3_600_000;
/// Most retries of a health check.
pub const MAX_HEALTH_RETRIES: u32 = 100;

/// Checks a flake reference (non-empty).
pub fn check_flake(flake: &str) -> Result<(), String> {
    if flake.is_empty()
        || flake.len() > MAX_FLAKE_LEN
        || flake.starts_with('-')
        || flake.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "flake '{}' is not a flake reference (empty, too long, starting with '-', or with \
             whitespace or control characters); use one such as /etc/nixos#host",
            flake.escape_debug()
        ));
    }
    Ok(())
}

/// Checks a health gate.
pub fn check_health(h: &NixosHealthCheck) -> Result<(), String> {
    let (argv, timeout_ms, retries, interval_ms) =
        (&h.argv, &h.timeout_ms, &h.retries, &h.interval_ms);
    if argv.first().is_none_or(|a| a.is_empty()) {
        return Err(
            "health.argv is missing; give the check to run, e.g. [curl, -fsS, http://localhost/]"
                .into(),
        );
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Err("health.argv contains a NUL byte".into());
    }
    if *timeout_ms == 0 {
        return Err(
            "health.timeout is missing; give how long one attempt may run, e.g. 60s".into(),
        );
    }
    if *timeout_ms > MAX_HEALTH_TIMEOUT_MS || *interval_ms > MAX_HEALTH_TIMEOUT_MS {
        return Err("health.timeout and health.interval must be at most 1h".into());
    }
    if *retries > MAX_HEALTH_RETRIES {
        return Err(format!(
            "health.retries is {retries}; at most {MAX_HEALTH_RETRIES}"
        ));
    }
    Ok(())
}

/// Checks a whole `nixosRebuild` resource.
pub fn validate(r: &NixosRebuildResource) -> Result<(), String> {
    let (flake, action, health) = (&r.flake, &r.action, &r.health);
    let (generation, upgrade) = (&r.generation, &r.upgrade);
    let action = NixosAction::try_from(*action)
        .map_err(|_| format!("unknown action {action}; upgrade labctl and the agent"))?;
    let rollback = action == NixosAction::Rollback;
    let switch = matches!(action, NixosAction::Unspecified | NixosAction::Switch);
    if rollback {
        if !flake.is_empty() || *upgrade {
            return Err(
                "rollback takes no flake or upgrade; it switches to a generation already built"
                    .into(),
            );
        }
    } else {
        if !flake.is_empty() {
            check_flake(flake)?;
        }
        if *generation != 0 {
            return Err("generation is only for action rollback".into());
        }
    }
    if *upgrade && !flake.is_empty() {
        return Err(
            "upgrade updates the channels; a flake's inputs are updated with 'nix flake update'"
                .into(),
        );
    }
    if let Some(h) = health {
        if !switch {
            return Err("health is only for action switch".into());
        }
        check_health(h)?;
    }
    if rollback && i64::try_from(*generation).is_err() {
        return Err(format!("generation {generation} is out of range"));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn health(argv: &[&str], timeout_ms: u64) -> Option<NixosHealthCheck> {
        Some(NixosHealthCheck {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            timeout_ms,
            ..Default::default()
        })
    }

    #[test]
    fn good_resources_pass() {
        let ok = [
            NixosRebuildResource {
                flake: "/etc/nixos#nas".into(),
                health: health(&["true"], 1000),
                ..Default::default()
            },
            NixosRebuildResource {
                upgrade: true,
                ..Default::default()
            },
            NixosRebuildResource {
                action: NixosAction::Rollback as i32,
                generation: 41,
                ..Default::default()
            },
        ];
        for r in ok {
            assert_eq!(validate(&r), Ok(()), "{r:?}");
        }
    }

    #[test]
    fn bad_resources_say_why() {
        let cases = [
            (
                NixosRebuildResource {
                    flake: "/etc/nixos#nas\u{1b}[2J".into(),
                    ..Default::default()
                },
                "not a flake reference",
            ),
            (
                NixosRebuildResource {
                    flake: "--impure".into(),
                    ..Default::default()
                },
                "starting with '-'",
            ),
            (
                NixosRebuildResource {
                    health: health(&["true"], 0),
                    ..Default::default()
                },
                "health.timeout is missing",
            ),
            (
                NixosRebuildResource {
                    health: health(&[], 1000),
                    ..Default::default()
                },
                "health.argv is missing",
            ),
            (
                NixosRebuildResource {
                    action: NixosAction::Boot as i32,
                    health: health(&["true"], 1000),
                    ..Default::default()
                },
                "only for action switch",
            ),
            (
                NixosRebuildResource {
                    generation: 3,
                    ..Default::default()
                },
                "only for action rollback",
            ),
            (
                NixosRebuildResource {
                    action: NixosAction::Rollback as i32,
                    flake: "/etc/nixos#nas".into(),
                    ..Default::default()
                },
                "rollback takes no flake",
            ),
            (
                NixosRebuildResource {
                    action: NixosAction::Rollback as i32,
                    generation: u64::MAX,
                    ..Default::default()
                },
                "out of range",
            ),
            (
                NixosRebuildResource {
                    action: 99,
                    ..Default::default()
                },
                "unknown action",
            ),
        ];
        for (r, want) in cases {
            let err = validate(&r).unwrap_err();
            assert!(err.contains(want), "{r:?}: {err}");
        }
    }
}
