//! The executor against the real restic (0.14 or later) in a temp dir: backup with progress
//! and retention, restore, drills of a sound and of a corrupted repository, a wrong password, a
//! missing path, and a failing producer that must not become a snapshot.

use std::path::Path;
use std::process::Command;

use lab_proto::v1::backup_result::Kind;
use lab_proto::v1::{
    ResticBackup, ResticForget, ResticRepository, ResticRestore, ResticSnapshots, RestoreDrill,
    Retention,
};

use super::*;

fn restic_available() {
    let ok = Command::new("restic")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "these tests need restic; install it (apt-get install restic)"
    );
}

fn init_repo(dir: &Path) -> ResticRepository {
    restic_available();
    let pw = dir.join("pw");
    std::fs::write(&pw, "correct horse\n").unwrap();
    let repo = dir.join("repo");
    let out = Command::new("restic")
        .args(["init", "--repo", repo.to_str().unwrap()])
        .env("RESTIC_PASSWORD_FILE", &pw)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ResticRepository {
        repository: repo.to_str().unwrap().into(),
        password_file: pw.to_str().unwrap().into(),
        env_file: String::new(),
        password_from: None,
    }
}

async fn run(task: BackupTask) -> (Report, Vec<Out>) {
    let mut seen = Vec::new();
    let mut emit = |o: Out| seen.push(o);
    let mut cx = Cx::new(CancellationToken::new(), Duration::from_secs(2), &mut emit);
    let report = run_task(&task, &mut cx).await;
    drop(cx);
    (report, seen)
}

fn text(out: &[Out]) -> String {
    out.iter()
        .filter_map(|o| match o {
            Out::Output(_, d) => Some(String::from_utf8_lossy(d).into_owned()),
            Out::Progress(_) => None,
        })
        .collect()
}

fn backup_task(repo: &ResticRepository, paths: &[&Path]) -> BackupTask {
    BackupTask {
        name: "t".into(),
        action: Some(Action::Restic(ResticBackup {
            repo: Some(repo.clone()),
            paths: paths
                .iter()
                .map(|p| p.to_str().unwrap().to_owned())
                .collect(),
            tags: vec!["unit".into()],
            ..Default::default()
        })),
        ..Default::default()
    }
}

#[tokio::test]
async fn backup_restore_and_drills() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = init_repo(tmp.path());
    let data = tmp.path().join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    let big: Vec<u8> = (0..8_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(data.join("big"), &big).unwrap();
    std::fs::write(data.join("sub/small"), "small\n").unwrap();

    // Another backup in the same repository, with the same tag: retention leaves it alone.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("o"), "o\n").unwrap();
    let (report, out) = run(backup_task(&repo, &[&other])).await;
    assert_eq!(report.error, None, "{}", text(&out));

    let mut task = backup_task(&repo, &[&data]);
    task.retention = Some(Retention {
        keep_last: 1,
        prune: true,
        ..Default::default()
    });
    let (report, out) = run(task.clone()).await;
    assert_eq!(report.error, None, "{}", text(&out));
    let Some(Kind::Backup(summary)) = &report.result.kind else {
        panic!("{report:?}")
    };
    assert_eq!(summary.files_new, 2);
    assert!(!summary.snapshot_id.is_empty());
    assert!(
        out.iter().any(|o| matches!(o, Out::Progress(_))),
        "no progress: {out:?}"
    );
    let (report, _) = run(task).await;
    assert_eq!(report.error, None);
    let retention = report.result.retention.unwrap();
    assert_eq!(
        (retention.kept, retention.removed, retention.pruned),
        (1, 1, true)
    );

    let snaps = BackupTask {
        action: Some(Action::Snapshots(ResticSnapshots {
            repo: Some(repo.clone()),
            tags: vec!["unit".into()],
            ..Default::default()
        })),
        ..Default::default()
    };
    let (report, _) = run(snaps).await;
    let Some(Kind::Snapshots(list)) = &report.result.kind else {
        panic!("{report:?}")
    };
    let mut paths: Vec<_> = list.snapshots.iter().map(|s| s.paths.join(",")).collect();
    paths.sort();
    assert_eq!(
        paths,
        [data.to_str().unwrap(), other.to_str().unwrap()],
        "one snapshot of each backup"
    );
    assert_eq!(list.snapshots[0].tags, ["unit"]);

    let target = tmp.path().join("restored");
    let restore = BackupTask {
        action: Some(Action::Restore(ResticRestore {
            repo: Some(repo.clone()),
            target: target.to_str().unwrap().into(),
            ..Default::default()
        })),
        ..Default::default()
    };
    let (report, out) = run(restore).await;
    assert_eq!(report.error, None, "{}", text(&out));
    let restored = target.join(data.strip_prefix("/").unwrap());
    assert_eq!(std::fs::read(restored.join("big")).unwrap(), big);
    let Some(Kind::Restore(r)) = &report.result.kind else {
        panic!("{report:?}")
    };
    assert_eq!(
        (r.files_restored, r.bytes_restored),
        (2, big.len() as u64 + 6)
    );

    // Only the included part.
    let partial = tmp.path().join("partial");
    let sub = data.join("sub").to_str().unwrap().to_owned();
    let restore = BackupTask {
        action: Some(Action::Restore(ResticRestore {
            repo: Some(repo.clone()),
            target: partial.to_str().unwrap().into(),
            include: vec![sub],
            ..Default::default()
        })),
        ..Default::default()
    };
    let (report, out) = run(restore).await;
    assert_eq!(report.error, None, "{}", text(&out));
    let restored = partial.join(data.strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read_to_string(restored.join("sub/small")).unwrap(),
        "small\n"
    );
    assert!(!restored.join("big").exists());
    let Some(Kind::Restore(r)) = &report.result.kind else {
        panic!("{report:?}")
    };
    assert_eq!((r.files_restored, r.bytes_restored), (1, 6));

    // forget with a policy (and without one: refused).
    let mut forget = BackupTask {
        retention: Some(Retention {
            keep_last: 5,
            ..Default::default()
        }),
        action: Some(Action::Forget(ResticForget {
            repo: Some(repo.clone()),
            ..Default::default()
        })),
        ..Default::default()
    };
    let (report, out) = run(forget.clone()).await;
    assert_eq!(report.error, None, "{}", text(&out));
    let Some(Kind::Forget(f)) = &report.result.kind else {
        panic!("{report:?}")
    };
    assert_eq!((f.kept, f.removed, f.pruned), (2, 0, false));
    forget.retention = None;
    let (report, _) = run(forget).await;
    assert!(report.error.unwrap().contains("retention policy"));

    let drill = BackupTask {
        action: Some(Action::Drill(RestoreDrill {
            repo: Some(repo.clone()),
            sample_files: 1,
            ..Default::default()
        })),
        ..Default::default()
    };
    let (report, out) = run(drill.clone()).await;
    assert_eq!(report.error, None, "{}", text(&out));
    let Some(Kind::Drill(d)) = &report.result.kind else {
        panic!("{report:?}")
    };
    assert_eq!((d.files_in_snapshot, d.files_verified), (2, 1));
    assert_eq!(d.files[0].sha256.len(), 64);

    // Corrupt the biggest pack file: the drill must fail and say why.
    let mut packs: Vec<_> = walk(&Path::new(&repo.repository).join("data"));
    packs.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let pack = packs.last().unwrap();
    let mut perms = std::fs::metadata(pack).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(pack, perms).unwrap();
    let mut bytes = std::fs::read(pack).unwrap();
    for b in &mut bytes[1000..1100] {
        *b ^= 0xff;
    }
    std::fs::write(pack, bytes).unwrap();
    let mut all = drill;
    if let Some(Action::Drill(d)) = &mut all.action {
        d.sample_files = 0;
    }
    let (report, out) = run(all).await;
    let error = report.error.clone().unwrap_or_default();
    assert!(error.contains("problem"), "{error}\n{}", text(&out));
    let Some(Kind::Drill(d)) = &report.result.kind else {
        panic!("{report:?}")
    };
    assert!(!d.problems.is_empty());
    assert!(
        d.problems.iter().any(|p| p.contains("big")),
        "{:?}",
        d.problems
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn bad_password_missing_path_and_failed_producer() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = init_repo(tmp.path());
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();

    let missing = tmp.path().join("nope");
    let (report, _) = run(backup_task(&repo, &[&data, &missing])).await;
    let error = report.error.unwrap();
    assert!(
        error.contains("nope") && error.contains("No such file"),
        "{error}"
    );

    let mut wrong = repo.clone();
    let bad_pw = tmp.path().join("bad");
    std::fs::write(&bad_pw, "wrong\n").unwrap();
    wrong.password_file = bad_pw.to_str().unwrap().into();
    let (report, out) = run(backup_task(&wrong, &[&data])).await;
    let error = report.error.unwrap();
    assert!(error.contains("wrong password"), "{error}");
    assert!(!text(&out).contains("wrong\n") && !error.contains("correct horse"));

    // A producer that fails half way: restic must not save what it got.
    let repo_env = restic::Repo::open(Some(&repo)).await.unwrap();
    let step = repo_env.step(&["backup", "--json", "--stdin", "--stdin-filename", "x.sql"]);
    let producer = proc::Step::new(&["sh", "-c", "echo partial; exit 3"]);
    let mut emit = |_: Out| {};
    let mut cx = Cx::new(CancellationToken::new(), Duration::from_secs(2), &mut emit);
    let err = ops::run_backup(&mut cx, &repo_env, &step, Some(&producer))
        .await
        .unwrap_err();
    assert!(err.contains("exit code 3"), "{err}");
    let list = Command::new("restic")
        .args(["snapshots", "--json", "--repo", &repo.repository])
        .env("RESTIC_PASSWORD_FILE", &repo.password_file)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "[]");
    // The killed restic's lock was removed: an exclusive command works.
    let check = Command::new("restic")
        .args(["check", "--repo", &repo.repository])
        .env("RESTIC_PASSWORD_FILE", &repo.password_file)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}
