//! Reading files of a machine's tree mounted at `root`, the way that machine would see them.
//!
//! Symbolic links are resolved as if `root` were `/` (like `chroot`): an absolute link target such
//! as `/nix/store/...` or `/run` is looked up under `root`, never on the machine running the agent,
//! and `..` never climbs above `root`. Nothing here returns an error: a missing or unreadable file
//! is `None`, because facts describe what is there.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// Links followed before giving up (the kernel's limit for one lookup).
const MAX_LINK_HOPS: usize = 40;

/// Resolves `rel` under `root`, following every symbolic link inside `root`.
///
/// Returns `None` on a link loop. The result need not exist.
pub fn resolve(root: &Path, rel: &str) -> Option<PathBuf> {
    let mut pending: VecDeque<OsString> = components(Path::new(rel)).collect();
    let mut current: Vec<OsString> = Vec::new();
    let mut hops = 0;
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            current.pop();
            continue;
        }
        current.push(part);
        let here = join(root, &current);
        if let Ok(target) = std::fs::read_link(&here) {
            hops += 1;
            if hops > MAX_LINK_HOPS {
                return None;
            }
            current.pop();
            if target.is_absolute() {
                current.clear();
            }
            for part in components(&target).collect::<Vec<_>>().into_iter().rev() {
                pending.push_front(part);
            }
        }
    }
    Some(join(root, &current))
}

/// The path's normal components and `..`, dropping the root and `.`.
fn components(path: &Path) -> impl Iterator<Item = OsString> + '_ {
    path.components().filter_map(|c| match c {
        Component::Normal(name) => Some(name.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
}

fn join(root: &Path, parts: &[OsString]) -> PathBuf {
    let mut path = root.to_path_buf();
    path.extend(parts);
    path
}

/// The text of `rel` (links resolved inside `root`), trimmed; `None` when missing, unreadable,
/// not UTF-8 or empty.
pub fn read_trimmed(root: &Path, rel: &str) -> Option<String> {
    read_raw(root, rel)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// The full text of `rel` (links resolved inside `root`).
pub fn read_raw(root: &Path, rel: &str) -> Option<String> {
    std::fs::read_to_string(resolve(root, rel)?).ok()
}

/// Whether `rel` exists (links resolved inside `root`).
pub fn exists(root: &Path, rel: &str) -> bool {
    resolve(root, rel).is_some_and(|p| p.exists())
}

/// Whether `rel` is a directory (links resolved inside `root`).
pub fn is_dir(root: &Path, rel: &str) -> bool {
    resolve(root, rel).is_some_and(|p| p.is_dir())
}

/// The target text of the link `rel` itself (its parents resolved inside `root`), not followed.
pub fn link_text(root: &Path, rel: &str) -> Option<String> {
    let rel = Path::new(rel);
    let name = rel.file_name()?;
    let parent = rel.parent().and_then(|p| p.to_str()).unwrap_or("");
    let link = resolve(root, parent)?.join(name);
    let target = std::fs::read_link(link).ok()?;
    target.to_str().map(str::to_owned)
}

/// Names of the entries of directory `rel`, sorted; empty when it is missing.
pub fn dir_names(root: &Path, rel: &str) -> Vec<String> {
    let Some(dir) = resolve(root, rel) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::facts::testutil::{symlink, write};

    #[test]
    fn absolute_links_stay_inside_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "nix/store/abc-system/nixos-version", "24.05\n");
        symlink(root, "run/current-system", "/nix/store/abc-system");
        symlink(root, "var/run", "/run");
        let resolved = resolve(root, "var/run/current-system/nixos-version").unwrap();
        assert_eq!(resolved, root.join("nix/store/abc-system/nixos-version"));
        assert_eq!(
            read_trimmed(root, "run/current-system/nixos-version").as_deref(),
            Some("24.05")
        );
        assert_eq!(
            link_text(root, "var/run/current-system").as_deref(),
            Some("/nix/store/abc-system")
        );
    }

    #[test]
    fn relative_links_parent_dirs_and_loops() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "etc/pve/nodes/pve1/qemu-server/100.conf", "name: a\n");
        symlink(root, "etc/pve/qemu-server", "nodes/pve1/qemu-server");
        assert!(exists(root, "etc/pve/qemu-server/100.conf"));
        assert_eq!(dir_names(root, "etc/pve/qemu-server"), vec!["100.conf"]);
        assert_eq!(resolve(root, "../../etc"), Some(root.join("etc")));
        symlink(root, "loop/a", "b");
        symlink(root, "loop/b", "a");
        assert_eq!(resolve(root, "loop/a"), None);
        assert!(!exists(root, "loop/a"));
        assert_eq!(read_trimmed(root, "missing"), None);
    }
}
