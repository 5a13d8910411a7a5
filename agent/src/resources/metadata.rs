//! Changing a managed file's owner and mode in place for [`super::file`] (its content is written
//! with [`lab_proto::files::write_atomic_owned`]). Blocking; no decisions.

use std::fs::{File, Permissions};
use std::os::unix::fs::PermissionsExt;

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
