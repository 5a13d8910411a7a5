//! Label rules both ends agree on: the syntax of keys and values, and the reserved keys.
//!
//! Reserved keys name a node's identity, presence or facts the coordinator derives itself
//! (`node=<name>` from the certificate, `status=online|offline|revoked` from its session, `os`,
//! `hostname`, … from the fact document, `hypervisor` from the lab's topology). Nothing else may set them:
//! the coordinator ignores them in an agent's config labels, refuses them from operators and
//! tokens, and its derived values always win, so a node cannot pose as another one in a
//! selector such as `node=n2`.

use std::collections::BTreeMap;

use crate::limits::{MAX_LABELS, MAX_LABEL_LEN};

/// The node's name, from its certificate.
pub const NODE: &str = "node";
/// `platform.hostname` of the node's facts.
pub const HOSTNAME: &str = "hostname";
/// `platform.os` of the node's facts.
pub const OS: &str = "os";
/// `platform.os_version` of the node's facts.
pub const OS_VERSION: &str = "os-version";
/// `platform.arch` of the node's facts.
pub const ARCH: &str = "arch";
/// `platform.virtualization` of the node's facts.
pub const VIRT: &str = "virt";
/// The PVE node name of the enrolled Proxmox host the node runs on as a guest (its DMI product
/// UUID is a guest's `smbios1` UUID there); absent on a node that is no known guest.
pub const HYPERVISOR: &str = "hypervisor";

/// The node's presence: [`STATUS_ONLINE`] (a live session now), [`STATUS_OFFLINE`] or
/// [`STATUS_REVOKED`]; `labctl run --online-only` adds `status=online` to its selector.
pub const STATUS: &str = "status";
/// [`STATUS`] of a node with a live session.
pub const STATUS_ONLINE: &str = "online";
/// [`STATUS`] of an enrolled node without a live session.
pub const STATUS_OFFLINE: &str = "offline";
/// [`STATUS`] of a revoked node.
pub const STATUS_REVOKED: &str = "revoked";

/// Keys only the coordinator sets (derived from the node's identity, presence, facts and
/// topology).
pub const RESERVED_KEYS: [&str; 8] = [
    NODE, STATUS, HOSTNAME, OS, OS_VERSION, ARCH, VIRT, HYPERVISOR,
];

/// Whether `key` is one the coordinator derives and nobody else may set.
pub fn is_reserved(key: &str) -> bool {
    RESERVED_KEYS.contains(&key)
}

/// Splits labels a node or token sent into those it may set and the reserved keys it named.
pub fn split_reserved(
    sent: impl IntoIterator<Item = (String, String)>,
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut reserved = Vec::new();
    let kept = sent
        .into_iter()
        .filter(|(k, _)| {
            let r = is_reserved(k);
            if r {
                reserved.push(k.chars().take(80).collect());
            }
            !r
        })
        .collect();
    (kept, reserved)
}

/// What is wrong with a label or a set of labels.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    /// More than [`MAX_LABELS`].
    #[error("too many labels ({0}); at most {MAX_LABELS}")]
    TooMany(usize),
    /// The key breaks the key rule.
    #[error("invalid label key '{0}': use 1-{MAX_LABEL_LEN} of a-z, A-Z, 0-9, '-', '_', '.', '/'")]
    BadKey(String),
    /// The value is too long or holds a control or invisible character.
    #[error("invalid value for label '{0}': at most {MAX_LABEL_LEN} printable characters, without control, direction-changing or invisible characters")]
    BadValue(String),
    /// The key is reserved.
    #[error("label '{0}' is reserved: the coordinator derives it from the node's identity, presence, facts and topology (reserved: {keys}); choose another key", keys = RESERVED_KEYS.join(", "))]
    Reserved(String),
}

/// Checks the syntax of a key (not whether it is reserved).
pub fn check_key(key: &str) -> Result<(), LabelError> {
    let ok = !key.is_empty()
        && key.len() <= MAX_LABEL_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(LabelError::BadKey(key.chars().take(80).collect()))
    }
}

/// Checks a value of label `key`: at most [`MAX_LABEL_LEN`] bytes, no character that a
/// terminal would act on or that hides or reorders text (see [`is_deceptive`]).
pub fn check_value(key: &str, value: &str) -> Result<(), LabelError> {
    if value.len() > MAX_LABEL_LEN || value.chars().any(is_deceptive) {
        return Err(LabelError::BadValue(key.chars().take(80).collect()));
    }
    Ok(())
}

/// Control characters (C0, DEL, C1: a terminal acts on them) and format characters that are
/// invisible or change the direction of text (zero-width spaces and joiners, bidirectional
/// marks, embeddings, overrides and isolates, the byte order mark, tag characters): a value
/// holding one would print as something other than it is.
pub fn is_deceptive(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{E0000}'..='\u{E007F}'
        )
}

/// Checks labels an operator or a token sets: the count, each key and value, and that no key
/// is reserved.
pub fn validate(labels: &BTreeMap<String, String>) -> Result<(), LabelError> {
    if labels.len() > MAX_LABELS {
        return Err(LabelError::TooMany(labels.len()));
    }
    for (k, v) in labels {
        check_key(k)?;
        if is_reserved(k) {
            return Err(LabelError::Reserved(k.clone()));
        }
        check_value(k, v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(k: &str, v: &str) -> BTreeMap<String, String> {
        [(k.to_owned(), v.to_owned())].into()
    }

    #[test]
    fn split_reserved_separates_what_a_node_may_set() {
        let sent = [
            ("node".to_owned(), "n2".to_owned()),
            ("role".to_owned(), "db".to_owned()),
        ];
        let (kept, reserved) = split_reserved(sent);
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["role"]);
        assert_eq!(reserved, ["node"]);
    }

    #[test]
    fn reserved_keys_are_refused_with_a_clear_message() {
        for key in RESERVED_KEYS {
            let e = validate(&one(key, "x")).unwrap_err();
            assert_eq!(e, LabelError::Reserved(key.into()));
            assert!(e.to_string().contains("is reserved"), "{e}");
        }
        assert!(validate(&one("role", "db")).is_ok());
        assert!(validate(&one("node-pool", "a")).is_ok());
    }

    #[test]
    fn values_with_control_or_invisible_characters_are_refused() {
        for bad in [
            "\u{1b}[31mred",
            "a\nb",
            "\u{7f}",
            "\u{9b}2J",
            "evil\u{202E}gnp.exe",
            "zero\u{200B}width",
            "\u{2066}isolate",
            "\u{FEFF}bom",
            "tag\u{E0041}",
        ] {
            assert!(check_value("k", bad).is_err(), "{bad:?} accepted");
        }
        for good in ["", "debian", "12.5", "Zürich", "東京", "a b"] {
            assert!(check_value("k", good).is_ok(), "{good:?} refused");
        }
        assert!(check_value("k", &"a".repeat(MAX_LABEL_LEN + 1)).is_err());
    }

    #[test]
    fn keys_follow_the_key_rule() {
        assert!(check_key("team/app.v-1_x").is_ok());
        for bad in ["", "a b", "ü", "a=b", &"k".repeat(MAX_LABEL_LEN + 1)] {
            assert!(check_key(bad).is_err(), "{bad:?} accepted");
        }
        let many: BTreeMap<String, String> = (0..=MAX_LABELS)
            .map(|i| (format!("k{i}"), String::new()))
            .collect();
        assert_eq!(validate(&many), Err(LabelError::TooMany(MAX_LABELS + 1)));
    }
}
