//! File resources: a file's content (as is, or rendered from a [`template`](super::template)
//! with the node's facts), mode, owner, group and presence.
//!
//! New content is written atomically: a temp file in the same directory, owner and mode set
//! on it, fsynced, renamed over the file, then the directory fsynced. A change of mode or
//! owner alone is applied in place. The parent directory must exist; directories and other
//! non-regular files are refused. Without `mode`, a new file gets 0644 and an existing one
//! keeps its mode; without `owner`/`group`, an existing file keeps them and a new one belongs
//! to the agent.
//!
//! The agent runs as root and the path may lie where others can write, so (issue 11):
//! - the file's directory is resolved with [`crate::safepath`] and refused when a user other
//!   than root or the agent's could redirect the write (a directory on the way owned by or
//!   writable by them, e.g. `/tmp` itself); `allowUnsafeParent` accepts that risk;
//! - a symlink at the path is refused unless `followSymlinks` is set (then its target is
//!   managed, its directory checked the same way); `absent` removes a link itself;
//! - an existing file is opened with `O_NOFOLLOW`, checked to be the very file `lstat` saw
//!   (device and inode) before its content is read for the diff, and changed in place through
//!   that descriptor; under an allowed unsafe directory a file with other hard links is
//!   refused (it may be another file's name). New content replaces the name by a rename,
//!   which never writes through a link. So no diff ever shows a file the spec does not manage.
//!
//! The result's diff is a unified diff of the content ("(content redacted)" for secrets,
//! "binary content differs" if either side is not UTF-8) followed by one line per metadata
//! change ("mode 0600 → 0644"). Owner and group names are resolved with the node's user
//! database (`getpwnam`); this runs on a blocking thread.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use lab_proto::v1::{FileResource, Presence};

use super::metadata::set_metadata;
use super::{absolute_path, describe, diff, template, Cx, Report};
use crate::accounts::{group_name, lookup_gid, lookup_uid, user_name};
use crate::safepath::{resolve_dir, DirError};

/// Mode of a new file when the resource gives none.
pub const DEFAULT_MODE: u32 = 0o644;

/// A file resource, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// Absolute path.
    pub path: PathBuf,
    /// The content, or the template when `template` is set.
    pub content: String,
    /// Render `content` with the node's facts.
    pub template: bool,
    /// Permission bits (up to 0o7777); `None` = 0644 for new files, unchanged otherwise.
    pub mode: Option<u32>,
    /// Owner's user name; `None` = unchanged (new files: the agent's user).
    pub owner: Option<String>,
    /// Group name; `None` = unchanged (new files: the agent's group).
    pub group: Option<String>,
    /// `false` = the file must not exist.
    pub present: bool,
    /// Never show the content in diffs.
    pub secret: bool,
    /// A symlink at `path` is followed (its target managed) instead of refused.
    pub follow_symlinks: bool,
    /// Accept a directory on the path that users other than root can write.
    pub allow_unsafe_parent: bool,
}

/// Parses an octal mode ("0644", "644", "0o644"); empty = `None`.
pub fn parse_mode(text: &str) -> Result<Option<u32>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o7777 && !digits.starts_with('+') && digits.len() <= 5 => {
            Ok(Some(mode))
        }
        _ => Err(format!(
            "invalid file mode '{}'; use an octal mode such as 0644",
            text.escape_debug()
        )),
    }
}

/// A user or group name from a resource: empty = `None`.
fn account_name(name: String, what: &str) -> Result<Option<String>, String> {
    if name.is_empty() {
        return Ok(None);
    }
    if name.contains(['\0', ':', '/', '\n']) || name.len() > 256 {
        return Err(format!("invalid {what} name '{}'", name.escape_debug()));
    }
    Ok(Some(name))
}

impl TryFrom<FileResource> for FileSpec {
    type Error = String;
    fn try_from(f: FileResource) -> Result<Self, String> {
        let FileResource {
            path,
            content,
            template,
            mode,
            owner,
            group,
            state,
            secret,
            follow_symlinks,
            allow_unsafe_parent,
            content_from,
        } = f;
        if content_from.is_some() {
            // crate::secrets::resolve puts the decrypted content in before a task runs.
            return Err(
                "contentFrom was not decrypted before the resource ran (an agent bug)".into(),
            );
        }
        let present = match Presence::try_from(state) {
            Ok(Presence::Unspecified | Presence::Present) => true,
            Ok(Presence::Absent) => false,
            Err(_) => return Err(format!("unknown file state {state}; upgrade the agent")),
        };
        Ok(FileSpec {
            path: absolute_path(&path, "file path")?,
            content,
            template,
            mode: parse_mode(&mode)?,
            owner: account_name(owner, "owner")?,
            group: account_name(group, "group")?,
            present,
            secret,
            follow_symlinks,
            allow_unsafe_parent,
        })
    }
}

/// Applies (or checks) `spec`.
pub async fn apply(spec: &FileSpec, cx: &mut Cx<'_>) -> Report {
    let content = if spec.present && spec.template {
        let rendered = match cx.facts().await {
            Ok(facts) => template::render(&spec.content, facts, spec.secret),
            Err(e) => Err(e),
        };
        match rendered {
            Ok(c) => c,
            Err(e) => return Report::failed(e),
        }
    } else {
        spec.content.clone()
    };
    let spec = spec.clone();
    let check = cx.check;
    tokio::task::spawn_blocking(move || apply_blocking(&spec, content.as_bytes(), check))
        .await
        .unwrap_or_else(|e| Report::failed(format!("the file resource stopped unexpectedly: {e}")))
}

/// Symlinks followed for one resource with `followSymlinks`.
const MAX_LINKS: usize = 40;

/// Where the managed file is, found safely.
struct Target {
    /// The file's path with its directory resolved (no symlinks before the last component).
    path: PathBuf,
    /// A directory on the way is writable by others (the spec allowed it).
    unsafe_dir: bool,
}

/// The regular file at a path, as found (opened without following symlinks).
struct Current {
    file: File,
    bytes: Vec<u8>,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// Resolves the directory of `path` (see [`crate::safepath`]); `Ok(None)`: it does not exist.
fn resolve_parent(spec: &FileSpec, path: &Path) -> Result<Option<Target>, String> {
    let shown = spec.path.display();
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(format!("{} names no file", path.display()));
    };
    match resolve_dir(parent, spec.allow_unsafe_parent) {
        Ok(dir) => Ok(Some(Target {
            path: dir.path.join(name),
            unsafe_dir: dir.unsafe_allowed,
        })),
        Err(DirError::Missing(_)) => Ok(None),
        Err(DirError::Unsafe(why)) => Err(format!(
            "refusing {shown}: {why}, so another user could redirect this write with a symlink \
             or a swapped directory; use a directory only root can write, or set \
             allowUnsafeParent: true to accept the risk"
        )),
        Err(DirError::Other(message)) => Err(format!("cannot use {shown}: {message}")),
    }
}

/// Finds the file `spec` manages: its own path, or with `followSymlinks` the end of the
/// symlinks there (each directory on the way checked). `Ok(None)`: the directory is missing.
fn locate(spec: &FileSpec) -> Result<Option<Target>, String> {
    let mut path = spec.path.clone();
    let mut unsafe_dir = false;
    for _ in 0..MAX_LINKS {
        let Some(mut target) = resolve_parent(spec, &path)? else {
            return Ok(None);
        };
        target.unsafe_dir |= unsafe_dir;
        let link = match fs::symlink_metadata(&target.path) {
            Ok(m) => m.file_type().is_symlink(),
            Err(_) => false,
        };
        if !link || !spec.follow_symlinks {
            return Ok(Some(target));
        }
        let dest = fs::read_link(&target.path).map_err(|e| {
            format!(
                "cannot read the symlink {}: {}",
                target.path.display(),
                describe(&e)
            )
        })?;
        // A relative target is relative to the link's (resolved) directory.
        path = target.path.parent().unwrap_or(Path::new("/")).join(dest);
        unsafe_dir = target.unsafe_dir;
    }
    Err(format!(
        "too many symlinks resolving {}",
        spec.path.display()
    ))
}

/// Refuses a symlink at the managed path (`followSymlinks` resolved them already).
fn refuse_symlink(spec: &FileSpec, path: &Path) -> String {
    let dest = fs::read_link(path)
        .map(|d| format!(" (to {})", d.display()))
        .unwrap_or_default();
    format!(
        "{} is a symlink{dest}; a file resource does not follow symlinks, as the link could \
         point at any file: remove the link, or set followSymlinks: true to manage its target",
        spec.path.display()
    )
}

/// Opens the regular file at `path`, which `lstat` found as `seen`, without following a
/// symlink, and reads it. Refuses anything that is not that very file, and in an unsafe
/// directory a file with other hard links.
fn read_current(
    spec: &FileSpec,
    path: &Path,
    seen: &fs::Metadata,
    unsafe_dir: bool,
) -> Result<Current, String> {
    let shown = spec.path.display();
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot read {shown}: {}", describe(&e)))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot inspect {shown}: {}", describe(&e)))?;
    if !meta.is_file() || (meta.dev(), meta.ino()) != (seen.dev(), seen.ino()) {
        return Err(format!(
            "{shown} changed while it was being read (another program replaced it); try again"
        ));
    }
    if unsafe_dir && meta.nlink() > 1 {
        return Err(format!(
            "{shown} has {} hard links and lies where other users can write; it may be another \
             file's name: remove it first",
            meta.nlink()
        ));
    }
    let mut bytes = Vec::new();
    (&file)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {shown}: {}", describe(&e)))?;
    Ok(Current {
        file,
        bytes,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    })
}

/// `lstat` of `path`; `None` if nothing is there.
fn lstat(spec: &FileSpec, path: &Path) -> Result<Option<fs::Metadata>, String> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!(
            "cannot inspect {}: {}",
            spec.path.display(),
            describe(&e)
        )),
    }
}

fn apply_blocking(spec: &FileSpec, content: &[u8], check: bool) -> Report {
    let result = if spec.present {
        present(spec, content, check)
    } else {
        remove(spec, check)
    };
    result.unwrap_or_else(Report::failed)
}

fn present(spec: &FileSpec, content: &[u8], check: bool) -> Result<Report, String> {
    let shown = spec.path.display().to_string();
    let Some(target) = locate(spec)? else {
        let parent = spec.path.parent().unwrap_or(Path::new("/"));
        return Err(format!(
            "the directory {} does not exist; create it first (for example with a command resource running mkdir -p)",
            parent.display()
        ));
    };
    let current = match lstat(spec, &target.path)? {
        None => None,
        Some(m) if m.file_type().is_symlink() => return Err(refuse_symlink(spec, &target.path)),
        Some(m) if m.is_dir() => {
            return Err(format!(
                "{shown} is a directory; a file resource manages regular files only"
            ))
        }
        Some(m) if !m.is_file() => {
            return Err(format!(
                "{shown} is not a regular file; a file resource manages regular files only"
            ))
        }
        Some(m) => Some(read_current(spec, &target.path, &m, target.unsafe_dir)?),
    };
    let owner = spec.owner.as_deref().map(lookup_uid).transpose()?;
    let group = spec.group.as_deref().map(lookup_gid).transpose()?;
    let mode = spec
        .mode
        .or(current.as_ref().map(|c| c.mode))
        .unwrap_or(DEFAULT_MODE);
    let uid = owner.or(current.as_ref().map(|c| c.uid));
    let gid = group.or(current.as_ref().map(|c| c.gid));

    let content_changed = current.as_ref().is_none_or(|c| c.bytes != content);
    let mut notes = Vec::new();
    if let Some(c) = &current {
        if c.mode != mode {
            notes.push(format!("mode {:04o} → {mode:04o}", c.mode));
        }
        if uid.is_some_and(|u| u != c.uid) {
            notes.push(format!(
                "owner {} → {}",
                user_name(c.uid),
                spec.owner.as_deref().unwrap_or("")
            ));
        }
        if gid.is_some_and(|g| g != c.gid) {
            notes.push(format!(
                "group {} → {}",
                group_name(c.gid),
                spec.group.as_deref().unwrap_or("")
            ));
        }
    }
    let state = format!(
        "{mode:04o} {}:{}, {} bytes",
        user_name(uid.unwrap_or_else(|| nix::unistd::geteuid().as_raw())),
        group_name(gid.unwrap_or_else(|| nix::unistd::getegid().as_raw())),
        content.len()
    );
    if !content_changed && notes.is_empty() {
        return Ok(Report::unchanged(state));
    }

    let mut diff = String::new();
    if content_changed {
        let old = current.as_ref().map(|c| c.bytes.as_slice());
        diff = diff::content(&shown, old, Some(content), spec.secret);
        if diff.is_empty() {
            diff = "new empty file\n".to_owned();
        }
    }
    diff.push_str(&notes.join("\n"));
    let verb = match (&current, check) {
        (None, true) => "would create",
        (None, false) => "created",
        (Some(_), true) => "would update",
        (Some(_), false) => "updated",
    };
    let report = Report::changed(diff.trim_end().to_owned(), format!("{verb}: {state}"));
    if check {
        return Ok(report);
    }
    let written = match &current {
        Some(c) if !content_changed => {
            let uid = uid.filter(|u| *u != c.uid);
            let gid = gid.filter(|g| *g != c.gid);
            set_metadata(&c.file, mode, uid, gid, c.mode != mode)
        }
        _ => lab_proto::files::write_atomic_owned(&target.path, content, mode, uid, gid),
    };
    written.map_err(|e| format!("cannot write {shown}: {}", describe(&e)))?;
    Ok(report)
}

/// `state: absent`: removes a file or symlink at the path (never a link's target); refuses a
/// directory.
fn remove(spec: &FileSpec, check: bool) -> Result<Report, String> {
    let shown = spec.path.display().to_string();
    let Some(target) = resolve_parent(spec, &spec.path)? else {
        return Ok(Report::unchanged("absent"));
    };
    let Some(meta) = lstat(spec, &target.path)? else {
        return Ok(Report::unchanged("absent"));
    };
    let diff = if meta.file_type().is_symlink() {
        "remove symlink".to_owned()
    } else if meta.is_dir() {
        return Err(format!(
            "{shown} is a directory; a file resource removes files only"
        ));
    } else if !meta.is_file() {
        "remove special file".to_owned()
    } else {
        let old = read_current(spec, &target.path, &meta, target.unsafe_dir)?;
        diff::content(&shown, Some(&old.bytes), None, spec.secret)
    };
    if check {
        return Ok(Report::changed(diff, "would remove"));
    }
    fs::remove_file(&target.path)
        .map_err(|e| format!("cannot remove {shown}: {}", describe(&e)))?;
    if let Some(Ok(d)) = target.path.parent().map(File::open) {
        let _ = d.sync_all();
    }
    Ok(Report::changed(diff, "removed"))
}
