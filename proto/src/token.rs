//! The enrollment token format: `lab1.<id>.<secret>.<ca-pin>`.
//!
//! `id` (16 hex digits) names the token in listings, `secret` (32 random bytes, base64url) proves
//! possession and is stored only as its SHA-256, and `ca-pin` is the SHA-256 (hex) of the CA
//! certificate (DER), which the agent checks before it trusts anything the coordinator says.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

const PREFIX: &str = "lab1";

/// Why a token string is not a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed enrollment token: {0}; copy the whole output of 'labctl token create'")]
pub struct TokenFormatError(&'static str);

/// A parsed enrollment token.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrollToken {
    /// Public id, 16 lowercase hex digits.
    pub id: String,
    /// The secret, 32 bytes.
    pub secret: [u8; 32],
    /// SHA-256 of the CA certificate (DER).
    pub ca_pin: [u8; 32],
}

impl fmt::Debug for EnrollToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollToken")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("ca_pin", &hex::encode(self.ca_pin))
            .finish()
    }
}

impl EnrollToken {
    /// SHA-256 of the secret, the only form in which the coordinator stores it.
    pub fn secret_sha256(&self) -> [u8; 32] {
        Sha256::digest(self.secret).into()
    }
}

impl fmt::Display for EnrollToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}.{}.{}.{}",
            self.id,
            URL_SAFE_NO_PAD.encode(self.secret),
            hex::encode(self.ca_pin)
        )
    }
}

impl FromStr for EnrollToken {
    type Err = TokenFormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.len() > 256 {
            return Err(TokenFormatError("it is too long"));
        }
        let mut parts = s.split('.');
        let (Some(prefix), Some(id), Some(secret), Some(pin), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(TokenFormatError("expected four parts separated by '.'"));
        };
        if prefix != PREFIX {
            return Err(TokenFormatError("it does not start with 'lab1.'"));
        }
        if id.len() != 16
            || !id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Err(TokenFormatError("the id is not 16 lowercase hex digits"));
        }
        let secret: [u8; 32] = URL_SAFE_NO_PAD
            .decode(secret)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or(TokenFormatError("the secret is not 32 bytes of base64url"))?;
        let ca_pin: [u8; 32] = hex::decode(pin)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or(TokenFormatError("the CA pin is not a SHA-256 in hex"))?;
        Ok(EnrollToken {
            id: id.to_owned(),
            secret,
            ca_pin,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EnrollToken {
        EnrollToken {
            id: "0123456789abcdef".into(),
            secret: [7; 32],
            ca_pin: [9; 32],
        }
    }

    #[test]
    fn round_trips() {
        let t = sample();
        assert_eq!(t.to_string().parse::<EnrollToken>().unwrap(), t);
    }

    #[test]
    fn debug_hides_the_secret() {
        let s = format!("{:?}", sample());
        assert!(s.contains("redacted"));
        assert!(!s.contains(&URL_SAFE_NO_PAD.encode([7u8; 32])));
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        let good = sample().to_string();
        let cases = [
            String::new(),
            "lab1".into(),
            good.replacen("lab1", "lab2", 1),
            good.replacen("0123456789abcdef", "0123456789ABCDEF", 1),
            format!("{good}.x"),
            good[..good.len() - 2].to_string(),
            "x".repeat(300),
        ];
        for case in cases {
            assert!(case.parse::<EnrollToken>().is_err(), "{case} accepted");
        }
    }
}
