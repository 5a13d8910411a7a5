//! The lab's topology, kept current as facts arrive: per node, the [`Summary`] of its facts
//! that the topology needs; on demand, the [`join`] of all of them (cached until a summary
//! changes), which gives the `GetTopology` answer and each guest node's derived `hypervisor`
//! label.
//!
//! Facts arrive often, but few reports change a summary (filesystem usage, units and lag
//! change; UUIDs, guests and roles rarely), so the join is redone only when one did, and only
//! when someone reads. Online state is not part of the cached join: it is marked on each read.
//! This module reads the store only in [`TopologyIndex::load`].

pub mod join;
pub mod summary;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use lab_proto::topology::Topology;
use serde_json::Value;

use crate::store::{Store, StoreError};
pub use join::{join, Joined};
pub use summary::Summary;

/// Where the kernel shows a machine's DMI product UUID.
const PRODUCT_UUID: &str = "/sys/class/dmi/id/product_uuid";

/// Per-node summaries and the cached join.
#[derive(Debug, Default)]
pub struct TopologyIndex {
    inner: RwLock<Inner>,
    own_uuid: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    nodes: BTreeMap<String, Summary>,
    joined: Option<Arc<Joined>>,
}

impl TopologyIndex {
    /// An empty index; `own_uuid` is the coordinator's own DMI product UUID, if known (see
    /// [`own_product_uuid`]).
    pub fn new(own_uuid: Option<String>) -> Self {
        TopologyIndex {
            inner: RwLock::default(),
            own_uuid: own_uuid.and_then(|u| summary::normalise_uuid(&u)),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the summary of every stored node's facts (at coordinator start).
    pub fn load(&self, store: &Store) -> Result<(), StoreError> {
        let mut nodes = BTreeMap::new();
        for record in store.nodes()? {
            let facts = store
                .facts(&record.name)?
                .and_then(|f| serde_json::from_str(&f.json).ok())
                .unwrap_or(Value::Null);
            nodes.insert(record.name, Summary::from_facts(&facts));
        }
        *self.write() = Inner {
            nodes,
            joined: None,
        };
        Ok(())
    }

    /// Takes `node`'s new facts; the join is redone (on the next read) only when its summary
    /// changed. Returns whether it did.
    pub fn update(&self, node: &str, facts: &Value) -> bool {
        let summary = Summary::from_facts(facts);
        if self.read().nodes.get(node) == Some(&summary) {
            return false;
        }
        let mut inner = self.write();
        inner.nodes.insert(node.to_owned(), summary);
        inner.joined = None;
        true
    }

    /// Forgets a removed node.
    pub fn remove(&self, node: &str) {
        let mut inner = self.write();
        if inner.nodes.remove(node).is_some() {
            inner.joined = None;
        }
    }

    /// The current join, redone first if a summary changed since the last one.
    pub fn joined(&self) -> Arc<Joined> {
        if let Some(j) = &self.read().joined {
            return j.clone();
        }
        let mut inner = self.write();
        if let Some(j) = &inner.joined {
            return j.clone();
        }
        let j = Arc::new(join(&inner.nodes, self.own_uuid.as_deref()));
        inner.joined = Some(j.clone());
        j
    }

    /// The PVE node name of the host `node` runs on as a guest, if any.
    pub fn hypervisor_of(&self, node: &str) -> Option<String> {
        self.joined().hypervisor_of.get(node).cloned()
    }

    /// The topology with the nodes `online` names marked online.
    pub fn topology(&self, online: &dyn Fn(&str) -> bool) -> Topology {
        let mut t = self.joined().topology.clone();
        join::mark_online(&mut t, online);
        t
    }
}

/// This machine's DMI product UUID (readable by root only on most systems); `None` when it
/// cannot be read.
pub fn own_product_uuid() -> Option<String> {
    let text = std::fs::read_to_string(PRODUCT_UUID).ok()?;
    summary::normalise_uuid(text.trim())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    const U1: &str = "5c1d7e2a-8b3f-4a6c-9d0e-1f2a3b4c5d6e";

    fn host() -> Value {
        json!({"proxmox": {"node": "pve1", "guests": [
            {"vmid": 100, "type": "qemu", "smbios_uuid": U1.to_uppercase()}]}})
    }

    fn vm(extra: u64) -> Value {
        json!({"hardware": {"dmi": {"product_uuid": U1}, "memory": {"total_bytes": extra}}})
    }

    #[test]
    fn updates_change_the_join_only_when_a_summary_changes() {
        let index = TopologyIndex::new(Some(U1.to_uppercase()));
        assert!(index.update("pve1", &host()));
        assert!(index.update("vm1", &vm(1)));
        assert_eq!(index.hypervisor_of("vm1").as_deref(), Some("pve1"));
        let before = index.joined();
        assert!(!index.update("vm1", &vm(2)), "memory is not in the summary");
        assert!(Arc::ptr_eq(&before, &index.joined()));
        let t = index.topology(&|n| n == "vm1");
        assert!(t.hypervisors[0].guests[0].node.as_ref().unwrap().online);
        assert!(!t.hypervisors[0].node.online);
        assert_eq!(t.alerts.len(), 1, "own VM: {:?}", t.alerts);
        index.remove("pve1");
        assert_eq!(index.hypervisor_of("vm1"), None);
        assert_eq!(index.topology(&|_| false).standalone.len(), 1);
    }

    #[tokio::test]
    async fn load_reads_the_stored_facts() {
        use lab_proto::store::v1::{FactsRecord, NodeRecord};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for (name, facts) in [("pve1", host()), ("vm1", vm(1)), ("bare", Value::Null)] {
            store
                .put_node(NodeRecord {
                    name: name.into(),
                    ..Default::default()
                })
                .await
                .unwrap();
            if !facts.is_null() {
                let rec = FactsRecord {
                    json: facts.to_string(),
                    ..Default::default()
                };
                store.put_facts(name, rec).await.unwrap();
            }
        }
        let index = TopologyIndex::default();
        index.load(&store).unwrap();
        assert_eq!(index.hypervisor_of("vm1").as_deref(), Some("pve1"));
        assert_eq!(index.topology(&|_| false).standalone.len(), 1);
    }
}
