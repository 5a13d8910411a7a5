//! The key-value seam under the typed store: named trees of byte keys and values, and the few
//! operations the store's modules use. Two backends implement it: [`sled_kv`](super::sled_kv)
//! (embedded, the default) and [`etcd_kv`](super::etcd_kv) (a shared etcd cluster).
//!
//! Contract, the same on both:
//! - a write ([`Kv::apply`], [`Kv::remove`], [`Kv::compare_and_swap`]) is visible to every
//!   reader as soon as it returns, and durable only once a later [`Kv::flush`] returned: callers
//!   acknowledge nothing to a peer before that;
//! - writes become durable in the order they were made (a crash keeps a prefix of them; a
//!   flush too large for one etcd transaction is committed in several, in order);
//! - [`Kv::compare_and_swap`] is atomic against every other write through the same handle;
//! - scans visit keys in byte order, forwards or backwards, and stop when the visitor says so.
//!
//! Architecture invariant: nothing here knows a record type; encoding and versions live in the
//! typed modules above it.

use std::future::Future;
use std::ops::{Bound, Deref};
use std::pin::Pin;
use std::sync::Arc;

use super::StoreError;

/// The trees of the store. The names are the sled tree names and part of etcd's key layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TreeId {
    /// node name → NodeRecord
    Nodes,
    /// node name → FactsRecord
    Facts,
    /// token id → TokenRecord
    Tokens,
    /// identity URI ‖ "\n" ‖ serial → CertificateRecord
    Certificates,
    /// user name → UserRecord
    Users,
    /// job id → JobRecord
    Jobs,
    /// task id → TaskRecord
    Tasks,
    /// job id ‖ 0 ‖ seq (u64 BE) → EventRecord
    Events,
    /// node ‖ "\n" ‖ task id → empty: the node's unfinished tasks
    NodeTasks,
    /// task id ‖ 0 ‖ seq (u64 BE) → output length (u64 BE)
    TaskOutput,
    /// job id → JobTasksRecord
    JobTasks,
    /// schedule name → ScheduleRecord
    Schedules,
    /// node ‖ "\n" ‖ backup name → BackupRecord
    Backups,
    /// node ‖ "\n" ‖ job id → task id: every job with a task on the node (written at submit;
    /// jobs from before it existed are not in it)
    NodeJobs,
}

impl TreeId {
    /// Every tree, in the order export writes them.
    pub const ALL: [TreeId; 14] = [
        TreeId::Nodes,
        TreeId::Facts,
        TreeId::Tokens,
        TreeId::Certificates,
        TreeId::Users,
        TreeId::Jobs,
        TreeId::Tasks,
        TreeId::Events,
        TreeId::NodeTasks,
        TreeId::TaskOutput,
        TreeId::JobTasks,
        TreeId::Schedules,
        TreeId::Backups,
        TreeId::NodeJobs,
    ];

    /// The tree's name in sled and in etcd keys.
    pub const fn name(self) -> &'static str {
        match self {
            TreeId::Nodes => "nodes",
            TreeId::Facts => "facts",
            TreeId::Tokens => "tokens",
            TreeId::Certificates => "certificates",
            TreeId::Users => "users",
            TreeId::Jobs => "jobs",
            TreeId::Tasks => "tasks",
            TreeId::Events => "events",
            TreeId::NodeTasks => "node_tasks",
            TreeId::TaskOutput => "task_output",
            TreeId::JobTasks => "job_tasks",
            TreeId::Schedules => "schedules",
            TreeId::Backups => "backups",
            TreeId::NodeJobs => "node_jobs",
        }
    }

    /// The tree named `name`.
    pub fn from_name(name: &str) -> Option<TreeId> {
        TreeId::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Position in [`TreeId::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A stored value: sled's buffer or a shared copy held by the etcd mirror.
#[derive(Debug, Clone)]
pub enum Value {
    /// From sled.
    Sled(sled::IVec),
    /// From memory.
    Shared(Arc<[u8]>),
}

impl Deref for Value {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Value::Sled(v) => v,
            Value::Shared(v) => v,
        }
    }
}

/// One write of a batch.
#[derive(Debug, Clone)]
pub enum Op {
    /// Set `key` of `tree` to the value.
    Put(TreeId, Vec<u8>, Vec<u8>),
    /// Delete `key` of `tree` (nothing when absent).
    Delete(TreeId, Vec<u8>),
}

/// Which keys a scan visits.
#[derive(Debug, Clone)]
pub enum Keys<'a> {
    /// Every key.
    All,
    /// Keys starting with the bytes.
    Prefix(&'a [u8]),
    /// Keys in the range.
    Range(Bound<&'a [u8]>, Bound<&'a [u8]>),
}

impl Keys<'_> {
    /// The range as owned bounds (prefix: from the prefix to its successor).
    pub(crate) fn bounds(&self) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
        let own = |b: &Bound<&[u8]>| match b {
            Bound::Included(k) => Bound::Included(k.to_vec()),
            Bound::Excluded(k) => Bound::Excluded(k.to_vec()),
            Bound::Unbounded => Bound::Unbounded,
        };
        match self {
            Keys::All => (Bound::Unbounded, Bound::Unbounded),
            Keys::Prefix(p) => (
                Bound::Included(p.to_vec()),
                prefix_end(p).map_or(Bound::Unbounded, Bound::Excluded),
            ),
            Keys::Range(lo, hi) => (own(lo), own(hi)),
        }
    }
}

/// The first key after every key starting with `prefix` (`None`: no such key, all 0xff).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Scan direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Ascending keys.
    Forward,
    /// Descending keys.
    Backward,
}

/// What a scan's visitor returns: whether to go on.
pub type Visit<'a> = &'a mut dyn FnMut(&[u8], &[u8]) -> Result<bool, StoreError>;

/// A boxed future of a flush.
pub type FlushFuture<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// A backend of named trees (see the module doc for the contract).
pub trait Kv: Send + Sync {
    /// The value of `key` in `tree`.
    fn get(&self, tree: TreeId, key: &[u8]) -> Result<Option<Value>, StoreError>;
    /// Applies `ops` in order.
    fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError>;
    /// Deletes `key`; whether it existed.
    fn remove(&self, tree: TreeId, key: &[u8]) -> Result<bool, StoreError>;
    /// Sets `key` to `new` (`None`: deletes it) only if its value is `expected` (`None`:
    /// absent); whether it did.
    fn compare_and_swap(
        &self,
        tree: TreeId,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<Vec<u8>>,
    ) -> Result<bool, StoreError>;
    /// Calls `visit` with each key and value in `keys`, in `order`, until it returns false.
    /// The visitor must not call back into the store.
    fn scan(
        &self,
        tree: TreeId,
        keys: Keys<'_>,
        order: Order,
        visit: Visit<'_>,
    ) -> Result<(), StoreError>;
    /// Whether `tree` has no keys.
    fn is_empty(&self, tree: TreeId) -> Result<bool, StoreError>;
    /// Returns once every write made before the call is durable.
    fn flush(&self) -> FlushFuture<'_>;
    /// Whether the backend can take writes again after a failure (disk has room, etcd answers).
    fn recovered(&self) -> Pin<Box<dyn Future<Output = bool> + Send + '_>>;
    /// Where the data lives, for messages.
    fn describe(&self) -> String;
}

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Every key and value of `tree`, in key order (export, checks).
pub fn entries(kv: &dyn Kv, tree: TreeId) -> Result<Vec<Entry>, StoreError> {
    let mut out = Vec::new();
    kv.scan(tree, Keys::All, Order::Forward, &mut |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        Ok(true)
    })?;
    Ok(out)
}

/// The keys of `tree` in `keys`, in key order.
pub fn keys_in(kv: &dyn Kv, tree: TreeId, keys: Keys<'_>) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut out = Vec::new();
    kv.scan(tree, keys, Order::Forward, &mut |k, _| {
        out.push(k.to_vec());
        Ok(true)
    })?;
    Ok(out)
}
