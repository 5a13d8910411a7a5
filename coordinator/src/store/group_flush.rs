//! Group commit for sled flushes: many writers that need durability share one flush instead of
//! queueing one each. A writer registers a ticket after its write; it returns once a flush that
//! started after the ticket has completed, so its write is covered.

use std::sync::atomic::{AtomicU64, Ordering};

use super::StoreError;

/// Shared flush state of one database.
#[derive(Default)]
pub struct GroupFlush {
    /// Tickets handed out (the last one).
    requested: AtomicU64,
    /// Highest ticket known durable.
    done: AtomicU64,
    /// Held while a flush runs.
    running: tokio::sync::Mutex<()>,
}

impl GroupFlush {
    /// Returns once everything written before the call is on disk.
    pub async fn flush(&self, db: &sled::Db) -> Result<(), StoreError> {
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        loop {
            if self.done.load(Ordering::SeqCst) >= ticket {
                return Ok(());
            }
            let _running = self.running.lock().await;
            if self.done.load(Ordering::SeqCst) >= ticket {
                return Ok(());
            }
            // Every ticket up to `covered` was taken after its write, and this flush starts now.
            let covered = self.requested.load(Ordering::SeqCst);
            db.flush_async().await?;
            self.done.fetch_max(covered, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn concurrent_flushes_all_complete_and_share_work() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let flush = Arc::new(GroupFlush::default());
        let mut handles = Vec::new();
        for i in 0..32u32 {
            let (db, flush) = (db.clone(), flush.clone());
            handles.push(tokio::spawn(async move {
                db.insert(i.to_be_bytes(), &[1]).unwrap();
                flush.flush(&db).await.unwrap();
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        assert_eq!(flush.done.load(Ordering::SeqCst), 32);
        assert_eq!(db.len(), 32);
    }
}
