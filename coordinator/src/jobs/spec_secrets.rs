//! Validation of the values a task takes from SOPS files (`contentFrom`, `envFrom`,
//! `passwordFrom`) at submit time: the reference must name a file, carry the file (a SOPS YAML
//! or JSON document encrypted to age recipients, at most `lab_proto::sops::MAX_DOCUMENT_BYTES`)
//! and a key path naming one value of it. The coordinator cannot decrypt anything (it has no
//! age key); it checks only the file's unencrypted structure, as labctl does before sending.

use std::collections::HashMap;

use lab_proto::v1::value_from::Source;
use lab_proto::v1::ValueFrom;

use crate::error::ApiError;

fn bad<T>(m: String) -> Result<T, ApiError> {
    Err(ApiError::InvalidArgument(m))
}

/// Checks one reference; errors start with `at` (the spec field, e.g. `resources[0].file.contentFrom`).
pub fn value_from(at: &str, v: &ValueFrom) -> Result<(), ApiError> {
    let Some(Source::Sops(s)) = &v.source else {
        return bad(format!(
            "{at}: no source; give sops: {{file: FILE, key: '[\"name\"]'}}"
        ));
    };
    if s.file.is_empty() || s.file.chars().any(char::is_control) {
        return bad(format!(
            "{at}.sops.file is missing or has control characters"
        ));
    }
    if s.document.is_empty() {
        return bad(format!(
            "{at}.sops: the content of {} is missing; labctl sends it with the spec",
            s.file
        ));
    }
    lab_proto::sops::check(&s.document, &s.key)
        .map_err(|e| ApiError::InvalidArgument(format!("{at}.sops: {}: {e}", s.file)))
}

/// Checks `envFrom` beside `env`: valid names, none in both, every reference.
pub fn env_from(
    at: &str,
    env: &HashMap<String, String>,
    from: &HashMap<String, ValueFrom>,
) -> Result<(), ApiError> {
    let mut names: Vec<&String> = from.keys().collect();
    names.sort();
    for name in names {
        if name.is_empty() || name.contains(['=', '\0']) {
            return bad(format!(
                "{at}: invalid environment variable name '{}'",
                name.escape_debug()
            ));
        }
        if env.contains_key(name) {
            return bad(format!(
                "{at}.{name}: {name} is also set in env; set it in one of them"
            ));
        }
        value_from(&format!("{at}.{name}"), &from[name])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_proto::v1::SopsValue;

    const DB: &str = include_str!("../../../deploy/examples/secrets/db.yaml");

    fn sops(document: &str, key: &str) -> ValueFrom {
        ValueFrom {
            source: Some(Source::Sops(SopsValue {
                file: "secrets/db.yaml".into(),
                document: document.into(),
                key: key.into(),
            })),
        }
    }

    fn err(r: Result<(), ApiError>) -> String {
        match r {
            Err(ApiError::InvalidArgument(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn references_are_checked_without_decrypting() {
        value_from("x", &sops(DB, r#"["db"]["password"]"#)).unwrap();
        let e = err(value_from("x", &sops(DB, r#"["db"]["pw"]"#)));
        assert!(
            e.starts_with("x.sops: secrets/db.yaml: ") && e.contains("no key \"pw\""),
            "{e}"
        );
        let e = err(value_from("x", &sops("", r#"["db"]"#)));
        assert!(e.contains("content of secrets/db.yaml is missing"), "{e}");
        let e = err(value_from("x", &sops("a: 1\n", r#"["a"]"#)));
        assert!(e.contains("not encrypted with SOPS"), "{e}");
        let e = err(value_from("x", &ValueFrom::default()));
        assert!(e.contains("no source"), "{e}");
    }

    #[test]
    fn env_from_names_are_checked_and_not_doubled() {
        let from = HashMap::from([("PW".to_owned(), sops(DB, r#"["db"]["password"]"#))]);
        env_from("exec.envFrom", &HashMap::new(), &from).unwrap();
        let env = HashMap::from([("PW".to_owned(), "x".to_owned())]);
        let e = err(env_from("exec.envFrom", &env, &from));
        assert!(e.contains("also set in env"), "{e}");
        let bad = HashMap::from([("A=B".to_owned(), sops(DB, r#"["db"]["password"]"#))]);
        assert!(err(env_from("exec.envFrom", &HashMap::new(), &bad)).contains("invalid"));
    }
}
