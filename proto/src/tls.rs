//! TLS configuration both ends share: rustls with the ring provider, TLS 1.3 and 1.2, ALPN `h2`.
//!
//! Clients either trust one CA (normal mTLS operation) or, while enrolling, accept a server only
//! if the chain it presents contains a CA certificate whose SHA-256 equals the pin from the token
//! (kubeadm's discovery-token-ca-cert-hash, done inside the handshake).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::pem::{certs_from_pem, key_from_pem, PemError};

/// A TLS setup that could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Certificate or key material did not parse.
    #[error(transparent)]
    Pem(#[from] PemError),
    /// rustls refused the material.
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The CA could not be used as a trust root.
    #[error("tls trust root: {0}")]
    Verifier(String),
}

/// The crypto provider of every labfleet TLS endpoint (ring, so no C toolchain beyond cc is
/// needed), preferring TLS 1.3 with AES-128-GCM and SHA-256: its transcript hash and key schedule
/// run on the CPU's SHA-256 instructions where ring's SHA-384 has none, which is a measurable part
/// of a coordinator's handshake cost in a connect storm. The other suites stay available.
pub fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    Arc::new(provider)
}

/// SHA-256 of a DER certificate, the CA pin carried by enrollment tokens.
pub fn cert_sha256(der: &[u8]) -> [u8; 32] {
    Sha256::digest(der).into()
}

/// Client identity material: certificate chain and private key, both PEM.
#[derive(Clone)]
pub struct ClientIdentity {
    /// Certificate chain, leaf first.
    pub cert_pem: String,
    /// PKCS#8 private key.
    pub key_pem: String,
}

/// Client config trusting only `ca_pem`, presenting `identity` when given.
pub fn client_config(
    ca_pem: &str,
    identity: Option<&ClientIdentity>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs_from_pem(ca_pem)? {
        roots.add(cert)?;
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(id) => builder
            .with_client_auth_cert(certs_from_pem(&id.cert_pem)?, key_from_pem(&id.key_pem)?)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The coordinator's server config: presents `chain_pem` (leaf first, then the CA, so enrolling
/// agents can check their pin), and verifies client certificates against `client_ca_pem` when
/// one is presented; a client without one is let through (Bootstrap and Enroll need none, the
/// coordinator's auth layer requires one for everything else).
pub fn server_config(
    chain_pem: &str,
    key_pem: &str,
    client_ca_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certs_from_pem(client_ca_pem)? {
        roots.add(cert)?;
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs_from_pem(chain_pem)?, key_from_pem(key_pem)?)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// Client config for enrollment: no client certificate, server trusted through the CA pin.
pub fn pinned_client_config(ca_pin: [u8; 32]) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCaVerifier {
            pin: ca_pin,
            provider,
        }))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts a server whose presented chain holds a CA with the pinned hash, and whose leaf that CA
/// signed for the name we dialled.
#[derive(Debug)]
struct PinnedCaVerifier {
    pin: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| cert_sha256(c) == self.pin)
            .ok_or_else(|| {
                rustls::Error::General(
                    "the coordinator's CA does not match the pin in the enrollment token".into(),
                )
            })?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let inner =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        inner.verify_server_cert(end_entity, &[], server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_128_gcm_sha256_comes_first_and_no_suite_is_lost() {
        let ours: Vec<_> = provider().cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(ours[0], rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        let mut default: Vec<_> = rustls::crypto::ring::default_provider()
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect();
        let mut sorted = ours.clone();
        sorted.sort_by_key(|s| u16::from(*s));
        default.sort_by_key(|s| u16::from(*s));
        assert_eq!(sorted, default);
    }
}
