//! Schedules in the store: tree `schedules`, name → ScheduleRecord. A firing is recorded by one
//! write of the whole record (next due time, jitter, last firing), flushed before it returns.

use lab_proto::store::v1::ScheduleRecord;
use prost::Message;

use super::kv::TreeId;
use super::{Store, StoreError, Versioned, RECORD_VERSION};

const TREE: TreeId = TreeId::Schedules;

impl Versioned for ScheduleRecord {
    fn version(&self) -> u32 {
        self.version
    }
}

fn name_of(rec: &ScheduleRecord) -> String {
    rec.spec
        .as_ref()
        .map(|s| s.name.clone())
        .unwrap_or_default()
}

impl Store {
    /// One schedule.
    pub fn schedule(&self, name: &str) -> Result<Option<ScheduleRecord>, StoreError> {
        Self::get(self.t()?, TREE, name.as_bytes())
    }

    /// All schedules, by name.
    pub fn schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError> {
        Self::list(self.t()?, TREE)
    }

    /// Creates a schedule; fails with [`StoreError::Exists`] if one of that name exists.
    pub async fn create_schedule(&self, mut rec: ScheduleRecord) -> Result<(), StoreError> {
        let t = self.w()?;
        rec.version = RECORD_VERSION;
        let name = name_of(&rec);
        let swapped = t.compare_and_swap(TREE, name.as_bytes(), None, Some(rec.encode_to_vec()))?;
        if !swapped {
            return Err(StoreError::Exists(format!("schedule '{name}'")));
        }
        self.flush().await
    }

    /// Writes a schedule record (create or replace).
    pub async fn put_schedule(&self, mut rec: ScheduleRecord) -> Result<(), StoreError> {
        let t = self.w()?;
        rec.version = RECORD_VERSION;
        Self::put(t, TREE, name_of(&rec).as_bytes(), rec.encode_to_vec())?;
        self.flush().await
    }

    /// Deletes a schedule; returns whether it existed.
    pub async fn remove_schedule(&self, name: &str) -> Result<bool, StoreError> {
        let t = self.w()?;
        let existed = t.remove(TREE, name.as_bytes())?;
        self.flush().await?;
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use lab_proto::v1::ScheduleSpec;

    use super::*;

    fn rec(name: &str, next_due: i64) -> ScheduleRecord {
        ScheduleRecord {
            spec: Some(ScheduleSpec {
                name: name.into(),
                cron: "* * * * *".into(),
                ..Default::default()
            }),
            next_due_unix_ms: next_due,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn create_replace_list_remove_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        {
            let store = Store::open(&path).unwrap();
            store.create_schedule(rec("b", 1)).await.unwrap();
            store.create_schedule(rec("a", 2)).await.unwrap();
            let again = store.create_schedule(rec("a", 3)).await.unwrap_err();
            assert_eq!(again.to_string(), "schedule 'a' already exists");
            store.put_schedule(rec("a", 4)).await.unwrap();
        }
        let store = Store::open(&path).unwrap();
        let all = store.schedules().unwrap();
        let names: Vec<(String, i64)> = all
            .iter()
            .map(|r| (name_of(r), r.next_due_unix_ms))
            .collect();
        assert_eq!(names, [("a".to_string(), 4), ("b".to_string(), 1)]);
        assert_eq!(
            store.schedule("a").unwrap().unwrap().version,
            RECORD_VERSION
        );
        assert!(store.remove_schedule("a").await.unwrap());
        assert!(!store.remove_schedule("a").await.unwrap());
        assert!(store.schedule("a").unwrap().is_none());
    }

    #[tokio::test]
    async fn a_newer_record_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state")).unwrap();
        let mut newer = rec("x", 1);
        newer.version = RECORD_VERSION + 1;
        let t = store.t().unwrap();
        Store::put(t, TREE, b"x", newer.encode_to_vec()).unwrap();
        assert!(matches!(
            store.schedule("x"),
            Err(StoreError::NewerVersion { .. })
        ));
    }
}
