//! Unit tests of the NixOS collector against fixture trees shaped like a NixOS system and this
//! machine.

use super::*;
use crate::facts::testutil::{symlink, write};

const CURRENT: &str =
    "/nix/store/8ilzc1l5n0qbbbm3lfr1m3m0k5jyh1ha-nixos-system-nas-24.05.20240612.abcdef0";
const BOOTED: &str =
    "/nix/store/2m0aqy9w2a2xg7vh3h5r1m9ykd0p6x8c-nixos-system-nas-24.05.20240601.1234567";
/// A generation whose store path was garbage-collected.
const GONE: &str =
    "/nix/store/0000000000000000000000000000000a-nixos-system-nas-23.11.20240301.0000000";

/// A system store path as NixOS builds it: `nixos-version`, and `kernel`, `initrd` and
/// `kernel-modules` links into the kernel's own store paths.
fn system(root: &Path, path: &str, version: &str, kernel: &str, initrd_hash: &str) {
    let at = &path[1..];
    write(
        root,
        &format!("{at}/nixos-version"),
        &format!("{version}\n"),
    );
    let linux = format!("/nix/store/{kernel}0000000000000000000000000000-linux-{kernel}");
    let modules = format!("{linux}-modules");
    write(root, &format!("{}/bzImage", &linux[1..]), "");
    write(
        root,
        &format!("{}/lib/modules/{kernel}/modules.dep", &modules[1..]),
        "",
    );
    let initrd = format!("/nix/store/{initrd_hash}-initrd-linux-{kernel}");
    write(root, &format!("{}/initrd", &initrd[1..]), "");
    symlink(root, &format!("{at}/kernel"), &format!("{linux}/bzImage"));
    symlink(root, &format!("{at}/kernel-modules"), &modules);
    symlink(root, &format!("{at}/initrd"), &format!("{initrd}/initrd"));
}

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
    system(
        root,
        CURRENT,
        "24.05.20240612.abcdef0 (Uakari)",
        "6.6.32",
        "i2",
    );
    system(
        root,
        BOOTED,
        "24.05.20240601.1234567 (Uakari)",
        "6.6.30",
        "i1",
    );
    write(
        root,
        &format!("{current}/configuration-revision"),
        "3f9a1c2e0b7d4e5f6a7b8c9d0e1f2a3b4c5d6e7f\n",
    );
    symlink(root, "run/current-system", CURRENT);
    symlink(root, "nix/var/nix/profiles/system-40-link", GONE);
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
    assert_eq!(facts.reboot_needed, Some(true), "a new kernel since boot");
    assert_eq!(facts.generation, Some(42));
    #[allow(clippy::type_complexity)]
    let summary: Vec<(u64, Option<&str>, Option<&str>, bool, bool)> = facts
        .generations
        .iter()
        .map(|g| {
            (
                g.number,
                g.nixos_version.as_deref(),
                g.kernel.as_deref(),
                g.current,
                g.booted,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (40, None, None, false, false),
            (
                41,
                Some("24.05.20240601.1234567 (Uakari)"),
                Some("6.6.30"),
                false,
                true
            ),
            (
                42,
                Some("24.05.20240612.abcdef0 (Uakari)"),
                Some("6.6.32"),
                true,
                false
            ),
        ]
    );
    assert!(facts
        .generations
        .iter()
        .all(|g| g.date_unix.unwrap_or(0) > 1_600_000_000));
    let json = serde_json::to_value(&facts).unwrap();
    assert_eq!(json["generations"][2]["current"], true);
    assert!(json["generations"][0].get("current").is_none());
    assert!(json.get("generations_omitted").is_none());
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

/// The facts of a tree whose booted system has `kernel` and the initrd `initrd_hash` (the
/// current system has 6.6.32 and `i2`).
fn booted_with(kernel: &str, initrd_hash: &str) -> NixOs {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    nixos_tree(root);
    for part in BOOT_PARTS {
        std::fs::remove_file(root.join(&BOOTED[1..]).join(part)).unwrap();
    }
    let version = "24.05.20240601.1234567 (Uakari)";
    system(root, BOOTED, version, kernel, initrd_hash);
    symlink(root, "run/booted-system", BOOTED);
    collect(root).unwrap()
}

/// A switch that changed only userland (same kernel, initrd and modules) needs no reboot; a
/// new initrd or kernel does.
#[test]
fn only_a_new_boot_chain_needs_a_reboot() {
    let facts = booted_with("6.6.32", "i2");
    assert_ne!(facts.current_system, facts.booted_system);
    assert_eq!(facts.reboot_needed, Some(false));
    assert_eq!(booted_with("6.6.32", "i1").reboot_needed, Some(true));
    assert_eq!(booted_with("6.6.31", "i2").reboot_needed, Some(true));
}

#[test]
fn only_the_newest_generations_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    nixos_tree(root);
    for n in 1..=(MAX_GENERATIONS as u64 + 5) {
        if n != 41 && n != 42 && n != 40 {
            symlink(root, &format!("nix/var/nix/profiles/system-{n}-link"), GONE);
        }
    }
    symlink(root, "nix/var/nix/profiles/system-x-link", GONE);
    let facts = collect(root).unwrap();
    assert_eq!(facts.generations.len(), MAX_GENERATIONS);
    assert_eq!(facts.generations_omitted, 5);
    assert_eq!(facts.generations[0].number, 6);
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
