//! Writing files for [`super::file`]: atomically (a temp file in the same directory with owner
//! and mode set, fsynced, renamed over the target, then the directory fsynced), or changing
//! owner and mode in place. Blocking; no decisions.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Changes owner/group (if given) then mode in place, through the open `file` (never a path,
/// which could be swapped for a symlink meanwhile); chown may clear set-id bits, so the mode
/// is set again after it.
pub fn set_metadata(
    file: &File,
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
    mode_changed: bool,
) -> std::io::Result<()> {
    let chowned = uid.is_some() || gid.is_some();
    if chowned {
        std::os::unix::fs::fchown(file, uid, gid)?;
    }
    if chowned || mode_changed {
        file.set_permissions(Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Writes `content` to `path` atomically with `mode` and owner `uid`/`gid` from the start.
pub fn write_atomic(
    path: &Path,
    content: &[u8],
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name: String = path
        .file_name()
        .map(|n| n.to_string_lossy().chars().take(64).collect())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.lab-tmp.{}.{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = write_and_rename(&tmp, path, content, mode, uid, gid);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn write_and_rename(
    tmp: &Path,
    path: &Path,
    content: &[u8],
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)?;
    file.write_all(content)?;
    let meta = file.metadata()?;
    let uid = uid.filter(|u| *u != meta.uid());
    let gid = gid.filter(|g| *g != meta.gid());
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::fchown(&file, uid, gid)?;
    }
    file.set_permissions(Permissions::from_mode(mode))?;
    file.sync_all()?;
    drop(file);
    fs::rename(tmp, path)
}
