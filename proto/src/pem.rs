//! PEM decoding and the few certificate fields labfleet reads (serial, validity, URI SANs).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// A PEM or certificate that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    /// No certificate or key in the text.
    #[error("no {0} found in PEM data")]
    Missing(&'static str),
    /// The PEM or DER did not parse.
    #[error("cannot parse {what}: {why}")]
    Parse {
        /// What was being parsed.
        what: &'static str,
        /// The parser's complaint.
        why: String,
    },
}

/// All certificates in a PEM text, in order.
pub fn certs_from_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError::Parse {
            what: "certificate PEM",
            why: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(PemError::Missing("certificate"));
    }
    Ok(certs)
}

/// The first private key in a PEM text.
pub fn key_from_pem(pem: &str) -> Result<PrivateKeyDer<'static>, PemError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => PemError::Missing("private key"),
        other => PemError::Parse {
            what: "private key PEM",
            why: other.to_string(),
        },
    })
}

/// The fields of a certificate labfleet decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Serial number, lowercase hex.
    pub serial_hex: String,
    /// Start of validity, Unix milliseconds.
    pub not_before_unix_ms: i64,
    /// End of validity, Unix milliseconds.
    pub not_after_unix_ms: i64,
    /// URI subject alternative names.
    pub uri_sans: Vec<String>,
}

/// Reads serial, validity and URI SANs from a DER certificate.
pub fn cert_info(der: &[u8]) -> Result<CertInfo, PemError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| PemError::Parse {
        what: "certificate",
        why: e.to_string(),
    })?;
    let validity = cert.validity();
    let mut uri_sans = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::URI(uri) = name {
                uri_sans.push((*uri).to_owned());
            }
        }
    }
    Ok(CertInfo {
        serial_hex: hex::encode(cert.raw_serial()),
        not_before_unix_ms: validity.not_before.timestamp() * 1000,
        not_after_unix_ms: validity.not_after.timestamp() * 1000,
        uri_sans,
    })
}

/// Reads the first certificate of a PEM text.
pub fn cert_info_from_pem(pem: &str) -> Result<CertInfo, PemError> {
    let certs = certs_from_pem(pem)?;
    cert_info(&certs[0])
}
