//! Decrypting one value of a SOPS file with the node's own age key: the data key from the
//! file's `sops.age` entry for this node (an armored age file), every value of the file with
//! AES-256-GCM (32-byte nonce, the value's key path as additional data), SOPS's MAC (SHA-512
//! over the plaintext values in file order, itself encrypted with `lastmodified` as additional
//! data) checked, and only then the one value returned. The format rules are
//! [`lab_proto::sops`]; this module adds the cryptography.
//!
//! Messages name the file, the key path and this node's recipient, never a value.

use std::io::Read;

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use lab_proto::sops::{aad, Document, Enc, KeyPath, Node, MAC_ONLY_ENCRYPTED_INIT};
use sha2::{Digest, Sha512};

use super::NodeKey;

/// AES-256-GCM with SOPS's 32-byte nonces.
type SopsGcm = aes_gcm::AesGcm<Aes256, U32>;

/// The value at `key` of the SOPS `document` (named `file` in messages), decrypted with
/// `node`'s age key after the file's MAC was verified.
pub fn decrypt_value(
    file: &str,
    document: &str,
    key: &str,
    node: &NodeKey,
) -> Result<String, String> {
    let path: KeyPath = key.parse().map_err(|e| format!("{file}: {e}"))?;
    let doc = Document::parse(document).map_err(|e| format!("{file}: {e}"))?;
    doc.get(&path).map_err(|e| format!("{file}: {e}"))?;
    let data_key = data_key(file, &doc, node)?;
    let cipher = SopsGcm::new_from_slice(&data_key)
        .map_err(|_| format!("{file}: its data key is not 32 bytes"))?;

    let mut mac = Sha512::new();
    if doc.meta.mac_only_encrypted {
        mac.update(MAC_ONLY_ENCRYPTED_INIT);
    }
    let mut found = None;
    for leaf in doc.leaves() {
        if *leaf.value == Node::Null {
            continue; // SOPS neither encrypts nor hashes null
        }
        let encrypted = doc
            .meta
            .encrypts(&leaf.names)
            .map_err(|e| format!("{file}: {e}"))?;
        let shown = || KeyPath(leaf.path.clone()).to_string();
        let (plain, kind) = if encrypted {
            let Node::Str(text) = leaf.value else {
                return Err(format!(
                    "{file}: {} should be encrypted but is a plain value: the file was changed after SOPS encrypted it; refusing it",
                    shown()
                ));
            };
            if text.is_empty() {
                (Vec::new(), "str".to_owned()) // SOPS leaves empty strings as they are
            } else {
                let enc: Enc = text
                    .parse()
                    .map_err(|e| format!("{file}: {}: {e}", shown()))?;
                let plain = open(&cipher, &enc, &aad(&leaf.names)).ok_or_else(|| {
                    format!(
                        "{file}: {} does not decrypt with the file's data key: it was changed after SOPS encrypted it; refusing the file",
                        shown()
                    )
                })?;
                (plain, enc.kind)
            }
        } else {
            let plain = leaf.value.mac_bytes().unwrap_or_default();
            (plain, String::new())
        };
        if !doc.meta.mac_only_encrypted || encrypted {
            mac.update(&plain);
        }
        if leaf.path == path.0 {
            found = Some(if encrypted {
                value_text(&plain, &kind)
                    .ok_or_else(|| format!("{file}: {} is not UTF-8 text", shown()))?
            } else {
                leaf.value.text().unwrap_or_default()
            });
        }
    }
    let computed = hex::encode_upper(mac.finalize());
    verify_mac(file, &doc, &cipher, &computed)?;
    found.ok_or_else(|| format!("{file}: {path} names no value"))
}

/// The data key: decrypted from this node's entry, or from any entry this node can open.
fn data_key(file: &str, doc: &Document, node: &NodeKey) -> Result<Vec<u8>, String> {
    let ours = node.recipient().as_str();
    // This node's own entry first; then the others, since a recipient may be written in
    // another form (SOPS stores it as given).
    let mut entries: Vec<_> = doc.meta.age.iter().collect();
    entries.sort_by_key(|e| e.recipient.trim() != ours);
    for entry in entries {
        if let Some(key) = open_age(entry.enc.as_bytes(), node) {
            if key.len() != 32 {
                return Err(format!(
                    "{file}: its data key for {} is {} bytes, not 32",
                    entry.recipient,
                    key.len()
                ));
            }
            return Ok(key);
        }
    }
    let listed: Vec<&str> = doc.meta.age.iter().map(|e| e.recipient.as_str()).collect();
    Err(format!(
        "{file} is not encrypted to this node: none of its age recipients ({}) is this node's {ours}; add the node with 'sops updatekeys' after putting its recipient ('labctl secrets recipients') in .sops.yaml, or encrypt the file again",
        listed.join(", ")
    ))
}

/// An armored age file opened with the node's identity; `None` when it is not for this node.
fn open_age(armored: &[u8], node: &NodeKey) -> Option<Vec<u8>> {
    let reader = age::armor::ArmoredReader::new(armored);
    let decryptor = age::Decryptor::new_buffered(reader).ok()?;
    let mut stream = decryptor
        .decrypt(std::iter::once(node.identity() as &dyn age::Identity))
        .ok()?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out).ok()?;
    Some(out)
}

/// AES-256-GCM open of one value; `None` when the tag does not match.
fn open(cipher: &SopsGcm, enc: &Enc, aad: &str) -> Option<Vec<u8>> {
    if enc.iv.len() != 32 || enc.tag.len() != 16 {
        return None;
    }
    let mut sealed = enc.data.clone();
    sealed.extend_from_slice(&enc.tag);
    cipher
        .decrypt(
            GenericArray::from_slice(&enc.iv),
            Payload {
                msg: &sealed,
                aad: aad.as_bytes(),
            },
        )
        .ok()
}

/// A decrypted value as a file or program gets it: booleans as `true`/`false` (SOPS encrypts
/// them as `True`/`False`), everything else as its text.
fn value_text(plain: &[u8], kind: &str) -> Option<String> {
    let text = String::from_utf8(plain.to_vec()).ok()?;
    Some(match (kind, text.as_str()) {
        ("bool", "True") => "true".to_owned(),
        ("bool", "False") => "false".to_owned(),
        _ => text,
    })
}

fn verify_mac(file: &str, doc: &Document, cipher: &SopsGcm, computed: &str) -> Result<(), String> {
    if doc.meta.mac.is_empty() {
        return Err(format!(
            "{file} has no MAC (sops.mac), so nothing proves it is whole; SOPS refuses such a file too"
        ));
    }
    let changed = || {
        format!(
            "{file}: MAC mismatch: a value, a key or their order was changed after SOPS encrypted the file (or SOPS did not write it); refusing it"
        )
    };
    let enc: Enc = doc
        .meta
        .mac
        .parse()
        .map_err(|e| format!("{file}: sops.mac: {e}"))?;
    let aad = doc.meta.mac_aad().map_err(|e| format!("{file}: {e}"))?;
    let stored = open(cipher, &enc, &aad).ok_or_else(changed)?;
    if stored != computed.as_bytes() {
        return Err(changed());
    }
    Ok(())
}

#[cfg(test)]
#[path = "sops_tests.rs"]
mod tests;
