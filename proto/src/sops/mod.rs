//! The SOPS file format (getsops/sops, version 3), as far as labfleet needs it to use one value
//! of an age-encrypted YAML or JSON file: the document tree in file order, the `sops` metadata,
//! `ENC[AES256_GCM,…]` values, which values SOPS encrypts (`unencrypted_suffix` and the other
//! rules), the additional data each value is encrypted with, and the bytes its MAC covers. No
//! cryptography here: labctl uses this module to check a spec's reference before it sends the
//! file, the agent (`secrets::sops`) to decrypt it. The rules follow SOPS's Go source
//! (`sops.go`: `Tree.Decrypt`, `ToBytes`; `aes/cipher.go`; `stores/`).
//!
//! Not supported (refused with a message saying so): key groups with Shamir secret sharing,
//! the comment-based rules (`encrypted_comment_regex`, `unencrypted_comment_regex`: labfleet's
//! YAML reader does not keep comments, which SOPS's MAC leaves out anyway), multi-document
//! YAML, and the dotenv, INI and binary stores' own formats (a binary file encrypted by SOPS is
//! JSON with a `data` key, which works).

pub mod keypath;

use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;
use serde_yaml_ng::Value;

pub use keypath::{KeyPath, Step};

/// Largest SOPS document labfleet sends to a node (a file of secrets, not a data set).
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// The bytes SOPS hashes first when `mac_only_encrypted` is set (SHA-256 of "sops"), so that
/// such a MAC always differs from one over all values.
pub const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

/// What is wrong with a SOPS document or a reference into it. Messages never quote values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SopsError {
    /// Not YAML/JSON, not a SOPS file, or a SOPS feature labfleet does not support.
    #[error("{0}")]
    Format(String),
    /// The key path names nothing in the document (labctl: exit 2).
    #[error("{0}")]
    NoSuchKey(String),
}

fn format_err<T>(m: impl Into<String>) -> Result<T, SopsError> {
    Err(SopsError::Format(m.into()))
}

/// A value of the document, mappings in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A mapping (string keys only, as SOPS requires).
    Map(Vec<(String, Node)>),
    /// A list.
    List(Vec<Node>),
    /// A string (an `ENC[…]` value when encrypted).
    Str(String),
    /// An integer.
    Int(i64),
    /// An integer above `i64::MAX`.
    UInt(u64),
    /// A floating point number.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// null: SOPS neither encrypts nor hashes it.
    Null,
}

impl Node {
    /// A YAML value as a tree; `at` names where it is in errors ("" for the top).
    pub fn from_yaml(v: Value, at: &str) -> Result<Node, SopsError> {
        Ok(match v {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(b),
            Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => Node::Int(i),
                (None, Some(u), _) => Node::UInt(u),
                (None, None, Some(f)) => Node::Float(f),
                _ => return format_err(format!("{at}: a number labfleet cannot read")),
            },
            Value::String(s) => Node::Str(s),
            Value::Sequence(items) => Node::List(
                items
                    .into_iter()
                    .map(|i| Node::from_yaml(i, at))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Mapping(m) => {
                let mut out = Vec::with_capacity(m.len());
                for (k, v) in m {
                    let Value::String(k) = k else {
                        return format_err(format!(
                            "{at}: a mapping has a key that is not a string; SOPS files have string keys only"
                        ));
                    };
                    let child = Node::from_yaml(v, &format!("{at}[\"{k}\"]"))?;
                    out.push((k, child));
                }
                Node::Map(out)
            }
            Value::Tagged(_) => {
                return format_err(format!(
                    "{at}: a YAML tagged value (!!…); SOPS files have plain values"
                ))
            }
        })
    }

    /// The bytes of an unencrypted scalar as SOPS's `ToBytes` writes them (booleans `True` and
    /// `False`, floats without exponent); `None` for null and for mappings and lists.
    pub fn mac_bytes(&self) -> Option<Vec<u8>> {
        Some(match self {
            Node::Str(s) => s.as_bytes().to_vec(),
            Node::Int(i) => i.to_string().into_bytes(),
            Node::UInt(u) => u.to_string().into_bytes(),
            Node::Float(f) => go_float(*f).into_bytes(),
            Node::Bool(true) => b"True".to_vec(),
            Node::Bool(false) => b"False".to_vec(),
            Node::Null | Node::Map(_) | Node::List(_) => return None,
        })
    }

    /// The value of an unencrypted scalar as a program or file gets it (booleans `true` and
    /// `false`); `None` for null, mappings and lists.
    pub fn text(&self) -> Option<String> {
        match self {
            Node::Bool(b) => Some(b.to_string()),
            other => other
                .mac_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
        }
    }
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`: the shortest digits that read back, never an
/// exponent (Rust's `Display` for f64 does the same), and Go's names for the specials.
fn go_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{f}")
    }
}

/// One `sops.age[]` entry: a recipient and the data key encrypted to it (an armored age file).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AgeKey {
    /// `age1…`.
    pub recipient: String,
    /// `-----BEGIN AGE ENCRYPTED FILE-----…`.
    pub enc: String,
}

/// The `sops` metadata that decryption needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    /// The data key, once per age recipient.
    pub age: Vec<AgeKey>,
    /// `lastmodified` as written (RFC 3339).
    pub lastmodified: String,
    /// The encrypted MAC (`ENC[…]`), empty when missing.
    pub mac: String,
    /// Keys ending in this are not encrypted.
    pub unencrypted_suffix: Option<String>,
    /// Only keys ending in this are encrypted.
    pub encrypted_suffix: Option<String>,
    /// Keys matching this are not encrypted.
    pub unencrypted_regex: Option<String>,
    /// Only keys matching this are encrypted.
    pub encrypted_regex: Option<String>,
    /// The MAC covers the encrypted values only.
    pub mac_only_encrypted: bool,
    /// The SOPS version that wrote the file.
    pub version: String,
}

/// `sops:` as written; fields of other key services are accepted and ignored.
#[derive(Debug, Default, Deserialize)]
struct RawMetadata {
    #[serde(default)]
    age: Option<Vec<AgeKey>>,
    #[serde(default)]
    key_groups: Option<Vec<RawKeyGroup>>,
    #[serde(default)]
    shamir_threshold: Option<u64>,
    #[serde(default)]
    lastmodified: Option<String>,
    #[serde(default)]
    mac: Option<String>,
    #[serde(default)]
    unencrypted_suffix: Option<String>,
    #[serde(default)]
    encrypted_suffix: Option<String>,
    #[serde(default)]
    unencrypted_regex: Option<String>,
    #[serde(default)]
    encrypted_regex: Option<String>,
    #[serde(default)]
    unencrypted_comment_regex: Option<String>,
    #[serde(default)]
    encrypted_comment_regex: Option<String>,
    #[serde(default)]
    mac_only_encrypted: Option<bool>,
    #[serde(default)]
    version: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
struct RawKeyGroup {
    #[serde(default)]
    age: Option<Vec<AgeKey>>,
}

impl Metadata {
    fn from_yaml(v: Value) -> Result<Metadata, SopsError> {
        let raw: RawMetadata = serde_yaml_ng::from_value(v)
            .map_err(|e| SopsError::Format(format!("its sops metadata is malformed: {e}")))?;
        let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
        if nonempty(raw.encrypted_comment_regex).is_some()
            || nonempty(raw.unencrypted_comment_regex).is_some()
        {
            return format_err("it uses encrypted_comment_regex or unencrypted_comment_regex, which labfleet does not support; encrypt it with a key-based rule (e.g. encrypted_regex) instead");
        }
        let groups = raw.key_groups.unwrap_or_default();
        if groups.len() > 1 || raw.shamir_threshold.unwrap_or(0) > 1 {
            return format_err("it splits its data key over several key groups (Shamir), which labfleet does not support; encrypt it to age recipients in one group");
        }
        let mut age = raw.age.unwrap_or_default();
        for g in groups {
            age.extend(g.age.unwrap_or_default());
        }
        let version = match raw.version {
            Some(Value::String(s)) => s,
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        Ok(Metadata {
            age,
            lastmodified: raw.lastmodified.unwrap_or_default(),
            mac: raw.mac.unwrap_or_default(),
            unencrypted_suffix: nonempty(raw.unencrypted_suffix),
            encrypted_suffix: nonempty(raw.encrypted_suffix),
            unencrypted_regex: nonempty(raw.unencrypted_regex),
            encrypted_regex: nonempty(raw.encrypted_regex),
            mac_only_encrypted: raw.mac_only_encrypted.unwrap_or(false),
            version,
        })
    }

    /// Whether SOPS encrypts the value at `names` (the mapping keys on its way; list indexes
    /// do not count), by the file's rules, in SOPS's order (`Tree.shouldBeEncrypted`): each
    /// rule that is set overrides the ones before it.
    pub fn encrypts(&self, names: &[&str]) -> Result<bool, SopsError> {
        let mut encrypted = true;
        if let Some(suffix) = &self.unencrypted_suffix {
            if names.iter().any(|n| n.ends_with(suffix.as_str())) {
                encrypted = false;
            }
        }
        if let Some(suffix) = &self.encrypted_suffix {
            encrypted = names.iter().any(|n| n.ends_with(suffix.as_str()));
        }
        if let Some(re) = &self.unencrypted_regex {
            let re = regex(re, "unencrypted_regex")?;
            if names.iter().any(|n| re.is_match(n)) {
                encrypted = false;
            }
        }
        if let Some(re) = &self.encrypted_regex {
            let re = regex(re, "encrypted_regex")?;
            encrypted = names.iter().any(|n| re.is_match(n));
        }
        Ok(encrypted)
    }

    /// The additional data of the MAC: `lastmodified` as Go's `time.RFC3339` formats the time
    /// it parsed (fraction dropped, a zero offset as `Z`).
    pub fn mac_aad(&self) -> Result<String, SopsError> {
        rfc3339_as_go_writes_it(&self.lastmodified).ok_or_else(|| {
            SopsError::Format(format!(
                "its sops.lastmodified '{}' is not an RFC 3339 time",
                self.lastmodified.chars().take(40).collect::<String>()
            ))
        })
    }
}

/// A SOPS rule's regular expression (Go's RE2 syntax, which Rust's regex engine shares for
/// everything a key rule needs), matched anywhere in a key as Go's `regexp.Match` does.
fn regex(pattern: &str, rule: &str) -> Result<regex_automata::meta::Regex, SopsError> {
    regex_automata::meta::Regex::new(pattern)
        .map_err(|e| SopsError::Format(format!("its sops.{rule} is not a regular expression: {e}")))
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` → `YYYY-MM-DDTHH:MM:SS(Z|±HH:MM)`.
fn rfc3339_as_go_writes_it(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let shape = digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && b.get(10) == Some(&b'T')
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16)
        && b.get(16) == Some(&b':')
        && digits(17..19);
    if !shape {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let zone = match rest {
        "Z" => "Z".to_owned(),
        z if z.len() == 6
            && (z.starts_with('+') || z.starts_with('-'))
            && z.as_bytes()[3] == b':'
            && z[1..3]
                .bytes()
                .chain(z[4..6].bytes())
                .all(|c| c.is_ascii_digit()) =>
        {
            if &z[1..3] == "00" && &z[4..6] == "00" {
                "Z".to_owned()
            } else {
                z.to_owned()
            }
        }
        _ => return None,
    };
    Some(format!("{}{zone}", &text[..19]))
}

/// An `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enc {
    /// Ciphertext without the tag.
    pub data: Vec<u8>,
    /// Nonce (SOPS writes 32 bytes).
    pub iv: Vec<u8>,
    /// GCM tag (16 bytes).
    pub tag: Vec<u8>,
    /// `str`, `int`, `float`, `bool`, `bytes`, `time` or `comment`.
    pub kind: String,
}

impl FromStr for Enc {
    type Err = SopsError;
    fn from_str(s: &str) -> Result<Enc, SopsError> {
        let bad = |why: &str| SopsError::Format(format!("an encrypted value is malformed ({why})"));
        let body = s
            .strip_prefix("ENC[AES256_GCM,")
            .and_then(|r| r.strip_suffix(']'))
            .ok_or_else(|| bad("it is not ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]"))?;
        let mut parts = body.split(',');
        let mut field = |name: &str| {
            parts
                .next()
                .and_then(|p| p.strip_prefix(name))
                .and_then(|p| p.strip_prefix(':'))
                .ok_or_else(|| bad(&format!("no {name}")))
        };
        let b64 = |name: &str, v: &str| {
            STANDARD
                .decode(v)
                .map_err(|_| bad(&format!("{name} is not base64")))
        };
        let data = b64("data", field("data")?)?;
        let iv = b64("iv", field("iv")?)?;
        let tag = b64("tag", field("tag")?)?;
        let kind = field("type")?.to_owned();
        if parts.next().is_some() {
            return Err(bad("it has more fields than data, iv, tag and type"));
        }
        Ok(Enc {
            data,
            iv,
            tag,
            kind,
        })
    }
}

impl std::fmt::Display for Enc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{}]",
            STANDARD.encode(&self.data),
            STANDARD.encode(&self.iv),
            STANDARD.encode(&self.tag),
            self.kind
        )
    }
}

/// The additional data a value at `names` is encrypted with: the keys joined by `:`, plus `:`.
pub fn aad(names: &[&str]) -> String {
    let mut out = names.join(":");
    out.push(':');
    out
}

/// A scalar of the document with where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Leaf<'a> {
    /// Mapping keys on the way (what SOPS's rules and additional data use).
    pub names: Vec<&'a str>,
    /// The whole path, list indexes included.
    pub path: Vec<Step>,
    /// The value (never a mapping or list).
    pub value: &'a Node,
}

/// A parsed SOPS document: its tree without `sops`, and the metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Top-level mapping without the `sops` key, in file order.
    pub tree: Vec<(String, Node)>,
    /// `sops:`.
    pub meta: Metadata,
}

impl Document {
    /// Parses a SOPS-encrypted YAML or JSON document (JSON is read as YAML, of which it is a
    /// subset).
    pub fn parse(text: &str) -> Result<Document, SopsError> {
        if text.len() > MAX_DOCUMENT_BYTES {
            return format_err(format!(
                "it is larger than {} KiB; a SOPS file of secrets is small",
                MAX_DOCUMENT_BYTES / 1024
            ));
        }
        let mut docs = serde_yaml_ng::Deserializer::from_str(text);
        let first = docs
            .next()
            .ok_or_else(|| SopsError::Format("it is empty".into()))?;
        let value = Value::deserialize(first).map_err(|e| {
            SopsError::Format(format!(
                "it is not YAML or JSON ({}); labfleet reads SOPS's YAML and JSON files",
                tidy(&e.to_string())
            ))
        })?;
        if docs.next().is_some() {
            return format_err(
                "it holds several YAML documents; labfleet reads SOPS files with one",
            );
        }
        let Value::Mapping(top) = value else {
            return format_err("it is not a mapping at the top, so not a SOPS YAML or JSON file");
        };
        // Split off `sops` keeping the order of the rest (the MAC depends on it).
        let mut raw_meta = None;
        let mut rest = serde_yaml_ng::Mapping::new();
        for (k, v) in top {
            if k.as_str() == Some("sops") {
                raw_meta = Some(v);
            } else {
                rest.insert(k, v);
            }
        }
        let raw_meta = raw_meta.ok_or_else(|| {
            SopsError::Format(
                "it has no sops metadata: it is not encrypted with SOPS (sops encrypt FILE)".into(),
            )
        })?;
        let meta = Metadata::from_yaml(raw_meta)?;
        let Node::Map(tree) = Node::from_yaml(Value::Mapping(rest), "")? else {
            return format_err("it is not a mapping at the top");
        };
        if meta.age.is_empty() {
            return format_err("it is not encrypted to any age recipient (sops.age is empty); encrypt it with --age to the recipients of 'labctl secrets recipients'");
        }
        Ok(Document { tree, meta })
    }

    /// The scalar at `path`; a missing key, an index out of range or a mapping/list is a
    /// [`SopsError::NoSuchKey`] naming what is there instead.
    pub fn get(&self, path: &KeyPath) -> Result<&Node, SopsError> {
        let mut here: Option<&Node> = None;
        let mut walked = String::new();
        for step in &path.0 {
            let shown = if walked.is_empty() {
                "the top".to_owned()
            } else {
                walked.clone()
            };
            let next = match (here, step) {
                (None, Step::Key(k)) => lookup(&self.tree, k, &shown)?,
                (Some(Node::Map(m)), Step::Key(k)) => lookup(m, k, &shown)?,
                (Some(Node::List(l)), Step::Index(i)) => l.get(*i).ok_or_else(|| {
                    SopsError::NoSuchKey(format!(
                        "{shown} is a list of {} values, so it has no index {i}",
                        l.len()
                    ))
                })?,
                (None, Step::Index(_)) => {
                    return Err(SopsError::NoSuchKey(
                        "the top of a SOPS file is a mapping, not a list: start the key with [\"name\"]".into(),
                    ))
                }
                (Some(node), step) => {
                    return Err(SopsError::NoSuchKey(format!(
                        "{shown} is {}, so it has no {step}",
                        describe(node)
                    )))
                }
            };
            walked.push_str(&step.to_string());
            here = Some(next);
        }
        match here {
            Some(node @ (Node::Map(_) | Node::List(_))) => Err(SopsError::NoSuchKey(format!(
                "{path} is {}, not one value; name a value inside it",
                describe(node)
            ))),
            Some(Node::Null) => Err(SopsError::NoSuchKey(format!("{path} is null"))),
            Some(node) => Ok(node),
            None => Err(SopsError::NoSuchKey("the key path is empty".into())),
        }
    }

    /// Every scalar (null included) in the order SOPS walks the tree.
    pub fn leaves(&self) -> Vec<Leaf<'_>> {
        let mut out = Vec::new();
        for (k, v) in &self.tree {
            walk(
                v,
                &mut vec![k.as_str()],
                &mut vec![Step::Key(k.clone())],
                &mut out,
            );
        }
        out
    }
}

fn walk<'a>(
    node: &'a Node,
    names: &mut Vec<&'a str>,
    path: &mut Vec<Step>,
    out: &mut Vec<Leaf<'a>>,
) {
    match node {
        Node::Map(m) => {
            for (k, v) in m {
                names.push(k);
                path.push(Step::Key(k.clone()));
                walk(v, names, path, out);
                path.pop();
                names.pop();
            }
        }
        Node::List(l) => {
            for (i, v) in l.iter().enumerate() {
                path.push(Step::Index(i));
                walk(v, names, path, out);
                path.pop();
            }
        }
        scalar => out.push(Leaf {
            names: names.clone(),
            path: path.clone(),
            value: scalar,
        }),
    }
}

fn lookup<'a>(map: &'a [(String, Node)], key: &str, shown: &str) -> Result<&'a Node, SopsError> {
    map.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .ok_or_else(|| {
            let mut keys: Vec<&str> = map.iter().map(|(k, _)| k.as_str()).collect();
            keys.truncate(20);
            SopsError::NoSuchKey(format!(
                "{shown} has no key \"{key}\" (its keys: {})",
                if keys.is_empty() {
                    "none".to_owned()
                } else {
                    keys.join(", ")
                }
            ))
        })
}

fn describe(node: &Node) -> &'static str {
    match node {
        Node::Map(_) => "a mapping",
        Node::List(_) => "a list",
        Node::Null => "null",
        _ => "a single value",
    }
}

/// A YAML parser message without its long tail.
fn tidy(message: &str) -> String {
    message.chars().take(200).collect()
}

/// What labctl checks before it sends a reference: the document is a SOPS file encrypted to
/// age recipients, `key` is a key path, and it names one value of the document.
pub fn check(document: &str, key: &str) -> Result<(), SopsError> {
    let path: KeyPath = key
        .parse()
        .map_err(|e: keypath::BadKeyPath| SopsError::NoSuchKey(e.to_string()))?;
    Document::parse(document)?.get(&path).map(|_| ())
}

#[cfg(test)]
mod tests;
