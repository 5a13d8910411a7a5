//! How restic is invoked: the repository and its password file travel in the environment
//! (`RESTIC_REPOSITORY`, `RESTIC_PASSWORD_FILE`, the backend's `KEY=VALUE` lines of the env
//! file), never in arguments, so no secret appears in a process listing, a message or the
//! task's output. Also the parsers of restic's JSON listings (`snapshots`, `forget`, `ls`).

use std::collections::BTreeMap;

use lab_proto::v1::{ForgetSummary, ResticRepository, Retention, Snapshot};
use serde::Deserialize;

use super::proc::Step;

/// Longest env file read (it holds a few credentials).
const MAX_ENV_FILE: u64 = 64 * 1024;

/// Shortest repository password redacted from output.
const MIN_REDACTED_PASSWORD: usize = 8;

/// An opened repository description: the environment restic needs and the secrets in it.
#[derive(Debug, Clone)]
pub struct Repo {
    /// `RESTIC_REPOSITORY`, `RESTIC_PASSWORD_FILE` and the env file's variables.
    pub env: BTreeMap<String, String>,
    /// Values from the env file, redacted from output.
    pub secrets: Vec<String>,
}

impl Repo {
    /// Checks the repository fields and reads the env file (on the node).
    pub async fn open(repo: Option<&ResticRepository>) -> Result<Repo, String> {
        let Some(repo) = repo else {
            return Err("the backup task names no restic repository".to_owned());
        };
        if repo.repository.trim().is_empty() {
            return Err("the backup task's repository is empty".to_owned());
        }
        if repo.password_file.is_empty() {
            return Err("the backup task has no passwordFile".to_owned());
        }
        match tokio::fs::metadata(&repo.password_file).await {
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                return Err(format!(
                    "password file {} is not a regular file",
                    repo.password_file
                ))
            }
            Err(e) => {
                return Err(format!(
                    "cannot read password file {}: {}",
                    repo.password_file,
                    super::describe(&e)
                ))
            }
        }
        // restic reads the password file itself; its content is only kept to be redacted
        // should any program ever print it (restic uses the file's text, trimmed). Shorter
        // ones are not: redacting a common word would garble restic's own messages.
        let password = read_secret_file(&repo.password_file, "password file").await?;
        let mut secrets = Vec::new();
        let password = password.trim();
        if password.len() >= MIN_REDACTED_PASSWORD {
            secrets.push(password.to_owned());
        }
        let mut env = BTreeMap::from([
            ("RESTIC_REPOSITORY".to_owned(), repo.repository.clone()),
            (
                "RESTIC_PASSWORD_FILE".to_owned(),
                repo.password_file.clone(),
            ),
        ]);
        if !repo.env_file.is_empty() {
            let text = read_secret_file(&repo.env_file, "env file").await?;
            for (key, value) in
                parse_env_file(&text).map_err(|e| format!("env file {}: {e}", repo.env_file))?
            {
                if value.len() >= 4 {
                    secrets.push(value.clone());
                }
                env.insert(key, value);
            }
        }
        Ok(Repo { env, secrets })
    }

    /// `restic <args>` against this repository, with `--json` status lines ten times a
    /// second (restic prints none when not on a terminal otherwise; [`super::Cx::progress`]
    /// passes on one a second).
    pub fn step<S: AsRef<str>>(&self, args: &[S]) -> Step {
        let mut argv = vec!["restic".to_owned()];
        argv.extend(args.iter().map(|a| a.as_ref().to_owned()));
        let mut step = Step::new(&argv);
        step.env.extend(self.env.clone());
        step.env
            .insert("RESTIC_PROGRESS_FPS".to_owned(), "10".to_owned());
        step
    }
}

/// Reads a file holding secrets (`what` names it in errors). Errors name the file, never its
/// content; a file above [`MAX_ENV_FILE`] is refused rather than cut.
async fn read_secret_file(path: &str, what: &str) -> Result<String, String> {
    use tokio::io::AsyncReadExt;
    let fail = |e: std::io::Error| format!("cannot read {what} {path}: {}", super::describe(&e));
    let file = tokio::fs::File::open(path).await.map_err(fail)?;
    let mut bytes = Vec::new();
    file.take(MAX_ENV_FILE + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(fail)?;
    if bytes.len() as u64 > MAX_ENV_FILE {
        return Err(format!(
            "{what} {path} is larger than {} KiB; it should hold a few short lines",
            MAX_ENV_FILE / 1024
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "{what} {path} is not UTF-8 text (at byte {})",
            e.utf8_error().valid_up_to()
        )
    })
}

/// `KEY=VALUE` lines; blank lines and `#` comments are skipped, an optional `export ` prefix
/// and matching quotes around the value are removed. Errors name the line number, never any
/// of the line's text (a malformed line may be all secret: a value without its name).
pub fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {} is not KEY=VALUE", n + 1));
        };
        let key = key.trim();
        let valid = !key.is_empty()
            && !key.starts_with(|c: char| c.is_ascii_digit())
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "line {}: the text before '=' is not a variable name (letters, digits and '_', \
                 not starting with a digit; the line is not shown as it may hold a secret)",
                n + 1
            ));
        }
        let value = value.trim();
        let value = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
            .unwrap_or(value);
        out.push((key.to_owned(), value.to_owned()));
    }
    Ok(out)
}

/// `--tag a,b` (snapshots with all of them) and `--host h`, when given.
pub fn filter_args(tags: &[String], host: &str) -> Vec<String> {
    let mut args = Vec::new();
    if !tags.is_empty() {
        args.push("--tag".to_owned());
        args.push(tags.join(","));
    }
    if !host.is_empty() {
        args.push("--host".to_owned());
        args.push(host.to_owned());
    }
    args
}

/// The `--keep-*` flags of a retention policy (and `--prune`); empty when it keeps nothing.
pub fn retention_args(r: &Retention) -> Vec<String> {
    let mut args = Vec::new();
    for (flag, n) in [
        ("--keep-last", r.keep_last),
        ("--keep-hourly", r.keep_hourly),
        ("--keep-daily", r.keep_daily),
        ("--keep-weekly", r.keep_weekly),
        ("--keep-monthly", r.keep_monthly),
        ("--keep-yearly", r.keep_yearly),
    ] {
        if n > 0 {
            args.push(flag.to_owned());
            args.push(n.to_string());
        }
    }
    if !args.is_empty() && r.prune {
        args.push("--prune".to_owned());
    }
    args
}

/// A snapshot as restic's JSON lists it.
#[derive(Debug, Deserialize)]
struct RawSnapshot {
    #[serde(default)]
    time: String,
    #[serde(default)]
    hostname: String,
    #[serde(default)]
    paths: Option<Vec<String>>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    id: String,
    #[serde(default)]
    short_id: String,
}

impl From<RawSnapshot> for Snapshot {
    fn from(s: RawSnapshot) -> Self {
        Snapshot {
            time_unix_ms: humantime::parse_rfc3339_weak(s.time.trim_end_matches('Z'))
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .and_then(|d| i64::try_from(d.as_millis()).ok())
                .unwrap_or(0),
            short_id: if s.short_id.is_empty() {
                s.id.chars().take(8).collect()
            } else {
                s.short_id
            },
            id: s.id,
            hostname: s.hostname,
            paths: s.paths.unwrap_or_default(),
            tags: s.tags.unwrap_or_default(),
        }
    }
}

/// `restic snapshots --json` (one JSON array).
pub fn parse_snapshots(json: &str) -> Result<Vec<Snapshot>, String> {
    let raw: Option<Vec<RawSnapshot>> = serde_json::from_str(json.trim())
        .map_err(|e| format!("cannot parse 'restic snapshots --json': {e}"))?;
    Ok(raw
        .unwrap_or_default()
        .into_iter()
        .map(Snapshot::from)
        .collect())
}

/// `restic forget --json` (one JSON array of groups with `keep` and `remove`).
pub fn parse_forget(json: &str, pruned: bool) -> Result<ForgetSummary, String> {
    #[derive(Deserialize)]
    struct Group {
        #[serde(default)]
        keep: Option<Vec<serde_json::Value>>,
        #[serde(default)]
        remove: Option<Vec<serde_json::Value>>,
    }
    let groups: Option<Vec<Group>> = serde_json::from_str(json.trim())
        .map_err(|e| format!("cannot parse 'restic forget --json': {e}"))?;
    let mut summary = ForgetSummary {
        kept: 0,
        removed: 0,
        pruned,
    };
    for g in groups.unwrap_or_default() {
        let count = |v: Option<Vec<serde_json::Value>>| {
            u32::try_from(v.map_or(0, |v| v.len())).unwrap_or(u32::MAX)
        };
        summary.kept = summary.kept.saturating_add(count(g.keep));
        summary.removed = summary.removed.saturating_add(count(g.remove));
    }
    Ok(summary)
}

/// One line of `restic ls --json`: the snapshot first, then its nodes.
#[derive(Debug, Clone, PartialEq)]
pub enum LsLine {
    /// The snapshot being listed.
    Snapshot(Snapshot),
    /// A regular file with its path inside the snapshot and its size.
    File {
        /// Absolute path inside the snapshot.
        path: String,
        /// Size in bytes.
        size: u64,
    },
    /// Directories, links and the like.
    Other,
}

/// Parses one line of `restic ls --json`.
pub fn parse_ls_line(line: &str) -> Result<LsLine, String> {
    #[derive(Deserialize)]
    struct Node {
        #[serde(default)]
        struct_type: String,
        #[serde(default, rename = "type")]
        kind: String,
        #[serde(default)]
        path: String,
        #[serde(default)]
        size: u64,
    }
    let node: Node = serde_json::from_str(line.trim())
        .map_err(|e| format!("cannot parse 'restic ls --json': {e}"))?;
    match (node.struct_type.as_str(), node.kind.as_str()) {
        ("snapshot", _) => {
            let raw: RawSnapshot = serde_json::from_str(line.trim())
                .map_err(|e| format!("cannot parse 'restic ls --json': {e}"))?;
            Ok(LsLine::Snapshot(raw.into()))
        }
        ("node", "file") => Ok(LsLine::File {
            path: node.path,
            size: node.size,
        }),
        _ => Ok(LsLine::Other),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
