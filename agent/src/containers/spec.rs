//! The desired container of an `ensure` task as a domain type: parsed and validated from the wire
//! type at one boundary ([`Desired::try_from`]), and hashed into the `labfleet.config-hash` label
//! that tells whether an existing container still matches.
//!
//! Pure code, no I/O: the engine calls live in `ensure.rs`.

use std::collections::BTreeMap;
use std::fmt;

use lab_proto::v1::{ContainerEnsure, RestartPolicy};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Label holding the SHA-256 of the canonical desired configuration.
pub const HASH_LABEL: &str = "labfleet.config-hash";
/// Label holding a short digest per field (`image=1a2b3c4d,env=...`), to say what changed.
pub const FIELDS_LABEL: &str = "labfleet.config-fields";
/// Label marking containers that labfleet created.
pub const MANAGED_LABEL: &str = "labfleet.managed";
/// Prefix reserved for labfleet's own labels; user labels may not use it.
const RESERVED_PREFIX: &str = "labfleet.";

/// A container as an `ensure` task wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// Container name.
    pub name: String,
    /// Image reference, as given (`busybox:lab`, `registry/x@sha256:...`).
    pub image: String,
    /// Command; empty = the image's default.
    pub command: Vec<String>,
    /// Environment.
    pub env: BTreeMap<String, String>,
    /// Published ports, sorted.
    pub ports: Vec<PortMapping>,
    /// Bind mounts and named volumes, sorted.
    pub volumes: Vec<Volume>,
    /// Restart policy.
    pub restart: Restart,
    /// User labels (none under `labfleet.`).
    pub labels: BTreeMap<String, String>,
}

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (the default).
    Tcp,
    /// UDP.
    Udp,
}

/// `[IP:]HOST:CONTAINER[/udp]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortMapping {
    /// Host address to bind; `None` = all addresses.
    pub host_ip: Option<String>,
    /// Port on the host.
    pub host_port: u16,
    /// Port inside the container.
    pub container_port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
}

/// `SRC:/dst[:ro|:rw]`; `SRC` is a host path or a named volume.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Volume {
    /// Host path or volume name.
    pub source: String,
    /// Absolute path inside the container.
    pub target: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// Restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Never restart (`RESTART_POLICY_UNSPECIFIED` too).
    No,
    /// Always restart.
    Always,
    /// Restart unless stopped by hand.
    UnlessStopped,
    /// Restart when the process exits non-zero.
    OnFailure,
}

/// Why an `ensure` spec was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// A required field is empty.
    #[error("{0} is empty; set it in the task")]
    Missing(&'static str),
    /// A port mapping did not parse.
    #[error("port '{0}' is not HOST:CONTAINER or HOST:CONTAINER/udp with ports 1-65535")]
    Port(String),
    /// A volume did not parse.
    #[error("volume '{0}' is not SRC:/absolute/path or SRC:/absolute/path:ro")]
    Volume(String),
    /// A restart policy number unknown to this agent.
    #[error("unknown restart policy {0}; this agent knows no, always, unlessStopped, onFailure")]
    Restart(i32),
    /// A user label in labfleet's namespace.
    #[error("label '{0}' uses the reserved prefix 'labfleet.'; choose another key")]
    ReservedLabel(String),
    /// An environment variable name that cannot be passed as `NAME=value`.
    #[error("environment variable name '{0}' is empty or contains '='")]
    EnvName(String),
}

impl TryFrom<&ContainerEnsure> for Desired {
    type Error = SpecError;

    fn try_from(spec: &ContainerEnsure) -> Result<Self, SpecError> {
        // Exhaustive on purpose: a new proto field fails the build until it is handled here.
        let ContainerEnsure {
            name,
            image,
            command,
            env,
            ports,
            volumes,
            restart,
            labels,
        } = spec;
        if name.trim().is_empty() {
            return Err(SpecError::Missing("container name"));
        }
        if image.trim().is_empty() {
            return Err(SpecError::Missing("image"));
        }
        if let Some(bad) = env.keys().find(|k| k.is_empty() || k.contains('=')) {
            return Err(SpecError::EnvName(bad.clone()));
        }
        if let Some(reserved) = labels.keys().find(|k| k.starts_with(RESERVED_PREFIX)) {
            return Err(SpecError::ReservedLabel(reserved.clone()));
        }
        let mut ports = ports
            .iter()
            .map(|p| PortMapping::parse(p))
            .collect::<Result<Vec<_>, _>>()?;
        ports.sort();
        let mut volumes = volumes
            .iter()
            .map(|v| Volume::parse(v))
            .collect::<Result<Vec<_>, _>>()?;
        volumes.sort();
        Ok(Desired {
            name: name.trim().to_owned(),
            image: image.trim().to_owned(),
            command: command.clone(),
            env: env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            ports,
            volumes,
            restart: Restart::try_from(*restart)?,
            labels: labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        })
    }
}

impl TryFrom<i32> for Restart {
    type Error = SpecError;

    fn try_from(value: i32) -> Result<Self, SpecError> {
        match RestartPolicy::try_from(value) {
            Ok(RestartPolicy::Unspecified | RestartPolicy::No) => Ok(Restart::No),
            Ok(RestartPolicy::Always) => Ok(Restart::Always),
            Ok(RestartPolicy::UnlessStopped) => Ok(Restart::UnlessStopped),
            Ok(RestartPolicy::OnFailure) => Ok(Restart::OnFailure),
            Err(_) => Err(SpecError::Restart(value)),
        }
    }
}

impl Restart {
    /// The Engine API's name of the policy.
    pub fn as_str(self) -> &'static str {
        match self {
            Restart::No => "no",
            Restart::Always => "always",
            Restart::UnlessStopped => "unless-stopped",
            Restart::OnFailure => "on-failure",
        }
    }
}

impl PortMapping {
    /// Parses `[IP:]HOST:CONTAINER[/tcp|/udp]`.
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        let bad = || SpecError::Port(text.to_owned());
        let (addr, protocol) = match text.trim().rsplit_once('/') {
            Some((addr, "tcp")) => (addr, Protocol::Tcp),
            Some((addr, "udp")) => (addr, Protocol::Udp),
            Some(_) => return Err(bad()),
            None => (text.trim(), Protocol::Tcp),
        };
        let parts: Vec<&str> = addr.split(':').collect();
        let (host_ip, host, container) = match parts.as_slice() {
            [host, container] => (None, *host, *container),
            [ip, host, container] if !ip.is_empty() => (Some((*ip).to_owned()), *host, *container),
            _ => return Err(bad()),
        };
        let port = |s: &str| s.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad);
        Ok(PortMapping {
            host_ip,
            host_port: port(host)?,
            container_port: port(container)?,
            protocol,
        })
    }

    /// The Engine API's key for the container side: `80/tcp`.
    pub fn container_key(&self) -> String {
        let proto = match self.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        format!("{}/{proto}", self.container_port)
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ip) = &self.host_ip {
            write!(f, "{ip}:")?;
        }
        write!(f, "{}:{}", self.host_port, self.container_key())
    }
}

impl Volume {
    /// Parses `SRC:/dst[:ro|:rw]`.
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        let bad = || SpecError::Volume(text.to_owned());
        let parts: Vec<&str> = text.trim().split(':').collect();
        let (source, target, read_only) = match parts.as_slice() {
            [source, target] => (*source, *target, false),
            [source, target, "ro"] => (*source, *target, true),
            [source, target, "rw"] => (*source, *target, false),
            _ => return Err(bad()),
        };
        if source.is_empty() || !target.starts_with('/') {
            return Err(bad());
        }
        Ok(Volume {
            source: source.to_owned(),
            target: target.to_owned(),
            read_only,
        })
    }

    /// The Engine API's bind string: `src:/dst` or `src:/dst:ro`.
    pub fn bind(&self) -> String {
        let suffix = if self.read_only { ":ro" } else { "" };
        format!("{}:{}{suffix}", self.source, self.target)
    }
}

/// The canonical form that is hashed: fields in a fixed order, maps sorted, lists normalized.
#[derive(Serialize)]
struct Canonical<'a> {
    image: &'a str,
    command: &'a [String],
    env: &'a BTreeMap<String, String>,
    ports: Vec<String>,
    volumes: Vec<String>,
    restart: &'static str,
    labels: &'a BTreeMap<String, String>,
}

impl Desired {
    fn canonical(&self) -> Canonical<'_> {
        Canonical {
            image: &self.image,
            command: &self.command,
            env: &self.env,
            ports: self.ports.iter().map(ToString::to_string).collect(),
            volumes: self.volumes.iter().map(Volume::bind).collect(),
            restart: self.restart.as_str(),
            labels: &self.labels,
        }
    }

    /// SHA-256 (hex) of the canonical serialization, prefixed with a format version so that a
    /// future change of the canonical form is a deliberate, visible recreate.
    pub fn config_hash(&self) -> String {
        sha256_hex(&format!("v1 {}", json(&self.canonical())))
    }

    /// `field=digest` pairs (8 hex digits each), comma-separated, for [`FIELDS_LABEL`].
    pub fn field_digests(&self) -> String {
        let c = self.canonical();
        let fields = [
            ("image", json(&c.image)),
            ("command", json(&c.command)),
            ("env", json(&c.env)),
            ("ports", json(&c.ports)),
            ("volumes", json(&c.volumes)),
            ("restart", json(&c.restart)),
            ("labels", json(&c.labels)),
        ];
        fields
            .iter()
            .map(|(name, value)| format!("{name}={}", &sha256_hex(value)[..8]))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The labels to set on the container: the user's plus labfleet's own.
    pub fn all_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        labels.insert(MANAGED_LABEL.to_owned(), "true".to_owned());
        labels.insert(HASH_LABEL.to_owned(), self.config_hash());
        labels.insert(FIELDS_LABEL.to_owned(), self.field_digests());
        labels
    }

    /// `NAME=value` entries, sorted by name.
    pub fn env_list(&self) -> Vec<String> {
        self.env.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

/// Names of the fields whose digests differ between two [`FIELDS_LABEL`] values; empty when
/// the stored value is missing or unreadable (the caller then says "configuration changed").
pub fn changed_fields(stored: &str, desired: &str) -> Vec<String> {
    let parse = |s: &str| -> BTreeMap<String, String> {
        s.split(',')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    };
    let (old, new) = (parse(stored), parse(desired));
    if old.is_empty() {
        return Vec::new();
    }
    new.iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect()
}

fn json<T: Serialize + ?Sized>(value: &T) -> String {
    // Serializing strings, string lists and string maps cannot fail; an empty string would only
    // make the hash differ, never match wrongly.
    serde_json::to_string(value).unwrap_or_default()
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "spec_tests.rs"]
mod tests;
