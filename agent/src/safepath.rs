//! Directories the agent writes into as root on a spec's behalf (a file resource's directory, a
//! restore target, a drill's scratch directory): [`resolve_dir`] walks the path one component
//! at a time from `/` and refuses it when a user other than root or the agent's own user could
//! redirect the write, i.e. when a directory on the way is owned by such a user, or writable
//! by them (group or others) — they could plant a symlink or swap a directory between the
//! agent's check and its write.
//!
//! A sticky directory writable by everyone (`/tmp`) may be passed through: its entries can be
//! renamed or removed only by their owners, and the next component must belong to root or the
//! agent. It may not be the directory written into: anyone could plant the name first.
//! Symlinks on the way are followed only when root or the agent owns them (the directory that
//! holds them was checked already). The result is the real path, without symlinks.
//!
//! Blocking (`lstat`/`readlink` only); no decisions beyond the rule above.

use std::ffi::OsString;
use std::fs::Metadata;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

/// Symlinks followed while resolving one path, as the kernel's limit.
const MAX_LINKS: usize = 40;

/// Why a directory cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirError {
    /// This path (the directory or one on the way to it) does not exist.
    Missing(PathBuf),
    /// A user other than root or the agent's could redirect writes under it; the message says
    /// which directory and why, without advice (the caller knows its opt-in).
    Unsafe(String),
    /// Anything else (not a directory, a symlink loop, an I/O error), as a message.
    Other(String),
}

/// A directory resolved by [`resolve_dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The real path: absolute, no symlinks, no `.`/`..`.
    pub path: PathBuf,
    /// Whether it (or a directory on the way) was unsafe but allowed by the caller.
    pub unsafe_allowed: bool,
}

/// Whether `uid` is root or the agent's own user.
fn trusted(uid: u32) -> bool {
    uid == 0 || uid == nix::unistd::geteuid().as_raw()
}

/// Why `dir` (with `meta`) lets other users redirect writes; `last`: it is the directory
/// written into (a sticky directory is acceptable only on the way).
pub fn unsafe_reason(meta: &Metadata, last: bool) -> Option<String> {
    let mode = meta.mode();
    if !trusted(meta.uid()) {
        return Some(format!(
            "is owned by {} (not root)",
            crate::accounts::user_name(meta.uid())
        ));
    }
    let group_writable = mode & 0o020 != 0 && meta.gid() != 0;
    let other_writable = mode & 0o002 != 0;
    let sticky = mode & 0o1000 != 0;
    if (group_writable || other_writable) && (last || !sticky) {
        let who = if other_writable {
            "all users".to_owned()
        } else {
            format!("group {}", crate::accounts::group_name(meta.gid()))
        };
        return Some(format!("is writable by {who} (mode {:04o})", mode & 0o7777));
    }
    None
}

/// Resolves the directory `dir` (absolute) as the module doc says; `allow_unsafe` accepts
/// unsafe directories (reported in [`Resolved::unsafe_allowed`]) instead of refusing them.
pub fn resolve_dir(dir: &Path, allow_unsafe: bool) -> Result<Resolved, DirError> {
    let io = |p: &Path, e: std::io::Error| {
        if e.kind() == ErrorKind::NotFound {
            DirError::Missing(p.to_owned())
        } else {
            DirError::Other(format!(
                "cannot inspect {}: {}",
                p.display(),
                crate::process::describe(&e)
            ))
        }
    };
    let mut pending: Vec<OsString> = Vec::new();
    push_components(&mut pending, dir);
    let mut real = PathBuf::from("/");
    let mut unsafe_allowed = false;
    // Refuses, or with `allow_unsafe` records, an unsafe step.
    let mut flag = |why: String| -> Result<(), DirError> {
        if !allow_unsafe {
            return Err(DirError::Unsafe(why));
        }
        unsafe_allowed = true;
        Ok(())
    };
    let root = std::fs::symlink_metadata(&real).map_err(|e| io(&real, e))?;
    if let Some(why) = unsafe_reason(&root, pending.is_empty()) {
        flag(format!("/ {why}"))?;
    }
    let mut links = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            // Only from a symlink's target; `real` has no symlinks, and its ancestors were
            // checked on the way down.
            real.pop();
            continue;
        }
        let candidate = real.join(&name);
        let meta = std::fs::symlink_metadata(&candidate).map_err(|e| io(&candidate, e))?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Err(DirError::Other(format!(
                    "too many symlinks resolving {}",
                    dir.display()
                )));
            }
            if !trusted(meta.uid()) {
                let owner = crate::accounts::user_name(meta.uid());
                flag(format!(
                    "{} is a symlink owned by {owner}",
                    candidate.display()
                ))?;
            }
            let target = std::fs::read_link(&candidate).map_err(|e| io(&candidate, e))?;
            if target.is_absolute() {
                real = PathBuf::from("/");
            }
            push_components(&mut pending, &target);
            continue;
        }
        if !meta.is_dir() {
            return Err(DirError::Other(format!(
                "{} is not a directory",
                candidate.display()
            )));
        }
        if let Some(why) = unsafe_reason(&meta, pending.is_empty()) {
            flag(format!("{} {why}", candidate.display()))?;
        }
        real = candidate;
    }
    Ok(Resolved {
        path: real,
        unsafe_allowed,
    })
}

/// [`resolve_dir`] (unsafe refused) for a directory the agent fills (a restore target, a
/// drill's scratch directory), creating what is missing with mode 0700 — never through a
/// symlink, as `mkdir` fails on any existing name. Returns the real path and whether the
/// directory itself was created.
pub fn ensure_dir(dir: &Path) -> Result<(PathBuf, bool), DirError> {
    let mut created = false;
    for _ in 0..=dir.components().count() + MAX_LINKS {
        match resolve_dir(dir, false) {
            Ok(r) => return Ok((r.path, created)),
            Err(DirError::Missing(missing)) => {
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&missing)
                    .map_err(|e| {
                        DirError::Other(format!(
                            "cannot create {}: {}",
                            missing.display(),
                            crate::process::describe(&e)
                        ))
                    })?;
                created = true;
            }
            Err(e) => return Err(e),
        }
    }
    Err(DirError::Other(format!(
        "{} keeps changing while it is created",
        dir.display()
    )))
}

/// Pushes `path`'s components onto the stack `pending` so that the first pops first.
fn push_components(pending: &mut Vec<OsString>, path: &Path) {
    let mut names: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    names.reverse();
    pending.extend(names);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
