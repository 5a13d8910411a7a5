//! k3s facts: presence, version, role, the server it joins, node name and which cluster it
//! belongs to (a hash of its token, never the token).
//!
//! k3s reads its settings from, in rising priority: the config file
//! (`etc/rancher/k3s/config.yaml`, then `config.yaml.d/*.yaml` in name order), `K3S_*`
//! environment variables (the installer writes them to `k3s.service.env` or
//! `k3s-agent.service.env` beside the unit) and the flags of the unit's `ExecStart`
//! (the installer's and the NixOS module's `k3s server …` / `k3s agent …`). The same order is
//! applied here. A server's own token is in `var/lib/rancher/k3s/server/token` (always in the
//! full `K10<ca hash>::server:<password>` form).
//!
//! The token itself is secret: only the SHA-256 of its secret part is reported (the password of
//! a full token, the whole short token), which is the same on every node joined with that token
//! in either form, so the coordinator can group nodes into clusters. The `K10` CA hash of a full
//! token is not secret and is reported as it is.
//!
//! `k3s --version` runs only on the running system, with [`VERSION_TIMEOUT`].

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::probe::{failure, Command};
use super::rootfs::{dir_names, exists, read_raw, read_trimmed};
use super::{Probe, Problems};

/// How long `k3s --version` may take.
pub const VERSION_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the installer, packages and NixOS put the units.
const UNIT_DIRS: &[&str] = &[
    "etc/systemd/system",
    "usr/lib/systemd/system",
    "lib/systemd/system",
];

/// The config file k3s reads unless `--config`/`K3S_CONFIG_FILE` names another.
const DEFAULT_CONFIG: &str = "/etc/rancher/k3s/config.yaml";

/// The token a server writes on first start.
const SERVER_TOKEN: &str = "var/lib/rancher/k3s/server/token";

/// k3s on this machine.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct K3s {
    /// The `k3s` binary is installed (`usr/local/bin/k3s` from the installer, or a package).
    pub binary: bool,
    /// `v1.30.2+k3s1` from `k3s --version`; only on the running system.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Server (control plane) or agent (worker): the unit's `k3s server`/`k3s agent`, else the
    /// unit's name, else which data directory exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<K3sRole>,
    /// The server this node joins (`server`, `K3S_URL`, `--server`); absent on the first
    /// server of a cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_url: Option<String>,
    /// The Kubernetes node name (`node-name`, `K3S_NODE_NAME`, `--node-name`, else the host
    /// name in lower case, as k3s does).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// This server started the cluster's embedded etcd (`cluster-init`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cluster_init: bool,
    /// SHA-256 (hex) of the token's secret part; the same on every node of the cluster that
    /// joined with the server token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
    /// The cluster CA hash of a full (`K10…`) token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_ca_hash: Option<String>,
}

/// k3s node role.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum K3sRole {
    /// Control plane (`k3s server`).
    Server,
    /// Worker (`k3s agent`).
    Agent,
}

/// The settings that matter here, by k3s's flag name (`server`, `token`, `token-file`,
/// `node-name`, `cluster-init`, `config`).
type Settings = BTreeMap<&'static str, String>;

/// The settings read, with their environment variable and short flag.
const KEYS: &[(&str, &str, Option<char>)] = &[
    ("server", "K3S_URL", Some('s')),
    ("token", "K3S_TOKEN", Some('t')),
    ("token-file", "K3S_TOKEN_FILE", None),
    ("node-name", "K3S_NODE_NAME", None),
    ("cluster-init", "K3S_CLUSTER_INIT", None),
    ("config", "K3S_CONFIG_FILE", Some('c')),
];

/// The k3s unit found: its name, subcommand and flags, and its environment.
#[derive(Debug, Default, PartialEq)]
struct Unit {
    name: String,
    subcommand: Option<String>,
    flags: Settings,
    env: Settings,
}

/// Collects k3s facts; `None` when neither its binary, its config directory nor a unit exists.
pub fn collect(probe: &Probe, binary: bool, problems: &mut Problems) -> Option<K3s> {
    let root = probe.root();
    let unit = find_unit(root);
    if !binary && unit.is_none() && !exists(root, "etc/rancher/k3s") {
        return None;
    }
    let unit = unit.unwrap_or_default();
    let config_path = unit
        .flags
        .get("config")
        .or(unit.env.get("config"))
        .cloned()
        .unwrap_or_else(|| DEFAULT_CONFIG.to_owned());
    let config = read_config(root, &config_path, problems);
    let setting = |key: &str| {
        unit.flags
            .get(key)
            .or(unit.env.get(key))
            .or(config.get(key))
            .filter(|v| !v.is_empty())
            .cloned()
    };
    let role = match unit.subcommand.as_deref() {
        Some("server") => Some(K3sRole::Server),
        Some("agent") => Some(K3sRole::Agent),
        _ if unit.name == "k3s-agent.service" => Some(K3sRole::Agent),
        _ if unit.name == "k3s.service" => Some(K3sRole::Server),
        _ if exists(root, SERVER_TOKEN) => Some(K3sRole::Server),
        _ if exists(root, "var/lib/rancher/k3s/agent") => Some(K3sRole::Agent),
        _ => None,
    };
    let token = match (setting("token"), setting("token-file")) {
        (Some(token), _) => Some(token),
        (None, Some(file)) => {
            let token = read_trimmed(root, file.trim_start_matches('/'));
            if token.is_none() {
                problems.add(
                    "k3s",
                    format!(
                        "the token file {file} (token-file) is missing, empty or unreadable; \
                         k3s cannot join its cluster without it"
                    ),
                );
            }
            token
        }
        (None, None) if role == Some(K3sRole::Server) => read_trimmed(root, SERVER_TOKEN),
        (None, None) => None,
    };
    let (token_ca_hash, token_sha256) = match token.as_deref().map(token_parts) {
        Some((ca, secret)) => (ca, Some(hex::encode(Sha256::digest(secret.as_bytes())))),
        None => (None, None),
    };
    Some(K3s {
        binary,
        version: version(probe, problems),
        role,
        server_url: setting("server"),
        node_name: setting("node-name")
            .or_else(|| read_trimmed(root, "etc/hostname").map(|h| h.to_lowercase())),
        cluster_init: setting("cluster-init").is_some_and(|v| v == "true" || v == "1"),
        token_sha256,
        token_ca_hash,
    })
}

/// The CA hash (of a `K10<hash>::<credentials>` token) and the secret part: the password of
/// `user:password` credentials, a bearer token as it is, or the whole short token.
pub fn token_parts(token: &str) -> (Option<String>, &str) {
    if let Some((hash, credentials)) = token
        .strip_prefix("K10")
        .and_then(|rest| rest.split_once("::"))
    {
        let secret = credentials
            .split_once(':')
            .map_or(credentials, |(_, password)| password);
        return (Some(hash.to_owned()).filter(|h| !h.is_empty()), secret);
    }
    (None, token)
}

/// `k3s --version` on the running system.
fn version(probe: &Probe, problems: &mut Problems) -> Option<String> {
    let k3s = probe.program("k3s")?;
    let ran = probe.run(Command::new(&k3s, &["--version"], VERSION_TIMEOUT));
    if !ran.success() {
        problems.add("k3s", failure(&ran, VERSION_TIMEOUT));
        return None;
    }
    let version = parse_version(&String::from_utf8_lossy(&ran.stdout));
    if version.is_none() {
        problems.add(
            "k3s",
            format!(
                "'{}' printed no 'k3s version vX.Y.Z' line: {}",
                ran.what,
                ran.tail()
            ),
        );
    }
    version
}

/// The version in `k3s version v1.30.2+k3s1 (faa4d3d1)`.
pub fn parse_version(output: &str) -> Option<String> {
    output.lines().find_map(|line| {
        let version = line
            .trim()
            .strip_prefix("k3s version ")?
            .split_whitespace()
            .next()?;
        version.starts_with('v').then(|| version.to_owned())
    })
}

/// The first k3s unit found: `k3s.service` (servers, and agents set up by NixOS), then
/// `k3s-agent.service`.
fn find_unit(root: &Path) -> Option<Unit> {
    for name in ["k3s.service", "k3s-agent.service"] {
        for dir in UNIT_DIRS {
            if let Some(text) = read_raw(root, &format!("{dir}/{name}")) {
                let mut unit = parse_unit(name, &text);
                let mut vars = BTreeMap::new();
                for file in environment_files(&text, name) {
                    if let Some(env) = read_raw(root, file.trim_start_matches('/')) {
                        for (key, value) in parse_env_file(&env) {
                            set_from_env(&mut unit.env, &key, value.clone());
                            vars.insert(key, value);
                        }
                    }
                }
                // `--server ${SERVER_URL}` in packaged units
                for value in unit.flags.values_mut() {
                    let name = value.trim_start_matches('$').trim_matches(['{', '}']);
                    if value.starts_with('$') {
                        if let Some(v) = vars.get(name) {
                            *value = v.clone();
                        }
                    }
                }
                return Some(unit);
            }
        }
    }
    None
}

/// The `[Service]` lines of a unit with continuation lines joined, as (key, value).
fn unit_lines(text: &str) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for raw in text.lines() {
        let line = raw.trim_end();
        if current.is_empty() && line.trim_start().starts_with(['#', ';']) {
            continue;
        }
        if let Some(part) = line.strip_suffix('\\') {
            current.push_str(part);
            current.push(' ');
            continue;
        }
        current.push_str(line);
        if let Some((key, value)) = current.split_once('=') {
            lines.push((key.trim().to_owned(), value.trim().to_owned()));
        }
        current.clear();
    }
    lines
}

/// Subcommand and flags of the unit's `ExecStart`, and its `Environment=` settings.
fn parse_unit(name: &str, text: &str) -> Unit {
    let mut unit = Unit {
        name: name.to_owned(),
        ..Unit::default()
    };
    for (key, value) in unit_lines(text) {
        match key.as_str() {
            "ExecStart" if !value.is_empty() => {
                let words = split_words(value.trim_start_matches(['-', '@', '+', '!', ':']));
                let args = words.get(1..).unwrap_or_default();
                unit.subcommand = args.first().filter(|a| !a.starts_with('-')).cloned();
                unit.flags = parse_flags(args);
            }
            "Environment" => {
                for word in split_words(&value) {
                    if let Some((k, v)) = word.split_once('=') {
                        set_from_env(&mut unit.env, k, v.to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    unit
}

/// The files of `EnvironmentFile=` lines (a leading `-` means optional; `%N` is the unit's
/// name without `.service`).
fn environment_files(text: &str, unit: &str) -> Vec<String> {
    let stem = unit.trim_end_matches(".service");
    unit_lines(text)
        .into_iter()
        .filter(|(key, _)| key == "EnvironmentFile")
        .map(|(_, value)| value.trim_start_matches('-').replace("%N", stem))
        .collect()
}

fn set_from_env(env: &mut Settings, name: &str, value: String) {
    if let Some((key, ..)) = KEYS.iter().find(|(_, var, _)| *var == name) {
        env.insert(key, value);
    }
}

/// The known flags in `args` (`--server URL`, `--server=URL`, `-s URL`, `--cluster-init`).
fn parse_flags(args: &[String]) -> Settings {
    let mut flags = Settings::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let (name, inline) = match arg.strip_prefix("--") {
            Some(long) => match long.split_once('=') {
                Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
                None => (long.to_owned(), None),
            },
            None => match arg.strip_prefix('-').and_then(|s| s.chars().next()) {
                Some(short) => {
                    let Some((key, ..)) = KEYS.iter().find(|(_, _, s)| *s == Some(short)) else {
                        continue;
                    };
                    ((*key).to_owned(), None)
                }
                None => continue,
            },
        };
        let Some((key, ..)) = KEYS.iter().find(|(k, ..)| *k == name) else {
            continue;
        };
        if *key == "cluster-init" {
            flags.insert(key, inline.unwrap_or_else(|| "true".to_owned()));
            continue;
        }
        let value = match inline {
            Some(v) => Some(v),
            None => args.get(i).inspect(|_| i += 1).cloned(),
        };
        if let Some(value) = value {
            flags.insert(key, value);
        }
    }
    flags
}

/// Splits a command line the way systemd does for `ExecStart`: whitespace separates words,
/// single and double quotes group, a backslash escapes the next character.
pub fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                if let Some(next) = chars.next() {
                    word.push(next);
                    in_word = true;
                }
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// `KEY=VALUE` lines of an environment file (quotes around the value removed).
pub fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.starts_with('#') {
                return None;
            }
            let (key, value) = line.split_once('=')?;
            let value = split_words(value).join(" ");
            Some((key.trim().trim_start_matches("export ").to_owned(), value))
        })
        .collect()
}

/// The settings of the config file `path` and its `.d` drop-ins (later files win). A file
/// that is not a YAML mapping is reported and skipped, as k3s would refuse to start.
fn read_config(root: &Path, path: &str, problems: &mut Problems) -> Settings {
    let rel = path.trim_start_matches('/');
    let drop_in_dir = format!("{rel}.d");
    let mut files = vec![rel.to_owned()];
    files.extend(
        dir_names(root, &drop_in_dir)
            .into_iter()
            .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
            .map(|n| format!("{drop_in_dir}/{n}")),
    );
    let mut settings = Settings::new();
    for file in files {
        let Some(text) = read_raw(root, &file) else {
            continue;
        };
        match parse_config(&text) {
            Ok(found) => settings.extend(found),
            Err(e) => problems.add(
                "k3s",
                format!(
                    "/{file} is not a k3s config file ({e}); k3s will not start with it either"
                ),
            ),
        }
    }
    settings
}

/// The known keys of one k3s config file: a YAML mapping of flag names to values.
pub fn parse_config(text: &str) -> Result<Settings, String> {
    if text.trim().is_empty() {
        return Ok(Settings::new());
    }
    let value: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let serde_yaml_ng::Value::Mapping(map) = value else {
        return Err("not a mapping of settings".to_owned());
    };
    let mut settings = Settings::new();
    for (key, value) in map {
        let Some(name) = key.as_str() else {
            continue;
        };
        let Some((key, ..)) = KEYS.iter().find(|(k, ..)| *k == name) else {
            continue;
        };
        let text = match value {
            serde_yaml_ng::Value::String(s) => s,
            serde_yaml_ng::Value::Bool(b) => b.to_string(),
            serde_yaml_ng::Value::Number(n) => n.to_string(),
            _ => return Err(format!("'{name}' is not a single value")),
        };
        settings.insert(key, text);
    }
    Ok(settings)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
#[path = "k3s_tests.rs"]
mod tests;
