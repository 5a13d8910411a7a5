//! The shared backend: the trees live in an etcd cluster under one key prefix, and this process
//! holds a mirror of them in memory that it reads from and writes through.
//!
//! Key layout under the prefix P (default `/labfleet/`):
//! - `P t/<tree>/<key>`: one record; the value is `0 ‖ bytes` (inline) or, for values above
//!   [`CHUNK_BYTES`], a manifest `1 ‖ generation (u64 BE) ‖ chunks (u32 BE) ‖ length (u64 BE)`;
//! - `P leader`, `P ca`, `P coordinators/…`, `P leader-change`, `P alive/…`: not part of the
//!   trees, skipped when loading (see [`raw`](super::raw) and [`presence`](super::presence));
//! - `P c/<tree>/<key length (u32 BE)> ‖ key ‖ generation (u64 BE) ‖ index (u32 BE)`: the
//!   chunks of a large value. A new value gets a new generation; the old generation's chunks
//!   are deleted in the transaction that writes the new manifest, so a reader at any revision
//!   sees a whole value.
//!
//! Reads come from the mirror (loaded at one revision when opening), so the store's read API
//! stays synchronous and never waits for the network. Writes change the mirror at once and
//! queue the change; [`Kv::flush`] sends the queue in order, as transactions of at most
//! [`MAX_TXN_OPS`] operations and [`MAX_TXN_BYTES`] bytes (etcd's defaults allow 128 and
//! 1.5 MiB), and returns after etcd acknowledged them (a quorum committed them). Concurrent
//! callers share one commit (group commit), as they share a flush with sled.
//!
//! Architecture invariant: exactly one coordinator writes a prefix; the mirror is the truth
//! for it, so compare-and-swap is decided against the mirror. `serve` enforces it with a
//! [`Fence`] from [`leader`](super::leader): every transaction is conditioned on the leader
//! key still being the one this coordinator created, so a deposed leader writes nothing. A commit that fails leaves the
//! mirror ahead of etcd, so the backend refuses every later write and flush (the store reports
//! it failed and the coordinator restarts, reloading from etcd).

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use lab_proto::etcd::{
    request_op, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};

use super::etcd_client::EtcdClient;
pub use super::etcd_options::{EtcdOptions, DEFAULT_PREFIX};
use super::kv::{prefix_end, FlushFuture, Keys, Kv, Op, Order, TreeId, Value, Visit};
use super::leader::Fence;
use super::StoreError;

/// Values above this many bytes are stored in chunks.
pub const CHUNK_BYTES: usize = 256 * 1024;
/// Operations per transaction (etcd's `--max-txn-ops` default).
pub const MAX_TXN_OPS: usize = 128;
/// Bytes of keys and values per transaction (below etcd's 1.5 MiB `--max-request-bytes`).
pub const MAX_TXN_BYTES: usize = 1024 * 1024;
/// Keys per page when loading.
const LOAD_PAGE: i64 = 256;

/// The leader key's name under the prefix.
pub const LEADER_KEY: &str = "leader";

/// First byte of a record stored whole.
pub(super) const INLINE: u8 = 0;
const CHUNKED: u8 = 1;

/// One operation of a transaction.
type TxnOp = RequestOp;

fn put_op(key: Vec<u8>, value: Vec<u8>) -> TxnOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key,
            value,
            ..Default::default()
        })),
    }
}

fn delete_op(key: Vec<u8>) -> TxnOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            DeleteRangeRequest {
                key,
                ..Default::default()
            },
        )),
    }
}

/// Deletes every key starting with `prefix`.
fn delete_prefix_op(prefix: Vec<u8>) -> TxnOp {
    let range_end = prefix_end(&prefix).unwrap_or_else(|| vec![0]);
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            DeleteRangeRequest {
                key: prefix,
                range_end,
                ..Default::default()
            },
        )),
    }
}

/// One tree's mirror.
type Tree = BTreeMap<Vec<u8>, Arc<[u8]>>;

/// A queued change: `None` deletes.
type Change = (TreeId, Vec<u8>, Option<Arc<[u8]>>);

/// What readers and writers share.
struct Mirror {
    /// Indexed by [`TreeId::index`].
    trees: Vec<Tree>,
    /// Changes not yet sent, oldest first.
    pending: Vec<Change>,
    /// Changes made so far (the last one's number).
    issued: u64,
}

/// What only the committer touches.
struct Committer {
    /// Generation of each chunked value's chunks.
    chunked: HashMap<(TreeId, Vec<u8>), u64>,
    /// Last generation handed out.
    generation: u64,
    /// Chunk prefixes no record refers to, deleted by the next commit (not when opening: an
    /// export may open the store while its coordinator is between a large value's chunks and
    /// its manifest).
    orphans: Vec<Vec<u8>>,
}

/// The etcd backend (see the module doc).
pub struct EtcdKv {
    prefix: Vec<u8>,
    url: String,
    mirror: RwLock<Mirror>,
    client: EtcdClient,
    committer: tokio::sync::Mutex<Committer>,
    /// Highest change number known committed.
    done: AtomicU64,
    /// Set when a commit failed: the mirror is ahead of etcd.
    broken: AtomicBool,
    /// Revision of etcd when the mirror was loaded.
    loaded_revision: i64,
    /// The leadership every commit is conditioned on (`None`: unconditioned, for init and
    /// store import/export, which run without a coordinator).
    fence: Option<Fence>,
    /// Why the backend refuses writes, once it does.
    refused: std::sync::OnceLock<String>,
}

fn etcd_error(what: &str, url: &str, e: tonic::Status) -> StoreError {
    StoreError::Etcd(format!("{what} at {url}: {}", e.message()))
}

impl EtcdKv {
    /// Connects and loads every tree under the prefix into memory; with `fence`, every commit
    /// is conditioned on it.
    pub async fn open(options: &EtcdOptions, fence: Option<Fence>) -> Result<Self, StoreError> {
        let client = EtcdClient::new(options)?;
        let url = options.url();
        let prefix = options.prefix.as_bytes().to_vec();
        let (loaded, revision) = load(&client, &prefix, &url).await?;
        if !loaded.orphans.is_empty() {
            tracing::warn!(count = loaded.orphans.len(), "value chunks no record refers to (a commit of a large value was cut short); the next commit deletes them");
        }
        let mut committer = Committer {
            chunked: HashMap::new(),
            generation: loaded.max_generation,
            orphans: loaded.orphans,
        };
        let mut trees = vec![Tree::new(); TreeId::ALL.len()];
        for (tree, key, value, generation) in loaded.records {
            if let Some(g) = generation {
                committer.chunked.insert((tree, key.clone()), g);
            }
            trees[tree.index()].insert(key, value);
        }
        Ok(EtcdKv {
            prefix,
            url,
            mirror: RwLock::new(Mirror {
                trees,
                pending: Vec::new(),
                issued: 0,
            }),
            client,
            committer: tokio::sync::Mutex::new(committer),
            done: AtomicU64::new(0),
            broken: AtomicBool::new(false),
            loaded_revision: revision,
            fence,
            refused: std::sync::OnceLock::new(),
        })
    }

    /// The etcd revision the mirror was loaded at.
    pub fn loaded_revision(&self) -> i64 {
        self.loaded_revision
    }

    fn read(&self) -> RwLockReadGuard<'_, Mirror> {
        self.mirror.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, Mirror>, StoreError> {
        self.check()?;
        Ok(self.mirror.write().unwrap_or_else(|p| p.into_inner()))
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.broken.load(Ordering::SeqCst) {
            let why = self.refused.get().map_or("an earlier commit failed", |w| w);
            return Err(StoreError::Etcd(format!(
                "{why} (etcd at {}); changes are refused until the coordinator restarts",
                self.url
            )));
        }
        Ok(())
    }

    async fn commit_pending(&self) -> Result<(), StoreError> {
        self.check()?;
        let ticket = self.read().issued;
        loop {
            if self.done.load(Ordering::SeqCst) >= ticket {
                return Ok(());
            }
            let mut committer = self.committer.lock().await;
            if self.done.load(Ordering::SeqCst) >= ticket {
                return Ok(());
            }
            self.check()?;
            let (changes, upto) = {
                let mut m = self.write()?;
                (std::mem::take(&mut m.pending), m.issued)
            };
            let txns = committer.plan(&self.prefix, changes);
            for txn in txns {
                let request = TxnRequest {
                    compare: self.fence.iter().map(Fence::compare).collect(),
                    success: txn,
                    ..Default::default()
                };
                match self.client.txn(request).await {
                    Ok(answer) if answer.succeeded => {}
                    Ok(_) => {
                        let why = "this coordinator is no longer the leader (another one holds the leader key)";
                        let _ = self.refused.set(why.into());
                        self.broken.store(true, Ordering::SeqCst);
                        return Err(StoreError::Etcd(format!(
                            "{why}; nothing was written to etcd at {}",
                            self.url
                        )));
                    }
                    Err(e) => {
                        self.broken.store(true, Ordering::SeqCst);
                        return Err(etcd_error("cannot commit to etcd", &self.url, e));
                    }
                }
            }
            self.done.fetch_max(upto, Ordering::SeqCst);
        }
    }
}

impl Mirror {
    fn tree(&self, tree: TreeId) -> &Tree {
        &self.trees[tree.index()]
    }

    fn set(&mut self, tree: TreeId, key: Vec<u8>, value: Option<Arc<[u8]>>) {
        let t = &mut self.trees[tree.index()];
        match &value {
            Some(v) => {
                t.insert(key.clone(), v.clone());
            }
            None => {
                if t.remove(&key).is_none() {
                    // Absent here, so absent in etcd: nothing to send.
                    return;
                }
            }
        }
        self.pending.push((tree, key, value));
        self.issued += 1;
    }
}

impl Committer {
    /// Turns queued changes into transactions, in order: the last change of each key wins
    /// (a transaction may not name a key twice), large values become chunks.
    fn plan(&mut self, prefix: &[u8], changes: Vec<Change>) -> Vec<Vec<TxnOp>> {
        let mut last: HashMap<(TreeId, &[u8]), usize> = HashMap::new();
        for (i, (tree, key, _)) in changes.iter().enumerate() {
            last.insert((*tree, key.as_slice()), i);
        }
        let keep: Vec<bool> = (0..changes.len())
            .map(|i| last.get(&(changes[i].0, changes[i].1.as_slice())) == Some(&i))
            .collect();
        drop(last);
        let mut plan = TxnPlan::default();
        for p in std::mem::take(&mut self.orphans) {
            let n = p.len();
            plan.add(vec![delete_prefix_op(p)], n);
        }
        for ((tree, key, value), keep) in changes.into_iter().zip(keep) {
            if !keep {
                continue;
            }
            let record = record_key(prefix, tree, &key);
            let old = self.chunked.remove(&(tree, key.clone()));
            let mut ops = Vec::new();
            let mut size = record.len();
            // The old value's chunks go in the transaction that replaces or deletes its record.
            let drop_old = old.map(|g| {
                let p = chunk_prefix(prefix, tree, &key, Some(g));
                size += p.len();
                delete_prefix_op(p)
            });
            match value {
                None => {
                    ops.push(delete_op(record));
                }
                Some(v) if v.len() <= CHUNK_BYTES => {
                    let mut stored = Vec::with_capacity(v.len() + 1);
                    stored.push(INLINE);
                    stored.extend_from_slice(&v);
                    size += stored.len();
                    ops.push(put_op(record, stored));
                }
                Some(v) => {
                    self.generation += 1;
                    let g = self.generation;
                    let chunks: Vec<&[u8]> = v.chunks(CHUNK_BYTES).collect();
                    let base = chunk_prefix(prefix, tree, &key, Some(g));
                    for (i, chunk) in chunks.iter().enumerate() {
                        let mut k = base.clone();
                        k.extend_from_slice(&(i as u32).to_be_bytes());
                        let n = k.len() + chunk.len();
                        // Chunks go before their manifest, in earlier transactions if need be.
                        plan.add(vec![put_op(k, chunk.to_vec())], n);
                    }
                    let mut manifest = vec![CHUNKED];
                    manifest.extend_from_slice(&g.to_be_bytes());
                    manifest.extend_from_slice(&(chunks.len() as u32).to_be_bytes());
                    manifest.extend_from_slice(&(v.len() as u64).to_be_bytes());
                    size += manifest.len();
                    ops.push(put_op(record, manifest));
                    self.chunked.insert((tree, key.clone()), g);
                }
            }
            ops.extend(drop_old);
            plan.add(ops, size);
        }
        plan.finish()
    }
}

/// Transactions being filled.
#[derive(Default)]
struct TxnPlan {
    done: Vec<Vec<TxnOp>>,
    current: Vec<TxnOp>,
    bytes: usize,
}

impl TxnPlan {
    /// Adds operations that belong in one transaction.
    fn add(&mut self, ops: Vec<TxnOp>, bytes: usize) {
        if !self.current.is_empty()
            && (self.current.len() + ops.len() > MAX_TXN_OPS || self.bytes + bytes > MAX_TXN_BYTES)
        {
            self.done.push(std::mem::take(&mut self.current));
            self.bytes = 0;
        }
        self.current.extend(ops);
        self.bytes += bytes;
    }

    fn finish(mut self) -> Vec<Vec<TxnOp>> {
        if !self.current.is_empty() {
            self.done.push(self.current);
        }
        self.done
    }
}

/// The etcd key of a record.
pub(super) fn record_key(prefix: &[u8], tree: TreeId, key: &[u8]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(b"t/");
    k.extend_from_slice(tree.name().as_bytes());
    k.push(b'/');
    k.extend_from_slice(key);
    k
}

/// Prefix of a key's chunks (of one generation when given).
fn chunk_prefix(prefix: &[u8], tree: TreeId, key: &[u8], generation: Option<u64>) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(b"c/");
    k.extend_from_slice(tree.name().as_bytes());
    k.push(b'/');
    k.extend_from_slice(&(key.len() as u32).to_be_bytes());
    k.extend_from_slice(key);
    if let Some(g) = generation {
        k.extend_from_slice(&g.to_be_bytes());
    }
    k
}

/// A record as loaded: tree, key, value, and its chunk generation when chunked.
type LoadedRecord = (TreeId, Vec<u8>, Arc<[u8]>, Option<u64>);

/// The chunks of one value generation (tree, key, generation), by index.
type ChunkSets = HashMap<(TreeId, Vec<u8>, u64), BTreeMap<u32, Vec<u8>>>;

/// What loading found.
#[derive(Default)]
struct Loaded {
    /// (tree, key, value, chunk generation when chunked)
    records: Vec<LoadedRecord>,
    /// Chunk prefixes (key and generation) no record refers to.
    orphans: Vec<Vec<u8>>,
    /// Highest chunk generation seen, orphans included (new ones must be higher).
    max_generation: u64,
}

/// A manifest: generation, chunk count, length.
type Manifest = (u64, u32, u64);

/// Reads every key under `prefix` at one revision.
async fn load(client: &EtcdClient, prefix: &[u8], url: &str) -> Result<(Loaded, i64), StoreError> {
    let corrupt = |what: String| StoreError::Etcd(format!("corrupt store at {url}: {what}"));
    let end = prefix_end(prefix).unwrap_or_default();
    let mut from = prefix.to_vec();
    let mut revision = 0;
    let mut manifests: Vec<(TreeId, Vec<u8>, Manifest)> = Vec::new();
    let mut records = Vec::new();
    // (tree, key, generation) → chunks by index
    let mut chunks = ChunkSets::new();
    let mut max_generation = 0;
    loop {
        let request = RangeRequest {
            key: from.clone(),
            range_end: end.clone(),
            limit: LOAD_PAGE,
            revision,
            ..Default::default()
        };
        let resp = client
            .range(request)
            .await
            .map_err(|e| etcd_error("cannot read the store", url, e))?;
        if revision == 0 {
            revision = resp.header.as_ref().map_or(0, |h| h.revision);
        }
        let more = resp.more;
        let kvs = &resp.kvs;
        for item in kvs {
            let rest = &item.key[prefix.len()..];
            if super::raw::is_raw(rest) {
                continue;
            }
            let (kind, rest) = rest.split_at(rest.len().min(2));
            let slash = rest.iter().position(|&b| b == b'/');
            let Some(slash) = slash else {
                return Err(corrupt(format!(
                    "key {:?} is not of this coordinator's layout",
                    String::from_utf8_lossy(&item.key)
                )));
            };
            let name = String::from_utf8_lossy(&rest[..slash]);
            let Some(tree) = TreeId::from_name(&name) else {
                return Err(StoreError::Etcd(format!(
                    "the store at {url} has a tree '{name}' this coordinator does not know; it was written by a newer version of labfleet, upgrade lab-coordinator"
                )));
            };
            let key = &rest[slash + 1..];
            match kind {
                b"t/" => match item.value.split_first() {
                    Some((&INLINE, v)) => records.push((tree, key.to_vec(), Arc::from(v), None)),
                    Some((&CHUNKED, m)) if m.len() == 20 => {
                        let g = u64::from_be_bytes(m[0..8].try_into().unwrap_or_default());
                        let n = u32::from_be_bytes(m[8..12].try_into().unwrap_or_default());
                        let len = u64::from_be_bytes(m[12..20].try_into().unwrap_or_default());
                        manifests.push((tree, key.to_vec(), (g, n, len)));
                    }
                    _ => {
                        return Err(corrupt(format!(
                            "record {:?} has an unknown encoding",
                            String::from_utf8_lossy(&item.key)
                        )))
                    }
                },
                b"c/" if key.len() >= 4 => {
                    let klen =
                        u32::from_be_bytes(key[0..4].try_into().unwrap_or_default()) as usize;
                    if key.len() != 4 + klen + 12 {
                        return Err(corrupt(format!(
                            "chunk key {:?} is malformed",
                            String::from_utf8_lossy(&item.key)
                        )));
                    }
                    let rkey = key[4..4 + klen].to_vec();
                    let g =
                        u64::from_be_bytes(key[4 + klen..12 + klen].try_into().unwrap_or_default());
                    let i = u32::from_be_bytes(key[12 + klen..].try_into().unwrap_or_default());
                    max_generation = max_generation.max(g);
                    chunks
                        .entry((tree, rkey, g))
                        .or_default()
                        .insert(i, item.value.clone());
                }
                _ => {
                    return Err(corrupt(format!(
                        "key {:?} is not of this coordinator's layout",
                        String::from_utf8_lossy(&item.key)
                    )))
                }
            }
        }
        match kvs.last() {
            Some(last) if more => {
                from = last.key.clone();
                from.push(0);
            }
            _ => break,
        }
    }
    for (tree, key, (g, n, len)) in manifests {
        let parts = chunks.remove(&(tree, key.clone(), g)).unwrap_or_default();
        let complete = parts.len() == n as usize && parts.keys().copied().eq(0..n);
        let value: Vec<u8> = parts.into_values().flatten().collect();
        if !complete || value.len() as u64 != len {
            return Err(corrupt(format!(
                "the chunks of {:?} in tree '{}' are incomplete",
                String::from_utf8_lossy(&key),
                tree.name()
            )));
        }
        records.push((tree, key, Arc::from(value), Some(g)));
    }
    let max_generation = max_generation.max(records.iter().filter_map(|r| r.3).max().unwrap_or(0));
    let orphans = chunks
        .into_keys()
        .map(|(tree, key, g)| chunk_prefix(prefix, tree, &key, Some(g)))
        .collect();
    Ok((
        Loaded {
            records,
            orphans,
            max_generation,
        },
        revision,
    ))
}

/// Whether `(lo, hi)` is a range `BTreeMap::range` accepts (it panics on an inverted one).
fn valid(lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> bool {
    match (lo, hi) {
        (Bound::Included(a), Bound::Included(b)) => a <= b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b)) => a < b,
        _ => true,
    }
}

impl Kv for EtcdKv {
    fn get(&self, tree: TreeId, key: &[u8]) -> Result<Option<Value>, StoreError> {
        Ok(self.read().tree(tree).get(key).cloned().map(Value::Shared))
    }

    fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let mut m = self.write()?;
        for op in ops {
            match op {
                Op::Put(tree, key, value) => m.set(tree, key, Some(Arc::from(value))),
                Op::Delete(tree, key) => m.set(tree, key, None),
            }
        }
        Ok(())
    }

    fn remove(&self, tree: TreeId, key: &[u8]) -> Result<bool, StoreError> {
        let mut m = self.write()?;
        let existed = m.tree(tree).contains_key(key);
        m.set(tree, key.to_vec(), None);
        Ok(existed)
    }

    fn compare_and_swap(
        &self,
        tree: TreeId,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<Vec<u8>>,
    ) -> Result<bool, StoreError> {
        let mut m = self.write()?;
        if m.tree(tree).get(key).map(|v| &v[..]) != expected {
            return Ok(false);
        }
        m.set(tree, key.to_vec(), new.map(Arc::from));
        Ok(true)
    }

    fn scan(
        &self,
        tree: TreeId,
        keys: Keys<'_>,
        order: Order,
        visit: Visit<'_>,
    ) -> Result<(), StoreError> {
        let m = self.read();
        let (lo, hi) = keys.bounds();
        if !valid(&lo, &hi) {
            return Ok(());
        }
        let range = m.tree(tree).range((lo, hi));
        match order {
            Order::Forward => {
                for (k, v) in range {
                    if !visit(k, v)? {
                        break;
                    }
                }
            }
            Order::Backward => {
                for (k, v) in range.rev() {
                    if !visit(k, v)? {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    fn is_empty(&self, tree: TreeId) -> Result<bool, StoreError> {
        Ok(self.read().tree(tree).is_empty())
    }

    fn flush(&self) -> FlushFuture<'_> {
        Box::pin(self.commit_pending())
    }

    fn recovered(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + '_>> {
        // A linearizable read needs a leader and a quorum, as a commit does.
        Box::pin(async move {
            let probe = RangeRequest {
                key: self.prefix.clone(),
                limit: 1,
                keys_only: true,
                ..Default::default()
            };
            self.client.range(probe).await.is_ok()
        })
    }

    fn describe(&self) -> String {
        format!(
            "{} (prefix {})",
            self.url,
            String::from_utf8_lossy(&self.prefix)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_keeps_the_last_change_of_a_key_and_respects_the_limits() {
        let mut c = Committer {
            chunked: HashMap::new(),
            generation: 0,
            orphans: Vec::new(),
        };
        let v = |n: usize| Some(Arc::<[u8]>::from(vec![7u8; n]));
        let mut changes: Vec<Change> = (0..300u32)
            .map(|i| (TreeId::Tasks, i.to_be_bytes().to_vec(), v(10)))
            .collect();
        changes.push((TreeId::Tasks, 0u32.to_be_bytes().to_vec(), None));
        let txns = c.plan(b"/p/", changes);
        assert_eq!(txns.iter().map(Vec::len).sum::<usize>(), 300);
        assert!(txns.iter().all(|t| t.len() <= MAX_TXN_OPS));
        // A value of 3.5 chunks: four chunk puts before the manifest, never above the byte cap.
        let big = (TreeId::Events, b"k".to_vec(), v(CHUNK_BYTES * 7 / 2));
        let txns = c.plan(b"/p/", vec![big]);
        assert_eq!(txns.iter().map(Vec::len).sum::<usize>(), 5);
        assert_eq!(c.chunked.get(&(TreeId::Events, b"k".to_vec())), Some(&1));
        // Replacing it with a small value deletes the chunks with the manifest.
        let txns = c.plan(b"/p/", vec![(TreeId::Events, b"k".to_vec(), v(1))]);
        assert_eq!(txns.len(), 1);
        assert_eq!(txns[0].len(), 2);
        assert!(c.chunked.is_empty());
    }
}
