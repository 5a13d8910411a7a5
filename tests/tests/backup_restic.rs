//! restic backups end to end: `labctl apply -f` backup specs through the real coordinator to a
//! real agent running the real restic against a local repository — progress streamed to
//! labctl, snapshots with the spec's tags, byte-identical restores, restore drills that catch
//! a corrupted pack file, and clear failures (wrong password, missing path) that change
//! nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backup_util;

use std::path::{Path, PathBuf};

use backup_util::{apply, job, random_file, Applied, Repo};
use lab_proto::v1::backup_result::Kind;
use lab_tests::Cluster;

fn backup_spec(repo: &Repo, paths: &[&Path]) -> String {
    let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    job(
        "home-nightly",
        &format!(
            "    backup:\n      restic: {{{}, paths: [{}], exclude: [\"*.tmp\"], tags: [home, nightly]}}\n      retention: {{keepLast: 5, prune: true}}\n      maxAge: 26h\n",
            repo.fields(),
            paths.join(", ")
        ),
    )
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn drill(c: &Cluster, repo: &Repo, extra: &str) -> Applied {
    let spec = job(
        "home-nightly",
        &format!("    backup:\n      drill: {{{}{extra}}}\n", repo.fields()),
    );
    apply(c, &spec)
}

#[test]
fn a_directory_is_backed_up_with_progress_restored_identically_and_drilled() {
    let c = Cluster::builder().agents(1).start();
    let repo = Repo::init(c.tmp.path());
    let data = c.tmp.path().join("home");
    std::fs::create_dir_all(data.join("docs")).unwrap();
    // Big enough that restic reports progress while it reads.
    random_file(&data.join("photos.bin"), 96 << 20);
    random_file(&data.join("docs/letter.txt"), 10_000);
    std::fs::write(data.join("docs/scratch.tmp"), "excluded\n").unwrap();

    let run = apply(&c, &backup_spec(&repo, &[&data]));
    run.assert_ok();
    let progress = run.progress();
    // Progress while restic read the data, not only its start.
    assert!(
        progress
            .iter()
            .any(|p| p["bytes_done"].as_u64().unwrap() > 0
                && p["bytes_total"].as_u64().unwrap() >= p["bytes_done"].as_u64().unwrap()
                && p["percent"].as_f64().unwrap() > 0.0),
        "no progress while backing up: {}",
        run.describe()
    );

    let snapshots = repo.snapshots();
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    assert_eq!(snapshots[0]["tags"], serde_json::json!(["home", "nightly"]));
    let result = run.result();
    assert_eq!(result.name, "home-nightly");
    let Some(Kind::Backup(summary)) = result.kind else {
        panic!("{}", run.describe())
    };
    assert_eq!(
        summary.snapshot_id,
        snapshots[0]["short_id"].as_str().unwrap()
    );
    assert_eq!(summary.files_new, 2, "the *.tmp file is excluded");
    assert!(summary.total_bytes_processed >= 96 << 20);
    let retention = result.retention.expect("retention was applied");
    assert_eq!((retention.kept, retention.removed), (1, 0));

    // Restore into a scratch dir: byte-identical.
    let target = c.tmp.path().join("restore");
    let spec = job(
        "home-nightly",
        &format!(
            "    backup:\n      restore: {{{}, snapshot: latest, target: {}}}\n",
            repo.fields(),
            target.display()
        ),
    );
    let run = apply(&c, &spec);
    run.assert_ok();
    let restored = target.join(data.strip_prefix("/").unwrap());
    let want: Vec<PathBuf> = files_under(&data)
        .into_iter()
        .filter(|p| p.extension().is_none_or(|e| e != "tmp"))
        .collect();
    assert_eq!(want.len(), 2);
    for file in &want {
        let copy = restored.join(file.strip_prefix(&data).unwrap());
        assert!(
            std::fs::read(file).unwrap() == std::fs::read(&copy).unwrap(),
            "{} differs from {}",
            copy.display(),
            file.display()
        );
    }
    assert!(!restored.join("docs/scratch.tmp").exists());

    // The snapshots operation lists it, with the spec's tags.
    let spec = job(
        "home-nightly",
        &format!(
            "    backup:\n      snapshots: {{{}, tags: [home]}}\n",
            repo.fields()
        ),
    );
    let run = apply(&c, &spec);
    run.assert_ok();
    let Some(Kind::Snapshots(list)) = run.result().kind else {
        panic!("{}", run.describe())
    };
    assert_eq!(list.snapshots.len(), 1);
    assert_eq!(list.snapshots[0].tags, ["home", "nightly"]);
    assert_eq!(list.snapshots[0].paths, [data.display().to_string()]);

    // A drill of a sound repository verifies every file.
    let run = drill(&c, &repo, "");
    run.assert_ok();
    let Some(Kind::Drill(d)) = run.result().kind else {
        panic!("{}", run.describe())
    };
    assert_eq!((d.files_in_snapshot, d.files_verified), (2, 2));
    assert!(d.problems.is_empty(), "{:?}", d.problems);
    assert_eq!(d.bytes_verified, (96 << 20) + 10_000);
    assert!(d.files.iter().all(|f| f.sha256.len() == 64));

    // Overwrite bytes in the biggest pack file: the drill fails and says why.
    let mut packs = files_under(&repo.path.join("data"));
    packs.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let pack = packs.last().unwrap();
    let mut bytes = std::fs::read(pack).unwrap();
    for b in &mut bytes[4096..4196] {
        *b ^= 0x5a;
    }
    std::fs::remove_file(pack).unwrap();
    std::fs::write(pack, bytes).unwrap();
    let scratch = c.tmp.path().join("drill-scratch");
    let run = drill(&c, &repo, &format!(", scratchDir: {}", scratch.display()));
    let error = run.assert_failed();
    // The flipped bytes may hit either file's blobs; the error names the damaged file.
    let home = data.strip_prefix("/").unwrap().to_str().unwrap().to_owned();
    assert!(
        error.contains("problem") && error.contains(&home) && error.contains("verification"),
        "{error}"
    );
    let Some(Kind::Drill(d)) = run.result().kind else {
        panic!("{}", run.describe())
    };
    assert!(!d.problems.is_empty());
    assert!(
        d.problems.iter().any(|p| p.contains(&home)),
        "{:?}",
        d.problems
    );
    assert!(
        std::fs::read_dir(&scratch).is_err(),
        "the drill removes its scratch directory"
    );

    // restic check reading all data finds the damage too.
    let spec = job(
        "home-nightly",
        &format!(
            "    backup:\n      check: {{{}, readDataSubset: \"100%\"}}\n",
            repo.fields()
        ),
    );
    let run = apply(&c, &spec);
    let error = run.assert_failed();
    assert!(error.contains("restic check found problems"), "{error}");
    let Some(Kind::Check(check)) = run.result().kind else {
        panic!("{}", run.describe())
    };
    assert!(!check.ok && !check.errors.is_empty(), "{check:?}");
}

#[test]
fn a_wrong_password_or_a_missing_path_fails_clearly_and_changes_nothing() {
    let c = Cluster::builder().agents(1).start();
    let repo = Repo::init(c.tmp.path());
    let data = c.tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("a"), "a\n").unwrap();

    let wrong = Repo {
        path: repo.path.clone(),
        password_file: c.tmp.path().join("wrong.pass"),
    };
    std::fs::write(&wrong.password_file, "not-the-password\n").unwrap();
    let run = apply(&c, &backup_spec(&wrong, &[&data]));
    let error = run.assert_failed();
    assert!(error.contains("wrong password"), "{error}");
    let all = run.describe();
    assert!(!all.contains("not-the-password") && !all.contains("e2e-secret-password"));
    assert!(repo.snapshots().is_empty());

    let missing = c.tmp.path().join("no-such-dir");
    let run = apply(&c, &backup_spec(&repo, &[&data, &missing]));
    let error = run.assert_failed();
    assert!(
        error.contains(missing.to_str().unwrap()) && error.contains("No such file"),
        "{error}"
    );
    assert!(repo.snapshots().is_empty(), "no partial snapshot");
    assert_eq!(
        repo.restic(&["check"]).status.code(),
        Some(0),
        "the repository is intact"
    );
}
