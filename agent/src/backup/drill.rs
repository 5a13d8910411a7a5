//! Restore drills: restore a snapshot (or `sample_files` random files of it) into a scratch
//! directory with `restic restore --verify`, then check every selected file against the
//! `restic ls --json` listing (present, same size) and record the SHA-256 of its restored
//! content. Any problem fails the task, with the reasons in the error and in
//! `DrillSummary.problems`.
//!
//! The scratch directory must be new or empty (a drill never overwrites or deletes files it did
//! not restore); what the drill restored is removed afterwards.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use lab_proto::v1::backup_result::Kind;
use lab_proto::v1::{BackupResult, DrillFile, DrillSummary, RestoreDrill};
use sha2::{Digest, Sha256};

use super::ops::{self, open};
use super::{describe, Cx};

/// Files listed with their hash in the result (all of them go to the output).
const MAX_RESULT_FILES: usize = 100;

/// Problems kept in the result, and the characters kept of each.
const MAX_PROBLEMS: usize = 50;
const MAX_PROBLEM_CHARS: usize = 1000;

/// A scratch directory and whether the drill created it (then it removes it, not only its
/// content).
struct Scratch {
    path: PathBuf,
    created: bool,
}

impl Scratch {
    /// The given directory, or a new one under the temp dir; created with mode 0700 when
    /// missing, refused when another user could redirect it (see [`crate::safepath`]).
    async fn prepare(dir: &str) -> Result<Scratch, String> {
        let dir = if dir.is_empty() {
            let name = format!("lab-drill-{:016x}", rand::random::<u64>());
            std::env::temp_dir().join(name).display().to_string()
        } else {
            dir.to_owned()
        };
        let (path, created) = super::prepare_dir(&dir, "scratch directory").await?;
        if !created {
            let mut entries = tokio::fs::read_dir(&path)
                .await
                .map_err(|e| format!("cannot read {}: {}", path.display(), describe(&e)))?;
            let first = entries
                .next_entry()
                .await
                .map_err(|e| format!("cannot read {}: {}", path.display(), describe(&e)))?;
            if first.is_some() {
                return Err(format!(
                    "scratch directory {} is not empty; give the drill a new or empty directory",
                    path.display()
                ));
            }
        }
        Ok(Scratch { path, created })
    }

    /// Removes what the drill put there.
    async fn clean(&self) -> Result<(), String> {
        let fail =
            |e: std::io::Error| format!("cannot clean {}: {}", self.path.display(), describe(&e));
        if self.created {
            return tokio::fs::remove_dir_all(&self.path).await.map_err(fail);
        }
        let mut entries = tokio::fs::read_dir(&self.path).await.map_err(fail)?;
        while let Some(entry) = entries.next_entry().await.map_err(fail)? {
            let p = entry.path();
            let is_dir = entry.file_type().await.map_err(fail)?.is_dir();
            if is_dir {
                tokio::fs::remove_dir_all(&p).await.map_err(fail)?;
            } else {
                tokio::fs::remove_file(&p).await.map_err(fail)?;
            }
        }
        Ok(())
    }
}

/// Hex SHA-256 of a file.
async fn sha256(path: PathBuf) -> std::io::Result<String> {
    tokio::task::spawn_blocking(move || {
        // Never through a symlink: only what the drill restored is hashed.
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
            .open(&path)?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher)?;
        Ok(hex::encode(hasher.finalize()))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// `restic` patterns treat `*?[\` specially; an include of one exact path escapes them.
fn exact_pattern(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Picks `n` of `len` indexes at random (all of them, in order, when `n` is 0 or ≥ `len`).
fn pick(len: usize, n: usize) -> Vec<usize> {
    if n == 0 || n >= len {
        return (0..len).collect();
    }
    let mut chosen = rand::seq::index::sample(&mut rand::rng(), len, n).into_vec();
    chosen.sort_unstable();
    chosen
}

/// Runs one restore drill.
pub async fn run(
    cx: &mut Cx<'_>,
    d: &RestoreDrill,
    result: &mut BackupResult,
) -> Result<(), String> {
    let repo = open(cx, d.repo.as_ref()).await?;
    let listing = ops::list(cx, &repo, &d.snapshot, &d.tags, &d.host).await?;
    let short = listing.snapshot.short_id.clone();
    let chosen: Vec<(String, u64)> = pick(listing.files.len(), d.sample_files as usize)
        .into_iter()
        .filter_map(|i| listing.files.get(i).cloned())
        .collect();
    let mut summary = DrillSummary {
        snapshot_id: short.clone(),
        files_in_snapshot: listing.files.len() as u64,
        ..Default::default()
    };
    let scratch = Scratch::prepare(&d.scratch_dir).await?;
    cx.line(&format!(
        "drill: restoring {} of {} files of snapshot {short} into {}",
        chosen.len(),
        listing.files.len(),
        scratch.path.display()
    ));
    let mut args = vec![
        "restore".to_owned(),
        "--verify".to_owned(),
        "--target".to_owned(),
        scratch.path.display().to_string(),
    ];
    if chosen.len() < listing.files.len() {
        for (path, _) in &chosen {
            args.extend(["--include".to_owned(), exact_pattern(path)]);
        }
    }
    args.extend(["--".to_owned(), listing.snapshot.id.clone()]);
    let ran = ops::run_restic(cx, &repo, &repo.step(&args), None, |cx, line| cx.line(line)).await;
    if !ran.success() {
        let reported: Vec<String> = ran
            .main
            .stderr_lines()
            .into_iter()
            .filter(|l| l.contains("error") || l.starts_with("Fatal"))
            .collect();
        if reported.is_empty() {
            summary.problems.push(ran.failure());
        } else {
            summary.problems.extend(reported);
        }
    }
    if !cx.stop.is_cancelled() {
        verify(cx, &scratch.path, &chosen, &mut summary).await;
    }
    if let Err(e) = scratch.clean().await {
        summary.problems.push(e);
    }
    summary.problems.truncate(MAX_PROBLEMS);
    for p in &mut summary.problems {
        if p.chars().count() > MAX_PROBLEM_CHARS {
            *p = p.chars().take(MAX_PROBLEM_CHARS).collect::<String>() + "...";
        }
    }
    let problems = summary.problems.clone();
    result.kind = Some(Kind::Drill(summary));
    match problems.first() {
        None => {
            cx.line(&format!("drill of snapshot {short}: every file matched"));
            Ok(())
        }
        Some(first) => Err(format!(
            "restore drill of snapshot {short} found {} problem(s); the first: {first}",
            problems.len()
        )),
    }
}

/// Checks each chosen file under `root`: present, same size, and records its SHA-256.
async fn verify(
    cx: &mut Cx<'_>,
    root: &Path,
    chosen: &[(String, u64)],
    summary: &mut DrillSummary,
) {
    for (path, size) in chosen {
        if cx.stop.is_cancelled() {
            return;
        }
        let restored = root.join(path.trim_start_matches('/'));
        let actual = match tokio::fs::symlink_metadata(&restored).await {
            Ok(m) if m.is_file() => m.len(),
            Ok(_) => {
                summary
                    .problems
                    .push(format!("{path}: not restored as a regular file"));
                continue;
            }
            Err(e) => {
                summary
                    .problems
                    .push(format!("{path}: not restored ({})", describe(&e)));
                continue;
            }
        };
        if actual != *size {
            summary.problems.push(format!(
                "{path}: restored size {actual} bytes, the snapshot lists {size} bytes"
            ));
            continue;
        }
        match sha256(restored).await {
            Ok(hash) => {
                cx.line(&format!("verified {hash}  {path} ({size} bytes)"));
                summary.files_verified += 1;
                summary.bytes_verified += size;
                if summary.files.len() < MAX_RESULT_FILES {
                    summary.files.push(DrillFile {
                        path: path.clone(),
                        size: *size,
                        sha256: hash,
                    });
                }
            }
            Err(e) => summary.problems.push(format!(
                "{path}: cannot read the restored file ({})",
                describe(&e)
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_and_picks() {
        assert_eq!(exact_pattern("/a/b*[1]?.txt"), "/a/b\\*\\[1\\]\\?.txt");
        assert_eq!(pick(3, 0), [0, 1, 2]);
        assert_eq!(pick(3, 5), [0, 1, 2]);
        let p = pick(100, 5);
        assert_eq!(p.len(), 5);
        assert!(p.windows(2).all(|w| w[0] < w[1]) && p.iter().all(|&i| i < 100));
    }

    #[tokio::test]
    async fn scratch_directories() {
        let tmp = std::env::temp_dir().join(format!("lab-drill-test-{}", rand::random::<u64>()));
        let dir = tmp.to_str().unwrap().to_owned();
        let s = Scratch::prepare(&dir).await.unwrap();
        assert!(s.created && tmp.is_dir());
        std::fs::write(tmp.join("x"), "x").unwrap();
        let err = Scratch::prepare(&dir).await.err().unwrap();
        assert!(err.contains("not empty"), "{err}");
        s.clean().await.unwrap();
        assert!(!tmp.exists());
        assert!(Scratch::prepare("relative").await.is_err());
        let auto = Scratch::prepare("").await.unwrap();
        assert!(auto.created && auto.path.is_dir());
        auto.clean().await.unwrap();
        assert!(!auto.path.exists());
    }

    #[tokio::test]
    async fn scratch_directories_others_could_redirect_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        // Another user's symlink where the drill (root) would restore and then delete files.
        let planted = shared.join("scratch");
        std::os::unix::fs::symlink("/etc", &planted).unwrap();
        std::os::unix::fs::lchown(&planted, Some(65534), None).unwrap();
        let err = Scratch::prepare(planted.to_str().unwrap())
            .await
            .err()
            .unwrap();
        assert!(
            err.starts_with("refusing scratch directory ")
                && err.contains("scratch is a symlink owned by nobody"),
            "{err}"
        );
        // Directly in the shared directory is fine when the drill creates it (0700, root's).
        let own = shared.join("own");
        let s = Scratch::prepare(own.to_str().unwrap()).await.unwrap();
        assert!(s.created);
        let mode = std::fs::metadata(&own).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o700);
        // The shared directory itself is not.
        let err = Scratch::prepare(shared.to_str().unwrap())
            .await
            .err()
            .unwrap();
        assert!(err.contains("is writable by all users"), "{err}");
    }
}
