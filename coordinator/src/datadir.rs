//! The coordinator's data directory: where each file lives, and the small TOML file that
//! `init` writes for `serve` (trust domain, advertised address, server certificate names).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Paths inside the data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The layout rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }
    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// CA certificate (PEM, public).
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("ca.crt")
    }
    /// CA private key (PEM, 0600).
    pub fn ca_key(&self) -> PathBuf {
        self.root.join("ca.key")
    }
    /// Server certificate chain: server certificate then CA (PEM).
    pub fn server_cert(&self) -> PathBuf {
        self.root.join("server.crt")
    }
    /// Server private key (PEM, 0600).
    pub fn server_key(&self) -> PathBuf {
        self.root.join("server.key")
    }
    /// The settings written by `init`.
    pub fn settings(&self) -> PathBuf {
        self.root.join("coordinator.toml")
    }
    /// The sled store.
    pub fn state(&self) -> PathBuf {
        self.root.join("state")
    }
    /// The key that opens the fleet's CA sealed in etcd (0600; `init` with an etcd store
    /// writes it, `join` reads a copy of it).
    pub fn join_key(&self) -> PathBuf {
        self.root.join("join.key")
    }
    /// labctl config with the admin context.
    pub fn labctl_config(&self) -> PathBuf {
        self.root.join("labctl.toml")
    }

    /// When this process runs as root and the directory belongs to another user (the Debian
    /// package makes `/var/lib/lab-coordinator` for the `lab-coordinator` user), gives every
    /// file and directory under it to that user and group, so that `serve`, running as that
    /// user, can read what root wrote with `init` or `cert`. Symlinks are changed, never
    /// followed. Does nothing otherwise.
    pub fn adopt_owner(&self) -> anyhow::Result<()> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(());
        }
        let meta = std::fs::symlink_metadata(&self.root)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", self.root.display()))?;
        if meta.uid() == 0 {
            return Ok(());
        }
        give_to(&self.root, meta.uid(), meta.gid())
    }
}

/// Changes the owner of everything below `dir` that is not `uid:gid` yet, without following
/// symlinks.
fn give_to(dir: &Path, uid: u32, gid: u32) -> anyhow::Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| anyhow::anyhow!("cannot read {}: {e}", dir.display()))?;
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        if meta.uid() != uid || meta.gid() != gid {
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
                .map_err(|e| anyhow::anyhow!("cannot give {} to uid {uid}: {e}", path.display()))?;
        }
        if meta.is_dir() {
            give_to(&path, uid, gid)?;
        }
    }
    Ok(())
}

/// What `init` decided and `serve` needs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// Trust domain of the CA.
    pub trust_domain: String,
    /// Address agents and operators dial, HOST:PORT.
    pub advertise: String,
    /// Names (DNS or IP) in the server certificate.
    pub server_names: Vec<String>,
}

impl Settings {
    /// Reads the settings file.
    pub fn load(dir: &DataDir) -> anyhow::Result<Self> {
        let path = dir.settings();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read {}: {e}; run 'lab-coordinator init --data-dir {}' first",
                path.display(),
                dir.root().display()
            )
        })?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("invalid {}: {e}", path.display()))
    }

    /// Writes the settings file (atomically).
    pub fn save(&self, dir: &DataDir) -> anyhow::Result<()> {
        let path = dir.settings();
        let text = toml::to_string_pretty(self)?;
        lab_proto::files::write_atomic(&path, text.as_bytes(), lab_proto::files::PUBLIC)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
    }
}
