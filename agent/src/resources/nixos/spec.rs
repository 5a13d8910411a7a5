//! The `nixosRebuild` resource as the agent runs it, converted from the wire type after
//! [`lab_proto::nixos::validate`] (the same checks the coordinator made at submit).

use std::time::Duration;

use lab_proto::v1::{NixosAction, NixosHealthCheck, NixosRebuildResource};

/// A nixosRebuild resource, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NixosSpec {
    /// `nixos-rebuild <action>`, gated by a health check when it is a switch with `health`.
    Rebuild {
        /// The nixos-rebuild action: switch, boot, test or dry-activate.
        action: &'static str,
        /// What to build.
        source: Source,
        /// The health gate (switch only).
        health: Option<Health>,
    },
    /// Back to the previous generation (`None`) or generation `N`.
    Rollback {
        /// The generation asked for.
        generation: Option<u64>,
    },
}

/// Where the configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `--flake REF`.
    Flake(String),
    /// The channel configuration (`/etc/nixos/configuration.nix`); `--upgrade` when set.
    Channel {
        /// Update the channels first.
        upgrade: bool,
    },
}

/// A health gate after a switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The check (no shell).
    pub argv: Vec<String>,
    /// How long one attempt may run.
    pub timeout: Duration,
    /// Further attempts after a failed one.
    pub retries: u32,
    /// Pause between attempts.
    pub interval: Duration,
}

impl From<NixosHealthCheck> for Health {
    fn from(h: NixosHealthCheck) -> Self {
        let NixosHealthCheck {
            argv,
            timeout_ms,
            retries,
            interval_ms,
        } = h;
        Health {
            argv,
            timeout: Duration::from_millis(timeout_ms),
            retries,
            interval: Duration::from_millis(interval_ms),
        }
    }
}

impl TryFrom<NixosRebuildResource> for NixosSpec {
    type Error = String;
    fn try_from(n: NixosRebuildResource) -> Result<Self, String> {
        lab_proto::nixos::validate(&n)?;
        let NixosRebuildResource {
            flake,
            action,
            health,
            generation,
            upgrade,
        } = n;
        let action = match NixosAction::try_from(action) {
            Ok(NixosAction::Rollback) => {
                return Ok(NixosSpec::Rollback {
                    generation: (generation != 0).then_some(generation),
                })
            }
            Ok(NixosAction::Unspecified | NixosAction::Switch) => "switch",
            Ok(NixosAction::Boot) => "boot",
            Ok(NixosAction::Test) => "test",
            Ok(NixosAction::DryActivate) => "dry-activate",
            Err(_) => return Err(format!("unknown nixos-rebuild action {action}")),
        };
        let source = if flake.is_empty() {
            Source::Channel { upgrade }
        } else {
            Source::Flake(flake)
        };
        Ok(NixosSpec::Rebuild {
            action,
            source,
            health: health.map(Health::from),
        })
    }
}

/// The name of a resource without one: "nixosRebuild /etc/nixos#nas", "nixosRebuild
/// channel", "nixosRebuild rollback", "nixosRebuild rollback to 41".
pub fn default_name(n: &NixosRebuildResource) -> String {
    if n.action == NixosAction::Rollback as i32 {
        return match n.generation {
            0 => "nixosRebuild rollback".to_owned(),
            g => format!("nixosRebuild rollback to {g}"),
        };
    }
    if n.flake.is_empty() {
        "nixosRebuild channel".to_owned()
    } else {
        format!("nixosRebuild {}", n.flake)
    }
}

/// The `nixos-rebuild` command line for `action` of `source`.
pub fn rebuild_argv(action: &str, source: &Source) -> Vec<String> {
    let mut argv = vec!["nixos-rebuild".to_owned(), action.to_owned()];
    match source {
        Source::Flake(flake) => {
            argv.push("--flake".to_owned());
            argv.push(flake.clone());
        }
        Source::Channel { upgrade: true } => argv.push("--upgrade".to_owned()),
        Source::Channel { upgrade: false } => {}
    }
    argv
}
