//! The coordinator's private CA (ECDSA P-256, rcgen): creates itself, issues node, operator and
//! server certificates, and writes each identity itself.
//!
//! Architecture invariant: nothing else in labfleet signs certificates, and a CSR contributes only
//! its public key (after its signature is checked); a CSR that asks for a URI other than the one
//! being granted is refused so the requester learns why.

use std::net::IpAddr;
use std::time::Duration;

use lab_proto::identity::SpiffeId;
use lab_proto::pem::{cert_info, CertInfo};
use lab_proto::tls::cert_sha256;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
    SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use time::OffsetDateTime;

/// Validity of the CA certificate.
const CA_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Certificates start up to this far in the past, to tolerate clock skew between machines.
const MAX_BACKDATE: Duration = Duration::from_secs(300);

/// A certificate operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// rcgen refused (bad key, unsupported algorithm).
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// The CSR did not parse or its signature is wrong.
    #[error("invalid certificate signing request: {0}")]
    BadCsr(String),
    /// The CSR asks for a different identity.
    #[error("the certificate signing request asks for '{asked}', but this request can only grant '{granted}'")]
    IdentityMismatch {
        /// URI SAN in the CSR.
        asked: String,
        /// Identity the coordinator grants.
        granted: String,
    },
    /// The issued certificate could not be read back.
    #[error(transparent)]
    Pem(#[from] lab_proto::pem::PemError),
}

/// A certificate just issued.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its serial and validity.
    pub info: CertInfo,
}

/// The loaded CA.
pub struct Ca {
    cert_pem: String,
    cert_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // positive INTEGER
    bytes[0] |= 0x01; // and never shorter than 16 bytes
    SerialNumber::from_slice(&bytes)
}

fn validity(params: &mut CertificateParams, ttl: Duration) {
    // Never more than a tenth of the lifetime, so renewal at 2/3 stays well after issuance.
    let backdate = MAX_BACKDATE.min(ttl / 10);
    let now = OffsetDateTime::now_utc();
    params.not_before = now - backdate;
    params.not_after = now + ttl;
}

impl Ca {
    /// Makes a new CA for `trust_domain`; returns it and its private key (PEM).
    pub fn create(trust_domain: &str) -> Result<(Ca, String), CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "labfleet");
        dn.push(DnType::CommonName, format!("labfleet CA {trust_domain}"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial());
        validity(&mut params, CA_TTL);
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        let ca = Ca::load(&cert.pem(), &key_pem)?;
        Ok((ca, key_pem))
    }

    /// Loads the CA from its certificate and key (PEM).
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Ca, CaError> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        let certs = lab_proto::pem::certs_from_pem(cert_pem)?;
        Ok(Ca {
            cert_pem: cert_pem.to_owned(),
            cert_der: certs[0].to_vec(),
            issuer,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// SHA-256 of the CA certificate (DER), the pin in enrollment tokens.
    pub fn pin(&self) -> [u8; 32] {
        cert_sha256(&self.cert_der)
    }

    /// Issues a client certificate for `id` to the holder of `public_key`.
    pub fn issue_client(
        &self,
        id: &SpiffeId,
        public_key: &impl PublicKeyData,
        ttl: Duration,
    ) -> Result<Issued, CaError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, id.to_string());
        params.distinguished_name = dn;
        params.subject_alt_names = vec![SanType::URI(id.uri().try_into()?)];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        validity(&mut params, ttl);
        self.finish(params.signed_by(public_key, &self.issuer)?)
    }

    /// Checks a CSR and issues a client certificate for `id` to its key.
    pub fn sign_csr(&self, id: &SpiffeId, csr_pem: &str, ttl: Duration) -> Result<Issued, CaError> {
        if csr_pem.len() > 16 * 1024 {
            return Err(CaError::BadCsr("it is larger than 16 KiB".into()));
        }
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| CaError::BadCsr(e.to_string()))?;
        let granted = id.uri();
        for san in &csr.params.subject_alt_names {
            if let SanType::URI(uri) = san {
                if uri.as_str() != granted {
                    return Err(CaError::IdentityMismatch {
                        asked: uri.as_str().to_owned(),
                        granted,
                    });
                }
            }
        }
        self.issue_client(id, &csr.public_key, ttl)
    }

    /// Issues the coordinator's TLS server certificate for `names` (DNS names or IP addresses).
    pub fn issue_server(
        &self,
        key: &KeyPair,
        names: &[String],
        ttl: Duration,
    ) -> Result<Issued, CaError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "labfleet coordinator");
        params.distinguished_name = dn;
        for name in names {
            let san = match name.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(name.as_str().try_into()?),
            };
            if !params.subject_alt_names.contains(&san) {
                params.subject_alt_names.push(san);
            }
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        validity(&mut params, ttl);
        self.finish(params.signed_by(key, &self.issuer)?)
    }

    fn finish(&self, cert: rcgen::Certificate) -> Result<Issued, CaError> {
        Ok(Issued {
            info: cert_info(cert.der())?,
            cert_pem: cert.pem(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_proto::csr::{csr_for_key, new_key_pem};
    use lab_proto::identity::{Identity, SpiffeId};

    fn node(name: &str) -> SpiffeId {
        SpiffeId {
            trust_domain: "lab.test".parse().unwrap(),
            identity: Identity::Node(name.parse().unwrap()),
        }
    }

    #[test]
    fn csr_gets_the_granted_identity_only() {
        let (ca, key_pem) = Ca::create("lab.test").unwrap();
        let reloaded = Ca::load(ca.cert_pem(), &key_pem).unwrap();
        assert_eq!(reloaded.pin(), ca.pin());
        let csr = csr_for_key(&new_key_pem().unwrap()).unwrap();
        let issued = ca
            .sign_csr(&node("n1"), &csr, Duration::from_secs(60))
            .unwrap();
        assert_eq!(issued.info.uri_sans, vec!["spiffe://lab.test/node/n1"]);
        let life = issued.info.not_after_unix_ms - issued.info.not_before_unix_ms;
        assert_eq!(life, (60 + 6) * 1000);
    }

    #[test]
    fn csr_asking_for_another_identity_is_refused() {
        let (ca, _) = Ca::create("lab.test").unwrap();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![SanType::URI(
            "spiffe://lab.test/operator/admin".try_into().unwrap(),
        )];
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        let err = ca
            .sign_csr(&node("n1"), &csr, Duration::from_secs(60))
            .unwrap_err();
        assert!(matches!(err, CaError::IdentityMismatch { .. }), "{err}");
    }

    #[test]
    fn garbage_csr_is_a_clear_error() {
        let (ca, _) = Ca::create("lab.test").unwrap();
        let err = ca
            .sign_csr(
                &node("n1"),
                "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
                Duration::from_secs(60),
            )
            .unwrap_err();
        assert!(
            err.to_string().contains("certificate signing request"),
            "{err}"
        );
    }
}
