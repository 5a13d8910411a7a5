//! The embedded backend: one sled database in the data directory, one sled tree per
//! [`TreeId`], flushed by group commit ([`group_flush`](super::group_flush)).
//!
//! Opening first removes `snap.*.generating` files. sled 0.34 writes a snapshot only while
//! opening (`advance_snapshot` → `write_snapshot`): to `snap.<lsn>.generating`, fsynced, then
//! renamed to `snap.<lsn>`, and older snapshots are deleted only after that rename. A
//! `.generating` file is therefore always an unfinished copy of what the previous snapshot and
//! the log still hold; but sled's `get_snapshot_files` lists it as a candidate, and an empty one
//! (an open that met a full disk) made every later open fail with "Read corrupted data".

use std::path::{Path, PathBuf};

use super::group_flush::GroupFlush;
use super::kv::{FlushFuture, Keys, Kv, Op, Order, TreeId, Value, Visit};
use super::StoreError;

/// The open sled database and its trees.
pub struct SledKv {
    db: sled::Db,
    /// Indexed by [`TreeId::index`].
    trees: Vec<sled::Tree>,
    flusher: GroupFlush,
    dir: PathBuf,
    /// Free space below which the directory counts as full, bytes.
    min_free_bytes: u64,
}

impl SledKv {
    /// Opens the database under `dir` (created when `create`), turning sled's failures (and
    /// panics on damaged files) into an error that names the directory and what to do.
    pub fn open(
        dir: &Path,
        cache_bytes: u64,
        create: bool,
        min_free_bytes: u64,
    ) -> Result<Self, StoreError> {
        prepare(dir, create)?;
        let opened = open_waiting_for_lock(dir, cache_bytes);
        let damaged = |what: String| {
            StoreError::Open(format!(
                "the store {} is damaged ({what}); restore it from a backup",
                dir.display()
            ))
        };
        match opened {
            Ok(Ok((db, trees))) => Ok(SledKv {
                db,
                trees,
                flusher: GroupFlush::default(),
                dir: dir.to_path_buf(),
                min_free_bytes,
            }),
            Ok(Err(sled::Error::Corruption { .. })) => {
                Err(damaged("sled: read corrupted data".into()))
            }
            Ok(Err(sled::Error::Io(e))) if e.kind() == std::io::ErrorKind::StorageFull => {
                Err(StoreError::Open(format!(
                    "cannot open the store {}: its disk is full; free space there and start again",
                    dir.display()
                )))
            }
            Ok(Err(e)) => Err(StoreError::Open(format!(
                "cannot open the store {}: {e}; is another lab-coordinator using this data directory?",
                dir.display()
            ))),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "sled panicked while reading it".into());
                Err(damaged(what))
            }
        }
    }

    fn tree(&self, tree: TreeId) -> &sled::Tree {
        &self.trees[tree.index()]
    }

    /// The directory of the database.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// How long opening waits for the database's file lock: sled's background writers hold it for
/// a moment after the previous handle in this process was dropped.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Opens the database and its trees, catching sled's panics on damaged files. A lock that is
/// held (`WouldBlock`) is tried again until [`LOCK_WAIT`] has passed; another process that holds
/// it still gets the error then.
fn open_waiting_for_lock(
    dir: &Path,
    cache_bytes: u64,
) -> std::thread::Result<Result<(sled::Db, Vec<sled::Tree>), sled::Error>> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        let opened = std::panic::catch_unwind(|| -> Result<_, sled::Error> {
            let db = sled::Config::new()
                .path(dir)
                .cache_capacity(cache_bytes)
                .open()?;
            let trees = TreeId::ALL
                .iter()
                .map(|t| db.open_tree(t.name()))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((db, trees))
        });
        let locked = matches!(&opened, Ok(Err(sled::Error::Io(e))) if e.kind() == std::io::ErrorKind::WouldBlock);
        if !locked || std::time::Instant::now() >= deadline {
            return opened;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Readies `dir` for sled: refuses a missing store unless `create`, removes unfinished snapshot
/// files (see the module doc).
fn prepare(dir: &Path, create: bool) -> Result<(), StoreError> {
    if !create && !dir.join("db").is_file() {
        return Err(StoreError::Open(format!(
            "the store {} is missing (no {}) although the data directory is initialized; \
             restore it from a backup, or move the data directory away and run \
             'lab-coordinator init' to start over (starting with an empty store would lock \
             every operator out)",
            dir.display(),
            dir.join("db").display()
        )));
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(StoreError::Open(format!(
                "cannot read the store directory {}: {e}",
                dir.display()
            )))
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            let path = entry.path();
            tracing::warn!(file = %path.display(), "removing an unfinished store snapshot left by an interrupted start");
            std::fs::remove_file(&path).map_err(|e| {
                StoreError::Open(format!(
                    "cannot remove the unfinished snapshot {}: {e}; remove it by hand",
                    path.display()
                ))
            })?;
        }
    }
    Ok(())
}

impl Kv for SledKv {
    fn get(&self, tree: TreeId, key: &[u8]) -> Result<Option<Value>, StoreError> {
        Ok(self.tree(tree).get(key)?.map(Value::Sled))
    }

    fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        for op in ops {
            match op {
                Op::Put(tree, key, value) => {
                    self.tree(tree).insert(key, value)?;
                }
                Op::Delete(tree, key) => {
                    self.tree(tree).remove(key)?;
                }
            }
        }
        Ok(())
    }

    fn remove(&self, tree: TreeId, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.tree(tree).remove(key)?.is_some())
    }

    fn compare_and_swap(
        &self,
        tree: TreeId,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<Vec<u8>>,
    ) -> Result<bool, StoreError> {
        Ok(self
            .tree(tree)
            .compare_and_swap(key, expected, new)?
            .is_ok())
    }

    fn scan(
        &self,
        tree: TreeId,
        keys: Keys<'_>,
        order: Order,
        visit: Visit<'_>,
    ) -> Result<(), StoreError> {
        let t = self.tree(tree);
        let iter = match keys {
            Keys::All => t.iter(),
            Keys::Prefix(p) => t.scan_prefix(p),
            Keys::Range(lo, hi) => t.range::<&[u8], _>((lo, hi)),
        };
        let mut step = |item: sled::Result<(sled::IVec, sled::IVec)>| -> Result<bool, StoreError> {
            let (k, v) = item?;
            visit(&k, &v)
        };
        match order {
            Order::Forward => {
                for item in iter {
                    if !step(item)? {
                        break;
                    }
                }
            }
            Order::Backward => {
                for item in iter.rev() {
                    if !step(item)? {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    fn is_empty(&self, tree: TreeId) -> Result<bool, StoreError> {
        Ok(self.tree(tree).is_empty())
    }

    fn flush(&self) -> FlushFuture<'_> {
        Box::pin(self.flusher.flush(&self.db))
    }

    fn recovered(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + '_>> {
        let room = super::free_bytes(&self.dir).map_or(true, |f| f >= self.min_free_bytes);
        Box::pin(std::future::ready(room))
    }

    fn describe(&self) -> String {
        self.dir.display().to_string()
    }
}
