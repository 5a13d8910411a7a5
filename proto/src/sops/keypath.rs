//! The key path of one value in a SOPS document, in `sops --extract`'s syntax:
//! `["db"]["password"]`, `['hosts'][0]`. Keys are quoted (double or single quotes, no escapes,
//! so a key cannot hold `[`), list indexes are decimal.

use std::fmt;
use std::str::FromStr;

/// One step of a [`KeyPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A mapping key.
    Key(String),
    /// A list index.
    Index(usize),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Key(k) if k.contains('"') => write!(f, "['{k}']"),
            Step::Key(k) => write!(f, "[\"{k}\"]"),
            Step::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A parsed key path: at least one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Step>);

/// Why a text is not a key path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key '{text}' is not a SOPS key path ({why}); write it as sops --extract takes it, e.g. '[\"db\"][\"password\"]' or '[\"hosts\"][0]'")]
pub struct BadKeyPath {
    text: String,
    why: String,
}

impl FromStr for KeyPath {
    type Err = BadKeyPath;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |why: String| BadKeyPath {
            text: text.chars().take(200).collect(),
            why,
        };
        let mut steps = Vec::new();
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(bad("it is empty".into()));
        }
        while !rest.is_empty() {
            let Some(inner) = rest.strip_prefix('[') else {
                return Err(bad(format!("expected '[' at '{rest}'")));
            };
            let (step, after) = match inner.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let body = &inner[1..];
                    let end = body
                        .find(q)
                        .ok_or_else(|| bad(format!("a key is missing its closing {q}")))?;
                    (Step::Key(body[..end].to_owned()), &body[end + 1..])
                }
                _ => {
                    let end = inner
                        .find(']')
                        .ok_or_else(|| bad("a '[' is not closed".into()))?;
                    let digits = &inner[..end];
                    let i = digits.parse::<usize>().map_err(|_| {
                        bad(format!(
                            "[{digits}] is neither a quoted key nor a list index"
                        ))
                    })?;
                    (Step::Index(i), &inner[end..])
                }
            };
            rest = after
                .strip_prefix(']')
                .ok_or_else(|| bad("a step does not end with ']'".into()))?;
            steps.push(step);
        }
        Ok(KeyPath(steps))
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.0 {
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_as_sops_extract_takes_them() {
        let p: KeyPath = r#"["db"]['pass word'][0]"#.parse().unwrap();
        assert_eq!(
            p.0,
            [
                Step::Key("db".into()),
                Step::Key("pass word".into()),
                Step::Index(0)
            ]
        );
        assert_eq!(p.to_string(), r#"["db"]["pass word"][0]"#);
        let q: KeyPath = r#"['say "hi"']"#.parse().unwrap();
        assert_eq!(q.to_string().parse::<KeyPath>().unwrap(), q);
    }

    #[test]
    fn bad_paths_say_what_is_wrong() {
        for (text, why) in [
            ("", "empty"),
            ("db.password", "expected '['"),
            (r#"["db"#, "closing \""),
            (r#"["db"]x"#, "expected '['"),
            ("[db]", "neither a quoted key"),
            ("[-1]", "neither a quoted key"),
            ("[0", "not closed"),
            (r#"["a"x]"#, "does not end with ']'"),
        ] {
            let e = text.parse::<KeyPath>().unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
