//! A tmpfs for tests that need a small or full filesystem (store disk-full, SnapRAID arrays).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::stderr;

/// A tmpfs mounted at a directory (the tests run as root), unmounted when dropped.
pub struct Tmpfs {
    pub at: PathBuf,
}

impl Tmpfs {
    /// Creates `at` and mounts a tmpfs of `size` (e.g. `32m`) there.
    pub fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount -t tmpfs (the tests run as root): {}",
            stderr(&out)
        );
        Tmpfs { at: at.to_owned() }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.at)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.at).status();
        }
        let _ = std::fs::remove_dir(&self.at);
    }
}
