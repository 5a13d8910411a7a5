//! Issuing certificates: the CA signs one for an identity and the store records it (flushed)
//! before anyone gets it, since `auth` accepts only certificates it has a record of. The one
//! way nodes (enroll, renew), operators (create, renew) and init's first admin get theirs.

use std::time::Duration;

use lab_proto::identity::SpiffeId;
use lab_proto::store::v1::CertificateRecord;

use crate::ca::{Ca, Issued};
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::store::Store;

/// The public key a certificate is issued for.
pub enum PublicKey<'a> {
    /// From a certificate signing request (PEM) that a peer sent.
    Csr(&'a str),
    /// A key pair the coordinator made (init's admin).
    Pair(&'a rcgen::KeyPair),
}

/// Issues a certificate for `id` valid for `ttl` and records it.
pub async fn issue(
    ca: &Ca,
    store: &Store,
    id: &SpiffeId,
    key: PublicKey<'_>,
    ttl: Duration,
) -> Result<Issued, ApiError> {
    let issued = match key {
        PublicKey::Csr(pem) => ca.sign_csr(id, pem, ttl)?,
        PublicKey::Pair(pair) => ca.issue_client(id, pair, ttl)?,
    };
    store
        .put_certificate(CertificateRecord {
            serial: issued.info.serial_hex.clone(),
            identity_uri: id.uri(),
            not_after_unix_ms: issued.info.not_after_unix_ms,
            issued_unix_ms: now_ms(),
            ..Default::default()
        })
        .await?;
    Ok(issued)
}
