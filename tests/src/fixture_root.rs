//! Fixture root trees for `lab-agent run --facts-root`: files and symlinks written relative to
//! a root, and the parts of a Proxmox VE host the fact and topology tests share.

use std::path::Path;

/// Writes `content` to `rel` under `root`, making its directories.
pub fn write(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("a path under the root"))
        .expect("create fixture directory");
    std::fs::write(path, content).expect("write fixture file");
}

/// A symlink at `rel` under `root` pointing to `target` (resolved inside the root by the agent).
pub fn symlink(root: &Path, rel: &str, target: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("a path under the root"))
        .expect("create fixture directory");
    std::os::unix::fs::symlink(target, path).expect("create fixture symlink");
}

/// What makes a root a Proxmox VE host: pve-manager 8.2.4 installed (dpkg status and PVE's
/// Perl directory) in the corosync cluster `homelab`.
pub fn pve_host(root: &Path) {
    write(
        root,
        "var/lib/dpkg/status",
        "Package: pve-manager\nStatus: install ok installed\nVersion: 8.2.4\n",
    );
    std::fs::create_dir_all(root.join("usr/share/perl5/PVE")).expect("create PVE directory");
    write(
        root,
        "etc/pve/corosync.conf",
        "totem {\n  cluster_name: homelab\n}\n",
    );
}
