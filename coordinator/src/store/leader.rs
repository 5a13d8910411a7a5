//! Leader election among coordinators sharing one etcd prefix, with fencing.
//!
//! A coordinator that serves an etcd store first [`campaign`]s: it grants itself a lease and
//! creates the key `<prefix>leader` (value: its advertised address) attached to that lease,
//! in a transaction that succeeds only if the key does not exist. The winner keeps the key's
//! create revision as its [`Fence`]; every commit of the etcd backend is conditioned on the key
//! still having that create revision, so once its lease expired and another coordinator
//! created the key anew, a deposed leader (paused, partitioned) writes nothing. Losers wait as
//! standbys, trying again every [`RETRY`], until the leader's lease ends (it stopped, or its
//! keep-alives stopped for a TTL).
//!
//! The leader renews its lease every TTL/3 ([`Leadership::hold`]); when etcd says the lease
//! is gone, or no renewal got through for a whole TTL, it steps down (the coordinator exits
//! non-zero and its service manager starts it again, as a standby).

use std::time::{Duration, Instant};

use lab_proto::etcd::{
    compare, request_op, Compare, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use tokio_util::sync::CancellationToken;

use super::etcd_client::EtcdClient;
use super::etcd_kv::EtcdOptions;
use super::StoreError;

/// Default lease TTL (`--leader-ttl`).
pub const DEFAULT_TTL: Duration = Duration::from_secs(5);

/// How often a standby tries again.
const RETRY: Duration = Duration::from_secs(1);

/// What every commit of the leader is conditioned on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// `<prefix>leader`.
    key: Vec<u8>,
    /// The create revision of the key this coordinator created.
    create_revision: i64,
}

impl Fence {
    /// The transaction condition: the leader key is still the one this coordinator created.
    pub fn compare(&self) -> Compare {
        Compare {
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Create as i32,
            key: self.key.clone(),
            target_union: Some(compare::TargetUnion::CreateRevision(self.create_revision)),
            ..Default::default()
        }
    }
}

/// Leadership won by [`campaign`].
pub struct Leadership {
    client: EtcdClient,
    lease: i64,
    ttl: Duration,
    fence: Fence,
}

/// The leader key of `prefix`.
pub fn leader_key(prefix: &str) -> Vec<u8> {
    format!("{prefix}{}", super::etcd_kv::LEADER_KEY).into_bytes()
}

fn etcd_error(what: &str, options: &EtcdOptions, e: tonic::Status) -> StoreError {
    StoreError::Etcd(format!("{what} at {}: {}", options.url(), e.message()))
}

/// Waits until this coordinator is the leader of `options.prefix` (`advertise` is stored as
/// the leader's address) or `shutdown` (then `None`). etcd errors are logged and retried: a
/// standby outlives etcd outages.
pub async fn campaign(
    options: &EtcdOptions,
    advertise: &str,
    ttl: Duration,
    shutdown: &CancellationToken,
) -> Result<Option<Leadership>, StoreError> {
    let (leader, _) = tokio::sync::watch::channel(None);
    campaign_watching(options, advertise, ttl, shutdown, &leader).await
}

/// [`campaign`], telling `leader` the current leader's address each time it reads the leader
/// key (`None`: no leader), so that a standby can point clients at it.
pub async fn campaign_watching(
    options: &EtcdOptions,
    advertise: &str,
    ttl: Duration,
    shutdown: &CancellationToken,
    leader: &tokio::sync::watch::Sender<Option<String>>,
) -> Result<Option<Leadership>, StoreError> {
    let client = EtcdClient::new(options)?;
    let key = leader_key(&options.prefix);
    let change_key = super::presence::raw_key(&options.prefix, super::presence::LEADER_CHANGE);
    let ttl_secs = ttl.as_secs().max(1) as i64;
    let mut seen = String::new();
    loop {
        match try_once(&client, &key, &change_key, advertise, ttl_secs).await {
            Ok(Ok((lease, create_revision))) => {
                tracing::info!(store = %options.url(), prefix = %options.prefix, lease, revision = create_revision, "this coordinator is the leader");
                let fence = Fence {
                    key,
                    create_revision,
                };
                return Ok(Some(Leadership {
                    client,
                    lease,
                    ttl: Duration::from_secs(ttl_secs as u64),
                    fence,
                }));
            }
            Ok(Err(current)) => {
                leader.send_if_modified(|l| {
                    let changed = l.as_deref() != Some(current.as_str());
                    *l = Some(current.clone());
                    changed
                });
                if current != seen {
                    tracing::info!(leader = %current, prefix = %options.prefix, "standby: another coordinator is the leader; waiting for its lease to end");
                    seen = current;
                }
            }
            Err(e) => {
                tracing::warn!(error = %etcd_error("cannot campaign for leadership", options, e), "standby: retrying");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            () = tokio::time::sleep(RETRY) => {}
        }
    }
}

/// One attempt (a win also records the leader change under `change_key`): `Ok((lease, create
/// revision))` when won, `Err(leader's address)` when another
/// coordinator holds the key.
async fn try_once(
    client: &EtcdClient,
    key: &[u8],
    change_key: &[u8],
    advertise: &str,
    ttl: i64,
) -> Result<Result<(i64, i64), String>, tonic::Status> {
    let current = client
        .range(RangeRequest {
            key: key.to_vec(),
            ..Default::default()
        })
        .await?;
    if let Some(kv) = current.kvs.first() {
        return Ok(Err(String::from_utf8_lossy(&kv.value).into_owned()));
    }
    let lease = client.lease_grant(ttl).await?;
    let create = TxnRequest {
        compare: vec![Compare {
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Create as i32,
            key: key.to_vec(),
            target_union: Some(compare::TargetUnion::CreateRevision(0)),
            ..Default::default()
        }],
        success: vec![
            RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: key.to_vec(),
                    value: advertise.as_bytes().to_vec(),
                    lease,
                    ..Default::default()
                })),
            },
            // The last leader change outlives the lease: `labctl status` shows it.
            RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: change_key.to_vec(),
                    value: super::presence::LeaderChange::now(advertise).to_json(),
                    ..Default::default()
                })),
            },
        ],
        failure: vec![RequestOp {
            request: Some(request_op::Request::RequestRange(RangeRequest {
                key: key.to_vec(),
                ..Default::default()
            })),
        }],
    };
    let answer = client.txn(create).await?;
    if answer.succeeded {
        // The put created the key: its create revision is the transaction's revision.
        let revision = answer.header.map_or(0, |h| h.revision);
        return Ok(Ok((lease, revision)));
    }
    let _ = client.lease_revoke(lease).await;
    let leader = answer
        .responses
        .into_iter()
        .find_map(|r| match r.response {
            Some(lab_proto::etcd::response_op::Response::ResponseRange(range)) => range
                .kvs
                .first()
                .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()),
            _ => None,
        })
        .unwrap_or_else(|| "(unknown)".into());
    Ok(Err(leader))
}

impl Leadership {
    /// The condition every commit carries.
    pub fn fence(&self) -> Fence {
        self.fence.clone()
    }

    /// Renews the lease every TTL/3 until `shutdown` (then `None`) or until leadership is lost:
    /// `Some(why)` when etcd says the lease is gone or no renewal got through for a TTL.
    pub async fn hold(&self, shutdown: &CancellationToken) -> Option<String> {
        let every = self.ttl / 3;
        let mut renewed = Instant::now();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return None,
                () = tokio::time::sleep(every) => {}
            }
            match self.client.lease_keep_alive(self.lease).await {
                Ok(ttl) if ttl > 0 => renewed = Instant::now(),
                Ok(_) => {
                    return Some(format!(
                        "the leader lease {:x} expired (this coordinator was paused or cut off from etcd for longer than the {:?} TTL)",
                        self.lease, self.ttl
                    ))
                }
                Err(e) if renewed.elapsed() >= self.ttl => {
                    return Some(format!(
                        "no lease renewal reached etcd for {:?} (the TTL): {}",
                        renewed.elapsed(),
                        e.message()
                    ))
                }
                Err(e) => {
                    tracing::warn!(error = %e.message(), "renewing the leader lease failed; retrying");
                }
            }
        }
    }

    /// Gives leadership up at once (the lease and the leader key go), so that a standby need
    /// not wait for the TTL.
    pub async fn resign(&self) {
        if let Err(e) = self.client.lease_revoke(self.lease).await {
            tracing::warn!(error = %e.message(), "cannot revoke the leader lease; a standby takes over when it expires");
        }
    }
}
