//! The few etcd v3 calls the etcd store makes (Range, Txn, and the Lease calls of leader
//! election) over tonic, with the
//! generated types of `lab_proto::etcd` (etcd's own wire format; the protobuf code is
//! generated in Rust like the rest of labfleet's).
//!
//! Several members: one lazily connected channel per member; a call goes to the member that
//! answered last and moves on to the next when a member cannot be reached or has no leader
//! (`UNAVAILABLE`, a timeout), until every member was tried once. Moving on is safe for the
//! store's transactions: each only puts and deletes whole keys, so applying one twice leaves
//! the same keys.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lab_proto::etcd::{
    kv_client::KvClient, lease_client::LeaseClient, LeaseGrantRequest, LeaseKeepAliveRequest,
    LeaseRevokeRequest, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::etcd_kv::EtcdOptions;
use super::StoreError;

/// How long one request to one member may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(4);
/// How long connecting to one member may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest response accepted (a page of large value chunks).
const MAX_RESPONSE_BYTES: usize = 128 * 1024 * 1024;
/// Largest request sent (a transaction is kept below etcd's 1.5 MiB anyway).
const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// A client of one etcd cluster.
pub struct EtcdClient {
    /// One channel per member, in the order given.
    members: Vec<(String, Channel)>,
    /// The member that answered last.
    current: AtomicUsize,
}

fn read(path: &PathBuf) -> Result<Vec<u8>, StoreError> {
    std::fs::read(path).map_err(|e| {
        StoreError::Open(format!(
            "cannot read {} for etcd's TLS: {e}",
            path.display()
        ))
    })
}

/// Whether another member may answer what this one could not.
fn try_next(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Unknown
            | tonic::Code::Cancelled
    )
}

impl EtcdClient {
    /// Channels to every member of `options` (nothing is dialed yet).
    pub fn new(options: &EtcdOptions) -> Result<Self, StoreError> {
        let tls = match (&options.ca, &options.cert, &options.key) {
            (None, None, None) => None,
            (Some(ca), cert, key) => {
                let mut tls =
                    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?));
                match (cert, key) {
                    (Some(c), Some(k)) => {
                        tls = tls.identity(Identity::from_pem(read(c)?, read(k)?))
                    }
                    (None, None) => {}
                    _ => {
                        return Err(StoreError::Open(
                            "--etcd-cert and --etcd-key go together".into(),
                        ))
                    }
                }
                Some(tls)
            }
            _ => {
                return Err(StoreError::Open(
                    "--etcd-cert and --etcd-key need --etcd-ca (the CA of etcd's members)".into(),
                ))
            }
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut members = Vec::new();
        for member in &options.endpoints {
            let url = format!("{scheme}://{member}");
            let bad = |e: tonic::transport::Error| {
                StoreError::Open(format!("etcd member '{member}': {e}"))
            };
            let mut endpoint = Endpoint::from_shared(url.clone())
                .map_err(bad)?
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(REQUEST_TIMEOUT)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(Duration::from_secs(5));
            if let Some(tls) = &tls {
                endpoint = endpoint.tls_config(tls.clone()).map_err(bad)?;
            }
            members.push((member.clone(), endpoint.connect_lazy()));
        }
        Ok(EtcdClient {
            members,
            current: AtomicUsize::new(0),
        })
    }

    /// Runs `call` against the member that answered last, then the others in turn.
    async fn call<T, F, Fut>(&self, call: F) -> Result<T, tonic::Status>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let first = self.current.load(Ordering::Relaxed);
        let mut errors = Vec::new();
        let mut unreachable = 0;
        for i in 0..self.members.len() {
            let at = (first + i) % self.members.len();
            let (name, channel) = &self.members[at];
            let answer = tokio::time::timeout(REQUEST_TIMEOUT, call(channel.clone()))
                .await
                .unwrap_or_else(|_| {
                    Err(tonic::Status::deadline_exceeded(format!(
                        "no answer within {REQUEST_TIMEOUT:?}"
                    )))
                });
            match answer {
                Ok(t) => {
                    self.current.store(at, Ordering::Relaxed);
                    return Ok(t);
                }
                Err(status) if try_next(&status) => {
                    tracing::debug!(member = %name, error = %status.message(), "etcd member did not answer; trying the next");
                    errors.push(format!("{name}: {}", status.message()));
                    if status.code() == tonic::Code::Unavailable {
                        unreachable += 1;
                    }
                }
                Err(status) => return Err(status),
            }
        }
        Err(tonic::Status::unavailable(format!(
            "no etcd member answered ({}){}",
            errors.join("; "),
            quorum_hint(unreachable, self.members.len())
        )))
    }

    /// One page of a range read.
    pub async fn range(&self, request: RangeRequest) -> Result<RangeResponse, tonic::Status> {
        self.call(|ch| {
            let request = request.clone();
            async move {
                let mut kv = KvClient::new(ch).max_decoding_message_size(MAX_RESPONSE_BYTES);
                Ok(kv.range(request).await?.into_inner())
            }
        })
        .await
    }

    /// A transaction.
    pub async fn txn(&self, request: TxnRequest) -> Result<TxnResponse, tonic::Status> {
        self.call(|ch| {
            let request = request.clone();
            async move {
                let mut kv = KvClient::new(ch).max_encoding_message_size(MAX_REQUEST_BYTES);
                Ok(kv.txn(request).await?.into_inner())
            }
        })
        .await
    }

    /// Grants a lease of `ttl` seconds; returns its id.
    pub async fn lease_grant(&self, ttl: i64) -> Result<i64, tonic::Status> {
        self.call(|ch| async move {
            let request = LeaseGrantRequest {
                ttl,
                ..Default::default()
            };
            let answer = LeaseClient::new(ch)
                .lease_grant(request)
                .await?
                .into_inner();
            if !answer.error.is_empty() {
                return Err(tonic::Status::failed_precondition(answer.error));
            }
            Ok(answer.id)
        })
        .await
    }

    /// Renews lease `id` once; returns its remaining TTL in seconds (0: the lease is gone).
    pub async fn lease_keep_alive(&self, id: i64) -> Result<i64, tonic::Status> {
        self.call(|ch| async move {
            let once = tokio_stream::once(LeaseKeepAliveRequest { id });
            let mut answers = LeaseClient::new(ch)
                .lease_keep_alive(once)
                .await?
                .into_inner();
            match answers.message().await? {
                Some(answer) => Ok(answer.ttl),
                None => Err(tonic::Status::unavailable(
                    "etcd closed the keep-alive stream without an answer",
                )),
            }
        })
        .await
    }

    /// Revokes lease `id` (its keys are deleted).
    pub async fn lease_revoke(&self, id: i64) -> Result<(), tonic::Status> {
        self.call(|ch| async move {
            LeaseClient::new(ch)
                .lease_revoke(LeaseRevokeRequest { id })
                .await?;
            Ok(())
        })
        .await
    }
}

/// What a failed round over every member says about etcd's quorum, for the error message.
fn quorum_hint(unreachable: usize, members: usize) -> String {
    if members > 1 && unreachable * 2 >= members {
        format!(
            "; {unreachable} of etcd's {members} members are unreachable, so etcd has no quorum and commits nothing until a majority is back"
        )
    } else if unreachable < members {
        "; etcd did not answer in time: it may have lost its quorum (too many members down) or be overloaded".to_string()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod quorum_hint_tests {
    use super::quorum_hint;

    #[test]
    fn names_a_lost_quorum_or_a_slow_etcd() {
        assert!(quorum_hint(2, 3)
            .contains("2 of etcd's 3 members are unreachable, so etcd has no quorum"));
        assert!(quorum_hint(1, 3).contains("may have lost its quorum"));
        assert!(quorum_hint(0, 1).contains("did not answer in time"));
        assert_eq!(quorum_hint(1, 1), "");
    }
}
