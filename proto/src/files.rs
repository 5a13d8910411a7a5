//! Writing key material and state files safely: atomically (temp file, fsync, rename) and with
//! the right mode from the first byte, so a crash never leaves a half-written key or a key that
//! was briefly world-readable.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Mode for private keys and files that embed them.
pub const PRIVATE: u32 = 0o600;
/// Mode for certificates and other public files.
pub const PUBLIC: u32 = 0o644;

/// Writes `contents` to `path` atomically with `mode`, owned by the writer.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    write_atomic_owned(path, contents, mode, None, None)
}

/// Writes `contents` to `path` atomically: a new temp file in the same directory (created with
/// O_EXCL, so nothing planted at its name is written through) gets owner `uid`/`gid` (when
/// given and different) and `mode` before it is fsynced and renamed over `path`; then the
/// directory is fsynced. On failure the temp file is removed and `path` is unchanged.
pub fn write_atomic_owned(
    path: &Path,
    contents: &[u8],
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    // The name is cut so that a long file name leaves room for the suffix.
    let name: String = path
        .file_name()
        .map(|n| n.to_string_lossy().chars().take(64).collect())
        .unwrap_or_default();
    // Unique per process (pid) and per write (counter): concurrent writers never share one.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{name}.tmp.{}.{}",
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    let result = write_and_rename(&tmp, path, contents, mode, uid, gid);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn write_and_rename(
    tmp: &Path,
    path: &Path,
    contents: &[u8],
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)?;
    file.write_all(contents)?;
    let meta = file.metadata()?;
    let uid = uid.filter(|u| *u != meta.uid());
    let gid = gid.filter(|g| *g != meta.gid());
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::fchown(&file, uid, gid)?;
    }
    // Set after chown, which may clear set-id bits.
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.sync_all()?;
    drop(file);
    fs::rename(tmp, path)
}

/// Creates `dir` (and parents) with mode 0700 if missing.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_with_mode_and_replaces() {
        let dir = tempfile_dir();
        let path = dir.join("key.pem");
        write_atomic(&path, b"one", PRIVATE).unwrap();
        write_atomic(&path, b"two", PRIVATE).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn never_writes_through_a_symlink_at_the_temp_name() {
        let dir = std::env::temp_dir().join(format!("lab-proto-links-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        fs::write(&victim, "keep").unwrap();
        let tmp = dir.join(format!(".key.pem.tmp.{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        write_atomic(&dir.join("key.pem"), b"new", PRIVATE).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert_eq!(fs::read(dir.join("key.pem")).unwrap(), b"new");
        fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("lab-proto-files-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }
}
