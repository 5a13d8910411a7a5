//! Debian (and derivatives') package facts: installed package count, reboot-required, and
//! upgradable packages computed offline from apt's downloaded lists.
//!
//! Applies when `var/lib/dpkg/status` exists. Upgradable packages compare each installed
//! version with the highest version in the uncompressed `var/lib/apt/lists/*_Packages` files of
//! the same architecture, using [`compare_debian_versions`]. This is a close approximation of
//! `apt list --upgradable`, not apt's policy engine:
//! - lists of a suite whose `Release`/`InRelease` says `NotAutomatic: yes` (backports,
//!   experimental) are skipped, as apt does by default; apt preferences pins are not read;
//! - held packages (`hold ok installed`) count as installed but never as upgradable;
//! - compressed lists (`Acquire::GzipIndexes`, `*_Packages.lz4` in Docker images) are not read,
//!   since no decompressor is a dependency; without any plain list `upgradable` is absent
//!   (unknown), not zero.
//!
//! Parsing the lists takes a noticeable fraction of a second, so the result is cached keyed by
//! the size and mtime of the status file and of every list: it is recomputed only after dpkg or
//! `apt update` changed something.

use std::collections::HashMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;

pub use super::debversion::compare_debian_versions;

use super::control::{field, for_each_stanza, stanzas};
use super::rootfs::{dir_names, exists, read_raw, resolve};

/// Upgradable packages listed by name (the count covers all).
const MAX_LISTED_UPGRADES: usize = 50;

const STATUS: &str = "var/lib/dpkg/status";
const LISTS: &str = "var/lib/apt/lists";

/// Debian package facts.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Debian {
    /// Installed packages (`Status: ... ok installed`, held ones included).
    pub packages_installed: u64,
    /// `/run/reboot-required` exists (written by package hooks, e.g. a new kernel or libc).
    pub reboot_required: bool,
    /// Packages that asked for the reboot (`reboot-required.pkgs`), sorted, without duplicates.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reboot_required_packages: Vec<String>,
    /// Packages with a newer version in apt's lists; absent when no readable list exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgradable: Option<Upgradable>,
}

/// Packages apt would upgrade.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Upgradable {
    /// How many packages are upgradable.
    pub count: u64,
    /// The first 50 by name.
    pub packages: Vec<UpgradablePackage>,
}

/// One upgradable package.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UpgradablePackage {
    /// Package name.
    pub name: String,
    /// Architecture (`amd64`, `all`, ...).
    pub arch: String,
    /// Installed version.
    pub installed: String,
    /// Highest version in apt's lists.
    pub candidate: String,
}

/// An installed package: version, and whether it is held.
#[derive(Debug, Clone)]
struct Installed {
    version: String,
    held: bool,
}

/// Installed packages by name, then architecture.
type InstalledMap = HashMap<String, HashMap<String, Installed>>;

/// Collects Debian facts; `None` when there is no dpkg database under `root`.
pub fn collect(root: &Path) -> Option<Debian> {
    let status = read_raw(root, STATUS)?;
    let installed = parse_status(&status);
    let packages_installed = installed.values().map(|arches| arches.len() as u64).sum();
    let reboot_flag = ["run/reboot-required", "var/run/reboot-required"]
        .iter()
        .any(|rel| exists(root, rel));
    let mut reboot_required_packages: Vec<String> =
        ["run/reboot-required.pkgs", "var/run/reboot-required.pkgs"]
            .iter()
            .filter_map(|rel| read_raw(root, rel))
            .flat_map(|t| t.lines().map(|l| l.trim().to_owned()).collect::<Vec<_>>())
            .filter(|l| !l.is_empty())
            .collect();
    reboot_required_packages.sort();
    reboot_required_packages.dedup();
    Some(Debian {
        packages_installed,
        reboot_required: reboot_flag,
        reboot_required_packages,
        upgradable: cached_upgradable(root, &installed),
    })
}

/// Parses dpkg's status file into the installed packages.
fn parse_status(text: &str) -> InstalledMap {
    let mut installed = InstalledMap::new();
    for stanza in stanzas(text, &["Package", "Status", "Version", "Architecture"]) {
        let (Some(name), Some(status), Some(version)) = (
            field(&stanza, "Package"),
            field(&stanza, "Status"),
            field(&stanza, "Version"),
        ) else {
            continue;
        };
        let words: Vec<&str> = status.split_whitespace().collect();
        if words.get(1..) != Some(&["ok", "installed"][..]) {
            continue;
        }
        let arch = field(&stanza, "Architecture").unwrap_or("all");
        installed.entry(name.to_owned()).or_default().insert(
            arch.to_owned(),
            Installed {
                version: version.to_owned(),
                held: words.first() == Some(&"hold"),
            },
        );
    }
    installed
}

/// What the cached result depends on: path, size and mtime of the status file and each list.
type CacheKey = Vec<(PathBuf, u64, Option<SystemTime>)>;

static UPGRADABLE_CACHE: Mutex<Option<(CacheKey, Option<Upgradable>)>> = Mutex::new(None);

fn cached_upgradable(root: &Path, installed: &InstalledMap) -> Option<Upgradable> {
    let lists = package_lists(root);
    let key: CacheKey = resolve(root, STATUS)
        .into_iter()
        .chain(lists.iter().cloned())
        .map(|path| {
            let meta = std::fs::metadata(&path).ok();
            let len = meta.as_ref().map_or(0, |m| m.len());
            let modified = meta.and_then(|m| m.modified().ok());
            (path, len, modified)
        })
        .collect();
    if let Ok(cache) = UPGRADABLE_CACHE.lock() {
        if let Some((cached_key, value)) = cache.as_ref() {
            if *cached_key == key {
                return value.clone();
            }
        }
    }
    let value = upgradable(&lists, installed);
    if let Ok(mut cache) = UPGRADABLE_CACHE.lock() {
        *cache = Some((key, value.clone()));
    }
    value
}

/// The plain `*_Packages` lists apt would use (see the module doc for what is skipped).
fn package_lists(root: &Path) -> Vec<PathBuf> {
    let names = dir_names(root, LISTS);
    let Some(dir) = resolve(root, LISTS) else {
        return Vec::new();
    };
    names
        .iter()
        .filter(|name| name.ends_with("_Packages"))
        .filter(|name| !not_automatic(root, &names, name))
        .map(|name| dir.join(name))
        .collect()
}

/// Whether the suite of list `name` is `NotAutomatic: yes`. Its Release file is the one whose
/// name without `InRelease`/`Release` is the longest prefix of the list's name.
fn not_automatic(root: &Path, names: &[String], list: &str) -> bool {
    let release = names
        .iter()
        .filter_map(|n| {
            let prefix = n
                .strip_suffix("_InRelease")
                .or_else(|| n.strip_suffix("_Release"))?;
            list.starts_with(&format!("{prefix}_"))
                .then_some((prefix.len(), n))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, n)| n);
    release
        .and_then(|n| read_raw(root, &format!("{LISTS}/{n}")))
        .is_some_and(|text| {
            text.lines().any(|l| {
                l.split_once(':').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("NotAutomatic") && v.trim() == "yes"
                })
            })
        })
}

/// Compares installed versions with the best candidates in `lists`; `None` without lists.
fn upgradable(lists: &[PathBuf], installed: &InstalledMap) -> Option<Upgradable> {
    if lists.is_empty() {
        return None;
    }
    // best candidate per (name, arch), only for installed packages
    let mut best: HashMap<(String, String), String> = HashMap::new();
    for list in lists {
        let Ok(file) = std::fs::File::open(list) else {
            continue;
        };
        let reader = BufReader::new(file);
        for_each_stanza(reader, &["Package", "Version", "Architecture"], |stanza| {
            let (Some(name), Some(version)) = (field(stanza, "Package"), field(stanza, "Version"))
            else {
                return;
            };
            let arch = field(stanza, "Architecture").unwrap_or("all");
            if !installed.get(name).is_some_and(|a| a.contains_key(arch)) {
                return;
            }
            let key = (name.to_owned(), arch.to_owned());
            let newer = best
                .get(&key)
                .is_none_or(|b| compare_debian_versions(version, b).is_gt());
            if newer {
                best.insert(key, version.to_owned());
            }
        });
    }
    let mut packages: Vec<UpgradablePackage> = best
        .into_iter()
        .filter_map(|((name, arch), candidate)| {
            let current = installed.get(&name)?.get(&arch)?;
            let newer = compare_debian_versions(&candidate, &current.version).is_gt();
            (newer && !current.held).then(|| UpgradablePackage {
                installed: current.version.clone(),
                name,
                arch,
                candidate,
            })
        })
        .collect();
    packages.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.arch.cmp(&b.arch)));
    let count = packages.len() as u64;
    packages.truncate(MAX_LISTED_UPGRADES);
    Some(Upgradable { count, packages })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "debian_tests.rs"]
mod tests;
