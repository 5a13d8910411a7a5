//! Keys under a fleet's etcd prefix that are not part of the store's trees: what coordinators
//! sharing the prefix tell each other (who they are, the fleet's CA for the next one to join).
//!
//! Layout under the prefix P (the trees are in [`etcd_kv`](super::etcd_kv)):
//! - `P leader`: the leader's address on its lease ([`leader`](super::leader));
//! - `P ca`: the fleet's CA certificate and key, encrypted with age to the fleet's join key
//!   (`lab-coordinator init` writes it once, `join` reads it);
//! - `P coordinators/<advertise>`: JSON `{"advertise": …, "joined_unix": …}`, one per
//!   coordinator that `init` or `join` set up; permanent (no lease);
//! - `P leader-change` and `P alive/<advertise>`: who leads and who lives
//!   ([`presence`](super::presence)).
//!
//! These keys are written without the leader's fence (they are written by `init` and `join`,
//! before a coordinator serves) and never read into the mirror: [`is_raw`] tells the loader to
//! skip them.

use lab_proto::etcd::{
    compare, request_op, Compare, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use serde::{Deserialize, Serialize};

use super::etcd_client::EtcdClient;
use super::etcd_kv::{EtcdOptions, LEADER_KEY};
use super::kv::prefix_end;
use super::StoreError;

/// The encrypted CA's key name under the prefix.
pub const CA_KEY: &str = "ca";
/// The key prefix (under the fleet's prefix) of the coordinators' records.
pub const COORDINATORS: &str = "coordinators/";

/// Whether `name` (a key with the fleet's prefix removed) is one of these keys, or one of the
/// liveness keys of [`presence`](super::presence).
pub fn is_raw(name: &[u8]) -> bool {
    name == LEADER_KEY.as_bytes()
        || name == CA_KEY.as_bytes()
        || name.starts_with(COORDINATORS.as_bytes())
        || name == super::presence::LEADER_CHANGE.as_bytes()
        || name.starts_with(super::presence::ALIVE.as_bytes())
}

/// One coordinator set up on the prefix (`P coordinators/<advertise>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoordinatorEntry {
    /// The address agents and operators dial, HOST:PORT.
    pub advertise: String,
    /// When `init` or `join` wrote it (Unix seconds).
    pub joined_unix: i64,
}

/// Direct access to the keys above.
pub struct RawKeys {
    client: EtcdClient,
    options: EtcdOptions,
}

impl RawKeys {
    /// A client of `options`' cluster (nothing is dialled yet).
    pub fn new(options: &EtcdOptions) -> Result<Self, StoreError> {
        Ok(RawKeys {
            client: EtcdClient::new(options)?,
            options: options.clone(),
        })
    }

    fn key(&self, name: &str) -> Vec<u8> {
        format!("{}{name}", self.options.prefix).into_bytes()
    }

    fn error(&self, what: &str, e: tonic::Status) -> StoreError {
        StoreError::Etcd(format!(
            "{what} at {} (prefix {}): {}",
            self.options.url(),
            self.options.prefix,
            e.message()
        ))
    }

    /// The value of `name`, if set.
    pub async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let resp = self
            .client
            .range(RangeRequest {
                key: self.key(name),
                ..Default::default()
            })
            .await
            .map_err(|e| self.error(&format!("cannot read '{name}'"), e))?;
        Ok(resp.kvs.into_iter().next().map(|kv| kv.value))
    }

    /// Sets `name` to `value` unless it exists; returns whether it was set.
    pub async fn create(&self, name: &str, value: Vec<u8>) -> Result<bool, StoreError> {
        let key = self.key(name);
        let resp = self
            .client
            .txn(TxnRequest {
                compare: vec![Compare {
                    result: compare::CompareResult::Equal as i32,
                    target: compare::CompareTarget::Create as i32,
                    key: key.clone(),
                    target_union: Some(compare::TargetUnion::CreateRevision(0)),
                    ..Default::default()
                }],
                success: vec![RequestOp {
                    request: Some(request_op::Request::RequestPut(PutRequest {
                        key,
                        value,
                        ..Default::default()
                    })),
                }],
                failure: vec![],
            })
            .await
            .map_err(|e| self.error(&format!("cannot write '{name}'"), e))?;
        Ok(resp.succeeded)
    }

    /// Every key starting with `name_prefix`, names with the fleet's prefix removed.
    pub async fn list(&self, name_prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let from = self.key(name_prefix);
        let resp = self
            .client
            .range(RangeRequest {
                range_end: prefix_end(&from).unwrap_or_default(),
                key: from,
                ..Default::default()
            })
            .await
            .map_err(|e| self.error(&format!("cannot list '{name_prefix}'"), e))?;
        let cut = self.options.prefix.len();
        Ok(resp
            .kvs
            .into_iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(&kv.key[cut..]).into_owned(),
                    kv.value,
                )
            })
            .collect())
    }

    /// Records `entry` under `coordinators/<advertise>`; false when that address is taken.
    pub async fn add_coordinator(&self, entry: &CoordinatorEntry) -> Result<bool, StoreError> {
        let value = serde_json::to_vec(entry)
            .map_err(|e| StoreError::Etcd(format!("cannot encode a coordinator entry: {e}")))?;
        self.create(&format!("{COORDINATORS}{}", entry.advertise), value)
            .await
    }

    /// The coordinators set up on the prefix, by address (unreadable entries are skipped).
    pub async fn coordinators(&self) -> Result<Vec<CoordinatorEntry>, StoreError> {
        let mut out: Vec<CoordinatorEntry> = self
            .list(COORDINATORS)
            .await?
            .into_iter()
            .filter_map(|(name, v)| match serde_json::from_slice(&v) {
                Ok(entry) => Some(entry),
                Err(e) => {
                    tracing::warn!(key = %name, error = %e, "skipping an unreadable coordinator entry");
                    None
                }
            })
            .collect();
        out.sort_by(|a, b| a.advertise.cmp(&b.advertise));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_keys_are_told_from_tree_keys() {
        for k in [
            "leader",
            "ca",
            "leader-change",
            "alive/a:1",
            "coordinators/a:1",
        ] {
            assert!(is_raw(k.as_bytes()), "{k}");
        }
        for k in ["t/users/x", "c/events/x", "leaders", "alive", "cab"] {
            assert!(!is_raw(k.as_bytes()), "{k}");
        }
    }
}
