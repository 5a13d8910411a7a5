//! The coordinator's durable state: typed trees of versioned, prost-encoded records over a
//! small key-value seam ([`kv`]) with two backends: sled in the data directory (the default)
//! or an etcd cluster shared by several coordinators.
//!
//! Architecture invariant: this is the only module that imports sled or speaks to etcd. Every
//! write method returns only after the write is durable (flushed to disk, or committed by an
//! etcd quorum), so whatever a caller acknowledges to a peer survives a crash. Reads never
//! block on I/O beyond sled's page cache (etcd: never, they come from a mirror in memory).

mod backups;
mod etcd_client;
pub mod etcd_kv;
mod etcd_options;
pub mod export;
mod group_flush;
mod health;
mod jobs;
pub mod kv;
pub mod leader;
pub mod presence;
pub mod raw;
mod schedules;
pub mod sled_kv;
pub mod standby_auth;
pub mod stats;
mod tokens;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;

use lab_proto::store::v1::{CertificateRecord, FactsRecord, NodeRecord, UserRecord};
use prost::Message;

pub use etcd_kv::EtcdOptions;
pub use health::{free_bytes, watch, Location, StoreOptions, DEFAULT_MIN_FREE_MIB};
pub use jobs::JobBatch;
use kv::{Keys, Kv, Op, Order, TreeId};
pub use tokens::TokenError;

/// Version written into every record this code stores.
pub const RECORD_VERSION: u32 = 1;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed (I/O, corruption).
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    /// A stored record did not decode.
    #[error("store: corrupt record in tree '{tree}': {source}")]
    Decode {
        /// The tree.
        tree: &'static str,
        /// The decoder's complaint.
        source: prost::DecodeError,
    },
    /// A record was written by a newer version of labfleet.
    #[error("store: record in tree '{tree}' has version {found}, newer than this coordinator understands ({RECORD_VERSION}); upgrade lab-coordinator")]
    NewerVersion {
        /// The tree.
        tree: &'static str,
        /// The version found.
        found: u32,
    },
    /// A create met an existing record.
    #[error("{0} already exists")]
    Exists(String),
    /// A token could not be used.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The data directory has less free space than the reserve kept for work already accepted.
    #[error("the coordinator's data directory {dir} has {free_mib} MiB free, below the {min_mib} MiB it keeps in reserve (--min-free-mib, LAB_MIN_FREE_MIB); new jobs, enrollments and schedules are refused until space is freed there")]
    LowSpace {
        /// The store directory.
        dir: std::path::PathBuf,
        /// Free space (for unprivileged users), MiB.
        free_mib: u64,
        /// The reserve, MiB.
        min_mib: u64,
    },
    /// A write failed (disk full): writes are refused until the coordinator starts again.
    #[error("the coordinator's store {dir} failed to write (disk full?); changes are refused until the coordinator restarts, which it does by itself once {dir} has room again")]
    Failed {
        /// The store directory.
        dir: std::path::PathBuf,
    },
    /// The store cannot be opened.
    #[error("{0}")]
    Open(String),
    /// etcd did not answer or refused a request.
    #[error("the coordinator's store: {0}")]
    Etcd(String),
}

/// The store handle; cheap to clone. Methods read through [`Store::t`] and write through
/// [`Store::w`], which refuses once a write failed (see [`health`]).
#[derive(Clone)]
pub struct Store {
    shared: std::sync::Arc<health::Shared>,
}

/// A record that carries a version field.
trait Versioned: Message + Default {
    fn version(&self) -> u32;
}

macro_rules! versioned {
    ($($t:ty),*) => {$(
        impl Versioned for $t {
            fn version(&self) -> u32 {
                self.version
            }
        }
    )*};
}
versioned!(
    NodeRecord,
    FactsRecord,
    lab_proto::store::v1::FactsBrief,
    CertificateRecord,
    UserRecord,
    lab_proto::store::v1::TokenRecord,
    lab_proto::store::v1::JobRecord,
    lab_proto::store::v1::TaskRecord,
    lab_proto::store::v1::EventRecord,
    lab_proto::store::v1::JobTasksRecord
);

fn decode<T: Versioned>(tree: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    let rec = T::decode(bytes).map_err(|source| StoreError::Decode { tree, source })?;
    if rec.version() > RECORD_VERSION {
        return Err(StoreError::NewerVersion {
            tree,
            found: rec.version(),
        });
    }
    Ok(rec)
}

/// Key of a certificate record: identity URI, a newline, serial (so one identity's certificates
/// are one prefix scan).
fn cert_key(identity_uri: &str, serial_hex: &str) -> Vec<u8> {
    format!("{identity_uri}\n{serial_hex}").into_bytes()
}

/// Default size of sled's page cache: the working set of a 10,000-node fleet's current jobs fits,
/// and the coordinator VM's memory stays bounded.
pub const DEFAULT_CACHE_BYTES: u64 = 128 * 1024 * 1024;

impl Store {
    /// Opens (or creates) the store under `dir` with default options (tests, `init`).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, &StoreOptions::default())
    }

    fn get<T: Versioned>(kv: &dyn Kv, tree: TreeId, key: &[u8]) -> Result<Option<T>, StoreError> {
        kv.get(tree, key)?
            .map(|v| decode(tree.name(), &v))
            .transpose()
    }

    fn list<T: Versioned>(kv: &dyn Kv, tree: TreeId) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        kv.scan(tree, Keys::All, Order::Forward, &mut |_, v| {
            out.push(decode(tree.name(), v)?);
            Ok(true)
        })?;
        Ok(out)
    }

    /// Writes one record.
    fn put(kv: &dyn Kv, tree: TreeId, key: &[u8], value: Vec<u8>) -> Result<(), StoreError> {
        kv.apply(vec![Op::Put(tree, key.to_vec(), value)])
    }

    // --- nodes ---

    /// One node.
    pub fn node(&self, name: &str) -> Result<Option<NodeRecord>, StoreError> {
        let t = self.t()?;
        Self::get(t, TreeId::Nodes, name.as_bytes())
    }

    /// All nodes, by name.
    pub fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let t = self.t()?;
        Self::list(t, TreeId::Nodes)
    }

    /// Up to `limit` nodes from the name `start` on (inclusive), by name.
    pub fn nodes_from(&self, start: &str, limit: usize) -> Result<Vec<NodeRecord>, StoreError> {
        let t = self.t()?;
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let keys = Keys::Range(Bound::Included(start.as_bytes()), Bound::Unbounded);
        t.scan(TreeId::Nodes, keys, Order::Forward, &mut |_, v| {
            out.push(decode(TreeId::Nodes.name(), v)?);
            Ok(out.len() < limit)
        })?;
        Ok(out)
    }

    /// Creates a node; fails if one of that name exists.
    pub async fn create_node(&self, mut rec: NodeRecord) -> Result<(), StoreError> {
        let t = self.w()?;
        rec.version = RECORD_VERSION;
        let swapped = t.compare_and_swap(
            TreeId::Nodes,
            rec.name.as_bytes(),
            None,
            Some(rec.encode_to_vec()),
        )?;
        if !swapped {
            return Err(StoreError::Exists(format!("node '{}'", rec.name)));
        }
        self.flush().await
    }

    /// Writes a node record.
    pub async fn put_node(&self, mut rec: NodeRecord) -> Result<(), StoreError> {
        let t = self.w()?;
        rec.version = RECORD_VERSION;
        Self::put(t, TreeId::Nodes, rec.name.as_bytes(), rec.encode_to_vec())?;
        self.flush().await
    }

    /// Deletes a node and its facts.
    pub async fn remove_node(&self, name: &str) -> Result<bool, StoreError> {
        let t = self.w()?;
        let existed = t.remove(TreeId::Nodes, name.as_bytes())?;
        t.remove(TreeId::Facts, name.as_bytes())?;
        self.flush().await?;
        Ok(existed)
    }

    // --- facts ---

    /// The latest facts of a node.
    pub fn facts(&self, node: &str) -> Result<Option<FactsRecord>, StoreError> {
        let t = self.t()?;
        Self::get(t, TreeId::Facts, node.as_bytes())
    }

    /// The facts of a node without their document: when they were collected and the stored
    /// `platform` part (empty in records written before it existed). Cheap for listings of
    /// many nodes: the document is skipped, not copied.
    pub fn facts_brief(
        &self,
        node: &str,
    ) -> Result<Option<lab_proto::store::v1::FactsBrief>, StoreError> {
        let t = self.t()?;
        Self::get(t, TreeId::Facts, node.as_bytes())
    }

    /// Replaces the facts of a node.
    pub async fn put_facts(&self, node: &str, mut rec: FactsRecord) -> Result<(), StoreError> {
        let t = self.w()?;
        rec.version = RECORD_VERSION;
        Self::put(t, TreeId::Facts, node.as_bytes(), rec.encode_to_vec())?;
        self.flush().await
    }

    // --- certificates ---

    /// Records an issued certificate.
    pub async fn put_certificate(&self, mut rec: CertificateRecord) -> Result<(), StoreError> {
        let t = self.w()?;
        rec.version = RECORD_VERSION;
        let key = cert_key(&rec.identity_uri, &rec.serial);
        Self::put(t, TreeId::Certificates, &key, rec.encode_to_vec())?;
        self.flush().await
    }

    /// The record of one certificate.
    pub fn certificate(
        &self,
        identity_uri: &str,
        serial_hex: &str,
    ) -> Result<Option<CertificateRecord>, StoreError> {
        let t = self.t()?;
        Self::get(t, TreeId::Certificates, &cert_key(identity_uri, serial_hex))
    }

    /// Marks every certificate of `identity_uri` revoked; returns how many were newly revoked.
    pub async fn revoke_certificates(&self, identity_uri: &str) -> Result<u32, StoreError> {
        let t = self.w()?;
        let prefix = format!("{identity_uri}\n");
        let mut ops = Vec::new();
        t.scan(
            TreeId::Certificates,
            Keys::Prefix(prefix.as_bytes()),
            Order::Forward,
            &mut |key, value| {
                let mut rec: CertificateRecord = decode("certificates", value)?;
                if !rec.revoked {
                    rec.revoked = true;
                    ops.push(Op::Put(
                        TreeId::Certificates,
                        key.to_vec(),
                        rec.encode_to_vec(),
                    ));
                }
                Ok(true)
            },
        )?;
        let count = ops.len() as u32;
        t.apply(ops)?;
        self.flush().await?;
        Ok(count)
    }

    // --- users ---

    /// One operator.
    pub fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        let t = self.t()?;
        Self::get(t, TreeId::Users, name.as_bytes())
    }

    /// All operators.
    pub fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let t = self.t()?;
        Self::list(t, TreeId::Users)
    }

    /// Replaces an operator's record.
    pub async fn put_user(&self, mut rec: UserRecord) -> Result<(), StoreError> {
        let t = self.w()?;
        rec.version = RECORD_VERSION;
        Self::put(t, TreeId::Users, rec.name.as_bytes(), rec.encode_to_vec())?;
        self.flush().await
    }

    /// Removes an operator's record; whether there was one.
    pub async fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        let t = self.w()?;
        let existed = t.remove(TreeId::Users, name.as_bytes())?;
        self.flush().await?;
        Ok(existed)
    }

    /// Creates an operator; fails if one of that name exists.
    pub async fn create_user(&self, mut rec: UserRecord) -> Result<(), StoreError> {
        let t = self.w()?;
        rec.version = RECORD_VERSION;
        let swapped = t.compare_and_swap(
            TreeId::Users,
            rec.name.as_bytes(),
            None,
            Some(rec.encode_to_vec()),
        )?;
        if !swapped {
            return Err(StoreError::Exists(format!("user '{}'", rec.name)));
        }
        self.flush().await
    }
}

/// Labels as stored: a sorted map.
pub type Labels = BTreeMap<String, String>;

#[cfg(test)]
mod tests;
