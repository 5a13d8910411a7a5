//! `nixosRebuild` resources: `nixos-rebuild <action> --flake <ref>` on NixOS.
//!
//! The system generation is read before and after (the target of
//! `/nix/var/nix/profiles/system`, e.g. `system-42-link`), as is `/run/current-system`; the
//! resource is changed when either moved. On failure the message names the generation that is
//! still active. Output is streamed. Check mode runs `nixos-rebuild dry-build` (it evaluates
//! and lists what would be built, changing nothing) and always reports "would <action>": whether
//! the new system differs is only known after building it.
//!
//! Only on NixOS (`/etc/NIXOS`); elsewhere the resource fails.

use std::path::Path;

use lab_proto::v1::{NixosAction, NixosRebuildResource};

use super::process::{self, Cmd};
use super::{Cx, Report};

/// What the resource says off NixOS.
pub const NOT_NIXOS_MESSAGE: &str =
    "nixosRebuild needs NixOS, and this node is not NixOS (/etc/NIXOS is missing)";

/// A nixosRebuild resource, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NixosSpec {
    /// Flake reference, e.g. `/etc/nixos#nas`.
    pub flake: String,
    /// The nixos-rebuild action: switch, boot, test or dry-activate.
    pub action: &'static str,
}

impl TryFrom<NixosRebuildResource> for NixosSpec {
    type Error = String;
    fn try_from(n: NixosRebuildResource) -> Result<Self, String> {
        let NixosRebuildResource { flake, action } = n;
        if flake.is_empty()
            || flake.starts_with('-')
            || flake.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "invalid flake reference '{}'; use one such as /etc/nixos#host",
                flake.escape_debug()
            ));
        }
        let action = match NixosAction::try_from(action) {
            Ok(NixosAction::Unspecified | NixosAction::Switch) => "switch",
            Ok(NixosAction::Boot) => "boot",
            Ok(NixosAction::Test) => "test",
            Ok(NixosAction::DryActivate) => "dry-activate",
            Err(_) => {
                return Err(format!(
                    "unknown nixos-rebuild action {action}; upgrade the agent"
                ))
            }
        };
        Ok(NixosSpec { flake, action })
    }
}

/// The target of the symlink `root/rel`, as text; empty if unreadable.
fn link(root: &Path, rel: &str) -> String {
    std::fs::read_link(root.join(rel))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// "42" from "system-42-link"; the link itself when it has another shape.
pub fn generation(link: &str) -> String {
    link.strip_prefix("system-")
        .and_then(|s| s.strip_suffix("-link"))
        .unwrap_or(link)
        .to_owned()
}

/// Applies (or checks) `spec`.
pub async fn apply(spec: &NixosSpec, cx: &mut Cx<'_>) -> Report {
    if !cx.root.join("etc/NIXOS").exists() {
        return Report::failed(NOT_NIXOS_MESSAGE);
    }
    let profile = "nix/var/nix/profiles/system";
    let gen_before = link(&cx.root, profile);
    let current_before = link(&cx.root, "run/current-system");
    let action = if cx.check { "dry-build" } else { spec.action };
    let cmd = Cmd::new(&["nixos-rebuild", action, "--flake", &spec.flake]).streamed();
    let ran = process::run(cx, cmd).await;
    let gen_after = link(&cx.root, profile);
    let current_after = link(&cx.root, "run/current-system");
    let describe = |g: &str| {
        if g.is_empty() {
            "unknown".to_owned()
        } else {
            generation(g)
        }
    };
    if !ran.success() {
        return Report::failed(format!(
            "{}; generation {} is still active",
            ran.failure(),
            describe(&gen_after)
        ));
    }
    let what = format!("nixos-rebuild {} --flake {}", spec.action, spec.flake);
    if cx.check {
        let built = ran.tail();
        return Report::changed(
            format!("would run {what}"),
            if built.is_empty() {
                format!("generation {}", describe(&gen_before))
            } else {
                built
            },
        );
    }
    if gen_before == gen_after && current_before == current_after {
        return Report::unchanged(format!("generation {} (unchanged)", describe(&gen_after)));
    }
    let diff = if gen_before == gen_after {
        format!("{what}: current system {current_before} → {current_after}")
    } else {
        format!(
            "{what}: generation {} → {}",
            describe(&gen_before),
            describe(&gen_after)
        )
    };
    Report::changed(diff, format!("generation {}", describe(&gen_after)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generations_and_validation() {
        assert_eq!(generation("system-42-link"), "42");
        assert_eq!(generation("/nix/store/x"), "/nix/store/x");
        let ok = NixosSpec::try_from(NixosRebuildResource {
            flake: "/etc/nixos#nas".into(),
            action: 0,
        })
        .unwrap();
        assert_eq!(ok.action, "switch");
        for flake in ["", "--impure", "a b"] {
            assert!(NixosSpec::try_from(NixosRebuildResource {
                flake: flake.into(),
                action: 0
            })
            .is_err());
        }
    }
}
