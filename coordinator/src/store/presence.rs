//! Who the coordinators of an etcd prefix are: the raw keys beside the trees that say which
//! coordinator lives, in which role, and who became leader last (`labctl status` reads them).
//!
//! Keys under the prefix P (JSON values, not part of the trees; the store's load skips them):
//! - `P alive/<advertise>`: [`AliveRecord`], attached to a lease of that coordinator's own
//!   (TTL `--leader-ttl`, renewed every third of it), so it vanishes when the process dies;
//!   written by leaders and standbys alike ([`keep_alive`]);
//! - `P coordinators/<advertise>` ([`raw`](super::raw)): permanent, written by `init` and
//!   `join`: a member without an alive record is down;
//! - `P leader-change`: [`LeaderChange`], written by the winner of an election in the
//!   transaction that creates the leader key.
//!
//! What this module must not do: decide leadership (that is [`leader`](super::leader)); these
//! records only report it.

use std::time::Duration;

use lab_proto::etcd::{request_op, PutRequest, RangeRequest, RequestOp, TxnRequest};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::etcd_client::EtcdClient;
use super::etcd_kv::{EtcdOptions, LEADER_KEY};
use super::kv::prefix_end;
use super::raw::CoordinatorEntry;
use super::StoreError;

/// Prefix of the liveness records.
pub const ALIVE: &str = "alive/";
/// The last leader change.
pub const LEADER_CHANGE: &str = "leader-change";

/// `prefix` followed by `name`.
pub fn raw_key(prefix: &str, name: &str) -> Vec<u8> {
    format!("{prefix}{name}").into_bytes()
}

/// The seconds since the epoch now.
fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A role a live coordinator reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AliveRole {
    /// It holds the leader key and serves.
    Leader,
    /// It waits and points clients at the leader.
    Standby,
}

/// The value of `P alive/<advertise>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliveRecord {
    /// Its advertised address, `HOST:PORT`.
    pub advertise: String,
    /// Its role.
    pub role: AliveRole,
    /// When it took this role (seconds since the epoch).
    pub since_unix: i64,
    /// Its lab-coordinator version.
    pub version: String,
    /// Its store, `etcd://…`.
    pub store: String,
}

/// The value of `P leader-change`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderChange {
    /// The new leader's address.
    pub advertise: String,
    /// When it won (seconds since the epoch).
    pub since_unix: i64,
}

impl LeaderChange {
    /// `advertise` won now.
    pub fn now(advertise: &str) -> Self {
        LeaderChange {
            advertise: advertise.to_owned(),
            since_unix: now_unix(),
        }
    }

    /// The stored form.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// What a coordinator is, as `labctl status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Serves.
    Leader,
    /// Waits.
    Standby,
    /// A member with no liveness record.
    Down,
}

/// One coordinator of the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Advertised address.
    pub advertise: String,
    /// Its role now.
    pub role: Role,
    /// Its store (empty when down).
    pub store: String,
    /// When it took its role (0: unknown).
    pub since_unix: i64,
    /// Its version (empty when down).
    pub version: String,
    /// When it joined (0: no membership record).
    pub joined_unix: i64,
}

/// Every coordinator of a prefix, and the last leader change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Members {
    /// By address.
    pub members: Vec<Member>,
    /// The last leader change, if recorded.
    pub last_change: Option<LeaderChange>,
}

/// Merges liveness records, membership records and the leader key's value into one list:
/// a live coordinator has the role its record says, except that only the holder of the leader
/// key is the leader; a member without a liveness record is down. Pure.
pub fn merge(
    alive: Vec<AliveRecord>,
    joined: Vec<CoordinatorEntry>,
    leader: Option<&str>,
    last_change: Option<LeaderChange>,
) -> Members {
    let mut by_addr = std::collections::BTreeMap::new();
    for m in joined {
        by_addr.insert(
            m.advertise.clone(),
            Member {
                advertise: m.advertise,
                role: Role::Down,
                store: String::new(),
                since_unix: 0,
                version: String::new(),
                joined_unix: m.joined_unix,
            },
        );
    }
    for a in alive {
        let role = match a.role {
            AliveRole::Leader if leader == Some(a.advertise.as_str()) => Role::Leader,
            _ => Role::Standby,
        };
        let joined_unix = by_addr
            .get(&a.advertise)
            .map_or(0, |m: &Member| m.joined_unix);
        by_addr.insert(
            a.advertise.clone(),
            Member {
                advertise: a.advertise,
                role,
                store: a.store,
                since_unix: a.since_unix,
                version: a.version,
                joined_unix,
            },
        );
    }
    Members {
        members: by_addr.into_values().collect(),
        last_change,
    }
}

fn etcd_error(what: &str, options: &EtcdOptions, e: tonic::Status) -> StoreError {
    StoreError::Etcd(format!("{what} at {}: {}", options.url(), e.message()))
}

/// Every value whose key starts with `prefix ‖ name`, skipping (and logging) undecodable ones.
async fn read_all<T: serde::de::DeserializeOwned>(
    client: &EtcdClient,
    options: &EtcdOptions,
    name: &str,
) -> Result<Vec<T>, StoreError> {
    let key = raw_key(&options.prefix, name);
    let range_end = prefix_end(&key).unwrap_or_default();
    let answer = client
        .range(RangeRequest {
            key,
            range_end,
            ..Default::default()
        })
        .await
        .map_err(|e| etcd_error("cannot read the coordinators", options, e))?;
    let mut out = Vec::new();
    for kv in answer.kvs {
        match serde_json::from_slice(&kv.value) {
            Ok(v) => out.push(v),
            Err(e) => {
                tracing::warn!(key = %String::from_utf8_lossy(&kv.key), error = %e, "skipping a coordinator record that does not decode")
            }
        }
    }
    Ok(out)
}

/// Reads every coordinator of `options.prefix` from etcd.
pub async fn list(options: &EtcdOptions) -> Result<Members, StoreError> {
    let client = EtcdClient::new(options)?;
    let alive = read_all::<AliveRecord>(&client, options, ALIVE).await?;
    let joined = super::raw::RawKeys::new(options)?.coordinators().await?;
    let one = |name: &'static str| {
        let client = &client;
        async move {
            let answer = client
                .range(RangeRequest {
                    key: raw_key(&options.prefix, name),
                    ..Default::default()
                })
                .await
                .map_err(|e| etcd_error("cannot read the coordinators", options, e))?;
            Ok::<_, StoreError>(answer.kvs.into_iter().next().map(|kv| kv.value))
        }
    };
    let leader = one(LEADER_KEY)
        .await?
        .map(|v| String::from_utf8_lossy(&v).into_owned());
    let change = one(LEADER_CHANGE)
        .await?
        .and_then(|v| serde_json::from_slice::<LeaderChange>(&v).ok());
    Ok(merge(alive, joined, leader.as_deref(), change))
}

/// Keeps `P alive/<advertise>` in etcd until `shutdown`: attached to a lease of its own
/// (TTL `ttl`), renewed every third of it, rewritten when `role` changes (its `since_unix` is
/// when the role was taken). etcd errors are logged and retried; at shutdown the lease is
/// revoked so that the record goes at once.
pub async fn keep_alive(
    options: EtcdOptions,
    advertise: String,
    ttl: Duration,
    mut role: watch::Receiver<AliveRole>,
    shutdown: CancellationToken,
) {
    let client = match EtcdClient::new(&options) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "cannot keep this coordinator's liveness record");
            return;
        }
    };
    let key = raw_key(&options.prefix, &format!("{ALIVE}{advertise}"));
    let ttl_secs = ttl.as_secs().max(1) as i64;
    let every = Duration::from_secs(ttl_secs as u64) / 3;
    let mut record = AliveRecord {
        advertise,
        role: *role.borrow_and_update(),
        since_unix: now_unix(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        store: options.url(),
    };
    let mut lease = 0i64;
    let mut stored = false;
    loop {
        if lease == 0 {
            match client.lease_grant(ttl_secs).await {
                Ok(l) => lease = l,
                Err(e) => {
                    tracing::warn!(error = %e.message(), "cannot grant the liveness lease; retrying")
                }
            }
        }
        if lease != 0 && !stored {
            let put = PutRequest {
                key: key.clone(),
                value: serde_json::to_vec(&record).unwrap_or_default(),
                lease,
                ..Default::default()
            };
            let txn = TxnRequest {
                success: vec![RequestOp {
                    request: Some(request_op::Request::RequestPut(put)),
                }],
                ..Default::default()
            };
            match client.txn(txn).await {
                Ok(_) => stored = true,
                Err(e) => {
                    tracing::warn!(error = %e.message(), "cannot write the liveness record; retrying")
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            changed = role.changed() => {
                if changed.is_err() {
                    // The sender went: keep the record as it is until shutdown.
                    shutdown.cancelled().await;
                    break;
                }
                record.role = *role.borrow_and_update();
                record.since_unix = now_unix();
                stored = false;
                continue;
            }
            () = tokio::time::sleep(every) => {}
        }
        if lease != 0 {
            match client.lease_keep_alive(lease).await {
                Ok(left) if left > 0 => {}
                Ok(_) => {
                    tracing::warn!("the liveness lease expired; writing the record again");
                    (lease, stored) = (0, false);
                }
                Err(e) => {
                    tracing::warn!(error = %e.message(), "cannot renew the liveness lease; retrying")
                }
            }
        }
    }
    if lease != 0 {
        let _ = client.lease_revoke(lease).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(addr: &str, role: AliveRole) -> AliveRecord {
        AliveRecord {
            advertise: addr.into(),
            role,
            since_unix: 10,
            version: "1".into(),
            store: "etcd://e:1".into(),
        }
    }

    #[test]
    fn members_without_a_liveness_record_are_down_and_only_the_key_holder_leads() {
        let joined = ["a:1", "b:1", "c:1"].map(|a| CoordinatorEntry {
            advertise: a.into(),
            joined_unix: 5,
        });
        let m = merge(
            vec![
                alive("a:1", AliveRole::Leader),
                alive("b:1", AliveRole::Leader),
            ],
            joined.to_vec(),
            Some("a:1"),
            None,
        );
        let roles: Vec<_> = m
            .members
            .iter()
            .map(|m| (m.advertise.as_str(), m.role))
            .collect();
        assert_eq!(
            roles,
            [
                ("a:1", Role::Leader),
                ("b:1", Role::Standby),
                ("c:1", Role::Down)
            ]
        );
        assert_eq!(m.members[0].joined_unix, 5);
        // A live coordinator nobody recorded as a member is listed too.
        let m = merge(vec![alive("d:1", AliveRole::Standby)], vec![], None, None);
        assert_eq!(m.members[0].role, Role::Standby);
        assert_eq!(m.members[0].joined_unix, 0);
    }
}
