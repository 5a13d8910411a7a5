//! The one check a standby makes before answering `ListCoordinators`: that the operator's user
//! and certificate records say the caller is neither revoked nor deleted, read straight from
//! etcd (a standby has no mirror of the trees).
//!
//! What this module must not do: grant anything beyond that read-only listing; every other
//! decision about callers is `auth`'s, on the leader.

use lab_proto::etcd::RangeRequest;
use lab_proto::store::v1::{CertificateRecord, UserRecord};

use super::etcd_client::EtcdClient;
use super::etcd_kv::{record_key, EtcdOptions, INLINE};
use super::kv::TreeId;
use super::{cert_key, decode, StoreError};

/// One record of `tree` read from etcd (`None`: absent). Users and certificates are small, so
/// they are always stored whole.
async fn read<T: super::Versioned>(
    client: &EtcdClient,
    options: &EtcdOptions,
    tree: TreeId,
    key: &[u8],
) -> Result<Option<T>, StoreError> {
    let answer = client
        .range(RangeRequest {
            key: record_key(options.prefix.as_bytes(), tree, key),
            ..Default::default()
        })
        .await
        .map_err(|e| {
            StoreError::Etcd(format!(
                "cannot read the operator's records at {}: {}",
                options.url(),
                e.message()
            ))
        })?;
    let Some(kv) = answer.kvs.into_iter().next() else {
        return Ok(None);
    };
    match kv.value.split_first() {
        Some((&INLINE, v)) => decode(tree.name(), v).map(Some),
        _ => Err(StoreError::Etcd(format!(
            "record of tree '{}' is not stored whole",
            tree.name()
        ))),
    }
}

/// `Ok(())` when user `user` exists, is not revoked, and its certificate `serial_hex` (of
/// `identity_uri`) was issued here and is not revoked; `Err(why)` otherwise.
pub async fn operator_may_list(
    options: &EtcdOptions,
    user: &str,
    identity_uri: &str,
    serial_hex: &str,
) -> Result<Result<(), String>, StoreError> {
    let client = EtcdClient::new(options)?;
    let cert: Option<CertificateRecord> = read(
        &client,
        options,
        TreeId::Certificates,
        &cert_key(identity_uri, serial_hex),
    )
    .await?;
    if cert.is_none_or(|c| c.revoked) {
        return Ok(Err(format!(
            "certificate {serial_hex} of '{identity_uri}' has been revoked or was never issued here"
        )));
    }
    let rec: Option<UserRecord> = read(&client, options, TreeId::Users, user.as_bytes()).await?;
    Ok(match rec {
        None => Err(format!("user '{user}' does not exist")),
        Some(r) if r.revoked_unix_ms != 0 => Err(format!("user '{user}' has been revoked")),
        Some(_) => Ok(()),
    })
}
