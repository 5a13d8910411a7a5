//! The agent's data directory: its identity (certificate and key in one 0600 file, replaced
//! atomically on renewal), the pinned CA, `agent.toml` recording where the coordinator is, and
//! the node's age key (`age.key`, [`crate::secrets::key`]).

use std::path::{Path, PathBuf};

use lab_proto::files::{create_private_dir, write_atomic, PRIVATE, PUBLIC};
use lab_proto::tls::ClientIdentity;
use serde::{Deserialize, Serialize};

/// What enrollment recorded for later runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Enrollment {
    /// Coordinator address, HOST:PORT.
    pub coordinator: String,
    /// This node's name, as written in its certificate.
    pub node_name: String,
    /// Trust domain of the coordinator's CA.
    pub trust_domain: String,
}

/// Credentials loaded for one connection attempt.
#[derive(Clone)]
pub struct Credentials {
    /// What enrollment recorded.
    pub enrollment: Enrollment,
    /// The CA certificate (PEM).
    pub ca_pem: String,
    /// Certificate and key.
    pub identity: ClientIdentity,
}

/// Paths inside the agent's data directory.
#[derive(Debug, Clone)]
pub struct AgentDir {
    root: PathBuf,
}

impl AgentDir {
    /// The layout rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        AgentDir { root: root.into() }
    }
    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// Certificate followed by private key, PEM, mode 0600.
    pub fn identity(&self) -> PathBuf {
        self.root.join("node.pem")
    }
    /// The pinned CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.root.join("ca.crt")
    }
    /// The node's age key (0600), which secrets for this node are encrypted to.
    pub fn age_key(&self) -> PathBuf {
        self.root.join("age.key")
    }
    /// The enrollment record.
    pub fn enrollment(&self) -> PathBuf {
        self.root.join("agent.toml")
    }

    /// Whether this directory holds an enrollment.
    pub fn is_enrolled(&self) -> bool {
        self.identity().exists()
    }

    /// Writes everything enrollment produced.
    pub fn save_enrollment(
        &self,
        enrollment: &Enrollment,
        ca_pem: &str,
        identity: &ClientIdentity,
    ) -> anyhow::Result<()> {
        create_private_dir(&self.root)?;
        write_atomic(&self.ca(), ca_pem.as_bytes(), PUBLIC)?;
        self.save_identity(identity)?;
        write_atomic(
            &self.enrollment(),
            toml::to_string_pretty(enrollment)?.as_bytes(),
            PUBLIC,
        )?;
        Ok(())
    }

    /// Replaces certificate and key together (one atomic rename).
    pub fn save_identity(&self, identity: &ClientIdentity) -> anyhow::Result<()> {
        let both = format!("{}{}", identity.cert_pem, identity.key_pem);
        write_atomic(&self.identity(), both.as_bytes(), PRIVATE)?;
        Ok(())
    }

    /// Loads everything a connection needs.
    pub fn load(&self) -> anyhow::Result<Credentials> {
        let read = |p: PathBuf| {
            std::fs::read_to_string(&p).map_err(|e| {
                anyhow::anyhow!(
                    "cannot read {}: {e}; enroll first with 'lab-agent enroll --data-dir {}'",
                    p.display(),
                    self.root.display()
                )
            })
        };
        let enrollment: Enrollment = toml::from_str(&read(self.enrollment())?)
            .map_err(|e| anyhow::anyhow!("invalid {}: {e}", self.enrollment().display()))?;
        let both = read(self.identity())?;
        let split = both
            .find("-----BEGIN PRIVATE KEY-----")
            .ok_or_else(|| anyhow::anyhow!("{} holds no private key", self.identity().display()))?;
        Ok(Credentials {
            enrollment,
            ca_pem: read(self.ca())?,
            identity: ClientIdentity {
                cert_pem: both[..split].to_owned(),
                key_pem: both[split..].to_owned(),
            },
        })
    }
}
