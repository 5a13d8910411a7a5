//! A node's age recipient: the public half of the X25519 age key every agent keeps in its data
//! directory, which operators encrypt secrets to (SOPS files). The agent reports it in `Hello`,
//! the coordinator stores it only after [`AgeRecipient::from_str`] accepted it, and labctl
//! prints it. The format is age's: `age1` followed by the bech32 encoding (lowercase, the
//! original bech32 checksum, not bech32m) of the 32-byte X25519 public key.

use std::fmt;
use std::str::FromStr;

use bech32::primitives::decode::CheckedHrpstring;
use bech32::Bech32;

/// Length of an X25519 age recipient in characters: `age1`, 52 data characters, 6 checksum.
pub const RECIPIENT_LEN: usize = 62;

/// A validated X25519 age recipient (`age1…`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgeRecipient(String);

/// Why a text is not an X25519 age recipient.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{shown}' is not an age X25519 recipient ({why}); it looks like age1 followed by 58 lowercase letters and digits, as 'age-keygen -y' prints")]
pub struct BadRecipient {
    /// The text, cut to a sensible length.
    shown: String,
    /// What is wrong with it.
    why: &'static str,
}

impl AgeRecipient {
    /// The recipient as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for AgeRecipient {
    type Err = BadRecipient;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why| BadRecipient {
            shown: s.chars().take(80).collect(),
            why,
        };
        if !s.starts_with("age1") {
            return Err(bad("it does not start with age1"));
        }
        if s.len() != RECIPIENT_LEN {
            return Err(bad("it is not 62 characters long"));
        }
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad("it contains uppercase letters"));
        }
        let checked =
            CheckedHrpstring::new::<Bech32>(s).map_err(|_| bad("its bech32 checksum is wrong"))?;
        if checked.hrp().as_str() != "age" || checked.byte_iter().len() != 32 {
            return Err(bad("it does not hold a 32-byte key"));
        }
        Ok(AgeRecipient(s.to_owned()))
    }
}

impl fmt::Display for AgeRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The recipient of the age test key published with SOPS (age/keys.txt).
    const SOPS_TEST: &str = "age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw";

    #[test]
    fn a_real_recipient_is_accepted() {
        let r: AgeRecipient = SOPS_TEST.parse().unwrap();
        assert_eq!(r.to_string(), SOPS_TEST);
    }

    #[test]
    fn bad_recipients_say_why() {
        let flipped = SOPS_TEST.replace("yt3t", "yt3s");
        for (text, why) in [
            ("", "does not start with age1"),
            ("age1abc", "not 62 characters"),
            (&SOPS_TEST.to_uppercase(), "does not start with age1"),
            (
                &format!("age1{}", &SOPS_TEST[4..].to_uppercase()),
                "uppercase",
            ),
            (&flipped, "checksum"),
            (
                "age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq",
                "checksum",
            ),
        ] {
            let e = text.parse::<AgeRecipient>().unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn a_bech32m_checksum_is_refused() {
        // The same key with the bech32m checksum: age uses the original bech32.
        let data = CheckedHrpstring::new::<Bech32>(SOPS_TEST)
            .unwrap()
            .byte_iter()
            .collect::<Vec<u8>>();
        let hrp = bech32::Hrp::parse("age").unwrap();
        let m = bech32::encode::<bech32::Bech32m>(hrp, &data).unwrap();
        assert_eq!(m.len(), RECIPIENT_LEN);
        assert!(m.parse::<AgeRecipient>().is_err());
    }
}
