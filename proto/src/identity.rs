//! Identities of peers: SPIFFE-style URI SANs for nodes and operators, and the name rules.
//!
//! `spiffe://<trust-domain>/node/<name>` identifies an agent, `spiffe://<trust-domain>/operator/<user>`
//! a person. The coordinator writes these into certificates itself; nothing in a message body is
//! ever taken as an identity.

use std::fmt;
use std::str::FromStr;

use crate::limits::MAX_NAME_LEN;

/// What is wrong with a name or an identity URI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The name breaks the naming rule.
    #[error("invalid name '{name}': {why}; use 1-63 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit")]
    BadName {
        /// The offending name.
        name: String,
        /// What rule it breaks.
        why: &'static str,
    },
    /// The URI is not one of ours.
    #[error("'{0}' is not a labfleet identity (spiffe://<trust-domain>/node/<name> or .../operator/<user>)")]
    BadUri(String),
}

/// Checks a node name, user name or trust domain against the shared rule (DNS-like labels).
pub fn validate_name(name: &str) -> Result<(), IdentityError> {
    let bad = |why| {
        Err(IdentityError::BadName {
            name: name.chars().take(80).collect(),
            why,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("it is longer than 63 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return bad("it contains a character other than a-z, 0-9, '-' and '.'");
    }
    let first_last_ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = name.as_bytes();
    if !first_last_ok(bytes[0]) || !first_last_ok(bytes[bytes.len() - 1]) {
        return bad("it must start and end with a letter or digit");
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $ty(String);

        impl $ty {
            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $ty {
            type Err = IdentityError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                validate_name(s)?;
                Ok(Self(s.to_owned()))
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// The name of a node (machine), unique in the fleet.
    NodeName
);
name_type!(
    /// The name of an operator (person or script).
    UserName
);
name_type!(
    /// The trust domain of a coordinator's CA, e.g. `lab.local`.
    TrustDomain
);

/// Who a peer is, as written in its certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// An agent.
    Node(NodeName),
    /// A person or script using the operator API.
    Operator(UserName),
}

/// An identity together with the trust domain it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpiffeId {
    /// The CA's trust domain.
    pub trust_domain: TrustDomain,
    /// The peer inside it.
    pub identity: Identity,
}

impl SpiffeId {
    /// The URI SAN form.
    pub fn uri(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.identity {
            Identity::Node(n) => write!(f, "spiffe://{}/node/{}", self.trust_domain, n),
            Identity::Operator(u) => write!(f, "spiffe://{}/operator/{}", self.trust_domain, u),
        }
    }
}

impl FromStr for SpiffeId {
    type Err = IdentityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || IdentityError::BadUri(s.chars().take(200).collect());
        let rest = s.strip_prefix("spiffe://").ok_or_else(bad)?;
        let mut parts = rest.split('/');
        let (Some(domain), Some(kind), Some(name), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let trust_domain = domain.parse().map_err(|_| bad())?;
        let identity = match kind {
            "node" => Identity::Node(name.parse().map_err(|_| bad())?),
            "operator" => Identity::Operator(name.parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        };
        Ok(SpiffeId {
            trust_domain,
            identity,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_dns_like_rule() {
        assert!(validate_name("web-1").is_ok());
        assert!(validate_name("pve.home").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("-web").is_err());
        assert!(validate_name("web-").is_err());
        assert!(validate_name("Web").is_err());
        assert!(validate_name("a/b").is_err());
        assert!(validate_name(&"a".repeat(64)).is_err());
        assert!(validate_name(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn spiffe_ids_round_trip() {
        for uri in ["spiffe://lab.local/node/n1", "spiffe://lab/operator/admin"] {
            let id: SpiffeId = uri.parse().unwrap();
            assert_eq!(id.to_string(), uri);
        }
    }

    #[test]
    fn foreign_uris_are_rejected() {
        for uri in [
            "https://lab/node/n1",
            "spiffe://lab/node",
            "spiffe://lab/node/n1/x",
            "spiffe://lab/admin/n1",
            "spiffe://lab/node/N1",
            "spiffe://lab/node/../x",
        ] {
            assert!(uri.parse::<SpiffeId>().is_err(), "{uri} accepted");
        }
    }
}
