//! NixOS facts: version, current and booted system, system profile generation, flake revision.
//!
//! Applies when `etc/NIXOS` exists or os-release says `ID=nixos`. Everything comes from files
//! and symlinks (`nixos-version` is not run, so this works the same under any root). Store
//! paths are reported as the link text (`/nix/store/...-nixos-system-...`); to read files inside
//! them the link is resolved under `root` (see [`super::rootfs`]).

use std::path::Path;
use std::time::UNIX_EPOCH;

use serde::Serialize;

use super::platform::parse_os_release;
use super::rootfs::{exists, link_text, read_raw, read_trimmed, resolve};

/// The system profile whose `system-N-link` target names the current generation.
const SYSTEM_PROFILE: &str = "nix/var/nix/profiles/system";

/// NixOS facts.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct NixOs {
    /// Full version (`24.05.20240612.abcdef0 (Uakari)`) from the current system's
    /// `nixos-version` file, else os-release `BUILD_ID`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Store path of the running configuration (`/run/current-system`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_system: Option<String>,
    /// Store path the machine booted (`/run/booted-system`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booted_system: Option<String>,
    /// Current and booted system differ. This is conservative: any switch since boot counts,
    /// not only a new kernel or initrd.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reboot_needed: Option<bool>,
    /// Generation `N` of the system profile (`system -> system-N-link`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// When that generation was created: mtime of the `system-N-link` link, Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation_time_unix: Option<u64>,
    /// Git revision of the flake or configuration (`configuration-revision` in the current
    /// system, set by `system.configurationRevision`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configuration_revision: Option<String>,
}

/// Whether the tree under `root` is NixOS.
pub fn is_nixos(root: &Path) -> bool {
    exists(root, "etc/NIXOS")
        || read_raw(root, "etc/os-release").is_some_and(|t| {
            parse_os_release(&t)
                .iter()
                .any(|(k, v)| k == "ID" && v == "nixos")
        })
}

/// Collects NixOS facts; `None` when the tree is not NixOS.
pub fn collect(root: &Path) -> Option<NixOs> {
    if !is_nixos(root) {
        return None;
    }
    let current_system = link_text(root, "run/current-system");
    let booted_system = link_text(root, "run/booted-system");
    let reboot_needed = match (&current_system, &booted_system) {
        (Some(current), Some(booted)) => Some(current != booted),
        _ => None,
    };
    let build_id = || {
        read_raw(root, "etc/os-release").and_then(|t| {
            parse_os_release(&t)
                .into_iter()
                .find(|(k, _)| k == "BUILD_ID")
                .map(|(_, v)| v)
        })
    };
    let profile_link = link_text(root, SYSTEM_PROFILE);
    let generation = profile_link.as_deref().and_then(parse_generation);
    let generation_time_unix = profile_link
        .as_deref()
        .and_then(|link| generation_time(root, link));
    Some(NixOs {
        version: read_trimmed(root, "run/current-system/nixos-version").or_else(build_id),
        current_system,
        booted_system,
        reboot_needed,
        generation,
        generation_time_unix,
        configuration_revision: read_trimmed(root, "run/current-system/configuration-revision"),
    })
}

/// The generation number in a profile link target (`system-42-link`, possibly with a path).
pub fn parse_generation(link: &str) -> Option<u64> {
    let name = link.rsplit('/').next()?;
    name.strip_prefix("system-")?
        .strip_suffix("-link")?
        .parse()
        .ok()
}

/// The mtime of the generation link itself (not followed): when `nixos-rebuild` created it.
fn generation_time(root: &Path, link: &str) -> Option<u64> {
    let name = link.rsplit('/').next()?;
    let dir = resolve(root, "nix/var/nix/profiles")?;
    let modified = std::fs::symlink_metadata(dir.join(name))
        .ok()?
        .modified()
        .ok()?;
    Some(modified.duration_since(UNIX_EPOCH).ok()?.as_secs())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::facts::testutil::{symlink, write};

    const CURRENT: &str =
        "/nix/store/8ilzc1l5n0qbbbm3lfr1m3m0k5jyh1ha-nixos-system-nas-24.05.20240612.abcdef0";
    const BOOTED: &str =
        "/nix/store/2m0aqy9w2a2xg7vh3h5r1m9ykd0p6x8c-nixos-system-nas-24.05.20240601.1234567";

    fn nixos_tree(root: &Path) {
        write(root, "etc/NIXOS", "");
        write(
            root,
            "nix/store/os-release",
            "NAME=NixOS\nID=nixos\nVERSION_ID=\"24.05\"\nBUILD_ID=\"24.05.20240612.abcdef0\"\n",
        );
        // like NixOS: /etc/os-release -> /etc/static/os-release -> /nix/store/...
        symlink(root, "etc/static", "/nix/store");
        symlink(root, "etc/os-release", "/etc/static/os-release");
        let current = &CURRENT[1..];
        write(
            root,
            &format!("{current}/nixos-version"),
            "24.05.20240612.abcdef0 (Uakari)\n",
        );
        write(
            root,
            &format!("{current}/configuration-revision"),
            "3f9a1c2e0b7d4e5f6a7b8c9d0e1f2a3b4c5d6e7f\n",
        );
        symlink(root, "run/current-system", CURRENT);
        symlink(root, "nix/var/nix/profiles/system-41-link", BOOTED);
        symlink(root, "nix/var/nix/profiles/system-42-link", CURRENT);
        symlink(root, "nix/var/nix/profiles/system", "system-42-link");
    }

    #[test]
    fn generation_names() {
        assert_eq!(parse_generation("system-42-link"), Some(42));
        assert_eq!(
            parse_generation("/nix/var/nix/profiles/system-7-link"),
            Some(7)
        );
        assert_eq!(parse_generation("system-x-link"), None);
        assert_eq!(parse_generation("/nix/store/abc-nixos-system"), None);
    }

    #[test]
    fn fixture_tree_after_switch() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        nixos_tree(root);
        symlink(root, "run/booted-system", BOOTED);
        let facts = collect(root).unwrap();
        assert_eq!(
            facts.version.as_deref(),
            Some("24.05.20240612.abcdef0 (Uakari)")
        );
        assert_eq!(facts.current_system.as_deref(), Some(CURRENT));
        assert_eq!(facts.booted_system.as_deref(), Some(BOOTED));
        assert_eq!(facts.reboot_needed, Some(true));
        assert_eq!(facts.generation, Some(42));
        assert!(facts.generation_time_unix.unwrap_or(0) > 1_600_000_000);
        assert_eq!(
            facts.configuration_revision.as_deref(),
            Some("3f9a1c2e0b7d4e5f6a7b8c9d0e1f2a3b4c5d6e7f")
        );
    }

    #[test]
    fn fixture_tree_freshly_booted_without_version_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        nixos_tree(root);
        symlink(root, "run/booted-system", CURRENT);
        std::fs::remove_file(root.join(&CURRENT[1..]).join("nixos-version")).unwrap();
        let facts = collect(root).unwrap();
        assert_eq!(facts.reboot_needed, Some(false));
        assert_eq!(
            facts.version.as_deref(),
            Some("24.05.20240612.abcdef0"),
            "os-release BUILD_ID"
        );
    }

    #[test]
    fn detected_by_os_release_alone() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "etc/os-release", "ID=nixos\n");
        let facts = collect(dir.path()).unwrap();
        assert_eq!(facts.reboot_needed, None);
        assert_eq!(serde_json::to_string(&facts).unwrap(), "{}");
    }

    #[test]
    fn this_machine() {
        let facts = collect(Path::new("/"));
        assert_eq!(facts.is_some(), is_nixos(Path::new("/")));
        if !Path::new("/etc/NIXOS").exists() {
            assert_eq!(facts, None, "the Debian build machine is not NixOS");
        }
    }
}
