//! Reading a spec file: split it into YAML documents, pick each document's kind, and
//! deserialize a Job or Schedule strictly, with errors that name the file, the document, the
//! field path and the line. Pure.

use serde::Deserialize;
use serde_yaml_ng::Value;

use super::doc::{JobDoc, API_VERSION};
use super::schedule::{schedule_spec, ScheduleDoc, SpecSchedule};
use super::{convert, SpecJob};
use crate::failure::Failure;

/// One document of a spec file.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// `kind: Job`.
    Job(SpecJob),
    /// `kind: Schedule`.
    Schedule(SpecSchedule),
}

/// Parses every document of `text` (named `file` in messages), which must all be Jobs (as
/// `labctl schedule create -f` reads them). Empty documents are skipped; a file without any
/// document is an error.
pub fn parse(file: &str, text: &str) -> Result<Vec<SpecJob>, Failure> {
    let mut jobs = Vec::new();
    for (i, document) in parse_documents(file, text)?.into_iter().enumerate() {
        match document {
            Document::Job(job) => jobs.push(job),
            Document::Schedule(s) => {
                return Err(Failure::Usage(format!(
                    "{}: expected kind: Job here, found kind: Schedule (document {} of {file}); apply schedules with 'labctl apply -f'",
                    s.origin,
                    i + 1
                )))
            }
        }
    }
    Ok(jobs)
}

/// Parses every document of `text` (named `file` in messages): Jobs and Schedules. Empty
/// documents are skipped; a file without any document is an error.
pub fn parse_documents(file: &str, text: &str) -> Result<Vec<Document>, Failure> {
    let bad = |n: usize, m: String| Failure::Usage(format!("{file}: document {n}: {m}"));
    super::depth::check(text).map_err(|m| Failure::Usage(format!("{file}: {m}")))?;
    // Pass 1: the header of each document (and YAML syntax errors, with their line).
    let mut headers = Vec::new();
    for (i, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document).map_err(|e| bad(i + 1, tidy(&e.to_string())))?;
        headers.push(header(&value).map_err(|m| bad(i + 1, m))?);
    }
    // Pass 2: the documents again, each as the type its header names.
    let mut docs = Vec::new();
    let documents = serde_yaml_ng::Deserializer::from_str(text);
    for ((i, document), header) in documents.enumerate().zip(headers) {
        let n = i + 1;
        let Some(header) = header else {
            continue;
        };
        match header.api_version.as_deref() {
            Some(API_VERSION) => {}
            Some(other) => {
                return Err(bad(
                    n,
                    format!("apiVersion '{other}' is not supported; use apiVersion: {API_VERSION}"),
                ))
            }
            None => {
                return Err(bad(
                    n,
                    format!("apiVersion is missing; add apiVersion: {API_VERSION}"),
                ))
            }
        }
        let origin = format!("{file}: document {n}");
        match header.kind.as_deref() {
            Some("Job") => {
                let job: JobDoc = serde_path_to_error::deserialize(document).map_err(|e| {
                    bad(n, path_error(&e.path().to_string(), &e.inner().to_string()))
                })?;
                let name = job.metadata.name.unwrap_or_default();
                let spec = convert::job_spec(job.spec).map_err(|m| bad(n, m))?;
                let spec = convert::with_name(spec, &name).map_err(|m| bad(n, m))?;
                docs.push(Document::Job(SpecJob {
                    origin,
                    name: Some(name).filter(|s| !s.is_empty()),
                    spec,
                }));
            }
            Some("Schedule") => {
                let schedule: ScheduleDoc =
                    serde_path_to_error::deserialize(document).map_err(|e| {
                        bad(n, path_error(&e.path().to_string(), &e.inner().to_string()))
                    })?;
                let spec = schedule_spec(schedule).map_err(|m| bad(n, m))?;
                docs.push(Document::Schedule(SpecSchedule { origin, spec }));
            }
            Some(other) => {
                return Err(bad(
                    n,
                    format!("kind '{other}' is unknown; expected Job or Schedule"),
                ))
            }
            None => {
                return Err(bad(
                    n,
                    "kind is missing; add kind: Job or kind: Schedule".into(),
                ))
            }
        }
    }
    if docs.is_empty() {
        return Err(Failure::Usage(format!(
            "{file}: no documents; expected one or more with apiVersion: {API_VERSION} and kind: Job or Schedule"
        )));
    }
    Ok(docs)
}

/// `apiVersion` and `kind` of a document; `None` for an empty document.
struct Header {
    api_version: Option<String>,
    kind: Option<String>,
}

fn header(value: &Value) -> Result<Option<Header>, String> {
    let mapping = match value {
        Value::Null => return Ok(None),
        Value::Mapping(m) => m,
        other => {
            let found = match other {
                Value::Sequence(_) => "a list",
                Value::Tagged(_) => "a tagged value",
                _ => "a scalar",
            };
            return Err(format!(
                "expected a mapping with apiVersion, kind, metadata and spec, found {found}"
            ));
        }
    };
    let text = |key: &str| match mapping.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{key}: expected a string")),
    };
    Ok(Some(Header {
        api_version: text("apiVersion")?,
        kind: text("kind")?,
    }))
}

/// "PATH: MESSAGE at line L column C" from serde_path_to_error's path and the YAML error, whose
/// text starts with the YAML parser's own (less precise: no unknown key) path.
fn path_error(path: &str, inner: &str) -> String {
    let message = match inner.split_once(": ") {
        Some((own, rest)) if !own.is_empty() && path.starts_with(own) => rest,
        _ => inner,
    };
    let message = tidy(message);
    if path == "." || path.is_empty() {
        message
    } else {
        format!("{path}: {message}")
    }
}

/// serde's "unknown field `pth`, expected one of `path`, `content`" as
/// "unknown field 'pth', expected one of path, content"; labctl's internal type names
/// ("expected struct ExecDoc", "expected enum StateDoc") become what the user must write.
pub fn tidy(message: &str) -> String {
    match message.split_once(", expected ") {
        Some((head, tail)) => format!(
            "{}, expected {}",
            head.replace('`', "'"),
            without_type_names(&tail.replace('`', ""))
        ),
        None => message.replace('`', "'"),
    }
}

/// "struct ExecDoc at line 6" → "a mapping (key: value) at line 6"; "enum X" → "one of its names".
fn without_type_names(expected: &str) -> String {
    let mut out = expected.to_owned();
    for (word, instead) in [
        ("struct ", "a mapping (key: value)"),
        ("enum ", "one of the names this field accepts"),
    ] {
        if let Some(rest) = out.strip_prefix(word) {
            let name_len = rest
                .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .unwrap_or(rest.len());
            out = format!("{instead}{}", &rest[name_len..]);
        }
    }
    out
}
