//! The decoder against the SOPS project's own age test vectors (tests/fixtures/sops, see its
//! README for the source), then tampered copies of them.

use super::*;

const KEYS: &str = include_str!("../../../tests/fixtures/sops/keys.txt");
const YAML: &str = include_str!("../../../tests/fixtures/sops/example.yaml");
const JSON: &str = include_str!("../../../tests/fixtures/sops/example.json");
const TXT: &str = include_str!("../../../tests/fixtures/sops/example.txt");

/// The published test identities (two), each as a node key.
fn test_keys() -> Vec<NodeKey> {
    KEYS.lines()
        .filter(|l| l.starts_with("AGE-SECRET-KEY-"))
        .map(|l| NodeKey::parse(l).unwrap())
        .collect()
}

fn get(doc: &str, key: &str) -> Result<String, String> {
    decrypt_value("example", doc, key, &test_keys()[0])
}

#[test]
fn the_json_example_gives_what_sops_own_test_expects() {
    // decrypt/example_test.go in SOPS checks these four values.
    assert_eq!(get(JSON, r#"["firstName"]"#).unwrap(), "John");
    assert_eq!(get(JSON, r#"["lastName"]"#).unwrap(), "Smith");
    assert_eq!(get(JSON, r#"["age"]"#).unwrap(), "25.4");
    assert_eq!(
        get(JSON, r#"["phoneNumbers"][1]["number"]"#).unwrap(),
        "646 555-4567"
    );
    assert_eq!(get(JSON, r#"["anEmptyValue"]"#).unwrap(), "");
    // The other published identity opens its own entry of the same file.
    let other = &test_keys()[1];
    assert_eq!(
        other.recipient().as_str(),
        "age1tmaae3ld5vpevmsh5yacsauzx8jetg300mpvc4ugp5zr5l6ssq9sla97ep"
    );
    assert_eq!(
        decrypt_value("example.json", JSON, r#"["lastName"]"#, other).unwrap(),
        "Smith"
    );
}

#[test]
fn the_yaml_and_binary_examples_decrypt_with_their_mac_verified() {
    // Each call verifies SOPS's MAC over every value of the file (lists, booleans, a float,
    // encrypted comments left out, the _unencrypted keys in clear), so a value that decrypted
    // wrongly or a missed one would fail it.
    for key in [
        r#"["myapp1"]"#,
        r#"["app2"]["db"]["user"]"#,
        r#"["app2"]["db"]["password"]"#,
        r#"["app2"]["key"]"#,
        r#"["an_array"][2]"#,
        r#"["this"]["is"]["a"]["nested"]["value"]"#,
    ] {
        let v = get(YAML, key).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert!(!v.is_empty() && !v.starts_with("ENC["), "{key}: {v}");
    }
    assert!(get(YAML, r#"["app2"]["key"]"#)
        .unwrap()
        .contains("PRIVATE KEY"));
    assert!(get(YAML, r#"["number"]"#).unwrap().parse::<f64>().is_ok());
    let bools: Vec<String> = (0..2)
        .map(|i| get(YAML, &format!(r#"["somebooleans"][{i}]"#)).unwrap())
        .collect();
    assert_eq!(bools, ["true", "false"]);
    assert_eq!(
        get(YAML, r#"["somelist_unencrypted"][0]"#).unwrap(),
        "all elements of this list"
    );
    let text = get(TXT, r#"["data"]"#).unwrap();
    assert!(text.contains('\n') && text.is_ascii(), "{text}");
}

#[test]
fn a_node_that_is_no_recipient_is_told_which_file_and_its_own_recipient() {
    let stranger = NodeKey::generate().unwrap();
    let e = decrypt_value("secrets/db.yaml", YAML, r#"["myapp1"]"#, &stranger).unwrap_err();
    assert!(
        e.starts_with("secrets/db.yaml is not encrypted to this node"),
        "{e}"
    );
    assert!(e.contains(stranger.recipient().as_str()), "{e}");
    assert!(
        e.contains("age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw"),
        "{e}"
    );
}

#[test]
fn tampered_files_are_refused() {
    // A clear value changed: only the MAC can tell.
    let clear = YAML.replace("remain in clear text", "remain in clear TEXT");
    assert_ne!(clear, YAML);
    let e = get(&clear, r#"["myapp1"]"#).unwrap_err();
    assert!(e.contains("MAC mismatch"), "{e}");
    // An encrypted value moved to another key: its additional data no longer matches.
    let y = lab_proto::sops::Document::parse(YAML).unwrap();
    let (Node::Str(first), Node::Str(number)) = (&y.tree[0].1, &y.tree[2].1) else {
        panic!("example.yaml changed");
    };
    let moved = YAML.replacen(number.as_str(), first, 1);
    let e = get(&moved, r#"["myapp1"]"#).unwrap_err();
    assert!(e.contains(r#"["number"] does not decrypt"#), "{e}");
    // Values reordered in a list: each decrypts, the MAC does not match.
    let a = "- ENC[AES256_GCM,data:Kz5fYNAguRjkRY4=";
    let b = "- ENC[AES256_GCM,data:nQSYDNgm6hKdvbU=";
    let lines: Vec<&str> = YAML.lines().collect();
    let (ia, ib) = (
        lines
            .iter()
            .position(|l| l.trim_start().starts_with(a))
            .unwrap(),
        lines
            .iter()
            .position(|l| l.trim_start().starts_with(b))
            .unwrap(),
    );
    let mut swapped = lines.clone();
    swapped.swap(ia, ib);
    let e = get(&(swapped.join("\n") + "\n"), r#"["myapp1"]"#).unwrap_err();
    assert!(e.contains("MAC mismatch"), "{e}");
    // lastmodified changed: the MAC's additional data.
    let later = YAML.replace("2022-03-15T22:11:15Z", "2022-03-15T22:11:16Z");
    assert!(get(&later, r#"["myapp1"]"#)
        .unwrap_err()
        .contains("MAC mismatch"));
    // No MAC at all.
    let no_mac: String = YAML
        .lines()
        .filter(|l| !l.contains("mac: ENC"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(get(&no_mac, r#"["myapp1"]"#)
        .unwrap_err()
        .contains("has no MAC"));
}

#[test]
fn a_missing_key_names_what_is_there() {
    let e = get(JSON, r#"["address"]["zip"]"#).unwrap_err();
    assert!(e.contains(r#"["address"] has no key "zip""#), "{e}");
    assert!(e.contains("postalCode"), "{e}");
}

#[test]
fn the_shipped_example_made_by_the_test_encryptor_decrypts() {
    // deploy/examples/secrets/db.yaml: written by lab_tests::sops (data key by the age CLI),
    // encrypted to SOPS's published test key.
    const DB: &str = include_str!("../../../deploy/examples/secrets/db.yaml");
    let v = decrypt_value(
        "secrets/db.yaml",
        DB,
        r#"["db"]["password"]"#,
        &test_keys()[0],
    );
    assert_eq!(v.unwrap(), "example-only-not-a-secret");
    let host = decrypt_value(
        "secrets/db.yaml",
        DB,
        r#"["host_unencrypted"]"#,
        &test_keys()[0],
    );
    assert_eq!(host.unwrap(), "db.lab.internal");
}
