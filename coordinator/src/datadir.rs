//! The coordinator's data directory: where each file lives, and the small TOML file that
//! `init` writes for `serve` (trust domain, advertised address, server certificate names).

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
    /// labctl config with the admin context.
    pub fn labctl_config(&self) -> PathBuf {
        self.root.join("labctl.toml")
    }
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
}
