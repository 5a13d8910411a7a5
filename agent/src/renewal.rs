//! When to renew the node certificate (at two thirds of its lifetime) and how: a fresh key, a
//! CSR without names, the `Renew` RPC over the current mTLS channel, and an atomic save.

use lab_proto::client::agent_client;
use lab_proto::csr::{csr_for_key, new_key_pem};
use lab_proto::pem::{cert_info_from_pem, CertInfo};
use lab_proto::tls::ClientIdentity;
use lab_proto::v1::RenewRequest;
use tonic::transport::Channel;

use crate::datadir::AgentDir;

/// The moment (Unix ms) at which a certificate valid from `not_before` to `not_after` is renewed.
pub fn renew_at_ms(info: &CertInfo) -> i64 {
    let life = info.not_after_unix_ms - info.not_before_unix_ms;
    info.not_before_unix_ms + life * 2 / 3
}

/// Renews over `channel` and saves the new key and certificate; returns the new expiry.
pub async fn renew(channel: Channel, dir: &AgentDir) -> anyhow::Result<i64> {
    let key_pem = new_key_pem()?;
    let csr_pem = csr_for_key(&key_pem)?;
    let resp = agent_client(channel)
        .renew(RenewRequest { csr_pem })
        .await
        .map_err(|s| match crate::session::refusal(&s) {
            Some(refused) => anyhow::Error::new(refused),
            None => anyhow::anyhow!("certificate renewal refused: {}", s.message()),
        })?
        .into_inner();
    let info = cert_info_from_pem(&resp.certificate_pem)?;
    dir.save_identity(&ClientIdentity {
        cert_pem: resp.certificate_pem,
        key_pem,
    })?;
    Ok(info.not_after_unix_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renews_at_two_thirds() {
        let info = CertInfo {
            serial_hex: String::new(),
            not_before_unix_ms: 1_000,
            not_after_unix_ms: 4_000,
            uri_sans: vec![],
        };
        assert_eq!(renew_at_ms(&info), 3_000);
    }
}
