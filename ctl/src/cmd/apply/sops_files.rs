//! Reads the SOPS files a converted job refers to (`contentFrom`, `envFrom`, `passwordFrom`)
//! and puts each file, unchanged, into its reference: labctl sends the ciphertext as it is and
//! never decrypts anything. Paths are relative to the spec file's directory (the current
//! directory for stdin). Before anything is sent, each file must be a SOPS YAML or JSON file
//! encrypted to age recipients whose unencrypted structure has the referenced key: otherwise
//! labctl exits 2 naming the document, the field and the file.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use lab_proto::sops::MAX_DOCUMENT_BYTES;
use lab_proto::v1::value_from::Source;
use lab_proto::v1::{resource, task_spec, JobSpec, ValueFrom};

use crate::failure::Failure;

/// The `envFrom` references under `at`, by name.
fn env(at: String, m: &mut HashMap<String, ValueFrom>) -> Vec<(String, &mut ValueFrom)> {
    let mut refs: Vec<(String, &mut ValueFrom)> = m
        .iter_mut()
        .map(|(k, v)| (format!("{at}.{k}"), v))
        .collect();
    refs.sort_by(|a, b| a.0.cmp(&b.0));
    refs
}

/// Every reference of `spec` with the spec field it sits in.
fn references(spec: &mut JobSpec) -> Vec<(String, &mut ValueFrom)> {
    let mut out = Vec::new();
    let Some(kind) = spec.task.as_mut().and_then(|t| t.kind.as_mut()) else {
        return out;
    };
    match kind {
        task_spec::Kind::Exec(e) => {
            out.extend(env("spec.task.exec.envFrom".into(), &mut e.env_from))
        }
        task_spec::Kind::Config(c) => {
            for (i, r) in c.resources.iter_mut().enumerate() {
                match r.kind.as_mut() {
                    Some(resource::Kind::File(f)) => {
                        if let Some(v) = f.content_from.as_mut() {
                            out.push((
                                format!("spec.task.config.resources[{i}].file.contentFrom"),
                                v,
                            ));
                        }
                    }
                    Some(resource::Kind::Command(cmd)) => out.extend(env(
                        format!("spec.task.config.resources[{i}].command.envFrom"),
                        &mut cmd.env_from,
                    )),
                    _ => {}
                }
            }
        }
        task_spec::Kind::Backup(b) => {
            if let Some(action) = b.action.as_mut() {
                let op = action.spec_name();
                if let Some(v) = action.repo_mut().and_then(|r| r.password_from.as_mut()) {
                    out.push((format!("spec.task.backup.{op}.passwordFrom"), v));
                }
            }
        }
        task_spec::Kind::Container(_) => {}
    }
    out
}

/// Reads the files `spec` refers to (relative to `base`), checks them and puts them in.
/// `origin` ("FILE: document N") starts every error; each file is read once per call of
/// [`Files::fill`] on the same [`Files`].
#[derive(Default)]
pub struct Files {
    read: HashMap<PathBuf, String>,
}

impl Files {
    /// Fills every reference of `spec`.
    pub fn fill(&mut self, spec: &mut JobSpec, base: &Path, origin: &str) -> Result<(), Failure> {
        for (at, v) in references(spec) {
            let Some(Source::Sops(s)) = v.source.as_mut() else {
                continue;
            };
            let bad = |m: String| Failure::Usage(format!("{origin}: {at}: {m}"));
            let path = base.join(&s.file);
            let text = match self.read.get(&path) {
                Some(t) => t.clone(),
                None => {
                    let t = read_limited(&path).map_err(|m| bad(format!("{}: {m}", s.file)))?;
                    self.read.insert(path.clone(), t.clone());
                    t
                }
            };
            lab_proto::sops::check(&text, &s.key).map_err(|e| bad(format!("{}: {e}", s.file)))?;
            s.document = text;
        }
        Ok(())
    }
}

/// The directory a spec file's references are relative to (`-`: the current directory).
pub fn base_of(spec_file: &Path) -> PathBuf {
    if spec_file.as_os_str() == "-" {
        return PathBuf::from(".");
    }
    match spec_file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn read_limited(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read it ({e})"))?;
    let mut bytes = Vec::new();
    file.take(MAX_DOCUMENT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it ({e})"))?;
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(format!(
            "it is larger than {} KiB; a SOPS file of secrets is small",
            MAX_DOCUMENT_BYTES / 1024
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| "it is not UTF-8 text (a SOPS YAML or JSON file is)".into())
}
