//! A test-only SOPS encryptor: turns a plain YAML document into a SOPS file encrypted to age
//! recipients the way SOPS 3 does (every value AES-256-GCM with a 32-byte nonce and its key
//! path as additional data, keys ending in `_unencrypted` left in clear, the MAC over all
//! values encrypted with `lastmodified` as additional data). The data key is encrypted to each
//! recipient by the real `age` CLI (Debian's `age`), so the agent's decoder meets another age
//! implementation. labfleet's decoder is proven against SOPS's own files (tests/fixtures/sops);
//! this exists because Debian has no `sops` binary.

use std::io::Write;
use std::process::{Command, Stdio};

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use lab_proto::sops::{aad, Enc, Node};
use serde_yaml_ng::{Mapping, Value};
use sha2::{Digest, Sha512};

type SopsGcm = aes_gcm::AesGcm<Aes256, U32>;

/// The suffix whose keys stay in clear (SOPS's default `unencrypted_suffix`).
pub const UNENCRYPTED_SUFFIX: &str = "_unencrypted";

/// The `lastmodified` written (and the MAC's additional data).
pub const LAST_MODIFIED: &str = "2026-01-02T03:04:05Z";

fn seal(cipher: &SopsGcm, plain: &[u8], aad: &str, kind: &str) -> String {
    let iv: [u8; 32] = rand::random();
    let sealed = cipher
        .encrypt(
            GenericArray::from_slice(&iv),
            Payload {
                msg: plain,
                aad: aad.as_bytes(),
            },
        )
        .expect("AES-GCM seal");
    let (data, tag) = sealed.split_at(sealed.len() - 16);
    Enc {
        data: data.to_vec(),
        iv: iv.to_vec(),
        tag: tag.to_vec(),
        kind: kind.to_owned(),
    }
    .to_string()
}

struct Walk<'a> {
    cipher: &'a SopsGcm,
    mac: Sha512,
}

impl Walk<'_> {
    fn value(&mut self, node: &Node, names: &mut Vec<String>) -> Value {
        match node {
            Node::Map(m) => {
                let mut out = Mapping::new();
                for (k, v) in m {
                    names.push(k.clone());
                    let child = self.value(v, names);
                    names.pop();
                    out.insert(Value::String(k.clone()), child);
                }
                Value::Mapping(out)
            }
            Node::List(l) => Value::Sequence(l.iter().map(|v| self.value(v, names)).collect()),
            Node::Null => Value::Null,
            scalar => {
                let plain = scalar.mac_bytes().expect("a scalar");
                self.mac.update(&plain);
                if names.iter().any(|n| n.ends_with(UNENCRYPTED_SUFFIX)) {
                    return serde_yaml_ng::to_value(scalar_value(scalar)).expect("scalar");
                }
                if plain.is_empty() {
                    return Value::String(String::new());
                }
                let kind = match scalar {
                    Node::Int(_) | Node::UInt(_) => "int",
                    Node::Float(_) => "float",
                    Node::Bool(_) => "bool",
                    _ => "str",
                };
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                Value::String(seal(self.cipher, &plain, &aad(&refs), kind))
            }
        }
    }
}

fn scalar_value(node: &Node) -> Value {
    match node {
        Node::Str(s) => Value::String(s.clone()),
        Node::Int(i) => Value::Number((*i).into()),
        Node::UInt(u) => Value::Number((*u).into()),
        Node::Float(f) => Value::Number((*f).into()),
        Node::Bool(b) => Value::Bool(*b),
        _ => Value::Null,
    }
}

/// The data key encrypted to `recipient` by `age -a -r`.
fn age_encrypt(data_key: &[u8], recipient: &str) -> String {
    let mut child = Command::new("age")
        .args(["-a", "-r", recipient])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("age not found: install Debian's 'age' package (.ci/run does)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(data_key)
        .expect("write to age");
    let out = child.wait_with_output().expect("age");
    assert!(out.status.success(), "age -r {recipient} failed");
    String::from_utf8(out.stdout).expect("armored")
}

/// `plain` (a YAML mapping) as a SOPS file encrypted to `recipients`.
pub fn encrypt(plain: &str, recipients: &[&str]) -> String {
    let value: Value = serde_yaml_ng::from_str(plain).expect("plain YAML");
    let Node::Map(tree) = Node::from_yaml(value, "").expect("a plain document") else {
        panic!("the plain document is not a mapping");
    };
    let data_key: [u8; 32] = rand::random();
    let cipher = SopsGcm::new_from_slice(&data_key).expect("key");
    let mut walk = Walk {
        cipher: &cipher,
        mac: Sha512::new(),
    };
    let Value::Mapping(mut out) = walk.value(&Node::Map(tree), &mut Vec::new()) else {
        unreachable!()
    };
    let mac = hex::encode_upper(walk.mac.finalize());
    let age: Vec<Value> = recipients
        .iter()
        .map(|r| {
            let mut m = Mapping::new();
            m.insert("recipient".into(), Value::String((*r).to_owned()));
            m.insert("enc".into(), Value::String(age_encrypt(&data_key, r)));
            Value::Mapping(m)
        })
        .collect();
    let mut sops = Mapping::new();
    sops.insert("age".into(), Value::Sequence(age));
    sops.insert("lastmodified".into(), LAST_MODIFIED.into());
    sops.insert(
        "mac".into(),
        Value::String(seal(&cipher, mac.as_bytes(), LAST_MODIFIED, "str")),
    );
    sops.insert("unencrypted_suffix".into(), UNENCRYPTED_SUFFIX.into());
    sops.insert("version".into(), "3.9.4".into());
    out.insert("sops".into(), Value::Mapping(sops));
    serde_yaml_ng::to_string(&out).expect("YAML")
}
