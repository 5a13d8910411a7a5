//! The backup index in the store: tree `backups`, node ‖ "\n" ‖ backup name → BackupRecord.
//! Records are written by the job engine in the same [`JobBatch`](super::JobBatch) as the task
//! update that changed them (so they are flushed with it), and read by `ListBackups`.

use lab_proto::store::v1::BackupRecord;
use prost::Message;

use super::kv::{keys_in, Keys, Op, TreeId};
use super::{Store, StoreError, Versioned, RECORD_VERSION};

const TREE: TreeId = TreeId::Backups;

impl Versioned for BackupRecord {
    fn version(&self) -> u32 {
        self.version
    }
}

fn key(node: &str, name: &str) -> Vec<u8> {
    format!("{node}\n{name}").into_bytes()
}

impl Store {
    /// The record of backup `name` on `node`.
    pub fn backup(&self, node: &str, name: &str) -> Result<Option<BackupRecord>, StoreError> {
        Self::get(self.t()?, TREE, &key(node, name))
    }

    /// Every backup record, by node and name.
    pub fn backups(&self) -> Result<Vec<BackupRecord>, StoreError> {
        Self::list(self.t()?, TREE)
    }

    /// Deletes the backup records of `node` (only backup `name` when given) and flushes;
    /// returns how many were deleted.
    pub async fn forget_backups(&self, node: &str, name: Option<&str>) -> Result<u32, StoreError> {
        let t = self.w()?;
        let keys: Vec<Vec<u8>> = match name {
            Some(name) => vec![key(node, name)],
            None => keys_in(t, TREE, Keys::Prefix(&key(node, "")))?,
        };
        let mut forgotten = 0;
        for k in keys {
            if t.remove(TREE, &k)? {
                forgotten += 1;
            }
        }
        if forgotten > 0 {
            self.flush().await?;
        }
        Ok(forgotten)
    }

    /// The writes of backup records (part of [`Store::write_jobs`]).
    pub(super) fn backup_ops(ops: &mut Vec<Op>, records: Vec<BackupRecord>) {
        for mut rec in records {
            rec.version = RECORD_VERSION;
            ops.push(Op::Put(
                TREE,
                key(&rec.node, &rec.name),
                rec.encode_to_vec(),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use lab_proto::v1::BackupSummary;

    use super::*;
    use crate::store::JobBatch;

    fn rec(node: &str, name: &str, snapshot: &str) -> BackupRecord {
        BackupRecord {
            node: node.into(),
            name: name.into(),
            last_success_unix_ms: 1000,
            last_success: Some(BackupSummary {
                snapshot_id: snapshot.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn records_are_written_with_the_job_batch_and_keyed_by_node_and_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store.backups().unwrap().is_empty());
        let batch = JobBatch {
            backups: vec![
                rec("n2", "home", "a"),
                rec("n1", "home", "b"),
                rec("n1", "db", "c"),
            ],
            ..Default::default()
        };
        store.commit_jobs(batch).await.unwrap();
        let all: Vec<(String, String)> = store
            .backups()
            .unwrap()
            .into_iter()
            .map(|r| (r.node, r.name))
            .collect();
        let expected = [("n1", "db"), ("n1", "home"), ("n2", "home")]
            .map(|(a, b)| (a.to_owned(), b.to_owned()));
        assert_eq!(all, expected);
        let one = store.backup("n1", "home").unwrap().unwrap();
        assert_eq!(one.version, RECORD_VERSION);
        assert_eq!(one.last_success.unwrap().snapshot_id, "b");
        assert!(store.backup("n1", "nope").unwrap().is_none());
        // A later batch replaces the record.
        let batch = JobBatch {
            backups: vec![rec("n1", "home", "d")],
            ..Default::default()
        };
        store.commit_jobs(batch).await.unwrap();
        let one = store.backup("n1", "home").unwrap().unwrap();
        assert_eq!(one.last_success.unwrap().snapshot_id, "d");
        assert_eq!(store.backups().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn forget_deletes_one_name_or_every_record_of_exactly_that_node() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let batch = JobBatch {
            backups: vec![
                rec("n1", "home", "a"),
                rec("n1", "db", "b"),
                rec("n10", "home", "c"),
            ],
            ..Default::default()
        };
        store.commit_jobs(batch).await.unwrap();
        assert_eq!(store.forget_backups("n1", Some("nope")).await.unwrap(), 0);
        assert_eq!(store.forget_backups("n1", Some("db")).await.unwrap(), 1);
        assert!(store.backup("n1", "db").unwrap().is_none());
        assert_eq!(store.forget_backups("n1", None).await.unwrap(), 1);
        assert_eq!(store.forget_backups("n1", None).await.unwrap(), 0);
        // n10 shares the prefix "n1" but not the node.
        let left: Vec<String> = store
            .backups()
            .unwrap()
            .into_iter()
            .map(|r| r.node)
            .collect();
        assert_eq!(left, ["n10"]);
    }
}
