//! Keeping the store safe when its disk fills: the free-space reserve that refuses new work
//! before sled meets ENOSPC, bounded flushes, opening the directory safely, and what happens
//! when a write fails anyway.
//!
//! What sled 0.34 does on ENOSPC (measured on a tmpfs, see ARCHITECTURE.md): the write that met
//! it fails, but it leaves a reserved log position that is never written, so every later
//! `flush` of that database blocks forever, even after space is freed; the blocked threads keep
//! the database file and its lock open, so it cannot be opened again in the same process, and
//! dropping it blocks too. Hence:
//! - [`Store::ensure_room`] refuses new work (jobs, enrollments, schedules) while the directory
//!   has less free space than the reserve, so the coordinator's own growth never gets there;
//! - every flush has a deadline; one that fails or misses it marks the database failed, after
//!   which writes are refused at once ([`StoreError::Failed`]) and reads go on;
//! - [`watch`] finds a failure within seconds (a failed insert leaves no mark, its flush hangs)
//!   and, once the directory has room again, stops the coordinator with an error, so its
//!   service manager starts it again; nothing acknowledged is lost, as every acknowledgement
//!   waited for a flush;
//! - closing gives sled a few seconds and then leaves it, so SIGTERM ends the process quickly.
//!
//! Opening first removes `snap.*.generating` files. sled 0.34 writes a snapshot only while
//! opening (`advance_snapshot` → `write_snapshot`): to `snap.<lsn>.generating`, fsynced, then
//! renamed to `snap.<lsn>`, and older snapshots are deleted only after that rename. A
//! `.generating` file is therefore always an unfinished copy of what the previous snapshot and
//! the log still hold; but sled's `get_snapshot_files` lists it as a candidate, and an empty one
//! (an open that met a full disk) made every later open fail with "Read corrupted data".

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Store, StoreError, Trees, DEFAULT_CACHE_BYTES};

/// Default free-space reserve of the data directory, MiB: room for the task updates, output and
/// facts of the work already accepted after new work is refused, on a small homelab disk.
pub const DEFAULT_MIN_FREE_MIB: u64 = 256;

const MIB: u64 = 1024 * 1024;

/// How often [`watch`] checks the database and the free space.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// How long a flush may take before the database counts as failed (a healthy one takes
/// milliseconds, a busy slow disk a second or two).
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// How long closing waits for sled before leaving it to the process exit.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How a store is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Size of sled's page cache in bytes.
    pub cache_bytes: u64,
    /// Free space of the directory below which [`Store::ensure_room`] refuses new work, bytes.
    pub min_free_bytes: u64,
    /// Whether a store that does not exist yet may be created (`init`, tests). `serve` opens an
    /// existing one only: an empty store would have no admin and lock every operator out.
    pub create: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: DEFAULT_CACHE_BYTES,
            min_free_bytes: DEFAULT_MIN_FREE_MIB * MIB,
            create: true,
        }
    }
}

/// What every clone of a [`Store`] shares.
pub(super) struct Shared {
    dir: PathBuf,
    min_free_bytes: u64,
    /// `None` only while closing.
    trees: Option<Trees>,
    /// Set by [`watch`] when it stopped the coordinator so that it starts again.
    restart: AtomicBool,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let Some(trees) = self.trees.take() else {
            return;
        };
        // sled flushes when dropped, which blocks forever after a failed write.
        let (tx, rx) = std::sync::mpsc::channel();
        let closing = std::thread::spawn(move || {
            drop(trees);
            let _ = tx.send(());
        });
        if rx.recv_timeout(CLOSE_TIMEOUT).is_ok() {
            let _ = closing.join();
        } else {
            tracing::warn!(dir = %self.dir.display(), "the store did not close within {CLOSE_TIMEOUT:?} (disk full?); leaving it, everything acknowledged is on disk");
        }
    }
}

/// Free space of the file system holding `dir` for unprivileged users, bytes.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(st.blocks_available().saturating_mul(st.fragment_size()))
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

/// Opens the database under `dir`, turning sled's failures (and panics on damaged files) into
/// an error that names the directory and what to do.
fn open_trees(dir: &Path, options: &StoreOptions) -> Result<Trees, StoreError> {
    prepare(dir, options.create)?;
    let opened = std::panic::catch_unwind(|| Trees::open(dir, options.cache_bytes));
    let damaged = |what: String| {
        StoreError::Open(format!(
            "the store {} is damaged ({what}); restore it from a backup",
            dir.display()
        ))
    };
    match opened {
        // `init` stores the admin; sled recovers a truncated log as if a crash cut it short, so
        // a store emptied that way opens without complaint.
        Ok(Ok(trees)) if !options.create && trees.users.is_empty() => Err(damaged(
            "it has no operators, so it was truncated or replaced".into(),
        )),
        Ok(Ok(trees)) => Ok(trees),
        Ok(Err(StoreError::Sled(sled::Error::Corruption { .. }))) => {
            Err(damaged("sled: read corrupted data".into()))
        }
        Ok(Err(StoreError::Sled(sled::Error::Io(e))))
            if e.kind() == std::io::ErrorKind::StorageFull =>
        {
            Err(StoreError::Open(format!(
                "cannot open the store {}: its disk is full; free space there and start again",
                dir.display()
            )))
        }
        Ok(Err(StoreError::Sled(e))) => Err(StoreError::Open(format!(
            "cannot open the store {}: {e}; is another lab-coordinator using this data directory?",
            dir.display()
        ))),
        Ok(Err(e)) => Err(e),
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

impl Store {
    /// Opens the store under `dir`: removes unfinished snapshot files, then opens (or, with
    /// `options.create`, creates) the database.
    pub fn open_with(dir: &Path, options: &StoreOptions) -> Result<Self, StoreError> {
        let trees = open_trees(dir, options)?;
        Ok(Store {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                min_free_bytes: options.min_free_bytes,
                trees: Some(trees),
                restart: AtomicBool::new(false),
            }),
        })
    }

    fn failed_error(&self) -> StoreError {
        StoreError::Failed {
            dir: self.shared.dir.clone(),
        }
    }

    /// The database, for reading.
    pub(super) fn t(&self) -> Result<&Trees, StoreError> {
        self.shared
            .trees
            .as_ref()
            .ok_or_else(|| self.failed_error())
    }

    /// The database, for writing: refused once a write failed, so that nothing that cannot be
    /// made durable is seen by readers.
    pub(super) fn w(&self) -> Result<&Trees, StoreError> {
        let t = self.t()?;
        if t.failed.load(Ordering::SeqCst) {
            return Err(self.failed_error());
        }
        Ok(t)
    }

    /// Makes every write made before this call durable. Concurrent callers share flushes
    /// (group commit): a caller waits for the first flush that started after it asked. A flush
    /// that fails or takes longer than [`FLUSH_TIMEOUT`] marks the database failed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let t = self.w()?;
        match tokio::time::timeout(FLUSH_TIMEOUT, t.flusher.flush(&t.db)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.mark_failed(&e.to_string());
                Err(e)
            }
            Err(_) => {
                self.mark_failed(&format!("a flush took longer than {FLUSH_TIMEOUT:?}"));
                Err(self.failed_error())
            }
        }
    }

    fn mark_failed(&self, why: &str) {
        if let Ok(t) = self.t() {
            if !t.failed.swap(true, Ordering::SeqCst) {
                tracing::error!(dir = %self.shared.dir.display(), why, "store writes fail; changes are refused, and the coordinator restarts by itself once the directory has room");
            }
        }
    }

    /// Whether a write failed (the coordinator must start again to write).
    pub fn failed(&self) -> bool {
        self.t().is_ok_and(|t| t.failed.load(Ordering::SeqCst))
    }

    /// Whether [`watch`] stopped the coordinator so that it starts again.
    pub fn needs_restart(&self) -> bool {
        self.shared.restart.load(Ordering::SeqCst)
    }

    /// Refuses new work (jobs, enrollments, schedules) while the directory has less free space
    /// than the reserve, or after a write failed.
    pub fn ensure_room(&self) -> Result<(), StoreError> {
        self.w()?;
        let min = self.shared.min_free_bytes;
        if min == 0 {
            return Ok(());
        }
        match free_bytes(&self.shared.dir) {
            Ok(free) if free < min => Err(StoreError::LowSpace {
                dir: self.shared.dir.clone(),
                free_mib: free / MIB,
                min_mib: min.div_ceil(MIB),
            }),
            Ok(_) => Ok(()),
            Err(e) => {
                // Not knowing is no reason to refuse; the writes themselves will tell.
                tracing::warn!(dir = %self.shared.dir.display(), error = %e, "cannot read the store's free space");
                Ok(())
            }
        }
    }

    /// Whether the directory has at least the reserve free (or it cannot be told).
    fn has_room(&self) -> bool {
        free_bytes(&self.shared.dir).map_or(true, |f| f >= self.shared.min_free_bytes)
    }
}

/// Checks the store every second until `shutdown`: a flush finds a write that failed (which
/// leaves no other mark), and once a failed store's directory has room again, this cancels
/// `shutdown` and sets [`Store::needs_restart`], so the coordinator exits with an error and its
/// service manager starts it again (sled cannot reopen it in the same process).
pub async fn watch(store: Store, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(CHECK_EVERY) => {}
        }
        if !store.failed() {
            let _ = store.flush().await;
            continue;
        }
        if store.has_room() {
            tracing::error!(dir = %store.shared.dir.display(), "the store's directory has room again; stopping so that the coordinator starts again with a working store");
            store.shared.restart.store(true, Ordering::SeqCst);
            shutdown.cancel();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use lab_proto::store::v1::UserRecord;

    use super::*;

    fn options(create: bool, min_free_bytes: u64) -> StoreOptions {
        StoreOptions {
            create,
            min_free_bytes,
            ..Default::default()
        }
    }

    async fn initialized(dir: &Path) {
        initialized_in(&Store::open(dir).unwrap()).await;
    }

    #[tokio::test]
    async fn an_unfinished_snapshot_is_removed_before_opening() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        initialized(&dir).await;
        let planted = dir.join("snap.7FFFFFFFFFFFFFFF.generating");
        std::fs::write(&planted, b"").unwrap();
        let store = Store::open_with(&dir, &options(false, 0)).unwrap();
        assert!(!planted.exists());
        assert!(store.user("admin").unwrap().is_some());
    }

    #[test]
    fn a_missing_or_empty_store_is_refused_when_it_must_exist() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        let err = Store::open_with(&dir, &options(false, 0))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("is missing") && err.contains("backup"),
            "{err}"
        );
        assert!(!dir.join("db").exists());
        drop(Store::open(&dir).unwrap()); // created, but without the admin `init` stores
        let err = Store::open_with(&dir, &options(false, 0))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("no operators"), "{err}");
    }

    #[test]
    fn new_work_is_refused_below_the_reserve_naming_the_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        let store = Store::open_with(&dir, &options(true, u64::MAX)).unwrap();
        let err = store.ensure_room().unwrap_err();
        assert!(matches!(err, StoreError::LowSpace { .. }));
        let text = err.to_string();
        assert!(
            text.contains(&dir.display().to_string()) && text.contains("MiB free"),
            "{text}"
        );
        let store = Store::open_with(&tmp.path().join("other"), &options(true, 0)).unwrap();
        store.ensure_room().unwrap();
    }

    #[tokio::test]
    async fn after_a_failed_write_writes_are_refused_and_reads_go_on() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open_with(&tmp.path().join("state"), &options(true, 0)).unwrap();
        initialized_in(&store).await;
        store.mark_failed("test");
        assert!(store.failed());
        assert!(store.user("admin").unwrap().is_some());
        let refused = store
            .create_user(UserRecord {
                name: "late".into(),
                ..Default::default()
            })
            .await;
        assert!(matches!(refused, Err(StoreError::Failed { .. })));
        assert!(store.user("late").unwrap().is_none());
        assert!(matches!(
            store.ensure_room(),
            Err(StoreError::Failed { .. })
        ));
    }

    async fn initialized_in(store: &Store) {
        store
            .create_user(UserRecord {
                name: "admin".into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
}
