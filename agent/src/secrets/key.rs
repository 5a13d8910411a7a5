//! The node's own age key: an X25519 identity made here at enrollment (or at the first start of
//! an agent that has none, after an upgrade), kept in `age.key` in the data directory (mode
//! 0600, in age-keygen's file format so `age -d -i age.key` works for an administrator on the
//! node) and never sent anywhere. Only its public recipient leaves the node, in `Hello`.
//!
//! A key file that exists but cannot be read is an error, never silently replaced: a new key
//! would make every secret encrypted to the old recipient unreadable without anyone noticing.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use lab_proto::files::{write_atomic, PRIVATE};
use lab_proto::recipient::AgeRecipient;

/// The node's age identity and its recipient.
pub struct NodeKey {
    identity: age::x25519::Identity,
    recipient: AgeRecipient,
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret half.
        f.debug_struct("NodeKey")
            .field("recipient", &self.recipient)
            .finish_non_exhaustive()
    }
}

/// Whether [`NodeKey::load_or_create`] found the key or made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The key file was there.
    Loaded,
    /// There was none; a new key was written.
    Created,
}

impl NodeKey {
    /// Reads the key file `path` ([`crate::AgentDir::age_key`]), or makes and saves a key
    /// there when there is none.
    pub fn load_or_create(path: &Path) -> anyhow::Result<(NodeKey, Origin)> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let key = Self::parse(&text).map_err(|why| {
                    anyhow::anyhow!(
                        "the node's age key {} is damaged ({why}); restore it from a backup, or \
                         move it away to make a new one (secrets encrypted to the old recipient \
                         must then be encrypted again to 'labctl secrets recipients')",
                        path.display()
                    )
                })?;
                Self::keep_private(path)?;
                Ok((key, Origin::Loaded))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate()?;
                write_atomic(path, key.file_text().as_bytes(), PRIVATE).map_err(|e| {
                    anyhow::anyhow!("cannot write the node's age key {}: {e}", path.display())
                })?;
                Ok((key, Origin::Created))
            }
            Err(e) => Err(anyhow::anyhow!(
                "cannot read the node's age key {}: {e}",
                path.display()
            )),
        }
    }

    /// A new random key.
    pub fn generate() -> anyhow::Result<NodeKey> {
        Self::from_identity(age::x25519::Identity::generate())
            .map_err(|why| anyhow::anyhow!("cannot make an age key: {why}"))
    }

    fn from_identity(identity: age::x25519::Identity) -> Result<NodeKey, &'static str> {
        // age writes what the shared rule accepts; a refusal is a bug in one of the two.
        let recipient = AgeRecipient::from_str(&identity.to_public().to_string())
            .map_err(|_| "its public key is not a valid age recipient")?;
        Ok(NodeKey {
            identity,
            recipient,
        })
    }

    /// A key file's text in age-keygen's format: `#` comment lines and one `AGE-SECRET-KEY-1…`
    /// line.
    pub fn parse(text: &str) -> Result<NodeKey, &'static str> {
        let mut keys = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        let line = keys.next().ok_or("it holds no AGE-SECRET-KEY line")?;
        if keys.next().is_some() {
            return Err("it holds more than one key line");
        }
        let identity = age::x25519::Identity::from_str(line)
            .map_err(|_| "its key line is not an age X25519 secret key")?;
        Self::from_identity(identity)
    }

    fn file_text(&self) -> String {
        format!(
            "# labfleet node key: secrets for this node are encrypted to its public key\n\
             # public key: {}\n{}\n",
            self.recipient,
            self.identity.to_string().expose_secret()
        )
    }

    /// Makes a key file that others can read private again (it may have been restored from a
    /// backup with another mode).
    fn keep_private(path: &Path) -> anyhow::Result<()> {
        let meta = std::fs::metadata(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the node's age key was readable by others; setting mode 0600");
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(PRIVATE))
                .map_err(|e| anyhow::anyhow!("cannot chmod 0600 {}: {e}", path.display()))?;
        }
        Ok(())
    }

    /// The public recipient (`age1…`), which secrets for this node are encrypted to.
    pub fn recipient(&self) -> &AgeRecipient {
        &self.recipient
    }

    /// The secret identity, for decrypting what was encrypted to [`NodeKey::recipient`].
    pub fn identity(&self) -> &age::x25519::Identity {
        &self.identity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("age.key");
        let (made, origin) = NodeKey::load_or_create(&path).unwrap();
        assert_eq!(origin, Origin::Created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(made.recipient().as_str()), "{text}");
        let (again, origin) = NodeKey::load_or_create(&path).unwrap();
        assert_eq!(origin, Origin::Loaded);
        assert_eq!(again.recipient(), made.recipient());
        // A copy with a wider mode is tightened.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        NodeKey::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Debug output never shows the secret.
        assert!(!format!("{again:?}").contains("AGE-SECRET-KEY"));
    }

    #[test]
    fn an_age_keygen_file_is_read() {
        // age/keys.txt as published with SOPS (first of its two keys).
        let text = "# created: 2020-07-18T03:16:47-07:00\n\
            # public key: age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw\n\
            AGE-SECRET-KEY-1NJT5YCS2LWU4V4QAJQ6R4JNU7LXPDX602DZ9NUFANVU5GDTGUWCQ5T59M6\n";
        let key = NodeKey::parse(text).unwrap();
        assert_eq!(
            key.recipient().as_str(),
            "age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw"
        );
    }

    #[test]
    fn a_damaged_key_is_an_error_and_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("age.key");
        for text in ["", "# only a comment\n", "AGE-SECRET-KEY-1NOPE\n"] {
            std::fs::write(&path, text).unwrap();
            let e = NodeKey::load_or_create(&path).unwrap_err().to_string();
            assert!(e.contains("damaged") && e.contains("age.key"), "{e}");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        }
    }
}
