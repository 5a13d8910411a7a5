//! File resources: a file's content (as is, or rendered from a [`template`](super::template)
//! with the node's facts), mode, owner, group and presence.
//!
//! New content is written atomically: a temp file in the same directory, owner and mode set
//! on it, fsynced, renamed over the file, then the directory fsynced. A change of mode or
//! owner alone is applied in place. A symlink at the path is followed (its target is written;
//! `absent` removes the link itself). The parent directory must exist; directories and other
//! non-regular files are refused. Without `mode`, a new file gets 0644 and an existing one
//! keeps its mode; without `owner`/`group`, an existing file keeps them and a new one belongs
//! to the agent.
//!
//! The result's diff is a unified diff of the content ("(content redacted)" for secrets,
//! "binary content differs" if either side is not UTF-8) followed by one line per metadata
//! change ("mode 0600 → 0644"). Owner and group names are resolved with the node's user
//! database (`getpwnam`); this runs on a blocking thread.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use lab_proto::v1::{FileResource, Presence};
use nix::unistd::{Gid, Group, Uid, User};

use super::atomic::{set_metadata, write_atomic};
use super::{absolute_path, describe, diff, template, Cx, Report};

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
        } = f;
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
        })
    }
}

/// Applies (or checks) `spec`.
pub async fn apply(spec: &FileSpec, cx: &mut Cx<'_>) -> Report {
    let content = if spec.present && spec.template {
        let rendered = match cx.facts().await {
            Ok(facts) => template::render(&spec.content, facts),
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

/// The regular file at a path, as found.
struct Current {
    bytes: Vec<u8>,
    mode: u32,
    uid: u32,
    gid: u32,
}

fn user_name(uid: u32) -> String {
    match User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    }
}

fn group_name(gid: u32) -> String {
    match Group::from_gid(Gid::from_raw(gid)) {
        Ok(Some(g)) => g.name,
        _ => gid.to_string(),
    }
}

fn lookup_uid(name: &str) -> Result<u32, String> {
    match User::from_name(name) {
        Ok(Some(u)) => Ok(u.uid.as_raw()),
        Ok(None) => Err(format!(
            "unknown user '{name}'; create it on the node or change the file's owner"
        )),
        Err(e) => Err(format!("cannot look up user '{name}': {}", e.desc())),
    }
}

fn lookup_gid(name: &str) -> Result<u32, String> {
    match Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(format!(
            "unknown group '{name}'; create it on the node or change the file's group"
        )),
        Err(e) => Err(format!("cannot look up group '{name}': {}", e.desc())),
    }
}

/// Reads the regular file at `path` (following symlinks); `None` if it does not exist.
fn read_current(path: &Path) -> Result<Option<Current>, String> {
    let shown = path.display();
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot inspect {shown}: {}", describe(&e))),
    };
    if meta.is_dir() {
        return Err(format!(
            "{shown} is a directory; a file resource manages regular files only"
        ));
    }
    if !meta.is_file() {
        return Err(format!(
            "{shown} is not a regular file; a file resource manages regular files only"
        ));
    }
    let bytes = fs::read(path).map_err(|e| format!("cannot read {shown}: {}", describe(&e)))?;
    Ok(Some(Current {
        bytes,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    }))
}

fn apply_blocking(spec: &FileSpec, content: &[u8], check: bool) -> Report {
    let shown = spec.path.display().to_string();
    let link = match fs::symlink_metadata(&spec.path) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Report::failed(format!("cannot inspect {shown}: {}", describe(&e))),
    };
    if !spec.present {
        return remove(spec, link, check);
    }
    let target = match &link {
        Some(m) if m.file_type().is_symlink() => match fs::canonicalize(&spec.path) {
            Ok(t) => t,
            Err(e) => {
                return Report::failed(format!(
                    "{shown} is a symlink whose target cannot be resolved: {}",
                    describe(&e)
                ))
            }
        },
        _ => spec.path.clone(),
    };
    match present(spec, &target, content, check) {
        Ok(report) => report,
        Err(message) => Report::failed(message),
    }
}

fn present(spec: &FileSpec, target: &Path, content: &[u8], check: bool) -> Result<Report, String> {
    let shown = spec.path.display().to_string();
    let current = read_current(target)?;
    if current.is_none() {
        let parent = target.parent().unwrap_or(Path::new("/"));
        if !parent.is_dir() {
            return Err(format!(
                "the directory {} does not exist; create it first (for example with a command resource running mkdir -p)",
                parent.display()
            ));
        }
    }
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
            set_metadata(target, mode, uid, gid, c.mode != mode)
        }
        _ => write_atomic(target, content, mode, uid, gid),
    };
    written.map_err(|e| format!("cannot write {shown}: {}", describe(&e)))?;
    Ok(report)
}

/// `state: absent`: removes a file or symlink at the path; refuses a directory.
fn remove(spec: &FileSpec, link: Option<fs::Metadata>, check: bool) -> Report {
    let shown = spec.path.display().to_string();
    let Some(meta) = link else {
        return Report::unchanged("absent");
    };
    if meta.is_dir() {
        return Report::failed(format!(
            "{shown} is a directory; a file resource removes files only"
        ));
    }
    let diff = if meta.file_type().is_symlink() {
        "remove symlink".to_owned()
    } else {
        match fs::read(&spec.path) {
            Ok(old) => diff::content(&shown, Some(&old), None, spec.secret),
            Err(e) => return Report::failed(format!("cannot read {shown}: {}", describe(&e))),
        }
    };
    if check {
        return Report::changed(diff, "would remove");
    }
    if let Err(e) = fs::remove_file(&spec.path) {
        return Report::failed(format!("cannot remove {shown}: {}", describe(&e)));
    }
    if let Some(Ok(d)) = spec.path.parent().map(File::open) {
        let _ = d.sync_all();
    }
    Report::changed(diff, "removed")
}
