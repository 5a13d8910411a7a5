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
//!
//! With etcd the same machinery covers a commit that failed (etcd unreachable, no quorum): the
//! backend refuses writes from then on, and [`watch`] stops the coordinator once etcd answers
//! again, so that it starts afresh from what etcd acknowledged.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::etcd_kv::{EtcdKv, EtcdOptions};
use super::kv::{Kv, TreeId};
use super::sled_kv::SledKv;
use super::{Store, StoreError, DEFAULT_CACHE_BYTES};

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
    /// etcd: the leadership every commit is conditioned on (`serve`); `None` for sled and for
    /// commands that run without a coordinator.
    pub fence: Option<super::leader::Fence>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: DEFAULT_CACHE_BYTES,
            min_free_bytes: DEFAULT_MIN_FREE_MIB * MIB,
            create: true,
            fence: None,
        }
    }
}

/// Where a store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A sled database in this directory.
    Sled(PathBuf),
    /// An etcd cluster.
    Etcd(EtcdOptions),
}

impl Location {
    /// The store named by `--store` (`sled`: in `sled_dir`; `etcd://…`) and the etcd flags.
    pub fn parse(
        store: &str,
        sled_dir: &Path,
        ca: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        prefix: &str,
    ) -> Result<Location, String> {
        if store == "sled" {
            if ca.is_some() || cert.is_some() || key.is_some() {
                return Err("--etcd-ca, --etcd-cert and --etcd-key need --store etcd://…".into());
            }
            return Ok(Location::Sled(sled_dir.to_path_buf()));
        }
        let mut options = EtcdOptions::parse(store)?;
        if cert.is_some() != key.is_some() {
            return Err("--etcd-cert and --etcd-key go together".into());
        }
        if cert.is_some() && ca.is_none() {
            return Err("--etcd-cert needs --etcd-ca (the CA of etcd's members)".into());
        }
        if !prefix.starts_with('/') || !prefix.ends_with('/') {
            return Err(format!(
                "--etcd-prefix '{prefix}' must start and end with '/' (e.g. /labfleet/)"
            ));
        }
        options.ca = ca;
        options.cert = cert;
        options.key = key;
        options.prefix = prefix.to_owned();
        Ok(Location::Etcd(options))
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sled(dir) => write!(f, "{}", dir.display()),
            Location::Etcd(o) => write!(f, "{} (prefix {})", o.url(), o.prefix),
        }
    }
}

/// What every clone of a [`Store`] shares.
pub(super) struct Shared {
    location: Location,
    min_free_bytes: u64,
    /// `None` only while closing.
    kv: Option<Box<dyn Kv>>,
    /// Set when a flush failed or did not finish in time: after an I/O error sled 0.34 never
    /// completes a flush of this database again; after a failed etcd commit the mirror is
    /// ahead of etcd.
    failed: AtomicBool,
    /// Set by [`watch`] when it stopped the coordinator so that it starts again.
    restart: AtomicBool,
    /// Commit latency and etcd errors.
    stats: super::stats::StoreStats,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let Some(kv) = self.kv.take() else {
            return;
        };
        // sled flushes when dropped, which blocks forever after a failed write.
        let (tx, rx) = std::sync::mpsc::channel();
        let closing = std::thread::spawn(move || {
            drop(kv);
            let _ = tx.send(());
        });
        if rx.recv_timeout(CLOSE_TIMEOUT).is_ok() {
            let _ = closing.join();
        } else {
            tracing::warn!(store = %self.location, "the store did not close within {CLOSE_TIMEOUT:?} (disk full?); leaving it, everything acknowledged is on disk");
        }
    }
}

/// Free space of the file system holding `dir` for unprivileged users, bytes.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(st.blocks_available().saturating_mul(st.fragment_size()))
}

impl Store {
    /// Opens the sled store under `dir`: removes unfinished snapshot files, then opens (or,
    /// with `options.create`, creates) the database.
    pub fn open_with(dir: &Path, options: &StoreOptions) -> Result<Self, StoreError> {
        let kv = SledKv::open(
            dir,
            options.cache_bytes,
            options.create,
            options.min_free_bytes,
        )?;
        Self::from_kv(Box::new(kv), Location::Sled(dir.to_path_buf()), options)
    }

    /// Opens the store at `location` (etcd: connects and loads it into memory).
    pub async fn open_at(location: &Location, options: &StoreOptions) -> Result<Self, StoreError> {
        match location {
            Location::Sled(dir) => {
                let (dir, options) = (dir.clone(), options.clone());
                tokio::task::spawn_blocking(move || Self::open_with(&dir, &options))
                    .await
                    .map_err(|e| StoreError::Open(format!("opening the store failed: {e}")))?
            }
            Location::Etcd(etcd) => {
                let kv = EtcdKv::open(etcd, options.fence.clone()).await?;
                tracing::info!(store = %location, revision = kv.loaded_revision(), "loaded the store from etcd");
                Self::from_kv(Box::new(kv), location.clone(), options)
            }
        }
    }

    fn from_kv(
        kv: Box<dyn Kv>,
        location: Location,
        options: &StoreOptions,
    ) -> Result<Self, StoreError> {
        // `init` stores the admin; sled recovers a truncated log as if a crash cut it short, so
        // a store emptied that way opens without complaint.
        if !options.create && kv.is_empty(TreeId::Users)? {
            let why = match &location {
                Location::Sled(dir) => format!(
                    "the store {} is damaged (it has no operators, so it was truncated or replaced); restore it from a backup",
                    dir.display()
                ),
                Location::Etcd(o) => format!(
                    "the store {location} has no operators; run 'lab-coordinator init --store {}' (with the same --etcd-prefix) first, or import a store with 'lab-coordinator store import'",
                    o.url()
                ),
            };
            return Err(StoreError::Open(why));
        }
        Ok(Store {
            shared: Arc::new(Shared {
                location,
                min_free_bytes: options.min_free_bytes,
                kv: Some(kv),
                failed: AtomicBool::new(false),
                restart: AtomicBool::new(false),
                stats: Default::default(),
            }),
        })
    }

    /// Where the store lives.
    pub fn location(&self) -> &Location {
        &self.shared.location
    }

    fn failed_error(&self) -> StoreError {
        match &self.shared.location {
            Location::Sled(dir) => StoreError::Failed { dir: dir.clone() },
            Location::Etcd(_) => StoreError::Etcd(format!(
                "a commit to {} failed earlier; changes are refused until the coordinator restarts, which it does by itself once etcd answers again",
                self.shared.location
            )),
        }
    }

    /// The backend, for reading.
    pub(super) fn t(&self) -> Result<&dyn Kv, StoreError> {
        self.shared.kv.as_deref().ok_or_else(|| self.failed_error())
    }

    /// The backend, for writing: refused once a write failed, so that nothing that cannot be
    /// made durable is seen by readers.
    pub(super) fn w(&self) -> Result<&dyn Kv, StoreError> {
        let t = self.t()?;
        if self.shared.failed.load(Ordering::SeqCst) {
            return Err(self.failed_error());
        }
        Ok(t)
    }

    /// The backend (export, import, checks).
    pub fn kv(&self) -> Result<&dyn Kv, StoreError> {
        self.w()
    }

    /// Makes every write made before this call durable. Concurrent callers share flushes
    /// (group commit): a caller waits for the first flush that started after it asked. A flush
    /// that fails or takes longer than [`FLUSH_TIMEOUT`] marks the store failed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let t = self.w()?;
        let started = std::time::Instant::now();
        let stats = &self.shared.stats;
        let etcd = matches!(self.shared.location, Location::Etcd(_));
        match tokio::time::timeout(FLUSH_TIMEOUT, t.flush()).await {
            Ok(Ok(())) => {
                stats
                    .commit_seconds
                    .observe(started.elapsed().as_secs_f64());
                Ok(())
            }
            Ok(Err(e)) => {
                if etcd {
                    stats.etcd_errors.inc();
                }
                self.mark_failed(&e.to_string());
                Err(e)
            }
            Err(_) => {
                if etcd {
                    stats.etcd_errors.inc();
                }
                self.mark_failed(&format!("a flush took longer than {FLUSH_TIMEOUT:?}"));
                Err(self.failed_error())
            }
        }
    }

    /// The store's metrics (commit latency, etcd errors), for the coordinator's registry.
    pub fn stats(&self) -> &super::stats::StoreStats {
        &self.shared.stats
    }

    fn mark_failed(&self, why: &str) {
        if !self.shared.failed.swap(true, Ordering::SeqCst) {
            tracing::error!(store = %self.shared.location, why, "store writes fail; changes are refused, and the coordinator restarts by itself once the store can take writes again");
        }
    }

    /// Refuses every write from now on because this coordinator lost its leadership (`why`).
    pub fn step_down(&self, why: &str) {
        self.mark_failed(why);
    }

    /// Whether a write failed (the coordinator must start again to write).
    pub fn failed(&self) -> bool {
        self.shared.failed.load(Ordering::SeqCst)
    }

    /// Whether [`watch`] stopped the coordinator so that it starts again.
    pub fn needs_restart(&self) -> bool {
        self.shared.restart.load(Ordering::SeqCst)
    }

    /// Refuses new work (jobs, enrollments, schedules) while the directory has less free space
    /// than the reserve, or after a write failed. (etcd keeps its own quota.)
    pub fn ensure_room(&self) -> Result<(), StoreError> {
        self.w()?;
        let min = self.shared.min_free_bytes;
        let Location::Sled(dir) = &self.shared.location else {
            return Ok(());
        };
        if min == 0 {
            return Ok(());
        }
        match free_bytes(dir) {
            Ok(free) if free < min => Err(StoreError::LowSpace {
                dir: dir.clone(),
                free_mib: free / MIB,
                min_mib: min.div_ceil(MIB),
            }),
            Ok(_) => Ok(()),
            Err(e) => {
                // Not knowing is no reason to refuse; the writes themselves will tell.
                tracing::warn!(dir = %dir.display(), error = %e, "cannot read the store's free space");
                Ok(())
            }
        }
    }
}

/// Checks the store every second until `shutdown`: a flush finds a write that failed (which
/// leaves no other mark), and once a failed store's directory has room again, this cancels
/// `shutdown` and sets [`Store::needs_restart`], so the coordinator exits with an error and its
/// service manager starts it again (sled cannot reopen it in the same process; etcd's mirror
/// must be reloaded).
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
        let recovered = match store.t() {
            Ok(kv) => kv.recovered().await,
            Err(_) => false,
        };
        if recovered {
            tracing::error!(store = %store.shared.location, "the store can take writes again (room in its directory, or etcd answers); stopping so that the coordinator starts again with a working store");
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
