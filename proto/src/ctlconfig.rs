//! The labctl config file (`~/.config/labctl/config.toml`): named contexts, like kubeconfig.
//!
//! `lab-coordinator init` and `labctl dev` write it, `labctl` reads it; both ends agree on this
//! one shape. A context lists every coordinator of the fleet (`servers = ["A:7443", "B:7443"]`;
//! the older single `coordinator = "A:7443"` still reads). Certificates and keys are embedded as PEM so the file is self-contained; it is
//! written with mode 0600.

use serde::{Deserialize, Serialize};

use crate::endpoints::{new_or_old, OneOrMany};

/// The whole file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CtlConfig {
    /// Name of the context used when `--context` is not given.
    #[serde(default)]
    pub current_context: String,
    /// All contexts.
    #[serde(default, rename = "context")]
    pub contexts: Vec<Context>,
}

/// The coordinators of one fleet and the identity used to talk to them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(try_from = "ContextToml", rename_all = "kebab-case")]
pub struct Context {
    /// Name of the context.
    pub name: String,
    /// Coordinator addresses, HOST:PORT, at least one (several when they share an etcd store:
    /// labctl uses whichever is the leader). Files written before this list hold a single
    /// `coordinator = "HOST:PORT"` instead, which still reads.
    pub servers: Vec<String>,
    /// CA certificate (PEM) the coordinator's server certificate must chain to.
    pub ca_pem: String,
    /// Operator certificate (PEM).
    pub cert_pem: String,
    /// Operator private key (PEM).
    pub key_pem: String,
}

/// A context as written in the file: `servers` (a list) or the older `coordinator` (one).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ContextToml {
    name: String,
    #[serde(default)]
    servers: Option<OneOrMany>,
    #[serde(default)]
    coordinator: Option<OneOrMany>,
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl TryFrom<ContextToml> for Context {
    type Error = String;

    fn try_from(raw: ContextToml) -> Result<Self, String> {
        let servers = new_or_old(("servers", raw.servers), ("coordinator", raw.coordinator))
            .map_err(|e| format!("context '{}': {e}", raw.name))?;
        Ok(Context {
            name: raw.name,
            servers,
            ca_pem: raw.ca_pem,
            cert_pem: raw.cert_pem,
            key_pem: raw.key_pem,
        })
    }
}

/// A config file that does not parse or lacks the wanted context.
#[derive(Debug, thiserror::Error)]
pub enum CtlConfigError {
    /// TOML syntax or shape. Names the line, never quotes the file: it holds a private key.
    #[error("invalid labctl config: line {line}: {message}")]
    Parse {
        /// 1-based line of the problem (0 when the parser gave no position).
        line: usize,
        /// The parser's message, without its quote of the source.
        message: String,
    },
    /// No such context.
    #[error("no context named '{0}' in the labctl config")]
    NoContext(String),
    /// Empty file.
    #[error("the labctl config has no contexts; run 'lab-coordinator init' or 'labctl dev' to create one")]
    Empty,
}

impl CtlConfig {
    /// Parses the TOML text.
    pub fn parse(text: &str) -> Result<Self, CtlConfigError> {
        toml::from_str(text).map_err(|e| CtlConfigError::Parse {
            line: e.span().map_or(0, |s| {
                text[..s.start.min(text.len())].matches('\n').count() + 1
            }),
            message: e.message().trim().replace('\n', "; "),
        })
    }

    /// Renders the TOML text.
    pub fn render(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// The named context, or the current one when `name` is `None`.
    pub fn context(&self, name: Option<&str>) -> Result<&Context, CtlConfigError> {
        let wanted = name.unwrap_or(&self.current_context);
        if self.contexts.is_empty() {
            return Err(CtlConfigError::Empty);
        }
        if wanted.is_empty() && self.contexts.len() == 1 {
            return Ok(&self.contexts[0]);
        }
        self.contexts
            .iter()
            .find(|c| c.name == wanted)
            .ok_or_else(|| CtlConfigError::NoContext(wanted.to_owned()))
    }

    /// A config with one context, made current.
    pub fn single(context: Context) -> Self {
        CtlConfig {
            current_context: context.name.clone(),
            contexts: vec![context],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_selects() {
        let cfg = CtlConfig::single(Context {
            name: "dev".into(),
            servers: vec!["127.0.0.1:7443".into(), "127.0.0.2:7443".into()],
            ca_pem: "ca".into(),
            cert_pem: "cert".into(),
            key_pem: "key".into(),
        });
        let back = CtlConfig::parse(&cfg.render()).unwrap();
        assert_eq!(back, cfg);
        assert_eq!(back.context(None).unwrap().name, "dev");
        assert!(back.context(Some("prod")).is_err());
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(CtlConfig::parse("current-context = 'a'\nbogus = 1\n").is_err());
    }

    #[test]
    fn parse_errors_name_the_line_but_never_quote_the_key() {
        let text = "current-context = 'a'\n[[contexts]]\nkey_pem = \"\"\"-----BEGIN PRIVATE KEY-----\nMIIEsecret\n";
        let e = CtlConfig::parse(text).unwrap_err().to_string();
        assert!(e.starts_with("invalid labctl config: line "), "{e}");
        assert!(!e.contains("MIIEsecret") && !e.contains("BEGIN"), "{e}");
    }

    const PEMS: &str = "ca-pem = 'ca'\ncert-pem = 'c'\nkey-pem = 'k'\n";

    #[test]
    fn the_older_single_coordinator_still_reads() {
        let text = format!("[[context]]\nname = 'old'\ncoordinator = '10.0.0.5:7443'\n{PEMS}");
        let cfg = CtlConfig::parse(&text).unwrap();
        assert_eq!(cfg.context(None).unwrap().servers, vec!["10.0.0.5:7443"]);
        assert!(
            cfg.render().contains("servers = [\"10.0.0.5:7443\"]"),
            "{}",
            cfg.render()
        );
        assert_eq!(CtlConfig::parse(&cfg.render()).unwrap(), cfg);
    }

    #[test]
    fn servers_list_and_its_mistakes() {
        let ok =
            format!("[[context]]\nname = 'ha'\nservers = ['a:7443', 'b:7443', 'a:7443']\n{PEMS}");
        let cfg = CtlConfig::parse(&ok).unwrap();
        assert_eq!(cfg.contexts[0].servers, vec!["a:7443", "b:7443"]);
        for (body, want) in [
            ("servers = []", "no coordinator address given"),
            (
                "servers = ['a:7443', 'b']",
                "invalid coordinator address 'b'",
            ),
            (
                "servers = ['a:1']\ncoordinator = 'b:1'",
                "both 'servers' and 'coordinator'",
            ),
            ("", "no 'servers' list"),
            ("servers = ['a:1']\nbogus = 1", "unknown field"),
        ] {
            let text = format!("[[context]]\nname = 'x'\n{body}\n{PEMS}");
            let e = CtlConfig::parse(&text).unwrap_err().to_string();
            assert!(e.contains(want), "{body}: {e}");
        }
    }
}
