//! NixOS facts: version, current and booted system, every system generation (number, date,
//! NixOS version, kernel), whether a reboot is needed, flake revision.
//!
//! Applies when `etc/NIXOS` exists or os-release says `ID=nixos`. Everything comes from files
//! and symlinks (`nixos-version` is not run, so this works the same under any root). Store
//! paths are reported as the link text (`/nix/store/...-nixos-system-...`); to read files inside
//! them the link is resolved under `root` (see [`super::rootfs`]).
//!
//! Generations are the `nix/var/nix/profiles/system-N-link` links (what `nixos-rebuild
//! switch --rollback` and the boot menu choose from); a generation's date is the link's mtime,
//! as `nix-env --list-generations` shows it. A reboot is needed when the booted system's
//! kernel, initrd or kernel modules differ from the current system's (the check NixOS's own
//! activation script does), not after every switch.

use std::path::Path;
use std::time::UNIX_EPOCH;

use serde::Serialize;

use super::platform::parse_os_release;
use super::rootfs::{dir_names, exists, link_text, read_raw, read_trimmed, resolve};

/// The system profile whose `system-N-link` target names the current generation.
pub const SYSTEM_PROFILE: &str = "nix/var/nix/profiles/system";

/// The directory of the profile and its generation links.
const PROFILES: &str = "nix/var/nix/profiles";

/// Generations reported, newest first kept; older ones are counted in `generations_omitted`.
pub const MAX_GENERATIONS: usize = 100;

/// What decides whether the booted system runs the current system's boot chain.
const BOOT_PARTS: &[&str] = &["kernel", "initrd", "kernel-modules"];

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
    /// The booted system's kernel, initrd or kernel modules differ from the current system's;
    /// absent when the booted system is unknown.
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
    /// System generations, oldest first (at most [`MAX_GENERATIONS`], the newest).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub generations: Vec<Generation>,
    /// Older generations left out of `generations`.
    #[serde(skip_serializing_if = "is_zero")]
    pub generations_omitted: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One system generation.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Generation {
    /// `N` of `system-N-link`.
    pub number: u64,
    /// When it was built: the link's mtime, Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_unix: Option<u64>,
    /// Its `nixos-version` (`24.05.20240612.abcdef0 (Uakari)`); absent when the store path
    /// is gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nixos_version: Option<String>,
    /// Its kernel release (`6.6.32`, the name under `kernel-modules/lib/modules`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// The running configuration (`/run/current-system`) is this generation.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub current: bool,
    /// The machine booted this generation (`/run/booted-system`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub booted: bool,
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
        (Some(current), Some(booted)) => Some(
            current != booted
                && BOOT_PARTS.iter().any(|part| {
                    link_text(root, &format!("run/current-system/{part}"))
                        != link_text(root, &format!("run/booted-system/{part}"))
                }),
        ),
        _ => None,
    };
    let (generations, generations_omitted) =
        generations(root, current_system.as_deref(), booted_system.as_deref());
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
        generations,
        generations_omitted,
    })
}

/// The generations of the system profile, oldest first, at most [`MAX_GENERATIONS`]; and how
/// many older ones were left out.
fn generations(root: &Path, current: Option<&str>, booted: Option<&str>) -> (Vec<Generation>, u64) {
    let numbers = generation_numbers(root);
    let omitted = numbers.len().saturating_sub(MAX_GENERATIONS);
    let list = numbers[omitted..]
        .iter()
        .map(|&number| {
            let link = format!("{PROFILES}/system-{number}-link");
            let store = link_text(root, &link);
            let is = |other: Option<&str>| store.is_some() && store.as_deref() == other;
            Generation {
                number,
                date_unix: generation_time(root, &link),
                nixos_version: read_trimmed(root, &format!("{link}/nixos-version")),
                kernel: kernel_release(root, &link),
                current: is(current),
                booted: is(booted),
            }
        })
        .collect();
    (list, omitted as u64)
}

/// The generation the system profile points to (`system -> system-N-link`), if any.
pub fn profile_generation(root: &Path) -> Option<u64> {
    link_text(root, SYSTEM_PROFILE)
        .as_deref()
        .and_then(parse_generation)
}

/// The numbers of every `system-N-link` in the profile directory, ascending.
pub fn generation_numbers(root: &Path) -> Vec<u64> {
    let mut numbers: Vec<u64> = dir_names(root, PROFILES)
        .iter()
        .filter_map(|name| parse_generation(name))
        .collect();
    numbers.sort_unstable();
    numbers
}

/// The kernel release of the system at `system` (a path under `root`): the one directory in
/// `kernel-modules/lib/modules`.
fn kernel_release(root: &Path, system: &str) -> Option<String> {
    dir_names(root, &format!("{system}/kernel-modules/lib/modules"))
        .into_iter()
        .next()
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
    let dir = resolve(root, PROFILES)?;
    let modified = std::fs::symlink_metadata(dir.join(name))
        .ok()?
        .modified()
        .ok()?;
    Some(modified.duration_since(UNIX_EPOCH).ok()?.as_secs())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "nixos_tests.rs"]
mod tests;
