//! The agent's config file (`/etc/lab/agent.toml`): settings an operator puts on the machine
//! itself, today its labels. A missing default file is fine; a file that does not parse is an
//! error that names it.

use std::collections::BTreeMap;
use std::path::Path;

use lab_proto::labels;
use serde::Deserialize;

/// Default location of the config file.
pub const DEFAULT_PATH: &str = "/etc/lab/agent.toml";

/// `/etc/lab/agent.toml`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Labels this machine reports, e.g. `role = "storage"`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl AgentConfig {
    /// Reads `path`; a missing file gives the defaults when `required` is false.
    pub fn load(path: &Path, required: bool) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("invalid agent config {}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(Self::default()),
            Err(e) => Err(anyhow::anyhow!(
                "cannot read agent config {}: {e}",
                path.display()
            )),
        }
    }

    /// Why the coordinator will ignore some of [`AgentConfig::labels`]: reserved keys (derived
    /// by the coordinator, such as `node`), or a set that breaks the label rules (then all are
    /// ignored). Empty when every label will take effect.
    pub fn label_warnings(&self) -> Vec<String> {
        let (settable, reserved) = labels::split_reserved(self.labels.clone());
        let mut out: Vec<String> = reserved
            .into_iter()
            .map(|k| labels::LabelError::Reserved(k).to_string())
            .collect();
        if let Err(e) = labels::validate(&settable) {
            out.push(format!(
                "{e}; the coordinator ignores all of this file's labels"
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_and_unknown_keys_fail() {
        let c: AgentConfig = toml::from_str("[labels]\nrole = \"storage\"\n").unwrap();
        assert_eq!(c.labels["role"], "storage");
        assert!(toml::from_str::<AgentConfig>("lables = {}\n").is_err());
    }

    #[test]
    fn reserved_and_invalid_labels_are_warned_about() {
        let c: AgentConfig = toml::from_str("[labels]\nnode = \"n2\"\nrole = \"web\"\n").unwrap();
        let w = c.label_warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("label 'node' is reserved"), "{w:?}");
        let c: AgentConfig = toml::from_str("[labels]\n\"a b\" = \"x\"\n").unwrap();
        assert!(c.label_warnings()[0].contains("ignores all"));
        let c: AgentConfig = toml::from_str("[labels]\nrole = \"web\"\n").unwrap();
        assert!(c.label_warnings().is_empty());
    }

    #[test]
    fn missing_default_file_is_fine_but_a_required_one_is_not() {
        let p = Path::new("/nonexistent/agent.toml");
        assert_eq!(AgentConfig::load(p, false).unwrap(), AgentConfig::default());
        assert!(AgentConfig::load(p, true).is_err());
    }
}
