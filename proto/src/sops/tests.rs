//! Tests of SOPS file parsing: examples with their metadata, leaf order, key lookup, refused files.

use super::*;

const EXAMPLE_YAML: &str = include_str!("../../../tests/fixtures/sops/example.yaml");
const EXAMPLE_JSON: &str = include_str!("../../../tests/fixtures/sops/example.json");

#[test]
fn the_published_examples_parse_with_their_metadata() {
    let y = Document::parse(EXAMPLE_YAML).unwrap();
    assert_eq!(y.meta.age.len(), 2);
    assert_eq!(
        y.meta.age[0].recipient,
        "age1yt3tfqlfrwdwx0z0ynwplcr6qxcxfaqycuprpmy89nr83ltx74tqdpszlw"
    );
    assert!(y.meta.age[0]
        .enc
        .starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
    assert_eq!(y.meta.unencrypted_suffix.as_deref(), Some("_unencrypted"));
    assert_eq!(y.meta.mac_aad().unwrap(), "2022-03-15T22:11:15Z");
    assert_eq!(y.meta.version, "3.7.1");
    // Top-level keys in file order, `sops` taken out.
    let keys: Vec<&str> = y.tree.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "myapp1",
            "app2",
            "number",
            "an_array",
            "somebooleans",
            "this",
            "somelist_unencrypted",
            "nested_unencrypted"
        ]
    );
    let j = Document::parse(EXAMPLE_JSON).unwrap();
    assert_eq!(j.meta.age.len(), 2);
    assert_eq!(j.tree[0].0, "firstName");
}

#[test]
fn leaves_come_in_sops_order_with_names_without_list_indexes() {
    let y = Document::parse(EXAMPLE_YAML).unwrap();
    let leaves = y.leaves();
    let array: Vec<&Leaf> = leaves.iter().filter(|l| l.names == ["an_array"]).collect();
    assert_eq!(array.len(), 4);
    assert_eq!(
        array[2].path,
        [Step::Key("an_array".into()), Step::Index(2)]
    );
    assert_eq!(leaves[1].names, ["app2", "db", "user"]);
    assert_eq!(aad(&leaves[1].names), "app2:db:user:");
    let last = leaves.last().unwrap();
    assert_eq!(last.names, ["nested_unencrypted", "this", "is", "all"]);
    assert!(!y.meta.encrypts(&last.names).unwrap());
    assert!(y.meta.encrypts(&leaves[1].names).unwrap());
}

#[test]
fn keys_are_found_or_the_error_says_what_is_there() {
    let y = Document::parse(EXAMPLE_YAML).unwrap();
    let get = |p: &str| y.get(&p.parse().unwrap());
    assert!(
        matches!(get(r#"["app2"]["db"]["password"]"#), Ok(Node::Str(s)) if s.starts_with("ENC["))
    );
    assert!(matches!(get(r#"["an_array"][3]"#), Ok(Node::Str(_))));
    for (path, says) in [
        (
            r#"["app2"]["db"]["pasword"]"#,
            r#"["app2"]["db"] has no key "pasword" (its keys: user, password)"#,
        ),
        (r#"["nope"]"#, "the top has no key \"nope\""),
        (
            r#"["an_array"][4]"#,
            "is a list of 4 values, so it has no index 4",
        ),
        (r#"["app2"]"#, "is a mapping, not one value"),
        (
            r#"["myapp1"]["x"]"#,
            "is a single value, so it has no [\"x\"]",
        ),
        ("[0]", "the top of a SOPS file is a mapping"),
    ] {
        match get(path) {
            Err(SopsError::NoSuchKey(m)) => assert!(m.contains(says), "{path}: {m}"),
            other => panic!("{path}: {other:?}"),
        }
    }
    assert!(
        matches!(check(EXAMPLE_YAML, "db.password"), Err(SopsError::NoSuchKey(m)) if m.contains("not a SOPS key path"))
    );
    check(EXAMPLE_JSON, r#"["phoneNumbers"][1]["number"]"#).unwrap();
}

#[test]
fn files_that_are_not_age_sops_files_are_refused_clearly() {
    for (text, says) in [
        ("a: 1\n", "no sops metadata"),
        ("- 1\n", "not a mapping at the top"),
        ("a: [\n", "not YAML or JSON"),
        ("a: 1\n---\nb: 2\n", "several YAML documents"),
        (
            "a: 1\nsops: {lastmodified: '2022-03-15T22:11:15Z', mac: x}\n",
            "not encrypted to any age recipient",
        ),
        (
            "a: 1\nsops: {age: [{recipient: r, enc: e}], key_groups: [{age: []}, {age: []}]}\n",
            "Shamir",
        ),
        (
            "a: 1\nsops: {age: [{recipient: r, enc: e}], encrypted_comment_regex: x}\n",
            "comment_regex",
        ),
        (
            "1: x\nsops: {age: [{recipient: r, enc: e}]}\n",
            "not a string",
        ),
        (
            "a: !secret x\nsops: {age: [{recipient: r, enc: e}]}\n",
            "tagged",
        ),
    ] {
        match Document::parse(text) {
            Err(SopsError::Format(m)) => assert!(m.contains(says), "{text}: {m}"),
            other => panic!("{text}: {other:?}"),
        }
    }
    let big = format!("a: \"{}\"\n", "x".repeat(MAX_DOCUMENT_BYTES));
    assert!(
        matches!(Document::parse(&big), Err(SopsError::Format(m)) if m.contains("larger than"))
    );
}

#[test]
fn encryption_rules_follow_sops_order() {
    let meta = |f: &dyn Fn(&mut Metadata)| {
        let mut m = Document::parse(EXAMPLE_YAML).unwrap().meta;
        m.unencrypted_suffix = None;
        f(&mut m);
        m
    };
    let all = meta(&|_| {});
    assert!(all.encrypts(&["a", "b_unencrypted"]).unwrap());
    let suffix = meta(&|m| m.encrypted_suffix = Some("_enc".into()));
    assert!(suffix.encrypts(&["x_enc", "y"]).unwrap());
    assert!(!suffix.encrypts(&["x", "y"]).unwrap());
    let re = meta(&|m| m.encrypted_regex = Some("^(data|stringData)$".into()));
    assert!(re.encrypts(&["data", "k"]).unwrap());
    assert!(!re.encrypts(&["metadata", "name"]).unwrap());
    let unre = meta(&|m| m.unencrypted_regex = Some("pub".into()));
    assert!(!unre.encrypts(&["a", "public_key"]).unwrap());
    let broken = meta(&|m| m.encrypted_regex = Some("(".into()));
    assert!(
        matches!(broken.encrypts(&["a"]), Err(SopsError::Format(m)) if m.contains("encrypted_regex"))
    );
}

#[test]
fn mac_bytes_are_what_go_writes() {
    assert_eq!(Node::Bool(true).mac_bytes().unwrap(), b"True");
    assert_eq!(Node::Bool(false).text().unwrap(), "false");
    assert_eq!(Node::Float(1.0).mac_bytes().unwrap(), b"1");
    assert_eq!(Node::Float(1234.5678).mac_bytes().unwrap(), b"1234.5678");
    assert_eq!(
        Node::Float(1e21).mac_bytes().unwrap(),
        b"1000000000000000000000"
    );
    assert_eq!(Node::Float(f64::NEG_INFINITY).mac_bytes().unwrap(), b"-Inf");
    assert_eq!(Node::Int(-7).mac_bytes().unwrap(), b"-7");
    assert_eq!(Node::Null.mac_bytes(), None);
}

#[test]
fn lastmodified_is_reformatted_as_go_does() {
    let aad = |t: &str| rfc3339_as_go_writes_it(t);
    assert_eq!(aad("2022-03-15T22:11:15Z").unwrap(), "2022-03-15T22:11:15Z");
    assert_eq!(
        aad("2022-03-15T22:11:15.123456Z").unwrap(),
        "2022-03-15T22:11:15Z"
    );
    assert_eq!(
        aad("2022-03-15T22:11:15+00:00").unwrap(),
        "2022-03-15T22:11:15Z"
    );
    assert_eq!(
        aad("2022-03-15T23:11:15+01:00").unwrap(),
        "2022-03-15T23:11:15+01:00"
    );
    for bad in [
        "",
        "2022-03-15",
        "2022-03-15 22:11:15Z",
        "2022-03-15T22:11:15",
        "2022-03-15T22:11:15.Z",
    ] {
        assert_eq!(aad(bad), None, "{bad}");
    }
}

#[test]
fn encrypted_values_parse_and_print_back() {
    let text = "ENC[AES256_GCM,data:/cSI,iv:v78SLfb75AgxJU6hyorI1NdFIS9BPQhfaYohvnP4+zY=,tag:RT4DZqfxr6acgPTUpYMv0A==,type:str]";
    let enc: Enc = text.parse().unwrap();
    assert_eq!((enc.data.len(), enc.iv.len(), enc.tag.len()), (3, 32, 16));
    assert_eq!(enc.kind, "str");
    assert_eq!(enc.to_string(), text);
    for bad in [
        "secret",
        "ENC[AES256_GCM,data:x,iv:y]",
        "ENC[AES256_GCM,data:@@,iv:AA==,tag:AA==,type:str]",
        "ENC[AES256_GCM,data:AA==,iv:AA==,tag:AA==,type:str,extra:1]",
    ] {
        assert!(bad.parse::<Enc>().is_err(), "{bad}");
    }
}
