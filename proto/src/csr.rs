//! Key pairs and certificate signing requests made by the party that will hold the key
//! (agents on enroll and renew, operators on `labctl user create`). The private key never leaves
//! the machine that made it; the CSR carries no names because the CA writes the identity.

use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256};

/// A fresh ECDSA P-256 key pair, PKCS#8 PEM.
pub fn new_key_pem() -> Result<String, rcgen::Error> {
    Ok(KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?.serialize_pem())
}

/// A CSR (PEM) signed by `key_pem`, without names.
pub fn csr_for_key(key_pem: &str) -> Result<String, rcgen::Error> {
    let key = KeyPair::from_pem(key_pem)?;
    let params = CertificateParams::new(Vec::<String>::new())?;
    params.serialize_request(&key)?.pem()
}
