//! The agent's data directory: its identity (certificate and key in one 0600 file, replaced
//! atomically on renewal), the pinned CA, `agent.toml` recording where the coordinators are, and
//! the node's age key (`age.key`, [`crate::secrets::key`]).

use std::path::{Path, PathBuf};

use lab_proto::endpoints::{new_or_old, OneOrMany};
use lab_proto::files::{create_private_dir, write_atomic, PRIVATE, PUBLIC};
use lab_proto::tls::ClientIdentity;
use serde::{Deserialize, Serialize};

/// What enrollment recorded for later runs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(try_from = "EnrollmentToml", rename_all = "kebab-case")]
pub struct Enrollment {
    /// Coordinator addresses, HOST:PORT, at least one (`lab-agent enroll --coordinator A,B`).
    /// Files written before the list hold one `coordinator = "HOST:PORT"`, which still reads.
    pub coordinators: Vec<String>,
    /// This node's name, as written in its certificate.
    pub node_name: String,
    /// Trust domain of the coordinator's CA.
    pub trust_domain: String,
}

/// `agent.toml` as written: `coordinators` (a list) or the older `coordinator` (one).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct EnrollmentToml {
    #[serde(default)]
    coordinators: Option<OneOrMany>,
    #[serde(default)]
    coordinator: Option<OneOrMany>,
    node_name: String,
    trust_domain: String,
}

impl TryFrom<EnrollmentToml> for Enrollment {
    type Error = String;

    fn try_from(raw: EnrollmentToml) -> Result<Self, String> {
        let coordinators = new_or_old(
            ("coordinators", raw.coordinators),
            ("coordinator", raw.coordinator),
        )?;
        Ok(Enrollment {
            coordinators,
            node_name: raw.node_name,
            trust_domain: raw.trust_domain,
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_single_address_files_still_read_and_lists_round_trip() {
        let old = "coordinator = \"10.0.0.5:7443\"\nnode-name = \"n1\"\ntrust-domain = \"lab\"\n";
        let e: Enrollment = toml::from_str(old).unwrap();
        assert_eq!(e.coordinators, vec!["10.0.0.5:7443"]);
        let new = toml::to_string_pretty(&Enrollment {
            coordinators: vec!["a:7443".into(), "b:7443".into()],
            ..e
        })
        .unwrap();
        assert!(new.contains("coordinators = ["), "{new}");
        let back: Enrollment = toml::from_str(&new).unwrap();
        assert_eq!(back.coordinators, vec!["a:7443", "b:7443"]);
    }

    #[test]
    fn broken_lists_say_what_is_wrong() {
        let tail = "node-name = \"n1\"\ntrust-domain = \"lab\"\n";
        for (head, want) in [
            ("coordinators = []\n", "no coordinator address given"),
            (
                "coordinators = [\"a\"]\n",
                "invalid coordinator address 'a'",
            ),
            ("", "no 'coordinators' list"),
            (
                "coordinators = [\"a:1\"]\ncoordinator = \"b:1\"\n",
                "both 'coordinators' and 'coordinator'",
            ),
        ] {
            let e = toml::from_str::<Enrollment>(&format!("{head}{tail}")).unwrap_err();
            assert!(e.to_string().contains(want), "{head}: {e}");
        }
    }
}
