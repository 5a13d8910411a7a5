//! Puts the values a task takes from SOPS files (`ValueFrom`: a file's `contentFrom`, the
//! `envFrom` of exec tasks and command resources, a backup's `passwordFrom`) into its spec,
//! decrypted with the node's key, before the task starts: every value of the task is decrypted
//! (and every file's MAC checked) first, so a task whose secret cannot be had fails before it
//! has written or run anything. A file's content becomes `secret` (kept out of diffs and logs);
//! a backup password goes into a 0600 file of the agent's own private directory, removed when
//! the task ends ([`Resolved`] is dropped). [`Redactor`] keeps every decrypted value out of the
//! task's output, error and results.
//!
//! The spec with the values in it lives only in this process's memory: the journal records
//! task ids and results, never specs.

use std::path::{Path, PathBuf};

use lab_proto::v1::value_from::Source;
use lab_proto::v1::{resource, task_result, task_spec, TaskResult, TaskSpec, ValueFrom};

use super::sops::decrypt_value;
use super::NodeKey;

/// Shortest decrypted value redacted from output (shorter ones would garble it: `1`, `yes`).
const MIN_REDACTED: usize = 4;

/// What resolving left behind: the values to redact, the files to remove.
#[derive(Debug, Default)]
pub struct Resolved {
    /// Redacts the decrypted values.
    pub redactor: Redactor,
    files: Vec<PathBuf>,
}

impl Drop for Resolved {
    fn drop(&mut self) {
        for f in &self.files {
            if let Err(e) = std::fs::remove_file(f) {
                tracing::warn!(path = %f.display(), error = %e, "cannot remove a task's secret file");
            }
        }
    }
}

/// Where [`resolve`] may decrypt and write.
pub struct Keys<'a> {
    /// The node's age key; `None` when the agent has none (then any `ValueFrom` fails).
    pub node: Option<&'a NodeKey>,
    /// A directory only the agent can read, for backup password files (created 0700).
    pub private_dir: Option<&'a Path>,
    /// The task, for file names.
    pub task_id: &'a str,
}

/// Replaces every `ValueFrom` in `spec` by its decrypted value. An error names the field and
/// the file; nothing has been written then (password files already made are removed).
pub fn resolve(spec: &mut TaskSpec, keys: &Keys<'_>) -> Result<Resolved, String> {
    let mut out = Resolved::default();
    match spec.kind.as_mut() {
        Some(task_spec::Kind::Exec(exec)) => env_from(
            &mut exec.env,
            std::mem::take(&mut exec.env_from),
            "envFrom",
            keys,
            &mut out,
        )?,
        Some(task_spec::Kind::Config(config)) => {
            for (i, r) in config.resources.iter_mut().enumerate() {
                match r.kind.as_mut() {
                    Some(resource::Kind::File(f)) => {
                        if let Some(from) = f.content_from.take() {
                            let at = format!("resources[{i}].file.contentFrom");
                            if f.template {
                                return Err(format!(
                                    "{at}: a decrypted content cannot be a template"
                                ));
                            }
                            f.content = value(&from, &at, keys, &mut out)?;
                            f.secret = true;
                        }
                    }
                    Some(resource::Kind::Command(c)) => {
                        let at = format!("resources[{i}].command.envFrom");
                        env_from(
                            &mut c.env,
                            std::mem::take(&mut c.env_from),
                            &at,
                            keys,
                            &mut out,
                        )?
                    }
                    _ => {}
                }
            }
        }
        Some(task_spec::Kind::Backup(backup)) => {
            if let Some(repo) = backup.action.as_mut().and_then(|a| a.repo_mut()) {
                if let Some(from) = repo.password_from.take() {
                    let password = value(&from, "passwordFrom", keys, &mut out)?;
                    repo.password_file = password_file(&password, keys, &mut out)?;
                }
            }
        }
        Some(task_spec::Kind::Container(_)) | None => {}
    }
    Ok(out)
}

fn env_from(
    env: &mut std::collections::HashMap<String, String>,
    from: std::collections::HashMap<String, ValueFrom>,
    at: &str,
    keys: &Keys<'_>,
    out: &mut Resolved,
) -> Result<(), String> {
    // In name order, so the first error is the same on every run.
    let mut from: Vec<_> = from.into_iter().collect();
    from.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, source) in from {
        let at = format!("{at}.{name}");
        if env.contains_key(&name) {
            return Err(format!(
                "{at}: {name} is also set in env; set it in one of them"
            ));
        }
        let v = value(&source, &at, keys, out)?;
        env.insert(name, v);
    }
    Ok(())
}

fn value(
    from: &ValueFrom,
    at: &str,
    keys: &Keys<'_>,
    out: &mut Resolved,
) -> Result<String, String> {
    let Some(Source::Sops(sops)) = &from.source else {
        return Err(format!(
            "{at}: names no source this agent knows; upgrade the agent"
        ));
    };
    let node = keys.node.ok_or_else(|| {
        format!(
            "{at}: this agent has no age key to decrypt {} with",
            sops.file
        )
    })?;
    let v = decrypt_value(&sops.file, &sops.document, &sops.key, node)
        .map_err(|e| format!("{at}: {e}"))?;
    out.redactor.add(&v);
    Ok(v)
}

/// Writes a backup password into a new 0600 file of the private directory; its path.
fn password_file(password: &str, keys: &Keys<'_>, out: &mut Resolved) -> Result<String, String> {
    let dir = keys
        .private_dir
        .ok_or("passwordFrom: this agent has no private directory for the password file")?;
    lab_proto::files::create_private_dir(dir)
        .map_err(|e| format!("passwordFrom: cannot create {}: {e}", dir.display()))?;
    let path = dir.join(format!("{}.password", keys.task_id));
    lab_proto::files::write_atomic(&path, password.as_bytes(), lab_proto::files::PRIVATE)
        .map_err(|e| format!("passwordFrom: cannot write {}: {e}", path.display()))?;
    out.files.push(path.clone());
    Ok(path.display().to_string())
}

/// Removes the password files a previous agent process left behind (it died mid-task).
pub fn clean_private_dir(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "password") {
            if let Err(err) = std::fs::remove_file(&p) {
                tracing::warn!(path = %p.display(), error = %err, "cannot remove a stale secret file");
            }
        }
    }
}

/// Replaces decrypted values with `***` in what a task reports.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    values: Vec<String>,
}

impl Redactor {
    /// Redacts `value` from now on: the whole value, and each longer line of a multi-line one.
    pub fn add(&mut self, value: &str) {
        if value.len() >= MIN_REDACTED {
            self.values.push(value.to_owned());
        }
        if value.contains('\n') {
            for line in value.lines().map(str::trim) {
                if line.len() >= 8 {
                    self.values.push(line.to_owned());
                }
            }
        }
        // Longest first, so a value is not half-replaced by one of its own lines.
        self.values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        self.values.dedup();
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every value replaced.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), "***");
            }
        }
        out
    }

    /// Output bytes with every value replaced (bytes that are not UTF-8 are kept as they are
    /// where no value is found in them).
    pub fn bytes(&self, data: Vec<u8>) -> Vec<u8> {
        if self.values.is_empty() {
            return data;
        }
        match String::from_utf8(data) {
            Ok(text) => self.text(&text).into_bytes(),
            Err(e) => {
                let data = e.into_bytes();
                let found = self
                    .values
                    .iter()
                    .any(|v| data.windows(v.len()).any(|w| w == v.as_bytes()));
                if found {
                    self.text(&String::from_utf8_lossy(&data)).into_bytes()
                } else {
                    data
                }
            }
        }
    }

    /// The messages and diffs of a structured result.
    pub fn result(&self, result: &mut TaskResult) {
        match result.kind.as_mut() {
            Some(task_result::Kind::Config(c)) => {
                for r in &mut c.resources {
                    r.diff = self.text(&r.diff);
                    r.message = self.text(&r.message);
                }
            }
            Some(task_result::Kind::Container(c)) => c.message = self.text(&c.message),
            // Numbers, ids and paths; the backup module redacts what restic prints itself.
            Some(task_result::Kind::Backup(_)) | None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_redacted_longest_first_short_ones_kept() {
        let mut r = Redactor::default();
        r.add("s3cr3t-password");
        r.add("-----BEGIN KEY-----\nAAAAbbbbCCCCdddd\n-----END KEY-----");
        r.add("yes");
        assert_eq!(r.text("pw=s3cr3t-password ok yes"), "pw=*** ok yes");
        assert_eq!(r.text("line AAAAbbbbCCCCdddd"), "line ***");
        assert_eq!(
            r.bytes(b"\xff s3cr3t-password".to_vec()),
            "\u{fffd} ***".as_bytes()
        );
        assert_eq!(r.bytes(b"\xff plain".to_vec()), b"\xff plain");
    }
}
