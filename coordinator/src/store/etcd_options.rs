//! Where an etcd store is: its members (`etcd://HOST:PORT[,HOST:PORT…]`), the files of etcd's
//! mutual TLS, and the key prefix of this fleet's data.

use std::path::PathBuf;

/// Where the etcd store is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdOptions {
    /// `HOST:PORT` of each member.
    pub endpoints: Vec<String>,
    /// CA certificate (PEM file) that signed the members' certificates; set to use TLS.
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM file) for etcd's mutual TLS.
    pub cert: Option<PathBuf>,
    /// Key of the client certificate (PEM file).
    pub key: Option<PathBuf>,
    /// Key prefix of this fleet's data (several fleets can share one cluster).
    pub prefix: String,
}

/// Default key prefix.
pub const DEFAULT_PREFIX: &str = "/labfleet/";

impl EtcdOptions {
    /// Parses `etcd://HOST:PORT[,HOST:PORT…]`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url.strip_prefix("etcd://").ok_or_else(|| {
            format!("store '{url}': use 'sled' or 'etcd://HOST:PORT[,HOST:PORT…]'")
        })?;
        let endpoints: Vec<String> = rest
            .trim_end_matches('/')
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect();
        if endpoints.is_empty() {
            return Err(format!(
                "store '{url}' names no etcd member; use etcd://HOST:PORT[,HOST:PORT…]"
            ));
        }
        for e in &endpoints {
            let port = e.rsplit_once(':').map(|(_, p)| p.parse::<u16>());
            if !matches!(port, Some(Ok(_))) {
                return Err(format!("store '{url}': etcd member '{e}' is not HOST:PORT"));
            }
        }
        Ok(EtcdOptions {
            endpoints,
            ca: None,
            cert: None,
            key: None,
            prefix: DEFAULT_PREFIX.into(),
        })
    }

    /// The members as written on the command line.
    pub fn url(&self) -> String {
        format!("etcd://{}", self.endpoints.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_parse_or_say_what_is_wrong() {
        let o = EtcdOptions::parse("etcd://a:2379,b:2379").unwrap();
        assert_eq!(o.endpoints, ["a:2379", "b:2379"]);
        assert_eq!(o.url(), "etcd://a:2379,b:2379");
        assert!(EtcdOptions::parse("http://a:1")
            .unwrap_err()
            .contains("etcd://HOST:PORT"));
        assert!(EtcdOptions::parse("etcd://")
            .unwrap_err()
            .contains("no etcd member"));
        assert!(EtcdOptions::parse("etcd://a")
            .unwrap_err()
            .contains("'a' is not HOST:PORT"));
    }
}
